"""The outbox: admin edits to incident notes, written back to OneUptime by the poller.

The admin commits a note and its NoteWrite in one transaction (`enqueue`), so an edit is never lost
when OneUptime is down: `deliver_due` keeps trying, with backoff, until OneUptime takes it or refuses
it for good. Each write is claimed with a conditional UPDATE that also pushes it a lease ahead, so a
poller killed mid-delivery leaves it due again rather than stuck, and two pollers never send it at
once. A note's writes go out one at a time, oldest first: a later edit waits for an earlier one.

OneUptime has no idempotency key, so a create carries our token in `postedFromSlackMessageId`
(writable on create and indexed; the Slack integration uses it the same way), and any attempt after
the first looks the token up before posting again. OneUptime has no If-Match either, so an update first
reads the note: if its text is neither what the admin loaded nor what we send, someone else edited it,
and the write is held as a conflict. Text, not `updatedAt`: OneUptime touches `updatedAt` itself about
a minute after every create, when it records the subscriber notification.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from dashboard.live import transitions
from dashboard.models import IncidentNote, NoteWrite, Transition, TransitionKind
from dashboard.upstreams.http import UpstreamError
from dashboard.upstreams.oneuptime.client import OneUptimeClient, normalize
from dashboard.upstreams.oneuptime.sync import TOKEN_PREFIX, UNDELIVERED, apply_note, note_values
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

# Longer than one create can take (connect and read timeouts), so a slow create is never sent twice.
LEASE = timedelta(minutes=2)
FIRST_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)
BATCH_SIZE = 50  # per call; the poller calls again about a second later
DELETED_UPSTREAM = "The note was deleted in OneUptime; your text is kept here."
# What the admin shows besides NoteWrite's own states.
SYNCED = "synced"
DELETING = "deleting"

Action = NoteWrite.Action
State = NoteWrite.State


def enqueue(*, note: IncidentNote, action: str, base_text: str = "") -> NoteWrite | None:
    """Queue an admin's change to `note`, in the caller's transaction (the admin's own, for its save).

    `base_text` is the note's text as the admin loaded it, for spotting someone else's edit. An edit
    made before anything was sent changes what the queued write will send instead of adding another,
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
        if action == Action.UPDATE and unsent is not None:
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


def _deliver(write: NoteWrite, *, client: OneUptimeClient, now: datetime) -> SyncReport:
    if write.action == Action.CREATE:
        return _deliver_create(write, client=client, now=now)
    if write.action == Action.UPDATE:
        return _deliver_update(write, client=client, now=now)
    return _deliver_delete(write, client=client, now=now)


def _deliver_create(write: NoteWrite, *, client: OneUptimeClient, now: datetime) -> SyncReport:
    # An earlier attempt may have reached OneUptime and died before recording the answer.
    item = _find_created(write, client=client) if write.attempts > 1 else None
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
        write.state, write.upstream_copy, write.last_error = State.CONFLICT, current, ""
        write.save(update_fields=["state", "upstream_copy", "last_error"])
        log.info("write-back of note %s held: its text changed in OneUptime since the admin loaded it", write.note_id)
        return SyncReport(skipped=1)
    client.update_note(upstream_id, _outgoing(write.data))
    fresh = client.get_note(upstream_id)
    if fresh is None:
        _record_failure(write, DELETED_UPSTREAM, permanent=True, now=now)
        return SyncReport(skipped=1)
    _store_delivered(write, fresh, kind=TransitionKind.NOTE_UPDATED, now=now)
    return SyncReport(updated=1, transitions=1)


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
    values = note_values(item)
    values.pop("incident_upstream_id")
    with transaction.atomic():
        note = IncidentNote.objects.select_for_update().select_related("incident").get(pk=write.note_id)
        if note.writes.filter(id__gt=write.id, state__in=UNDELIVERED).exists():
            # A newer edit is queued behind this one: the row keeps showing it.
            values.update(note=note.note, posted_at=note.posted_at)
        note, _ = apply_note(values, incident=note.incident, now=now)
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
        state=State.PENDING, base_text=write.upstream_copy.get("note") or "", next_attempt_at=timezone.now()
    )


def use_upstream(write: NoteWrite) -> None:
    """Resolve a conflict with OneUptime's text: the note takes the copy seen at delivery and the edit is dropped."""
    now = timezone.now()
    with transaction.atomic():
        if not NoteWrite.objects.filter(id=write.id, state=State.CONFLICT).update(state=State.DISCARDED):
            return
        values = note_values(normalize(write.upstream_copy))  # stored as JSON: dates come back as text
        values.pop("incident_upstream_id")
        note, kind = apply_note(values, incident=write.note.incident, now=now)
        if kind:
            transitions.record([Transition(kind=kind, upstream_id=note.upstream_id, note=note, incident=note.incident, at=now)])


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
    return (text or "").replace("\r\n", "\n")


def _outgoing(data: dict) -> dict:
    """The stored fields as the client sends them: dates were kept as ISO text in the JSON column."""
    if data.get("postedAt"):
        return {**data, "postedAt": datetime.fromisoformat(data["postedAt"])}
    return data
