"""What the HubSpot simulator cannot play for the hostile-server tests: a recorder and a refused port.

The hostile servers themselves (redirect, trickle, slow headers, huge, endless) are modes of the
simulator (`hubspot_simulator.hostile`). What stays here, standard library only:

- `Recorder`: answers every request with a 200 `{}` and records it, headers and body included, on
  any loopback address (IPv6 too, which the simulator does not bind). The target of a redirect:
  it must receive nothing, so no credential can have reached it.
- `refused_port()`: a port where connections are refused.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MAX_REQUEST_BODY = 1 << 20


@dataclass
class Received:
    """A request as the recorder received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Recorder:
    """A ThreadingHTTPServer on a loopback address, port 0, that records every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = (_IPv6Server if ":" in host else _Server)((host, 0), _Handler)
        self._server.recorder = self
        self.host = f"[{host}]" if ":" in host else host

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (or `[::1]`)."""
        return f"http://{self.host}:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def note(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_REQUEST_BODY))
        self.server.recorder.note(Received(self.command, self.path, dict(self.headers.items()), body))
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 2\r\n\r\n{}")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port that refuses connections for as long as the returned socket stays open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused, and no one else gets it
    return sock, sock.getsockname()[1]
