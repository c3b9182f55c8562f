"""Which versions the serving processes run right now, so that a page reloads once per deploy.

In a rolling deploy behind a round-robin proxy, old and new nodes serve side by side for a while. A page
that reloaded as soon as one node answered with a new version landed on an old node again, and again
(3–6 reloads each). So every `serve` announces its version in Redis (refreshed every few seconds,
forgotten after ANNOUNCEMENT_SECONDS, withdrawn on a clean stop), /healthz lists the versions being
served, and a page reloads only once its own version is no longer among them: then every node it can
reach serves the new one. Without Redis there is a single process, and the list is its own version.
"""

import logging
import time
from functools import cache

from django.conf import settings

from dashboard.version import server_version

log = logging.getLogger(__name__)

KEY = "pulseboard:serving"  # a sorted set: "<version> <host:pid>" scored by when the announcement lapses
ANNOUNCE_EVERY_SECONDS = 3
ANNOUNCEMENT_SECONDS = 10  # a SIGKILLed node's version is forgotten this long after its last announcement
REDIS_TIMEOUT_SECONDS = 0.5  # /healthz asks: an unreachable Redis must not hold it up
QUIET_AFTER_FAILURE_SECONDS = 10  # nor every /healthz of an outage wait for that timeout

_failed_at = -QUIET_AFTER_FAILURE_SECONDS


@cache
def _client():
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )


def announce(node: str) -> None:
    if not settings.REDIS_URL:
        return
    now = time.time()
    client = _client()
    client.zadd(KEY, {f"{server_version()} {node}": now + ANNOUNCEMENT_SECONDS})
    client.zremrangebyscore(KEY, "-inf", f"({now}")  # lapsed announcements, of killed nodes


def withdraw(node: str) -> None:
    """A node stopping cleanly leaves at once, so pages on the new version need not wait for it to lapse."""
    if not settings.REDIS_URL:
        return
    _client().zrem(KEY, f"{server_version()} {node}")


def serving_versions() -> list[str]:
    """This process's version and every other one announced and not lapsed; only its own if Redis fails."""
    global _failed_at
    versions = {server_version()}
    if settings.REDIS_URL and time.monotonic() - _failed_at > QUIET_AFTER_FAILURE_SECONDS:
        import redis

        try:
            versions |= {member.decode().split(" ", 1)[0] for member in _client().zrangebyscore(KEY, time.time(), "+inf")}
        except redis.RedisError as exc:
            _failed_at = time.monotonic()
            log.debug("cannot read the serving versions: %s", exc)
    return sorted(versions)
