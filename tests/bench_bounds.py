"""Figures for bounded work (issue 17, points 6 and 7): memory with one huge note, and the conflict diff's time.

    python -m tests.bench_bounds [CODE_DIR]

Memory: `manage.py sync --once` (a process of its own, a fresh SQLite file) mirrors the OneUptime
simulator over loopback while one of its notes is BENCH_HUGE_NOTE_MB long (default 150), and then
a process renders the dashboard's and the wall's open incidents (what every push of them renders)
with a note that size in the database: the sync prints its peak RSS, the render what Python allocated
while rendering (the process itself first writes the note, which costs a few copies of it). CODE_DIR runs another checkout's
code the same way (an older commit, for a before-and-after figure).
Diff: side_by_side on hostile texts, best of three.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
RENDER = """
import os, tracemalloc, django
django.setup()
from django.utils import timezone
from dashboard.models import Incident, IncidentNote
from dashboard.web import pages
now = timezone.now()
pages.snapshot(page="dashboard", now=now) + pages.snapshot(page="wall", now=now)  # imports and templates, once
incident = Incident.objects.create(upstream_id="flood", title="Log flood", declared_at=now, synced_at=now)
IncidentNote.objects.create(upstream_id="huge", incident=incident, note="x" * (int(os.environ["MB"]) << 20), posted_at=now)
del incident
tracemalloc.start()
html = pages.snapshot(page="dashboard", now=now) + pages.snapshot(page="wall", now=now)
print(tracemalloc.get_traced_memory()[1] >> 20, len(html))
"""


def peak_rss_mb(command: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Run `command`, sampling its resident memory every 20 ms; the peak in MB and how it ended."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(process.pid), 0

    def sample():
        nonlocal peak
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = process.communicate(timeout=1800)
    sampler.join()
    return peak / 2**20, subprocess.CompletedProcess(command, process.returncode, out, err)


def bench_huge_note(code_dir: Path = BASE_DIR) -> None:
    from dashboard.simulators import oneuptime

    megabytes = int(os.environ.get("BENCH_HUGE_NOTE_MB", "150"))
    scratch = Path(tempfile.mkdtemp(prefix="pulseboard-bench-"))
    with oneuptime.serve(port=0, seed=5) as sim:
        incident = sim.add_incident("Log flood", severity="Critical")
        sim.add_note(incident["_id"], "## Investigating\n\n" + "x" * (megabytes << 20))
        for number in range(20):
            sim.add_note(incident["_id"], f"Update {number}.")
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_SECRET_KEY": "bench-only",
            "DATABASE_URL": f"sqlite:///{scratch / 'huge.sqlite3'}",
            "ONEUPTIME_API_URL": sim.url,
            "ONEUPTIME_API_KEY": sim.api_key,
        }
        env.pop("HTH_API_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=code_dir, env=env, check=True, capture_output=True
        )
        peak, result = peak_rss_mb([sys.executable, "manage.py", "sync", "--once"], cwd=code_dir, env=env)
        said = (result.stdout.strip().splitlines() or [result.stderr.strip().splitlines()[-1]])[-1]
        print(f"sync --once with a {megabytes} MB note among 21: peak RSS {peak:,.0f} MB, exit {result.returncode}: {said[:160]}")
    env["DATABASE_URL"] = f"sqlite:///{scratch / 'render.sqlite3'}"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=code_dir, env=env, check=True, capture_output=True)
    _, result = peak_rss_mb([sys.executable, "-c", RENDER], cwd=code_dir, env=env | {"MB": str(megabytes)})
    if result.returncode:
        print(f"render failed: {result.stderr.strip()[-300:]}")
        return
    allocated, size = map(int, result.stdout.split())
    print(
        f"dashboard + wall snapshot with a {megabytes} MB latest note: {allocated:,} MB allocated at most while "
        f"rendering (tracemalloc), {size:,} bytes of HTML"
    )


def bench_diff() -> None:
    from dashboard.web.diff import side_by_side

    cases = {
        "2 KB against 4 KB of repeated lines": ("a\n" * 1000, "a\nc\n" * 1000),
        "990 alike lines a side (a full table)": ("a\n" * 990, "c\na\n" * 495),
        "800-line note, two edits": (
            "\n".join(f"line {n}" for n in range(800)),
            "\n".join(f"line {n}" if n not in (100, 700) else "edited" for n in range(800)),
        ),
        "40,000 interleaved lines a side": ("a\nb\n" * 20_000, "b\na\n" * 20_000),
    }
    for name, (mine, theirs) in cases.items():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            comparison = side_by_side(mine, theirs)
            best = min(best, time.perf_counter() - started)
        how = "lined up" if comparison.aligned else "shown plainly"
        print(f"conflict diff, {name}: {best * 1000:,.1f} ms ({len(comparison.rows):,} rows, {how})")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    import django

    django.setup()
    code_dir = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else BASE_DIR
    bench_huge_note(code_dir)
    bench_diff()


if __name__ == "__main__":
    main()
