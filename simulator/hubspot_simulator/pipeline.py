"""The request pipeline: log, authenticate, rate-limit, inject faults, route, count."""

from __future__ import annotations

import json
import re
import sys
import traceback
from typing import Any

from . import account, associations, contract, hostile, oauth, objects, properties, rewrite, schemas, search
from .auth import bearer
from .requestlog import RequestLogEntry, fingerprint
from .responses import (
    Response,
    correlation_id,
    error,
    fault_response,
    fmt_number,
    no_results,
    not_found,
    now_iso,
    rate_limited,
)
from .routing import Call, Route
from .state import SimState

ROUTES: list[Route] = [
    *objects.ROUTES, *associations.ROUTES, *properties.ROUTES, *oauth.ROUTES, *account.ROUTES, *schemas.ROUTES,
    *search.ROUTES,
]


def find_route(method: str, path: str) -> tuple[Route, re.Match[str]] | None:
    """The first route matching the method and path."""
    for rt in ROUTES:
        if rt.methods is not None and method not in rt.methods:
            continue
        m = rt.pattern.fullmatch(path)
        if m is not None:
            return rt, m
    return None


def handle(state: SimState, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> Response:
    """Answer one API request (not a control call) and log it."""
    token = bearer(headers.get("Authorization"))
    with state.lock:
        state.seq += 1
        entry = RequestLogEntry(
            seq=state.seq, method=method, path=path, query=query, started=state.clock(), auth=fingerprint(token)
        )
        state.log.append(entry)
    found = find_route(method, path)
    misbehave = state.opts["hostile"]
    try:
        if hostile.applies(misbehave, path):
            resp = hostile.answer(misbehave, path, entry, state.playing, state.clock)
        elif found is None:
            resp = not_found(path)
        else:
            call = Call(entry, method, path, query, headers, token, body, found[1])
            resp = _serve(state, found[0], call)
    except Exception:  # noqa: BLE001 - any bug answers 500, as HubSpot would, and is printed
        traceback.print_exc(file=sys.stderr)
        resp = error(500, "internal simulator error", "INTERNAL_ERROR")
    _close(state, entry, resp)
    if contract.observers:
        contract.notify(contract.Exchange(method, path, body, resp.status, resp.obj, resp.drop, resp.play is not None,
                                          resp.content_type, entry.fault))
    return resp


def _close(state: SimState, entry: RequestLogEntry, resp: Response) -> None:
    if resp.play is None:  # a played answer notes its own end
        entry.finished = state.clock()
    with state.lock:
        st = state.stats
        st["requests"] += 1
        if resp.drop:
            entry.dropped = True
            entry.response_body = None
            st["dropped"] += 1
        else:
            entry.status = resp.status
            if entry.response_body is None and state.log_bodies:
                entry.response_body = resp.obj
            by = st["by_status"]
            by[resp.status] = by.get(resp.status, 0) + 1


def _parse_batch(state: SimState, call: Call) -> None:
    """Parse a batch body once, so even faulted requests log their input count and ids."""
    try:
        payload: Any = json.loads(call.body) if call.body else None
    except ValueError as exc:
        payload = exc
    call.payload = payload
    entry = call.entry
    if isinstance(payload, dict) and isinstance(payload.get("inputs"), list):
        entry.input_count = len(payload["inputs"])
        entry.ids = [_input_id(i) for i in payload["inputs"]]
    if state.log_bodies and not isinstance(payload, ValueError):
        entry.request_body = payload


def _input_id(inp: Any) -> Any:
    """The id an input addresses (the ``from`` id of an association input)."""
    if not isinstance(inp, dict):
        return None
    if "id" in inp:
        return inp["id"]
    end = inp.get("from")
    return end.get("id") if isinstance(end, dict) else None


#: Endpoints that change what HubSpot holds (properties and groups: any method but GET).
WRITE_ENDPOINTS = frozenset({
    "batch_upsert", "batch_update", "batch_create", "batch_archive",
    "associations_create", "associations_default", "associations_archive",
})


def is_write(endpoint: str | None, method: str) -> bool:
    """Whether a request to `endpoint` changes HubSpot's data."""
    return endpoint in WRITE_ENDPOINTS or (endpoint in ("properties", "property_groups") and method != "GET")


def _serve(state: SimState, rt: Route, call: Call) -> Response:
    call.entry.endpoint = rt.endpoint
    if state.opts["read_only"] and is_write(rt.endpoint, call.method):
        # A client that must not write (a dry run) is caught: the write is refused and logged.
        state.count("writes_refused")
        return error(403, f"read_only simulator: {call.method} {call.path} would change HubSpot", "READ_ONLY")
    ref = call.match.groupdict().get("type")
    if ref is not None:
        ot = state.db.resolve(ref)
        call.entry.object_type = ot.name if ot is not None else None
    if rt.batch:
        _parse_batch(state, call)
    if not rt.auth:
        return rt.handler(state, call)
    upsert = rt.endpoint == "batch_upsert"
    if upsert:
        with state.lock:
            state.in_flight += 1
            st = state.stats
            st["upserts"] += 1
            st["max_concurrent_upserts"] = max(st["max_concurrent_upserts"], state.in_flight)
    try:
        return _authorized(state, rt, call)
    finally:
        if upsert:
            with state.lock:
                state.in_flight -= 1


def _authorized(state: SimState, rt: Route, call: Call) -> Response:
    with state.lock:
        denied = state.tokens.authenticate(state.opts, call.token, state.clock())
    if denied is not None:
        return denied
    if rt.batch:
        state.sleep_latency(uplink=True)  # on its way: HubSpot counts a request when it arrives
    policy, headers, retry_after = _admit(state, rt, call)
    if policy is not None:
        resp = rate_limited(policy)
        if retry_after is not None:
            headers.append(("Retry-After", fmt_number(retry_after)))
    elif (denied := state.scope_denied(call.token, *required_scopes(state, rt, call))) is not None:
        resp = denied
    elif (refused := _refused(state, rt, call)) is not None:
        resp = refused
    elif rt.batch:
        resp = _with_faults(state, rt, call)
    else:
        resp = rt.handler(state, call)
    resp.headers.extend(headers)
    return resp


#: Endpoints and the access they need to each object type of their path (the granular CRM scopes
#: ``crm.objects.<object>.<access>`` and, for properties, ``crm.schemas.<object>.<access>``).
_ACCESS: dict[str, tuple[str, str]] = {
    "batch_read": ("objects", "read"),
    "batch_upsert": ("objects", "write"),
    "batch_update": ("objects", "write"),
    "batch_create": ("objects", "write"),
    "batch_archive": ("objects", "write"),
    "associations_create": ("objects", "write"),
    "associations_default": ("objects", "write"),
    "associations_archive": ("objects", "write"),
    "associations_read": ("objects", "read"),
    "association_labels": ("objects", "read"),
    "search": ("objects", "read"),
}


def required_scopes(state: SimState, rt: Route, call: Call) -> list[str]:
    """The scopes a token needs for this call (checked when ``token_scopes`` lists the token).

    Object endpoints need ``crm.objects.<object>.read|write`` for each object type of the path
    (both ends of an association); the Properties API needs ``crm.schemas.<object>.read`` to read
    and ``.write`` to create. Account details and token metadata need no scope beyond a valid token.
    An unknown object type needs none here: the handler answers it with 400.
    """
    if rt.endpoint in ("properties", "property_groups"):
        api, access = "schemas", ("read" if call.method == "GET" else "write")
    elif rt.endpoint in _ACCESS:
        api, access = _ACCESS[rt.endpoint]
    else:
        return []
    scopes: list[str] = []
    for key in ("type", "to"):
        ref = call.match.groupdict().get(key)
        if ref is None:
            continue
        ot = state.db.resolve(ref)
        if ot is None:
            return []
        scopes.append(f"crm.{api}.{ot.spec.scope_name}.{access}")
    return list(dict.fromkeys(scopes))


def _refused(state: SimState, rt: Route, call: Call) -> Response | None:
    """HubSpot's 400 for a JSON body its published model of the request refuses (see contract.py), else None.

    Bodies that are not JSON at all, and paths naming an unknown object type, are left to the
    handler, which answers them as before.
    """
    op = contract.operation(call.method, call.path)
    if op is None or op.request is None:
        return None
    if any(state.db.resolve(ref) is None for ref in call.match.groupdict().values() if ref is not None):
        return None
    if rt.batch:
        payload = call.payload
        if payload is None or isinstance(payload, ValueError):
            return None
    else:
        parsed, payload = contract.parse_body(call.body)
        if not parsed:
            return None
    problems = contract.check_request(op, payload)
    if not problems:
        return None
    return Response(400, contract.refusal_body(op, problems, correlation_id()))


def _admit(state: SimState, rt: Route, call: Call) -> tuple[str | None, list[tuple[str, str]], float | None]:
    """Count the request against the rate limits and draw its fault, as one decision.

    A rate-limited request never consumes a scripted fault, and scripted 429s don't count
    in the window.
    """
    daily_headers = call.token not in state.tokens  # HubSpot sends no daily headers to OAuth apps
    fault = None
    with state.lock:
        faults, opts = state.faults, state.opts
        if rt.faults and (fault := faults.next_rate_limit()) is not None:
            policy: str | None = "DAILY" if fault == "daily_429" else "TEN_SECONDLY_ROLLING"
            headers = state.limiter.headers(opts, daily_headers)
        else:
            policy, headers = state.limiter.check(opts, daily_headers, rt.ten_secondly)
            if policy is None and rt.faults:
                fault = faults.next(opts)
        st = state.stats
        if fault is not None:
            st["faults_injected"] += 1
        if policy is not None:
            st["rate_limited"] += 1
            st["rate_limited_daily" if policy == "DAILY" else "rate_limited_ten_secondly"] += 1
        retry_after = opts["retry_after_seconds"]
    call.fault = call.entry.fault = fault
    return policy, headers, retry_after


def _with_faults(state: SimState, rt: Route, call: Call) -> Response:
    """Add latency (the downlink, while counted in flight), then apply the drawn fault around the handler."""
    started = now_iso()
    state.sleep_latency()
    fault = call.fault
    if isinstance(fault, int):
        return fault_response(fault)
    if fault == "drop":
        return Response(0, None, drop=True)
    if fault == "empty_200":
        return no_results(started)
    with state.lock:
        mode = state.rewrites.next(rt.endpoint)
    if mode is not None:
        call.entry.fault = f"rewrite:{mode}"
        resp = rewrite.answer(mode, call, lambda: rt.handler(state, call))
    else:
        resp = rt.handler(state, call)
    if fault == "drop_after_write":
        resp.drop = True
    return resp
