"""The embedded in-memory layer: same delivery as Channels', without a sweep of every channel per message."""

import time

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer

from dashboard.live.layers import InMemoryLayer


def test_a_fragment_to_many_sockets_sweeps_for_expired_messages_once_not_once_per_socket(monkeypatch):
    sweeps = []
    original = InMemoryChannelLayer._clean_expired
    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", lambda self: sweeps.append(1) or original(self))
    layer = InMemoryLayer()

    async def fan_out():
        channels = [await layer.new_channel() for _ in range(500)]
        for channel in channels:
            await layer.group_add("wall", channel)
        sweeps.clear()
        await layer.group_send("wall", {"type": "fragment", "html": "x"})
        received = [await layer.receive(channel) for channel in channels]
        assert all(message["html"] == "x" for message in received)

    async_to_sync(fan_out)()
    assert len(sweeps) <= 2, f"{len(sweeps)} sweeps of every channel for one fragment to 500 sockets"


def test_expired_messages_are_still_dropped_and_their_channel_leaves_its_groups():
    layer = InMemoryLayer(expiry=0.01)

    async def scenario():
        await layer.group_add("wall", "gone")
        await layer.group_send("wall", {"type": "fragment", "html": "x"})
        time.sleep(1.1)  # past the expiry, and past the layer's pause between sweeps
        await layer.group_send("wall", {"type": "fragment", "html": "y"})
        assert "gone" not in layer.groups.get("wall", {})

    async_to_sync(scenario)()
