"""What /healthz reports: per source, when it last synced, its last error and its counts.

A wall display reads this to say "stale" instead of silently showing old data.
"""

from datetime import datetime

from django.conf import settings

from dashboard.models import Event, EventStatus, Incident, IncidentNote, NoteWrite, Source, SyncState
from dashboard.version import server_version


def health_report(*, now: datetime) -> dict:
    states = {state.source: state for state in SyncState.objects.all()}
    configured = {Source.HTH: bool(settings.HTH_API_URL), Source.ONEUPTIME: bool(settings.ONEUPTIME_API_URL)}
    counts = {
        Source.HTH: {"events": Event.objects.count(), "live": Event.objects.filter(status=EventStatus.LIVE).count()},
        Source.ONEUPTIME: {
            "incidents": Incident.objects.count(),
            "open_incidents": Incident.objects.filter(is_resolved=False).count(),
            "notes": IncidentNote.objects.filter(deleted=False).count(),
            "writes_pending": NoteWrite.objects.filter(state=NoteWrite.State.PENDING).count(),
            "writes_failed": NoteWrite.objects.filter(state__in=[NoteWrite.State.FAILED, NoteWrite.State.CONFLICT]).count(),
        },
    }
    sources = {}
    for source in Source:
        state = states.get(source)
        last_success = state.last_success_at if state else None
        last_error_at = state.last_error_at if state else None
        overdue = last_success is None or (now - last_success).total_seconds() > 2 * settings.POLL_INTERVAL_SECONDS
        failing = last_error_at is not None and (last_success is None or last_error_at > last_success)
        sources[source.value] = {
            "configured": configured[source],
            "ok": configured[source] and not overdue and not failing,
            "last_success_at": _iso(last_success),
            "last_attempt_at": _iso(state.last_attempt_at if state else None),
            "last_refresh_at": _iso(state.last_refresh_at if state else None),
            "last_error": state.last_error if state else "",
            "last_error_at": _iso(last_error_at),
            "counts": counts[source],
        }
    enabled = [report for report in sources.values() if report["configured"]]
    return {
        "status": "ok" if all(report["ok"] for report in enabled) else "degraded",
        "version": server_version(),
        "now": _iso(now),
        "poll_interval_seconds": settings.POLL_INTERVAL_SECONDS,
        "live_count": counts[Source.HTH]["live"],
        "sources": sources,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
