"""One hostile record never stops its source: a lone surrogate, a deep nest or a huge value is one bad row.

Each test serves the record from a simulator over loopback and runs the real pass; the records
around it must be mirrored as always.
"""

import pytest
from django.utils import timezone

from dashboard.models import Event, IncidentNote, SyncState
from dashboard.simulators.loopback import BEYOND_PARSER
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.storable import MAX_CHARS

pytestmark = pytest.mark.django_db

LONE_SURROGATE = "\ud800"


@pytest.fixture
def hth(hth_sim):
    return HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)


def nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"inner": value}
    return value


def test_a_lone_surrogate_in_an_event_is_shown_as_a_replacement_character(hth_sim, hth):
    odd = hth_sim.add_event(target="build", name=f"deploy {LONE_SURROGATE} prod", description=LONE_SURROGATE)
    good = hth_sim.add_event(target="push")
    report = hth_sync.sync_events(client=hth, now=timezone.now())
    assert report.finished
    assert Event.objects.filter(upstream_id=good["id"]).exists()
    event = Event.objects.get(upstream_id=odd["id"])
    assert event.name == "deploy \ufffd prod"
    assert event.raw["objects"]["description"] == "\ufffd"


def test_an_oversized_event_is_one_skipped_row_kept_for_retry(hth_sim, hth):
    bad = hth_sim.add_event(target="push", description="x" * (MAX_CHARS + 1))
    good = hth_sim.add_event(target="push")
    report = hth_sync.sync_events(client=hth, now=timezone.now())
    assert report.finished and report.skipped == 1
    assert Event.objects.filter(upstream_id=good["id"]).exists()
    assert not Event.objects.filter(upstream_id=bad["id"]).exists()
    assert bad["id"] in SyncState.objects.get(source="hth").cursor["retry"]

    hth_sim.update_event(bad["id"], description="fixed")  # corrected upstream: the next pass reads it by id
    hth_sync.sync_events(client=hth, now=timezone.now())
    assert Event.objects.get(upstream_id=bad["id"]).description == "fixed"


def test_an_event_id_with_a_lone_surrogate_is_skipped_and_not_retried(hth_sim, hth):
    hth_sim.add_event(target="push", id=f"bad{LONE_SURROGATE}")
    good = hth_sim.add_event(target="push")
    report = hth_sync.sync_events(client=hth, now=timezone.now())
    assert report.finished and report.skipped == 1
    assert Event.objects.filter(upstream_id=good["id"]).exists()
    assert SyncState.objects.get(source="hth").cursor["retry"] == {}


def test_a_lone_surrogate_in_a_note_does_not_stop_the_notes_pass(oneuptime_sim, oneuptime_client):
    incident = oneuptime_sim.add_incident(f"Outage {LONE_SURROGATE}")
    odd = oneuptime_sim.add_note(incident["_id"], f"Mitigated {LONE_SURROGATE} at the edge")
    good = oneuptime_sim.add_note(incident["_id"], "Monitoring")
    report = note_sync.sync_notes(client=oneuptime_client, now=timezone.now())
    assert report.finished
    assert IncidentNote.objects.get(upstream_id=good["_id"]).note == "Monitoring"
    assert IncidentNote.objects.get(upstream_id=odd["_id"]).note == "Mitigated \ufffd at the edge"
    assert IncidentNote.objects.get(upstream_id=odd["_id"]).incident.title == "Outage \ufffd"


def test_a_note_nested_deeper_than_the_stack_is_one_skipped_row(oneuptime_sim, oneuptime_client):
    incident = oneuptime_sim.add_incident("Outage")
    bad = oneuptime_sim.add_note(incident["_id"], "Nested")
    oneuptime_sim.malform(bad["_id"], customFields=nested(5000))
    good = oneuptime_sim.add_note(incident["_id"], "Monitoring")
    report = note_sync.sync_notes(client=oneuptime_client, now=timezone.now())
    assert report.finished and report.skipped >= 1
    assert IncidentNote.objects.filter(upstream_id=good["_id"]).exists()
    assert not IncidentNote.objects.filter(upstream_id=bad["_id"]).exists()


def test_a_note_nested_beyond_the_parser_costs_one_note_not_the_notes_pass(oneuptime_sim, oneuptime_client):
    incident = oneuptime_sim.add_incident("Outage")
    bad = oneuptime_sim.add_note(incident["_id"], "Nested beyond any parser")
    oneuptime_sim.malform(bad["_id"], customFields=BEYOND_PARSER)
    good = oneuptime_sim.add_note(incident["_id"], "Monitoring")
    report = note_sync.sync_notes(client=oneuptime_client, now=timezone.now())
    assert report.finished and report.skipped == 1
    assert IncidentNote.objects.get(upstream_id=good["_id"]).note == "Monitoring"
    assert not IncidentNote.objects.filter(upstream_id=bad["_id"]).exists()
    # The simulator's broken proxy adds the nest to every form of the record, its id alone included: the
    # record is skipped without an id, and read again once its updatedAt moves.

    oneuptime_sim.unmalform(bad["_id"])  # OneUptime serves it whole again
    oneuptime_sim.edit_note(bad["_id"], note="Repaired")
    note_sync.sync_notes(client=oneuptime_client, now=timezone.now())
    assert IncidentNote.objects.get(upstream_id=bad["_id"]).note == "Repaired"


def test_an_event_nested_beyond_the_parser_costs_one_item_not_its_page(hth_sim, hth):
    hth_sim.generate(30)
    bad = hth_sim.add_malformed_event("beyond_parser")
    newer = hth_sim.add_event(target="push")
    report = hth_sync.sync_events(client=hth, now=timezone.now())
    assert report.finished and report.skipped == 1
    assert not Event.objects.filter(upstream_id=bad["id"]).exists()
    assert set(Event.objects.values_list("upstream_id", flat=True)) == {e["id"] for e in hth_sim.well_formed_events()}
    assert newer["id"] in set(Event.objects.values_list("upstream_id", flat=True))
