"""A TCP relay between the processes under test and PostgreSQL (or Redis), which a test can cut and restore.

Cutting closes every relayed connection (as a restarted or unreachable server would); while it refuses,
each new connection is accepted and closed at once, so a client sees the server go away mid-session.
"""

import math
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class Relay:
    def __init__(self, database_url: str):
        url = urlsplit(database_url)
        self.target = (url.hostname or "127.0.0.1", url.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        credentials = url.netloc.rsplit("@", 1)[0] + "@" if "@" in url.netloc else ""  # redis:// URLs often have none
        self.url = urlunsplit(url._replace(netloc=f"{credentials}127.0.0.1:{port}"))
        self.refusing: float = 0
        self.blackholed = False
        self.cut_on: tuple[bytes, float] | None = None  # (bytes a client sends, connections to refuse then)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="db-relay", daemon=True).start()

    def down(self) -> None:
        """Cut every connection and refuse new ones until `up()`."""
        self.flap(refuse=math.inf)

    def up(self) -> None:
        self.refusing = 0
        self.blackholed = False

    def blackhole(self) -> None:
        """A partition: connections stay open and new ones are accepted, but nothing gets through."""
        self.blackholed = True

    def flap(self, *, refuse: int | float) -> None:
        """Cut every connection and refuse the next `refuse` ones."""
        with self._lock:
            self.refusing = refuse
            for sock in list(self._sockets):
                _close(sock)
            self._sockets.clear()

    def cut_when_sent(self, marker: bytes, *, refuse: int | float) -> None:
        """Once a client sends `marker` (e.g. the start of an INSERT), drop it unsent and `flap(refuse=…)`."""
        self.cut_on = (marker, refuse)

    def close(self) -> None:
        self._closed = True
        self.flap(refuse=math.inf)
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self.refusing > 0:
                    self.refusing -= 1
                    _close(client)
                    continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink, source is client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and (cut_on := self.cut_on) and cut_on[0] in data:
                    self.cut_on = None
                    self.flap(refuse=cut_on[1])
                    return
                if not self.blackholed:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
