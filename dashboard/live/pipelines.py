"""Pipelines, derived from their build events where the events change.

A pipeline is (project, repository, build name, or ref when unnamed); each of its build events is one
run. Whenever the sync, the live sweep or retention writes a run, `refresh()` derives that pipeline's
row again, whole, from its runs, in the same transaction. Deriving from the runs rather than folding
each change into the old row is what lets an incremental update and `rebuild()` agree exactly, whatever
order runs arrive, get edited or go in. Every window is measured back from the pipeline's newest run,
not from "now", so the row depends on the events alone.

The one exception is the commonest change of all, a run in progress that moved on (a progress bump, or
stalling): no finished run, no new run and no start time changed, so only the state and the run strip
can, and `refresh_runs()` re-reads just the strip (one query instead of nine). It checks that from the
stored strip itself, and derives the whole row whenever it cannot tell.
"""

import secrets
import statistics
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet

from dashboard.live.detection import UNFINISHED
from dashboard.models import (
    Event,
    EventStatus,
    Pipeline,
    PipelineState,
    person_name,
    pipeline,
    pipeline_runs,
    runs_after,
    runs_before,
)

Key = tuple[str, str, str]

STRIP_RUNS = 30  # bars on a tile's run strip
STATS_WINDOW = timedelta(days=30)  # success rate and durations
FLAKY_WINDOW = timedelta(days=14)  # a commit that both passed and failed within it is flaky
WINDOW_CAP = 2_000  # runs read for the statistics: a pipeline that runs more often is measured on its newest 2,000
FLAKY_SHOWN = 10
LOCK_CHUNK = 100
FINISHED = (EventStatus.COMPLETED, EventStatus.FAILED)
RESULTS = {
    EventStatus.COMPLETED: "passed",
    EventStatus.FAILED: "failed",
    EventStatus.LIVE: "running",
    EventStatus.STALE: "stalled",
}
MOVING = ("running", "stalled", "superseded")  # bars of runs in progress
RUN_FIELDS = ("upstream_id", "target", "project", "repository", "name", "ref", "status", "timestamp")  # what refresh_runs reads
STRIP_FIELDS = ("pk", "upstream_id", "status", "timestamp", "updated_at", "progress")
DERIVED = [
    "state",
    "current_status",
    "latest_run_id",
    "last_finished_id",
    "last_run_at",
    "finished_at",
    "streak",
    "streak_since",
    "fixed_by",
    "fixed_at",
    "red_seconds",
    "median_seconds",
    "p95_seconds",
    "runs_30d",
    "passed_30d",
    "recent_runs",
    "flaky_commits",
    "kept_from",
]
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def key_of(event: Event) -> Key | None:
    """The pipeline a build event is a run of; None for any other event."""
    return (event.project, event.repository, event.name or event.ref) if event.target == "build" else None


def keys_of(events: Iterable[Event]) -> set[Key]:
    return {key for key in map(key_of, events) if key is not None}


def refresh_runs(events: Iterable[Event]) -> None:
    """Bring the pipelines of these just-written runs up to date (transitions.record calls this).

    A pipeline whose written runs are all still in progress is only re-stripped when its stored strip
    shows those runs already there, in progress, with the same start: see the module's docstring.
    """
    events = [event for event in events if key_of(event) is not None]
    finished = keys_of(event for event in events if event.status not in UNFINISHED)
    moving: dict[Key, set[tuple[str, str]]] = {}
    for event in events:
        if (key := key_of(event)) not in finished:
            moving.setdefault(key, set()).add((event.upstream_id, event.timestamp.astimezone(UTC).isoformat()))
    refresh(keys_of(events), moving=moving)


def refresh(keys: Iterable[Key], *, moving: dict[Key, set[tuple[str, str]]] | None = None) -> None:
    """Derive these pipelines again from their runs; runs inside the transaction that changed the runs.

    The rows are created if missing and then locked in one order, so two writers of runs of one pipeline
    (the sync and the live refresh, or `sync --once` beside the poller) derive it one after the other,
    the second seeing the first's runs: otherwise the last to commit could store a view without the other's.
    """
    keys = sorted(set(keys))
    if not keys:
        return
    with transaction.atomic(savepoint=False):  # the caller's transaction; a transaction of its own when called alone
        for start in range(0, len(keys), LOCK_CHUNK):
            _refresh_chunk(keys[start : start + LOCK_CHUNK], moving or {})


def _refresh_chunk(chunk: list[Key], moving: dict[Key, set[tuple[str, str]]]) -> None:
    Pipeline.objects.bulk_create(
        [Pipeline(project=p, repository=r, name=n, state=PipelineState.PASSING, last_run_at=NEVER) for p, r, n in chunk],
        ignore_conflicts=True,
    )
    rows = Pipeline.objects.select_for_update().filter(_matching(chunk)).order_by("project", "repository", "name")
    for row in rows:
        key = (row.project, row.repository, row.name)
        derived = (_restripped(row, moving[key]) if key in moving else None) or derive(key)
        if derived is None:
            row.delete()  # its last run is gone
            continue
        for name, value in derived.items():
            setattr(row, name, value)
        row.revision = secrets.randbits(63)  # random, not counted: a pk reused after a restore never meets an old tile
        row.save(update_fields=[name.removesuffix("_id") for name in derived] + ["revision"])


def rebuild() -> int:
    """Every pipeline derived afresh from the events (`manage.py rebuild_pipelines`, and after a migration)."""
    with transaction.atomic():
        keys = all_keys() | set(Pipeline.objects.values_list("project", "repository", "name"))
        refresh(keys)
    return Pipeline.objects.count()


def differences() -> list[str]:
    """Where the stored pipelines differ from a fresh derivation (the fault suite's invariant); empty when none."""
    stored = {(row.project, row.repository, row.name): row for row in Pipeline.objects.all()}
    found = []
    for key in sorted(all_keys() | set(stored)):
        derived, row = derive(key), stored.get(key)
        if derived is None or row is None:
            found.append(f"pipeline {'/'.join(key)}: {'stored but has no runs' if derived is None else 'missing'}")
            continue
        wrong = [name for name, value in derived.items() if getattr(row, name) != value]
        if wrong:
            found.append(f"pipeline {'/'.join(key)}: {', '.join(wrong)} differ from a rebuild")
    return found


def all_keys() -> set[Key]:
    builds = Event.objects.filter(target="build").annotate(pipeline_name=pipeline())
    return set(builds.values_list("project", "repository", "pipeline_name").distinct())


def derive(key: Key) -> dict | None:
    """The pipeline's derived fields, from its runs alone; None when it has none."""
    runs = pipeline_runs(*key)
    newest = list(runs.only(*STRIP_FIELDS)[:STRIP_RUNS])
    if not newest:
        return None
    latest = newest[0]
    finished = runs.filter(status__in=FINISHED)
    last = next((run for run in newest if run.status in FINISHED), None) or finished.only(*STRIP_FIELDS).first()
    current = latest if latest.status in UNFINISHED else None
    state = _state(failed_last=last is not None and last.status == EventStatus.FAILED, current=current)
    streak = _streak(finished, last)
    window = list(
        runs.filter(timestamp__gte=latest.timestamp - STATS_WINDOW, status__in=FINISHED).values_list(
            "status", "timestamp", "updated_at", "commits", "last_commit"
        )[:WINDOW_CAP]
    )
    durations = sorted(
        seconds
        for status, started, ended, _, _ in window
        if status == EventStatus.COMPLETED and (seconds := _seconds(started, ended)) is not None
    )
    kept_from = min(
        [newest[-1].timestamp]
        + ([last.timestamp] if last else [])
        + ([streak["streak_since"]] if state == PipelineState.FAILING and streak["streak_since"] else [])
        + ([streak["red_from"]] if streak["fixer_in_strip"] and streak["red_from"] else [])
    )
    return {
        "state": state,
        "current_status": current.status if current else "",
        "latest_run_id": latest.pk,
        "last_finished_id": last.pk if last else None,
        "last_run_at": latest.timestamp,
        "finished_at": _end(last) if last else None,
        "streak": streak["streak"],
        "streak_since": streak["streak_since"],
        "fixed_by": streak["fixed_by"],
        "fixed_at": streak["fixed_at"],
        "red_seconds": streak["red_seconds"],
        "median_seconds": statistics.median(durations) if durations else None,
        "p95_seconds": _percentile(durations, 95) if durations else None,
        "runs_30d": len(window),
        "passed_30d": sum(status == EventStatus.COMPLETED for status, *_ in window),
        "recent_runs": [_bar(run, latest) for run in reversed(newest)],
        "flaky_commits": _flaky(window, since=latest.timestamp - FLAKY_WINDOW),
        "kept_from": kept_from,
    }


def _restripped(row: Pipeline, runs: set[tuple[str, str]]) -> dict | None:
    """The state and strip again, when only runs in progress moved; None when more may have changed."""
    was_running = {(bar["id"], bar["at"]) for bar in row.recent_runs if bar["result"] in MOVING}
    if not runs <= was_running:
        return None  # a new run, a new start time, or a run that had finished: derive it all
    newest = list(pipeline_runs(row.project, row.repository, row.name).only(*STRIP_FIELDS)[:STRIP_RUNS])
    if [(run.upstream_id, run.timestamp.isoformat()) for run in reversed(newest)] != [
        (b["id"], b["at"]) for b in row.recent_runs
    ]:
        return None
    latest = newest[0]
    current = latest if latest.status in UNFINISHED else None
    return {
        "state": _state(failed_last=row.state == PipelineState.FAILING, current=current),
        "current_status": current.status if current else "",
        "recent_runs": [_bar(run, latest) for run in reversed(newest)],
    }


def _state(*, failed_last: bool, current: Event | None) -> str:
    """Failing until a run passes, re-running or not; else what the current run is doing."""
    if failed_last:
        return PipelineState.FAILING
    if current is not None:
        return PipelineState.RUNNING if current.status == EventStatus.LIVE else PipelineState.STALLED
    return PipelineState.PASSING


def _streak(finished: QuerySet[Event], last: Event | None) -> dict:
    """The streak of the last result, and the last red period a passing run ended (who fixed it, after how long)."""
    none = {"streak": 0, "streak_since": None, "fixed_by": "", "fixed_at": None, "red_seconds": None}
    if last is None:
        return none | {"red_from": None, "fixer_in_strip": False}
    other = EventStatus.COMPLETED if last.status == EventStatus.FAILED else EventStatus.FAILED
    boundary = runs_before(finished.filter(status=other), last).first()  # the newest run with the other result
    streak_runs = finished if boundary is None else runs_after(finished, boundary)
    first = streak_runs.order_by("timestamp", "upstream_id").first()
    found = none | {"streak": streak_runs.count(), "streak_since": first.timestamp, "red_from": None, "fixer_in_strip": False}
    if last.status == EventStatus.FAILED or boundary is None:
        return found
    fixer = Event.objects.only("upstream_id", "subject", "subject_id", "timestamp", "updated_at").get(pk=first.pk)
    before_red = runs_before(finished.filter(status=EventStatus.COMPLETED), boundary).first()
    red = finished if before_red is None else runs_after(finished, before_red)
    red_from = red.order_by("timestamp", "upstream_id").values_list("timestamp", flat=True).first()
    return found | {
        "fixed_by": person_name(fixer),
        "fixed_at": _end(fixer),
        "red_seconds": max(0.0, (_end(fixer) - red_from).total_seconds()),
        "red_from": red_from,
        "fixer_in_strip": runs_after(finished, fixer).count() < STRIP_RUNS,
    }


def _bar(run: Event, latest: Event) -> dict:
    """One bar of the run strip. An unfinished run that is not the newest was replaced: superseded."""
    result = RESULTS.get(run.status, "passed")
    if run.status in UNFINISHED and run.pk != latest.pk:
        result = "superseded"
    return {
        "id": run.upstream_id,
        "result": result,
        "at": run.timestamp.isoformat(),
        "seconds": _seconds(run.timestamp, run.updated_at) if run.status in FINISHED else None,
        "progress": run.progress,
    }


def _flaky(window: list[tuple], *, since: datetime) -> list[str]:
    """Commits with both a passed and a failed run since `since`, newest first."""
    results: dict[str, set[str]] = {}
    for status, started, _, commits, last_commit in window:
        if started >= since and (commit := _commit(commits, last_commit)):
            results.setdefault(commit, set()).add(status)
    return [commit for commit, seen in results.items() if len(seen) > 1][:FLAKY_SHOWN]


def _commit(commits, last_commit: str) -> str:
    first = commits[0] if isinstance(commits, list) and commits else last_commit
    sha = first.get("id") if isinstance(first, dict) else first
    return str(sha)[:40] if sha else ""


def _seconds(started: datetime, ended: datetime | None) -> float | None:
    seconds = (ended - started).total_seconds() if ended else 0
    return seconds if seconds > 0 else None


def _end(run: Event) -> datetime:
    return run.updated_at if run.updated_at and run.updated_at > run.timestamp else run.timestamp


def _percentile(ordered: list[float], percent: int) -> float:
    """Nearest rank: a duration some run really took."""
    return ordered[max(0, -(-percent * len(ordered) // 100) - 1)]


def _matching(keys: list[Key]) -> Q:
    condition = Q(pk__in=[])
    for project, repository, name in keys:
        condition |= Q(project=project, repository=repository, name=name)
    return condition
