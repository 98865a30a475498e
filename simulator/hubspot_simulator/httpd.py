"""HTTP plumbing: a threading HTTP/1.1 server that hands each request to the simulator."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .responses import REASONS, Response, error

#: ``app(method, raw_path, headers, body)`` answers one request.
App = Callable[[str, str, Any, bytes], Response]


class Handler(BaseHTTPRequestHandler):
    """Thin HTTP adapter: reads the request, lets the simulator answer, writes it in one go."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    server_version = "HubSpotSimulator/1.0"
    disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stalls on small answers
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (stdout/stderr must stay quiet and fast)."""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._write(error(400, "Unreadable request body", None))
            return
        resp = self.server.app(self.command, self.path, self.headers, body)
        if resp.play is not None:
            # A hostile answer writes itself, for as long as it takes; the connection ends with it.
            self.close_connection = True
            resp.play(self.wfile)
            return
        if resp.drop:
            # Close without answering: the client sees a connection error.
            self.close_connection = True
            return
        self._write(resp)

    def _write(self, resp: Response) -> None:
        lines = [
            f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}",
            f"Content-Type: {resp.content_type}",
            f"Content-Length: {len(resp.body)}",
        ]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that tracks its connections so ``stop()`` can close kept-alive ones."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)
        if tls is not None:  # each handshake happens in its connection's thread, on the first read
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self.server_address[:2]
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection, remembering it while it is open."""
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def close_connections(self) -> None:
        """Shut down kept-alive connections so a stopped simulator answers nothing more."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, also under TLS: it wakes the connection's thread
                # without tearing the TLS object down under it.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report unexpected handler errors on stderr; clients hanging up (or failing TLS) are normal."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        print(f"hubspot-simulator: error handling a request from {client_address}:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)

    def shutdown_now(self) -> None:
        """Stop ``serve_forever``, close every connection and the listening socket."""
        stopper = threading.Thread(target=self.shutdown, daemon=True)
        stopper.start()
        # Wake serve_forever's select() with a throwaway connection instead of waiting
        # for its poll interval (keeps fixtures that start/stop per test fast).
        with contextlib.suppress(OSError), socket.create_connection(self.address, timeout=1):
            pass
        stopper.join(timeout=5)
        self.close_connections()
        self.server_close()
