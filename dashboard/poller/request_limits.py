"""Refuse a request body before daphne reads it: too long by its Content-Length or as it streams, or a webhook
whose secret header already says no.

Daphne (through Twisted) reads a whole body, into memory or a temp file past 100 kB, before the application
sees a byte of it, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE and the receivers' 1 MiB were judged only after an
anonymous 1000 MiB POST had cost 37 s and a gigabyte. Twisted tells a request its length as soon as the headers
are in (`gotLength`) and hands it the body piece by piece (`handleContentChunk`): there we judge the headers,
count what arrives, keep the body in memory (it is small once bounded), and answer a refusal at once.

A refused connection answers, stops reading into anything, half-closes, and drops whatever the client still
sends for a few seconds before it is cut: closing at once with unread data would reset the connection, and
the client might never read its 413.
"""

import logging
from io import BytesIO
from urllib.parse import unquote

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils.datastructures import CaseInsensitiveMapping

log = logging.getLogger(__name__)

LINGER_SECONDS = 5  # how long a refused client's further bytes are read and dropped before the connection is cut
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Content Too Large"}


def judge_headers(method: str, path: str, headers: CaseInsensitiveMapping) -> tuple[int, tuple[int, str] | None]:
    """The most body bytes this request may send, and a refusal (status, one line) when its headers decide it.

    A view may bound its own route tighter (`max_body_bytes`) and judge credentials that travel in headers
    (`refuse_before_body(method, headers)`); the webhook receivers do both (upstreams/webhooks.py).
    """
    limit = settings.MAX_REQUEST_BODY_BYTES
    try:
        view = resolve(path).func
    except Resolver404:
        view = None
    limit = min(limit, getattr(view, "max_body_bytes", limit))
    refusal = view.refuse_before_body(method, headers) if hasattr(view, "refuse_before_body") else None
    return limit, refusal


class BoundedRequest(WebRequest):
    """Daphne's request, judged from its headers and counted as its body arrives (see the module's docstring)."""

    refused = False

    def gotLength(self, length):
        """Headers are in; `length` is the Content-Length, or None for a chunked body."""
        self.received = 0
        self.content = BytesIO()  # never a temp file: a body that outgrows the limit is refused before it is large
        # Twisted hands the request its method and path only once the body is in; until then its channel has them.
        try:
            path = unquote(self.channel._path.split(b"?", 1)[0].decode("ascii"))
        except UnicodeDecodeError:
            path = "/"  # daphne answers such a path with its own 400
        headers = CaseInsensitiveMapping(
            {
                name.decode("latin-1"): b", ".join(values).decode("latin-1")
                for name, values in self.requestHeaders.getAllRawHeaders()
            }
        )
        self.body_limit, refusal = judge_headers(self.channel._command.decode("latin-1"), path, headers)
        if refusal:
            self.refuse(*refusal)
        elif length is not None and length > self.body_limit:
            self.refuse(413, self.too_large())

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.body_limit:
            self.refuse(413, self.too_large())
            return
        self.content.write(data)

    def requestReceived(self, command, path, version):
        if not self.refused:  # a refused request with an empty body still ends here
            super().requestReceived(command, path, version)

    def too_large(self) -> str:
        return f"the body is larger than {self.body_limit} bytes"

    def refuse(self, status: int, message: str) -> None:
        """Answer now, read nothing more into anything, and cut the connection after LINGER_SECONDS at most."""
        self.refused = True
        self.content = BytesIO()
        channel, transport = self.channel, self.channel.transport
        channel.dataReceived = lambda data: None  # the rest of the body, and anything after it, is dropped
        body = (message + "\n").encode()
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, REASONS[status].encode(), len(body), body)
        )
        transport.loseWriteConnection()  # the answer, then FIN; the client's further bytes are still read and dropped
        channel.callLater(LINGER_SECONDS, transport.abortConnection)
        log.info("refused a request to %s before reading its body: %d %s", channel._path[:200].decode("latin-1"), status, message)


class BoundedHTTPFactory(HTTPFactory):
    """Daphne's factory, making BoundedRequests: `serve` runs its daphne with this one."""

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedRequest
        return protocol
