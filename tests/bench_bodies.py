"""An anonymous 200 MiB POST to /hooks/hth/ (no secret), against plain daphne and against `serve`.

Plain `daphne config.asgi:application` reads the whole body (into a temp file past 100 kB) before Django
sees a byte and answers 401; `serve` answers from the headers (poller/request_limits.py). Printed per
server and per way of sending (a declared Content-Length, a chunked body): seconds to the answer, how
much the client had sent by then, the server's peak RSS over its idle RSS, and the largest temp file it held.
"""

import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
BODY = 200 * MIB
PIECE = b"x" * 65536


def main() -> None:
    from tests.processes import BASE_DIR, free_port, wait_for_port

    print("\n== Refusing a body before reading it (an anonymous 200 MiB POST to /hooks/hth/) ==")
    with tempfile.TemporaryDirectory() as scratch:
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"sqlite:///{Path(scratch) / 'bench.sqlite3'}",
            "HTH_API_URL": "http://127.0.0.1:9/api",  # the receiver only needs it set; nothing polls it here
            "HTH_COMPANY_KEY": "bench",
            "HTH_ACCOUNT_KEY": "bench",
            "HTH_WEBHOOK_SECRET": "bench-secret",
            "POLL_INTERVAL_SECONDS": "3600",
        }
        env.pop("REDIS_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True, capture_output=True
        )
        for name, command in [
            ("plain daphne", ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "config.asgi:application"]),
            ("serve", ["manage.py", "serve", "--port", "{port}"]),
        ]:
            for chunked in (False, True):
                port = free_port()
                args = [part.format(port=port) for part in command]
                log = open(Path(scratch) / f"{port}.log", "w")  # noqa: SIM115 -- closed below
                process = subprocess.Popen([sys.executable, *args], cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=log)
                try:
                    try:
                        wait_for_port(port, process)
                    except RuntimeError:
                        raise RuntimeError((Path(scratch) / f"{port}.log").read_text()[-2000:]) from None
                    time.sleep(1)  # settled
                    figures = post(port, process.pid, chunked=chunked)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                    log.close()
                print(f"{name:>12}, {'chunked' if chunked else 'Content-Length':>14}: {described(figures)}")


def described(figures: dict) -> str:
    return (
        f"{figures['status']} after {figures['seconds']:.2f} s and {figures['sent'] / MIB:.0f} MiB sent; RSS {figures['idle']:.0f} MB "
        f"idle, {figures['peak']:.0f} MB at most; largest temp file {figures['temp'] / MIB:.0f} MiB"
    )


def post(port: int, pid: int, *, chunked: bool) -> dict:
    head = "POST /hooks/hth/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {BODY}\r\n\r\n"
    piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
    idle = peak = rss_mb(pid)
    temp = 0
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    sock.sendall(head.encode())
    sock.setblocking(False)
    sent, pending, answer = 0, b"", b""
    while sent < BODY:
        readable, writable, _ = select.select([sock], [sock], [], 10)
        if readable or not writable:
            break
        pending = pending or piece
        try:
            count = sock.send(pending)
        except OSError:
            break
        pending, sent = pending[count:], sent + count
        if sent % (8 * MIB) < count:
            peak, temp = max(peak, rss_mb(pid)), max(temp, temp_bytes(pid))
    if sent >= BODY and chunked:
        sock.sendall(b"0\r\n\r\n")
    sock.setblocking(True)
    sock.settimeout(120)
    try:
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    except OSError:
        pass
    seconds = time.monotonic() - started
    peak, temp = max(peak, rss_mb(pid)), max(temp, temp_bytes(pid))
    sock.close()
    return {
        "status": answer.split(b"\r\n")[0].decode() or "no answer",
        "seconds": seconds,
        "sent": sent,
        "idle": idle,
        "peak": peak,
        "temp": temp,
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def temp_bytes(pid: int) -> int:
    largest = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).endswith("(deleted)"):
                largest = max(largest, fd.stat().st_size)
        except OSError:
            continue
    return largest


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    main()
