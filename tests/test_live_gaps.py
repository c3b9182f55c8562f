"""No silent gaps: a wall whose channel overflowed can tell from the numbers, and gets a snapshot.

A process that is slow to read (here: a burst of pushes before its hub is scheduled) loses the
messages its channel (the hub's, live/hub.py) has no room for; the channel layer says nothing. The
numbers show the gap, and a snapshot request (what live.js sends) is answered with every live region,
numbered as new as it is.
"""

import asyncio
import json
import re

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from dashboard.live import push, screens, sequence
from tests.test_live_socket import socket

pytestmark = pytest.mark.django_db(transaction=True)

NUMBER = re.compile(r"^<!--seq (\S+) (\d+)-->")
SNAPSHOT = re.compile(r"^<!--snapshot ([^>]*)-->")


@pytest.fixture
def small_channels(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "dashboard.live.layers.InMemoryLayer", "CONFIG": {"capacity": 3}}}


async def burst(group: str, count: int) -> None:
    """`count` numbered fragments sent at once, as push.py numbers them, before the socket reads any."""
    layer = get_channel_layer()
    numbers = sequence.take([group] * count)
    await asyncio.gather(
        *(
            layer.group_send(
                group,
                {
                    "type": "fragment",
                    "html": f'{sequence.marker(group, number)}<span id="wall-status">push {number}</span>',
                    "meta": None,
                    "skip": sequence.marker(group, number),
                    "number": number,
                    "group": group,
                },
            )
            for number in numbers
        )
    )


def test_an_overfilled_wall_socket_shows_a_gap_and_a_snapshot_request_fills_it(small_channels):
    screen = screens.screen_named("Office TV")
    group = push.wall_group("", 1.0)

    async def scenario():
        wall = socket(f"/ws/live/?page=wall&screen={screen.key}")
        assert (await wall.connect())[0]
        snapshot = await wall.receive_from()
        seen = dict(pair.split("=") for pair in SNAPSHOT.match(snapshot)[1].split())
        last = int(seen[group])

        await burst(group, 10)  # three fit in the channel; seven are dropped
        await burst(group, 1)  # the next push after the loss
        numbers = []
        while len(numbers) < 4:
            match = NUMBER.match(await wall.receive_from())
            if match and match[1] == group:
                numbers.append(int(match[2]))
        assert numbers == [last + 1, last + 2, last + 3, last + 11], "the dropped pushes leave a gap in the numbers"
        assert await wall.receive_nothing(timeout=0.3)

        await wall.send_to(text_data=json.dumps({"want": "snapshot"}))
        fresh = await wall.receive_from()
        assert 'id="wall-builds"' in fresh
        assert f"{group}={last + 11}" in SNAPSHOT.match(fresh)[1]
        await wall.disconnect()

    async_to_sync(scenario)()


def test_a_page_cannot_make_the_server_render_in_a_loop(small_channels):
    screen = screens.screen_named("Office TV")

    async def scenario():
        wall = socket(f"/ws/live/?page=wall&screen={screen.key}")
        assert (await wall.connect())[0]
        await wall.receive_from()
        for _ in range(20):
            await wall.send_to(text_data=json.dumps({"want": "snapshot"}))
        assert SNAPSHOT.match(await wall.receive_from(timeout=3)), "one request is answered, a little later"
        assert await wall.receive_nothing(timeout=1.5), "the other nineteen are not"
        await wall.disconnect()

    async_to_sync(scenario)()
