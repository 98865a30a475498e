"""Injected failures: the fault script, random faults and added latency."""

from __future__ import annotations

import collections
import random
from collections.abc import Iterable, Mapping
from typing import Any

from .options import FAULTS

Fault = int | str | None

#: Scripted items answered as rate limits (they are decided with the rate limiter).
RATE_LIMIT_FAULTS = (429, "daily_429")


def _is_error_status(f: object) -> bool:
    """Whether ``f`` is a 4xx/5xx HTTP status (an int, not a bool)."""
    return isinstance(f, int) and not isinstance(f, bool) and 400 <= f <= 599


def check_script(faults: Iterable[Fault]) -> list[Fault]:
    """Validate a fault script.

    Raises:
        ValueError: An item is neither None, a name of :data:`FAULTS` nor a 4xx/5xx status.
    """
    items: list[Fault] = []
    for f in faults:
        if f is None or f in FAULTS or _is_error_status(f):
            items.append(f)
        else:
            raise ValueError(f"unknown fault {f!r}")
    return items


def check_oauth_script(faults: Iterable[int | None]) -> list[int | None]:
    """Validate a token endpoint fault script (None or a 4xx/5xx status per item).

    Raises:
        ValueError: Any other item.
    """
    items: list[int | None] = []
    for f in faults:
        if f is not None and not _is_error_status(f):
            raise ValueError(f"unknown OAuth fault {f!r}")
        items.append(f)
    return items


class FaultInjector:
    """The fault script and the seeded RNG behind random faults (callers hold the state lock)."""

    def __init__(self, seed: int) -> None:
        self.script: collections.deque[Fault] = collections.deque()
        self.oauth_script: collections.deque[int | None] = collections.deque()
        self.rng = random.Random(seed)

    def reset(self, seed: int) -> None:
        """Empty both scripts and reseed the RNG."""
        self.script.clear()
        self.oauth_script.clear()
        self.rng.seed(seed)

    def next_oauth(self) -> int | None:
        """The next scripted token endpoint failure, or None."""
        return self.oauth_script.popleft() if self.oauth_script else None

    def next_rate_limit(self) -> Fault:
        """Pop the next scripted item if it is a rate limit, else None."""
        if self.script and self.script[0] in RATE_LIMIT_FAULTS:
            return self.script.popleft()
        return None

    def next(self, opts: Mapping[str, Any]) -> Fault:
        """The next scripted item, else a random fault per ``error_rate`` / ``drop_rate``."""
        fault = self.script.popleft() if self.script else None
        if fault is None:
            fault = self.random(opts)
        return fault

    def random(self, opts: Mapping[str, Any]) -> Fault:
        """Draw a random fault per ``error_rate`` / ``drop_rate``."""
        if opts["error_rate"] and self.rng.random() < opts["error_rate"]:
            return self.rng.choice((500, 502, 503, 504))
        if opts["drop_rate"] and self.rng.random() < opts["drop_rate"]:
            return "drop"
        return None

    def latency(self, opts: Mapping[str, Any], *, uplink: bool = False) -> float:
        """Seconds of added latency for one leg of one request.

        The whole latency is ``latency_ms`` +/- ``latency_jitter_ms``. ``uplink_share`` of it
        (latency and jitter both scaled by it) is the uplink, spent before the request is
        counted; the rest is the downlink, spent after. Each leg draws its own jitter; a leg
        with no share draws nothing, so ``uplink_share`` 0 draws exactly as without it.
        """
        share = opts["uplink_share"] if uplink else 1.0 - opts["uplink_share"]
        if not share:
            return 0.0
        latency = opts["latency_ms"] * share
        jitter = opts["latency_jitter_ms"] * share
        if jitter:
            latency += self.rng.uniform(-jitter, jitter)
        return max(0.0, latency / 1000.0)
