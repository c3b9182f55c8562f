"""Figures for the OneUptime mirror: a 5,000-note sync, and how fast an admin's save reaches OneUptime.

Real processes against the simulator over loopback: `sync --once` on a fresh database, and
`manage.py serve` (the poller delivers the outbox about once a second) behind the admin's own form.
"""

import contextlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.bench import databases, run
from tests.processes import free_port

BASE_DIR = Path(__file__).resolve().parent.parent
HUNG_SECONDS = 35  # past the Helix TeamHub client's 30 s read timeout


def bench_notes(base_env: dict[str, str]) -> None:
    from dashboard.simulators import oneuptime

    with oneuptime.serve(port=0, seed=5) as sim:
        sim.generate(incidents=200, notes=5000)
        env = base_env | {"ONEUPTIME_API_URL": sim.url, "ONEUPTIME_API_KEY": sim.api_key}
        env.pop("HTH_API_URL", None)
        for name, url in databases("notes"):
            if url is None:
                print(f"mirror 5,000 notes / 200 incidents, {name}: skipped (PostgreSQL is not running on 127.0.0.1:5432)")
                continue
            run(["migrate", "--noinput"], env | {"DATABASE_URL": url})
            started = time.perf_counter()
            run(["sync", "--once"], env | {"DATABASE_URL": url})
            elapsed = time.perf_counter() - started
            print(f"mirror 5,000 notes / 200 incidents, {name}: {elapsed:.1f} s for sync --once, {5000 / elapsed:,.0f} notes/s")
        print(f"  of which the simulator answering the same listing, with no database work: {simulator_seconds(sim):.1f} s")
        bench_admin_save(sim, env)
        bench_admin_save(sim, env, rounds=10, hung_hth=True)


def simulator_seconds(sim) -> float:
    """How long the simulator alone takes to serve every page the sync reads (it sorts 5,000 notes per page)."""
    session = requests.Session()
    session.headers["ApiKey"] = sim.api_key
    started = time.perf_counter()
    for resource, select in (
        ("incident", {"title": True, "updatedAt": True}),
        ("incident-public-note", {"note": True, "updatedAt": True}),
    ):
        skip = 0
        while True:
            body = {"select": select, "sort": {"updatedAt": "ASC", "_id": "ASC"}}
            page = session.post(f"{sim.url}/{resource}/get-list", params={"skip": skip, "limit": 100}, json=body).json()["data"]
            if not page:
                break
            skip += len(page)
    return time.perf_counter() - started


def bench_admin_save(sim, env: dict[str, str], rounds: int = 20, hung_hth: bool = False) -> None:
    """With `hung_hth`, Helix TeamHub is configured too and answers nothing for longer than the client's
    read timeout, all the time: the outbox must not wait behind it (issue 11, point 6)."""
    from dashboard.simulators import hth

    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-"))
    env = env | {"DATABASE_URL": f"sqlite:///{scratch / 'admin.sqlite3'}", "DJANGO_SUPERUSER_PASSWORD": "bench pass phrase"}
    run(["migrate", "--noinput"], env)
    run(["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"], env)
    run(["sync", "--once"], env)
    with contextlib.ExitStack() as stack:
        if hung_hth:
            hung = stack.enter_context(hth.serve(port=0, seed=9))
            hung.delay = HUNG_SECONDS
            env |= {"HTH_API_URL": hung.url, "HTH_COMPANY_KEY": hung.company_key, "HTH_ACCOUNT_KEY": hung.account_key}
        save_rounds(sim, env, rounds, "while Helix TeamHub hangs" if hung_hth else "")
    shutil.rmtree(scratch, ignore_errors=True)


def save_rounds(sim, env: dict[str, str], rounds: int, condition: str) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        site = f"http://127.0.0.1:{port}"
        browser = log_in(site)
        note_id = next(iter(sim.notes))
        change_url = f"{site}/admin/dashboard/incidentnote/{local_pk(env, note_id)}/change/"
        delays = []
        for round_number in range(rounds):
            time.sleep(random.random())  # land anywhere in the poller's cycle, not just after its last tick
            form = admin_form(browser, change_url)
            text = f"Bench edit {round_number}: mitigation holding, next update in 15 minutes."
            form["note"] = text
            started = time.perf_counter()
            response = browser.post(change_url, data=form, headers={"Referer": change_url})
            response.raise_for_status()
            while sim.notes[note_id]["note"] != text:
                if time.perf_counter() - started > 30:
                    raise SystemExit("an admin save did not reach the simulator within 30 s")
                time.sleep(0.005)
            delays.append(time.perf_counter() - started)
        delays.sort()
        print(
            f"admin save -> visible in OneUptime (simulator){' ' + condition if condition else ''}, {rounds} saves:"
            f" median {statistics.median(delays) * 1000:.0f} ms, min {delays[0] * 1000:.0f} ms,"
            f" max {delays[-1] * 1000:.0f} ms (the poller sends the outbox every 0.5 s)"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its Helix TeamHub job waits out a hung request before it stops
            server.kill()
            server.wait()


def log_in(site: str) -> requests.Session:
    browser = requests.Session()
    for _ in range(100):
        try:
            page = browser.get(f"{site}/admin/login/", timeout=5)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    browser.post(
        f"{site}/admin/login/",
        data={"csrfmiddlewaretoken": token, "username": "admin", "password": "bench pass phrase", "next": "/admin/"},
        headers={"Referer": f"{site}/admin/login/"},
    ).raise_for_status()
    return browser


def admin_form(browser: requests.Session, url: str) -> dict[str, str]:
    """The change form's fields as the admin's page sends them (hidden ones included)."""
    page = browser.get(url).text
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    fields = {name: value for name, value in fields.items() if not name.startswith("_")}
    for name, value in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        fields[name] = value.strip("\n")
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        fields[name] = chosen.group(1) if chosen else ""
    fields["_save"] = "Save"
    return fields


def local_pk(env: dict[str, str], upstream_id: str) -> str:
    script = f"from dashboard.models import IncidentNote; print(IncidentNote.objects.get(upstream_id='{upstream_id}').pk)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


if __name__ == "__main__":
    import os

    bench_notes(os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": "bench-only"})
