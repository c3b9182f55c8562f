from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch
from django.db.models.functions import Left
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from dashboard.live import presence, screens
from dashboard.models import (
    ChangeMapping,
    Event,
    Incident,
    IncidentNote,
    IncidentStateChange,
    NoteWrite,
    Screen,
    ScreenPanel,
    SyncState,
)
from dashboard.templatetags.pulseboard import plain
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.http import UpstreamError
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.oneuptime.client import OneUptimeClient
from dashboard.upstreams.oneuptime.progress import progress_of
from dashboard.upstreams.oneuptime.sync import UNDELIVERED
from dashboard.web.diff import side_by_side
from dashboard.web.markdown import render_markdown


class ReadOnlyAdmin(admin.ModelAdmin):
    """For mirrored rows: they belong upstream, and the sync (or the outbox) changes them, not people."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Read-only: events belong to Helix TeamHub; the mirror only reflects them."""

    list_display = ["timestamp", "subject_id", "operation", "target", "project", "repository", "progress", "status"]
    list_filter = ["status", "target", "operation", "project"]
    search_fields = ["upstream_id", "subject_id", "project", "repository", "ref", "name", "title"]
    date_hierarchy = "timestamp"
    show_full_result_count = False
    actions = ["recheck_upstream"]

    def has_recheck_permission(self, request):
        return request.user.has_perm("dashboard.delete_event")

    @admin.action(description="Re-check with Helix TeamHub (delete those it no longer has)", permissions=["recheck"])
    def recheck_upstream(self, request, queryset):
        """For rows the list passes cannot correct: a forged or deleted event is gone only when the API says 404."""
        ids = list(queryset.order_by("-timestamp").values_list("upstream_id", flat=True))
        result = hth_sync.recheck_events(client=HthClient.from_settings(), upstream_ids=ids, now=timezone.now())
        self.message_user(
            request,
            f"{result.stored} event(s) refreshed from Helix TeamHub; {len(result.deleted)} deleted, which it no longer has"
            + (f": {', '.join(result.deleted[:10])}" if result.deleted else "")
            + (f" ({len(result.deleted) - 10} more)" if len(result.deleted) > 10 else "")
            + ".",
            messages.SUCCESS,
        )
        if result.unread:
            reason = f"Helix TeamHub failed ({result.error})" if result.error else f"at most {hth_sync.RECHECK_MAX} a time"
            self.message_user(request, f"{result.unread} event(s) not checked, and kept: {reason}.", messages.WARNING)


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = ["source", "last_success_at", "last_error_at", "last_error"]
    readonly_fields = ["last_attempt_at", "last_success_at", "last_error", "last_error_at", "last_refresh_at"]


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    """Read-only: incidents belong to OneUptime. It is here so notes can be found by their incident."""

    list_display = ["__str__", "state", "severity", "is_resolved", "declared_at"]
    list_filter = ["is_resolved", "state", "severity"]
    search_fields = ["title", "incident_number_with_prefix", "upstream_id"]


@admin.register(IncidentStateChange)
class IncidentStateChangeAdmin(ReadOnlyAdmin):
    """Read-only: OneUptime's state timeline, as mirrored."""

    list_display = ["incident_upstream_id", "state_name", "starts_at", "updated_at"]
    list_filter = ["state_name"]
    search_fields = ["incident_upstream_id", "upstream_id"]


@admin.register(ChangeMapping)
class ChangeMappingAdmin(admin.ModelAdmin):
    """Which Helix TeamHub project or repository an incident's monitor or label stands for, where their names differ."""

    list_display = ["source_kind", "source_name", "target_kind", "target_name"]
    list_filter = ["source_kind", "target_kind"]
    search_fields = ["source_name", "target_name"]


@admin.register(NoteWrite)
class NoteWriteAdmin(ReadOnlyAdmin):
    """Read-only: the outbox moves on by itself, or through the actions on the notes' list."""

    list_display = ["id", "note", "action", "state", "attempts", "last_error", "next_attempt_at", "delivered_at"]
    list_filter = ["state", "action"]
    list_select_related = ["note"]


class WriteBackFilter(admin.SimpleListFilter):
    title = "write-back"
    parameter_name = "write_back"

    def lookups(self, request, model_admin):
        states = [writeback.SYNCED, NoteWrite.State.PENDING, writeback.DELETING, NoteWrite.State.FAILED, NoteWrite.State.CONFLICT]
        return [(state, state) for state in states]

    def queryset(self, request, queryset):
        return writeback.filter_by_state(queryset, self.value()) if self.value() else queryset


class OpenIncidentFilter(admin.SimpleListFilter):
    """The open incidents, newest first, whose notes people are writing now: never a link for each of the
    thousands of resolved ones (search finds those by title or number)."""

    title = "open incident"
    parameter_name = "incident__id__exact"
    SHOWN = 50

    def lookups(self, request, model_admin):
        incidents = Incident.objects.filter(is_resolved=False).order_by("-declared_at", "-pk")
        shown = incidents.only("pk", "upstream_id", "title", "incident_number_with_prefix")[: self.SHOWN]
        return [(str(incident.pk), str(incident)) for incident in shown]

    def queryset(self, request, queryset):
        return queryset.filter(incident_id=self.value()) if (self.value() or "").isdigit() else queryset


class MarkdownField(forms.CharField):
    """Browsers send a textarea's line breaks as CRLF and OneUptime keeps LF: normalized, an untouched note
    does not look edited, and the text the admin loaded compares equal to OneUptime's. Never stripped, for the same reason."""

    def __init__(self, **kwargs):
        super().__init__(**{"strip": False, **kwargs})

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n")


class IncidentNoteForm(forms.ModelForm):
    base_text = MarkdownField(widget=forms.HiddenInput, required=False, help_text="The note's text as this form loaded it.")

    class Meta:
        model = IncidentNote
        fields = ["incident", "note", "posted_at", "should_status_page_subscribers_be_notified_on_note_created"]
        field_classes = {"note": MarkdownField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_text"].initial = self.instance.note
        if "posted_at" in self.fields:
            zone = timezone.get_current_timezone_name()
            self.fields["posted_at"].help_text = f"In {zone}, 24-hour. Empty means now. OneUptime shows notes in this order."

    def clean_posted_at(self):
        """The time widget drops milliseconds: an untouched time keeps OneUptime's exact one."""
        if "posted_at" not in self.changed_data:
            return self.instance.posted_at
        return self.cleaned_data["posted_at"]


STATE_ICONS = {
    writeback.SYNCED: "admin/img/icon-yes.svg",
    NoteWrite.State.PENDING: "admin/img/icon-clock.svg",
    writeback.DELETING: "admin/img/icon-clock.svg",
    NoteWrite.State.FAILED: "admin/img/icon-no.svg",
    NoteWrite.State.CONFLICT: "admin/img/icon-alert.svg",
}
CONFLICT_REASON = "OneUptime's text changed since the note was loaded here; choose a version"
NOTE_FIELDS = ["incident", "note", "preview", "posted_at"]
LIST_CHARS = 1000  # of each note on the admin's list, which shows its first 120 characters of words
MIRRORED_FIELDS = [
    "author",
    "created_at",
    "updated_at",
    "version",
    "should_status_page_subscribers_be_notified_on_note_created",
    "subscriber_notification_status_message",
    "upstream_id",
]


@admin.register(IncidentNote)
class IncidentNoteAdmin(admin.ModelAdmin):
    """Notes are written here and sent to OneUptime by the poller, through the outbox in upstreams/oneuptime/writeback.py.

    The row and its outbox entry commit together: Django runs save_model and delete_model inside the
    admin's transaction, and delete_queryset (the "delete selected" action, which skips delete_model)
    opens its own. A deleted note stays, labelled deleting, until OneUptime has deleted it too.
    """

    form = IncidentNoteForm
    # The note, which is the link, comes first: at 1440 px a long incident title pushed it off screen.
    list_display = ["first_line", "write_back", "incident", "posted_at", "author"]
    list_display_links = ["first_line"]
    list_filter = [OpenIncidentFilter, "incident__state", "incident__is_resolved", WriteBackFilter]
    search_fields = ["note", "created_by_name", "created_by_email", "incident__title", "incident__incident_number_with_prefix"]
    ordering = ["-posted_at", "-id"]
    actions = ["retry_write_back", "overwrite_upstream", "use_upstream"]

    class Media:
        js = ["dashboard/admin-preview.js", "dashboard/admin-write-back.js"]
        css = {"all": ["dashboard/admin-notes.css"]}

    def get_queryset(self, request):
        # The list's write-back column reads each note's undelivered writes: one query for the page.
        undelivered = NoteWrite.objects.filter(state__in=UNDELIVERED)
        notes = (
            super().get_queryset(request).select_related("incident").prefetch_related(Prefetch("writes", queryset=undelivered))
        )
        if request.resolver_match and request.resolver_match.url_name == "dashboard_incidentnote_changelist":
            # A page of 100 notes shows their first lines: never 100 notes of megabytes each, and their raw copies.
            notes = notes.defer("note", "raw", "incident__raw").annotate(note_start=Left("note", LIST_CHARS))
        return notes

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": [*NOTE_FIELDS, "should_status_page_subscribers_be_notified_on_note_created"]})]
        editable = ["base_text"] if self.has_change_permission(request, obj) else []
        in_conflict = writeback.state_of(obj) == NoteWrite.State.CONFLICT
        return [
            (None, {"fields": [*NOTE_FIELDS, *editable]}),
            ("Write-back to OneUptime", {"fields": ["write_back", *(["conflict"] if in_conflict else [])]}),
            ("Mirrored from OneUptime", {"fields": MIRRORED_FIELDS}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["preview"]
        return ["incident", "preview", "write_back", "conflict", *MIRRORED_FIELDS]

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj and obj.deleted)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and obj.deleted)

    def get_urls(self):
        preview = path(
            "preview/", self.admin_site.admin_view(require_POST(self.preview_view)), name="dashboard_incidentnote_preview"
        )
        progress = path(
            "<int:pk>/write-back/",
            self.admin_site.admin_view(self.write_back_view),
            name="dashboard_incidentnote_write_back",
        )
        return [preview, progress, *super().get_urls()]

    def write_back_view(self, request, pk):
        """Where a note's write-back is, in words, for the message shown after a save (admin-write-back.js)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        note = self.get_queryset(request).filter(pk=pk).first()
        progress = progress_of(note)
        return JsonResponse({"stage": progress.stage, "words": progress.words, "final": progress.final})

    def preview_view(self, request):
        """The change form's live preview: the same sanitized HTML the pages show."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        return HttpResponse(render_markdown(request.POST.get("note", "")))

    def save_model(self, request, obj, form, change):
        # Only what the form edits: the poller may have stored the note's `_id` since this request read it.
        obj.save(update_fields=["note", "posted_at"] if change else None)
        request.write_back_of = obj
        if not change or form.has_changed():  # saving an untouched form must not post an edit to OneUptime
            writeback.enqueue(note=obj, action="update" if change else "create", base_text=form.cleaned_data["base_text"])
        else:
            request.write_back_of = None

    def delete_model(self, request, obj):
        request.write_back_of = obj if writeback.enqueue(note=obj, action="delete") else None

    def message_user(self, request, message, level=messages.INFO, extra_tags="", fail_silently=False):
        """After a save or delete, Django's "changed successfully" would be shown while the write-back is still
        pending: the message says where it is instead, and the page's script follows it until delivered or held."""
        if level == messages.SUCCESS and hasattr(request, "write_back_of"):
            message = self.write_back_message(message, request.write_back_of)
        super().message_user(request, message, level, extra_tags, fail_silently)

    def write_back_message(self, message, note):
        if note is None:
            return format_html("{} Nothing needed sending to OneUptime.", message)
        fresh = IncidentNote.objects.filter(pk=note.pk).first()  # not the form's copy, whose prefetched writes predate the save
        url = reverse("admin:dashboard_incidentnote_write_back", args=[note.pk])
        return format_html(
            '{} <span class="write-back-progress" data-url="{}" data-stage="{}" role="status">{}</span>',
            "Deleted here." if note.deleted else "Saved here.",
            url,
            progress_of(fresh).stage,
            progress_of(fresh).words,
        )

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for note in queryset:
                writeback.enqueue(note=note, action="delete")

    def get_deleted_objects(self, objs, request):
        """Only the notes themselves: their outbox rows go once OneUptime has the delete."""
        return [str(note) for note in objs], {IncidentNote._meta.verbose_name_plural: len(objs)}, set(), []

    @admin.display(description="author", empty_value="—")
    def author(self, note):
        return note.created_by_name or note.created_by_email or note.created_by_user_id or None

    @admin.display(description="note")
    def first_line(self, note):
        """The words, not the markdown: "## Identified **now**" reads "Identified now"."""
        start = getattr(note, "note_start", None)  # on the list; a note's own page has the whole text anyway
        return Truncator(plain(note.note if start is None else start)).chars(120) or "(empty)"

    @admin.display(description="write-back")
    def write_back(self, note):
        write = writeback.outstanding_write(note)
        state = writeback.state_of(note)
        if state == NoteWrite.State.CONFLICT:
            reason = write.last_error or CONFLICT_REASON
        else:
            reason = write.last_error if write else ""
        return format_html(
            '<span class="write-back" title="{}"><img src="{}" alt=""> {}{}{}</span>',
            reason,
            static(STATE_ICONS[state]),
            state,
            ": " if reason else "",
            Truncator(reason).chars(60),
        )

    @admin.display(description="preview")
    def preview(self, note):
        url = reverse("admin:dashboard_incidentnote_preview")
        return format_html(
            '<div id="note-preview" class="note-preview markdown" data-url="{}">{}</div>', url, render_markdown(note.note)
        )

    @admin.display(description="both versions")
    def conflict(self, note):
        write = writeback.outstanding_write(note)
        comparison = side_by_side(write.data.get("note") or "", write.upstream_copy.get("note") or "")
        context = {
            "rows": comparison.rows,
            "aligned": comparison.aligned,
            "hidden": comparison.hidden,
            "yours": render_markdown(write.data.get("note") or ""),
            "theirs": render_markdown(write.upstream_copy.get("note") or ""),
            "upstream_updated_at": parse_datetime(str(write.upstream_copy.get("updatedAt") or "")),
            "note_pk": note.pk,
            "can_resolve": not note.deleted,
            "changelist_url": reverse("admin:dashboard_incidentnote_changelist"),
        }
        return render_to_string("admin/dashboard/incidentnote/conflict.html", context)

    @admin.action(description="Retry write-back", permissions=["change"])
    def retry_write_back(self, request, queryset):
        self._act_on_writes(request, queryset, NoteWrite.State.FAILED, writeback.retry, "{} failed write(s) queued again.")

    @admin.action(description="Overwrite OneUptime with this version", permissions=["change"])
    def overwrite_upstream(self, request, queryset):
        message = "{} conflicting write(s) will overwrite OneUptime's text."
        self._act_on_writes(request, queryset, NoteWrite.State.CONFLICT, writeback.overwrite, message)

    @admin.action(description="Use OneUptime's version", permissions=["change"])
    def use_upstream(self, request, queryset):
        """Reads each note from OneUptime now; if that fails, its conflict stays and the admin is told why."""
        client = OneUptimeClient.from_settings()
        try:
            self._act_on_writes(
                request,
                queryset,
                NoteWrite.State.CONFLICT,
                lambda write: writeback.use_upstream(write, client=client),
                "{} note(s) now show OneUptime's text.",
            )
        except UpstreamError as exc:
            self.message_user(
                request, f"OneUptime's version could not be read; those notes keep their conflict: {exc}", messages.ERROR
            )

    def _act_on_writes(self, request, notes, state, act, message):
        writes = list(NoteWrite.objects.filter(note__in=notes, state=state))
        for write in writes:
            act(write)
        self.message_user(request, message.format(len(writes)))


class ScreenPanelInline(admin.TabularInline):
    model = ScreenPanel
    extra = 0
    fields = ["panel", "position", "dwell_seconds"]


@admin.register(Screen)
class ScreenAdmin(admin.ModelAdmin):
    """Wall displays: their kiosk links and settings. Saving reloads the TV; revoking stops it for good."""

    list_display = ["name", "live_now", "connected_since", "version", "last_push", "project", "time_zone", "rotate", "link_state"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "project"]
    readonly_fields = ["kiosk_link", "created_at", "last_seen_at", "revoked_at"]
    fields = [
        "name",
        "kiosk_link",
        "project",
        "time_zone",
        "text_scale",
        "rotate",
        "jump_to_failures",
        "quiet_from",
        "quiet_until",
        "chime",
        "created_at",
        "last_seen_at",
        "revoked_at",
    ]
    inlines = [ScreenPanelInline]
    actions = ["reload_screens", "identify_screens", "play_test_chime", "revoke_screens"]

    def get_queryset(self, request):
        # "Live now" and its columns read each screen's fresh sockets: one query for the page.
        return super().get_queryset(request).prefetch_related(presence.fresh_connections(now=timezone.now()))

    @admin.display(description="Live now")
    def live_now(self, screen):
        live = presence.summary(screen.live_connections)
        if not live:
            return "no"
        return "yes" if live.sockets == 1 else f"yes ({live.sockets} sockets)"

    @admin.display(description="connected since")
    def connected_since(self, screen):
        live = presence.summary(screen.live_connections)
        return formats.localize(timezone.localtime(live.since)) if live else "—"

    @admin.display(description="version")
    def version(self, screen):
        live = presence.summary(screen.live_connections)
        return ", ".join(live.versions) if live and live.versions else "—"

    @admin.display(description="last push")
    def last_push(self, screen):
        live = presence.summary(screen.live_connections)
        return formats.localize(timezone.localtime(live.last_push_at)) if live and live.last_push_at else "—"

    @admin.action(description="Reload the selected screens")
    def reload_screens(self, request, queryset):
        for screen in queryset:
            screens.tell(screen, "reload")
        self.message_user(request, f"{queryset.count()} screen(s) told to reload.")

    @admin.action(description="Show the selected screens' names for ten seconds")
    def identify_screens(self, request, queryset):
        for screen in queryset:
            screens.tell(screen, "identify")
        self.message_user(request, f"{queryset.count()} screen(s) show their name now, for ten seconds.")

    @admin.action(description="Play the test chime on the selected screens")
    def play_test_chime(self, request, queryset):
        for screen in queryset:
            screens.tell(screen, "chime")
        self.message_user(request, f"{queryset.count()} screen(s) play the chime now (if their browser allows sound).")

    @admin.display(description="kiosk link")
    def kiosk_link(self, screen):
        if not screen.pk:
            return "Shown once, when you save."
        if screen.is_revoked:
            return "Revoked. Run `manage.py wall_link NAME` for a new link."
        return "Active. Shown only when it was made; `manage.py wall_link NAME --new-key` replaces it."

    @admin.display(description="link")
    def link_state(self, screen):
        return "revoked" if screen.is_revoked else "active"

    @admin.action(description="Revoke the kiosk links of the selected screens")
    def revoke_screens(self, request, queryset):
        for screen in queryset:
            screens.revoke(screen)
        self.message_user(request, f"{queryset.count()} screen(s) revoked: their walls stop now.")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.issue_key()
        super().save_model(request, obj, form, change)
        if not change:
            link = screens.kiosk_url(obj, base_url=request.build_absolute_uri("/"))
            self.message_user(request, format_html('Kiosk link, shown only now: <a href="{}">{}</a>', link, link))

    def delete_model(self, request, obj):
        screens.forget(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # the walls hear of it only once the delete commits
            for screen in queryset:
                screens.forget(screen)
            super().delete_queryset(request, queryset)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change:
            screens.settings_changed(form.instance)
