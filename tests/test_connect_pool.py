"""The connect pool's batched lookups: callers that ask together share one query, each gets its own answer."""

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from dashboard.live import pool

pytestmark = pytest.mark.django_db  # the pool's threads tidy their database connections after each call


def test_keys_asked_for_together_are_looked_up_together_and_each_caller_gets_its_answer():
    calls = []

    def lookup(keys):
        calls.append(list(keys))
        return {key: key.upper() for key in keys if key != "unknown"}

    get = pool.batched(lookup)

    async def storm():
        keys = [f"key{number % 40}" for number in range(300)] + ["unknown"]
        answers = await asyncio.gather(*(get(key) for key in keys))
        assert answers == [key.upper() if key != "unknown" else None for key in keys]
        assert await get("alone") == "ALONE", "a lone caller is answered too"

    async_to_sync(storm)()
    assert len(calls) <= 3, f"{len(calls)} lookups for 301 callers"
    assert all(len(set(keys)) == len(keys) for keys in calls), "a key asked for twice is looked up once"


def test_a_failed_lookup_fails_its_callers_and_the_next_caller_is_looked_up_again():
    calls = []

    def lookup(keys):
        calls.append(keys)
        if len(calls) == 1:
            raise RuntimeError("database is down")
        return {key: "ok" for key in keys}

    get = pool.batched(lookup)

    async def scenario():
        results = await asyncio.gather(get("a"), get("b"), return_exceptions=True)
        assert all(isinstance(result, RuntimeError) for result in results)
        assert await get("a") == "ok"

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_walls_with_keys_of_their_own_that_connect_together_all_get_their_own_screen():
    from dashboard.live import screens
    from tests.test_live_socket import socket

    named = {f"TV {number}": screens.screen_named(f"TV {number}").key for number in range(30)}

    async def scenario():
        walls = [socket(f"/ws/live/?page=wall&screen={key}") for key in named.values()]
        assert all(connected for connected, _ in await asyncio.gather(*(wall.connect() for wall in walls)))
        snapshots = await asyncio.gather(*(wall.receive_from(timeout=30) for wall in walls))
        assert all('id="wall-builds"' in snapshot for snapshot in snapshots)
        await asyncio.gather(*(wall.disconnect() for wall in walls))

    async_to_sync(scenario)()
    from dashboard.models import Screen

    assert Screen.objects.filter(last_seen_at__isnull=False).count() == 30, "each screen was seen"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="ends PostgreSQL's server processes")
def test_connections_kept_through_a_database_restart_are_replaced_before_use():
    """As after PostgreSQL restarts: every kept connection's server process ends while the pool idles."""

    def backend(_key):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    on_pool = pool.connecting(backend)

    async def round_of_calls():
        return set(await asyncio.gather(*(on_pool(str(number)) for number in range(pool.CONNECT_THREADS * 4))))

    before = async_to_sync(round_of_calls)()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(before)])
    time.sleep(pool.IDLE_CHECK_SECONDS + 0.1)
    after = async_to_sync(round_of_calls)()  # raised "terminating connection" on each thread in turn
    assert after.isdisjoint(before)
