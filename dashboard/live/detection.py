"""Live-event detection, as the Helix TeamHub page defines it, with `now` always passed in.

An event is live when its progress is below 100, its timestamp is fairly recent (LIVE_MAX_AGE_SECONDS)
and its progress increased recently (LIVE_STALE_AFTER_SECONDS). A live event that stops moving is
stale ("stalled" on screen) until it moves again or finishes; "failed" is the operation a build
ends with when it breaks.
"""

from datetime import datetime, timedelta

from django.conf import settings

from dashboard.models import EventStatus, TransitionKind

UNFINISHED = (EventStatus.LIVE, EventStatus.STALE)


def status_of(*, progress: int, operation: str, timestamp: datetime, progress_changed_at: datetime, now: datetime) -> str:
    if operation == "failed":
        return EventStatus.FAILED
    if progress >= 100:
        return EventStatus.COMPLETED
    recent = now - timestamp <= timedelta(seconds=settings.LIVE_MAX_AGE_SECONDS)
    moving = now - progress_changed_at <= timedelta(seconds=settings.LIVE_STALE_AFTER_SECONDS)
    return EventStatus.LIVE if recent and moving else EventStatus.STALE


def progress_changed_at(
    *,
    previous_at: datetime | None,
    previous_progress: int | None,
    previous_updated_at: datetime | None,
    progress: int,
    updated_at: datetime | None,
    timestamp: datetime,
    now: datetime,
) -> datetime:
    """When progress last moved: upstream `updated_at` moving counts, and so does a higher progress we saw.

    Capped at `now`, so an upstream clock running ahead cannot keep an event live forever.
    """
    if previous_at is None:
        return min(updated_at or timestamp, now)
    if updated_at is not None and (previous_updated_at is None or updated_at > previous_updated_at):
        return max(previous_at, min(updated_at, now))
    if previous_progress is not None and progress > previous_progress:
        return now
    return previous_at


def transitions(
    *, before: str | None, before_progress: int | None, after: str, after_progress: int, announce_new: bool
) -> list[str]:
    """What a change from `before` to `after` means to someone watching; `before` is None for a new event."""
    kinds = []
    if before is None:
        if announce_new:
            kinds.append(TransitionKind.EVENT_NEW)
        if after == EventStatus.LIVE:
            kinds.append(TransitionKind.BECAME_LIVE)
        return kinds
    if after == EventStatus.LIVE:
        if before != EventStatus.LIVE:
            kinds.append(TransitionKind.BECAME_LIVE)
        elif before_progress is not None and after_progress > before_progress:
            kinds.append(TransitionKind.PROGRESSED)
    elif before in UNFINISHED and after == EventStatus.COMPLETED:
        kinds.append(TransitionKind.COMPLETED)
    elif before in UNFINISHED and after == EventStatus.FAILED:
        kinds.append(TransitionKind.FAILED)
    elif before == EventStatus.LIVE and after == EventStatus.STALE:
        kinds.append(TransitionKind.WENT_STALE)
    return kinds
