"""`make bench`, hooks part (issue 12): how much sooner a change reaches the wall with webhooks, and how
fast the receivers answer under load.

1. Upstream change → wall DOM in chromium, 20 of each, without hooks and with them, through
   `manage.py serve` (daphne with the poller inside) at the default cadences (POLL_INTERVAL_SECONDS
   30, LIVE_REFRESH_SECONDS 3):
   - a progress bump: a bot's PUT through pulseboard-build's API (with hooks it also forwards the answer);
   - a new push: the simulator's newer Webhook fires with hooks; without, the next list pass finds it;
   - a note edit: the simulator's OneUptime workflow fires with hooks; without, the next notes pass.
   Each change waits a random part of the poller's cycle first, as in bench_live; pushes are
   independent, so the 20 of a run are spread at random over two cycles and timed one by one.
2. Hook request → 2xx: 50 requests a second for 20 s at POST /hooks/hth/ and /hooks/oneuptime/ (Event
   arrays, signed Hooks, note ids) while the poller drains them, on SQLite and PostgreSQL.
"""

import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

from tests import bench, bench_live
from tests.bench_live import BASE_DIR, chromium, kiosk_link, manage, open_wall, p95, pulseboard, running

CHANGES = 20
POLL_INTERVAL = 30.0  # the defaults in config/settings.py
REFRESH = 3.0
HTH_SECRET = "bench-hth-secret"
ONEUPTIME_SECRET = "bench-oneuptime-secret"
LOAD_RATE = 50  # requests per second
LOAD_SECONDS = 20

OBSERVE = """(selector) => {
    window.__benchSeen = null;
    const observer = new MutationObserver(() => {
        if (document.querySelector(selector)) { window.__benchSeen = performance.timeOrigin + performance.now(); observer.disconnect(); }
    });
    observer.observe(document.body, {childList: true, subtree: true, attributes: true, characterData: true});
}"""
# The wall's card of the incident shows its latest note: wait for the edited text there.
OBSERVE_NOTE = """([noteId, text]) => {
    window.__benchSeen = null;
    const observer = new MutationObserver(() => {
        const note = document.querySelector(`#wall-incidents [data-note-id="${noteId}"]`);
        if (note && note.textContent.includes(text)) {
            window.__benchSeen = performance.timeOrigin + performance.now();
            observer.disconnect();
        }
    });
    observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}"""
# Every activity row that appears, with when: the pushes of one run are timed each on its own.
OBSERVE_ACTIVITY = """() => {
    window.__benchRows = {};
    const observer = new MutationObserver(() => {
        const now = performance.timeOrigin + performance.now();
        for (const row of document.querySelectorAll('#wall-activity [data-event-id]')) {
            window.__benchRows[row.dataset.eventId] ??= now;
        }
    });
    observer.observe(document.body, {childList: true, subtree: true});
    for (const row of document.querySelectorAll('#wall-activity [data-event-id]')) window.__benchRows[row.dataset.eventId] = 0;
}"""


def main() -> None:
    print("\n== Webhooks (tests/bench_hooks.py) ==")
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-hooks-"))
    try:
        print(f"\n-- 1. Upstream change → wall DOM, without and with hooks ({CHANGES} of each) --")
        if missing := bench_live.missing_browser():
            print(f"skipped: {missing}")
        else:
            change_to_dom(scratch)
        print(f"\n-- 2. Hook request → 2xx at {LOAD_RATE} requests/s for {LOAD_SECONDS} s --")
        for name, database_url in bench.databases("hooks"):
            if database_url is None:
                print(f"{name}: skipped (PostgreSQL is not running on 127.0.0.1:5432)")
                continue
            for layout in LAYOUTS:
                hook_load(name, database_url, scratch, layout=layout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sims():
    from contextlib import ExitStack

    from dashboard.simulators import hth, oneuptime

    stack = ExitStack()
    hth_sim = stack.enter_context(hth.serve(port=0, seed=12))
    oneuptime_sim = stack.enter_context(oneuptime.serve(port=0, seed=12))
    return stack, hth_sim, oneuptime_sim


def environment(hth_sim, oneuptime_sim, database_url: str, *, hooks: bool) -> dict[str, str]:
    env = bench_live.server_env(hth_sim, database_url=database_url) | {
        "ONEUPTIME_API_URL": oneuptime_sim.url,
        "ONEUPTIME_API_KEY": oneuptime_sim.api_key,
    }
    if hooks:
        env |= {"HTH_WEBHOOK_SECRET": HTH_SECRET, "ONEUPTIME_WEBHOOK_SECRET": ONEUPTIME_SECRET}
    return env


# ---- 1. change → DOM ----


def change_to_dom(scratch: Path) -> None:
    from dashboard.upstreams.hth.reporter import BuildApi

    results: dict[str, dict[str, list[float]]] = {}
    stack, hth_sim, oneuptime_sim = sims()
    with stack, chromium() as browser:
        hth_sim.generate(600)
        incident = oneuptime_sim.add_incident("Checkout errors")
        note = oneuptime_sim.add_note(incident["_id"], "Investigating")
        for mode in ("without hooks", "with hooks"):
            hooks = mode == "with hooks"
            database_url = f"sqlite:///{scratch / f'{mode.replace(" ", "-")}.sqlite3'}"
            env = environment(hth_sim, oneuptime_sim, database_url, hooks=hooks)
            manage(["migrate", "--noinput"], env)
            build = hth_sim.start_build(project="luotsi", repository="chef", name="Bench")
            with running(pulseboard(), env=env, log=scratch / f"serve-{mode}.log") as (_, port):
                base = f"http://127.0.0.1:{port}"
                if hooks:
                    hth_sim.add_webhook(f"{base}/hooks/hth/", {"X-Pulseboard-Secret": HTH_SECRET})
                    oneuptime_sim.add_workflow(f"{base}/hooks/oneuptime/", {"X-Pulseboard-Secret": ONEUPTIME_SECRET})
                api = BuildApi(
                    base_url=hth_sim.url,
                    company_key=hth_sim.company_key,
                    account_key=hth_sim.bot_account_key,
                    hook_url=f"{base}/hooks/hth/" if hooks else "",
                    hook_secret=HTH_SECRET if hooks else "",
                )
                page = open_wall(browser, kiosk_link(env, base))
                page.wait_for_selector(f'#wall-builds [data-event-id="{build}"]', timeout=60_000)
                page.wait_for_selector(f'#wall-incidents [data-note-id="{note["_id"]}"]', timeout=60_000)
                rng = random.Random(12)
                results[mode] = {
                    "progress bump": bumps(page, api, build, rng, cadence=0.5 if hooks else REFRESH),
                    "new push": pushes(page, hth_sim, rng, window=5.0 if hooks else 2 * POLL_INTERVAL),
                    "note edit": note_edits(page, oneuptime_sim, note["_id"], rng, cadence=0.5 if hooks else POLL_INTERVAL),
                }
                page.close()
                hth_sim.webhooks.clear()
                oneuptime_sim.workflows.clear()
            hth_sim.set_progress(build, 100)
            for kind, latencies in results[mode].items():
                print(f"{mode:<14} {kind:<14} {summary(latencies)}")
    print("\nSummary, change → wall DOM:")
    for kind in results["with hooks"]:
        print(f"  {kind:<14} without hooks {summary(results['without hooks'][kind])}")
        print(f"  {'':<14} with hooks    {summary(results['with hooks'][kind])}")


def bumps(page, api, build: str, rng: random.Random, *, cadence: float) -> list[float]:
    latencies = []
    for bump in range(1, CHANGES + 1):
        page.evaluate(OBSERVE, f'#wall-builds [data-event-id="{build}"] [data-progress="{4 * bump}"]')
        time.sleep(rng.uniform(0, cadence))
        changed = time.time() * 1000
        api.update(build, progress=4 * bump)
        page.wait_for_function("window.__benchSeen !== null", timeout=60_000)
        latencies.append(page.evaluate("window.__benchSeen") - changed)
    return latencies


def pushes(page, sim, rng: random.Random, *, window: float) -> list[float]:
    """Pushes at random moments over `window` (without hooks, two list passes), each timed on its own."""
    page.evaluate(OBSERVE_ACTIVITY)
    started = time.monotonic()
    pushed = {}
    for offset in sorted(rng.uniform(0, window) for _ in range(CHANGES)):
        time.sleep(max(0.0, started + offset - time.monotonic()))
        changed = time.time() * 1000
        item = sim.add_event(target="push", project="luotsi")  # with hooks, the Webhook is sent before this returns
        pushed[item["id"]] = changed
    ids = list(pushed)
    page.wait_for_function(f"{ids!r}.every(id => window.__benchRows[id])", timeout=120_000)
    seen = page.evaluate("window.__benchRows")
    return [seen[event_id] - pushed[event_id] for event_id in ids]


def note_edits(page, sim, note_id: str, rng: random.Random, *, cadence: float) -> list[float]:
    latencies = []
    for edit in range(1, CHANGES + 1):
        text = f"Bench edit {edit} {rng.random():.6f}"
        page.evaluate(OBSERVE_NOTE, [note_id, text])
        time.sleep(rng.uniform(0, cadence))
        changed = time.time() * 1000
        sim.edit_note(note_id, note=text)
        page.wait_for_function("window.__benchSeen !== null", timeout=120_000)
        latencies.append(page.evaluate("window.__benchSeen") - changed)
    return latencies


def summary(latencies: list[float]) -> str:
    return f"median {statistics.median(latencies):7,.0f} ms   p95 {p95(latencies):7,.0f} ms   max {max(latencies):7,.0f} ms"


# ---- 2. load ----


def hook_load(name: str, database_url: str, scratch: Path, *, layout: str = "serve") -> None:
    from dashboard.simulators.hth import hook_request

    stack, hth_sim, oneuptime_sim = sims()
    with stack:
        incident = oneuptime_sim.add_incident("Load")
        note_ids = [oneuptime_sim.add_note(incident["_id"], f"Note {i}")["_id"] for i in range(20)]
        env = environment(hth_sim, oneuptime_sim, database_url, hooks=True)
        manage(["migrate", "--noinput"], env)
        total = LOAD_RATE * LOAD_SECONDS
        pushes = [hth_sim.add_event(target="push") for _ in range(total // 3 + 1)]
        with servers(layout, env, scratch / f"load-{name}-{layout}.log") as port:
            base = f"http://127.0.0.1:{port}/hooks"
            requests_to_send = []
            for index in range(total):
                kind = index % 3
                if kind == 0:
                    body, headers = hth_sim.webhook_body([pushes[index // 3]]), {"X-Pulseboard-Secret": HTH_SECRET}
                    requests_to_send.append((f"{base}/hth/", body, headers | {"Content-Type": "application/json"}))
                elif kind == 1:
                    body, headers = hook_request(hth_sim.hook_payload(pushes[index // 3]), secret=HTH_SECRET)
                    requests_to_send.append((f"{base}/hth/", body, headers))
                else:
                    body = f'{{"data": {{"_id": "{note_ids[index % len(note_ids)]}"}}}}'.encode()
                    headers = {"X-Pulseboard-Secret": ONEUPTIME_SECRET, "Content-Type": "application/json"}
                    requests_to_send.append((f"{base}/oneuptime/", body, headers))
            timings, failures = send_at_rate(requests_to_send)
    print(
        f"{name:<10} {LAYOUTS[layout]:<34} {len(timings):,} of {total:,} answered 2xx: median {statistics.median(timings):5,.1f} ms, "
        f"p95 {p95(timings):5,.1f} ms, max {max(timings):6,.1f} ms; other answers: {failures or 'none'}"
    )


LAYOUTS = {"serve": "manage.py serve (one process)", "split": "daphne + manage.py poll (two)"}


@contextmanager
def servers(layout: str, env: dict[str, str], log: Path):
    """`serve` runs the poller inside daphne; `split` gives it a process of its own, as with Redis in production."""
    if layout == "serve":
        with running(pulseboard(), env=env, log=log) as (_, port):
            yield port
        return
    with running(pulseboard("--no-poll"), env=env, log=log) as (_, port):
        with open(log.with_suffix(".poll.log"), "w") as output:
            poller = subprocess.Popen(
                [sys.executable, "manage.py", "poll"], cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT
            )
            try:
                yield port
            finally:
                bench_live.stop(poller)


def send_at_rate(to_send: list[tuple[str, bytes, dict]]) -> tuple[list[float], dict]:
    """Open loop: request i leaves at i / LOAD_RATE seconds whatever the answers before it took."""
    local = threading.local()
    timings, failures, lock = [], {}, threading.Lock()
    started = time.monotonic() + 0.5

    def send(index: int) -> None:
        url, body, headers = to_send[index]
        time.sleep(max(0.0, started + index / LOAD_RATE - time.monotonic()))
        session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
        begun = time.perf_counter()
        try:
            status = session.post(url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        elapsed = (time.perf_counter() - begun) * 1000
        with lock:
            if isinstance(status, int) and 200 <= status < 300:
                timings.append(elapsed)
            else:
                failures[status] = failures.get(status, 0) + 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(len(to_send))))
    return timings, failures


if __name__ == "__main__":
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    main()
