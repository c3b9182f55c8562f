"""Which upstreams are configured, and one pass of each, with its outcome kept for /healthz.

A source whose URL is unset is skipped; one whose URL is set but whose keys are missing is a
configuration error, said in one line before anything is fetched. Each source has a full `sync`
and a frequent `refresh`: Helix TeamHub re-reads unfinished events, OneUptime delivers admin edits.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from dashboard.models import Source, SyncState
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.http import UpstreamError, short_reason
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.report import SyncReport

OUTBOX_EVERY_SECONDS = 0.5  # an admin's save should reach OneUptime within a second


@dataclass
class ConfiguredSource:
    source: str
    sync: Callable[..., SyncReport]
    refresh: Callable[..., SyncReport]
    refresh_every: float


def configured_sources() -> list[ConfiguredSource]:
    sources = []
    if settings.HTH_API_URL:
        if not (settings.HTH_COMPANY_KEY and settings.HTH_ACCOUNT_KEY):
            raise ImproperlyConfigured("HTH_COMPANY_KEY and HTH_ACCOUNT_KEY are required when HTH_API_URL is set")
        hth = HthClient(base_url=settings.HTH_API_URL, company_key=settings.HTH_COMPANY_KEY, account_key=settings.HTH_ACCOUNT_KEY)
        sources.append(
            ConfiguredSource(
                source=Source.HTH,
                sync=lambda **kwargs: hth_sync.sync_events(client=hth, **kwargs),
                refresh=lambda **kwargs: hth_sync.refresh_unfinished_events(client=hth, **kwargs),
                refresh_every=settings.LIVE_REFRESH_SECONDS,
            )
        )
    if settings.ONEUPTIME_API_URL:
        if not settings.ONEUPTIME_API_KEY:
            raise ImproperlyConfigured("ONEUPTIME_API_KEY is required when ONEUPTIME_API_URL is set")
        oneuptime = OneUptimeClient.from_settings()
        sources.append(
            ConfiguredSource(
                source=Source.ONEUPTIME,
                sync=lambda now, on_progress=None, **kwargs: note_sync.sync_notes(client=oneuptime, now=now, **kwargs),
                refresh=lambda **kwargs: writeback.deliver_due(client=oneuptime, **kwargs),
                refresh_every=OUTBOX_EVERY_SECONDS,
            )
        )
    return sources


def run_pass(source: ConfiguredSource, kind: str, *, now: datetime, **kwargs) -> SyncReport:
    """Run one "sync" or "refresh" of a source and record its outcome for /healthz; errors are re-raised."""
    SyncState.objects.get_or_create(source=source.source)
    state = SyncState.objects.filter(source=source.source)
    state.update(last_attempt_at=now)
    try:
        report = (source.sync if kind == "sync" else source.refresh)(now=now, **kwargs)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, UpstreamError) else f"{exc.__class__.__name__}: {exc}"
        state.update(last_error=" ".join(reason.split()), last_error_reason=short_reason(exc), last_error_at=timezone.now())
        raise
    if kind == "refresh":
        state.update(last_refresh_at=now)
    elif report.finished:
        state.update(last_success_at=now)
    return report
