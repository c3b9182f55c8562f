"""The feed's filters, defined once: the page's query and the live push both obey them.

They live in the URL (so a filtered view can be shared) and in the WebSocket's query string (so a
pushed event only reaches sockets whose filters it matches, checked without touching the database).
"""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from django.db.models import QuerySet, TextField, Value
from django.db.models.functions import Concat
from django.http import QueryDict
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode

from dashboard.models import Event

# What `?q=` searches, joined by spaces in this order: the page's query and the live push's check
# read the same text. Migration 0006 indexes exactly this expression with pg_trgm on PostgreSQL.
SEARCH_FIELDS = ("name", "title", "ref", "description", "repository", "subject_id")


def search_text() -> Concat:
    return Concat(*[part for field in SEARCH_FIELDS for part in (field, Value(" "))][:-1], output_field=TextField())


@dataclass(frozen=True)
class EventFilter:
    project: str = ""
    repository: str = ""
    target: str = ""
    operation: str = ""
    person: str = ""
    q: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: QueryDict | dict) -> "EventFilter":
        text = {  # NUL is dropped: PostgreSQL refuses it in a query, and no stored text contains one
            name: str(query.get(name, "")).replace("\x00", "").strip()[:200]
            for name in ("project", "repository", "target", "operation", "person", "q")
        }
        return cls(**text, since=moment(query.get("since")), until=moment(query.get("until")))

    def is_empty(self) -> bool:
        return self == EventFilter()

    def as_query(self, **extra: str) -> str:
        values = {
            name: value.isoformat() if isinstance(value, datetime) else value for name, value in asdict(self).items() if value
        }
        return urlencode(values | extra)

    def apply(self, events: QuerySet[Event]) -> QuerySet[Event]:
        exact = {name: getattr(self, name) for name in ("project", "repository", "target", "operation") if getattr(self, name)}
        events = events.filter(**exact)
        if self.person:
            events = events.filter(subject_id=self.person)
        if self.since:
            events = events.filter(timestamp__gte=self.since)
        if self.until:
            events = events.filter(timestamp__lte=self.until)
        if self.q:
            # One expression, so PostgreSQL answers from the trigram index rather than scanning every row.
            events = events.alias(search_text=search_text()).filter(search_text__icontains=self.q)
        return events

    def matches(self, meta: dict) -> bool:
        """The same rules as apply(), on the facts a pushed event carries."""
        for name in ("project", "repository", "target", "operation"):
            if getattr(self, name) and meta.get(name) != getattr(self, name):
                return False
        if self.person and meta.get("person") != self.person:
            return False
        timestamp = parse_datetime(meta.get("timestamp") or "")
        if (self.since and (not timestamp or timestamp < self.since)) or (
            self.until and (not timestamp or timestamp > self.until)
        ):
            return False
        return not self.q or self.q.lower() in meta.get("text", "").lower()


def event_meta(event: Event) -> dict:
    """What a pushed event tells the sockets about itself, so they can filter without a query."""
    return {
        "project": event.project,
        "repository": event.repository,
        "target": event.target,
        "operation": event.operation,
        "person": event.subject_id,
        "timestamp": event.timestamp.isoformat(),
        "text": " ".join(getattr(event, field) for field in SEARCH_FIELDS),
    }


def moment(value) -> datetime | None:
    """A time from a URL, in UTC; None for nonsense such as month 13, or a year past 9999 once in UTC."""
    if not value:
        return None
    try:
        parsed = parse_datetime(str(value))
        if parsed is None:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # the form says UTC
    except (ValueError, OverflowError):
        return None
