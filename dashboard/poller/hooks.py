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
import time
from datetime import datetime

from dashboard.models import HookDelivery, Source
from dashboard.upstreams.hth import hooks as hth_hooks
from dashboard.upstreams.oneuptime import hooks as oneuptime_hooks
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

BATCH = 500
# One drain's note re-reads, all told: the notes not reached stay queued for the next drain (and the
# regular pass brings the same change anyway). A hung OneUptime took 6 × 30 s over one re-read.
NOTE_REREADS_SECONDS = 20.0
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


def drain(*, now: datetime, take_hints: bool = True, sources=(Source.HTH, Source.ONEUPTIME)) -> set[str]:
    """Apply the queued deliveries of `sources`; returns the sources whose next list pass should start now.

    With `take_hints` off, hints stay queued: the poller spaces hinted passes so a storm of Hooks
    cannot make it list Helix TeamHub many times a second.
    """
    queued = HookDelivery.objects.filter(kind__in=[kind for source in sources for kind in KINDS[source]])
    if not take_hints:
        queued = queued.exclude(kind=HookDelivery.Kind.HTH_HINT)
    deliveries = list(queued[:BATCH])
    if not deliveries:
        return set()
    wanted: set[str] = set()
    handled, by_note = [], {}
    report = SyncReport()
    for delivery in deliveries:
        if delivery.kind == HookDelivery.Kind.HTH_HINT:
            wanted.add(Source.HTH)
        elif delivery.kind == HookDelivery.Kind.ONEUPTIME_NOTE:
            by_note.setdefault(delivery.payload["note_id"], []).append(delivery)  # a note named twice is read once
            continue
        else:
            report.add(_applied(lambda d=delivery: hth_hooks.store_pushed_events(d.payload, now=now), delivery))
        handled.append(delivery)
    if by_note:
        client = OneUptimeClient.from_settings()
        deadline = time.monotonic() + NOTE_REREADS_SECONDS
        for done, (note_id, named) in enumerate(by_note.items()):
            if time.monotonic() > deadline:
                log.warning("note re-reads ran out of time; %d notes wait for the next drain", len(by_note) - done)
                break
            report.add(_applied(lambda n=note_id: note_sync.sync_note(client=client, note_id=n, now=now), f"note {note_id}"))
            handled += named
    HookDelivery.objects.filter(pk__in=[delivery.pk for delivery in handled]).delete()
    log.info("applied %d hook deliveries: %s", len(handled), report)
    return wanted


def _applied(apply, what) -> SyncReport:
    try:
        return apply()
    except Exception:
        # One bad delivery must not stop the queue; the regular pass brings the same change later.
        log.exception("could not apply %s; the regular pass will catch up", what)
        return SyncReport(skipped=1)
