"""How many sockets one kiosk key, or one person, may hold open at once; the newest always gets in.

One key opened on 40 tabs slowed a real wall's connect from 0.11 s to over 2 s, and each socket costs
a snapshot render. At the limit, a new socket takes the place of the oldest, which is closed with TOO_MANY
(the page reads it as "wait a minute, then try again", not as an error to retry at once). The newest wins
because refusing it let anyone holding a kiosk link keep the real TV out by opening the link's sockets
first, and kept a TV out for a minute after its server was killed, behind the claims of its own dead sockets:
now a dead socket's claim is simply the oldest, and goes first.

Claims live in Redis when REDIS_URL is set, so every daphne process sees them; without Redis, only one
process serves sockets, and its own memory is the truth. Each claim expires unless the socket's heartbeat
renews it; a renewal that finds its place given away tells the socket to close.
"""

import time

from django.conf import settings

from dashboard.live import shared_redis

TOO_MANY = 4429
CLAIM_SECONDS = 60  # three heartbeats: a live socket always renews in time

# KEYS[1]: channel -> expiry; KEYS[2]: channel -> when it connected. ARGV: now, expiry, limit, channel, ttl,
# and "new" (a connecting socket: make room by dropping the oldest) or "renew" (a heartbeat: 1 if still held).
# Atomic, for racing connects. A claim missing from KEYS[2] (written before it existed) counts as oldest.
CLAIM_SCRIPT = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, name in ipairs(gone) do
  redis.call('ZREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
end
local dropped = {}
if redis.call('ZSCORE', KEYS[1], ARGV[4]) == false then
  if ARGV[6] == 'renew' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
  end
  while redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1] or redis.call('ZRANGE', KEYS[1], 0, 0)[1]
    redis.call('ZREM', KEYS[2], oldest)
    if redis.call('ZREM', KEYS[1], oldest) == 1 then
      table.insert(dropped, oldest)
    end
  end
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[6] == 'renew' then
  return 1
end
return dropped
"""

_claims_here: dict[str, dict[str, tuple[float, float]]] = {}  # holder -> {channel: (connected, expiry)}, without Redis


async def claim(holder: str, channel: str, *, limit: int) -> list[str]:
    """A place for a new socket of `holder` (e.g. "screen.3", "user.7"), always: the channels of the oldest
    sockets it displaced, which the caller tells to close."""
    now = time.time()
    if settings.REDIS_URL:
        try:
            dropped = await _eval(holder, now, limit, channel, "new")
        except shared_redis.unreachable():
            return []  # Redis down: a wall is let in rather than failed (the hub's log line says Redis is down)
        return [name.decode() if isinstance(name, bytes) else name for name in dropped]
    claims = _claims_here.setdefault(holder, {})
    dropped = []
    if channel not in claims and len(claims) >= limit:
        _drop_expired(claims, now)
        while claims and len(claims) >= limit:
            oldest = min(claims, key=lambda name: claims[name][0])
            del claims[oldest]
            dropped.append(oldest)
    claims[channel] = (claims.get(channel, (now, 0))[0], now + CLAIM_SECONDS)
    return dropped


async def renew(holder: str, channel: str, *, limit: int) -> bool:
    """Keep a socket's place for another CLAIM_SECONDS; False when a newer socket has taken it."""
    now = time.time()
    if settings.REDIS_URL:
        try:
            return bool(await _eval(holder, now, limit, channel, "renew"))
        except shared_redis.unreachable():
            return True  # Redis down: the socket keeps its place
    claims = _claims_here.setdefault(holder, {})
    if channel not in claims:  # lost, or given away: back in only if there is room
        _drop_expired(claims, now)
        if len(claims) >= limit:
            return False
    claims[channel] = (claims.get(channel, (now, 0))[0], now + CLAIM_SECONDS)
    return True


async def release(holder: str, channel: str) -> None:
    if not settings.REDIS_URL:
        claims = _claims_here.get(holder, {})
        claims.pop(channel, None)
        if not claims:
            _claims_here.pop(holder, None)
        return
    try:
        async with shared_redis.async_client().pipeline(transaction=False) as pipeline:
            await pipeline.zrem(_key(holder), channel).zrem(_key(holder) + ":since", channel).execute()
    except shared_redis.unreachable():
        pass  # the claim expires by itself (CLAIM_SECONDS)


def _drop_expired(claims: dict[str, tuple[float, float]], now: float) -> None:
    """Only when a claim could stand in the way: a sweep on every heartbeat cost each renewal a pass over
    all of the holder's sockets."""
    for name in [name for name, (_, expiry) in claims.items() if expiry < now]:
        del claims[name]


async def _eval(holder: str, now: float, limit: int, channel: str, mode: str):
    keys = (_key(holder), _key(holder) + ":since")
    return await shared_redis.async_client().eval(
        CLAIM_SCRIPT, 2, *keys, now, now + CLAIM_SECONDS, limit, channel, CLAIM_SECONDS, mode
    )


def _key(holder: str) -> str:
    return f"pulseboard:sockets:{holder}"
