"""The failover figure: three `serve` processes on PostgreSQL; SIGKILL the one that polls and time how long
until another one has the poller lock, starts a sync and finishes it (default POLL_INTERVAL_SECONDS).

Run by `make bench` in a process of its own (`python -m tests.bench_failover DATABASE_URL`); it migrates the
database it is given, which must be a throwaway PostgreSQL one.
"""

import os
import signal
import statistics
import subprocess
import sys
import time

ROUNDS = 3


def main(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from dashboard.models import SyncState
    from dashboard.poller import leader
    from dashboard.simulators import hth
    from tests.processes import BASE_DIR, free_port, wait_for_port

    call_command("migrate", "--noinput", verbosity=0)
    with hth.serve(port=0, seed=5) as sim:
        sim.generate(200)
        env = os.environ | {"HTH_API_URL": sim.url, "HTH_COMPANY_KEY": sim.company_key, "HTH_ACCOUNT_KEY": sim.account_key}

        def start():
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(port)],
                cwd=BASE_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for_port(port, process)
            return process

        def wait_for(check, timeout=120):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if value := check():
                    return value
                time.sleep(0.02)
            sys.exit("failover bench: timed out")

        def holder_pid():
            name = leader.holder()["holder"] or ""
            return int(name.rpartition(":")[2] or 0)

        def synced_after(moment, field):
            return SyncState.objects.filter(source="hth", **{f"{field}__gt": moment}).exists()

        processes = {}
        for _ in range(3):
            process = start()
            processes[process.pid] = process
        taken, started, finished = [], [], []
        try:
            for _ in range(ROUNDS):
                wait_for(
                    lambda: (
                        holder_pid() in processes and synced_after(timezone.now() - timezone.timedelta(days=1), "last_success_at")
                    )
                )
                victim = holder_pid()
                killed_at, clock = timezone.now(), time.perf_counter()
                processes.pop(victim).send_signal(signal.SIGKILL)
                wait_for(lambda: holder_pid() in processes)
                taken.append(time.perf_counter() - clock)
                wait_for(lambda at=killed_at: synced_after(at, "last_attempt_at"))
                started.append(time.perf_counter() - clock)
                wait_for(lambda at=killed_at: synced_after(at, "last_success_at"))
                finished.append(time.perf_counter() - clock)
                replacement = start()
                processes[replacement.pid] = replacement
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(timeout=20)

    def figures(values):
        return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"

    print(
        f"failover, 3 serve processes, SIGKILL of the poller ({ROUNDS} rounds, POLL_INTERVAL_SECONDS "
        f"{settings.POLL_INTERVAL_SECONDS:g}, lock checked every {leader.check_seconds():g} s): "
        f"lock taken {figures(taken)}; next sync started {figures(started)}, finished {figures(finished)}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
