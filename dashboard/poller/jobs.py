"""The poller: every task of every source on its own cadence, each in its own thread, for ever.

Each source's sync runs every POLL_INTERVAL_SECONDS, the Helix TeamHub live refresh (with the sweep
that turns silent builds stale) every LIVE_REFRESH_SECONDS, the OneUptime outbox delivery every half
second, housekeeping (pruning transitions, retention) every POLL_INTERVAL_SECONDS, and, with a webhook
receiver on, its source's hook queue every HOOK_QUEUE_CHECK_SECONDS (dashboard/poller/hooks.py): a hint wakes its
source's sync job, so a hinted pass never runs beside a regular one. A thread per job means that a rate-limited or hanging
upstream delays only its own jobs. A job never ends on an error: whatever it raises (an upstream error,
a lost database, a bug) is logged and recorded for /healthz, its database connection is dropped so that
the next run reconnects, and it runs again after a back-off; the supervisor restarts a thread that died
anyway. `stop` (a threading.Event that SIGTERM sets) ends every loop, and a sync checks it between pages.

With several processes only the one holding the poller lock runs the jobs (dashboard/poller/leader.py).
To add work, add a Job in `jobs_for`; setting a job's `wake` runs it now.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from dashboard.live import transitions
from dashboard.poller import hooks, retention
from dashboard.poller.leader import Leadership
from dashboard.poller.sources import SYNC, ConfiguredSource, Task, configured_sources, run_pass
from dashboard.upstreams.http import UpstreamError
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

TRANSITIONS_KEPT = timedelta(days=1)
HINTED_PASS_GAP_SECONDS = 1.0  # hinted list passes of a source start at most this often, however many Hooks arrive
MAX_BACKOFF_SECONDS = 10  # a job that keeps failing is retried at least this often (or at its own cadence)
SUPERVISE_EVERY_SECONDS = 1
STOP_TIMEOUT_SECONDS = 10  # a thread stuck in an upstream call is abandoned (daemon) after this on shutdown


@dataclass
class Job:
    name: str
    every: float
    run: Callable[[threading.Event], object]
    wake: threading.Event = field(default_factory=threading.Event)


def sync_once(*, sources: list[ConfiguredSource], on_progress=None, stop: threading.Event | None = None) -> dict[str, SyncReport]:
    """One full pass of every source: its sync, then, if that finished, its follow-ups (live refresh, outbox delivery)."""
    reports = {}
    should_stop = stop.is_set if stop else (lambda: False)
    for source in sources:
        report = run_pass(source, source.sync, now=timezone.now(), on_progress=on_progress, should_stop=should_stop)
        if report.finished:
            for task in source.follow_ups:
                report.add(run_pass(source, task, now=timezone.now()))
        reports[source.source] = report
    return reports


def jobs_for(sources: list[ConfiguredSource]) -> list[Job]:
    jobs = [
        Job(f"{source.source} {task.kind}", task.every, partial(_run_task, source, task))
        for source in sources
        for task in source.tasks
    ]
    jobs.append(Job("housekeeping", settings.POLL_INTERVAL_SECONDS, _housekeeping))
    syncs = {job.name.split(" ")[0]: job for job in jobs if job.name.endswith(f" {SYNC}")}
    for source in hooks.configured_sources():  # one job per source: a hung upstream holds up only its own hooks
        hinted = {"next": 0.0}
        jobs.append(Job(f"{source} hook queue", settings.HOOK_QUEUE_CHECK_SECONDS, partial(_drain_hooks, source, syncs, hinted)))
    return jobs


def poll_forever(*, stop: threading.Event, sources: list[ConfiguredSource] | None = None) -> None:
    """Stand by until this process is the poller (dashboard/poller/leader.py), then run every job until `stop`
    or until the lock is lost, and stand by again."""
    jobs = jobs_for(configured_sources() if sources is None else sources)
    leadership = Leadership()
    while leadership.wait(stop):
        term = threading.Event()
        runner = threading.Thread(target=run_jobs, args=(jobs, term), name="poller", daemon=True)
        runner.start()
        leadership.hold(stop, term)
        term.set()
        runner.join()


def run_jobs(jobs: list[Job], stop: threading.Event) -> None:
    """Run every job in a thread of its own until `stop`, restarting any thread that ends before it."""
    threads: dict[str, threading.Thread] = {}
    while not stop.is_set():
        for job in jobs:
            thread = threads.get(job.name)
            if thread is None or not thread.is_alive():
                if thread is not None:
                    log.error("%s ended unexpectedly; restarting it", job.name)
                threads[job.name] = threading.Thread(target=run_job, args=(job, stop), name=job.name, daemon=True)
                threads[job.name].start()
        stop.wait(SUPERVISE_EVERY_SECONDS)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for thread in threads.values():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def run_job(job: Job, stop: threading.Event) -> None:
    """Run `job` every `job.every` seconds until `stop`; nothing it raises ends the loop."""
    failures = 0
    while not stop.is_set():
        job.wake.clear()
        try:
            close_old_connections()  # drops a connection that broke or aged, so this run reconnects
            job.run(stop)
            failures = 0
        except UpstreamError as exc:
            failures += 1
            log.error("%s failed: %s", job.name, exc)
        except DatabaseError as exc:
            failures += 1
            log.error("%s: the database failed (%s); retrying", job.name, " ".join(str(exc).split())[:300])
            _drop_connection()
        except Exception:
            failures += 1
            log.exception("%s crashed; retrying", job.name)
            _drop_connection()
        wait = job.every if not failures else min(job.every * 2**failures, max(job.every, MAX_BACKOFF_SECONDS))
        _sleep(job, stop, wait)
    _drop_connection()


def _run_task(source: ConfiguredSource, task: Task, stop: threading.Event) -> None:
    extra = {"should_stop": stop.is_set} if task.kind == SYNC else {}
    report = run_pass(source, task, now=timezone.now(), **extra)
    if report.created or report.updated or report.skipped:
        log.info("%s %s: %s", source.source, task.kind, report)


def _housekeeping(stop: threading.Event) -> None:
    transitions.prune(before=timezone.now() - TRANSITIONS_KEPT)
    retention.prune_old_events(timezone.now())


def _drain_hooks(source: str, syncs: dict[str, Job], hinted: dict[str, float], stop: threading.Event) -> None:
    """Apply `source`'s queued webhook deliveries; a hint wakes its sync job (at most every HINTED_PASS_GAP_SECONDS)."""
    wanted = hooks.drain(
        now=timezone.now(), take_hints=time.monotonic() >= hinted["next"], sources=[source], should_stop=stop.is_set
    )
    for source in wanted:
        if source in syncs:
            syncs[source].wake.set()
    if wanted:
        hinted["next"] = time.monotonic() + HINTED_PASS_GAP_SECONDS


def _sleep(job: Job, stop: threading.Event, seconds: float) -> None:
    """Wait `seconds`, or less if the job is woken or the poller stops."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        if job.wake.wait(min(left, 0.25)):
            return


def _drop_connection() -> None:
    try:
        connection.close()
    except DatabaseError:
        pass  # it was broken anyway; the next query opens a new one
