"""Everything one simulator shares between its request threads: options, data, counters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .auth import IssuedTokens, scope_denied
from .faults import FaultInjector
from .hostile import Playing
from .options import OPTION_DEFAULTS
from .ratelimit import RateLimiter
from .requestlog import RequestLogEntry
from .responses import Response
from .rewrite import Rewrites
from .search import SearchLimiter
from .store import Database


def empty_stats() -> dict[str, Any]:
    """The counters of :attr:`HubSpotSimulator.stats`, all zero."""
    return {
        "requests": 0,
        "by_status": {},
        "upserts": 0,
        "inputs_written": 0,
        "rate_limited": 0,
        "rate_limited_ten_secondly": 0,
        "rate_limited_daily": 0,
        "dropped": 0,
        "faults_injected": 0,
        "max_concurrent_upserts": 0,
        "token_grants": 0,
        "properties_created": 0,
        "writes_refused": 0,
        "searches": 0,
        "rate_limited_secondly": 0,
    }


class SimState:
    """The shared state of one simulator.

    ``lock`` guards the options, the request log and stats, the rate limiter, the fault
    script and RNG, and the issued tokens; ``db`` has its own locks for objects and types.
    ``clock`` (monotonic seconds) and ``sleep`` are injectable so tests can move time.
    """

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.clock = clock
        self.sleep = sleep
        self.lock = threading.Lock()
        self.opts: dict[str, Any] = dict(OPTION_DEFAULTS)
        self.db = Database(clock)
        self.tokens = IssuedTokens()
        self.limiter = RateLimiter(clock)
        self.search_limiter = SearchLimiter()
        self.faults = FaultInjector(OPTION_DEFAULTS["seed"])
        self.rewrites = Rewrites()
        self.in_flight = 0  # requests may be in flight across a reset
        self.playing = Playing()  # hostile answers being played (they outlive their request's handling)
        self.reset()

    def reset(self) -> None:
        """Clear data, log, stats, faults and rate counters (options and issued tokens stay)."""
        with self.lock, self.db.store_lock, self.db.catalog_lock:
            self.db.reset()
            self.log: list[RequestLogEntry] = []
            self.seq = 0
            self.stats = empty_stats()
            self.faults.reset(self.opts["seed"])
            self.rewrites.clear()
            self.limiter.reset()
            self.search_limiter = SearchLimiter()

    def count(self, counter: str, n: int = 1) -> None:
        """Add to one of the stats counters."""
        with self.lock:
            self.stats[counter] += n

    @property
    def log_bodies(self) -> bool:
        """Whether request and response bodies go into the log."""
        return bool(self.opts["log_bodies"])

    def scope_denied(self, token: str | None, *scopes: str) -> Response | None:
        """The 403 when the token lacks one of ``scopes``, else None."""
        return scope_denied(self.opts, token, *scopes)

    def sleep_latency(self, *, uplink: bool = False) -> None:
        """Wait one leg of a request's configured latency (with jitter): the downlink, or the uplink.

        The uplink (``uplink_share`` of the latency) is waited before the request is counted
        in the rate-limit window, as HubSpot counts a request when it arrives; the downlink after.
        """
        with self.lock:
            seconds = self.faults.latency(self.opts, uplink=uplink)
        if seconds > 0:
            self.sleep(seconds)
