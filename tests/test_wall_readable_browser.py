"""Every word on the wall readable (issue 21, point 5), in Debian's chromium against a real server.

Uses the fixtures of tests/test_browser.py (chromium, `manage.py serve`, the simulators).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.live import screens
from tests import test_browser
from tests.test_browser import Server, keep_screenshot, new_page, server_env, wait_live

browser, server, ou_sim = test_browser.browser, test_browser.server, test_browser.ou_sim  # shared fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SYMBOLS = "✗⏸▶✓‼!·⚠"

# Each symbol drawn in the body's font, compared with a private-use code point that no font has: a glyph
# that draws exactly like it is the empty box of a missing glyph.
MISSING_GLYPHS = """async (symbols) => {
    const font = getComputedStyle(document.body).fontFamily;
    await document.fonts.load('40px ' + font, symbols);
    const draw = (text) => {
        const canvas = document.createElement('canvas');
        canvas.width = 60; canvas.height = 60;
        const context = canvas.getContext('2d');
        context.font = '40px ' + font;
        context.fillText(text, 5, 45);
        return canvas.toDataURL();
    };
    const missing = draw('\\uE000');
    return [...symbols].filter(symbol => draw(symbol) === missing);
}"""


@pytest.fixture
def quick_stall_server(hth_sim, ou_sim, tmp_path):
    """A server that calls a build stalled after 2 s without progress."""
    hth_sim.generate(20)
    ou_sim.generate(incidents=0, notes=0)
    with open(tmp_path / "server.log", "w") as log:
        server = Server(server_env(hth_sim, ou_sim) | {"LIVE_STALE_AFTER_SECONDS": "2"}, log)
        server.start()
        yield server
        server.stop()
    print((tmp_path / "server.log").read_text()[-5000:])


def test_every_state_symbol_has_a_glyph_on_a_bare_debian_chromium(browser, server):
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    assert page.evaluate(MISSING_GLYPHS, SYMBOLS) == []


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_incident_cards_show_number_and_title_in_full_on_two_lines_at_most(browser, server, ou_sim, width, height):
    for incident_id in list(ou_sim.incidents):
        ou_sim.set_incident_state(incident_id, "Resolved")
    titles = [f"Status page slow for customers in region {region}" for region in ("north", "south", "east")]
    for title in titles:
        ou_sim.add_incident(title, state="Acknowledged", severity="Major")
    endless = ou_sim.add_incident("Checkout " + "errors and timeouts everywhere " * 12, state="Created", severity="Critical")
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=width, height=height)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_function("() => document.querySelectorAll('#wall-incidents .wall-card').length >= 4", timeout=20000)
    heads = page.evaluate(
        """() => [...document.querySelectorAll('#wall-incidents .wall-card:not([hidden]) .card-head')].map(head => {
            const title = head.querySelector('.card-title');
            const line = parseFloat(getComputedStyle(head).lineHeight);
            return {text: title.textContent, lines: Math.round(head.clientHeight / line),
                    clipped: head.scrollHeight > head.clientHeight + 1, titleWidth: title.getBoundingClientRect().width};
        })"""
    )
    assert len(heads) >= 2, heads
    for head in heads:
        assert head["lines"] <= 2, head
        if "Checkout" in head["text"]:  # far too long for two lines: cut at the end of the second
            assert head["clipped"] and head["lines"] == 2, head
        else:
            assert not head["clipped"], head
    shown = {head["text"].split(" · ", 1)[-1] for head in heads}
    assert shown & set(titles), "the titles are there in full"
    assert endless["_id"]
    if (width, height) == (1920, 1080):
        keep_screenshot(page, "wall-incident-titles")


@pytest.mark.parametrize("width,height", [(1280, 720), (3840, 2160)])
def test_a_stalled_tile_shows_how_long_it_has_been_stuck(browser, quick_stall_server, hth_sim, width, height):
    build = hth_sim.start_build(project="atlas", repository="a-rather-long-repository-name", name="Release pipeline")
    hth_sim.set_progress(build, 40)
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=width, height=height)
    page.goto(f"{quick_stall_server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_selector("#wall-builds .tile--stalled", timeout=20000)
    page.wait_for_function("() => /stuck for \\d+ s/.test(document.querySelector('.tile--stalled .tile-time').textContent)")
    fits = page.evaluate(
        "(() => { const t = document.querySelector('.tile--stalled .tile-time'); return t.scrollWidth <= t.clientWidth; })()"
    )
    assert fits, page.inner_text(".tile--stalled .tile-time")


def test_no_countdown_runs_while_the_wall_is_not_live(browser, server, hth_sim):
    started = timezone.now() - timedelta(minutes=4)  # within the sync's look-back
    first = hth_sim.start_build(project="atlas", repository="countdown", name="Release")
    hth_sim.update_event(
        first,
        progress=100,
        operation="completed",
        timestamp=started.isoformat(),
        updated_at=(started + timedelta(minutes=3)).isoformat(),
    )
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_selector('#wall-builds .tile--passed:has-text("countdown")', timeout=20000)
    hth_sim.set_progress(hth_sim.start_build(project="atlas", repository="countdown", name="Release"), 10)
    page.wait_for_function(
        "() => /left|over by/.test((document.querySelector('time[data-format=remaining]') || {}).textContent)", timeout=20000
    )
    server.kill()
    page.wait_for_selector("#stale-banner:not([hidden])", timeout=20000)
    page.wait_for_timeout(1500)
    assert page.inner_text("time[data-format=remaining]") == "—"
    server.start()
