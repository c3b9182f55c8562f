"""Several processes, one poller: the PostgreSQL advisory lock in dashboard/leader.py (skipped on SQLite)."""

import threading
import time

import pytest
from django.db import connection

from dashboard import leader
from dashboard.leader import Leadership

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite is single-node: no lock"),
]


def nobody_holds(timeout: float = 5) -> bool:
    """The session ends a moment after its connection closes."""
    deadline = time.monotonic() + timeout
    while leader.holder()["holder"] is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(autouse=True)
def quick(settings):
    settings.POLL_INTERVAL_SECONDS = 1  # checks every half second


def test_one_holder_at_a_time_and_the_standby_takes_over_when_it_goes():
    first, second, stop = Leadership(), Leadership(), threading.Event()
    assert first.wait(stop)
    assert not second._try_lock(), "a second process stands by"
    assert leader.holder()["holder"].endswith(first.name.removeprefix(leader.APPLICATION_NAME).strip())
    won = threading.Thread(target=second.wait, args=(stop,))
    won.start()
    first._close()  # as when its process dies: the session ends, PostgreSQL lets the lock go
    won.join(timeout=5)
    assert not won.is_alive(), "the standby took the lock within a few checks"
    assert second._still_held()
    second._close()
    assert nobody_holds()


def test_the_leader_stops_at_once_when_its_connection_is_lost():
    leadership, stop, lost = Leadership(), threading.Event(), threading.Event()
    assert leadership.wait(stop)
    holding = threading.Thread(target=leadership.hold, args=(stop, lost))
    holding.start()
    pid = leadership.conn.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    holding.join(timeout=5)
    assert lost.is_set(), "a broken lock connection stops the poller's jobs"
    assert leadership.conn is None


def test_stop_ends_the_hold_and_releases_the_lock():
    leadership, stop, lost = Leadership(), threading.Event(), threading.Event()
    assert leadership.wait(stop)
    stop.set()
    leadership.hold(stop, lost)
    assert not lost.is_set()
    assert nobody_holds()
