"""How long an incident took, from its own state timeline: derived once when the timeline changes, rebuildable.

OneUptime measures from the first timeline row's `startsAt` (the incident's start), to the first row at
or past its acknowledged state, and to the first row at or past its resolved state ("resolved" is the
state's `order` at or past the lowest-ordered resolved state's, not only the flag: state-timeline notes
§3, §4). Intervals come from the rows sorted by `startsAt`, each ending where the next begins; OneUptime's
`endsAt` is a cache that a `startsAt` edit leaves stale. Nothing here reads our clock: an open period is
stored without an end and the page counts it up.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import batched

from dashboard.live import incident_weeks
from dashboard.models import IncidentClock, IncidentStateChange, Transition, TransitionKind

# What can change an incident's durations: its timeline, or the incident itself (deleted with its timeline).
KINDS = frozenset({TransitionKind.STATES_CHANGED, TransitionKind.INCIDENT_DELETED})
BATCH = 500  # incidents per query: within SQLite's limit on query parameters


def derive(changes: list[Transition]) -> None:
    """The transitions seam calls this inside the transaction that changed the mirror: the clocks of the
    incidents whose timeline changed (and the weeks they were and are in), and the weeks of the incidents
    that changed otherwise (a new severity moves an incident between a week's rows)."""
    touched = {change.upstream_id for change in changes if change.kind in KINDS}
    changed = {change.upstream_id for change in changes if change.kind == TransitionKind.INCIDENT_CHANGED} - touched
    if touched:
        rebuild(touched, now=max(change.at for change in changes))
    if changed:
        incident_weeks.refresh(incident_weeks.weeks_of(changed))


def rebuild(incident_upstream_ids: Iterable[str] | None = None, *, now: datetime) -> int:
    """Recompute the clocks of these incidents (every incident with a timeline when None); returns how many exist now."""
    whole, weeks = incident_upstream_ids is None, set()
    if whole:
        IncidentClock.objects.all().delete()
        ids = sorted(set(IncidentStateChange.objects.values_list("incident_upstream_id", flat=True)))
    else:
        ids = sorted(set(incident_upstream_ids))
        weeks = incident_weeks.weeks_of(ids)  # the weeks they were in, before their clocks change
    stored = 0
    for chunk in batched(ids, BATCH):
        rows: dict[str, list[IncidentStateChange]] = {}
        for row in (
            IncidentStateChange.objects.filter(incident_upstream_id__in=chunk)
            .defer("raw", "root_cause")
            .order_by("incident_upstream_id", "starts_at", "created_at", "upstream_id")
        ):
            rows.setdefault(row.incident_upstream_id, []).append(row)
        IncidentClock.objects.filter(incident_upstream_id__in=chunk).delete()
        clocks = [measure(upstream_id, timeline, now=now) for upstream_id, timeline in rows.items()]
        IncidentClock.objects.bulk_create(clocks)
        stored += len(clocks)
    if whole:
        incident_weeks.rebuild()
    else:
        incident_weeks.refresh(weeks | incident_weeks.weeks_of(ids))
    return stored


def measure(incident_upstream_id: str, rows: Sequence[IncidentStateChange], *, now: datetime) -> IncidentClock:
    """One incident's clock from its timeline rows, sorted by `starts_at` (at least one)."""
    resolved_order = _lowest_order(rows, "is_resolved_state")
    acknowledged_order = _lowest_order(rows, "is_acknowledged_state")
    start = rows[0].starts_at
    acknowledged = next((row.starts_at for row in rows if _reached(row, "is_acknowledged_state", acknowledged_order)), None)
    resolved_rows = [_reached(row, "is_resolved_state", resolved_order) for row in rows]
    resolved = next((row.starts_at for row, done in zip(rows, resolved_rows, strict=True) if done), None)
    if acknowledged is None and resolved is not None:
        acknowledged = resolved  # resolved without an acknowledged state: it was acknowledged by then at the latest

    periods, opened = [], None
    for row, done in zip(rows, resolved_rows, strict=True):
        if not done and opened is None:
            opened = row.starts_at
        elif done and opened is not None:
            periods.append([opened.isoformat(), row.starts_at.isoformat()])
            opened = None
    if opened is not None:
        periods.append([opened.isoformat(), None])

    states: dict[str, dict] = {}
    for index, row in enumerate(rows):
        entry = states.setdefault(row.state_name, {"name": row.state_name, "color": row.state_color, "seconds": 0, "since": None})
        if index + 1 < len(rows):
            entry["seconds"] += max(0, int((rows[index + 1].starts_at - row.starts_at).total_seconds()))
        elif not resolved_rows[index]:
            entry["since"] = row.starts_at.isoformat()  # the state it is in now: counted up on the page
    last = rows[-1]
    return IncidentClock(
        incident_upstream_id=incident_upstream_id,
        started_at=start,
        acknowledged_at=acknowledged,
        resolved_at=resolved,
        time_to_acknowledge=acknowledged - start if acknowledged else None,
        time_to_resolve=resolved - start if resolved else None,
        periods=periods,
        states=[entry for entry in states.values() if entry["seconds"] or entry["since"]],
        current_state=last.state_name,
        current_since=last.starts_at,
        is_open=not resolved_rows[-1],
        computed_at=now,
    )


def _lowest_order(rows: Sequence[IncidentStateChange], flag: str) -> int | None:
    orders = [row.state_order for row in rows if getattr(row, flag) and row.state_order is not None]
    return min(orders) if orders else None


def _reached(row: IncidentStateChange, flag: str, order: int | None) -> bool:
    """The row's state is the flagged one, or ordered at or past it (OneUptime: "everything after resolved is resolved")."""
    if getattr(row, flag):
        return True
    return order is not None and row.state_order is not None and row.state_order >= order
