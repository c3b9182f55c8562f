"""Pipelines as people see them, in chromium: names readable at every TV size, the pipeline page, live changes.

Uses the fixtures of tests/test_browser.py (chromium, `manage.py serve`, the simulators).
"""

import time

import pytest

from dashboard.live import screens
from tests import test_browser
from tests.test_browser import log_in, new_page, wait_live

browser, server, ou_sim, staff = test_browser.browser, test_browser.server, test_browser.ou_sim, test_browser.staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A tile's big line, cut short with an ellipsis, is a name nobody can read from across the room; its
# numbers (streak, flaky, median, p95, success rate) wrap to two lines and must not lose their end either.
CUT_NAMES = """() => [...document.querySelectorAll('#wall-builds [data-pipeline]:not([hidden]) .tile-name')]
    .filter(name => name.scrollWidth > name.clientWidth + 1).map(name => name.textContent)"""
REPOSITORIES = ("atlas-web", "atlas-payments", "atlas")  # three "Release" builds, told apart by repository
CUT_STATS = """() => [...document.querySelectorAll('#wall-builds [data-pipeline]:not([hidden]) .tile-stats')]
    .filter(stats => stats.scrollHeight > stats.clientHeight + 1 || stats.scrollWidth > stats.clientWidth + 1)
    .map(stats => stats.textContent)"""


def finish(hth_sim, *, repository, failed=False, project="atlas", name="Release"):
    build = hth_sim.start_build(project=project, repository=repository, name=name)
    hth_sim.set_progress(build, 100, operation="failed" if failed else None)
    return build


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080), (3840, 2160)])
def test_same_named_pipelines_are_told_apart_and_never_cut_short(browser, server, hth_sim, width, height):
    passed = [hth_sim.start_build(project="atlas", repository=repository, name="Release") for repository in REPOSITORIES]
    time.sleep(1.1)  # runs that took a second or more: their tiles show a median, a p95 and a success rate
    for build in passed:
        hth_sim.set_progress(build, 100)
    for repository in REPOSITORIES:
        finish(hth_sim, repository=repository, failed=repository == "atlas")
    rerun = hth_sim.start_build(project="atlas", repository="atlas", name="Release")
    hth_sim.set_progress(rerun, 22)
    screen = screens.screen_named("Atlas TV", project="atlas")
    page = new_page(browser, width=width, height=height)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.wait_for_selector('#wall-builds [data-pipeline="atlas/atlas/Release"][data-rerunning]', timeout=20000)
    page.wait_for_timeout(500)
    tile = page.inner_text('[data-pipeline="atlas/atlas/Release"]')
    assert "atlas · Release" in tile and "failing since" in tile and "re-running 22%" in tile
    assert page.get_attribute("#wall-level", "data-level") == "red"
    assert "red for 1 run" in tile and "median" in tile and "% passed in 30 d" in tile
    assert page.evaluate(CUT_NAMES) == []
    assert page.evaluate(CUT_STATS) == []
    assert page.console_errors == []


def test_the_pipeline_page_shows_the_history_and_follows_a_fix(browser, server, staff, hth_sim):
    finish(hth_sim, repository="atlas-web")
    time.sleep(1.1)  # a run's duration is counted in the simulator's whole seconds
    for _ in range(2):
        finish(hth_sim, repository="atlas-web", failed=True)
    page = new_page(browser, width=1440, height=1000)
    log_in(page, server)
    page.wait_for_selector('#summary a[href="/pipelines/?state=failing"]', timeout=20000)
    page.goto(f"{server.url}/pipelines/?state=failing")
    page.wait_for_selector('[data-pipeline="atlas/atlas-web/Release"][data-pipeline-state="failing"]', timeout=20000)
    page.click('[data-pipeline="atlas/atlas-web/Release"] a')
    page.wait_for_selector("#pipeline-header")
    wait_live(page)
    assert "not fixed yet" in page.inner_text(".red-periods")
    fix = hth_sim.start_build(project="atlas", repository="atlas-web", name="Release")
    page.wait_for_selector(f'#pipeline-header [data-run-id="{fix}"][data-run-result="running"]', timeout=20000)
    assert page.get_attribute("#pipeline-header", "data-rerunning") is not None
    hth_sim.set_progress(fix, 100)
    page.wait_for_selector('#pipeline-header[data-pipeline-state="passing"]', timeout=20000)
    assert "fixed by" in page.inner_text(".red-periods")
    assert page.console_errors == []


def test_the_pipelines_list_says_how_old_it_is_and_fetches_itself_again(browser, server, staff, hth_sim):
    page = new_page(browser, width=1366, height=768)
    log_in(page, server)
    page.goto(f"{server.url}/pipelines/?state=failing")
    assert page.query_selector("#connection") is None, "no socket here: no 'connecting…' that never connects"
    assert "this list fetches itself again every 15 s" in page.inner_text(".list-age")
    assert page.query_selector('[data-pipeline="atlas/atlas-payments/Release"]') is None

    finish(hth_sim, repository="atlas-payments", failed=True)
    page.wait_for_selector('[data-pipeline="atlas/atlas-payments/Release"][data-pipeline-state="failing"]', timeout=40000)
    assert page.inner_text(".list-age time").endswith("ago")

    page.context.clear_cookies()  # the session is gone: the next fetch answers with the login page
    page.wait_for_url("**/accounts/login/**", timeout=40000)
    assert page.console_errors == []
