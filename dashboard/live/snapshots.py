"""Snapshots for sockets that connect together: one rendering per audience, off Channels' shared thread.

After a deploy or a network blip thousands of walls reconnect in the same second, nearly all showing
the same thing. A snapshot is rendered once per audience (the page and what decides its content) and
shared by every socket of that audience that asks while it renders or shortly after, as long as no
fragment was pushed to its groups since (the numbers of live/sequence.py tell). The access check and
the rendering run in a small pool of their own, each thread on a connection it keeps: with
database_sync_to_async's default, every connect queued behind every other piece of sync work in the
process, one at a time, and opened a database connection of its own.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import connections

from dashboard.live import sequence

CONNECT_THREADS = 4  # each holds a database connection of its own
FRESH_SECONDS = 2.0  # a rendering is shared for this long at most, even when nothing was pushed

_pool = ThreadPoolExecutor(max_workers=CONNECT_THREADS, thread_name_prefix="pulseboard-connect")


def in_pool(function: Callable) -> Callable:
    """`function` as a coroutine function that runs in the connect pool, on that thread's own connection."""
    return sync_to_async(_keeping_connections(function), thread_sensitive=False, executor=_pool)


def _keeping_connections(function: Callable) -> Callable:
    """The pool's few threads live as long as the process, and each keeps its database connection from
    one connect to the next: with Channels' database_sync_to_async (and CONN_MAX_AGE=0), each connect
    opened and closed a connection, which cost more than its queries (`make bench`, connect storm).
    A connection is closed, as Django would, only when an error may have broken it."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            for connection in connections.all(initialized_only=True):
                if connection.connection is None:
                    continue
                broken = connection.errors_occurred and not connection.is_usable()
                if broken or connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
                    connection.close()
                connection.errors_occurred = False

    return run


@dataclass
class _Rendering:
    numbers: dict[str, int]
    started: float
    html: asyncio.Future


_renderings: dict[tuple, _Rendering] = {}


async def snapshot(audience: tuple, groups: list[str], render: Callable[[], str]) -> tuple[dict[str, int], str]:
    """The audience's snapshot, rendered by `render` unless a fresh enough one is shared, and the numbers
    it is as new as; it starts with them, and the page takes them as the last ones it has seen."""
    numbers = await sequence.current(groups)
    loop = asyncio.get_running_loop()
    now = loop.time()
    rendering = _renderings.get(audience)
    if (
        rendering is None
        or rendering.numbers != numbers
        or now - rendering.started > FRESH_SECONDS
        or rendering.html.get_loop() is not loop
    ):
        _forget_old(now)
        rendering = _renderings[audience] = _Rendering(numbers, now, asyncio.ensure_future(in_pool(render)()))
        rendering.html.add_done_callback(lambda html: _forget_failed(audience, html))
    return numbers, sequence.snapshot_marker(numbers) + await asyncio.shield(rendering.html)


def _forget_failed(audience: tuple, html: asyncio.Future) -> None:
    """A rendering that failed is not shared: the next socket tries again."""
    failed = html.cancelled() or html.exception() is not None
    if failed and audience in _renderings and _renderings[audience].html is html:
        del _renderings[audience]


def _forget_old(now: float) -> None:
    for audience, rendering in list(_renderings.items()):
        if now - rendering.started > FRESH_SECONDS:
            del _renderings[audience]
