"""When something breaks: the log says so (DEBUG on or off), and a DEBUG page shows no password."""

import asyncio
import sys
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio
import requests
from django.conf import settings as live_settings
from django.views.debug import technical_500_response
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.processes import free_port, start_daphne
from tests.test_deployment import production_env

PASSWORD = "hunter" + "2"  # never written out whole: the page quotes this file's source around each frame
REDIS_URL = f"redis://:{PASSWORD}@cache.internal:6379/0"


def reach_redis(address):
    raise ConnectionError(f"could not reach {address.rsplit('@')[-1]}")


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_the_debug_page_stars_passwords_in_urls(settings, rf, accept):
    settings.DEBUG = True
    settings.REDIS_URL = REDIS_URL
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [{"address": REDIS_URL}]}}
    }
    settings.BACKUP_URLS = (f"postgres://ops:{PASSWORD}@db.internal/pulseboard", f"https://{PASSWORD}@git.example/x")
    parts = urlsplit(REDIS_URL)  # noqa: F841 -- a named tuple of the URL's parts, in this frame's locals
    try:
        reach_redis(REDIS_URL)  # a local variable holding the URL, as redis-py's frames have
    except ConnectionError:
        response = technical_500_response(rf.get("/", HTTP_ACCEPT=accept), *sys.exc_info())
    page = response.content.decode()
    assert "REDIS_URL" in page and "cache.internal:6379/0" in page and "db.internal/pulseboard" in page, "the rest is still there"
    assert PASSWORD not in page


@pytest.mark.skipif(not live_settings.REDIS_URL, reason="needs a Redis to refuse the password")
@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_the_debug_page_hides_the_password_redis_py_holds_in_its_locals(settings, rf, flavour):
    """redis-py keeps `auth_args = (username, password)` in the frame that sends AUTH: a refused login shows it."""
    settings.DEBUG = True
    server = urlsplit(settings.REDIS_URL)
    redis_url = f"redis://pulse-nobody:{PASSWORD}@{server.hostname}:{server.port or 6379}/0"  # a login Redis refuses
    try:
        if flavour == "sync":
            redis.Redis.from_url(redis_url).ping()
        else:
            asyncio.run(redis.asyncio.Redis.from_url(redis_url).ping())
    except redis.AuthenticationError:
        page = technical_500_response(rf.get("/"), *sys.exc_info()).content.decode()
    assert "auth_args" in page, "the frame is there, its value hidden"
    assert PASSWORD not in page


def test_unexpected_server_errors_reach_the_log_with_debug_off(tmp_path):
    """An empty database makes every page and socket fail: each failure must leave a traceback in the log."""
    env = production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    port = free_port()
    server = start_daphne(port=port, env=env)
    try:
        # (/healthz answers such a failure with a JSON 503 instead: tests/test_database_outage.py)
        assert requests.get(f"http://127.0.0.1:{port}/wall/?key=x", timeout=10).status_code == 500
        with pytest.raises(InvalidStatus):  # the socket fails before its handshake completes
            with connect(f"ws://127.0.0.1:{port}/ws/live/?page=wall&screen=x", origin=f"http://127.0.0.1:{port}") as socket:
                socket.recv(timeout=5)
    finally:
        server.terminate()
        log = server.communicate(timeout=10)[1]
    assert "ERROR django.request: Internal Server Error: /wall/" in log, log
    assert "ERROR daphne.server: Exception inside application" in log, log
    assert log.count("no such table") >= 2, log


def test_the_debug_page_survives_a_local_nested_too_deep_to_look_inside(settings, rf):
    settings.DEBUG = True
    nested = []
    for _ in range(100_000):
        nested = [nested]
    try:
        reach_redis(REDIS_URL)
    except ConnectionError:
        response = technical_500_response(rf.get("/"), *sys.exc_info())
    assert response.status_code == 500 and "nested" in response.content.decode()
