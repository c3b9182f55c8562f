"""Walls that connect together share one snapshot rendering, and never get one older than a push."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.test.signals import template_rendered

from dashboard.live import screens
from tests.test_live_socket import hth_client, receive_until, socket, sync_events  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wall_key(settings):
    settings.LIVE_MAX_SOCKETS_PER_KEY = 100  # one key stands in for many screens
    return screens.screen_named("Office TV").key


@pytest.fixture
def rendered():
    names = []

    def count(sender, template, **kwargs):
        names.append(template.name)

    template_rendered.connect(count)
    yield names
    template_rendered.disconnect(count)


def test_walls_connecting_together_share_one_rendering(wall_key, rendered):
    async def scenario():
        walls = [socket(f"/ws/live/?page=wall&screen={wall_key}") for _ in range(30)]
        results = await asyncio.gather(*(wall.connect(timeout=30) for wall in walls))
        assert all(connected for connected, _ in results)
        snapshots = await asyncio.gather(*(wall.receive_from(timeout=30) for wall in walls))
        assert all('id="wall-builds"' in snapshot and snapshot.startswith("<!--snapshot ") for snapshot in snapshots)
        await asyncio.gather(*(wall.disconnect() for wall in walls))

    async_to_sync(scenario)()
    assert rendered.count("wall-builds") == 1, f"rendered {rendered.count('wall-builds')} times for 30 walls"


def test_a_wall_connecting_after_a_push_does_not_get_the_older_shared_rendering(wall_key, hth_sim, hth_client):  # noqa: F811
    async def scenario():
        first = socket(f"/ws/live/?page=wall&screen={wall_key}")
        assert (await first.connect())[0]
        assert "Fresh build" not in await first.receive_from()
        hth_sim.start_build(name="Fresh build")
        await sync_events(hth_client)
        await receive_until(first, "Fresh build")  # pushed, well within the time a rendering is shared
        second = socket(f"/ws/live/?page=wall&screen={wall_key}")
        assert (await second.connect())[0]
        assert "Fresh build" in await second.receive_from()
        await first.disconnect()
        await second.disconnect()

    async_to_sync(scenario)()


def test_the_connect_pool_keeps_its_database_connection_from_one_connect_to_the_next():
    """Opening a connection per connect cost a storm more than its queries did."""
    from django.db import connection

    from dashboard.live import pool
    from dashboard.models import Screen

    def connected_before_the_query() -> bool:
        already = connection.connection is not None
        Screen.objects.count()
        return already

    async def two_connects():
        await pool.connecting(connected_before_the_query)()
        return await pool.connecting(connected_before_the_query)()

    assert async_to_sync(two_connects)(), "the second connect opened a new database connection"
