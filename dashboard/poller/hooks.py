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
from datetime import datetime

from dashboard.models import HookDelivery, Source
from dashboard.upstreams.hth import hooks as hth_hooks
from dashboard.upstreams.oneuptime import hooks as oneuptime_hooks
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

BATCH = 500


def enabled() -> bool:
    return hth_hooks.is_configured() or oneuptime_hooks.is_configured()


def drain(*, now: datetime, take_hints: bool = True) -> set[str]:
    """Apply every queued delivery; returns the sources whose next list pass should start now.

    With `take_hints` off, hints stay queued: the poller spaces hinted passes so a storm of Hooks
    cannot make it list Helix TeamHub many times a second.
    """
    queued = HookDelivery.objects.all() if take_hints else HookDelivery.objects.exclude(kind=HookDelivery.Kind.HTH_HINT)
    deliveries = list(queued[:BATCH])
    if not deliveries:
        return set()
    wanted: set[str] = set()
    note_ids = []
    report = SyncReport()
    for delivery in deliveries:
        if delivery.kind == HookDelivery.Kind.HTH_HINT:
            wanted.add(Source.HTH)
        elif delivery.kind == HookDelivery.Kind.ONEUPTIME_NOTE:
            note_ids.append(delivery.payload["note_id"])
        else:
            report.add(_applied(lambda d=delivery: hth_hooks.store_pushed_events(d.payload, now=now), delivery))
    if note_ids:
        client = OneUptimeClient.from_settings()
        for note_id in dict.fromkeys(note_ids):  # a note named twice in one batch is read once
            report.add(_applied(lambda n=note_id: note_sync.sync_note(client=client, note_id=n, now=now), f"note {note_id}"))
    HookDelivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).delete()
    log.info("applied %d hook deliveries: %s", len(deliveries), report)
    return wanted


def _applied(apply, what) -> SyncReport:
    try:
        return apply()
    except Exception:
        # One bad delivery must not stop the queue; the regular pass brings the same change later.
        log.exception("could not apply %s; the regular pass will catch up", what)
        return SyncReport(skipped=1)
