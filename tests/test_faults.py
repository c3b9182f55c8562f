"""Seeded fault injection: the real poller, `sync --once` and `serve` through kills, upstream faults,
database and Redis outages, changes and skewed clocks upstream, and admin edits; then the mirror's promises.

A failure names its seed; `FAULT_SEED=1234 pytest tests/test_faults.py` replays that schedule (and
FAULT_SCHEDULES, FAULT_STEPS size a longer run, as `make bench` does). The harness and its invariants
are described in tests/faults/harness.py.
"""

import json
import os
import time

import pytest
from django.conf import settings

from dashboard.simulators import hth, oneuptime
from tests.faults import harness, schedule
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)

SEEDS, STEPS = harness.settings_from_env()
ON_SERVICES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.mark.parametrize("seed", SEEDS)
def test_the_mirror_keeps_its_promises_through_a_fault_schedule(seed):
    steps = schedule.generate(seed, STEPS, database=ON_SERVICES, redis=bool(settings.REDIS_URL))
    started = time.monotonic()
    with hth.serve(port=0, seed=seed) as hth_sim, oneuptime.serve(port=0, seed=seed) as oneuptime_sim:
        hth_sim.generate(harness.HISTORY_EVENTS)
        oneuptime_sim.generate(incidents=20, notes=200)
        world = harness.World(
            seed=seed,
            hth=hth_sim,
            oneuptime=oneuptime_sim,
            database_url=database_url() if ON_SERVICES else None,
            redis_url=settings.REDIS_URL or None,
            log_dir=harness.log_dir(),
        )
        try:
            world.run(steps)
            violations = world.quiesce()
        finally:
            world.stop()
    record(seed, steps, world, violations, time.monotonic() - started)
    assert not violations, (
        f"FAULT_SEED={seed} ({world.variant}) broke {len(violations)} invariant(s):\n  "
        + "\n  ".join(violations)
        + "\nschedule:\n  "
        + "\n  ".join(f"{number}: {step}" for number, step in enumerate(steps, start=1))
        + f"\nprocess logs: {world.log_dir}"
    )


def record(seed, steps, world, violations, seconds) -> None:
    """With FAULT_REPORT set (by `make bench`), append one JSON line per schedule for the figures."""
    if path := os.environ.get("FAULT_REPORT"):
        with open(path, "a") as report:
            line = {"seed": seed, "steps": len(steps), "seconds": round(seconds, 1), "variant": world.variant}
            report.write(json.dumps(line | {"violations": violations}) + "\n")
