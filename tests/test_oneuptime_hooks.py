"""POST /hooks/oneuptime/ over HTTP (Django's test client): the note it names is re-read from OneUptime, never trusted."""

import json
import time

import pytest
from django.utils import timezone

from dashboard.models import HookDelivery, IncidentNote, Transition, TransitionKind
from dashboard.poller import hooks
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.webhooks import MAX_BODY_BYTES

pytestmark = pytest.mark.django_db
SECRET = "oneuptime-workflow-secret"


@pytest.fixture
def sim(oneuptime_sim, oneuptime_client, settings):
    settings.ONEUPTIME_WEBHOOK_SECRET = SECRET
    incident = oneuptime_sim.add_incident("Database failover")
    oneuptime_sim.first_note = oneuptime_sim.add_note(incident["_id"], "Investigating")
    note_sync.sync_notes(client=oneuptime_client, now=timezone.now())
    return oneuptime_sim


def post(client, body, secret: str | None = SECRET):
    headers = {"X-Pulseboard-Secret": secret} if secret is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/hooks/oneuptime/", data, content_type="application/json", headers=headers)


def note_kinds(note_id):
    return list(Transition.objects.filter(upstream_id=note_id).values_list("kind", flat=True))


def test_an_update_is_read_back_from_oneuptime_not_from_the_body(client, sim):
    note_id = sim.first_note["_id"]
    sim.edit_note(note_id, note="Failover complete")
    response = post(client, {"data": {"_id": note_id, "note": "<script>forged</script>"}})
    assert response.status_code == 202
    assert IncidentNote.objects.get(upstream_id=note_id).note == "Investigating"  # queued, not yet applied

    hooks.drain(now=timezone.now())
    assert IncidentNote.objects.get(upstream_id=note_id).note == "Failover complete"
    assert note_kinds(note_id) == [TransitionKind.NOTE_UPDATED]


@pytest.mark.parametrize(
    "shape",
    [
        lambda i: {"_id": i},
        lambda i: {"noteId": i},
        lambda i: {"data": {"noteId": i}},
        lambda i: {"data": {"_id": {"_type": "ObjectID", "value": i}}},
    ],
)
def test_a_new_note_is_fetched_by_any_documented_naming(client, sim, shape):
    incident_id = sim.first_note["incidentId"]
    note = sim.add_note(incident_id, "Monitoring")
    assert post(client, shape(note["_id"])).status_code == 202
    hooks.drain(now=timezone.now())
    assert IncidentNote.objects.get(upstream_id=note["_id"]).note == "Monitoring"
    assert note_kinds(note["_id"]) == [TransitionKind.NOTE_CREATED]


def test_a_note_oneuptime_no_longer_has_is_a_deletion(client, sim):
    note_id = sim.first_note["_id"]
    sim.delete_note(note_id)
    post(client, {"data": {"_id": note_id}})
    hooks.drain(now=timezone.now())
    assert not IncidentNote.objects.filter(upstream_id=note_id).exists()
    assert note_kinds(note_id) == [TransitionKind.NOTE_DELETED]


def test_a_delete_that_arrives_before_its_create_changes_nothing(client, sim):
    note = sim.add_note(sim.first_note["incidentId"], "Gone soon")
    sim.delete_note(note["_id"])
    post(client, {"data": {"_id": note["_id"]}})  # on-delete
    post(client, {"data": {"_id": note["_id"], "note": "Gone soon"}})  # on-create, late
    hooks.drain(now=timezone.now())
    assert not IncidentNote.objects.filter(upstream_id=note["_id"]).exists()
    assert note_kinds(note["_id"]) == []


def test_repeated_deliveries_change_nothing_twice(client, sim):
    note_id = sim.first_note["_id"]
    sim.edit_note(note_id, note="Resolved")
    for _ in range(3):
        post(client, {"noteId": note_id})
    hooks.drain(now=timezone.now())
    post(client, {"noteId": note_id})
    hooks.drain(now=timezone.now())
    assert note_kinds(note_id) == [TransitionKind.NOTE_UPDATED]
    reads = [path for method, path, _ in sim.requests if f"/{note_id}/get-item" in path]
    assert len(reads) == 2  # once per drain, however often the note was named in it


def test_an_admin_edit_on_its_way_up_is_not_overwritten(client, sim):
    note = IncidentNote.objects.get(upstream_id=sim.first_note["_id"])
    note.note = "Admin's wording"
    note.save()
    writeback.enqueue(note=note, action="update", base_text="Investigating")
    sim.edit_note(note.upstream_id, note="Someone else's wording")
    post(client, {"noteId": note.upstream_id})
    hooks.drain(now=timezone.now())
    assert IncidentNote.objects.get(pk=note.pk).note == "Admin's wording"


def test_the_simulators_workflow_reaches_a_live_receiver(live_server, sim):
    sim.add_workflow(f"{live_server.url}/hooks/oneuptime/", {"X-Pulseboard-Secret": SECRET})
    note = sim.add_note(sim.first_note["incidentId"], "Update from the workflow")
    sim.delete_note(sim.first_note["_id"])
    assert [status for _, status in sim.deliveries] == [202, 202]
    hooks.drain(now=timezone.now())
    assert IncidentNote.objects.filter(upstream_id=note["_id"]).exists()
    assert not IncidentNote.objects.filter(upstream_id=sim.first_note["_id"]).exists()


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"nope", "the body is not JSON"),
        ([1], "expected a JSON object naming the note by _id or noteId"),
        ({"data": {"note": "x"}}, "the body names no note: send _id or noteId, at the top level or under data"),
        ({"noteId": "../incident/1"}, "the note id '../incident/1' is not an id"),
        ({"noteId": 7}, "the note id 7 is not an id"),
    ],
)
def test_a_malformed_body_is_a_one_line_400(client, sim, body, reason):
    response = post(client, body)
    assert (response.status_code, response.content.decode()) == (400, reason + "\n")
    assert not HookDelivery.objects.exists()


@pytest.mark.parametrize("secret, status", [(None, 401), ("wrong", 403)])
def test_a_missing_or_wrong_secret_is_refused(client, sim, secret, status):
    assert post(client, {"noteId": sim.first_note["_id"]}, secret=secret).status_code == status
    assert not HookDelivery.objects.exists()


def test_a_body_over_the_limit_is_413(client, sim):
    assert post(client, b" " * (MAX_BODY_BYTES + 1)).status_code == 413


def test_an_unconfigured_receiver_is_404(client, sim, settings):
    settings.ONEUPTIME_WEBHOOK_SECRET = ""
    assert post(client, {"noteId": "x"}).status_code == 404


def test_note_re_reads_against_a_hung_oneuptime_stop_at_the_drains_deadline_and_the_rest_wait(client, sim, settings, monkeypatch):
    monkeypatch.setattr(hooks, "NOTE_REREADS_SECONDS", 1.0)
    settings.UPSTREAM_TIMEOUT, settings.UPSTREAM_RETRIES = (1, 0.5), 0
    incident = sim.add_incident("Queue backlog")
    notes = [sim.add_note(incident["_id"], f"Update {number}") for number in range(6)]
    for note in notes:
        assert post(client, {"data": {"_id": note["_id"]}}).status_code == 202
    sim.delay = 2  # hung: each re-read times out after half a second

    started = time.monotonic()
    hooks.drain(now=timezone.now())
    assert time.monotonic() - started < 4, "one drain's re-reads stop at its deadline"
    left = HookDelivery.objects.count()
    assert 0 < left < len(notes), "the notes not reached stay queued for the next drain"

    sim.delay = 0
    hooks.drain(now=timezone.now())
    assert not HookDelivery.objects.exists()
    # Those that timed out were dropped, as failed deliveries are (the regular pass reads them); the rest are in.
    assert IncidentNote.objects.filter(upstream_id__in=[note["_id"] for note in notes]).count() == left
