"""The versions being served (dashboard/fleet.py): what a page waits for before it reloads after a deploy."""

import os
import socket
import time

import pytest

from dashboard import fleet
from dashboard.version import server_version


@pytest.fixture
def fresh_fleet(monkeypatch):
    fleet._client.cache_clear()
    monkeypatch.setattr(fleet, "_failed_at", -fleet.QUIET_AFTER_FAILURE_SECONDS)
    yield
    fleet._client.cache_clear()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_announced_versions_are_served_until_withdrawn_or_lapsed(settings, fresh_fleet):
    fleet._client().delete(fleet.KEY)
    fleet.announce("node-a:1")
    fleet._client().zadd(fleet.KEY, {"older node-b:2": time.time() + 5, "gone node-c:3": time.time() - 1})
    assert fleet.serving_versions() == sorted({server_version(), "older"}), "a lapsed announcement (a killed node) is not served"
    fleet._client().zrem(fleet.KEY, "older node-b:2")
    fleet.withdraw("node-a:1")
    assert fleet.serving_versions() == [server_version()]
    fleet.announce("node-a:1")
    assert fleet._client().zrange(fleet.KEY, 0, -1) == [f"{server_version()} node-a:1".encode()], "lapsed ones are swept"


def test_an_unreachable_redis_costs_one_short_wait_and_then_none(settings, fresh_fleet):
    silent = socket.socket()  # accepts connections and never answers: a partitioned Redis
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    try:
        started = time.monotonic()
        assert fleet.serving_versions() == [server_version()]
        assert time.monotonic() - started < 2 * fleet.REDIS_TIMEOUT_SECONDS + 0.5
        started = time.monotonic()
        for _ in range(10):
            assert fleet.serving_versions() == [server_version()]
        assert time.monotonic() - started < 0.2, "later asks during the outage do not wait again"
    finally:
        silent.close()
