"""`make bench`, scale part: the read side at 1,000,000 events (PostgreSQL only).

Seeds a scratch database (`<DATABASE_URL's name>_bench_scale`, dropped and re-created) with SQL, not
through the simulator, then times every page and snapshot in a fresh process: p50/p95 of the server
time (Django's test client, in process: no network, no browser), the size of each index on the
events table, and one call of the poller's retention pass (last, as it deletes). Skipped, with a
message, unless DATABASE_URL points at PostgreSQL.
"""

import os
import statistics
import subprocess
import sys
import time
import warnings
from urllib.parse import urlsplit, urlunsplit

from tests.processes import BASE_DIR

EVENTS = 1_000_000
RUNS = 20
SEED_SQL = """
INSERT INTO dashboard_event (
    upstream_id, subject_id, timestamp, operation, target, project, repository, ref, name, description, title,
    state, visibility, role, short_name, last_commit, bookmarks, commits, files, code_reviews, linked_objects,
    resources, raw, progress, first_seen_at, synced_at, progress_changed_at, status
)
SELECT
    'bench-' || g,
    'person-' || (g * 131 % 2000),
    ts,
    CASE WHEN kind < 3 THEN CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END ELSE 'created' END,
    (ARRAY['build', 'build', 'build', 'push', 'push', 'push', 'code_review', 'task', 'branch', 'comment_reply'])[kind + 1],
    'project-' || (g * 7919 % 40),
    'repo-' || (g * 31 % 400),
    'refs/heads/feature-' || substr(md5(g::text), 1, 8),
    CASE WHEN kind < 3 THEN 'Pipeline ' || (g % 25) ELSE '' END,
    CASE WHEN kind = 6 THEN 'Review of ' || md5((g * 2)::text) ELSE '' END,
    CASE WHEN kind = 7 THEN 'Task ' || substr(md5((g * 3)::text), 1, 12) ELSE '' END,
    '', '', '', '', '', '[]', '[]', '{}', '[]', '{}', '[]', '{}',
    100, ts, ts, ts,
    CASE WHEN kind < 3 AND g % 10 = 0 THEN 'failed' ELSE 'completed' END
FROM (
    SELECT g, g % 10 AS kind, now() - g * interval '1 minute' - (g % 7) * interval '1 second' AS ts
    FROM generate_series(1::bigint, {events}) AS g
) AS seed
"""
# A few builds still running and a few stalled, as on any working day.
UNFINISHED_SQL = """
UPDATE dashboard_event SET status = CASE WHEN id % 2 = 0 THEN 'live' ELSE 'stale' END, progress = 40
WHERE id IN (SELECT id FROM dashboard_event WHERE target = 'build' ORDER BY timestamp DESC LIMIT 50)
"""


def main() -> None:
    print("\n== The read side at 1,000,000 events (tests/bench_scale.py) ==")
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        print("skipped: set DATABASE_URL to a PostgreSQL database (the bench uses <its name>_bench_scale beside it)")
        return
    bench_url = scratch_database(database_url)
    env = os.environ | {
        "DATABASE_URL": bench_url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }  # static files without collectstatic
    env.setdefault("DJANGO_SECRET_KEY", "bench-only")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=env, check=True)
    started = time.perf_counter()
    seed(bench_url)
    print(f"seeded {EVENTS:,} events with SQL in {time.perf_counter() - started:.0f} s")
    rebuilt = subprocess.run(
        [sys.executable, "manage.py", "rebuild_pipelines"], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
    )
    print(f"derived the pipelines of the seeded builds: {rebuilt.stdout.strip()}")  # the wall reads them
    subprocess.run([sys.executable, "-m", "tests.bench_scale"], cwd=BASE_DIR, env=env, check=True)


def scratch_database(database_url: str) -> str:
    import psycopg

    parts = urlsplit(database_url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_bench_scale"
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def seed(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(SEED_SQL.replace("{events}", str(EVENTS)))
        connection.execute(UNFINISHED_SQL)
        connection.execute("VACUUM ANALYZE dashboard_event")


def measure() -> None:
    """Runs in its own process, with Django set up on the seeded database."""
    import django

    warnings.filterwarnings("ignore", "No directory at")  # whitenoise, before any collectstatic
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from dashboard.poller import retention
    from dashboard.web import feeds, pages
    from dashboard.web.filters import EventFilter

    client = Client(SERVER_NAME="localhost")
    user = get_user_model().objects.filter(username="bench").first()  # there when measuring again
    client.force_login(user or get_user_model().objects.create_user("bench", password="bench-only"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT timestamp, id FROM dashboard_event ORDER BY timestamp DESC, id DESC OFFSET 900000 LIMIT 1")
        timestamp, pk = cursor.fetchone()
    deep = f"{timestamp.isoformat()}~{pk}"

    def get(path: str, **params: str):
        def request():
            response = client.get(path, params)
            assert response.status_code == 200, (path, params, response.status_code)

        return request

    figures = [
        ("GET /", get("/")),
        ("GET /?project=project-7", get("/", project="project-7")),
        ("GET /?person=person-17&target=build", get("/", person="person-17", target="build")),
        ("GET /?before=… (900,000 rows deep)", get("/", before=deep)),
        ("GET /?q=… (a rare word)", get("/", q="c0ffee")),
        ("GET /?q=… (a common word)", get("/", q="pipeline 7")),
        (
            "dashboard WebSocket snapshot",
            lambda: pages.snapshot(page="dashboard", event_filter=EventFilter(), now=timezone.now()),
        ),
        ("filter_choices()", feeds.filter_choices),
        ("GET /wall/", get("/wall/")),
        ("wall snapshot", lambda: pages.snapshot(page="wall", now=timezone.now())),
    ]
    print(f"server time, {RUNS} runs each after one warm-up (the machine is shared: figures are under load)")
    for label, work in figures:
        work()
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            work()
            times.append((time.perf_counter() - started) * 1000)
        p95 = statistics.quantiles(times, n=20)[-1]
        print(f"  {label:<42} p50 {statistics.median(times):8.1f} ms   p95 {p95:8.1f} ms")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelname, pg_size_pretty(pg_relation_size(indexrelid)) FROM pg_stat_user_indexes"
            " WHERE relname = 'dashboard_event' ORDER BY indexrelname"
        )
        print("indexes on dashboard_event: " + ", ".join(f"{name} {size}" for name, size in cursor.fetchall()))
        cursor.execute("SELECT pg_size_pretty(pg_relation_size('dashboard_event'))")
        print(f"the table itself: {cursor.fetchone()[0]}")
    started = time.perf_counter()
    deleted = retention.prune_old_events(timezone.now())
    elapsed = time.perf_counter() - started
    batches = -(-deleted // retention.BATCH_SIZE)
    print(
        f"prune_old_events (EVENTS_KEPT_DAYS={settings.EVENTS_KEPT_DAYS}): one call deleted {deleted:,} events"
        f" in {elapsed:.1f} s, {batches} transactions of about {elapsed / max(batches, 1) * 1000:.0f} ms each"
    )


if __name__ == "__main__":
    measure()
