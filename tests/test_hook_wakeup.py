"""The poller runs in its own process (`manage.py poll`); a delivery queued by the web process wakes it at once.

POLL_INTERVAL_SECONDS is an hour here, so anything that arrives came through the hook queue.
"""

import signal
import time

import pytest

from dashboard.models import Event, SyncState
from dashboard.simulators.hth import hook_request
from tests.processes import base_env, start_manage

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
