"""Control endpoints under ``/_sim/``: let another process inspect and steer a simulator.

Unauthenticated and not logged in :attr:`HubSpotSimulator.requests`:

- ``GET /_sim/health``, ``GET /_sim/stats``, ``GET /_sim/options``
- ``GET /_sim/objects/{objectType}[?archived=1]`` -> ``{"results": [...]}``
- ``GET /_sim/associations/{fromObjectType}[/{toObjectType}]`` -> ``{"results": [...]}``
- ``GET /_sim/requests[?upserts_only=1][&since=SEQ]`` -> ``{"results": [entry...]}``
- ``POST /_sim/configure`` (JSON options, ``hostile`` included), ``POST /_sim/reset``
- ``POST /_sim/script`` ``{"faults": [...]}``, ``POST /_sim/revoke`` ``{"token": ...}``
- ``POST /_sim/rewrites`` ``{"endpoint": "batch_upsert", "modes": [...]}`` (see ``rewrite.py``)
- ``POST /_sim/consume`` ``{"n": N}``
- ``POST /_sim/validation_rule`` ``{"object_type", "property", "value", "message"?}``
- ``POST /_sim/object_type`` ``{"name", "type_id", "properties", "aliases"?}``
- ``POST /_sim/association_label`` ``{"from", "to", "label", "inverse_label"?}`` -> ``{"typeId", "inverseTypeId"}``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .responses import Response, error, parse_json_or_none

if TYPE_CHECKING:
    from .server import HubSpotSimulator

_OK = {"status": "ok"}


def _objects(sim: HubSpotSimulator, args: list[str], query: dict[str, str]) -> Response:
    if len(args) != 1:
        return _unknown()
    try:
        archived = query.get("archived") in ("1", "true")
        return Response(200, {"results": sim.objects(args[0], archived)})
    except KeyError:
        return error(404, f"Unable to infer object type from: {args[0]}", None)


def _requests(sim: HubSpotSimulator, args: list[str], query: dict[str, str]) -> Response:
    entries = sim.upsert_requests() if query.get("upserts_only") in ("1", "true") else sim.requests
    since = int(query.get("since", 0))
    return Response(200, {"results": [e.to_dict() for e in entries if e.seq > since]})


def _associations(sim: HubSpotSimulator, args: list[str], query: dict[str, str]) -> Response:
    if len(args) not in (1, 2):
        return _unknown()
    return Response(200, {"results": sim.associations(*args)})


_GET: dict[str, Callable[[HubSpotSimulator, list[str], dict[str, str]], Response]] = {
    "health": lambda sim, args, query: Response(200, _OK),
    "stats": lambda sim, args, query: Response(200, sim.stats),
    "options": lambda sim, args, query: Response(200, sim.options),
    "objects": _objects,
    "requests": _requests,
    "associations": _associations,
}


def _configure(sim: HubSpotSimulator, data: dict[str, Any]) -> Response:
    sim.configure(**data)
    return Response(200, sim.options)


def _validation_rule(sim: HubSpotSimulator, data: dict[str, Any]) -> None:
    extra = {"message": data["message"]} if "message" in data else {}
    sim.add_validation_rule(data["object_type"], data["property"], data["value"], **extra)


def _association_label(sim: HubSpotSimulator, data: dict[str, Any]) -> Response:
    type_id, inverse = sim.add_association_label(data["from"], data["to"], data["label"], data.get("inverse_label"))
    return Response(200, {"typeId": type_id, "inverseTypeId": inverse})


_POST: dict[str, Callable[[HubSpotSimulator, dict[str, Any]], Response | None]] = {
    "configure": _configure,
    "reset": lambda sim, data: sim.reset(),
    "script": lambda sim, data: sim.script_faults(data.get("faults", [])),
    "rewrites": lambda sim, data: sim.script_rewrites(data["endpoint"], data.get("modes", [])),
    "revoke": lambda sim, data: sim.revoke_token(data["token"]),
    "consume": lambda sim, data: sim.consume_rate_limit(int(data.get("n", 1))),
    "validation_rule": _validation_rule,
    "association_label": _association_label,
    "object_type": lambda sim, data: sim.add_object_type(
        data["name"], data["type_id"], data.get("properties", []), data.get("aliases", ())
    ),
}


def _unknown(method: str = "", path: str = "") -> Response:
    return Response(404, {"status": "error", "message": f"unknown control endpoint {method} {path}".rstrip()})


def handle(sim: HubSpotSimulator, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
    """Answer a control call; bad arguments get a 400 with the reason."""
    try:
        return _dispatch(sim, method, path, query, body)
    except (ValueError, KeyError, TypeError) as exc:
        return Response(400, {"status": "error", "message": str(exc).strip("'\"")})


def _dispatch(sim: HubSpotSimulator, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
    parts = path.strip("/").split("/")
    action, args = (parts[1] if len(parts) > 1 else ""), parts[2:]
    data = parse_json_or_none(body) if body.strip() else None
    if body.strip() and data is None:
        raise ValueError("invalid JSON body")
    if method == "GET" and action in _GET:
        return _GET[action](sim, args, query)
    if method == "POST" and action in _POST and not args:
        if not isinstance(data, (dict, type(None))):
            raise ValueError("expected a JSON object body")
        return _POST[action](sim, data or {}) or Response(200, _OK)
    return _unknown(method, path)
