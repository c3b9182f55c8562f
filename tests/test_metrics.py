"""/metrics: Prometheus text for a scraper with the token, nothing for anyone else; counted at the real seams."""

import re

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from prometheus_client import REGISTRY

from dashboard.live import screens
from dashboard.models import Incident, IncidentNote, NoteWrite
from tests.processes import base_env, free_port, start_daphne
from tests.test_live_socket import run
from tests.test_socket_access import open_socket, snapshot_of

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "a-long-scraper-token"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_do_not_exist_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_a_scraper_without_the_right_token_is_refused(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer a-long-scraper-tokeX"}).status_code == 403


def test_the_server_answers_only_a_bearer_token_not_the_bare_token():
    port = free_port()
    server = start_daphne(port=port, env=base_env(METRICS_TOKEN=TOKEN))
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for refused in (TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}", "Bearer", f"Bearer{TOKEN}", f"Bearer {TOKEN}x"):
            assert requests.get(url, headers={"Authorization": refused}, timeout=10).status_code == 403, refused
        for accepted in (f"Bearer {TOKEN}", f"bearer {TOKEN}"):
            answer = requests.get(url, headers={"Authorization": accepted}, timeout=10)
            assert answer.status_code == 200 and "pulseboard_events" in answer.text, accepted
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_scraper_gets_the_mirror_the_syncs_and_the_upstream_errors(client, settings, hth_sim):
    settings.METRICS_TOKEN = TOKEN
    hth_sim.generate(7)
    hth_sim.start_build(project="luotsi", repository="chef")
    synced = sample("pulseboard_sync_runs_total", source="hth", task="sync", outcome="ok")
    call_command("sync", "--once")
    assert sample("pulseboard_sync_runs_total", source="hth", task="sync", outcome="ok") == synced + 1
    assert sample("pulseboard_sync_duration_seconds_count", source="hth", task="sync") >= 1

    settings.UPSTREAM_RETRIES = 0
    errors, failed = (
        sample("pulseboard_upstream_errors_total", status="503"),
        sample("pulseboard_sync_runs_total", source="hth", task="sync", outcome="error"),
    )
    hth_sim.fail_next(1, status=503)
    with pytest.raises(CommandError):
        call_command("sync", "--once")
    assert sample("pulseboard_upstream_errors_total", status="503") == errors + 1
    assert sample("pulseboard_sync_runs_total", source="hth", task="sync", outcome="error") == failed + 1

    page = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200 and page["Content-Type"].startswith("text/plain")
    text = page.content.decode()
    assert "pulseboard_events 8.0" in text and "pulseboard_live_builds 1.0" in text
    assert "pulseboard_outbox_pending 0.0" in text and "pulseboard_outbox_oldest_pending_age_seconds 0.0" in text
    assert 'pulseboard_upstream_errors_total{status="503"}' in text


def test_outbox_depth_and_the_age_of_the_oldest_pending_write(client, settings):
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    incident = Incident.objects.create(upstream_id="i1", title="Down", synced_at=now)
    note = IncidentNote.objects.create(incident=incident, note="Looking")
    NoteWrite.objects.create(note=note, action=NoteWrite.Action.CREATE, data={"note": "Looking"}, next_attempt_at=now)
    NoteWrite.objects.update(created_at=now.replace(year=2000))
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    assert "pulseboard_outbox_pending 1.0" in text and "pulseboard_notes 1.0" in text
    age = float(re.search(r"^pulseboard_outbox_oldest_pending_age_seconds (\S+)$", text, re.M).group(1))
    assert age > 20 * 365 * 86400


def test_sockets_connected_goes_up_and_down():
    screen = screens.screen_named("Office TV")

    async def scenario():
        before = sample("pulseboard_sockets_connected")
        wall = await open_socket(f"/ws/live/?page=wall&screen={screen.key}")
        await snapshot_of(wall)
        assert sample("pulseboard_sockets_connected") == before + 1
        await wall.disconnect()
        assert sample("pulseboard_sockets_connected") == before

    run(scenario)


def test_a_push_is_timed(hth_sim):
    hth_sim.generate(3)
    call_command("sync", "--once")  # the backfill announces nothing
    hth_sim.start_build(project="luotsi", repository="chef")
    pushes = sample("pulseboard_push_fanout_seconds_count")
    call_command("sync", "--once")
    assert sample("pulseboard_push_fanout_seconds_count") > pushes
