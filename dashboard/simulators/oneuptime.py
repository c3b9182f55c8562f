"""A OneUptime API on loopback, serving incident public notes, incidents and their state timelines, for tests and `demo`.

It behaves like OneUptime's source, not like its docs page, wherever the two disagree (the upstream API
notes beside the vendor page list the differences): ids and dates come back wrapped, only `_id` comes
back without a `select`, a missing permission is a 422, an unknown id gets 200 `{}`, `limit` goes up to
10000, and about a minute after a note is created a worker rewrites its notification status. Fault
switches (5xx, 429, 405 for blocked methods, slowness, cut-off JSON, the docs page's `limit` maximum of
100, malformed values in one record, an edit landing just before a client's update) let tests exercise a
client's error paths over real HTTP rather than mocks. The state timeline follows
oneuptime-state-timeline-notes.md: its own read permission, rows inserted in place with their neighbours
rewritten, `startsAt` edits that move no `endsAt`, and deletes that leave overlapping intervals.

Run `python -m dashboard.simulators.oneuptime --port 8102 --generate --activity` for a standalone server.
"""

import argparse
import json
import random
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dashboard.simulators import loopback
from dashboard.simulators.loopback import Response, spliced

Row = dict[str, Any]

LIMIT_MAX = 10_000
DEFAULT_LIMIT = 10
ROLES = ("Project Owner", "Project Admin", "Project Member")
# Owners and admins see private incidents; every other key has them filtered out (IncidentPrivacyFilter).
PRIVACY_BYPASS = frozenset({"Project Owner", "Project Admin"})
# What `add_api_key` grants for each short name; a key that can read notes can read incidents too.
KEY_PERMISSIONS = {
    "read": ("Read Incident Status Page Note", "Read Incident"),
    "create": ("Create Incident Status Page Note",),
    "update": ("Edit Incident Status Page Note",),
    "delete": ("Delete Incident Status Page Note",),
    # Not part of "read": a key made for notes and incidents may not read the timeline (state-timeline notes §0.1).
    "timeline": ("Read Incident State Timeline",),
}
# Every model serves these through a relation, whatever its own list says.
ALWAYS_ON_RELATION = frozenset({"_id", "createdAt", "updatedAt", "deletedAt", "version"})
# Request values of these types are turned back into plain values, as JSONFunctions.deserialize does.
WRAPPED_TYPES = frozenset({"ObjectID", "DateTime", "Color", "Name", "Email"})
WIRE_TYPES = {"objectid": "ObjectID", "date": "DateTime", "color": "Color", "name": "Name", "email": "Email"}
STRIPPED_FROM_WRITES = frozenset({"_id", "createdAt", "updatedAt"})
INVALID_UPDATE_BODY = (
    'Invalid request body. The update payload should be an object of the form { "data": { ...fields to update... } }.'
)
INVALID_CREATE_BODY = 'Invalid request body. The create payload should be an object of the form { "data": { ...fields... } }.'
NOTIFIED_MESSAGE = "Successfully notified 1,234 subscribers via email and SMS"
NOT_ON_STATUS_PAGE_MESSAGE = "Notification skipped: the incident is not visible on any status page."
SKIPPED_MESSAGE = "Notification skipped: shouldStatusPageSubscribersBeNotifiedOnNoteCreated is false."


@dataclass(frozen=True)
class Relation:
    column: str  # where the related id (or, for `many`, the list of ids) is stored
    table: str
    many: bool = False


@dataclass(frozen=True)
class Table:
    name: str  # as OneUptime's messages name the model
    columns: dict[str, str]  # column -> kind, which decides its wire form
    relations: dict[str, Relation]
    on_relation: frozenset[str] = frozenset()  # columns other models may select through a relation
    creatable: frozenset[str] = frozenset()
    updatable: frozenset[str] = frozenset()
    required: tuple[str, ...] = ()
    unreadable: frozenset[str] = frozenset()
    permissions: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _columns(**kinds: str) -> dict[str, str]:
    return {"_id": "id", "createdAt": "date", "updatedAt": "date", "deletedAt": "date", "version": "number", **kinds}


NOTES = Table(
    name="Incident Public Note",
    columns=_columns(
        projectId="objectid",
        incidentId="objectid",
        createdByUserId="objectid",
        deletedByUserId="objectid",
        note="text",
        postedAt="date",
        postedFromSlackMessageId="text",
        shouldStatusPageSubscribersBeNotifiedOnNoteCreated="bool",
        subscriberNotificationStatusMessage="text",
        subscriberNotificationStatusOnNoteCreated="text",
        isOwnerNotified="bool",
    ),
    relations={
        "project": Relation("projectId", "Project"),
        "incident": Relation("incidentId", "Incident"),
        "createdByUser": Relation("createdByUserId", "User"),
        "deletedByUser": Relation("deletedByUserId", "User"),
        "attachments": Relation("attachments", "File", many=True),
    },
    creatable=frozenset(
        {
            "incidentId",
            "incident",
            "projectId",
            "project",
            "note",
            "attachments",
            "postedAt",
            "createdByUserId",
            "createdByUser",
            "shouldStatusPageSubscribersBeNotifiedOnNoteCreated",
            "subscriberNotificationStatusMessage",
            "subscriberNotificationStatusOnNoteCreated",
            "postedFromSlackMessageId",
        }
    ),
    updatable=frozenset(
        {"note", "attachments", "postedAt", "subscriberNotificationStatusMessage", "subscriberNotificationStatusOnNoteCreated"}
    ),
    required=("incidentId",),
    unreadable=frozenset({"deletedByUserId", "deletedByUser"}),
    permissions={
        # As the vendor page lists them (it predates the removal of "Read All Project Resources").
        "read": (*ROLES, "Read Incident Status Page Note", "Read All Project Resources"),
        "create": (*ROLES, "Create Incident Status Page Note"),
        "update": (*ROLES, "Edit Incident Status Page Note"),
        "delete": (*ROLES, "Delete Incident Status Page Note"),
    },
)

INCIDENTS = Table(
    name="Incident",
    columns=_columns(
        projectId="objectid",
        title="text",
        description="text",
        declaredAt="date",
        impactStartedAt="date",
        incidentNumber="number",
        incidentNumberWithPrefix="text",
        currentIncidentStateId="objectid",
        incidentSeverityId="objectid",
        rootCause="text",
        postmortemNote="text",
        postmortemPostedAt="date",
        isVisibleOnStatusPage="bool",
        isPrivate="bool",
        isCreatedAutomatically="bool",
        createdByUserId="objectid",
        createdByProbeId="objectid",
    ),
    relations={
        "project": Relation("projectId", "Project"),
        "currentIncidentState": Relation("currentIncidentStateId", "IncidentState"),
        "incidentSeverity": Relation("incidentSeverityId", "IncidentSeverity"),
        "createdByUser": Relation("createdByUserId", "User"),
        "labels": Relation("labels", "Label", many=True),
        "monitors": Relation("monitors", "Monitor", many=True),
    },
    on_relation=frozenset(
        {"title", "incidentNumber", "incidentNumberWithPrefix", "currentIncidentStateId", "projectId", "createdByProbeId"}
    ),
    creatable=frozenset(
        {
            "projectId",
            "project",
            "title",
            "description",
            "declaredAt",
            "impactStartedAt",
            "currentIncidentStateId",
            "currentIncidentState",
            "incidentSeverityId",
            "incidentSeverity",
            "rootCause",
            "postmortemNote",
            "postmortemPostedAt",
            "isVisibleOnStatusPage",
            "isPrivate",
            "createdByUserId",
            "createdByUser",
            "labels",
            "monitors",
        }
    ),
    updatable=frozenset(
        {
            "title",
            "description",
            "declaredAt",
            "impactStartedAt",
            "currentIncidentStateId",
            "currentIncidentState",
            "incidentSeverityId",
            "incidentSeverity",
            "rootCause",
            "postmortemNote",
            "postmortemPostedAt",
            "isVisibleOnStatusPage",
            "isPrivate",
            "labels",
            "monitors",
        }
    ),
    required=("title", "incidentSeverityId"),
    permissions={
        "read": (
            *ROLES,
            "Viewer",
            "Incident Admin",
            "Incident Member",
            "Incident Viewer",
            "Read Incident",
            "Read All Operational Resources",
        ),
        "create": (*ROLES, "Incident Admin", "Incident Member", "Create Incident"),
        "update": (*ROLES, "Incident Admin", "Incident Member", "Edit Incident"),
        "delete": (*ROLES, "Incident Admin", "Delete Incident"),
    },
)

STATE_TIMELINE = Table(
    name="Incident State Timeline",
    columns=_columns(
        projectId="objectid",
        incidentId="objectid",
        incidentStateId="objectid",
        startsAt="date",
        endsAt="date",
        rootCause="text",
        stateChangeLog="text",
        createdByUserId="objectid",
        deletedByUserId="objectid",
        shouldStatusPageSubscribersBeNotified="bool",
        subscriberNotificationStatus="text",
        subscriberNotificationStatusMessage="text",
        isOwnerNotified="bool",
    ),
    relations={
        "project": Relation("projectId", "Project"),
        "incident": Relation("incidentId", "Incident"),
        "incidentState": Relation("incidentStateId", "IncidentState"),
        "createdByUser": Relation("createdByUserId", "User"),
        "deletedByUser": Relation("deletedByUserId", "User"),
    },
    creatable=frozenset(
        {
            "incidentId",
            "incident",
            "incidentStateId",
            "incidentState",
            "startsAt",
            "rootCause",
            "shouldStatusPageSubscribersBeNotified",
        }
    ),
    updatable=frozenset({"incidentStateId", "incidentState", "startsAt", "subscriberNotificationStatus"}),
    required=("incidentId", "incidentStateId"),
    unreadable=frozenset({"deletedByUserId", "deletedByUser"}),
    permissions={
        # Not "Read Incident", nor the operational-resources wildcard: the model is not an @OperationalResource.
        "read": (*ROLES, "Viewer", "Incident Admin", "Incident Member", "Incident Viewer", "Read Incident State Timeline"),
        "create": (*ROLES, "Incident Admin", "Incident Member", "Create Incident State Timeline"),
        "update": (*ROLES, "Incident Admin", "Incident Member", "Edit Incident State Timeline"),
        "delete": (*ROLES, "Incident Admin", "Delete Incident State Timeline"),
    },
)

# Models that are only ever reached through a relation from a note or an incident.
RELATED = (
    Table(
        name="User",
        columns=_columns(name="name", email="email", profilePictureId="objectid", twoFactorAuthEnabled="bool"),
        relations={},
        on_relation=frozenset({"name", "email", "profilePictureId", "twoFactorAuthEnabled"}),
    ),
    Table(
        name="IncidentState",
        columns=_columns(
            name="text", color="color", isCreatedState="bool", isAcknowledgedState="bool", isResolvedState="bool", order="number"
        ),
        relations={},
        on_relation=frozenset({"name", "color", "isCreatedState", "isAcknowledgedState", "isResolvedState", "order"}),
    ),
    Table(
        name="IncidentSeverity",
        columns=_columns(name="text", color="color", order="number"),
        relations={},
        on_relation=frozenset({"name", "color", "order"}),
    ),
    Table(
        name="File",
        columns=_columns(name="text", fileType="text", slug="text", isPublic="bool", imageAccessToken="objectid", file="buffer"),
        relations={},
        on_relation=frozenset({"name", "fileType", "slug", "isPublic", "imageAccessToken", "file"}),
    ),
    Table(name="Project", columns=_columns(name="text"), relations={}, on_relation=frozenset({"name"})),
    Table(
        name="Label",
        columns=_columns(name="text", color="color", slug="text", projectId="objectid"),
        relations={},
        on_relation=frozenset({"name", "color", "slug", "projectId"}),
    ),
    Table(
        name="Monitor",
        columns=_columns(name="text", monitorType="text", projectId="objectid"),
        relations={},
        on_relation=frozenset({"name", "monitorType", "projectId"}),
    ),
)
TABLES = {table.name: table for table in (NOTES, INCIDENTS, STATE_TIMELINE, *RELATED)}
RESOURCES = {"incident-public-note": NOTES, "incident": INCIDENTS, "incident-state-timeline": STATE_TIMELINE}
RESOURCE_PATH = re.compile(r"/api/(?P<resource>incident-public-note|incident-state-timeline|incident)(?:/(?P<rest>.*))?")
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
LEADING_INTEGER = re.compile(r"\s*([+-]?\d+)")

USERS = (
    ("Priya Raman", "priya.raman@example.com"),
    ("Jonas Berg", "jonas.berg@example.com"),
    ("Amara Okafor", "amara.okafor@example.com"),
    ("Luis Fernández", "luis.fernandez@example.com"),
    ("Mei Chen", "mei.chen@example.com"),
)
# name, colour, order, and which of isCreatedState / isAcknowledgedState / isResolvedState it is.
STATES = (
    ("Created", "#EF4444", 1, "isCreatedState"),
    ("Acknowledged", "#F59E0B", 2, "isAcknowledgedState"),
    ("Resolved", "#10B981", 3, "isResolvedState"),
)
SEVERITIES = (("Critical", "#DC2626", 1), ("Major", "#F97316", 2), ("Minor", "#FACC15", 3))
# title, what customers notice, the component at fault
INCIDENT_STORIES = (
    ("Elevated API latency in eu-west-1", "slow responses from the public API", "api-gateway"),
    ("Checkout payments failing for some cards", "declined payments at checkout", "payments-service"),
    ("Login page returns 502 errors", "errors when signing in", "auth-proxy"),
    ("Delayed email notifications", "notification emails arriving late", "mail-relay"),
    ("Webhook deliveries backed up", "webhooks arriving minutes late", "webhook-dispatcher"),
    ("Search results out of date", "stale search results", "search-indexer"),
    ("Dashboard charts not loading", "empty charts on the dashboard", "metrics-query"),
    ("Mobile app sync errors", "sync failures in the mobile app", "sync-api"),
    ("Slow file uploads", "uploads stalling above 50 MB", "object-storage"),
    ("Status page DNS resolution failures", "the status page not resolving", "edge-dns"),
)
CAUSES = (
    "a misconfigured load balancer health check",
    "an expired TLS certificate on an internal service",
    "a database failover that left connections pinned to the old primary",
    "a bad deploy of the rate limiter",
    "disk pressure on the queue brokers",
)
INVESTIGATING_NOTES = (
    "## Investigating\n\nWe are investigating reports of {symptom}. Next update in 30 minutes.",
    "We're seeing elevated error rates on `{component}` and the on-call engineer is looking into it.\n\n"
    "Customers may notice {symptom}.",
)
UPDATE_NOTES = (
    "## Identified\n\nWe traced the problem to {cause}. Mitigation in progress:\n\n"
    "1. Roll back `{component}` to the previous release\n2. Drain the affected nodes\n3. Watch error rates for 15 minutes",
    "**Update:** the backlog is draining, about {count} requests left. If you are affected, you can retry safely:\n\n"
    "```\ncurl -X POST https://api.example.com/v1/retry -H 'Authorization: Bearer <token>'\n```",
    "## Monitoring\n\nA fix for `{component}` has been deployed and error rates are back to normal. We are monitoring; "
    "history is on the [status page](https://status.example.com).",
    "Still working on it. What we know so far:\n\n- only some customers see {symptom}\n- `{component}` is the common factor\n"
    "- no data has been lost",
)
RESOLVED_NOTES = (
    "## Resolved\n\nThis incident has been resolved. The cause was {cause}. A post-mortem will follow within 5 business days.",
    "All systems are operating normally again. We're sorry for the disruption; details of {cause} will be in the "
    "[post-mortem](https://status.example.com/postmortems).",
)


class _ApiError(Exception):
    """Becomes OneUptime's error body: `{"error": …}` on the CRUD path, `{"message": …}` for unknown routes."""

    def __init__(self, status: int, message: str, *, key: str = "error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key


class _ServerError(_ApiError):
    """What OneUptime answers when Postgres or TypeORM throws: nothing translates it, so 500 "Server Error"."""

    def __init__(self) -> None:
        super().__init__(500, "Server Error")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """OneUptime's `toISOString()`: UTC with milliseconds, although the database keeps microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _ServerError() from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and value.get("_type") in WRAPPED_TYPES and "value" in value:
        return value["value"]
    return value


def _coerce(kind: str, value: Any) -> Any:
    """A request value as the column holds it; what Postgres would refuse ends as a 500."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise _ServerError()  # bound as "[object Object]"
    if kind == "date":
        return _parse_date(str(value))
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        try:
            return float(value)
        except ValueError:
            raise _ServerError() from None
    if kind == "bool":
        if isinstance(value, bool) or value in ("true", "false"):
            return value is True or value == "true"
        raise _ServerError()
    return value if isinstance(value, str) else json.dumps(value)


def _as_text(value: Any) -> str:
    """What `CAST(column AS TEXT)` gives, near enough for ILIKE searches."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _wire(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "date":
        return {"_type": "DateTime", "value": _iso(value)}
    if kind == "buffer":
        return {"_type": "Buffer", "value": {"type": "Buffer", "data": list(value)}}
    if kind in WIRE_TYPES:
        return {"_type": WIRE_TYPES[kind], "value": value}
    return value


def _is_descending(direction: Any) -> bool:
    """TypeORM 0.3 reads "DESC", "desc" and -1 as descending, and anything else as ascending."""
    if isinstance(direction, dict):
        direction = direction.get("direction")
    return direction in ("DESC", "desc", -1) and not isinstance(direction, bool)


def _parse_int(value: Any) -> int | None:
    """JavaScript's parseInt: the leading integer of the text, or None (NaN)."""
    if value is None or isinstance(value, bool):
        return None
    match = LEADING_INTEGER.match(str(value))
    return int(match[1]) if match else None


def _object(body: Any, name: str) -> dict[str, Any]:
    value = body.get(name) if isinstance(body, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _ServerError()
    return value


def _check_id(item_id: str) -> None:
    if not UUID_PATTERN.fullmatch(item_id):
        raise _ApiError(
            400, f'Invalid ID format: "{item_id}". Expected a valid UUID (e.g. 123e4567-e89b-12d3-a456-426614174000).'
        )


def _proxy_page(status: int) -> bytes:
    """The HTML a reverse proxy answers with: no JSON, so a client must not rely on an error body."""
    title = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def _is_write(method: str, target: str) -> bool:
    """A create, update or delete by any of its routes; reads are POSTs too, to get-list, count and get-item."""
    path = urlsplit(target).path.rstrip("/")
    return method in ("PUT", "DELETE") or (method == "POST" and not path.endswith(("/get-list", "/count", "/get-item")))


class Simulator(loopback.LoopbackSimulator):
    """The fake OneUptime's state and behaviour; the HTTP handler only turns requests into `respond()` calls.

    Records are plain dicts holding plain values (ids as strings, dates as aware datetimes); the wire
    encoding happens only when a response is built. One lock covers everything, because the HTTP
    threads, the notification worker and the activity thread all write.
    """

    ACTIVITY_INTERVAL = 3.0

    def __init__(self, *, seed: int | None, notification_delay: float):
        super().__init__()
        self.clock: Callable[[], datetime] = _utc_now
        self.notification_delay = notification_delay
        # Seconds to wait after applying a create, update or delete before answering: a crash between send and commit.
        self.hold_after_write = 0.0
        self.refuse_methods: set[str] = set()
        # The largest `limit` a list accepts: 10000 in OneUptime's source; set 100 for a server that enforces the docs page.
        self.limit_max = LIMIT_MAX
        # Wire values that replace a record's own when it is served (by `_id`): a malformed record, see `malform`.
        self._malformed: dict[str, dict[str, Any]] = {}
        # Edits applied just before, or just after, the next update of a note: see `edit_before_next_update`.
        self._interleaved: dict[str, dict[str, Any]] = {}
        self._interleaved_after: dict[str, dict[str, Any]] = {}
        # (method, path with query, parsed JSON body or None); appended under the lock.
        self.requests: list[tuple[str, str, Any]] = []
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._canned: deque[Response] = deque()
        self._keys: dict[str, frozenset[str]] = {}
        self._rows: dict[str, dict[str, Row]] = {name: {} for name in TABLES}
        created = self.clock() - timedelta(days=400)
        self.project_id = self._insert("Project", created, name="Acme Status")
        self._users = [self._insert("User", created, name=name, email=email, twoFactorAuthEnabled=False) for name, email in USERS]
        self._states = {
            name: self._insert(
                "IncidentState",
                created,
                name=name,
                color=color,
                order=order,
                **{flag: flag == own for flag in ("isCreatedState", "isAcknowledgedState", "isResolvedState")},
            )
            for name, color, order, own in STATES
        }
        self._severities = {
            name: self._insert("IncidentSeverity", created, name=name, color=color, order=order)
            for name, color, order in SEVERITIES
        }
        self._incident_number = 0
        # Workflows "On Create / On Update / On Delete Incident Public Note" chained to "API Post (JSON)": (url, headers).
        self.workflows: list[tuple[str, dict[str, str]]] = []
        self.deliveries: list[tuple[str, int]] = []
        self.api_key = self.add_api_key({"Project Member"})
        self.read_only_key = self.add_api_key({"read"})

    @property
    def notes(self) -> dict[str, Row]:
        return self._rows[NOTES.name]

    @property
    def incidents(self) -> dict[str, Row]:
        return self._rows[INCIDENTS.name]

    @property
    def state_timeline(self) -> dict[str, Row]:
        return self._rows[STATE_TIMELINE.name]

    def states_of(self, incident_id: str) -> list[Row]:
        """The incident's timeline rows by `startsAt`, as copies."""
        with self._lock:
            return [dict(row) for row in self._timeline(incident_id)]

    def state_id(self, name: str) -> str:
        return self._states[name]

    def add_label(self, name: str) -> str:
        with self._lock:
            return self._insert("Label", self.clock(), name=name, color="#3B82F6", slug=name.lower(), projectId=self.project_id)

    def add_monitor(self, name: str, monitor_type: str = "API") -> str:
        with self._lock:
            return self._insert("Monitor", self.clock(), name=name, monitorType=monitor_type, projectId=self.project_id)

    def add_state(self, incident_id: str, state: str, starts_at: datetime | None = None) -> Row:
        """A state change as OneUptime's timeline form makes it: `starts_at` may be in the past (backdated), and
        the row is then inserted in place; the same state as a neighbour, or one ordered before the previous, is refused."""
        with self._lock:
            now = self.clock()
            row = self._add_state_row(self.incidents[incident_id], self._states[state], starts_at or now, now, checked=True)
            return dict(row)

    def move_state(self, row_id: str, starts_at: datetime) -> None:
        """Edit a row's `startsAt` through the API: no neighbour's `endsAt` moves, nor the incident's current state (§1.4)."""
        with self._lock:
            self._touch(self.state_timeline[row_id], {"startsAt": starts_at}, self.clock())

    def delete_state(self, row_id: str) -> None:
        """A hard delete, with OneUptime's neighbour fix-ups (§1.5)."""
        with self._lock:
            self._remove_state_row(row_id, self.clock())

    def add_api_key(self, permissions: Iterable[str]) -> str:
        """A new key holding `permissions`: "read", "create", "update", "delete" for notes, or OneUptime names ("Project Owner")."""
        granted = frozenset(name for permission in permissions for name in KEY_PERMISSIONS.get(permission, (permission,)))
        with self._lock:
            key = self._new_id()
            self._keys[key] = granted
            return key

    def add_incident(self, title: str | None = None, *, state: str = "Created", severity: str = "Major", **overrides: Any) -> Row:
        """Declare an incident now (or when `declaredAt` says); returns a copy of the stored record."""
        with self._lock:
            now = self.clock()
            story = self._rng.choice(INCIDENT_STORIES)
            fields = {
                "title": title or story[0],
                "currentIncidentStateId": self._states[state],
                "incidentSeverityId": self._severities[severity],
            }
            return dict(self._new_incident(now, story, **(fields | self._checked(INCIDENTS, overrides))))

    def add_note(self, incident_id: str, note: str | None = None, **overrides: Any) -> Row:
        """Post a public note now, as someone using OneUptime's UI would; returns a copy of the stored record."""
        with self._lock:
            if incident_id not in self.incidents:
                raise KeyError(f"no incident {incident_id}")
            now = self.clock()
            text = note or self._story_note(self.incidents[incident_id], UPDATE_NOTES)
            fields = {"incidentId": incident_id, "note": text, "createdByUserId": self._rng.choice(self._users)}
            row = dict(self._new_note(now, **(fields | self._checked(NOTES, overrides))))
        self.run_workflows("on-create", row)
        return row

    def edit_note(self, note_id: str, **changes: Any) -> None:
        """Change a note behind the client's back; like any update it bumps `updatedAt` and `version`."""
        with self._lock:
            self._touch(self.notes[note_id], self._checked(NOTES, changes), self.clock())
            row = dict(self.notes[note_id])
        self.run_workflows("on-update", row)

    def delete_note(self, note_id: str) -> None:
        with self._lock:
            del self.notes[note_id]
        self.run_workflows("on-delete", {"_id": note_id})

    def add_workflow(self, url: str, headers: dict[str, str]) -> None:
        """Chain the three public-note triggers to "API Post (JSON)" at `url`; add_note, edit_note and delete_note fire it."""
        self.workflows.append((url, headers))

    def workflow_body(self, trigger: str, row: Row) -> bytes:
        """What the chained "API Post (JSON)" sends: the trigger's record under `data` (on delete, only its `_id`)."""
        record = {"_id": row["_id"]} if trigger == "on-delete" else {"_id": row["_id"], "note": row.get("note")}
        return json.dumps({"trigger": f"incident-public-note-{trigger}", "data": record}).encode()

    def run_workflows(self, trigger: str, row: Row) -> None:
        """One POST per workflow, outside the lock (the receiver may call us back before answering)."""
        for url, headers in self.workflows:
            body = self.workflow_body(trigger, row)
            self.deliveries.append((url, loopback.post(url, body, {"Content-Type": "application/json"} | headers)))

    def delete_incident(self, incident_id: str) -> None:
        """A hard delete, which takes the incident's notes and timeline with it (onDelete: CASCADE)."""
        with self._lock:
            self._delete(INCIDENTS, frozenset(PRIVACY_BYPASS), incident_id)

    def malform(self, item_id: str, **wire_values: Any) -> None:
        """Serve note or incident `item_id` with these raw wire values (say `currentIncidentState="Resolved"`)
        until `unmalform`. Its `updatedAt` does not move either way: a broken relation or proxy, then a fixed one."""
        with self._lock:
            self._malformed[item_id] = wire_values

    def unmalform(self, item_id: str) -> None:
        with self._lock:
            self._malformed.pop(item_id, None)

    def edit_before_next_update(self, note_id: str, **changes: Any) -> None:
        """Someone edits the note in OneUptime's UI just before the next update of it arrives (after the client's read)."""
        with self._lock:
            self._interleaved[note_id] = self._checked(NOTES, changes)

    def edit_after_next_update(self, note_id: str, **changes: Any) -> None:
        """Someone edits the note just after the next update of it is applied (before the client reads it back)."""
        with self._lock:
            self._interleaved_after[note_id] = self._checked(NOTES, changes)

    def set_incident_state(self, incident_id: str, state: str) -> None:
        """Change the state by updating the incident, as OneUptime's incident form does: a new timeline row at
        now, with no order check, so this is how an incident is reopened."""
        with self._lock:
            self._change_state(self.incidents[incident_id], self._states[state], self.clock())

    def generate(self, incidents: int = 200, notes: int = 5000) -> None:
        """History over the last 30 days: older incidents resolved, the newest few still open, notes spread among them."""
        with self._lock:
            now = self.clock()
            history = timedelta(days=30)
            declared = [now - history * (1 - (index + self._rng.random()) / max(incidents, 1)) for index in range(incidents)]
            made = []
            for when in declared:
                age = now - when
                state = "Resolved" if age > timedelta(hours=12) else self._rng.choice(("Created", "Acknowledged"))
                story = self._rng.choice(INCIDENT_STORIES)
                incident = self._new_incident(
                    when,
                    story,
                    incidentSeverityId=self._severities[self._rng.choice(("Critical", "Major", "Major", "Minor", "Minor"))],
                )
                acknowledged = min(when + timedelta(minutes=self._rng.randint(2, 40)), now)
                resolved = None
                if state != "Created":
                    self._change_state(incident, self._states["Acknowledged"], acknowledged)
                if state == "Resolved":
                    resolved = min(acknowledged + timedelta(minutes=self._rng.randint(5, 600)), now)
                    self._change_state(incident, self._states["Resolved"], resolved)
                made.append((incident, acknowledged if state != "Created" else None, resolved))
            for _ in range(notes if made else 0):
                incident, acknowledged, resolved = self._rng.choice(made)
                posted = incident["declaredAt"] + min(timedelta(hours=6), now - incident["declaredAt"]) * self._rng.random()
                # What a status page says at that moment: "Resolved" only once it is, "Investigating" before anyone acknowledged.
                if resolved is not None and posted >= resolved:
                    templates = RESOLVED_NOTES
                elif acknowledged is None or posted < acknowledged:
                    templates = INVESTIGATING_NOTES
                else:
                    templates = UPDATE_NOTES
                note = self._new_note(
                    posted,
                    incidentId=incident["_id"],
                    note=self._story_note(incident, templates),
                    createdByUserId=self._rng.choice(self._users),
                    attachments=[self._new_file(posted)] if self._rng.random() < 0.02 else [],
                )
                self._deliver(note, posted + timedelta(seconds=self.notification_delay), now)

    def step(self) -> None:
        """One tick of activity: incidents open, gain notes, move through their states and resolve."""
        with self._lock:
            now = self.clock()
            self._deliver_due_notifications(now)
            open_incidents = [row for row in self.incidents.values() if not self._state_of(row)["isResolvedState"]]
            roll = self._rng.random()
            if not open_incidents or (len(open_incidents) < 3 and roll < 0.15):
                story = self._rng.choice(INCIDENT_STORIES)
                severity = self._rng.choice(list(self._severities.values()))
                incident = self._new_incident(now, story, incidentSeverityId=severity)
                self._post(incident, INVESTIGATING_NOTES, now)
            elif roll < 0.6:
                self._post(self._rng.choice(open_incidents), UPDATE_NOTES, now)
            elif roll < 0.85:
                incident = self._rng.choice(open_incidents)
                next_state = "Resolved" if self._state_of(incident)["isAcknowledgedState"] else "Acknowledged"
                self._change_state(incident, self._states[next_state], now)
                self._post(incident, RESOLVED_NOTES if next_state == "Resolved" else UPDATE_NOTES, now)
            elif self.notes:
                newest = max(self.notes.values(), key=lambda row: row["createdAt"])
                self._touch(newest, {"note": newest["note"] + "\n\n_Edited to add: next update in 15 minutes._"}, now)

    def hold_after(self, method: str, path: str, response: Response) -> float:
        return self.hold_after_write if response.status == 200 and _is_write(method, path) else 0.0

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._canned.extend([Response(status, _proxy_page(status), {"Content-Type": "text/html"})] * count)

    def rate_limit_next(self, count: int, retry_after: int = 1) -> None:
        page = Response(429, _proxy_page(429), {"Content-Type": "text/html", "Retry-After": str(retry_after)})
        with self._lock:
            self._canned.extend([page] * count)

    def corrupt_next(self, count: int) -> None:
        """Answer the next `count` requests with a 200 whose JSON stops halfway, as a dropped proxy connection leaves it."""
        with self._lock:
            self._canned.extend([Response(200, b'{"count": 3, "limit": 10, "skip": 0, "data": [{"_id": "', {})] * count)

    def clear_faults(self) -> None:
        """Forget every queued fault answer (fail_next, rate_limit_next, corrupt_next)."""
        with self._lock:
            self._canned.clear()

    def respond(self, method: str, target: str, headers: Message, raw_body: bytes) -> Response:
        """Answer one HTTP request, under the lock so that nothing changes a record mid-answer."""
        try:
            parsed = json.loads(raw_body) if raw_body.strip() else None
            malformed = False
        except ValueError:
            parsed, malformed = None, True
        # Like express.json(), only a JSON content type gets its body read.
        is_json = headers.get_content_type() == "application/json"
        body = parsed if is_json and parsed is not None else {}
        with self._lock:
            self.requests.append((method, target, parsed))
            if method in self.refuse_methods:
                return Response(405, _proxy_page(405), {"Content-Type": "text/html"})
            if self._canned:
                return self._canned.popleft()
            try:
                if malformed and is_json:
                    raise _ServerError()  # body-parser's SyntaxError is not a OneUptime exception
                payload = self._route(method, target, headers, body)
            except _ApiError as error:
                return Response(error.status, json.dumps({error.key: error.message}).encode(), {})
            return Response(200, spliced(json.dumps(payload)).encode(), {})

    def _route(self, method: str, target: str, headers: Message, body: Any) -> Any:
        url = urlsplit(target)
        path = url.path.rstrip("/")
        match = RESOURCE_PATH.fullmatch(path)
        parts = match["rest"].split("/") if match and match["rest"] else []
        table = RESOURCES[match["resource"]] if match else None
        now = self.clock()
        self._deliver_due_notifications(now)
        if table is not None:
            if not parts and method == "POST":
                return self._create(table, self._key(headers, table, "create"), body, now)
            if parts == ["get-list"] and method in ("GET", "POST"):
                return self._list(table, self._key(headers, table, "read"), body, parse_qs(url.query))
            if parts == ["count"] and method == "POST":
                return self._count(table, self._key(headers, table, "read"), body)
            if len(parts) == 1 and method == "PUT":
                return self._update(table, self._key(headers, table, "update"), parts[0], body, now)
            if len(parts) == 1 and method == "DELETE":
                return self._delete(table, self._key(headers, table, "delete"), parts[0])
            if len(parts) == 2 and method in ("GET", "POST"):
                item_id, action = parts
                if action == "get-item":
                    return self._get(table, self._key(headers, table, "read"), item_id, body)
                if action == "update-item":
                    return self._update(table, self._key(headers, table, "update"), item_id, body, now)
                if action == "delete-item":
                    return self._delete(table, self._key(headers, table, "delete"), item_id)
        raise _ApiError(404, f"Page not found - {url.path}", key="message")

    def _key(self, headers: Message, table: Table, operation: str) -> frozenset[str]:
        """The permissions of the request's ApiKey: none at all is a 401, a bad one a 400."""
        values = headers.get_all("ApiKey") or []
        if not values:
            raise _ApiError(401, f"Authenticated user or a valid API key is needed to {operation} record of {table.name}.")
        if len(values) > 1 or values[0] not in self._keys:
            raise _ApiError(400, "Invalid API Key")
        return self._keys[values[0]]

    def _require(self, key: frozenset[str], table: Table, operation: str) -> None:
        allowed = table.permissions[operation]
        if not key.intersection(allowed):
            raise _ApiError(
                422,
                f"You do not have permissions to {operation} {table.name}. You need one of these permissions: {', '.join(allowed)}",
            )

    def _list(self, table: Table, key: frozenset[str], body: Any, query_string: dict[str, list[str]]) -> dict[str, Any]:
        self._require(key, table, "read")
        select = _object(body, "select")
        if _object(body, "groupBy"):
            raise _ApiError(400, "GroupBy is currently not supported")
        skip, limit, echoed_skip, echoed_limit = self._paging(body, query_string)
        self._check_select(table, select)
        rows = self._find(table, key, _object(body, "query"), _object(body, "sort"))
        data = [self._render(table, row, select) for row in rows[skip : skip + limit]]
        return {"count": len(rows), "limit": echoed_limit, "skip": echoed_skip, "data": data}

    def _paging(self, body: Any, query_string: dict[str, list[str]]) -> tuple[int, int, int, int]:
        """skip and limit from the query string, else the body; only query-string values are echoed."""
        fields = body if isinstance(body, dict) else {}
        raw_skip = query_string.get("skip", [None])[0]
        raw_limit = query_string.get("limit", [None])[0]
        skip = _parse_int(raw_skip if raw_skip is not None else fields.get("skip")) or 0
        limit = _parse_int(raw_limit if raw_limit is not None else fields.get("limit")) or DEFAULT_LIMIT
        if limit > self.limit_max:
            raise _ApiError(400, f"Limit should be less than {self.limit_max}")
        if skip < 0 or limit < 0:
            raise _ApiError(400, "positiveNumber cannot be less than 0")
        return skip, limit, skip if raw_skip is not None else 0, limit if raw_limit is not None else DEFAULT_LIMIT

    def _count(self, table: Table, key: frozenset[str], body: Any) -> dict[str, int]:
        self._require(key, table, "read")
        return {"count": len(self._find(table, key, _object(body, "query"), {}))}

    def _get(self, table: Table, key: frozenset[str], item_id: str, body: Any) -> dict[str, Any]:
        _check_id(item_id)
        self._require(key, table, "read")
        select = _object(body, "select")
        self._check_select(table, select)
        row = self._visible(table, key).get(item_id)
        return {} if row is None else self._render(table, row, select)

    def _create(self, table: Table, key: frozenset[str], body: Any, now: datetime) -> dict[str, Any]:
        self._require(key, table, "create")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _ApiError(400, INVALID_CREATE_BODY)
        values = self._writable(table, data, "create")
        for column in table.required:
            if values.get(column) is None:
                raise _ApiError(400, f"{column} is required")
        values["projectId"] = self.project_id  # the key's project, whatever was sent
        self._check_references(table, values)
        if table is NOTES:
            if values.get("note") is None:
                raise _ServerError()  # NOT NULL in the database, not `required` in the model
            row = self._new_note(now, **values)
        elif table is STATE_TIMELINE:
            incident = self._visible(INCIDENTS, frozenset(PRIVACY_BYPASS))[values["incidentId"]]
            starts_at = values.get("startsAt") or now
            row = self._add_state_row(incident, values["incidentStateId"], starts_at, now, checked=True)
        else:
            row = self._new_incident(now, self._rng.choice(INCIDENT_STORIES), **values)
        saved = self._render(table, row, dict.fromkeys(table.columns, True))
        # The saved entity keeps the ids the client set the way they were sent: a plain string comes back plain.
        sent_plain = {name: value for name, value in data.items() if name != "projectId" and isinstance(value, str)}
        saved.update({name: value for name, value in sent_plain.items() if table.columns.get(name) == "objectid"})
        return saved

    def _update(self, table: Table, key: frozenset[str], item_id: str, body: Any, now: datetime) -> dict[str, Any]:
        _check_id(item_id)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _ApiError(400, INVALID_UPDATE_BODY)
        self._require(key, table, "update")
        values = self._writable(table, data, "update")
        if not values:
            raise _ApiError(400, "No fields to update. Send at least one field other than _id, createdAt and updatedAt in data.")
        row = self._visible(table, key).get(item_id)
        if row is None:
            raise _ApiError(
                422,
                f"Unable to update this {table.name.lower()}. It either does not exist, has been deleted, "
                "or you do not have permission to update it.",
            )
        self._check_references(table, values)
        if item_id in self._interleaved:
            self._touch(row, self._interleaved.pop(item_id), now)
        self._touch(row, values, now)
        if item_id in self._interleaved_after:
            self._touch(row, self._interleaved_after.pop(item_id), now)
        return {}

    def _delete(self, table: Table, key: frozenset[str], item_id: str) -> dict[str, Any]:
        _check_id(item_id)
        self._require(key, table, "delete")
        if table is STATE_TIMELINE and item_id in self.state_timeline:
            self._remove_state_row(item_id, self.clock())
        elif item_id in self._visible(table, key):
            del self._rows[table.name][item_id]
            if table is INCIDENTS:  # onDelete: CASCADE on the note's and the timeline's incident
                for rows in (self.notes, self.state_timeline):
                    for row_id in [row_id for row_id, row in rows.items() if row["incidentId"] == item_id]:
                        del rows[row_id]
        return {}

    def _visible(self, table: Table, key: frozenset[str]) -> dict[str, Row]:
        rows = self._rows[table.name]
        if table is INCIDENTS and not key & PRIVACY_BYPASS:
            return {row_id: row for row_id, row in rows.items() if not row["isPrivate"]}
        return rows

    def _find(self, table: Table, key: frozenset[str], query: dict[str, Any], sort: dict[str, Any]) -> list[Row]:
        tests = [self._condition(table, column, condition) for column, condition in query.items()]
        rows = [row for row in self._visible(table, key).values() if all(test(row) for test in tests)]
        for column, direction in reversed(list((sort or {"createdAt": "DESC"}).items())):
            if column not in table.columns:
                raise _ServerError()  # TypeORM's EntityPropertyNotFoundError
            descending = _is_descending(direction)
            present = [row for row in rows if row.get(column) is not None]
            absent = [row for row in rows if row.get(column) is None]
            present.sort(key=lambda row: row[column], reverse=descending)
            rows = absent + present if descending else present + absent  # Postgres puts NULLs last in ascending order
        return rows

    def _condition(self, table: Table, column: str, condition: Any) -> Callable[[Row], bool]:
        """One `query` entry as a test on a row, with the operators of OneUptime's QueryHelper."""
        if isinstance(condition, dict) and condition.get("_type") == "MultiSearch":
            fields = condition.get("fields") or []
            for field in fields:
                self._check_queryable(table, field)
            needle = str(condition.get("value", "")).strip().lower()
            return lambda row: any(row.get(field) is not None and needle in _as_text(row[field]).lower() for field in fields)
        self._check_queryable(table, column)
        kind = table.columns[column]
        if isinstance(condition, list):
            wanted = {_coerce(kind, _unwrap(value)) for value in condition}
            return lambda row: row.get(column) in wanted
        if isinstance(condition, dict) and condition.get("_type") not in WRAPPED_TYPES:
            matches = self._operator(kind, condition)
            return lambda row: matches(row.get(column))
        value = _coerce(kind, _unwrap(condition))
        return lambda row: row.get(column) == value if value is not None else row.get(column) is None

    @staticmethod
    def _operator(kind: str, condition: dict[str, Any]) -> Callable[[Any], bool]:
        operator = condition.get("_type")
        if operator == "IsNull":
            return lambda cell: cell is None
        if operator == "NotNull":
            return lambda cell: cell is not None
        if operator == "InBetween":
            start, end = _coerce(kind, condition.get("startValue")), _coerce(kind, condition.get("endValue"))
            if start is None or end is None:
                raise _ServerError()
            return lambda cell: cell is not None and start <= cell <= end
        if operator in ("Includes", "IncludesNone"):
            values = condition.get("value")
            if not isinstance(values, list):
                raise _ServerError()
            wanted = {_coerce(kind, value) for value in values}
            if operator == "Includes":
                return lambda cell: cell in wanted
            return lambda cell: cell is not None and cell not in wanted
        if operator in ("Search", "StartsWith", "EndsWith", "NotContains"):
            needle = str(condition.get("value", "")).strip().lower()
            found = {
                "Search": lambda text: needle in text,
                "StartsWith": lambda text: text.startswith(needle),
                "EndsWith": lambda text: text.endswith(needle),
                "NotContains": lambda text: needle not in text,
            }[operator]
            if operator == "NotContains":
                return lambda cell: cell is None or found(_as_text(cell).lower())
            return lambda cell: cell is not None and found(_as_text(cell).lower())
        comparisons: dict[str, Callable[[Any, Any], bool]] = {
            "EqualTo": lambda cell, value: cell == value,
            "NotEqual": lambda cell, value: cell != value,
            "GreaterThan": lambda cell, value: cell > value,
            "GreaterThanOrEqual": lambda cell, value: cell >= value,
            "LessThan": lambda cell, value: cell < value,
            "LessThanOrEqual": lambda cell, value: cell <= value,
        }
        or_null = {"EqualToOrNull": "EqualTo", "GreaterThanOrNull": "GreaterThan", "LessThanOrNull": "LessThan"}
        if operator not in comparisons and operator not in or_null:
            raise _ServerError()
        compare = comparisons[or_null.get(operator, operator)]
        value = _coerce(kind, condition.get("value"))
        if value is None:
            raise _ServerError()
        if operator in or_null:
            return lambda cell: cell is None or compare(cell, value)
        return lambda cell: cell is not None and compare(cell, value)

    @staticmethod
    def _check_queryable(table: Table, column: str) -> None:
        if column in table.unreadable:
            raise _ApiError(422, f"You do not have permissions to query on - {column}.")
        if column not in table.columns:
            raise _ApiError(400, f"Invalid column on {table.name} - {column}. Column does not exist.")

    @staticmethod
    def _check_select(table: Table, select: dict[str, Any]) -> None:
        for column, wanted in select.items():
            if column in table.unreadable:
                raise _ApiError(422, f"You do not have permissions to select on - {column}.")
            relation = table.relations.get(column)
            if relation is None:
                if column not in table.columns:
                    raise _ApiError(
                        400, f'Invalid select clause. Cannot select on "{column}": it is not a column of {table.name}.'
                    )
                continue
            related = TABLES[relation.table]
            for inner, inner_wanted in wanted.items() if isinstance(wanted, dict) else ():
                if isinstance(inner_wanted, dict):
                    raise _ApiError(400, "You cannot query deep relations. Only one level of relations can be selected.")
                if inner not in related.on_relation | ALWAYS_ON_RELATION:
                    raise _ApiError(400, f"Column {inner} on {related.name} does not support read on relation query.")

    def _render(self, table: Table, row: Row, select: dict[str, Any]) -> dict[str, Any]:
        """The wire form of `row`: `_id` always, plus the selected columns and relations."""
        rendered: dict[str, Any] = {"_id": row["_id"]}
        rendered.update(self._malformed.get(row["_id"], {}))
        for column, wanted in select.items():
            if column in self._malformed.get(row["_id"], {}):
                continue
            if not wanted or column == "_id":
                continue
            relation = table.relations.get(column)
            if relation is None:
                rendered[column] = _wire(table.columns[column], row.get(column))
                continue
            related_rows = self._rows[relation.table]
            inner = wanted if isinstance(wanted, dict) else {}
            if relation.many:
                ids = row.get(relation.column) or []
                rendered[column] = [
                    self._render(TABLES[relation.table], related_rows[i], inner) for i in ids if i in related_rows
                ]
            else:
                related = related_rows.get(row.get(relation.column))
                rendered[column] = None if related is None else self._render(TABLES[relation.table], related, inner)
        return rendered

    def _writable(self, table: Table, data: dict[str, Any], operation: str) -> Row:
        """The columns `data` sets; unknown keys are dropped, as OneUptime's `_fromJSON` drops them."""
        allowed = table.creatable if operation == "create" else table.updatable
        values: Row = {}
        for name, value in data.items():
            if name in STRIPPED_FROM_WRITES or (name not in table.columns and name not in table.relations):
                continue
            if name not in allowed:
                raise _ApiError(400, f"User is not allowed to {operation} on {name} column of {table.name}")
            relation = table.relations.get(name)
            if relation is None:
                values[name] = _coerce(table.columns[name], _unwrap(value))
            elif relation.many:
                if not isinstance(value, list):
                    raise _ServerError()
                values[relation.column] = [str(_unwrap(item.get("_id") if isinstance(item, dict) else item)) for item in value]
            else:
                related_id = value.get("_id") if isinstance(value, dict) else value
                values[relation.column] = None if related_id is None else str(_unwrap(related_id))
        return values

    def _check_references(self, table: Table, values: Row) -> None:
        """A foreign key to nothing is refused, as PostgresErrorTranslator words it."""
        for relation in table.relations.values():
            if relation.column not in values or values[relation.column] is None:
                continue
            ids = values[relation.column] if relation.many else [values[relation.column]]
            if any(related_id not in self._rows[relation.table] for related_id in ids):
                raise _ApiError(
                    400, f"This request references {relation.table} that does not exist. Please check the id and try again."
                )

    @staticmethod
    def _checked(table: Table, overrides: dict[str, Any]) -> Row:
        """Overrides from tests must name real columns, so that a typo fails loudly instead of doing nothing."""
        unknown = set(overrides) - set(table.columns) - {relation.column for relation in table.relations.values()}
        if unknown:
            raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
        return overrides

    def _touch(self, row: Row, values: Row, now: datetime) -> None:
        """Every write bumps `updatedAt` (TypeORM) and `version` (DatabaseService._updateBy)."""
        row.update(values)
        row["updatedAt"] = now
        row["version"] += 1

    def _deliver_due_notifications(self, now: datetime) -> None:
        """The subscriber-notification worker, run whenever the simulator is asked anything or stepped."""
        for note in self.notes.values():
            if note["subscriberNotificationStatusOnNoteCreated"] == "Pending":
                self._deliver(note, note["createdAt"] + timedelta(seconds=self.notification_delay), now)

    def _deliver(self, note: Row, due: datetime, now: datetime) -> None:
        """Stamped with the time it was due, so the outcome does not depend on when someone happens to look."""
        if due > now or note["subscriberNotificationStatusOnNoteCreated"] != "Pending":
            return
        incident = self.incidents.get(note["incidentId"])
        if incident is not None and incident["isVisibleOnStatusPage"]:
            outcome = {
                "subscriberNotificationStatusOnNoteCreated": "Success",
                "subscriberNotificationStatusMessage": NOTIFIED_MESSAGE,
            }
        else:
            outcome = {
                "subscriberNotificationStatusOnNoteCreated": "Skipped",
                "subscriberNotificationStatusMessage": NOT_ON_STATUS_PAGE_MESSAGE,
            }
        self._touch(note, outcome, due)

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _insert(self, table_name: str, when: datetime, **values: Any) -> str:
        row = {"_id": self._new_id(), "createdAt": when, "updatedAt": when, "deletedAt": None, "version": 1}
        row.update(values)
        self._rows[table_name][row["_id"]] = row
        return row["_id"]

    def _new_incident(self, when: datetime, story: tuple[str, str, str], **values: Any) -> Row:
        title, symptom, component = story
        self._incident_number += 1
        fields = {
            "projectId": self.project_id,
            "title": title,
            "description": f"Customers may notice **{symptom}**.\n\nAffected component: `{component}`.",
            "declaredAt": when,
            "impactStartedAt": None,
            "incidentNumber": self._incident_number,
            "incidentNumberWithPrefix": f"INC-{self._incident_number}",
            "currentIncidentStateId": self._states["Created"],
            "incidentSeverityId": self._severities["Major"],
            "rootCause": None,
            "postmortemNote": None,
            "postmortemPostedAt": None,
            "isVisibleOnStatusPage": True,
            "isPrivate": False,
            "isCreatedAutomatically": False,
            "createdByUserId": self._rng.choice(self._users),
            "createdByProbeId": None,
            "labels": [],
            "monitors": [self._monitor_for(component, when)],
        }
        incident = self._rows[INCIDENTS.name][self._insert(INCIDENTS.name, when, **(fields | values))]
        # The first row starts at declaredAt, in the state the incident was created in (IncidentService.changeIncidentState).
        self._insert(
            STATE_TIMELINE.name,
            when,
            **self._state_row_fields(incident, incident["currentIncidentStateId"], incident["declaredAt"], incident["rootCause"]),
        )
        return incident

    def _monitor_for(self, component: str, when: datetime) -> str:
        """The monitor watching `component`, made on first use with an id of its own (the seeded ids stay as they were)."""
        monitor_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneuptime-simulator-monitor:{component}"))
        monitors = self._rows["Monitor"]
        if monitor_id not in monitors:
            monitors[monitor_id] = {
                "_id": monitor_id,
                "createdAt": when,
                "updatedAt": when,
                "deletedAt": None,
                "version": 1,
                "name": component,
                "monitorType": "API",
                "projectId": self.project_id,
            }
        return monitor_id

    def _state_row_fields(self, incident: Row, state_id: str, starts_at: datetime, root_cause: str | None) -> Row:
        return {
            "projectId": self.project_id,
            "incidentId": incident["_id"],
            "incidentStateId": state_id,
            "startsAt": starts_at,
            "endsAt": None,
            "rootCause": root_cause,
            "stateChangeLog": None,
            "createdByUserId": None,
            "deletedByUserId": None,
            "shouldStatusPageSubscribersBeNotified": True,
            "subscriberNotificationStatus": "Pending",
            "subscriberNotificationStatusMessage": None,
            "isOwnerNotified": False,
        }

    def _timeline(self, incident_id: str) -> list[Row]:
        rows = [row for row in self.state_timeline.values() if row["incidentId"] == incident_id]
        return sorted(rows, key=lambda row: (row["startsAt"], row["createdAt"], row["_id"]))

    def _change_state(self, incident: Row, state_id: str, when: datetime) -> None:
        """IncidentService.onUpdateSuccess: the incident's new state becomes a timeline row at `when`, unchecked."""
        self._add_state_row(
            incident, state_id, when, when, checked=False, root_cause="This status was changed when the incident was updated."
        )

    def _add_state_row(
        self, incident: Row, state_id: str, starts_at: datetime, now: datetime, *, checked: bool, root_cause: str | None = None
    ) -> Row:
        """IncidentStateTimelineService.onBeforeCreate / onCreateSuccess: inserted in place, neighbours rewritten."""
        rows = self._timeline(incident["_id"])
        before = [row for row in rows if row["startsAt"] <= starts_at]
        after = [row for row in rows if row["startsAt"] > starts_at]
        previous, following = (before[-1] if before else None), (after[0] if after else None)
        states = self._rows["IncidentState"]
        if checked:
            for neighbour in (previous, following):
                if neighbour is not None and neighbour["incidentStateId"] == state_id:
                    raise _ApiError(
                        400, f"Incident state cannot be same as the {'previous' if neighbour is previous else 'next'} state."
                    )
            if previous is not None and states[state_id]["order"] <= states[previous["incidentStateId"]]["order"]:
                new, old = states[state_id]["name"], states[previous["incidentStateId"]]["name"]
                raise _ApiError(
                    400,
                    f"Incident cannot transition to {new} state from {old} state because {new} is before {old} "
                    "in the order of incident states.",
                )
        row_id = self._insert(STATE_TIMELINE.name, now, **self._state_row_fields(incident, state_id, starts_at, root_cause))
        row = self.state_timeline[row_id]
        row["endsAt"] = following["startsAt"] if following else None
        if previous is not None:
            self._touch(previous, {"endsAt": starts_at}, now)
        if following is not None:
            self._touch(following, {"startsAt": following["startsAt"]}, now)
        if row["endsAt"] is None:  # only a row with no successor becomes the incident's current state
            self._touch(incident, {"currentIncidentStateId": state_id}, now)
        return row

    def _remove_state_row(self, row_id: str, now: datetime) -> None:
        """onBeforeDelete / onDeleteSuccess: the neighbours are patched (a middle delete leaves overlapping intervals)."""
        row = self.state_timeline[row_id]
        rows = self._timeline(row["incidentId"])
        if len(rows) == 1:
            raise _ApiError(
                400, "Cannot delete the only state timeline. Incident should have at least one state in its timeline."
            )
        index = next(i for i, other in enumerate(rows) if other["_id"] == row_id)
        previous = rows[index - 1] if index > 0 else None
        following = rows[index + 1] if index + 1 < len(rows) else None
        if previous is not None and following is not None:
            self._touch(previous, {"endsAt": following["startsAt"]}, now)
            self._touch(following, {"startsAt": row["startsAt"]}, now)
        elif previous is not None:
            self._touch(previous, {"endsAt": row["endsAt"]}, now)
        del self.state_timeline[row_id]
        incident = self.incidents.get(row["incidentId"])
        if incident is not None:
            latest = self._timeline(incident["_id"])[-1]
            self._touch(incident, {"currentIncidentStateId": latest["incidentStateId"]}, now)

    def _new_note(self, when: datetime, **values: Any) -> Row:
        fields = {
            "projectId": self.project_id,
            "incidentId": None,
            "createdByUserId": None,  # API keys carry no user, so nothing stamps it
            "deletedByUserId": None,
            "note": None,
            "attachments": [],
            "postedAt": when,
            "postedFromSlackMessageId": None,
            "shouldStatusPageSubscribersBeNotifiedOnNoteCreated": True,
            "subscriberNotificationStatusMessage": None,
            "subscriberNotificationStatusOnNoteCreated": "Pending",
            "isOwnerNotified": False,
        } | values
        if fields["postedAt"] is None:
            fields["postedAt"] = when  # IncidentPublicNoteService.onBeforeCreate
        if not fields["shouldStatusPageSubscribersBeNotifiedOnNoteCreated"]:
            fields["subscriberNotificationStatusOnNoteCreated"] = "Skipped"
            fields["subscriberNotificationStatusMessage"] = SKIPPED_MESSAGE
        return self.notes[self._insert(NOTES.name, when, **fields)]

    def _new_file(self, when: datetime) -> str:
        return self._insert(
            "File",
            when,
            name="error-rate.png",
            fileType="image/png",
            slug=f"error-rate-{self._rng.randint(1000, 9999)}.png",
            isPublic=True,
            imageAccessToken=self._new_id(),
            file=b"\x89PNG\r\n",
        )

    def _state_of(self, incident: Row) -> Row:
        return self._rows["IncidentState"][incident["currentIncidentStateId"]]

    def _story_note(self, incident: Row, templates: tuple[str, ...]) -> str:
        story = next((story for story in INCIDENT_STORIES if story[0] == incident["title"]), INCIDENT_STORIES[0])
        return self._rng.choice(templates).format(
            symptom=story[1], component=story[2], cause=self._rng.choice(CAUSES), count=self._rng.randint(200, 90_000)
        )

    def _post(self, incident: Row, templates: tuple[str, ...], now: datetime) -> None:
        self._new_note(
            now,
            incidentId=incident["_id"],
            note=self._story_note(incident, templates),
            createdByUserId=self._rng.choice(self._users),
        )


@contextmanager
def serve(port: int = 0, *, seed: int | None = None, notification_delay: float = 60.0) -> Iterator[Simulator]:
    """Run a simulator on 127.0.0.1 (port 0 picks a free one) and stop every thread it started on exit."""
    simulator = Simulator(seed=seed, notification_delay=notification_delay)
    with loopback.serve(simulator, port=port):
        yield simulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the OneUptime API simulator until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--generate", action="store_true", help="start with 200 incidents and 5,000 public notes")
    parser.add_argument("--activity", action="store_true", help="open, update and resolve incidents every 3 seconds")
    args = parser.parse_args()
    with serve(port=args.port, seed=args.seed) as simulator:
        if args.generate:
            simulator.generate()
        if args.activity:
            simulator.start_activity()
        print(f"OneUptime simulator at {simulator.url}", flush=True)
        print(f"project id: {simulator.project_id}", flush=True)
        print(f"api key (Project Member): {simulator.api_key}", flush=True)
        print(f"read-only key (read notes and incidents, not the state timeline): {simulator.read_only_key}", flush=True)
        loopback.wait_for_ctrl_c()


if __name__ == "__main__":
    main()
