"""`manage.py sync --once` as an operator runs it: a real process, killed and re-run, with bad keys."""

import signal
import time

import pytest

from dashboard.models import Event
from dashboard.upstreams.hth.sync import ANCHOR
from tests.processes import base_env, manage, start_manage

pytestmark = pytest.mark.django_db(transaction=True)


def command_env(sim, **overrides) -> dict:
    keys = {"HTH_API_URL": sim.url, "HTH_COMPANY_KEY": sim.company_key, "HTH_ACCOUNT_KEY": sim.account_key}
    return base_env(**(keys | overrides))


def start_sync(env):
    return start_manage("sync", "--once", env=env)


def wait_for_rows(count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (stored := Event.objects.count()) < count:
        assert time.monotonic() < deadline, f"only {stored} rows after {timeout} s"
        time.sleep(0.05)
    return stored


def test_rejected_credentials_give_one_line_and_a_non_zero_exit(hth_sim):
    result = manage("sync", "--once", env=command_env(hth_sim, HTH_ACCOUNT_KEY="wrong"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "credentials rejected" in lines[0] and "HTH_ACCOUNT_KEY" in lines[0]


def test_missing_keys_are_a_one_line_configuration_error(hth_sim):
    result = manage("sync", "--once", env=command_env(hth_sim, HTH_COMPANY_KEY=""))
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: HTH_COMPANY_KEY and HTH_ACCOUNT_KEY are required when HTH_API_URL is set"


def test_a_nonsense_setting_is_a_one_line_configuration_error(hth_sim):
    result = manage("sync", "--once", env=command_env(hth_sim, POLL_INTERVAL_SECONDS="soon"))
    assert result.returncode == 1
    assert result.stderr.strip() == "Configuration error: POLL_INTERVAL_SECONDS must be a number of seconds, not 'soon'"


def test_an_unset_source_is_skipped(hth_sim):
    env = command_env(hth_sim)
    del env["HTH_API_URL"]
    result = manage("sync", "--once", env=env)
    assert result.returncode == 0 and "No source configured" in result.stdout


def test_killing_sync_mid_way_and_rerunning_loses_and_duplicates_nothing(hth_sim):
    hth_sim.generate(3000)
    hth_sim.delay = 0.05
    process = start_sync(command_env(hth_sim))
    wait_for_rows(800)
    process.kill()
    process.wait()
    interrupted = Event.objects.count()
    assert 800 <= interrupted < 3000

    for _ in range(30):  # activity while the poller was down shifts every offset
        hth_sim.add_event(target="push", operation="created", project=hth_sim.projects[0])
    hth_sim.delay = 0
    requests_before = len(hth_sim.requests)
    result = manage("sync", "--once", env=command_env(hth_sim))
    assert result.returncode == 0, result.stderr

    assert Event.objects.count() == len(hth_sim.events) == 3030
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.events}
    pages_read = len(hth_sim.requests[requests_before:])
    pages_left = (3030 - interrupted) // (100 - ANCHOR)  # each page overlaps the previous one by the anchor
    assert pages_read <= pages_left + 3, "the re-run resumes instead of re-reading what was stored"


def test_sigterm_stops_cleanly_between_pages_and_the_next_run_finishes(hth_sim):
    hth_sim.generate(2000)
    hth_sim.delay = 0.05
    process = start_sync(command_env(hth_sim))
    wait_for_rows(300)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "stopped by SIGTERM between pages" in stderr
    assert (Event.objects.count() - 100) % (100 - ANCHOR) == 0, "whole pages only"

    hth_sim.delay = 0
    assert manage("sync", "--once", env=command_env(hth_sim)).returncode == 0
    assert Event.objects.count() == 2000


def test_poll_syncs_and_stops_cleanly_on_sigterm(hth_sim):
    hth_sim.generate(150)
    process = start_manage("poll", env=command_env(hth_sim, POLL_INTERVAL_SECONDS="1", LIVE_REFRESH_SECONDS="0.5"))
    wait_for_rows(150)
    hth_sim.add_event(target="push", operation="created", project=hth_sim.projects[0])
    wait_for_rows(151, timeout=15)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout.strip().splitlines()[-1] == "Stopped."


def test_events_arriving_during_a_killed_sync_are_not_skipped(hth_sim):
    hth_sim.generate(3000)
    hth_sim.delay = 0.05
    process = start_sync(command_env(hth_sim))
    wait_for_rows(300)
    for _ in range(44):  # arrivals during the run push what it has not read yet further down
        hth_sim.add_event(target="push", operation="created", project=hth_sim.projects[0])
    wait_for_rows(900)
    process.kill()
    process.wait()
    assert Event.objects.count() < 3044

    hth_sim.delay = 0
    result = manage("sync", "--once", env=command_env(hth_sim))
    assert result.returncode == 0, result.stderr
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.events}


def test_a_pass_aborted_by_503s_while_events_arrive_loses_nothing(hth_sim):
    hth_sim.generate(2000)
    hth_sim.delay = 0.02
    plan = {"arrive_at": 300, "fail_at": 600}

    def arrivals_then_503s(offset):
        if plan.get("arrive_at") and offset >= plan["arrive_at"]:
            del plan["arrive_at"]
            for _ in range(25):  # they push what the run has not read yet further down
                hth_sim.add_event(target="push", operation="created", project=hth_sim.projects[0])
        elif plan.get("fail_at") and offset >= plan["fail_at"]:
            del plan["fail_at"]
            hth_sim.fail_next(6, status=503)  # one more than the retries: the pass gives up after this page

    hth_sim.before_list = arrivals_then_503s
    result = manage("sync", "--once", env=command_env(hth_sim))
    assert result.returncode == 1 and "503" in result.stderr, result.stderr
    assert Event.objects.count() < 2025

    hth_sim.delay = 0
    result = manage("sync", "--once", env=command_env(hth_sim))
    assert result.returncode == 0, result.stderr
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.events}
