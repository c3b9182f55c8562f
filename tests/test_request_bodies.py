"""`serve` refuses an oversized or unauthenticated body before reading it, over raw HTTP on loopback.

Each test sends its headers, then body as fast as the server takes it, and stops at the first byte of an
answer: the server must answer before it has been sent more than a few MiB (so it read no further), without
its memory growing and without a temp file. Each prints what it measured (`-s` shows it).
"""

import os
import re
import select
import socket
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.models import Incident, IncidentNote
from dashboard.upstreams.webhooks import MAX_BODY_BYTES
from tests.processes import base_env, free_port, start_manage, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "a-webhook-secret"
MIB = 1024 * 1024
PIECE = b"x" * 65536
SEND_AT_MOST = 64 * MIB  # a server that reads everything never answers before this much
ANSWERED_WITHIN = 16 * MIB  # the limit plus what loopback's socket buffers hold


@pytest.fixture
def server(hth_sim, oneuptime_sim, tmp_path):
    env = base_env(
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        ONEUPTIME_API_URL=oneuptime_sim.url,
        ONEUPTIME_API_KEY=oneuptime_sim.api_key,
        HTH_WEBHOOK_SECRET=SECRET,
        ONEUPTIME_WEBHOOK_SECRET=SECRET,
        POLL_INTERVAL_SECONDS="60",
    )
    port = free_port()
    with open(tmp_path / "serve.log", "w") as log:
        process = start_manage("serve", "--port", str(port), env=env, log=log)
        try:
            wait_for_port(port, process)
            process.port = port
            yield process
        finally:
            process.terminate()
            process.wait(timeout=15)
    print((tmp_path / "serve.log").read_text()[-3000:])


def rss_mb(process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def temp_files(process) -> list[str]:
    """The server's open files in the temp directory (Twisted's body buffers are unlinked at once: "(deleted)")."""
    found = []
    for fd in Path(f"/proc/{process.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
            found.append(target)
    return found


def send_until_answered(port: int, head: bytes, pieces, *, server) -> tuple[bytes, float, int, list[str]]:
    """Send `head`, then `pieces` until the first byte of an answer: (the answer, seconds to it, body bytes sent,
    temp files the server held once 1 MiB had been sent)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    started = time.monotonic()
    _send_all(sock, head)
    sent, held, answer, pending = 0, [], b"", b""
    try:
        while sent < SEND_AT_MOST:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            if not writable:
                continue
            if not pending:
                pending = next(pieces)
            try:
                count = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending = pending[count:]
            if sent < MIB <= sent + count:
                held = temp_files(server)
            sent += count
        seconds = time.monotonic() - started
        sock.setblocking(True)
        sock.settimeout(3)
        try:
            while not answer.endswith(b"\n") or b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (TimeoutError, ConnectionResetError):
            pass
    finally:
        sock.close()
    return answer, seconds, sent, held


def _send_all(sock, data: bytes) -> None:
    while data:
        select.select([], [sock], [], 5)
        data = data[sock.send(data) :]


def endless(piece=PIECE):
    while True:
        yield piece


def endless_chunks():
    while True:
        yield b"%x\r\n%s\r\n" % (len(PIECE), PIECE)


def request_head(path: str, *, length: int | None = None, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refused(server, head: bytes, pieces, status: int, label: str) -> bytes:
    before = rss_mb(server)
    answer, seconds, sent, held = send_until_answered(server.port, head, pieces, server=server)
    after = rss_mb(server)
    print(f"{label}: {answer[:40]!r} after {seconds:.3f} s and {sent / MIB:.1f} MiB sent; RSS {before:.0f} -> {after:.0f} MB")
    assert answer.startswith(b"HTTP/1.1 %d " % status), (answer[:200], sent)
    assert sent < ANSWERED_WITHIN, f"answered only after {sent / MIB:.0f} MiB"
    assert after - before < 30, f"RSS grew from {before:.0f} to {after:.0f} MB"
    assert not held, held
    return answer.split(b"\r\n\r\n", 1)[1]


def test_a_body_declared_too_large_is_refused_before_it_is_read(server):
    for path in ["/", "/accounts/login/", "/admin/dashboard/incidentnote/add/", "/no/such/page"]:
        body = refused(server, request_head(path, length=1000 * MIB), endless(), 413, f"1000 MiB Content-Length to {path}")
        assert body == b"the body is larger than 2621440 bytes\n"


@pytest.mark.parametrize("path", ["/", "/hooks/oneuptime/"])
def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit(server, path):
    headers = {"X-Pulseboard-Secret": SECRET}
    body = refused(server, request_head(path, headers=headers), endless_chunks(), 413, f"endless chunked body to {path}")
    assert body.startswith(b"the body is larger than ")


def test_a_webhook_without_its_secret_is_refused_before_its_body_is_read(server):
    cases = [
        ("/hooks/hth/", {}, 401),
        ("/hooks/hth/", {"X-Pulseboard-Secret": "wrong"}, 403),
        ("/hooks/oneuptime/", {}, 401),
        ("/hooks/oneuptime/", {"X-Pulseboard-Secret": "wrong"}, 403),
    ]
    for path, headers, status in cases:
        for length in (1000 * MIB, None):  # declared, then chunked
            pieces = endless_chunks() if length is None else endless()
            refused(server, request_head(path, length=length, headers=headers), pieces, status, f"{path} {headers} {length}")


@pytest.mark.parametrize("headers", [{"X-Pulseboard-Secret": SECRET}, {"X-Hub-Signature": "0" * 40}])
def test_a_webhook_body_is_bounded_by_the_receivers_own_limit(server, headers):
    body = refused(
        server, request_head("/hooks/hth/", length=MAX_BODY_BYTES + 1, headers=headers), endless(), 413, f"hook {headers}"
    )
    assert body == f"the body is larger than {MAX_BODY_BYTES} bytes\n".encode()


def test_bodies_within_the_limits_still_reach_the_pages_and_the_receivers(server, hth_sim):
    url = f"http://127.0.0.1:{server.port}"
    push = hth_sim.add_event(target="push")
    body = hth_sim.webhook_body([push])
    answer = requests.post(
        f"{url}/hooks/hth/", data=iter([body[:10], body[10:]]), headers={"X-Pulseboard-Secret": SECRET}, timeout=10
    )
    assert answer.status_code == 202, answer.text  # chunked, since requests streams an iterator
    assert requests.post(f"{url}/hooks/hth/", data=body, headers={"X-Pulseboard-Secret": SECRET}, timeout=10).status_code == 202

    # A form of 2 MiB (an admin's long note, twice) reaches Django, which answers it (here: no CSRF token).
    form = {"username": "admin", "password": "x", "note": "ä" * (MIB // 3)}
    answer = requests.post(f"{url}/accounts/login/", data=form, timeout=10)
    assert answer.status_code == 403 and "CSRF" in answer.text


def test_a_client_that_asks_before_sending_is_told_no_instead_of_continue(server):
    """curl and other polite clients send `Expect: 100-continue` with a large body and wait: the 413 comes first."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request_head("/hooks/hth/", length=1000 * MIB, headers={"Expect": "100-continue"}))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401 "), answer


def test_an_admin_saves_a_long_note_through_serve_and_one_past_the_limit_is_413(server):
    """The admin's note form stays usable up to the limit: a note of a million characters is saved whole."""
    get_user_model().objects.create_superuser("admin", "admin@example.com", "a long pass phrase")
    incident = Incident.objects.create(upstream_id="i1", title="Down", synced_at=timezone.now())
    url = f"http://127.0.0.1:{server.port}"
    browser = requests.Session()
    browser.get(f"{url}/accounts/login/", timeout=10)
    login = {"username": "admin", "password": "a long pass phrase", "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    assert browser.post(f"{url}/accounts/login/", data=login, timeout=10).url == f"{url}/"

    def add_note(text: str) -> requests.Response:
        form = browser.get(f"{url}/admin/dashboard/incidentnote/add/", timeout=10).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        fields = {"csrfmiddlewaretoken": token, "incident": incident.pk, "note": text, "posted_at_0": "", "posted_at_1": ""}
        return browser.post(f"{url}/admin/dashboard/incidentnote/add/", data=fields, allow_redirects=False, timeout=30)

    long_note = "Investigating the outage. " * 40_000  # 1,040,000 characters
    answer = add_note(long_note)
    assert answer.status_code == 302, answer.text[-2000:]
    assert IncidentNote.objects.get(incident=incident).note == long_note

    answer = add_note("x" * 3 * MIB)
    assert (answer.status_code, answer.text) == (413, "the body is larger than 2621440 bytes\n")
    assert IncidentNote.objects.count() == 1
