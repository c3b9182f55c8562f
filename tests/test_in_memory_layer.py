"""The embedded in-memory layer: same delivery as Channels', without a sweep of every channel per message."""

import asyncio
import time

import pytest
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


def test_a_message_past_its_expiry_is_never_delivered_even_between_sweeps():
    """Channels' own test_expiry_multi, on our layer: the read comes 0.1 s after the last full sweep."""
    layer = InMemoryLayer(expiry=0.1)

    async def scenario():
        for n in (1, 2, 3):
            await layer.send("test-channel-1", {"type": f"message.{n}"})
        assert (await layer.receive("test-channel-1"))["type"] == "message.1"
        await asyncio.sleep(0.1)
        await layer.send("test-channel-1", {"type": "message.4"})
        assert (await layer.receive("test-channel-1"))["type"] == "message.4"
        assert len(layer.channels) == 0

    async_to_sync(scenario)()


def test_an_expired_message_alone_on_its_channel_is_dropped_and_the_read_waits():
    """Channels' test_expiry_single, with a sweep just before so that only the read's own check can drop it."""
    layer = InMemoryLayer(expiry=0.1)

    async def scenario():
        layer._clean_expired()  # the once-a-second sweep has just run
        await layer.group_add("wall", "test-channel-1")
        await layer.send("test-channel-1", {"type": "message.1"})
        await asyncio.sleep(0.15)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await layer.receive("test-channel-1")
        assert "test-channel-1" not in layer.groups.get("wall", {}), "an expired message takes its channel out of groups"

    async_to_sync(scenario)()
