"""daphne with the poller inside one process: the way to run without Redis.

The in-memory channel layer lives in one process, so the poller's pushes reach browsers only from
inside daphne's process. The poller runs in a worker thread started from daphne's event loop through
sync_to_async, so that its pushes (async_to_sync) hop back onto that loop safely. For the same reason
it is stopped before that loop is: a push into a stopped loop would wait for ever.
"""

import asyncio
import threading


def serve(*, host: str, port: int, poll: bool = True) -> None:
    import daphne.server  # installs Twisted's asyncio reactor: before anything imports the reactor
    from asgiref.sync import sync_to_async
    from channels.routing import get_default_application
    from twisted.internet import defer, reactor

    from dashboard.poller import poll_forever
    from dashboard.sources import configured_sources

    sources = configured_sources()
    stop = threading.Event()

    def start_poller():
        if not poll:
            return
        poller = asyncio.get_event_loop().create_task(
            sync_to_async(poll_forever, thread_sensitive=False)(stop=stop, sources=sources)
        )

        def stop_poller():
            stop.set()  # sync stops between pages
            return defer.Deferred.fromFuture(poller)  # and shutdown waits for it

        reactor.addSystemEventTrigger("before", "shutdown", stop_poller)

    server = daphne.server.Server(
        application=get_default_application(),
        endpoints=[f"tcp:port={port}:interface={host}"],
        ready_callable=start_poller,
    )
    try:
        server.run()
    finally:
        stop.set()
