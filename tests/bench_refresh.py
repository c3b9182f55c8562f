"""The live refresh figure: 100 unfinished builds re-read by id against an upstream that takes 100 ms each.

Run by `make bench` in a process of its own (`python -m tests.bench_refresh DATABASE_URL`), since it needs
Django; it migrates the database it is given, which must be a throwaway one.
"""

import os
import sys
import time


def main(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from dashboard.simulators import hth
    from dashboard.upstreams.hth import sync
    from dashboard.upstreams.hth.client import HthClient

    call_command("migrate", "--noinput", verbosity=0)
    with hth.serve(port=0, seed=7) as sim:
        client = HthClient(base_url=sim.url, company_key=sim.company_key, account_key=sim.account_key)
        builds = [sim.start_build() for _ in range(100)]
        sync.sync_events(client=client, now=sim.clock())
        for build in builds:
            sim.set_progress(build, 40)
        sim.get_delay = 0.1
        started = time.perf_counter()
        report = sync.refresh_unfinished_events(client=client, now=sim.clock())
        elapsed = time.perf_counter() - started
    print(
        f"live refresh of 100 unfinished builds, 100 ms upstream, {settings.HTH_REFRESH_CONCURRENCY} at once: "
        f"{elapsed:.2f} s ({report.updated} updated; LIVE_REFRESH_SECONDS is {settings.LIVE_REFRESH_SECONDS:g})"
    )


if __name__ == "__main__":
    main(sys.argv[1])
