"""The read side of pipelines: tiles, counts and the strip's level, read from the derived Pipeline rows.

One definition behind every place that counts builds: the wall's strip, the dashboard's summary, the
pipelines list and the wall's tiles all read `pipeline_counts()` and the rows' `state` (derived by
dashboard/live/pipelines.py), never the events themselves.
"""

import hashlib
import html
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.db.models import Count, Prefetch, Q, QuerySet, prefetch_related_objects
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from dashboard.models import (
    Event,
    EventStatus,
    Pipeline,
    PipelineState,
    person_name,
    pipeline_priority,
    pipeline_runs,
    runs_before,
)
from dashboard.templatetags.pulseboard import span
from dashboard.web import tile_cache

# Tiles keep their place: ordered by bucket, then by name. Running and passing share a bucket, so a build
# that starts or passes changes its tile in place; only failing and stalling move a tile (to the front).
BUCKETS = {PipelineState.FAILING: 0, PipelineState.STALLED: 1, PipelineState.RUNNING: 2, PipelineState.PASSING: 2}
# Which tiles a screen shows when not all fit is models.PIPELINE_PRIORITY; `rank` says so to live.js, which
# hides the highest ranks first.
RECENT_PASSING = timedelta(hours=24)  # a passing pipeline that has not run for a day leaves the wall
FIXED_SHOWN = timedelta(hours=1)  # how long a tile says who fixed it
WALL_TILES = 40
LISTED_MOST = 500  # rows on /pipelines/, which says how many more there are
HEAVY_FIELDS = ("raw", "files", "linked_objects", "code_reviews")  # what no tile or row shows
DRAWN_FIELDS = ("recent_runs", "flaky_commits")  # what only drawing a tile reads: not loaded for a tile kept drawn
LIST = "dashboard/pipelines.html"
TILE = "dashboard/_pipeline.html"
PAGE = "dashboard/pipeline.html"
LIST_STATES = {"failing": "Failing pipelines", "running": "Running pipelines", "stalled": "Stalled pipelines"}
STRIP_WIDTH, STRIP_HEIGHT, BAR_GAP = 300, 40, 2
SYMBOLS = {"passed": "✓", "failed": "✗", "running": "▶", "stalled": "⏸", "superseded": "↷"}
LEVEL_WORDS = {"red": "✗ Failing", "amber": "⏸ Attention", "notice": "⚠ Incident open", "clear": "✓ All clear"}


@dataclass(frozen=True)
class PipelineCounts:
    failing: int = 0
    running: int = 0  # pipelines with a run in progress, failing ones re-running included
    stalled: int = 0
    rerunning: int = 0


def pipeline_counts(*, project: str = "") -> PipelineCounts:
    """One query; a superseded run never counts, since only a pipeline's newest run can be in progress here."""
    return PipelineCounts(**_rows(project).aggregate(**_count_filters()))


def _count_filters() -> dict[str, Count]:
    failing = Q(state=PipelineState.FAILING)
    live, stale = Q(current_status=EventStatus.LIVE), Q(current_status=EventStatus.STALE)
    return {
        "failing": Count("pk", filter=failing),
        "running": Count("pk", filter=live),
        "stalled": Count("pk", filter=stale),
        "rerunning": Count("pk", filter=failing & (live | stale)),
    }


def _rows(project: str) -> QuerySet[Pipeline]:
    return Pipeline.objects.filter(project=project) if project else Pipeline.objects.all()


def level(counts: PipelineCounts, incident_counts: dict[str, int]) -> str:
    """The strip's level, over builds and incidents together: never "clear" beside an open incident."""
    if counts.failing or incident_counts["critical"]:
        return "red"
    if counts.stalled or incident_counts["major"]:
        return "amber"
    if incident_counts["open"]:
        return "notice"
    return "clear"


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__, 1,200 bars a wall
class Bar:
    id: str
    result: str  # one of RESULTS' words, or "superseded": ours, never upstream's
    symbol: str
    x: float
    y: float
    width: float
    height: float
    seconds: float | None
    at: str
    progress: int

    @property
    def title(self) -> str:
        if self.seconds:
            return f"{self.symbol} {self.result} in {span(timedelta(seconds=self.seconds))}"
        if self.result in ("running", "stalled", "superseded"):
            return f"{self.symbol} {self.result} at {self.progress}%"
        return f"{self.symbol} {self.result}"


def run_strip(bars: list[Bar]) -> SafeString:
    """The run strip as inline SVG, made here rather than in the template: 40 tiles of 30 bars were 14,000 template
    variables (0.3 s a wall). The two outside values, a run's id and its title, are escaped; the rest are our own
    words and numbers. A failed bar is crossed out, so the result is a shape as well as a colour."""
    shapes = []
    for bar in bars:
        x, y, width, height = _n(bar.x), _n(bar.y), _n(bar.width), _n(bar.height)
        cross = (
            f'<path class="run-cross" d="M{x} {y}l{width} {height}m0 -{height}l-{width} {height}"/>'
            if bar.result == "failed"
            else ""
        )
        shapes.append(
            f'<g class="run run--{bar.result}" data-run-id="{html.escape(bar.id)}" data-run-result="{bar.result}">'
            f'<title>{html.escape(bar.title)}</title><rect x="{x}" y="{y}" width="{width}" height="{height}"/>{cross}</g>'
        )
    label = f"last {len(bars)} runs, oldest first"
    return mark_safe(  # noqa: S308 (every outside value above is escaped)
        f'<svg class="run-strip" viewBox="0 0 {STRIP_WIDTH} {STRIP_HEIGHT}" preserveAspectRatio="none" role="img"'
        f' aria-label="{label}">{"".join(shapes)}</svg>'
    )


def _n(number: float) -> str:
    """SVG numbers are never localized ("12,5" would break them)."""
    return f"{number:g}"


@dataclass(frozen=True)
class PipelineView:
    """A pipeline as a tile or a row shows it, at `now`."""

    pipeline: Pipeline
    now: datetime
    rank: int = 0

    @cached_property
    def bars(self) -> list[Bar]:
        return strip_bars(self.pipeline.recent_runs, now=self.now)

    def cache_key(self, shape: str = "pipeline-tile") -> tuple:
        """What the tile shows: its row's revision, its rank, whether "fixed by" still shows and, while a run is
        live, the minute (its bar grows with the time it has taken). The rest of its times the page rewrites."""
        growing = self.now.replace(second=0, microsecond=0) if self.pipeline.current_status == EventStatus.LIVE else None
        return (shape, self.pipeline.pk, self.pipeline.revision, self.rank, self.recently_fixed, growing)

    @property
    def wall_html(self) -> SafeString:
        """The wall's tile, rendered again only when what it shows changed (web/tile_cache.py)."""
        return tile_cache.tile(self.cache_key(), lambda: render_to_string(f"{TILE}#pipeline-tile", {"tile": self}))

    @property
    def row_html(self) -> SafeString:
        """The pipelines list's row, kept as the tile is."""
        return tile_cache.tile(self.cache_key("pipeline-row"), lambda: render_to_string(f"{TILE}#pipeline-row", {"tile": self}))

    @property
    def slug(self) -> str:
        return self.pipeline.slug

    @property
    def strip(self) -> SafeString:
        return run_strip(self.bars)

    @property
    def key(self) -> str:
        """A stable DOM id, so a push changes the tile in place."""
        return "pipeline-" + hashlib.blake2s(self.slug.encode(), digest_size=8).hexdigest()

    @property
    def url(self) -> str:
        p = self.pipeline
        if not (p.project and p.repository and p.name):
            return ""
        return reverse("pipeline", args=[p.project, p.repository, p.name])

    @property
    def state(self) -> str:
        return self.pipeline.state

    @property
    def run(self):
        return self.pipeline.latest_run

    @property
    def current(self):
        run = self.pipeline.latest_run
        return run if run is not None and run.status in (EventStatus.LIVE, EventStatus.STALE) else None

    @property
    def rerunning(self) -> bool:
        return self.state == PipelineState.FAILING and self.current is not None

    @property
    def tone(self) -> str:
        """The tile's colour: failed, stalled, running or passed (CSS classes shared with the old tiles)."""
        return {"failing": "failed", "passing": "passed"}.get(self.state, self.state)

    @property
    def recently_fixed(self) -> bool:
        fixed_at = self.pipeline.fixed_at
        return self.state == PipelineState.PASSING and fixed_at is not None and self.now - fixed_at <= FIXED_SHOWN

    @property
    def red_for(self) -> timedelta | None:
        return timedelta(seconds=self.pipeline.red_seconds) if self.pipeline.red_seconds is not None else None

    @property
    def median(self) -> timedelta | None:
        seconds = self.pipeline.median_seconds
        return timedelta(seconds=seconds) if seconds is not None else None

    @property
    def p95(self) -> timedelta | None:
        seconds = self.pipeline.p95_seconds
        return timedelta(seconds=seconds) if seconds is not None else None

    @property
    def expected_end(self) -> datetime | None:
        current = self.current
        if current is None or current.status != EventStatus.LIVE or self.median is None:
            return None
        return current.timestamp + self.median

    @property
    def success_percent(self) -> int | None:
        p = self.pipeline
        return round(100 * p.passed_30d / p.runs_30d) if p.runs_30d else None

    @property
    def last_duration(self) -> timedelta | None:
        last = self.pipeline.last_finished
        if last is None or not last.updated_at or last.updated_at <= last.timestamp:
            return None
        return last.updated_at - last.timestamp

    @property
    def number(self) -> str:
        """The CI's build number, from the last numeric part of the run's link (".../job/x/412")."""
        for url in (self.run.resources if self.run else None) or []:
            last = str(url).rstrip("/").rsplit("/", 1)[-1]
            if last.isdigit():
                return last
        return ""

    @property
    def commit(self) -> str:
        run = self.run
        commits = (run.commits if run else None) or []
        first = commits[0] if commits else (run.last_commit if run else "")
        sha = first.get("id") if isinstance(first, dict) else first
        return str(sha)[:8] if sha else ""

    @property
    def branch(self) -> str:
        run = self.run
        if run is None:
            return ""
        bookmarks = [str(b) for b in run.bookmarks or [] if b]
        return run.ref or (bookmarks[0] if bookmarks else "")


def view(pipeline: Pipeline, *, now: datetime, rank: int = 0) -> PipelineView:
    return PipelineView(pipeline=pipeline, now=now, rank=rank)


def strip_bars(runs: list[dict], *, now: datetime) -> list[Bar]:
    """The run strip as SVG geometry: one bar per run, oldest left, height by duration (a running run by its time so far)."""
    seconds = [_bar_seconds(run, now) for run in runs]
    tallest = max([s for s in seconds if s] or [1])
    width = STRIP_WIDTH / 30
    bars = []
    for index, (run, spent) in enumerate(zip(runs, seconds, strict=True)):
        height = max(4.0, STRIP_HEIGHT * min(1.0, (spent or 0) / tallest))
        x = STRIP_WIDTH - (len(runs) - index) * width
        bars.append(
            Bar(
                id=run["id"],
                result=run["result"],
                symbol=SYMBOLS.get(run["result"], ""),
                x=round(x + BAR_GAP / 2, 1),
                y=round(STRIP_HEIGHT - height, 1),
                width=round(width - BAR_GAP, 1),
                height=round(height, 1),
                seconds=run["seconds"],
                at=run["at"],
                progress=run["progress"],
            )
        )
    return bars


def _bar_seconds(run: dict, now: datetime) -> float | None:
    if run["seconds"] is not None:
        return run["seconds"]
    if run["result"] == "running":
        return max(0.0, (now - datetime.fromisoformat(run["at"])).total_seconds())
    return None


@dataclass(frozen=True)
class WallBuilds:
    tiles: list[PipelineView]
    more: int  # pipelines not sent at all
    counts: PipelineCounts

    @property
    def failing(self) -> int:
        return self.counts.failing

    @property
    def running(self) -> int:
        return self.counts.running

    @property
    def stalled(self) -> int:
        return self.counts.stalled


def wall_builds(*, project: str = "", now: datetime, limit: int = WALL_TILES) -> WallBuilds:
    """The tiles a wall is sent: chosen by PIPELINE_PRIORITY (failing, stalled, running, then most recently finished), shown by BUCKETS."""
    shown = _rows(project).filter(_on_wall(now)).defer(*DRAWN_FIELDS)
    chosen = shown.annotate(priority=pipeline_priority()).order_by("priority", "-finished_at", "pk")[:limit]
    tiles = [view(pipeline, now=now, rank=rank) for rank, pipeline in enumerate(chosen)]
    fetch_runs([tile.pipeline for tile in tiles if not tile_cache.has(tile.cache_key())])  # a kept tile needs none
    tiles.sort(key=lambda tile: (BUCKETS[tile.state], tile.slug.lower(), tile.slug))
    counts = _rows(project).aggregate(**_count_filters(), shown=Count("pk", filter=_on_wall(now)))
    more = max(0, counts.pop("shown") - len(tiles))
    return WallBuilds(tiles=tiles, more=more, counts=PipelineCounts(**counts))


def _on_wall(now: datetime) -> Q:
    """Every pipeline that is not passing, and the passing ones that ran within a day."""
    return ~Q(state=PipelineState.PASSING) | Q(last_run_at__gte=now - RECENT_PASSING)


def listed(*, state: str = "", now: datetime) -> tuple[list[PipelineView], int]:
    """The pipelines page: every pipeline, or those the dashboard's count named, worst first (the first
    LISTED_MOST of them), and how many there are."""
    rows = Pipeline.objects.all()
    if state == "failing":
        rows = rows.filter(state=PipelineState.FAILING)
    elif state == "running":
        rows = rows.filter(current_status=EventStatus.LIVE)
    elif state == "stalled":
        rows = rows.filter(current_status=EventStatus.STALE)
    rows = rows.annotate(priority=pipeline_priority()).order_by("priority", "project", "repository", "name")
    listed = [view(pipeline, now=now) for pipeline in rows[:LISTED_MOST]]
    fetch_runs([row.pipeline for row in listed if not tile_cache.has(row.cache_key("pipeline-row"))])
    return listed, (len(listed) if len(listed) < LISTED_MOST else rows.count())


def fetch_runs(rows: list[Pipeline]) -> None:
    """Each row's current and last finished run, read after the rows are chosen: joined, PostgreSQL looked up
    the runs of every pipeline before it sorted and cut them (14 of the wall's 20 ms at 2,000 pipelines).
    Rows read without their DRAWN_FIELDS get those too: only a tile drawn again needs them."""
    runs = Event.objects.defer(*HEAVY_FIELDS)
    prefetch_related_objects(rows, Prefetch("latest_run", queryset=runs), Prefetch("last_finished", queryset=runs))
    deferred = [row for row in rows if row.get_deferred_fields() & set(DRAWN_FIELDS)]
    drawn = Pipeline.objects.filter(pk__in=[row.pk for row in deferred]).values_list("pk", *DRAWN_FIELDS) if deferred else []
    values = {pk: fields for pk, *fields in drawn}
    for row in deferred:
        for name, value in zip(DRAWN_FIELDS, values.get(row.pk, ([], [])), strict=True):
            setattr(row, name, value)


PAGE_RUNS = 50  # runs a page of the runs table lists, newest first; "Older runs" goes on from the last one
TREND_RUNS = 100  # finished runs the duration trend plots
HISTORY_RUNS = 1_000  # the newest runs the red periods are read from
TREND_WIDTH, TREND_HEIGHT = 600, 120


@dataclass(frozen=True)
class Run:
    event: Event
    result: str
    duration: timedelta | None


@dataclass(frozen=True)
class RedPeriod:
    started: datetime
    runs: int
    fixed_by: str = ""
    fixed_at: datetime | None = None

    @property
    def lasted(self) -> timedelta | None:
        return self.fixed_at - self.started if self.fixed_at else None


def page_context(*, pipeline: Pipeline, now: datetime, before: str = "") -> dict:
    """The pipeline page: its red periods and duration trend, and its runs a page at a time, newest first.

    `before` is the upstream id of the last run of the page before: the runs older than it follow. A page
    of older runs is not live (the newest page is), so what someone is reading never jumps back to page one.
    """
    runs_qs = pipeline_runs(pipeline.project, pipeline.repository, pipeline.name)
    after = runs_qs.filter(upstream_id=before).only("timestamp", "upstream_id").first() if before else None
    listed = runs_before(runs_qs, after) if after else runs_qs
    page = [
        Run(event=event, result=_result(event, pipeline), duration=_duration(event))
        for event in listed.defer(*HEAVY_FIELDS)[: PAGE_RUNS + 1]
    ]
    # The newest HISTORY_RUNS as plain values, newest first: the red periods and the trend are both read from them.
    history = list(runs_qs.values_list("pk", "upstream_id", "status", "timestamp", "updated_at")[:HISTORY_RUNS])
    finished = [
        (upstream_id, _result_of(status, pk, pipeline), _span(timestamp, updated_at))
        for pk, upstream_id, status, timestamp, updated_at in history
        if status in (EventStatus.COMPLETED, EventStatus.FAILED)
    ][:TREND_RUNS]
    return {
        "tile": view(pipeline, now=now),
        "runs": page[:PAGE_RUNS],
        "older": page[PAGE_RUNS - 1].event.upstream_id if len(page) > PAGE_RUNS else "",
        "before": after.upstream_id if after else "",
        "red_periods": red_periods(history),
        "trend": trend(finished),
        "now": now,
    }


def red_periods(history: list[tuple]) -> list[RedPeriod]:
    """Runs of failures among the newest runs (pk, upstream_id, status, timestamp, updated_at; newest first),
    newest first, each with the passing run that ended it (none for one still red); then the fixing runs
    alone as rows, for their people."""
    found, started, count = [], None, 0
    for pk, _, status, timestamp, updated_at in reversed(history):  # oldest first
        if status == EventStatus.FAILED:
            started, count = started or timestamp, count + 1
        elif status == EventStatus.COMPLETED and started:
            found.append((started, count, pk, max(timestamp, updated_at or timestamp)))
            started, count = None, 0
    fixers = Event.objects.only("subject", "subject_id").in_bulk([pk for _, _, pk, _ in found])
    periods = [
        RedPeriod(started=started, runs=count, fixed_by=person_name(fixers[pk]) if pk in fixers else "someone", fixed_at=ended)
        for started, count, pk, ended in found
    ]
    if started:
        periods.append(RedPeriod(started=started, runs=count))
    return periods[::-1]


def trend(runs: list[tuple[str, str, timedelta | None]]) -> dict:
    """The duration of each finished run (upstream id, result, duration; newest first), oldest left, as SVG
    (made here, as the run strip is), with the median as a line."""
    finished = [(run_id, result, duration) for run_id, result, duration in reversed(runs) if duration is not None]
    if not finished:
        return {"svg": "", "runs": 0}
    tallest = max(duration.total_seconds() for _, _, duration in finished) or 1
    step = TREND_WIDTH / max(1, len(finished) - 1)
    points, dots = [], []
    for index, (run_id, result, duration) in enumerate(finished):
        x, y = _n(round(index * step, 1)), _n(round(TREND_HEIGHT - TREND_HEIGHT * duration.total_seconds() / tallest, 1))
        points.append(f"{x},{y}")
        dots.append(
            f'<circle class="run--{result}" cx="{x}" cy="{y}" r="3" data-run-id="{html.escape(run_id)}"'
            f' data-run-result="{result}"><title>{span(duration)} · {result}</title></circle>'
        )
    median = statistics.median(sorted(duration.total_seconds() for _, _, duration in finished))
    median_y = _n(round(TREND_HEIGHT - TREND_HEIGHT * median / tallest, 1))
    svg = (
        f'<svg class="trend" viewBox="-4 -4 {TREND_WIDTH + 8} {TREND_HEIGHT + 8}" role="img"'
        ' aria-label="durations, oldest left; the line is the median">'
        f'<line class="trend-median" x1="0" x2="{TREND_WIDTH}" y1="{median_y}" y2="{median_y}"/>'
        f'<polyline class="trend-line" points="{" ".join(points)}"/>{"".join(dots)}</svg>'
    )
    return {
        "svg": mark_safe(svg),  # noqa: S308 (the one outside value, a run's id, is escaped)
        "runs": len(finished),
        "median": timedelta(seconds=median),
        "tallest": timedelta(seconds=tallest),
    }


def _result(event: Event, pipeline: Pipeline) -> str:
    return _result_of(event.status, event.pk, pipeline)


def _result_of(status: str, pk: int, pipeline: Pipeline) -> str:
    if status in (EventStatus.LIVE, EventStatus.STALE) and pk != pipeline.latest_run_id:
        return "superseded"
    return {EventStatus.COMPLETED: "passed", EventStatus.FAILED: "failed", EventStatus.LIVE: "running"}.get(status, "stalled")


def _duration(event: Event) -> timedelta | None:
    if event.status not in (EventStatus.COMPLETED, EventStatus.FAILED):
        return None
    return _span(event.timestamp, event.updated_at)


def _span(started: datetime, ended: datetime | None) -> timedelta | None:
    """How long a finished run took: from its start to its last update, if that came later."""
    return ended - started if ended and ended > started else None


def _end(event: Event) -> datetime:
    return event.updated_at if event.updated_at and event.updated_at > event.timestamp else event.timestamp
