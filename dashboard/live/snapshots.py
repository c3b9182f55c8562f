"""Snapshots for sockets that connect together: one rendering per audience, off Channels' shared thread.

After a deploy or a network blip thousands of walls reconnect in the same second, nearly all showing
the same thing. A snapshot is rendered once per audience (the page and what decides its content) and
shared by every socket of that audience that asks while it renders or shortly after, as long as no
fragment was pushed to its groups since (the numbers of live/sequence.py tell). The rendering
runs in threads of its own (live/pool.py).
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from dashboard.live import pool, sequence, shared_redis

FRESH_SECONDS = 2.0  # a rendering is shared for this long at most, even when nothing was pushed


@dataclass
class _Rendering:
    numbers: dict[str, int]
    started: float
    html: asyncio.Future


_renderings: dict[tuple, _Rendering] = {}


async def snapshot(audience: tuple, groups: list[str], render: Callable[[], str]) -> tuple[dict[str, int], str]:
    """The audience's snapshot, rendered by `render` unless a fresh enough one is shared, and the numbers
    it is as new as; it starts with them, and the page takes them as the last ones it has seen."""
    try:
        numbers = await sequence.current(groups)
    except shared_redis.unreachable():
        numbers = {}  # Redis down: the page takes the next numbers as they come; the hub resnapshots it later
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
        rendering = _renderings[audience] = _Rendering(numbers, now, asyncio.ensure_future(pool.rendering(render)()))
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
