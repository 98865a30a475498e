"""Which account a token belongs to: account details, and private-app token metadata.

``GET /account-info/v3/details`` and ``POST /oauth/v2/private-apps/get/access-token-info``.

Options ``account_info`` and ``token_info`` make either answer as an account or a HubSpot
without it would: ``missing`` (404, as for an unknown path) or, for account info, ``forbidden``
(403, the token lacks the scope).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .responses import Response, error, not_found, parse_json_or_none
from .routing import DATED, Call, Route, route

if TYPE_CHECKING:
    from .state import SimState


def details(state: SimState, call: Call) -> Response:
    """The portal id of the calling token (option ``portals``, else ``portal_id``) and its settings."""
    with state.lock:
        opts = state.opts
        if opts["account_info"] == "missing":
            return not_found(call.path)
        if opts["account_info"] == "forbidden":
            return error(403, "This app hasn't been granted all required scopes to make this call.", "MISSING_SCOPES")
        body = {
            "portalId": opts["portals"].get(call.token or "", opts["portal_id"]),
            "accountType": opts["account_type"],
            "timeZone": opts["time_zone"],
            "companyCurrency": opts["company_currency"],
            "additionalCurrencies": [],
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
