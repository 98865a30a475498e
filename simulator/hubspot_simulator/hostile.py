"""Hostile answers: the simulator plays a server that misbehaves, to test a client's bounds.

Set with the ``hostile`` option (``configure(hostile={...})``, ``POST /_sim/configure``, the
``--hostile*`` flags). Every request whose path starts with ``paths`` (default: every path but the
``/_sim/`` control endpoints, so the OAuth token endpoint too) gets the mode's answer, before any
authentication or routing:

- ``redirect``: ``status`` (301/302/303/307/308) with ``Location: location + path``;
- ``trickle``: a 200 declaring ``size`` bytes, then the body at ``bytes_per_second``, byte by byte;
- ``slow_headers``: the status line, then headers that never end, at ``bytes_per_second``;
- ``huge``: a 200 declaring ``size`` bytes, streamed as fast as the client reads;
- ``huge_undeclared``: the same without Content-Length (the body ends when the connection closes);
- ``endless``: a chunked 200 that never ends.

Every loop ends by itself: when the client hangs up, after ``max_seconds``, or when the simulator
stops. Loops run on real time, whatever clock the simulator was given. The request log entry
tells what the server got onto the wire (``bytes_sent``) and whether the client hung up first.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .requestlog import RequestLogEntry
from .responses import Response

MODES = ("redirect", "trickle", "slow_headers", "huge", "huge_undeclared", "endless")

#: Keys of the ``hostile`` option and their defaults (``mode`` is required).
DEFAULTS: dict[str, Any] = {
    "mode": None,
    "paths": "/",
    "status": 302,
    "location": "",
    "bytes_per_second": 1.0,
    "size": 200_000_000,
    "max_seconds": 30.0,
}

_CHUNK = b"\0" * 65536
_SLOW_HEAD = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 10_000


def _positive(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"hostile.{key} must be a number above 0, got {v!r}")
    return float(v)


def normalize(name: str, v: Any) -> dict[str, Any] | None:
    """Check a ``hostile`` option value; None turns hostile answers off.

    Raises:
        ValueError: Not a mapping, unknown keys or mode, or a value out of range.
    """
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise ValueError(f"{name} must be None or a mapping with a 'mode', got {v!r}")
    unknown = sorted(set(v) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{name} has unknown keys {unknown}; known: {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **v}
    if out["mode"] not in MODES:
        raise ValueError(f"{name}.mode must be one of {', '.join(MODES)}; got {out['mode']!r}")
    if not isinstance(out["paths"], str) or not out["paths"].startswith("/"):
        raise ValueError(f"{name}.paths must be a path prefix starting with '/', got {out['paths']!r}")
    status = out["status"]
    if isinstance(status, bool) or status not in (301, 302, 303, 307, 308):
        raise ValueError(f"{name}.status must be 301, 302, 303, 307 or 308, got {status!r}")
    if not isinstance(out["location"], str):
        raise ValueError(f"{name}.location must be a URL, got {out['location']!r}")
    if out["mode"] == "redirect" and not out["location"].startswith(("http://", "https://")):
        raise ValueError(f"{name}.location must be an http(s) URL for mode 'redirect', got {out['location']!r}")
    size = out["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{name}.size must be a whole number of bytes, got {size!r}")
    out["bytes_per_second"] = _positive("bytes_per_second", out["bytes_per_second"])
    out["max_seconds"] = _positive("max_seconds", out["max_seconds"])
    return out


def applies(hostile: Mapping[str, Any] | None, path: str) -> bool:
    """Whether a request to ``path`` gets the hostile answer."""
    return hostile is not None and path.startswith(hostile["paths"])


class HungUp(Exception):
    """The client closed the connection (or the simulator stopped) while an answer was played."""


class Playing:
    """Counts the hostile answers being played, so tests can wait until the server saw the end."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self.stopping = threading.Event()

    def begin(self) -> None:
        """One more answer is being played."""
        with self._cond:
            self._active += 1

    def end(self) -> None:
        """An answer has ended."""
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no answer is being played; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)


def answer(
    hostile: Mapping[str, Any], path: str, entry: RequestLogEntry, playing: Playing, clock: Callable[[], float],
) -> Response:
    """The hostile answer to one request: a response whose ``play`` writes it to the socket.

    ``clock`` (the simulator's) stamps ``entry.finished`` when the answer ends.
    """
    entry.endpoint = "hostile"
    entry.fault = f"hostile:{hostile['mode']}"
    entry.bytes_sent = 0
    entry.hung_up = False
    player = _Player(hostile, path, entry, playing, clock)
    status = hostile["status"] if hostile["mode"] == "redirect" else 200
    playing.begin()
    return Response(status, None, play=player.play)


class _Player:
    """Writes one hostile answer, counting the body bytes that got onto the wire."""

    def __init__(
        self, hostile: Mapping[str, Any], path: str, entry: RequestLogEntry, playing: Playing,
        clock: Callable[[], float],
    ) -> None:
        self.h = hostile
        self.clock = clock
        self.path = path
        self.entry = entry
        self.playing = playing
        self.started = time.monotonic()
        self.out: io.BufferedIOBase | None = None

    def play(self, out: io.BufferedIOBase) -> None:
        """Write the answer until it is done, the client hangs up, time runs out or the simulator stops."""
        self.out = out
        modes: dict[str, Callable[[], None]] = {
            "redirect": self._redirect,
            "trickle": self._trickle,
            "slow_headers": self._slow_headers,
            "huge": lambda: self._stream(declared=True, chunked=False),
            "huge_undeclared": lambda: self._stream(declared=False, chunked=False),
            "endless": lambda: self._stream(declared=False, chunked=True),
        }
        try:
            modes[self.h["mode"]]()
        except (HungUp, OSError):
            self.entry.hung_up = True
        finally:
            self.entry.finished = self.clock()
            self.playing.end()

    # --- writing ------------------------------------------------------------------------

    def _running(self) -> bool:
        return not self.playing.stopping.is_set() and time.monotonic() - self.started < self.h["max_seconds"]

    def _write(self, data: bytes, *, body: bool = False) -> None:
        assert self.out is not None  # noqa: S101 - set by play()
        try:
            self.out.write(data)
            self.out.flush()
        except OSError as exc:
            raise HungUp from exc
        if body:
            self.entry.bytes_sent = (self.entry.bytes_sent or 0) + len(data)

    def _head(self, status: int, headers: Mapping[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} Hostile", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _pause(self) -> None:
        self.playing.stopping.wait(1.0 / self.h["bytes_per_second"])

    # --- modes --------------------------------------------------------------------------

    def _redirect(self) -> None:
        self._head(self.h["status"], {"Location": self.h["location"] + self.path, "Content-Length": "0"})

    def _trickle(self) -> None:
        self._head(200, {"Content-Type": "application/json", "Content-Length": str(self.h["size"])})
        while (self.entry.bytes_sent or 0) < self.h["size"] and self._running():
            self._write(b" ", body=True)
            self._pause()

    def _slow_headers(self) -> None:
        for byte in _SLOW_HEAD:
            if not self._running():
                return
            self._write(bytes([byte]))
            self._pause()

    def _stream(self, *, declared: bool, chunked: bool) -> None:
        headers = {"Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(self.h["size"])
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        self._head(200, headers)
        limit = None if chunked else self.h["size"]
        while (limit is None or (self.entry.bytes_sent or 0) < limit) and self._running():
            piece = _CHUNK if limit is None else _CHUNK[: limit - (self.entry.bytes_sent or 0)]
            if chunked:
                self._write(b"%x\r\n" % len(piece))
            self._write(piece, body=True)
            if chunked:
                self._write(b"\r\n")
