"""Channels' in-memory layer, the embedded default, without its cost per socket per message.

Its receive() and group_send() sweep every channel and every group membership for expired messages
each time they run: with 5,000 sockets, one fragment meant 5,000 sweeps of 5,000 channels, and took
18.6 s to reach them all (`make bench`). Here the sweep of every channel runs at most once a second
(messages expire after a minute), and a group_send puts one copy of the message on each member's queue
directly. The channel being read is checked on every read, so no message is ever delivered past its
expiry (Channels' own expiry tests hold); the pause only delays freeing what nobody reads.
"""

import asyncio
import copy
import time

from channels.layers import InMemoryChannelLayer

SWEEP_EVERY_SECONDS = 1.0


class InMemoryLayer(InMemoryChannelLayer):
    _swept_at = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_EVERY_SECONDS:
            self._swept_at = now
            super()._clean_expired()

    async def receive(self, channel):
        self._expire(channel)
        return await super().receive(channel)

    def _expire(self, channel):
        """Drop what has expired at the head of this channel's queue, as the full sweep would."""
        queue = self.channels.get(channel)
        if queue is None:
            return
        now = time.time()
        while not queue.empty() and queue._queue[0][0] < now:
            queue.get_nowait()
            self._remove_from_groups(channel)
        if queue.empty():
            self.channels.pop(channel, None)

    async def group_send(self, group, message):
        """One copy of the message for the whole group (consumers only read it), put straight on each
        member's queue: Channels copies it, builds a spare queue and starts a task per member."""
        self.require_valid_group_name(group)
        self._clean_expired()
        item = (time.time() + self.expiry, copy.deepcopy(message))
        for channel in list(self.groups.get(group, {})):
            queue = self.channels.get(channel)
            if queue is None:
                queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                pass  # as Channels does: the page sees the gap in the numbers (live/sequence.py)
