"""The one door every change leaves the sync through.

`record()` stores transitions in the caller's transaction and hands them to subscribers only after that
transaction commits, so nobody is ever told about a row that was rolled back. The WebSocket push
subscribes here; a subscriber that fails is logged and never breaks the sync.

Derived state is brought up to date here too, in the same transaction as the change, so it is computed
once per change and never drifts from the mirror: the pipelines of the build events written with them
(live/pipelines.py) and their weekly figures (live/pipeline_weeks.py), and an incident's durations
(live/incident_clock.py).
"""

import logging
from collections.abc import Callable, Iterable

from django.db import transaction
from django.utils import timezone

from dashboard.live import incident_clock, pipeline_weeks, pipelines
from dashboard.live.detection import UNFINISHED
from dashboard.models import Event, Transition

log = logging.getLogger(__name__)

Subscriber = Callable[[list[Transition]], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def record(changes: list[Transition], *, events: Iterable[Event] = (), quiet: bool = False) -> None:
    """Store `changes`; must run inside the transaction that wrote the rows they describe.

    `events` are all the events that transaction wrote, changes or not (a finished run edited upstream
    changes its pipeline's statistics without a transition). `quiet` (a first pass's history, which is
    not news) brings derived state up to date and tells nobody.
    """
    pipelines.refresh_runs(events)
    # A week counts finished runs alone: a batch of runs still in progress (a storm of progress bumps) leaves them be.
    pipeline_weeks.refresh(pipelines.keys_of(event for event in events if event.status not in UNFINISHED), now=timezone.now())
    if not changes:
        return
    incident_clock.derive(changes)
    if quiet:
        return
    Transition.objects.bulk_create(changes)
    transaction.on_commit(lambda: _deliver(changes))


def _deliver(changes: list[Transition]) -> None:
    for subscriber in list(_subscribers):
        try:
            subscriber(changes)
        except Exception:
            log.exception("transition subscriber %r failed; the sync carries on", subscriber)


def prune(*, before) -> int:
    """Transitions are a short-lived log: the rows they point at hold the lasting state."""
    deleted, _ = Transition.objects.filter(at__lt=before).delete()
    return deleted
