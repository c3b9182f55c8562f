"""When something breaks: the log says so (DEBUG on or off), and a DEBUG page shows no password."""

import sys

import pytest
import requests
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
    try:
        reach_redis(REDIS_URL)  # a local variable holding the URL, as redis-py's frames have
    except ConnectionError:
        response = technical_500_response(rf.get("/", HTTP_ACCEPT=accept), *sys.exc_info())
    page = response.content.decode()
    assert "REDIS_URL" in page and "cache.internal:6379/0" in page and "db.internal/pulseboard" in page, "the rest is still there"
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
