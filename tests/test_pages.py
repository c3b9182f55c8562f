"""The minimal feed page and /healthz, rendered from what the sync stored."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from dashboard.models import Event, EventStatus

pytestmark = pytest.mark.django_db


def test_the_feed_marks_every_event_and_the_live_ones(client, hth_sim):
    hth_sim.generate(20)
    build = hth_sim.start_build(project="luotsi", repository="chef", name="Development")
    call_command("sync", "--once")
    html = client.get(reverse("dashboard")).content.decode()
    assert Event.objects.get(upstream_id=build).status == EventStatus.LIVE
    assert html.count("data-event-id=") >= 21
    assert f'data-event-id="{build}" data-live' in html
    assert html.count(" data-live") == 2, "once in the live panel, once in the feed"


def test_healthz_reports_each_source(client, hth_sim):
    hth_sim.generate(12)
    hth_sim.start_build(project="luotsi", repository="chef")
    call_command("sync", "--once")
    health = client.get("/healthz").json()
    hth = health["sources"]["hth"]
    assert health["status"] == "ok" and health["live_count"] == 1
    assert hth["configured"] and hth["ok"] and hth["last_success_at"] and hth["last_error"] == ""
    assert hth["counts"] == {"events": 13, "live": 1}
    assert health["sources"]["oneuptime"]["configured"] is False


def test_healthz_shows_the_last_error_and_degrades(client, hth_sim, settings):
    call_command("sync", "--once")
    settings.UPSTREAM_RETRIES = 0
    hth_sim.fail_next(1, status=500)
    with pytest.raises(Exception):
        call_command("sync", "--once")
    health = client.get("/healthz").json()
    assert health["status"] == "degraded"
    assert health["sources"]["hth"]["ok"] is False
    assert "500" in health["sources"]["hth"]["last_error"]
