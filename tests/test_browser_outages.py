"""A wall while our own services go away: PostgreSQL and Redis cut through relays (tests/db_relay.py).

The page must say it is not current while it is not, keep its socket or get it back quietly, and be
live and current again soon after the service returns, without a reload.
"""

import json
import os
import re
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

from dashboard.live import screens
from tests.db_relay import Relay
from tests.processes import database_url
from tests.test_browser import Server, browser, keep_screenshot, new_page, ou_sim, server_env, wait_live  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="cuts a TCP connection to PostgreSQL")


@pytest.fixture
def db_relay():
    relay = Relay(database_url())
    yield relay
    relay.close()


def serve(env, tmp_path, request, name="server"):
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed by the finalizer)
    server = Server(env, log)
    server.start()

    def stop():
        server.stop()
        log.close()
        print((tmp_path / f"{name}.log").read_text()[-5000:])  # shown when a test fails

    request.addfinalizer(stop)
    return server


def open_wall(browser, server):  # noqa: F811
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.wall_url = f"{server.url}/wall/?key={screen.key}"  # the key is shown only once
    page.goto(page.wall_url)
    wait_live(page)
    return page


@postgresql_only
def test_the_wall_says_it_is_not_current_while_postgresql_is_down_and_recovers(
    browser,  # noqa: F811
    hth_sim,
    ou_sim,  # noqa: F811
    db_relay,
    tmp_path,
    request,
):
    hth_sim.generate(30)
    ou_sim.generate(incidents=2, notes=4)
    server = serve(server_env(hth_sim, ou_sim) | {"DATABASE_URL": db_relay.url}, tmp_path, request)
    page = open_wall(browser, server)
    page.evaluate("window.__loaded = true")

    db_relay.down()
    page.wait_for_selector("#stale-banner:not([hidden])", timeout=20000)  # /healthz is asked every 15 s
    assert "cannot reach its database" in page.inner_text("#stale-banner")
    assert page.get_attribute("#connection", "data-state") == "stale"
    page.wait_for_timeout(3000)
    assert "cannot reach its database" in page.inner_text("#stale-banner"), "heartbeats do not make it look live"
    keep_screenshot(page, "wall-database-down")

    db_relay.up()
    build = hth_sim.start_build(project="atlas", repository="atlas", name="After the outage")
    page.wait_for_selector("#stale-banner", state="hidden", timeout=20000)
    wait_live(page)
    page.wait_for_selector(f'#wall-builds [data-event-id="{build}"]', timeout=20000)
    assert page.evaluate("window.__loaded") is True, "recovered in place, not by a reload"
    assert page.console_errors == []


REDIS_URL = os.environ.get("OUTAGE_REDIS_URL") or settings.REDIS_URL


@pytest.fixture
def redis_relay():
    if not REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    relay = Relay(REDIS_URL)
    yield relay
    relay.close()


def test_a_redis_outage_keeps_the_walls_sockets_says_so_and_recovers(browser, hth_sim, ou_sim, redis_relay, tmp_path, request):  # noqa: F811
    hth_sim.generate(30)
    ou_sim.generate(incidents=2, notes=4)
    server = serve(server_env(hth_sim, ou_sim) | {"REDIS_URL": redis_relay.url}, tmp_path, request)
    page = open_wall(browser, server)
    page.evaluate("window.__loaded = true")
    opened = []
    page.on("websocket", lambda socket: opened.append(socket.url))

    redis_relay.down()
    page.wait_for_selector("#stale-banner:not([hidden])", timeout=25000)
    assert re.search("cannot hear updates|cannot reach Redis", page.inner_text("#stale-banner"))
    page.wait_for_function(
        "() => document.querySelector('#stale-banner').innerText.includes('cannot hear updates')", timeout=25000
    )
    assert page.get_attribute("#connection", "data-state") == "stale", "the socket is open, and says it is not live"
    keep_screenshot(page, "wall-redis-down")
    updated = page.inner_text("#wall-status")
    assert not re.search(r"\b0 s ago", updated), f"a deaf heartbeat is no update: {updated}"  # "10 s ago" is fine
    health = json.loads(urllib.request.urlopen(f"{server.url}/healthz", timeout=10).read())  # noqa: S310 (loopback)
    assert health["channel_layer"] == {"ok": False} and health["status"] == "degraded"
    late = new_page(browser, width=1280, height=720)  # a wall that (re)connects during the outage gets its page
    late.goto(page.wall_url)
    late.wait_for_selector("#stale-banner:not([hidden]) >> text=cannot hear updates", timeout=15000)

    redis_relay.up()
    for wall in (page, late):
        wall.wait_for_selector("#stale-banner", state="hidden", timeout=20000)
        wait_live(wall)
    build = hth_sim.start_build(project="atlas", repository="atlas", name="After Redis came back")
    for wall in (page, late):
        wall.wait_for_selector(f'#wall-builds [data-event-id="{build}"]', timeout=20000)
    assert page.evaluate("window.__loaded") is True and opened == [], "the first wall kept its socket"
    assert page.console_errors == [] and late.console_errors == []
    log = (tmp_path / "server.log").read_text()
    assert log.count("the channel layer is unreachable") == 1, log[-3000:]
    assert "Exception inside application" not in log, "no handshake failed"
