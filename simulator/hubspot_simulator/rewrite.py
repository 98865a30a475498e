"""Answers that confirm less than was sent: a HubSpot whose 2xx answers cannot be taken at face value.

Scripted per endpoint (``script_rewrites(endpoint, modes)``, ``POST /_sim/rewrites``): each
request to that endpoint takes the next mode. Every answer stays within HubSpot's published
models (a batch answer's ``status``, ``results`` and their fields); only what it confirms changes.

- ``duplicate_result``: every input but the last is written; the answer repeats the first result.
- ``extra_result``: every input but the last is written; the answer adds a result for an object
  nobody asked for, without a trace id or id value.
- ``anonymous_results``: every input but the last is written; the results carry no trace ids and
  no id values (only record ids).
- ``half``: the first half of the inputs is written and confirmed; the rest is neither written nor
  named by an error.
- ``canceled``: nothing is written; ``"status": "CANCELED", "results": []``.
- ``pending``: everything is written; ``"status": "PENDING", "results": []``.
- ``None``: behave normally.

From Python, a mode may also be a :class:`Rewrite`: which inputs are written, and any change of
the answer (property-based tests draw them).
"""

from __future__ import annotations

import copy
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .responses import Response, no_results, now_iso

MODES = ("duplicate_result", "extra_result", "anonymous_results", "half", "canceled", "pending")
_EXTRA_IDS = itertools.count(9_000_000_000)
# Properties every object result carries whatever was asked (kept by anonymous_results).
_BUILT_IN = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"})


class Rewrite:
    """A rewrite of one answer, given from Python: `keep(inputs)` the inputs written, `change(body)` the answer."""

    def __init__(
        self, keep: Callable[[list[Any]], list[Any]], change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.keep = keep
        self.change = change


class Rewrites:
    """The scripted modes per endpoint name (callers hold the state lock)."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[str | Rewrite | None]] = {}

    def script(self, endpoint: str, modes: Iterable[str | Rewrite | None]) -> None:
        """Replace the endpoint's script.

        Raises:
            ValueError: An unknown mode.
        """
        items = list(modes)
        unknown = [m for m in items if m is not None and not isinstance(m, Rewrite) and m not in MODES]
        if unknown:
            raise ValueError(f"unknown answer rewrite {unknown[0]!r}; known: {', '.join(MODES)}")
        self.scripts[endpoint] = deque(items)

    def next(self, endpoint: str) -> str | Rewrite | None:
        """The endpoint's next mode (None: answer normally)."""
        script = self.scripts.get(endpoint)
        return script.popleft() if script else None

    def clear(self) -> None:
        """Forget every script."""
        self.scripts.clear()


def answer(mode: str | Rewrite, call: Any, handler: Callable[[], Response]) -> Response:
    """Run `handler` on the inputs `mode` lets through, then rewrite its answer."""
    payload = call.payload
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list):
        return handler()
    if isinstance(mode, Rewrite):
        return _custom(mode, call, handler)
    started = now_iso()
    if mode == "canceled":
        ok = 201 if call.entry.endpoint == "batch_create" else 200  # batch/create answers 201
        return no_results(started, "CANCELED", ok)
    kept = inputs
    if mode in ("duplicate_result", "extra_result", "anonymous_results"):
        kept = inputs[:-1]
    elif mode == "half":
        kept = inputs[: len(inputs) // 2]
    resp = _handle_kept(call, kept, handler, started)
    body = resp.obj
    if not 200 <= resp.status < 300 or not isinstance(body, dict):
        return resp
    results = body.get("results")
    results = results if isinstance(results, list) else []
    if mode == "duplicate_result" and results:
        results.append(copy.deepcopy(results[0]))
    elif mode == "extra_result" and results:
        extra = copy.deepcopy(results[0])
        extra.pop("objectWriteTraceId", None)
        if "id" in extra:
            extra["id"] = str(next(_EXTRA_IDS))
            extra["properties"] = {"hs_object_id": extra["id"]}
        results.append(extra)
    elif mode == "anonymous_results":
        for result in results:
            result.pop("objectWriteTraceId", None)
            props = result.get("properties")
            if isinstance(props, dict):
                result["properties"] = {k: v for k, v in props.items() if k in _BUILT_IN}
    elif mode == "pending":
        body["status"] = "PENDING"
        results.clear()
    body["results"] = results
    return Response(resp.status, body, headers=resp.headers)


def _custom(mode: Rewrite, call: Any, handler: Callable[[], Response]) -> Response:
    resp = _handle_kept(call, mode.keep(list(call.payload["inputs"])), handler, now_iso())
    if not 200 <= resp.status < 300 or not isinstance(resp.obj, dict):
        return resp
    return Response(resp.status, mode.change(resp.obj), headers=resp.headers)


def _handle_kept(call: Any, kept: list[Any], handler: Callable[[], Response], started: str) -> Response:
    """Run `handler` as if only the `kept` inputs had been sent (an empty COMPLETE answer when none are)."""
    if not kept:
        return no_results(started)
    payload = call.payload
    call.payload = {**payload, "inputs": kept}
    try:
        return handler()
    finally:
        call.payload = payload
