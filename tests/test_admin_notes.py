"""The notes admin as a person uses it: its own forms and actions, with the outbox delivering to the simulator
over real HTTP, as the poller does."""

from datetime import UTC, datetime, timedelta

import pytest
from django import forms
from django.urls import reverse
from django.utils import timezone

from dashboard.models import IncidentNote, NoteWrite, Transition, TransitionKind
from dashboard.simulators import oneuptime
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.oneuptime.sync import TOKEN_PREFIX
from tests.processes import free_port

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script> **bold** [link](javascript:alert(1)) <img src=x onerror=alert(1)>'


@pytest.fixture
def sim(oneuptime_sim):
    return oneuptime_sim


@pytest.fixture
def upstream(oneuptime_client):
    return oneuptime_client


def mirrored_note(sim, upstream, text="## Investigating\n\nLatency is up.") -> IncidentNote:
    incident = sim.add_incident("API latency")
    row = sim.add_note(incident["_id"], text)
    note_sync.sync_notes(client=upstream, now=timezone.now())
    return IncidentNote.objects.get(upstream_id=row["_id"])


def deliver(upstream, *, later=timedelta(0)):
    """What the poller runs about once a second."""
    return writeback.deliver_due(client=upstream, now=timezone.now() + later)


def form_data(response, **changes) -> dict:
    """What a browser posts back from the admin form in `response`: its current values, then `changes`."""
    data = {}
    for field in response.context["adminform"].form:
        value, widget = field.value(), field.field.widget
        if isinstance(widget, forms.MultiWidget):
            for index, part in enumerate(widget.decompress(value)):
                data[f"{field.html_name}_{index}"] = "" if part is None else str(part)
        elif isinstance(widget, forms.CheckboxInput):
            if value:
                data[field.html_name] = "on"
        else:
            data[field.html_name] = "" if value is None else value
    return data | changes


def change_url(note):
    return reverse("admin:dashboard_incidentnote_change", args=[note.pk])


def edit(admin_client, note, text):
    """Load the change form, then save it with `text`, as a person would."""
    url = change_url(note)
    response = admin_client.post(url, form_data(admin_client.get(url), note=text))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    return response


def create(admin_client, incident, text, **extra):
    url = reverse("admin:dashboard_incidentnote_add")
    response = admin_client.post(url, form_data(admin_client.get(url), incident=incident.pk, note=text, **extra))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    return IncidentNote.objects.get(note=text)


def upstream_texts(sim):
    return sorted(note["note"] for note in sim.notes.values())


def test_a_note_created_here_reaches_oneuptime_with_subscriber_notification_off(admin_client, sim, upstream):
    incident = mirrored_note(sim, upstream).incident
    note = create(admin_client, incident, "## Identified\n\nA bad deploy of the rate limiter.")
    assert note.upstream_id is None and writeback.state_of(note) == "pending"
    assert len(sim.notes) == 1, "nothing is sent from the admin's request"

    report = deliver(upstream)

    assert report.created == 1
    note.refresh_from_db()
    sent = sim.notes[note.upstream_id]
    assert sent["note"] == "## Identified\n\nA bad deploy of the rate limiter."
    assert sent["incidentId"] == incident.upstream_id
    assert sent["shouldStatusPageSubscribersBeNotifiedOnNoteCreated"] is False
    assert sent["postedFromSlackMessageId"] == TOKEN_PREFIX + str(note.writes.get().token)
    assert note.subscriber_notification_status_message == oneuptime.SKIPPED_MESSAGE
    assert writeback.state_of(note) == "synced"
    assert Transition.objects.filter(kind=TransitionKind.NOTE_CREATED, note=note).exists()


def test_ticking_the_box_notifies_subscribers(admin_client, sim, upstream):
    incident = mirrored_note(sim, upstream).incident
    add_form = admin_client.get(reverse("admin:dashboard_incidentnote_add")).content.decode()
    assert "off unless you tick it" in add_form
    note = create(admin_client, incident, "Resolved.", should_status_page_subscribers_be_notified_on_note_created="on")
    deliver(upstream)
    note.refresh_from_db()
    assert sim.notes[note.upstream_id]["shouldStatusPageSubscribersBeNotifiedOnNoteCreated"] is True


def test_an_edit_and_a_delete_made_here_reach_oneuptime(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream)
    edit(admin_client, note, "## Identified\n\nRolled back.")
    assert deliver(upstream).updated == 1
    assert sim.notes[note.upstream_id]["note"] == "## Identified\n\nRolled back."
    note.refresh_from_db()
    assert note.version == sim.notes[note.upstream_id]["version"] and writeback.state_of(note) == "synced"

    response = admin_client.post(reverse("admin:dashboard_incidentnote_delete", args=[note.pk]), {"post": "yes"})
    assert response.status_code == 302
    note.refresh_from_db()
    assert note.deleted and writeback.state_of(note) == "deleting"
    assert "deleting" in admin_client.get(reverse("admin:dashboard_incidentnote_changelist")).content.decode()
    assert note.upstream_id in sim.notes, "sent by the poller, not by the admin's request"

    deliver(upstream)
    assert note.upstream_id not in sim.notes
    assert not IncidentNote.objects.filter(pk=note.pk).exists()
    assert Transition.objects.filter(kind=TransitionKind.NOTE_DELETED, upstream_id=note.upstream_id).exists()


def test_saving_an_untouched_form_sends_nothing(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "line one\nline two\n")
    url = change_url(note)
    # A browser sends a textarea's line breaks as CRLF.
    admin_client.post(url, form_data(admin_client.get(url), note="line one\r\nline two\r\n"))
    assert not note.writes.exists()
    posted_at = note.posted_at
    note.refresh_from_db()
    assert note.note == "line one\nline two\n"
    assert note.posted_at == posted_at and posted_at.microsecond, "the widget drops milliseconds; the note keeps them"


def test_the_post_alternatives_carry_edits_through_a_proxy_that_refuses_put_and_delete(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream)
    sim.refuse_methods = {"PUT", "DELETE"}
    edit(admin_client, note, "Edited behind a strict proxy.")
    deliver(upstream)
    assert sim.notes[note.upstream_id]["note"] == "Edited behind a strict proxy."

    admin_client.post(reverse("admin:dashboard_incidentnote_delete", args=[note.pk]), {"post": "yes"})
    deliver(upstream)
    assert note.upstream_id not in sim.notes
    paths = [(method, path) for method, path, _ in sim.requests]
    assert ("POST", f"/api/incident-public-note/{note.upstream_id}/update-item") in paths
    assert ("POST", f"/api/incident-public-note/{note.upstream_id}/delete-item") in paths


def test_an_edit_made_while_oneuptime_is_down_stays_pending_and_is_delivered_when_it_returns(
    admin_client, sim, upstream, settings
):
    note = mirrored_note(sim, upstream)
    edit(admin_client, note, "Written during the outage.")
    settings.UPSTREAM_RETRIES = 0
    down = OneUptimeClient(f"http://127.0.0.1:{free_port()}/api", sim.api_key)

    report = deliver(down)

    write = note.writes.get()
    assert (report.seen, write.state, write.attempts) == (1, "pending", 1)
    assert "could not connect" in write.last_error and "\n" not in write.last_error
    assert write.next_attempt_at > timezone.now()
    assert deliver(upstream).seen == 0, "it waits for its backoff"
    page = admin_client.get(reverse("admin:dashboard_incidentnote_changelist")).content.decode()
    assert "pending" in page and "could not connect" in page
    note.refresh_from_db()
    assert note.note == "Written during the outage."

    deliver(upstream, later=writeback.FIRST_BACKOFF)

    assert sim.notes[note.upstream_id]["note"] == "Written during the outage."
    write.refresh_from_db()
    assert write.state == "delivered"


def test_an_edit_of_a_note_changed_in_oneuptime_meanwhile_is_held_with_both_versions(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="Investigating. **Update from the OneUptime UI.**")
    admin_client.post(url, form_data(loaded, note="Investigating. *Our update.*"))

    deliver(upstream)

    assert sim.notes[note.upstream_id]["note"] == "Investigating. **Update from the OneUptime UI.**", "theirs is not overwritten"
    note.refresh_from_db()
    assert note.note == "Investigating. *Our update.*", "nor is ours"
    assert writeback.state_of(note) == "conflict"
    page = admin_client.get(url).content.decode()
    assert "<strong>Update from the OneUptime UI.</strong>" in page and "<em>Our update.</em>" in page
    assert "conflict" in admin_client.get(reverse("admin:dashboard_incidentnote_changelist")).content.decode()

    admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"), {"action": "overwrite_upstream", "_selected_action": [note.pk]}
    )
    deliver(upstream)
    assert sim.notes[note.upstream_id]["note"] == "Investigating. *Our update.*"
    assert writeback.state_of(note) == "synced"


def test_a_conflict_can_be_settled_with_oneuptimes_version(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="Theirs.")
    admin_client.post(url, form_data(loaded, note="Ours."))
    deliver(upstream)

    admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"), {"action": "use_upstream", "_selected_action": [note.pk]}
    )

    note.refresh_from_db()
    assert note.note == "Theirs." and writeback.state_of(note) == "synced"
    assert sim.notes[note.upstream_id]["note"] == "Theirs."
    assert deliver(upstream).seen == 0


def test_oneuptimes_own_touch_a_minute_after_a_create_is_not_a_conflict(admin_client, sim, upstream):
    sim.now = datetime.now(UTC)
    sim.clock = lambda: sim.now
    note = mirrored_note(sim, upstream, "Investigating.")  # posted with subscriber notification on: pending
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.now += timedelta(seconds=90)  # the notification worker rewrites the status, touching updatedAt
    admin_client.post(url, form_data(loaded, note="Investigating, with an update."))

    deliver(upstream)

    upstream_note = sim.notes[note.upstream_id]
    assert upstream_note["subscriberNotificationStatusMessage"] == oneuptime.NOTIFIED_MESSAGE
    assert upstream_note["note"] == "Investigating, with an update."
    assert writeback.state_of(note) == "synced"


def test_a_key_without_update_permission_leaves_the_edit_visible_as_failed(admin_client, sim, settings):
    settings.ONEUPTIME_API_KEY = sim.read_only_key
    read_only = OneUptimeClient.from_settings()
    note = mirrored_note(sim, read_only, "Investigating.")
    edit(admin_client, note, "An edit this key may not send.")

    deliver(read_only)

    write = note.writes.get()
    assert write.state == "failed"
    assert "Edit Incident Status Page Note" in write.last_error and "\n" not in write.last_error
    note.refresh_from_db()
    assert note.note == "An edit this key may not send."
    assert sim.notes[note.upstream_id]["note"] == "Investigating."
    list_page = admin_client.get(reverse("admin:dashboard_incidentnote_changelist")).content.decode()
    change_page = admin_client.get(change_url(note)).content.decode()
    for page in (list_page, change_page):
        assert "failed" in page and "Edit Incident Status Page Note" in page
    assert deliver(read_only).seen == 0, "a failed write is not retried by itself"

    settings.ONEUPTIME_API_KEY = sim.api_key  # someone fixed the key
    admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"), {"action": "retry_write_back", "_selected_action": [note.pk]}
    )
    deliver(OneUptimeClient.from_settings())
    assert sim.notes[note.upstream_id]["note"] == "An edit this key may not send."


def test_deleting_a_note_that_never_reached_oneuptime_just_removes_it(admin_client, sim, upstream):
    incident = mirrored_note(sim, upstream).incident
    note = create(admin_client, incident, "Posted by mistake.")
    admin_client.post(reverse("admin:dashboard_incidentnote_delete", args=[note.pk]), {"post": "yes"})
    assert not IncidentNote.objects.filter(pk=note.pk).exists() and not NoteWrite.objects.exists()
    requests_before = len(sim.requests)
    deliver(upstream)
    assert len(sim.requests) == requests_before and len(sim.notes) == 1


def test_the_delete_selected_action_writes_each_delete_back(admin_client, sim, upstream):
    incident = sim.add_incident("Disk full")
    rows = [sim.add_note(incident["_id"], f"note {number}") for number in range(3)]
    note_sync.sync_notes(client=upstream, now=timezone.now())
    chosen = list(IncidentNote.objects.filter(upstream_id__in=[rows[0]["_id"], rows[1]["_id"]]).values_list("pk", flat=True))
    changelist = reverse("admin:dashboard_incidentnote_changelist")

    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": chosen, "post": "yes"})

    assert IncidentNote.objects.filter(deleted=True).count() == 2
    deliver(upstream)
    assert list(sim.notes) == [rows[2]["_id"]]
    assert list(IncidentNote.objects.values_list("upstream_id", flat=True)) == [rows[2]["_id"]]


def test_the_list_filters_by_write_back_state_incident_and_text(admin_client, sim, upstream):
    open_incident = sim.add_incident("Login page returns 502 errors")
    resolved = sim.add_incident("Slow file uploads", state="Resolved")
    sim.add_note(open_incident["_id"], "Investigating the auth proxy.")
    sim.add_note(resolved["_id"], "Uploads are fast again.")
    note_sync.sync_notes(client=upstream, now=timezone.now())
    edit(admin_client, IncidentNote.objects.get(note="Investigating the auth proxy."), "Investigating the auth proxy, still.")
    changelist = reverse("admin:dashboard_incidentnote_changelist")

    def shown(**query):
        return sorted(note.note for note in admin_client.get(changelist, query).context["cl"].result_list)

    assert shown(write_back="pending") == ["Investigating the auth proxy, still."]
    assert shown(write_back="synced") == ["Uploads are fast again."]
    assert shown(write_back="failed") == []
    assert shown(incident__is_resolved__exact="1") == ["Uploads are fast again."]
    assert shown(q="auth proxy") == ["Investigating the auth proxy, still."]
    assert shown(q="Slow file") == ["Uploads are fast again."]
    assert shown(q=IncidentNote.objects.get(note="Uploads are fast again.").incident.incident_number_with_prefix) == [
        "Uploads are fast again."
    ]


def test_the_preview_renders_markdown_sanitized(admin_client, client, sim):
    url = reverse("admin:dashboard_incidentnote_preview")
    html = admin_client.post(url, {"note": XSS}).content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "<img" not in html and "href" not in html
    assert "&lt;script&gt;" in html, "shown as text"
    assert admin_client.get(url).status_code == 405
    assert client.post(url, {"note": "x"}).status_code == 302, "staff only: others go to the login page"


def test_the_change_page_never_lets_a_notes_markup_run(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, XSS)
    page = admin_client.get(change_url(note)).content.decode()
    assert '<div id="note-preview"' in page and "<strong>bold</strong>" in page
    assert "<script>alert" not in page and "<img src=x onerror" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert" in page, "the textarea shows the text, escaped"
    assert "dashboard/admin-preview.js" in page
    assert "<script>alert" not in admin_client.get(reverse("admin:dashboard_incidentnote_changelist")).content.decode()


def test_a_second_admins_edit_of_an_older_copy_does_not_erase_the_first(admin_client, sim, upstream):
    """Both open the note; the second saves over a text the first already changed, before anything was sent."""
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    first, second = admin_client.get(url), admin_client.get(url)
    admin_client.post(url, form_data(first, note="Admin one's update."))
    admin_client.post(url, form_data(second, note="Admin two's update."))

    deliver(upstream)
    deliver(upstream)

    assert sim.notes[note.upstream_id]["note"] == "Admin one's update."
    assert writeback.state_of(note) == "conflict"
    held = writeback.outstanding_write(note)
    assert (held.data["note"], held.upstream_copy["note"]) == ("Admin two's update.", "Admin one's update.")


def test_taking_oneuptimes_version_takes_its_latest_text_not_the_copy_seen_at_delivery(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="Theirs.")
    admin_client.post(url, form_data(loaded, note="Ours."))
    deliver(upstream)
    assert writeback.state_of(note) == "conflict"
    sim.edit_note(note.upstream_id, note="Theirs, edited again.")
    note_sync.sync_notes(client=upstream, now=timezone.now() + timedelta(minutes=5))  # held: the watermark moves on

    admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"), {"action": "use_upstream", "_selected_action": [note.pk]}
    )

    note.refresh_from_db()
    assert note.note == "Theirs, edited again." and writeback.state_of(note) == "synced"


def test_taking_oneuptimes_version_while_it_is_down_keeps_the_conflict(admin_client, sim, upstream, settings):
    settings.UPSTREAM_RETRIES = 0
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="Theirs.")
    admin_client.post(url, form_data(loaded, note="Ours."))
    deliver(upstream)
    settings.ONEUPTIME_API_URL = f"http://127.0.0.1:{free_port()}/api"

    response = admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"),
        {"action": "use_upstream", "_selected_action": [note.pk]},
        follow=True,
    )

    assert "OneUptime&#x27;s version could not be read; those notes keep their conflict" in response.content.decode()
    note.refresh_from_db()
    assert note.note == "Ours." and writeback.state_of(note) == "conflict"


def test_taking_oneuptimes_version_of_a_note_deleted_there_removes_it_here(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="Theirs.")
    admin_client.post(url, form_data(loaded, note="Ours."))
    deliver(upstream)
    sim.delete_note(note.upstream_id)

    admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"), {"action": "use_upstream", "_selected_action": [note.pk]}
    )

    assert not IncidentNote.objects.filter(pk=note.pk).exists()


def test_the_conflict_page_shows_a_side_by_side_diff_and_settles_with_one_button(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "## Investigating\n\nLatency is up.\nNext update soon.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="## Investigating\n\nLatency is up <b>a lot</b>.\nNext update soon.")
    admin_client.post(url, form_data(loaded, note="## Identified\n\nLatency is up.\nNext update soon."))
    deliver(upstream)

    conflict = admin_client.get(url)
    page = conflict.content.decode()
    assert page.count('class="diff-changed"') == 2 and page.count('class="diff-same"') == 2
    assert "Latency is up &lt;b&gt;a lot&lt;/b&gt;." in page, "upstream text is escaped in the diff"
    assert ">Keep mine</button>" in page and ">Take OneUptime's</button>" in page

    # What the "Take OneUptime's" button posts: the whole change form, to the list's action.
    admin_client.post(
        reverse("admin:dashboard_incidentnote_changelist"),
        form_data(conflict, action="use_upstream", _selected_action=note.pk, index="0"),
    )

    note.refresh_from_db()
    assert note.note.startswith("## Investigating") and writeback.state_of(note) == "synced"


def test_a_conflict_too_different_to_line_up_shows_both_versions_plainly_and_says_so(admin_client, sim, upstream):
    note = mirrored_note(sim, upstream, "Investigating.")
    url = change_url(note)
    loaded = admin_client.get(url)
    sim.edit_note(note.upstream_id, note="\n".join(f"theirs {n} <i>" for n in range(2500)))
    admin_client.post(url, form_data(loaded, note="\n".join(f"mine {n}" for n in range(2500))))
    deliver(upstream)

    page = admin_client.get(url).content.decode()

    assert "differ in too many lines to line them up" in page
    assert page.count('class="diff-changed"') == 2000 and "… and 500 more lines, not shown here" in page
    assert "theirs 1999 &lt;i&gt;" in page and "mine 1999" in page


def test_the_notes_list_puts_write_back_first_and_shows_words_not_markdown(admin_client, sim, upstream):
    mirrored_note(sim, upstream, "## Identified\n\nRolled back **payments**; see [status](https://status.example.com).")
    page = admin_client.get(reverse("admin:dashboard_incidentnote_changelist")).content.decode()
    headers = page.split("<thead>")[1].split("</thead>")[0].lower()
    assert headers.index("write-back") < headers.index("incident")
    assert "Identified Rolled back payments; see status." in page and "**payments**" not in page
