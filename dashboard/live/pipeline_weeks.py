"""Per pipeline and week: finished runs, failures, the red periods a passing run ended, flaky commits.

/insights/ sums these few rows over its weeks instead of scanning the events. As in live/pipelines.py,
a refresh derives a pipeline's weeks again, whole, from its runs, so a run backdated, edited or deleted
upstream is in them, and `rebuild()` gives exactly what the incremental path stored. It runs in the
transaction that wrote the runs, after `pipelines.refresh()` has locked the pipeline's row, so two
writers of one pipeline's runs take turns here too.

The rules are the pipeline page's: a run is finished when it passed or failed, and counts in the week it
started (Monday 00:00 UTC). A red period runs from its first failed run to the end of the passing run
that ended it, and counts in the week that run started. A commit is flaky when it both passed and failed
within 14 days, and counts once, in the week of its first run.

Retention: a week that began before the retention horizon (now - EVENTS_KEPT_DAYS) is *closed*. Retention
prunes only runs older than that horizon, so a week is closed before any of its runs can go: it keeps the
figures of all its runs, and neither a refresh nor a rebuild writes or deletes it again. Open weeks are
derived from the runs still kept, so near the horizon a red period or flaky commit whose older runs were
pruned is measured from what is left (the same in the incremental result and a rebuild).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from dashboard.live import samples
from dashboard.live.pipelines import FINISHED, FLAKY_WINDOW, Key, _commit, all_keys
from dashboard.models import EventStatus, PipelineWeek, pipeline_runs, week_start

FLAKY_SHOWN = 10
FIELDS = ["runs", "failures", "fixes", "red_seconds", "flaky", "flaky_commits"]


def open_from(now: datetime) -> datetime | None:
    """Weeks starting at or after this are derived; earlier ones are closed. None: no retention, none closed."""
    return now - timedelta(days=settings.EVENTS_KEPT_DAYS) if settings.EVENTS_KEPT_DAYS else None


def refresh(keys: Iterable[Key], *, now: datetime) -> None:
    """Derive these pipelines' open weeks again; runs inside the transaction that changed their runs."""
    keys = sorted(set(keys))
    if not keys:
        return
    since = open_from(now)
    with transaction.atomic(savepoint=False):
        for key in keys:
            _store(key, _open(derive(key), since), since)


def rebuild(*, now: datetime) -> int:
    """Every pipeline's open weeks derived afresh (`manage.py rebuild_pipelines`, and after a migration)."""
    with transaction.atomic():
        refresh(all_keys() | _stored_keys(), now=now)
    return PipelineWeek.objects.count()


def differences(*, now: datetime) -> list[str]:
    """Where the stored open weeks differ from a fresh derivation (the fault suite's invariant); empty when none."""
    since = open_from(now)
    found = []
    for key in sorted(all_keys() | _stored_keys()):
        derived = _open(derive(key), since)
        stored = {row.week: {name: getattr(row, name) for name in FIELDS} for row in _rows(key, since)}
        if derived != stored:
            weeks = sorted({week for week in derived | stored if derived.get(week) != stored.get(week)})
            found.append(f"pipeline weeks {'/'.join(key)}: {', '.join(f'{w:%Y-%m-%d}' for w in weeks)} differ from a rebuild")
    return found


def derive(key: Key) -> dict[datetime, dict]:
    """The pipeline's figures per week, from its finished runs alone (oldest first)."""
    runs = (
        pipeline_runs(*key)
        .filter(status__in=FINISHED)
        .order_by("timestamp", "upstream_id")
        .values_list("status", "timestamp", "updated_at", "commits", "last_commit")
    )
    weeks: dict[datetime, dict] = {}
    red_from = None
    by_commit: dict[str, list[tuple[datetime, str]]] = {}
    for status, started, updated, commits, last_commit in runs:
        week = weeks.setdefault(week_start(started), _empty())
        week["runs"] += 1
        if status == EventStatus.FAILED:
            week["failures"] += 1
            red_from = red_from or started
        elif red_from is not None:
            ended = updated if updated and updated > started else started
            week["fixes"] += 1
            week["red_seconds"].append(max(0, round((ended - red_from).total_seconds())))
            red_from = None
        if commit := _commit(commits, last_commit):
            by_commit.setdefault(commit, []).append((started, status))
    for commit, seen in by_commit.items():
        if _flaky(seen):
            week = weeks[week_start(seen[0][0])]
            week["flaky"] += 1
            if len(week["flaky_commits"]) < FLAKY_SHOWN:
                week["flaky_commits"].append(commit)
    for week in weeks.values():
        week["red_seconds"] = samples.bounded(sorted(week["red_seconds"]))
    return weeks


def _flaky(seen: list[tuple[datetime, str]]) -> bool:
    """Whether a passed and a failed run of one commit (oldest first) started within FLAKY_WINDOW of each other."""
    last: dict[str, datetime] = {}
    for started, status in seen:
        other = next((at for result, at in last.items() if result != status), None)
        if other is not None and started - other <= FLAKY_WINDOW:
            return True
        last[status] = started
    return False


def _empty() -> dict:
    return {"runs": 0, "failures": 0, "fixes": 0, "red_seconds": [], "flaky": 0, "flaky_commits": []}


def _open(weeks: dict[datetime, dict], since: datetime | None) -> dict[datetime, dict]:
    return {week: figures for week, figures in weeks.items() if since is None or week >= since}


def _rows(key: Key, since: datetime | None):
    project, repository, name = key
    rows = PipelineWeek.objects.filter(project=project, repository=repository, name=name)
    return rows if since is None else rows.filter(week__gte=since)


def _store(key: Key, weeks: dict[datetime, dict], since: datetime | None) -> None:
    """Write only what changed: most refreshes touch one week of one pipeline."""
    stored = {row.week: row for row in _rows(key, since)}
    gone = [row.pk for week, row in stored.items() if week not in weeks]
    if gone:
        PipelineWeek.objects.filter(pk__in=gone).delete()
    changed, new = [], []
    for week, figures in weeks.items():
        row = stored.get(week)
        if row is None:
            new.append(PipelineWeek(project=key[0], repository=key[1], name=key[2], week=week, **figures))
        elif any(getattr(row, name) != value for name, value in figures.items()):
            for name, value in figures.items():
                setattr(row, name, value)
            changed.append(row)
    PipelineWeek.objects.bulk_create(new)
    PipelineWeek.objects.bulk_update(changed, FIELDS)


def _stored_keys() -> set[Key]:
    return set(PipelineWeek.objects.values_list("project", "repository", "name").distinct())
