"""Who may listen to what: a WebSocket's page, filters and groups, decided once when it connects.

Logged-in people get the dashboard and timelines; a wall gets its screen's groups through its kiosk
token. A revoked screen is told so with REVOKED, a code the page reads as "stop retrying". Each socket
also learns whose allowance it uses (live/limits.py) and whether a login, which may end, lets it in.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs

from django.conf import settings
from django.utils import timezone

from dashboard import id_tokens
from dashboard.live import pool, push, sessions
from dashboard.models import Incident, Pipeline, Screen, hash_kiosk_key
from dashboard.web.filters import EventFilter

LOGIN_REQUIRED = 4401
REVOKED = 4403
NOT_FOUND = 4404
RELOAD = 4100  # the screen's settings changed: the page reloads itself
SEEN_EVERY = timedelta(minutes=1)  # how fresh a screen's "last seen" is kept


@dataclass
class SocketAccess:
    page: str = ""
    groups: list[str] = field(default_factory=list)
    numbered: list[str] = field(default_factory=list)  # the groups that get fragments, each numbered
    event_filter: EventFilter = field(default_factory=EventFilter)
    screen: Screen | None = None
    incident: Incident | None = None
    pipeline: Pipeline | None = None
    refusal: int | None = None  # a close code, when the socket may not listen
    holder: str = ""  # whose allowance of sockets this one uses: "screen.<id>" or "user.<id>", a group it is in
    limit: int = 0
    signed_in: bool = False  # listens by a login, which may end (live/sessions.py)


async def socket_access(scope) -> SocketAccess:
    query = {name: values[-1] for name, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    page = query.get("page", "dashboard")
    if page == "wall" and query.get("screen"):
        return _kiosk_access(await _screen_with_key(query["screen"]))
    user = scope.get("user")  # resolved by the login middleware
    if not (user and user.is_authenticated):
        return SocketAccess(refusal=LOGIN_REQUIRED)
    access = await pool.connecting(_signed_in_access)(page, query)
    if not access.refusal:
        access.groups.append(sessions.user_group(user.pk))
        access.holder, access.limit, access.signed_in = f"user.{user.pk}", settings.LIVE_MAX_SOCKETS_PER_USER, True
    return access


def _signed_in_access(page: str, query: dict[str, str]) -> SocketAccess:
    if page == "wall":
        groups = [push.wall_group("", 1.0), push.wall_incidents_group(1.0)]
        return SocketAccess(page="wall", groups=groups, numbered=list(groups))
    if page == "incident":
        incident_id = query.get("incident", "")
        incident = Incident.objects.filter(upstream_id=incident_id).first() if id_tokens.is_plain(incident_id) else None
        if incident is None:
            return SocketAccess(refusal=NOT_FOUND)
        groups = [push.incident_group(incident.upstream_id)]
        return SocketAccess(page="incident", incident=incident, groups=groups, numbered=list(groups))
    if page == "pipeline":
        parts = query.get("pipeline", "").split("/", 2)
        found = Pipeline.objects.filter(project=parts[0], repository=parts[1], name=parts[2]).first() if len(parts) == 3 else None
        if found is None:
            return SocketAccess(refusal=NOT_FOUND)
        groups = [push.pipeline_group(found.slug)]
        return SocketAccess(page="pipeline", pipeline=found, groups=groups, numbered=list(groups))
    event_filter = EventFilter.from_query(query)
    groups = [push.events_group(event_filter.project), push.INCIDENTS]
    return SocketAccess(page="dashboard", event_filter=event_filter, groups=groups, numbered=list(groups))


def _screens_with_keys(keys: list[str]) -> dict[str, Screen]:
    """Runs in a worker thread: the screens of many kiosk keys at once, in two queries."""
    by_hash = {hash_kiosk_key(key): key for key in keys}
    screens = {
        by_hash[screen.key_hash]: screen for screen in Screen.objects.filter(key_hash__in=by_hash).prefetch_related("panels")
    }
    now = timezone.now()
    unseen = [
        screen.pk
        for screen in screens.values()
        if not screen.is_revoked and (not screen.last_seen_at or now - screen.last_seen_at > SEEN_EVERY)
    ]
    if unseen:  # a reconnect storm is not a write storm
        Screen.objects.filter(pk__in=unseen).update(last_seen_at=now)
    return screens


_screen_with_key = pool.batched(_screens_with_keys)  # a storm's walls are looked up together


def _kiosk_access(screen: Screen | None) -> SocketAccess:
    if screen is None or screen.is_revoked:
        return SocketAccess(refusal=REVOKED)
    numbered = [push.wall_group(screen.project, screen.text_scale), push.wall_incidents_group(screen.text_scale)]
    return SocketAccess(
        page="wall",
        screen=screen,
        groups=[*numbered, push.screen_group(screen.pk)],
        numbered=numbered,
        holder=f"screen.{screen.pk}",
        limit=settings.LIVE_MAX_SOCKETS_PER_KEY,
    )
