"""The real commands while the database goes away: nothing is skipped, the poller keeps going, /healthz says so.

PostgreSQL is reached through a relay the test cuts (tests/db_relay.py); the /healthz check also runs
on SQLite, against a database file that cannot be opened.
"""

import json
import signal
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from dashboard.models import Event, SyncState
from tests.db_relay import Relay
from tests.processes import base_env, database_url, free_port, manage, start_daphne, start_manage
from tests.test_sync_command import command_env, wait_for_rows

pytestmark = pytest.mark.django_db(transaction=True)
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="cuts a TCP connection to PostgreSQL")


@pytest.fixture
def relay():
    relay = Relay(database_url())
    yield relay
    relay.close()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        assert error.headers["Content-Type"] == "application/json", error.headers["Content-Type"]
        return error.code, json.load(error)


@postgresql_only
def test_a_lost_connection_aborts_the_pass_instead_of_skipping_rows(hth_sim, relay):
    hth_sim.generate(1000)
    flapped = []

    def flap(offset):
        if offset >= 300 and not flapped:
            flapped.append(offset)
            # The connection drops as this page is being stored, and the next few fail to connect.
            relay.cut_when_sent(b'INSERT INTO "dashboard_event"', refuse=5)

    hth_sim.before_list = flap
    env = command_env(hth_sim, DATABASE_URL=relay.url)
    for _ in range(6):  # a pass that meets a refused connection gives up; a later one finishes
        result = manage("sync", "--once", env=env)
        if result.returncode == 0:
            break
        last_line = result.stderr.strip().splitlines()[-1]  # after the progress lines
        assert last_line.startswith("CommandError: the database failed"), result.stderr
    assert flapped and result.returncode == 0, result.stderr
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.events}


@postgresql_only
def test_poll_survives_a_database_outage_and_carries_on(hth_sim, relay, tmp_path):
    hth_sim.generate(150)
    env = command_env(hth_sim, DATABASE_URL=relay.url, POLL_INTERVAL_SECONDS="0.5", LIVE_REFRESH_SECONDS="0.3")
    with open(tmp_path / "poll.log", "w") as log:
        process = start_manage("poll", env=env, log=log)
        try:
            wait_for_rows(150)
            hth_sim.start_build(project="luotsi")  # the live refresh and its sweep have work to do
            wait_for_rows(151)
            relay.down()
            time.sleep(4)
            assert process.poll() is None, (tmp_path / "poll.log").read_text()
            relay.up()
            hth_sim.add_event(target="push", operation="created", project="luotsi")
            wait_for_rows(152, timeout=30)
            assert process.poll() is None
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert process.returncode == 0, (tmp_path / "poll.log").read_text()


@postgresql_only
def test_serve_keeps_its_poller_through_a_database_outage_and_healthz_says_503(hth_sim, relay, tmp_path):
    hth_sim.generate(100)
    port = free_port()
    env = command_env(hth_sim, DATABASE_URL=relay.url, POLL_INTERVAL_SECONDS="0.5", LIVE_REFRESH_SECONDS="0.3")
    with open(tmp_path / "serve.log", "w") as log:
        process = start_manage("serve", "--port", str(port), env=env, log=log)
        try:
            wait_for_rows(100)
            relay.down()
            time.sleep(2)
            for _ in range(3):  # pages ask every few seconds: the log says so once an outage
                status, body = get_json(f"http://127.0.0.1:{port}/healthz")
                assert status == 503 and body == {"status": "unavailable"}
            time.sleep(2)
            relay.up()
            hth_sim.add_event(target="push", operation="created", project="luotsi")
            wait_for_rows(101, timeout=30)
            status, body = get_json(f"http://127.0.0.1:{port}/healthz")
            assert status == 200 and body["sources"]["hth"]["configured"]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert SyncState.objects.get(source="hth").last_success_at is not None
    logged = (tmp_path / "serve.log").read_text()
    assert logged.count("/healthz: the database is unavailable") == 1 and "/healthz: the database answers again" in logged
    assert logged.count("could not try the poller lock") <= 1, "its retries every half second are quiet"


def test_healthz_answers_json_503_when_the_database_cannot_be_opened(tmp_path):
    port = free_port()
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")
    server = start_daphne(port=port, env=env)
    try:
        status, body = get_json(f"http://127.0.0.1:{port}/healthz")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert status == 503 and body == {"status": "unavailable"}
