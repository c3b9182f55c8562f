"""Pages everyone can use (issue 21, point 7): axe-core finds nothing serious or critical on any page, pushed
changes are announced politely, a skip link, and "Older events" keeps the keyboard's place.

Uses the fixtures of tests/test_browser.py (chromium, `manage.py serve`, the simulators) and axe-core
from our own static files (tests/a11y.py).
"""

import pytest
from django.urls import reverse

from dashboard.live import screens
from dashboard.models import Incident, IncidentNote, Pipeline
from tests import test_browser
from tests.a11y import serious_violations
from tests.test_browser import log_in, new_page, wait_live

browser, server, ou_sim, staff = test_browser.browser, test_browser.server, test_browser.ou_sim, test_browser.staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def mirrored(page, model, **lookup):
    for _ in range(100):
        row = model.objects.filter(**lookup).order_by("pk").first()
        if row:
            return row
        page.wait_for_timeout(200)
    raise AssertionError(f"no {model.__name__} mirrored")


def pipeline_url(pipeline: Pipeline) -> str:
    return reverse("pipeline", args=[pipeline.project, pipeline.repository, pipeline.name])


# Each page axe checks: its name, and how to get there (after logging in). New pages go here.
PAGES = {
    "dashboard": lambda page: "/",
    "wall": lambda page: f"/wall/?key={screens.screen_named('Office TV').key}",
    "incident": lambda page: f"/incidents/{mirrored(page, Incident).upstream_id}/",
    "pipelines": lambda page: "/pipelines/",
    "pipeline": lambda page: pipeline_url(mirrored(page, Pipeline, repository__gt="")),
    "insights": lambda page: "/insights/",
    "admin note list": lambda page: "/admin/dashboard/incidentnote/",
    "admin note page": lambda page: f"/admin/dashboard/incidentnote/{mirrored(page, IncidentNote).pk}/change/",
    "admin new note": lambda page: "/admin/dashboard/incidentnote/add/",
}
LIVE_PAGES = {"dashboard", "wall", "incident"}


@pytest.mark.parametrize("name", PAGES)
def test_axe_finds_nothing_serious_on_the_page(browser, server, staff, hth_sim, name):
    for number in range(2):  # progress bars on the wall and the dashboard
        hth_sim.set_progress(hth_sim.start_build(project="atlas", repository=f"a11y-{number}", name="Release"), 30)
    page = new_page(browser)
    log_in(page, server)
    page.goto(server.url + PAGES[name](page))
    if name in LIVE_PAGES:
        wait_live(page)
        page.wait_for_selector("[data-live]", timeout=20000) if name != "incident" else None
    assert serious_violations(page) == []
    assert page.locator("h1").count() == 1, "one level-one heading"


def test_axe_finds_nothing_serious_on_the_login_page(browser, server):
    page = new_page(browser)
    page.goto(server.url + "/accounts/login/")
    assert serious_violations(page) == []
    page.fill("input[name=username]", "nobody")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".error")
    assert serious_violations(page) == [], "the error too"


def test_a_skip_link_leads_past_the_header_to_the_content(browser, server, staff):
    page = new_page(browser)
    log_in(page, server)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.is_visible(".skip-link"), "visible when focused"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("!!document.activeElement.closest('main')"), "the next Tab is inside the page's content"


def test_pushed_changes_are_announced_politely_in_one_batch(browser, server, staff, hth_sim):
    page = new_page(browser)
    log_in(page, server)
    wait_live(page)
    region = page.locator("#announcer")
    assert region.get_attribute("aria-live") == "polite"
    page.evaluate(
        """window.__announcements = [];
        new MutationObserver(() => window.__announcements.push(document.getElementById('announcer').textContent))
            .observe(document.getElementById('announcer'), {childList: true, characterData: true, subtree: true});"""
    )
    for number in range(3):
        hth_sim.add_event(target="push", operation="created", project="luotsi", name=f"announce {number}")
    page.wait_for_function("() => /3 new events/.test(document.getElementById('announcer').textContent)", timeout=15000)
    page.wait_for_timeout(2500)
    said = [text for text in page.evaluate("window.__announcements") if text.strip()]
    assert len(said) == 1, said


def test_after_older_events_focus_lands_on_the_first_new_row(browser, server, staff):
    page = new_page(browser)
    log_in(page, server)
    wait_live(page)
    last = page.evaluate("[...document.querySelectorAll('#feed > .event')].pop().id")
    page.focus("#feed-more a")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.getElementById('{last}').nextElementSibling.classList.contains('event')")
    page.wait_for_timeout(500)  # htmx settles the swap a moment after inserting it
    focused = page.evaluate("document.activeElement.id")
    assert focused and focused == page.evaluate(f"document.getElementById('{last}').nextElementSibling.id")
