"""Hostile HTTP servers for tests: each misbehaves in one way and records what it received and sent.

Standard library only and independent of the target, so that these can become modes of the HubSpot
simulator. Each server listens on a free loopback port and answers every request with its mode:

- `record`: a 200 with `{}` (use it as the target of a redirect: it must receive nothing);
- `redirect`: `status` (301/302/307/308) with `Location: location + path`;
- `trickle`: a 200 declaring `declared` bytes, then one byte every `interval` seconds;
- `slow_headers`: the status line, then the headers one byte every `interval` seconds;
- `huge`: a 200 declaring `declared` bytes (default 200 MB), streamed as fast as the client reads;
- `huge_undeclared`: the same without Content-Length (the body ends when the connection closes);
- `endless_chunked`: a chunked 200 that never ends.

With `tls` (an `ssl.SSLContext`), the same over https. Every misbehaving loop ends by itself: when the client hangs up, after `max_seconds`, or when the
server stops. `sent` tells, per request, how many body bytes the server got onto the wire and
whether the client hung up first.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MODES = ("record", "redirect", "trickle", "slow_headers", "huge", "huge_undeclared", "endless_chunked")
MAX_REQUEST_BODY = 1 << 20
_CHUNK = b"\0" * 65536


@dataclass
class Received:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Sent:
    """What the server managed to send for one request."""

    path: str
    body_bytes: int = 0
    hung_up: bool = False  # the client closed the connection before the server was done


class _HungUp(Exception):
    pass


class HostileServer:
    """A ThreadingHTTPServer on a loopback address, port 0, answering every request with one hostile `mode`."""

    def __init__(
        self, mode: str = "record", *, status: int = 302, location: str = "", declared: int = 200_000_000,
        interval: float = 1.0, max_seconds: float = 30.0, host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        self.mode = mode
        self.status = status
        self.location = location
        self.declared = declared
        self.interval = interval
        self.max_seconds = max_seconds
        self.received: list[Received] = []
        self.sent: list[Sent] = []
        self._stopping = threading.Event()
        self._active = 0
        self._cond = threading.Condition()
        self._server = (_IPv6Server if ":" in host else _Server)((host, 0), _Handler)
        self._server.hostile = self
        self.scheme = "https" if tls else "http"
        if tls:  # the handshake happens in the handler's thread, on its first read
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.host = f"[{host}]" if ":" in host else host
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (or `https://`, `[::1]`)."""
        return f"{self.scheme}://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no request is being answered (the loops noticed the client hang up)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    # --- used by the handler -----------------------------------------------------------

    def _begin(self, received: Received) -> Sent:
        sent = Sent(received.path)
        with self._cond:
            self._active += 1
            self.received.append(received)
            self.sent.append(sent)
        return sent

    def _end(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def _running(self, started: float) -> bool:
        return not self._stopping.is_set() and time.monotonic() - started < self.max_seconds


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: HostileServer


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _serve(self) -> None:
        hostile = self.server.hostile
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_REQUEST_BODY))
        sent = hostile._begin(Received(self.command, self.path, dict(self.headers.items()), body))
        self.close_connection = True
        try:
            getattr(self, f"_mode_{hostile.mode}")(hostile, sent)
        except (_HungUp, BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError):
            sent.hung_up = True
        finally:
            hostile._end()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _write(self, data: bytes, sent: Sent | None = None) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:
            raise _HungUp from exc
        if sent is not None:
            sent.body_bytes += len(data)

    def _head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} Hostile", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _mode_record(self, hostile: HostileServer, sent: Sent) -> None:
        del hostile
        self._head(200, {"Content-Type": "application/json", "Content-Length": "2"})
        self._write(b"{}", sent)

    def _mode_redirect(self, hostile: HostileServer, sent: Sent) -> None:
        del sent
        self._head(hostile.status, {"Location": hostile.location + self.path, "Content-Length": "0"})

    def _mode_trickle(self, hostile: HostileServer, sent: Sent) -> None:
        self._head(200, {"Content-Type": "application/json", "Content-Length": str(hostile.declared)})
        started = time.monotonic()
        while sent.body_bytes < hostile.declared and hostile._running(started):
            self._write(b" ", sent)
            time.sleep(hostile.interval)

    def _mode_slow_headers(self, hostile: HostileServer, sent: Sent) -> None:
        del sent
        started = time.monotonic()
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 10_000:
            if not hostile._running(started):
                return
            self._write(bytes([byte]))
            time.sleep(hostile.interval)

    def _stream(self, hostile: HostileServer, sent: Sent, *, frame: bool, limit: int | None) -> None:
        started = time.monotonic()
        while (limit is None or sent.body_bytes < limit) and hostile._running(started):
            if frame:
                self._write(b"%x\r\n" % len(_CHUNK))
            self._write(_CHUNK, sent)
            if frame:
                self._write(b"\r\n")

    def _mode_huge(self, hostile: HostileServer, sent: Sent) -> None:
        self._head(200, {"Content-Type": "application/json", "Content-Length": str(hostile.declared)})
        self._stream(hostile, sent, frame=False, limit=hostile.declared)

    def _mode_huge_undeclared(self, hostile: HostileServer, sent: Sent) -> None:
        self._head(200, {"Content-Type": "application/json"})
        self._stream(hostile, sent, frame=False, limit=hostile.declared)

    def _mode_endless_chunked(self, hostile: HostileServer, sent: Sent) -> None:
        self._head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        self._stream(hostile, sent, frame=True, limit=None)


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port that refuses connections for as long as the returned socket stays open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused, and no one else gets it
    return sock, sock.getsockname()[1]
