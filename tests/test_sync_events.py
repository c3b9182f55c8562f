"""The Helix TeamHub mirror, end to end over real HTTP against the simulator."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from dashboard.models import Event, EventStatus, SyncState, Transition, TransitionKind
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import HthClient

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(hth_sim):
    return HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)


@pytest.fixture
def clock(hth_sim):
    """One clock for the simulator and the sync, moved by hand."""

    class Clock:
        now = T0

        def advance(self, **delta):
            self.now += timedelta(**delta)
            return self.now

    clock = Clock()
    hth_sim.clock = lambda: clock.now
    return clock


def list_offsets(sim):
    return [path for method, path in sim.requests if method == "GET" and path.startswith("/api/events?")]


def kinds(event_id):
    return list(Transition.objects.filter(event__upstream_id=event_id).values_list("kind", flat=True))


def test_it_mirrors_every_event_across_many_pages(hth_sim, client, clock):
    hth_sim.generate(350)
    report = sync.sync_events(client=client, now=clock.now)
    assert report.created == len(hth_sim.events) == Event.objects.count()
    assert len(list_offsets(hth_sim)) >= 4
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.events}


def test_the_first_backfill_stops_at_its_bound(hth_sim, client, clock, settings):
    settings.HTH_BACKFILL_EVENTS = 120
    hth_sim.generate(300)
    sync.sync_events(client=client, now=clock.now)
    assert Event.objects.count() == 120
    newest = sorted(hth_sim.events, key=lambda e: (e["timestamp"], e["id"]), reverse=True)[:120]
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in newest}


def test_an_incremental_sync_picks_up_new_events_without_duplicates(hth_sim, client, clock):
    hth_sim.generate(250)
    sync.sync_events(client=client, now=clock.now)
    before = len(list_offsets(hth_sim))
    clock.advance(minutes=1)
    new = [hth_sim.add_event(target="push", operation="created", project=hth_sim.projects[0])["id"] for _ in range(5)]
    report = sync.sync_events(client=client, now=clock.now)
    assert (report.created, report.updated) == (5, 0)
    assert Event.objects.count() == len(hth_sim.events)
    assert len(list_offsets(hth_sim)) - before == 1, "an incremental pass reads one page, not the whole history"
    assert all(kinds(event_id) == [TransitionKind.EVENT_NEW] for event_id in new)
    assert sync.sync_events(client=client, now=clock.now).created == 0


def test_it_stores_every_documented_attribute(hth_sim, client, clock):
    item = hth_sim.add_event(
        target="push",
        operation="created",
        project="luotsi",
        repository="devrel",
        ref="master",
        commit_count=2815,
        last_commit="393fe81b0f6c39f3006f748f5b16cdddcbe01c80",
        files={"added": ["app/model/user.rb"], "modified": ["readme.md"], "deleted": ["user.rb"]},
        bookmarks=["stable"],
        code_reviews=[{"id": "7"}],
        resources=["http://jenkins.example/project"],
    )
    sync.sync_events(client=client, now=clock.now)
    event = Event.objects.get(upstream_id=item["id"])
    assert (event.project, event.repository, event.ref) == ("luotsi", "devrel", "master")
    assert event.commit_count == 2815 and event.last_commit.startswith("393fe81b")
    assert event.files["deleted"] == ["user.rb"] and event.bookmarks == ["stable"]
    assert event.code_reviews == [{"id": "7"}] and event.resources == ["http://jenkins.example/project"]
    assert event.subject_id and event.subject and event.subject["id"] == event.subject_id, "expand=subject is asked for"
    assert event.raw["id"] == item["id"] and "api_timestamp" not in event.raw


def test_an_unknown_operation_and_target_are_stored(hth_sim, client, clock):
    item = hth_sim.add_event(target="quantum_merge", operation="teleported", project="luotsi")
    sync.sync_events(client=client, now=clock.now)
    assert Event.objects.filter(upstream_id=item["id"], target="quantum_merge", operation="teleported").exists()


def test_a_progress_bump_on_an_old_event_is_seen_by_the_targeted_refresh(hth_sim, client, clock, settings):
    settings.HTH_CLOCK_SKEW_SECONDS = 1  # so that the second list pass stops above the build
    build = hth_sim.start_build(project="luotsi", repository="chef", name="Development")
    clock.advance(seconds=5)
    for _ in range(150):  # bury the build below the first page
        hth_sim.add_event(target="push", operation="created", project="chef")
    sync.sync_events(client=client, now=clock.now)
    assert Event.objects.get(upstream_id=build).status == EventStatus.LIVE

    clock.advance(seconds=10)
    hth_sim.set_progress(build, 60)
    sync.sync_events(client=client, now=clock.now)
    assert Event.objects.get(upstream_id=build).progress == 0, "the list pass stops at its floor, above the build"

    report = sync.refresh_unfinished_events(client=client, now=clock.now)
    event = Event.objects.get(upstream_id=build)
    assert report.updated == 1 and event.progress == 60 and event.status == EventStatus.LIVE
    assert kinds(build) == [TransitionKind.BECAME_LIVE, TransitionKind.PROGRESSED]


def test_live_builds_complete_fail_and_go_stale_on_a_controlled_clock(hth_sim, client, clock, settings):
    settings.LIVE_STALE_AFTER_SECONDS = 60
    passing = hth_sim.start_build(project="luotsi", repository="chef", name="Development")
    failing = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
    silent = hth_sim.start_build(project="luotsi", repository="chef", name="Nightly")
    sync.sync_events(client=client, now=clock.now)
    assert set(Event.objects.values_list("status", flat=True)) == {EventStatus.LIVE}

    clock.advance(seconds=30)
    hth_sim.set_progress(passing, 70)
    hth_sim.set_progress(failing, 40)
    sync.refresh_unfinished_events(client=client, now=clock.now)
    sync.sweep_live_events(now=clock.now)
    assert Event.objects.filter(status=EventStatus.LIVE).count() == 3, "30 s without progress is not stale yet"

    clock.advance(seconds=45)  # the silent build has not moved for 75 s
    hth_sim.set_progress(passing, 100)
    hth_sim.set_progress(failing, 55, operation="failed")
    sync.refresh_unfinished_events(client=client, now=clock.now)
    sync.sweep_live_events(now=clock.now)

    assert Event.objects.get(upstream_id=passing).status == EventStatus.COMPLETED
    assert Event.objects.get(upstream_id=failing).status == EventStatus.FAILED
    assert Event.objects.get(upstream_id=silent).status == EventStatus.STALE
    assert kinds(passing) == ["became_live", "progressed", "completed"]
    assert kinds(failing) == ["became_live", "progressed", "failed"]
    assert kinds(silent) == ["became_live", "went_stale"]

    clock.advance(seconds=5)
    hth_sim.set_progress(silent, 30)
    sync.refresh_unfinished_events(client=client, now=clock.now)
    assert Event.objects.get(upstream_id=silent).status == EventStatus.LIVE
    assert kinds(silent)[-1] == "became_live", "a stalled build that moves again is live again"


def test_an_old_unfinished_event_is_never_live(hth_sim, client, clock, settings):
    settings.LIVE_MAX_AGE_SECONDS = 3600
    old = hth_sim.add_event(
        target="build", operation="completed", project="luotsi", progress=30, timestamp=clock.now - timedelta(hours=2)
    )
    sync.sync_events(client=client, now=clock.now)
    assert Event.objects.get(upstream_id=old["id"]).status == EventStatus.STALE


def test_429_and_5xx_are_retried_and_the_sync_completes(hth_sim, client, clock):
    hth_sim.generate(150)
    hth_sim.rate_limit_next(1, retry_after=1)
    hth_sim.fail_next(2, status=503)
    report = sync.sync_events(client=client, now=clock.now)
    assert report.finished and Event.objects.count() == len(hth_sim.events)
    assert len(list_offsets(hth_sim)) >= 2 + 3, "two pages plus three retried answers"


def test_a_malformed_item_is_skipped_while_the_rest_land(hth_sim, client, clock):
    hth_sim.generate(20)
    for kind in ("bad_timestamp", "missing_id", "bad_progress", "not_an_object"):
        hth_sim.add_malformed_event(kind=kind)
    report = sync.sync_events(client=client, now=clock.now)
    assert report.skipped == 4
    assert Event.objects.count() == 20


def test_sync_once_reports_and_records_success(hth_sim, clock, capsys):
    hth_sim.generate(30)
    call_command("sync", "--once")
    assert "hth: 30 seen, 30 new" in capsys.readouterr().out
    state = SyncState.objects.get(source="hth")
    assert state.last_success_at is not None and state.last_error == ""
    assert state.cursor["streams"]["*"]["run"] is None


def test_hth_projects_syncs_only_those_projects(hth_sim, clock, settings):
    settings.HTH_PROJECTS = hth_sim.projects[:2]
    hth_sim.generate(200)
    call_command("sync", "--once")
    expected = {e["id"] for e in hth_sim.events if e["objects"]["project"]["id"] in hth_sim.projects[:2]}
    assert set(Event.objects.values_list("upstream_id", flat=True)) == expected


def stored_ids():
    return set(Event.objects.values_list("upstream_id", flat=True))


def test_an_event_dated_ahead_does_not_hide_newer_ones(hth_sim, client, clock):
    hth_sim.generate(50)
    sync.sync_events(client=client, now=clock.now)
    ahead = hth_sim.add_event(timestamp=clock.now + timedelta(days=1))  # a skewed clock upstream
    sync.sync_events(client=client, now=clock.advance(seconds=30))
    newer = hth_sim.add_event(timestamp=clock.advance(seconds=30))
    sync.sync_events(client=client, now=clock.advance(seconds=30))
    assert {ahead["id"], newer["id"]} <= stored_ids()


def test_a_backdated_event_is_found_by_the_next_rescan(hth_sim, client, clock, settings):
    settings.HTH_RESCAN_SECONDS = 600
    hth_sim.generate(300)
    sync.sync_events(client=client, now=clock.now)
    backdated = hth_sim.add_event(timestamp=clock.advance(seconds=30) - timedelta(hours=3))
    sync.sync_events(client=client, now=clock.now)
    assert backdated["id"] not in stored_ids(), "an incremental pass reads down to its floor only"
    sync.sync_events(client=client, now=clock.advance(seconds=600))
    assert backdated["id"] in stored_ids()
    assert kinds(backdated["id"]) == [TransitionKind.EVENT_NEW]


@pytest.mark.parametrize("above", [20, 5], ids=["above-the-anchor", "the-anchor-itself"])
def test_events_deleted_during_a_backfill_do_not_make_paging_skip_survivors(hth_sim, client, clock, above):
    hth_sim.generate(600)
    deleted = []

    def delete_above(offset):
        """Before each page but the first, delete five events the sync has already read."""
        if offset:
            doomed = [event["id"] for event in hth_sim.events[offset - above : offset - above + 5]]
            for event_id in doomed:
                hth_sim.delete_event(event_id)
            deleted.extend(doomed)

    hth_sim.before_list = delete_above
    assert sync.sync_events(client=client, now=clock.now).finished
    hth_sim.before_list = None
    survivors = {e["id"] for e in hth_sim.events}
    assert len(deleted) >= 25 and survivors <= stored_ids(), f"{len(survivors - stored_ids())} survivors skipped"


def test_a_malformed_item_corrected_later_is_read_again(hth_sim, client, clock):
    hth_sim.generate(20)
    bad = hth_sim.add_malformed_event(kind="bad_timestamp")
    assert sync.sync_events(client=client, now=clock.advance(seconds=5)).skipped == 1
    sync.sync_events(client=client, now=clock.advance(seconds=30))
    assert bad["id"] not in stored_ids()

    # Corrected upstream, and dated an hour back: below the floor of every later list pass.
    hth_sim.repair_event(bad["id"], timestamp=clock.advance(seconds=30) - timedelta(hours=1))
    sync.sync_events(client=client, now=clock.now)
    assert bad["id"] in stored_ids()
    assert SyncState.objects.get(source="hth").cursor["retry"] == {}


@pytest.mark.skipif("sqlite" in __import__("os").environ.get("DATABASE_URL", "sqlite"), reason="PostgreSQL refuses NUL")
def test_a_nul_that_postgresql_would_refuse_is_dropped_and_the_row_stored(hth_sim, client, clock):
    """PostgreSQL refuses NUL in text: it used to make the row a retry-list entry until upstream changed it.
    Now NUL is dropped before storing (dashboard/upstreams/storable.py), and the event is shown at once."""
    hth_sim.generate(30)
    odd = hth_sim.add_event(target="task_title", operation="updated", title="bad \x00 title")
    report = sync.sync_events(client=client, now=clock.advance(seconds=5))
    assert report.finished and report.skipped == 0 and len(stored_ids()) == 31
    assert Event.objects.get(upstream_id=odd["id"]).title == "bad  title"


def test_no_pass_reads_below_the_retention_horizon(hth_sim, client, clock, settings):
    settings.EVENTS_KEPT_DAYS = 1
    settings.HTH_RESCAN_SECONDS = 60
    hth_sim.generate(300)  # about two days of history
    sync.sync_events(client=client, now=clock.now)
    sync.sync_events(client=client, now=clock.advance(seconds=120))  # a rescan
    kept = {e["id"] for e in hth_sim.events if datetime.fromisoformat(e["timestamp"]) >= clock.now - timedelta(days=1)}
    assert kept and stored_ids() == kept


def test_an_event_id_with_a_slash_is_mirrored_and_refreshed(hth_sim, client, clock):
    """Upstream ids are stored whatever they hold (only HTML ids, groups and URLs need a plain token)."""
    odd = hth_sim.add_event(id="builds/42 #7", target="build", operation="completed", progress=10)
    sync.sync_events(client=client, now=clock.now)
    assert Event.objects.get(upstream_id="builds/42 #7").progress == 10
    hth_sim.set_progress(odd["id"], 60)
    sync.refresh_unfinished_events(client=client, now=clock.advance(seconds=1))
    assert Event.objects.get(upstream_id="builds/42 #7").progress == 60


def test_an_event_larger_than_an_answer_may_be_costs_only_itself(hth_sim, client, clock, settings):
    settings.UPSTREAM_MAX_ANSWER_BYTES = 256 * 1024
    hth_sim.generate(30)
    huge = hth_sim.add_event(target="task", operation="created", title="t", description="x" * 400_000)
    clock.advance(seconds=1)
    newest = hth_sim.add_event(target="push", operation="created")

    report = sync.sync_events(client=client, now=clock.now)

    assert report.finished and report.skipped == 1
    stored = set(Event.objects.values_list("upstream_id", flat=True))
    assert newest["id"] in stored and huge["id"] not in stored
    assert len(stored) == len(hth_sim.events) - 1
