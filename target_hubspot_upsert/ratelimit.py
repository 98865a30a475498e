"""Client-side rate limiting over HubSpot's rolling window, adapted from its headers."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

logger = logging.getLogger("target_hubspot_upsert.ratelimit")

# HubSpot counts a request when it arrives; we count it when we send. The margin keeps a slot
# from being reused before HubSpot's window has really let go of it.
WINDOW_MARGIN_S = 0.3


class RateLimiter:
    """A rolling-window limiter shared by every request made with one token (HubSpot counts per app).

    The limit starts from the `max_requests_per_10_seconds` setting and follows
    `X-HubSpot-RateLimit-Max` / `-Interval-Milliseconds` once HubSpot sends them, so a
    Professional account (190) runs at 190 without configuration. After a
    TEN_SECONDLY_ROLLING 429 (another app sharing the account) every request waits for the
    window to pass and the limit shrinks by a tenth, so the target backs off rather than hammering.
    """

    def __init__(
        self,
        limit: int | None,
        *,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Create a limiter; `limit=None` disables it (local simulator without limits)."""
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._shrink = 1.0
        self._lock = threading.Lock()
        self.throttled_seconds = 0.0

    def _effective_limit(self) -> int | None:
        if self.limit is None:
            return None
        return max(1, int(self.limit * self._shrink))

    def acquire(self) -> None:
        """Block until a request may be sent, and count it."""
        while True:
            with self._lock:
                now = self._clock()
                limit = self._effective_limit()
                window = self.window_s + WINDOW_MARGIN_S
                while self._sent and self._sent[0] <= now - window:
                    self._sent.popleft()
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif limit is None or len(self._sent) < limit:
                    self._sent.append(now)
                    return
                else:
                    wait = self._sent[0] + window - now
            self.throttled_seconds += wait
            self._sleep(max(wait, 0.001))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Follow HubSpot's rate-limit headers when a response carries them."""
        raw_max = headers.get("X-HubSpot-RateLimit-Max")
        raw_interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        with self._lock:
            if raw_interval:
                with contextlib.suppress(ValueError):
                    self.window_s = max(0.05, int(raw_interval) / 1000)
            if raw_max:
                try:
                    new_limit = int(raw_max)
                except ValueError:
                    return
                if new_limit > 0 and new_limit != self.limit:
                    logger.info(
                        "HubSpot reports a rate limit of %d requests per %.0f s; following it.",
                        new_limit,
                        self.window_s,
                    )
                    self.limit = new_limit

    def on_rate_limited(self, wait_s: float | None = None) -> float:
        """React to a TEN_SECONDLY_ROLLING 429: pause everyone for the window and slow down."""
        with self._lock:
            pause = wait_s if wait_s is not None else self.window_s + WINDOW_MARGIN_S
            self._paused_until = max(self._paused_until, self._clock() + pause)
            self._shrink = max(0.2, self._shrink * 0.9)
            return pause
