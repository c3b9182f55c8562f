"""What changed just before an incident: the Helix TeamHub changes of the window before it began, ranked.

The incident begins at the earlier of its `declaredAt` and its first state's `startsAt` (both OneUptime's
times), and the window reaches CHANGES_WINDOW_MINUTES back from there. A change is a build that finished,
failed or is still running, a push, a tag, or a merged code review. Ranked: changes in a project or
repository mapped to the incident first; failed or still-running builds above the rest; nearer above
farther. The mapping comes from the incident's monitors and labels (mirrored in its `raw`) matched by
name to Helix TeamHub projects and repositories, plus people's own `ChangeMapping` rows.

Nothing here is stored: it is a read over the indexed event timestamps, so an event that arrives late
(backdated) is in the next rendering, which live/push.py sends when an event lands in a window.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.urls import reverse

from dashboard.models import ChangeMapping, Event, EventStatus, Incident, IncidentStateChange

SHOWN = 10  # entries on the incident page; the wall's card shows the first
SCANNED = 500  # the most events of one window that are ranked: a bound on a busy company's two hours
QUALIFYING = Q(target__in=["build", "push", "tag"]) | Q(target="code_review_state", state__iexact="merged")


@dataclass(frozen=True)
class Target:
    kind: str  # "project" or "repository"
    name: str
    reason: str  # "same project as monitor checkout-api"


@dataclass(frozen=True)
class Change:
    event: Event
    reason: str  # the one line shown
    short: str  # the wall's card: what and where first, as much as its line holds
    mapped: bool
    rank: tuple


@dataclass(frozen=True)
class ChangesBefore:
    start: datetime
    end: datetime
    anchor: str  # "declared" or "the first state"
    minutes: int
    changes: list[Change]
    targets: list[Target]
    sources: list[str] = field(default_factory=list)  # the monitors and labels looked at
    elsewhere: int = 0  # qualifying changes outside the mapped projects, when none inside
    link: str = ""  # the dashboard filtered to the window

    @property
    def window_text(self) -> str:
        hours, minutes = divmod(self.minutes, 60)
        return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if part)

    @property
    def top(self) -> Change | None:
        return self.changes[0] if self.changes else None


def changes_before(incident: Incident, *, first_state_at: datetime | None = None) -> ChangesBefore | None:
    """The ranked changes before `incident`; None when it has no start to count back from."""
    if first_state_at is None:
        firsts = IncidentStateChange.objects.filter(incident_upstream_id=incident.upstream_id).order_by("starts_at")
        first_state_at = firsts.values_list("starts_at", flat=True).first()
    moments = [
        (moment, name) for moment, name in ((incident.declared_at, "declared"), (first_state_at, "the first state")) if moment
    ]
    if not moments:
        return None
    end, anchor = min(moments, key=lambda pair: pair[0])
    minutes = settings.CHANGES_WINDOW_MINUTES
    start = end - timedelta(minutes=minutes)
    sources = incident_sources(incident)
    targets = mapped_targets(sources)
    events = list(
        Event.objects.filter(QUALIFYING, timestamp__gte=start, timestamp__lte=end).order_by("-timestamp", "-pk")[:SCANNED]
    )
    ranked = sorted((_change(event, end=end, anchor=anchor, targets=targets) for event in events), key=lambda c: c.rank)
    link = reverse("dashboard") + "?" + urlencode({"since": _minute(start), "until": _minute(end + timedelta(minutes=1))})
    if targets and not any(change.mapped for change in ranked):
        return ChangesBefore(start, end, anchor, minutes, [], targets, sources, elsewhere=len(ranked), link=link)
    return ChangesBefore(start, end, anchor, minutes, ranked[:SHOWN], targets, sources, link=link)


def incidents_before(events: list[Event], *, limit: int = 50) -> set[int]:
    """The incidents (pks) whose window holds one of `events`: a late or changed event re-renders their lists."""
    if not events:
        return set()
    window = timedelta(minutes=settings.CHANGES_WINDOW_MINUTES)
    low, high = min(e.timestamp for e in events), max(e.timestamp for e in events) + window
    starting = IncidentStateChange.objects.filter(starts_at__gte=low, starts_at__lte=high).values("incident_upstream_id")
    candidates = Incident.objects.filter(Q(declared_at__gte=low, declared_at__lte=high) | Q(upstream_id__in=starting))
    found = set()
    for incident in candidates.order_by("-declared_at")[:limit]:
        firsts = IncidentStateChange.objects.filter(incident_upstream_id=incident.upstream_id).order_by("starts_at")
        first = firsts.values_list("starts_at", flat=True).first()
        end = min(moment for moment in (incident.declared_at, first) if moment) if (incident.declared_at or first) else None
        if end and any(end - window <= event.timestamp <= end for event in events):
            found.add(incident.pk)
    return found


def with_sources(incidents: list[Incident]) -> list[Incident]:
    """Each incident's `sources`, read in one query of just those two keys of `raw` (the open-incidents
    panels load incidents without their `raw`, which would otherwise be fetched once per card)."""
    found = Incident.objects.filter(pk__in=[i.pk for i in incidents]).values_list("pk", "raw__monitors", "raw__labels")
    named = {pk: {"monitors": monitors, "labels": labels} for pk, monitors, labels in found}
    for incident in incidents:
        incident.sources = _sources(named.get(incident.pk, {}))
    return incidents


def incident_sources(incident: Incident) -> list[tuple[str, str]]:
    """("monitor", name) and ("label", name) of the incident, as OneUptime last sent it."""
    if hasattr(incident, "sources"):
        return incident.sources
    return _sources(incident.raw if isinstance(incident.raw, dict) else {})


def _sources(raw: dict) -> list[tuple[str, str]]:
    found = []
    for kind, key in (("monitor", "monitors"), ("label", "labels")):
        items = raw.get(key)
        for item in items if isinstance(items, list) else []:
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name.strip():
                found.append((kind, name.strip()))
    return found


def mapped_targets(sources: list[tuple[str, str]]) -> list[Target]:
    """Projects and repositories named like a monitor or label (Helix TeamHub names are lower-case slugs), then
    people's mappings, each with its reason; one probe per name on the indexed project and repository columns."""
    targets: dict[tuple[str, str], Target] = {}
    for kind, name in sources:
        names = {name, name.lower()}
        for column in ("project", "repository"):
            for found in Event.objects.filter(**{f"{column}__in": names}).values_list(column, flat=True).distinct()[:2]:
                targets.setdefault((column, found), Target(column, found, f"same {column} as {kind} {name}"))
    wanted = {(kind, name.lower()) for kind, name in sources}
    for mapping in ChangeMapping.objects.all():
        if (mapping.source_kind, mapping.source_name.strip().lower()) in wanted:
            key = (mapping.target_kind, mapping.target_name)
            targets.setdefault(key, Target(*key, f"{mapping.target_kind} mapped to {mapping.source_kind} {mapping.source_name}"))
    return list(targets.values())


def _change(event: Event, *, end: datetime, anchor: str, targets: list[Target]) -> Change:
    match = next(
        (
            t
            for t in targets
            if (t.kind == "project" and t.name == event.project) or (t.kind == "repository" and t.name == event.repository)
        ),
        None,
    )
    risky = event.target == "build" and event.status in (EventStatus.FAILED, EventStatus.LIVE, EventStatus.STALE)
    before = end - event.timestamp
    reason = f"{describe_change(event)}, {_ago(before)} before {anchor}"
    if match:
        reason += f" · {match.reason}"
    short = f"{describe_change(event)} · {_ago(before).replace('under a minute', '<1 min')} before"
    return Change(
        event=event, reason=reason, short=short, mapped=match is not None, rank=(match is None, not risky, before, -event.pk)
    )


def describe_change(event: Event) -> str:
    """ "failed build Release of borealis/api", "push of 3 commits to borealis/api", "tag v2.1 in borealis"."""
    where = f"{event.project}/{event.repository}" if event.repository else event.project
    if event.target == "build":
        state = {EventStatus.FAILED: "failed", EventStatus.LIVE: "running", EventStatus.STALE: "stalled"}.get(
            event.status, "finished"
        )
        return f"{state} build {event.name or event.ref or ''} of {where}".replace("  ", " ")
    if event.target == "push":
        count = f"{event.commit_count} commit{'s' if event.commit_count != 1 else ''} " if event.commit_count is not None else ""
        return f"push of {count}to {where}" + (f" ({event.ref})" if event.ref else "")
    if event.target == "tag":
        return f"tag {event.ref or event.name} in {where}"
    return f"merged code review {event.title or ''} in {where}".replace("  ", " ")


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")
