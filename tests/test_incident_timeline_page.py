"""The incident page as one timeline of state changes and notes, fed by the real sync from the simulator."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from dashboard.live import push
from dashboard.models import Transition
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime.client import OneUptimeClient

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ITEM = re.compile(r'<li class="(state-change|note)"[^>]*?(?:data-state="([^"]*)"|data-note-state="([^"]*)")')


@pytest.fixture
def sim(oneuptime_sim):
    oneuptime_sim.now = T0
    oneuptime_sim.clock = lambda: oneuptime_sim.now
    return oneuptime_sim


@pytest.fixture
def person(client):
    client.force_login(get_user_model().objects.create_user("oncall", password="a long pass phrase"))
    return client


def later(sim, **delta):
    sim.now += timedelta(**delta)


def story(sim):
    """Declared, a note, acknowledged after 4 min, a note, resolved after 34 min, "all clear" posted after that."""
    incident = sim.add_incident("Checkout errors", state="Created", severity="Critical")
    later(sim, minutes=1)
    sim.add_note(incident["_id"], "We are looking into failed payments.")
    later(sim, minutes=3)
    sim.set_incident_state(incident["_id"], "Acknowledged")
    later(sim, minutes=10)
    sim.add_note(incident["_id"], "## Identified\n\nA bad deploy of the rate limiter.")
    later(sim, minutes=20)
    sim.set_incident_state(incident["_id"], "Resolved")
    later(sim, minutes=1)
    sim.add_note(incident["_id"], "All systems are operating normally again.")
    return incident


def items(html):
    return [(kind, state or note_state) for kind, state, note_state in ITEM.findall(html)]


def test_states_and_notes_are_one_timeline_and_each_note_wears_the_state_in_force(sim, oneuptime_client, person):
    incident = story(sim)
    note_sync.sync_notes(client=oneuptime_client, now=sim.now)
    html = person.get(f"/incidents/{incident['_id']}/").content.decode()
    assert items(html) == [
        ("state-change", "Created"),
        ("note", "Created"),
        ("state-change", "Acknowledged"),
        ("note", "Acknowledged"),  # its heading says Identified; OneUptime's timeline says Acknowledged
        ("state-change", "Resolved"),
        ("note", "Resolved"),  # "All systems are operating normally again" under Resolved, not Investigating
    ]
    assert 'data-duration="acknowledge" data-seconds="240"' in html
    assert 'data-duration="resolve" data-seconds="2040"' in html
    assert 'data-duration="in-state" data-state-name="Acknowledged" data-seconds="1800"' in html
    assert "data-states-fallback" not in html
    assert html.count("<time datetime=") + html.count('<time data-format="both" datetime=') >= 6


def test_a_key_that_may_not_read_the_timeline_falls_back_to_headings_and_says_so(sim, person):
    incident = story(sim)
    note_sync.sync_notes(client=OneUptimeClient(sim.url, sim.read_only_key), now=sim.now)
    html = person.get(f"/incidents/{incident['_id']}/").content.decode()
    assert items(html) == [("note", ""), ("note", "Identified"), ("note", "Identified")]
    assert "data-states-fallback" in html and "Read Incident State Timeline" in html
    assert "data-duration" not in html, "a resolved incident's duration is unknown without its timeline: nothing guessed"


def test_a_backdated_state_is_pushed_to_the_open_page_in_its_place(sim, oneuptime_client):
    incident = sim.add_incident("Webhooks late", state="Created")
    later(sim, minutes=30)
    sim.add_note(incident["_id"], "Draining the backlog.")
    note_sync.sync_notes(client=oneuptime_client, now=sim.now)
    later(sim, minutes=5)
    sim.add_state(incident["_id"], "Acknowledged", starts_at=T0 + timedelta(minutes=6))
    note_sync.sync_notes(client=oneuptime_client, now=sim.now)
    changes = list(Transition.objects.filter(upstream_id=incident["_id"]))
    html = "".join(m.html for m in push.render_messages(changes) if m.group == push.incident_group(incident["_id"]))
    assert items(html) == [("state-change", "Created"), ("state-change", "Acknowledged"), ("note", "Acknowledged")]
    assert 'data-duration="acknowledge" data-seconds="360"' in html


def test_a_reopened_incident_shows_both_periods_and_counts_the_second_up(sim, oneuptime_client, person):
    incident = sim.add_incident("Login 502s", state="Created")
    later(sim, minutes=5)
    sim.set_incident_state(incident["_id"], "Acknowledged")
    later(sim, minutes=15)
    sim.set_incident_state(incident["_id"], "Resolved")
    later(sim, minutes=40)
    sim.set_incident_state(incident["_id"], "Acknowledged")  # reopened
    note_sync.sync_notes(client=oneuptime_client, now=sim.now)
    html = person.get(f"/incidents/{incident['_id']}/").content.decode()
    assert re.findall(r'data-duration="period" data-seconds="(\d+)"', html)[0] == "1200"
    assert html.count('data-duration="period"') == 2 and "Reopened, open for" in html
    assert 'data-duration="resolve" data-seconds="1200"' in html, "time to resolve is the first resolution's"
    reopened = (T0 + timedelta(minutes=60)).isoformat()
    assert f'now (<time data-format="elapsed" datetime="{reopened}">' in html, "the open period counts up from its start"
