"""The poller's side of the webhook queue: apply what the receivers queued, and say which source wants a list pass now.

Why a table checked on a short cadence: the poller may run in another process than the web server
(`manage.py poll` beside daphne), so an in-memory signal would not reach it. Every
HOOK_QUEUE_CHECK_SECONDS (0.1 s) the poller runs one query on a table that is nearly always empty,
on SQLite and PostgreSQL alike. PostgreSQL's LISTEN/NOTIFY would save that query but would need a
connection of its own and would leave SQLite out. The check runs only when a receiver is configured.

A delivery is deleted once handled, and also when handling it failed (logged): a hook is a hint, and
the regular passes still bring the same change within POLL_INTERVAL_SECONDS.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from dashboard.models import HookDelivery, Source
from dashboard.upstreams.hth import hooks as hth_hooks
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.oneuptime import hooks as oneuptime_hooks
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

BATCH = 500  # deliveries taken per drain: with one upstream read each, SIGTERM still waits for one read only
KINDS = {
    Source.HTH: [HookDelivery.Kind.HTH_EVENTS, HookDelivery.Kind.HTH_HINT],
    Source.ONEUPTIME: [HookDelivery.Kind.ONEUPTIME_NOTE],
}


def enabled() -> bool:
    return bool(configured_sources())


def configured_sources() -> list[str]:
    """The sources whose receiver is on: each gets a drain job of its own (dashboard/poller/jobs.py), so
    a hung OneUptime never holds up Helix TeamHub's deliveries, nor the other way round."""
    return [
        source
        for source, on in ((Source.HTH, hth_hooks.is_configured()), (Source.ONEUPTIME, oneuptime_hooks.is_configured()))
        if on
    ]


def drain(
    *,
    now: datetime,
    take_hints: bool = True,
    sources=(Source.HTH, Source.ONEUPTIME),
    should_stop: Callable[[], bool] = lambda: False,
) -> set[str]:
    """Apply the queued deliveries of `sources`; returns the sources whose next list pass should start now.

    With `take_hints` off, hints stay queued: the poller spaces hinted passes so a storm of Hooks
    cannot make it list Helix TeamHub many times a second. Pushed events are read back one by one,
    and `should_stop` is asked before each: when it says stop, the batch stays queued for the next run
    (reading an event or note twice changes nothing). Notes are read back PAGE_SIZE per call.
    """
    queued = HookDelivery.objects.filter(kind__in=[kind for source in sources for kind in KINDS[source]])
    if not take_hints:
        queued = queued.exclude(kind=HookDelivery.Kind.HTH_HINT)
    deliveries = list(queued[:BATCH])
    if not deliveries:
        return set()
    wanted: set[str] = set()
    event_ids, note_ids = [], []
    for delivery in deliveries:
        if delivery.kind == HookDelivery.Kind.HTH_HINT:
            wanted.add(Source.HTH)
        elif delivery.kind == HookDelivery.Kind.ONEUPTIME_NOTE:
            note_ids.append(delivery.payload["note_id"])
        else:
            event_ids += _event_ids(delivery.payload)
    report = SyncReport()
    if event_ids:
        read = lambda: hth_hooks.read_pushed_events(  # noqa: E731
            list(dict.fromkeys(event_ids)), client=HthClient.from_settings(), now=now, should_stop=should_stop
        )
        report.add(_applied(read, "pushed events"))
    if note_ids and not should_stop():
        read = lambda: note_sync.sync_notes_by_id(client=OneUptimeClient.from_settings(), note_ids=note_ids, now=now)  # noqa: E731
        report.add(_applied(read, "notes named by webhooks"))
    if not report.finished or should_stop():
        return set()  # stopped between two reads: the batch stays queued, hints included
    HookDelivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).delete()
    log.info("applied %d hook deliveries: %s", len(deliveries), report)
    return wanted


def _event_ids(payload) -> list[str]:
    """`{"id": …}`; a whole list of pushed events was queued by versions that stored the push's copy."""
    items = payload if isinstance(payload, list) else [payload]
    return [item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]


def _applied(apply, what) -> SyncReport:
    try:
        return apply()
    except Exception:
        # One bad delivery must not stop the queue; the regular pass brings the same change later.
        log.exception("could not apply %s; the regular pass will catch up", what)
        return SyncReport(skipped=1)
