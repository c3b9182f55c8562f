"""Which upstreams are configured, the work each needs and how often, and one run of it kept for /healthz.

A source whose URL is unset is skipped; one whose URL is set but whose keys are missing is a
configuration error, said in one line before anything is fetched. Each source has a full `sync` and
follow-up tasks with their own cadence: Helix TeamHub re-reads unfinished events (the live refresh),
OneUptime delivers admin edits (the outbox delivery). The poller gives every task its own thread.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from dashboard import metrics
from dashboard.models import Source, SyncState
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.http import UpstreamError, short_reason
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.report import SyncReport

OUTBOX_EVERY_SECONDS = 0.5  # an admin's save should reach OneUptime within a second

SYNC, LIVE_REFRESH, OUTBOX_DELIVERY = "sync", "live refresh", "outbox delivery"


@dataclass
class Task:
    """One kind of work for one source: `run(now=…)` (a sync also takes on_progress and should_stop)."""

    kind: str
    run: Callable[..., SyncReport]
    every: float


@dataclass
class ConfiguredSource:
    source: str
    sync: Task
    follow_ups: list[Task] = field(default_factory=list)

    @property
    def tasks(self) -> list[Task]:
        return [self.sync, *self.follow_ups]


def configured_sources() -> list[ConfiguredSource]:
    sources = []
    if settings.HTH_API_URL:
        if not (settings.HTH_COMPANY_KEY and settings.HTH_ACCOUNT_KEY):
            raise ImproperlyConfigured("HTH_COMPANY_KEY and HTH_ACCOUNT_KEY are required when HTH_API_URL is set")
        hth = HthClient(base_url=settings.HTH_API_URL, company_key=settings.HTH_COMPANY_KEY, account_key=settings.HTH_ACCOUNT_KEY)

        def live_refresh(*, now):
            try:
                return hth_sync.refresh_unfinished_events(client=hth, now=now)
            finally:
                hth_sync.sweep_live_events(now=timezone.now())  # time alone turns live events stale, upstream or not

        sources.append(
            ConfiguredSource(
                source=Source.HTH,
                sync=Task(SYNC, lambda **kwargs: hth_sync.sync_events(client=hth, **kwargs), settings.POLL_INTERVAL_SECONDS),
                follow_ups=[Task(LIVE_REFRESH, live_refresh, settings.LIVE_REFRESH_SECONDS)],
            )
        )
    if settings.ONEUPTIME_API_URL:
        if not settings.ONEUPTIME_API_KEY:
            raise ImproperlyConfigured("ONEUPTIME_API_KEY is required when ONEUPTIME_API_URL is set")
        oneuptime = OneUptimeClient.from_settings()
        sources.append(
            ConfiguredSource(
                source=Source.ONEUPTIME,
                sync=Task(
                    SYNC,
                    lambda now, on_progress=None, **kwargs: note_sync.sync_notes(client=oneuptime, now=now, **kwargs),
                    settings.POLL_INTERVAL_SECONDS,
                ),
                follow_ups=[
                    Task(
                        OUTBOX_DELIVERY,
                        lambda **kwargs: writeback.deliver_due(client=oneuptime, **kwargs),
                        OUTBOX_EVERY_SECONDS,
                    )
                ],
            )
        )
    return sources


def run_pass(source: ConfiguredSource, task: Task, *, now: datetime, **kwargs) -> SyncReport:
    """Run one task of a source and record its outcome for /healthz; errors are re-raised."""
    SyncState.objects.get_or_create(source=source.source)
    state = SyncState.objects.filter(source=source.source)
    state.update(last_attempt_at=now)
    timer = metrics.SYNC_SECONDS.labels(source.source, task.kind).time()
    try:
        with timer:
            report = task.run(now=now, **kwargs)
    except Exception as exc:
        metrics.SYNC_RUNS.labels(source.source, task.kind, "error").inc()
        reason = str(exc) if isinstance(exc, UpstreamError) else f"{exc.__class__.__name__}: {exc}"
        state.update(
            last_error=" ".join(f"{task.kind}: {reason}".split()),
            last_error_reason=short_reason(exc),
            last_error_at=timezone.now(),
        )
        raise
    metrics.SYNC_RUNS.labels(source.source, task.kind, "ok" if report.finished else "unfinished").inc()
    if task.kind == LIVE_REFRESH:
        state.update(last_refresh_at=now)
    elif task.kind == SYNC and report.finished:
        state.update(last_success_at=now)
    return report
