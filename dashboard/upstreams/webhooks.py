"""What both webhook receivers share: the answers, the secret checks, the size limit and the queue.

A receiver authenticates, parses and queues; it never calls upstream, so it answers at once. The
poller (dashboard/poller/hooks.py) applies what was queued. Every refusal is one line of text and stores nothing.
"""

import functools
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from dashboard import metrics
from dashboard.models import HookDelivery

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: a push of a few hundred commits fits many times over
MAX_JSON_DEPTH = 32  # an Event object nests five levels deep; 100,000 levels made the parser itself fail
SECRET_HEADER = "X-Pulseboard-Secret"  # noqa: S105 -- the header's name, not a secret
SIGNATURE_HEADER = "X-Hub-Signature"
REPLAY_WINDOW_SECONDS = 600
MAX_QUEUED = 2000  # deliveries waiting for the poller: about two drains' worth of reads; see `enqueue`


class HookRefused(Exception):
    """A delivery we will not queue: the status to answer and one line saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


Deliveries = list[tuple[str, Any]]  # (HookDelivery.Kind, payload) pairs to queue


def receiver(*, configured: Callable[[], bool], judge_headers: Callable[[Mapping[str, str]], None] | None = None):
    """Make `parse(request) -> Deliveries` a view: 404 unless configured, POST only, queue, answer 202.

    `judge_headers` raises HookRefused for credentials that headers alone disprove: `serve` asks it (through
    the view's `refuse_before_body`) before it reads a byte of the body (poller/request_limits.py).
    """

    def decorate(parse: Callable[[HttpRequest], Deliveries]):
        @csrf_exempt
        @functools.wraps(parse)
        def view(request: HttpRequest) -> HttpResponse:
            if not configured():
                return _refusal(404, "this receiver is not configured")
            if request.method != "POST":
                response = _refusal(405, "only POST is accepted")
                response["Allow"] = "POST"
                return response
            try:
                deliveries = parse(request)
            except HookRefused as refused:
                return _refusal(refused.status, str(refused))
            return JsonResponse({"queued": enqueue(deliveries)}, status=202)

        def refuse_before_body(method: str, headers: Mapping[str, str]) -> tuple[int, str] | None:
            if judge_headers is None or method != "POST" or not configured():
                return None
            try:
                judge_headers(headers)
            except HookRefused as refused:
                return refused.status, str(refused)
            return None

        view.max_body_bytes = MAX_BODY_BYTES
        view.refuse_before_body = refuse_before_body
        return view

    return decorate


def enqueue(deliveries: Deliveries) -> int:
    """Queue deliveries for the poller, within MAX_QUEUED rows; returns how many rows were added.

    Every delivery is a hint (the poller re-reads what it names), so what is already waiting covers a
    repeat: one hint row asks for the same list pass, one row per event or note id for the same read.
    Past MAX_QUEUED, named events give way to one list hint and notes to the regular pass, which read
    the newest changes anyway; each such drop is counted in /metrics.
    """
    rows = _not_waiting([HookDelivery(kind=kind, payload=payload) for kind, payload in deliveries])
    metrics.HOOK_DELIVERIES.labels("coalesced").inc(len(deliveries) - len(rows))
    room = max(0, MAX_QUEUED - HookDelivery.objects.count())
    if len(rows) > room:
        dropped = rows[room:]
        rows = rows[:room]
        metrics.HOOK_DELIVERIES.labels("dropped").inc(len(dropped))
        log.warning("the hook queue is full (%d); dropped %d deliveries for the regular passes", MAX_QUEUED, len(dropped))
        hinted = any(row.kind == HookDelivery.Kind.HTH_HINT for row in rows) or _hint_waiting()
        if any(row.kind == HookDelivery.Kind.HTH_EVENTS for row in dropped) and not hinted:
            # One row past the bound, at most: the list pass it asks for reads the newest events.
            rows.append(HookDelivery(kind=HookDelivery.Kind.HTH_HINT, payload={}))
    HookDelivery.objects.bulk_create(rows)
    metrics.HOOK_DELIVERIES.labels("queued").inc(len(rows))
    return len(rows)


def _not_waiting(rows: list[HookDelivery]) -> list[HookDelivery]:
    """`rows` without repeats and without what an equal queued delivery already asks for."""
    fresh = []
    for kind, key in ((HookDelivery.Kind.HTH_EVENTS, "id"), (HookDelivery.Kind.ONEUPTIME_NOTE, "note_id")):
        named = {row.payload[key]: row for row in rows if row.kind == kind}  # the last of repeats in one delivery
        if named:
            queued = HookDelivery.objects.filter(kind=kind, **{f"payload__{key}__in": list(named)})
            waiting = set(queued.values_list(f"payload__{key}", flat=True))
            fresh += [row for upstream_id, row in named.items() if upstream_id not in waiting]
    if any(row.kind == HookDelivery.Kind.HTH_HINT for row in rows) and not _hint_waiting():
        fresh.append(HookDelivery(kind=HookDelivery.Kind.HTH_HINT, payload={}))
    return fresh


def _hint_waiting() -> bool:
    return HookDelivery.objects.filter(kind=HookDelivery.Kind.HTH_HINT).exists()


def check_secret(request: HttpRequest, secret: str) -> None:
    """The plain shared secret of X-Pulseboard-Secret, compared in constant time."""
    check_secret_header(request.headers, secret)


def check_secret_header(headers: Mapping[str, str], secret: str) -> None:
    given = headers.get(SECRET_HEADER)
    if not given:
        raise HookRefused(401, f"{SECRET_HEADER} is missing")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise HookRefused(403, f"{SECRET_HEADER} does not match")


def check_signature(request: HttpRequest, body: bytes, secret: str) -> None:
    """X-Hub-Signature: the HMAC-SHA1 hex digest of the raw body, with or without GitHub's `sha1=` prefix."""
    given = request.headers.get(SIGNATURE_HEADER, "").strip().removeprefix("sha1=")
    if not given:
        raise HookRefused(401, f"{SIGNATURE_HEADER} is missing")
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise HookRefused(403, f"{SIGNATURE_HEADER} does not match the body")


def check_not_replayed(body: bytes) -> None:
    """A signed Hook carries no timestamp and no delivery id, so a captured one could be sent again for
    ever: its body is remembered for REPLAY_WINDOW_SECONDS (in the "hooks" cache) and the same body
    again within that time is refused. A replay after it asks for one list pass, which is harmless.
    Should the cache fail (Redis down), the Hook is let through: it is only a hint."""
    key = "hook-seen:" + hashlib.sha256(body).hexdigest()
    try:
        first = caches["hooks"].add(key, 1, timeout=REPLAY_WINDOW_SECONDS)
    except Exception as exc:
        log.warning("could not check a signed Hook for a replay (%s); accepting it", " ".join(str(exc).split())[:200])
        return
    if not first:
        raise HookRefused(409, f"this signed Hook was already received in the last {REPLAY_WINDOW_SECONDS} seconds")


def read_body(request: HttpRequest) -> bytes:
    """The raw body, refused with 413 past MAX_BODY_BYTES (checked on Content-Length before reading)."""
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise HookRefused(400, "Content-Length is not a number") from None
    too_big = HookRefused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if length > MAX_BODY_BYTES:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(body) > MAX_BODY_BYTES:
        raise too_big
    return body


def parse_json(body: bytes) -> Any:
    """The body as JSON, refused in one line when it is not, nests past MAX_JSON_DEPTH, or holds a string that
    no database stores (a NUL; a lone surrogate, which is no character at all)."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise HookRefused(400, f"the body's JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise HookRefused(400, "the body is not JSON") from None
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise HookRefused(400, f"the body's JSON nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((inner, depth + 1) for inner in item.values())
        elif isinstance(item, list):
            pending.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise HookRefused(400, "the body holds a NUL character (\\u0000)")
            try:
                item.encode()
            except UnicodeEncodeError:
                raise HookRefused(400, "the body holds a lone surrogate (such as \\ud800), which is no character") from None
    return value


def _refusal(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
