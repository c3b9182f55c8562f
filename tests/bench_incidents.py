"""Incident figures: deriving 10,000 incidents' durations, /insights/ over them, and an incident page's
"what changed just before" among 100,000 events.

Run by `make bench` in a process of its own (`python -m tests.bench_incidents DATABASE_URL`), since it needs
Django; it migrates the database it is given, which must be a throwaway one. Seeded with bulk inserts, not
through the simulator; each figure is the p50 / p95 of 20 runs of server-side code (no network, no browser).
"""

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

INCIDENTS = 10_000
EVENTS = 100_000
RUNS = 20
STATES = [("Created", 1, {}), ("Acknowledged", 2, {"is_acknowledged_state": True}), ("Resolved", 3, {"is_resolved_state": True})]


def timed(call) -> str:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return f"p50 {statistics.median(times):.0f} ms, p95 {times[int(0.95 * len(times)) - 1]:.0f} ms"


def main(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from dashboard.live import incident_clock
    from dashboard.models import Event, EventStatus, Incident
    from dashboard.web import changes_before, insights

    call_command("migrate", "--noinput", verbosity=0)
    now = datetime.now(UTC)
    seed_incidents(now=now)
    events = [
        Event(
            upstream_id=f"ev-{n}",
            timestamp=now - timedelta(seconds=311 * n),
            operation="failed" if n % 11 == 0 else ("completed" if n % 3 == 0 else "created"),
            target="build" if n % 3 == 0 else "push",
            project=f"project-{n % 40}",
            repository=f"repo-{n % 200}",
            name=f"Pipeline {n % 25}",
            raw={},
            first_seen_at=now,
            synced_at=now,
            progress_changed_at=now,
            status=EventStatus.FAILED if n % 11 == 0 else EventStatus.COMPLETED,
        )
        for n in range(EVENTS)
    ]
    Event.objects.bulk_create(events, batch_size=5000)
    print(f"\n== Incidents ({connection.vendor}: {INCIDENTS:,} incidents with 3 states each, {EVENTS:,} events) ==")
    started = time.perf_counter()
    incident_clock.rebuild(now=now)
    print(f"derive every incident's durations from the mirror (incident_clock.rebuild): {time.perf_counter() - started:.1f} s")
    print(
        f"one incident's durations again (what a timeline change costs): {timed(lambda: incident_clock.rebuild(['inc-5000'], now=now))}"
    )
    print(f"/insights/ figures, 12 weeks: {timed(lambda: insights.insights(now=now))}")
    print(f"/insights/ figures, 104 weeks (every incident): {timed(lambda: insights.insights(now=now, weeks=104))}")
    middle = Incident.objects.get(upstream_id="inc-100")
    print(f"what changed just before one incident: {timed(lambda: changes_before.changes_before(middle))}")


def seed_incidents(*, now: datetime) -> None:
    """INCIDENTS resolved incidents over about a year, each with three states (bulk inserts; their durations not derived yet).

    Also seeds tests/bench_pipelines.py's /insights/ figures at 1,000,000 events."""
    from dashboard.models import Incident, IncidentStateChange

    incidents, rows = [], []
    for n in range(INCIDENTS):
        declared = now - timedelta(minutes=53 * n + 7)  # about a year of incidents
        incidents.append(
            Incident(
                upstream_id=f"inc-{n}",
                title=f"Incident {n}",
                severity=("Critical", "Major", "Minor")[n % 3],
                declared_at=declared,
                is_resolved=True,  # as its timeline below ends: a year of open incidents is no team's wall
                raw={"monitors": [{"_id": f"m-{n % 40}", "name": f"project-{n % 40}"}]},
                synced_at=now,
            )
        )
        moments = [declared, declared + timedelta(minutes=n % 30 + 1), declared + timedelta(minutes=n % 300 + 40)]
        for index, ((name, order, flags), starts) in enumerate(zip(STATES, moments, strict=True)):
            rows.append(
                IncidentStateChange(
                    upstream_id=f"st-{n}-{index}",
                    incident_upstream_id=f"inc-{n}",
                    state_name=name,
                    state_order=order,
                    starts_at=starts,
                    synced_at=now,
                    **flags,
                )
            )
    Incident.objects.bulk_create(incidents, batch_size=2000)
    IncidentStateChange.objects.bulk_create(rows, batch_size=2000)


if __name__ == "__main__":
    main(sys.argv[1])
