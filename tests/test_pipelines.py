"""Pipelines: derived by the sync in the transaction that writes their runs, and equal to a rebuild."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from dashboard.live import pipelines
from dashboard.models import Event, EventStatus, Pipeline, PipelineState
from dashboard.poller import retention
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import HthClient

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = ("luotsi", "chef", "Release")


@pytest.fixture
def world(hth_sim):
    """The simulator and the sync on one clock, moved by hand."""

    class World:
        now = T0
        client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)

        def advance(self, **delta):
            self.now += timedelta(**delta)

        def sync(self):
            sync.sync_events(client=self.client, now=self.now)
            sync.refresh_unfinished_events(client=self.client, now=self.now)

        def run(self, result, *, minutes=10, commit=None, who=None, repository="chef", name="Release"):
            """One finished run: started now, ended `minutes` later."""
            fields = {"commits": [{"id": commit}]} if commit else {}
            if who:
                fields["subject"] = who
            event = hth_sim.add_event(
                target="build",
                operation="failed" if result == "failed" else "completed",
                project="luotsi",
                repository=repository,
                name=name,
                progress=100,
                timestamp=self.now,
                updated_at=self.now + timedelta(minutes=minutes),
                **fields,
            )
            self.advance(minutes=minutes + 1)
            return event["id"]

        def start(self, *, repository="chef", name="Release"):
            return hth_sim.start_build(project="luotsi", repository=repository, name=name)

    world = World()
    hth_sim.clock = lambda: world.now
    return world


def stored() -> dict:
    return {
        (row.project, row.repository, row.name): model_to_dict(row, exclude=["id", "revision"]) for row in Pipeline.objects.all()
    }


def release() -> Pipeline:
    return Pipeline.objects.get(project="luotsi", repository="chef", name="Release")


def test_a_failing_pipeline_stays_failing_while_it_runs_again(world, hth_sim):
    world.run("passed")
    world.run("failed")
    world.sync()
    assert release().state == PipelineState.FAILING
    rerun = world.start()
    hth_sim.set_progress(rerun, 22)
    world.sync()
    pipeline = release()
    assert pipeline.state == PipelineState.FAILING
    assert pipeline.latest_run.upstream_id == rerun
    assert pipeline.recent_runs[-1] | {"at": None} == {
        "id": rerun,
        "result": "running",
        "at": None,
        "seconds": None,
        "progress": 22,
    }
    world.advance(minutes=5)
    hth_sim.set_progress(rerun, 100)
    world.sync()
    assert release().state == PipelineState.PASSING


def test_a_pass_after_a_red_period_says_who_fixed_it_after_how_long(world, hth_sim):
    world.run("passed")
    red_from = world.now
    world.run("failed", minutes=10)
    world.run("failed", minutes=10)
    fixed = world.run("passed", minutes=13, who="assimov")
    world.sync()
    pipeline = release()
    fix = Event.objects.get(upstream_id=fixed)
    assert (pipeline.state, pipeline.streak, pipeline.fixed_at) == (PipelineState.PASSING, 1, fix.updated_at)
    assert pipeline.fixed_by == "Anna Assimov"  # as the feed names people
    assert pipeline.red_seconds == (fix.updated_at - red_from).total_seconds() == 35 * 60


def test_the_streak_counts_runs_of_one_result_and_red_since_is_the_first_failure(world):
    world.run("passed")
    first_failure = world.now
    for _ in range(3):
        world.run("failed")
    world.sync()
    pipeline = release()
    assert (pipeline.state, pipeline.streak, pipeline.streak_since) == (PipelineState.FAILING, 3, first_failure)
    assert (pipeline.fixed_by, pipeline.fixed_at) == ("", None)


def test_an_older_unfinished_run_is_superseded_by_a_newer_one(world, hth_sim):
    world.run("passed")
    old = world.start()
    hth_sim.set_progress(old, 40)
    world.sync()
    world.advance(minutes=5)
    new = world.start()
    hth_sim.set_progress(new, 10)
    world.sync()
    pipeline = release()
    assert pipeline.state == PipelineState.RUNNING
    assert [(bar["id"], bar["result"]) for bar in pipeline.recent_runs[-2:]] == [(old, "superseded"), (new, "running")]


def test_a_run_that_stops_moving_makes_the_pipeline_stalled(world, hth_sim, settings):
    world.run("passed")
    run = world.start()
    hth_sim.set_progress(run, 30)
    world.sync()
    assert release().state == PipelineState.RUNNING
    world.advance(seconds=settings.LIVE_STALE_AFTER_SECONDS + 1)
    sync.sweep_live_events(now=world.now)
    assert release().state == PipelineState.STALLED
    assert release().recent_runs[-1]["result"] == "stalled"


def test_durations_success_rate_and_a_flaky_commit(world):
    for minutes in (10, 20, 30, 40):
        world.run("passed", minutes=minutes, commit="a" * 40)
    world.run("failed", minutes=5, commit="a" * 40)
    world.run("failed", minutes=5, commit="b" * 40)
    world.sync()
    pipeline = release()
    assert (pipeline.median_seconds, pipeline.p95_seconds) == (25 * 60, 40 * 60)  # passed runs only
    assert (pipeline.runs_30d, pipeline.passed_30d) == (6, 4)
    assert pipeline.flaky_commits == ["a" * 40]


def test_runs_older_than_the_window_leave_the_rate_and_the_flaky_mark(world):
    world.run("passed", commit="c" * 40)
    world.run("failed", commit="c" * 40)
    world.advance(days=31)
    world.run("passed", commit="d" * 40)
    world.sync()
    pipeline = release()
    assert (pipeline.runs_30d, pipeline.passed_30d, pipeline.flaky_commits) == (1, 1, [])


def test_the_strip_holds_the_newest_thirty_runs_oldest_first(world):
    ids = [world.run("passed" if n % 3 else "failed", minutes=1) for n in range(35)]
    world.sync()
    assert [bar["id"] for bar in release().recent_runs] == ids[-30:]


def test_same_named_builds_of_two_repositories_are_two_pipelines(world):
    world.run("failed", repository="chef")
    world.run("passed", repository="devrel")
    world.sync()
    assert {key: row["state"] for key, row in stored().items()} == {
        ("luotsi", "chef", "Release"): "failing",
        ("luotsi", "devrel", "Release"): "passing",
    }


def test_the_incremental_result_equals_a_rebuild_through_a_busy_simulated_hour(world, hth_sim):
    hth_sim.generate(300)
    world.sync()
    for tick in range(120):
        hth_sim.step()
        if tick % 7 == 0:
            world.run("failed" if tick % 2 else "passed", repository="devrel")
        world.advance(seconds=30)
        if tick % 5 == 0:
            world.sync()
        if tick % 17 == 0:
            sync.sweep_live_events(now=world.now)
    world.sync()
    assert Pipeline.objects.count() >= 5
    assert pipelines.differences() == []
    incremental = stored()
    Pipeline.objects.all().delete()
    out = io.StringIO()
    call_command("rebuild_pipelines", stdout=out)
    assert stored() == incremental
    assert f"Rebuilt {len(incremental)} pipelines" in out.getvalue()


def test_differences_name_a_pipeline_the_sync_did_not_update(world):
    world.run("passed")
    world.sync()
    Event.objects.filter(upstream_id=release().latest_run.upstream_id).update(status=EventStatus.FAILED)  # behind its back
    assert pipelines.differences() == [
        "pipeline luotsi/chef/Release: state, median_seconds, p95_seconds, passed_30d, recent_runs differ from a rebuild"
    ]


def test_retention_keeps_the_strip_and_the_red_period_and_derives_again(world, settings):
    settings.EVENTS_KEPT_DAYS = 30
    for _ in range(40):
        world.run("passed", minutes=1)
    world.now += timedelta(days=10)
    red = [world.run("failed", minutes=1) for _ in range(35)]  # 35 failures: more than the strip shows
    world.sync()
    world.now += timedelta(days=60)
    deleted = retention.prune_old_events(world.now)
    left = set(Event.objects.filter(target="build").values_list("upstream_id", flat=True))
    assert deleted == 40  # every passed run, older than the red period
    assert left == set(red)
    pipeline = release()
    assert (pipeline.state, pipeline.streak) == (PipelineState.FAILING, 35)
    assert pipelines.differences() == []


def test_a_progress_bump_restrips_the_pipeline_in_one_query_and_still_equals_a_rebuild(world, hth_sim):
    for result in ("passed", "failed", "passed"):
        world.run(result)
    run = world.start()
    hth_sim.set_progress(run, 10)
    world.sync()
    event = Event.objects.get(upstream_id=run)
    event.progress = 55
    with CaptureQueriesContext(connection) as queries:
        pipelines.refresh_runs([event])
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "dashboard_event"' in q["sql"]]
    assert len(reads) == 1  # the strip alone: a full derivation reads the runs nine times
    hth_sim.set_progress(run, 55)
    world.advance(seconds=20)
    world.sync()
    pipeline = release()
    assert (pipeline.state, pipeline.current_status, pipeline.recent_runs[-1]["progress"]) == ("running", "live", 55)
    assert pipelines.differences() == []


def test_a_new_run_or_a_finished_one_derives_the_whole_pipeline(world, hth_sim):
    world.run("passed")
    run = world.start()
    world.sync()
    hth_sim.set_progress(run, 100, operation="failed")
    world.advance(minutes=3)
    world.sync()
    pipeline = release()
    assert (pipeline.state, pipeline.current_status, pipeline.streak) == ("failing", "", 1)
    assert pipelines.differences() == []


def test_a_run_edited_into_another_pipeline_leaves_the_one_it_was_in(world, hth_sim):
    world.run("passed")
    moved = world.run("failed")
    world.sync()
    assert release().state == PipelineState.FAILING
    hth_sim.update_event(moved, name="Nightly")
    world.advance(minutes=1)
    sync.recheck_events(client=world.client, upstream_ids=[moved], now=world.now)  # the list never shows an old run again
    assert release().state == PipelineState.PASSING
    assert Pipeline.objects.get(name="Nightly").state == PipelineState.FAILING
    assert pipelines.differences() == []


def test_a_run_the_recheck_deletes_leaves_its_pipeline(world, hth_sim):
    world.run("passed")
    gone = world.run("failed")
    world.sync()
    hth_sim.delete_event(gone)
    result = sync.recheck_events(client=world.client, upstream_ids=[gone], now=world.now)
    assert result.deleted == [gone]
    assert release().state == PipelineState.PASSING
    assert pipelines.differences() == []
