"""The read side: what the pages show, as named queries. Nothing here writes."""

from django.db.models import QuerySet

from dashboard.models import Event, EventStatus

FEED_PAGE_SIZE = 50


def recent_events(*, limit: int = FEED_PAGE_SIZE) -> QuerySet[Event]:
    return Event.objects.order_by("-timestamp", "-id")[:limit]


def live_events() -> QuerySet[Event]:
    return Event.objects.filter(status=EventStatus.LIVE).order_by("-timestamp", "-id")
