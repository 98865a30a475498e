"""The OAuth token endpoint: ``POST /oauth/v1/token`` (form) and ``/oauth/v3/token`` (form or JSON)."""

from __future__ import annotations

import math
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .responses import Response, correlation_id, error, method_not_allowed, parse_json_or_none, rate_limited
from .routing import Call, Route, route

if TYPE_CHECKING:
    from .state import SimState


def _grant_params(call: Call) -> dict[str, Any]:
    text = call.body.decode("utf-8", "replace")
    ctype = (call.headers.get("Content-Type") or "").lower()
    if call.path.startswith("/oauth/v3/") and ("json" in ctype or text.lstrip().startswith("{")):
        parsed = parse_json_or_none(call.body)
        return {k: v for k, v in parsed.items() if isinstance(v, str)} if isinstance(parsed, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


def _refused(status: str, message: str) -> Response:
    # The OAuth guide's refusals name the problem in "status"; HubSpot's Error model adds a category.
    body = {"status": status, "message": message, "correlationId": correlation_id(), "category": "VALIDATION_ERROR"}
    return Response(400, body)


def _grant_error(state: SimState, params: dict[str, Any]) -> Response | None:
    """The 400 for a grant HubSpot refuses (lock held)."""
    if params.get("grant_type") != "refresh_token":
        return _refused("BAD_GRANT_TYPE", "missing or unsupported grant_type")
    clients = state.opts["oauth_clients"]
    client_id = params.get("client_id")
    if client_id not in clients or clients[client_id] != params.get("client_secret"):
        return _refused("BAD_CLIENT_ID", "missing or unknown client id")
    refresh = params.get("refresh_token")
    if not refresh or refresh not in state.opts["refresh_tokens"]:
        return _refused("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
    return None


def token(state: SimState, call: Call) -> Response:
    """Exchange a refresh token for an access token (rotating the refresh token if configured)."""
    if call.method != "POST":
        return method_not_allowed(call.method)
    with state.lock:
        fault = state.faults.next_oauth()
        if fault is not None:
            state.stats["faults_injected"] += 1
    if fault is not None:
        call.entry.fault = fault
        if fault == 429:
            return rate_limited("TEN_SECONDLY_ROLLING")
        return error(fault, "Simulated token endpoint failure.", "INTERNAL_ERROR")
    params = _grant_params(call)
    if state.log_bodies:
        # Logged verbatim: tests read issued tokens from the log to prove they never leak.
        call.entry.request_body = params
    with state.lock:
        refused = _grant_error(state, params)
        if refused is not None:
            return refused
        opts = state.opts
        refresh = params["refresh_token"]
        if opts["rotate_refresh_tokens"]:
            new_refresh = secrets.token_hex(16)
            opts["refresh_tokens"] = (opts["refresh_tokens"] - {refresh}) | {new_refresh}
            refresh = new_refresh
        ttl = opts["token_ttl_seconds"]
        access = state.tokens.issue(ttl, state.clock())
        state.stats["token_grants"] += 1
    body = {
        "token_type": "bearer",
        "refresh_token": refresh,
        "access_token": access,
        # Whole seconds, as TokenResponseIF has it; a sub-second test TTL rounds up (the token still
        # expires on time, so a client that trusts expires_in meets the expiry in flight).
        "expires_in": math.ceil(ttl),
    }
    return Response(200, body)


ROUTES: list[Route] = [
    route(r"/oauth/v[13]/token", "oauth", token, auth=False),
]
