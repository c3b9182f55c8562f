"""One pass of the Helix TeamHub mirror: fetch, validate, upsert, and say what changed.

The API pages newest-first by offset and has no time filter, so the cursor of each stream (all
events, or one project of HTH_PROJECTS) holds:
  head: the newest event of the contiguous region we have fully synced;
  run:  while a pass is under way, its first event and the next offset to fetch.
Both are written in the same transaction as the page they describe. A pass stops at the first known,
unchanged event at or below `head`, and only then does `head` move up. A pass that was killed is
resumed: when the next pass meets the old run's first event at position p, everything from p to
p + old offset is already stored (new events only push old ones down), so it jumps past them.
"""

import logging
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction

from dashboard.live import detection, transitions
from dashboard.models import Event, EventStatus, Source, SyncState, Transition
from dashboard.upstreams.hth.client import HthClient, HthEvent, MalformedEvent
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]
MIRRORED_FIELDS = [f.name for f in fields(HthEvent) if f.name != "id"]
# Rewritten when an event changes; first_seen_at keeps the first sighting.
UPDATED_FIELDS = MIRRORED_FIELDS + ["synced_at", "progress_changed_at", "status"]


def sync_events(
    *,
    client: HthClient,
    now: datetime,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncReport:
    """Bring every configured stream up to date (the whole company, or each of HTH_PROJECTS)."""
    report = SyncReport()
    for project in settings.HTH_PROJECTS or [""]:
        report.add(_sync_stream(client=client, project=project, now=now, on_progress=on_progress, should_stop=should_stop))
        if not report.finished:
            break
    return report


def _sync_stream(*, client, project, now, on_progress, should_stop) -> SyncReport:
    report = SyncReport()
    key = project or "*"
    stream = _cursor().get(key, {})
    head = stream.get("head")
    resume = stream.get("run")
    backfilled = stream.get("backfilled", False)  # after the first full pass, every new event is news
    bound = None if backfilled else settings.HTH_BACKFILL_EVENTS
    offset, top = 0, None
    while True:
        if should_stop():
            report.finished = False
            return report
        page = client.list_events(offset=offset, project=project)
        for bad in page.bad_items:
            log.warning("skipped a malformed Helix TeamHub event at offset %s: %s", bad.position, bad.reason)
        report.skipped += len(page.bad_items)
        report.seen += len(page.events) + len(page.bad_items)
        stored = dict(Event.objects.filter(upstream_id__in=[e.id for e in page.events]).values_list("upstream_id", "raw"))
        batch, finished, next_offset = [], not page.more_results, page.next_offset
        for event in page.events:
            top = top or _ref(event, offset=page.offsets[event.id])
            if resume and event.id == resume["top"]["id"]:
                # The old run stored everything from its top down to its offset; skip past that.
                already_stored = resume["offset"] - resume["top"]["offset"]
                next_offset = max(next_offset, page.offsets[event.id] + already_stored)
                resume = None
            if head and stored.get(event.id) == event.raw and _at_or_below(event, head):
                finished = True
                break
            batch.append(event)
            if bound is not None and page.offsets[event.id] + 1 >= bound:
                finished = True
                break
        if finished:
            cursor = {"head": top or head, "run": None, "backfilled": True}
        else:
            cursor = {"head": head, "run": {"top": top, "offset": next_offset}, "backfilled": backfilled}
        report.add(store_events(batch, now=now, announce_new=backfilled, cursor=(key, cursor)))
        if on_progress and bound is not None:
            on_progress(next_offset, next_offset if finished else bound)
        if finished:
            return report
        offset = next_offset


def refresh_unfinished_events(*, client: HthClient, now: datetime) -> SyncReport:
    """Fetch every recent unfinished event by id: an old event that progresses never returns to the top of the list."""
    report = SyncReport()
    recent = now - timedelta(seconds=settings.LIVE_MAX_AGE_SECONDS)
    unfinished = Event.objects.filter(status__in=detection.UNFINISHED, timestamp__gte=recent)
    for event_id in unfinished.values_list("upstream_id", flat=True):
        try:
            fresh = client.get_event(event_id)
        except MalformedEvent as exc:
            log.warning("skipped a malformed refresh of event %s: %s", event_id, exc)
            report.skipped += 1
            continue
        report.seen += 1
        if fresh is None:
            log.info("event %s is gone upstream; keeping the last copy", event_id)
            continue
        report.add(store_events([fresh], now=now, announce_new=False))
    return report


def sweep_live_events(*, now: datetime) -> int:
    """Time alone turns live events stale; nothing upstream tells us, so we look."""
    with transaction.atomic():
        changed, changes = [], []
        for event in Event.objects.select_for_update().filter(status=EventStatus.LIVE):
            status = detection.status_of(
                progress=event.progress,
                operation=event.operation,
                timestamp=event.timestamp,
                progress_changed_at=event.progress_changed_at,
                now=now,
            )
            if status == event.status:
                continue
            kinds = detection.transitions(
                before=event.status,
                before_progress=event.progress,
                after=status,
                after_progress=event.progress,
                announce_new=False,
            )
            event.status = status
            changed.append(event)
            changes += [
                Transition(kind=kind, upstream_id=event.upstream_id, event=event, progress=event.progress, at=now)
                for kind in kinds
            ]
        Event.objects.bulk_update(changed, ["status"])
        transitions.record(changes)
    return len(changes)


def store_events(
    events: list[HthEvent], *, now: datetime, announce_new: bool, cursor: tuple[str, dict] | None = None
) -> SyncReport:
    """Upsert a page and its cursor in one transaction; if the database refuses one row, store the rest alone."""
    try:
        with transaction.atomic():
            report = _upsert(events, now=now, announce_new=announce_new)
            if cursor:
                _save_cursor(*cursor)
        return report
    except DatabaseError as exc:
        log.warning("a page of %d events failed to store (%s); storing them one by one", len(events), exc)
    report = SyncReport()
    for event in events:
        try:
            with transaction.atomic():
                report.add(_upsert([event], now=now, announce_new=announce_new))
        except DatabaseError as exc:
            log.warning("skipped Helix TeamHub event %s: the database refused it (%s)", event.id, exc)
            report.skipped += 1
    if cursor:
        with transaction.atomic():
            _save_cursor(*cursor)
    return report


def _upsert(events: list[HthEvent], *, now: datetime, announce_new: bool) -> SyncReport:
    report = SyncReport()
    unique = list({event.id: event for event in events}.values())
    existing = {e.upstream_id: e for e in Event.objects.filter(upstream_id__in=[event.id for event in unique])}
    rows, kinds_by_id = [], {}
    for event in unique:
        old = existing.get(event.id)
        if old is not None and old.raw == event.raw:
            continue
        changed_at = detection.progress_changed_at(
            previous_at=old.progress_changed_at if old else None,
            previous_progress=old.progress if old else None,
            previous_updated_at=old.updated_at if old else None,
            progress=event.progress,
            updated_at=event.updated_at,
            timestamp=event.timestamp,
            now=now,
        )
        status = detection.status_of(
            progress=event.progress, operation=event.operation, timestamp=event.timestamp, progress_changed_at=changed_at, now=now
        )
        values = {name: getattr(event, name) for name in MIRRORED_FIELDS}
        rows.append(
            Event(
                upstream_id=event.id,
                first_seen_at=old.first_seen_at if old else now,
                synced_at=now,
                progress_changed_at=changed_at,
                status=status,
                **values,
            )
        )
        kinds_by_id[event.id] = detection.transitions(
            before=old.status if old else None,
            before_progress=old.progress if old else None,
            after=status,
            after_progress=event.progress,
            announce_new=announce_new,
        )
        if old:
            report.updated += 1
        else:
            report.created += 1
    if not rows:
        return report
    Event.objects.bulk_create(rows, update_conflicts=True, unique_fields=["upstream_id"], update_fields=UPDATED_FIELDS)
    pks = dict(Event.objects.filter(upstream_id__in=list(kinds_by_id)).values_list("upstream_id", "pk"))
    progress = {row.upstream_id: row.progress for row in rows}
    changes = [
        Transition(kind=kind, upstream_id=upstream_id, event_id=pks[upstream_id], progress=progress[upstream_id], at=now)
        for upstream_id, kinds in kinds_by_id.items()
        for kind in kinds
    ]
    transitions.record(changes)
    report.transitions = len(changes)
    return report


def _cursor() -> dict:
    state, _ = SyncState.objects.get_or_create(source=Source.HTH)
    return state.cursor.get("streams", {})


def _save_cursor(key: str, stream: dict) -> None:
    state = SyncState.objects.select_for_update().get(source=Source.HTH)
    state.cursor = {**state.cursor, "streams": {**state.cursor.get("streams", {}), key: stream}}
    state.save(update_fields=["cursor"])


def _ref(event: HthEvent, *, offset: int) -> dict:
    return {"timestamp": event.timestamp.isoformat(), "id": event.id, "offset": offset}


def _at_or_below(event: HthEvent, head: dict) -> bool:
    head_timestamp = datetime.fromisoformat(head["timestamp"])
    return (event.timestamp, event.id) <= (head_timestamp, head["id"])
