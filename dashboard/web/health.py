"""What /healthz reports, and to whom.

Strangers (a load balancer, a monitor) learn only whether each source is ok. A wall, through its kiosk
key, and people who are logged in also get when each source last synced and a short reason in fixed
words; the upstream's own error text, with its hosts and URLs, stays in the admin (Sync states).
"""

import functools
import time
from datetime import datetime

import redis
from django.conf import settings

from dashboard import fleet
from dashboard.models import Event, EventStatus, Incident, IncidentNote, NoteWrite, Source, SyncState
from dashboard.poller import leader
from dashboard.version import server_version
from dashboard.web import feeds

PUBLIC, WALL, SIGNED_IN = "public", "wall", "signed in"


def audience(request) -> str:
    if request.user.is_authenticated:
        return SIGNED_IN
    screen = feeds.screen_for(request.GET.get("key", ""))
    return WALL if screen and not screen.is_revoked else PUBLIC


def health_report(*, now: datetime, audience: str) -> dict:
    states = {state.source: state for state in SyncState.objects.all()}
    configured = {Source.HTH: bool(settings.HTH_API_URL), Source.ONEUPTIME: bool(settings.ONEUPTIME_API_URL)}
    sources = {}
    for source in Source:
        state = states.get(source)
        last_success = state.last_success_at if state else None
        last_error_at = state.last_error_at if state else None
        overdue = last_success is None or (now - last_success).total_seconds() > 2 * settings.POLL_INTERVAL_SECONDS
        failing = last_error_at is not None and (last_success is None or last_error_at > last_success)
        sources[source.value] = {"configured": configured[source], "ok": configured[source] and not overdue and not failing}
        if audience == PUBLIC:
            continue
        sources[source.value] |= {
            "last_success_at": _iso(last_success),
            "reason": state.last_error_reason if state and failing else "",
        }
        if audience == SIGNED_IN:
            sources[source.value] |= {
                "last_attempt_at": _iso(state.last_attempt_at if state else None),
                "last_refresh_at": _iso(state.last_refresh_at if state else None),
                "last_error_at": _iso(last_error_at),
                "counts": _counts(source),
            }
    enabled = [report for report in sources.values() if report["configured"]]
    layer_ok = channel_layer_ok()
    report = {
        "status": "ok" if layer_ok and all(report["ok"] for report in enabled) else "degraded",
        "sources": sources,
        "channel_layer": {"ok": layer_ok},
    }
    if audience == PUBLIC:
        return report
    report |= {"version": server_version(), "now": _iso(now), "poll_interval_seconds": settings.POLL_INTERVAL_SECONDS}
    report["versions"] = fleet.serving_versions()  # a page reloads once its own is gone (dashboard/fleet.py)
    if audience == SIGNED_IN:
        report["live_count"] = sources[Source.HTH.value]["counts"]["live"]
        report["poller"] = leader.holder()  # which process polls (PostgreSQL), or that SQLite has no lock
    return report


def channel_layer_ok() -> bool:
    """Can this process reach Redis, its channel layer? Without Redis the layer is in memory and always is.
    Asked at most every LAYER_CHECK_SECONDS, with a short timeout: thousands of walls ask /healthz."""
    if not settings.REDIS_URL:
        return True
    now = time.monotonic()
    if now - _layer_check["at"] >= LAYER_CHECK_SECONDS or _layer_check["url"] != settings.REDIS_URL:
        _layer_check["at"], _layer_check["url"] = now, settings.REDIS_URL
        try:
            _layer_check["ok"] = bool(_redis(settings.REDIS_URL).ping())
        except (redis.exceptions.RedisError, OSError):
            _layer_check["ok"] = False
    return _layer_check["ok"]


LAYER_CHECK_SECONDS = 2.0
_layer_check = {"at": -LAYER_CHECK_SECONDS, "url": "", "ok": True}


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def _counts(source: Source) -> dict:
    if source == Source.HTH:
        return {"events": Event.objects.count(), "live": Event.objects.filter(status=EventStatus.LIVE).count()}
    return {
        "incidents": Incident.objects.count(),
        "open_incidents": Incident.objects.filter(is_resolved=False).count(),
        "notes": IncidentNote.objects.filter(deleted=False).count(),
        "writes_pending": NoteWrite.objects.filter(state=NoteWrite.State.PENDING).count(),
        "writes_failed": NoteWrite.objects.filter(state__in=[NoteWrite.State.FAILED, NoteWrite.State.CONFLICT]).count(),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
