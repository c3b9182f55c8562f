"""The process's hub: one membership per group for all its sockets, each socket still gets every message.

Real walls through the real ASGI stack and the embedded in-memory layer, whose group table shows who
the layer itself delivers to.
"""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from dashboard.live import hub, push, screens
from dashboard.live.layers import InMemoryLayer
from tests.test_live_socket import receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

WALL = push.wall_group("", 1.0)


def members(group: str) -> int:
    return len(get_channel_layer().groups.get(group, {}))


async def fragment(text: str) -> None:
    await hub.send(WALL, {"type": "fragment", "html": f'<span id="wall-status">{text}</span>', "meta": None, "skip": ""})


@pytest.fixture
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "dashboard.live.layers.InMemoryLayer"}}


def test_walls_of_one_process_share_one_membership_and_each_gets_every_fragment(in_memory_layer):
    keys = [screens.screen_named(f"TV {number}").key for number in range(3)]

    async def scenario():
        walls = [socket(f"/ws/live/?page=wall&screen={key}") for key in keys]
        for wall in walls:
            assert (await wall.connect())[0]
            await wall.receive_from()  # the snapshot
        assert members(WALL) == 1, "the layer delivers a wall fragment once to this process, not once per wall"

        await fragment("first")
        await fragment("second")
        for wall in walls:
            assert "first" in await receive_until(wall, "wall-status")
            assert "second" in await receive_until(wall, "wall-status")

        for wall in walls[:2]:
            await wall.disconnect()
        assert members(WALL) == 1, "one wall still listens"
        await fragment("third")
        assert "third" in await receive_until(walls[2], "wall-status")
        await walls[2].disconnect()
        assert members(WALL) == 0, "the last wall gone, the process leaves the group"

    async_to_sync(scenario)()


def test_a_wall_open_past_the_layers_group_expiry_still_gets_fragments(settings):
    """Channels ends a group membership after group_expiry (a day by default): a wall running for
    weeks went quiet after its first day. The hub joins again within a quarter of that."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "dashboard.live.layers.InMemoryLayer", "CONFIG": {"group_expiry": 2}}}
    key = screens.screen_named("Lobby").key

    async def scenario():
        wall = socket(f"/ws/live/?page=wall&screen={key}")
        assert (await wall.connect())[0]
        await wall.receive_from()
        await asyncio.sleep(3.5)  # past the expiry, and past a sweep of the layer (once a second)
        await fragment("after the expiry")
        assert "after the expiry" in await receive_until(wall, "wall-status")
        await wall.disconnect()

    async_to_sync(scenario)()


def test_a_fragment_sent_before_the_first_snapshot_is_out_follows_it(in_memory_layer):
    """The hub delivers from the moment a socket joins; the socket holds what comes before its
    snapshot is sent, so the page never sees a fragment ahead of the snapshot it belongs after."""
    key = screens.screen_named("Hall").key

    async def scenario():
        wall = socket(f"/ws/live/?page=wall&screen={key}")
        connecting = asyncio.ensure_future(wall.connect())
        while not hub._hub().members.get(WALL):
            await asyncio.sleep(0)
        await fragment("early")
        assert (await connecting)[0]
        assert "<!--snapshot" in await wall.receive_from()
        assert "early" in await receive_until(wall, "wall-status")
        await wall.disconnect()

    async_to_sync(scenario)()


class SlowLayer(InMemoryLayer):
    """Each membership change takes a while, as over a network, a leave longer than a join: room for a
    join that comes later to reach the layer first."""

    async def group_add(self, group, channel):
        await asyncio.sleep(0.01)
        await super().group_add(group, channel)

    async def group_discard(self, group, channel):
        await asyncio.sleep(0.1)
        await super().group_discard(group, channel)


class Listener:
    def __init__(self):
        self.messages = []

    async def deliver(self, message):
        self.messages.append(message)


def test_a_last_leave_and_a_first_join_that_cross_leave_the_process_in_the_group():
    layer = SlowLayer()
    a_hub, first, second = hub.Hub(layer), Listener(), Listener()

    async def scenario():
        await a_hub.join(WALL, first)
        await asyncio.gather(a_hub.leave(WALL, first), a_hub.join(WALL, second))
        assert len(layer.groups.get(WALL, {})) == 1, "the second listener joined while the first left"
        await layer.group_send(WALL, {"type": "fragment", "group": WALL})
        await asyncio.sleep(0.05)
        assert len(second.messages) == 1 and not first.messages
        many = [Listener() for _ in range(50)]
        await asyncio.gather(*(a_hub.join("wall-incidents.1", listener) for listener in many))
        await asyncio.gather(*(a_hub.leave("wall-incidents.1", listener) for listener in many))
        assert "wall-incidents.1" not in a_hub.members and not layer.groups.get("wall-incidents.1")
        for task in a_hub.tasks:
            task.cancel()

    async_to_sync(scenario)()


def test_walls_of_their_own_screens_share_one_membership_for_control_and_a_revoke_reaches_one(in_memory_layer):
    from dashboard.live.access import REVOKED
    from dashboard.models import Screen

    named = [screens.screen_named(f"Desk {number}") for number in range(3)]

    async def scenario():
        walls = [socket(f"/ws/live/?page=wall&screen={screen.key}") for screen in named]
        for wall in walls:
            assert (await wall.connect())[0]
            await wall.receive_from()
        assert members("screen") == 1, "three screens' control groups, one membership in the layer"
        assert not any(group.startswith("screen.") for group in get_channel_layer().groups)

        revoked = await Screen.objects.aget(pk=named[1].pk)
        await asyncio.to_thread(push.tell_screen, revoked, "revoke")
        closed = await walls[1].receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": REVOKED}
        await walls[1].disconnect()
        for wall in (walls[0], walls[2]):
            assert await wall.receive_nothing(timeout=0.3), "a revoke reaches its own screen's walls only"
            await wall.disconnect()
        assert members("screen") == 0

    async_to_sync(scenario)()


class FlakyLayer(InMemoryLayer):
    """Down for its first `failures` calls, and forgets every group meanwhile (Redis restarted)."""

    failures = 0

    async def receive(self, channel):
        self.fail()
        return await super().receive(channel)

    async def group_add(self, group, channel):
        self.fail()
        await super().group_add(group, channel)

    def fail(self):
        if self.failures:
            self.failures -= 1
            self.groups.clear()
            raise ConnectionError("Connection refused")


def test_a_hub_whose_layer_fails_reads_again_joins_its_groups_afresh_and_says_when_it_is_deaf():
    layer = FlakyLayer()
    a_hub, listener = hub.Hub(layer), Listener()

    async def scenario():
        await a_hub.join(WALL, listener)
        layer.failures = 3
        await layer.send(a_hub.channel, {"type": "fragment", "group": WALL})  # wakes the reader into the outage
        await asyncio.sleep(0.1)
        assert not a_hub.listening(), "a hub that cannot read says so (the sockets' heartbeats stop)"
        while layer.failures or a_hub.failing:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.05)
        assert a_hub.listening()
        assert len(layer.groups.get(WALL, {})) == 1, "the restarted layer has the hub in its group again"
        await layer.group_send(WALL, {"type": "fragment", "group": WALL, "after": True})
        await asyncio.sleep(0.05)
        assert listener.messages[-1].get("after"), "a fragment sent after the outage arrives"
        for task in a_hub.tasks:
            task.cancel()

    async_to_sync(scenario)()
