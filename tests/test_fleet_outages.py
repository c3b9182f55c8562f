"""Our own services cut under a fleet behind nginx, as walls and a dashboard live through it, in chromium.

Three `serve` nodes behind Debian's nginx (the README's configuration), every node's DATABASE_URL and
REDIS_URL through relays the test cuts (tests/db_relay.py): first PostgreSQL, then Redis, each for 20 s
(the issue's shorter outage), or longer until every page has said for a few seconds that it is not live.
While cut, every page says so (a banner, and a connection state other than "live"); within 20 s of the
cut ending every page is live and shows a change synced after it; no page reloads, and a node logs the
Redis outage in one line. Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL), as `make test-services` has.
"""

import os
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from dashboard.live import screens
from tests import nginx
from tests.db_relay import Relay
from tests.fleet import Node, make_release, open_pages, problems, wait_until_all
from tests.processes import database_url, free_port
from tests.test_browser import browser, keep_screenshot  # noqa: F401 (fixtures)
from tests.test_rolling_deploy import RECOVERY_SECONDS, production_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql" or not settings.REDIS_URL, reason="needs PostgreSQL and Redis"),
    pytest.mark.skipif(not nginx.available() and not os.environ.get("CI"), reason="needs nginx-light and openssl"),
]

NODES = 3
# A page learns of a lost database from /healthz (asked every 15 s), of a deaf channel layer from its
# socket's heartbeat (every 20 s); both, and the reach of every node, within this.
NOTICED_SECONDS = 30
SAYS_SO_FOR_SECONDS = 3  # how long every page must go on saying so before the service comes back
CUT_SECONDS = 20  # and each cut lasts at least this long: the shorter outage
REDIS_GONE = "the channel layer is unreachable"  # the one line a node logs when Redis goes


def test_postgresql_and_redis_cut_under_a_fleet_leave_every_page_saying_so_then_live_and_current(browser, hth_sim, tmp_path):  # noqa: F811
    hth_sim.generate(20)
    keys = [screens.screen_named(f"TV {index}").key for index in range(3)]
    get_user_model().objects.create_superuser("admin", "admin@example.com", "a long pass phrase")
    postgresql, redis = Relay(database_url()), Relay(settings.REDIS_URL)
    env = production_env(hth_sim) | {"DATABASE_URL": postgresql.url, "REDIS_URL": redis.url}
    release = make_release(tmp_path, "v1", env=env)
    logs = [open(tmp_path / f"node-{index}.log", "w") for index in range(NODES)]  # noqa: SIM115 (closed below)
    nodes = [Node(release, free_port(), env, log).start() for log in logs]
    proxy = nginx.Nginx(tmp_path, nodes=[node.address for node in nodes])
    try:
        proxy.start()
        watches = open_pages(browser, proxy.url, keys=keys, username="admin", password="a long pass phrase")
        build = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
        progress = iter(range(5, 100, 5))
        seen = []  # (page, problem, what it said): never silent while not live, never without styles or scripts

        def judge(watch) -> dict:
            state = watch.state()
            seen.extend((watch.name, problem, state) for problem in problems(state))
            return state

        def says_not_live(watch) -> bool:
            state = judge(watch)
            return state.get("ready", False) and state["state"] != "live" and bool(state["banner"])

        def current(since: float, timeout: float = RECOVERY_SECONDS) -> float:
            """Seconds from `since` until every page is live and shows a progress bump made now."""
            value = next(progress)
            hth_sim.set_progress(build, value)
            wait_until_all(
                watches,
                lambda watch: judge(watch).get("state") == "live" and watch.updated(build, value),
                timeout=timeout - (time.monotonic() - since),
            )
            return time.monotonic() - since

        figures = {"start": current(time.monotonic(), timeout=60)}
        loads = {watch.name: watch.loads for watch in watches}
        banners = {}
        for name, relay in (("postgresql", postgresql), ("redis", redis)):
            relay.down()
            cut = time.monotonic()
            figures[f"{name} said"] = wait_until_all(watches, says_not_live, timeout=NOTICED_SECONDS)
            banners[name] = {watch.name: watch.state()["banner"] for watch in watches}
            if name == "redis":
                keep_screenshot(watches[0].page, "wall-redis-down-behind-nginx")
            held = max(time.monotonic() + SAYS_SO_FOR_SECONDS, cut + CUT_SECONDS)
            while time.monotonic() < held:
                assert all(says_not_live(watch) for watch in watches), {watch.name: watch.state() for watch in watches}
                time.sleep(0.5)
            relay.up()
            figures[name] = current(time.monotonic())
        print("what the pages said:", banners)
        print(
            "seconds until every page said so, and until it was live and current again:",
            {k: round(v, 1) for k, v in figures.items()},
        )
        assert seen == [], "no page was silent while not live, nor without its styles or scripts"
        assert {watch.name: watch.loads for watch in watches} == loads, "no page reloaded"
        for log in logs:
            log.flush()
        # A node reads the layer only while it holds sockets (dashboard/live/hub.py): one line, or none.
        said = [(tmp_path / f"node-{index}.log").read_text().count(REDIS_GONE) for index in range(NODES)]
        assert max(said) == 1, f"one line per node for the Redis outage, not a flood: {said}"
    finally:
        proxy.stop()
        for node in nodes:
            node.stop()
        for log in logs:
            log.close()
        postgresql.close()
        redis.close()
        for index in range(NODES):
            print(f"node {index}:", (tmp_path / f"node-{index}.log").read_text()[-3000:])
        print(proxy.log()[-2000:])
