"""The Helix TeamHub client: every documented form parses, and every failure says what it is."""

from datetime import UTC, datetime

import pytest

from dashboard.upstreams.hth.client import HthClient, MalformedEvent, parse_event
from dashboard.upstreams.http import CredentialsRejected, UpstreamError
from tests.processes import free_port

# The first item of the vendor page's first GET /events example, as documented.
DOCUMENTED_PUSH = {
    "api_status": 200,
    "api_timestamp": "2012-10-25T09:47:30Z",
    "id": "50883cfe1229c02952000036",
    "created_at": "2012-10-24T19:09:50Z",
    "updated_at": "2012-10-24T19:09:50Z",
    "subject": {"id": "assimov"},
    "operation": "created",
    "target": "push",
    "progress": 100,
    "objects": {
        "project": {"id": "luotsi"},
        "repository": {"id": "devrel"},
        "commits": [{"id": "a6e0210cdd2f473104d75c35a7d1052e12b11b46"}, {"id": "393fe81b0f6c39f3006f748f5b16cdddcbe01c80"}],
        "last_commit": "393fe81b0f6c39f3006f748f5b16cdddcbe01c80",
        "commit_count": 2,
        "ref": "master",
    },
    "timestamp": "2012-10-24T19:09:50Z",
}


def test_the_documented_example_parses_with_attributes_inside_objects():
    event = parse_event(DOCUMENTED_PUSH)
    assert event.id == "50883cfe1229c02952000036"
    assert (event.subject_id, event.subject) == ("assimov", None)
    assert (event.project, event.repository, event.ref) == ("luotsi", "devrel", "master")
    assert event.commits[1] == {"id": "393fe81b0f6c39f3006f748f5b16cdddcbe01c80"}
    assert (event.commit_count, event.progress) == (2, 100)
    assert event.timestamp == datetime(2012, 10, 24, 19, 9, 50, tzinfo=UTC)
    assert "api_status" not in event.raw and event.raw["objects"] == DOCUMENTED_PUSH["objects"]


def test_the_attribute_list_form_parses_the_same_way():
    """The page's attribute list puts target attributes at the top level, commits as plain ids."""
    item = {
        "id": "e1",
        "subject": "jlaiho",
        "timestamp": "2012-10-24T15:57:23Z",
        "operation": "created",
        "target": "push",
        "project": "luotsi",
        "ref": "develop",
        "commits": ["b63c10447d5c0f1b7f013af7ffe56742b449d100"],
        "commit_count": 2815,
        "files": {"added": ["a.rb"], "modified": [], "deleted": ["b.rb"]},
        "bookmarks": ["stable"],
    }
    event = parse_event(item)
    assert (event.subject_id, event.project, event.ref, event.commit_count) == ("jlaiho", "luotsi", "develop", 2815)
    assert event.commits == ["b63c10447d5c0f1b7f013af7ffe56742b449d100"]
    assert event.files["deleted"] == ["b.rb"] and event.bookmarks == ["stable"]


def test_an_expanded_subject_is_kept_and_absent_progress_means_complete():
    item = {**DOCUMENTED_PUSH, "subject": {"id": "assimov", "email": "a@example.com"}}
    del item["progress"]
    event = parse_event(item)
    assert event.subject == {"id": "assimov", "email": "a@example.com"} and event.progress == 100


def test_title_and_state_are_not_swapped():
    """The page swaps their descriptions; the names are what counts."""
    event = parse_event({**DOCUMENTED_PUSH, "target": "task_state", "objects": {"state": "resolved", "title": "Fix it"}})
    assert (event.state, event.title) == ("resolved", "Fix it")


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"id": None}, "invalid id"),
        ({"timestamp": "yesterday"}, "not an ISO-8601 date"),
        ({"timestamp": None}, "missing timestamp"),
        ({"progress": "lots"}, "not a percentage"),
        ({"progress": 140}, "not a percentage"),
        ({"objects": []}, "objects is not an object"),
        ({"objects": {"commits": "abc"}}, "commits is not a list"),
        ({"objects": {"files": ["a.rb"]}}, "files is not an object"),
        ({"objects": {"commit_count": -1}}, "not a count"),
        ({"target": "x" * 201}, "longer than"),
    ],
)
def test_a_malformed_item_says_what_is_wrong(change, reason):
    with pytest.raises(MalformedEvent, match=reason):
        parse_event({**DOCUMENTED_PUSH, **change})


def test_a_non_object_item_is_malformed():
    with pytest.raises(MalformedEvent, match="expected an object"):
        parse_event("oops")


@pytest.fixture
def bot(hth_sim):
    return HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.bot_account_key)


def test_a_bot_starts_a_build_and_moves_its_progress(bot, hth_sim):
    build = bot.create_build_event(
        project="luotsi", repository="chef", name="Development", commits=["d847a7a2"], resources=["http://ci/2372"], progress=0
    )
    assert (build.target, build.progress, build.project, build.repository, build.name) == (
        "build",
        0,
        "luotsi",
        "chef",
        "Development",
    )
    assert build.resources == ["http://ci/2372"] and build.commits == [{"id": "d847a7a2"}]
    moved = bot.update_build_event(build.id, progress=40)
    assert moved.progress == 40
    assert bot.get_event(build.id).progress == 40
    done = bot.update_build_event(build.id, progress=100, operation="completed")
    assert done.progress == 100


def test_updating_a_complete_build_is_a_permanent_error_with_upstreams_reason(bot):
    build = bot.create_build_event(project="luotsi", repository="chef")
    with pytest.raises(UpstreamError) as failure:
        bot.update_build_event(build.id, progress=50)
    assert failure.value.permanent and failure.value.status == 422
    assert "incomplete build" in str(failure.value)


def test_an_id_is_one_path_segment_whatever_it_holds(bot, hth_sim):
    odd = hth_sim.add_event(id='a b"?expand=x#c<>%2F', target="build", operation="completed")
    hth_sim.set_progress(odd["id"], 20)
    assert bot.get_event(odd["id"]).progress == 20
    assert bot.update_build_event(odd["id"], progress=30).progress == 30


def test_a_missing_event_is_none(bot):
    assert bot.get_event("000000000000000000000000") is None


def test_rejected_keys_raise_credentials_rejected(hth_sim):
    client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key="nope")
    with pytest.raises(CredentialsRejected, match=r"^Helix TeamHub credentials rejected \(401 .*HTH_ACCOUNT_KEY$"):
        client.list_events()


def test_a_non_bot_may_not_create_build_events(hth_sim):
    client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)
    with pytest.raises(CredentialsRejected, match="403"):
        client.create_build_event(project="luotsi", repository="chef")


def test_5xx_that_outlasts_the_retries_is_a_transient_error(hth_sim, settings):
    settings.UPSTREAM_RETRIES = 2
    hth_sim.fail_next(5, status=502)
    client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)
    with pytest.raises(UpstreamError) as failure:
        client.list_events()
    assert not failure.value.permanent and failure.value.status == 502


def test_a_slow_upstream_times_out_as_a_transient_error(hth_sim, settings):
    settings.UPSTREAM_TIMEOUT = (1, 0.2)
    settings.UPSTREAM_RETRIES = 1
    hth_sim.delay = 1.0
    client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)
    with pytest.raises(UpstreamError, match="timed out|could not connect") as failure:
        client.list_events()
    assert not failure.value.permanent


def test_a_create_is_never_retried(hth_sim, bot):
    """No idempotency key upstream: a retried POST could start the same build twice."""
    hth_sim.fail_next(1, status=503)
    with pytest.raises(UpstreamError):
        bot.create_build_event(project="luotsi", repository="chef")
    assert [m for m, _ in hth_sim.requests].count("POST") == 1


def test_a_password_in_the_api_url_never_reaches_an_error():
    client = HthClient(base_url=f"http://ci:s3cret@127.0.0.1:{free_port()}/api", company_key="c", account_key="a")
    with pytest.raises(UpstreamError) as caught:
        client.list_events()
    assert "s3cret" not in str(caught.value) and "http://ci:***@127.0.0.1:" in str(caught.value)


@pytest.mark.parametrize(
    "event_id, segment", [(".", "%2E"), ("..", "%2E%2E"), ("a/..", "a%2F.."), ("?x", "%3Fx"), ("v1.2", "v1.2")]
)
def test_an_event_id_is_one_path_segment_even_when_it_is_dots(hth_sim, event_id, segment):
    hth = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)
    build = hth_sim.start_build(project="luotsi", repository="chef")
    hth_sim.set_progress(build, 40)
    hth_sim.add_event(target="build", id=event_id, progress=70)
    event = hth.get_event(event_id)
    assert (event.id, event.progress) == (event_id, 70)
    assert hth_sim.requests[-1][1].startswith(f"/api/events/{segment}?")
