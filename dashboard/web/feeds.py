"""The read side: what each page shows, as named queries. Nothing here writes.

Views, the WebSocket snapshot and live/push.py all build their context here, so a page, its snapshot
after a reconnect and its live updates always agree.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Case, Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Value, When, Window
from django.db.models.functions import Left, Length, Lower, RowNumber, Trim
from django.db.models.lookups import Exact

from dashboard.models import Event, EventStatus, Incident, IncidentNote, Pipeline, Screen, ScreenPanel
from dashboard.web.filters import EventFilter, moment
from dashboard.web.markdown import RENDERED_CHARS_MAX

FEED_PAGE_SIZE = 50
# The most rows a wall is sent; the page shows what fits its screen and counts the rest as "+N more".
WALL_ROWS = {"builds": 40, "incidents": 30, "activity": 40}
OPEN_INCIDENTS_SHOWN = 50  # the dashboard's cards, worst first; the summary counts every open incident
SEVERITY_RANK = {"critical": 0, "major": 1, "minor": 2}
# The most of a note's markdown an incident card (dashboard, wall, their pushes) loads: it shows the start
# of the latest note, and the whole of it is one click away on the incident's timeline.
NOTE_EXCERPT_CHARS = 2000
STATE_RANK = {"created": 0, "investigating": 0, "identified": 1, "acknowledged": 2, "monitoring": 3}
CURSOR = re.compile(r"(?P<timestamp>[^~]+)~(?P<pk>[0-9]{1,18})")  # timestamp~id; 18 digits fit a bigint
CHOICES = {
    "projects": "project",
    "repositories": "repository",
    "targets": "target",
    "operations": "operation",
    "people": "subject_id",
}
CHOICES_SHOWN = 200
# A loose index scan: each step asks the column's index for the next value up, so the cost is one index
# probe per distinct value (at most CHOICES_SHOWN), not a scan of every event as DISTINCT would be.
CHOICES_SQL = """
WITH RECURSIVE found (value, n) AS (
    SELECT MIN({column}), 1 FROM {table} WHERE {column} > ''
    UNION ALL
    SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value), n + 1
    FROM found WHERE found.value IS NOT NULL AND n < %s
)
SELECT value FROM found WHERE value IS NOT NULL
"""


@dataclass(frozen=True)
class FeedPage:
    events: list[Event]
    next_cursor: str  # empty on the last page


def event_feed(*, event_filter: EventFilter, before: str = "", limit: int = FEED_PAGE_SIZE) -> FeedPage:
    """Newest first, paged by the (timestamp, id) of the last row shown: no OFFSET scans, however deep."""
    events = event_filter.apply(Event.objects.all())
    position = _cursor(before)
    if position:
        timestamp, pk = position
        # `timestamp <= t` is redundant but lets the index start at the cursor instead of filtering down to it.
        events = events.filter(Q(timestamp__lt=timestamp) | Q(timestamp=timestamp, pk__lt=pk), timestamp__lte=timestamp)
    rows = list(events.order_by("-timestamp", "-pk")[: limit + 1])
    more = len(rows) > limit
    rows = mark_superseded(rows[:limit])
    return FeedPage(events=rows, next_cursor=f"{rows[-1].timestamp.isoformat()}~{rows[-1].pk}" if more else "")


def mark_superseded(events: list[Event]) -> list[Event]:
    """`superseded` on each unfinished build run that is not its pipeline's newest run (one query, only when there are some)."""
    unfinished = [e.pk for e in events if e.target == "build" and e.status in (EventStatus.LIVE, EventStatus.STALE)]
    current = (
        set(Pipeline.objects.filter(latest_run__in=unfinished).values_list("latest_run", flat=True)) if unfinished else set()
    )
    for event in events:
        event.superseded = event.pk in unfinished and event.pk not in current
    return events


def filter_choices() -> dict[str, list[str]]:
    """The values the filter form suggests, in order; each column has an index that it leads."""
    choices = {}
    with connection.cursor() as cursor:
        for name, column in CHOICES.items():
            sql = CHOICES_SQL.format(
                column=connection.ops.quote_name(column), table=connection.ops.quote_name(Event._meta.db_table)
            )
            cursor.execute(sql, [CHOICES_SHOWN])
            choices[name] = [value for (value,) in cursor.fetchall()]
    return choices


def live_events(*, event_filter: EventFilter) -> QuerySet[Event]:
    """Unfinished events, except a build run a newer run of its pipeline has superseded."""
    current = ~Q(target="build") | Exists(Pipeline.objects.filter(latest_run=OuterRef("pk")))
    return event_filter.apply(Event.objects.filter(current, status__in=[EventStatus.LIVE, EventStatus.STALE])).order_by(
        "-timestamp", "-pk"
    )


def open_incidents(*, limit: int = OPEN_INCIDENTS_SHOWN) -> list[Incident]:
    """The `limit` worst unresolved incidents (see `open_ranked`), each with its latest note (`recent_notes`, one at most).

    Only what a card shows is loaded: the latest note of each, as its first NOTE_EXCERPT_CHARS in `excerpt`
    (`cut` says there is more), and no `raw` copies. Every render and push of the open incidents runs this;
    `incident_counts()` counts them all.
    """
    latest = (
        IncidentNote.objects.filter(deleted=False)
        .annotate(rank=Window(RowNumber(), partition_by=F("incident_id"), order_by=["-posted_at", "-pk"]))
        .filter(rank=1)
        .only("incident_id", "upstream_id", "created_by_name", "created_by_email", "posted_at")
        .annotate(excerpt=Left("note", NOTE_EXCERPT_CHARS), note_length=Length("note"))
    )
    incidents = list(
        open_ranked().defer("raw").prefetch_related(Prefetch("notes", queryset=latest, to_attr="recent_notes"))[:limit]
    )
    for incident in incidents:
        for note in incident.recent_notes:
            note.cut = note.note_length > NOTE_EXCERPT_CHARS
    return incidents


def open_ranked() -> QuerySet[Incident]:
    """Unresolved incidents, worst first: by severity, then state (nobody on it yet comes first), then age
    (oldest first), so the worst is never cut off; ranked in SQL, so a thousand open ones are never all loaded."""
    return (
        Incident.objects.filter(is_resolved=False)
        .annotate(severity_rank=_rank(Lower(Trim("severity")), SEVERITY_RANK), state_rank=_rank(Lower(Trim("state")), STATE_RANK))
        .order_by("severity_rank", "state_rank", F("declared_at").asc(nulls_last=True), "-pk")
    )


def incident_counts() -> dict[str, int]:
    """Every open incident, and the critical and major ones: the numbers the summary and the wall's strip show."""
    severity = Lower(Trim("severity"))
    return Incident.objects.filter(is_resolved=False).aggregate(
        open=Count("pk"),
        critical=Count("pk", filter=Exact(severity, "critical")),
        major=Count("pk", filter=Exact(severity, "major")),
    )


def _rank(value, ranks: dict[str, int]) -> Case:
    return Case(*[When(Exact(value, name), then=Value(rank)) for name, rank in ranks.items()], default=Value(len(ranks)))


def timeline(incident: Incident) -> list[IncidentNote]:
    """One chronological timeline; a backdated or edited `postedAt` moves the note to its place.

    Each note comes with as much of its text as markdown.py renders (`shown`) and its whole length, not the
    whole text: the timeline is rendered again for every push of its incident."""
    return list(
        incident.notes.filter(deleted=False)
        .defer("note", "raw")
        .annotate(shown=Left("note", RENDERED_CHARS_MAX), note_length=Length("note"))
        .order_by("posted_at", "created_at", "pk")
    )


def wall_activity(*, project: str = "", limit: int = WALL_ROWS["activity"]) -> list[Event]:
    events = Event.objects.exclude(target="build")
    if project:
        events = events.filter(project=project)
    return list(events.order_by("-timestamp", "-pk")[:limit])


def screen_for(key: str) -> Screen | None:
    """The screen a kiosk key opens, carrying that key for the page's own socket."""
    screen = Screen.objects.with_key(key).prefetch_related("panels").first()
    if screen:
        screen.key = key
    return screen


def screen_panels(screen: Screen | None) -> list[dict]:
    """The panels a wall shows, in order, with their dwell times (every panel when no screen is set)."""
    panels = list(screen.panels.all()) if screen and screen.pk else []
    if not panels:
        return [{"panel": value, "dwell": 20} for value in ScreenPanel.Panel.values]
    return [{"panel": panel.panel, "dwell": panel.dwell_seconds} for panel in panels]


def wall_rows(screen: Screen | None) -> dict[str, int]:
    """The most rows sent; live.js shows what fits and counts the rest, so bigger text means fewer rows, never smaller text."""
    return dict(WALL_ROWS)


def _cursor(before: str) -> tuple[datetime, int] | None:
    """The (timestamp, id) a "before" value names; a hand-edited one that does not parse starts at the top."""
    match = CURSOR.fullmatch(before)
    timestamp = moment(match["timestamp"]) if match else None
    return (timestamp, int(match["pk"])) if timestamp else None
