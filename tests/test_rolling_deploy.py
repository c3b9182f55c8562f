"""Deploys and node failures as walls live through them, in chromium.

- A page whose own stylesheet or script fails to load recovers by itself (any server).
- Behind Debian's nginx, configured as the README shows, three `serve` nodes are rolled from one release
  to the next (a changed stylesheet and script, so new hashed names and a new version), 30 s apart as in
  issue 18, then one is killed and started again. After each fault every page is live and current again within 20 s, showing
  an update made after the fault; no page is ever left without its styles or scripts; and each page
  reloads once for the version change, never more. The nodes need PostgreSQL and Redis.
"""

import os
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

from dashboard.live import screens
from tests import nginx
from tests.fleet import Node, PageWatch, make_release, open_pages, problems, proxied_page, wait_until_all
from tests.processes import base_env, free_port
from tests.test_browser import browser, keep_screenshot, new_page, ou_sim, server, wait_live  # noqa: F401 (fixtures)
from tests.test_nginx import PROXIED_ENV

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECOVERY_SECONDS = 20  # the promise: live and current again within this long of a fault ending
GAP_SECONDS = 30  # between nodes in the rolling deploy: the operator waited 30 s
LATE_LOADS = 4  # loads of a page opened during the deploy, while both releases serve


def wait_synced(url: str, timeout: float = 30) -> None:
    """Until the server is through its first sync: before that, a page rightly says its data may be stale."""
    deadline = time.monotonic() + timeout
    while requests.get(f"{url}/healthz", timeout=10).json()["status"] != "ok":
        assert time.monotonic() < deadline, "the server did not sync both upstreams"
        time.sleep(0.2)


def fail_first(page, pattern: str) -> list[str]:
    """The first request for `pattern` gets a 404, as from a node that lacks the file; later ones go through."""
    failed = []

    def handle(route):
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.fulfill(status=404, body="Not Found")

    page.route(pattern, handle)
    return failed


@pytest.mark.parametrize("asset", ["**/static/dashboard/pulseboard*.css", "**/static/dashboard/live*.js"])
def test_a_page_whose_own_file_failed_to_load_reloads_itself_once_the_file_answers(browser, server, asset):  # noqa: F811
    wait_synced(server.url)  # this test is about the file, not about a page opened before the first sync
    page = new_page(browser, width=1920, height=1080)
    failed = fail_first(page, asset)
    watch = PageWatch(page, "wall")
    page.goto(f"{server.url}/wall/?key={screens.screen_named('Office TV').key}")
    deadline = time.monotonic() + 15
    while watch.loads < 2 and time.monotonic() < deadline:  # without its styles the page may even go live first
        page.wait_for_timeout(100)
    wait_live(page)
    page.wait_for_timeout(1000)  # and then it stays: no second reload
    state = watch.state()
    assert failed and watch.loads == 2, f"one reload after {failed}: {watch.loads} loads"
    assert state["scripted"] and state["state"] == "live"
    assert page.evaluate("[...document.styleSheets].some(s => (s.href || '').includes('pulseboard') && s.cssRules.length > 0)")


# ---- the fleet ----


def production_env(hth_sim) -> dict[str, str]:
    """The README's production settings behind an HTTPS proxy, against the test's database and simulator."""
    return base_env(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="a-real-secret-" * 4,
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        POLL_INTERVAL_SECONDS="1",
        LIVE_REFRESH_SECONDS="0.5",
        UPSTREAM_RETRIES="1",
        UPSTREAM_BACKOFF_SECONDS="0.05",
        **PROXIED_ENV,
    )


def next_release(path: Path) -> None:
    """What a deploy changes: the stylesheet and the script, so their hashed names and the version move."""
    for name in ("pulseboard.css", "live.js"):
        with open(path / "static" / "dashboard" / name, "a") as file:
            file.write("\n/* the next release */\n")


def version_of(node: Node, key: str) -> str:
    return requests.get(f"{node.url}/healthz", params={"key": key}, timeout=10).json()["version"]


@pytest.mark.skipif(connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"), reason="needs PostgreSQL and Redis")
@pytest.mark.skipif(not nginx.available() and not os.environ.get("CI"), reason="needs nginx-light and openssl")
def test_a_rolling_deploy_and_a_killed_node_behind_nginx_leave_every_page_live_and_current(browser, hth_sim, tmp_path):  # noqa: F811
    hth_sim.generate(20)
    # A screen each, as TVs have: the sockets a SIGKILLed node held still count against their key for a
    # while (issue 17), and one key's 10 would fill up with a TV's reconnects and a late TV's reloads.
    keys = [screens.screen_named(f"TV {index}").key for index in range(4)]
    key = keys[3]  # the TV switched on during the deploy
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("admin", "admin@example.com", "a long pass phrase")
    env = production_env(hth_sim)
    first, second = make_release(tmp_path, "v1", env=env), make_release(tmp_path, "v2", env=env, change=next_release)
    log = open(tmp_path / "nodes.log", "w")  # noqa: SIM115 (closed below, after the nodes)
    nodes = [Node(first, free_port(), env, log).start() for _ in range(3)]
    proxy = nginx.Nginx(tmp_path, nodes=[node.address for node in nodes])
    try:
        proxy.start()
        old, new = version_of(nodes[0], key), None
        watches = open_pages(browser, proxy.url, keys=keys[:3], username="admin", password="a long pass phrase")
        build = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
        progress = iter(range(10, 100, 10))

        broken = []  # moments a page was without its styles or scripts, or not live without saying so

        def judge(watch) -> dict:
            state = watch.state()
            broken.extend((watch.name, problem, state) for problem in problems(state))
            return state

        def current(watch, version: str, value: int) -> bool:
            state = judge(watch)
            return state.get("state") == "live" and state["version"] == version and watch.updated(build, value)

        def recovered(version: str, since: float | None = None) -> float:
            """Seconds from `since` (the fault's end; default now) until every page is live, on `version`,
            styled, and shows a bump made now."""
            since = since or time.monotonic()
            value = next(progress)
            hth_sim.set_progress(build, value)
            wait_until_all(
                watches, lambda watch: current(watch, version, value), timeout=RECOVERY_SECONDS - (time.monotonic() - since)
            )
            return time.monotonic() - since

        figures = {"start": recovered(old)}
        loads_before = {watch.name: watch.loads for watch in watches}

        # A rolling deploy: each node stopped, replaced by the next release on the same address, GAP_SECONDS apart.
        # Meanwhile a TV is switched on and loads a page now and then: its page may come from one release and
        # its hashed files be asked of a node of the other.
        late = PageWatch(proxied_page(browser, width=1920, height=1080), "late wall")
        for index, node in enumerate(nodes):
            node.stop()
            nodes[index] = Node(second, node.port, env, log).start()
            deployed_at = time.monotonic()
            new = new or version_of(nodes[index], key)
            for _ in range(LATE_LOADS if index < len(nodes) - 1 else 0):  # while both releases serve
                late.page.goto(f"{proxy.url}/wall/?key={key}")
                if not ((state := late.state())["styled"] and state["scripted"]):
                    broken.append((late.name, state))
            deadline = time.monotonic() + (GAP_SECONDS if index < len(nodes) - 1 else 0)  # then straight to the check
            while time.monotonic() < deadline:
                for watch in watches:
                    judge(watch)
                time.sleep(0.5)
        assert new != old
        figures["deploy"] = recovered(new, since=deployed_at)
        assert broken == [], "no page is left without its styles or scripts, or silent while not live"
        reloads = {watch.name: watch.loads - loads_before[watch.name] for watch in watches}
        assert all(count == 1 for count in reloads.values()), f"one reload per page for one version change: {reloads}"

        nodes[0].kill()
        figures["kill"] = recovered(new)
        nodes[0] = Node(second, nodes[0].port, env, log).start()
        figures["restart"] = recovered(new)
        reloads = {watch.name: watch.loads - loads_before[watch.name] for watch in watches}
        assert all(count == 1 for count in reloads.values()), f"a killed node reloads no page: {reloads}"
        assert broken == [], "nor did a killed node leave any page broken or silent"
        print("seconds until every page was live and current again:", {name: round(s, 1) for name, s in figures.items()})
        keep_screenshot(watches[0].page, "wall-after-rolling-deploy")
    finally:
        proxy.stop()
        for node in nodes:
            node.stop()
        log.close()
        print((tmp_path / "nodes.log").read_text()[-6000:])
        print(proxy.log()[-3000:])
