"""An incident's one chronological timeline: its state changes and its public notes, each note under the state in
force when it was posted, and how long the incident took, from the durations derived when its timeline changed.

Where the mirror holds no state history for the incident (the API key may not read OneUptime's state
timeline, or it has not been read yet) each note's state comes from its heading instead, and the page says
which it is.
"""

import bisect
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dashboard.models import Incident, IncidentClock, IncidentNote, IncidentStateChange, Source, SyncState
from dashboard.web import feeds

NOTE_STATE = re.compile(r"\s*(?:#+\s*|\*\*)?(investigating|identified|acknowledged|monitoring|resolved)\b", re.IGNORECASE)
EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One item of the timeline: a state change or a note, at its own time."""

    at: datetime
    change: IncidentStateChange | None = None
    note: IncidentNote | None = None


@dataclass(frozen=True)
class Duration:
    """A duration as the page shows it: `seconds` so far, and `since` when it is still running (the page counts up)."""

    kind: str
    label: str
    seconds: int
    since: datetime | None = None

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Period:
    opened: datetime
    resolved: datetime | None
    seconds: int

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Durations:
    headline: list[Duration]
    periods: list[Period]
    states: list[Duration] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    from_states: bool  # each note's state comes from the state timeline; otherwise from note headings
    fallback_reason: str  # why not, in words for the page
    durations: Durations | None


def incident_timeline(incident: Incident, *, now: datetime) -> Timeline:
    notes = feeds.timeline(incident)
    changes = list(
        IncidentStateChange.objects.filter(incident_upstream_id=incident.upstream_id)
        .defer("raw")
        .order_by("starts_at", "created_at", "upstream_id")
    )
    unreadable = states_unreadable()
    if changes and not unreadable:
        with_timeline_states(notes, changes)
        reason = ""
    else:
        with_heading_states(notes)
        reason = (
            "OneUptime's API key may not read the incident state timeline (grant it “Read Incident State Timeline”)"
            if unreadable
            else "No state history of this incident has been read from OneUptime yet"
        )
    entries = [Entry(at=change.starts_at, change=change) for change in (changes if not unreadable else [])]
    entries += [Entry(at=note.posted_at or note.created_at or EPOCH, note=note) for note in notes]
    entries.sort(key=lambda entry: (entry.at, entry.note is not None))  # a state change before a note at the same moment
    clock = IncidentClock.objects.filter(incident_upstream_id=incident.upstream_id).first() if not unreadable else None
    measured = durations(clock, now=now) if clock else declared_only(incident, now=now)
    return Timeline(entries=entries, from_states=not reason, fallback_reason=reason, durations=measured)


def with_timeline_states(notes: list[IncidentNote], changes: list[IncidentStateChange]) -> None:
    """Each note's `state`: the state in force at its `posted_at` (before the first state: the first state)."""
    starts = [change.starts_at for change in changes]
    for note in notes:
        index = bisect.bisect_right(starts, note.posted_at) - 1 if note.posted_at else len(changes) - 1
        note.state = changes[max(index, 0)].state_name


def with_heading_states(notes: list[IncidentNote]) -> list[IncidentNote]:
    """Each note's `state`: the one it announces ("## Identified", "**Monitoring**"), else the last one announced."""
    state = ""
    for note in notes:
        match = NOTE_STATE.match(note.shown or "")
        state = match.group(1).capitalize() if match else state
        note.state = state
    return notes


def states_unreadable() -> str:
    """The sync's note that the key may not read the state timeline (empty when it can)."""
    state = SyncState.objects.filter(source=Source.ONEUPTIME).only("cursor").first()
    return state.cursor.get("states_unreadable", "") if state else ""


def declared_only(incident: Incident, *, now: datetime) -> Durations | None:
    """Without a state history only an open incident's age can be told (OneUptime starts it at `declaredAt`);
    a resolved one's duration is unknown, and the page says nothing rather than guess."""
    if incident.is_resolved or not incident.declared_at:
        return None
    return Durations(
        headline=[Duration("open", "open for", _seconds(now - incident.declared_at), incident.declared_at)], periods=[]
    )


def durations(clock: IncidentClock, *, now: datetime) -> Durations:
    """What the page shows of a clock; running durations carry their start so the page counts them up."""

    def running(kind: str, label: str, since: datetime) -> Duration:
        return Duration(kind, label, _seconds(now - since), since)

    headline = []
    if clock.time_to_acknowledge is not None:
        headline.append(Duration("acknowledge", "acknowledged in", _seconds(clock.time_to_acknowledge)))
    elif clock.is_open:
        headline.append(running("acknowledge", "not acknowledged for", clock.started_at))
    if clock.time_to_resolve is not None:
        headline.append(Duration("resolve", "resolved in", _seconds(clock.time_to_resolve)))
    periods = [_period(opened, resolved, now=now) for opened, resolved in clock.periods]
    unacknowledged = clock.time_to_acknowledge is None and len(periods) == 1  # "open for" would say the same again
    if clock.is_open and periods and not unacknowledged:
        headline.append(running("open", "reopened, open for" if len(periods) > 1 else "open for", periods[-1].opened))
    states = [
        Duration(
            "state",
            entry["name"],
            int(entry["seconds"]) + (_seconds(now - _moment(entry["since"])) if entry["since"] else 0),
            _moment(entry["since"]) - timedelta(seconds=int(entry["seconds"])) if entry["since"] else None,
        )
        for entry in clock.states
    ]
    return Durations(headline=headline, periods=periods, states=states)


def with_durations(incidents: list[Incident], *, now: datetime) -> list[Incident]:
    """Each incident's `durations`, for the dashboard's open incidents and the wall's cards (one query for all)."""
    clocks = (
        {}
        if states_unreadable()
        else IncidentClock.objects.in_bulk([i.upstream_id for i in incidents], field_name="incident_upstream_id")
    )
    for incident in incidents:
        clock = clocks.get(incident.upstream_id)
        incident.durations = durations(clock, now=now) if clock else declared_only(incident, now=now)
    return incidents


def _period(opened: str, resolved: str | None, *, now: datetime) -> Period:
    start, end = _moment(opened), _moment(resolved) if resolved else None
    return Period(opened=start, resolved=end, seconds=_seconds((end or now) - start))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _seconds(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds()))
