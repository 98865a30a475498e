"""Associations v4: ``/crm/v4/associations/{from}/{to}/...`` and the dated ``/crm/associations/{version}/...``.

HubSpot exempts these batch endpoints from the ten-secondly limit (they count against the
daily one); the labels read is an ordinary request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .associations_store import AssociationType, type_id_of
from .objects import batch_answer, parse_inputs
from .responses import Response, error, now_iso, standard_error
from .routing import DATED, Call, Route, route
from .store import ObjectType

if TYPE_CHECKING:
    from .state import SimState

MAX_INPUTS = 100  # create/archive: unconfirmed, HubSpot's usual batch size
MAX_READ_INPUTS = 1000


def _pair(state: SimState, call: Call, access: str) -> tuple[ObjectType, ObjectType] | Response:
    """The from and to object types (names or ids), or the 400 / 403."""
    types = []
    for ref in (call.match["type"], call.match["to"]):
        ot = state.db.resolve(ref)
        if ot is None:
            return error(400, f"Unable to infer object type from: {ref}")
        types.append(ot)
    scopes = dict.fromkeys(f"crm.objects.{ot.spec.scope_name}.{access}" for ot in types)
    denied = state.scope_denied(call.token, *scopes)
    return denied or (types[0], types[1])


def _end(value: Any) -> str | None:
    """The id of a ``{"id": ...}`` end of an association input."""
    if isinstance(value, dict) and value.get("id") not in (None, ""):
        return str(value["id"])
    return None


def _bad_input(what: str) -> Response:
    return error(400, f"Invalid input: each input needs {what}.")


def _missing(state: SimState, pairs: list[tuple[ObjectType, str]]) -> dict[str, Any] | None:
    """The OBJECT_NOT_FOUND item for association ends that are no live object, or None."""
    gone = [(ot, oid) for ot, oid in pairs if not state.db.exists(ot, oid)]
    if not gone:
        return None
    names = ", ".join(f"{ot.enum_name} {oid}" for ot, oid in gone)
    return standard_error("OBJECT_NOT_FOUND", f"No object found for {names}", {"ids": [oid for _, oid in gone]})


def _link(state: SimState, ends: tuple[ObjectType, str, ObjectType, str], types: list[AssociationType]) -> None:
    db = state.db
    with db.store_lock, db.catalog_lock:
        db.links.add(db.association_types, (ends[0].name, ends[1], ends[2].name, ends[3]), types)


def _resolve_types(
    state: SimState, pair: tuple[ObjectType, ObjectType], specs: list[Any]
) -> list[AssociationType] | dict[str, Any]:
    """The association types of an input, or the error item naming the unknown ones."""
    found, unknown = [], []
    for spec in specs:
        category = spec.get("associationCategory") if isinstance(spec, dict) else None
        type_id = type_id_of(spec.get("associationTypeId")) if isinstance(spec, dict) else None
        t = state.db.association_type(pair[0].name, pair[1].name, category, type_id)
        if t is None:
            unknown.append(f"{category}/{type_id}")
        else:
            found.append(t)
    if not unknown:
        return found
    return standard_error(
        "VALIDATION_ERROR",
        f"Association type(s) {', '.join(unknown)} not defined from {pair[0].name} to {pair[1].name}",
        {"associationTypeId": unknown},
    )


def _batch(
    state: SimState, call: Call, access: str, limit: int
) -> tuple[tuple[ObjectType, ObjectType], list[Any]] | Response:
    pair = _pair(state, call, access)
    if isinstance(pair, Response):
        return pair
    inputs = parse_inputs(call.payload, limit)
    return inputs if isinstance(inputs, Response) else (pair, inputs)


def batch_create(state: SimState, call: Call) -> Response:
    """``POST .../batch/create``: labelled (or default) links; 201, 207 with per-input errors."""
    started = now_iso()
    req = _batch(state, call, "write", MAX_INPUTS)
    if isinstance(req, Response):
        return req
    (from_ot, to_ot), inputs = req
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for inp in inputs:
        from_id, to_id, specs = _end(inp.get("from")), _end(inp.get("to")), inp.get("types")
        if from_id is None or to_id is None or not isinstance(specs, list) or not specs:
            return _bad_input('"from": {"id"}, "to": {"id"} and a non-empty "types" array')
        problem = _missing(state, [(from_ot, from_id), (to_ot, to_id)])
        types = _resolve_types(state, (from_ot, to_ot), specs) if problem is None else problem
        if isinstance(types, dict):
            errors.append(types)
            continue
        _link(state, (from_ot, from_id, to_ot, to_id), types)
        results.append({
            "fromObjectTypeId": from_ot.spec.type_id,
            "fromObjectId": from_id,  # strings, as the v4 models (LabelsBetweenObjectPair) have them
            "toObjectTypeId": to_ot.spec.type_id,
            "toObjectId": to_id,
            "labels": [t.label for t in types if t.label],
        })  # fmt: skip
    return batch_answer(call, results, errors, started, ok=201)


def batch_associate_default(state: SimState, call: Call) -> Response:
    """``POST .../batch/associate/default``: link with the pair's default type; 200, errors in the body."""
    started = now_iso()
    req = _batch(state, call, "write", MAX_INPUTS)
    if isinstance(req, Response):
        return req
    (from_ot, to_ot), inputs = req
    db = state.db
    with db.catalog_lock:
        default = db.association_types.default(from_ot.name, to_ot.name)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for inp in inputs:
        from_id, to_id = _end(inp.get("from")), _end(inp.get("to"))
        if from_id is None or to_id is None:
            return _bad_input('"from": {"id"} and "to": {"id"}')
        problem = _missing(state, [(from_ot, from_id), (to_ot, to_id)])
        if problem is not None:
            errors.append(problem)
            continue
        _link(state, (from_ot, from_id, to_ot, to_id), [default])
        spec = {"associationCategory": default.category, "associationTypeId": default.type_id}
        results.append({"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec})
    return batch_answer(call, results, errors, started, multi_status=False)


def batch_archive(state: SimState, call: Call) -> Response:
    """``POST .../batch/archive``: remove every link between ``from`` and each of ``to``; 204."""
    req = _batch(state, call, "write", MAX_INPUTS)
    if isinstance(req, Response):
        return req
    (from_ot, to_ot), inputs = req
    ends: list[tuple[str, str, str, str]] = []
    for inp in inputs:
        from_id, to = _end(inp.get("from")), inp.get("to")
        to_ids = [_end(t) for t in to] if isinstance(to, list) else [None]
        if from_id is None or None in to_ids:
            return _bad_input('"from": {"id"} and "to": [{"id"}, ...]')
        ends += [(from_ot.name, from_id, to_ot.name, to_id) for to_id in to_ids if to_id is not None]
    with state.db.store_lock:
        for e in ends:
            state.db.links.remove(e)
    return Response(204)


def _read_one(state: SimState, pair: tuple[ObjectType, ObjectType], from_id: str) -> dict[str, Any]:
    """One ``batch/read`` result, or its error item (``"status": "error"``)."""
    from_ot, to_ot = pair
    problem = _missing(state, [(from_ot, from_id)])
    if problem is not None:
        return problem
    db = state.db
    with db.store_lock, db.catalog_lock:
        links = db.links.of(from_ot.name, from_id, to_ot.name)
        to = [
            {
                "toObjectId": to_id,
                "associationTypes": [
                    db.association_types.type_of(from_ot.name, to_ot.name, c, t).to_wire() for c, t in sorted(kinds)
                ],
            }
            for to_id, kinds in links.items()
            if kinds
        ]
    if not to:
        return standard_error(
            "OBJECT_NOT_FOUND",
            f"No {to_ot.name} is associated with {from_ot.enum_name} {from_id}.",
            {"fromObjectId": [from_id]},
            subCategory="crm.associations.NO_ASSOCIATIONS_FOUND",
        )
    return {"from": {"id": from_id}, "to": to}


def batch_read(state: SimState, call: Call) -> Response:
    """``POST .../batch/read``: the links of each ``from`` object; 207 for ids without any."""
    started = now_iso()
    req = _batch(state, call, "read", MAX_READ_INPUTS)
    if isinstance(req, Response):
        return req
    pair, inputs = req
    ids = [_end(inp) for inp in inputs]
    if None in ids:
        return _bad_input('"id"')
    answers = [_read_one(state, pair, oid) for oid in dict.fromkeys(i for i in ids if i is not None)]
    results = [a for a in answers if a.get("status") != "error"]
    errors = [a for a in answers if a.get("status") == "error"]
    return batch_answer(call, results, errors, started)


def labels(state: SimState, call: Call) -> Response:
    """``GET .../labels``: the pair's association types (HubSpot-defined and user labels)."""
    pair = _pair(state, call, "read")
    if isinstance(pair, Response):
        return pair
    db = state.db
    with db.catalog_lock:
        types = db.association_types.of_pair(pair[0].name, pair[1].name)
        return Response(200, {"results": [t.to_wire() for t in types]})


_BASE = rf"/crm/(?:v4/associations|associations/{DATED})/(?P<type>[^/]+)/(?P<to>[^/]+)"
_EXEMPT: dict[str, bool] = {"batch": True, "ten_secondly": False}

ROUTES: list[Route] = [
    route(_BASE + "/batch/create/?", "associations_create", batch_create, ("POST",), **_EXEMPT),
    route(_BASE + "/batch/associate/default/?", "associations_default", batch_associate_default, ("POST",), **_EXEMPT),
    route(_BASE + "/batch/archive/?", "associations_archive", batch_archive, ("POST",), **_EXEMPT),
    route(_BASE + "/batch/read/?", "associations_read", batch_read, ("POST",), **_EXEMPT),
    route(_BASE + "/labels/?", "association_labels", labels, ("GET",)),
]
