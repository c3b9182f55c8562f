"""Every upstream answer is read within bounds, over real HTTP on loopback: a body past
UPSTREAM_MAX_ANSWER_BYTES is refused as it streams (with or without a Content-Length), and an answer that
drips in ends at UPSTREAM_CALL_DEADLINE_SECONDS as "timed out", however slowly each byte comes."""

import time

import pytest

from dashboard.upstreams import http as upstream
from tests.raw_http import raw_server


def endless_chunks(conn, request, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(100_000):  # 6 GB, if nobody stopped reading
        if stop.is_set():
            return
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def declared_huge(conn, request, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n[")
    stop.wait(10)


def slow_drip(conn, request, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        if stop.wait(0.5):  # each byte well inside the read timeout
            return
        conn.sendall(b" ")


@pytest.mark.parametrize("answer", [endless_chunks, declared_huge], ids=["chunked", "declared"])
def test_an_answer_past_the_limit_is_refused_as_it_streams(settings, answer):
    settings.UPSTREAM_MAX_ANSWER_BYTES = 1024 * 1024
    session = upstream.make_session(headers={})
    with raw_server(answer) as url, pytest.raises(upstream.AnswerTooLarge, match="larger than 1 MiB") as caught:
        upstream.send(session, "GET", url + "/events")
    assert caught.value.permanent


def test_an_answer_that_drips_in_ends_at_the_deadline(settings):
    settings.UPSTREAM_CALL_DEADLINE_SECONDS = 2
    settings.UPSTREAM_TIMEOUT = (2, 5)
    session = upstream.make_session(headers={})
    started = time.monotonic()
    with raw_server(slow_drip) as url, pytest.raises(upstream.UpstreamError) as caught:
        upstream.send(session, "GET", url + "/events")
    assert upstream.short_reason(caught.value) == "timed out" and "within 2 s" in str(caught.value)
    assert time.monotonic() - started < 60, "it ended (the drip alone lasts 500 s)"
