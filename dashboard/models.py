"""The mirror: upstream rows as we last saw them, the sync's own state, and what changed.

Every attribute the upstream documents gets a column (so the pages never call upstream), and the raw
payload is kept beside them (so nothing an upstream adds later is lost before we learn about it).
"""

import datetime
import functools
import hashlib
import secrets
import uuid
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce, NullIf


class EventStatus(models.TextChoices):
    LIVE = "live", "Live"
    STALE = "stale", "Stalled"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


def pipeline():
    """What names one build's runs: its name, or its ref when it has none (as the wall groups them)."""
    return Coalesce(NullIf("name", models.Value("", output_field=models.TextField())), "ref")


class Event(models.Model):
    """One Helix TeamHub event. Operation and target are free text: unknown values are stored, not rejected."""

    upstream_id = models.CharField(max_length=100, unique=True, help_text="The event's `id` upstream.")
    subject_id = models.CharField(max_length=200, blank=True)
    subject = models.JSONField(null=True, blank=True, help_text="The expanded User or Collaborator, when sent.")
    timestamp = models.DateTimeField()
    operation = models.CharField(max_length=200)
    target = models.CharField(max_length=200)
    # Lifted out of `objects` so the feed can filter on them.
    project = models.CharField(max_length=200, blank=True)
    repository = models.CharField(max_length=200, blank=True)
    ref = models.TextField(blank=True)
    bookmarks = models.JSONField(default=list, blank=True)
    commits = models.JSONField(default=list, blank=True, help_text="Commit ids, or Commit objects when expanded.")
    commit_count = models.PositiveIntegerField(null=True, blank=True)
    last_commit = models.TextField(blank=True)
    files = models.JSONField(default=dict, blank=True, help_text="{added, modified, deleted} file paths.")
    code_reviews = models.JSONField(default=list, blank=True)
    role = models.TextField(blank=True)
    short_name = models.TextField(blank=True)
    name = models.TextField(blank=True)
    description = models.TextField(blank=True)
    title = models.TextField(blank=True)
    state = models.TextField(blank=True)
    visibility = models.TextField(blank=True)
    linked_objects = models.JSONField(default=dict, blank=True, help_text="`objects` upstream: the linked objects.")
    progress = models.PositiveSmallIntegerField(default=100)
    resources = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(help_text="The item exactly as upstream sent it.")

    first_seen_at = models.DateTimeField()
    synced_at = models.DateTimeField()
    progress_changed_at = models.DateTimeField(
        help_text="When progress last increased (upstream updated_at moving counts): the clock for 'stale'."
    )
    status = models.CharField(max_length=20, choices=EventStatus)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            # The feed: newest first, cursor-paginated on (timestamp, id).
            models.Index(fields=["-timestamp", "-id"], name="event_feed"),
            # One per filter: the filtered feed, and the filter form's choices (feeds.filter_choices).
            models.Index(fields=["project", "-timestamp"], name="event_project_feed"),
            models.Index(fields=["repository", "-timestamp"], name="event_repository_feed"),
            models.Index(fields=["target", "-timestamp"], name="event_target_feed"),
            models.Index(fields=["operation", "-timestamp"], name="event_operation_feed"),
            models.Index(fields=["subject_id", "-timestamp"], name="event_person_feed"),
            # Retention keeps each build's latest result: "is there a newer one?" is one probe here.
            models.Index(
                "project",
                "repository",
                pipeline(),
                models.F("timestamp").desc(),
                name="event_build_results",
                condition=models.Q(target="build", status__in=["completed", "failed"]),
            ),
            # A pipeline's runs, newest first: dashboard/live/pipelines.py derives each pipeline from them.
            models.Index(
                "project",
                "repository",
                pipeline(),
                models.F("timestamp").desc(),
                models.F("upstream_id").desc(),
                name="event_pipeline_runs",
                condition=models.Q(target="build"),
            ),
            # `?q=` on PostgreSQL: a pg_trgm index on filters.search_text(), made by migration 0006 (not on SQLite).
            # The targeted refresh and the live panel read only the unfinished few.
            models.Index(
                fields=["status"],
                name="event_unfinished",
                condition=models.Q(status__in=["live", "stale"]),
            ),
        ]

    def __str__(self):
        return f"{self.subject_id} {self.operation} {self.target} ({self.upstream_id})"

    @property
    def is_live(self) -> bool:
        return self.status == EventStatus.LIVE


class TransitionKind(models.TextChoices):
    EVENT_NEW = "event_new", "New event"
    BECAME_LIVE = "became_live", "Became live"
    PROGRESSED = "progressed", "Progressed"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    WENT_STALE = "went_stale", "Went stale"
    NOTE_CREATED = "note_created", "Note created"
    NOTE_UPDATED = "note_updated", "Note updated"
    NOTE_DELETED = "note_deleted", "Note deleted"
    INCIDENT_CHANGED = "incident_changed", "Incident changed"
    INCIDENT_DELETED = "incident_deleted", "Incident deleted"
    STATES_CHANGED = "states_changed", "Incident state timeline changed"


class Transition(models.Model):
    """A change the sync saw, stored as a row (like healthchecks' Flip) and handed on after commit.

    A deleted note leaves no row to point at, so every transition also names its subject's upstream id.
    """

    kind = models.CharField(max_length=30, choices=TransitionKind)
    upstream_id = models.CharField(max_length=100)
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.CASCADE, related_name="transitions")
    incident = models.ForeignKey("Incident", null=True, blank=True, on_delete=models.CASCADE, related_name="transitions")
    note = models.ForeignKey("IncidentNote", null=True, blank=True, on_delete=models.SET_NULL, related_name="transitions")
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["at"], name="transition_at")]  # pruning and catch-up

    def __str__(self):
        return f"{self.kind} {self.upstream_id} at {self.at:%H:%M:%S}"


class Source(models.TextChoices):
    HTH = "hth", "Helix TeamHub"
    ONEUPTIME = "oneuptime", "OneUptime"


class SyncState(models.Model):
    """Where each source's sync stands. The cursor is saved in the same transaction as the rows it covers."""

    source = models.CharField(max_length=20, choices=Source, unique=True)
    cursor = models.JSONField(
        default=dict,
        blank=True,
        help_text="Source-specific: for Helix TeamHub the newest fully synced event and an interrupted run's resume point.",
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_reason = models.CharField(
        max_length=100, blank=True, help_text="The error in a few words, without hosts or upstream text: /healthz shows this."
    )
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True, help_text="Last targeted refresh of unfinished events.")

    def __str__(self):
        return self.get_source_display()


class Incident(models.Model):
    """A OneUptime incident, enough of it to head a timeline without calling upstream."""

    upstream_id = models.CharField(max_length=100, unique=True)
    project_id = models.CharField(max_length=100, blank=True)
    title = models.TextField()
    description = models.TextField(blank=True, help_text="Markdown.")
    state = models.CharField(max_length=200, blank=True)
    state_color = models.CharField(max_length=30, blank=True)
    is_resolved = models.BooleanField(default=False)
    severity = models.CharField(max_length=200, blank=True)
    severity_color = models.CharField(max_length=30, blank=True)
    declared_at = models.DateTimeField(null=True, blank=True)
    incident_number = models.PositiveIntegerField(null=True, blank=True)
    incident_number_with_prefix = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="The incident as upstream sent it.")
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["-declared_at", "-id"]
        indexes = [models.Index(fields=["is_resolved", "-declared_at"], name="incident_open")]  # the open-incidents panel

    def __str__(self):
        return f"{self.incident_number_with_prefix or self.upstream_id} {self.title}"


class IncidentNote(models.Model):
    """A OneUptime incident public note: every attribute of the vendor page, plus write-back bookkeeping.

    `upstream_id` is empty until a note created in the admin reaches OneUptime; a note deleted in the
    admin stays (hidden) until its delete has been delivered, so a failed delete loses nothing.
    """

    upstream_id = models.CharField(max_length=100, unique=True, null=True, blank=True, help_text="`_id` upstream.")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    project_id = models.CharField(max_length=100, blank=True)
    created_by_user_id = models.CharField(max_length=100, blank=True)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_by_email = models.CharField(max_length=254, blank=True)
    note = models.TextField(help_text="Markdown.")
    attachments = models.JSONField(default=list, blank=True)
    subscriber_notification_status_message = models.TextField(blank=True)
    should_status_page_subscribers_be_notified_on_note_created = models.BooleanField(
        "notify status page subscribers",
        default=False,
        help_text="Creating a note can e-mail and text every subscriber of the status page; off unless you tick it.",
    )
    posted_at = models.DateTimeField(null=True, blank=True)
    posted_from_slack_message_id = models.TextField(blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="The note as upstream last sent it.")
    synced_at = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False, help_text="Deleted here; hidden while the delete is written back.")

    class Meta:
        ordering = ["posted_at", "id"]
        indexes = [models.Index(fields=["incident", "posted_at"], name="note_timeline")]  # the timeline

    def __str__(self):
        # The admin's list defers the text and annotates its start (admin.py): a label never loads megabytes.
        start = getattr(self, "note_start", None)
        text = (self.note if start is None else start).strip()
        return text.splitlines()[0][:80] if text else "(empty)"


class NoteWrite(models.Model):
    """The outbox: one admin change to a note, committed with the change and delivered by the poller.

    `base_text` is the note's text when the admin loaded it: if OneUptime's text differs from it by
    delivery time, someone else edited the note and the write is held as a conflict. `token` makes a
    create idempotent across a crash between sending it and recording its `_id`.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"
        CONFLICT = "conflict"
        DISCARDED = "discarded"

    note = models.ForeignKey(IncidentNote, on_delete=models.CASCADE, related_name="writes")
    action = models.CharField(max_length=10, choices=Action)
    state = models.CharField(max_length=10, choices=State, default=State.PENDING)
    data = models.JSONField(default=dict, help_text="The fields to send.")
    base_text = models.TextField(blank=True)
    upstream_copy = models.JSONField(
        null=True, blank=True, encoder=DjangoJSONEncoder, help_text="OneUptime's version, when held as a conflict."
    )
    token = models.UUIDField(default=uuid.uuid4, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The delivery loop reads only what is still due.
            models.Index(fields=["next_attempt_at"], name="notewrite_due", condition=models.Q(state="pending")),
        ]

    def __str__(self):
        return f"{self.action} of note {self.note_id}: {self.state}"


class HookDelivery(models.Model):
    """A webhook delivery the receiver checked and queued for the poller, which may run in another process.

    The receiver only authenticates, parses and queues, so it answers at once and never calls upstream;
    the poller drains the queue within HOOK_QUEUE_CHECK_SECONDS and deletes each row it handled.
    """

    class Kind(models.TextChoices):
        HTH_EVENTS = "hth_events", "Helix TeamHub events (newer Webhooks)"
        HTH_HINT = "hth_hint", "Helix TeamHub hint (older Hooks): list now"
        ONEUPTIME_NOTE = "oneuptime_note", "OneUptime note to re-read"

    kind = models.CharField(max_length=20, choices=Kind)
    payload = models.JSONField(help_text="The Event objects as sent, or the note's id; nothing for a hint.")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}"


@functools.cache
def browser_time_zones() -> frozenset[str]:
    """The IANA names a wall's script can hand to Intl.DateTimeFormat.

    zoneinfo also opens files browsers have never heard of (posix/…, right/…, localtime), and such a
    name used to pass here and then break the wall's clock; "Factory" is accepted but means nothing.
    """
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def new_screen_token() -> str:
    return secrets.token_urlsafe(32)


def hash_kiosk_key(key: str) -> str:
    """Keys are 256 random bits, so one fast hash is enough: a copy of the database opens no wall."""
    return hashlib.sha256(key.encode()).hexdigest()


def unknown_key_hash() -> str:
    """For a screen saved without issuing a key: its link exists, and nobody knows it."""
    return hash_kiosk_key(new_screen_token())


class ScreenQuerySet(models.QuerySet):
    def with_key(self, key: str) -> models.QuerySet:
        return self.filter(key_hash=hash_kiosk_key(key)) if key else self.none()


class Screen(models.Model):
    """One wall display and its kiosk link. Its settings live here, not in the TV's cookies.

    The link never expires by session timeout: it works until someone revokes it in the admin, and a
    revoked screen's open socket is closed with a code that tells the page to stop retrying. Only a
    hash of its key is stored; the key itself is shown once, when issued.
    """

    name = models.CharField(max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, default=unknown_key_hash, editable=False)
    project = models.CharField(max_length=200, blank=True, help_text="Show only this project's events; empty shows all.")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA zone, e.g. Europe/Helsinki.")
    text_scale = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.5), MaxValueValidator(3.0)],
        help_text="1.0 suits a 55-inch TV at three metres; bigger text shows fewer rows, never smaller text.",
    )
    rotate = models.BooleanField(default=False, help_text="Show one panel at a time, each for its dwell time.")
    jump_to_failures = models.BooleanField(
        default=True,
        help_text="When rotating, switch to the panel with a new failure or critical incident at once, and stay while anything is red.",
    )
    quiet_from = models.TimeField(
        null=True,
        blank=True,
        help_text="Quiet hours start, in the screen's zone: dark but for a small clock; a critical incident wakes it.",
    )
    quiet_until = models.TimeField(
        null=True, blank=True, help_text="Quiet hours end (may be past midnight, e.g. 19:00 to 07:00)."
    )
    chime = models.BooleanField(
        default=False,
        help_text="One short chime for a new failure or critical incident: at most one a minute, never in quiet hours.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ScreenQuerySet.as_manager()
    key = ""  # the plain key, only on the instance that issued it or was opened with it: never stored

    def __str__(self):
        return self.name

    def issue_key(self) -> str:
        """A fresh key (save to make it the only one that works); the caller shows it once."""
        self.key = new_screen_token()
        self.key_hash = hash_kiosk_key(self.key)
        return self.key

    def clean(self):
        if self.time_zone not in browser_time_zones():
            raise ValidationError({"time_zone": f"{self.time_zone!r} is not a time zone; try Europe/Helsinki or UTC."})
        if (self.quiet_from is None) != (self.quiet_until is None):
            raise ValidationError({"quiet_until": "Quiet hours need both a start and an end (or neither)."})

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ScreenPanel(models.Model):
    class Panel(models.TextChoices):
        BUILDS = "builds", "Running builds and last results"
        INCIDENTS = "incidents", "Open incidents"
        ACTIVITY = "activity", "Recent activity"

    screen = models.ForeignKey(Screen, on_delete=models.CASCADE, related_name="panels")
    panel = models.CharField(max_length=20, choices=Panel)
    position = models.PositiveSmallIntegerField(default=0)
    dwell_seconds = models.PositiveIntegerField(default=20, help_text="How long this panel shows when rotating.")

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["screen", "panel"], name="one_of_each_panel_per_screen")]

    def __str__(self):
        return self.get_panel_display()


class ScreenConnection(models.Model):
    """One open socket of a kiosk screen, as its server last reported it: the admin's "Live now".

    The consumer writes it soon after connecting and then with every heartbeat, and deletes it on
    disconnect; a row not renewed within a minute (its process died) counts as gone and is pruned.
    """

    screen = models.ForeignKey(Screen, on_delete=models.CASCADE, related_name="connections")
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    version = models.CharField(max_length=100, blank=True, help_text="The version the screen's page was loaded from.")
    last_push_at = models.DateTimeField(null=True, blank=True, help_text="When this socket last forwarded a pushed update.")

    class Meta:
        ordering = ["connected_at"]
        indexes = [
            # The admin's screen list reads the fresh rows of each screen.
            models.Index(fields=["screen", "seen_at"], name="screenconnection_seen"),
        ]

    def __str__(self):
        return f"{self.screen} since {self.connected_at:%Y-%m-%d %H:%M}"


class IncidentStateChange(models.Model):
    """One row of OneUptime's incident state timeline: the incident entered `state_name` at `starts_at`.

    Keyed by the incident's upstream id rather than a foreign key: a key may list the timeline of a
    private incident it cannot read, and the row is mirrored (and counted) all the same. `ends_at` is
    OneUptime's cache and goes stale when a `startsAt` is edited, so intervals come from the rows
    sorted by `starts_at` (dashboard/live/incident_clock.py), never from it.
    """

    upstream_id = models.CharField(max_length=100, unique=True, help_text="`_id` upstream.")
    incident_upstream_id = models.CharField(max_length=100)
    state_id = models.CharField(max_length=100, blank=True)
    state_name = models.CharField(max_length=200, blank=True)
    state_color = models.CharField(max_length=30, blank=True)
    state_order = models.IntegerField(null=True, blank=True)
    is_created_state = models.BooleanField(default=False)
    is_acknowledged_state = models.BooleanField(default=False)
    is_resolved_state = models.BooleanField(default=False)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="OneUptime's cache of the next row's start; not trusted.")
    root_cause = models.TextField(blank=True)
    created_by_user_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="The row as upstream sent it.")
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["starts_at", "upstream_id"]
        indexes = [models.Index(fields=["incident_upstream_id", "starts_at"], name="state_timeline")]

    def __str__(self):
        return f"{self.incident_upstream_id} {self.state_name} from {self.starts_at:%Y-%m-%d %H:%M}"


class IncidentClock(models.Model):
    """How long an incident took, derived from its state timeline whenever that changes (live/incident_clock.py).

    Only OneUptime's own times go in (never our clock against theirs); an open period has no end here,
    and the page counts it up. Rebuildable from the mirror at any time.
    """

    incident_upstream_id = models.CharField(max_length=100, unique=True)
    # A join by upstream id, with no column or constraint of its own: a clock is derived from the timeline,
    # which can arrive before its incident; /insights/ reads each clock's severity through it in one query.
    incident = models.ForeignObject(
        "Incident",
        on_delete=models.DO_NOTHING,
        from_fields=["incident_upstream_id"],
        to_fields=["upstream_id"],
        related_name="+",
        null=True,
        serialize=False,  # not a column: `dumpdata dashboard` shows incident_upstream_id, and a clock without its incident
    )
    started_at = models.DateTimeField(help_text="The first state's start (OneUptime's metrics start there).")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="The first resolved state's start.")
    time_to_acknowledge = models.DurationField(null=True, blank=True)
    time_to_resolve = models.DurationField(null=True, blank=True)
    periods = models.JSONField(default=list, encoder=DjangoJSONEncoder, help_text="[[opened, resolved or null], …]")
    states = models.JSONField(
        default=list, encoder=DjangoJSONEncoder, help_text="[{name, color, seconds, since}, …] in first-entered order."
    )
    current_state = models.CharField(max_length=200, blank=True)
    current_since = models.DateTimeField(null=True, blank=True)
    is_open = models.BooleanField(default=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["started_at"], name="incident_clock_start")]  # /insights/ reads a range of weeks

    def __str__(self):
        return f"{self.incident_upstream_id}: {'open' if self.is_open else 'resolved'}"


class IncidentWeek(models.Model):
    """The incidents of one severity that began in one week (Monday 00:00 UTC), for /insights/.

    Written only by dashboard/live/incident_weeks.py, from the clocks, whenever a clock or an incident's
    severity changes: two years of the retrospective read a few hundred of these rather than every clock.
    """

    week = models.DateTimeField(help_text="The week's Monday, 00:00 UTC; an incident counts in the week it began.")
    severity = models.CharField(max_length=200, blank=True, help_text="As OneUptime names it, trimmed; empty for none.")
    incidents = models.PositiveIntegerField(default=0)
    acknowledged = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    acknowledge_seconds = models.JSONField(
        default=list, help_text="The acknowledged incidents' times to acknowledge, sorted; past 1,000, evenly spaced ones."
    )
    resolve_seconds = models.JSONField(
        default=list, help_text="The resolved incidents' times to resolve, sorted; past 1,000, evenly spaced ones."
    )

    class Meta:
        ordering = ["week", "severity"]
        constraints = [models.UniqueConstraint(fields=["week", "severity"], name="one_row_per_incident_week")]

    def __str__(self):
        return f"{self.week:%Y-%m-%d} {self.severity or '(none)'}: {self.incidents}"


class ChangeMapping(models.Model):
    """People's own link from an incident's monitor or label to the Helix TeamHub project or repository it runs on.

    Names are matched without regard to case; the automatic match by equal names needs no row here.
    """

    class From(models.TextChoices):
        MONITOR = "monitor", "OneUptime monitor"
        LABEL = "label", "OneUptime label"

    class To(models.TextChoices):
        PROJECT = "project", "Helix TeamHub project"
        REPOSITORY = "repository", "Helix TeamHub repository"

    source_kind = models.CharField("from", max_length=10, choices=From)
    source_name = models.CharField("monitor or label", max_length=200)
    target_kind = models.CharField("to", max_length=10, choices=To)
    target_name = models.CharField("project or repository", max_length=200)

    class Meta:
        ordering = ["source_kind", "source_name", "target_kind", "target_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "source_name", "target_kind", "target_name"], name="one_change_mapping_each"
            )
        ]

    def __str__(self):
        return f"{self.get_source_kind_display()} {self.source_name} → {self.get_target_kind_display()} {self.target_name}"


class PipelineState(models.TextChoices):
    FAILING = "failing", "Failing"
    PASSING = "passing", "Passing"
    RUNNING = "running", "Running"
    STALLED = "stalled", "Stalled"


# Which tiles a screen shows when not all fit: every failing one, then stalled, then running, then the most
# recently finished (web/pipelines.py says so to live.js as each tile's rank).
PIPELINE_PRIORITY = {PipelineState.FAILING: 0, PipelineState.STALLED: 1, PipelineState.RUNNING: 2, PipelineState.PASSING: 3}


def pipeline_priority() -> models.Case:
    """PIPELINE_PRIORITY in SQL: indexed with finished_at and id, so a wall's 40 tiles of 2,000 are read in order."""
    whens = [models.When(state=state, then=models.Value(rank)) for state, rank in PIPELINE_PRIORITY.items()]
    return models.Case(*whens, output_field=models.IntegerField())


class Pipeline(models.Model):
    """One pipeline (project, repository, build name), derived from its build events.

    Written only by dashboard/live/pipelines.py, in the transaction that wrote the events, so the wall
    and the dashboard read a pipeline's state, streak and statistics instead of regrouping events on
    every render; `manage.py rebuild_pipelines` derives every row again and gives exactly the same.
    """

    project = models.CharField(max_length=200)
    repository = models.CharField(max_length=200)
    name = models.TextField(help_text="The build's name, or its ref when it has none.")
    state = models.CharField(max_length=10, choices=PipelineState)
    current_status = models.CharField(
        max_length=10, blank=True, help_text="The newest run's status while it is in progress (live or stale), else empty."
    )
    latest_run = models.ForeignKey(Event, null=True, on_delete=models.SET_NULL, related_name="+", help_text="The newest run.")
    last_finished = models.ForeignKey(Event, null=True, on_delete=models.SET_NULL, related_name="+")
    last_run_at = models.DateTimeField(help_text="When the newest run started.")
    finished_at = models.DateTimeField(null=True, help_text="When the last finished run ended.")
    streak = models.PositiveIntegerField(default=0, help_text="Finished runs in a row with the last one's result.")
    streak_since = models.DateTimeField(null=True, help_text="When the streak's first run started: red since, for a failing one.")
    fixed_by = models.CharField(max_length=200, blank=True, help_text="Who triggered the run that ended the last red period.")
    fixed_at = models.DateTimeField(null=True)
    red_seconds = models.FloatField(null=True, help_text="How long the red period that run ended had lasted.")
    median_seconds = models.FloatField(null=True)
    p95_seconds = models.FloatField(null=True)
    runs_30d = models.PositiveIntegerField(default=0, help_text="Finished runs in the 30 days up to the newest run.")
    passed_30d = models.PositiveIntegerField(default=0)
    recent_runs = models.JSONField(default=list, help_text="The newest runs, oldest first, for the run strip.")
    flaky_commits = models.JSONField(default=list, help_text="Commits that both passed and failed within 14 days.")
    kept_from = models.DateTimeField(null=True, help_text="The oldest run the history needs: retention keeps it and newer runs.")
    revision = models.PositiveBigIntegerField(
        default=0,
        help_text="New with every derivation of this row, at random: a rendered tile is kept by it (web/tile_cache.py).",
    )

    class Meta:
        ordering = ["project", "repository", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "repository", "name"], name="one_row_per_pipeline")]
        indexes = [
            models.Index(fields=["state", "-last_run_at"], name="pipeline_state"),  # the wall and the counts
            models.Index(pipeline_priority(), models.F("finished_at").desc(), models.F("id"), name="pipeline_wall_order"),
        ]

    def __str__(self):
        return self.slug

    @property
    def slug(self) -> str:
        return f"{self.project}/{self.repository}/{self.name}"


class PipelineWeek(models.Model):
    """One pipeline's finished runs in one week (Monday 00:00 UTC), for /insights/.

    Written only by dashboard/live/pipeline_weeks.py, in the transaction that wrote the runs, so the
    retrospective sums a few rows per pipeline instead of scanning a million events. A week that began
    before the retention horizon (EVENTS_KEPT_DAYS) is closed: its runs are being pruned, so it keeps the
    figures it had, and both the sync and a rebuild leave it alone.
    """

    project = models.CharField(max_length=200)
    repository = models.CharField(max_length=200)
    name = models.TextField(help_text="The build's name, or its ref when it has none.")
    week = models.DateTimeField(help_text="The week's Monday, 00:00 UTC; a run counts in the week it started.")
    runs = models.PositiveIntegerField(default=0, help_text="Finished runs: passed or failed.")
    failures = models.PositiveIntegerField(default=0)
    fixes = models.PositiveIntegerField(default=0, help_text="Red periods a passing run that started this week ended.")
    red_seconds = models.JSONField(
        default=list, help_text="How long each of those red periods lasted, shortest first (at most 1,000 kept)."
    )
    flaky = models.PositiveIntegerField(default=0, help_text="Flaky commits whose first run started this week.")
    flaky_commits = models.JSONField(default=list, help_text="The first ten of them.")

    class Meta:
        ordering = ["week", "project", "repository", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "repository", "name", "week"], name="one_row_per_pipeline_week")
        ]
        indexes = [
            models.Index(fields=["week"], name="pipeline_week"),  # /insights/ reads a range of weeks
            models.Index(fields=["project", "week"], name="pipeline_week_project"),  # ... of one project
        ]

    def __str__(self):
        return f"{self.project}/{self.repository}/{self.name} {self.week:%Y-%m-%d}"


WEEK = datetime.timedelta(weeks=1)


def week_start(moment: datetime.datetime) -> datetime.datetime:
    """The Monday 00:00 UTC that begins the week of `moment`: /insights/ counts in these weeks."""
    day = moment.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - datetime.timedelta(days=day.weekday())


def person_name(event: Event) -> str:
    """Who an event is by, the way every page names people: full name, else their id."""
    subject = event.subject or {}
    full_name = " ".join(part for part in (subject.get("first_name"), subject.get("last_name")) if isinstance(part, str) and part)
    return full_name or event.subject_id or "someone"


def pipeline_runs(project: str, repository: str, name: str) -> models.QuerySet:
    """A pipeline's runs, newest first (the event_pipeline_runs index): its build events.

    Runs started in the same second are told apart by their upstream ids, which Helix TeamHub makes
    Mongo ObjectIds (seconds, then a counter): a row's own pk follows our insertion order, not theirs.
    """
    runs = Event.objects.filter(target="build", project=project, repository=repository).alias(pipeline_name=pipeline())
    return runs.filter(pipeline_name=name).order_by("-timestamp", "-upstream_id")


def runs_before(runs: models.QuerySet, run: Event) -> models.QuerySet:
    """The runs older than `run`, in pipeline_runs' order (by start, then upstream id)."""
    same_second = models.Q(timestamp=run.timestamp, upstream_id__lt=run.upstream_id)
    return runs.filter(models.Q(timestamp__lt=run.timestamp) | same_second, timestamp__lte=run.timestamp)


def runs_after(runs: models.QuerySet, run: Event) -> models.QuerySet:
    same_second = models.Q(timestamp=run.timestamp, upstream_id__gt=run.upstream_id)
    return runs.filter(models.Q(timestamp__gt=run.timestamp) | same_second, timestamp__gte=run.timestamp)
