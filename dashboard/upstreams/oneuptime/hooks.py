"""OneUptime workflows, received on POST /hooks/oneuptime/ (§12 of ../shared/upstream-docs/oneuptime-api-notes.md).

A workflow "On Create / On Update / On Delete Incident Public Note" chained to "API Post (JSON)"
sends the X-Pulseboard-Secret header and a body naming the note. The body's content is never
trusted: the poller re-reads that note by id, and a note OneUptime no longer has is a deletion.
"""

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from dashboard.models import HookDelivery
from dashboard.upstreams import webhooks
from dashboard.upstreams.webhooks import HookRefused

NOTE_ID = re.compile(r"[0-9A-Za-z-]{1,100}")


def is_configured() -> bool:
    return bool(settings.ONEUPTIME_WEBHOOK_SECRET and settings.ONEUPTIME_API_URL)


def judge_headers(headers) -> None:
    webhooks.check_secret_header(headers, settings.ONEUPTIME_WEBHOOK_SECRET)


@webhooks.receiver(configured=is_configured, judge_headers=judge_headers)
def receive(request: HttpRequest) -> webhooks.Deliveries:
    webhooks.check_secret(request, settings.ONEUPTIME_WEBHOOK_SECRET)
    return [(HookDelivery.Kind.ONEUPTIME_NOTE, {"note_id": named_note(webhooks.read_body(request))})]


def named_note(body: bytes) -> str:
    """The note's id: `_id` (the record as the trigger hands it on) or `noteId`, at the top or under `data`."""
    fields = webhooks.parse_json(body)
    if not isinstance(fields, dict):
        raise HookRefused(400, "expected a JSON object naming the note by _id or noteId")
    candidates = [fields, fields.get("data")]
    for place in candidates:
        if not isinstance(place, dict):
            continue
        for name in ("_id", "noteId"):
            if name in place:
                return _note_id(place[name])
    raise HookRefused(400, "the body names no note: send _id or noteId, at the top level or under data")


def _note_id(value: Any) -> str:
    """An id as OneUptime serialises it: a string, or `{"_type": "ObjectID", "value": "…"}`."""
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str) or not NOTE_ID.fullmatch(value):
        raise HookRefused(400, f"the note id {value!r} is not an id")
    return value
