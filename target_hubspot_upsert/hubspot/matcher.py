"""What a run knows of `match_property` values: which objects hold each value.

HubSpot's search index trails writes by seconds, so search cannot tell whether a value this run
created a moment ago exists. The run remembers every value it searched or wrote (value → record
ids): a later record for a value created earlier in the run updates that object and is never
created again, and a value already known is not searched again.

Bounded: past `max_values` values, the longest-known are forgotten, but never one learned less
than `keep_s` seconds ago (long past any index lag): a forgotten value is searched again, and by
then the search index shows it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from target_hubspot_upsert.hubspot.search import Match

#: A value whose create HubSpot did not confirm: whether the object exists is unknown.
UNCERTAIN: tuple[Match, ...] = (Match("", ""),)

MAX_VALUES = 50_000  # about 20 MB; searches find at most ~400 values a second, 48,000 in KEEP_S
KEEP_S = 120.0


class MatchMemory:
    """Value → the objects holding it, per object type and property, shared by a run's workers."""

    def __init__(
        self, max_values: int = MAX_VALUES, keep_s: float = KEEP_S, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_values` bounds memory; values learned within `keep_s` seconds are always kept."""
        self.max_values = max_values
        self.keep_s = keep_s
        self._clock = clock
        self._known: OrderedDict[tuple[str, str, str], tuple[float, tuple[Match, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Values known now."""
        return len(self._known)

    def get(self, object_key: str, property_name: str, values: Iterable[str]) -> dict[str, tuple[Match, ...]]:
        """The known values among `values` and the objects holding each (empty: none does)."""
        out: dict[str, tuple[Match, ...]] = {}
        with self._lock:
            for value in values:
                entry = self._known.get((object_key, property_name, value))
                if entry is not None:
                    out[value] = entry[1]
        return out

    def put(self, object_key: str, property_name: str, value: str, matches: Iterable[Match]) -> None:
        """Remember the objects holding `value` now (replacing what was known)."""
        key = (object_key, property_name, value)
        found = tuple(matches)
        if len(found) == 1 and found[0].created_at:
            found = (Match(found[0].object_id, ""),)  # createdAt tells apart several holders only
        with self._lock:
            self._known.pop(key, None)
            self._known[key] = (self._clock(), found)
            self._bound()

    def forget(self, object_key: str, property_name: str, value: str) -> None:
        """`value` is no longer known (its object was not found when written)."""
        with self._lock:
            self._known.pop((object_key, property_name, value), None)

    def _bound(self) -> None:
        """Forget the longest-known values past `max_values`, never one learned within `keep_s` (lock held)."""
        excess = len(self._known) - self.max_values
        if excess <= 0:
            return
        cutoff = self._clock() - self.keep_s
        while excess > 0:
            key, (learned, _) = next(iter(self._known.items()))
            if learned > cutoff:
                return
            del self._known[key]
            excess -= 1
