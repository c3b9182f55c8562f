"""The push path off the sync's threads: a sync hands its rendered batch over and goes on at once.

A sync used to send its own fragments after its commit: with Redis cut off, every send waited for its
timeout (5–15 s) and the sync with it (a OneUptime pass held 21 s, and /healthz blamed OneUptime). Now
one thread per process sends every batch, in the order they were committed, taking each message's
number just before it sends it: numbers reach the channel layer in order (two threads, each taking
then sending, swapped adjacent numbers). The queue is bounded; a batch that does not fit or fails to
send is counted (pulseboard_pushes_dropped_total), and its groups get a gap in their numbers once
pushes flow again, so their pages fetch a fresh snapshot rather than miss it silently.
"""

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable

from asgiref.sync import SyncToAsync

from dashboard import metrics

log = logging.getLogger(__name__)

QUEUE_MOST = 256  # batches; one sync commit makes one
DRAIN_AT_EXIT_SECONDS = 5.0  # `sync --once` exits right after its pass: its pushes go out first

Send = Callable[[list], None]  # sends one batch (live/push.py)
SendGaps = Callable[[set[str]], None]  # skips a number in each group and says so

_queue: queue.Queue = queue.Queue(maxsize=QUEUE_MOST)
_lock = threading.Lock()
_lost: set[str] = set()  # groups whose pages missed a batch and have not been told
_state = {"thread": None, "failing": False, "dropped": 0}


def hand_off(batch: list, groups: Iterable[str], *, send: Send, send_gaps: SendGaps) -> None:
    """Queue `batch` for the push thread; never waits. The caller's event loop (daphne's, when the poller
    runs inside it) is where the batch is sent: the in-memory layer's queues belong to that loop."""
    _start()
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    try:
        _queue.put_nowait((batch, set(groups), loop, send, send_gaps))
    except queue.Full:
        _lose(set(groups))


def drain(timeout: float) -> bool:
    """Wait until every queued batch has been sent or dropped (tests, and a command about to exit)."""
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _queue.unfinished_tasks


def forget_losses() -> None:
    """Between tests: batches dropped with one test's event loop concern no page of the next."""
    with _lock:
        _lost.clear()
        _state["failing"], _state["dropped"] = False, 0


def _start() -> None:
    with _lock:
        thread = _state["thread"]
        if thread is None or not thread.is_alive():
            _state["thread"] = threading.Thread(target=_work, name="pulseboard-push", daemon=True)
            _state["thread"].start()


def _work() -> None:
    while True:
        batch, groups, loop, send, send_gaps = _queue.get()
        try:
            _on_loop(loop)
            with _lock:
                lost = set(_lost)
            if lost:
                send_gaps(lost)
                with _lock:
                    _lost.difference_update(lost)
            send(batch)
        except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 (Redis down, or the loop shut down: counted, logged once)
            _lose(groups, error)
        else:
            _recovered()
        finally:
            _queue.task_done()


def _on_loop(loop) -> None:
    """async_to_sync in this thread hops to `loop`, as it does in the sync thread that queued the batch."""
    SyncToAsync.threadlocal.main_event_loop = loop
    SyncToAsync.threadlocal.main_event_loop_pid = os.getpid() if loop else None


def _lose(groups: set[str], error: BaseException | None = None) -> None:
    metrics.PUSHES_DROPPED.inc()
    with _lock:
        _lost.update(groups)
        _state["dropped"] += 1
        first = not _state["failing"]
        _state["failing"] = True
    if first:
        why = " ".join(str(error).split())[:200] if error else "the push queue is full"
        log.warning("pushes are failing (%s); the mirror carries on, pages get a fresh snapshot once they flow", why)


def _recovered() -> None:
    with _lock:
        if not _state["failing"]:
            return
        dropped, _state["dropped"], _state["failing"] = _state["dropped"], 0, False
    log.warning("pushes flow again; %d batches were dropped meanwhile, their pages take a fresh snapshot", dropped)


atexit.register(drain, DRAIN_AT_EXIT_SECONDS)
