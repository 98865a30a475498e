"""The CRM search API: ``POST /crm/v3/objects/{type}/search`` (and the dated path).

What it plays of HubSpot (see HUBSPOT_API.md, "Search"):

- ``filterGroups`` (ORed) of ``filters`` (ANDed): at most 5 groups, 6 filters a group, 18 in all.
  ``EQ`` compares strings case-insensitively; ``IN`` matches the stored value, lowercased,
  exactly against its values (HubSpot documents that ``IN`` string values must be lowercase: a
  value with capitals matches nothing). Other operators answer 400 (the simulator does not play them).
- ``limit`` at most 200 (default 10), paging with ``after``; no page reaches past the 10,000th
  result (400), and ``total`` counts every match.
- A request body of at most 3,000 characters.
- Its own per-second limit (``search_rate_limit_per_second``): a 429 with ``policyName``
  ``SECONDLY``. Search takes no slot of the ten-secondly window; it counts against the daily limit.
- The search index lags writes (``search_index_lag_seconds``): an object written less than that
  long ago is found as it was before the write, and one created that recently is not found.
- Archived objects are never found.
"""

from __future__ import annotations

import collections
import json
from typing import TYPE_CHECKING, Any

from .responses import Response, error, rate_limited
from .routing import DATED, Call, Route, route

if TYPE_CHECKING:
    from .state import SimState
    from .store import ObjectType, Store, StoredObject

MAX_BODY_CHARS = 3000
MAX_LIMIT = 200
DEFAULT_LIMIT = 10
MAX_RESULTS = 10_000
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_IN_VALUES = 100
OPERATORS = frozenset({"EQ", "IN"})

#: One object as the index holds it at a moment: its properties (a copy).
Snapshot = dict[str, str]


# -- the lagging index (kept by the store's writes while a lag is set) ----------------------------


def note_write(store: Store, obj: StoredObject, *, new: bool, before: Snapshot | None) -> None:
    """Record a write for the lagging index (``store.history`` is None when no lag is set).

    ``before`` is the object's state before this write (None for a new object): the state the
    index shows until the lag has passed, when the object had no history yet.
    """
    history = store.history
    if history is None:
        return
    entries = history.get(obj.id)
    if entries is None:
        entries = history[obj.id] = []
        if not new and before is not None:
            entries.append((float("-inf"), before))
    entries.append((store.clock(), dict(obj.properties)))


def _indexed(store: Store, obj: StoredObject, cutoff: float) -> Snapshot | None:
    """The object as the index shows it: its state as of `cutoff`, or None (not indexed yet)."""
    history = store.history
    if history is None:
        return obj.properties
    entries = history.get(obj.id)
    if entries is None:
        return obj.properties
    while len(entries) > 1 and entries[1][0] <= cutoff:
        entries.pop(0)
    if entries[0][0] > cutoff:
        return None
    if len(entries) == 1:
        del history[obj.id]  # caught up: the index holds the current state
        return obj.properties
    return entries[0][1]


# -- the per-second limit ----------------------------------------------------------------------


class SearchLimiter:
    """Search requests of the last second, against ``search_rate_limit_per_second`` (callers hold the lock)."""

    def __init__(self) -> None:
        self.sent: collections.deque[float] = collections.deque()

    def admit(self, limit: int | None, now: float) -> bool:
        """Count one search; False when the limit is reached (the request is not counted)."""
        if limit is None:
            return True
        while self.sent and self.sent[0] <= now - 1.0:
            self.sent.popleft()
        if len(self.sent) >= limit:
            return False
        self.sent.append(now)
        return True


# -- the request -------------------------------------------------------------------------------


def _bad(message: str) -> Response:
    return error(400, message)


def _filters(ot: ObjectType, payload: dict[str, Any]) -> list[list[tuple[str, str, Any]]] | Response:
    """The filter groups as ``[[(property, operator, value or set of values)]]``, or the 400."""
    groups = payload.get("filterGroups") or []
    if len(groups) > MAX_GROUPS:
        return _bad(f"Too many filter groups: {len(groups)}; at most {MAX_GROUPS} are allowed.")
    if sum(len(g.get("filters") or []) for g in groups) > MAX_FILTERS:
        return _bad(f"Too many filters: at most {MAX_FILTERS} in all filter groups are allowed.")
    out: list[list[tuple[str, str, Any]]] = []
    for group in groups:
        filters = group.get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            return _bad(f"Too many filters in a group: {len(filters)}; at most {MAX_FILTERS_PER_GROUP} are allowed.")
        parsed = []
        for f in filters:
            name, op = f["propertyName"], f["operator"]
            if op not in OPERATORS:
                return _bad(f"Operator {op} is not supported by this simulator (EQ and IN are).")
            if name not in ot.props:
                return _bad(f"Invalid property name {name} for {ot.name} filter.")
            if op == "EQ":
                if not isinstance(f.get("value"), str):
                    return _bad(f"Filter on {name} with operator EQ needs a value.")
                parsed.append((name, op, f["value"].lower()))
            else:
                values = f.get("values")
                if not isinstance(values, list) or not values:
                    return _bad(f"Filter on {name} with operator IN needs values.")
                if len(values) > MAX_IN_VALUES:
                    return _bad(f"Filter on {name} with operator IN takes at most {MAX_IN_VALUES} values.")
                parsed.append((name, op, frozenset(values)))
        out.append(parsed)
    return out


def _matches(props: Snapshot, oid: str, groups: list[list[tuple[str, str, Any]]]) -> bool:
    """Whether the object fits a filter group (every filter of it); with no groups, every object does."""
    return not groups or any(all(_fits(props, oid, *f) for f in group) for group in groups)


def _fits(props: Snapshot, oid: str, name: str, op: str, wanted: Any) -> bool:
    held = oid if name == "hs_object_id" else props.get(name)
    if held is None:
        return False
    held = held.lower()
    return held == wanted if op == "EQ" else held in wanted


def _paging(payload: dict[str, Any]) -> tuple[int, int] | Response:
    limit = payload.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        return _bad(f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}.")
    after = payload.get("after") or "0"
    if not after.isdigit():
        return _bad(f"Invalid paging cursor after={after!r}.")
    offset = int(after)
    if offset + limit > MAX_RESULTS:
        return _bad(f"Paging past {MAX_RESULTS:,} results is not allowed: narrow the search with filters.")
    return offset, limit


def search(state: SimState, call: Call) -> Response:
    """``POST .../search``: objects whose properties match the filters, a page at a time."""
    from .objects import resolve_type  # noqa: PLC0415 - objects -> store -> this module

    ot = resolve_type(state, call, "read")
    if isinstance(ot, Response):
        return ot
    with state.lock:
        admitted = state.search_limiter.admit(state.opts["search_rate_limit_per_second"], state.clock())
        state.stats["searches"] += 1
        if not admitted:
            state.stats["rate_limited"] += 1
            state.stats["rate_limited_secondly"] += 1
    if not admitted:
        return rate_limited("SECONDLY")
    if len(call.body.decode("utf-8", "replace")) > MAX_BODY_CHARS:
        return _bad(f"The request body exceeds {MAX_BODY_CHARS:,} characters.")
    try:
        payload = json.loads(call.body) if call.body else {}
    except ValueError as exc:
        return _bad(f"Invalid input JSON: {exc}")
    if not isinstance(payload, dict):
        return _bad("Invalid input JSON: expected an object.")
    groups = _filters(ot, payload)
    if isinstance(groups, Response):
        return groups
    page = _paging(payload)
    if isinstance(page, Response):
        return page
    offset, limit = page
    names = [n for n in payload.get("properties") or [] if n in ot.props]
    names = list(dict.fromkeys([*names, "hs_object_id", ot.created, ot.modified]))
    lag = state.opts["search_index_lag_seconds"]
    cutoff = state.clock() - lag
    db = state.db
    found: list[tuple[StoredObject, Snapshot]] = []
    with db.store_lock:
        store = db.stores[ot.name]
        for obj in list(store.objects.values()):
            props = _indexed(store, obj, cutoff) if lag else obj.properties
            if props is not None and _matches(props, obj.id, groups):
                found.append((obj, dict(props)))
    found.sort(key=lambda pair: int(pair[0].id))
    results = [
        {
            "id": obj.id,
            "properties": {n: props.get(n) for n in names},
            "createdAt": obj.created_at,
            "updatedAt": props.get(ot.modified) or obj.updated_at,
            "archived": False,
        }
        for obj, props in found[offset : offset + limit]
    ]
    body: dict[str, Any] = {"total": len(found), "results": results}
    if offset + limit < len(found):
        body["paging"] = {"next": {"after": str(offset + limit)}}
    return Response(200, body)


ROUTES: list[Route] = [
    route(rf"/crm/(?:v3/objects|objects/{DATED})/(?P<type>[^/]+)/search/?", "search", search, ("POST",),
          ten_secondly=False),
]
