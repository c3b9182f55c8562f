"""Sorted durations kept to a bound: past it, evenly spaced ones stand for the rest.

A week's derived row keeps its durations whole so that a median over any range of weeks is exact. A week
with more than MOST of them keeps MOST evenly spaced ones beside its true count, and web/insights.quantile
weighs each kept duration by how many it stands for, so the median stays close and the row stays small.
"""

MOST = 1_000


def bounded(ordered: list) -> list:
    """At most MOST of these sorted values, evenly spaced from the first."""
    if len(ordered) <= MOST:
        return ordered
    return [ordered[i * len(ordered) // MOST] for i in range(MOST)]
