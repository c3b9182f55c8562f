"""The poller's jobs keep their own pace: a slow or rate-limited upstream holds up only its own work."""

import signal
import time

import pytest

from dashboard.models import Event, IncidentNote
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import HthClient
from tests.processes import start_manage
from tests.test_sync_command import command_env, start_sync


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_source_does_not_stall_the_other(hth_sim, oneuptime_sim, tmp_path):
    hth_sim.generate(50)
    incident = oneuptime_sim.add_incident("Disk full")
    env = command_env(
        hth_sim,
        ONEUPTIME_API_URL=oneuptime_sim.url,
        ONEUPTIME_API_KEY=oneuptime_sim.api_key,
        POLL_INTERVAL_SECONDS="0.5",
        LIVE_REFRESH_SECONDS="0.3",
    )
    with open(tmp_path / "poll.log", "w") as log:
        process = start_manage("poll", env=env, log=log)
        try:
            deadline = time.monotonic() + 30
            while Event.objects.count() < 50:
                assert time.monotonic() < deadline, (tmp_path / "poll.log").read_text()
                time.sleep(0.1)
            hth_sim.rate_limit_next(100, retry_after=20)  # Helix TeamHub asks us to wait, again and again
            time.sleep(1)
            note = oneuptime_sim.add_note(incident["_id"], "Cleared the old logs")
            deadline = time.monotonic() + 10
            while not IncidentNote.objects.filter(upstream_id=note["_id"]).exists():
                assert time.monotonic() < deadline, "the OneUptime sync waited for Helix TeamHub"
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


@pytest.mark.django_db
def test_the_live_refresh_fetches_unfinished_events_concurrently(hth_sim, settings):
    settings.HTH_REFRESH_CONCURRENCY = 5
    client = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)
    builds = [hth_sim.start_build(project="luotsi") for _ in range(20)]
    sync.sync_events(client=client, now=hth_sim.clock())
    for build in builds:
        hth_sim.set_progress(build, 50)
    hth_sim.get_delay = 0.05
    report = sync.refresh_unfinished_events(client=client, now=hth_sim.clock())
    assert report.updated == 20 and set(Event.objects.filter(upstream_id__in=builds).values_list("progress", flat=True)) == {50}
    assert 1 < hth_sim.max_in_flight <= 5


@pytest.mark.django_db(transaction=True)
def test_two_syncs_racing_each_finish_and_store_every_event_once(hth_sim):
    hth_sim.generate(2000)
    hth_sim.delay = 0.01
    racers = [start_sync(command_env(hth_sim)) for _ in range(2)]
    results = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], results
    assert Event.objects.count() == 2000
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.events}
