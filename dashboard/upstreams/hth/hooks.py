"""Helix TeamHub's two push mechanisms (../shared/upstream-docs/hth-webhooks.md), received on POST /hooks/hth/.

Newer "Webhooks" send a JSON array of Event objects in the API's own format, authenticated by the
X-Pulseboard-Secret header the sender's "authentication headers" carry: they are stored through the
list API's parser and upsert, and the regular passes confirm them later. Older "Hooks" are signed with
X-Hub-Signature and do not carry events, so they are only a hint: the next list pass starts now.
"""

import logging
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest

from dashboard.models import Event, HookDelivery
from dashboard.upstreams import webhooks
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthEvent, MalformedEvent, parse_event
from dashboard.upstreams.report import SyncReport
from dashboard.upstreams.webhooks import HookRefused

log = logging.getLogger(__name__)


def is_configured() -> bool:
    return bool(settings.HTH_WEBHOOK_SECRET and settings.HTH_API_URL)


def judge_headers(headers) -> None:
    """Before the body is read: a Webhook's secret travels in a header; a Hook's signature needs the body."""
    if webhooks.SIGNATURE_HEADER not in headers:
        webhooks.check_secret_header(headers, settings.HTH_WEBHOOK_SECRET)


@webhooks.receiver(configured=is_configured, judge_headers=judge_headers)
def receive(request: HttpRequest) -> webhooks.Deliveries:
    """POST /hooks/hth/: an older Hook when it is signed, a newer Webhook otherwise."""
    if webhooks.SIGNATURE_HEADER in request.headers:
        body = webhooks.read_body(request)
        webhooks.check_signature(request, body, settings.HTH_WEBHOOK_SECRET)
        check_hook_body(body, content_type=request.content_type)
        return [(HookDelivery.Kind.HTH_HINT, {})]
    webhooks.check_secret(request, settings.HTH_WEBHOOK_SECRET)
    return [(HookDelivery.Kind.HTH_EVENTS, usable_events(webhooks.read_body(request)))]


def usable_events(body: bytes) -> list[dict]:
    """The items of a Webhook body that parse as events; a body with none is refused, a bad item is skipped."""
    items = webhooks.parse_json(body)
    if not isinstance(items, list):
        raise HookRefused(400, f"expected a JSON array of Event objects, got {type(items).__name__}")
    usable, problems = [], []
    for item in items:
        try:
            parse_event(item)
        except MalformedEvent as exc:
            problems.append(str(exc))
            continue
        usable.append(item)
    if problems:
        log.warning("skipped %d malformed events of a Helix TeamHub webhook, e.g. %s", len(problems), problems[0])
    if items and not usable:
        raise HookRefused(400, f"no usable event: {problems[0]}")
    return usable


def check_hook_body(body: bytes, *, content_type: str) -> None:
    """An older Hook's body is a hint, never stored, but nonsense is still refused in one line."""
    if content_type == "application/json":
        fields: Any = webhooks.parse_json(body)
    else:
        try:
            fields = parse_qs(body.decode(), strict_parsing=True, keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            raise HookRefused(400, "the body is not form-encoded (send application/json or the default form encoding)") from None
    if not isinstance(fields, dict) or not fields:
        raise HookRefused(400, "the body is empty or not an object")


def store_pushed_events(items: list[Any], *, now: datetime) -> SyncReport:
    """Store a Webhook's events now, except a copy older than the mirror's: deliveries can be late or repeated."""
    report = SyncReport(seen=len(items))
    events = []
    for item in items:
        try:
            events.append(parse_event(item))
        except MalformedEvent as exc:
            log.warning("skipped a malformed Helix TeamHub webhook event: %s", exc)
            report.skipped += 1
    stored = {
        upstream_id: (updated_at or timestamp, progress)
        for upstream_id, updated_at, timestamp, progress in Event.objects.filter(
            upstream_id__in=[event.id for event in events]
        ).values_list("upstream_id", "updated_at", "timestamp", "progress")
    }
    fresh = sorted(
        (event for event in events if event.id not in stored or _version(event) >= stored[event.id]),
        key=_version,
    )  # oldest first, so the upsert keeps the newest copy of an event sent twice
    report.add(hth_sync.store_events(fresh, now=now, announce_new=True))
    return report


def _version(event: HthEvent) -> tuple[datetime, int]:
    """Which of two copies is newer: updated_at has whole seconds, and a build's progress only climbs within one."""
    return (event.updated_at or event.timestamp, event.progress)
