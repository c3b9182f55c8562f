"""The OneUptime simulator, over real HTTP: it must behave like OneUptime's source (where the vendor
page and the API notes disagree, like the notes), so that a client passing here passes upstream."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from dashboard.simulators import oneuptime

NOW = datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
NOTES = "/incident-public-note"
INCIDENTS = "/incident"


@pytest.fixture
def sim():
    with oneuptime.serve(port=0, seed=1) as simulator:
        simulator.clock = lambda: NOW
        yield simulator


@pytest.fixture
def incident(sim):
    return sim.add_incident("API latency", state="Created", severity="Major")


def call(sim, method, path, body=None, *, key=None, **kwargs):
    headers = {"ApiKey": key or sim.api_key}
    return requests.request(method, sim.url + path, json=body, headers=headers, timeout=5, **kwargs)


def error(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_a_missing_key_is_401_and_a_bad_one_400(sim):
    missing = requests.post(sim.url + NOTES + "/get-list", json={}, timeout=5)
    assert error(missing, 401) == "Authenticated user or a valid API key is needed to read record of Incident Public Note."
    assert error(call(sim, "POST", NOTES + "/get-list", {}, key="not-a-uuid"), 400) == "Invalid API Key"
    assert error(call(sim, "POST", NOTES + "/get-list", {}, key="0b7c2f0e-0000-4000-8000-000000000000"), 400) == "Invalid API Key"


def test_a_missing_permission_is_422_naming_the_permissions_the_vendor_page_lists(sim, incident):
    assert call(sim, "POST", NOTES + "/get-list", {}, key=sim.read_only_key).status_code == 200
    assert call(sim, "POST", INCIDENTS + "/count", {}, key=sim.read_only_key).json() == {"count": 1}
    refused = call(sim, "POST", NOTES, {"data": {"incidentId": incident["_id"], "note": "x"}}, key=sim.read_only_key)
    assert error(refused, 422) == (
        "You do not have permissions to create Incident Public Note. You need one of these permissions: "
        "Project Owner, Project Admin, Project Member, Create Incident Status Page Note"
    )
    creator = sim.add_api_key(permissions={"read", "create"})
    assert call(sim, "POST", NOTES, {"data": {"incidentId": incident["_id"], "note": "x"}}, key=creator).status_code == 200
    note_id = next(iter(sim.notes))
    assert "Edit Incident Status Page Note" in error(
        call(sim, "PUT", f"{NOTES}/{note_id}", {"data": {"note": "y"}}, key=creator), 422
    )


def test_without_select_only_the_id_comes_back(sim, incident):
    note = sim.add_note(incident["_id"], "Investigating")
    assert call(sim, "POST", NOTES + "/get-list", {}).json()["data"] == [{"_id": note["_id"]}]
    assert call(sim, "GET", f"{NOTES}/{note['_id']}/get-item").json() == {"_id": note["_id"]}


def test_ids_dates_colours_and_user_names_come_back_wrapped(sim, incident):
    user = sim.add_note(incident["_id"], "x")["createdByUserId"]
    select = {"incidentId": True, "createdAt": True, "note": True, "createdByUser": {"name": True, "email": True}}
    [item] = call(sim, "POST", NOTES + "/get-list", {"select": select}).json()["data"]
    assert item["incidentId"] == {"_type": "ObjectID", "value": incident["_id"]}
    assert item["createdAt"] == {"_type": "DateTime", "value": "2025-06-01T10:00:00.123Z"}
    assert item["note"] == "x"
    assert item["createdByUser"]["_id"] == user
    assert item["createdByUser"]["name"]["_type"] == "Name" and item["createdByUser"]["email"]["_type"] == "Email"
    select = {
        "currentIncidentState": {"name": True, "color": True, "isResolvedState": True},
        "incidentSeverity": {"name": True, "color": True},
    }
    got = call(sim, "POST", f"{INCIDENTS}/{incident['_id']}/get-item", {"select": select}).json()
    assert got["currentIncidentState"] | {"_id": None} == {
        "_id": None,
        "name": "Created",
        "color": {"_type": "Color", "value": "#EF4444"},
        "isResolvedState": False,
    }
    assert got["incidentSeverity"]["name"] == "Major"


def test_bad_selects_are_refused(sim):
    assert error(call(sim, "POST", NOTES + "/get-list", {"select": {"nope": True}}), 400).startswith(
        'Invalid select clause. Cannot select on "nope"'
    )
    deep = {"incident": {"currentIncidentState": {"name": True}}}
    assert error(call(sim, "POST", NOTES + "/get-list", {"select": deep}), 400).startswith("You cannot query deep relations")
    hidden = {"incident": {"description": True}}
    assert (
        error(call(sim, "POST", NOTES + "/get-list", {"select": hidden}), 400)
        == "Column description on Incident does not support read on relation query."
    )
    assert error(call(sim, "POST", NOTES + "/get-list", {"select": {"deletedByUserId": True}}), 422).startswith(
        "You do not have permissions to select on"
    )


def test_query_operators(sim, incident):
    other = sim.add_incident("Other")
    early = sim.add_note(
        incident["_id"], "checking the **database**", createdAt=NOW - timedelta(hours=2), postedFromSlackMessageId="C1:1"
    )
    middle = sim.add_note(incident["_id"], "still looking", createdAt=NOW - timedelta(hours=1))
    late = sim.add_note(other["_id"], "Resolved: Database failover done")

    def ids(query):
        response = call(sim, "POST", NOTES + "/get-list", {"query": query, "sort": {"createdAt": "ASC"}})
        assert response.status_code == 200, response.text
        return [item["_id"] for item in response.json()["data"]]

    hour_ago = (NOW - timedelta(hours=1)).isoformat()
    assert ids({"incidentId": incident["_id"]}) == [early["_id"], middle["_id"]]
    assert ids({"incidentId": {"_type": "ObjectID", "value": other["_id"]}}) == [late["_id"]]
    assert ids({"createdAt": {"_type": "GreaterThanOrEqual", "value": hour_ago}}) == [middle["_id"], late["_id"]]
    assert ids({"createdAt": {"_type": "GreaterThan", "value": hour_ago}}) == [late["_id"]]
    assert ids({"createdAt": {"_type": "LessThan", "value": hour_ago}}) == [early["_id"]]
    assert ids({"createdAt": {"_type": "InBetween", "startValue": "2025-06-01T07:00:00Z", "endValue": hour_ago}}) == [
        early["_id"],
        middle["_id"],
    ]
    assert ids({"incidentId": {"_type": "Includes", "value": [other["_id"]]}}) == [late["_id"]]
    assert ids({"incidentId": [incident["_id"], other["_id"]]}) == [early["_id"], middle["_id"], late["_id"]]
    assert ids({"incidentId": {"_type": "Includes", "value": []}}) == []
    assert ids({"postedFromSlackMessageId": {"_type": "NotNull"}}) == [early["_id"]]
    assert ids({"postedFromSlackMessageId": {"_type": "IsNull"}}) == [middle["_id"], late["_id"]]
    assert ids({"postedFromSlackMessageId": None}) == [middle["_id"], late["_id"]]
    assert ids({"note": {"_type": "Search", "value": " DATABASE "}}) == [early["_id"], late["_id"]]
    assert ids({"note": {"_type": "StartsWith", "value": "resolved"}}) == [late["_id"]]
    assert ids({"x": {"_type": "MultiSearch", "value": "c1:", "fields": ["note", "postedFromSlackMessageId"]}}) == [early["_id"]]
    assert (
        error(call(sim, "POST", NOTES + "/get-list", {"query": {"nope": 1}}), 400)
        == "Invalid column on Incident Public Note - nope. Column does not exist."
    )
    wrapped_date = {"_type": "GreaterThan", "value": {"_type": "DateTime", "value": hour_ago}}
    assert error(call(sim, "POST", NOTES + "/get-list", {"query": {"createdAt": wrapped_date}}), 500) == "Server Error"
    assert (
        error(call(sim, "POST", NOTES + "/count", {"query": {"note": {"_type": "Fuzzy", "value": "x"}}}), 500) == "Server Error"
    )


def test_sort_defaults_to_newest_first_and_unknown_directions_sort_ascending(sim, incident):
    old = sim.add_note(incident["_id"], "old", createdAt=NOW - timedelta(minutes=5))
    new = sim.add_note(incident["_id"], "new")

    def order(body):
        return [item["_id"] for item in call(sim, "POST", NOTES + "/get-list", body).json()["data"]]

    assert order({}) == [new["_id"], old["_id"]]
    for descending in ("DESC", "desc", -1):
        assert order({"sort": {"createdAt": descending}}) == [new["_id"], old["_id"]]
    for ascending in ("ASC", "asc", 1, "Descending"):
        assert order({"sort": {"createdAt": ascending}}) == [old["_id"], new["_id"]]
    assert error(call(sim, "POST", NOTES + "/get-list", {"sort": {"nope": "ASC"}}), 500) == "Server Error"


def test_paging_reads_the_query_string_first_and_echoes_only_it(sim, incident):
    for number in range(15):
        sim.add_note(incident["_id"], f"note {number}")

    def page(query_string="", body=None):
        response = call(sim, "POST", NOTES + "/get-list" + query_string, body or {})
        assert response.status_code == 200, response.text
        body = response.json()
        return len(body["data"]), body["count"], body["skip"], body["limit"]

    assert page() == (10, 15, 0, 10)
    assert page("?skip=10&limit=4") == (4, 15, 10, 4)
    assert page("?limit=0") == (10, 15, 0, 10)
    assert page("?limit=lots") == (10, 15, 0, 10)
    assert page("", {"skip": 12, "limit": 100}) == (3, 15, 0, 10)
    assert page("?limit=2", {"limit": 100}) == (2, 15, 0, 2)
    assert page("?limit=10000") == (15, 15, 0, 10000)
    assert error(call(sim, "POST", NOTES + "/get-list?limit=10001", {}), 400) == "Limit should be less than 10000"
    assert error(call(sim, "POST", NOTES + "/get-list?skip=-1", {}), 400) == "positiveNumber cannot be less than 0"
    assert call(sim, "GET", NOTES + "/get-list?limit=3").json()["limit"] == 3


def test_count_is_post_only(sim, incident):
    sim.add_note(incident["_id"], "a")
    assert call(sim, "POST", NOTES + "/count", {"query": {"incidentId": incident["_id"]}}).json() == {"count": 1}
    missing = call(sim, "GET", NOTES + "/count")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Page not found - /api/incident-public-note/count"}


def test_unknown_and_malformed_ids(sim):
    unknown = "0b7c2f0e-0000-4000-8000-000000000000"
    assert call(sim, "POST", f"{NOTES}/{unknown}/get-item", {"select": {"note": True}}).json() == {}
    assert call(sim, "DELETE", f"{NOTES}/{unknown}").json() == {}
    assert error(call(sim, "PUT", f"{NOTES}/{unknown}", {"data": {"note": "x"}}), 422) == (
        "Unable to update this incident public note. It either does not exist, has been deleted, "
        "or you do not have permission to update it."
    )
    assert error(call(sim, "POST", f"{NOTES}/42/get-item", {}), 400).startswith('Invalid ID format: "42"')


def test_create_returns_the_whole_entity_and_defaults_posted_at(sim, incident):
    user = sim.add_note(incident["_id"], "x")["createdByUserId"]
    data = {"incidentId": incident["_id"], "createdByUserId": user, "note": "## Investigating", "projectId": "ignored"}
    created = call(sim, "POST", NOTES, {"data": data, "unknown": 1})
    assert created.status_code == 200
    body = created.json()
    assert body["incidentId"] == incident["_id"]  # sent plain, echoed plain
    assert body["projectId"] == {"_type": "ObjectID", "value": sim.project_id}
    assert body["postedAt"] == body["createdAt"] == {"_type": "DateTime", "value": "2025-06-01T10:00:00.123Z"}
    assert body["version"] == 1 and body["subscriberNotificationStatusOnNoteCreated"] == "Pending"
    assert sim.notes[body["_id"]]["note"] == "## Investigating"


def test_create_refuses_bad_data(sim, incident):
    assert error(call(sim, "POST", NOTES, {"data": {"note": "x"}}), 400) == "incidentId is required"
    nowhere = {"incidentId": "0b7c2f0e-0000-4000-8000-000000000000", "note": "x"}
    assert error(call(sim, "POST", NOTES, {"data": nowhere}), 400).startswith(
        "This request references Incident that does not exist."
    )
    owner_notified = {"incidentId": incident["_id"], "note": "x", "isOwnerNotified": True}
    assert (
        error(call(sim, "POST", NOTES, {"data": owner_notified}), 400)
        == "User is not allowed to create on isOwnerNotified column of Incident Public Note"
    )
    assert error(call(sim, "POST", NOTES, {"data": {"incidentId": incident["_id"]}}), 500) == "Server Error"
    assert sim.notes == {}


@pytest.mark.parametrize(("method", "suffix"), [("PUT", ""), ("POST", "/update-item"), ("GET", "/update-item")])
def test_update_by_put_or_the_alternatives(sim, incident, method, suffix):
    note = sim.add_note(incident["_id"], "before")
    later = NOW + timedelta(seconds=10)
    sim.clock = lambda: later
    response = call(sim, method, f"{NOTES}/{note['_id']}{suffix}", {"data": {"note": "after", "_id": "x", "updatedAt": "y"}})
    assert response.status_code == 200 and response.json() == {}
    stored = sim.notes[note["_id"]]
    assert (stored["note"], stored["updatedAt"], stored["version"]) == ("after", later, 2)


def test_update_refuses_bad_bodies(sim, incident):
    path = f"{NOTES}/{sim.add_note(incident['_id'], 'x')['_id']}"
    assert error(call(sim, "PUT", path, {"note": "flat"}), 400).startswith("Invalid request body.")
    assert error(call(sim, "PUT", path, {"data": {"_id": "x"}}), 400).startswith("No fields to update.")
    assert error(call(sim, "PUT", path, {"data": {"incidentId": incident["_id"]}}), 400) == (
        "User is not allowed to update on incidentId column of Incident Public Note"
    )


@pytest.mark.parametrize(("method", "suffix"), [("DELETE", ""), ("POST", "/delete-item"), ("GET", "/delete-item")])
def test_delete_by_delete_or_the_alternatives(sim, incident, method, suffix):
    note = sim.add_note(incident["_id"], "x")
    assert call(sim, method, f"{NOTES}/{note['_id']}{suffix}").json() == {}
    assert note["_id"] not in sim.notes


def test_deleting_an_incident_deletes_its_notes(sim, incident):
    sim.add_note(incident["_id"], "x")
    kept = sim.add_note(sim.add_incident("Other")["_id"], "y")
    assert call(sim, "DELETE", f"{INCIDENTS}/{incident['_id']}").json() == {}
    assert list(sim.notes) == [kept["_id"]]


def test_private_incidents_are_hidden_from_project_members(sim):
    sim.add_incident("Secret", isPrivate=True)
    owner = sim.add_api_key(permissions={"Project Owner"})
    assert call(sim, "POST", INCIDENTS + "/count", {}).json() == {"count": 0}
    assert call(sim, "POST", INCIDENTS + "/count", {}, key=owner).json() == {"count": 1}


def test_the_notification_worker_rewrites_a_new_note_after_the_delay(sim, incident):
    sim.notification_delay = 30
    note_id = call(sim, "POST", NOTES, {"data": {"incidentId": incident["_id"], "note": "x"}}).json()["_id"]
    select = {"subscriberNotificationStatusMessage": True, "updatedAt": True, "version": True}
    assert call(sim, "POST", f"{NOTES}/{note_id}/get-item", {"select": select}).json()["version"] == 1
    later = NOW + timedelta(seconds=45)
    sim.clock = lambda: later
    got = call(sim, "POST", f"{NOTES}/{note_id}/get-item", {"select": select}).json()
    assert got["subscriberNotificationStatusMessage"] == oneuptime.NOTIFIED_MESSAGE
    assert got["updatedAt"]["value"] == "2025-06-01T10:00:30.123Z"  # when the worker was due, not when someone looked
    assert got["version"] == 2


def test_a_note_that_must_not_notify_is_skipped_at_once(sim, incident):
    data = {"incidentId": incident["_id"], "note": "x", "shouldStatusPageSubscribersBeNotifiedOnNoteCreated": False}
    assert call(sim, "POST", NOTES, {"data": data}).json()["subscriberNotificationStatusOnNoteCreated"] == "Skipped"


def test_malformed_json_is_a_server_error_and_unknown_routes_404(sim):
    broken = requests.post(
        sim.url + NOTES + "/get-list",
        data=b"{nope",
        headers={"ApiKey": sim.api_key, "Content-Type": "application/json"},
        timeout=5,
    )
    assert error(broken, 500) == "Server Error"
    missing = call(sim, "POST", "/incident-public-notes/get-list", {})
    assert missing.status_code == 404 and missing.json() == {"message": "Page not found - /api/incident-public-notes/get-list"}


def test_fault_switches(sim, incident):
    note = sim.add_note(incident["_id"], "x")
    sim.fail_next(1, status=502)
    sim.rate_limit_next(1, retry_after=7)
    assert call(sim, "POST", NOTES + "/count", {}).status_code == 502
    limited = call(sim, "POST", NOTES + "/count", {})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    sim.corrupt_next(1)
    with pytest.raises(ValueError):
        call(sim, "POST", NOTES + "/count", {}).json()
    sim.refuse_methods = {"PUT", "DELETE"}
    assert call(sim, "PUT", f"{NOTES}/{note['_id']}", {"data": {"note": "y"}}).status_code == 405
    assert call(sim, "POST", f"{NOTES}/{note['_id']}/update-item", {"data": {"note": "y"}}).status_code == 200
    assert [request[0] for request in sim.requests] == ["POST", "POST", "POST", "PUT", "POST"]
    assert sim.requests[-1] == ("POST", f"/api/incident-public-note/{note['_id']}/update-item", {"data": {"note": "y"}})
    sim.delay = 0.2
    started = time.monotonic()
    call(sim, "POST", NOTES + "/count", {})
    assert time.monotonic() - started >= 0.2


def test_generate_is_quick_and_believable(sim):
    started = time.monotonic()
    sim.generate(incidents=200, notes=5000)
    assert time.monotonic() - started < 2
    assert len(sim.incidents) == 200 and len(sim.notes) == 5000
    numbers = sorted(incident["incidentNumberWithPrefix"] for incident in sim.incidents.values())
    assert "INC-42" in numbers
    assert all(note["createdAt"] <= NOW for note in sim.notes.values())
    assert call(sim, "POST", NOTES + "/get-list?limit=10000", {"select": {"note": True}}).json()["count"] == 5000


def test_steps_are_deterministic_and_incidents_move_towards_resolved():
    def run():
        with oneuptime.serve(port=0, seed=7) as simulator:
            moment = [NOW]
            simulator.clock = lambda: moment[0]
            for _ in range(60):
                moment[0] += timedelta(seconds=20)
                simulator.step()
            states = [simulator._state_of(incident)["name"] for incident in simulator.incidents.values()]
            return [note["note"] for note in simulator.notes.values()], states

    first, second = run(), run()
    assert first == second
    notes, states = first
    assert len(notes) > 10 and "Resolved" in states


def test_activity_runs_in_the_background(sim):
    sim.start_activity(interval=0.01)
    deadline = time.monotonic() + 3
    while not sim.notes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.notes
