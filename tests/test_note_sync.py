"""The OneUptime mirror over real HTTP: incidents and notes arrive, change, and disappear."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from dashboard.models import Incident, IncidentNote, SyncState, Transition, TransitionKind
from dashboard.upstreams.http import UpstreamError
from dashboard.upstreams.oneuptime import sync as note_sync

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim(oneuptime_sim):
    """The simulator on a clock the test moves by hand."""
    oneuptime_sim.now = T0
    oneuptime_sim.clock = lambda: oneuptime_sim.now
    return oneuptime_sim


@pytest.fixture
def client(sim, oneuptime_client):
    return oneuptime_client


def sync(client, sim):
    return note_sync.sync_notes(client=client, now=sim.now)


def kinds():
    return list(Transition.objects.values_list("kind", flat=True))


def test_it_mirrors_every_note_and_incident_across_many_pages(client, sim):
    sim.generate(incidents=12, notes=250)
    report = sync(client, sim)
    assert IncidentNote.objects.count() == len(sim.notes) == 250
    assert report.skipped == 0
    assert not Transition.objects.exists(), "the first pass of an empty mirror is history, not news"
    pages = [path for method, path, _ in sim.requests if "incident-public-note/get-list" in path]
    assert len(pages) >= 3, "more than one page of 100"
    referenced = {note["incidentId"] for note in sim.notes.values()}
    assert set(Incident.objects.values_list("upstream_id", flat=True)) >= referenced


def test_every_attribute_is_mirrored_because_the_client_selects_them(client, sim):
    incident = sim.add_incident("API latency", state="Acknowledged", severity="Critical")
    upstream = sim.add_note(incident["_id"], "## Investigating\n\nLatency is up.", postedFromSlackMessageId="C1:1.2")
    sync(client, sim)
    note = IncidentNote.objects.get(upstream_id=upstream["_id"])
    assert note.note == "## Investigating\n\nLatency is up." and note.incident.upstream_id == incident["_id"]
    assert note.posted_at is not None and note.created_at is not None and note.updated_at is not None
    assert note.project_id == sim.project_id and note.created_by_user_id and note.created_by_name
    assert note.posted_from_slack_message_id == "C1:1.2" and note.version is not None
    assert note.raw["_id"] == upstream["_id"]
    mirrored = note.incident
    assert (mirrored.title, mirrored.state, mirrored.severity, mirrored.is_resolved) == (
        "API latency",
        "Acknowledged",
        "Critical",
        False,
    )
    assert mirrored.state_color.startswith("#") and mirrored.incident_number_with_prefix.startswith("INC-")


def test_an_upstream_edit_and_an_upstream_delete_reach_the_mirror(client, sim):
    incident = sim.add_incident("Disk full")
    keep, drop = sim.add_note(incident["_id"], "first"), sim.add_note(incident["_id"], "second")
    sync(client, sim)
    Transition.objects.all().delete()

    sim.now += timedelta(seconds=5)
    sim.edit_note(keep["_id"], note="first, corrected")
    sim.delete_note(drop["_id"])
    report = sync(client, sim)

    assert IncidentNote.objects.get(upstream_id=keep["_id"]).note == "first, corrected"
    assert not IncidentNote.objects.filter(upstream_id=drop["_id"]).exists()
    assert sorted(kinds()) == ["note_deleted", "note_updated"]
    assert report.finished


def test_an_incremental_sync_reads_only_what_changed(client, sim):
    sim.generate(incidents=5, notes=150)
    sync(client, sim)
    Transition.objects.all().delete()
    before = len(sim.requests)
    sim.now += timedelta(minutes=5)
    incident = next(iter(sim.incidents.values()))
    sim.add_note(incident["_id"], "one more")
    report = sync(client, sim)
    assert (report.created, kinds()) == (1, ["note_created"])
    note_pages = [path for _, path, _ in sim.requests[before:] if "incident-public-note/get-list" in path]
    assert len(note_pages) == 1


def test_the_notification_workers_touch_is_not_shown_as_an_edit(client, sim):
    incident = sim.add_incident("Queue backlog")
    upstream = sim.add_note(incident["_id"], "We are looking into it.")
    sync(client, sim)
    Transition.objects.all().delete()
    sim.now += timedelta(seconds=90)  # OneUptime rewrites the subscriber status about a minute later
    sync(client, sim)
    note = IncidentNote.objects.get(upstream_id=upstream["_id"])
    assert note.subscriber_notification_status_message
    assert TransitionKind.NOTE_UPDATED not in kinds()


def test_an_incident_state_change_is_a_transition(client, sim):
    incident = sim.add_incident("Login errors", state="Created")
    sync(client, sim)
    Transition.objects.all().delete()
    sim.now += timedelta(seconds=5)
    sim.set_incident_state(incident["_id"], "Resolved")
    sync(client, sim)
    assert Incident.objects.get(upstream_id=incident["_id"]).is_resolved
    assert kinds() == ["incident_changed", "states_changed"], "the incident's header, then its timeline's new row"


def test_notes_of_a_private_incident_keep_its_name(client, sim):
    """A Project Member key cannot read private incidents, but their notes still list."""
    incident = sim.add_incident("Security review", isPrivate=True)
    sim.add_note(incident["_id"], "Handled privately.")
    sync(client, sim)
    mirrored = Incident.objects.get(upstream_id=incident["_id"])
    assert mirrored.title == "Security review" and mirrored.notes.count() == 1


def test_a_broken_answer_keeps_the_watermark_and_the_next_pass_recovers(client, sim):
    sim.generate(incidents=3, notes=30)
    sim.corrupt_next(1)
    with pytest.raises(UpstreamError):
        sync(client, sim)
    assert SyncState.objects.get(source="oneuptime").cursor.get("notes") is None
    sync(client, sim)
    assert IncidentNote.objects.count() == 30


def test_an_upstream_outage_is_retried(client, sim):
    sim.generate(incidents=3, notes=30)
    sim.fail_next(2, status=503)
    sync(client, sim)
    assert IncidentNote.objects.count() == 30


def test_sync_once_runs_both_sources(sim, hth_sim, capsys):
    sim.generate(incidents=3, notes=20)
    hth_sim.generate(10)
    call_command("sync", "--once")
    out = capsys.readouterr().out
    assert "hth: 10 seen" in out and "oneuptime:" in out
    assert IncidentNote.objects.count() == 20


def test_an_edit_after_a_quiet_pass_still_arrives(client, sim):
    """A quiet pass re-reads only the newest change; that must not make the next pass skip it."""
    incident = sim.add_incident("Cache misses")
    note = sim.add_note(incident["_id"], "first")
    sync(client, sim)
    sync(client, sim)  # nothing changed
    sim.now += timedelta(seconds=5)
    sim.edit_note(note["_id"], note="second")
    sync(client, sim)
    assert IncidentNote.objects.get(upstream_id=note["_id"]).note == "second"


def test_more_than_a_page_of_changes_at_one_instant_are_all_read(client, sim):
    incident = sim.add_incident("Bulk import")
    notes = [sim.add_note(incident["_id"], f"note {index}") for index in range(230)]  # all at sim.now
    sync(client, sim)
    assert IncidentNote.objects.count() == 230
    sim.now += timedelta(seconds=5)
    sim.edit_note(notes[7]["_id"], note="edited later")
    sync(client, sim)
    assert IncidentNote.objects.get(upstream_id=notes[7]["_id"]).note == "edited later"


def test_a_non_object_incident_state_skips_only_that_incident_until_it_is_corrected(client, sim):
    broken = sim.add_incident("Broken state", state="Resolved")
    sim.add_note(broken["_id"], "On the broken incident.")
    fine = sim.add_incident("Fine")
    sim.add_note(fine["_id"], "On the fine one.")
    sim.malform(broken["_id"], currentIncidentState="Resolved", incidentSeverity=["Major"])
    report = sync(client, sim)
    assert report.finished and report.skipped
    assert set(Incident.objects.values_list("title", flat=True)) == {"Fine"}

    sim.unmalform(broken["_id"])  # fixed without its updatedAt moving
    sim.now += timedelta(minutes=5)
    sync(client, sim)
    assert Incident.objects.get(upstream_id=broken["_id"]).is_resolved
    assert IncidentNote.objects.filter(incident__upstream_id=broken["_id"]).count() == 1


def test_a_malformed_note_corrected_later_is_read_again(client, sim):
    incident = sim.add_incident("Search lag")
    note = sim.add_note(incident["_id"], "Indexer restarted.", shouldStatusPageSubscribersBeNotifiedOnNoteCreated=False)
    sim.malform(note["_id"], note=["not", "text"])
    sim.now += timedelta(seconds=1)
    sim.add_note(incident["_id"], "Reindexing.")  # the watermark moves past the malformed one
    sync(client, sim)
    assert list(IncidentNote.objects.values_list("note", flat=True)) == ["Reindexing."]
    sim.unmalform(note["_id"])
    sim.now += timedelta(minutes=5)  # long after: only remembering it can bring it back
    sync(client, sim)
    assert IncidentNote.objects.get(upstream_id=note["_id"]).note == "Indexer restarted."


def test_a_nul_character_in_a_note_is_stored_without_it(client, sim):
    incident = sim.add_incident("Binary junk")
    upstream = sim.add_note(incident["_id"], "before\x00after", postedFromSlackMessageId="C1\x00:2")
    later = sim.add_note(incident["_id"], "an ordinary note")
    sync(client, sim)
    note = IncidentNote.objects.get(upstream_id=upstream["_id"])
    assert note.note == "beforeafter" and "\x00" not in str(note.raw)
    assert IncidentNote.objects.filter(upstream_id=later["_id"]).exists()


def test_a_note_dated_a_day_ahead_does_not_seal_out_later_changes(oneuptime_sim):
    """Against the real command and the simulator's real clock: the watermark stays behind now."""
    sim = oneuptime_sim
    incident = sim.add_incident("Clock skew")
    edited = sim.add_note(incident["_id"], "first")
    sim.add_note(incident["_id"], "from the future", updatedAt=datetime.now(UTC) + timedelta(days=1))
    call_command("sync", "--once")
    watermark = datetime.fromisoformat(SyncState.objects.get(source="oneuptime").cursor["notes"]["updated_at"])
    assert watermark <= datetime.now(UTC)

    sim.edit_note(edited["_id"], note="first, edited")
    added = sim.add_note(incident["_id"], "second")
    call_command("sync", "--once")
    assert IncidentNote.objects.get(upstream_id=edited["_id"]).note == "first, edited"
    assert IncidentNote.objects.filter(upstream_id=added["_id"]).exists()


def test_an_edit_stamped_while_oneuptimes_clock_runs_behind_is_found_by_the_rescan(oneuptime_sim, settings):
    """Against the real command: an edit stamped a day in the past lies below the watermark; the rescan finds it."""
    sim = oneuptime_sim
    settings.ONEUPTIME_RESCAN_SECONDS = 3600
    incident = sim.add_incident("Clock behind")
    note = sim.add_note(incident["_id"], "first")
    call_command("sync", "--once")
    sim.clock = lambda: datetime.now(UTC) - timedelta(days=1)
    sim.edit_note(note["_id"], note="edited while the clock ran a day behind")
    call_command("sync", "--once")
    assert IncidentNote.objects.get(upstream_id=note["_id"]).note == "first"  # below the watermark: unseen

    settings.ONEUPTIME_RESCAN_SECONDS = 0.001  # the rescan is due
    call_command("sync", "--once")
    assert IncidentNote.objects.get(upstream_id=note["_id"]).note == "edited while the clock ran a day behind"
    rescanned = datetime.fromisoformat(SyncState.objects.get(source="oneuptime").cursor["rescanned_at"])
    assert datetime.now(UTC) - rescanned < timedelta(minutes=1)


def test_a_deletion_is_mirrored_when_one_upstream_note_cannot_be(client, sim):
    """Equal counts (one note unmirrorable, one deleted) must not hide the deletion."""
    incident = sim.add_incident("Queue backlog")
    bad = sim.add_note(incident["_id"], "bad")
    gone = sim.add_note(incident["_id"], "to be deleted")
    sim.add_note(incident["_id"], "stays")
    sim.malform(bad["_id"], incidentId=None)
    sync(client, sim)
    assert IncidentNote.objects.count() == 2
    sim.delete_note(gone["_id"])
    sim.now += timedelta(seconds=5)
    sync(client, sim)
    assert list(IncidentNote.objects.values_list("note", flat=True)) == ["stays"]


def test_an_incident_deleted_upstream_leaves_the_mirror_with_its_notes(client, sim):
    doomed, kept = sim.add_incident("Posted by mistake"), sim.add_incident("Real one")
    sim.add_note(doomed["_id"], "oops")
    sim.add_note(kept["_id"], "real")
    sync(client, sim)
    Transition.objects.all().delete()
    sim.delete_incident(doomed["_id"])
    sim.now += timedelta(seconds=5)
    sync(client, sim)
    assert list(Incident.objects.values_list("title", flat=True)) == ["Real one"]
    assert list(IncidentNote.objects.values_list("note", flat=True)) == ["real"]
    assert TransitionKind.INCIDENT_DELETED in kinds()


@pytest.mark.parametrize("limit_max", [10_000, 100])
def test_sync_once_mirrors_deletions_from_either_kind_of_server(oneuptime_sim, limit_max):
    """OneUptime's source allows `limit` up to 10000; its docs page says 100, and a server may enforce that."""
    sim = oneuptime_sim
    sim.limit_max = limit_max
    sim.generate(incidents=5, notes=250)
    call_command("sync", "--once")
    doomed = list(sim.notes)[::50]
    for note_id in doomed:
        sim.delete_note(note_id)
    call_command("sync", "--once")
    assert IncidentNote.objects.count() == 250 - len(doomed)
    assert not IncidentNote.objects.filter(upstream_id__in=doomed).exists()


def test_a_huge_note_is_stored_whole(client, sim):
    incident = sim.add_incident("Pasted logs")
    text = "a pasted log line\n" * 200_000  # 3.6 MB
    upstream = sim.add_note(incident["_id"], text)
    sync(client, sim)
    note = IncidentNote.objects.get(upstream_id=upstream["_id"])
    assert note.note == text
    assert "note" not in note.raw, "the text is kept once, in `note`, not again in `raw`"


def test_a_watermark_already_carried_into_the_future_is_healed_by_reading_everything_again(client, sim):
    """As an earlier version left it: nothing dated before it would ever be read again."""
    incident = sim.add_incident("Healed")
    note = sim.add_note(incident["_id"], "already mirrored")
    sync(client, sim)
    SyncState.objects.filter(source="oneuptime").update(
        cursor={"notes": {"updated_at": (sim.now + timedelta(days=1)).isoformat(), "skip": 0}}
    )
    sim.now += timedelta(seconds=5)
    sim.edit_note(note["_id"], note="edited under the old watermark")
    sync(client, sim)
    assert IncidentNote.objects.get(upstream_id=note["_id"]).note == "edited under the old watermark"


def test_a_note_larger_than_an_answer_may_be_is_skipped_and_read_again_until_it_fits(client, sim, settings):
    settings.UPSTREAM_MAX_ANSWER_BYTES = 256 * 1024
    incident = sim.add_incident("Log flood")
    huge = sim.add_note(incident["_id"], "## Investigating\n\n" + "stack trace line\n" * 40_000)  # 680 KB
    for number in range(5):
        sim.add_note(incident["_id"], f"Update {number}.")

    report = sync(client, sim)

    assert report.finished and report.skipped  # by the page, then by the retry list
    assert IncidentNote.objects.count() == 5 and not IncidentNote.objects.filter(upstream_id=huge["_id"]).exists()
    assert SyncState.objects.get(source="oneuptime").cursor["notes_skipped"] == [huge["_id"]]

    sim.edit_note(huge["_id"], note="## Identified\n\nThe log shipper looped; fixed.")
    sim.now += timedelta(minutes=5)
    sync(client, sim)
    assert IncidentNote.objects.get(upstream_id=huge["_id"]).note.startswith("## Identified")
    assert SyncState.objects.get(source="oneuptime").cursor["notes_skipped"] == []


def test_a_webhook_for_a_note_too_large_to_read_remembers_it_for_the_next_pass(client, sim, settings):
    settings.UPSTREAM_MAX_ANSWER_BYTES = 256 * 1024
    incident = sim.add_incident("Log flood")
    sim.add_note(incident["_id"], "Small.")
    sync(client, sim)
    huge = sim.add_note(incident["_id"], "x" * 300_000)

    report = note_sync.sync_notes_by_id(client=client, note_ids=[huge["_id"]], now=sim.now)

    assert report.skipped == 1
    assert SyncState.objects.get(source="oneuptime").cursor["notes_skipped"] == [huge["_id"]]
