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

# HubSpot counts a request when it arrives; we count it when we send. Were every request as long
# on its way, HubSpot's windows would be ours shifted by that time and no margin would be needed.
# They are not: a request sent later but arriving faster lands in the earlier window. The margin,
# added to each window, keeps a slot from being reused before HubSpot's window has really let go
# of it, and must cover the spread of the one-way delays. The client sees only round trips; their
# spread (per endpoint: the server's work differs between endpoints but comes after counting)
# covers the spread of the way there when the ways there and back vary independently. So the
# margin starts at the safe WINDOW_MARGIN_S and, after MIN_ROUND_TRIPS answers, follows the
# spread of the last ROUND_TRIP_SAMPLE round trips plus MARGIN_SAFETY_S, within
# [MIN_MARGIN_S, WINDOW_MARGIN_S]: 0.13 s instead of 0.3 s at 250 +/- 50 ms, 1.7% more requests.
WINDOW_MARGIN_S = 0.3
MIN_MARGIN_S = 0.05
MARGIN_SAFETY_S = 0.025
MIN_ROUND_TRIPS = 20
ROUND_TRIP_SAMPLE = 200
#: Endpoints whose round trips are kept (a run uses a handful; more are not sampled).
MAX_SAMPLED_ENDPOINTS = 32


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

    The margin added to the window (`margin_s`, see the module comment) starts at
    `WINDOW_MARGIN_S` and is learned from the round trips of successful answers to requests that
    took a slot. It goes back to `WINDOW_MARGIN_S` for the rest of the run, and is learned no
    more, when a TEN_SECONDLY_ROLLING 429 comes or when `-Remaining` shows HubSpot counted more
    requests in its window than this run's accounting with the learned margin allows (another
    client, or delays on the way wider than the round trips showed; they cannot be told apart, and
    either way the narrower margin is no longer known to be safe). Going back rather than growing
    step by step: a 429 costs a whole window of waiting, far more than the 3% the learned margin gains.
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
        self.margin_s = WINDOW_MARGIN_S
        self._learning = True
        self._margin_logged = False
        self._round_trips: dict[str, deque[float]] = {}  # per endpoint, the last ROUND_TRIP_SAMPLE
        self._spreads: dict[str, float] = {}  # per endpoint with MIN_ROUND_TRIPS or more: max - min
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
                window = self.window_s + self.margin_s
                # Two windows (with the full margin) of history, so a late answer can still be
                # matched (`observe`).
                keep = 2 * (self.window_s + WINDOW_MARGIN_S)
                for q in (self._sent, self._foreign):
                    while q and q[0] <= now - keep:
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

    @property
    def exempting(self) -> bool:
        """Whether a request this thread sends now takes no slot of the window (see `exempt`)."""
        return bool(getattr(self._local, "exempt", False))

    def observe(
        self, headers: Mapping[str, str], sent_at: float | None = None, *, round_trip_of: str | None = None,
    ) -> None:
        """Follow HubSpot's rate-limit headers when a response carries them.

        `sent_at` is what `acquire` returned for the request this response answers; with it,
        `-Remaining` is compared with what this run sent (see the class docstring).
        `round_trip_of` names the endpoint when this is a successful answer to a request that took
        a slot: its round trip (from `sent_at` to now) joins that endpoint's sample the margin is
        learned from. Failed, retried, rate-limited and exempt requests are left out.
        """
        raw_max = headers.get("X-HubSpot-RateLimit-Max")
        raw_interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        raw_remaining = headers.get("X-HubSpot-RateLimit-Remaining")
        with self._lock:
            if sent_at is not None and round_trip_of is not None and self._learning:
                self._learn(round_trip_of, self._clock() - sent_at)
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

    def _learn(self, endpoint: str, round_trip: float) -> None:
        """Add one round trip to `endpoint`'s sample and set the margin from the spreads (lock held)."""
        sample = self._round_trips.get(endpoint)
        if sample is None:
            if len(self._round_trips) >= MAX_SAMPLED_ENDPOINTS:
                return
            sample = self._round_trips[endpoint] = deque(maxlen=ROUND_TRIP_SAMPLE)
        sample.append(round_trip)
        if len(sample) < MIN_ROUND_TRIPS:
            return
        self._spreads[endpoint] = max(sample) - min(sample)  # at most ROUND_TRIP_SAMPLE: a few µs
        margin = min(WINDOW_MARGIN_S, max(MIN_MARGIN_S, max(self._spreads.values()) + MARGIN_SAFETY_S))
        if margin < WINDOW_MARGIN_S and not self._margin_logged:
            self._margin_logged = True
            logger.info(
                "Round trips to HubSpot vary by %.0f ms; counting %.2f s instead of %.1f s beyond "
                "each rate-limit window.",
                1000 * max(self._spreads.values()), margin, WINDOW_MARGIN_S,
            )
        self.margin_s = margin

    def _back_to_full_margin(self, why: str) -> None:
        """Use the full margin for the rest of the run and learn no more (lock held)."""
        if self._learning:
            self._learning = False
            if self.margin_s < WINDOW_MARGIN_S:
                logger.info("%s; counting %.1f s beyond each rate-limit window again.", why, WINDOW_MARGIN_S)
            self.margin_s = WINDOW_MARGIN_S

    def _book_foreign(self, used: int, sent_at: float) -> None:
        """Book the requests HubSpot counted that this run did not send (lock held).

        HubSpot counted `used` requests in its window when it answered the request sent at
        `sent_at`. Every request of ours that may still be in that window (sent after
        `sent_at` minus the window and the full margin, up to now) is assumed counted, so a slow
        network never makes the target throttle itself; what remains beyond those and the foreign
        requests already booked came from someone else. They are booked at `sent_at`, which
        keeps them a little longer than HubSpot does: the safe side.

        With a learned (narrower) margin, HubSpot's count is first compared with this run's
        requests sent within the window and that margin: those are all HubSpot can have counted
        of ours if the margin covers the delays on the way. More than that and the booked foreign
        ones means the margin may not, and it goes back to the full one.
        """
        full = self.window_s + WINDOW_MARGIN_S
        if sent_at <= self._clock() - full:
            return  # answered after its window had passed: nothing left to learn
        since = sent_at - full
        booked = len(self._foreign) - bisect.bisect_right(self._foreign, since)
        if self.margin_s < WINDOW_MARGIN_S:
            narrow_since = sent_at - self.window_s - self.margin_s
            ours_narrow = len(self._sent) - bisect.bisect_right(self._sent, narrow_since)
            if used > ours_narrow + booked:
                self._back_to_full_margin(
                    "HubSpot counts more requests in its window than this run sent within the learned margin",
                )
        ours = len(self._sent) - bisect.bisect_right(self._sent, since)
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
        """React to a TEN_SECONDLY_ROLLING 429: pause everyone for the window, slow down, full margin."""
        with self._lock:
            self._back_to_full_margin("HubSpot answered 429 TEN_SECONDLY_ROLLING")
            pause = wait_s if wait_s is not None else self.window_s + WINDOW_MARGIN_S
            self._paused_until = max(self._paused_until, self._clock() + pause)
            self._shrink = max(0.2, self._shrink * 0.9)
            return pause
