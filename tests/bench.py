"""`make bench`: the figures the issues ask for, printed (never asserted: timing is not a test).

Each figure runs the real command in a fresh process against a fresh database and the simulator
over loopback, so it includes Django's start-up (about half a second). The live figures (latency,
the wall's memory) are in tests/bench_live.py, fan-out and connect storms in tests/bench_fanout.py,
the read side at 1,000,000 events (PostgreSQL, with DATABASE_URL) in tests/bench_scale.py, pipelines (the wall's
layout shift, and 2,000 pipelines at 1,000,000 events) in tests/bench_pipelines.py, the webhook figures in
tests/bench_hooks.py, refused bodies in tests/bench_bodies.py, failover in tests/bench_failover.py, memory with a
huge note and the conflict diff in tests/bench_bounds.py, incidents' durations and /insights/ in
tests/bench_incidents.py.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
POSTGRES = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    from tests import (
        bench_bodies,
        bench_fanout,
        bench_faults,
        bench_hooks,
        bench_live,
        bench_notes,
        bench_pipelines,
        bench_scale,
    )

    print("== Helix TeamHub events ==")
    bench_events()
    print("\n== OneUptime notes ==")
    bench_notes.bench_notes(dict(os.environ))
    bench_incidents()
    bench_scale.main()
    bench_pipelines.main()
    bench_live.main()
    bench_fanout.main()
    bench_hooks.main()
    bench_bodies.main()
    print("\n== Fault injection ==")
    bench_faults.bench_faults(dict(os.environ))
    print("\n== Failover ==")
    bench_failover()
    print("\n== Bounded work: a huge note, the conflict diff ==")
    from tests import bench_bounds

    bench_bounds.bench_huge_note()
    bench_bounds.bench_diff()


def bench_events() -> None:
    from dashboard.simulators import hth

    with hth.serve(port=0, seed=3) as sim:
        sim.generate(10_000)
        for name, database_url in databases("events"):
            if database_url is None:
                print(f"backfill 10,000 events, {name}: skipped (PostgreSQL is not running on 127.0.0.1:5432)")
                continue
            env = os.environ | {
                "DATABASE_URL": database_url,
                "HTH_API_URL": sim.url,
                "HTH_COMPANY_KEY": sim.company_key,
                "HTH_ACCOUNT_KEY": sim.account_key,
                "HTH_BACKFILL_EVENTS": "10000",
            }
            run(["migrate", "--noinput"], env)
            started = time.perf_counter()
            run(["sync", "--once"], env)
            elapsed = time.perf_counter() - started
            print(f"backfill 10,000 events, {name}: {elapsed:.1f} s for sync --once, {10_000 / elapsed:,.0f} events/s")
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-"))
    subprocess.run(
        [sys.executable, "-m", "tests.bench_refresh", f"sqlite:///{scratch / 'refresh.sqlite3'}"], cwd=BASE_DIR, check=True
    )
    shutil.rmtree(scratch, ignore_errors=True)


def bench_incidents() -> None:
    """Durations, /insights/ and "what changed just before" at 10,000 incidents (tests/bench_incidents.py)."""
    for name, database_url in databases("incidents"):
        if database_url is None:
            print(f"incidents, {name}: skipped (PostgreSQL is not running on 127.0.0.1:5432)")
            continue
        subprocess.run([sys.executable, "-m", "tests.bench_incidents", database_url], cwd=BASE_DIR, check=True)


def bench_failover() -> None:
    """SIGKILL of the polling `serve` to the next sync by another one (PostgreSQL only: SQLite has no lock)."""
    database_url = list(databases("failover"))[1][1]
    if database_url is None:
        print("failover: skipped (PostgreSQL is not running on 127.0.0.1:5432)")
        return
    subprocess.run([sys.executable, "-m", "tests.bench_failover", database_url], cwd=BASE_DIR, check=True)


def databases(label: str):
    """A fresh SQLite file, then a fresh PostgreSQL database (None when PostgreSQL is not running)."""
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-"))
    yield "SQLite", f"sqlite:///{scratch / f'{label}.sqlite3'}"
    shutil.rmtree(scratch, ignore_errors=True)
    if shutil.which("pg_isready") and subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
        database = f"pulseboard_bench_{label}"
        subprocess.run(["dropdb", "--if-exists", *POSTGRES, database], check=True, capture_output=True)
        subprocess.run(["createdb", *POSTGRES, database], check=True)
        yield "PostgreSQL", f"postgres://postgres@127.0.0.1:5432/{database}"
    else:
        yield "PostgreSQL", None


def run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed: {result.stderr.strip()}")


if __name__ == "__main__":
    main()
