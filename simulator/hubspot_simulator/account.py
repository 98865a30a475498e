"""Which account a token belongs to: account details, and private-app token metadata.

``GET /account-info/v3/details`` and ``POST /oauth/v2/private-apps/get/access-token-info``.

Options ``account_info`` and ``token_info`` make either answer as an account or a HubSpot
without it would: ``missing`` (404, as for an unknown path) or, for account info, ``forbidden``
(403, the token lacks the scope).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .responses import Response, error, not_found, parse_json_or_none
from .routing import DATED, Call, Route, route

if TYPE_CHECKING:
    from .state import SimState


def utc_offset(time_zone: str) -> tuple[str, int]:
    """The zone's offset from UTC now, as account details give it: ``("-05:00", -18000000)``.

    A zone this machine does not know counts as UTC.
    """
    try:
        offset = datetime.now(ZoneInfo(time_zone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        offset = None
    ms = int(offset.total_seconds() * 1000) if offset is not None else 0
    sign, rest = ("-" if ms < 0 else "+"), abs(ms) // 60_000
    return f"{sign}{rest // 60:02d}:{rest % 60:02d}", ms


def details(state: SimState, call: Call) -> Response:
    """The portal id of the calling token (option ``portals``, else ``portal_id``) and its settings."""
    with state.lock:
        opts = state.opts
        if opts["account_info"] == "missing":
            return not_found(call.path)
        if opts["account_info"] == "forbidden":
            return error(403, "This app hasn't been granted all required scopes to make this call.", "MISSING_SCOPES")
        offset, offset_ms = utc_offset(opts["time_zone"])
        body = {
            "portalId": opts["portals"].get(call.token or "", opts["portal_id"]),
            "accountType": opts["account_type"],
            "timeZone": opts["time_zone"],
            "companyCurrency": opts["company_currency"],
            "additionalCurrencies": [],
            "utcOffset": offset,
            "utcOffsetMilliseconds": offset_ms,
            "uiDomain": opts["ui_domain"],
            "dataHostingLocation": "na1",
        }
    return Response(200, body)


def token_info(state: SimState, call: Call) -> Response:
    """The account (``hubId``) and scopes of the private-app token named by ``tokenKey``."""
    body = parse_json_or_none(call.body)
    key = body.get("tokenKey") if isinstance(body, dict) else None
    with state.lock:
        opts = state.opts
        if opts["token_info"] == "missing":  # noqa: S105 - an option value, not a secret
            return not_found(call.path)
        if not isinstance(key, str) or key not in opts["tokens"]:
            return error(400, "The token given in tokenKey is not a valid private app access token.")
        scopes = sorted((opts["token_scopes"] or {}).get(key, ()))
        return Response(200, {
            "userId": 1, "hubId": opts["portals"].get(key, opts["portal_id"]), "appId": 1,
            "scopes": scopes, "trialScopes": [], "trialScopeToScopeGroupPks": [],
        })


ROUTES: list[Route] = [
    route(rf"/account-info/(?:v3|{DATED})/details/?", "account_info", details, ("GET",)),
    route(r"/oauth/v2/private-apps/get/access-token-info/?", "token_info", token_info, ("POST",)),
]
