"""Routes: which handler answers which path, and what the request pipeline does around it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .requestlog import RequestLogEntry
    from .responses import Response
    from .state import SimState

#: A date-versioned path segment, e.g. ``2026-09``.
DATED = r"[0-9]{4}-[0-9]{2}"


@dataclass
class Call:
    """One request as a handler sees it."""

    entry: RequestLogEntry
    method: str
    path: str
    query: dict[str, str]
    headers: Any
    token: str | None
    body: bytes
    match: re.Match[str]
    payload: Any = None  # parsed JSON body of batch routes (the ValueError when invalid)
    fault: int | str | None = None

    @property
    def dated(self) -> bool:
        """True on date-versioned paths (``/crm/objects/2026-09/...``).

        Their answers fold per-input errors into the 200/201 body instead of a 207.
        """
        return re.search(r"/v[0-9]+/", self.path) is None


Handler = Callable[["SimState", Call], "Response"]


@dataclass(frozen=True)
class Route:
    """One endpoint family.

    Attributes:
        pattern: Full-match pattern of the path; a ``type`` group names the object type.
        endpoint: Name in the request log.
        handler: Answers the call.
        methods: Methods the route matches; None matches any (the handler answers 405).
        batch: JSON body with ``inputs``: parsed up front, summarised in the log, latency added.
        faults: Takes items of the fault script and random faults (object batch endpoints).
        ten_secondly: Counts against the ten-secondly window (HubSpot exempts some endpoints).
        auth: Needs a bearer token and counts against the rate limits (not the token endpoint).
    """

    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler
    methods: frozenset[str] | None = field(default=None)
    batch: bool = False
    faults: bool = False
    ten_secondly: bool = True
    auth: bool = True


def route(
    pattern: str, endpoint: str, handler: Handler, methods: tuple[str, ...] | None = None, **flags: bool
) -> Route:
    """Build a :class:`Route` from a path pattern string."""
    return Route(re.compile(pattern), endpoint, handler, frozenset(methods) if methods else None, **flags)
