"""The events admin's one action, as an admin uses it: re-check rows against Helix TeamHub over real HTTP.

Events are read-only in the admin: they belong upstream. But the list API cannot say that an event
went, so a row upstream no longer has (a forged push stored by an older version, an event deleted with
its project) would stay for ever; the action deletes exactly the rows the API answers 404 for.
"""

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.utils import timezone

from dashboard.models import Event, EventStatus
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient, parse_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def hth(hth_sim):
    return HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "password"))
    return client


def recheck(admin_client, events):
    return admin_client.post(
        "/admin/dashboard/event/",
        {"action": "recheck_upstream", "_selected_action": [event.pk for event in events]},
        follow=True,
    )


def test_a_row_upstream_no_longer_has_is_deleted_and_the_others_refreshed(admin_client, hth_sim, hth):
    build = hth_sim.start_build(project="luotsi", repository="chef")
    kept = hth_sim.add_event(target="push")
    gone = hth_sim.add_event(target="push")
    hth_sync.sync_events(client=hth, now=timezone.now())
    hth_sim.delete_event(gone["id"])
    forged = {**kept, "id": "forged", "target": "build", "operation": "failed", "timestamp": "2099-01-01T00:00:00Z"}
    hth_sync.store_events([parse_event(forged)], now=timezone.now(), announce_new=True)  # as an older version did
    assert Event.objects.get(upstream_id="forged").status == EventStatus.FAILED
    reposted = Event.objects.get(upstream_id=build)  # a real event re-posted as failed, stored by an older version
    reposted.operation, reposted.progress, reposted.raw = "failed", 100, {**reposted.raw, "operation": "failed", "progress": 100}
    reposted.save()

    response = recheck(admin_client, Event.objects.all())

    assert set(Event.objects.values_list("upstream_id", flat=True)) == {build, kept["id"]}
    assert Event.objects.get(upstream_id=build).progress < 100  # the API's copy again
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("2 event(s) refreshed from Helix TeamHub; 2 deleted, which it no longer has: ")
    assert "forged" in message and gone["id"] in message


def test_nothing_is_deleted_when_helix_teamhub_fails(admin_client, hth_sim, hth):
    hth_sim.add_event(target="push")
    hth_sync.sync_events(client=hth, now=timezone.now())
    hth_sim.fail_next(20, status=503)
    response = recheck(admin_client, Event.objects.all())
    assert Event.objects.count() == 1
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(m.startswith("1 event(s) not checked, and kept: Helix TeamHub failed") for m in messages)


def test_only_those_who_may_delete_events_see_the_action(client, hth_sim):
    staff = User.objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(staff)
    page = client.get("/admin/dashboard/event/").content.decode()
    assert "recheck_upstream" not in page
