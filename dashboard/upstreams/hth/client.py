"""The Helix TeamHub events client: one method per documented call, returning parsed events.

Reference: ../shared/upstream-docs/helix-teamhub-events.txt (and the ambiguity notes in its README).
The page and its examples disagree on where target-specific attributes live and on their shapes, so
the parser accepts every documented form. It never touches models: sync.py decides what to store.
"""

import functools
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from dashboard.upstreams import http as upstream
from dashboard.upstreams.storable import Unstorable, storable, text

log = logging.getLogger(__name__)

ACCEPT = "application/vnd.hth.v1"
PAGE_SIZE = 100
# Longer values than these cannot be indexed sensibly; such an item is rejected, not truncated.
MAX_ID_LENGTH = 100
MAX_KEY_LENGTH = 200
DOT_SEGMENT = re.compile(r"\.{1,2}")


class MalformedEvent(ValueError):
    """One item of a response cannot be understood; the rest of the page still can."""


@dataclass(frozen=True)
class HthEvent:
    id: str
    subject_id: str
    subject: dict | None
    timestamp: datetime
    operation: str
    target: str
    project: str
    repository: str
    ref: str
    bookmarks: list
    commits: list
    commit_count: int | None
    last_commit: str
    files: dict
    code_reviews: list
    role: str
    short_name: str
    name: str
    description: str
    title: str
    state: str
    visibility: str
    linked_objects: dict
    progress: int
    resources: list
    created_at: datetime | None
    updated_at: datetime | None
    raw: dict


@dataclass(frozen=True)
class BadItem:
    position: int
    reason: str
    raw: Any


@dataclass(frozen=True)
class EventPage:
    events: list[HthEvent]
    offsets: dict[str, int]  # each event's position in the whole listing, for resuming a run
    bad_items: list[BadItem]
    more_results: bool
    next_offset: int


class HthClient:
    def __init__(self, *, base_url: str, company_key: str, account_key: str):
        self.base_url = base_url.rstrip("/")
        self.session = upstream.make_session(
            headers={
                "Accept": ACCEPT,
                "Authorization": f"hth.company_key='{company_key}',account_key='{account_key}'",
            }
        )
        self.session.prepare_request = functools.partial(_keep_dot_segments, self.session.prepare_request)

    @classmethod
    def from_settings(cls) -> "HthClient":
        return cls(base_url=settings.HTH_API_URL, company_key=settings.HTH_COMPANY_KEY, account_key=settings.HTH_ACCOUNT_KEY)

    def list_events(
        self,
        *,
        offset: int = 0,
        limit: int = PAGE_SIZE,
        project: str = "",
        operation: str = "",
        target: str = "",
        expand_subject: bool = True,
    ) -> EventPage:
        """GET /events: one page, newest first, with the metadata that drives paging."""
        params = {"offset": offset, "limit": limit}
        params.update({k: v for k, v in (("project", project), ("operation", operation), ("target", target)) if v})
        if expand_subject:
            params["expand"] = "subject"
        try:
            body = self._json(self._send("GET", "/events", params=params))
        except upstream.AnswerUnreadable as exc:
            if limit == 1:
                raise
            log.warning("a page of Helix TeamHub events could not be read whole (%s); reading it one event at a time", exc)
            return self._list_one_by_one(
                offset=offset, limit=limit, project=project, operation=operation, target=target, expand_subject=expand_subject
            )
        metadata = body.get("metadata") if isinstance(body, dict) else None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(metadata, dict) or not isinstance(results, list):
            raise upstream.UpstreamError("Helix TeamHub sent a list without metadata and results")
        events, offsets, bad_items = [], {}, []
        for position, item in enumerate(results):
            try:
                event = parse_event(item)
            except MalformedEvent as exc:
                bad_items.append(BadItem(position=offset + position, reason=str(exc), raw=item))
                continue
            events.append(event)
            offsets.setdefault(event.id, offset + position)
        next_offset = metadata.get("next_offset")
        if not isinstance(next_offset, int) or next_offset <= offset:
            next_offset = offset + len(results)
        return EventPage(
            events=events,
            offsets=offsets,
            bad_items=bad_items,
            more_results=bool(metadata.get("more_results")) and bool(results),
            next_offset=next_offset,
        )

    def _list_one_by_one(self, *, offset: int, limit: int, **filters) -> EventPage:
        """A page that cannot be read whole, an item at a time: one item too large or nested too deep is then
        one bad item (without an id to fetch it by, which only its answer holds), and the rest of the page is still read."""
        events, offsets, bad_items, more, next_offset = [], {}, [], False, offset
        for position in range(offset, offset + limit):
            try:
                page = self.list_events(offset=position, limit=1, **filters)
            except upstream.AnswerUnreadable as exc:
                bad_items.append(BadItem(position=position, reason=str(exc), raw=None))
                more, next_offset = True, position + 1
                continue
            if not (page.events or page.bad_items):
                more = False
                break
            events += page.events
            offsets.update(page.offsets)
            bad_items += page.bad_items
            more, next_offset = page.more_results, position + 1
            if not more:
                break
        return EventPage(events=events, offsets=offsets, bad_items=bad_items, more_results=more, next_offset=next_offset)

    def get_event(self, event_id: str, *, expand_subject: bool = True) -> HthEvent | None:
        """GET /events/:id; None when upstream no longer has it. A malformed answer raises MalformedEvent."""
        params = {"expand": "subject"} if expand_subject else {}
        response = self._send("GET", _event_path(event_id), params=params, missing_ok=True)
        try:
            return None if response is None else parse_event(self._json(response))
        except upstream.NestedTooDeep as exc:
            raise MalformedEvent(f"event {event_id}: {exc}") from None

    def create_build_event(
        self,
        *,
        project: str,
        repository: str,
        operation: str = "completed",
        name: str = "",
        commits: list[str] = (),
        resources: list[str] = (),
        progress: int | None = None,
    ) -> HthEvent:
        """POST /events: bots may create build events; an incomplete one is started below 100."""
        body = {"target": "build", "operation": operation, "project": project, "repository": repository}
        body.update({"commits": list(commits), "resources": list(resources)})
        if name:
            body["name"] = name
        if progress is not None:
            body["progress"] = progress
        return parse_event(self._json(self._send("POST", "/events", json=body)))

    def update_build_event(self, event_id: str, *, progress: int, operation: str = "") -> HthEvent:
        """PUT /events/:id: only progress and operation of an incomplete build event can change."""
        body = {"progress": progress} | ({"operation": operation} if operation else {})
        return parse_event(self._json(self._send("PUT", _event_path(event_id), json=body)))

    def _send(self, method: str, path: str, *, missing_ok: bool = False, **kwargs) -> requests.Response | None:
        response = upstream.send(self.session, method, self.base_url + path, **kwargs)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise error_for(response)
        return response

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except RecursionError:
            raise upstream.NestedTooDeep(
                f"Helix TeamHub sent JSON nested too deep to parse ({len(response.content)} bytes)"
            ) from None
        except ValueError:
            raise upstream.UpstreamError(
                f"Helix TeamHub sent invalid JSON ({response.status_code}, {len(response.content)} bytes)"
            ) from None


def error_for(response: requests.Response) -> upstream.UpstreamError:
    """One readable line for a failed call; permanent unless waiting could help (429, 5xx)."""
    status = response.status_code
    message = _error_message(response)
    if status in (401, 403):
        return upstream.CredentialsRejected(
            f"Helix TeamHub credentials rejected ({status} {message}): check HTH_COMPANY_KEY and HTH_ACCOUNT_KEY",
            status=status,
        )
    transient = status == 429 or status >= 500
    return upstream.UpstreamError(f"Helix TeamHub answered {status}: {message}", permanent=not transient, status=status)


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no details"
    if not isinstance(body, dict):
        return response.reason or "no details"
    message = str(body.get("message") or body.get("error") or response.reason or "no details")
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        message += " (" + "; ".join(f"{field} {', '.join(map(str, problems))}" for field, problems in errors.items()) + ")"
    return " ".join(message.split())


def parse_event(item: Any) -> HthEvent:
    """Turn one item into an HthEvent, or raise MalformedEvent saying what is wrong with it."""
    if not isinstance(item, dict):
        raise MalformedEvent(f"expected an object, got {type(item).__name__}")
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH or text(event_id) != event_id:
        raise MalformedEvent(f"missing or invalid id {event_id!r}")
    try:
        item = storable(item)  # NUL dropped, lone surrogates replaced: one odd character must not fail a pass
    except Unstorable as exc:
        raise MalformedEvent(f"event {event_id}: {exc}") from None
    raw = {key: value for key, value in item.items() if key not in ("api_status", "api_timestamp")}
    objects = item.get("objects", {})
    if objects is None:
        objects = {}
    if not isinstance(objects, dict):
        raise MalformedEvent(f"event {event_id}: objects is not an object")

    def attr(name: str) -> Any:
        """Target-specific attributes are documented at the top level but sent inside objects."""
        value = item.get(name)
        return objects.get(name) if value is None else value

    subject = item.get("subject")
    subject_id = subject.get("id") if isinstance(subject, dict) else subject
    timestamp = _date(event_id, "timestamp", item.get("timestamp"))
    if timestamp is None:
        raise MalformedEvent(f"event {event_id}: missing timestamp")
    return HthEvent(
        id=event_id,
        subject_id=_key(event_id, "subject", subject_id),
        subject=subject if isinstance(subject, dict) and set(subject) - {"id"} else None,
        timestamp=timestamp,
        operation=_key(event_id, "operation", item.get("operation")),
        target=_key(event_id, "target", item.get("target")),
        project=_key(event_id, "project", _object_id(attr("project"))),
        repository=_key(event_id, "repository", _object_id(attr("repository"))),
        ref=_text(event_id, "ref", attr("ref")),
        bookmarks=_list(event_id, "bookmarks", attr("bookmarks")),
        commits=_list(event_id, "commits", attr("commits")),
        commit_count=_count(event_id, attr("commit_count")),
        last_commit=_text(event_id, "last_commit", _object_id(attr("last_commit"))),
        files=_files(event_id, attr("files")),
        code_reviews=_list(event_id, "code_reviews", attr("code_reviews")),
        role=_text(event_id, "role", attr("role")),
        short_name=_text(event_id, "short_name", attr("short_name")),
        name=_text(event_id, "name", attr("name")),
        description=_text(event_id, "description", attr("description")),
        title=_text(event_id, "title", attr("title")),
        state=_text(event_id, "state", attr("state")),
        visibility=_text(event_id, "visibility", attr("visibility")),
        linked_objects=objects,
        progress=_progress(event_id, item.get("progress")),
        resources=_list(event_id, "resources", attr("resources")),
        created_at=_date(event_id, "created_at", item.get("created_at")),
        updated_at=_date(event_id, "updated_at", item.get("updated_at")),
        raw=raw,
    )


def _event_path(event_id: str) -> str:
    """An upstream id is one path segment, whatever it holds: "?", "#", a space, "." or ".." must not reshape
    the URL (a dot-only segment is sent as %2E, see `_keep_dot_segments`)."""
    segment = quote(event_id, safe="")
    return f"/events/{segment.replace('.', '%2E') if DOT_SEGMENT.fullmatch(segment) else segment}"


def _keep_dot_segments(prepare, request: requests.Request) -> requests.PreparedRequest:
    """requests decodes %2E back to "." after removing dot segments, and a server would then read
    /events/.. as /: encode a dot-only segment again. A URL requests prepared has no other dot segments."""
    prepared = prepare(request)
    path, mark, query = prepared.url.partition("?")
    parts = path.split("/")
    parts[3:] = [part.replace(".", "%2E") if DOT_SEGMENT.fullmatch(part) else part for part in parts[3:]]
    prepared.url = "/".join(parts) + mark + query
    return prepared


def _object_id(value: Any) -> Any:
    """`{"id": "luotsi"}` and `"luotsi"` both name the project luotsi."""
    return value.get("id") if isinstance(value, dict) else value


def _text(event_id: str, name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MalformedEvent(f"event {event_id}: {name} is not text")
    return str(value)  # already storable: parse_event cleaned the whole item


def _key(event_id: str, name: str, value: Any) -> str:
    text = _text(event_id, name, value)
    if len(text) > MAX_KEY_LENGTH:
        raise MalformedEvent(f"event {event_id}: {name} is longer than {MAX_KEY_LENGTH} characters")
    return text


def _list(event_id: str, name: str, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedEvent(f"event {event_id}: {name} is not a list")
    return value


def _files(event_id: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(paths, list) for paths in value.values()):
        raise MalformedEvent(f"event {event_id}: files is not an object of path lists")
    return value


def _count(event_id: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(f"event {event_id}: commit_count {value!r} is not a count")
    return value


def _progress(event_id: str, value: Any) -> int:
    """Absent progress means a complete event."""
    if value is None:
        return 100
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise MalformedEvent(f"event {event_id}: progress {value!r} is not a percentage")
    return int(value)


def _date(event_id: str, name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"event {event_id}: {name} is not a date")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"event {event_id}: {name} {value!r} is not an ISO-8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
