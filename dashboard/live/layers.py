"""Channels' in-memory layer, the embedded default, without its cost per socket per message.

Its receive() and group_send() sweep every channel and every group membership for expired messages
each time they run: with 5,000 sockets, one fragment meant 5,000 sweeps of 5,000 channels, and took
18.6 s to reach them all (`make bench`). Here the sweep runs at most once a second (messages expire
after a minute), and a group_send hands the message to each member directly rather than through a
task per member.
"""

import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_EVERY_SECONDS = 1.0


class InMemoryLayer(InMemoryChannelLayer):
    _swept_at = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_EVERY_SECONDS:
            self._swept_at = now
            super()._clean_expired()

    async def group_send(self, group, message):
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass  # as Channels does: the socket sees the gap in the numbers (live/sequence.py)
