"""One pass of the OneUptime mirror: incidents, then their public notes, then deletions.

Each resource is read oldest-change first (`updatedAt` ASC, `_id` ASC) from a watermark saved in the
same transaction as the page it covers. The query is `updatedAt >= watermark` (OneUptime serves
milliseconds but stores microseconds), so the last change is read again next time, harmlessly; only
when a whole page shares one timestamp does `skip` step past it, and it is reset at the end of a pass,
because a row at the watermark that is edited moves to the end and a stale `skip` would jump it. OneUptime deletes hard and
`updatedAt` cannot show a deletion, so `count` is compared with the mirror and, when they disagree,
every id is listed. Notes with an admin edit not yet written back are never overwritten or deleted.
"""

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction

from dashboard.live import transitions
from dashboard.models import Incident, IncidentNote, NoteWrite, Source, SyncState, Transition, TransitionKind
from dashboard.upstreams.oneuptime.client import PAGE_SIZE, OneUptimeClient, Page
from dashboard.upstreams.report import SyncReport

log = logging.getLogger(__name__)

ORDER = {"updatedAt": "ASC", "_id": "ASC"}
# Where write-back puts its idempotency token, so a created note is recognised when it comes back.
TOKEN_PREFIX = "pulseboard:"  # noqa: S105 -- an idempotency marker, not a secret
UNDELIVERED = (NoteWrite.State.PENDING, NoteWrite.State.FAILED, NoteWrite.State.CONFLICT)
# What note_values() says about the note's incident, beside the note's own columns.
INCIDENT_KEYS = ("incident_upstream_id", "incident_summary")
NOTE_FIELDS = [
    "upstream_id", "incident", "project_id", "created_by_user_id", "created_by_name", "created_by_email", "note",
    "attachments", "subscriber_notification_status_message", "should_status_page_subscribers_be_notified_on_note_created",
    "posted_at", "posted_from_slack_message_id", "created_at", "updated_at", "version", "raw", "synced_at",
]  # fmt: skip
SHOWN_INCIDENT_FIELDS = (
    "title",
    "description",
    "state",
    "state_color",
    "is_resolved",
    "severity",
    "severity_color",
    "declared_at",
)


class MalformedRecord(ValueError):
    pass


def sync_notes(*, client: OneUptimeClient, now: datetime, should_stop: Callable[[], bool] = lambda: False) -> SyncReport:
    report = SyncReport()
    report.add(
        _walk(
            "incidents",
            client.list_incidents,
            lambda items, announce: _store_incidents(items, now=now, announce=announce),
            should_stop,
        )
    )
    if report.finished:
        report.add(
            _walk(
                "notes",
                client.list_notes,
                lambda items, announce: _store_notes(items, client=client, now=now, announce=announce),
                should_stop,
            )
        )
    if report.finished:
        report.add(reconcile_deleted_notes(client=client, now=now))
    return report


def _walk(key: str, fetch: Callable[..., Page], store: Callable[..., SyncReport], should_stop) -> SyncReport:
    """Read `key` from its watermark on. The first pass of an empty mirror announces nothing: it is history, not news."""
    report = SyncReport()
    cursor = _cursor().get(key, {"updated_at": None, "skip": 0})
    announce = cursor["updated_at"] is not None
    while True:
        if should_stop():
            report.finished = False
            return report
        watermark = cursor["updated_at"]
        query = {"updatedAt": {"_type": "GreaterThanOrEqual", "value": watermark}} if watermark else {}
        page = fetch(query=query, sort=ORDER, skip=cursor["skip"], limit=PAGE_SIZE)
        if not page.items:
            if cursor["skip"]:  # the end: next time re-read from the watermark, in case a row there moved
                with transaction.atomic():
                    _save_cursor(key, {"updated_at": watermark, "skip": 0})
            return report
        last = page.items[-1].get("updatedAt")
        last = last.isoformat() if isinstance(last, datetime) else watermark
        # Move the watermark to the page's last change. Only a full page wholly at the watermark needs
        # `skip` to get past it; anything shorter is simply read again next time (upserts are idempotent).
        stuck = last == watermark and len(page.items) == PAGE_SIZE
        cursor = {"updated_at": last, "skip": cursor["skip"] + len(page.items) if stuck else 0}
        with transaction.atomic():
            report.add(store(page.items, announce))
            _save_cursor(key, cursor)
        if len(page.items) < PAGE_SIZE:
            return report


def _store_incidents(items: list[dict], *, now: datetime, announce: bool) -> SyncReport:
    report = SyncReport(seen=len(items))
    changes = []
    for item in items:
        try:
            values = incident_values(item)
        except MalformedRecord as exc:
            log.warning("skipped a malformed OneUptime incident: %s", exc)
            report.skipped += 1
            continue
        incident, created = upsert_incident(values, now=now)
        report.created += created
        if incident is not None:
            report.updated += not created
            changes.append(
                Transition(kind=TransitionKind.INCIDENT_CHANGED, upstream_id=incident.upstream_id, incident=incident, at=now)
            )
    transitions.record(changes if announce else [])
    report.transitions = len(changes) if announce else 0
    return report


def upsert_incident(values: dict, *, now: datetime) -> tuple[Incident | None, bool]:
    """Store an incident; returns it when something a page shows changed (None when nothing did)."""
    incident = Incident.objects.filter(upstream_id=values["upstream_id"]).first()
    if incident is None:
        return Incident.objects.create(**values, synced_at=now), True
    shown_before = [getattr(incident, name) for name in SHOWN_INCIDENT_FIELDS]
    for name, value in values.items():
        setattr(incident, name, value)
    incident.synced_at = now
    incident.save()
    return (incident if shown_before != [getattr(incident, name) for name in SHOWN_INCIDENT_FIELDS] else None), False


def _store_notes(items: list[dict], *, client: OneUptimeClient, now: datetime, announce: bool) -> SyncReport:
    report = SyncReport(seen=len(items))
    notes = []
    for item in items:
        try:
            notes.append(note_values(item))
        except MalformedRecord as exc:
            log.warning("skipped a malformed OneUptime note: %s", exc)
            report.skipped += 1
    incidents = _incidents_for(notes, client=client, now=now, report=report)
    held = set(IncidentNote.objects.filter(writes__state__in=UNDELIVERED).values_list("upstream_id", flat=True))
    batch = []
    for values in notes:
        incident = incidents.get(values["incident_upstream_id"])
        if incident is None:
            report.skipped += 1  # an orphan whose incident nobody can name
        elif values["upstream_id"] not in held:  # an admin's edit is on its way up; it wins
            batch.append((values, incident))
    changes = []
    for note, kind in store_notes(batch, now=now):
        if kind:
            report.created += kind == TransitionKind.NOTE_CREATED
            report.updated += kind == TransitionKind.NOTE_UPDATED
            changes.append(Transition(kind=kind, upstream_id=note.upstream_id, note=note, incident=note.incident, at=now))
    transitions.record(changes if announce else [])
    report.transitions = len(changes) if announce else 0
    return report


def apply_note(values: dict, *, incident: Incident, now: datetime) -> tuple[IncidentNote, str | None]:
    """Store one upstream note on its mirror row, and say what a timeline viewer would notice."""
    return store_notes([(values, incident)], now=now)[0]


def store_notes(batch: list[tuple[dict, Incident]], *, now: datetime) -> list[tuple[IncidentNote, str | None]]:
    """Store upstream notes on their mirror rows in a few queries, saying for each what changed on screen.

    A note created from our admin comes back carrying its write-back token: it belongs to the row the
    admin created, which may not know its `_id` yet if we crashed between sending and recording it.
    """
    rows = {
        note.upstream_id: note
        for note in IncidentNote.objects.filter(upstream_id__in=[values["upstream_id"] for values, _ in batch])
    }
    tokens = {
        _uuid(values["posted_from_slack_message_id"].removeprefix(TOKEN_PREFIX)): values["upstream_id"]
        for values, _ in batch
        if values["upstream_id"] not in rows and values["posted_from_slack_message_id"].startswith(TOKEN_PREFIX)
    }
    for write in NoteWrite.objects.filter(token__in=[token for token in tokens if token]).select_related("note"):
        if write.note.upstream_id is None:
            rows[tokens[write.token]] = write.note
    results, created, changed = [], [], []
    for values, incident in batch:
        note = rows.get(values["upstream_id"])
        mirrored = {name: value for name, value in values.items() if name not in INCIDENT_KEYS}
        if (
            note is not None
            and note.incident_id == incident.pk
            and all(getattr(note, name) == value for name, value in mirrored.items() if name != "raw")
        ):
            results.append((note, None))
            continue
        shown_before = (note.note, note.posted_at, note.incident_id) if note else None
        note = note or IncidentNote()
        for name, value in mirrored.items():
            setattr(note, name, value)
        note.incident = incident
        note.synced_at = now
        (changed if note.pk else created).append(note)
        if shown_before is None:
            results.append((note, TransitionKind.NOTE_CREATED))
        else:
            results.append(
                (note, TransitionKind.NOTE_UPDATED if shown_before != (note.note, note.posted_at, note.incident_id) else None)
            )
    IncidentNote.objects.bulk_create(created)
    IncidentNote.objects.bulk_update(changed, NOTE_FIELDS)
    return results


def reconcile_deleted_notes(*, client: OneUptimeClient, now: datetime) -> SyncReport:
    """Hard deletes leave no trace in `updatedAt`: compare counts, and list every id only when they differ."""
    report = SyncReport()
    mirrored = IncidentNote.objects.exclude(upstream_id=None)
    if client.count_notes() == mirrored.count():
        return report
    upstream_ids = set(client.list_note_ids())
    with transaction.atomic():
        gone = [
            note
            for note in mirrored.exclude(writes__state__in=UNDELIVERED).select_related("incident")
            if note.upstream_id not in upstream_ids
        ]
        changes = [
            Transition(kind=TransitionKind.NOTE_DELETED, upstream_id=note.upstream_id, incident=note.incident, at=now)
            for note in gone
        ]
        IncidentNote.objects.filter(pk__in=[note.pk for note in gone]).delete()
        transitions.record(changes)
    report.updated = report.transitions = len(gone)
    return report


def _incidents_for(notes: list[dict], *, client: OneUptimeClient, now: datetime, report: SyncReport) -> dict[str, Incident]:
    """The notes' incidents, pulling in any the mirror has not seen yet.

    An incident this key may not read (a private one, unless the key is a project owner's or admin's)
    still has the title and number the note carries, so its notes get a timeline all the same.
    """
    wanted = {values["incident_upstream_id"]: values["incident_summary"] for values in notes}
    known = {incident.upstream_id: incident for incident in Incident.objects.filter(upstream_id__in=wanted)}
    for upstream_id, summary in wanted.items():
        if upstream_id in known:
            continue
        item = client.get_incident(upstream_id) or ({**summary, "_id": upstream_id} if summary.get("title") else None)
        if item is None:
            log.warning("skipped notes of incident %s: this API key may not read it, and the notes do not name it", upstream_id)
            continue
        try:
            values = incident_values(item)
        except MalformedRecord as exc:
            log.warning("skipped notes of a malformed incident: %s", exc)
            continue
        with transaction.atomic():
            incident, _ = upsert_incident(values, now=now)
            incident = incident or Incident.objects.get(upstream_id=upstream_id)
            transitions.record(
                [Transition(kind=TransitionKind.INCIDENT_CHANGED, upstream_id=upstream_id, incident=incident, at=now)]
            )
        known[upstream_id] = incident
        report.transitions += 1
    return known


def incident_values(item: dict[str, Any]) -> dict[str, Any]:
    upstream_id = _required_id(item, "incident")
    state = item.get("currentIncidentState") or {}
    severity = item.get("incidentSeverity") or {}
    return {
        "upstream_id": upstream_id,
        "project_id": _text(item.get("projectId")),
        "title": _text(item.get("title")) or "(untitled incident)",
        "description": _text(item.get("description")),
        "state": _text(state.get("name")),
        "state_color": _text(state.get("color")),
        "is_resolved": bool(state.get("isResolvedState")),
        "severity": _text(severity.get("name")),
        "severity_color": _text(severity.get("color")),
        "declared_at": _date(item, "declaredAt"),
        "incident_number": item.get("incidentNumber") if isinstance(item.get("incidentNumber"), int) else None,
        "incident_number_with_prefix": _text(item.get("incidentNumberWithPrefix")),
        "created_at": _date(item, "createdAt"),
        "updated_at": _date(item, "updatedAt"),
        "raw": item,
    }


def note_values(item: dict[str, Any]) -> dict[str, Any]:
    upstream_id = _required_id(item, "note")
    incident_id = item.get("incidentId")
    if not isinstance(incident_id, str) or not incident_id:
        raise MalformedRecord(f"note {upstream_id} has no incidentId")
    if not isinstance(item.get("note", ""), str):
        raise MalformedRecord(f"note {upstream_id}: note is not text")
    author = item.get("createdByUser") or {}
    attachments = item.get("attachments") or []
    return {
        "upstream_id": upstream_id,
        "incident_upstream_id": incident_id,
        "incident_summary": item.get("incident") if isinstance(item.get("incident"), dict) else {},
        "project_id": _text(item.get("projectId")),
        "created_by_user_id": _text(item.get("createdByUserId")),
        "created_by_name": _text(author.get("name")) if isinstance(author, dict) else "",
        "created_by_email": _text(author.get("email")) if isinstance(author, dict) else "",
        "note": item.get("note") or "",
        "attachments": attachments if isinstance(attachments, list) else [],
        "subscriber_notification_status_message": _text(item.get("subscriberNotificationStatusMessage")),
        "should_status_page_subscribers_be_notified_on_note_created": bool(
            item.get("shouldStatusPageSubscribersBeNotifiedOnNoteCreated")
        ),
        "posted_at": _date(item, "postedAt"),
        "posted_from_slack_message_id": _text(item.get("postedFromSlackMessageId")),
        "created_at": _date(item, "createdAt"),
        "updated_at": _date(item, "updatedAt"),
        "version": item.get("version") if isinstance(item.get("version"), int) else None,
        "raw": item,
    }


def _required_id(item: dict, noun: str) -> str:
    upstream_id = item.get("_id")
    if not isinstance(upstream_id, str) or not upstream_id or len(upstream_id) > 100:
        raise MalformedRecord(f"{noun} without a usable _id: {upstream_id!r}")
    return upstream_id


def _text(value: Any) -> str:
    return value.replace("\x00", "") if isinstance(value, str) else ("" if value is None else str(value))


def _date(item: dict, name: str) -> datetime | None:
    value = item.get(name)
    if value is None or isinstance(value, datetime):
        return value
    raise MalformedRecord(f"{item.get('_id')}: {name} {value!r} is not a date")


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _cursor() -> dict:
    state, _ = SyncState.objects.get_or_create(source=Source.ONEUPTIME)
    return state.cursor


def _save_cursor(key: str, cursor: dict) -> None:
    state = SyncState.objects.select_for_update().get(source=Source.ONEUPTIME)
    state.cursor = {**state.cursor, key: cursor}
    state.save(update_fields=["cursor"])


def sync_note(*, client: OneUptimeClient, note_id: str, now: datetime) -> SyncReport:
    """Re-read one note now, because a webhook named it; a note OneUptime no longer has is a deletion.

    The watermark does not move: the next regular pass reads this note again and finds nothing new.
    """
    item = client.get_note(note_id)
    with transaction.atomic():
        if item is not None:
            return _store_notes([item], client=client, now=now, announce=True)
        gone = list(
            IncidentNote.objects.filter(upstream_id=note_id).exclude(writes__state__in=UNDELIVERED).select_related("incident")
        )
        changes = [
            Transition(kind=TransitionKind.NOTE_DELETED, upstream_id=note.upstream_id, incident=note.incident, at=now)
            for note in gone
        ]
        IncidentNote.objects.filter(pk__in=[note.pk for note in gone]).delete()
        transitions.record(changes)
    return SyncReport(seen=1, updated=len(changes), transitions=len(changes))
