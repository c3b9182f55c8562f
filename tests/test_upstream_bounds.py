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


def slow_head(conn, request, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(1000):
        if stop.wait(0.5):
            return
        conn.sendall(b"a")


@pytest.mark.parametrize("answer", [slow_drip, slow_head], ids=["body", "headers"])
def test_an_answer_that_drips_in_ends_at_the_deadline(settings, answer):
    settings.UPSTREAM_CALL_DEADLINE_SECONDS = 2
    settings.UPSTREAM_TIMEOUT = (2, 5)
    session = upstream.make_session(headers={})
    started = time.monotonic()
    with raw_server(answer) as url, pytest.raises(upstream.UpstreamError) as caught:
        upstream.send(session, "GET", url + "/events")
    assert upstream.short_reason(caught.value) == "timed out" and "within 2 s" in str(caught.value)
    assert time.monotonic() - started < 60, "it ended (the drip alone lasts 500 s)"


def test_a_wait_that_would_pass_the_deadline_is_not_waited(settings):
    settings.UPSTREAM_CALL_DEADLINE_SECONDS = 5
    asked = []

    def busy(conn, request, stop):
        asked.append(request)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 20\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")

    with raw_server(busy) as url:
        response = upstream.send(upstream.make_session(headers={}), "GET", url + "/events")
    assert (response.status_code, response.content, len(asked)) == (503, b"busy", 1), "the 503 itself, not a timeout"
