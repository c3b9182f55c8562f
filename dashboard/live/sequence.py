"""A number per group for every pushed fragment, so that a page can tell when it missed one.

Channel layers drop a message when a socket's channel is full, and say nothing. Each fragment goes
out numbered (push.py); a page that sees a number skipped asks for a fresh snapshot (live.js), and a
snapshot carries the numbers it is as new as, so a cached one is reused only while none moved.

With REDIS_URL the counters live in Redis, shared by the poller and every daphne process; without it,
pushes and sockets share one process, and its memory is the truth.
"""

from collections import defaultdict

from django.conf import settings

from dashboard.live import shared_redis

_counters: defaultdict[str, int] = defaultdict(int)  # group -> last number given, without Redis


def take(groups: list[str]) -> list[int]:
    """The next number for each message to these groups, in order (a group may come more than once).
    Called by the pusher after the commit and before the send."""
    if not settings.REDIS_URL:
        numbers = []
        for group in groups:
            _counters[group] += 1
            numbers.append(_counters[group])
        return numbers
    pipeline = shared_redis.sync_client().pipeline(transaction=False)
    for group in groups:
        pipeline.incr(_key(group))
    return pipeline.execute()


async def current(groups: list[str]) -> dict[str, int]:
    """The last number given in each group (0 when none yet)."""
    if not groups:
        return {}
    if not settings.REDIS_URL:
        return {group: _counters[group] for group in groups}
    values = await shared_redis.async_client().mget([_key(group) for group in groups])
    return {group: int(value or 0) for group, value in zip(groups, values, strict=True)}


def marker(group: str, number: int) -> str:
    """What live.js reads at the start of a pushed message; htmx ignores a comment."""
    return f"<!--seq {group} {number}-->"


def snapshot_marker(numbers: dict[str, int]) -> str:
    return "<!--snapshot " + " ".join(f"{group}={number}" for group, number in sorted(numbers.items())) + "-->"


def _key(group: str) -> str:
    return f"pulseboard:seq:{group}"
