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
from dashboard.live import hub, push_queue, sequence, watchers
from dashboard.models import Event, EventStatus, Incident, Pipeline, Screen, Transition, TransitionKind, pipeline_runs
from dashboard.web import changes_before, feeds, pages, pipelines
from dashboard.web.filters import event_meta

EVENTS = "events"
SCREEN_SIGNALS = {"identify": "screen-identify", "chime": "screen-chime"}  # action: the wall's partial that carries it
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


def pipeline_group(slug: str) -> str:
    return f"pipeline.{id_token(slug)}"


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
    """ "revoke" closes a screen's sockets for good; "reload" makes it fetch its new settings; "identify" shows
    its name in big type for ten seconds and "chime" plays its test sound (both as markup its page swaps in)."""
    message = {"type": "control", "action": action}
    if action in SCREEN_SIGNALS:
        message["html"] = render_to_string(f"{pages.WALL}#{SCREEN_SIGNALS[action]}", {"screen": screen, "now": timezone.now()})
    async_to_sync(hub.send)(screen_group(screen.pk), message)


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
        messages += pipeline_messages(events.values(), kinds_by_event=kinds_by_event, now=now)
    incident_ids = {change.incident_id for change in changes if change.incident_id}
    # A change that lands in an incident's window (late, backdated, or a build that failed) joins its list.
    moved = [events[pk] for pk, kinds in kinds_by_event.items() if pk in events and kinds - {TransitionKind.PROGRESSED}]
    incident_ids |= changes_before.incidents_before(moved)
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


def pipeline_messages(events, *, kinds_by_event: dict[int, set[str]], now) -> list[Message]:
    """Each changed pipeline's page; and when a run starts, the older runs it superseded leave Running now."""
    keys = {(event.project, event.repository, event.name or event.ref) for event in events if event.target == "build"}
    messages = []
    changed = _pipelines(keys)
    open_pages = watchers.watched(found.slug for found in changed)  # a page nobody has open is not rendered
    for found in changed:
        if found.slug in open_pages:
            messages.append(Message(pipeline_group(found.slug), pages.pipeline_parts(found, now=now)))
    started = [event for event in events if kinds_by_event[event.pk] & {TransitionKind.EVENT_NEW, TransitionKind.BECAME_LIVE}]
    for event in _superseded_by(started):
        event.superseded = True
        html = pages.render_parts(pages.DASHBOARD, ["event-row", "live-row"], {"event": event, "superseded": True})
        messages += [Message(EVENTS, html, event_meta(event)), Message(events_group(event.project), html, event_meta(event))]
    return messages


def _pipelines(keys: set[tuple]) -> list[Pipeline]:
    found = []
    for project, repository, name in keys:
        found += Pipeline.objects.filter(project=project, repository=repository, name=name)
    return found


def _superseded_by(started: list[Event]) -> list[Event]:
    """Unfinished runs of these runs' pipelines that are not their pipeline's newest run any more."""
    builds = [event for event in started if event.target == "build"]
    if not builds:
        return []
    latest = {p.latest_run_id for p in _pipelines({(e.project, e.repository, e.name or e.ref) for e in builds})}
    older = []
    for event in builds:
        runs = pipeline_runs(event.project, event.repository, event.name or event.ref)
        older += runs.filter(status__in=[EventStatus.LIVE, EventStatus.STALE]).exclude(pk__in=latest)[:20]
    return older


def wall_messages(*, projects: set[str], now) -> list[Message]:
    """The wall's build and activity panels, once for each kind of screen that shows them."""
    messages = []
    for project, scale in _wall_audiences(projects):
        context = pages.wall_context(screen=_screen_like(project, scale), now=now)
        html = pages.render_parts(
            pages.WALL, ["wall-builds", "wall-activity", "wall-strip-builds", "wall-level", "wall-status"], context
        )
        messages.append(Message(wall_group(project, scale), html))
    return messages


def incident_messages(incidents, *, now) -> list[Message]:
    """Open-incident panels everywhere, and the timeline of each incident that changed."""
    counts = feeds.incident_counts()
    shown = {"incidents": pages.open_incidents(now=now), "incident_counts": counts}
    messages = [Message(INCIDENTS, render_to_string(f"{pages.DASHBOARD}#open-incidents", shown))]
    wall = pages.wall_incidents_context(screen=None, now=now, counts=counts)
    html = pages.render_parts(pages.WALL, ["wall-incidents", "wall-strip-incidents", "wall-status"], wall)
    for scale in {scale for _, scale in _wall_audiences(set())}:
        messages.append(Message(wall_incidents_group(scale), html))
    # The strip's level counts builds too, and a screen's builds are its project's: each kind of screen gets its own.
    for project, scale in _wall_audiences(set()):
        level = pipelines.level(pipelines.pipeline_counts(project=project), counts)
        messages.append(Message(wall_group(project, scale), render_to_string(f"{pages.WALL}#wall-level", {"level": level})))
    for incident in incidents:
        html = pages.render_parts(pages.INCIDENT, pages.INCIDENT_PARTS, pages.incident_context(incident=incident, now=now))
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
