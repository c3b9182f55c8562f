"""/insights/'s build figures: derived per pipeline and week by the real sync, recomputed when upstream
backdates or deletes a run, equal to a rebuild, and kept for weeks retention has pruned."""

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.forms.models import model_to_dict

from dashboard.live import pipeline_weeks
from dashboard.models import Event, PipelineWeek, week_start
from dashboard.poller import retention
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import HthClient

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)  # the page counts weeks back from the real now
THIS_WEEK = week_start(NOW)
LAST_WEEK = THIS_WEEK - timedelta(weeks=1)


@pytest.fixture
def world(hth_sim):
    """The simulator and the sync on one clock, moved by hand."""

    class World:
        now = LAST_WEEK + timedelta(days=1, hours=9)
        client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)

        synced_at = NOW

        def sync(self, *, rescan=False):
            """A pass at our clock, a minute after the last; `rescan`: an hour later, when a pass reads the whole window."""
            self.synced_at = max(self.synced_at + timedelta(hours=1 if rescan else 0, minutes=1), self.now)
            sync.sync_events(client=self.client, now=self.synced_at)

        def run(self, result, *, minutes=10, commit=None, repository="chef", project="luotsi"):
            """One finished run: started now, ended `minutes` later."""
            event = hth_sim.add_event(
                target="build",
                operation="failed" if result == "failed" else "completed",
                project=project,
                repository=repository,
                name="Release",
                progress=100,
                timestamp=self.now,
                updated_at=self.now + timedelta(minutes=minutes),
                **({"commits": [{"id": commit}]} if commit else {}),
            )
            self.now += timedelta(minutes=minutes + 20)
            return event["id"]

    world = World()
    hth_sim.clock = lambda: world.now
    return world


@pytest.fixture
def person(client):
    client.force_login(get_user_model().objects.create_user("lead", password="a long pass phrase"))
    return client


def pipeline_row(html, slug):
    found = re.search(rf'<tr data-insight="pipeline" data-pipeline="{re.escape(slug)}"([^>]*)>(.*?)</tr>', html)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', found[1])) | {"text": found[2]} if found else None


def week_row(html, week):
    found = re.search(rf'data-insight="builds-week" data-week="{week:%Y-%m-%d}" data-runs="(\d+)" data-failures="(\d+)"', html)
    return int(found[1]), int(found[2])


def test_change_failure_rate_red_time_and_flaky_from_the_sync_and_again_after_backdating_and_deleting(world, hth_sim, person):
    world.run("passed", commit="a" * 40)
    first_red = world.now
    world.run("failed", commit="b" * 40)  # 10 min, then 20 min idle
    world.run("failed", commit="b" * 40)  # the same commit failed twice: not flaky
    fixer_started = world.now
    fix = world.run("passed", minutes=5, commit="c" * 40)
    world.run("failed", commit="c" * 40)  # c passed and then failed: flaky
    world.run("passed", repository="devrel", commit="d" * 40)
    world.sync()

    html = person.get("/insights/?weeks=2").content.decode()
    chef = pipeline_row(html, "luotsi/chef/Release")
    red = (fixer_started + timedelta(minutes=5) - first_red).total_seconds()
    assert (chef["runs"], chef["failures"], chef["fixes"]) == ("5", "3", "1")
    assert chef["red-median-seconds"] == f"{red:.0f}" and "60 %" in chef["text"] and "1 h 5 min" in chef["text"]
    assert 'href="/pipelines/luotsi/chef/Release/"' in chef["text"], "each pipeline links to its page"
    assert html.index('data-pipeline="luotsi/chef/Release"') < html.index('data-pipeline="luotsi/devrel/Release"')
    assert '<li data-insight="flaky" data-pipeline="luotsi/chef/Release" data-flaky="1">' in html
    assert 'data-insight="flaky" data-pipeline="luotsi/devrel/Release"' not in html
    assert week_row(html, LAST_WEEK) == (6, 3)
    assert 'data-insight="builds-total" data-runs="6" data-failures="3"' in html

    # Upstream backdates the first failure by a week, and then deletes the fixing run (the admin's re-check reads its 404).
    backdated = Event.objects.filter(operation="failed").order_by("timestamp").first().upstream_id
    hth_sim.update_event(
        backdated, timestamp=first_red - timedelta(weeks=1), updated_at=first_red - timedelta(weeks=1, minutes=-10)
    )
    world.sync(rescan=True)
    assert Event.objects.get(upstream_id=backdated).timestamp == first_red - timedelta(weeks=1), "the sync reads a backdated run"
    html = person.get("/insights/?weeks=3").content.decode()
    assert week_row(html, LAST_WEEK - timedelta(weeks=1)) == (1, 1)
    assert week_row(html, LAST_WEEK) == (5, 2)
    chef = pipeline_row(html, "luotsi/chef/Release")
    # Two red periods now: the backdated failure until the first run passed (a week), then b's failures until c passed.
    assert chef["fixes"] == "2" and chef["red-median-seconds"] == f"{red - 30 * 60:.0f}", "nearest rank: the shorter of two"

    hth_sim.delete_event(fix)
    assert sync.recheck_events(client=world.client, upstream_ids=[fix], now=NOW).deleted == [fix]
    html = person.get("/insights/?weeks=3").content.decode()
    chef = pipeline_row(html, "luotsi/chef/Release")
    assert (chef["runs"], chef["failures"], chef["fixes"]) == ("4", "3", "1"), "only the week-long red period was fixed"
    assert chef["red-median-seconds"] == f"{timedelta(weeks=1).total_seconds() - 20 * 60:.0f}"
    assert 'data-insight="flaky" data-pipeline="luotsi/chef/Release"' not in html, "c no longer both passed and failed"
    assert pipeline_weeks.differences(now=datetime.now(UTC)) == []


def test_the_project_filter_narrows_the_builds_and_lives_in_the_url(world, person):
    world.run("failed")
    world.run("passed", repository="devrel")
    world.run("passed", project="borealis", repository="api")
    world.sync()
    html = person.get("/insights/?weeks=2&project=borealis").content.decode()
    assert pipeline_row(html, "borealis/api/Release") and not pipeline_row(html, "luotsi/chef/Release")
    assert "<option selected>borealis</option>" in html and html.count("<option>luotsi</option>") == 1
    assert week_row(html, LAST_WEEK) == (1, 0)
    html = person.get("/insights/?weeks=2&project=%00").content.decode()
    assert week_row(html, LAST_WEEK) == (3, 1), "a NUL names no project: every project"


def test_the_incremental_weeks_equal_a_rebuild_through_a_busy_simulated_hour(world, hth_sim):
    world.now = NOW  # runs arrive as they happen, above each pass's floor
    hth_sim.generate(300)
    world.sync()
    for tick in range(120):
        hth_sim.step()
        if tick % 7 == 0:
            world.run("failed" if tick % 3 else "passed", repository="devrel", commit=f"{tick % 2:040d}")
        world.now += timedelta(seconds=30)
        if tick % 5 == 0:
            world.sync()
            sync.refresh_unfinished_events(client=world.client, now=world.now)
    world.sync()
    now = datetime.now(UTC)
    assert PipelineWeek.objects.filter(failures__gt=0).exists() and PipelineWeek.objects.filter(flaky__gt=0).exists()
    assert pipeline_weeks.differences(now=now) == []
    incremental = {
        (r.project, r.repository, r.name, r.week): model_to_dict(r, exclude=["id"]) for r in PipelineWeek.objects.all()
    }
    PipelineWeek.objects.all().delete()
    out = io.StringIO()
    call_command("rebuild_pipelines", stdout=out)
    rebuilt = {(r.project, r.repository, r.name, r.week): model_to_dict(r, exclude=["id"]) for r in PipelineWeek.objects.all()}
    assert rebuilt == incremental
    assert f"{len(incremental)} pipeline weeks" in out.getvalue()

    row = PipelineWeek.objects.filter(repository="devrel", name="Release").first()
    PipelineWeek.objects.filter(pk=row.pk).update(runs=row.runs + 1)  # behind the sync's back
    wrong = f"pipeline weeks {row.project}/devrel/Release: {row.week:%Y-%m-%d} differ from a rebuild"
    assert pipeline_weeks.differences(now=now) == [wrong]


def test_retention_closes_a_week_before_pruning_its_runs_and_the_rebuild_leaves_it(world, settings, person):
    settings.EVENTS_KEPT_DAYS = 30
    old_week = week_start(NOW - timedelta(days=21))  # open today (it began after NOW - 30 days)
    world.now = old_week + timedelta(hours=1)
    old = [world.run("failed" if n % 4 == 0 else "passed", minutes=1) for n in range(40)]
    world.now = NOW - timedelta(days=3)
    [world.run("passed", minutes=1) for _ in range(35)]  # the strip's 30 and more: the old runs may go
    world.sync()
    before = model_to_dict(PipelineWeek.objects.get(week=old_week), exclude=["id"])
    assert (before["runs"], before["failures"]) == (40, 10)

    later = NOW + timedelta(days=10)  # the horizon is now 20 days back: the old runs are past it
    assert retention.prune_old_events(later) == 40
    assert not Event.objects.filter(upstream_id__in=old).exists()
    assert model_to_dict(PipelineWeek.objects.get(week=old_week), exclude=["id"]) == before, "a closed week keeps its figures"
    assert pipeline_weeks.differences(now=later) == []
    pipeline_weeks.rebuild(now=later)
    assert model_to_dict(PipelineWeek.objects.get(week=old_week), exclude=["id"]) == before, "a rebuild leaves it too"
    html = person.get("/insights/?weeks=6").content.decode()
    assert week_row(html, old_week) == (40, 10)


def test_a_flaky_commit_needs_both_results_within_14_days():
    day = datetime(2026, 11, 2, tzinfo=UTC)
    assert pipeline_weeks._flaky([(day, "completed"), (day + timedelta(days=14), "failed")])
    assert not pipeline_weeks._flaky([(day, "completed"), (day + timedelta(days=15), "failed")])
    assert not pipeline_weeks._flaky([(day, "failed"), (day + timedelta(days=1), "failed")])
