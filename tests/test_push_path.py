"""The push path: a sync hands its fragments to one push thread (live/push_queue.py) and goes on.

A partitioned Redis must not stall the mirror (or make /healthz blame an upstream for it), and the
numbers of one group reach a socket in order however many sync threads push at once.
"""

import json
import re
import threading
import time
import urllib.request

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from dashboard.live import push, push_queue
from dashboard.models import Incident, Transition, TransitionKind
from tests.test_browser import ou_sim, server_env  # noqa: F401
from tests.test_browser_outages import redis_relay, serve  # noqa: F401
from tests.test_pages import make_event

pytestmark = pytest.mark.django_db(transaction=True)

NUMBER = re.compile(r"^<!--seq (\S+) (\d+)-->")


def health(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:  # noqa: S310 (loopback)
        return json.load(response)


def test_a_redis_partition_does_not_stall_the_mirror_nor_blame_an_upstream(hth_sim, ou_sim, redis_relay, tmp_path, request):  # noqa: F811
    hth_sim.generate(20)
    ou_sim.generate(incidents=3, notes=6)
    # A 2 s interval: /healthz calls a source overdue after two intervals, and a pass that renders its pushes for
    # 12 new incidents took up to 1.6 s on a 2-core machine, so 1 s + a pass crossed 2 s with no stall at all.
    # 4 s is still below the 5 s a Redis read waits, which is what a stalled sync would show.
    env = server_env(hth_sim, ou_sim) | {"REDIS_URL": redis_relay.url, "POLL_INTERVAL_SECONDS": "2"}
    server = serve(env, tmp_path, request)
    deadline = time.monotonic() + 30
    while health(server)["status"] != "ok":
        assert time.monotonic() < deadline, health(server)
        time.sleep(0.5)

    redis_relay.blackhole()
    added, reports = [], []
    for step in range(12):  # a minute's worth of changes at a 1 s poll interval, compressed
        added.append(ou_sim.add_incident(f"Raised during the partition {step}")["_id"])
        hth_sim.add_event(target="push", operation="created", project="luotsi")
        time.sleep(1)
        reports.append(health(server))
    deadline = time.monotonic() + 6  # still cut off: the last pass of the partition stores the last ones
    while (
        len(stored := set(Incident.objects.filter(upstream_id__in=added).values_list("upstream_id", flat=True))) < len(added)
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    redis_relay.up()

    assert reports[-1]["channel_layer"] == {"ok": False}, "/healthz names the channel layer"
    blamed = [report["sources"] for report in reports[3:] if not all(source["ok"] for source in report["sources"].values())]
    assert blamed == [], "the upstreams answered all along: no source is overdue"
    assert len(stored) >= len(added) - 2, f"the mirror kept syncing: {len(stored)} of {len(added)} stored"
    log = (tmp_path / "server.log").read_text()
    assert log.count("pushes are failing") == 1, log[-3000:]


def test_numbers_reach_the_layer_in_order_while_many_sync_threads_push():
    events = [make_event(f"e{index}") for index in range(8)]
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(push.EVENTS, channel)

    def sync_thread(event):
        for _ in range(15):
            push.publish([Transition(event_id=event.pk, kind=TransitionKind.EVENT_NEW)])

    threads = [threading.Thread(target=sync_thread, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert push_queue.drain(timeout=30)

    numbers = []
    while len(numbers) < len(events) * 15:
        message = async_to_sync(layer.receive)(channel)
        numbers.append(int(NUMBER.match(message["html"])[2]))
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
