"""The /ws/live/ socket: decide who may listen, join their groups, send a fresh snapshot, then forward.

Forwarding is the hot path: no database, no rendering, only a filter check on the facts an event
carries. Rendering happens once per change in live/push.py, and once per connect for the snapshot.
"""

import asyncio

from channels.db import database_sync_to_async
from channels.exceptions import DenyConnection
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from dashboard.live.access import LOGIN_REQUIRED, RELOAD, REVOKED, socket_access
from dashboard.web import pages

HEARTBEAT_SECONDS = 20  # lets a page notice a dead connection the network did not report


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.heartbeat = None
        self.access = await database_sync_to_async(socket_access)(self.scope)
        if self.access.refusal == LOGIN_REQUIRED:
            raise DenyConnection
        if self.access.refusal:
            await self.accept()
            await self.close(code=self.access.refusal)
            return
        self.groups = self.access.groups  # left again by the base class on disconnect
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send(text_data=await database_sync_to_async(self.snapshot)())
        self.heartbeat = asyncio.create_task(self.beat())

    def snapshot(self) -> str:
        access = self.access
        return pages.snapshot(
            page=access.page, event_filter=access.event_filter, screen=access.screen, incident=access.incident, now=timezone.now()
        )

    async def beat(self):
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.send(text_data=f'<span id="heartbeat" hidden data-at="{timezone.now().isoformat()}"></span>')

    async def disconnect(self, code):
        if self.heartbeat:
            self.heartbeat.cancel()

    async def fragment(self, message):
        meta = message.get("meta")
        if meta is None or self.access.event_filter.matches(meta):
            await self.send(text_data=message["html"])

    async def control(self, message):
        await self.close(code=REVOKED if message["action"] == "revoke" else RELOAD)
