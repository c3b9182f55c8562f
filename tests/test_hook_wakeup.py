"""The poller runs in its own process (`manage.py poll`); a delivery queued by the web process wakes it at once.

POLL_INTERVAL_SECONDS is an hour here, so anything that arrives came through the hook queue.
"""

import json
import signal
import time

import pytest
import requests

from dashboard.models import Event, HookDelivery, SyncState
from dashboard.simulators.hth import hook_request
from tests.processes import base_env, free_port, start_manage, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "wake-secret"


@pytest.fixture
def poller(hth_sim, settings):
    settings.HTH_WEBHOOK_SECRET = SECRET
    hth_sim.generate(20)
    env = base_env(
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        HTH_WEBHOOK_SECRET=SECRET,
        POLL_INTERVAL_SECONDS="3600",
    )
    process = start_manage("poll", env=env)
    wait_for(lambda: SyncState.objects.filter(last_success_at__isnull=False).exists(), "the first pass")
    yield hth_sim
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def test_a_queued_webhook_is_stored_by_the_poller_in_another_process(client, poller):
    push = poller.add_event(target="push")
    response = client.post(
        "/hooks/hth/", poller.webhook_body([push]), content_type="application/json", headers={"X-Pulseboard-Secret": SECRET}
    )
    assert response.status_code == 202
    wait_for(lambda: Event.objects.filter(upstream_id=push["id"]).exists(), "storing the pushed event")


def test_a_signed_hook_makes_the_poller_list_now(client, poller):
    push = poller.add_event(target="push")  # upstream has it; only a list pass would find it
    body, headers = hook_request(poller.hook_payload(push), secret=SECRET)
    response = client.post("/hooks/hth/", body, content_type=headers.pop("Content-Type"), headers=headers)
    assert response.status_code == 202
    wait_for(lambda: Event.objects.filter(upstream_id=push["id"]).exists(), "the list pass the hint asked for")


def test_serve_stops_promptly_on_sigterm_with_a_backlog_of_pushed_events(hth_sim, tmp_path):
    """Each pushed event is read back by id; with a slow upstream a hundred of them take a minute, and
    SIGTERM must not wait for that: the drain stops between two reads and leaves the rest queued."""
    hth_sim.generate(20)
    hth_sim.get_delay = 0.5
    port = free_port()
    env = base_env(
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        HTH_WEBHOOK_SECRET=SECRET,
        POLL_INTERVAL_SECONDS="3600",
    )
    with open(tmp_path / "serve.log", "w") as log:
        process = start_manage("serve", "--port", str(port), env=env, log=log)
        try:
            wait_for_port(port, process)
            wait_for(lambda: SyncState.objects.filter(last_success_at__isnull=False).exists(), "the first pass")
            pushes = [hth_sim.add_event(target="push") for _ in range(100)]
            response = requests.post(
                f"http://127.0.0.1:{port}/hooks/hth/",
                data=hth_sim.webhook_body(pushes),
                headers={"X-Pulseboard-Secret": SECRET, "Content-Type": "application/json"},
                timeout=10,
            )
            assert response.json() == {"queued": 100}
            wait_for(lambda: any(path.startswith(f"/api/events/{pushes[0]['id']}") for _, path in hth_sim.requests), "a read")
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            process.wait(timeout=30)
            stopped_after = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
    # Reading the backlog would take 50 s; stopping between reads (and draining the push thread) takes seconds.
    assert stopped_after < 15, f"serve took {stopped_after:.1f} s to stop"
    assert HookDelivery.objects.count() == 100  # unread, still queued for the next start


def test_a_hung_oneuptime_does_not_hold_up_helix_teamhub_webhooks(client, hth_sim, oneuptime_sim, settings):
    """Each source's deliveries have a drain job of their own: one note re-read hung for minutes, and every
    Helix TeamHub delivery queued behind it waited."""
    settings.HTH_WEBHOOK_SECRET = settings.ONEUPTIME_WEBHOOK_SECRET = SECRET
    incident = oneuptime_sim.add_incident("Checkout failing")
    note = oneuptime_sim.add_note(incident["_id"], "Investigating")
    env = base_env(
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        HTH_WEBHOOK_SECRET=SECRET,
        ONEUPTIME_API_URL=oneuptime_sim.url,
        ONEUPTIME_API_KEY=oneuptime_sim.api_key,
        ONEUPTIME_WEBHOOK_SECRET=SECRET,
        POLL_INTERVAL_SECONDS="3600",
        UPSTREAM_READ_TIMEOUT_SECONDS="4",
        UPSTREAM_RETRIES="1",
    )
    process = start_manage("poll", env=env)
    try:
        wait_for(lambda: SyncState.objects.filter(last_success_at__isnull=False).count() == 2, "the first passes")
        oneuptime_sim.delay = 10  # hung: every answer comes after the read timeout
        response = client.post(
            "/hooks/oneuptime/",
            json.dumps({"data": {"_id": note["_id"]}}),
            content_type="application/json",
            headers={"X-Pulseboard-Secret": SECRET},
        )
        assert response.status_code == 202
        time.sleep(1)  # the re-read is under way, and hangs
        push = hth_sim.add_event(target="push")
        response = client.post(
            "/hooks/hth/", hth_sim.webhook_body([push]), content_type="application/json", headers={"X-Pulseboard-Secret": SECRET}
        )
        assert response.status_code == 202
        wait_for(lambda: Event.objects.filter(upstream_id=push["id"]).exists(), "storing the pushed event", timeout=3)
    finally:
        oneuptime_sim.delay = 0
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
