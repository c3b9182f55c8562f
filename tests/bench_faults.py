"""The fault-injection suite at length: more schedules and steps than CI runs, with what each one broke.

Runs tests/test_faults.py in a pytest subprocess (it needs pytest-django's test database) on seeds
that CI does not use, and prints the size, the time, and the invariants that failed, by kind.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SCHEDULES = 6
STEPS = 30
FIRST_SEED = 101


def bench_faults(env: dict[str, str]) -> None:
    report = Path(tempfile.mkdtemp(prefix="pulseboard-bench-faults-")) / "schedules.jsonl"
    run_env = env | {
        "FAULT_SCHEDULES": str(SCHEDULES),
        "FAULT_STEPS": str(STEPS),
        "FAULT_FIRST_SEED": str(FIRST_SEED),
        "FAULT_REPORT": str(report),
    }
    run_env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest's own: tests.settings
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_faults.py"],
        cwd=BASE_DIR,
        env=run_env,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    schedules = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    failed = [schedule for schedule in schedules if schedule["violations"]]
    variant = "PostgreSQL/Redis" if env.get("DATABASE_URL") else "SQLite"
    print(
        f"fault schedules, {variant}: {len(schedules)} x {STEPS} steps in {elapsed:.0f} s "
        f"({elapsed / max(len(schedules), 1):.0f} s each); {len(failed)} broke an invariant"
    )
    kinds = Counter(_kind(violation) for schedule in failed for violation in schedule["violations"])
    for kind, count in kinds.most_common():
        seeds = sorted({s["seed"] for s in failed if any(_kind(v) == kind for v in s["violations"])})
        print(f"  {kind}: {count} time(s), seeds {', '.join(map(str, seeds))}")


def _kind(violation: str) -> str:
    """'before repair: notes: 3 of 200 missing…' -> 'before repair: notes missing'."""
    phase = "before repair: " if violation.startswith("before repair: ") else ""
    text = violation.removeprefix("before repair: ")
    if " edit of step " in text:  # "admin edit of step 8 ('…'): lost: …"
        subject, detail = text.split(" of step")[0], text.partition("): ")[2]
    else:
        subject, _, detail = text.partition(":")
    words = [word.strip(",.()") for word in detail.split() if word.strip(",.()").isalpha() and word != "of"][:3]
    return f"{phase}{subject}: {' '.join(words)}"


if __name__ == "__main__":
    bench_faults(dict(os.environ))
