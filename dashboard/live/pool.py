"""The threads where sockets that connect do their database work, and lookups that share one query.

With database_sync_to_async's default, every connect queued behind every other piece of sync work in
the process, one at a time, and opened a database connection of its own. Here access checks have a
small pool, renderings another (queued behind a storm's thousands of access checks, the one rendering
they all waited for came last), and each thread keeps its connection. Kiosk keys that arrive together
are looked up together: after a deploy, 5,000 walls cost a few queries, not 5,000 (`make bench`).
"""

import asyncio
import functools
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections

CONNECT_THREADS = 4  # each holds a database connection of its own
RENDER_THREADS = 2
BATCH_MOST = 200  # keys in one lookup

_connect_pool = ThreadPoolExecutor(max_workers=CONNECT_THREADS, thread_name_prefix="pulseboard-connect")
_render_pool = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="pulseboard-render")


def connecting(function: Callable) -> Callable:
    """`function` as a coroutine function that runs in the connect pool, on that thread's own connection."""
    return sync_to_async(_keeping_connections(function), thread_sensitive=False, executor=_connect_pool)


def rendering(function: Callable) -> Callable:
    return sync_to_async(_keeping_connections(function), thread_sensitive=False, executor=_render_pool)


def _keeping_connections(function: Callable) -> Callable:
    """The pools' threads live as long as the process, and each keeps its database connection from one
    call to the next (with CONN_MAX_AGE=0, opening one cost a connect more than its queries did). A
    connection is closed, as Django would, only when an error may have broken it."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        _check_kept_connections()
        try:
            return function(*args, **kwargs)
        finally:
            for connection in connections.all(initialized_only=True):
                if connection.connection is None:
                    continue
                broken = connection.errors_occurred and not connection.is_usable()
                if broken or connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
                    connection.close()
                connection.errors_occurred = False

    return run


def _check_kept_connections() -> None:
    """A connection kept through a database restart or a cut network is dead, and would fail its first
    query (a wall's connect answered 500 or closed 1011, on each thread in turn). One that sat idle for
    IDLE_CHECK_SECONDS is asked first (`SELECT 1`) and replaced if it does not answer; during a storm,
    with calls back to back, nothing is asked."""
    now = time.monotonic()
    idle, _last_use.at = now - getattr(_last_use, "at", now), now
    if idle < IDLE_CHECK_SECONDS:
        return
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            try:
                connection.close()
            except DatabaseError:
                connection.connection = None  # broken beyond closing: the next query opens a new one


IDLE_CHECK_SECONDS = 1.0
_last_use = threading.local()


class Batched:
    """`lookup(keys) -> {key: value}` for many callers at once: keys asked for while a lookup runs go
    into the next one, so a lone caller waits for one query and a storm's callers share them."""

    def __init__(self, lookup: Callable[[list[str]], dict]):
        self.lookup = connecting(lookup)
        self.waiting: dict[str, list[asyncio.Future]] = {}
        self.draining: asyncio.Task | None = None

    async def get(self, key: str):
        answer = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(key, []).append(answer)
        if self.draining is None:
            self.draining = asyncio.ensure_future(self._drain())
        return await answer

    async def _drain(self) -> None:
        try:
            while self.waiting:
                keys = list(self.waiting)[:BATCH_MOST]
                answers = {key: self.waiting.pop(key) for key in keys}
                try:
                    found = await self.lookup(keys)
                except Exception as error:
                    for futures in answers.values():
                        _settle(futures, exception=error)
                else:
                    for key, futures in answers.items():
                        _settle(futures, result=found.get(key))
        finally:
            self.draining = None


def _settle(futures: list[asyncio.Future], *, result=None, exception: BaseException | None = None) -> None:
    for future in futures:
        if not future.done():  # its socket may have gone meanwhile
            future.set_exception(exception) if exception else future.set_result(result)


_batches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {lookup: Batched}


def batched(lookup: Callable[[list[str]], dict]) -> Callable:
    """`lookup` shared by the callers of one event loop (a future belongs to its loop)."""

    async def get(key: str):
        batches = _batches.setdefault(asyncio.get_running_loop(), {})
        if lookup not in batches:
            batches[lookup] = Batched(lookup)
        return await batches[lookup].get(key)

    return get
