"""The incident state timeline mirrored over real HTTP, and the durations derived from it."""

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.live import incident_clock
from dashboard.models import IncidentClock, IncidentNote, IncidentStateChange, Transition, TransitionKind
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime.client import OneUptimeClient

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim(oneuptime_sim):
    oneuptime_sim.now = T0
    oneuptime_sim.clock = lambda: oneuptime_sim.now
    return oneuptime_sim


@pytest.fixture
def client(sim, oneuptime_client):
    return oneuptime_client


def sync(client, sim):
    return note_sync.sync_notes(client=client, now=sim.now)


def states(incident_id):
    rows = IncidentStateChange.objects.filter(incident_upstream_id=incident_id).order_by("starts_at")
    return [(row.state_name, row.starts_at) for row in rows]


def clock(incident_id):
    return IncidentClock.objects.get(incident_upstream_id=incident_id)


def later(sim, **delta):
    sim.now += timedelta(**delta)
    return sim.now


def test_the_timeline_is_mirrored_in_startsat_order_with_durations_from_its_own_times(client, sim):
    incident = sim.add_incident("Checkout errors", state="Created")
    later(sim, minutes=4)
    sim.set_incident_state(incident["_id"], "Acknowledged")
    later(sim, minutes=30)
    sim.set_incident_state(incident["_id"], "Resolved")
    report = sync(client, sim)
    assert report.skipped == 0
    assert states(incident["_id"]) == [
        ("Created", T0),
        ("Acknowledged", T0 + timedelta(minutes=4)),
        ("Resolved", T0 + timedelta(minutes=34)),
    ]
    assert not Transition.objects.exists(), "a first pass is history, not news"
    measured = clock(incident["_id"])
    assert measured.time_to_acknowledge == timedelta(minutes=4)
    assert measured.time_to_resolve == timedelta(minutes=34)
    assert not measured.is_open and measured.periods == [[T0.isoformat(), (T0 + timedelta(minutes=34)).isoformat()]]
    assert {entry["name"]: entry["seconds"] for entry in measured.states} == {"Created": 240, "Acknowledged": 1800}


def test_later_passes_read_only_from_the_watermark_and_announce_the_change(client, sim):
    incident = sim.add_incident("Slow uploads", state="Created")
    sync(client, sim)
    later(sim, minutes=10)
    sim.requests.clear()
    sim.set_incident_state(incident["_id"], "Acknowledged")
    sync(client, sim)
    asked = [body for method, path, body in sim.requests if "incident-state-timeline/get-list" in path]
    assert asked and all("updatedAt" in body["query"] for body in asked[:1]), "incremental: from the watermark"
    assert Transition.objects.filter(kind=TransitionKind.STATES_CHANGED, upstream_id=incident["_id"]).count() == 1
    assert clock(incident["_id"]).time_to_acknowledge == timedelta(minutes=10)


def test_a_backdated_state_moves_to_its_place_and_the_durations_follow(client, sim):
    incident = sim.add_incident("Webhooks late", state="Created")
    later(sim, minutes=50)
    sim.set_incident_state(incident["_id"], "Resolved")
    sync(client, sim)
    assert clock(incident["_id"]).time_to_acknowledge == timedelta(minutes=50), "resolved without an ack: by then"
    later(sim, minutes=5)
    sim.add_state(incident["_id"], "Acknowledged", starts_at=T0 + timedelta(minutes=7))  # entered after the fact
    sync(client, sim)
    assert [name for name, _ in states(incident["_id"])] == ["Created", "Acknowledged", "Resolved"]
    assert clock(incident["_id"]).time_to_acknowledge == timedelta(minutes=7)
    assert Transition.objects.filter(kind=TransitionKind.STATES_CHANGED, upstream_id=incident["_id"]).exists()


def test_an_edited_startsat_reorders_the_rows_although_upstreams_endsat_goes_stale(client, sim):
    incident = sim.add_incident("DNS failures", state="Created")
    later(sim, minutes=10)
    sim.set_incident_state(incident["_id"], "Acknowledged")
    later(sim, minutes=10)
    resolved = sim.states_of(incident["_id"])[-1]
    sim.set_incident_state(incident["_id"], "Resolved")
    resolved = sim.states_of(incident["_id"])[-1]
    sync(client, sim)
    later(sim, minutes=1)
    sim.move_state(resolved["_id"], T0 + timedelta(minutes=15))
    sync(client, sim)
    assert clock(incident["_id"]).time_to_resolve == timedelta(minutes=15)
    stale = IncidentStateChange.objects.get(upstream_id=sim.states_of(incident["_id"])[1]["_id"])
    assert stale.ends_at == T0 + timedelta(minutes=20), "OneUptime's cache still says 20: the clock did not use it"
    assert {entry["name"]: entry["seconds"] for entry in clock(incident["_id"]).states}["Acknowledged"] == 300


def test_a_deleted_row_is_reconciled_and_the_incident_measured_again(client, sim):
    incident = sim.add_incident("Search stale", state="Created")
    later(sim, minutes=3)
    sim.set_incident_state(incident["_id"], "Acknowledged")
    later(sim, minutes=3)
    sim.set_incident_state(incident["_id"], "Resolved")
    sync(client, sim)
    acknowledged = sim.states_of(incident["_id"])[1]
    later(sim, minutes=1)
    sim.delete_state(acknowledged["_id"])
    sync(client, sim)
    assert not IncidentStateChange.objects.filter(upstream_id=acknowledged["_id"]).exists()
    # OneUptime moves the next row back to the deleted one's start (state-timeline notes §1.5).
    assert states(incident["_id"]) == [("Created", T0), ("Resolved", T0 + timedelta(minutes=3))]
    assert clock(incident["_id"]).time_to_resolve == timedelta(minutes=3)
    assert Transition.objects.filter(kind=TransitionKind.STATES_CHANGED, upstream_id=incident["_id"]).exists()


def test_an_incident_deleted_upstream_takes_its_timeline_and_clock(client, sim):
    incident = sim.add_incident("Gone soon")
    sync(client, sim)
    assert IncidentClock.objects.filter(incident_upstream_id=incident["_id"]).exists()
    later(sim, minutes=1)
    sim.delete_incident(incident["_id"])
    sync(client, sim)
    assert not IncidentStateChange.objects.filter(incident_upstream_id=incident["_id"]).exists()
    assert not IncidentClock.objects.filter(incident_upstream_id=incident["_id"]).exists()


def test_a_reopened_incident_has_both_periods_and_counts_the_open_one_up(client, sim):
    incident = sim.add_incident("Login 502s", state="Created")
    later(sim, minutes=20)
    sim.set_incident_state(incident["_id"], "Resolved")
    later(sim, minutes=40)
    sim.set_incident_state(incident["_id"], "Acknowledged")  # reopened through the incident form
    sync(client, sim)
    measured = clock(incident["_id"])
    reopened = T0 + timedelta(minutes=60)
    assert measured.periods == [[T0.isoformat(), (T0 + timedelta(minutes=20)).isoformat()], [reopened.isoformat(), None]]
    assert measured.is_open and measured.time_to_resolve == timedelta(minutes=20)
    assert {entry["name"]: entry["since"] for entry in measured.states}["Acknowledged"] == reopened.isoformat()


def test_a_row_dated_a_day_ahead_hides_no_later_change(client, sim):
    incident = sim.add_incident("Skewed", state="Created")
    sync(client, sim)
    real_now = sim.now
    sim.now = real_now + timedelta(days=1)  # OneUptime's clock a day ahead while it writes one row
    sim.set_incident_state(incident["_id"], "Acknowledged")
    sim.now = real_now + timedelta(minutes=1)
    note_sync.sync_notes(client=client, now=sim.now)
    sim.now += timedelta(minutes=1)
    sim.set_incident_state(incident["_id"], "Resolved")
    note_sync.sync_notes(client=client, now=sim.now)
    assert [name for name, _ in states(incident["_id"])] == ["Created", "Resolved", "Acknowledged"]


def test_a_malformed_row_is_skipped_remembered_and_read_again_once_corrected(client, sim):
    incident = sim.add_incident("Broken row", state="Created")
    later(sim, minutes=2)
    sim.set_incident_state(incident["_id"], "Acknowledged")
    bad = sim.states_of(incident["_id"])[1]
    sim.malform(bad["_id"], startsAt={"_type": "DateTime", "value": "not a date"})
    report = sync(client, sim)
    assert report.skipped and not IncidentStateChange.objects.filter(upstream_id=bad["_id"]).exists()
    assert IncidentStateChange.objects.filter(incident_upstream_id=incident["_id"]).count() == 1, "the rest arrived"
    sim.unmalform(bad["_id"])
    sync(client, sim)
    assert IncidentStateChange.objects.filter(upstream_id=bad["_id"]).exists()


def test_a_key_that_may_not_read_the_timeline_still_mirrors_notes_and_says_why(sim, settings):
    incident = sim.add_incident("Private-ish", state="Created")
    sim.add_note(incident["_id"], "## Investigating\n\nLooking.")
    readonly = OneUptimeClient(sim.url, sim.read_only_key)
    report = note_sync.sync_notes(client=readonly, now=sim.now)
    assert report.finished and IncidentNote.objects.count() == 1
    assert not IncidentStateChange.objects.exists()
    assert "may not read" in note_sync.states_unreadable()
    granted = OneUptimeClient(sim.url, sim.add_api_key({"read", "timeline"}))
    note_sync.sync_notes(client=granted, now=sim.now)
    assert note_sync.states_unreadable() == "" and IncidentStateChange.objects.count() == 1


def test_rebuilding_the_clocks_from_the_mirror_gives_what_the_sync_derived(client, sim):
    sim.generate(incidents=15, notes=40)
    sync(client, sim)
    later(sim, minutes=5)
    for incident_id in list(sim.incidents)[-3:]:
        sim.set_incident_state(incident_id, "Resolved")
    sync(client, sim)
    fields = ["incident_upstream_id", "started_at", "time_to_acknowledge", "time_to_resolve", "periods", "states", "is_open"]
    derived = list(IncidentClock.objects.order_by("incident_upstream_id").values(*fields))
    assert incident_clock.rebuild(now=sim.now) == len(derived) == 15
    assert list(IncidentClock.objects.order_by("incident_upstream_id").values(*fields)) == derived
