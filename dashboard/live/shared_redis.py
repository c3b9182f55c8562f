"""The Redis clients the live path shares (socket limits, push numbers), one per event loop or process.

A connect storm asks for more connections at once than a pool holds: the async pool makes a socket
wait for a free connection rather than fail it.
"""

import asyncio
import weakref

from django.conf import settings

_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # an asyncio client is tied to its loop
_by_url: dict[tuple[str, float], object] = {}


def async_client():
    import redis.asyncio

    loop = asyncio.get_running_loop()
    if loop not in _by_loop:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL, socket_timeout=5, max_connections=100, timeout=20
        )
        _by_loop[loop] = redis.asyncio.Redis(connection_pool=pool)
    return _by_loop[loop]


def sync_client(timeout: float = 5):
    """A blocking client; a caller on a page's path asks for a short `timeout` to give up rather than wait."""
    import redis

    key = (settings.REDIS_URL, timeout)
    if key not in _by_url:
        _by_url[key] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    return _by_url[key]


def unreachable() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is down, restarted or cut off."""
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError)
