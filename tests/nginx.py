"""Debian's nginx in front of `serve` nodes, configured by the README's own example (section "Behind nginx").

The README's two ```nginx blocks are used as they are, with only the node addresses, the listening ports
and the certificate changed; a test-only main context (pid, logs, temporary paths) wraps them. A test
may point the upstream at other nodes and reload nginx, as an operator does during a deploy.

    with Nginx(tmp_path, nodes=["127.0.0.1:8001", "127.0.0.1:8002"]) as proxy:
        proxy.url            # https://pulse.example.com:<port>, for a browser that maps the name to loopback
        proxy.set_nodes([...])  # rewrite the upstream, then `nginx -s reload`
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.processes import BASE_DIR, free_port

NGINX = "/usr/sbin/nginx"
HOST = "pulse.example.com"  # the README's name; browsers map it to 127.0.0.1 (see resolver_rule)
MIME_TYPES = "/etc/nginx/mime.types"


def available() -> bool:
    return Path(NGINX).exists() and shutil.which("openssl") is not None


def resolver_rule() -> str:
    """Chromium's --host-resolver-rules entry that sends the README's host name to loopback."""
    return f"MAP {HOST} 127.0.0.1"


def readme_blocks() -> tuple[str, str]:
    """The README's main-context block and its site block, in that order."""
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("### Behind nginx", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```nginx\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "README, Behind nginx: a main-context block, then the site"
    return blocks[0], blocks[1]


def site_config(site: str, *, nodes: list[str], http_port: int, https_port: int, certificate: Path, key: Path) -> str:
    """The README's site with our addresses: every replacement must find its line, or the README changed shape."""

    def replace(pattern: str, replacement: str, text: str, *, count: int = 1) -> str:
        new, found = re.subn(pattern, replacement, text)
        assert found == count, f"README's nginx site: expected {count} of {pattern!r}, found {found}"
        return new

    upstream = "".join(f"    server {node} max_fails=1 fail_timeout=5s;\n" for node in nodes)
    site = replace(r"(upstream pulseboard \{\n)(?:    server [^\n]*\n)+", lambda m: m.group(1) + upstream, site)
    site = replace(r"listen 80;", f"listen 127.0.0.1:{http_port};", site)
    site = replace(r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;", site)
    site = replace(r"return 301 https://\$host\$request_uri;", f"return 301 https://$host:{https_port}$request_uri;", site)
    site = replace(r"ssl_certificate [^;]*;", f"ssl_certificate {certificate};", site)
    site = replace(r"ssl_certificate_key [^;]*;", f"ssl_certificate_key {key};", site)
    return site


class Nginx:
    def __init__(self, directory: Path, *, nodes: list[str], edit=None):
        """`edit(site)` may change the README's site before use (a test of what a changed line breaks)."""
        self.directory = Path(directory) / "nginx"
        self.nodes = list(nodes)
        self.edit = edit or (lambda site: site)
        self.http_port, self.https_port = free_port(), free_port()
        self.url = f"https://{HOST}:{self.https_port}"
        self.plain_url = f"http://{HOST}:{self.http_port}"
        self.process: subprocess.Popen | None = None

    # -- files ----------------------------------------------------------------------------------------------
    def _certificate(self) -> tuple[Path, Path]:
        certificate, key = self.directory / "cert.pem", self.directory / "key.pem"
        if not certificate.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={HOST}",
                 "-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(certificate)],
                check=True, capture_output=True,
            )  # fmt: skip
        return certificate, key

    def _write_config(self) -> None:
        main, site = readme_blocks()
        certificate, key = self._certificate()
        temp = self.directory / "temp"
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / name).mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read this test's private directory
        site = site_config(
            site, nodes=self.nodes, http_port=self.http_port, https_port=self.https_port, certificate=certificate, key=key
        )
        site = self.edit(site)
        (self.directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {self.directory}/nginx.pid;\nerror_log {self.directory}/error.log notice;\n"
            f"{main}\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n"
            f"include {MIME_TYPES};\naccess_log {self.directory}/access.log;\n"
            + "".join(f"{name}_temp_path {temp / name};\n" for name in ("proxy", "fastcgi", "uwsgi", "scgi"))
            + f"client_body_temp_path {temp / 'body'};\n{site}\n}}\n"
        )

    def _nginx(self, *args: str) -> list[str]:
        return [NGINX, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf"), *args]

    # -- running --------------------------------------------------------------------------------------------
    def start(self) -> "Nginx":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_config()
        subprocess.run(self._nginx("-t", "-q"), check=True, capture_output=True)
        self.process = subprocess.Popen(self._nginx("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.process.stderr.read().decode()}") from None
                time.sleep(0.05)

    def set_nodes(self, nodes: list[str]) -> None:
        """Point the upstream at `nodes` and reload, as an operator does: new connections go there at once."""
        self.nodes = list(nodes)
        self._write_config()
        subprocess.run(self._nginx("-t", "-q"), check=True, capture_output=True)
        reloads = self.log().count("reconfiguring")
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (
            self.log().count("reconfiguring") == reloads or "start worker process" not in self.log().rsplit("reconfiguring", 1)[1]
        ):
            assert time.monotonic() < deadline, f"nginx did not reload: {self.log()[-2000:]}"
            time.sleep(0.05)

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown; SIGKILL if it will not go
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> "Nginx":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
