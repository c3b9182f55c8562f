"""One pass of the Helix TeamHub mirror: fetch, validate, upsert, and say what changed.

The API pages newest-first by offset, with no time filter, and the list moves while we read it:
arrivals push everything down, deletions pull it up, and an event may be dated ahead of now (it sits
at the top) or backdated (it lands deep down). So an offset is only a hint, never a position we trust.
Each stream (all events, or one project of HTH_PROJECTS) keeps a cursor:

  scanned_at:   when the last complete pass started;
  rescanned_at: when the last complete *full* pass (the newest HTH_BACKFILL_EVENTS) started;
  run:          while a pass is under way: when it started, where it stops, and its anchor, the last
                ANCHOR events of its last committed page.
and, for all streams, `retry`: ids of items that could not be parsed or stored, with the reason.

What a complete pass guarantees: every event that was in the list when the pass started and is
timestamped at or after its floor is stored, and so is every item in `retry` that is now readable.
The floor is the previous pass's start minus HTH_CLOCK_SKEW_SECONDS: a new event is timestamped about
when it arrives, so everything that arrived since sits above it, including anything dated ahead (a
pass never stops at the first known event, so one dated ahead cannot hide newer ones). Nothing in this
API can find an event backdated below the floor except reading that far, so every HTH_RESCAN_SECONDS
a pass reads the whole window again; that also re-reads items that were malformed without an id.

How pages join: each page is fetched overlapping the previous one by the anchor, and read on from just
after the first anchor event found in it, wherever arrivals or deletions have moved it. If no anchor
event is there (all deleted, or pushed beyond the page), the page's timestamps (the list is ordered by
timestamp) say whether to look further down or back up, and reading resumes after the last event newer
than the anchor. Every step can re-read an event; none can step over one. No pass reads below the
retention horizon (EVENTS_KEPT_DAYS): what retention deleted must not come back.

Why a killed or aborted pass never skips anything: a page's rows and the cursor that covers them commit
in one transaction, so the anchor always names the last stored page. The next pass first reads the top
down to the interrupted run's floor-for-arrivals (its start minus the skew: whatever arrived meanwhile),
then finds the anchor and reads on from it to the run's own floor. `scanned_at` moves only when a pass
reaches its floor. A database error that is not about one row (a lost connection, a locked database)
aborts the pass and commits nothing; a row the database refuses, and a malformed item with an id, go to
`retry` and are fetched again by id on every pass until they store, or until upstream deletes them.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, transaction

from dashboard.live import detection, pipelines, transitions
from dashboard.models import Event, EventStatus, Source, SyncState, Transition
from dashboard.upstreams.hth.client import MAX_ID_LENGTH, PAGE_SIZE, EventPage, HthClient, HthEvent, MalformedEvent
from dashboard.upstreams.http import AnswerUnreadable, UpstreamError
from dashboard.upstreams.report import SyncReport
from dashboard.upstreams.storable import text

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]
MIRRORED_FIELDS = [f.name for f in fields(HthEvent) if f.name != "id"]
# Rewritten when an event changes; first_seen_at keeps the first sighting.
UPDATED_FIELDS = MIRRORED_FIELDS + ["synced_at", "progress_changed_at", "status"]
# Errors about the data of a row (a value PostgreSQL cannot store, a key another writer just took):
# only these make one row "bad". Anything else (OperationalError, InterfaceError) aborts the pass.
# A string the database driver cannot encode (UnicodeError) is one row's fault too.
ROW_ERRORS = (DataError, IntegrityError, UnicodeError)
ANCHOR = 3  # events each page overlaps the previous one by
MAX_SEARCH_PAGES = 200  # looking for a lost anchor; after that the run's region is read again from the top
RETRIES_PER_PASS = 100
RECHECK_MAX = 100  # events an admin's re-check reads, one request each, while the admin waits
DOWN, UP = "down", "up"


def sync_events(
    *,
    client: HthClient,
    now: datetime,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncReport:
    """Bring every configured stream up to date (the whole company, or each of HTH_PROJECTS), then the retries."""
    report = SyncReport()
    for project in settings.HTH_PROJECTS or [""]:
        report.add(_sync_stream(client=client, project=project, now=now, on_progress=on_progress, should_stop=should_stop))
        if not report.finished:
            return report
    report.add(retry_failed(client=client, now=now))
    return report


def in_scope(event: HthEvent) -> bool:
    """Whether the mirror keeps `event`: every project, or only those of HTH_PROJECTS (as the list passes read)."""
    return not settings.HTH_PROJECTS or event.project in settings.HTH_PROJECTS


def _sync_stream(*, client, project, now, on_progress, should_stop) -> SyncReport:
    key = project or "*"
    stream = _cursor().get("streams", {}).get(key, {})
    backfilled = stream.get("backfilled", False)  # after the first full pass, every new event is news
    scan = _Scan(client=client, project=project, key=key, now=now, announce_new=backfilled, should_stop=should_stop)
    run = stream.get("run")
    report = SyncReport()
    if isinstance(run, dict) and "anchor" in run:
        # Resume: what arrived since the interrupted run started sits above it. Read that first, without
        # touching the cursor, then restart the run's clock: from now on the top is covered too.
        report.add(scan.read(floor=_time(run["started_at"]) - _skew()))
        if not report.finished:
            return report
        run = {**run, "started_at": now.isoformat()}
    else:
        scanned_at, rescanned_at = _time(stream.get("scanned_at")), _time(stream.get("rescanned_at"))
        full = not backfilled or scanned_at is None or rescanned_at is None or now - rescanned_at >= _rescan_every()
        run = {
            "started_at": now.isoformat(),
            "full": full,
            "floor": None if full else (scanned_at - _skew()).isoformat(),
            "bound": settings.HTH_BACKFILL_EVENTS if full else None,
            "anchor": [],
            "offset": 0,
        }
    base = {key: value for key, value in stream.items() if key != "run"}
    report.add(
        scan.read(
            floor=_time(run["floor"]),
            bound=run["bound"],
            anchor=run["anchor"],
            offset=run["offset"],
            commit=lambda anchor, offset: (key, {**base, "run": {**run, "anchor": anchor, "offset": offset}}),
            on_progress=on_progress,
        )
    )
    if report.finished:
        done = {**base, "run": None, "backfilled": True, "scanned_at": run["started_at"]}
        if run["full"]:
            done["rescanned_at"] = run["started_at"]
        with transaction.atomic():
            _save_cursor(key, done)
    return report


class _Scan:
    """Reads one stream downwards, page by page, each page joined to the last by its anchor."""

    def __init__(self, *, client, project, key, now, announce_new, should_stop):
        self.client, self.project, self.key, self.now = client, project, key, now
        self.announce_new, self.should_stop = announce_new, should_stop
        self.started = time.monotonic()

    def now_here(self) -> datetime:
        """The pass's clock, moved on by the time the pass has taken so far."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def read(self, *, floor, bound=None, anchor=(), offset=0, commit=None, on_progress=None) -> SyncReport:
        """Read from `anchor` (or the top) until an event older than `floor`, position `bound`, or the end.

        `commit(anchor, offset)` gives the cursor to save with each page; without it only rows are saved.
        """
        report = SyncReport()
        anchor, fetch_at, searched = list(anchor), max(0, offset - len(anchor)), 0
        pass_floor = floor
        while True:
            if self.should_stop():
                report.finished = False
                return report
            page = self.client.list_events(offset=fetch_at, project=self.project)
            # The retention horizon as of this page, not of the pass's start: retention may have run since.
            floor = max((f for f in (pass_floor, kept_from(self.now_here())) if f is not None), default=None)
            start = _place(anchor, page, fetch_at) if anchor else 0
            if start in (DOWN, UP):
                searched += 1
                if searched > MAX_SEARCH_PAGES:
                    log.warning("lost the place of stream %s; reading its region again from the top", self.key)
                    anchor, fetch_at, searched = [], 0, 0
                else:
                    read = page.next_offset - fetch_at  # an empty page: the list ends above; step a whole page
                    step = read - 1 if read > 1 else PAGE_SIZE - 1  # neighbouring pages share an event
                    fetch_at = fetch_at + step if start == DOWN else max(0, fetch_at - step)
                continue
            searched = 0
            batch, done, end = [], not page.more_results, page.next_offset
            for event in page.events[start:]:
                position = page.offsets[event.id]
                if (bound is not None and position >= bound) or (floor is not None and event.timestamp < floor):
                    done, end = True, position
                    break
                batch.append(event)
            read_to = page.events[: start + len(batch)]
            first = page.offsets[page.events[start - 1].id] + 1 if start else fetch_at
            last = page.offsets[read_to[-1].id] if read_to else (end - 1 if not done else fetch_at - 1)
            malformed = {}
            for bad in page.bad_items:
                if first <= bad.position < end:
                    log.warning("skipped a malformed Helix TeamHub event at offset %s: %s", bad.position, bad.reason)
                    report.skipped += 1
                    if event_id := _retry_id(bad.raw):
                        malformed[event_id] = bad.reason
            anchor = [{"id": e.id, "timestamp": e.timestamp.isoformat()} for e in read_to[-ANCHOR:]] or anchor
            report.seen += len(batch) + len(malformed)
            cursor = commit(anchor, last + 1) if commit else None
            report.add(store_events(batch, now=self.now, announce_new=self.announce_new, cursor=cursor, malformed=malformed))
            if on_progress and bound is not None:
                on_progress(last + 1, last + 1 if done else bound)
            if done:
                return report
            fetch_at = max(0, last + 1 - len(anchor))


def kept_from(now: datetime) -> datetime | None:
    """The retention horizon: older events are pruned (dashboard/poller/retention.py), so a pass never
    reads below it, or it would bring them back as new. Both sides ask here, each with its own clock."""
    return now - timedelta(days=settings.EVENTS_KEPT_DAYS) if settings.EVENTS_KEPT_DAYS else None


def _place(anchor: list[dict], page: EventPage, fetch_at: int) -> int | str:
    """Where in `page.events` reading goes on after `anchor`, or which way (DOWN, UP) to look for it."""
    index = {event.id: i for i, event in enumerate(page.events)}
    found = [index[ref["id"]] for ref in anchor if ref["id"] in index]
    if found:
        # After the last, unless an edit reordered them: then after the earliest (re-reading beats skipping).
        return (found[-1] if found == sorted(found) else min(found)) + 1
    if not page.events:
        return DOWN if page.more_results else (UP if fetch_at > 0 and not page.bad_items else 0)
    # Every anchor event is gone or moved beyond this page: place by time, the order of the list.
    stamp = _time(anchor[-1]["timestamp"])
    if page.events[0].timestamp <= stamp and fetch_at > 0:
        return UP
    if page.events[-1].timestamp > stamp:
        return DOWN if page.more_results else len(page.events)
    return next(i for i, event in enumerate(page.events) if event.timestamp <= stamp)


def _retry_id(raw) -> str | None:
    """The id to fetch a malformed item by later, if it has one the API could answer to."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    if (
        isinstance(event_id, str)
        and event_id
        and len(event_id) <= MAX_ID_LENGTH
        and "/" not in event_id
        and text(event_id) == event_id
    ):
        return event_id
    return None


def retry_failed(*, client: HthClient, now: datetime) -> SyncReport:
    """Fetch by id what a pass could not parse or store: a corrected item lands, a deleted one is forgotten."""
    report = SyncReport()
    waiting = sorted(_cursor().get("retry", {}))[:RETRIES_PER_PASS]
    if not waiting:
        return report
    fetched, malformed, gone = [], {}, []
    for event_id in waiting:
        try:
            event = client.get_event(event_id)
        except (MalformedEvent, UpstreamError) as exc:
            malformed[event_id] = str(exc)
            continue
        if event is None:
            gone.append(event_id)
        else:
            fetched.append(event)
    report.seen += len(fetched)
    report.add(store_events(fetched, now=now, announce_new=True, malformed=malformed, forget=gone))
    return report


def refresh_unfinished_events(*, client: HthClient, now: datetime) -> SyncReport:
    """Fetch every recent unfinished event by id: an old event that progresses never returns to the top of the list.

    The fetches run HTH_REFRESH_CONCURRENCY at a time, so a hundred live builds behind a slow upstream
    still refresh within LIVE_REFRESH_SECONDS; the results are stored in one transaction.
    """
    report = SyncReport()
    recent = now - timedelta(seconds=settings.LIVE_MAX_AGE_SECONDS)
    unfinished = list(
        Event.objects.filter(status__in=detection.UNFINISHED, timestamp__gte=recent).values_list("upstream_id", flat=True)
    )

    def fetch(event_id):
        try:
            return event_id, client.get_event(event_id)
        except (MalformedEvent, UpstreamError) as exc:
            return event_id, exc

    with ThreadPoolExecutor(max_workers=max(1, settings.HTH_REFRESH_CONCURRENCY)) as pool:
        results = list(pool.map(fetch, unfinished))
    fresh, failure = [], None
    for event_id, result in results:
        if isinstance(result, (MalformedEvent, AnswerUnreadable)):
            log.warning("skipped a malformed refresh of event %s: %s", event_id, result)
            report.skipped += 1
        elif isinstance(result, UpstreamError):
            failure = failure or result
        elif result is None:
            log.info("event %s is gone upstream; keeping the last copy", event_id)
        else:
            fresh.append(result)
    report.seen += len(fresh)
    report.add(store_events(fresh, now=now, announce_new=False))
    if failure:
        raise failure  # what could be fetched is stored; the error is recorded for /healthz
    return report


@dataclass
class Recheck:
    stored: int = 0
    deleted: list[str] = field(default_factory=list)
    unread: int = 0  # after an upstream error, or past RECHECK_MAX
    error: str = ""


def recheck_events(*, client: HthClient, upstream_ids: list[str], now: datetime) -> Recheck:
    """An admin's check of rows against Helix TeamHub: store its answer for each, and delete the rows it
    answers 404 for (or that HTH_PROJECTS leaves out). Nothing else removes an event the API no longer has:
    its list cannot say that an event went. Only an explicit 404 deletes; an error deletes nothing."""
    result, fresh = Recheck(unread=max(0, len(upstream_ids) - RECHECK_MAX)), []
    for position, event_id in enumerate(upstream_ids[:RECHECK_MAX]):
        try:
            event = client.get_event(event_id)
        except MalformedEvent as exc:
            log.warning("event %s is malformed upstream; kept: %s", event_id, exc)
            continue
        except UpstreamError as exc:
            result.error = str(exc)
            result.unread += min(len(upstream_ids), RECHECK_MAX) - position
            break
        if event is None or not in_scope(event):
            result.deleted.append(event_id)
        else:
            fresh.append(event)
    store_events(fresh, now=now, announce_new=False)
    result.stored = len(fresh)
    with transaction.atomic():
        gone = list(Event.objects.filter(upstream_id__in=result.deleted).only(*pipelines.RUN_FIELDS))
        Event.objects.filter(pk__in=[event.pk for event in gone]).delete()  # their transitions go with them
        transitions.record([], events=gone)  # their pipelines, derived again without them
        _save_retries(stored=result.deleted, failed={}, cursor=None)
    return result


def sweep_live_events(*, now: datetime) -> int:
    """Time alone turns live events stale; nothing upstream tells us, so we look."""
    with transaction.atomic():
        changed, changes = [], []
        # Locked in primary-key order, as _upsert locks: the model's newest-first order against the
        # upsert's deadlocked now and then (PostgreSQL undid one of the two).
        for event in Event.objects.select_for_update().filter(status=EventStatus.LIVE).order_by("pk"):
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
        transitions.record(changes, events=changed)
    return len(changes)


def store_events(
    events: list[HthEvent],
    *,
    now: datetime,
    announce_new: bool,
    cursor: tuple[str, dict] | None = None,
    malformed: dict[str, str] | None = None,
    forget: list[str] = (),
) -> SyncReport:
    """Upsert a page and its cursor in one transaction.

    Only an error about the data (ROW_ERRORS) is one row's fault: then each row is stored alone, and a
    row the database still refuses goes to `retry` with the `malformed` items. Any other database
    error propagates with nothing committed, so the cursor never moves past rows that are not stored.
    """
    malformed = dict(malformed or {})
    try:
        with transaction.atomic():
            report = _upsert(events, now=now, announce_new=announce_new)
            _save_retries(stored=[e.id for e in events] + list(forget), failed=malformed, cursor=cursor)
        return report
    except ROW_ERRORS as exc:
        log.warning("a page of %d events failed to store (%s); storing them one by one", len(events), exc)
    report, stored = SyncReport(), list(forget)
    for event in events:
        try:
            with transaction.atomic():
                report.add(_upsert([event], now=now, announce_new=announce_new))
            stored.append(event.id)
        except ROW_ERRORS as exc:
            log.warning("Helix TeamHub event %s: the database refused it (%s); retrying it every pass", event.id, exc)
            malformed[event.id] = f"the database refused it: {' '.join(str(exc).split())}"
            report.skipped += 1
    with transaction.atomic():
        _save_retries(stored=stored, failed=malformed, cursor=cursor)
    return report


def _upsert(events: list[HthEvent], *, now: datetime, announce_new: bool) -> SyncReport:
    report = SyncReport()
    unique = list({event.id: event for event in events}.values())
    # Locked (in primary-key order, as the live sweep locks, against deadlocks) so that the sync and the live
    # refresh, or two pollers, cannot both turn the same old row into the same transition.
    rows_now = Event.objects.select_for_update().filter(upstream_id__in=[event.id for event in unique]).order_by("pk")
    existing = {e.upstream_id: e for e in rows_now}
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
    # A racing poller may insert the same ids meanwhile: ON CONFLICT turns that into an update.
    Event.objects.bulk_create(rows, update_conflicts=True, unique_fields=["upstream_id"], update_fields=UPDATED_FIELDS)
    pks = dict(Event.objects.filter(upstream_id__in=list(kinds_by_id)).values_list("upstream_id", "pk"))
    progress = {row.upstream_id: row.progress for row in rows}
    changes = [
        Transition(kind=kind, upstream_id=upstream_id, event_id=pks[upstream_id], progress=progress[upstream_id], at=now)
        for upstream_id, kinds in kinds_by_id.items()
        for kind in kinds
    ]
    # The old rows too: an event edited into another pipeline leaves the one it was a run of.
    transitions.record(changes, events=rows + [existing[row.upstream_id] for row in rows if row.upstream_id in existing])
    report.transitions = len(changes)
    return report


def _cursor() -> dict:
    state, _ = SyncState.objects.get_or_create(source=Source.HTH)
    return state.cursor


def _save_cursor(key: str, stream: dict) -> None:
    _save_retries(stored=[], failed={}, cursor=(key, stream))


def _save_retries(*, stored: list[str], failed: dict[str, str], cursor: tuple[str, dict] | None) -> None:
    """Write a stream's cursor and the retry list (in the caller's transaction); skipped when neither changes."""
    if cursor is None and not failed:
        retry_ids = set(_cursor().get("retry", {}))
        if not retry_ids.intersection(stored):
            return
    SyncState.objects.get_or_create(source=Source.HTH)
    state = SyncState.objects.select_for_update().get(source=Source.HTH)
    retry = {key: reason for key, reason in state.cursor.get("retry", {}).items() if key not in set(stored)} | failed
    updated = {**state.cursor, "retry": retry}
    if cursor:
        key, stream = cursor
        updated["streams"] = {**state.cursor.get("streams", {}), key: stream}
    if updated != state.cursor:
        state.cursor = updated
        state.save(update_fields=["cursor"])


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _skew() -> timedelta:
    return timedelta(seconds=settings.HTH_CLOCK_SKEW_SECONDS)


def _rescan_every() -> timedelta:
    return timedelta(seconds=settings.HTH_RESCAN_SECONDS)
