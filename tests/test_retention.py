"""Retention: old events go in small batches; running builds and the runs each pipeline's history needs stay."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.live import pipelines
from dashboard.models import Event, EventStatus, Transition, TransitionKind
from dashboard.poller import jobs, retention
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import HthClient

pytestmark = pytest.mark.django_db


def make_event(upstream_id, *, days_ago, **fields):
    now = timezone.now()
    values = {
        "timestamp": now - timedelta(days=days_ago),
        "operation": "created",
        "target": "push",
        "project": "luotsi",
        "repository": "chef",
        "subject_id": "assimov",
        "raw": {},
        "first_seen_at": now,
        "synced_at": now,
        "progress_changed_at": now,
        "status": EventStatus.COMPLETED,
    } | fields
    return Event.objects.create(upstream_id=upstream_id, **values)


def build(upstream_id, *, days_ago, name="Release", status=EventStatus.COMPLETED, **fields):
    operation = "failed" if status == EventStatus.FAILED else "completed"
    return make_event(upstream_id, days_ago=days_ago, target="build", operation=operation, name=name, status=status, **fields)


def remaining() -> set[str]:
    return set(Event.objects.values_list("upstream_id", flat=True))


def test_events_older_than_the_kept_days_go_with_their_transitions(settings):
    settings.EVENTS_KEPT_DAYS = 30
    old = make_event("old", days_ago=31)
    make_event("recent", days_ago=29)
    Transition.objects.create(kind=TransitionKind.EVENT_NEW, upstream_id="old", event=old, at=old.timestamp)
    assert retention.prune_old_events(timezone.now()) == 1
    assert remaining() == {"recent"}
    assert not Transition.objects.exists()


def test_unfinished_builds_are_never_pruned(settings):
    settings.EVENTS_KEPT_DAYS = 30
    build("running", days_ago=400, status=EventStatus.LIVE, progress=40)
    build("stalled", days_ago=400, status=EventStatus.STALE, progress=40)
    build("newer", days_ago=1)  # a newer result of the same build does not make them prunable
    retention.prune_old_events(timezone.now())
    assert remaining() == {"running", "stalled", "newer"}


def test_the_runs_a_pipelines_history_needs_are_kept_however_old(settings):
    settings.EVENTS_KEPT_DAYS = 30
    for n in range(33):  # the run strip shows 30
        build(f"release-{n}", days_ago=300 - n)
    build("release-elsewhere", days_ago=300, repository="web")  # the same name in another repository
    build("nightly-1", days_ago=300, name="", ref="refs/heads/nightly", status=EventStatus.FAILED)  # unnamed: by ref
    assert retention.prune_old_events(timezone.now()) == 0  # no pipeline derived yet: nothing says what it needs
    pipelines.rebuild()
    assert retention.prune_old_events(timezone.now()) == 3
    assert remaining() == {f"release-{n}" for n in range(3, 33)} | {"release-elsewhere", "nightly-1"}
    assert pipelines.differences() == []


def test_it_deletes_in_small_batches_and_stops_after_a_few(settings, monkeypatch):
    settings.EVENTS_KEPT_DAYS = 30
    monkeypatch.setattr(retention, "BATCH_SIZE", 2)
    monkeypatch.setattr(retention, "BATCHES_PER_CALL", 2)
    for number in range(5):
        make_event(f"old-{number}", days_ago=100 - number)
    with CaptureQueriesContext(connection) as ran:
        assert retention.prune_old_events(timezone.now()) == 4
    deletes = [query["sql"] for query in ran.captured_queries if query["sql"].startswith('DELETE FROM "dashboard_event"')]
    assert len(deletes) == 2
    assert remaining() == {"old-4"}, "oldest first; the rest waits for the next pass"
    assert retention.prune_old_events(timezone.now()) == 1


def test_zero_kept_days_keeps_everything(settings):
    settings.EVENTS_KEPT_DAYS = 0
    make_event("ancient", days_ago=5000)
    assert retention.prune_old_events(timezone.now()) == 0
    assert remaining() == {"ancient"}


@pytest.mark.django_db(transaction=True)
def test_the_poller_prunes_after_each_full_pass(settings):
    settings.EVENTS_KEPT_DAYS = 30
    make_event("old", days_ago=31)
    make_event("recent", days_ago=1)
    stop = threading.Event()

    def poll():
        try:
            jobs.poll_forever(stop=stop, sources=[])
        finally:
            connections.close_all()  # this thread's own connection, so the test database can be dropped

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "old" in remaining() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert remaining() == {"recent"}


@pytest.mark.django_db(transaction=True)
def test_a_full_pass_that_began_before_a_pruning_never_brings_back_what_it_pruned(settings, hth_sim, monkeypatch):
    """A pass fixed its horizon when it began, retention its own later one: 209 events came back as new."""
    now = timezone.now()
    horizon = now - timedelta(days=1)
    for minutes in range(-40, 40, 4):  # events on both sides of the one-day horizon
        when = (horizon + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        hth_sim.add_event(target="push", operation="created", timestamp=when)
    client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)
    began = now - timedelta(hours=1)  # a long full pass: it began an hour ago
    settings.EVENTS_KEPT_DAYS, settings.HTH_RESCAN_SECONDS = 0, 0  # kept until now; every pass reads it all
    sync.sync_events(client=client, now=began)
    stored = remaining()

    settings.EVENTS_KEPT_DAYS = 1
    retention.prune_old_events(timezone.now())
    pruned = stored - remaining()
    assert len(pruned) >= 8, "retention pruned what lies below its horizon"
    # The pass that began before the pruning reads on: by its pages, the hour it has been reading has gone by
    # (its clock is the one it began with, moved on by the time it took: a fake hour here).
    monkeypatch.setattr(sync._Scan, "now_here", lambda scan: scan.now + timedelta(hours=1))
    sync.sync_events(client=client, now=began)

    assert not pruned & remaining(), "pruned events came back"
    assert not Transition.objects.filter(event__upstream_id__in=pruned).exists()
