"""Helix TeamHub's two push mechanisms (../shared/upstream-docs/hth-webhooks.md), received on POST /hooks/hth/.

Newer "Webhooks" send a JSON array of Event objects in the API's own format, authenticated by the
X-Pulseboard-Secret header the sender's "authentication headers" carry. Whoever holds that secret can
claim anything, so a pushed event is only a hint, as a OneUptime workflow's note is: the poller reads
each named event by id from the API and stores the API's answer (in our projects only, as the list
passes do). A forged event, a failed build dated 2099 or a real event re-posted as failed never
reaches the mirror; an id the API does not know changes nothing. Older "Hooks" are signed with
X-Hub-Signature and do not carry events, so they are only a hint: the next list pass starts now.
"""

import logging
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest

from dashboard.models import HookDelivery
from dashboard.upstreams import webhooks
from dashboard.upstreams.hth import sync as hth_sync
from dashboard.upstreams.hth.client import HthClient, MalformedEvent, parse_event
from dashboard.upstreams.http import UpstreamError
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
        webhooks.check_not_replayed(body)
        return [(HookDelivery.Kind.HTH_HINT, {})]
    webhooks.check_secret(request, settings.HTH_WEBHOOK_SECRET)
    return [(HookDelivery.Kind.HTH_EVENTS, {"id": event_id}) for event_id in pushed_ids(webhooks.read_body(request))]


def pushed_ids(body: bytes) -> list[str]:
    """The ids of a Webhook's events to read back: a bad item is skipped, a body with none usable is refused.

    An event claiming a project outside HTH_PROJECTS is dropped here already (the API's answer is
    checked again when it is read): the mirror holds only what its list passes would read.
    """
    items = webhooks.parse_json(body)
    if not isinstance(items, list):
        raise HookRefused(400, f"expected a JSON array of Event objects, got {type(items).__name__}")
    usable, problems = [], []
    for item in items:
        try:
            event = parse_event(item)
        except MalformedEvent as exc:
            problems.append(str(exc))
            continue
        if hth_sync.in_scope(event):
            usable.append(event.id)
        else:
            log.info("ignored pushed event %s of project %r, which HTH_PROJECTS leaves out", event.id, event.project)
    if problems:
        log.warning("skipped %d malformed events of a Helix TeamHub webhook, e.g. %s", len(problems), problems[0])
    if items and len(problems) == len(items):
        raise HookRefused(400, f"no usable event: {problems[0]}")
    return list(dict.fromkeys(usable))


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


def read_pushed_events(event_ids: list[str], *, client: HthClient, now: datetime, should_stop=lambda: False) -> SyncReport:
    """Read each pushed event by id and store the API's answer, never the push's copy.

    An id the API does not know (404) changes nothing: it was forged, or is already gone. When the API
    fails, the remaining ids are left to the regular pass, which reads the newest events anyway.
    """
    report, fresh = SyncReport(), []
    for event_id in event_ids:
        if should_stop():
            report.finished = False
            break
        try:
            event = client.get_event(event_id)
        except MalformedEvent as exc:
            log.warning("skipped a malformed Helix TeamHub event read for a webhook: %s", exc)
            report.skipped += 1
            continue
        except UpstreamError as exc:
            log.warning("could not read pushed events back (%s); the regular pass will bring them", exc)
            report.skipped += 1
            break
        if event is None:
            log.info("pushed event %s is unknown to Helix TeamHub; ignored", event_id)
        elif not hth_sync.in_scope(event):
            log.info("pushed event %s belongs to project %r, which HTH_PROJECTS leaves out", event_id, event.project)
        else:
            fresh.append(event)
    report.seen += len(fresh)
    report.add(hth_sync.store_events(fresh, now=now, announce_new=True))
    return report
