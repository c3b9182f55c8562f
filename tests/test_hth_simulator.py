"""The Helix TeamHub simulator, over real HTTP: it must follow the vendor's document closely enough
that a client passing against it will pass against the real service."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from dashboard.simulators import hth

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_ISO = "2024-05-01T12:00:00Z"


@pytest.fixture
def sim():
    with hth.serve(port=0, seed=1) as simulator:
        simulator.clock = lambda: NOW
        yield simulator


def call(sim, method, path, *, account_key=None, accept="application/vnd.hth.v1", **kwargs):
    headers = {
        "Accept": accept,
        "Authorization": f"hth.company_key='{sim.company_key}',account_key='{account_key or sim.account_key}'",
    }
    return requests.request(method, sim.url + path, headers=headers, timeout=5, **kwargs)


def as_bot(sim, method, path, **kwargs):
    return call(sim, method, path, account_key=sim.bot_account_key, **kwargs)


def build_body(**fields):
    return {"target": "build", "operation": "completed", "project": "luotsi", "repository": "chef", **fields}


def assert_error(response, status):
    assert response.status_code == status
    body = response.json()
    assert body["api_status"] == status
    assert body["api_timestamp"] == NOW_ISO
    assert body["message"]
    return body


def test_it_rejects_missing_and_wrong_keys(sim):
    assert_error(requests.get(sim.url + "/events", timeout=5), 401)
    assert_error(call(sim, "GET", "/events", account_key="wrong"), 401)
    wrong_company = {"Authorization": f"hth.company_key='nope',account_key='{sim.account_key}'"}
    assert_error(requests.get(sim.url + "/events", headers=wrong_company, timeout=5), 401)


def test_it_accepts_good_keys_in_either_quote_style(sim):
    assert call(sim, "GET", "/events").status_code == 200
    double_quoted = {"Authorization": f'hth.company_key="{sim.company_key}", account_key="{sim.account_key}"'}
    assert requests.get(sim.url + "/events", headers=double_quoted, timeout=5).status_code == 200


def test_it_serves_v1_without_accept_and_refuses_other_versions(sim):
    assert call(sim, "GET", "/events", accept=None).status_code == 200
    assert call(sim, "GET", "/events", accept="*/*").status_code == 200
    assert_error(call(sim, "GET", "/events", accept="application/vnd.hth.v2"), 406)


def test_the_list_is_a_metadata_results_object_of_items_with_status(sim):
    sim.generate(3)
    body = call(sim, "GET", "/events").json()
    assert body["metadata"] == {"more_results": False, "next_offset": 3, "count": 3}
    for item in body["results"]:
        assert item["api_status"] == 200
        assert item["api_timestamp"] == NOW_ISO
        assert len(item["id"]) == 24 and int(item["id"], 16) >= 0
        assert set(item) >= {"created_at", "updated_at", "subject", "operation", "target", "progress", "objects", "timestamp"}
        assert item["subject"].keys() == {"id"}
        assert item["progress"] == 100


def test_paging_walks_every_event_newest_first(sim):
    sim.generate(45)
    seen, offset, pages = [], 0, []
    while True:
        body = call(sim, "GET", f"/events?offset={offset}").json()
        pages.append(body["metadata"])
        seen += body["results"]
        offset = body["metadata"]["next_offset"]
        if not body["metadata"]["more_results"]:
            break
    assert [page["count"] for page in pages] == [20, 20, 5]
    assert [page["next_offset"] for page in pages] == [20, 40, 45]
    assert [item["id"] for item in seen] == [item["id"] for item in sim.events]
    assert len({item["id"] for item in seen}) == 45
    order = [(item["timestamp"], item["id"]) for item in seen]
    assert order == sorted(order, reverse=True)


def test_ties_in_timestamp_put_the_higher_id_first(sim):
    sim.add_event(id="50883cfe1229c02952000001", timestamp=NOW)
    sim.add_event(id="50883cfe1229c02952000002", timestamp=NOW)
    ids = [item["id"] for item in call(sim, "GET", "/events").json()["results"]]
    assert ids == ["50883cfe1229c02952000002", "50883cfe1229c02952000001"]


def test_limit_is_clamped_to_100_and_must_be_a_count(sim):
    sim.generate(150)
    assert call(sim, "GET", "/events?limit=500").json()["metadata"]["count"] == 100
    assert call(sim, "GET", "/events?limit=2").json()["metadata"] == {"more_results": True, "next_offset": 2, "count": 2}
    assert_error(call(sim, "GET", "/events?limit=lots"), 400)
    assert_error(call(sim, "GET", "/events?limit=-1"), 400)
    assert_error(call(sim, "GET", "/events?offset=-5"), 400)


def test_filters_match_project_operation_and_target(sim):
    sim.generate(200)
    wanted = sim.add_event(target="build", operation="failed", project="chef", timestamp=NOW - timedelta(days=400))
    body = call(sim, "GET", "/events?project=chef&target=build&operation=failed&limit=100").json()
    assert wanted["id"] in [item["id"] for item in body["results"]]
    for item in body["results"]:
        assert (item["objects"]["project"]["id"], item["target"], item["operation"]) == ("chef", "build", "failed")
    assert body["metadata"]["count"] == sum(
        1
        for item in sim.events
        if (item["objects"]["project"]["id"], item["target"], item["operation"]) == ("chef", "build", "failed")
    )


def test_expand_subject_returns_the_full_user(sim):
    event = sim.add_event(subject="assimov")
    item = call(sim, "GET", "/events?expand=subject").json()["results"][0]
    assert item["subject"]["id"] == "assimov"
    assert {"email", "first_name", "last_name"} <= item["subject"].keys()
    single = call(sim, "GET", f"/events/{event['id']}?expand=objects.commits,subject").json()
    assert single["subject"] == item["subject"]


def test_get_by_id_and_404s(sim):
    event = sim.add_event(target="push", operation="created", project="luotsi", ref="master", repository="devrel")
    body = call(sim, "GET", f"/events/{event['id']}").json()
    assert body["api_status"] == 200
    assert body["objects"]["repository"] == {"id": "devrel"}
    assert body["objects"]["ref"] == "master"
    assert assert_error(call(sim, "GET", "/events/000000000000000000000000"), 404)["message"]
    assert_error(call(sim, "GET", "/nothing-here"), 404)


def test_a_bot_creates_a_build_event_with_linked_objects_inside_objects(sim):
    body = build_body(name="Development", commits=["d847a7a20f547b8990c31627599aee47441018e6"], resources=["http://ci/2372"])
    response = as_bot(sim, "POST", "/events", json=body)
    assert response.status_code == 201
    item = response.json()
    assert item["api_status"] == 201
    assert item["subject"] == {"id": "luotsi-ci-bot"}
    assert (item["target"], item["operation"], item["progress"]) == ("build", "completed", 100)
    assert item["objects"] == {
        "project": {"id": "luotsi"},
        "repository": {"id": "chef"},
        "commits": [{"id": "d847a7a20f547b8990c31627599aee47441018e6"}],
        "resources": ["http://ci/2372"],
        "name": "Development",
    }
    assert item["created_at"] == item["updated_at"] == item["timestamp"] == NOW_ISO
    assert sim.events[0]["id"] == item["id"]


def test_only_a_bot_may_create_events(sim):
    assert_error(call(sim, "POST", "/events", json=build_body()), 403)
    assert sim.events == []


def test_invalid_build_events_get_422_with_field_errors(sim):
    response = as_bot(sim, "POST", "/events", json={"target": "push", "operation": "created", "project": "nope", "colour": "red"})
    errors = assert_error(response, 422)["errors"]
    assert set(errors) == {"target", "operation", "project", "repository", "colour"}
    assert assert_error(as_bot(sim, "POST", "/events", json=build_body(progress=101)), 422)["errors"].keys() == {"progress"}
    assert assert_error(as_bot(sim, "POST", "/events", json=["not", "an", "object"]), 422)["errors"].keys() == {"body"}
    assert sim.events == []


def test_put_moves_an_incomplete_build_and_sets_updated_at(sim):
    created = as_bot(sim, "POST", "/events", json=build_body(progress=0)).json()
    later = NOW + timedelta(minutes=1)
    sim.clock = lambda: later
    response = as_bot(sim, "PUT", f"/events/{created['id']}", json={"progress": 100, "operation": "failed"})
    assert response.status_code == 200
    item = response.json()
    assert (item["progress"], item["operation"]) == (100, "failed")
    assert item["updated_at"] == "2024-05-01T12:01:00Z"
    assert item["timestamp"] == NOW_ISO


def test_put_refuses_complete_events_other_fields_and_unknown_ids(sim):
    complete = sim.add_event(target="build", operation="completed", project="luotsi")
    assert assert_error(as_bot(sim, "PUT", f"/events/{complete['id']}", json={"progress": 50}), 422)["errors"]
    running = sim.start_build(project="luotsi")
    errors = assert_error(as_bot(sim, "PUT", f"/events/{running}", json={"target": "push"}), 422)["errors"]
    assert errors == {"target": ["cannot be changed"]}
    assert_error(as_bot(sim, "PUT", "/events/000000000000000000000000", json={"progress": 50}), 404)


def test_fail_next_answers_the_next_requests_with_that_status(sim):
    sim.fail_next(2, status=502)
    assert_error(call(sim, "GET", "/events"), 502)
    assert_error(call(sim, "GET", "/events"), 502)
    assert call(sim, "GET", "/events").status_code == 200


def test_rate_limit_next_sends_retry_after(sim):
    sim.rate_limit_next(1, retry_after=3)
    response = call(sim, "GET", "/events")
    assert_error(response, 429)
    assert response.headers["Retry-After"] == "3"
    assert call(sim, "GET", "/events").status_code == 200


def test_delay_slows_every_response(sim):
    sim.delay = 0.3
    started = time.monotonic()
    assert call(sim, "GET", "/events").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_requests_are_recorded(sim):
    call(sim, "GET", "/events?limit=2")
    as_bot(sim, "POST", "/events", json=build_body())
    assert sim.requests == [("GET", "/api/events?limit=2"), ("POST", "/api/events")]


@pytest.mark.parametrize(
    ("kind", "broken"),
    [
        ("bad_timestamp", lambda item: item["timestamp"] == "not-a-date"),
        ("missing_id", lambda item: "id" not in item),
        ("bad_progress", lambda item: item["progress"] == "lots"),
        ("not_an_object", lambda item: not isinstance(item, dict)),
    ],
)
def test_malformed_items_appear_among_the_newest_results(sim, kind, broken):
    sim.generate(30)
    sim.add_malformed_event(kind=kind)
    results = call(sim, "GET", "/events?limit=5&project=luotsi").json()["results"]
    assert broken(results[0])


def test_step_makes_started_builds_climb_and_finish(sim):
    build_id = sim.start_build(project="luotsi", repository="chef", name="Development")
    assert call(sim, "GET", f"/events/{build_id}").json()["progress"] == 0
    seen = []
    for tick in range(1000):
        sim.clock = lambda tick=tick: NOW + timedelta(seconds=2 * tick)
        sim.step()
        seen.append(next(event["progress"] for event in sim.events if event["id"] == build_id))
        if seen[-1] == 100:
            break
    assert seen == sorted(seen) and len(set(seen)) > 3
    build = call(sim, "GET", f"/events/{build_id}").json()
    assert build["progress"] == 100 and build["operation"] in ("completed", "failed")
    assert build["updated_at"] > build["timestamp"]


def test_set_progress_and_update_event_edit_behind_the_clients_back(sim):
    build_id = sim.start_build(project="atlas")
    sim.set_progress(build_id, 55, operation="failed")
    assert (call(sim, "GET", f"/events/{build_id}").json()["progress"], sim.events[0]["operation"]) == (55, "failed")
    sim.update_event(build_id, name="Release", timestamp=NOW - timedelta(days=1))
    sim.add_event()
    assert sim.events[1]["objects"]["name"] == "Release"


def test_the_same_seed_and_clock_give_the_same_activity():
    def run():
        with hth.serve(port=0, seed=7) as simulator:
            simulator.clock = lambda: NOW
            simulator.generate(50)
            for _ in range(40):
                simulator.step()
            return simulator.events

    assert run() == run()


def test_start_activity_adds_events_in_the_background(sim):
    sim.start_activity(interval=0.01)
    deadline = time.monotonic() + 3
    while not sim.events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.events


def test_generate_ten_thousand_finished_events_and_page_deep(sim):
    sim.generate(10_000)
    events = sim.events
    assert len(events) == 10_000
    assert all(event["progress"] == 100 and event["timestamp"] < NOW_ISO for event in events)
    assert {event["target"] for event in events} >= {"push", "build", "code_review", "task_state", "project"}
    body = call(sim, "GET", "/events?offset=9990&limit=100").json()
    assert body["metadata"] == {"more_results": False, "next_offset": 10_000, "count": 10}
