"""Retention: events older than EVENTS_KEPT_DAYS are deleted, a small batch at a time.

The poller calls `prune_old_events` after each full pass. Each batch is its own short transaction,
so the sync and the pages never wait long behind it; a big backlog (the first run on years of
history) is worked off over several passes. A build still running or stalled is never deleted, nor
the latest result of any build (the wall and the pipeline's history start from it), however old.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from dashboard.models import Event, EventStatus, pipeline
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
            Event.objects.filter(pk__in=batch).only("pk").delete()  # its transitions go with it
        deleted += len(batch)
    return deleted


def prunable(*, before: datetime):
    """Finished events older than `before`, except a build result that no newer result has replaced."""
    newer_result = (
        Event.objects.filter(target="build", status__in=FINISHED, project=OuterRef("project"), repository=OuterRef("repository"))
        .alias(pipeline=pipeline())
        .filter(pipeline=OuterRef("pipeline"))
        .filter(Q(timestamp__gt=OuterRef("timestamp")) | Q(timestamp=OuterRef("timestamp"), pk__gt=OuterRef("pk")))
    )
    return (
        Event.objects.filter(timestamp__lt=before, status__in=FINISHED)
        .alias(pipeline=pipeline())
        .filter(~Q(target="build") | Exists(newer_result))
    )
