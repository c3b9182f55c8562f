"""/metrics for Prometheus: this process's counters (dashboard/metrics.py) and the mirror's gauges.

Not public: only a scraper sending `Authorization: Bearer <METRICS_TOKEN>` is answered; without a token
configured the page does not exist. The gauges are read from the database at scrape time, so they are
the same on every node; the counters belong to the process that answers.
"""

import hmac
from datetime import datetime

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest

from dashboard.models import Event, EventStatus, HookDelivery, IncidentNote, NoteWrite


def enabled() -> bool:
    return bool(settings.METRICS_TOKEN)


def authorized(request) -> bool:
    """`Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 has it); the bare token is not enough."""
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    sent = sent.strip()
    return scheme.lower() == "bearer" and bool(sent) and hmac.compare_digest(sent.encode(), settings.METRICS_TOKEN.encode())


def exposition(*, now: datetime) -> bytes:
    return generate_latest(REGISTRY) + generate_latest(_mirror_gauges(now))


def _mirror_gauges(now: datetime) -> CollectorRegistry:
    registry = CollectorRegistry()
    pending = NoteWrite.objects.filter(state=NoteWrite.State.PENDING)
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    figures = {
        "pulseboard_events": ("Events in the mirror.", Event.objects.count()),
        "pulseboard_live_builds": ("Builds live now.", Event.objects.filter(status=EventStatus.LIVE).count()),
        "pulseboard_notes": ("Incident notes in the mirror (not deleted).", IncidentNote.objects.filter(deleted=False).count()),
        "pulseboard_outbox_pending": ("Admin edits waiting to reach OneUptime.", pending.count()),
        "pulseboard_hook_queue": ("Webhook deliveries waiting for the poller.", HookDelivery.objects.count()),
        "pulseboard_outbox_oldest_pending_age_seconds": (
            "Age of the oldest edit waiting to reach OneUptime (0 when none waits).",
            (now - oldest).total_seconds() if oldest else 0,
        ),
    }
    for name, (documentation, value) in figures.items():
        Gauge(name, documentation, registry=registry).set(value)
    return registry
