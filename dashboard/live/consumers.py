"""The /ws/live/ socket: decide who may listen, join their groups, send a fresh snapshot, then forward.

Forwarding is the hot path: no database, no rendering, only a filter check on the facts an event
carries. Rendering happens once per change in live/push.py, and once per connect for the snapshot.
Groups are joined through the process's hub (live/hub.py), which hands each message to deliver().
"""

import asyncio
import logging
import random
import time
import uuid
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import DenyConnection, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.utils import timezone
from django.utils.html import format_html

from dashboard import metrics
from dashboard.live import hub, limits, presence, sessions, snapshots, watchers
from dashboard.live.access import LOGIN_REQUIRED, RELOAD, REVOKED, SocketAccess, socket_access
from dashboard.web import feeds, pages

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20  # lets a page notice a dead connection the network did not report
SNAPSHOT_EVERY_SECONDS = 1.0  # the most often a page may ask for a fresh snapshot
DEAF = "<!--deaf-->"


class LiveConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope, receive, send):
        """Channels would also read a channel of the socket's own on the layer, which nobody sends to (the
        hub hears for every socket): with Redis down that read raised and ended every socket at once.
        The socket's name stays, unique, for its claim in live/limits.py."""
        self.scope, self.base_send = scope, send
        self.channel_layer, self.channel_name = None, f"socket.{uuid.uuid4().hex}"
        try:
            await await_many_dispatch([receive], self.dispatch)
        except StopConsumer:
            pass

    async def dispatch(self, message):
        """Channels' own dispatch closes stale database connections before every message: a hop through
        the one shared sync thread for each (5,000 of them queued when 5,000 walls connect at once).
        Our handlers reach the database only through database_sync_to_async or the connect pool."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.heartbeat, self.access = None, SocketAccess()  # what disconnect() sees if connect() fails
        self.last_snapshot, self.snapshot_due = 0.0, None
        self.joined, self.tasks = [], set()
        self.presence, self.connected_at, self.last_push_at = None, timezone.now(), None
        self.held: list[dict] | None = []  # fragments the hub delivers before the first snapshot is out
        self.as_new_as: dict[str, int] = {}  # the numbers of the last snapshot sent
        self.access = await socket_access(self.scope)
        if self.access.refusal == LOGIN_REQUIRED:
            raise DenyConnection
        if not self.access.refusal:
            await self.take_place()
        if self.access.refusal:
            await self.accept()
            await self.close(code=self.access.refusal)
            return
        self.session = sessions.session_digest(self.scope["session"].session_key) if self.access.signed_in else ""
        try:
            await self.watch()  # before the snapshot: a push from now on is rendered for this page
            for group in self.access.groups:
                await hub.join(group, self)
                self.joined.append(group)
            await self.accept()
            await self.send_snapshot()
        except BaseException:  # Channels calls no disconnect() after a failed connect(): leave the hub here
            await self.leave_groups()
            raise
        held, self.held = self.held, None
        for message in held:
            await self.deliver(message)
        metrics.SOCKETS.inc()
        if not hub.listening():
            await self.send_heartbeat()  # the page learns at once that this socket hears nothing yet
        self.heartbeat = asyncio.create_task(self.beat())
        if self.access.screen:
            self.presence = asyncio.create_task(self.report_presence())

    async def send_snapshot(self) -> None:
        self.last_snapshot = time.monotonic()
        self.as_new_as, html = await snapshots.snapshot(self.audience(), self.access.numbered, self.render_snapshot)
        await self.send(text_data=html)

    def audience(self) -> tuple:
        """What decides a snapshot's content: sockets with the same audience share one rendering."""
        access = self.access
        if access.page == "wall":
            project, scale = (access.screen.project, access.screen.text_scale) if access.screen else ("", 1.0)
            return ("wall", project, scale, tuple(panel["panel"] for panel in feeds.screen_panels(access.screen)))
        if access.page == "incident":
            return ("incident", access.incident.pk)
        if access.page == "pipeline":
            return ("pipeline", access.pipeline.pk)
        return ("dashboard", access.event_filter.as_query())

    def render_snapshot(self) -> str:
        access = self.access
        return pages.snapshot(
            page=access.page,
            event_filter=access.event_filter,
            screen=access.screen,
            incident=access.incident,
            pipeline=access.pipeline,
            now=timezone.now(),
        )

    async def receive(self, text_data=None, bytes_data=None):
        """The page asks for a snapshot when it missed a numbered fragment (static/dashboard/live.js).
        One per SNAPSHOT_EVERY_SECONDS at most, a later one is sent when that is up: a page cannot
        make us render in a loop, and never waits for nothing."""
        if text_data and '"snapshot"' in text_data:
            await self.want_snapshot()

    async def layer_resumed(self, message):
        """The hub hears again after an outage: whatever was pushed meanwhile never reached this page."""
        await self.want_snapshot()

    async def want_snapshot(self) -> None:
        if self.snapshot_due:
            return
        wait = self.last_snapshot + SNAPSHOT_EVERY_SECONDS - time.monotonic()
        if wait <= 0:
            await self.send_snapshot()
        else:
            self.snapshot_due = asyncio.create_task(self.snapshot_later(wait))

    async def snapshot_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self.snapshot_due = None
        await self.send_snapshot()

    async def take_place(self) -> None:
        """The newest socket of a key or a person gets in; the oldest ones over the limit are told to close."""
        displaced = await limits.claim(self.access.holder, self.channel_name, limit=self.access.limit)
        if displaced:  # every socket of the holder hears its group, in any process (live/access.py)
            await hub.send(self.access.holder, {"type": "socket.displaced", "channels": displaced})

    async def beat(self):
        """Sockets that connected together (a reconnect storm) would beat together for ever, each beat a
        burst of thousands of sends in the way of real fragments: the first beat comes at a random
        moment of the first interval, which spreads them out."""
        wait = random.uniform(0.5, 1.0) * HEARTBEAT_SECONDS  # noqa: S311 (not a secret)
        while True:
            await asyncio.sleep(wait)
            wait = HEARTBEAT_SECONDS
            try:
                if self.access.signed_in and not await database_sync_to_async(sessions.still_signed_in)(self.scope):
                    await self.stop(LOGIN_REQUIRED)
                    return
                if not await limits.renew(self.access.holder, self.channel_name, limit=self.access.limit):
                    await self.stop(limits.TOO_MANY)  # a newer socket took its place, and the word got lost
                    return
                await self.watch()
            except Exception:  # noqa: BLE001 (our database away: the page learns it from /healthz; beat on)
                log.debug("a heartbeat's checks failed; they run again at the next one", exc_info=True)
            await self.send_heartbeat()

    async def watch(self) -> None:
        if self.access.pipeline is not None:
            await watchers.watch(self.access.pipeline.slug)

    async def send_heartbeat(self) -> None:
        """A heartbeat says the socket is alive; while the hub cannot read the channel layer it starts
        with <!--deaf-->, and the page says it is not live (live.js) without dropping a socket that
        will hear again as soon as the layer is back."""
        deaf = "" if hub.listening() else DEAF
        beat = format_html('<span id="heartbeat" hidden data-at="{}"></span>', timezone.now().isoformat())
        await self.send(text_data=deaf + beat)

    async def report_presence(self):
        """The admin's "Live now": soon after connecting (spread, like the heartbeats), then every heartbeat."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        version = (query.get("v") or [""])[-1]
        wait = random.uniform(0.2, 2.0)  # noqa: S311 (not a secret)
        while True:
            await asyncio.sleep(wait)
            wait = HEARTBEAT_SECONDS
            try:
                await database_sync_to_async(presence.report)(
                    screen_id=self.access.screen.pk,
                    channel_name=self.channel_name,
                    connected_at=self.connected_at,
                    version=version,
                    last_push_at=self.last_push_at,
                )
            except Exception:  # noqa: BLE001 (our database away: the next heartbeat reports again)
                log.debug("a screen's presence report failed; it is sent again at the next heartbeat", exc_info=True)

    async def stop(self, code: int) -> None:
        """Close from our side; the socket's allowance is free again at once."""
        await limits.release(self.access.holder, self.channel_name)
        await self.close(code=code)

    async def disconnect(self, code):
        if self.heartbeat:  # set once connect() got as far as counting the socket
            metrics.SOCKETS.dec()
        await self.leave_groups()
        for task in (self.heartbeat, self.snapshot_due, self.presence, *self.tasks):
            if task:
                task.cancel()
        if self.presence:
            await database_sync_to_async(presence.gone)(channel_name=self.channel_name)
        if self.access.holder and not self.access.refusal:
            await limits.release(self.access.holder, self.channel_name)

    async def leave_groups(self) -> None:
        joined, self.joined = self.joined, []
        for group in joined:
            await hub.leave(group, self)

    async def deliver(self, message):
        """What the hub hands this socket. A fragment goes out at once, unless the first snapshot is not
        out yet (it waits for it) or a snapshot already had it (its number says). Anything else may wait
        on the database or Redis: it runs as a task of its own, and the hub goes on to the next socket."""
        if message["type"] != "fragment":
            task = asyncio.create_task(getattr(self, get_handler_name(message))(message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif self.held is not None:
            self.held.append(message)
        elif message.get("number") is None or message["number"] > self.as_new_as.get(message["group"], 0):
            await self.fragment(message)

    async def fragment(self, message):
        """The hot path: as cheap as a bare consumer's. An event outside the socket's filters still
        sends its number, so the page does not take it for a missed one."""
        meta = message["meta"]
        if meta is None or self.access.event_filter.matches(meta):
            self.last_push_at = timezone.now()
            await self.send(text_data=message["html"])
        else:
            await self.send(text_data=message["skip"])

    async def control(self, message):
        if message.get("html"):  # a signal the page acts on (show the screen's name, play the test chime)
            await self.send(text_data=message["html"])
            return
        await self.stop(REVOKED if message["action"] == "revoke" else RELOAD)

    async def socket_displaced(self, message):
        if self.channel_name in message["channels"]:
            await self.close(code=limits.TOO_MANY)

    async def session_check(self, message):
        """Logout names the session that ended; other changes to the user make every socket look again."""
        if message["ended_session"]:
            if message["ended_session"] == self.session:
                await self.stop(LOGIN_REQUIRED)
        elif not await database_sync_to_async(sessions.still_signed_in)(self.scope):
            await self.stop(LOGIN_REQUIRED)
