"""The OneUptime client against the simulator over real HTTP: paging, normalized answers, the POST
alternatives for update and delete, typed errors, and retries for reads but never for creates."""

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.simulators import oneuptime as simulator
from dashboard.upstreams import http as upstream
from dashboard.upstreams.oneuptime.client import (
    NOTES,
    UNREADABLE,
    OneUptimeClient,
    PermissionMissing,
    RecordNotFound,
    normalize,
)

NOW = datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
NOW_IN_MILLISECONDS = NOW.replace(microsecond=123000)
VENDOR_ATTRIBUTES = {
    "_id",
    "createdAt",
    "updatedAt",
    "project",
    "projectId",
    "incident",
    "incidentId",
    "createdByUser",
    "createdByUserId",
    "note",
    "attachments",
    "subscriberNotificationStatusMessage",
    "shouldStatusPageSubscribersBeNotifiedOnNoteCreated",
    "postedAt",
    "postedFromSlackMessageId",
}


@pytest.fixture
def sim(settings):
    settings.UPSTREAM_RETRIES = 3
    settings.UPSTREAM_BACKOFF_FACTOR = 0.01
    with simulator.serve(port=0, seed=1) as server:
        server.clock = lambda: NOW
        yield server


@pytest.fixture
def client(sim):
    return OneUptimeClient(sim.url, sim.api_key)


@pytest.fixture
def incident(sim):
    return sim.add_incident("API latency", state="Acknowledged", severity="Critical")


def requests_to(sim, path_part):
    return [(method, path) for method, path, _ in sim.requests if path_part in path]


def test_it_pages_through_more_than_a_hundred_notes(sim, client, incident):
    for number in range(250):
        sim.add_note(incident["_id"], f"note {number}", createdAt=NOW - timedelta(seconds=number))
    page = client.list_notes()
    assert (len(page.items), page.count, page.skip, page.limit) == (100, 250, 0, 100)
    notes = list(client.iter_notes())
    assert [note["note"] for note in notes] == [f"note {number}" for number in reversed(range(250))]
    assert ("POST", "/api/incident-public-note/get-list?skip=200&limit=100") in requests_to(sim, "get-list")
    assert client.count_notes() == 250
    assert client.count_notes({"createdAt": {"_type": "GreaterThan", "value": NOW - timedelta(seconds=10)}}) == 10
    assert sorted(client.list_ids(NOTES)) == sorted(sim.notes)


def test_reads_select_every_documented_attribute_and_come_back_plain(sim, client, incident):
    stored = sim.add_note(incident["_id"], "## Investigating\n\n- api\n- web")
    note = client.get_note(stored["_id"])
    assert VENDOR_ATTRIBUTES <= set(note)
    assert note["incidentId"] == incident["_id"] and note["projectId"] == sim.project_id
    assert note["createdAt"] == note["postedAt"] == NOW_IN_MILLISECONDS
    assert note["createdByUser"]["name"] in {name for name, _ in simulator.USERS}
    assert note["incident"]["incidentNumberWithPrefix"] == incident["incidentNumberWithPrefix"]
    assert note["version"] == 1
    [listed] = client.list_notes(query={"incidentId": incident["_id"]}).items
    assert listed == note

    got = client.get_incident(incident["_id"])
    assert got["title"] == "API latency" and got["declaredAt"] == NOW_IN_MILLISECONDS
    assert got["currentIncidentState"]["name"] == "Acknowledged" and got["currentIncidentState"]["color"] == "#F59E0B"
    assert got["incidentSeverity"] == got["incidentSeverity"] | {"name": "Critical", "color": "#DC2626"}
    assert got["isVisibleOnStatusPage"] is True
    assert [item["_id"] for item in client.iter_incidents()] == [incident["_id"]]
    assert client.count_incidents() == client.list_incidents().count == 1


def test_normalize_accepts_plain_values_where_wrappers_are_expected():
    wrapped = {
        "incidentId": {"_type": "ObjectID", "value": "a1"},
        "updatedAt": {"_type": "DateTime", "value": "2025-06-01T10:00:00.123Z"},
        "state": {"_id": "s1", "color": {"_type": "Color", "value": "#10B981"}},
    }
    plain = {"incidentId": "a1", "updatedAt": "2025-06-01T10:00:00.123Z", "state": {"_id": "s1", "color": "#10B981"}}
    expected = {"incidentId": "a1", "updatedAt": NOW_IN_MILLISECONDS, "state": {"_id": "s1", "color": "#10B981"}}
    assert normalize(wrapped) == normalize(plain) == expected


def test_an_unknown_id_reads_as_none(client):
    assert client.get_note("0b7c2f0e-0000-4000-8000-000000000000") is None
    assert client.get_incident("0b7c2f0e-0000-4000-8000-000000000000") is None


def test_update_and_delete_use_put_and_delete(sim, client, incident):
    note = sim.add_note(incident["_id"], "before")
    client.update_note(note["_id"], {"note": "after"})
    assert sim.notes[note["_id"]]["note"] == "after"
    client.delete_note(note["_id"])
    assert note["_id"] not in sim.notes
    assert requests_to(sim, note["_id"]) == [
        ("PUT", f"/api/incident-public-note/{note['_id']}"),
        ("DELETE", f"/api/incident-public-note/{note['_id']}"),
    ]


def test_update_and_delete_fall_back_to_post_when_put_and_delete_are_refused(sim, client, incident):
    sim.refuse_methods = {"PUT", "DELETE"}
    first, second = sim.add_note(incident["_id"], "one"), sim.add_note(incident["_id"], "two")
    client.update_note(first["_id"], {"note": "one, edited"})
    client.update_note(second["_id"], {"note": "two, edited"})
    client.delete_note(first["_id"])
    assert sim.notes[second["_id"]]["note"] == "two, edited" and first["_id"] not in sim.notes
    assert [method for method, _ in requests_to(sim, first["_id"])] == ["PUT", "POST", "POST"]
    assert [method for method, _ in requests_to(sim, second["_id"])] == ["POST"]  # refused once, not asked again


def test_forced_post_alternatives_never_send_put_or_delete(sim, incident):
    forced = OneUptimeClient(sim.url, sim.api_key, use_post_alternatives=True)
    note = sim.add_note(incident["_id"], "before")
    forced.update_note(note["_id"], {"note": "after"})
    forced.delete_note(note["_id"])
    assert requests_to(sim, note["_id"]) == [
        ("POST", f"/api/incident-public-note/{note['_id']}/update-item"),
        ("POST", f"/api/incident-public-note/{note['_id']}/delete-item"),
    ]


def test_from_settings(sim, settings):
    settings.ONEUPTIME_API_URL = sim.url
    settings.ONEUPTIME_API_KEY = sim.read_only_key
    settings.ONEUPTIME_USE_POST_ALTERNATIVES = True
    client = OneUptimeClient.from_settings()
    assert client.use_post_alternatives and client.count_notes() == 0


def test_a_read_only_key_lacks_the_permission_to_update(sim, incident):
    note = sim.add_note(incident["_id"], "x")
    reader = OneUptimeClient(sim.url, sim.read_only_key)
    assert reader.get_note(note["_id"])["note"] == "x"
    with pytest.raises(PermissionMissing) as raised:
        reader.update_note(note["_id"], {"note": "y"})
    assert str(raised.value) == (
        'OneUptime API key lacks permission to update incident public notes: grant "Edit Incident Status Page Note" (or Project Member)'
    )
    assert raised.value.permanent and raised.value.status == 422


def test_a_bad_key_is_rejected(sim):
    with pytest.raises(upstream.CredentialsRejected) as raised:
        OneUptimeClient(sim.url, "0b7c2f0e-0000-4000-8000-000000000000").count_notes()
    assert str(raised.value) == "OneUptime rejected the API key (400 Invalid API Key): check ONEUPTIME_API_KEY"


def test_updating_a_deleted_note_is_a_permanent_not_found(sim, client, incident):
    note = sim.add_note(incident["_id"], "x")
    sim.delete_note(note["_id"])
    with pytest.raises(RecordNotFound) as raised:
        client.update_note(note["_id"], {"note": "y"})
    assert raised.value.permanent and note["_id"] in str(raised.value)


def test_other_client_errors_are_permanent_with_the_upstreams_message(client):
    with pytest.raises(upstream.UpstreamError) as raised:
        client.get_note("not-a-uuid")
    assert raised.value.permanent and 'Invalid ID format: "not-a-uuid"' in str(raised.value)


def test_reads_are_retried_through_503_and_429(sim, client):
    sim.fail_next(2, status=503)
    sim.rate_limit_next(1, retry_after=0)
    assert client.count_notes() == 0
    assert len(requests_to(sim, "/count")) == 4


def test_a_lasting_outage_is_a_transient_error(sim, client):
    sim.fail_next(10, status=502)
    with pytest.raises(upstream.UpstreamError) as raised:
        client.list_notes()
    assert not raised.value.permanent and "502" in str(raised.value)


def test_create_is_never_retried(sim, client, incident):
    sim.fail_next(1, status=503)
    with pytest.raises(upstream.UpstreamError) as raised:
        client.create_note({"incidentId": incident["_id"], "note": "x"})
    assert not raised.value.permanent
    assert requests_to(sim, "/api/incident-public-note") == [("POST", "/api/incident-public-note")]
    assert sim.notes == {}


def test_create_returns_the_saved_note_normalized(sim, client, incident):
    created = client.create_note(
        {
            "incidentId": incident["_id"],
            "note": "## Resolved",
            "postedAt": NOW,
            "shouldStatusPageSubscribersBeNotifiedOnNoteCreated": False,
        }
    )
    assert created["incidentId"] == incident["_id"] and created["projectId"] == sim.project_id
    assert created["postedAt"] == NOW_IN_MILLISECONDS
    assert sim.notes[created["_id"]]["subscriberNotificationStatusOnNoteCreated"] == "Skipped"


def test_invalid_json_is_a_transient_error(sim, client):
    sim.corrupt_next(1)
    with pytest.raises(upstream.UpstreamError) as raised:
        client.list_notes()
    assert not raised.value.permanent and "invalid JSON" in str(raised.value)


def test_a_page_too_large_to_read_whole_is_read_one_note_at_a_time(sim, client, incident, settings):
    settings.UPSTREAM_MAX_ANSWER_BYTES = 64 * 1024
    small = [sim.add_note(incident["_id"], f"note {number}", createdAt=NOW - timedelta(seconds=number)) for number in range(3)]
    huge = sim.add_note(incident["_id"], "x" * 100_000, createdAt=NOW - timedelta(seconds=10))

    page = client.list_notes(sort={"createdAt": "DESC"})

    assert [item["_id"] for item in page.items] == [note["_id"] for note in [*small, huge]]
    assert [item.get("note") for item in page.items[:3]] == ["note 0", "note 1", "note 2"]
    assert page.items[3].keys() == {"_id", "updatedAt", UNREADABLE}
    assert page.items[3][UNREADABLE].endswith("get-item failed: the answer is larger than 65536 bytes")
    assert page.count == 4 and len(requests_to(sim, "/get-item")) == 4
