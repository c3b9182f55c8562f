"""The one door every change leaves the sync through.

`record()` stores transitions in the caller's transaction and hands them to subscribers only after that
transaction commits, so nobody is ever told about a row that was rolled back. The WebSocket push
subscribes here; a subscriber that fails is logged and never breaks the sync. The build events written
with them re-derive their pipelines (live/pipelines.py) right here, in the same transaction.
"""

import logging
from collections.abc import Callable, Iterable

from django.db import transaction

from dashboard.live import pipelines
from dashboard.models import Event, Transition

log = logging.getLogger(__name__)

Subscriber = Callable[[list[Transition]], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def record(changes: list[Transition], *, events: Iterable[Event] = ()) -> None:
    """Store `changes`; must run inside the transaction that wrote the rows they describe.

    `events` are all the events that transaction wrote, changes or not (a finished run edited upstream
    changes its pipeline's statistics without a transition).
    """
    pipelines.refresh(pipelines.keys_of(events))
    if not changes:
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
