"""`make bench`: the figures the issues ask for, printed (never asserted: timing is not a test).

Each figure runs the real command in a fresh process against a fresh database and the simulator
over loopback, so it includes Django's start-up (about half a second).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
POSTGRES = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "database": "pulseboard_bench"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    from dashboard.simulators import hth

    with hth.serve(port=0, seed=3) as sim:
        sim.generate(10_000)
        for name, database_url in databases():
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


def databases():
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-"))
    yield "SQLite", f"sqlite:///{scratch / 'bench.sqlite3'}"
    shutil.rmtree(scratch, ignore_errors=True)
    if shutil.which("pg_isready") and subprocess.run(["pg_isready", "-q", "-h", POSTGRES["host"]]).returncode == 0:
        connection = ["-h", POSTGRES["host"], "-p", POSTGRES["port"], "-U", POSTGRES["user"]]
        subprocess.run(["dropdb", "--if-exists", *connection, POSTGRES["database"]], check=True)
        subprocess.run(["createdb", *connection, POSTGRES["database"]], check=True)
        yield "PostgreSQL", "postgres://{user}@{host}:{port}/{database}".format(**POSTGRES)
    else:
        yield "PostgreSQL", None


def run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed: {result.stderr.strip()}")


if __name__ == "__main__":
    main()
