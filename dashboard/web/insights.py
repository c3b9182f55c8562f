"""The team's retrospective figures about incidents, per week and per severity: how many, and the median and
p90 time to acknowledge and to resolve (the build figures beside them are web/pipeline_insights.py).

Merged from the per-week rows the sync derives from the incidents' clocks (live/incident_weeks.py, kept
true when upstream backdates or deletes a state or changes a severity), so two years are a few hundred
rows, not every incident. Weeks start on Monday, in UTC, and an incident counts in the week it began
(its first state).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil

from dashboard.models import WEEK, IncidentWeek, week_start

WEEKS_SHOWN = 12
MOST_WEEKS = 104  # a hand-edited URL cannot ask for years of weeks
NO_SEVERITY = "(none)"


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

    @property
    def last_day(self) -> datetime:
        """The Sunday that ends the last week shown (`until` is the Monday after it)."""
        return self.until - timedelta(days=1)


def insights(*, now: datetime, weeks: int = WEEKS_SHOWN, severity: str = "") -> Insights:
    weeks = max(1, min(weeks, MOST_WEEKS))
    until = week_start(now) + WEEK
    since = until - weeks * WEEK
    rows = [
        (week, sev or NO_SEVERITY, *figures)
        for week, sev, *figures in IncidentWeek.objects.filter(week__gte=since, week__lt=until).values_list(
            "week", "severity", "incidents", "acknowledged", "resolved", "acknowledge_seconds", "resolve_seconds"
        )
    ]
    severities = sorted({row[1] for row in rows}, key=str.lower)
    if severity:
        rows = [row for row in rows if row[1].lower() == severity.lower()]
    by_week: list[list] = [[] for _ in range(weeks)]
    for row in rows:
        by_week[(row[0] - since) // WEEK].append(row)
    weekly = [Row(since + index * WEEK, severity, figures(found)) for index, found in enumerate(by_week)]
    per_severity = [Row(since, name, figures([row for row in rows if row[1] == name])) for name in severities]
    per_severity = [row for row in per_severity if row.figures.incidents]
    most = max([row.figures.incidents for row in weekly] + [1])
    bars = []
    for index, row in enumerate(weekly):
        height = round(100 * row.figures.incidents / most)
        bars.append(Bar(x=100 * index + 10, y=100 - height, height=height, row=row))
    return Insights(since, until, severity, severities, weekly, per_severity, figures(rows), bars)


def figures(rows: list[tuple]) -> Figures:
    """Merged from rows of (week, severity, incidents, acknowledged, resolved, their sorted seconds to
    acknowledge, their sorted seconds to resolve)."""
    tta_median, tta_p90 = quantiles([(row[5], row[3]) for row in rows], 0.5, 0.9)
    ttr_median, ttr_p90 = quantiles([(row[6], row[4]) for row in rows], 0.5, 0.9)
    return Figures(
        incidents=sum(row[2] for row in rows),
        acknowledged=sum(row[3] for row in rows),
        resolved=sum(row[4] for row in rows),
        tta_median=_duration(tta_median),
        tta_p90=_duration(tta_p90),
        ttr_median=_duration(ttr_median),
        ttr_p90=_duration(ttr_p90),
    )


def _duration(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def quantile(groups: list[tuple[list, int]], q: float):
    """The nearest-rank quantile over groups of (sorted durations, how many they stand for): a duration
    some incident really took, never an interpolation."""
    return quantiles(groups, q)[0]


def quantiles(groups: list[tuple[list, int]], *qs: float) -> list:
    """Several nearest-rank quantiles from one sort. A group past live/samples.MOST keeps evenly spaced
    durations, each standing for several; every other duration stands for itself."""
    groups = [(values, count) for values, count in groups if values]
    if not groups:
        return [None for _ in qs]
    if all(len(values) == count for values, count in groups):  # the common case: every duration kept
        merged = sorted(value for values, _ in groups for value in values)
        return [merged[_rank(len(merged), q) - 1] for q in qs]
    weighted = sorted((value, count / len(values)) for values, count in groups for value in values)
    total = sum(count for _, count in groups)
    return [_weighted_rank(weighted, _rank(total, q)) for q in qs]


def _weighted_rank(weighted: list[tuple[float, float]], rank: int) -> float:
    seen = 0.0
    for value, weight in weighted:
        seen += weight
        if seen >= rank - 1e-9:
            return value
    return weighted[-1][0]


def _rank(count: int, q: float) -> int:
    return max(1, ceil(count * q - 1e-9))
