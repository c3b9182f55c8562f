"""A fault schedule from a seed: the same seed always gives the same steps, so a failure can be replayed.

Each step is a plain dict (`kind` plus its parameters, and `pause`: seconds to let the processes run
afterwards). Which note an admin edits or which event is deleted is picked when the step runs, from
what is mirrored by then, with a generator seeded from the same seed; timing can still make two runs
of one seed differ there, the schedule itself never does.
"""

import random

# kind -> weight. Database and Redis outages need the relay, so only the PostgreSQL/Redis variant has them.
KINDS = {
    "kill_poller": 2,
    "sync_once": 2,
    "hth_fault": 2,
    "oneuptime_fault": 2,
    "hth_arrivals": 2,
    "hth_burst": 1,
    "hth_edits": 1,
    "hth_deletes": 1,
    "hth_malformed": 1,
    "note_arrivals": 2,
    "note_edits": 1.5,
    "note_deletes": 1,
    "note_malformed": 1,
    "state_edits": 1.5,
    "skewed_clock": 1,
    "admin_edit": 2,
    "admin_concurrent_edits": 1,
    "admin_create": 1,
    "edit_during_delivery": 1,
    "admin_takes_theirs": 0.5,
    "live_build_storm": 1,
    "horizon_arrivals": 1,
    "admin_create_lost_answer": 1,
    "hth_hooks_while_oneuptime_hangs": 1,
}
# Kinds every schedule runs at least once (in place of a drawn step, at a seeded place): a short schedule's
# draw can leave them out, and each guards a defect that was found and fixed.
EVERY_SCHEDULE = ("hth_hooks_while_oneuptime_hangs",)
DATABASE_KINDS = {"database_outage": 1.5, "database_cut_mid_write": 1}
REDIS_KINDS = {"redis_outage": 1, "redis_partition": 1}
UPSTREAM_FAULTS = ("503", "429", "bad_json", "hang")
SKEWS = (-86400, -600, 600, 86400)


def variant(seed: int) -> dict:
    """What a schedule runs against: `poll` or `serve` as the poller, and a OneUptime enforcing its documented limit or not."""
    rng = random.Random(f"variant-{seed}")
    return {"poller": rng.choice(("poll", "serve")), "oneuptime_limit_max": rng.choice((10_000, 100))}


def generate(seed: int, steps: int, *, database: bool, redis: bool) -> list[dict]:
    rng = random.Random(seed)
    kinds = KINDS | (DATABASE_KINDS if database else {}) | (REDIS_KINDS if redis else {})
    names, weights = list(kinds), list(kinds.values())
    schedule = [_step(rng, rng.choices(names, weights)[0]) for _ in range(steps)]
    for kind in EVERY_SCHEDULE:
        if schedule and all(step["kind"] != kind for step in schedule):
            schedule[rng.randrange(len(schedule))] = _step(rng, kind)
    return schedule


def _step(rng: random.Random, kind: str) -> dict:
    step: dict = {"kind": kind, "pause": round(rng.uniform(0.2, 1.2), 2)}
    if kind == "kill_poller":
        step["after"] = round(rng.uniform(0.0, 1.5), 2)
    elif kind == "sync_once":
        step["kill_after"] = round(rng.uniform(0.3, 2.5), 2) if rng.random() < 0.7 else None
    elif kind in ("hth_fault", "oneuptime_fault"):
        step["fault"] = rng.choice(UPSTREAM_FAULTS)
        step["count"] = rng.randint(1, 7)
        step["arrivals"] = rng.randint(0, 25)  # upstream keeps changing while the client is refused
    elif kind == "hth_burst":
        step["count"] = rng.randint(120, 350)
    elif kind == "hth_arrivals":
        step["count"] = rng.randint(5, 40)
        step["builds"] = rng.randint(0, 2)
    elif kind in ("hth_edits", "hth_deletes", "note_edits", "note_deletes", "state_edits"):
        step["count"] = rng.randint(1, 5)
    elif kind == "hth_malformed":
        step["malformed"] = rng.choice(
            (
                "bad_timestamp",
                "bad_progress",
                "missing_id",
                "not_an_object",
                "deeply_nested",
                "beyond_parser",
                "oversized",
                "lone_surrogate",
            )
        )
    elif kind == "note_arrivals":
        step["incidents"] = rng.randint(0, 2)
        step["notes"] = rng.randint(1, 12)
    elif kind == "note_malformed":
        step["malformed"] = rng.choice(
            ("incident_state", "incident_severity", "nul_in_note", "surrogate_in_note", "nested_note", "oversized_note")
        )
    elif kind == "skewed_clock":
        step["simulator"] = rng.choice(("hth", "oneuptime"))
        step["seconds"] = rng.choice(SKEWS)
        step["for"] = round(rng.uniform(1.0, 4.0), 1)
    elif kind == "database_cut_mid_write":
        step["table"] = rng.choice(("event", "note"))
        step["refuse"] = rng.randint(0, 5)
        step["arrivals"] = rng.randint(20, 150)
    elif kind == "horizon_arrivals":
        step["count"] = rng.randint(5, 30)
    elif kind == "live_build_storm":
        step["count"] = rng.randint(150, 400)
    elif kind == "hth_hooks_while_oneuptime_hangs":
        step["for"] = round(rng.uniform(4.0, 8.0), 1)
    elif kind == "redis_partition":
        step["for"] = round(rng.uniform(1.0, 8.0), 1)
    elif kind in ("database_outage", "redis_outage"):
        step["for"] = round(rng.uniform(0.5, 6.0), 1) if rng.random() < 0.75 else 0  # 0: cut open connections once
    return step
