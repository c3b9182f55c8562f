"""The outbox: admin edits to incident notes, written back to OneUptime by the poller.

The admin commits a note and its NoteWrite in one transaction (`enqueue`), so an edit is never lost
when OneUptime is down: `deliver_due` keeps trying, with backoff, until OneUptime takes it or refuses
it for good. A note's writes go out one at a time, oldest first: a later edit waits for an earlier one.

Each write is claimed with a conditional UPDATE that also pushes it a short LEASE ahead, and a thread
renews that lease every few seconds while the delivery runs, however long OneUptime takes to answer.
So a live poller's delivery is never taken over, and two pollers never send a write at once, while a
poller that is killed mid-delivery leaves the write due again within LEASE (seconds, not minutes).

OneUptime has no idempotency key, so a create carries our token in `postedFromSlackMessageId`
(writable on create and indexed; the Slack integration uses it the same way), and any attempt after
the first looks the token up before posting again: a create cut off by a crash is found, not doubled.
A token the sync has already seen come back is never posted again, even when the lookup finds nothing
(the note was deleted in OneUptime since).

OneUptime has no If-Match either, so an update is checked on both sides. Before: it reads the note,
and if the text is neither what the admin loaded nor what we send, someone else edited it and the
write is held as a conflict. After: it reads the note back; if the text is not ours, or `version` moved
by more than our update (and OneUptime's own notification bookkeeping) explains, someone else wrote
in between, and the write is held as a conflict rather than marked delivered, so an edit that ours may
have replaced is shown to a person instead of vanishing. Text, not `updatedAt`, for the first check:
OneUptime touches `updatedAt` itself about a minute after every create.

Two admins who open the same text are folded into one unsent write only when the second saw the
first's edit; otherwise the second edit is queued on its own and meets the first as a conflict.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from dashboard.live import transitions
from dashboard.models import IncidentNote, NoteWrite, Transition, TransitionKind
from dashboard.upstreams.http import UpstreamError
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.oneuptime.sync import TOKEN_PREFIX, UNDELIVERED, apply_note, note_values
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

# How long a claimed write stays claimed without renewal: a killed poller's write is due again this soon.
LEASE = timedelta(seconds=15)
RENEW_EVERY = LEASE / 3  # while a delivery runs, however long OneUptime takes to answer
FIRST_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)
BATCH_SIZE = 50  # per call; the poller calls again about a second later
DELETED_UPSTREAM = "The note was deleted in OneUptime; your text is kept here."
CREATED_THEN_DELETED = "The note reached OneUptime and was deleted there since; your text is kept here, not posted again."
CHANGED_AFTER_OURS = "OneUptime's text changed again right after ours was sent; choose a version"
WRITTEN_MEANWHILE = (
    "OneUptime recorded another change to this note while ours was being sent, and ours may have replaced it: "
    "check the incident's feed in OneUptime, then choose a version"
)
# What OneUptime's own notification worker rewrites on a note, bumping its version once.
WORKER_FIELDS = ("subscriberNotificationStatusMessage",)
# What the admin shows besides NoteWrite's own states.
SYNCED = "synced"
DELETING = "deleting"

Action = NoteWrite.Action
State = NoteWrite.State


def enqueue(*, note: IncidentNote, action: str, base_text: str = "") -> NoteWrite | None:
    """Queue an admin's change to `note`, in the caller's transaction (the admin's own, for its save).

    `base_text` is the note's text as the admin loaded it, for spotting someone else's edit. An edit
    made on top of a write not yet sent changes what that write will send instead of adding another,
    so OneUptime sees one change rather than a burst. Returns None when nothing needs sending.
    """
    now = timezone.now()
    with transaction.atomic():
        if action == Action.DELETE:
            return _enqueue_delete(note, now=now)
        data = {"note": note.note}
        if note.posted_at:
            data["postedAt"] = note.posted_at.isoformat()
        unsent = note.writes.filter(action__in=[Action.CREATE, Action.UPDATE], state=State.PENDING, attempts=0).last()
        # Folded only when this edit was made on top of the unsent one; an edit of an older copy gets its own
        # write, which then meets the first one in OneUptime as a conflict instead of erasing it.
        if action == Action.UPDATE and unsent is not None and _lf(base_text) == _lf(unsent.data.get("note")):
            # Conditional, like a claim: if the poller took it meanwhile, it is sent already and this edit needs its own write.
            if NoteWrite.objects.filter(id=unsent.id, state=State.PENDING, attempts=0).update(data={**unsent.data, **data}):
                unsent.refresh_from_db()
                return unsent
        if action == Action.CREATE:
            data |= {
                "incidentId": note.incident.upstream_id,
                "shouldStatusPageSubscribersBeNotifiedOnNoteCreated": note.should_status_page_subscribers_be_notified_on_note_created,
            }
            if settings.ONEUPTIME_PROJECT_ID:
                data["projectId"] = settings.ONEUPTIME_PROJECT_ID
        return NoteWrite.objects.create(note=note, action=action, data=data, base_text=base_text, next_attempt_at=now)


def _enqueue_delete(note: IncidentNote, *, now: datetime) -> NoteWrite | None:
    """A note nothing was ever sent for just goes; any other is hidden until OneUptime has deleted it too.

    The delete supersedes queued edits that are not on their way (failed, conflicting, or not yet
    tried): sending them first would be pointless. One being sent right now finishes first.
    """
    if note.upstream_id is None and not note.writes.filter(attempts__gt=0).exists():
        note.delete()
        return None
    queued = note.writes.filter(action=Action.DELETE, state__in=UNDELIVERED).first()
    if queued is not None:
        return queued
    note.writes.filter(state__in=[State.FAILED, State.CONFLICT]).update(state=State.DISCARDED)
    note.writes.filter(state=State.PENDING, attempts=0).update(state=State.DISCARDED)
    IncidentNote.objects.filter(pk=note.pk).update(deleted=True)
    note.deleted = True
    return NoteWrite.objects.create(note=note, action=Action.DELETE, next_attempt_at=now)


def deliver_due(*, client: OneUptimeClient, now: datetime) -> SyncReport:
    """Send every due write, oldest first, and for each note only its oldest undelivered one.

    A write that fails is recorded on its row (and logged) and never stops the others.
    """
    report = SyncReport()
    earlier = NoteWrite.objects.filter(note=OuterRef("note"), state__in=UNDELIVERED, id__lt=OuterRef("id"))
    due = NoteWrite.objects.filter(state=State.PENDING, next_attempt_at__lte=now).exclude(Exists(earlier)).order_by("id")
    for write_id, attempts in due.values_list("id", "attempts")[:BATCH_SIZE]:
        claimed = NoteWrite.objects.filter(id=write_id, state=State.PENDING, attempts=attempts).update(
            attempts=attempts + 1, next_attempt_at=now + LEASE
        )
        if not claimed:
            continue  # another poller took it
        # Read after claiming: an edit folded into it before the claim is sent too, and none after.
        write = NoteWrite.objects.select_related("note__incident").get(id=write_id)
        report.seen += 1
        try:
            with _lease_renewed(write_id, attempts=attempts + 1, until=now + LEASE):
                report.add(_deliver(write, client=client, now=now))
        except UpstreamError as exc:
            _record_failure(write, exc, permanent=exc.permanent, now=now)
            report.skipped += 1
        except Exception as exc:
            # A bug or a malformed answer: back off like a transient error, so one write can't crash-loop the poller.
            log.exception("write-back of note %s crashed", write.note_id)
            _record_failure(write, f"{exc.__class__.__name__}: {exc}", permanent=False, now=now)
            report.skipped += 1
    return report


@contextmanager
def _lease_renewed(write_id: int, *, attempts: int, until: datetime) -> Iterator[None]:
    """Keep the claim on a write alive while it is delivered: a thread pushes its lease ahead every few
    seconds, so only a poller that died lets it lapse. The renewal is conditional on the lease being the
    one it set, so it never overrides the backoff a failure records."""
    done = threading.Event()

    def renew(until: datetime) -> None:
        try:
            while not done.wait(RENEW_EVERY.total_seconds()):
                later = timezone.now() + LEASE
                claim = NoteWrite.objects.filter(id=write_id, state=State.PENDING, attempts=attempts, next_attempt_at=until)
                if not claim.update(next_attempt_at=later):
                    return
                until = later
        except Exception:
            log.exception("could not renew the lease of write %s; it may be sent again after %s", write_id, LEASE)
        finally:
            connections.close_all()  # this thread's own connections

    renewer = threading.Thread(target=renew, args=(until,), name=f"lease-{write_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(timeout=LEASE.total_seconds())


def _deliver(write: NoteWrite, *, client: OneUptimeClient, now: datetime) -> SyncReport:
    if write.action == Action.CREATE:
        return _deliver_create(write, client=client, now=now)
    if write.action == Action.UPDATE:
        return _deliver_update(write, client=client, now=now)
    return _deliver_delete(write, client=client, now=now)


def _deliver_create(write: NoteWrite, *, client: OneUptimeClient, now: datetime) -> SyncReport:
    # An earlier attempt may have reached OneUptime and died before recording the answer.
    item = _find_created(write, client=client) if write.attempts > 1 else None
    if item is None and write.note.upstream_id is not None:
        # The sync saw our token come back (it gave the row its `_id`), so this create reached OneUptime;
        # the note is gone since, deleted there. Posting it again would bring it back beside whatever
        # replaced it: the admin's text is kept here and the write shown as failed, as for an update.
        _record_failure(write, CREATED_THEN_DELETED, permanent=True, now=now)
        return SyncReport(skipped=1)
    if item is None:
        item = client.create_note({**_outgoing(write.data), "postedFromSlackMessageId": _token(write)})
    _store_delivered(write, item, kind=TransitionKind.NOTE_CREATED, now=now)
    return SyncReport(created=1, transitions=1)


def _deliver_update(write: NoteWrite, *, client: OneUptimeClient, now: datetime) -> SyncReport:
    upstream_id = write.note.upstream_id
    current = client.get_note(upstream_id)
    if current is None:
        _record_failure(write, DELETED_UPSTREAM, permanent=True, now=now)
        return SyncReport(skipped=1)
    # Line breaks are compared as LF: the admin form turns a browser's CRLF into LF, and OneUptime keeps what it was sent.
    theirs, base, ours = (_lf(text) for text in (current.get("note"), write.base_text, write.data["note"]))
    if theirs not in (base, ours):
        _hold_conflict(write, current)
        log.info("write-back of note %s held: its text changed in OneUptime since the admin loaded it", write.note_id)
        return SyncReport(skipped=1)
    client.update_note(upstream_id, _outgoing(write.data))
    fresh = client.get_note(upstream_id)
    if fresh is None:
        _record_failure(write, DELETED_UPSTREAM, permanent=True, now=now)
        return SyncReport(skipped=1)
    if _lf(fresh.get("note")) != ours or _written_meanwhile(current, fresh):
        _hold_conflict(write, fresh, CHANGED_AFTER_OURS if _lf(fresh.get("note")) != ours else WRITTEN_MEANWHILE)
        log.warning("write-back of note %s held: someone else wrote to it in OneUptime during our update", write.note_id)
        return SyncReport(skipped=1)
    _store_delivered(write, fresh, kind=TransitionKind.NOTE_UPDATED, now=now)
    return SyncReport(updated=1, transitions=1)


def _written_meanwhile(before: dict, after: dict) -> bool:
    """Did anyone but us (and OneUptime's notification worker) write between the two reads around our update?

    Every write bumps `version`; ours is one. Unknown versions prove nothing. A PUT that urllib3 repeated
    after a lost answer also counts twice: a needless conflict, never a silent loss.
    """
    first, last = before.get("version"), after.get("version")
    if not isinstance(first, int) or not isinstance(last, int):
        return False
    explained = 1 + any(before.get(name) != after.get(name) for name in WORKER_FIELDS)
    return last - first > explained


def _hold_conflict(write: NoteWrite, upstream_copy: dict, reason: str = "") -> None:
    write.state, write.upstream_copy, write.last_error = State.CONFLICT, upstream_copy, reason
    write.save(update_fields=["state", "upstream_copy", "last_error"])


def _deliver_delete(write: NoteWrite, *, client: OneUptimeClient, now: datetime) -> SyncReport:
    note = write.note
    upstream_id = note.upstream_id
    if upstream_id is None:
        # Its create failed, but an attempt before that may still have reached OneUptime.
        created = [_find_created(create, client=client) for create in note.writes.filter(action=Action.CREATE, attempts__gt=0)]
        upstream_id = next((item["_id"] for item in created if item), None)
    if upstream_id is not None:
        client.delete_note(upstream_id)  # 200 even when it is already gone
    with transaction.atomic():
        if upstream_id is not None:
            transitions.record(
                [Transition(kind=TransitionKind.NOTE_DELETED, upstream_id=upstream_id, incident=note.incident, at=now)]
            )
        note.delete()  # its writes go with it
    return SyncReport(updated=1, transitions=int(upstream_id is not None))


def _token(write: NoteWrite) -> str:
    return TOKEN_PREFIX + str(write.token)


def _find_created(write: NoteWrite, *, client: OneUptimeClient) -> dict | None:
    found = client.list_notes(query={"postedFromSlackMessageId": _token(write)}, limit=1).items
    return found[0] if found else None


def _store_delivered(write: NoteWrite, item: dict, *, kind: str, now: datetime) -> None:
    """Mirror OneUptime's copy onto the note and mark the write delivered, together."""
    with transaction.atomic():
        note = _apply_upstream_copy(write, item, now=now)
        write.state, write.delivered_at, write.last_error = State.DELIVERED, now, ""
        write.save(update_fields=["state", "delivered_at", "last_error"])
        transitions.record([Transition(kind=kind, upstream_id=note.upstream_id, note=note, incident=note.incident, at=now)])


def _record_failure(write: NoteWrite, error: Exception | str, *, permanent: bool, now: datetime) -> None:
    reason = " ".join(str(error).split())
    write.last_error = reason
    if permanent:
        write.state = State.FAILED
    else:
        write.next_attempt_at = now + min(FIRST_BACKOFF * 2 ** (write.attempts - 1), MAX_BACKOFF)
    write.save(update_fields=["state", "last_error", "next_attempt_at"])
    log.warning("write-back of note %s %s: %s", write.note_id, "failed" if permanent else "will be retried", reason)


def retry(write: NoteWrite) -> None:
    """Send a failed write again now (after someone granted the permission, say). A create looks for its note first."""
    NoteWrite.objects.filter(id=write.id, state=State.FAILED).update(state=State.PENDING, next_attempt_at=timezone.now())


def overwrite(write: NoteWrite) -> None:
    """Resolve a conflict with the admin's text: OneUptime's current text becomes the base, so it is replaced,
    unless it changes yet again before delivery."""
    NoteWrite.objects.filter(id=write.id, state=State.CONFLICT).update(
        state=State.PENDING, base_text=write.upstream_copy.get("note") or "", last_error="", next_attempt_at=timezone.now()
    )


def use_upstream(write: NoteWrite, *, client: OneUptimeClient) -> None:
    """Resolve a conflict with OneUptime's text as it is now, read fresh: the sync skipped the note while
    it was held and its watermark has moved past any later edit, so the copy seen at delivery may be stale.

    Raises UpstreamError when OneUptime cannot be read; the conflict then stays as it was.
    """
    current = client.get_note(write.note.upstream_id)
    now = timezone.now()
    with transaction.atomic():
        if not NoteWrite.objects.filter(id=write.id, state=State.CONFLICT).update(state=State.DISCARDED):
            return
        if current is None:  # deleted in OneUptime meanwhile: OneUptime's version is no note at all
            note = write.note
            if note.writes.filter(state__in=UNDELIVERED).exists():
                return  # a later edit is queued: it will fail as deleted upstream, keeping its text
            transitions.record(
                [Transition(kind=TransitionKind.NOTE_DELETED, upstream_id=note.upstream_id, incident=note.incident, at=now)]
            )
            note.delete()
            return
        note = _apply_upstream_copy(write, current, now=now)
        transitions.record(
            [
                Transition(
                    kind=TransitionKind.NOTE_UPDATED, upstream_id=note.upstream_id, note=note, incident=note.incident, at=now
                )
            ]
        )


def _apply_upstream_copy(write: NoteWrite, item: dict, *, now: datetime) -> IncidentNote:
    """Mirror OneUptime's copy onto the write's note, in the caller's transaction; a newer edit queued
    behind this write keeps the row showing its text."""
    values = note_values(item)
    values.pop("incident_upstream_id")
    note = IncidentNote.objects.select_for_update().select_related("incident").get(pk=write.note_id)
    if note.writes.filter(id__gt=write.id, state__in=UNDELIVERED).exists():
        values.update(note=note.note, posted_at=note.posted_at)
    note, _ = apply_note(values, incident=note.incident, now=now)
    return note


def outstanding_write(note: IncidentNote) -> NoteWrite | None:
    """The write that decides what the note shows: its oldest undelivered one, which the others wait behind.

    Reads `note.writes.all()`, so a list can prefetch them.
    """
    return next((write for write in note.writes.all() if write.state in UNDELIVERED), None)


def state_of(note: IncidentNote) -> str:
    """The note's write-back state for display: synced, pending, deleting, failed or conflict."""
    write = outstanding_write(note)
    if write is None:
        return SYNCED
    if write.state == State.PENDING and note.deleted:
        return DELETING
    return write.state


def filter_by_state(notes: QuerySet[IncidentNote], state: str) -> QuerySet[IncidentNote]:
    """The notes whose `state_of` is `state`, in one query."""
    outstanding = NoteWrite.objects.filter(note=OuterRef("pk"), state__in=UNDELIVERED).order_by("id").values("state")[:1]
    notes = notes.annotate(outstanding_state=Subquery(outstanding))
    if state == SYNCED:
        return notes.filter(outstanding_state=None)
    if state == DELETING:
        return notes.filter(outstanding_state=State.PENDING, deleted=True)
    if state == State.PENDING:
        return notes.filter(outstanding_state=State.PENDING, deleted=False)
    return notes.filter(outstanding_state=state)


def _lf(text: str | None) -> str:
    """Text as the mirror keeps it: LF line breaks (see the admin form) and no NUL (PostgreSQL cannot hold it)."""
    return (text or "").replace("\r\n", "\n").replace("\x00", "")


def _outgoing(data: dict) -> dict:
    """The stored fields as the client sends them: dates were kept as ISO text in the JSON column."""
    if data.get("postedAt"):
        return {**data, "postedAt": datetime.fromisoformat(data["postedAt"])}
    return data
