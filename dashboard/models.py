"""The mirror: upstream rows as we last saw them, the sync's own state, and what changed.

Every attribute the upstream documents gets a column (so the pages never call upstream), and the raw
payload is kept beside them (so nothing an upstream adds later is lost before we learn about it).
"""

from django.db import models


class EventStatus(models.TextChoices):
    LIVE = "live", "Live"
    STALE = "stale", "Stalled"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


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
            models.Index(fields=["project", "-timestamp"], name="event_project_feed"),
            models.Index(fields=["target", "-timestamp"], name="event_target_feed"),
            models.Index(fields=["subject_id", "-timestamp"], name="event_person_feed"),
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


class Transition(models.Model):
    """A change the sync saw, stored as a row (like healthchecks' Flip) and handed on after commit."""

    kind = models.CharField(max_length=30, choices=TransitionKind)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="transitions")
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["at"], name="transition_at")]  # pruning and catch-up

    def __str__(self):
        return f"{self.kind} {self.event.upstream_id} at {self.at:%H:%M:%S}"


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
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True, help_text="Last targeted refresh of unfinished events.")

    def __str__(self):
        return self.get_source_display()
