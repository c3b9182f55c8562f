"""The production recipe (README, "Running it for real"): several `serve` processes on PostgreSQL and
Redis, one of which polls. Killing the poller with SIGKILL hands the polling to another process, and
every wall left open keeps updating. Skipped unless DATABASE_URL is PostgreSQL and REDIS_URL is set."""

import os
import re
import time

import pytest
import requests
from django.db import connection

from dashboard.live import screens
from dashboard.poller import leader
from tests.processes import base_env, start_manage
from tests.test_browser import Server, browser, new_page, wait_live  # noqa: F401 (the browser fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"), reason="needs PostgreSQL and Redis"),
]

POLL_INTERVAL = 1
TOKEN = "a-long-scraper-token"


def hth_env(hth_sim, **overrides):
    return base_env(
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        LIVE_REFRESH_SECONDS="0.5",
        UPSTREAM_RETRIES="1",
        UPSTREAM_BACKOFF_SECONDS="0.05",
        **overrides,
    )


def polling_pid(candidates: list[int], timeout: float = 20, other_than: int | None = None) -> int:
    """The pid of the process holding the poller lock, once one of `candidates` holds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = leader.holder()["holder"] or ""
        pid = int(holder.rpartition(":")[2] or 0)
        if pid in candidates and pid != other_than:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"none of {candidates} took the poller lock; holder: {leader.holder()}")


def test_three_serves_one_poller_and_the_walls_keep_updating_when_it_is_killed(browser, hth_sim, tmp_path):  # noqa: F811
    hth_sim.generate(20)
    screen = screens.screen_named("Office TV")
    with open(tmp_path / "serve.log", "w") as log:
        servers = [Server(hth_env(hth_sim, METRICS_TOKEN=TOKEN), log) for _ in range(3)]
        try:
            for server in servers:
                server.start()
            by_pid = {server.process.pid: server for server in servers}
            first = polling_pid(list(by_pid))
            log.flush()
            assert wait_for_text(tmp_path / "serve.log", "stands by", count=2), "the other two stand by"
            assert (tmp_path / "serve.log").read_text().count("is now the poller") == 1
            walls = {}
            for server in servers:
                wall = new_page(browser, width=1920, height=1080)
                wall.goto(f"{server.url}/wall/?key={screen.key}")
                wait_live(wall)
                walls[server.process.pid] = wall
            build = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
            hth_sim.set_progress(build, 35)
            for wall in walls.values():
                wall.wait_for_selector(f'#wall-builds [data-event-id="{build}"] [data-progress="35"]', timeout=20000)

            by_pid[first].kill()
            second = polling_pid([pid for pid in by_pid if pid != first], other_than=first)

            after = hth_sim.start_build(project="luotsi", repository="chef", name="Hotfix")
            hth_sim.set_progress(after, 60)
            for pid, wall in walls.items():
                if pid != first:
                    wall.wait_for_selector(f'#wall-builds [data-event-id="{after}"] [data-progress="60"]', timeout=20000)
                    wall.wait_for_selector('#connection[data-state="live"]')
            assert second != first
            for pid, server in by_pid.items():  # each process counts for itself: the scraper scrapes every node
                if pid != first:
                    text = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
                    synced = re.search(r'^pulseboard_sync_runs_total\{outcome="ok",source="hth",task="sync"\} (\S+)$', text, re.M)
                    assert bool(synced and float(synced.group(1)) >= 1) == (pid == second), f"only the poller syncs: {pid}"
                    assert re.search(r"^pulseboard_sockets_connected 1\.0$", text, re.M), "its own wall's socket"
        finally:
            for server in servers:
                server.stop()
    print((tmp_path / "serve.log").read_text()[-5000:])


def test_a_second_poll_stands_by_and_takes_over_when_the_first_is_killed(hth_sim, tmp_path):
    hth_sim.generate(5)
    env = hth_env(hth_sim)
    with open(tmp_path / "poll.log", "w") as log:
        pollers = [start_manage("poll", env=env, log=log) for _ in range(2)]
        try:
            pids = [poller.pid for poller in pollers]
            first = polling_pid(pids)
            standby = next(poller for poller in pollers if poller.pid != first)
            assert standby.poll() is None, "the second `poll` waits instead of racing or exiting"
            killed = next(poller for poller in pollers if poller.pid == first)
            killed.kill()
            killed.wait(timeout=10)
            assert polling_pid(pids, other_than=first) == standby.pid
        finally:
            for poller in pollers:
                if poller.poll() is None:
                    poller.terminate()
                    poller.wait(timeout=20)


def wait_for_text(path, text: str, *, count: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while path.read_text().count(text) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
