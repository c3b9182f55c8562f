"""The live sweep and the sync's upsert lock the same event rows: in one order, or they deadlock.

The sweep locked every live row newest first and the upsert locked its page by upstream id: four
deadlocks in a 30-minute soak, each undone by PostgreSQL and recovered on the next run. Here both run
at once, over and over, on the same live builds.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from dashboard.models import Event, EventStatus
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import parse_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite locks the whole database, never rows"),
]

BUILDS = 1500
SECONDS = 4.0


def test_the_live_sweep_and_the_upsert_take_their_locks_in_one_order(hth_sim):
    builds = [hth_sim.start_build(project=f"p{number % 7}", name=f"Build {number}") for number in range(BUILDS)]
    started = timezone.now() - timedelta(seconds=BUILDS)
    for number, build in enumerate(builds):  # newer ids started later, as upstream: "newest first" is "highest id first"
        hth_sim.update_event(build, timestamp=(started + timedelta(seconds=number)).isoformat().replace("+00:00", "Z"))

    def upstream_page():
        items = {item["id"]: item for item in hth_sim.events}
        return [parse_event(items[build]) for build in reversed(builds)]

    sync.store_events(upstream_page(), now=timezone.now(), announce_new=False)
    assert Event.objects.filter(status=EventStatus.LIVE).count() == BUILDS
    failures, stop = [], threading.Event()

    def repeat(work):
        try:
            while not stop.is_set():
                try:
                    work()
                except DatabaseError as error:
                    failures.append(" ".join(str(error).split())[:200])
        finally:
            connection.close()

    page = upstream_page()

    def upsert():  # the same page again: it locks every row, as a re-read does, and changes none
        sync.store_events(page, now=timezone.now(), announce_new=False)

    threads = [
        threading.Thread(target=repeat, args=(work,))
        for work in (upsert, upsert, lambda: sync.sweep_live_events(now=timezone.now()))
    ]
    threads.append(threading.Thread(target=repeat, args=(lambda: sync.sweep_live_events(now=timezone.now()),)))
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == [], failures[:3]
