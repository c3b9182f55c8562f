"""The read side: what each page shows, as named queries. Nothing here writes.

Views, the WebSocket snapshot and live/push.py all build their context here, so a page, its snapshot
after a reconnect and its live updates always agree.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import F, Prefetch, Q, QuerySet, Window
from django.db.models.functions import Left, Length, RowNumber

from dashboard.models import Event, EventStatus, Incident, IncidentNote, Screen, ScreenPanel
from dashboard.web.filters import EventFilter, moment
from dashboard.web.markdown import RENDERED_CHARS_MAX

FEED_PAGE_SIZE = 50
RECENT_RESULTS = timedelta(hours=24)
# The most rows a wall is sent; the page shows what fits its screen and counts the rest as "+N more".
WALL_ROWS = {"builds": 40, "incidents": 30, "activity": 40}
RECENT_RUNS = 5  # finished runs of a pipeline that predict how long its running build will take
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
    """Unresolved incidents, worst first (see `incident_rank`), each with its latest note (`recent_notes`, one at most).

    Only what a card shows is loaded: the latest note of each, as its first NOTE_EXCERPT_CHARS in `excerpt`
    (`cut` says there is more), and no `raw` copies. Every render and push of the open incidents runs this.
    """
    latest = (
        IncidentNote.objects.filter(deleted=False)
        .annotate(rank=Window(RowNumber(), partition_by=F("incident_id"), order_by=["-posted_at", "-pk"]))
        .filter(rank=1)
        .only("incident_id", "upstream_id", "created_by_name", "created_by_email", "posted_at")
        .annotate(excerpt=Left("note", NOTE_EXCERPT_CHARS), note_length=Length("note"))
    )
    incidents = list(
        Incident.objects.filter(is_resolved=False)
        .defer("raw")
        .order_by("-declared_at", "-pk")
        .prefetch_related(Prefetch("notes", queryset=latest, to_attr="recent_notes"))
    )
    for incident in incidents:
        for note in incident.recent_notes:
            note.cut = note.note_length > NOTE_EXCERPT_CHARS
    incidents.sort(key=incident_rank)  # stable: equal ranks stay newest first
    return incidents


def severity_rank(incident: Incident) -> int:
    return SEVERITY_RANK.get(incident.severity.strip().lower(), len(SEVERITY_RANK))


def incident_rank(incident: Incident) -> tuple:
    """Severity, then state (nobody on it yet comes first), then age (oldest first): the worst is never cut off."""
    state = STATE_RANK.get(incident.state.strip().lower(), len(STATE_RANK))
    declared = incident.declared_at.timestamp() if incident.declared_at else float("inf")
    return (severity_rank(incident), state, declared)


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


@dataclass(frozen=True)
class BuildTile:
    """One pipeline (project, repository, build name) on the wall: its newest run and what to expect of it."""

    key: str  # a stable DOM id, so a push changes the tile in place
    run: Event
    state: str  # failed, stalled, running or passed
    typical: timedelta | None  # the median of the pipeline's recent finished runs

    @property
    def duration(self) -> timedelta | None:
        return _duration(self.run)

    @property
    def expected_end(self) -> datetime | None:
        """When a running build should finish, going by its pipeline's recent runs; the page counts down to it."""
        return self.run.timestamp + self.typical if self.state == "running" and self.typical else None

    @property
    def number(self) -> str:
        """The CI's build number, from the last numeric part of the build's link (".../job/x/412")."""
        for url in self.run.resources or []:
            last = str(url).rstrip("/").rsplit("/", 1)[-1]
            if last.isdigit():
                return last
        return ""

    @property
    def commit(self) -> str:
        commits = self.run.commits or []
        first = commits[0] if commits else self.run.last_commit
        sha = first.get("id") if isinstance(first, dict) else first
        return str(sha)[:8] if sha else ""

    @property
    def branch(self) -> str:
        bookmarks = [str(b) for b in self.run.bookmarks or [] if b]
        return self.run.ref or (bookmarks[0] if bookmarks else "")


@dataclass(frozen=True)
class WallBuilds:
    tiles: list[BuildTile]
    more: int  # pipelines not sent at all
    failing: int
    running: int
    stalled: int


TILE_ORDER = {"failed": 0, "stalled": 1, "running": 2, "passed": 3}


def wall_builds(*, project: str = "", now: datetime, rows: dict[str, int] = WALL_ROWS) -> WallBuilds:
    """A tile per pipeline seen in the last day: failures first, then stalled, running, passed; by name within each."""
    builds = Event.objects.filter(target="build")
    if project:
        builds = builds.filter(project=project)
    unfinished = Q(status__in=[EventStatus.LIVE, EventStatus.STALE])
    runs: dict[tuple, list[Event]] = {}
    for event in builds.filter(unfinished | Q(timestamp__gte=now - RECENT_RESULTS)).order_by("-timestamp", "-pk")[:1000]:
        runs.setdefault(_build_key(event), []).append(event)
    tiles = []
    for key, pipeline in runs.items():
        newest = pipeline[0]
        state = {EventStatus.FAILED: "failed", EventStatus.STALE: "stalled", EventStatus.LIVE: "running"}.get(
            newest.status, "passed"
        )
        finished = [d for d in (_duration(run) for run in pipeline if run.status == EventStatus.COMPLETED) if d]
        typical = sorted(finished[:RECENT_RUNS])[len(finished[:RECENT_RUNS]) // 2] if finished else None
        tiles.append(BuildTile(key=_tile_id(key), run=newest, state=state, typical=typical))
    tiles.sort(key=lambda tile: (TILE_ORDER[tile.state], [part.lower() for part in _build_key(tile.run)]))
    count = {state: sum(tile.state == state for tile in tiles) for state in TILE_ORDER}
    return WallBuilds(
        tiles=tiles[: rows["builds"]],
        more=max(0, len(tiles) - rows["builds"]),
        failing=count["failed"],
        running=count["running"] + count["stalled"],
        stalled=count["stalled"],
    )


def _duration(event: Event) -> timedelta | None:
    if event.status in (EventStatus.LIVE, EventStatus.STALE) or not event.updated_at:
        return None
    duration = event.updated_at - event.timestamp
    return duration if duration > timedelta(0) else None


def _tile_id(key: tuple) -> str:
    return "tile-" + hashlib.blake2s("\x1f".join(key).encode(), digest_size=8).hexdigest()


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


def _build_key(event: Event) -> tuple:
    return (event.project, event.repository, event.name or event.ref)


def _cursor(before: str) -> tuple[datetime, int] | None:
    """The (timestamp, id) a "before" value names; a hand-edited one that does not parse starts at the top."""
    match = CURSOR.fullmatch(before)
    timestamp = moment(match["timestamp"]) if match else None
    return (timestamp, int(match["pk"])) if timestamp else None
