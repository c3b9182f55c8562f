"""Which upstreams are configured, and one pass of each, with its outcome kept for /healthz.

A source whose URL is unset is skipped; one whose URL is set but whose keys are missing is a
configuration error, said in one line before anything is fetched.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from dashboard import sync
from dashboard.hth import HthClient
from dashboard.models import Source, SyncState
from dashboard.upstream import UpstreamError

log = logging.getLogger(__name__)


@dataclass
class ConfiguredSource:
    source: str
    sync: Callable[..., sync.SyncReport]
    refresh: Callable[..., sync.SyncReport]


def configured_sources() -> list[ConfiguredSource]:
    sources = []
    if settings.HTH_API_URL:
        if not (settings.HTH_COMPANY_KEY and settings.HTH_ACCOUNT_KEY):
            raise ImproperlyConfigured("HTH_COMPANY_KEY and HTH_ACCOUNT_KEY are required when HTH_API_URL is set")
        client = HthClient(
            base_url=settings.HTH_API_URL, company_key=settings.HTH_COMPANY_KEY, account_key=settings.HTH_ACCOUNT_KEY
        )
        sources.append(
            ConfiguredSource(
                source=Source.HTH,
                sync=lambda **kwargs: sync.sync_events(client=client, **kwargs),
                refresh=lambda **kwargs: sync.refresh_unfinished_events(client=client, **kwargs),
            )
        )
    return sources


def run_pass(source: ConfiguredSource, kind: str, *, now: datetime, **kwargs) -> sync.SyncReport:
    """Run one "sync" or "refresh" of a source and record its outcome for /healthz; errors are re-raised."""
    SyncState.objects.get_or_create(source=source.source)
    state = SyncState.objects.filter(source=source.source)
    state.update(last_attempt_at=now)
    try:
        report = (source.sync if kind == "sync" else source.refresh)(now=now, **kwargs)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, UpstreamError) else f"{exc.__class__.__name__}: {exc}"
        state.update(last_error=" ".join(reason.split()), last_error_at=timezone.now())
        raise
    if kind == "refresh":
        state.update(last_refresh_at=now)
    elif report.finished:
        state.update(last_success_at=now)
    return report
