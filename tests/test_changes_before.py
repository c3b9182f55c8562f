"""What changed just before an incident: both real syncs against both simulators, then the page and its pushes."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from dashboard.live import push
from dashboard.models import ChangeMapping, Transition
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.oneuptime import sync as note_sync

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ENTRY = re.compile(r'data-change-event-id="([^"]+)"><span class="change-reason">([^<]*)<')


@pytest.fixture
def world(hth_sim, oneuptime_sim, oneuptime_client):
    """Both simulators on one clock, at T0, with a spread of changes in the two hours before it."""
    for sim in (hth_sim, oneuptime_sim):
        sim.clock = lambda: T0
    hth = HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)

    def event(minutes, **fields):
        return hth_sim.add_event(timestamp=(T0 - timedelta(minutes=minutes)).isoformat(), **fields)["id"]

    ids = {
        "old": event(130, target="push", project="borealis", repository="api"),
        "push": event(100, target="push", project="borealis", repository="api"),
        "elsewhere": event(30, target="push", project="atlas", repository="atlas"),
        "failed": event(12, target="build", operation="failed", project="borealis", repository="api", name="Release"),
        "passed": event(5, target="build", operation="completed", project="luotsi", repository="chef", name="Nightly"),
        "task": event(3, target="task", project="borealis"),
    }

    def sync():
        hth_sync.sync_events(client=hth, now=T0)
        note_sync.sync_notes(client=oneuptime_client, now=T0)

    return hth_sim, oneuptime_sim, ids, sync


@pytest.fixture
def person(client):
    client.force_login(get_user_model().objects.create_user("oncall", password="a long pass phrase"))
    return client


def entries(html):
    section = html[html.index('id="changes-before"') :]
    return ENTRY.findall(section[: section.index("</ol>")])


def test_changes_are_ranked_mapped_first_then_risky_builds_then_nearer_each_with_its_reason(world, person):
    hth_sim, oneuptime_sim, ids, sync = world
    monitor = oneuptime_sim.add_monitor("Borealis")
    incident = oneuptime_sim.add_incident("Checkout errors", monitors=[monitor])
    sync()
    found = entries(person.get(f"/incidents/{incident['_id']}/").content.decode())
    assert [event_id for event_id, _ in found] == [ids["failed"], ids["push"], ids["passed"], ids["elsewhere"]]
    assert found[0][1] == "failed build Release of borealis/api, 12 min before declared · same project as monitor Borealis"
    assert found[2][1].startswith("finished build Nightly of luotsi/chef, 5 min before declared")
    assert " · same" not in found[2][1], "an unmapped change says nothing it cannot back"


def test_a_mapping_made_in_the_admin_puts_its_repository_first(world, person):
    hth_sim, oneuptime_sim, ids, sync = world
    label = oneuptime_sim.add_label("payments")
    incident = oneuptime_sim.add_incident("Card payments failing", labels=[label])
    ChangeMapping.objects.create(source_kind="label", source_name="Payments", target_kind="repository", target_name="chef")
    sync()
    found = entries(person.get(f"/incidents/{incident['_id']}/").content.decode())
    assert found[0] == (
        ids["passed"],
        "finished build Nightly of luotsi/chef, 5 min before declared · repository mapped to label Payments",
    )


def test_nothing_in_the_mapped_projects_says_what_was_looked_at_and_counts_the_rest(world, person):
    hth_sim, oneuptime_sim, ids, sync = world
    monitor = oneuptime_sim.add_monitor("luotsi")  # luotsi's only change comes after this incident was declared
    incident = oneuptime_sim.add_incident("Search stale", monitors=[monitor], declaredAt=T0 - timedelta(minutes=20))
    sync()
    html = person.get(f"/incidents/{incident['_id']}/").content.decode()
    assert '<ol id="changes-before" class="changes" data-none>' in html
    assert "No changes in the 2 h before, in the mapped projects and repositories;" in html
    assert re.search(r'<a href="/\?since=2026-11-23T09%3A40&amp;until=2026-11-23T11%3A41">3 elsewhere</a>', html)


def test_an_event_that_arrives_late_joins_the_open_pages_list(world, person):
    hth_sim, oneuptime_sim, ids, sync = world
    monitor = oneuptime_sim.add_monitor("borealis")
    incident = oneuptime_sim.add_incident("Checkout errors", monitors=[monitor])
    sync()
    Transition.objects.all().delete()
    late = hth_sim.add_event(
        target="build",
        operation="failed",
        project="borealis",
        repository="api",
        name="Deploy",
        timestamp=(T0 - timedelta(minutes=2)).isoformat(),
    )["id"]
    sync()
    changes = list(Transition.objects.all())
    html = "".join(m.html for m in push.render_messages(changes) if m.group == push.incident_group(incident["_id"]))
    assert entries(html)[0][0] == late, "nearest of the mapped failed builds, pushed to the open page"
    wall = "".join(m.html for m in push.render_messages(changes) if m.group.startswith("wall-incidents"))
    assert f'class="card-change" data-change-event-id="{late}"' in wall, "and it tops the wall's card"


def test_the_window_is_a_setting(world, person, settings):
    hth_sim, oneuptime_sim, ids, sync = world
    settings.CHANGES_WINDOW_MINUTES = 10
    incident = oneuptime_sim.add_incident("Narrow")
    sync()
    html = person.get(f"/incidents/{incident['_id']}/").content.decode()
    assert [event_id for event_id, _ in entries(html)] == [ids["passed"]]
    assert "in the 10 min before declared" in html


def test_people_edit_mappings_in_the_admin(client):
    client.force_login(get_user_model().objects.create_superuser("admin", "a@example.com", "a long pass phrase"))
    response = client.post(
        "/admin/dashboard/changemapping/add/",
        {"source_kind": "monitor", "source_name": "checkout-api", "target_kind": "project", "target_name": "borealis"},
    )
    assert response.status_code == 302
    assert str(ChangeMapping.objects.get()) == "OneUptime monitor checkout-api → Helix TeamHub project borealis"
    assert b"checkout-api" in client.get("/admin/dashboard/changemapping/").content
