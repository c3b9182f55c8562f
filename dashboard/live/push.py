"""Live updates: each committed batch of transitions becomes HTML, rendered once per audience.

The fragments are the pages' own partials, sent to Channels groups and swapped in by htmx's WebSocket
extension as out-of-band swaps. A consumer only forwards them (after checking an event against the
socket's filters), so a thousand sockets cost one render, not a thousand.
"""

from collections import defaultdict
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import metrics
from dashboard.id_tokens import id_token
from dashboard.live import hub, push_queue, sequence
from dashboard.models import Event, EventStatus, Incident, Screen, Transition, TransitionKind
from dashboard.web import feeds, pages
from dashboard.web.filters import event_meta

EVENTS = "events"
INCIDENTS = "incidents"


@dataclass(frozen=True)
class Message:
    group: str
    html: str
    meta: dict | None = None  # an event's facts, for the consumer's filter; None reaches every socket


def events_group(project: str = "") -> str:
    return f"{EVENTS}.{id_token(project)}" if project else EVENTS


def wall_group(project: str, scale: float) -> str:
    return f"wall.{id_token(project) if project else '-'}.{_scale_token(scale)}"


def wall_incidents_group(scale: float) -> str:
    return f"wall-incidents.{_scale_token(scale)}"


def incident_group(upstream_id: str) -> str:
    return f"incident.{id_token(upstream_id)}"


def screen_group(screen_id: int) -> str:
    return f"screen.{screen_id}"


def publish(changes: list[Transition]) -> None:
    """The transitions subscriber: render what changed and send it. Runs after the sync's commit."""
    messages = render_messages(changes)
    if messages:  # sent by the push thread (live/push_queue.py): the sync never waits on the channel layer
        push_queue.hand_off(messages, {message.group for message in messages}, send=send_batch, send_gaps=send_gaps)


def send_batch(messages: list[Message]) -> None:
    """The push thread's work: number each message and send it, in one go, so numbers arrive in order."""
    with metrics.PUSH_SECONDS.time():
        async_to_sync(_send)(messages, sequence.take([message.group for message in messages]))


def send_gaps(groups: set[str]) -> None:
    """Groups that lost a batch skip a number: their pages see the gap and fetch a fresh snapshot."""
    ordered = sorted(groups)
    numbers = sequence.take([group for group in ordered for _ in range(2)])[1::2]
    async_to_sync(_send)([Message(group, "") for group in ordered], numbers)


def tell_screen(screen: Screen, action: str) -> None:
    """ "revoke" closes a screen's sockets for good; "reload" makes it fetch its new settings."""
    async_to_sync(hub.send)(screen_group(screen.pk), {"type": "control", "action": action})


def render_messages(changes: list[Transition]) -> list[Message]:
    now = timezone.now()
    kinds_by_event: dict[int, set[str]] = defaultdict(set)
    for change in changes:
        if change.event_id:
            kinds_by_event[change.event_id].add(change.kind)
    events = Event.objects.in_bulk(list(kinds_by_event))
    messages = []
    for pk, event in events.items():
        html = event_fragment(event, kinds=kinds_by_event[pk])
        meta = event_meta(event)
        messages += [Message(EVENTS, html, meta), Message(events_group(event.project), html, meta)]
    if events:
        messages += wall_messages(projects={event.project for event in events.values()}, now=now)
    incident_ids = {change.incident_id for change in changes if change.incident_id}
    if incident_ids or any(change.kind == TransitionKind.INCIDENT_DELETED for change in changes):
        messages += incident_messages(Incident.objects.filter(pk__in=incident_ids), now=now)
    if events or incident_ids:  # every dashboard joins INCIDENTS: its summary strip, whatever its filters
        messages.append(Message(INCIDENTS, render_to_string(f"{pages.DASHBOARD}#summary", pages.summary_context(now=now))))
    return messages


def event_fragment(event: Event, *, kinds: set[str]) -> str:
    """The event's feed row and live-panel row, each replacing itself; a new one slides in on top."""
    is_new = TransitionKind.EVENT_NEW in kinds
    parts = ["new-event-row" if is_new else "event-row"]
    if TransitionKind.BECAME_LIVE in kinds:
        parts.append("new-live-row")
    elif event.status in (EventStatus.LIVE, EventStatus.STALE) or kinds & {TransitionKind.COMPLETED, TransitionKind.FAILED}:
        parts.append("live-row")
    return pages.render_parts(pages.DASHBOARD, parts, {"event": event, "fresh": is_new})


def wall_messages(*, projects: set[str], now) -> list[Message]:
    """The wall's build and activity panels, once for each kind of screen that shows them."""
    messages = []
    for project, scale in _wall_audiences(projects):
        context = pages.wall_context(screen=_screen_like(project, scale), now=now)
        html = pages.render_parts(pages.WALL, ["wall-builds", "wall-activity", "wall-strip-builds", "wall-status"], context)
        messages.append(Message(wall_group(project, scale), html))
    return messages


def incident_messages(incidents, *, now) -> list[Message]:
    """Open-incident panels everywhere, and the timeline of each incident that changed."""
    messages = [Message(INCIDENTS, render_to_string(f"{pages.DASHBOARD}#open-incidents", {"incidents": feeds.open_incidents()}))]
    for scale in {scale for _, scale in _wall_audiences(set())}:
        context = pages.wall_context(screen=_screen_like("", scale), now=now)
        messages.append(
            Message(
                wall_incidents_group(scale),
                pages.render_parts(pages.WALL, ["wall-incidents", "wall-strip-incidents", "wall-status"], context),
            )
        )
    for incident in incidents:
        html = pages.render_parts(pages.INCIDENT, ["incident-header", "timeline"], pages.incident_context(incident=incident))
        messages.append(Message(incident_group(incident.upstream_id), html))
    return messages


def _wall_audiences(projects: set[str]) -> set[tuple[str, float]]:
    """(project, text scale) of every live screen, plus the plain wall people open while logged in."""
    screens = Screen.objects.filter(revoked_at=None).values_list("project", "text_scale").distinct()
    return {("", 1.0)} | {(project, scale) for project, scale in screens if not project or project in projects or not projects}


def _screen_like(project: str, scale: float) -> Screen:
    """An unsaved Screen carrying just what the wall's queries read."""
    return Screen(project=project, text_scale=scale) if (project or scale != 1.0) else None


async def _send(messages: list[Message], numbers: list[int]) -> None:
    """Each message numbered in its group (live/sequence.py), so a page can tell it missed one. A socket
    whose filter the event does not match still gets the number ("skip"), or it would look like a gap."""
    for message, number in zip(messages, numbers, strict=True):
        mark = sequence.marker(message.group, number)
        fragment = {"type": "fragment", "html": mark + message.html, "meta": message.meta, "skip": mark, "number": number}
        await hub.send(message.group, fragment)


def _scale_token(scale: float) -> str:
    return id_token(f"{scale:g}".replace(".", "_"))
