"""The wall as people across the room see it: Debian's chromium at TV and laptop sizes, against a real server.

Uses the fixtures of tests/test_browser.py (chromium, `manage.py serve`, the simulators).
"""

import re

import pytest
from django.utils import timezone

from dashboard.live import screens
from dashboard.models import Screen
from tests import test_browser
from tests.test_browser import keep_screenshot, new_page, wait_live

browser, server, ou_sim, staff = (
    test_browser.browser,
    test_browser.server,
    test_browser.ou_sim,
    test_browser.staff,
)  # shared fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [(1280, 720), (1920, 1080), (3840, 2160)]

# Every visible block of the wall that must sit wholly inside its panel and the viewport.
OVERFLOWS = """() => {
    const view = {left: 0, top: 0, right: innerWidth, bottom: innerHeight};
    const blocks = document.querySelectorAll(
        '.status-strip, .status-strip > *, .panel > *, .panel [data-fit-item], .panel .empty');
    const out = [];
    for (const element of blocks) {
        if (element.closest('[hidden]') || !element.getClientRects().length) continue;
        const r = element.getBoundingClientRect();
        const slot = element.closest('.panel-slot');
        for (const box of [view, slot ? slot.getBoundingClientRect() : view]) {
            if (r.left < box.left - 1 || r.top < box.top - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1) {
                out.push(element.className + ' ' + JSON.stringify([r.left, r.top, r.right, r.bottom]));
                break;
            }
        }
    }
    if (document.documentElement.scrollWidth > innerWidth || document.documentElement.scrollHeight > innerHeight)
        out.push('the page scrolls');
    return out;
}"""

# The smallest font size of any element that shows text of its own.
SMALLEST_TEXT = """() => {
    let smallest = Infinity, where = '';
    for (const element of document.querySelectorAll('body *')) {
        if (element.closest('[hidden]') || !element.getClientRects().length) continue;
        const own = [...element.childNodes].some(node => node.nodeType === 3 && node.nodeValue.trim());
        if (!own) continue;
        const size = parseFloat(getComputedStyle(element).fontSize);
        if (size < smallest) { smallest = size; where = element.tagName + '.' + element.className; }
    }
    return [smallest, where];
}"""


def add_incidents(ou_sim):
    """Six open incidents; the only Critical one is the oldest, so newest-first would have cut it off."""
    critical = ou_sim.add_incident("Database primary unreachable", state="Acknowledged", severity="Critical")
    ou_sim.add_note(
        critical["_id"], "## Identified\n\nFailover in progress:\n\n```\npg_ctl promote\n```\n" + "More detail. " * 40
    )
    for number in range(5):
        minor = ou_sim.add_incident(f"Slow thumbnails in region {number}", state="Created", severity="Minor")
        ou_sim.add_note(minor["_id"], f"Looking into it ({number}).")
    return critical


@pytest.mark.parametrize("width,height", VIEWPORTS)
def test_the_wall_fits_the_screen_reads_from_across_the_room_and_shows_the_worst_first(
    browser, server, hth_sim, ou_sim, width, height
):
    critical = add_incidents(ou_sim)
    for number in range(12):
        hth_sim.start_build(project="atlas", repository=f"service-{number}", name="Release")
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=width, height=height)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_selector(f'#wall-incidents [data-incident-id="{critical["_id"]}"]', timeout=20000)
    page.wait_for_function("() => document.querySelectorAll('#wall-builds [data-live]').length >= 12", timeout=20000)
    page.wait_for_timeout(500)
    assert page.is_visible(f'#wall-incidents [data-incident-id="{critical["_id"]}"]'), "the worst incident is on screen"
    assert page.evaluate(OVERFLOWS) == []
    smallest, where = page.evaluate(SMALLEST_TEXT)
    print(f"{width}x{height}: smallest text {smallest:.1f} px ({smallest / height:.2%} of the height) in {where}")
    assert smallest >= 0.024 * height - 0.05, where
    more = page.inner_text("#wall-builds [data-more]")
    assert more.startswith("+") and page.is_visible("#wall-builds [data-more]"), "what does not fit is counted, in view"
    assert page.console_errors == []
    if (width, height) == (1920, 1080):
        keep_screenshot(page, "wall-failing")


def test_pages_without_a_live_socket_never_show_the_stale_banner(browser, server):
    screen = screens.screen_named("Office TV")
    Screen.objects.filter(pk=screen.pk).update(revoked_at=timezone.now())  # as revoke() does, without a socket to tell
    page = new_page(browser, width=1920, height=1080)
    pages = {"/accounts/login/": "Log in", "/wall/?key=mistyped": "unknown link", f"/wall/?key={screen.key}": "revoked"}
    for path, says in pages.items():
        page.goto(server.url + path)
        assert says in page.inner_text("body")
    page.goto(server.url + "/accounts/login/")
    page.wait_for_timeout(9000)  # the first connect is given 8 s before it is news
    assert page.is_hidden("#stale-banner")
    page.goto(f"{server.url}/wall/?key=mistyped")
    page.wait_for_timeout(9000)
    assert page.is_hidden("#stale-banner") and "reconnecting" not in page.inner_text("body")
    assert "revoked" not in page.inner_text("body")


def test_the_text_scale_scales_the_text_and_the_clock_ticks_in_24_hour_time_with_its_zone(browser, server):
    screen = screens.screen_named("Berlin TV", time_zone="Europe/Berlin")
    Screen.objects.filter(pk=screen.pk).update(text_scale=1.5)
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert abs(size - 1.5 * 0.028 * 1080) < 0.5, size
    first = page.inner_text("#clock")
    page.wait_for_timeout(1500)
    second = page.inner_text("#clock")
    assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d", second) and second != first
    assert page.inner_text("#clock-zone").startswith("Europe/Berlin (")
    assert re.fullmatch(r"updated \d+ s ago", page.inner_text("#wall-status"))
    health_timings = "performance.getEntriesByType('resource').filter(e => e.name.includes('/healthz')).length"
    assert page.evaluate(health_timings) == 0, "a wall that asks /healthz for weeks keeps no timing of each request"


def log_in(page, server):
    test_browser.log_in(page, server)


@pytest.mark.parametrize("width", [360, 390])
def test_the_dashboard_on_a_phone_has_no_sideways_scroll_and_puts_builds_and_incidents_first(
    browser, server, staff, hth_sim, width
):
    hth_sim.add_event(target="build", operation="completed", project="a-very-long-project-name-" * 4, name="x" * 80)
    page = new_page(browser, width=width, height=844)
    log_in(page, server)
    wait_live(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    tops = page.evaluate(
        "['#summary', '.side-column', '.feed-column'].map(s => document.querySelector(s).getBoundingClientRect().top)"
    )
    assert tops == sorted(tops), "summary, then running builds and incidents, then the feed"
    if width == 390:
        keep_screenshot(page, "dashboard-phone")


def test_new_events_while_scrolled_down_show_a_pill_and_the_feed_trims_itself(browser, server, staff, hth_sim):
    page = new_page(browser)
    log_in(page, server)
    wait_live(page)
    page.evaluate("document.getElementById('feed').dataset.keep = '52'")
    page.evaluate("window.__oobErrors = 0; document.body.addEventListener('htmx:oobErrorNoTarget', () => window.__oobErrors++)")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    for number in range(3):
        hth_sim.add_event(target="push", operation="created", project="luotsi", name=f"pill {number}")
    page.wait_for_selector("#new-events:not([hidden])", timeout=15000)
    page.wait_for_function("() => /^↑ 3 new events$/.test(document.getElementById('new-events').textContent)", timeout=15000)
    assert page.evaluate("document.querySelectorAll('#feed > .event').length") == 52
    cursor = page.evaluate("[...document.querySelectorAll('#feed > .event')].pop().dataset.cursor")
    older = page.evaluate("new URL(document.querySelector('#feed-more a').href).searchParams.get('before')")
    assert older == cursor, "the older-events link starts after the last row kept"
    assert page.evaluate("window.__oobErrors") == 0, "no swap aimed at a row that is not there"
    page.click("#new-events")
    page.wait_for_selector("#new-events", state="hidden", timeout=5000)
    assert page.console_errors == []


def test_all_clear_is_green_and_says_so(browser, server, hth_sim, ou_sim):
    for incident_id in list(ou_sim.incidents):
        ou_sim.set_incident_state(incident_id, "Resolved")
    for number, progress in enumerate((100, 100, 100, 40)):
        hth_sim.set_progress(hth_sim.start_build(project="harbor", repository=f"harbor-{number}", name="Release"), progress)
    screen = screens.screen_named("Harbor TV", project="harbor")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_selector(".all-clear-label", state="visible", timeout=20000)
    page.wait_for_function("() => document.querySelectorAll('#wall-builds .tile--passed').length >= 3", timeout=20000)
    page.wait_for_selector("#wall-incidents .all-clear", timeout=20000)
    assert "no open incidents" in page.inner_text("#status-strip")
    keep_screenshot(page, "wall-all-clear")


def test_a_write_back_conflict_is_settled_from_its_page(browser, server, staff, ou_sim):
    from dashboard.models import IncidentNote

    incident = ou_sim.add_incident("Checkout errors", state="Acknowledged", severity="Critical")
    row = ou_sim.add_note(
        incident["_id"], "## Identified\n\nA bad deploy of the rate limiter.\n\n- rolling back\n- watching errors"
    )
    page = new_page(browser)
    log_in(page, server)
    for _ in range(100):
        note = IncidentNote.objects.filter(upstream_id=row["_id"]).first()
        if note:
            break
        page.wait_for_timeout(200)
    page.goto(f"{server.url}/admin/dashboard/incidentnote/{note.pk}/change/")
    ou_sim.edit_note(
        row["_id"],
        note="## Identified\n\nA bad deploy of the rate limiter, rolled back at 14:05.\n\n- rolling back\n- watching errors",
    )
    page.fill("#id_note", "## Monitoring\n\nA bad deploy of the rate limiter.\n\n- rolled back\n- watching errors")
    page.wait_for_selector("#note-preview h2:text('Monitoring')", timeout=10000)
    assert page.evaluate("getComputedStyle(document.querySelector('#note-preview li')).listStyleType") == "disc"
    page.click("input[name=_save]")
    page.goto(f"{server.url}/admin/dashboard/incidentnote/{note.pk}/change/")
    for _ in range(50):
        if page.query_selector("text=Keep mine"):
            break
        page.wait_for_timeout(300)
        page.reload()
    assert page.query_selector_all(".note-diff tr.diff-changed")
    page.evaluate("document.querySelector('.note-diff').closest('fieldset').scrollIntoView()")
    keep_screenshot(page, "conflict")
    page.click("text=Take OneUptime's")
    page.wait_for_selector("text=now show OneUptime's text")
    note.refresh_from_db()
    assert "rolled back at 14:05" in note.note
    assert page.console_errors == []


def test_the_feeds_time_filters_speak_the_viewers_zone_while_the_url_keeps_utc(browser, server, staff):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="Europe/Helsinki")
    page = context.new_page()
    log_in(page, server)
    page.goto(server.url + "/?since=2026-11-30T09:00Z")
    page.wait_for_function("document.querySelector('input[name=since]').value === '2026-11-30T11:00'")
    assert page.inner_text("label:has(input[name=since]) [data-zone-label]") == "(Europe/Helsinki)"
    page.fill("input[name=until]", "2026-11-30T12:30")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"until=2026-11-30T10%3A30Z"))
    assert "since=2026-11-30T09%3A00Z" in page.url  # a shared link means the same moment everywhere
    page.wait_for_function("document.querySelector('input[name=until]').value === '2026-11-30T12:30'")
    context.close()
