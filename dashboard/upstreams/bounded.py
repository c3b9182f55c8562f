"""HTTP answers read within bounds: at most so many bytes, and within one deadline for the whole call.

requests reads a whole answer into memory, however long, and its timeouts bound each read of the
socket, not the call: an answer of 150 MB is held whole (then copied by the JSON parser), and one
that drips a byte every few seconds never ends. Here the body is streamed and counted (a
Content-Length past the limit is refused unread), and a watchdog shuts the call's sockets when its
deadline passes, wherever it waits (connecting, the headers, the body); a retry after that is refused.

Free of Django on purpose: pulseboard-build (on CI agents) uses it as the server does.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

CHUNK_BYTES = 64 * 1024


class AnswerTooLarge(Exception):
    """The answer is longer than the caller's limit; it was not read past it."""

    def __init__(self, limit: int):
        super().__init__(f"the answer is larger than {_size(limit)}")
        self.limit = limit


class DeadlinePassed(Exception):
    """The whole call (every retry included) took longer than its deadline."""

    def __init__(self, seconds: float):
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


class _Call:
    """One call's deadline and the sockets it has used, which the watchdog shuts when the deadline passes."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.sockets.append(sock)
            expired = self.expired
        if expired or time.monotonic() >= self.ends_at:
            self.expire()

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, even under TLS: it wakes a read blocked in another thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[_Call]:
    """Every request this thread makes inside the block, through a WatchedAdapter, ends by then."""
    call, outer = _Call(seconds), getattr(_current, "call", None)
    timer = threading.Timer(seconds, call.expire)
    timer.daemon = True
    _current.call = call
    timer.start()
    try:
        yield call
    finally:
        timer.cancel()
        _current.call = outer


def _watch(sock: socket.socket | None) -> None:
    call = getattr(_current, "call", None)
    if call is not None:
        if call.expired:
            raise DeadlinePassed(call.seconds)  # not an OSError: urllib3 does not retry it
        call.watch(sock)


class _Watched:
    def _new_conn(self):
        _watch(None)
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args, **kwargs):
        _watch(self.sock)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections (direct or through a proxy) answer to `deadline`."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = POOLS
        return manager


class WatchedRetry(Retry):
    """urllib3's Retry, except that a wait (backoff or Retry-After) that would end past the call's deadline is
    not waited: the retries end there, and the caller gets the answer that asked for the wait (a 429 or 503)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        call = getattr(_current, "call", None)
        if call is not None and response is not None:
            try:
                wait = retry.get_retry_after(response) if retry.respect_retry_after_header else None
            except InvalidHeader:
                wait = None
            if time.monotonic() + (wait if wait is not None else retry.get_backoff_time()) >= call.ends_at:
                raise MaxRetryError(_pool, url, error)  # with raise_on_status=False, urllib3 returns `response`
        return retry


def read_body(response: requests.Response, *, limit: int) -> None:
    """Read a streamed answer's body into `response` (so .content, .text and .json() work), or raise
    AnswerTooLarge past `limit` bytes, counted after decompression (a small gzip cannot unpack to gigabytes)."""
    try:
        declared = int(response.headers.get("Content-Length", ""))
    except ValueError:
        declared = None
    if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
        response.close()
        raise AnswerTooLarge(limit)
    chunks, size = [], 0
    for chunk in response.iter_content(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            response.close()
            raise AnswerTooLarge(limit)
        chunks.append(chunk)
    # What requests' own .content does with a streamed body, once it is read.
    response._content = b"".join(chunks)
    response._content_consumed = True
    response.close()


def masked_url(url: str) -> str:
    """`url` fit to print or log: a password in it (https://ci:s3cret@host/api) becomes ***, and so does a
    user name that stands alone, which is often a token."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):g} MiB" if count >= 1024 * 1024 else f"{count} bytes"
