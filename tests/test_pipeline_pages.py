"""What pipelines look like on the pages: one definition of failing, running and stalled behind every count."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.live import pipelines, screens
from dashboard.models import Event, EventStatus, Incident

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def run(upstream_id, status, *, minutes_ago, took=10, repository="chef", name="Release", progress=None, who="assimov", **fields):
    started = NOW - timedelta(minutes=minutes_ago)
    finished = status in (EventStatus.COMPLETED, EventStatus.FAILED)
    event = Event.objects.create(
        upstream_id=upstream_id,
        timestamp=started,
        operation="failed" if status == EventStatus.FAILED else "completed",
        target="build",
        project="luotsi",
        repository=repository,
        name=name,
        subject_id=who,
        progress=100 if finished else progress,
        updated_at=started + timedelta(minutes=took) if finished else started,
        raw={},
        first_seen_at=started,
        synced_at=NOW,
        progress_changed_at=started,
        status=status,
        **fields,
    )
    pipelines.refresh(pipelines.keys_of([event]))  # as the sync does, in the transaction that stores the run
    return event


@pytest.fixture
def person(client):
    user = get_user_model().objects.create_user("viewer", password="a long pass phrase")
    client.force_login(user)
    return user


def summary(html: str) -> str:
    return html.split('id="summary"')[1].split("</ul>")[0]


def test_a_failing_pipeline_re_running_stays_failing_in_every_count_and_list(client, person):
    run("r1", EventStatus.COMPLETED, minutes_ago=120)
    run("r2", EventStatus.FAILED, minutes_ago=60)
    run("r3", EventStatus.LIVE, minutes_ago=2, progress=22)
    html = client.get("/").content.decode()
    assert re.search(r'href="/pipelines/\?state=failing"><strong>✗ 1</strong> failing pipeline</a>, 1 re-running', summary(html))
    assert "<strong>▶ 1</strong> running</a>" in summary(html)
    listed = client.get("/pipelines/?state=failing").content.decode()
    assert 'data-pipeline="luotsi/chef/Release" data-pipeline-state="failing" data-rerunning' in listed
    assert 're-running <span class="percent">22%</span>' in listed
    assert 'data-pipeline="luotsi/chef/Release"' in client.get("/pipelines/?state=running").content.decode()
    wall = client.get("/wall/").content.decode()
    assert 'data-level="red"' in wall and "✗ 1 FAILING" in wall and "re-running" in wall


def test_a_superseded_run_leaves_the_running_counts_and_the_running_now_list(client, person):
    run("old", EventStatus.STALE, minutes_ago=90, progress=40)
    run("new", EventStatus.LIVE, minutes_ago=3, progress=10)
    html = client.get("/").content.decode()
    assert "<strong>▶ 1</strong> running</a></li>" in summary(html), "the stalled older run does not count"
    live_list = html.split('id="live-list"')[1].split("</ol>")[0]
    assert 'data-event-id="new"' in live_list and 'data-event-id="old"' not in live_list
    assert "40% · superseded by a newer run" in html.split('id="event-old"')[1].split("</li>")[0], "the feed says so"
    page = client.get("/pipelines/luotsi/chef/Release/").content.decode()
    assert 'data-run-id="old" data-run-result="superseded"' in page


@pytest.mark.parametrize(
    "severity,failing,expected",
    [
        ("Minor", False, "notice"),
        ("Major", False, "amber"),
        ("Critical", False, "red"),
        (None, True, "red"),
        (None, False, "clear"),
    ],
)
def test_the_strips_level_counts_builds_and_incidents_together(client, person, severity, failing, expected):
    run("p", EventStatus.FAILED if failing else EventStatus.COMPLETED, minutes_ago=30)
    if severity:
        Incident.objects.create(upstream_id="i1", title="Slow", severity=severity, state="Created", synced_at=NOW)
    wall = client.get("/wall/").content.decode()
    assert f'id="wall-level" class="wall-level all-clear-label" data-level="{expected}"' in wall
    assert ('data-level="clear">✓ All clear</span>' in wall) == (expected == "clear"), "never all clear beside an incident"


def test_tiles_keep_their_place_when_a_build_starts_and_move_only_when_it_fails(client, person):
    for repository in ("alpha", "bravo", "charlie"):
        run(f"{repository}-1", EventStatus.COMPLETED, minutes_ago=60, repository=repository)

    def order():
        html = client.get("/wall/").content.decode()
        return re.findall(r'data-pipeline="luotsi/(\w+)/Release"', html)

    assert order() == ["alpha", "bravo", "charlie"]
    run("charlie-2", EventStatus.LIVE, minutes_ago=1, repository="charlie", progress=5)
    assert order() == ["alpha", "bravo", "charlie"], "running and passing share a bucket"
    run("bravo-2", EventStatus.FAILED, minutes_ago=1, repository="bravo")
    assert order() == ["bravo", "alpha", "charlie"]


def test_which_tiles_a_full_wall_keeps_is_ranked_failing_running_then_most_recent(client, person):
    run("old-pass", EventStatus.COMPLETED, minutes_ago=300, repository="aaa")
    run("new-pass", EventStatus.COMPLETED, minutes_ago=20, repository="zzz")
    run("fail", EventStatus.FAILED, minutes_ago=600, repository="mmm")
    run("going", EventStatus.LIVE, minutes_ago=1, repository="nnn", progress=50)
    html = client.get("/wall/").content.decode()
    ranks = dict(re.findall(r'data-event-id="([\w-]+)" data-fit-item data-fit-rank="(\d+)"', html))
    assert ranks == {"fail": "0", "going": "1", "new-pass": "2", "old-pass": "3"}


def test_a_tile_names_its_pipeline_and_carries_its_run_strip(client, person):
    run("a", EventStatus.COMPLETED, minutes_ago=100, took=10, commits=[{"id": "f" * 40}])
    run("b", EventStatus.FAILED, minutes_ago=80, took=4, commits=[{"id": "f" * 40}])
    run("c", EventStatus.COMPLETED, minutes_ago=60, took=20, who="mei")
    html = client.get("/wall/").content.decode()
    tile = html.split('data-pipeline="luotsi/chef/Release"')[1].split("</li>")[0]
    assert '<span class="tile-repo">chef</span> · Release' in tile
    assert re.findall(r'data-run-id="(\w)" data-run-result="(\w+)"', tile) == [("a", "passed"), ("b", "failed"), ("c", "passed")]
    assert "✓ fixed by mei after 40 min red" in tile  # from b's start to c's end
    assert "≈ flaky · median 15 min · p95 20 min · 67% passed in 30 d" in re.sub(r"<[^>]+>", "", tile)
    assert 'href="/pipelines/luotsi/chef/Release/"' in tile


def test_the_pipeline_page_shows_runs_red_periods_and_who_fixed_them(client, person):
    run("a", EventStatus.COMPLETED, minutes_ago=100, resources=["https://ci.example/job/release/41"])
    run("b", EventStatus.FAILED, minutes_ago=80)
    run("c", EventStatus.FAILED, minutes_ago=70)
    run("d", EventStatus.COMPLETED, minutes_ago=40, who="mei")
    run("e", EventStatus.FAILED, minutes_ago=20)
    page = client.get("/pipelines/luotsi/chef/Release/").content.decode()
    assert 'data-pipeline="luotsi/chef/Release" data-pipeline-state="failing"' in page
    periods = page.split('class="red-periods"')[1].split("</ol>")[0]
    assert "not fixed yet" in periods and "(1 failed run)" in periods
    assert "for 50 min (2 failed runs), ✓ fixed by <strong>mei</strong>" in periods
    assert page.count('class="run-row run--') == 5 and "https://ci.example/job/release/41" in page
    assert "Median of these runs, failed ones included, 10 min" in page, "the trend's numbers as text"


def test_the_runs_table_goes_back_fifty_runs_a_page_and_only_the_newest_page_is_live(client, person):
    for number in range(120):  # r000 is the oldest; two runs a second apart share no start
        run(f"r{number:03}", EventStatus.FAILED if number % 10 == 0 else EventStatus.COMPLETED, minutes_ago=1000 - number * 5)
    ids = lambda html: re.findall(r'class="run-row run--\w+" data-run-id="(\w+)"', html)  # noqa: E731
    first = client.get("/pipelines/luotsi/chef/Release/").content.decode()
    assert ids(first) == [f"r{n:03}" for n in range(119, 69, -1)]
    assert 'href="?before=r070" rel="next">Older runs</a>' in first and 'id="socket"' in first
    assert "Duration of the last 100 finished runs" in first
    second = client.get("/pipelines/luotsi/chef/Release/?before=r070").content.decode()
    assert ids(second) == [f"r{n:03}" for n in range(69, 19, -1)]
    assert 'id="socket"' not in second and 'href="/pipelines/luotsi/chef/Release/">the newest runs</a>' in second
    last = client.get("/pipelines/luotsi/chef/Release/?before=r020").content.decode()
    assert ids(last) == [f"r{n:03}" for n in range(19, -1, -1)] and 'rel="next"' not in last
    unknown = client.get("/pipelines/luotsi/chef/Release/?before=nope").content.decode()
    assert ids(unknown) == ids(first), "an id that is not a run of this pipeline starts from the newest"


def test_the_pipeline_page_needs_a_login_and_a_known_pipeline(client):
    run("a", EventStatus.COMPLETED, minutes_ago=10)
    assert client.get("/pipelines/luotsi/chef/Release/").status_code == 302
    assert client.get("/pipelines/").status_code == 302
    client.force_login(get_user_model().objects.create_user("viewer", password="a long pass phrase"))
    assert client.get("/pipelines/luotsi/chef/Nightly/").status_code == 404


def test_a_ref_named_pipeline_has_a_page_too(client, person):
    run("a", EventStatus.COMPLETED, minutes_ago=10, name="", ref="refs/heads/main")
    html = client.get("/wall/").content.decode()
    assert 'href="/pipelines/luotsi/chef/refs/heads/main/"' in html
    assert client.get("/pipelines/luotsi/chef/refs/heads/main/").status_code == 200


def test_a_kiosk_wall_shows_only_its_projects_pipelines(client):
    run("a", EventStatus.FAILED, minutes_ago=10)
    Event.objects.filter(upstream_id="a").update(project="other")
    pipelines.rebuild()
    run("b", EventStatus.COMPLETED, minutes_ago=10)
    screen = screens.screen_named("Luotsi TV", project="luotsi")
    html = client.get(f"/wall/?key={screen.key}").content.decode()
    assert 'data-pipeline="luotsi/chef/Release"' in html and "other/" not in html and 'data-level="clear"' in html


def test_feed_rows_and_running_now_link_to_the_pipeline_page(client, person):
    run("a", EventStatus.LIVE, minutes_ago=1, progress=5)
    html = client.get("/").content.decode()
    feed_row = html.split('id="event-a"')[1].split("</li>")[0]
    live_row = html.split('id="live-a"')[1].split("</li>")[0]
    assert '<a href="/pipelines/luotsi/chef/Release/" class="name">Release</a>' in feed_row
    assert '<a href="/pipelines/luotsi/chef/Release/">Release</a>' in live_row


def test_runs_started_in_the_same_second_are_ordered_by_their_upstream_ids(client, person):
    run("5f00000000000000000000b2", EventStatus.LIVE, minutes_ago=5, progress=10)  # stored first, started second
    run("5f00000000000000000000b1", EventStatus.FAILED, minutes_ago=5)
    Event.objects.update(timestamp=NOW - timedelta(minutes=5))
    pipelines.rebuild()
    html = client.get("/wall/").content.decode()
    assert 'data-pipeline-state="failing" data-rerunning data-event-id="5f00000000000000000000b2"' in html


def test_a_kept_tile_is_rendered_again_as_soon_as_its_pipeline_changes(client, person):
    started = run("a", EventStatus.LIVE, minutes_ago=3, progress=20)
    tile = lambda: client.get("/wall/").content.decode().split('data-pipeline="luotsi/chef/Release"')[1].split("</li>")[0]  # noqa: E731
    assert 'running <span class="percent">20%</span>' in tile()
    assert 'running <span class="percent">20%</span>' in tile()  # kept: the same minute and revision
    Event.objects.filter(pk=started.pk).update(progress=65)
    pipelines.refresh_runs([Event.objects.get(pk=started.pk)])  # as the sync does when the progress moves
    assert 'running <span class="percent">65%</span>' in tile()


def test_the_tile_cache_is_bounded(monkeypatch):
    from dashboard.web import tile_cache

    monkeypatch.setattr(tile_cache, "MOST_TILES", 3)
    tile_cache.clear()
    for number in range(5):
        tile_cache.tile(("t", number), lambda number=number: f"<li>{number}</li>")
    assert [tile_cache.has(("t", number)) for number in range(5)] == [False, False, True, True, True]
    assert tile_cache.tile(("t", 4), lambda: "never rendered") == "<li>4</li>"
