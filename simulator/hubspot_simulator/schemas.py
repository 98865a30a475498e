"""``GET /crm/v3/schemas``: the account's custom object types, as HubSpot's schemas API lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .responses import Response
from .routing import DATED, Call, Route, route

if TYPE_CHECKING:
    from .state import SimState

_EPOCH = "2024-01-01T00:00:00Z"


def _schema(name: str, type_id: str, portal_id: int, properties: list[dict[str, Any]]) -> dict[str, Any]:
    label = name.rstrip("s").replace("_", " ").capitalize()
    return {
        "id": type_id.split("-", 1)[1],
        "name": name,
        "objectTypeId": type_id,
        "fullyQualifiedName": f"p{portal_id}_{name}",
        "labels": {"singular": label, "plural": f"{label}s"},
        "requiredProperties": [],
        "searchableProperties": [],
        "secondaryDisplayProperties": [],
        "properties": properties,
        "associations": [],
        "archived": False,
        "createdAt": _EPOCH,
        "updatedAt": _EPOCH,
    }


def schemas(state: SimState, call: Call) -> Response:
    """Every custom object type (standard types are not listed, as in HubSpot)."""
    with state.lock:
        portal_id = int(state.opts["portal_id"])
    with state.db.catalog_lock:
        custom = [ot.spec for ot in state.db.types.values() if ot.spec.custom]
    return Response(200, {"results": [_schema(s.name, s.type_id, portal_id, s.properties) for s in custom]})


ROUTES: list[Route] = [
    route(rf"/crm/(?:v3|{DATED})/schemas/?", "schemas", schemas, ("GET",)),
]
