"""The request log: one entry per request the simulator received (control calls excepted)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class RequestLogEntry:
    """One request received by the simulator (control ``/_sim/`` calls are not logged).

    Attributes:
        seq: Arrival order, from 1.
        method: HTTP method.
        path: URL path without the query string.
        query: Query parameters.
        object_type: Canonical object type name (the "from" type of association calls), or
            None (unknown type or no type).
        endpoint: ``batch_upsert``, ``batch_read``, ``batch_create``, ``batch_update``,
            ``batch_archive``, ``associations_create``, ``associations_default``,
            ``associations_archive``, ``associations_read``, ``association_labels``,
            ``account_info``, ``properties``, ``property_groups``, ``schemas``, ``oauth`` or ``other``.
        status: Response status, or None while in progress or when the connection was dropped.
        request_body: Parsed JSON (or form dict), None when empty or when ``log_bodies``
            is off. OAuth grants are logged verbatim, so tests can look for leaked tokens.
        response_body: Parsed JSON answer, None when dropped, non-JSON or ``log_bodies`` off.
        started: The simulator's clock (monotonic seconds) at arrival.
        finished: The simulator's clock when the answer was ready (None while in progress).
        dropped: True when the connection was closed without an answer.
        auth: Non-secret fingerprint of the bearer token (first 4 chars and length).
        input_count: Number of inputs of a batch call (None for other calls).
        ids: The inputs' ``id`` values of a batch call (None for other calls).
        fault: Injected fault applied to this request (e.g. ``503``, ``"drop"``,
            ``"hostile:trickle"``), or None.
        bytes_sent: Body bytes a hostile answer got onto the wire (None for other answers).
        hung_up: Whether the client hung up before a hostile answer was done (None for others).
    """

    seq: int
    method: str
    path: str
    query: dict[str, str]
    object_type: str | None = None
    endpoint: str = "other"
    status: int | None = None
    request_body: Any = None
    response_body: Any = None
    started: float = 0.0
    finished: float | None = None
    dropped: bool = False
    auth: str | None = None
    input_count: int | None = None
    ids: list[Any] | None = None
    fault: int | str | None = None
    bytes_sent: int | None = None
    hung_up: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as a JSON-serialisable dict (bodies shared, not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def fingerprint(secret: str | None) -> str | None:
    """Short, non-secret identification of a token: its first 4 characters and length."""
    if secret is None:
        return None
    return f"{secret[:4]}...({len(secret)})"
