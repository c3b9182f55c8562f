"""One pass of the OneUptime mirror: incidents, their public notes and their state timelines, then what was
skipped, then deletions.

What a finished pass guarantees: every incident and note that existed upstream when the pass began and
could be parsed is mirrored as it was then or later; every one that could not be parsed is remembered
by id; and every mirrored note (and note-less incident) that is gone upstream is gone here, except
notes whose admin edit is still on its way up (an admin's edit is never lost to a sync).

How: each resource is read oldest-change first (`updatedAt` ASC, `_id` ASC) from a watermark saved in
the same transaction as the page it covers, so a pass that is killed or aborted (an upstream error, a
lost database) resumes from the last committed page and re-reads at most that page: re-reading is
cheap, skipping would be data loss. The query is `updatedAt >= watermark` (OneUptime serves
milliseconds but stores microseconds), so the last change is read again, harmlessly; only when a whole
page shares one timestamp does `skip` step past it, and it is reset at the end of a pass, because a
row at the watermark that is edited moves to the end and a stale `skip` would jump it.

The saved watermark never passes `now - WATERMARK_LAG`, however far ahead a record is dated: a note
stamped a day ahead (a skewed clock, a hostile value) is read again every pass until its time comes,
instead of sealing out every change made before then, and a write that commits a little after its
`updatedAt` (or a clock a little behind ours) is still read. Reading runs ahead of the saved
watermark within a pass, so the pass itself always ends. A clock far behind ours stamps edits below the
watermark, where no watermark can find them: so every ONEUPTIME_RESCAN_SECONDS a pass reads both
resources from the start, and only a pass that finishes that re-read records it as done.

A record that cannot be mirrored (a malformed value, a note whose incident nobody can name) is
logged, skipped, and its id kept in the cursor with the page; every pass reads those ids again, so
one that is corrected without its `updatedAt` moving (a broken relation, a proxy) still arrives.

OneUptime deletes hard and `updatedAt` cannot show a deletion, so `count` is compared with the
mirror plus the remembered unmirrorable ids (a bare count of mirrored rows would let one unmirrorable
note hide one deletion). When they disagree every id is listed, and each id that seems gone is
confirmed gone by asking for it (offset pages shift when rows are deleted mid-scan). Incidents are
reconciled the same way; one is removed only when no note of it is left here (a private incident
cannot be listed by most keys, but its notes keep it). Notes with an admin edit not yet written back
are never overwritten or deleted.

The state timeline is read with the same watermark, skipped-id and deletion guarantees. Reading it needs
a permission of its own ("Read Incident State Timeline"); a key without it still mirrors incidents and
notes, and the cursor says so (`states_unreadable`), so the pages can say why they fall back.
"""

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from itertools import batched
from typing import Any

from django.conf import settings
from django.db import models, transaction

from dashboard.live import transitions
from dashboard.models import (
    Incident,
    IncidentNote,
    IncidentStateChange,
    NoteWrite,
    Source,
    SyncState,
    Transition,
    TransitionKind,
)
from dashboard.upstreams.http import AnswerUnreadable
from dashboard.upstreams.oneuptime.client import (
    INCIDENTS,
    NOTES,
    PAGE_SIZE,
    STATE_TIMELINE,
    UNREADABLE,
    OneUptimeClient,
    Page,
    PermissionMissing,
    Resource,
)
from dashboard.upstreams.report import SyncReport
from dashboard.upstreams.storable import storable
from dashboard.upstreams.storable import text as storable_text

log = logging.getLogger(__name__)

ORDER = {"updatedAt": "ASC", "_id": "ASC"}
# How far behind our clock the saved watermark stays: room for clock skew and for writes that commit
# after their `updatedAt` was stamped. Changes of the last WATERMARK_LAG are read again next pass.
WATERMARK_LAG = timedelta(seconds=30)
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
STATE_FIELDS = [
    "upstream_id", "incident_upstream_id", "state_id", "state_name", "state_color", "state_order", "is_created_state",
    "is_acknowledged_state", "is_resolved_state", "starts_at", "ends_at", "root_cause", "created_by_user_id", "created_at",
    "updated_at", "raw", "synced_at",
]  # fmt: skip
# What a timeline viewer sees of a row: a change to anything else (`ends_at`, a worker's notification status) is quiet.
SHOWN_STATE_FIELDS = ("incident_upstream_id", "state_id", "state_name", "state_color", "starts_at", "root_cause")
# The cursor keys of each resource's watermark and skipped ids.
CURSOR_KEYS = {NOTES.path: "notes", INCIDENTS.path: "incidents", STATE_TIMELINE.path: "states"}


class MalformedRecord(ValueError):
    pass


def sync_notes(*, client: OneUptimeClient, now: datetime, should_stop: Callable[[], bool] = lambda: False) -> SyncReport:
    report = SyncReport()
    resources = [
        ("incidents", client.list_incidents, lambda items, announce: _store_incidents(items, now=now, announce=announce)),
        (
            "notes",
            client.list_notes,
            lambda items, announce: _store_notes(items, client=client, now=now, announce=announce),
        ),
    ]
    states = ("states", client.list_state_timeline, lambda items, announce: _store_states(items, now=now, announce=announce))
    rescan = _rescan_due(now)
    for key, fetch, store in resources:
        if report.finished:
            report.add(_walk(key, fetch, store, now=now, should_stop=should_stop, rescan=rescan))
    states_read = False
    if report.finished:
        try:
            report.add(_walk(*states, now=now, should_stop=should_stop, rescan=rescan))
            states_read = True
        except PermissionMissing as exc:
            log.warning("%s; incident pages fall back to the states their notes announce", exc)
        with transaction.atomic():
            _save_cursor("states_unreadable", "" if states_read else "the API key may not read the incident state timeline")
    if report.finished and rescan:
        with transaction.atomic():
            _save_cursor("rescanned_at", now.isoformat())
    if report.finished:
        report.add(reconcile_deleted_notes(client=client, now=now))
        report.add(reconcile_deleted_incidents(client=client, now=now))
        if states_read:
            report.add(reconcile_deleted_states(client=client, now=now))
            resources.append(states)
        for key, fetch, store in resources:
            report.add(_read_skipped(key, fetch, store))
    return report


def states_unreadable() -> str:
    """Why the mirror holds no state timeline (empty when it can read it): the incident page says so."""
    state = SyncState.objects.filter(source=Source.ONEUPTIME).first()
    return state.cursor.get("states_unreadable", "") if state else ""


def _rescan_due(now: datetime) -> bool:
    done = _cursor().get("rescanned_at")
    return done is None or now - datetime.fromisoformat(done) >= timedelta(seconds=settings.ONEUPTIME_RESCAN_SECONDS)


def _walk(
    key: str, fetch: Callable[..., Page], store: Callable[..., tuple], *, now: datetime, should_stop, rescan: bool = False
) -> SyncReport:
    """Read `key` from its watermark on (from the start when `rescan`).

    The first pass of an empty mirror announces nothing: it is history, not news."""
    report = SyncReport()
    saved = _cursor().get(key, {"updated_at": None, "skip": 0})
    announce = saved["updated_at"] is not None
    if rescan:
        saved = {"updated_at": None, "skip": 0}
    ceiling = now - WATERMARK_LAG
    if saved["updated_at"] and datetime.fromisoformat(saved["updated_at"]) > now + WATERMARK_LAG:
        # Saved by a version that let a future-dated record carry it ahead: what it sealed out is unknown, so read it all.
        log.warning("OneUptime %s watermark %s is in the future; reading everything again", key, saved["updated_at"])
        saved = {"updated_at": None, "skip": 0}
    position = saved  # where reading goes on from: ahead of `saved` when records are dated past the ceiling
    while True:
        if should_stop():
            report.finished = False
            return report
        watermark = position["updated_at"]
        query = {"updatedAt": {"_type": "GreaterThanOrEqual", "value": watermark}} if watermark else {}
        page = fetch(query=query, sort=ORDER, skip=position["skip"], limit=PAGE_SIZE)
        if not page.items:
            if saved["skip"]:  # the end: next time re-read from the watermark, in case a row there moved
                with transaction.atomic():
                    _save_cursor(key, {"updated_at": saved["updated_at"], "skip": 0})
            return report
        last = page.items[-1].get("updatedAt")
        last = last.isoformat() if isinstance(last, datetime) else watermark
        # Move to the page's last change. Only a full page wholly at the watermark needs `skip` to get
        # past it; anything shorter is simply read again next time (upserts are idempotent).
        stuck = last == watermark and len(page.items) == PAGE_SIZE
        position = {"updated_at": last, "skip": position["skip"] + len(page.items) if stuck else 0}
        if last is None or datetime.fromisoformat(last) <= ceiling:
            saved = position
        elif saved["updated_at"] is None or datetime.fromisoformat(saved["updated_at"]) < ceiling:
            saved = {"updated_at": ceiling.isoformat(), "skip": 0}
        with transaction.atomic():
            part, skipped_ids = store(page.items, announce)
            report.add(part)
            _save_cursor(key, saved, skipped=skipped_ids)
        if len(page.items) < PAGE_SIZE:
            return report


def _read_skipped(key: str, fetch: Callable[..., Page], store: Callable[..., tuple]) -> SyncReport:
    """Read again, by id, every record an earlier page had to skip; each leaves the list once stored or gone."""
    report = SyncReport()
    for chunk in batched(sorted(_cursor().get(_skipped_key(key), [])), PAGE_SIZE):
        page = fetch(query={"_id": {"_type": "Includes", "value": list(chunk)}}, sort=ORDER, limit=PAGE_SIZE)
        with transaction.atomic():
            part, still_skipped = store(page.items, True)
            report.add(part)
            _save_cursor(key, None, skipped=still_skipped, settled=set(chunk) - still_skipped)
    return report


def _store_incidents(items: list[dict], *, now: datetime, announce: bool) -> tuple[SyncReport, set[str]]:
    """Store a page of incidents; returns what changed and the ids of those that could not be stored."""
    report = SyncReport(seen=len(items))
    changes, skipped_ids = [], set()
    for item in items:
        try:
            values = _parsed(incident_values, item)
        except MalformedRecord as exc:
            log.warning("skipped a malformed OneUptime incident: %s", exc)
            report.skipped += 1
            skipped_ids |= _usable_ids(item)
            continue
        incident, created = upsert_incident(values, now=now)
        report.created += created
        if incident is not None:
            report.updated += not created
            changes.append(
                Transition(kind=TransitionKind.INCIDENT_CHANGED, upstream_id=incident.upstream_id, incident=incident, at=now)
            )
    transitions.record(changes, quiet=not announce)  # a first pass derives (each severity counts in its week) and tells nobody
    report.transitions = len(changes) if announce else 0
    return report, skipped_ids


def _store_states(items: list[dict], *, now: datetime, announce: bool) -> tuple[SyncReport, set[str]]:
    """Store a page of state timeline rows; every incident whose timeline a viewer would see change is announced,
    and its durations derived again (quietly on a first pass)."""
    report = SyncReport(seen=len(items))
    parsed, skipped_ids = [], set()
    for item in items:
        try:
            parsed.append(_parsed(state_values, item))
        except MalformedRecord as exc:
            log.warning("skipped a malformed OneUptime state timeline row: %s", exc)
            report.skipped += 1
            skipped_ids |= _usable_ids(item)
    rows = {
        row.upstream_id: row for row in IncidentStateChange.objects.filter(upstream_id__in=[v["upstream_id"] for v in parsed])
    }
    created, changed, touched = [], [], set()
    for values in parsed:
        row = rows.get(values["upstream_id"])
        if row is not None and all(getattr(row, name) == value for name, value in values.items() if name != "raw"):
            continue
        shown_before = tuple(getattr(row, name) for name in SHOWN_STATE_FIELDS) if row else None
        row = row or IncidentStateChange()
        for name, value in values.items():
            setattr(row, name, value)
        row.synced_at = now
        (changed if row.pk else created).append(row)
        rows[row.upstream_id] = row
        if shown_before != tuple(getattr(row, name) for name in SHOWN_STATE_FIELDS):
            touched.add(row.incident_upstream_id)
            if shown_before is not None:
                touched.add(shown_before[0])  # a row moved to another incident leaves the first one's timeline
    IncidentStateChange.objects.bulk_create(created)
    IncidentStateChange.objects.bulk_update(changed, STATE_FIELDS)
    report.created += len(created)
    report.updated += len(changed)
    changes = _timeline_changes(touched, now=now)
    transitions.record(changes, quiet=not announce)
    report.transitions = len(changes) if announce else 0
    return report, skipped_ids


def _timeline_changes(incident_upstream_ids: set[str], *, now: datetime) -> list[Transition]:
    incidents = Incident.objects.in_bulk(list(incident_upstream_ids), field_name="upstream_id")
    return [
        Transition(kind=TransitionKind.STATES_CHANGED, upstream_id=upstream_id, incident=incidents.get(upstream_id), at=now)
        for upstream_id in sorted(incident_upstream_ids)
    ]


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


def _store_notes(items: list[dict], *, client: OneUptimeClient, now: datetime, announce: bool) -> tuple[SyncReport, set[str]]:
    """Store a page of notes; returns what changed and the ids of those that could not be stored."""
    report = SyncReport(seen=len(items))
    notes, skipped_ids = [], set()
    for item in items:
        try:
            notes.append(_parsed(note_values, item))
        except MalformedRecord as exc:
            log.warning("skipped a malformed OneUptime note: %s", exc)
            report.skipped += 1
            skipped_ids |= _usable_ids(item)
    incidents = _incidents_for(notes, client=client, now=now, report=report)
    held = set(IncidentNote.objects.filter(writes__state__in=UNDELIVERED).values_list("upstream_id", flat=True))
    batch = []
    for values in notes:
        incident = incidents.get(values["incident_upstream_id"])
        if incident is None:
            report.skipped += 1  # an orphan whose incident nobody can name (yet)
            skipped_ids.add(values["upstream_id"])
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
    return report, skipped_ids


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
    """Hard deletes leave no trace in `updatedAt`: compare counts, and compare ids when they differ."""
    mirrored = IncidentNote.objects.exclude(upstream_id=None)
    gone = _gone(client, NOTES, mirrored, skipped=_cursor().get(_skipped_key("notes"), []))
    with transaction.atomic():
        notes = list(mirrored.filter(upstream_id__in=gone).exclude(writes__state__in=UNDELIVERED).select_related("incident"))
        changes = [
            Transition(kind=TransitionKind.NOTE_DELETED, upstream_id=note.upstream_id, incident=note.incident, at=now)
            for note in notes
        ]
        IncidentNote.objects.filter(pk__in=[note.pk for note in notes]).delete()
        transitions.record(changes)
    return SyncReport(updated=len(notes), transitions=len(notes))


def reconcile_deleted_incidents(*, client: OneUptimeClient, now: datetime) -> SyncReport:
    """Incidents deleted upstream (their notes went with them, by cascade) leave the open-incidents panel too.

    Only an incident with no note left here goes: a note with an undelivered admin edit keeps its incident,
    and so do the notes of a private incident, which this key may not list.
    """
    gone = _gone(client, INCIDENTS, Incident.objects.all(), skipped=_cursor().get(_skipped_key("incidents"), []))
    with transaction.atomic():
        incidents = list(Incident.objects.filter(upstream_id__in=gone, notes=None))
        changes = [
            Transition(kind=TransitionKind.INCIDENT_DELETED, upstream_id=incident.upstream_id, at=now) for incident in incidents
        ]
        Incident.objects.filter(pk__in=[incident.pk for incident in incidents]).delete()
        transitions.record(changes)
    return SyncReport(updated=len(incidents), transitions=len(incidents))


def reconcile_deleted_states(*, client: OneUptimeClient, now: datetime) -> SyncReport:
    """Timeline rows deleted upstream (by hand, or with their incident or their state) go here too, and the
    incidents they belonged to are announced and their durations derived again."""
    mirrored = IncidentStateChange.objects.all()
    gone = _gone(client, STATE_TIMELINE, mirrored, skipped=_cursor().get(_skipped_key("states"), []))
    with transaction.atomic():
        rows = mirrored.filter(upstream_id__in=gone)
        touched = set(rows.values_list("incident_upstream_id", flat=True))
        deleted, _ = rows.delete()
        changes = _timeline_changes(touched, now=now)
        transitions.record(changes)
    return SyncReport(updated=deleted, transitions=len(changes))


def _gone(client: OneUptimeClient, resource: Resource, mirrored: models.QuerySet, *, skipped: list[str]) -> set[str]:
    """The mirrored ids OneUptime no longer has; ids it has that are not mirrored are remembered as skipped."""
    skipped_only = set(skipped) - set(mirrored.filter(upstream_id__in=skipped).values_list("upstream_id", flat=True))
    if client.count(resource) == mirrored.count() + len(skipped_only):
        return set()
    upstream_ids = set(client.list_ids(resource))
    mirrored_ids = set(mirrored.values_list("upstream_id", flat=True))
    missed = upstream_ids - mirrored_ids - set(skipped)
    if missed:  # read by id at the end of this pass
        log.warning("OneUptime has %d %s the mirror lacks; reading them by id", len(missed), resource.plural)
        with transaction.atomic():
            _save_cursor(CURSOR_KEYS[resource.path], None, skipped=missed)
    seemingly_gone = mirrored_ids - upstream_ids
    return seemingly_gone - set(client.existing_ids(resource, seemingly_gone))


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
            values = _parsed(incident_values, item)
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
    state = _object(item, "currentIncidentState")
    severity = _object(item, "incidentSeverity")
    return _fitted(
        {
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
            "incident_number": _count(item.get("incidentNumber")),
            "incident_number_with_prefix": _text(item.get("incidentNumberWithPrefix")),
            "created_at": _date(item, "createdAt"),
            "updated_at": _date(item, "updatedAt"),
            "raw": storable(item),
        }
    )


def state_values(item: dict[str, Any]) -> dict[str, Any]:
    upstream_id = _required_id(item, "state timeline row")
    incident_id = item.get("incidentId")
    if not isinstance(incident_id, str) or not incident_id or len(incident_id) > 100:
        raise MalformedRecord(f"state timeline row {upstream_id} has no usable incidentId")
    starts_at = _date(item, "startsAt")
    if starts_at is None:
        raise MalformedRecord(f"state timeline row {upstream_id} has no startsAt")
    state = _object(item, "incidentState")
    order = state.get("order")
    return _fitted(
        {
            "upstream_id": upstream_id,
            "incident_upstream_id": incident_id,
            "state_id": _text(item.get("incidentStateId")),
            "state_name": _text(state.get("name")) or "(unnamed state)",
            "state_color": _text(state.get("color")),
            "state_order": int(order)
            if isinstance(order, (int, float)) and not isinstance(order, bool) and abs(order) < 2**31
            else None,
            "is_created_state": state.get("isCreatedState") is True,
            "is_acknowledged_state": state.get("isAcknowledgedState") is True,
            "is_resolved_state": state.get("isResolvedState") is True,
            "starts_at": starts_at,
            "ends_at": _date(item, "endsAt"),
            "root_cause": _text(item.get("rootCause")),
            "created_by_user_id": _text(item.get("createdByUserId")),
            "created_at": _date(item, "createdAt"),
            "updated_at": _date(item, "updatedAt"),
            "raw": storable(item),
        }
    )


def note_values(item: dict[str, Any]) -> dict[str, Any]:
    upstream_id = _required_id(item, "note")
    incident_id = item.get("incidentId")
    if not isinstance(incident_id, str) or not incident_id:
        raise MalformedRecord(f"note {upstream_id} has no incidentId")
    if not isinstance(item.get("note", ""), str):
        raise MalformedRecord(f"note {upstream_id}: note is not text")
    author = item.get("createdByUser") or {}
    attachments = item.get("attachments") or []
    return _fitted(
        {
            "upstream_id": upstream_id,
            "incident_upstream_id": incident_id,
            "incident_summary": storable(item.get("incident")) if isinstance(item.get("incident"), dict) else {},
            "project_id": _text(item.get("projectId")),
            "created_by_user_id": _text(item.get("createdByUserId")),
            "created_by_name": _text(author.get("name")) if isinstance(author, dict) else "",
            "created_by_email": _text(author.get("email")) if isinstance(author, dict) else "",
            "note": _text(item.get("note")),
            "attachments": storable(attachments) if isinstance(attachments, list) else [],
            "subscriber_notification_status_message": _text(item.get("subscriberNotificationStatusMessage")),
            "should_status_page_subscribers_be_notified_on_note_created": bool(
                item.get("shouldStatusPageSubscribersBeNotifiedOnNoteCreated")
            ),
            "posted_at": _date(item, "postedAt"),
            "posted_from_slack_message_id": _text(item.get("postedFromSlackMessageId")),
            "created_at": _date(item, "createdAt"),
            "updated_at": _date(item, "updatedAt"),
            "version": _count(item.get("version")),
            # Everything but the text, which `note` holds: a 10 MB note is then stored, and read back, once.
            "raw": storable({name: value for name, value in item.items() if name != "note"}),
        }
    )


def _parsed(parse: Callable[[dict], dict], item: Any) -> dict:
    """`parse(item)`. Parsing touches nothing else, so whatever it raises is the item's fault: a MalformedRecord."""
    if isinstance(item, dict) and UNREADABLE in item:
        raise MalformedRecord(f"{item.get('_id')}: {item[UNREADABLE]}")
    try:
        return parse(item)
    except MalformedRecord:
        raise
    except Exception as exc:
        named = next(iter(_usable_ids(item)), "a record without a usable _id")
        raise MalformedRecord(f"{named}: {exc.__class__.__name__}: {exc}") from exc


def _fitted(values: dict) -> dict:
    """Text cut to its column's length: PostgreSQL refuses a longer value, and one refusal would fail every pass."""
    for name, value in values.items():
        limit = _MAX_LENGTHS.get(name)
        if limit and isinstance(value, str) and len(value) > limit:
            values[name] = value[:limit]
    return values


def _usable_ids(item: Any) -> set[str]:
    upstream_id = item.get("_id") if isinstance(item, dict) else None
    usable = isinstance(upstream_id, str) and 0 < len(upstream_id) <= 100 and storable_text(upstream_id) == upstream_id
    return {upstream_id} if usable else set()


def _object(item: dict, name: str) -> dict:
    value = item.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedRecord(f"{item.get('_id')}: {name} is {type(value).__name__}, not an object")
    return value


def _count(value: Any) -> int | None:
    """A non-negative integer that fits a PositiveIntegerField on every database, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**31 - 1 else None


def _required_id(item: dict, noun: str) -> str:
    upstream_id = item.get("_id")
    if not isinstance(upstream_id, str) or not upstream_id or len(upstream_id) > 100 or storable_text(upstream_id) != upstream_id:
        raise MalformedRecord(f"{noun} without a usable _id: {upstream_id!r}")
    return upstream_id


def _text(value: Any) -> str:
    return storable_text(value) if isinstance(value, str) else ("" if value is None else str(value))


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


def _skipped_key(key: str) -> str:
    return f"{key}_skipped"


def _save_cursor(key: str, position: dict | None, *, skipped: Iterable[str] = (), settled: Iterable[str] = ()) -> None:
    """Save `key`'s position (unless None) and its remembered skipped ids, in the caller's transaction."""
    state = SyncState.objects.select_for_update().get(source=Source.ONEUPTIME)
    cursor = dict(state.cursor)
    if position is not None:
        cursor[key] = position
    remembered = (set(cursor.get(_skipped_key(key), [])) | set(skipped)) - set(settled)
    if remembered or _skipped_key(key) in cursor:
        cursor[_skipped_key(key)] = sorted(remembered)
    state.cursor = cursor
    state.save(update_fields=["cursor"])


def sync_notes_by_id(*, client: OneUptimeClient, note_ids: Iterable[str], now: datetime) -> SyncReport:
    """Re-read the notes webhooks named, PAGE_SIZE in one call; a note OneUptime no longer has is a deletion.

    The watermark does not move: the next regular pass reads these notes again and finds nothing new.
    """
    report = SyncReport()
    for chunk in batched(dict.fromkeys(note_ids), PAGE_SIZE):
        try:
            items = client.list_notes(
                query={"_id": {"_type": "Includes", "value": list(chunk)}}, sort=ORDER, limit=PAGE_SIZE
            ).items
        except AnswerUnreadable:
            items = [item for item in (_note_or_unreadable(client, note_id) for note_id in chunk) if item is not None]
        found = {item.get("_id") for item in items if isinstance(item, dict)}
        with transaction.atomic():
            if items:
                report.add(_store_named_notes(items, client=client, now=now))
            report.add(_forget_notes([note_id for note_id in chunk if note_id not in found], now=now))
    return report


def _note_or_unreadable(client: OneUptimeClient, note_id: str) -> dict | None:
    """One note read alone, when the answer naming it among others was too large. Too large on its own, it is
    remembered by id (below) and read again by every regular pass until it fits."""
    try:
        return client.get_note(note_id)
    except AnswerUnreadable as exc:
        return {"_id": note_id, UNREADABLE: str(exc)}


def _store_named_notes(items: list[dict], *, client: OneUptimeClient, now: datetime) -> SyncReport:
    report, skipped_ids = _store_notes(items, client=client, now=now, announce=True)
    if skipped_ids:  # read again by every regular pass until it can be stored
        _cursor()
        _save_cursor("notes", None, skipped=skipped_ids)
    return report


def _forget_notes(note_ids: list[str], *, now: datetime) -> SyncReport:
    """Delete mirrored notes OneUptime no longer has, unless an admin's edit of one is on its way up."""
    if not note_ids:
        return SyncReport()
    gone = list(
        IncidentNote.objects.filter(upstream_id__in=note_ids).exclude(writes__state__in=UNDELIVERED).select_related("incident")
    )
    changes = [
        Transition(kind=TransitionKind.NOTE_DELETED, upstream_id=note.upstream_id, incident=note.incident, at=now)
        for note in gone
    ]
    IncidentNote.objects.filter(pk__in=[note.pk for note in gone]).delete()
    transitions.record(changes)
    return SyncReport(seen=len(note_ids), updated=len(changes), transitions=len(changes))


_MAX_LENGTHS = {
    field.name: field.max_length
    for model in (Incident, IncidentNote, IncidentStateChange)
    for field in model._meta.get_fields()
    if isinstance(field, models.CharField) and field.max_length
}
