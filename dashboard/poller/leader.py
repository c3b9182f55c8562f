"""Which process polls: exactly one at a time, however many run `serve` or `poll` (PostgreSQL).

The poller holds a session-level advisory lock (pg_try_advisory_lock) on a connection of its own,
never Django's shared one, which any request or job may close. PostgreSQL lets the lock go as soon as
that connection ends: a process killed with SIGKILL loses it at once, and a standby, trying every
LEADER_CHECK_SECONDS, takes over well within twice POLL_INTERVAL_SECONDS. The leader checks on the
same cadence that its connection still holds the lock; if the check fails it stops polling at once
(its jobs end between pages) and goes back to standing by. Jobs may overlap by one page around a
takeover, which the syncs tolerate (re-reads are idempotent, write-back creates carry a token).

SQLite has no such lock and stays single-node: every process that polls is the poller, so run one.
/healthz names the process holding the lock (`holder`), read from pg_stat_activity.
"""

import contextlib
import logging
import os
import socket
import threading

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

LOCK_KEY = 0x50_75_6C_73  # "Puls": advisory locks are per database, so one key per Pulseboard database
APPLICATION_NAME = "pulseboard poller"


def check_seconds() -> float:
    """How often a standby tries the lock and the leader checks it: a takeover fits in 2 x POLL_INTERVAL_SECONDS."""
    return max(0.2, min(settings.POLL_INTERVAL_SECONDS / 2, 5.0))


def is_shared() -> bool:
    return connection.vendor == "postgresql"


class Leadership:
    """`wait(stop)` blocks until this process holds the lock (True) or `stop` is set (False);
    `hold(stop, lost)` returns once the lock is lost (setting `lost`) or `stop` is set, then releases it."""

    def __init__(self):
        self.conn = None
        self.name = f"{APPLICATION_NAME} {socket.gethostname()}:{os.getpid()}"

    def wait(self, stop: threading.Event) -> bool:
        if not is_shared():
            return not stop.is_set()
        said, failing = False, False
        while not stop.is_set():
            try:
                if self._try_lock():
                    log.info("this process (%s) is now the poller", self.name)
                    return True
                if not said:
                    log.info("another process polls; %s stands by", self.name)
                    said = True
                failing = False
            except Exception as exc:
                if not failing:  # once an outage: every check_seconds() for a minute's outage was a flood
                    why = " ".join(str(exc).split())[:200]
                    log.warning("could not try the poller lock (%s); retrying quietly until it can", why)
                failing = True
                self._close()
            stop.wait(check_seconds())
        return False

    def hold(self, stop: threading.Event, lost: threading.Event) -> None:
        try:
            while not stop.wait(check_seconds()):
                if is_shared() and not self._still_held():
                    log.error("lost the poller lock (its connection broke); polling stops until it is won again")
                    lost.set()
                    return
        finally:
            self._close()

    def _try_lock(self) -> bool:
        if self.conn is None or self.conn.closed:
            self.conn = self._connect()
        return self.conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]

    def _still_held(self) -> bool:
        try:
            row = self.conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = %s AND granted",
                [LOCK_KEY],
            ).fetchone()
            return row[0] > 0
        except Exception as exc:
            log.error("the poller lock's connection failed: %s", " ".join(str(exc).split())[:200])
            return False

    def _connect(self):
        """A connection of our own, with TCP keepalives so that a vanished peer is noticed within seconds."""
        import psycopg

        db = connection.settings_dict
        return psycopg.connect(
            dbname=db["NAME"],
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            application_name=self.name[:63],
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            autocommit=True,
        )

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing ends the session, which releases the lock either way
                self.conn.close()
            self.conn = None


def holder() -> dict:
    """Who polls, for /healthz: the process holding the lock (PostgreSQL), or that SQLite has no lock."""
    if not is_shared():
        return {"mode": "single node (SQLite: no lock, every process that polls is the poller)"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted AND l.database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_KEY],
        )
        row = cursor.fetchone()
    if row is None:
        return {"mode": "advisory lock", "holder": None, "since": None}
    return {"mode": "advisory lock", "holder": row[0].removeprefix(APPLICATION_NAME).strip(), "since": row[1].isoformat()}
