"""The outbox against the simulator over real HTTP: order, folding, backoff, and no duplicate after a crash.

Writes are queued with `writeback.enqueue` inside a transaction, as the admin's hooks do.
"""

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from dashboard.models import Incident, IncidentNote, NoteWrite
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.oneuptime.sync import TOKEN_PREFIX
from tests.processes import base_env, free_port, start_manage

pytestmark = pytest.mark.django_db

CREATE = ("POST", "/api/incident-public-note")


@pytest.fixture
def sim(oneuptime_sim):
    return oneuptime_sim


@pytest.fixture
def upstream(oneuptime_client):
    return oneuptime_client


@pytest.fixture
def incident(sim, upstream) -> Incident:
    sim.add_incident("Checkout payments failing for some cards")
    note_sync.sync_notes(client=upstream, now=timezone.now())
    return Incident.objects.get()


def mirrored_note(sim, upstream, text) -> IncidentNote:
    incident = sim.add_incident("API latency")
    row = sim.add_note(incident["_id"], text)
    note_sync.sync_notes(client=upstream, now=timezone.now())
    return IncidentNote.objects.get(upstream_id=row["_id"])


def queued_create(incident, text) -> IncidentNote:
    with transaction.atomic():
        note = IncidentNote.objects.create(incident=incident, note=text)
        writeback.enqueue(note=note, action="create")
    return note


def queued_edit(note, text) -> NoteWrite:
    base_text = note.note
    with transaction.atomic():
        note.note = text
        note.save()
        return writeback.enqueue(note=note, action="update", base_text=base_text)


def deliver(client, *, later=timedelta(0)):
    return writeback.deliver_due(client=client, now=timezone.now() + later)


def creates(sim):
    return [request for request in sim.requests if request[:2] == CREATE]


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_sending_a_create_and_recording_it_does_not_post_the_note_twice(sim, upstream, incident):
    note = queued_create(incident, "We rolled back the rate limiter.")
    token = TOKEN_PREFIX + str(note.writes.get().token)
    sim.hold_after_write = 10  # OneUptime stores the note, then the poller dies before it hears back
    poller = start_manage("poll", env=base_env(ONEUPTIME_API_URL=sim.url, ONEUPTIME_API_KEY=sim.api_key))
    try:
        deadline = time.monotonic() + 30
        while not any(row["postedFromSlackMessageId"] == token for row in list(sim.notes.values())):
            assert poller.poll() is None, poller.communicate()
            assert time.monotonic() < deadline, "the poller never sent the note"
            time.sleep(0.05)
    finally:
        poller.kill()  # SIGKILL, while it waits for the answer
        poller.communicate()
    write = note.writes.get()
    note.refresh_from_db()
    assert (write.state, write.attempts) == ("pending", 1)
    # The notes sync runs beside the delivery (its own thread) and may already have linked the note it read.
    assert note.upstream_id in (None, *[row["_id"] for row in sim.notes.values() if row["postedFromSlackMessageId"] == token])
    sim.hold_after_write = 0

    assert deliver(upstream).seen == 0, "the dead poller's claim holds until its lease runs out"
    deliver(upstream, later=writeback.LEASE + timedelta(seconds=1))

    copies = [row for row in sim.notes.values() if row["note"] == "We rolled back the rate limiter."]
    assert len(copies) == 1 and len(creates(sim)) == 1
    note.refresh_from_db()
    write.refresh_from_db()
    assert note.upstream_id == copies[0]["_id"] and write.state == "delivered"
    assert ("POST", "/api/incident-public-note/get-list?skip=0&limit=1") in [request[:2] for request in sim.requests]


def test_a_create_that_failed_in_transit_looks_for_its_note_before_posting_again(sim, upstream, incident, settings):
    settings.UPSTREAM_RETRIES = 0
    note = queued_create(incident, "Investigating.")
    sim.fail_next(1, status=502)
    deliver(upstream)
    assert note.writes.get().state == "pending" and not sim.notes

    deliver(upstream, later=writeback.FIRST_BACKOFF)

    lookups = [body for method, path, body in sim.requests if "get-list" in path and "postedFromSlackMessageId" in body["query"]]
    assert len(lookups) == 1 and len(sim.notes) == 1 and len(creates(sim)) == 2
    note.refresh_from_db()
    assert note.upstream_id in sim.notes


def test_a_sync_while_an_edit_is_pending_keeps_the_local_text(sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    queued_edit(note, "Investigating; next update at 14:00.")
    sim.edit_note(note.upstream_id, subscriberNotificationStatusMessage="Notified 3 subscribers")

    note_sync.sync_notes(client=upstream, now=timezone.now())

    note.refresh_from_db()
    assert note.note == "Investigating; next update at 14:00."
    deliver(upstream)
    note.refresh_from_db()
    assert sim.notes[note.upstream_id]["note"] == note.note == "Investigating; next update at 14:00."
    assert note.subscriber_notification_status_message == "Notified 3 subscribers", "the delivered note is read back"


def test_edits_made_before_anything_was_sent_are_sent_as_one(sim, upstream, incident):
    note = queued_create(incident, "Draft.")
    queued_edit(note, "Final text.")
    assert note.writes.count() == 1
    deliver(upstream)
    assert [row["note"] for row in sim.notes.values()] == ["Final text."] and len(creates(sim)) == 1
    note.refresh_from_db()

    first = queued_edit(note, "Second edit.")
    second = queued_edit(note, "Third edit.")
    assert first.pk == second.pk and second.base_text == "Final text."
    deliver(upstream)
    assert sim.notes[note.upstream_id]["note"] == "Third edit."
    updates = [request for request in sim.requests if request[0] == "PUT"]
    assert len(updates) == 1


def test_a_later_edit_waits_for_an_earlier_one(sim, upstream, settings):
    note = mirrored_note(sim, upstream, "Investigating.")
    read_only = OneUptimeClient(sim.url, sim.read_only_key)
    queued_edit(note, "First edit.")
    deliver(read_only)
    queued_edit(note, "Second edit.")

    assert deliver(upstream).seen == 0, "the failed first edit holds the second back"
    assert writeback.state_of(note) == "failed"

    writeback.retry(note.writes.get(state="failed"))
    deliver(upstream)
    assert sim.notes[note.upstream_id]["note"] == "First edit."
    deliver(upstream)
    assert sim.notes[note.upstream_id]["note"] == "Second edit."
    note.refresh_from_db()
    assert note.note == "Second edit." and writeback.state_of(note) == "synced"


def test_retries_back_off_exponentially_up_to_five_minutes(sim, upstream, settings):
    settings.UPSTREAM_RETRIES = 0
    note = mirrored_note(sim, upstream, "Investigating.")
    write = queued_edit(note, "Edited while OneUptime is away.")
    down = OneUptimeClient(f"http://127.0.0.1:{free_port()}/api", sim.api_key)
    gaps = []
    for _ in range(10):
        now = write.next_attempt_at
        writeback.deliver_due(client=down, now=now)
        write.refresh_from_db()
        gaps.append((write.next_attempt_at - now).total_seconds())
    assert gaps == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert write.state == "pending"


def test_an_edit_of_a_note_deleted_in_oneuptime_fails_and_keeps_the_text(sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    queued_edit(note, "Too late.")
    sim.delete_note(note.upstream_id)
    deliver(upstream)
    write = note.writes.get()
    assert (write.state, write.last_error) == ("failed", writeback.DELETED_UPSTREAM)
    note.refresh_from_db()
    assert note.note == "Too late."


def test_deleting_a_note_whose_create_failed_sends_no_delete(sim, incident):
    read_only = OneUptimeClient(sim.url, sim.read_only_key)
    note = queued_create(incident, "Not allowed.")
    deliver(read_only)
    assert writeback.state_of(note) == "failed" and "Create Incident Status Page Note" in note.writes.get().last_error

    with transaction.atomic():
        writeback.enqueue(note=note, action="delete")
    assert writeback.state_of(note) == "deleting"
    deliver(read_only)

    assert not IncidentNote.objects.filter(pk=note.pk).exists()
    assert not sim.notes and not [request for request in sim.requests if request[0] == "DELETE"]


def test_an_edit_in_oneuptime_between_our_check_and_our_update_is_held_as_a_conflict(sim, upstream):
    """OneUptime has no If-Match: the edit is overwritten, but the version says so, and the write is not marked done."""
    note = mirrored_note(sim, upstream, "Investigating.")
    queued_edit(note, "Ours.")
    sim.edit_before_next_update(note.upstream_id, note="Theirs, typed at the same moment.")

    deliver(upstream)

    write = note.writes.get()
    assert write.state == "conflict" and "another change" in write.last_error


def test_an_edit_in_oneuptime_right_after_our_update_is_held_as_a_conflict(sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    queued_edit(note, "Ours.")
    sim.edit_after_next_update(note.upstream_id, note="Theirs, just after ours.")

    deliver(upstream)

    write = note.writes.get()
    assert write.state == "conflict" and write.upstream_copy["note"] == "Theirs, just after ours."
    note.refresh_from_db()
    assert note.note == "Ours."


def wait_for(condition, *, seconds: float, process=None) -> float:
    """Poll `condition` until it holds; returns how long that took."""
    started = time.monotonic()
    while not condition():
        if process is not None:
            assert process.poll() is None, process.communicate()
        assert time.monotonic() - started < seconds, "gave up waiting"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_the_next_poller_retries_a_killed_pollers_create_within_seconds_and_posts_it_once(sim, upstream, incident):
    note = queued_create(incident, "Failover complete.")
    token = TOKEN_PREFIX + str(note.writes.get().token)
    env = base_env(ONEUPTIME_API_URL=sim.url, ONEUPTIME_API_KEY=sim.api_key)
    sim.hold_after_write = 60  # OneUptime stores the note; the poller is killed before it hears back
    first = start_manage("poll", env=env)
    try:
        wait_for(
            lambda: any(row["postedFromSlackMessageId"] == token for row in list(sim.notes.values())), seconds=30, process=first
        )
    finally:
        first.kill()
        first.communicate()
    sim.hold_after_write = 0

    second = start_manage("poll", env=env)
    try:
        waited = wait_for(lambda: note.writes.get().state == "delivered", seconds=60, process=second)
    finally:
        second.terminate()
        second.communicate()

    assert waited < writeback.LEASE.total_seconds() + 10, f"took {waited:.1f} s"
    assert len([row for row in sim.notes.values() if row["note"] == "Failover complete."]) == 1 and len(creates(sim)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_live_pollers_slow_create_is_not_taken_over_when_the_lease_would_have_run_out(sim, upstream, incident):
    note = queued_create(incident, "Slow answer.")
    sim.hold_after_write = writeback.LEASE.total_seconds() + 8  # OneUptime answers long after one lease
    poller = start_manage("poll", env=base_env(ONEUPTIME_API_URL=sim.url, ONEUPTIME_API_KEY=sim.api_key))
    try:
        wait_for(lambda: len(creates(sim)) == 1, seconds=30, process=poller)
        time.sleep(writeback.LEASE.total_seconds() + 2)
        assert deliver(upstream).seen == 0, "the renewed lease still holds"
        wait_for(lambda: note.writes.get().state == "delivered", seconds=30, process=poller)
    finally:
        poller.terminate()
        poller.communicate()
    assert len(sim.notes) == 1 and len(creates(sim)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_create_whose_note_came_back_and_was_then_deleted_in_oneuptime_is_not_posted_again(sim, incident, settings):
    """Stored upstream, its answer lost; the sync saw it; someone deleted it there and typed it in again by hand."""
    settings.UPSTREAM_TIMEOUT, settings.UPSTREAM_RETRIES = (1, 0.5), 0
    upstream = OneUptimeClient.from_settings()
    note = queued_create(incident, "Payments are back.")
    sim.hold_after_write = 2  # OneUptime stores it; we time out before hearing so
    deliver(upstream)
    sim.hold_after_write = 0
    assert note.writes.get().state == "pending" and len(sim.notes) == 1
    note_sync.sync_notes(client=upstream, now=timezone.now())  # the sync sees our token come back
    note.refresh_from_db()
    first = note.upstream_id
    assert first in sim.notes
    sim.delete_note(first)
    by_hand = sim.add_note(incident.upstream_id, "Payments are back.")

    deliver(upstream, later=writeback.MAX_BACKOFF)

    assert len(creates(sim)) == 1, "our create was not posted a second time"
    assert [row["_id"] for row in sim.notes.values()] == [by_hand["_id"]]
    write = note.writes.get()
    assert write.state == "failed" and "deleted there" in write.last_error
    note.refresh_from_db()
    assert note.note == "Payments are back.", "the admin's text is kept"
