"""Finding objects by a property that need not be unique, through HubSpot's search API.

`POST /crm/v3/objects/{objectType}/search` with one `IN` filter of up to 100 values (lowercase,
as HubSpot requires of `IN` string values), the body kept within HubSpot's 3,000 characters,
pages of 200 followed with `after`. Search has its own per-token limit of a few requests a
second, apart from the ten-second window (which it takes no slot of): `SearchPacer` keeps to it
and slows down when HubSpot answers 429 `SECONDLY`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.core.model import json_list
from target_hubspot_upsert.http.retry import Attempt, Decision
from target_hubspot_upsert.hubspot.client import HubSpotClient, RequestTally, _ApiAttempts

logger = logging.getLogger("target_hubspot_upsert.hubspot.search")

#: HubSpot's limits of one search request (HUBSPOT_API.md, "Search").
MAX_BODY_CHARS = 3000
MAX_VALUES = 100
PAGE_SIZE = 200
MAX_RESULTS = 10_000
#: Searches a second the target starts at: HubSpot's changelog says 4 per token, its guide 5 per account.
SEARCHES_PER_SECOND = 4
# A search counts when HubSpot receives it; the margin keeps a slot from being reused too early.
SECOND_MARGIN_S = 0.05
#: Seconds without a 429 SECONDLY after which the search pace goes back up by one.
RECOVER_S = 60.0


def match_value(value: str) -> str:
    """A record's value as a search matches it: trimmed, lowercase (HubSpot's `IN` takes lowercase values)."""
    return value.strip().lower()


@dataclass(frozen=True, slots=True)
class Match:
    """One object holding a searched value: its record id and when HubSpot created it."""

    object_id: str
    created_at: str


class SearchPacer:
    """At most `per_second` searches in any second, shared by every worker of a run.

    A search holds its slot from when it is sent until a second after its answer came (HubSpot
    counts it on arrival, somewhere in between), so delays on the way never make two seconds'
    worth arrive within one. After a 429 `SECONDLY` every search waits a second and the pace drops
    by one (never below one a second); a minute without one brings it back up by one, to the start.
    """

    def __init__(
        self, per_second: int = SEARCHES_PER_SECOND, *,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`clock` and `sleep` are injectable so tests need not wait."""
        self.start_pace = self.per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._slots: list[list[float]] = []  # [time the slot counts from] per search of the last second
        self._paused_until = 0.0
        self._last_429 = 0.0
        self._lock = threading.Lock()
        self.rate_limited = 0

    def acquire(self) -> list[float]:
        """Block until a search may be sent; return its slot (hand it to `done` with the answer)."""
        while True:
            with self._lock:
                now = self._clock()
                window = 1.0 + SECOND_MARGIN_S
                self._slots = [slot for slot in self._slots if slot[0] > now - window]
                if self.per_second < self.start_pace and now - self._last_429 > RECOVER_S:
                    self.per_second += 1
                    self._last_429 = now
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif len(self._slots) < self.per_second:
                    slot = [now]
                    self._slots.append(slot)
                    return slot
                else:
                    wait = min(slot[0] for slot in self._slots) + window - now
            self._sleep(max(wait, 0.001))

    def done(self, slot: list[float]) -> None:
        """The answer to the search of `slot` came: its second counts from now."""
        with self._lock:
            slot[0] = self._clock()

    def on_rate_limited(self) -> None:
        """HubSpot answered 429 `SECONDLY`: pause searches for a second and slow down."""
        with self._lock:
            self.rate_limited += 1
            now = self._clock()
            self._last_429 = now
            self._paused_until = max(self._paused_until, now + 1.0 + SECOND_MARGIN_S)
            if self.per_second > 1:
                self.per_second -= 1
                logger.info("HubSpot's search limit was reached; searching at most %d times a second.", self.per_second)


class _SearchAttempts(_ApiAttempts):
    """Around each search attempt: the search pace instead of a slot of the ten-second window."""

    def __init__(
        self, client: HubSpotClient, endpoint: str, stream: str | None, tally: RequestTally | None,
        pacer: SearchPacer,
    ) -> None:
        super().__init__(client, endpoint, stream, tally)
        self.pacer = pacer
        self.secondly = False
        self.slot: list[float] | None = None

    def before(self) -> dict[str, str]:
        self.slot = self.pacer.acquire()
        with self.client.limiter.exempt():  # search takes no slot of the ten-second window
            return super().before()

    def observed(self, attempt: Attempt, decision: Decision) -> None:
        if self.slot is not None:
            self.pacer.done(self.slot)
        body = attempt.body if isinstance(attempt.body, dict) else {}
        self.secondly = attempt.status == 429 and body.get("policyName") == "SECONDLY"
        super().observed(attempt, decision)

    def retrying(self, decision: Decision) -> float:
        if decision.rate_limited and self.secondly:
            for t in self.tallies:
                t.add(retries=1)
            self.pacer.on_rate_limited()  # the next attempt waits in the pacer
            return 0.0
        return super().retrying(decision)


def value_room(property_name: str) -> int:
    """Room for the values of one search request on `property_name` (its body, with `after`, within 3,000)."""
    return MAX_BODY_CHARS - len(_body(property_name, [], "10000"))


def searchable(room: int, value: str) -> bool:
    """Whether one search request can carry `value`, given its property's `value_room`."""
    return len(orjson.dumps(value)) <= room


def value_chunks(property_name: str, values: list[str]) -> list[list[str]]:
    """`values` in groups one search request can carry: at most 100, the body within 3,000 characters."""
    room = value_room(property_name)
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for value in values:
        cost = len(orjson.dumps(value)) + 1
        if current and (len(current) >= MAX_VALUES or size + cost > room):
            chunks.append(current)
            current, size = [], 0
        current.append(value)
        size += cost
    if current:
        chunks.append(current)
    return chunks


def _request_body(property_name: str, values: list[str], after: str | None) -> dict[str, Any]:
    """The search request: one `IN` filter on `property_name`, a page of `PAGE_SIZE` after `after`."""
    body: dict[str, Any] = {
        "filterGroups": [{"filters": [{"propertyName": property_name, "operator": "IN", "values": values}]}],
        "properties": [property_name],
        "limit": PAGE_SIZE,
    }
    if after is not None:
        body["after"] = after
    return body


def _body(property_name: str, values: list[str], after: str | None) -> bytes:
    """The search request as sent (its size counts against HubSpot's 3,000 characters)."""
    return orjson.dumps(_request_body(property_name, values, after))


class Searcher:
    """Runs searches for a run: values in, the objects holding each value out."""

    def __init__(self, client: HubSpotClient, pacer: SearchPacer) -> None:
        """One pacer for the whole run (HubSpot counts searches per token)."""
        self.client = client
        self.pacer = pacer
        self.requests = 0
        self._lock = threading.Lock()

    def find(
        self, object_type: str, property_name: str, values: Iterable[str], *, stream: str | None = None,
        tally: RequestTally | None = None,
    ) -> dict[str, list[Match]]:
        """The objects holding each value (by `match_value`); a value no object holds is left out.

        Raises:
            HubSpotConfigError: HubSpot refuses the search (a property that cannot be searched).
        """
        wanted = sorted({value for value in map(match_value, values) if value})
        found: dict[str, list[Match]] = {}
        for chunk in value_chunks(property_name, wanted):
            self._find_chunk(object_type, property_name, chunk, found, stream, tally)
        return found

    def _find_chunk(
        self, object_type: str, property_name: str, chunk: list[str], found: dict[str, list[Match]],
        stream: str | None, tally: RequestTally | None,
    ) -> None:
        wanted = set(chunk)
        after: str | None = None
        seen = 0
        while True:
            body = self._search(object_type, property_name, chunk, after, stream, tally)
            total = body.get("total")
            if isinstance(total, int) and total > MAX_RESULTS and len(chunk) > 1:
                # HubSpot pages no further than 10,000 results: fewer values a request.
                middle = len(chunk) // 2
                for part in (chunk[:middle], chunk[middle:]):
                    self._find_chunk(object_type, property_name, part, found, stream, tally)
                return
            results = json_list(body.get("results"))
            for result in results:
                props = result.get("properties") if isinstance(result, dict) else None
                held = props.get(property_name) if isinstance(props, dict) else None
                object_id = result.get("id") if isinstance(result, dict) else None
                if held is None or object_id in (None, ""):
                    continue
                key = match_value(str(held))
                if key in wanted:
                    matches = found.setdefault(key, [])
                    if all(m.object_id != str(object_id) for m in matches):
                        matches.append(Match(str(object_id), str(result.get("createdAt") or "")))
            seen += len(results)
            paging = body.get("paging")
            nxt = paging.get("next") if isinstance(paging, dict) else None
            after = str(nxt.get("after")) if isinstance(nxt, dict) and nxt.get("after") else None
            if after is None or not results or seen + PAGE_SIZE > MAX_RESULTS:
                return

    def _search(
        self, object_type: str, property_name: str, values: list[str], after: str | None,
        stream: str | None, tally: RequestTally | None,
    ) -> dict[str, Any]:
        client, pacer = self.client, self.pacer
        with self._lock:
            self.requests += 1
        response = client.request(
            "POST", client.objects_path(object_type, "search"), json=_request_body(property_name, values, after),
            endpoint=f"{object_type}/search", stream=stream, tally=tally,
            attempts=lambda c, e, s, t: _SearchAttempts(c, e, s, t, pacer),
        )
        if response.status != 200 or not isinstance(response.body, dict):
            msg = (
                f"HubSpot refused to search '{object_type}' by '{property_name}' (stream '{stream}'): "
                f"HTTP {response.status} {response.message}. Check object_mappings.{stream}.match_property: "
                "it must be a property HubSpot can search."
            )
            raise HubSpotConfigError(msg)
        return response.body
