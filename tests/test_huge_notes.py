"""A huge note costs only what a page shows: cards (dashboard, wall, their pushes) load the start of each
open incident's latest note, never every note's full text; the timeline shows more (as much as
markdown.py renders)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.live import push, screens
from dashboard.models import Incident, IncidentNote
from dashboard.web import feeds

pytestmark = pytest.mark.django_db

HUGE = "## Investigating\n\n" + "The log shipper keeps retrying. " * 100_000  # 3.2 MB


@pytest.fixture
def incident():
    now = timezone.now()
    incident = Incident.objects.create(upstream_id="flood", title="Log flood", declared_at=now, synced_at=now)
    for minutes, upstream_id, text in [(30, "old", "Older note. " * 50_000), (20, "huge", HUGE), (10, "late", "x")]:
        IncidentNote.objects.create(
            upstream_id=upstream_id, incident=incident, note=text, posted_at=now - timedelta(minutes=minutes)
        )
    IncidentNote.objects.filter(upstream_id="late").update(deleted=True)
    return incident


def test_open_incidents_load_only_the_start_of_the_latest_note(incident):
    (loaded,) = feeds.open_incidents()

    (note,) = loaded.recent_notes
    assert note.upstream_id == "huge" and note.cut
    assert note.excerpt == HUGE[: feeds.NOTE_EXCERPT_CHARS]
    assert {"note", "raw"} <= note.get_deferred_fields() and "raw" in loaded.get_deferred_fields()


def test_the_dashboard_the_wall_and_their_pushes_stay_small_and_link_to_the_whole_note(client, incident):
    client.force_login(get_user_model().objects.create_user("oncall", password="x"))
    dashboard = client.get("/").content.decode()
    wall = client.get(f"/wall/?key={screens.screen_named('Ops TV').key}").content.decode()
    pushed = "".join(message.html for message in push.incident_messages([], now=timezone.now()))

    for html in (dashboard, wall, pushed):
        assert "The log shipper keeps retrying." in html
        assert len(html) < 200_000, "a card shows the start of the note, not 3 MB of it"
    assert "the whole note</a>" in dashboard and 'href="/incidents/flood/"' in dashboard


def test_the_timeline_loads_only_as_much_of_each_note_as_it_renders(incident):
    notes = feeds.timeline(incident)

    assert [note.upstream_id for note in notes] == ["old", "huge"]
    assert all({"note", "raw"} <= note.get_deferred_fields() for note in notes)
    assert notes[1].shown == HUGE[:20_000] and notes[1].note_length == len(HUGE)


def test_the_timeline_shows_more_than_a_card_does(client, incident):
    client.force_login(get_user_model().objects.create_user("oncall", password="x"))
    html = client.get("/incidents/flood/").content.decode()
    assert html.count("The log shipper keeps retrying.") > feeds.NOTE_EXCERPT_CHARS // 32 * 5
    assert f"this note is {len(HUGE):,} characters long" in html


def test_the_admins_note_list_loads_only_the_start_of_each_note(admin_client, incident):
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        html = admin_client.get("/admin/dashboard/incidentnote/").content.decode()

    assert "The log shipper keeps retrying." in html and "Older note." in html
    assert len(html) < 200_000
    whole = re.compile(r'[^(]"dashboard_incident(note)?"\."(note|raw)"')  # a column read whole, not through LEFT/SUBSTR
    assert not [query["sql"][:200] for query in queries if whole.search(query["sql"])]
    page = admin_client.get(f"/admin/dashboard/incidentnote/{IncidentNote.objects.get(upstream_id='huge').pk}/change/")
    assert page.status_code == 200 and HUGE[-100:] in page.content.decode(), "a note's own page has the whole text"


def test_the_note_lists_incident_filter_offers_the_open_incidents_not_every_one(admin_client, incident):
    now = timezone.now()
    done = Incident.objects.create(upstream_id="done", title="Old outage", declared_at=now, synced_at=now, is_resolved=True)
    IncidentNote.objects.create(upstream_id="done-note", incident=done, note="Fixed.", posted_at=now)

    html = admin_client.get("/admin/dashboard/incidentnote/").content.decode()
    assert f"?incident__id__exact={incident.pk}" in html and f"?incident__id__exact={done.pk}" not in html
    only_done = admin_client.get(f"/admin/dashboard/incidentnote/?incident__id__exact={done.pk}").content.decode()
    assert "Fixed." in only_done and "The log shipper" not in only_done, "a resolved one's link (search finds it) still filters"
