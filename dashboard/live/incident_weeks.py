"""Per week and severity: how many incidents began, and each one's time to acknowledge and to resolve.

/insights/ merges these few rows over its weeks instead of reading every incident's clock. A week is
derived again, whole, from the clocks that began in it whenever one of its clocks or one of its incidents'
severities changes (from incident_clock.derive(), in the transaction that changed them), and `rebuild()`
gives exactly what the incremental path stored. The durations are kept whole and sorted, not summarized,
so a median or p90 over any range of weeks is exact (up to live/samples.MOST a week and severity; past it,
evenly spaced ones beside the true counts).
"""

from collections.abc import Iterable
from datetime import datetime
from itertools import batched

from dashboard.live import samples
from dashboard.models import WEEK, IncidentClock, IncidentWeek, week_start

FIELDS = ["incidents", "acknowledged", "resolved", "acknowledge_seconds", "resolve_seconds"]
BATCH = 500  # incidents per query: within SQLite's limit on query parameters


def weeks_of(incident_upstream_ids: Iterable[str]) -> set[datetime]:
    """The weeks these incidents' clocks began in, as stored now."""
    weeks = set()
    for chunk in batched(sorted(set(incident_upstream_ids)), BATCH):
        starts = IncidentClock.objects.filter(incident_upstream_id__in=chunk).values_list("started_at", flat=True)
        weeks |= {week_start(started) for started in starts}
    return weeks


def refresh(weeks: Iterable[datetime]) -> None:
    """Derive these weeks again from their clocks; runs inside the transaction that changed them."""
    for week in sorted(set(weeks)):
        IncidentWeek.objects.filter(week=week).delete()
        IncidentWeek.objects.bulk_create(
            IncidentWeek(week=week, severity=severity, **figures) for severity, figures in derive(week).items()
        )


def rebuild() -> int:
    """Every week derived afresh from the clocks (after a full rebuild of the clocks, and after a migration)."""
    IncidentWeek.objects.all().delete()
    refresh(week_start(started) for started in IncidentClock.objects.values_list("started_at", flat=True))
    return IncidentWeek.objects.count()


def differences() -> list[str]:
    """Where the stored weeks differ from a fresh derivation (the fault suite's invariant); empty when none."""
    stored: dict[datetime, dict] = {}
    for row in IncidentWeek.objects.all():
        stored.setdefault(row.week, {})[row.severity] = {name: getattr(row, name) for name in FIELDS}
    weeks = {week_start(started) for started in IncidentClock.objects.values_list("started_at", flat=True)}
    return [
        f"incident week {week:%Y-%m-%d} differs from a rebuild"
        for week in sorted(weeks | set(stored))
        if derive(week) != stored.get(week, {})
    ]


def derive(week: datetime) -> dict[str, dict]:
    """The week's figures per severity, from the clocks that began in it."""
    clocks = IncidentClock.objects.filter(started_at__gte=week, started_at__lt=week + WEEK).values_list(
        "incident__severity", "time_to_acknowledge", "time_to_resolve"
    )
    found: dict[str, dict] = {}
    for severity, acknowledge, resolve in clocks:
        figures = found.setdefault(
            (severity or "").strip(), dict.fromkeys(FIELDS, 0) | {"acknowledge_seconds": [], "resolve_seconds": []}
        )
        figures["incidents"] += 1
        if acknowledge is not None:
            figures["acknowledged"] += 1
            figures["acknowledge_seconds"].append(acknowledge.total_seconds())
        if resolve is not None:
            figures["resolved"] += 1
            figures["resolve_seconds"].append(resolve.total_seconds())
    for figures in found.values():
        figures["acknowledge_seconds"] = samples.bounded(sorted(figures["acknowledge_seconds"]))
        figures["resolve_seconds"] = samples.bounded(sorted(figures["resolve_seconds"]))
    return found
