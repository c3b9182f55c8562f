"""A wall that behaves like a teammate (issue 21, points 1 to 4), in Debian's chromium against a real server:
failures take the screen, screens the admin can see and signal, quiet hours, and the chime.

Uses the fixtures of tests/test_browser.py (chromium, `manage.py serve`, the simulators).
"""

import datetime

import pytest
from django.utils import timezone

from dashboard.live import screens
from dashboard.models import Screen, ScreenPanel
from tests import test_browser
from tests.test_browser import keep_screenshot, log_in, new_page, wait_live

browser, server, ou_sim, staff = test_browser.browser, test_browser.server, test_browser.ou_sim, test_browser.staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records when the first failed tile appears and when the builds panel shows, on the page's own clock.
WATCH_FAILURE = """() => {
    window.__failedAt = null; window.__buildsShownAt = null;
    new MutationObserver(() => {
        const now = performance.now();
        if (window.__failedAt === null && document.querySelector('#wall-builds .tile--failed')) window.__failedAt = now;
        const slot = document.querySelector('[data-panel-slot=builds]');
        if (window.__failedAt !== null && window.__buildsShownAt === null && !slot.hidden) window.__buildsShownAt = now;
    }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['hidden', 'class']});
}"""

# Counts the notes the page plays: a stand-in AudioContext, installed before the page's scripts run.
COUNT_TONES = """
window.__tones = 0;
window.AudioContext = class {
    constructor() { this.currentTime = 0; this.destination = {}; }
    resume() {}
    createGain() { return {gain: {setValueAtTime() {}, exponentialRampToValueAtTime() {}}, connect() {}}; }
    createOscillator() { return {frequency: {}, connect() {}, start() { window.__tones += 1; }, stop() {}}; }
};
"""


def all_clear(ou_sim):
    for incident_id in list(ou_sim.incidents):
        ou_sim.set_incident_state(incident_id, "Resolved")


def harbor_screen(name="Harbor TV", **settings):
    """A rotating screen of the project "harbor", which starts on recent activity; dwell times in seconds."""
    screen = screens.screen_named(name, project="harbor")
    Screen.objects.filter(pk=screen.pk).update(rotate=True, **settings)
    for position, (panel, dwell) in enumerate([("activity", 60), ("builds", 4), ("incidents", 60)]):
        ScreenPanel.objects.filter(screen=screen, panel=panel).update(position=position, dwell_seconds=dwell)
    return screen


def shown_panel(page):
    return page.evaluate("document.querySelector('[data-panel-slot]:not([hidden])').dataset.panelSlot")


def test_a_new_failure_takes_a_rotating_screen_within_a_second_and_holds_while_red(browser, server, hth_sim, ou_sim):
    all_clear(ou_sim)
    hth_sim.set_progress(hth_sim.start_build(project="harbor", repository="harbor", name="Release"), 100)
    screen = harbor_screen()
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_selector("#wall-builds .tile--passed", state="attached", timeout=20000)
    assert shown_panel(page) == "activity"
    page.evaluate(WATCH_FAILURE)
    failing = hth_sim.start_build(project="harbor", repository="harbor", name="Release")
    hth_sim.set_progress(failing, 35, operation="failed")
    page.wait_for_function("() => window.__buildsShownAt !== null", timeout=20000)
    delay = page.evaluate("window.__buildsShownAt - window.__failedAt")
    print(f"failure pushed → its panel on screen: {delay:.0f} ms")
    assert delay < 1000
    assert page.get_attribute(".wall-panels", "data-holding") == "builds"
    page.wait_for_timeout(6000)  # longer than the builds panel's dwell: still there
    assert shown_panel(page) == "builds" and page.get_attribute(".wall-panels", "data-holding") == "builds"
    keep_screenshot(page, "wall-holding")
    hth_sim.set_progress(hth_sim.start_build(project="harbor", repository="harbor", name="Release"), 100)
    page.wait_for_function("() => !document.querySelector('.wall-panels').hasAttribute('data-holding')", timeout=20000)
    page.wait_for_function("() => document.querySelector('[data-panel-slot=builds]').hidden", timeout=10000)  # rotates on
    assert page.console_errors == []


def test_a_screen_told_not_to_jump_keeps_rotating(browser, server, hth_sim, ou_sim):
    all_clear(ou_sim)
    screen = harbor_screen(jump_to_failures=False)
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    hth_sim.set_progress(hth_sim.start_build(project="harbor", repository="harbor", name="Release"), 35, operation="failed")
    page.wait_for_selector("#wall-builds .tile--failed", state="attached", timeout=20000)
    page.wait_for_timeout(1000)
    assert shown_panel(page) == "activity"
    assert page.get_attribute(".wall-panels", "data-holding") is None


def test_the_admin_sees_which_screens_are_live_and_can_make_them_say_their_name_and_reload(browser, server, staff):
    screen = screens.screen_named("Lobby TV")
    screens.screen_named("Kitchen TV")
    wall = new_page(browser, width=1920, height=1080)
    wall.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(wall)
    admin = new_page(browser)
    log_in(admin, server)
    for _ in range(30):
        admin.goto(f"{server.url}/admin/dashboard/screen/")
        if admin.inner_text("tr:has-text('Lobby TV') td.field-live_now") == "yes":
            break
        admin.wait_for_timeout(500)
    headers = admin.locator("#result_list thead th").all_inner_texts()
    assert "LIVE NOW" in [header.strip().upper() for header in headers]
    assert admin.inner_text("tr:has-text('Lobby TV') td.field-live_now") == "yes"
    assert admin.inner_text("tr:has-text('Kitchen TV') td.field-live_now") == "no"
    assert admin.inner_text("tr:has-text('Lobby TV') td.field-connected_since") != "—"
    version = wall.evaluate("document.body.dataset.version")
    assert admin.inner_text("tr:has-text('Lobby TV') td.field-version") == version
    keep_screenshot(admin, "admin-screens")

    admin.check("tr:has-text('Lobby TV') input.action-select")
    admin.select_option("select[name=action]", "identify_screens")
    admin.click("button[name=index]")
    wall.wait_for_selector("#screen-identify:not([hidden])", timeout=5000)
    assert wall.inner_text("#screen-identify") == "Lobby TV"
    keep_screenshot(wall, "wall-identify")
    wall.wait_for_selector("#screen-identify", state="hidden", timeout=15000)

    wall.evaluate("window.__notReloaded = true")
    admin.check("tr:has-text('Lobby TV') input.action-select")
    admin.select_option("select[name=action]", "reload_screens")
    admin.click("button[name=index]")
    wall.wait_for_function("() => window.__notReloaded === undefined", timeout=15000)
    wait_live(wall)

    wall.close()
    for _ in range(30):
        admin.goto(f"{server.url}/admin/dashboard/screen/")
        if admin.inner_text("tr:has-text('Lobby TV') td.field-live_now") == "no":
            break
        admin.wait_for_timeout(500)
    assert admin.inner_text("tr:has-text('Lobby TV') td.field-live_now") == "no", "a closed screen is not live"


def wait_live_while_asleep(page):
    page.wait_for_selector('#connection[data-state="live"]', state="attached", timeout=15000)


def quiet_now(zone=datetime.UTC):
    """Quiet hours around now in UTC."""
    now = timezone.now().astimezone(zone)
    return {"quiet_from": (now - datetime.timedelta(hours=1)).time(), "quiet_until": (now + datetime.timedelta(hours=1)).time()}


def test_in_quiet_hours_a_screen_is_dark_but_for_a_clock_and_wakes_for_a_critical_incident(browser, server, ou_sim):
    all_clear(ou_sim)
    screen = screens.screen_named("Night TV")
    Screen.objects.filter(pk=screen.pk).update(**quiet_now())
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live_while_asleep(page)
    page.wait_for_function("() => document.body.hasAttribute('data-asleep')", timeout=5000)
    assert page.is_visible(".sleep-clock") and page.is_hidden(".wall-panels")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
    keep_screenshot(page, "wall-asleep")
    critical = ou_sim.add_incident("Payments down", state="Created", severity="Critical")
    page.wait_for_function("() => !document.body.hasAttribute('data-asleep')", timeout=20000)
    assert page.is_visible("#wall-incidents .wall-card[data-tone=bad]")
    ou_sim.set_incident_state(critical["_id"], "Resolved")
    page.wait_for_function("() => document.body.hasAttribute('data-asleep')", timeout=20000)
    server.kill()  # asleep and not live: still dark, and says so in small type, unlike the red banner
    page.wait_for_selector(".sleep-not-live", state="visible", timeout=20000)
    assert page.is_hidden("#stale-banner")
    server.start()


def test_the_chime_sounds_once_a_minute_at_most_and_the_admin_can_test_it(browser, server, staff, hth_sim, ou_sim):
    all_clear(ou_sim)
    screen = screens.screen_named("Chime TV", project="harbor")
    Screen.objects.filter(pk=screen.pk).update(chime=True)
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script(COUNT_TONES)
    wall = context.new_page()
    wall.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(wall)
    for number in range(2):
        hth_sim.set_progress(
            hth_sim.start_build(project="harbor", repository=f"r{number}", name="Release"), 20, operation="failed"
        )
        wall.wait_for_function(
            f"() => document.querySelectorAll('#wall-builds .tile--failed').length >= {number + 1}", timeout=20000
        )
    wall.wait_for_timeout(500)
    assert wall.evaluate("window.__tones") == 2, "one chime (two notes) for two failures within a minute"
    admin = new_page(browser)
    log_in(admin, server)
    admin.goto(f"{server.url}/admin/dashboard/screen/")
    admin.check("tr:has-text('Chime TV') input.action-select")
    admin.select_option("select[name=action]", "play_test_chime")
    admin.click("button[name=index]")
    wall.wait_for_function("() => window.__tones === 4", timeout=10000)


def test_no_chime_in_quiet_hours(browser, server, hth_sim, ou_sim):
    all_clear(ou_sim)
    screen = screens.screen_named("Quiet chime TV", project="harbor")
    Screen.objects.filter(pk=screen.pk).update(chime=True, **quiet_now())
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script(COUNT_TONES)
    wall = context.new_page()
    wall.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live_while_asleep(wall)
    hth_sim.set_progress(hth_sim.start_build(project="harbor", repository="r", name="Release"), 20, operation="failed")
    wall.wait_for_selector("#wall-builds .tile--failed", state="attached", timeout=20000)
    wall.wait_for_timeout(500)
    assert wall.evaluate("window.__tones") == 0
