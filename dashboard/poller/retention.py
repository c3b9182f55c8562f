"""Retention: events older than EVENTS_KEPT_DAYS are deleted, a small batch at a time.

The poller calls `prune_old_events` after each full pass. Each batch is its own short transaction,
so the sync and the pages never wait long behind it; a big backlog (the first run on years of
history) is worked off over several passes. A build still running or stalled is never deleted, nor any
run its pipeline's history needs (`Pipeline.kept_from`: the run strip, the last result, the current red
period), however old; the pipelines whose runs went are derived again in the same transaction. The weeks
/insights/ sums are closed before retention reaches them (live/pipeline_weeks.py), so they outlive their runs.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from dashboard.live import pipeline_weeks, pipelines
from dashboard.models import Event, EventStatus, Pipeline, pipeline
from dashboard.upstreams.hth import sync

BATCH_SIZE = 1_000
BATCHES_PER_CALL = 20  # at most 20,000 rows per pass, so one call never keeps the poller busy for long
FINISHED = [EventStatus.COMPLETED, EventStatus.FAILED]
# The sync reads down to the same horizon (hth.sync.kept_from), checked page by page; this much below it,
# nothing a page read just before a pruning and stored just after it can be brought back.
HORIZON_GRACE = timedelta(minutes=5)


def prune_old_events(now: datetime) -> int:
    """Delete what retention lets go, oldest first; return how many events were deleted."""
    if not settings.EVENTS_KEPT_DAYS:
        return 0
    doomed = prunable(before=sync.kept_from(now) - HORIZON_GRACE).order_by("timestamp", "pk")
    deleted = 0
    for _ in range(BATCHES_PER_CALL):
        batch = list(doomed.values_list("pk", flat=True)[:BATCH_SIZE])
        if not batch:
            break
        with transaction.atomic():
            gone = Event.objects.filter(pk__in=batch)
            builds = pipelines.keys_of(gone.filter(target="build").only("target", "project", "repository", "name", "ref"))
            gone.only("pk").delete()  # its transitions go with it
            pipelines.refresh(builds)
            pipeline_weeks.refresh(builds, now=now)  # open weeks only: these runs' weeks are closed
        deleted += len(batch)
    return deleted


def prunable(*, before: datetime):
    """Finished events older than `before`, except a run older than its pipeline's history needs.

    A build whose pipeline has not been derived yet is kept: nothing says what its history needs.
    """
    history_done = Pipeline.objects.filter(
        project=OuterRef("project"),
        repository=OuterRef("repository"),
        name=OuterRef("pipeline"),
        kept_from__gt=OuterRef("timestamp"),
    )
    return (
        Event.objects.filter(timestamp__lt=before, status__in=FINISHED)
        .alias(pipeline=pipeline())
        .filter(~Q(target="build") | Exists(history_done))
    )
