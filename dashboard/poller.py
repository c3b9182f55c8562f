"""The poller: when to sync, refresh unfinished events and sweep live ones. The work itself is in each upstream's sync module.

Every LIVE_REFRESH_SECONDS it refreshes unfinished events and lets time turn silent live events
stale; every POLL_INTERVAL_SECONDS it runs a full pass; with a webhook receiver on, every
HOOK_QUEUE_CHECK_SECONDS it applies queued deliveries (dashboard/hooks.py). An upstream that fails is recorded and
retried at the next interval, so one bad source or item never stops the loop. `stop` is a
threading.Event: SIGTERM sets it, and sync checks it between pages.
"""

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from dashboard import hooks, retention
from dashboard.live import transitions
from dashboard.sources import ConfiguredSource, configured_sources, run_pass
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.http import UpstreamError
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

TRANSITIONS_KEPT = timedelta(days=1)
HINTED_PASS_GAP_SECONDS = 1.0  # hinted list passes of a source start at most this often, however many Hooks arrive


def sync_once(*, sources: list[ConfiguredSource], on_progress=None, stop: threading.Event | None = None) -> dict[str, SyncReport]:
    """One full pass of every source: list sync, then targeted refresh, then the live sweep."""
    reports = {}
    should_stop = stop.is_set if stop else (lambda: False)
    for source in sources:
        report = run_pass(source, "sync", now=timezone.now(), on_progress=on_progress, should_stop=should_stop)
        if report.finished:
            report.add(run_pass(source, "refresh", now=timezone.now()))
        reports[source.source] = report
    hth_sync.sweep_live_events(now=timezone.now())
    return reports


def poll_forever(*, stop: threading.Event, sources: list[ConfiguredSource] | None = None) -> None:
    sources = configured_sources() if sources is None else sources
    now = time.monotonic()
    next_sync = now
    next_refresh = {source.source: now for source in sources}
    next_sweep = now
    check_hooks = hooks.enabled()
    next_hinted_pass = now
    while not stop.is_set():
        close_old_connections()
        if check_hooks and _drain_hooks(sources, stop, take_hints=time.monotonic() >= next_hinted_pass):
            next_hinted_pass = time.monotonic() + HINTED_PASS_GAP_SECONDS
        if time.monotonic() >= next_sync:
            for source in sources:
                _run(source, "sync", stop)
            transitions.prune(before=timezone.now() - TRANSITIONS_KEPT)
            retention.prune_old_events(timezone.now())
            next_sync = time.monotonic() + settings.POLL_INTERVAL_SECONDS
        for source in sources:
            if time.monotonic() >= next_refresh[source.source] and not stop.is_set():
                _run(source, "refresh", stop)
                next_refresh[source.source] = time.monotonic() + source.refresh_every
        if time.monotonic() >= next_sweep:
            hth_sync.sweep_live_events(now=timezone.now())
            next_sweep = time.monotonic() + settings.LIVE_REFRESH_SECONDS
        wake_at = min([next_sync, next_sweep, *next_refresh.values()])
        if check_hooks:
            wake_at = min(wake_at, time.monotonic() + settings.HOOK_QUEUE_CHECK_SECONDS)
        stop.wait(max(0.0, wake_at - time.monotonic()))
    close_old_connections()


def _drain_hooks(sources: list[ConfiguredSource], stop: threading.Event, *, take_hints: bool) -> bool:
    """Apply queued webhook deliveries; a hint starts its source's list pass now instead of at the next interval.

    Returns whether a hinted pass ran."""
    try:
        wanted = hooks.drain(now=timezone.now(), take_hints=take_hints)
    except Exception:
        log.exception("draining the hook queue crashed; retrying at the next check")
        return False
    for source in sources:
        if source.source in wanted:
            _run(source, "sync", stop)
    return bool(wanted)


def _run(source: ConfiguredSource, kind: str, stop: threading.Event) -> None:
    extra = {"should_stop": stop.is_set} if kind == "sync" else {}
    try:
        report = run_pass(source, kind, now=timezone.now(), **extra)
    except UpstreamError as exc:
        log.error("%s %s failed: %s", source.source, kind, exc)
    except Exception:
        # A bug must not stop the wall: log it, keep polling, and let /healthz show the stale sync.
        log.exception("%s %s crashed; retrying at the next interval", source.source, kind)
    else:
        if report.created or report.updated or report.skipped:
            log.info("%s %s: %s", source.source, kind, report)
