"""What both simulators share: an HTTP server on 127.0.0.1 that hands every request to a simulator's
`respond()`, a background thread that calls its `step()`, and slow or trickling answers on demand.

No Django here: the simulators stand in for servers on other machines, reached only over HTTP.
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

# Served in place of this marker: an array nested deeper than Python's json (or any stack) parses, so
# the whole answer that holds it cannot be parsed at once.
BEYOND_PARSER = "\x00beyond-parser\x00"
BEYOND_PARSER_DEPTH = 100_000


def spliced(text: str) -> str:
    """An answer with each BEYOND_PARSER marker replaced by JSON nested deeper than any parser's stack."""
    marker = json.dumps(BEYOND_PARSER)
    if marker not in text:
        return text
    return text.replace(marker, "[" * BEYOND_PARSER_DEPTH + "]" * BEYOND_PARSER_DEPTH)


class Response(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


class LoopbackSimulator:
    """The base of both simulators: activity in a thread, `delay` (seconds) before every answer, and
    `trickle` (seconds between two bytes of an answer begun while it is set, to its end): a hung server
    that keeps the connection alive, which no read timeout ends, only the client's own deadline."""

    ACTIVITY_INTERVAL = 2.0

    def __init__(self):
        self.url = ""
        self.delay = 0.0
        self.trickle = 0.0
        self._activity: threading.Thread | None = None
        self._stopping = threading.Event()

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Response:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def hold_after(self, method: str, path: str, response: Response) -> float:
        """Seconds to wait after the work is done and before answering (none by default)."""
        return 0.0

    def start_activity(self, interval: float | None = None) -> None:
        """Call `step()` every `interval` seconds in a daemon thread until the server stops."""
        if self._activity is not None:
            raise RuntimeError("activity is already running")
        self._activity = threading.Thread(
            target=self._run_activity,
            args=(interval or self.ACTIVITY_INTERVAL,),
            name=f"{type(self).__name__}-activity",
            daemon=True,
        )
        self._activity.start()

    def _run_activity(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            self.step()

    def stop_activity(self) -> None:
        self._stopping.set()
        if self._activity is not None:
            self._activity.join()


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], simulator: LoopbackSimulator):
        super().__init__(address, _Handler)
        self.simulator = simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timed out, or was killed) is normal for a server; anything else is printed."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        simulator = self.server.simulator
        trickle = simulator.trickle
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if simulator.delay:
            time.sleep(simulator.delay)
        response = simulator.respond(self.command, self.path, self.headers, body)
        if hold := simulator.hold_after(self.command, self.path, response):
            time.sleep(hold)  # outside the simulator's lock: other clients are served meanwhile
        self.send_response(response.status)
        for name, value in ({"Content-Type": "application/json; charset=utf-8"} | response.headers).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not trickle:
            self.wfile.write(response.body)
            return
        for index in range(len(response.body)):  # until the client gives up: the write then fails
            self.wfile.write(response.body[index : index + 1])
            time.sleep(trickle)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the simulator's `requests` instead of stderr."""


@contextmanager
def serve(simulator: LoopbackSimulator, *, port: int) -> Iterator[LoopbackSimulator]:
    """Run `simulator` on 127.0.0.1 (port 0 picks a free one) and stop every thread it started on exit."""
    server = _Server(("127.0.0.1", port), simulator)
    simulator.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    # A short poll interval keeps shutdown quick; the test suite starts one server per test.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{type(simulator).__name__}-http", daemon=True
    )
    thread.start()
    try:
        yield simulator
    finally:
        simulator.stop_activity()
        server.shutdown()
        server.server_close()
        thread.join()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """Send a webhook the way an upstream does: one POST, its status kept, nothing raised (0 when unreachable)."""
    # S310: the URLs are the receivers the tests and the demo chose, always http.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_for_ctrl_c() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
