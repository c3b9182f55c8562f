"""The notes admin cannot surprise (issue 21, point 6), in Debian's chromium against a real server.

Uses the fixtures of tests/test_browser.py (chromium, `manage.py serve`, the simulators).
"""

import re

import pytest

from dashboard.models import IncidentNote, NoteWrite
from tests import test_browser
from tests.test_browser import keep_screenshot, log_in

browser, server, ou_sim, staff = test_browser.browser, test_browser.server, test_browser.ou_sim, test_browser.staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_TIME = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d{4}, [0-2]\d:[0-5]\d (EET|EEST)")


def helsinki_page(browser, width=1440, height=900):
    context = browser.new_context(viewport={"width": width, "height": height}, timezone_id="Europe/Helsinki")
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    return page


def mirrored(page, upstream_id):
    for _ in range(100):
        note = IncidentNote.objects.filter(upstream_id=upstream_id).first()
        if note:
            return note
        page.wait_for_timeout(200)
    raise AssertionError(f"note {upstream_id} never mirrored")


def held_as_conflict(page, server, ou_sim):
    """A note whose save met OneUptime's newer text: its change page shows both versions."""
    incident = ou_sim.add_incident("Checkout errors", state="Acknowledged", severity="Critical")
    row = ou_sim.add_note(incident["_id"], "## Identified\n\nA bad deploy of the rate limiter.")
    log_in(page, server)
    note = mirrored(page, row["_id"])
    page.goto(f"{server.url}/admin/dashboard/incidentnote/{note.pk}/change/")
    ou_sim.edit_note(row["_id"], note="## Identified\n\nA bad deploy of the rate limiter, rolled back at 14:05.")
    page.fill("#id_note", "## Monitoring\n\nA bad deploy of the rate limiter.")
    page.click("input[name=_save]")
    for _ in range(50):
        if NoteWrite.objects.filter(note=note, state=NoteWrite.State.CONFLICT).exists():
            break
        page.wait_for_timeout(300)
    page.goto(f"{server.url}/admin/dashboard/incidentnote/{note.pk}/change/")
    page.wait_for_selector("text=Keep mine")
    return note, row


def test_enter_in_the_conflict_form_never_overwrites_oneuptime(browser, server, staff, ou_sim):
    page = helsinki_page(browser)
    note, row = held_as_conflict(page, server, ou_sim)
    page.focus("#id_posted_at_1")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_timeout(3000)  # the outbox goes out every half second: an overwrite would be through by now
    assert "rolled back at 14:05" in ou_sim.notes[row["_id"]]["note"], "OneUptime's newer text is still there"
    assert NoteWrite.objects.filter(note=note, state=NoteWrite.State.CONFLICT).exists(), "the choice is still open"


def test_admin_times_are_in_the_viewers_zone_24_hour_and_named(browser, server, staff, ou_sim):
    page = helsinki_page(browser)
    held_as_conflict(page, server, ou_sim)
    header = page.text_content(".note-diff thead th:nth-child(2)")
    assert ADMIN_TIME.search(header), header
    assert "T" not in header.split("as of")[-1].split(",")[0], "no raw ISO string"
    mirrored_times = page.inner_text("fieldset:has(.field-created_at)")
    assert ADMIN_TIME.search(mirrored_times), mirrored_times
    assert "Times in Europe/Helsinki" in page.text_content("#user-tools")
    assert "In Europe/Helsinki, 24-hour" in page.inner_text(".field-posted_at")
    assert not page.query_selector(".timezonewarning"), "no 'you are 2 hours ahead of server time' note"
    page.goto(f"{server.url}/admin/dashboard/incidentnote/")
    first = page.inner_text("#result_list tbody tr:first-child td.field-posted_at")
    assert ADMIN_TIME.fullmatch(first), first
    assert not re.search(r"\b(a\.m\.|p\.m\.)", page.inner_text("#result_list")), "24-hour"


def test_the_note_list_fits_1440_px_with_the_note_as_its_link(browser, server, staff, ou_sim):
    incident = ou_sim.add_incident("A very long incident title " * 6, state="Acknowledged", severity="Major")
    ou_sim.add_note(incident["_id"], "Looking into it. " * 20)
    page = helsinki_page(browser)
    log_in(page, server)
    mirrored(page, ou_sim.add_note(incident["_id"], "One more.")["_id"])
    page.goto(f"{server.url}/admin/dashboard/incidentnote/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    links = page.evaluate(
        "[...document.querySelectorAll('#result_list tbody tr')].map(row => row.querySelector('a[href*=\"/change/\"]')"
        ".getBoundingClientRect().right)"
    )
    assert links and max(links) <= 1440, links
    assert page.evaluate("(r => r.scrollWidth <= r.clientWidth)(document.querySelector('.results'))"), "every column in view"
    assert page.query_selector("#result_list tbody tr:first-child th.field-first_line a"), "the note's words are the link"
    keep_screenshot(page, "admin-notes")


def test_after_a_save_the_message_follows_the_write_back_without_a_reload(browser, server, staff, ou_sim):
    incident = ou_sim.add_incident("Slow search", state="Acknowledged", severity="Minor")
    row = ou_sim.add_note(incident["_id"], "Looking into it.")
    page = helsinki_page(browser)
    log_in(page, server)
    note = mirrored(page, row["_id"])
    page.goto(f"{server.url}/admin/dashboard/incidentnote/{note.pk}/change/")
    page.fill("#id_note", "Found it: a missing index.")
    ou_sim.fail_next(1000)  # OneUptime answers 503 until the faults are cleared: the write waits
    page.click("input[name=_save]")
    message = page.locator(".messagelist .write-back-progress")
    assert "successfully" not in page.inner_text(".messagelist")
    assert message.inner_text() == "Sending to OneUptime…"
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector(".write-back-progress[data-stage=retrying]", timeout=15000)
    assert "not through yet (OneUptime answered HTTP 503" in message.inner_text() or "not through yet" in message.inner_text()
    ou_sim.clear_faults()
    page.wait_for_selector(".write-back-progress[data-stage=delivered]", timeout=30000)
    assert message.inner_text() == "Delivered to OneUptime."
    assert page.evaluate("window.__sameDocument === true"), "no reload"
    assert ou_sim.notes[row["_id"]]["note"] == "Found it: a missing index."
    assert page.console_errors == []
