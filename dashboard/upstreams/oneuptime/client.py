"""The OneUptime client for incident public notes (list, count, get, create, update, delete) and incidents (reads).

Reference: ../shared/upstream-docs/oneuptime-incident-public-note.txt, and oneuptime-api-notes.md beside it,
which says where the real API differs from that page: ids and dates come back wrapped, nothing but `_id`
comes back without a `select`, a missing permission is a 422, and an unknown id gets 200 `{}`. Every
answer is normalized into plain dicts with aware datetimes. It never touches models, and it never retries
a create: OneUptime has no idempotency key, so a retried create would post the note twice.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import batched
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from dashboard.upstreams import http as upstream
from dashboard.upstreams.storable import MAX_DEPTH

PAGE_SIZE = 100  # the maximum `limit` the vendor page documents
# The most OneUptime's source serves in one page. A server that enforces the documented 100 refuses it
# with a 400, and the client then pages by 100 from that call on.
ID_PAGE_SIZE = 10_000
# Full scans go oldest first, with `_id` to break ties, so notes created mid-scan land on later pages
# instead of shifting the ones already read.
SCAN_ORDER = {"createdAt": "ASC", "_id": "ASC"}
# Columns that hold dates, so that a plain string there (rather than a DateTime wrapper) is parsed too.
DATE_FIELDS = frozenset(
    {
        "createdAt",
        "updatedAt",
        "deletedAt",
        "postedAt",
        "declaredAt",
        "impactStartedAt",
        "postmortemPostedAt",
        "startsAt",
        "endsAt",
    }
)
# A proxy or server that will not take PUT or DELETE says so with one of these.
BLOCKED_METHOD_STATUSES = (405, 501)
MAX_MESSAGE_LENGTH = 300
# The key under which a listing names a record it could not bring because the record alone is larger than an
# answer may be (UPSTREAM_MAX_ANSWER_BYTES), with the reason. No OneUptime attribute starts with "_u".
UNREADABLE = "_unreadable"

# Every attribute the vendor page lists, plus `version` (for spotting concurrent edits) and the author.
NOTE_SELECT: dict[str, Any] = {
    "_id": True,
    "createdAt": True,
    "updatedAt": True,
    "version": True,
    "project": True,
    "projectId": True,
    # Title and number travel with the note, so it can be shown even when its incident is private to this key.
    "incident": {"title": True, "incidentNumber": True, "incidentNumberWithPrefix": True},
    "incidentId": True,
    "createdByUser": {"name": True, "email": True},
    "createdByUserId": True,
    "note": True,
    "attachments": {"name": True, "fileType": True, "slug": True, "isPublic": True},  # not `file`: that is the bytes
    "subscriberNotificationStatusMessage": True,
    "shouldStatusPageSubscribersBeNotifiedOnNoteCreated": True,
    "postedAt": True,
    "postedFromSlackMessageId": True,
}
INCIDENT_SELECT: dict[str, Any] = {
    "_id": True,
    "createdAt": True,
    "updatedAt": True,
    "version": True,
    "projectId": True,
    "title": True,
    "description": True,
    "declaredAt": True,
    "impactStartedAt": True,
    "incidentNumber": True,
    "incidentNumberWithPrefix": True,
    "currentIncidentStateId": True,
    "currentIncidentState": {
        "name": True,
        "color": True,
        "isCreatedState": True,
        "isAcknowledgedState": True,
        "isResolvedState": True,
        "order": True,
    },
    "incidentSeverityId": True,
    "incidentSeverity": {"name": True, "color": True, "order": True},
    "rootCause": True,
    "postmortemNote": True,
    "postmortemPostedAt": True,
    "isVisibleOnStatusPage": True,
    "isPrivate": True,
    "isCreatedAutomatically": True,
    "createdByUserId": True,
    # What "what changed just before" matches to Helix TeamHub projects and repositories by name.
    "labels": {"name": True},
    "monitors": {"name": True},
}
# The state timeline (oneuptime-state-timeline-notes.md §1.6); not `stateChangeLog`, a probe's whole answer.
STATE_SELECT: dict[str, Any] = {
    "_id": True,
    "createdAt": True,
    "updatedAt": True,
    "incidentId": True,
    "incidentStateId": True,
    "incidentState": {
        "name": True,
        "color": True,
        "order": True,
        "isCreatedState": True,
        "isAcknowledgedState": True,
        "isResolvedState": True,
    },
    "startsAt": True,
    "endsAt": True,
    "rootCause": True,
    "createdByUserId": True,
}


@dataclass(frozen=True)
class Resource:
    path: str
    noun: str
    plural: str
    select: dict[str, Any]
    permissions: dict[str, str]  # operation -> the permission to grant, as OneUptime's settings name it


NOTES = Resource(
    path="incident-public-note",
    noun="incident public note",
    plural="incident public notes",
    select=NOTE_SELECT,
    permissions={
        "read": "Read Incident Status Page Note",
        "create": "Create Incident Status Page Note",
        "update": "Edit Incident Status Page Note",
        "delete": "Delete Incident Status Page Note",
    },
)
INCIDENTS = Resource(
    path="incident", noun="incident", plural="incidents", select=INCIDENT_SELECT, permissions={"read": "Read Incident"}
)
# Reading it needs its own permission: "Read Incident" is not enough (state-timeline notes §0.1).
STATE_TIMELINE = Resource(
    path="incident-state-timeline",
    noun="incident state timeline row",
    plural="incident state timeline rows",
    select=STATE_SELECT,
    permissions={"read": "Read Incident State Timeline"},
)


class PermissionMissing(upstream.UpstreamError):
    """The key lacks a permission for this operation: nothing changes until someone grants it."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, permanent=True, status=status)


class RecordNotFound(upstream.UpstreamError):
    """An update named a record OneUptime does not have, or one this key may not see; retrying cannot help."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, permanent=True, status=status)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    count: int  # every record matching the query, not just this page
    skip: int
    limit: int


class OneUptimeClient:
    def __init__(self, base_url: str, api_key: str, *, use_post_alternatives: bool = False):
        self.base_url = base_url.rstrip("/")
        self.use_post_alternatives = use_post_alternatives
        self.id_page_size = ID_PAGE_SIZE
        headers = {"ApiKey": api_key, "Content-Type": "application/json", "Accept": "application/json"}
        # Reads (POSTs too), updates and deletes can be repeated safely, so they are retried on 429/5xx.
        self._session = upstream.make_session(headers=headers, retried_methods=frozenset({"GET", "POST", "PUT", "DELETE"}))
        # Creates go through the default retry policy, which leaves out POST. (An empty set would not:
        # urllib3 2 reads that as "retry every method".)
        self._create_session = upstream.make_session(headers=headers)

    @classmethod
    def from_settings(cls) -> "OneUptimeClient":
        return cls(
            settings.ONEUPTIME_API_URL,
            settings.ONEUPTIME_API_KEY,
            use_post_alternatives=settings.ONEUPTIME_USE_POST_ALTERNATIVES,
        )

    def list_notes(
        self, *, query: dict[str, Any] | None = None, sort: dict[str, Any] | None = None, skip: int = 0, limit: int = PAGE_SIZE
    ) -> Page:
        """POST /incident-public-note/get-list: one page, newest first unless `sort` says otherwise."""
        return self._list(NOTES, query=query, sort=sort, skip=skip, limit=limit)

    def iter_notes(
        self, *, query: dict[str, Any] | None = None, sort: dict[str, Any] | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        return self._iterate(NOTES, query=query, sort=sort, page_size=page_size)

    def list_ids(self, resource: "Resource") -> list[str]:
        """Every id of `resource` (NOTES or INCIDENTS): OneUptime deletes hard, so comparing ids is the only way to
        notice deletions. Pages of 10000, or of 100 once a server has refused more."""
        try:
            items = list(self._iterate(resource, query=None, sort=None, page_size=self.id_page_size, select={"_id": True}))
        except upstream.UpstreamError as exc:
            if exc.status != 400 or self.id_page_size == PAGE_SIZE:
                raise
            self.id_page_size = PAGE_SIZE
            items = list(self._iterate(resource, query=None, sort=None, page_size=PAGE_SIZE, select={"_id": True}))
        return [item["_id"] for item in items if UNREADABLE not in item]  # an unreadable record cannot name its id

    def existing_ids(self, resource: "Resource", ids: Iterable[str]) -> list[str]:
        """Which of `ids` OneUptime has, asked by id (100 a request), to confirm a deletion seen in a listing."""
        found = []
        for chunk in batched(sorted(ids), PAGE_SIZE):
            query = {"_id": {"_type": "Includes", "value": list(chunk)}}
            page = self._list(resource, query=query, sort=None, skip=0, limit=PAGE_SIZE, select={"_id": True})
            if any(UNREADABLE in item for item in page.items):
                found += chunk  # an answer that cannot be read confirms no deletion
            else:
                found += [item["_id"] for item in page.items]
        return found

    def get_note(self, note_id: str) -> dict[str, Any] | None:
        """POST /incident-public-note/:id/get-item; None when OneUptime has no such note (it answers 200 `{}`)."""
        return self._get(NOTES, note_id)

    def count_notes(self, query: dict[str, Any] | None = None) -> int:
        return self._count(NOTES, query)

    def create_note(self, data: dict[str, Any]) -> dict[str, Any]:
        """POST /incident-public-note, never retried. Send `shouldStatusPageSubscribersBeNotifiedOnNoteCreated:
        False` in `data` unless status-page subscribers should be emailed about the note."""
        body = {"data": _jsonable(data, wrap_dates=True)}
        response = upstream.send(self._create_session, "POST", f"{self.base_url}/{NOTES.path}", json=body)
        return normalize(self._answer(NOTES, "create", response))

    def update_note(self, note_id: str, data: dict[str, Any]) -> None:
        """PUT /incident-public-note/:id (last write wins: OneUptime has no If-Match)."""
        self._write(NOTES, "update", note_id, {"data": _jsonable(data, wrap_dates=True)})

    def delete_note(self, note_id: str) -> None:
        """DELETE /incident-public-note/:id; deleting a note that is already gone succeeds too."""
        self._write(NOTES, "delete", note_id, None)

    def list_incidents(
        self, *, query: dict[str, Any] | None = None, sort: dict[str, Any] | None = None, skip: int = 0, limit: int = PAGE_SIZE
    ) -> Page:
        """POST /incident/get-list. Private incidents are left out unless the key is a project owner's or admin's."""
        return self._list(INCIDENTS, query=query, sort=sort, skip=skip, limit=limit)

    def iter_incidents(
        self, *, query: dict[str, Any] | None = None, sort: dict[str, Any] | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        return self._iterate(INCIDENTS, query=query, sort=sort, page_size=page_size)

    def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        return self._get(INCIDENTS, incident_id)

    def count_incidents(self, query: dict[str, Any] | None = None) -> int:
        return self._count(INCIDENTS, query)

    def list_state_timeline(
        self, *, query: dict[str, Any] | None = None, sort: dict[str, Any] | None = None, skip: int = 0, limit: int = PAGE_SIZE
    ) -> Page:
        """POST /incident-state-timeline/get-list. Sort by `startsAt` to read a history, never by `createdAt`."""
        return self._list(STATE_TIMELINE, query=query, sort=sort, skip=skip, limit=limit)

    def count(self, resource: Resource, query: dict[str, Any] | None = None) -> int:
        return self._count(resource, query)

    def _list(
        self,
        resource: Resource,
        *,
        query: dict[str, Any] | None,
        sort: dict[str, Any] | None,
        skip: int,
        limit: int,
        select: dict[str, Any] | None = None,
    ) -> Page:
        body: dict[str, Any] = {"select": select or resource.select, "query": _jsonable(query or {}, wrap_dates=False)}
        if sort:
            body["sort"] = sort
        # skip and limit go in the query string: OneUptime echoes only those, and reads them first.
        try:
            answer = self._call(
                resource, "read", "POST", f"/{resource.path}/get-list", params={"skip": skip, "limit": limit}, json=body
            )
        except upstream.AnswerUnreadable as exc:
            if select is None:
                return self._list_one_by_one(resource, query=query, sort=sort, skip=skip, limit=limit)
            if limit > 1:  # already the small form: the same, a record at a time
                return self._ids_one_by_one(resource, query=query, sort=sort, skip=skip, limit=limit, select=select)
            # Not even its id can be read: one record without an id, which the sync counts as skipped.
            return Page(items=[{UNREADABLE: str(exc)}], count=skip + 2, skip=skip, limit=1)
        data, count = answer.get("data"), answer.get("count")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data) or not _is_count(count):
            raise upstream.UpstreamError(f"OneUptime sent a list of {resource.plural} without a data list and a count")
        echoed_skip, echoed_limit = answer.get("skip"), answer.get("limit")
        return Page(
            items=[normalize(item) for item in data],
            count=count,
            skip=echoed_skip if _is_count(echoed_skip) else skip,
            limit=echoed_limit if _is_count(echoed_limit) else limit,
        )

    def _list_one_by_one(
        self, resource: Resource, *, query: dict[str, Any] | None, sort: dict[str, Any] | None, skip: int, limit: int
    ) -> Page:
        """The same page when it cannot be read whole (too large, or nested too deep): its ids, then each record
        by id. A record unreadable on its own comes back as `{"_id", "updatedAt", UNREADABLE: why}`, so the page still moves on."""
        ids = self._list(resource, query=query, sort=sort, skip=skip, limit=limit, select={"_id": True, "updatedAt": True})
        items = []
        for small in ids.items:
            if not isinstance(small.get("_id"), str):
                items.append(small)  # malformed: the sync says so
                continue
            try:
                item = self._get(resource, small["_id"])
            except upstream.AnswerUnreadable as exc:
                item = {"_id": small["_id"], "updatedAt": small.get("updatedAt"), UNREADABLE: str(exc)}
            if item is not None:  # None: deleted since the ids were listed
                items.append(item)
        return Page(items=items, count=ids.count, skip=ids.skip, limit=ids.limit)

    def _ids_one_by_one(self, resource: Resource, *, query, sort, skip: int, limit: int, select: dict[str, Any]) -> Page:
        """The ids of a page whose ids cannot be read together (a proxy that adds what was not asked for),
        one record at a time."""
        items, count = [], skip
        for position in range(skip, skip + limit):
            page = self._list(resource, query=query, sort=sort, skip=position, limit=1, select=select)
            items += page.items
            if not any(UNREADABLE in item for item in page.items):
                count = page.count
            if not page.items or position + 1 >= max(count, position + 2 if UNREADABLE in page.items[0] else 0):
                break
        return Page(items=items, count=max(count, skip + len(items)), skip=skip, limit=limit)

    def _iterate(
        self,
        resource: Resource,
        *,
        query: dict[str, Any] | None,
        sort: dict[str, Any] | None,
        page_size: int,
        select: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching record, page by page. Offset pages shift when rows are deleted mid-scan, so a
        record met twice is yielded once; the scan stops at an empty page or at the reported count."""
        seen: set[str] = set()
        skip = 0
        while True:
            page = self._list(resource, query=query, sort=sort or SCAN_ORDER, skip=skip, limit=page_size, select=select)
            for item in page.items:
                if item.get("_id") not in seen:
                    seen.add(item.get("_id"))
                    yield item
            skip += len(page.items)
            if not page.items or skip >= page.count:
                return

    def _get(self, resource: Resource, item_id: str) -> dict[str, Any] | None:
        path = f"/{resource.path}/{quote(item_id, safe='')}/get-item"
        answer = self._call(resource, "read", "POST", path, json={"select": resource.select})
        return normalize(answer) if answer.get("_id") else None

    def _count(self, resource: Resource, query: dict[str, Any] | None) -> int:
        body = {"query": _jsonable(query or {}, wrap_dates=False)}
        count = self._call(resource, "read", "POST", f"/{resource.path}/count", json=body).get("count")
        if not _is_count(count):
            raise upstream.UpstreamError(f"OneUptime sent a count of {resource.plural} that is not a number: {count!r}")
        return count

    def _write(self, resource: Resource, operation: str, item_id: str, body: dict[str, Any] | None) -> None:
        """PUT or DELETE, else POST to `/:id/update-item` or `/:id/delete-item`, which OneUptime offers for
        clients and proxies that cannot send those methods. Once refused, the client uses the POST form from then on."""
        path = f"/{resource.path}/{quote(item_id, safe='')}"
        if not self.use_post_alternatives:
            method = "PUT" if operation == "update" else "DELETE"
            response = upstream.send(self._session, method, self.base_url + path, json=body)
            if response.status_code not in BLOCKED_METHOD_STATUSES:
                self._answer(resource, operation, response, item_id)
                return
            self.use_post_alternatives = True
        self._call(resource, operation, "POST", f"{path}/{operation}-item", item_id=item_id, json=body)

    def _call(
        self, resource: Resource, operation: str, method: str, path: str, *, item_id: str = "", **kwargs: Any
    ) -> dict[str, Any]:
        response = upstream.send(self._session, method, self.base_url + path, **kwargs)
        return self._answer(resource, operation, response, item_id)

    @staticmethod
    def _answer(resource: Resource, operation: str, response: requests.Response, item_id: str = "") -> dict[str, Any]:
        if not response.ok:
            raise error_for(response, resource=resource, operation=operation, item_id=item_id)
        try:
            answer = response.json()
        except RecursionError:
            raise upstream.NestedTooDeep(
                f"OneUptime sent JSON nested too deep to parse when asked to {operation} {resource.plural} "
                f"({len(response.content)} bytes)"
            ) from None
        except ValueError:
            raise upstream.UpstreamError(
                f"OneUptime sent invalid JSON when asked to {operation} {resource.plural} "
                f"({response.status_code}, {len(response.content)} bytes)"
            ) from None
        if not isinstance(answer, dict):
            raise upstream.UpstreamError(f"OneUptime sent {type(answer).__name__} instead of an object for {resource.plural}")
        return answer


def error_for(response: requests.Response, *, resource: Resource, operation: str, item_id: str = "") -> upstream.UpstreamError:
    """One readable line for a failed call; permanent unless waiting could help (429, 5xx)."""
    status = response.status_code
    message = _error_message(response)
    if status == 401 or (status == 400 and message.lower() == "invalid api key"):
        return upstream.CredentialsRejected(
            f"OneUptime rejected the API key ({status} {message}): check ONEUPTIME_API_KEY", status=status
        )
    if status == 422 and message.startswith("You do not have permission"):
        return PermissionMissing(
            f"OneUptime API key lacks permission to {operation} {resource.plural}: "
            f'grant "{resource.permissions.get(operation, "Project Member")}" (or Project Member)',
            status=status,
        )
    if status == 422 and message.startswith("Unable to update"):
        return RecordNotFound(
            f"OneUptime has no {resource.noun} {item_id} to update: it was deleted, or this key cannot see it", status=status
        )
    transient = status == 429 or status >= 500
    return upstream.UpstreamError(
        f"OneUptime could not {operation} {resource.plural} ({status} {message})", permanent=not transient, status=status
    )


def _error_message(response: requests.Response) -> str:
    """OneUptime's CRUD errors say `{"error": …}`, its 404s and middleware `{"message": …}`; proxies send HTML."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = (body.get("error") or body.get("message")) if isinstance(body, dict) else None
    text = " ".join(str(message or response.reason or "no details").split())
    return text[:MAX_MESSAGE_LENGTH]


def normalize(value: Any, field: str = "", depth: int = 0) -> Any:
    """Plain values from OneUptime's wire form: `{"_type": …, "value": v}` becomes v, and dates become aware
    datetimes. Plain strings where wrappers are expected work too; an unreadable date stays a string.
    Below MAX_DEPTH a value is left as sent (the sync refuses that record): a hostile nest must not
    exhaust the stack and fail the whole page."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, dict):
        if "_type" in value and "value" in value:
            if value["_type"] == "DateTime":
                return _date(value["value"])
            return normalize(value["value"], field, depth + 1)
        return {key: normalize(item, key, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [normalize(item, field, depth + 1) for item in value]
    if field in DATE_FIELDS and isinstance(value, str):
        return _date(value)
    return value


def _date(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jsonable(value: Any, *, wrap_dates: bool) -> Any:
    """Datetimes as OneUptime reads them: wrapped in `data`, but plain ISO strings in a query, where an
    operator's value is bound as it is and a wrapper would become "[object Object]"."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        text = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {"_type": "DateTime", "value": text} if wrap_dates else text
    if isinstance(value, dict):
        return {key: _jsonable(item, wrap_dates=wrap_dates) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item, wrap_dates=wrap_dates) for item in value]
    return value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
