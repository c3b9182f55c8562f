"""The retrospective's build figures over a range of weeks: change failure rate, time red before fixed,
the flakiest pipelines.

Summed from the per-pipeline weekly rows the sync derives (live/pipeline_weeks.py, where the rules are),
never from the events: a range of twelve weeks of 2,000 pipelines is 24,000 small rows, read in two
grouped queries, and the red-period durations and flaky commits only of the pipelines shown.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from heapq import nsmallest

from django.db.models import QuerySet, Sum
from django.urls import reverse

from dashboard.models import WEEK, Pipeline, PipelineWeek
from dashboard.web.insights import quantile

WORST_SHOWN = 20
FLAKIEST_SHOWN = 10

Key = tuple[str, str, str]


@dataclass(frozen=True)
class PipelineFigures:
    key: Key
    runs: int
    failures: int
    fixes: int
    flaky: int
    red_median: timedelta | None = None
    flaky_commits: tuple[str, ...] = ()
    has_page: bool = False

    @property
    def slug(self) -> str:
        return "/".join(self.key)

    @property
    def url(self) -> str:
        return reverse("pipeline", args=list(self.key))

    @property
    def failure_percent(self) -> int:
        return round(100 * self.failures / self.runs) if self.runs else 0


@dataclass(frozen=True)
class BuildWeek:
    week: datetime
    runs: int
    failures: int

    @property
    def failure_percent(self) -> int:
        return round(100 * self.failures / self.runs) if self.runs else 0


@dataclass(frozen=True)
class RateBar:
    """One week's column in the plot, in the SVG's own units (a week is 100 wide, the highest rate 100 high,
    so weeks of 15 and 20 % are told apart; each bar is labelled with its rate)."""

    x: int
    y: int
    height: int
    week: BuildWeek


@dataclass(frozen=True)
class BuildInsights:
    project: str
    projects: list[str]
    weeks: list[BuildWeek]  # oldest first
    bars: list[RateBar]
    total: BuildWeek  # the whole range
    ran: int  # pipelines with a finished run in the range
    worst: list[PipelineFigures]  # by change failure rate, then failures
    flakiest: list[PipelineFigures]

    @property
    def plot_width(self) -> int:
        return 100 * len(self.weeks)


def build_insights(*, since: datetime, until: datetime, project: str = "") -> BuildInsights:
    rows = PipelineWeek.objects.filter(week__gte=since, week__lt=until)
    if project:
        rows = rows.filter(project=project)
    per_week = {
        week: BuildWeek(week, runs or 0, failures or 0)
        for week, runs, failures in rows.values("week").annotate(r=Sum("runs"), f=Sum("failures")).values_list("week", "r", "f")
    }
    weeks = []
    week = since
    while week < until:
        weeks.append(per_week.get(week, BuildWeek(week, 0, 0)))
        week += WEEK
    totals = [
        row
        for row in rows.values("project", "repository", "name")
        .annotate(r=Sum("runs"), f=Sum("failures"), x=Sum("fixes"), k=Sum("flaky"))
        .values_list("project", "repository", "name", "r", "f", "x", "k")
        if row[3]
    ]
    # Ranked as plain tuples (project, repository, name, runs, failures, fixes, flaky): of 2,000, only 30 are shown.
    worst = [_figures(row) for row in nsmallest(WORST_SHOWN, totals, key=lambda t: (-t[4] / t[3], -t[4], t[:3]))]
    flakiest = [_figures(row) for row in nsmallest(FLAKIEST_SHOWN, (t for t in totals if t[6]), key=lambda t: (-t[6], t[:3]))]
    details = _details(rows, {f.key for f in worst + flakiest})
    worst, flakiest = [_with(f, details) for f in worst], [_with(f, details) for f in flakiest]
    bars, highest = [], max([w.failures / w.runs for w in weeks if w.runs] + [0]) or 1
    for index, found in enumerate(weeks):
        height = round(100 * found.failures / found.runs / highest) if found.runs else 0
        bars.append(RateBar(x=100 * index + 10, y=100 - height, height=height, week=found))
    total = BuildWeek(since, sum(w.runs for w in weeks), sum(w.failures for w in weeks))
    projects = sorted(Pipeline.objects.order_by().values_list("project", flat=True).distinct(), key=str.lower)
    return BuildInsights(project, projects, weeks, bars, total, len(totals), worst, flakiest)


def _figures(row: tuple) -> PipelineFigures:
    project, repository, name, runs, failures, fixes, flaky = row
    return PipelineFigures((project, repository, name), runs, failures, fixes, flaky)


def _details(rows: QuerySet[PipelineWeek], keys: set[Key]) -> dict[Key, dict]:
    """The red periods' durations, flaky commits and whether a page exists, for the pipelines shown only."""
    found: dict[Key, dict] = {key: {"red": [], "commits": [], "has_page": False} for key in keys}
    if not keys:
        return found
    shown = (
        _among(rows, keys).order_by("-week").values_list("project", "repository", "name", "fixes", "red_seconds", "flaky_commits")
    )
    for p, r, n, fixes, red_seconds, commits in shown:
        if (p, r, n) in found:
            found[(p, r, n)]["red"].append((red_seconds, fixes))  # a fix ends each red period
            found[(p, r, n)]["commits"] += commits
    for key in _among(Pipeline.objects.all(), keys).values_list("project", "repository", "name"):
        if key in found:
            found[key]["has_page"] = True
    return found


def _with(figures: PipelineFigures, details: dict[Key, dict]) -> PipelineFigures:
    found = details[figures.key]
    median = quantile(found["red"], 0.5)
    return PipelineFigures(
        figures.key,
        figures.runs,
        figures.failures,
        figures.fixes,
        figures.flaky,
        red_median=timedelta(seconds=median) if median is not None else None,
        flaky_commits=tuple(found["commits"][:3]),
        has_page=found["has_page"],
    )


def _among(rows: QuerySet, keys: set[Key]) -> QuerySet:
    """The rows of these pipelines, and of any other that shares each of their three names (the caller drops
    those): three IN lists take Django a fraction of the time that building an OR of 30 triples did."""
    projects, repositories, names = (sorted({key[i] for key in keys}) for i in range(3))
    return rows.filter(project__in=projects, repository__in=repositories, name__in=names)
