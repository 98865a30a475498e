"""HubSpot's rate limits: a rolling ten-secondly window per app and a daily count per account."""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

from .responses import fmt_number


class RateLimiter:
    """Counts requests against ``rate_limit_per_10s`` and ``daily_limit``.

    Not thread-safe: callers hold the simulator's state lock. ``clock`` gives monotonic
    seconds, so tests can move the window without waiting.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every counted request."""
        self.window: collections.deque[float] = collections.deque()
        self.daily_count = 0

    def _prune(self, opts: Mapping[str, Any], now: float) -> None:
        cutoff = now - opts["rate_limit_interval_ms"] / 1000.0
        win = self.window
        while win and win[0] <= cutoff:
            win.popleft()

    def headers(self, opts: Mapping[str, Any], daily_headers: bool = True) -> list[tuple[str, str]]:
        """Rate-limit headers for the current state.

        HubSpot leaves the daily headers out for OAuth apps (``daily_headers=False``).
        """
        if not opts["rate_limit_headers"]:
            return []
        out: list[tuple[str, str]] = []
        limit = opts["rate_limit_per_10s"]
        if limit is not None:
            self._prune(opts, self.clock())
            out += [
                ("X-HubSpot-RateLimit-Max", str(limit)),
                ("X-HubSpot-RateLimit-Remaining", str(max(0, limit - len(self.window)))),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", fmt_number(opts["rate_limit_interval_ms"])),
            ]
        daily = opts["daily_limit"]
        if daily is not None and daily_headers:
            out += [
                ("X-HubSpot-RateLimit-Daily", str(daily)),
                ("X-HubSpot-RateLimit-Daily-Remaining", str(max(0, daily - self.daily_count))),
            ]
        return out

    def check(
        self, opts: Mapping[str, Any], daily_headers: bool = True, ten_secondly: bool = True
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """Count one request; return the violated policy (None when admitted) and headers.

        ``ten_secondly=False`` is for endpoints HubSpot exempts from the rolling window (the
        v4 association batch endpoints): they count against the daily limit only.
        """
        now = self.clock()
        self._prune(opts, now)
        limit = opts["rate_limit_per_10s"]
        daily = opts["daily_limit"]
        policy = None
        if daily is not None and self.daily_count >= daily:
            policy = "DAILY"
        elif ten_secondly and limit is not None and len(self.window) >= limit:
            policy = "TEN_SECONDLY_ROLLING"
        else:
            if ten_secondly:
                self.window.append(now)
            self.daily_count += 1
        return policy, self.headers(opts, daily_headers)

    def consume(self, n: int) -> None:
        """Record ``n`` phantom requests (another app of the same account)."""
        now = self.clock()
        self.window.extend([now] * n)
        self.daily_count += n
