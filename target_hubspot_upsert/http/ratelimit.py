"""Client-side rate limiting over HubSpot's rolling window, adapted from its headers."""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

logger = logging.getLogger("target_hubspot_upsert.http.ratelimit")

# HubSpot counts a request when it arrives; we count it when we send. The margin keeps a slot
# from being reused before HubSpot's window has really let go of it.
WINDOW_MARGIN_S = 0.3


class RateLimiter:
    """A rolling-window limiter shared by every request made with one token (HubSpot counts per app).

    The limit starts from the `max_requests_per_10_seconds` setting and follows
    `X-HubSpot-RateLimit-Max` / `-Interval-Milliseconds` once HubSpot sends them, so a
    Professional account (190) runs at 190 without configuration. `-Remaining` tells how many
    requests HubSpot counted in its window; when that is more than this run sent (another process
    using the same app), the difference is booked as "foreign" requests that take slots until the
    window lets them go, so the target slows down before it meets a 429. After a
    TEN_SECONDLY_ROLLING 429 anyway, every request waits for the window to pass and the limit
    shrinks by a tenth, so the target backs off rather than hammering.
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
        self._foreign: deque[float] = deque()  # other clients' requests, from -Remaining
        self._paused_until = 0.0
        self._shrink = 1.0
        self._lock = threading.Lock()
        self._local = threading.local()
        self.throttled_seconds = 0.0

    def _effective_limit(self) -> int | None:
        if self.limit is None:
            return None
        return max(1, int(self.limit * self._shrink))

    def acquire(self) -> float:
        """Block until a request may be sent, count it, and return its send time."""
        while True:
            with self._lock:
                now = self._clock()
                limit = self._effective_limit()
                window = self.window_s + WINDOW_MARGIN_S
                # Two windows of history, so a late answer can still be matched (`observe`).
                for q in (self._sent, self._foreign):
                    while q and q[0] <= now - 2 * window:
                        q.popleft()
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif getattr(self._local, "exempt", False):
                    return now  # takes no slot: HubSpot does not count it in the window
                elif limit is None:
                    self._sent.append(now)
                    return now
                else:
                    cutoff = now - window
                    firsts = [(q, bisect.bisect_right(q, cutoff)) for q in (self._sent, self._foreign)]
                    if sum(len(q) - i for q, i in firsts) < limit:
                        self._sent.append(now)
                        return now
                    wait = min(q[i] for q, i in firsts if i < len(q)) + window - now
            self.throttled_seconds += wait
            self._sleep(max(wait, 0.001))

    @contextlib.contextmanager
    def exempt(self) -> Iterator[None]:
        """Requests this thread sends inside take no slot of the rolling window.

        HubSpot's specs exempt the v4 association batch endpoints from the ten-secondly limit
        (they count against the daily one). They still wait out a pause after a 429.
        """
        self._local.exempt = True
        try:
            yield
        finally:
            self._local.exempt = False

    def observe(self, headers: Mapping[str, str], sent_at: float | None = None) -> None:
        """Follow HubSpot's rate-limit headers when a response carries them.

        `sent_at` is what `acquire` returned for the request this response answers; with it,
        `-Remaining` is compared with what this run sent (see the class docstring).
        """
        raw_max = headers.get("X-HubSpot-RateLimit-Max")
        raw_interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        raw_remaining = headers.get("X-HubSpot-RateLimit-Remaining")
        with self._lock:
            if sent_at is not None and raw_max and raw_remaining and self.limit is not None:
                with contextlib.suppress(ValueError):
                    self._book_foreign(int(raw_max) - int(raw_remaining), sent_at)
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

    def _book_foreign(self, used: int, sent_at: float) -> None:
        """Book the requests HubSpot counted that this run did not send (lock held).

        HubSpot counted `used` requests in its window when it answered the request sent at
        `sent_at`. Every request of ours that may still be in that window (sent after
        `sent_at` minus the window and margin, up to now) is assumed counted, so a slow network
        never makes the target throttle itself; what remains beyond those and the foreign
        requests already booked came from someone else. They are booked at `sent_at`, which
        keeps them a little longer than HubSpot does: the safe side.
        """
        window = self.window_s + WINDOW_MARGIN_S
        if sent_at <= self._clock() - window:
            return  # answered after its window had passed: nothing left to learn
        since = sent_at - window
        ours = len(self._sent) - bisect.bisect_right(self._sent, since)
        booked = len(self._foreign) - bisect.bisect_right(self._foreign, since)
        missing = used - ours - booked
        if missing > 0:
            if not self._foreign:
                logger.info(
                    "HubSpot counts %d more requests in its window than this run sent (another "
                    "client of the same app); slowing down to leave room for them.",
                    missing,
                )
            for _ in range(missing):  # responses come back out of order: keep it sorted
                bisect.insort(self._foreign, sent_at)

    def on_rate_limited(self, wait_s: float | None = None) -> float:
        """React to a TEN_SECONDLY_ROLLING 429: pause everyone for the window and slow down."""
        with self._lock:
            pause = wait_s if wait_s is not None else self.window_s + WINDOW_MARGIN_S
            self._paused_until = max(self._paused_until, self._clock() + pause)
            self._shrink = max(0.2, self._shrink * 0.9)
            return pause
