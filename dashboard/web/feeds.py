"""The read side: what each page shows, as named queries. Nothing here writes.

Views, the WebSocket snapshot and live/push.py all build their context here, so a page, its snapshot
after a reconnect and its live updates always agree.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from dashboard.models import Event, EventStatus, Incident, IncidentNote, Screen, ScreenPanel
from dashboard.web.filters import EventFilter, moment

FEED_PAGE_SIZE = 50
RECENT_RESULTS = timedelta(hours=24)
WALL_ROWS = {"builds": 7, "results": 8, "incidents": 4, "activity": 12}
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
    rows = rows[:limit]
    return FeedPage(events=rows, next_cursor=f"{rows[-1].timestamp.isoformat()}~{rows[-1].pk}" if more else "")


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
    return event_filter.apply(Event.objects.filter(status__in=[EventStatus.LIVE, EventStatus.STALE])).order_by(
        "-timestamp", "-pk"
    )


def open_incidents() -> list[Incident]:
    """Unresolved incidents, newest first, each with its notes newest first (`recent_notes`)."""
    notes = IncidentNote.objects.filter(deleted=False).order_by("-posted_at", "-pk")
    return list(
        Incident.objects.filter(is_resolved=False)
        .order_by("-declared_at", "-pk")
        .prefetch_related(Prefetch("notes", queryset=notes, to_attr="recent_notes"))
    )


def timeline(incident: Incident) -> list[IncidentNote]:
    """One chronological timeline; a backdated or edited `postedAt` moves the note to its place."""
    return list(incident.notes.filter(deleted=False).order_by("posted_at", "created_at", "pk"))


@dataclass(frozen=True)
class WallBuilds:
    running: list[Event]
    running_more: int
    results: list[Event]
    results_more: int
    failures: int


def wall_builds(*, project: str = "", now: datetime, rows: dict[str, int] = WALL_ROWS) -> WallBuilds:
    """Running and stalled builds, then the last result of every other build, failures first."""
    builds = Event.objects.filter(target="build")
    if project:
        builds = builds.filter(project=project)
    running = list(builds.filter(status__in=[EventStatus.LIVE, EventStatus.STALE]).order_by("-timestamp", "-pk")[:100])
    running_keys = {_build_key(event) for event in running}
    recent = builds.filter(status__in=[EventStatus.COMPLETED, EventStatus.FAILED], timestamp__gte=now - RECENT_RESULTS)
    latest: dict[tuple, Event] = {}
    for event in recent.order_by("-timestamp", "-pk")[:500]:
        latest.setdefault(_build_key(event), event)
    results = [event for key, event in latest.items() if key not in running_keys]
    results.sort(key=lambda event: (event.status != EventStatus.FAILED, -event.timestamp.timestamp()))
    return WallBuilds(
        running=running[: rows["builds"]],
        running_more=max(0, len(running) - rows["builds"]),
        results=results[: rows["results"]],
        results_more=max(0, len(results) - rows["results"]),
        failures=sum(event.status == EventStatus.FAILED for event in results),
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
    """Bigger text means fewer rows: the wall shows "+N more" rather than shrinking anything."""
    scale = max(0.5, min(3.0, screen.text_scale if screen else 1.0))
    return {name: max(1, int(count / scale)) for name, count in WALL_ROWS.items()}


def _build_key(event: Event) -> tuple:
    return (event.project, event.repository, event.name or event.ref)


def _cursor(before: str) -> tuple[datetime, int] | None:
    """The (timestamp, id) a "before" value names; a hand-edited one that does not parse starts at the top."""
    match = CURSOR.fullmatch(before)
    timestamp = moment(match["timestamp"]) if match else None
    return (timestamp, int(match["pk"])) if timestamp else None
