"""The Properties API: ``/crm/v3/properties/{type}`` (and dated), its single-property and group paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import FIELD_TYPES_BY_TYPE, make_group, make_property
from .objects import resolve_type
from .responses import Response, error, method_not_allowed, parse_json_or_none
from .routing import DATED, Call, Route, route
from .store import ObjectType
from .validation import PROPERTY_NAME_RE

if TYPE_CHECKING:
    from .state import SimState

MAX_UNIQUE_PROPERTIES = 10


def _body(state: SimState, call: Call) -> Any:
    data = parse_json_or_none(call.body)
    if state.log_bodies:
        call.entry.request_body = data
    return data


def _display_order(data: dict[str, Any]) -> int:
    order = data.get("displayOrder", -1)
    return order if isinstance(order, int) else -1


def properties(state: SimState, call: Call) -> Response:
    """``GET`` lists a type's properties, ``POST`` creates one."""
    if call.method not in ("GET", "POST"):
        return method_not_allowed(call.method)
    ot = resolve_type(state, call, "read" if call.method == "GET" else "write", "schemas")
    if isinstance(ot, Response):
        return ot
    if call.method == "GET":
        archived = call.query.get("archived", "false").lower() == "true"
        return Response(200, {"results": [] if archived else list(ot.props.values())})
    data = _body(state, call)
    invalid = _property_definition_error(data)
    if invalid is not None:
        return invalid
    return _create_property(state, ot, data)


def one_property(state: SimState, call: Call) -> Response:
    """``GET .../{type}/{name}``: one property definition."""
    if call.method != "GET":
        return method_not_allowed(call.method)
    ot = resolve_type(state, call, "read", "schemas")
    if isinstance(ot, Response):
        return ot
    name = call.match["name"]
    prop = ot.props.get(name)
    if prop is None:
        return error(404, f"Unable to find property {name} on object type {ot.name}", "OBJECT_NOT_FOUND")
    return Response(200, prop)


def _missing_fields(data: dict[str, Any]) -> Response | None:
    required = ("name", "label", "type", "fieldType", "groupName")
    missing = [f for f in required if not isinstance(data.get(f), str) or not data.get(f)]
    if not missing:
        return None
    return error(
        400,
        f"Missing required fields: {', '.join(missing)}",
        errors=[
            {"message": f"{f} is required", "code": "REQUIRED_FIELD", "context": {"field": [f]}} for f in missing
        ],
    )


def _property_definition_error(data: Any) -> Response | None:
    """The 400 for a property definition HubSpot would refuse before looking at the catalogue."""
    if not isinstance(data, dict):
        return error(400, "Invalid input JSON: expected a property definition object")
    missing = _missing_fields(data)
    if missing is not None:
        return missing
    name, ptype, ftype = data["name"], data["type"], data["fieldType"]
    if not PROPERTY_NAME_RE.fullmatch(name):
        return error(
            400,
            f"Property name '{name}' is invalid: use lowercase letters, digits and underscores, "
            "starting with a letter.",
        )
    if ptype not in FIELD_TYPES_BY_TYPE:
        return error(400, f"Invalid property type '{ptype}'. Valid types are {sorted(FIELD_TYPES_BY_TYPE)}")
    if ftype not in FIELD_TYPES_BY_TYPE[ptype]:
        return error(
            400,
            f"fieldType '{ftype}' is not valid for property type '{ptype}'. Valid fieldTypes are "
            f"{sorted(FIELD_TYPES_BY_TYPE[ptype])}",
        )
    options = data.get("options", [])
    if not isinstance(options, list) or not all(
        isinstance(o, dict) and isinstance(o.get("label"), str) and isinstance(o.get("value"), str) for o in options
    ):
        return error(400, "options must be a list of objects with string label and value")
    if not isinstance(data.get("hasUniqueValue", False), bool):
        return error(400, "hasUniqueValue must be a boolean")
    return None


def _new_property(data: dict[str, Any]) -> dict[str, Any]:
    options = data.get("options", [])
    prop = make_property(
        data["name"],
        data["type"],
        data["fieldType"],
        label=data["label"],
        group=data["groupName"],
        description=str(data.get("description", "")),
        options=[(o["label"], o["value"]) for o in options] or None,
        unique=data.get("hasUniqueValue", False),
        external_options=bool(data.get("externalOptions", False)),
        hidden=bool(data.get("hidden", False)),
        display_order=_display_order(data),
    )
    if data.get("formField") is not None:
        prop["formField"] = bool(data["formField"])
    return prop


def _create_property(state: SimState, ot: ObjectType, data: dict[str, Any]) -> Response:
    name = data["name"]
    db = state.db
    with db.catalog_lock:
        ot = db.types[ot.name]  # re-read: another request may have changed it
        if name in ot.props:
            return error(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        if data["groupName"] not in ot.groups:
            return error(400, f"Property group '{data['groupName']}' does not exist.")
        unique_count = sum(1 for p in ot.props.values() if p.get("hasUniqueValue"))
        if data.get("hasUniqueValue") and unique_count >= MAX_UNIQUE_PROPERTIES:
            return error(400, f"An object can have at most {MAX_UNIQUE_PROPERTIES} properties with unique values.")
        prop = _new_property(data)
        spec = ot.spec.copy()
        spec.properties.append(prop)
        db.register_type(spec)  # copy-on-write: readers keep their snapshot
    state.count("properties_created")
    return Response(201, prop)


def groups(state: SimState, call: Call) -> Response:
    """``GET`` lists a type's property groups, ``POST`` creates one."""
    if call.method not in ("GET", "POST"):
        return method_not_allowed(call.method)
    ot = resolve_type(state, call, "read" if call.method == "GET" else "write", "schemas")
    if isinstance(ot, Response):
        return ot
    if call.method == "GET":
        return Response(200, {"results": list(ot.groups.values())})
    data = _body(state, call)
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) and data.get(f) for f in ("name", "label")):
        return error(400, "A property group needs a name and a label.")
    name = data["name"]
    if not PROPERTY_NAME_RE.fullmatch(name):
        return error(400, f"Property group name '{name}' is invalid.")
    db = state.db
    with db.catalog_lock:
        ot = db.types[ot.name]
        if name in ot.groups:
            return error(409, f"Property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        group = make_group(name, data["label"], _display_order(data))
        spec = ot.spec.copy()
        spec.groups.append(group)
        db.register_type(spec)
    return Response(201, group)


_BASE = rf"/crm/(?:v3/properties|properties/{DATED})/(?P<type>[^/]+)"

ROUTES: list[Route] = [
    route(_BASE + "/groups/?", "property_groups", groups),
    route(_BASE + "/?", "properties", properties),
    route(_BASE + "/(?P<name>[^/]+)/?", "properties", one_property),
]
