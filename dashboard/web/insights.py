"""The team's retrospective figures about incidents, per week and per severity: how many, and the median and
p90 time to acknowledge and to resolve (the build figures beside them are web/pipeline_insights.py).

Read from the incidents' derived clocks (live/incident_clock.py), which the sync keeps true when upstream
backdates or deletes a state, so nothing here scans the timeline. Weeks start on Monday, in UTC, and an
incident counts in the week it began (its first state).
"""

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboard.models import IncidentClock, week_start

WEEKS_SHOWN = 12
MOST_WEEKS = 104  # a hand-edited URL cannot ask for years of weeks
WEEK = timedelta(weeks=1)


@dataclass(frozen=True)
class Figures:
    incidents: int
    acknowledged: int
    resolved: int
    tta_median: timedelta | None
    tta_p90: timedelta | None
    ttr_median: timedelta | None
    ttr_p90: timedelta | None


@dataclass(frozen=True)
class Row:
    week: datetime  # its Monday, 00:00 UTC
    severity: str  # "" for every severity
    figures: Figures


@dataclass(frozen=True)
class Bar:
    """One week's column in the plot, in the SVG's own units (a week is 100 wide, the tallest 100 high)."""

    x: int
    y: int
    height: int
    row: Row


@dataclass(frozen=True)
class Insights:
    since: datetime
    until: datetime
    severity: str
    severities: list[str]
    weeks: list[Row]  # every severity together, oldest week first
    by_severity: list[Row]  # the whole range, per severity
    total: Figures
    bars: list[Bar]

    @property
    def plot_width(self) -> int:
        return 100 * len(self.weeks)


def insights(*, now: datetime, weeks: int = WEEKS_SHOWN, severity: str = "") -> Insights:
    weeks = max(1, min(weeks, MOST_WEEKS))
    until = week_start(now) + WEEK
    since = until - weeks * WEEK
    clocks = (
        IncidentClock.objects.filter(started_at__gte=since, started_at__lt=until)
        .order_by("started_at")
        .values_list("started_at", "incident__severity", "time_to_acknowledge", "time_to_resolve")
    )
    rows = [(started, (sev or "").strip() or "(none)", tta, ttr) for started, sev, tta, ttr in clocks]
    severities = sorted({sev for _, sev, _, _ in rows}, key=str.lower)
    if severity:
        rows = [row for row in rows if row[1].lower() == severity.lower()]
    starts = [row[0] for row in rows]  # in order: each week is the slice between two bisections
    mondays = [since + index * WEEK for index in range(weeks + 1)]
    bounds = [bisect_left(starts, monday) for monday in mondays]
    weekly = [Row(mondays[i], severity, figures(rows[bounds[i] : bounds[i + 1]])) for i in range(weeks)]
    per_severity = [Row(since, name, figures([row for row in rows if row[1] == name])) for name in severities]
    per_severity = [row for row in per_severity if row.figures.incidents]
    most = max([row.figures.incidents for row in weekly] + [1])
    bars = []
    for index, row in enumerate(weekly):
        height = round(100 * row.figures.incidents / most)
        bars.append(Bar(x=100 * index + 10, y=100 - height, height=height, row=row))
    return Insights(since, until, severity, severities, weekly, per_severity, figures(rows), bars)


def figures(rows: list[tuple]) -> Figures:
    acknowledge = [row[2] for row in rows if row[2] is not None]
    resolve = [row[3] for row in rows if row[3] is not None]
    acknowledge.sort()
    resolve.sort()
    return Figures(
        incidents=len(rows),
        acknowledged=len(acknowledge),
        resolved=len(resolve),
        tta_median=quantile(acknowledge, 0.5),
        tta_p90=quantile(acknowledge, 0.9),
        ttr_median=quantile(resolve, 0.5),
        ttr_p90=quantile(resolve, 0.9),
    )


def quantile(ordered: list[timedelta], q: float) -> timedelta | None:
    """The nearest-rank quantile: a duration some incident really took, never an interpolation."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q)
    return ordered[int(rank) - 1]
