"""Account details: ``GET /account-info/v3/details`` (the portal a token belongs to)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .responses import Response
from .routing import DATED, Call, Route, route

if TYPE_CHECKING:
    from .state import SimState


def details(state: SimState, call: Call) -> Response:
    """The portal id of the calling token (option ``portals``, else ``portal_id``) and its settings."""
    with state.lock:
        opts = state.opts
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


ROUTES: list[Route] = [
    route(rf"/account-info/(?:v3|{DATED})/details/?", "account_info", details, ("GET",)),
]
