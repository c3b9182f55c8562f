"""A Helix TeamHub events API on loopback, for the test suite and the `demo` command.

It follows the vendor's Event document (REST API v1): `GET /events` as a metadata-results object,
`GET /events/:id`, `POST /events` for bot build events and `PUT /events/:id` for the progress of an
incomplete build. Where the document is ambiguous it does what the examples do: linked attributes
live inside `objects`, commits are `{"id": ...}` objects, and every item carries `api_status` and
`api_timestamp`. Fault switches (errors, rate limits, slowness, cut-off JSON, malformed items that can
be corrected, deletions) let tests show that the client copes with a misbehaving upstream, over real
HTTP rather than mocks.

Run `python -m dashboard.simulators.hth --generate 500 --activity` for a standalone server.
"""

import argparse
import bisect
import hashlib
import hmac
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import Message
from http import HTTPStatus
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from dashboard.simulators import loopback
from dashboard.simulators.loopback import BEYOND_PARSER, Response, spliced

Event = dict[str, Any]

PROJECTS: dict[str, list[str]] = {
    "luotsi": ["luotsi", "devrel", "chef"],
    "chef": ["chef", "cookbooks"],
    "atlas": ["atlas", "atlas-web"],
    "borealis": ["borealis"],
}
PEOPLE: dict[str, tuple[str, str]] = {
    "assimov": ("Anna", "Assimov"),
    "jlaiho": ("Juha", "Laiho"),
    "thuovinen": ("Tiina", "Huovinen"),
    "etuupainen": ("Eero", "Tuupainen"),
    "mkorhonen": ("Maria", "Korhonen"),
    "svirtanen": ("Sami", "Virtanen"),
    "anieminen": ("Aino", "Nieminen"),
    "pmakela": ("Pekka", "Mäkelä"),
}
USERS: dict[str, dict[str, str]] = {
    **{
        user_id: {"id": user_id, "short_name": user_id, "email": f"{user_id}@example.com", "first_name": first, "last_name": last}
        for user_id, (first, last) in PEOPLE.items()
    },
    **{
        f"{project}-ci-bot": {
            "id": f"{project}-ci-bot",
            "short_name": f"{project}-ci-bot",
            "email": f"{project}-ci-bot@bots.example.com",
            "first_name": project.capitalize(),
            "last_name": "CI Bot",
        }
        for project in PROJECTS
    },
}

BRANCHES = ("master", "master", "develop", "feature/search", "feature/login", "release/2.4")
FILES = (
    "app/models/user.rb",
    "app/controllers/events_controller.rb",
    "app/views/events/index.html.erb",
    "spec/models/user_spec.rb",
    "config/deploy.rb",
    "lib/tasks/import.rake",
    "readme.md",
)
BUILD_NAMES = ("Development", "Development", "Release", "Nightly")
BUILD_OPERATIONS = ("completed", "failed")
REVIEW_STATES = ("approved", "merged", "rejected")
TASK_STATES = ("open", "in_progress", "resolved", "closed")
TASK_TITLES = (
    "Login page forgets the return address",
    "Speed up the nightly import",
    "Document the deploy checklist",
    "Search ignores accented names",
    "Upgrade the chef cookbooks",
)
ROLES = ("guest", "developer", "developer", "master")
MALFORMED_KINDS = (
    "bad_timestamp",
    "missing_id",
    "bad_progress",
    "not_an_object",
    "deeply_nested",
    "beyond_parser",
    "oversized",
)
# Hostile but valid: a client must store these (cleaned), not reject them. A lone UTF-16 surrogate is
# valid JSON and no Unicode text; one in an event's name used to fail every pass of a mirror.
HOSTILE_KINDS = ("lone_surrogate",)
NESTED_DEPTH = 100  # deeper than any record a client should store
OVERSIZED_CHARS = 1_000_001  # more text than a client should store for one event

# How often each kind of event happens; history also holds finished builds.
ACTIVITY: dict[tuple[str, str], int] = {
    ("push", "created"): 30,
    ("code_review", "created"): 6,
    ("code_review_state", "updated"): 6,
    ("task", "created"): 6,
    ("task_state", "updated"): 6,
    ("task_title", "updated"): 2,
    ("branch", "created"): 4,
    ("tag", "created"): 2,
    ("project_user", "added"): 2,
    ("comment_reply", "created"): 4,
}
HISTORY = {**ACTIVITY, ("build", "completed"): 20}
FAILED_BUILD_SHARE = 0.2
MAX_RUNNING_BUILDS = 3

TOP_LEVEL = frozenset({"id", "created_at", "updated_at", "subject", "operation", "target", "progress", "objects", "timestamp"})
LINKED_OBJECTS = frozenset({"project", "repository", "user", "task", "code_review", "comment"})
LINKED_LISTS = frozenset({"commits", "code_reviews"})
POST_FIELDS = ("target", "operation", "project", "repository", "name", "commits", "resources", "progress")
MAX_COMMITS = 100
MAX_LIMIT = 100

AUTHORIZATION = re.compile(r"""\s*hth\.company_key=(['"])(?P<company>.*?)\1\s*,\s*account_key=(['"])(?P<account>.*?)\3\s*""")
EVENT_PATH = re.compile(r"/api/events/([^/]+)")


class _ApiError(Exception):
    """Raised anywhere in request handling; becomes the documented error body."""

    def __init__(
        self, status: int, message: str, *, errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> datetime | None:
    """The moment a timestamp names, or None for anything unparsable (malformed items still need a place)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _apply(item: Event, fields: dict[str, Any]) -> None:
    """Set attributes the way the examples place them: known event attributes at the top, the rest in `objects`."""
    for name, value in sorted(fields.items(), key=lambda field: field[0] != "objects"):
        if isinstance(value, datetime):
            value = _iso(value)
        if name == "objects":
            item["objects"] = dict(value)
        elif name == "subject":
            item["subject"] = {"id": value} if isinstance(value, str) else value
        elif name in TOP_LEVEL:
            item[name] = value
        elif name in LINKED_OBJECTS and isinstance(value, str):
            item["objects"][name] = {"id": value}
        elif name in LINKED_LISTS and isinstance(value, list):
            item["objects"][name] = [{"id": linked} if isinstance(linked, str) else linked for linked in value]
        else:
            item["objects"][name] = value


def _is_incomplete(item: Event) -> bool:
    progress = item.get("progress", 100)
    return isinstance(progress, int) and progress < 100


def _project_id(item: Event) -> object:
    objects = item.get("objects")
    project = objects.get("project") if isinstance(objects, dict) else None
    return project.get("id") if isinstance(project, dict) else project


def _matches(item: object, filters: dict[str, str]) -> bool:
    if not isinstance(item, dict):
        return False
    for name, wanted in filters.items():
        value = _project_id(item) if name == "project" else item.get(name)
        if value != wanted:
            return False
    return True


def _count_param(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name, str(default))
    if not (value.isascii() and value.isdigit()):
        raise _ApiError(400, f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def _accepts_v1(accept: str | None) -> bool:
    """No Accept, or a generic one, means the latest version (v1); only another explicit vnd.hth version is refused."""
    if not accept:
        return True
    media_types = [part.split(";")[0].strip().lower().split("+")[0] for part in accept.split(",")]
    versions = [media_type for media_type in media_types if media_type.startswith("application/vnd.hth")]
    return not versions or any(version in ("application/vnd.hth", "application/vnd.hth.v1") for version in versions)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(body or b"null")
    except ValueError:
        raise _ApiError(400, "The request body is not valid JSON") from None
    if not isinstance(fields, dict):
        raise _ApiError(422, "Validation failed", errors={"body": ["must be a JSON object"]})
    return fields


def _progress_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        return "must be an integer from 0 to 100"
    return None


def _string_list_problem(value: object, most: int | None = None) -> str | None:
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        return "must be a list of strings"
    if most is not None and len(value) > most:
        return f"may hold at most {most} entries"
    return None


class Simulator(loopback.LoopbackSimulator):
    """The fake TeamHub's state and behaviour; the HTTP handler only turns requests into `respond()` calls.

    Events are kept in a list sorted by (timestamp, id) so that a page deep into 10,000 events is cheap,
    and every method takes one lock because the HTTP threads and the activity thread write concurrently.
    """

    ACTIVITY_INTERVAL = 2.0

    def __init__(self, *, seed: int | None, company_key: str, account_key: str, bot_account_key: str):
        super().__init__()
        self.company_key = company_key
        self.account_key = account_key
        self.bot_account_key = bot_account_key
        self.clock: Callable[[], datetime] = _utc_now
        self.projects = list(PROJECTS)
        self.requests: list[tuple[str, str]] = []
        self.writes: list[tuple[str, str, bytes]] = []  # POST and PUT bodies, for tests of the bot API's callers
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._machine = f"{self._rng.getrandbits(40):010x}"
        self._counter = 0
        self._build_number = 1000
        self._order: list[tuple[datetime, str]] = []
        self._stored: dict[str, tuple[datetime, Any]] = {}
        self._build_plans: dict[str, int | None] = {}
        self._malformed: set[str] = set()
        self._faults: deque[tuple[int, int | None]] = deque()
        # Push subscribers (see "Webhooks and Hooks" below) and every delivery made: (url, status).
        self.webhooks: list[tuple[str, dict[str, str]]] = []
        self.hooks: list[tuple[str, str, str]] = []
        self.deliveries: list[tuple[str, int]] = []
        # Fault hooks: `before_list(offset)` runs (under the lock) before each list page is answered, to
        # change the list between two pages; `get_delay` slows each GET /events/:id outside the lock, and
        # `max_in_flight` says how many requests were ever answered at once.
        self.before_list: Callable[[int], None] | None = None
        self.get_delay = 0.0
        self.max_in_flight = 0
        self._in_flight = 0
        self._flight_lock = threading.Lock()

    @property
    def events(self) -> list[Any]:
        """A snapshot list of the stored items, newest first, as the API orders them (without api_* fields)."""
        with self._lock:
            return [item for _, item in self._newest_first()]

    def add_event(
        self, *, target: str = "push", operation: str = "created", project: str | None = None, **overrides: Any
    ) -> Event:
        """Add one event; any attribute may be overridden, and unknown names go inside `objects`."""
        with self._lock:
            now = self.clock()
            when = _parse_time(overrides.get("timestamp")) or now
            item = self._new_item(
                target=target, operation=operation, project=project or self._rng.choice(self.projects), when=when
            )
            _apply(item, overrides)
            self._store(item, now)
        if target == "push":
            self.announce_push(item)
        return item

    def generate(self, count: int) -> None:
        """Add `count` finished historical events before now, oldest first, opening with each project's creation."""
        with self._lock:
            now = self.clock()
            moments = []
            moment = now
            for _ in range(count):
                moment -= timedelta(seconds=1 + self._rng.expovariate(1 / 600))
                moments.append(moment)
            for index, when in enumerate(reversed(moments)):
                if index < len(self.projects):
                    item = self._new_item(target="project", operation="created", project=self.projects[index], when=when)
                else:
                    target, operation = self._pick(HISTORY)
                    item = self._new_item(target=target, operation=operation, project=self._rng.choice(self.projects), when=when)
                if item["target"] == "build":
                    self._finish_historical_build(item, when, now)
                self._store(item, when)

    def start_build(self, *, project: str | None = None, repository: str | None = None, name: str | None = None) -> str:
        """Start a build at progress 0 that `step()` will drive to completion or failure; returns its id."""
        with self._lock:
            return self._start_build(self.clock(), project=project, repository=repository, name=name)

    def set_progress(self, build_id: str, progress: int, operation: str | None = None) -> Event:
        fields: dict[str, Any] = {"progress": progress}
        if operation is not None:
            fields["operation"] = operation
        return self.update_event(build_id, **fields)

    def update_event(self, event_id: str, **fields: Any) -> Event:
        """Edit a stored event behind the client's back, as upstream does; `updated_at` moves unless given."""
        with self._lock:
            return self._update(event_id, fields, self.clock())

    def step(self) -> None:
        """One tick of activity: running builds climb, and sometimes people push, review or plan (pushes start builds)."""
        pushed = None
        with self._lock:
            now = self.clock()
            self._advance_builds(now)
            roll = self._rng.random()
            if roll < 0.3:
                target, operation = self._pick(ACTIVITY)
                item = self._new_item(target=target, operation=operation, project=self._rng.choice(self.projects), when=now)
                self._store(item, now)
                pushed = item if target == "push" else None
                if target == "push" and self._rng.random() < 0.5:
                    objects = item["objects"]
                    self._start_build(
                        now,
                        project=objects["project"]["id"],
                        repository=objects["repository"]["id"],
                        commits=[commit["id"] for commit in objects["commits"]],
                    )
            elif roll < 0.4 and len(self._build_plans) < MAX_RUNNING_BUILDS:
                self._start_build(now)
        if pushed:
            self.announce_push(pushed)

    # ---- Webhooks and Hooks (../shared/upstream-docs/hth-webhooks.md): both fire when commits are pushed ----

    def add_webhook(self, url: str, headers: dict[str, str]) -> None:
        """A newer "Webhook": a JSON array of Event objects, with the "authentication headers" given."""
        self.webhooks.append((url, headers))

    def add_hook(self, url: str, *, secret: str = "", content_type: str = "form") -> None:
        """An older repository "Hook": form-encoded (default) or "json", signed with X-Hub-Signature when it has a secret."""
        self.hooks.append((url, secret, content_type))

    def announce_push(self, item: Event) -> None:
        """Deliver a push to every subscriber, one POST each, outside the lock (a receiver may call us back)."""
        for url, headers in self.webhooks:
            self.deliveries.append(
                (url, loopback.post(url, self.webhook_body([item]), {"Content-Type": "application/json"} | headers))
            )
        for url, secret, content_type in self.hooks:
            body, headers = hook_request(self.hook_payload(item), secret=secret, content_type=content_type)
            self.deliveries.append((url, loopback.post(url, body, headers)))

    def webhook_body(self, items: list[Event]) -> bytes:
        """Events as a Webhook sends them: the API's Event format, commits expanded to commit objects."""
        with self._lock:
            stamp = _iso(self.clock())
            rendered = []
            for item in items:
                event = self._render(json.loads(json.dumps(item)), 200, stamp, expand_subject=False)
                objects = event.get("objects") or {}
                objects["commits"] = [self._commit(commit, event) for commit in objects.get("commits", [])]
                rendered.append(event)
            return json.dumps(rendered).encode()

    def hook_payload(self, item: Event) -> dict[str, Any]:
        """An older Hook's body for a push: not the Event format, and no event id."""
        objects = item.get("objects") or {}
        return {
            "operation": "pushed",
            "type": "repository",
            "subject": item.get("subject"),
            "project": objects.get("project"),
            "repository": objects.get("repository"),
            "ref": objects.get("ref"),
            "commits": [commit.get("id") for commit in objects.get("commits", [])],
        }

    def _commit(self, commit: Any, event: Event) -> Any:
        if not isinstance(commit, dict):
            return commit
        person = PEOPLE.get((event.get("subject") or {}).get("id", ""), ("CI", "Bot"))
        objects = event.get("objects") or {}
        return {
            "id": commit.get("id"),
            "author": " ".join(person),
            "email": f"{(event.get('subject') or {}).get('id')}@example.com",
            "description": "Simulated commit",
            "timestamp": event.get("timestamp"),
            "rev": commit.get("id"),
            "repository": objects.get("repository"),
            "project": objects.get("project"),
        }

    def delete_event(self, event_id: str) -> None:
        """Remove an event, as upstream does when its project or repository is deleted."""
        with self._lock:
            sort_time, _ = self._stored.pop(event_id)
            del self._order[bisect.bisect_left(self._order, (sort_time, event_id))]
            self._malformed.discard(event_id)

    def repair_event(self, event_id: str, **fields: Any) -> Event:
        """Correct a malformed item that has an id: it becomes a valid event, in the place its timestamp gives."""
        with self._lock:
            item = self._update(event_id, fields, self.clock())
            self._malformed.discard(event_id)
            return item

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._faults.extend([(status, None)] * count)

    def rate_limit_next(self, count: int, retry_after: int = 1) -> None:
        with self._lock:
            self._faults.extend([(429, retry_after)] * count)

    def corrupt_next(self, count: int) -> None:
        """Answer the next `count` requests with a 200 whose JSON stops halfway, as a dropped proxy connection leaves it."""
        with self._lock:
            self._faults.extend([(200, None)] * count)

    def clear_faults(self) -> None:
        """Forget every queued fault answer (fail_next, rate_limit_next, corrupt_next)."""
        with self._lock:
            self._faults.clear()

    def well_formed_events(self) -> list[Event]:
        """What a correct mirror holds: every stored event except the malformed items."""
        with self._lock:
            return [item for key, item in self._newest_first() if key not in self._malformed]

    def repair_malformed_events(self) -> None:
        """Correct every malformed item that has an id (see `repair_event`); the others stay malformed."""
        with self._lock:
            for key in list(self._malformed):
                sort_time, item = self._stored[key]
                if isinstance(item, dict) and item.get("id") == key:
                    if isinstance(item.get("objects"), dict):
                        item["objects"].pop("hostile", None)
                    self.repair_event(key, timestamp=_iso(sort_time), progress=100)

    def add_malformed_event(self, kind: str = "bad_timestamp") -> Any:
        """Insert, as the newest item, something a client must reject (MALFORMED_KINDS) or clean (HOSTILE_KINDS);
        returns the raw item. Only the rejected ones are left out of `well_formed_events`."""
        if kind not in MALFORMED_KINDS + HOSTILE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS + HOSTILE_KINDS)}")
        with self._lock:
            now = self.clock()
            item: Any = "this is not an event"
            if kind != "not_an_object":
                item = self._new_item(target="push", operation="created", project=self._rng.choice(self.projects), when=now)
                if kind == "bad_timestamp":
                    item["timestamp"] = "not-a-date"
                elif kind == "missing_id":
                    del item["id"]
                elif kind == "deeply_nested":
                    hostile: Any = "leaf"
                    for _ in range(NESTED_DEPTH):
                        hostile = {"inner": hostile}
                    item["objects"]["hostile"] = hostile
                elif kind == "beyond_parser":
                    item["objects"]["hostile"] = BEYOND_PARSER
                elif kind == "oversized":
                    item["objects"]["hostile"] = "x" * OVERSIZED_CHARS
                elif kind == "lone_surrogate":
                    item["objects"]["name"] = "deploy \ud800 prod"
                else:
                    item["progress"] = "lots"
            key = item["id"] if isinstance(item, dict) and "id" in item else self._new_id(now)
            self._insert(key, item, now)
            if kind not in HOSTILE_KINDS:
                self._malformed.add(key)
            return item

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Response:
        with self._flight_lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.get_delay and method == "GET" and EVENT_PATH.fullmatch(urlsplit(path).path.rstrip("/")):
                time.sleep(self.get_delay)
            return self._respond(method, path, headers, body)
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    def _respond(self, method: str, path: str, headers: Message, body: bytes) -> Response:
        """Answer one HTTP request; serialised under the lock so no writer changes an item mid-dump."""
        with self._lock:
            self.requests.append((method, path))
            if method in ("POST", "PUT"):
                self.writes.append((method, path, body))
            if self._faults and self._faults[0][0] == 200:
                self._faults.popleft()
                return Response(200, b'{"metadata": {"more_results": true, "next_offset": 1', {})
            stamp = _iso(self.clock())
            try:
                status, payload = self._route(method, path, headers, body, stamp)
                extra: dict[str, str] = {}
            except _ApiError as error:
                status, extra = error.status, error.headers
                payload = {"api_status": status, "api_timestamp": stamp, "message": error.message}
                if error.errors is not None:
                    payload["errors"] = error.errors
            return Response(status, spliced(json.dumps(payload)).encode(), extra)

    def _route(self, method: str, path: str, headers: Message, body: bytes, stamp: str) -> tuple[int, Any]:
        if self._faults:
            status, retry_after = self._faults.popleft()
            if retry_after is None:
                raise _ApiError(status, f"{HTTPStatus(status).phrase} (simulated fault)")
            raise _ApiError(
                429, f"Rate limit exceeded; retry after {retry_after} seconds", headers={"Retry-After": str(retry_after)}
            )
        account = self._account(headers.get("Authorization"))
        if account is None:
            raise _ApiError(401, "Authorization must carry a valid company_key and account_key")
        if not _accepts_v1(headers.get("Accept")):
            raise _ApiError(406, "This API serves application/vnd.hth.v1 only")
        url = urlsplit(path)
        route = url.path.rstrip("/")
        params = dict(parse_qsl(url.query))
        expand_subject = "subject" in params.get("expand", "").split(",")
        match = EVENT_PATH.fullmatch(route)
        if route == "/api/events" and method == "GET":
            return 200, self._list(params, stamp, expand_subject)
        if route == "/api/events" and method == "POST":
            return 201, self._create(account, body, stamp)
        event_id = unquote(match[1]) if match else ""
        if match and method == "GET":
            return 200, self._render(self._event(event_id), 200, stamp, expand_subject)
        if match and method == "PUT":
            return 200, self._render(self._change(event_id, body), 200, stamp, expand_subject)
        if route == "/api/events" or match:
            raise _ApiError(405, f"{method} is not allowed on {url.path}")
        raise _ApiError(404, f"No such resource: {url.path}")

    def _account(self, authorization: str | None) -> str | None:
        """'bot' or 'user' for good keys, None for missing or wrong ones."""
        match = AUTHORIZATION.fullmatch(authorization or "")
        if not match or match["company"] != self.company_key:
            return None
        if match["account"] == self.bot_account_key:
            return "bot"
        return "user" if match["account"] == self.account_key else None

    def _list(self, params: dict[str, str], stamp: str, expand_subject: bool) -> dict[str, Any]:
        limit = min(_count_param(params, "limit", 20), MAX_LIMIT)
        offset = _count_param(params, "offset", 0)
        if self.before_list:
            self.before_list(offset)
        filters = {name: params[name] for name in ("project", "operation", "target") if name in params}
        # Malformed items ignore filters, so a client that filters still meets the items it must reject.
        selected = (item for key, item in self._newest_first() if key in self._malformed or _matches(item, filters))
        found = list(islice(selected, offset, offset + limit + 1))
        results = [self._render(item, 200, stamp, expand_subject) for item in found[:limit]]
        return {
            "metadata": {"more_results": len(found) > limit, "next_offset": offset + len(results), "count": len(results)},
            "results": results,
        }

    def _create(self, account: str, body: bytes, stamp: str) -> Event:
        if account != "bot":
            raise _ApiError(403, "Only a bot account can create events")
        fields = _json_object(body)
        errors = {name: ["is not a field of a build event"] for name in fields if name not in POST_FIELDS}
        if fields.get("target") != "build":
            errors["target"] = ["must be build"]
        if fields.get("operation") not in BUILD_OPERATIONS:
            errors["operation"] = ["must be completed or failed"]
        if fields.get("project") not in self.projects:
            errors["project"] = ["must be an existing project"]
        if not isinstance(fields.get("repository"), str) or not fields["repository"]:
            errors["repository"] = ["is required"]
        if "name" in fields and not isinstance(fields["name"], str):
            errors["name"] = ["must be a string"]
        for name, most in (("commits", MAX_COMMITS), ("resources", None)):
            if name in fields and (problem := _string_list_problem(fields[name], most)):
                errors[name] = [problem]
        if "progress" in fields and (problem := _progress_problem(fields["progress"])):
            errors["progress"] = [problem]
        if errors:
            raise _ApiError(422, "Validation failed", errors=errors)
        now = self.clock()
        project = fields["project"]
        item = self._item(target="build", operation=fields["operation"], subject=f"{project}-ci-bot", objects={}, when=now)
        _apply(
            item,
            {
                name: fields[name]
                for name in ("project", "repository", "commits", "resources", "name", "progress")
                if name in fields
            },
        )
        self._store(item, now)
        return self._render(item, 201, stamp, expand_subject=False)

    def _change(self, event_id: str, body: bytes) -> Event:
        item = self._event(event_id)
        fields = _json_object(body)
        errors = {name: ["cannot be changed"] for name in fields if name not in ("progress", "operation")}
        if "progress" in fields and (problem := _progress_problem(fields["progress"])):
            errors["progress"] = [problem]
        if "operation" in fields and fields["operation"] not in BUILD_OPERATIONS:
            errors["operation"] = ["must be completed or failed"]
        if item.get("target") != "build" or not _is_incomplete(item):
            errors["base"] = ["only an incomplete build event can be updated"]
        if errors:
            raise _ApiError(422, "Validation failed", errors=errors)
        return self._update(event_id, fields, self.clock())

    def _event(self, event_id: str) -> Event:
        entry = self._stored.get(event_id)
        item = entry[1] if entry else None
        if not isinstance(item, dict) or item.get("id") != event_id:
            raise _ApiError(404, f"Event {event_id} not found")
        return item

    def _render(self, item: Any, status: int, stamp: str, expand_subject: bool) -> Any:
        if not isinstance(item, dict):
            return item
        rendered = {"api_status": status, "api_timestamp": stamp, **item}
        subject = item.get("subject")
        if expand_subject and isinstance(subject, dict):
            rendered["subject"] = USERS.get(subject.get("id"), subject)
        return rendered

    def _newest_first(self) -> Iterator[tuple[str, Any]]:
        """(store key, item) pairs; the key is the event id except for items that lack one."""
        return ((key, self._stored[key][1]) for _, key in reversed(self._order))

    def _store(self, item: Event, fallback: datetime) -> None:
        self._insert(item["id"], item, _parse_time(item.get("timestamp")) or fallback)

    def _insert(self, key: str, item: Any, sort_time: datetime) -> None:
        if key in self._stored:
            raise ValueError(f"an event with id {key} already exists")
        bisect.insort(self._order, (sort_time, key))
        self._stored[key] = (sort_time, item)

    def _update(self, event_id: str, fields: dict[str, Any], now: datetime) -> Event:
        """Take the event out and put it back, since a new timestamp or id moves it in the order."""
        sort_time, item = self._stored.pop(event_id)
        del self._order[bisect.bisect_left(self._order, (sort_time, event_id))]
        item["updated_at"] = _iso(now)
        _apply(item, fields)
        self._store(item, sort_time)
        return item

    def _new_id(self, when: datetime) -> str:
        """A Mongo ObjectId look-alike, as in the examples: seconds, a per-simulator part, a counter."""
        self._counter = (self._counter + 1) % 0x1000000
        return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}{self._machine}{self._counter:06x}"

    def _sha(self) -> str:
        return f"{self._rng.getrandbits(160):040x}"

    def _pick(self, kinds: dict[tuple[str, str], int]) -> tuple[str, str]:
        return self._rng.choices(list(kinds), weights=list(kinds.values()))[0]

    def _item(self, *, target: str, operation: str, subject: str, objects: dict[str, Any], when: datetime) -> Event:
        stamp = _iso(when)
        return {
            "id": self._new_id(when),
            "created_at": stamp,
            "updated_at": stamp,
            "subject": {"id": subject},
            "operation": operation,
            "target": target,
            "progress": 100,
            "objects": objects,
            "timestamp": stamp,
        }

    def _new_item(self, *, target: str, operation: str, project: str, when: datetime) -> Event:
        subject = f"{project}-ci-bot" if target == "build" else self._rng.choice(list(PEOPLE))
        return self._item(
            target=target, operation=operation, subject=subject, objects=self._objects_for(target, project), when=when
        )

    def _objects_for(self, target: str, project: str) -> dict[str, Any]:
        """Linked objects shaped like the examples for each kind of event."""
        rng = self._rng
        repository = rng.choice(PROJECTS.get(project, [project]))
        objects: dict[str, Any] = {"project": {"id": project}}
        if target == "build":
            return self._build_objects(project, repository=repository, name=rng.choice(BUILD_NAMES), commits=[self._sha()])
        if target == "push":
            commit_count = rng.choice((1, 1, 2, 3, 5, 8, 40))
            commits = [{"id": self._sha()} for _ in range(min(commit_count, 20))]
            files: dict[str, list[str]] = {"added": [], "modified": [], "deleted": []}
            for path in rng.sample(FILES, rng.randint(1, 4)):
                files[rng.choice(("added", "modified", "modified", "deleted"))].append(path)
            objects.update(
                repository={"id": repository},
                commits=commits,
                last_commit=commits[-1]["id"],
                commit_count=commit_count,
                ref=rng.choice(BRANCHES),
                files=files,
            )
        elif target == "branch":
            commit = self._sha()
            ref = f"feature/{rng.choice(('export', 'sso', 'dark-mode', 'audit-log'))}"
            objects.update(repository={"id": repository}, commits=[{"id": commit}], last_commit=commit, commit_count=1, ref=ref)
        elif target == "tag":
            objects.update(repository={"id": repository}, ref=f"v{rng.randint(1, 3)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}")
        elif target.startswith("code_review"):
            objects.update(repository={"id": repository}, code_review={"id": str(rng.randint(1, 400))})
            if target == "code_review_state":
                objects["state"] = rng.choice(REVIEW_STATES)
        elif target.startswith("task"):
            objects["task"] = {"id": str(rng.randint(1, 900))}
            if target == "task_state":
                objects["state"] = rng.choice(TASK_STATES)
            elif target == "task_title":
                objects["title"] = rng.choice(TASK_TITLES)
        elif target == "project_user":
            objects = {"user": {"id": rng.choice(list(PEOPLE))}, "project": {"id": project}, "role": rng.choice(ROLES)}
        elif target == "project":
            objects.update(short_name=project, name=project.capitalize(), visibility=rng.choice(("private", "private", "public")))
        elif target == "comment_reply":
            objects.update(task={"id": str(rng.randint(1, 900))}, comment={"id": self._sha()[:24]})
        return objects

    def _build_objects(self, project: str, *, repository: str, name: str, commits: list[str]) -> dict[str, Any]:
        self._build_number += 1
        objects: dict[str, Any] = {
            "project": {"id": project},
            "repository": {"id": repository},
            "commits": [{"id": commit} for commit in commits],
            "resources": [f"https://ci.example.com/job/{project}-{name.lower()}/{self._build_number}"],
            "name": name,
        }
        if self._rng.random() < 0.3:
            objects["code_reviews"] = [{"id": str(self._rng.randint(1, 400))}]
        if self._rng.random() < 0.1:
            objects["bookmarks"] = ["default"]
        return objects

    def _start_build(
        self,
        now: datetime,
        *,
        project: str | None = None,
        repository: str | None = None,
        name: str | None = None,
        commits: list[str] | None = None,
    ) -> str:
        project = project or self._rng.choice(self.projects)
        objects = self._build_objects(
            project,
            repository=repository or self._rng.choice(PROJECTS.get(project, [project])),
            name=name or self._rng.choice(BUILD_NAMES),
            commits=commits or [self._sha()],
        )
        item = self._item(target="build", operation="completed", subject=f"{project}-ci-bot", objects=objects, when=now)
        item["progress"] = 0
        self._store(item, now)
        # Decided up front so that about one build in five fails, somewhere along the way.
        self._build_plans[item["id"]] = self._rng.randint(5, 95) if self._rng.random() < FAILED_BUILD_SHARE else None
        return item["id"]

    def _advance_builds(self, now: datetime) -> None:
        for build_id, fail_at in list(self._build_plans.items()):
            entry = self._stored.get(build_id)
            item = entry[1] if entry else None
            if not isinstance(item, dict) or not _is_incomplete(item) or item.get("operation") == "failed":
                del self._build_plans[build_id]  # finished, or taken over by a test
                continue
            if self._rng.random() < 0.5:
                continue  # uneven climb: on some ticks a build shows no progress
            progress = min(100, item["progress"] + self._rng.randint(1, 6))
            if fail_at is not None and progress >= fail_at:
                fields: dict[str, Any] = {"progress": 100, "operation": "failed"}
            else:
                fields = {"progress": progress}
            self._update(build_id, fields, now)
            if fields["progress"] == 100:
                del self._build_plans[build_id]

    def _finish_historical_build(self, item: Event, started: datetime, now: datetime) -> None:
        finished = min(started + timedelta(seconds=self._rng.randint(60, 900)), now)
        item["updated_at"] = _iso(finished)
        if self._rng.random() < FAILED_BUILD_SHARE:
            item["operation"] = "failed"


def hook_request(payload: dict[str, Any], *, secret: str, content_type: str = "form") -> tuple[bytes, dict[str, str]]:
    """An older Hook's body and headers: form-encoded fields (nested values as JSON) or JSON, signed when there is a secret."""
    if content_type == "json":
        body, headers = json.dumps(payload).encode(), {"Content-Type": "application/json"}
    else:
        fields = {name: value if isinstance(value, str) else json.dumps(value) for name, value in payload.items()}
        body, headers = urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if secret:
        headers["X-Hub-Signature"] = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return body, headers


@contextmanager
def serve(
    port: int = 0,
    *,
    seed: int | None = None,
    company_key: str = "demo-company-key",
    account_key: str = "demo-account-key",
    bot_account_key: str = "demo-bot-key",
) -> Iterator[Simulator]:
    """Run a simulator on 127.0.0.1 (port 0 picks a free one) and stop every thread it started on exit."""
    simulator = Simulator(seed=seed, company_key=company_key, account_key=account_key, bot_account_key=bot_account_key)
    with loopback.serve(simulator, port=port):
        yield simulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Helix TeamHub events simulator until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--generate", type=int, default=0, metavar="N", help="add N historical events first")
    parser.add_argument("--activity", action="store_true", help="add live activity every 2 seconds")
    args = parser.parse_args()
    with serve(port=args.port, seed=args.seed) as simulator:
        simulator.generate(args.generate)
        if args.activity:
            simulator.start_activity()
        print(f"Helix TeamHub simulator at {simulator.url}", flush=True)
        print(
            f"company_key={simulator.company_key} account_key={simulator.account_key} bot_account_key={simulator.bot_account_key}",
            flush=True,
        )
        loopback.wait_for_ctrl_c()


if __name__ == "__main__":
    main()
