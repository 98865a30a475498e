"""HTTP exchanges through urllib3, each bounded in time (`request_timeout`) and size (`MAX_RESPONSE_BYTES`).

A socket timeout bounds each read, not an answer: a server sending one byte a second would hold a
request forever, and one sending an endless body would fill memory. So every exchange (connect,
send, the complete answer) has a deadline, enforced by a watchdog thread that shuts the socket down,
and the body is read in pieces up to a fixed cap. Redirects are never followed: HubSpot does not
redirect API calls, and following one would send the request (and its credentials) elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests.certs
import requests.utils
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import parse_url

#: Largest answer read (32 MiB). HubSpot's largest answers (a 100-input batch, a property
#: catalogue with options) are well under 2 MiB; anything larger is not HubSpot.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024


class ResponseTooLarge(urllib3.exceptions.ProtocolError):
    """The answer was longer than `MAX_RESPONSE_BYTES`; it was not read further."""


class ExchangeTimeout(urllib3.exceptions.TimeoutError):
    """The exchange did not complete within `request_timeout` (a slow or trickling answer)."""


@dataclass(frozen=True)
class Reply:
    """A complete HTTP answer."""

    status: int
    headers: Mapping[str, str]
    content: bytes


class _Exchange:
    """One request in flight: its deadline and the connection it uses."""

    __slots__ = ("conn", "deadline", "done", "expired", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: _WatchedHTTPConnection | _WatchedHTTPSConnection | None = None
        # The socket the answer is read from: http.client lets go of it (conn.sock = None) when
        # the server says Connection: close, while the response still reads from it.
        self.sock: socket.socket | None = None
        self.done = False
        self.expired = False


class _Watchdog:
    """One daemon thread that shuts down the socket of every exchange still running at its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Exchange]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def start(self, exchange: _Exchange) -> None:
        """Watch `exchange`, made by the calling thread, until `finish`."""
        self._local.exchange = exchange
        with self._cond:
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (exchange.deadline, next(self._seq), exchange))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-watchdog", daemon=True)
                self._thread.start()
            elif earliest is None or exchange.deadline < earliest:
                self._cond.notify()

    def attach(self, conn: _WatchedHTTPConnection | _WatchedHTTPSConnection, *, reading: bool = False) -> None:
        """Note the connection the calling thread's exchange is using (and its socket once `reading`)."""
        exchange: _Exchange | None = getattr(self._local, "exchange", None)
        if exchange is None:
            return
        with self._cond:
            exchange.conn = conn
            conn.exchange = exchange
            if reading:
                exchange.sock = conn.sock

    def finish(self, exchange: _Exchange) -> bool:
        """Stop watching; True when the deadline had already passed (the socket was shut down)."""
        self._local.exchange = None
        with self._cond:
            exchange.done = True
            exchange.conn = exchange.sock = None  # it may wait in the heap until its deadline
            return exchange.expired

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, exchange = self._heap[0]
                now = time.monotonic()
                if exchange.done or deadline <= now:
                    heapq.heappop(self._heap)
                    if not exchange.done:
                        self._expire(exchange)
                else:
                    self._cond.wait(deadline - now)

    @staticmethod
    def _expire(exchange: _Exchange) -> None:
        # Lock held. A connection already handed to another exchange is left alone.
        exchange.expired = True
        conn = exchange.conn
        if conn is None or conn.exchange is not exchange:
            return
        sock = exchange.sock or conn.sock
        if sock is not None:
            # The plain socket's shutdown, also for TLS: it wakes the reading thread without
            # tearing down the TLS object under it.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


class _Watched:
    """Puts each step of an exchange (connect, send, read) under the watchdog's deadline."""

    exchange: _Exchange | None = None

    def connect(self) -> None:
        _WATCHDOG.attach(self)  # type: ignore[arg-type]  # mixed into urllib3's connections
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - urllib3's signature
        _WATCHDOG.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> urllib3.HTTPResponse:
        _WATCHDOG.attach(self, reading=True)  # type: ignore[arg-type]
        return super().getresponse()  # type: ignore[misc, no-any-return]


class _WatchedHTTPConnection(_Watched, HTTPConnection):  # type: ignore[misc]  # same getresponse
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):  # type: ignore[misc]  # same getresponse
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@functools.lru_cache(maxsize=512)  # a run uses a handful of URLs; parsing one costs ~30 µs
def origin(url: str) -> str:
    """`scheme://host:port` of a URL, as urllib3 parses it."""
    parts = parse_url(url)
    return f"{parts.scheme}://{parts.host}:{parts.port or ''}"


class Transport:
    """HTTP through urllib3, the engine under `requests`, without requests' per-call layers.

    Measured on the benchmark machine, a 100-input upsert costs ~1.7 ms of client CPU through
    `requests.Session` and ~1.0 ms through urllib3 directly: 6-7 µs per record, a fifth of
    the per-record budget. Proxy and CA settings follow the same environment variables as
    requests (`HTTPS_PROXY`, `NO_PROXY`, `REQUESTS_CA_BUNDLE`, ...), through requests' helpers.
    One instance serves every request of a run (API and OAuth token requests), from any thread.
    """

    def __init__(
        self, *, timeout: float, pool_size: int = 10, user_agent: str = "target-hubspot-upsert",
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        """Configure; connections are opened when first needed."""
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.bytes_read = 0  # body bytes received, all requests (tests read it)
        self._pool_size = pool_size
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._ca_certs = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or requests.certs.where()  # type: ignore[attr-defined]  # the stubs omit it; requests has it
        )
        self._lock = threading.Lock()
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._by_origin: dict[str, urllib3.PoolManager] = {}
        self._answered: set[str] = set()

    def _manager(self, url: str) -> urllib3.PoolManager:
        key = origin(url)
        manager = self._by_origin.get(key)
        if manager is not None:
            return manager
        proxies = requests.utils.get_environ_proxies(url)
        proxy = proxies.get(str(parse_url(url).scheme)) or proxies.get("all")
        with self._lock:
            manager = self._managers.get(proxy)
            if manager is None:
                options: dict[str, Any] = {
                    "num_pools": 4,
                    "maxsize": self._pool_size,
                    "ca_certs": self._ca_certs,
                }
                manager = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
                manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
                self._managers[proxy] = manager
            self._by_origin[key] = manager
        return manager

    def has_answered(self, url: str) -> bool:
        """True once the server at `url`'s origin has sent an HTTP answer during this run."""
        return origin(url) in self._answered

    def send(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> Reply:
        """One exchange within `timeout` seconds; failures raise urllib3 errors (never follows redirects).

        Raises:
            ExchangeTimeout: the complete answer did not arrive in time.
            ResponseTooLarge: the answer is longer than `max_bytes`.
            urllib3.exceptions.HTTPError: connection-level failures.
        """
        manager = self._manager(url)
        exchange = _Exchange(time.monotonic() + self.timeout)
        _WATCHDOG.start(exchange)
        response = None
        complete = False
        try:
            response = manager.request(
                method, url, body=body, headers={**self._headers, **headers}, preload_content=False,
                decode_content=False, redirect=False, retries=False,
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            )
            content = self._read_body(response, exchange)
            complete = True
        except urllib3.exceptions.HTTPError as exc:
            if exchange.expired and not isinstance(exc, ExchangeTimeout):
                raise self._timed_out() from exc
            raise
        finally:
            expired = _WATCHDOG.finish(exchange)
            if response is not None and not (complete and not expired):
                response.close()  # discard the connection: what is left of the answer is not read
                response.release_conn()
        if expired:
            raise self._timed_out()
        self._answered.add(origin(url))
        return Reply(response.status, response.headers, content)

    def _timed_out(self) -> ExchangeTimeout:
        return ExchangeTimeout(f"no complete answer within {self.timeout:g} s")

    def _read_body(self, response: urllib3.BaseHTTPResponse, exchange: _Exchange) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseTooLarge(f"answer of {int(declared)} bytes declared, more than {self.max_bytes}")
        # Pieces joined only once complete: an answer cut at the cap never holds more than the cap,
        # and a failed one is dropped at once (the error's traceback would otherwise keep it alive).
        pieces: list[bytes] = []
        try:
            return self._read_pieces(response, exchange, pieces)
        finally:
            pieces.clear()

    def _read_pieces(self, response: urllib3.BaseHTTPResponse, exchange: _Exchange, pieces: list[bytes]) -> bytes:
        total = 0
        while True:
            left = exchange.deadline - time.monotonic()
            if left <= 0:
                raise self._timed_out()
            sock = exchange.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(left)  # no single read may outlast the exchange
            chunk = response.read1(min(_READ_CHUNK, self.max_bytes + 1 - total), decode_content=False)
            if not chunk:
                return b"".join(pieces)
            with self._lock:
                self.bytes_read += len(chunk)
            total += len(chunk)
            if total > self.max_bytes:
                raise ResponseTooLarge(f"answer longer than {self.max_bytes} bytes")
            pieces.append(chunk)
