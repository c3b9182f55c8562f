"""Several processes, one poller: the PostgreSQL advisory lock in dashboard/poller/leader.py (skipped on SQLite)."""

import threading
import time

import pytest
from django.db import connection

from dashboard.poller import leader
from dashboard.poller.leader import Leadership

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


def test_poll_forever_stops_its_jobs_while_another_holds_the_lock_and_resumes_when_it_is_free():
    from dashboard.poller.jobs import poll_forever
    from dashboard.poller.sources import SYNC, ConfiguredSource, Task
    from dashboard.upstreams.report import SyncReport

    runs = []

    def sync(**kwargs):
        runs.append(time.monotonic())
        return SyncReport()

    source = ConfiguredSource("hth", sync=Task(SYNC, sync, 0.05))
    stop = threading.Event()
    poller = threading.Thread(target=poll_forever, kwargs={"stop": stop, "sources": [source]})
    poller.start()
    try:
        assert wait_until(lambda: runs), "the only process takes the lock and polls"
        rival = Leadership()
        rival.conn = rival._connect()
        queued = threading.Thread(target=rival.conn.execute, args=("SELECT pg_advisory_lock(%s)", [leader.LOCK_KEY]))
        queued.start()  # another process queues for the lock, so it wins it the moment it is free
        assert wait_until(lambda: waiting_for_the_lock() == 1)
        with connection.cursor() as cursor:  # the poller's lock connection breaks
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s AND pid <> %s",
                [leader.APPLICATION_NAME + "%", rival.conn.info.backend_pid],
            )
        queued.join(timeout=5)
        assert rival._still_held()
        time.sleep(leader.check_seconds() + 0.5)  # its loss is noticed within a check; a run in flight ends
        before = len(runs)
        time.sleep(1)
        assert len(runs) == before, "no sync runs while another process holds the lock"
        rival._close()
        assert wait_until(lambda: len(runs) > before), "it takes the lock back once it is free"
    finally:
        stop.set()
        poller.join(timeout=15)
    assert not poller.is_alive()


def wait_until(check, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def waiting_for_the_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted", [leader.LOCK_KEY]
        )
        return cursor.fetchone()[0]
