"""daphne with the poller inside one process: the way to run without Redis.

The in-memory channel layer lives in one process, so the poller's pushes reach browsers only from
inside daphne's process. Each poller job runs in a worker thread started from daphne's event loop
through sync_to_async, so that its pushes (async_to_sync) hop back onto that loop safely. A job's
loop survives its own errors; should it end anyway, it is started again a second later, so the pages
never keep serving while the mirror has silently stopped. With PostgreSQL, every `serve` may run behind a
load balancer: only the one holding the poller lock (dashboard/poller/leader.py) runs the jobs, the others
stand by and serve pages and sockets, which then get their pushes through Redis. The jobs are stopped before daphne's loop
is: a push into a stopped loop would wait for ever.
"""

import asyncio
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

RESTART_AFTER_SECONDS = 1
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
HANDSHAKE_SECONDS = 30


def serve(*, host: str, port: int, poll: bool = True) -> None:
    import daphne.server  # installs Twisted's asyncio reactor: before anything imports the reactor
    from asgiref.sync import sync_to_async
    from channels.routing import get_default_application
    from twisted.internet import defer, reactor

    from dashboard.poller.jobs import jobs_for, run_job
    from dashboard.poller.leader import Leadership
    from dashboard.poller.request_limits import BoundedHTTPFactory
    from dashboard.poller.sources import configured_sources

    jobs = jobs_for(configured_sources())
    stop = threading.Event()

    async def keep_running(job, executor, term):
        while not term.is_set():
            try:
                await sync_to_async(run_job, thread_sensitive=False, executor=executor)(job, term)
            except Exception:
                log.exception("poller job %s ended unexpectedly; restarting it", job.name)
            if not term.is_set():
                await asyncio.sleep(RESTART_AFTER_SECONDS)

    async def lead(executor):
        """Stand by until this process holds the poller lock, poll until it is lost or `stop`, repeat."""
        leadership = Leadership()
        while await sync_to_async(leadership.wait, thread_sensitive=False, executor=executor)(stop):
            term = threading.Event()
            running = asyncio.gather(*(keep_running(job, executor, term) for job in jobs))
            await sync_to_async(leadership.hold, thread_sensitive=False, executor=executor)(stop, term)
            term.set()  # a sync stops between pages
            await running

    def start_poller():
        if not poll:
            return
        executor = ThreadPoolExecutor(max_workers=len(jobs) + 1, thread_name_prefix="poller")  # + the lock's
        running = asyncio.get_event_loop().create_task(lead(executor))

        def stop_poller():
            stop.set()
            return defer.Deferred.fromFuture(running)  # and shutdown waits for every job

        reactor.addSystemEventTrigger("before", "shutdown", stop_poller)

    daphne.server.HTTPFactory = BoundedHTTPFactory  # Server.run builds its factory by this name

    def start():
        start_announcing(reactor)
        start_poller()

    server = daphne.server.Server(
        application=get_default_application(),
        # After a deploy every wall reconnects at once: a listen queue deeper than Twisted's 50, and
        # time to finish the handshake while thousands of others do (daphne's default closes at 5 s).
        endpoints=[f"tcp:port={port}:interface={host}:backlog={LISTEN_BACKLOG}"],
        websocket_connect_timeout=HANDSHAKE_SECONDS,
        websocket_handshake_timeout=HANDSHAKE_SECONDS,
        ready_callable=start,
    )
    try:
        server.run()
    finally:
        stop.set()


def start_announcing(reactor) -> None:
    """Tell pages which version this process serves (dashboard/fleet.py) until shutdown begins."""
    from dashboard import fleet

    node, leaving = f"{socket.gethostname()}:{os.getpid()}", threading.Event()

    def announce():
        failing = False
        while not leaving.is_set():
            try:
                fleet.announce(node)
                failing = False
            except Exception as exc:
                if not failing:  # once per outage
                    log.warning("cannot announce this process's version: %s", exc)
                failing = True
            leaving.wait(fleet.ANNOUNCE_EVERY_SECONDS)

    def leave():
        leaving.set()
        try:
            fleet.withdraw(node)
        except Exception as exc:
            log.warning("cannot withdraw this process's version: %s", exc)

    threading.Thread(target=announce, name="fleet", daemon=True).start()
    reactor.addSystemEventTrigger("before", "shutdown", leave)
