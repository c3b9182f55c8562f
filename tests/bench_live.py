"""`make bench`, live part: how fast and how far the wall's live updates go, with the demo's setup.

1. Bump → DOM: a progress bump in the simulator until the wall's progress bar changes in chromium,
   through `manage.py serve` (daphne with the poller inside), at the default refresh and at 0.5 s.
2. Fan-out and connect storms: see tests/bench_fanout.py.
3. Wall DOM and JS heap after 50 and after 5,000 pushed wall fragments, to show whether a wall that
   runs for weeks grows.

Every server is a real process on a scratch SQLite database, fed by the Helix TeamHub simulator over
loopback. Sections 2 and 3 need Redis (channels_redis), 1 and 3 need Debian's chromium.
"""

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from tests.processes import BASE_DIR, free_port, wait_for_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--js-flags=--expose-gc",  # window.gc(), so heap figures are live objects, not garbage not yet collected
    "--enable-precise-memory-info",  # otherwise performance.memory is rounded
]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")  # the bench's own database: flushed before each server
HISTORY = 600  # events the simulator starts with, as in `make demo`
DEFAULT_REFRESH_SECONDS = 3.0  # LIVE_REFRESH_SECONDS's default in config/settings.py
BUMPS = 20
FAN_OUT_SIZES = (100, 1_000, 5_000)
# Concurrent handshakes. Each connect joins groups in Redis, and redis-py 8's asyncio pool (which
# channels_redis uses) holds at most 100 connections per process: past that, connects fail with HTTP 500.
CONNECT_BATCH = 50
CONNECT_BUDGET_SECONDS = 240  # per server: past this, print how many clients were reached
FAN_OUT_WAIT_SECONDS = 10
# channels_redis queues at most `capacity` (100) messages per daphne process and drops the rest,
# so the wall's pushes go in batches that stay under it, each waited for in the page.
PUSH_BATCH = 50
WALL_PUSHES = (50, 5_000)
WALL_GROUP_MARKER = 'id="wall-builds"'


def main() -> None:
    print("\n== Live updates (tests/bench_live.py) ==")
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-live-"))
    results: dict = {}
    try:
        from dashboard.simulators import hth

        with hth.serve(port=0, seed=7) as sim:
            sim.generate(HISTORY)
            env = server_env(sim, database_url=f"sqlite:///{scratch / 'live.sqlite3'}")
            manage(["migrate", "--noinput"], env)
            setup_django(env)
            browser_missing = missing_browser()
            redis_missing = missing_redis()

            print(f"\n-- 1. Bump → DOM latency: simulator progress bump until the wall's progress bar changes ({BUMPS} bumps) --")
            if browser_missing:
                print(f"skipped: {browser_missing}")
            else:
                results["latency"] = bump_to_dom(sim, env, scratch)

            print("\n-- 3. Wall DOM and JS heap after many pushes --")
            if browser_missing or redis_missing:
                print(f"skipped: {browser_missing or redis_missing}")
            else:
                results["wall"] = wall_growth(sim, env, scratch)
        print_summary(results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---- processes ----


def server_env(sim, *, database_url: str) -> dict[str, str]:
    """The environment every server and command of this bench gets: the demo's defaults, our simulator."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "LIVE_REFRESH_SECONDS", "POLL_INTERVAL_SECONDS")
    }
    return env | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "bench",
        "DJANGO_DEBUG": "true",  # static files without collectstatic
        "DATABASE_URL": database_url,
        "HTH_API_URL": sim.url,
        "HTH_COMPANY_KEY": sim.company_key,
        "HTH_ACCOUNT_KEY": sim.account_key,
    }


def setup_django(env: dict[str, str]) -> None:
    """The bench process renders wall fragments itself, so it reads the servers' database."""
    for name in ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DATABASE_URL"):
        os.environ[name] = env[name]
    import django

    django.setup()


def manage(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def kiosk_link(env: dict[str, str], base_url: str) -> str:
    return manage(["wall_link", "Bench", "--new-key", "--base-url", base_url], env).strip().splitlines()[-1]


@contextmanager
def running(args: list[str], *, env: dict[str, str], log: Path):
    """A server process on a free port. Its output goes to a file: a full pipe would stall daphne."""
    port = free_port()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, *[arg.replace("{port}", str(port)) for arg in args]],
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_for_port(port, process, timeout=60)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{log.read_text()[-2000:]}") from None
            yield process, port
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pulseboard(*extra: str) -> list[str]:
    return ["manage.py", "serve", "--port", "{port}", *extra]


# -v 0: no access log, as `serve` has none (a line per connect would cost the bare server time).
BARE_DAPHNE = ["-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", "{port}", "tests.bench_echo:application"]


def missing_browser() -> str:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return ""


def missing_redis() -> str:
    if not shutil.which("redis-cli"):
        return "redis-cli is not installed, so Redis is taken as not running"
    ping = subprocess.run(["redis-cli", "-u", REDIS_URL, "ping"], capture_output=True, text=True)
    if ping.stdout.strip() != "PONG":
        return "Redis is not running on 127.0.0.1:6379"
    try:
        import psutil  # noqa: F401
        import websockets  # noqa: F401
    except ImportError:
        return "websockets and psutil are not installed (pip install -e '.[dev]')"
    return ""


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_wall(browser, url: str):
    # The page's CSP forbids eval, which Playwright's wait_for_function uses to poll our conditions.
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    page.goto(url)
    page.wait_for_selector('#connection[data-state="live"]', timeout=30_000)
    return page


def flush_redis() -> None:
    """Groups outlive a killed server in Redis; a fresh start keeps old members out of the figures."""
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)


# ---- 1. bump → DOM ----

# Records when the bumped value lands: the tile changes in place (live.js morphs it), so watch attributes too.
OBSERVE_PROGRESS = """([build, progress]) => {
    window.__benchSeen = null;
    const selector = `#wall-builds [data-event-id="${build}"] [data-progress="${progress}"]`;
    const observer = new MutationObserver(() => {
        if (document.querySelector(selector)) {
            window.__benchSeen = performance.timeOrigin + performance.now();
            observer.disconnect();
        }
    });
    observer.observe(document.body, {childList: true, subtree: true, attributes: true});
}"""


def bump_to_dom(sim, env: dict[str, str], scratch: Path) -> dict[str, list[float]]:
    results = {}
    with chromium() as browser:
        for refresh in (None, 0.5):
            label = f"refresh {refresh:g} s" if refresh else f"refresh {DEFAULT_REFRESH_SECONDS:g} s (default)"
            build = sim.start_build(project="luotsi", repository="chef", name="Bench")  # before serve: its first sync sees it
            run_env = env | ({"LIVE_REFRESH_SECONDS": str(refresh)} if refresh else {})
            with running(pulseboard(), env=run_env, log=scratch / "serve-latency.log") as (_, port):
                page = open_wall(browser, kiosk_link(env, f"http://127.0.0.1:{port}"))
                page.wait_for_selector(f'#wall-builds [data-event-id="{build}"]', timeout=60_000)
                latencies = bump_latencies(page, sim, build, cadence=refresh or DEFAULT_REFRESH_SECONDS)
                page.close()
            sim.set_progress(build, 100)
            results[label] = latencies
            print(
                f"{label:<26} median {statistics.median(latencies):6,.0f} ms   p95 {p95(latencies):6,.0f} ms   "
                f"min {min(latencies):,.0f}   max {max(latencies):,.0f}"
            )
    return results


def bump_latencies(page, sim, build: str, *, cadence: float) -> list[float]:
    """Each bump waits a random part of the poller's cycle first: bumping right after the last push
    would always land just after a refresh and measure the worst case every time."""
    rng = random.Random(1)
    latencies = []
    for bump in range(1, BUMPS + 1):
        progress = 4 * bump
        page.evaluate(OBSERVE_PROGRESS, [build, progress])
        time.sleep(rng.uniform(0, cadence))
        bumped = time.time() * 1000
        sim.set_progress(build, progress)
        page.wait_for_function("window.__benchSeen !== null", timeout=30_000)
        latencies.append(page.evaluate("window.__benchSeen") - bumped)
    return latencies


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


# ---- 3. wall DOM and heap ----

COUNT_WALL_PUSHES = f"""() => {{
    window.__benchPushes = 0;
    window.__benchCloses = 0;
    document.addEventListener("htmx:wsAfterMessage", event => {{
        if (event.detail.message.includes('{WALL_GROUP_MARKER}')) window.__benchPushes += 1;
    }});
    document.addEventListener("htmx:wsClose", () => {{ window.__benchCloses += 1; }});
}}"""
PAGE_SIZE = """() => {
    window.gc();
    return {
        elements: document.getElementsByTagName("*").length,
        heap: performance.memory.usedJSHeapSize,
        closes: window.__benchCloses,
    };
}"""


def wall_growth(sim, env: dict[str, str], scratch: Path) -> list[dict]:
    from dashboard.live import push

    for progress in (20, 45, 70):  # running builds, so the pushed panels are the full kind
        sim.set_progress(sim.start_build(), progress)
    manage(["sync", "--once"], env)
    started = time.perf_counter()
    fragments = wall_fragments(WALL_PUSHES[-1])
    print(
        f"rendered {len(fragments):,} wall fragments ({len(fragments[0]):,} bytes each) in {time.perf_counter() - started:.0f} s"
    )
    manage(["sync", "--once"], env)  # again: rendering takes minutes, and a wall says "stale" once the last sync is old

    flush_redis()
    rows = []
    redis_env = env | {"REDIS_URL": REDIS_URL}
    with (
        running(pulseboard("--no-poll"), env=redis_env, log=scratch / "serve-wall.log") as (_, port),
        chromium() as browser,
        PushLoop() as pusher,
    ):
        page = open_wall(browser, kiosk_link(env, f"http://127.0.0.1:{port}"))
        page.evaluate(COUNT_WALL_PUSHES)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        sent, started = 0, time.perf_counter()
        for target in WALL_PUSHES:
            while sent < target:
                batch = fragments[sent : min(sent + PUSH_BATCH, target)]
                pusher.send(push.wall_group("", 1.0), batch)
                sent += len(batch)
                page.wait_for_function(f"window.__benchPushes >= {sent}", timeout=60_000)
            size = page.evaluate(PAGE_SIZE)
            metrics = {metric["name"]: metric["value"] for metric in cdp.send("Performance.getMetrics")["metrics"]}
            row = {
                "pushes": sent,
                "elements": size["elements"],
                "nodes": int(metrics["Nodes"]),
                "listeners": int(metrics["JSEventListeners"]),
                "heap_mb": size["heap"] / 2**20,
                "rate": sent / (time.perf_counter() - started),
                "closes": size["closes"],
            }
            row["heap_by_kind"] = heap_by_kind(cdp)
            rows.append(row)
            print(
                f"after {row['pushes']:>5,} pushes: {row['elements']:,} elements in the document, {row['nodes']:,} DOM nodes alive"
                f" (CDP), {row['listeners']:,} JS listeners, JS heap used {row['heap_mb']:.1f} MB"
                f"   ({row['rate']:,.0f} pushes/s so far, socket closed {row['closes']} times)"
            )
        page.close()
    print_heap_growth(rows[0], rows[-1])
    return rows


# Chromium keeps these for the Performance Timeline, each kind up to a limit of its own (long animation
# frames and long tasks 200 entries, resource timings 250): they fill, then stop. A bench that pushes
# 50 fragments in one frame makes a long frame of each batch.
TIMELINE_KINDS = ("Performance", "blink::ScriptTimingInfo", "TaskAttributionTiming", "LayoutShift")


def heap_by_kind(cdp) -> Counter:
    """Bytes of the page's heap by object kind (a heap snapshot, after a collection)."""
    chunks: list[str] = []
    cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda event: chunks.append(event["chunk"]))
    cdp.send("HeapProfiler.enable")
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    snapshot = json.loads("".join(chunks))
    fields = snapshot["snapshot"]["meta"]["node_fields"]
    name, size, step = fields.index("name"), fields.index("self_size"), len(fields)
    nodes, strings = snapshot["nodes"], snapshot["strings"]
    sizes: Counter = Counter()
    for offset in range(0, len(nodes), step):
        sizes[strings[nodes[offset + name]]] += nodes[offset + size]
    return sizes


def print_heap_growth(first: dict, last: dict) -> None:
    growth = last["heap_by_kind"] - first["heap_by_kind"]
    timeline = sum(size for kind, size in growth.items() if kind.startswith(TIMELINE_KINDS))
    total = (last["heap_mb"] - first["heap_mb"]) * 2**20
    print(
        f"JS heap growth from {first['pushes']:,} to {last['pushes']:,} pushes: {total / 1024:+,.0f} KB"
        f" ({total / (first['heap_mb'] * 2**20):+.1%}); of it Chromium's performance timeline (long animation frames,"
        f" long tasks, resource timings, each capped by the browser) {timeline / 1024:+,.0f} KB; the rest"
        f" {(total - timeline) / 1024:+,.0f} KB ({(total - timeline) / (first['heap_mb'] * 2**20):+.1%})"
    )


def wall_fragments(count: int) -> list[str]:
    """The wall's real pushed panels, one second apart, so each differs as a live wall's would."""
    from django.utils import timezone

    from dashboard.web import pages

    start = timezone.now()
    parts = ["wall-builds", "wall-activity", "wall-strip-builds", "wall-status"]
    return [
        pages.render_parts(pages.WALL, parts, pages.wall_context(screen=None, now=start + timedelta(seconds=i)))
        for i in range(count)
    ]


class PushLoop:
    """group_send from a thread of its own: Playwright's sync API keeps an event loop in this one."""

    def __enter__(self):
        from channels_redis.core import RedisChannelLayer

        self.layer = RedisChannelLayer(hosts=[REDIS_URL])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="bench-push", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        self.loop.run_forever()
        self.loop.close()  # here too: channels_redis flushes on close by running this loop once more

    def send(self, group: str, fragments: list[str]) -> None:
        asyncio.run_coroutine_threadsafe(self._send(group, fragments), self.loop).result()

    async def _send(self, group: str, fragments: list[str]) -> None:
        for html in fragments:
            await self.layer.group_send(group, {"type": "fragment", "html": html, "meta": None, "skip": "", "group": group})

    def __exit__(self, *exc_info):
        asyncio.run_coroutine_threadsafe(self.layer.close_pools(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


# ---- summary ----


def print_summary(results: dict) -> None:
    print("\n-- Summary --")
    for label, latencies in results.get("latency", {}).items():
        print(
            f"bump → DOM, {label}: median {statistics.median(latencies):,.0f} ms, p95 {p95(latencies):,.0f} ms ({len(latencies)} bumps)"
        )
    for row in results.get("wall", []):
        print(
            f"wall after {row['pushes']:,} pushes: {row['elements']:,} elements, {row['nodes']:,} nodes, JS heap {row['heap_mb']:.1f} MB"
        )
    if not results:
        print("nothing measured (see the skips above)")


if __name__ == "__main__":
    main()
