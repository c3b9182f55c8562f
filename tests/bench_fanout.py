"""`make bench`, fan-out and connect storms (issue 11), on every channel layer Pulseboard can use.

1. Fan-out: one fragment to 100, 1,000 and 5,000 WebSocket clients of one daphne process, from the
   group_send to the last client's receipt, for Pulseboard's consumer, a bare one and a lean one (the
   bare one without Channels' database hop per message; tests/bench_echo.py) in the same run, on the
   in-memory layer, channels_redis's core layer and its pub/sub layer. The send comes from inside the
   server (bench_echo's trigger socket), so the in-memory layer is measured too.
2. Connect storm: 5,000 walls, each with its own kiosk key, connecting at once (a deploy, a network
   blip): time until the last one has its snapshot, and the server's memory.

The clients run on the same machine as the server: their own work is inside every figure.
Run one part alone with `python -m tests.bench_fanout fan-out` or `... storm`.
"""

import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from dashboard.poller import server
from tests import bench_live
from tests.bench_live import REDIS_URL, flush_redis, kiosk_link, manage, missing_redis, running, server_env, setup_django

SIZES = (100, 1_000, 5_000)
SUSTAINED, SUSTAINED_GAP = 60, 0.5  # fragments, seconds apart, to the largest number of clients
STORM = 5_000
CONNECT_BATCH = 100
WAIT_SECONDS = 20
CONNECT_BUDGET_SECONDS = 300
LAYERS = {  # name → environment: no REDIS_URL means the in-memory layer
    "in-memory": {},
    "redis core": {"REDIS_URL": REDIS_URL, "REDIS_CHANNEL_LAYER": "core"},
    "redis pubsub": {"REDIS_URL": REDIS_URL, "REDIS_CHANNEL_LAYER": "pubsub"},
}


def daphne(app: str) -> list[str]:
    # As `serve` runs daphne (dashboard/poller/server.py): no access log, its listen backlog and handshake time.
    endpoint = f"tcp:port={{port}}:interface=127.0.0.1:backlog={server.LISTEN_BACKLOG}"
    timeout = str(server.HANDSHAKE_SECONDS)
    return ["-m", "daphne", "-v", "0", "--websocket_connect_timeout", timeout, "-e", endpoint, f"tests.bench_echo:{app}"]


def main(parts=("fan-out", "storm")) -> None:
    print("\n== Fan-out and connect storms (tests/bench_fanout.py; shared 2-core machine, figures are noisy) ==")
    if missing := missing_redis():
        print(f"Redis layers skipped: {missing}")
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-fanout-"))
    try:
        run_parts(parts, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_parts(parts, scratch: Path) -> None:
    from dashboard.simulators import hth

    missing = missing_redis()
    with hth.serve(port=0, seed=7) as sim:
        sim.generate(bench_live.HISTORY)
        env = server_env(sim, database_url=f"sqlite:///{scratch / 'fanout.sqlite3'}")
        env |= {"DJANGO_DEBUG": "false", "LIVE_MAX_SOCKETS_PER_KEY": "100000", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
        manage(["migrate", "--noinput"], env)
        manage(["sync", "--once"], env)
        setup_django(env)
        layers = {name: extra for name, extra in LAYERS.items() if not (extra and missing)}
        if "fan-out" in parts:
            print("\n-- 1. Fan-out: group_send inside the server → last client's receipt --")
            results = {}
            for layer, extra in layers.items():
                for consumer in ("pulseboard", "bare", "lean"):
                    results[layer, consumer] = run_fan_out(env | extra, consumer, scratch)
            print_table(results)
        if "storm" in parts:
            print(f"\n-- 2. Connect storm: {STORM:,} walls connect at once; time until the last has its snapshot --")
            for layer in ("in-memory", "redis core"):
                if layer in layers:
                    run_storm(env | layers[layer], layer, scratch)


def run_fan_out(env: dict[str, str], consumer: str, scratch: Path) -> list[tuple[int, int, float | None]]:
    from dashboard.live import push
    from tests import bench_echo

    app, group = {
        "pulseboard": ("pulseboard", push.wall_group("", 1.0)),
        "bare": ("application", bench_echo.GROUP),
        "lean": ("lean", bench_echo.GROUP),
    }[consumer]
    if env.get("REDIS_URL"):
        flush_redis()
    with running(daphne(app), env=env, log=scratch / f"fan-out-{consumer}.log") as (process, port):
        url = f"ws://127.0.0.1:{port}/ws/live/?page=wall&screen={screen_key(env, port)}"
        rows, sustained = asyncio.run(fan_out(port, url, group, snapshot=consumer == "pulseboard"))
    layer = env.get("REDIS_CHANNEL_LAYER", "in-memory")
    for size, reached, elapsed in rows:
        print(f"{layer:<10} {consumer:<10} {size:>6,} clients: {ms(elapsed)} to the last ({reached:,} got it)", flush=True)
    if sustained:
        sustained.sort()
        print(
            f"{layer:<10} {consumer:<10} {len(sustained)} more fragments to {SIZES[-1]:,}, {SUSTAINED_GAP} s apart:"
            f" p50 {ms(sustained[len(sustained) // 2])}, p95 {ms(sustained[int(len(sustained) * 0.95)])},"
            f" worst {ms(sustained[-1])}",
            flush=True,
        )
    return rows


def screen_key(env: dict[str, str], port: int) -> str:
    return kiosk_link(env, f"http://127.0.0.1:{port}").rsplit("key=", 1)[1]


async def fan_out(port: int, url: str, group: str, *, snapshot: bool) -> tuple[list[tuple[int, int, float | None]], list[float]]:
    """The figure per size, then (for Pulseboard) a run of fragments at the largest: one figure can hide
    the pause of a full garbage collection, a run shows how often it comes."""
    from websockets.asyncio.client import connect

    origin = f"http://127.0.0.1:{port}"
    arrivals: dict = {}
    sockets, listeners, rows = [], [], []

    async def listen(socket):
        async for message in socket:
            if 'id="bench"' in message:
                arrivals[socket] = time.perf_counter()

    async def connect_one():
        socket = await connect(url, origin=origin, proxy=None, compression=None, ping_interval=None, open_timeout=120)
        if snapshot:
            await socket.recv()
        return socket

    trigger = await connect(f"ws://127.0.0.1:{port}/ws/bench-trigger/", origin=origin, proxy=None, ping_interval=None)
    started, refused = time.perf_counter(), 0
    for size in SIZES:
        while len(sockets) < size and time.perf_counter() - started < CONNECT_BUDGET_SECONDS:
            batch = await asyncio.gather(
                *(connect_one() for _ in range(min(CONNECT_BATCH, size - len(sockets)))), return_exceptions=True
            )
            opened = [socket for socket in batch if not isinstance(socket, BaseException)]
            refused += len(batch) - len(opened)
            sockets += opened
            listeners += [asyncio.create_task(listen(socket)) for socket in opened]
        if refused:
            print(f"  ({refused:,} connects failed so far)", flush=True)
        size = len(sockets)
        await asyncio.sleep(1)  # let the last connects' work settle
        arrivals.clear()
        sent = time.perf_counter()
        await trigger.send(json.dumps([group, f'<!--seq {group} {size}--><span id="bench">to {size} clients</span>']))
        while len(arrivals) < size and time.perf_counter() - sent < WAIT_SECONDS:
            await asyncio.sleep(0.005)
        rows.append((size, len(arrivals), max(arrivals.values()) - sent if arrivals else None))
    sustained = []
    for number in range(SUSTAINED if snapshot else 0):
        await asyncio.sleep(SUSTAINED_GAP)
        arrivals.clear()
        sent = time.perf_counter()
        await trigger.send(json.dumps([group, f'<!--seq {group} {len(sockets) + 1 + number}--><span id="bench">again</span>']))
        while len(arrivals) < len(sockets) and time.perf_counter() - sent < WAIT_SECONDS:
            await asyncio.sleep(0.005)
        sustained.append(max(arrivals.values()) - sent if arrivals else WAIT_SECONDS)
    for socket in [trigger, *sockets]:
        socket.transport.abort()
    for listener in listeners:
        listener.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    return rows, sustained


def run_storm(env: dict[str, str], layer: str, scratch: Path) -> None:
    import psutil

    if env.get("REDIS_URL"):
        flush_redis()
    keys = wall_keys(STORM)
    with running(daphne("pulseboard"), env=env, log=scratch / "storm.log") as (process, port):
        urls = [f"ws://127.0.0.1:{port}/ws/live/?page=wall&screen={key}" for key in keys]
        memory = psutil.Process(process.pid)
        before = memory.memory_info().rss / 2**20
        elapsed, reached, failed = asyncio.run(storm(port, urls))
        after = memory.memory_info().rss / 2**20
    print(
        f"{layer:<12} {reached:,}/{STORM:,} walls had their snapshot after {elapsed:.1f} s ({failed:,} failed);"
        f" server RSS {before:,.0f} MB before, {after:,.0f} MB with {reached:,} walls open",
        flush=True,
    )


def wall_keys(count: int) -> list[str]:
    """A screen (and kiosk key) per wall, as a company's TVs have."""
    from django.db import transaction
    from django.utils import timezone

    from dashboard.live import screens
    from dashboard.models import Screen

    with transaction.atomic():
        keys = [screens.screen_named(f"Storm {number}", new_key=True).key for number in range(count)]
        # They were on the air until a moment ago (the deploy): no "last seen" write is due on reconnect.
        Screen.objects.filter(name__startswith="Storm ").update(last_seen_at=timezone.now())
    return keys


async def storm(port: int, urls: list[str]) -> tuple[float, int, int]:
    from websockets.asyncio.client import connect

    async def wall(url):
        socket = await connect(
            url, origin=f"http://127.0.0.1:{port}", proxy=None, compression=None, ping_interval=None, open_timeout=120
        )
        await socket.recv()  # the snapshot
        return socket

    started = time.perf_counter()
    results = await asyncio.gather(*(wall(url) for url in urls), return_exceptions=True)
    elapsed = time.perf_counter() - started
    sockets = [socket for socket in results if not isinstance(socket, BaseException)]
    errors = Counter(f"{type(error).__name__}: {error}"[:120] for error in results if isinstance(error, BaseException))
    for error, count in errors.most_common(3):
        print(f"  {count:,} × {error}")
    for socket in sockets:
        socket.transport.abort()
    return elapsed, len(sockets), len(urls) - len(sockets)


def ms(value: float | None) -> str:
    return "never" if value is None else f"{value * 1000:,.0f} ms"


def print_table(results: dict) -> None:
    """Pulseboard against the bare consumer, and against the lean one (bare without the database hop)."""
    print(f"\n{'layer':<13} {'clients':>7} | {'pulseboard':>11} | {'bare':>9} | ratio | {'lean':>9} | ratio")
    for layer in LAYERS:
        rows = zip(*(results.get((layer, consumer), []) for consumer in ("pulseboard", "bare", "lean")), strict=False)
        for (size, reached, elapsed), *others in rows:
            line = f"{layer:<13} {size:>7,} | {ms(elapsed):>11}"
            for _, _, other in others:
                line += f" | {ms(other):>9} | " + (f"{elapsed / other:.2f}x" if elapsed and other else "-")
            if reached < size or any(other_reached < size for _, other_reached, _ in others):
                line += "  (reached " + " / ".join(f"{row[1]:,}" for row in [(size, reached, elapsed), *others]) + ")"
            print(line)


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("fan-out", "storm"))
