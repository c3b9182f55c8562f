"""Which pipeline pages someone has open, so that a push renders only those.

A storm of 700 running builds across 140 pipelines made every sync batch render the page of each of its
pipelines (36 of a pass's 49 s), pages nobody had open. A pipeline page's socket says it watches its
pipeline when it connects, before its snapshot, and again at every heartbeat; a watch lapses unless renewed.

In Redis when REDIS_URL is set, so the poller on one node sees the pages open on every node; without
Redis the poller pushes only inside the one daphne process (`demo`, `serve`), whose memory is the truth.
When Redis cannot be read, every pipeline counts as watched: a render too many, never a page left behind.
The sync asks, after its commit and before it goes on, so it asks with a short timeout, and after a failure
not again for a while: a partitioned Redis must never hold the mirror (it held it 5 s a batch).
"""

import time
from collections.abc import Iterable

from django.conf import settings

from dashboard.id_tokens import id_token
from dashboard.live import shared_redis

WATCH_SECONDS = 60  # three heartbeats: an open page always renews in time
ASK_TIMEOUT = 0.25  # seconds the sync waits for Redis's answer
QUIET_AFTER_FAILURE = 10.0  # seconds every pipeline counts as watched, unasked, after Redis failed to answer
MOST_HERE = 10_000  # watches kept in memory without Redis

_here: dict[str, float] = {}  # token -> when the watch lapses
_full = {"until": 0.0}  # a watch found no room: every pipeline counts as watched until it would have lapsed
_redis_failed = {"until": 0.0}


def _key(slug: str) -> str:
    return f"pulseboard:watch:pipeline:{id_token(slug)}"


async def watch(slug: str) -> None:
    """This page shows `slug`'s pipeline for another WATCH_SECONDS."""
    if settings.REDIS_URL:
        try:
            await shared_redis.async_client().set(_key(slug), 1, ex=WATCH_SECONDS)
        except shared_redis.unreachable():
            pass  # unreadable for the pusher too, which then renders every pipeline
        return
    now = time.monotonic()
    if len(_here) >= MOST_HERE:
        for key in [key for key, lapses in _here.items() if lapses <= now]:
            del _here[key]
    if len(_here) < MOST_HERE or _key(slug) in _here:
        _here[_key(slug)] = now + WATCH_SECONDS
    else:
        _full["until"] = now + WATCH_SECONDS


def watched(slugs: Iterable[str]) -> set[str]:
    """The pipelines among `slugs` whose page someone has open (all of them when that cannot be told)."""
    slugs = list(slugs)
    if not slugs:
        return set()
    now = time.monotonic()
    if settings.REDIS_URL:
        if _redis_failed["until"] > now:
            return set(slugs)
        try:
            found = shared_redis.sync_client(timeout=ASK_TIMEOUT).mget([_key(slug) for slug in slugs])
        except shared_redis.unreachable():
            _redis_failed["until"] = now + QUIET_AFTER_FAILURE
            return set(slugs)
        return {slug for slug, value in zip(slugs, found, strict=True) if value is not None}
    if _full["until"] > now:
        return set(slugs)
    return {slug for slug in slugs if _here.get(_key(slug), 0) > now}
