"""How many sockets one kiosk key, or one person, may hold open at once.

One key opened on 40 tabs slowed a real wall's connect from 0.11 s to over 2 s, and each socket costs
a snapshot render. A socket over the limit is accepted and closed at once with TOO_MANY, which the page
reads as "wait a minute, then try again" (not as an error to retry at once).

Counts live in Redis when REDIS_URL is set, so every daphne process sees them; without Redis, only one
process serves sockets, and its own memory is the truth. Each claim expires unless the socket's
heartbeat renews it, so a killed process cannot leave a key locked for long.
"""

import time

from django.conf import settings

from dashboard.live import shared_redis

TOO_MANY = 4429
CLAIM_SECONDS = 60  # three heartbeats: a live socket always renews in time

# Drop expired claims, count the rest, and add this one if there is room: atomically, for racing connects.
CLAIM_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

_claims_here: dict[str, dict[str, float]] = {}  # holder -> {channel name: expiry}, without Redis


async def claim(holder: str, channel: str, *, limit: int) -> bool:
    """Room for one more socket of `holder` (e.g. "screen.3", "user.7")? Renews the claim if it is already held."""
    now = time.time()
    if not settings.REDIS_URL:
        claims = _claims_here.setdefault(holder, {})
        if channel not in claims and len(claims) >= limit:
            # Expired claims are dropped only when they could stand in the way: a sweep on every
            # heartbeat cost each renewal a pass over all of the holder's sockets.
            for name, expiry in list(claims.items()):
                if expiry < now:
                    del claims[name]
            if len(claims) >= limit:
                return False
        claims[channel] = now + CLAIM_SECONDS
        return True
    redis = shared_redis.async_client()
    try:
        granted = await redis.eval(CLAIM_SCRIPT, 1, _key(holder), now, now + CLAIM_SECONDS, limit, channel, CLAIM_SECONDS)
    except shared_redis.unreachable():
        return True  # Redis down: a wall is let in rather than failed (the hub's log line says Redis is down)
    return bool(granted)


async def release(holder: str, channel: str) -> None:
    if not settings.REDIS_URL:
        claims = _claims_here.get(holder, {})
        claims.pop(channel, None)
        if not claims:
            _claims_here.pop(holder, None)
        return
    try:
        await shared_redis.async_client().zrem(_key(holder), channel)
    except shared_redis.unreachable():
        pass  # the claim expires by itself (CLAIM_SECONDS)


def _key(holder: str) -> str:
    return f"pulseboard:sockets:{holder}"
