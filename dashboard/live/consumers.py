"""The /ws/live/ socket: decide who may listen, join their groups, send a fresh snapshot, then forward.

Forwarding is the hot path: no database, no rendering, only a filter check on the facts an event
carries. Rendering happens once per change in live/push.py, and once per connect for the snapshot.
"""

import asyncio

from channels.db import database_sync_to_async
from channels.exceptions import DenyConnection
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from dashboard import metrics
from dashboard.live import limits, sessions
from dashboard.live.access import LOGIN_REQUIRED, RELOAD, REVOKED, SocketAccess, socket_access
from dashboard.web import pages

HEARTBEAT_SECONDS = 20  # lets a page notice a dead connection the network did not report


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.heartbeat, self.access = None, SocketAccess()  # what disconnect() sees if connect() fails
        self.access = await database_sync_to_async(socket_access)(self.scope)
        if self.access.refusal == LOGIN_REQUIRED:
            raise DenyConnection
        if not self.access.refusal and not await self.claim():
            self.access.refusal = limits.TOO_MANY
        if self.access.refusal:
            await self.accept()
            await self.close(code=self.access.refusal)
            return
        self.session = sessions.session_digest(self.scope["session"].session_key) if self.access.signed_in else ""
        self.groups = self.access.groups  # left again by the base class on disconnect
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send(text_data=await database_sync_to_async(self.snapshot)())
        metrics.SOCKETS.inc()
        self.heartbeat = asyncio.create_task(self.beat())

    def snapshot(self) -> str:
        access = self.access
        return pages.snapshot(
            page=access.page, event_filter=access.event_filter, screen=access.screen, incident=access.incident, now=timezone.now()
        )

    async def claim(self) -> bool:
        return await limits.claim(self.access.holder, self.channel_name, limit=self.access.limit)

    async def beat(self):
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if self.access.signed_in and not await database_sync_to_async(sessions.still_signed_in)(self.scope):
                await self.stop(LOGIN_REQUIRED)
                return
            await self.claim()  # renewed, so it does not expire while the socket lives
            await self.send(text_data=f'<span id="heartbeat" hidden data-at="{timezone.now().isoformat()}"></span>')

    async def stop(self, code: int) -> None:
        """Close from our side; the socket's allowance is free again at once."""
        await limits.release(self.access.holder, self.channel_name)
        await self.close(code=code)

    async def disconnect(self, code):
        if self.heartbeat:
            self.heartbeat.cancel()
            metrics.SOCKETS.dec()
        if self.access.holder and not self.access.refusal:
            await limits.release(self.access.holder, self.channel_name)

    async def fragment(self, message):
        meta = message.get("meta")
        if meta is None or self.access.event_filter.matches(meta):
            await self.send(text_data=message["html"])

    async def control(self, message):
        await self.stop(REVOKED if message["action"] == "revoke" else RELOAD)

    async def session_check(self, message):
        """Logout names the session that ended; other changes to the user make every socket look again."""
        if message["ended_session"]:
            if message["ended_session"] == self.session:
                await self.stop(LOGIN_REQUIRED)
        elif not await database_sync_to_async(sessions.still_signed_in)(self.scope):
            await self.stop(LOGIN_REQUIRED)
