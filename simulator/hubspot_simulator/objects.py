"""Object batch endpoints: ``/crm/v3/objects/{type}/batch/...`` and the dated ``/crm/objects/{version}/...``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .associations_store import AssociationType, type_id_of
from .responses import Response, error, error_detail, now_iso, standard_error
from .routing import DATED, Call, Route, route
from .store import ObjectType
from .validation import NOT_A_STRING, Problem, not_a_string_message, property_values_message, validate_input

if TYPE_CHECKING:
    from .state import SimState

MAX_INPUTS = 100


def _required(field: str) -> Response:
    return error(
        400,
        f'Invalid input: "{field}" is required and must be {"a non-empty string" if field == "id" else "an object"}.',
        errors=[{"message": f"{field} is required", "code": "REQUIRED_FIELD", "context": {"field": [field]}}],
    )


def parse_inputs(payload: Any, limit: int = MAX_INPUTS) -> list[Any] | Response:
    """The ``inputs`` of a batch body, or the 400 for a malformed body or batch size."""
    if isinstance(payload, ValueError):
        return error(
            400,
            f"Invalid input JSON on line {getattr(payload, 'lineno', 1)}, column "
            f"{getattr(payload, 'colno', 1)}: {getattr(payload, 'msg', str(payload))}",
        )
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        return error(400, 'Invalid input JSON: expected an object with an "inputs" array.')
    inputs: list[Any] = payload["inputs"]
    if not 1 <= len(inputs) <= limit:
        return error(400, f"Batch size must be between 1 and {limit}, got {len(inputs)} inputs.")
    for inp in inputs:
        if type(inp) is not dict:
            return error(400, "Invalid input JSON: each input must be an object.")
    return inputs


def _check_shape(inp: dict[str, Any], needs_id: bool) -> Response | None:
    """400 for an input whose ``id``, ``properties``, ``idProperty`` or trace id is malformed."""
    iid = inp.get("id")
    if needs_id and (type(iid) is not str or not iid):
        return _required("id")
    if type(inp.get("properties")) is not dict:
        return _required("properties")
    idp = inp.get("idProperty")
    if idp is not None and type(idp) is not str:
        return error(400, 'Invalid input: "idProperty" must be a string.')
    trace = inp.get("objectWriteTraceId")
    if trace is not None and type(trace) is not str:
        return error(400, 'Invalid input: "objectWriteTraceId" must be a string.')
    return None


def non_unique_id_property(idp: str) -> Response:
    """HubSpot's 400 for an ``idProperty`` that is not a unique property."""
    msg = f"Unable to perform update/upsert by non-unique or non-existent property {idp}"
    return error(
        400,
        msg,
        errors=[{"message": msg, "code": "INVALID_ID_PROPERTY", "context": {"propertyName": [idp]}}],
    )


def duplicate_ids(dups: list[str]) -> Response:
    """The whole-request 400 for ids given twice in one update/upsert."""
    return error(
        400,
        f"Duplicate IDs found in batch input: [{', '.join(dups)}]. IDs must be unique",
        context={"ids": dups},
    )


def _validated(
    ot: ObjectType, inp: dict[str, Any], rules: Any, idp: str | None
) -> list[Problem] | Response | None:
    found = validate_input(ot.validators, inp["properties"], rules, idp, inp.get("id") if idp else None)
    if found is NOT_A_STRING:
        name, msg = not_a_string_message(inp["properties"])
        return error(400, msg, errors=[error_detail(msg, "INVALID_TYPE", name)])
    return found  # type: ignore[return-value]


def _note_duplicate(seen: set[Any], dups: list[str], key: Any, shown: str) -> None:
    if key in seen:
        if shown not in dups:
            dups.append(shown)
    else:
        seen.add(key)


def _input_context(inp: dict[str, Any]) -> dict[str, list[str]]:
    trace = inp.get("objectWriteTraceId")
    if trace:
        return {"objectWriteTraceId": [trace]}
    return {"id": [inp["id"]]} if "id" in inp else {}


def validation_error_item(state: SimState, inp: dict[str, Any], found: list[Problem]) -> dict[str, Any]:
    """The per-input ``errors[]`` item of an input with invalid values."""
    ctx = _input_context(inp)
    if state.opts["error_detail"] == "none":
        return standard_error("VALIDATION_ERROR", "Invalid input", ctx)
    ctx["propertyName"] = list(dict.fromkeys(name for name, _, _ in found))
    details = [error_detail(msg, code, name) for name, code, msg in found]
    return standard_error("VALIDATION_ERROR", property_values_message(found), ctx, details)


def conflict_error_item(inp: dict[str, Any], prop: str, message: str) -> dict[str, Any]:
    """The per-input ``errors[]`` item of an input that claims another object's unique value."""
    ctx = _input_context(inp)
    ctx["propertyName"] = [prop]
    return standard_error("CONFLICT", message, ctx, [error_detail(message, "CONFLICT", prop)])


def first_invalid(state: SimState, found: list[Problem]) -> Response:
    """The whole-request 400 of ``validation_error_mode: batch``: the first invalid input's problems."""
    if state.opts["error_detail"] == "none":
        return error(400, "Invalid input")
    errors = [error_detail(msg, code, name) for name, code, msg in found]
    return error(400, property_values_message(found), errors=errors)


def batch_answer(
    call: Call,
    results: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    started: str,
    ok: int = 200,
    multi_status: bool = True,
) -> Response:
    """A batch answer: ``ok`` (or 207 on versioned paths when there are errors), errors in the body."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    status = ok
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        status = 207 if multi_status and not call.dated else ok
    body["startedAt"] = started
    body["completedAt"] = now_iso()
    return Response(status, body)


def resolve_type(state: SimState, call: Call, access: str, api: str = "objects") -> ObjectType | Response:
    """The call's object type, or the 400 (unknown type) / 403 (scope ``crm.{api}.<type>.{access}`` missing)."""
    ref = call.match["type"]
    ot = state.db.resolve(ref)
    if ot is None:
        return error(400, f"Unable to infer object type from: {ref}")
    return state.scope_denied(call.token, f"crm.{api}.{ot.spec.scope_name}.{access}") or ot


# -- batch/upsert -------------------------------------------------------------------------


def _check_inputs(
    state: SimState, ot: ObjectType, inputs: list[dict[str, Any]], address: Any,
) -> list[list[Problem] | None] | Response:
    """Per-input problems, or the whole-request 400 (shape, idProperty, duplicates, non-strings).

    `address(ot, input)` returns (id property for duplicates, normalized id, id property for
    validation), or the 400 that ends the request: the one thing upsert and update differ in.
    """
    rules = state.db.rules_of(ot)
    seen: set[tuple[str, str]] = set()
    dups: list[str] = []
    problems: list[list[Problem] | None] = []
    for inp in inputs:
        bad = _check_shape(inp, needs_id=True)
        if bad is not None:
            return bad
        addressed = address(ot, inp)
        if isinstance(addressed, Response):
            return addressed
        idp, key, validate_by = addressed
        _note_duplicate(seen, dups, (idp, key), key)
        found = _validated(ot, inp, rules, validate_by)
        if isinstance(found, Response):
            return found
        problems.append(found)
    return duplicate_ids(dups) if dups else problems  # in every validation_error_mode


def _upsert_address(ot: ObjectType, inp: dict[str, Any]) -> tuple[str, str, str] | Response:
    # HubSpot defaults the idProperty to hs_object_id, which upsert rejects.
    idp = inp.get("idProperty") or "hs_object_id"
    if idp not in ot.id_props:
        return non_unique_id_property(idp)
    return idp, ot.key(idp, inp["id"]), idp


def _partial_write(state: SimState, call: Call, valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out a random part of a valid batch (``partial_write_rate``), answering 200 anyway."""
    with state.lock:
        rng = state.faults.rng
        if rng.random() >= state.opts["partial_write_rate"]:
            return valid
        skipped = set(rng.sample(range(len(valid)), rng.randint(1, len(valid))))
    call.entry.fault = "partial_write"
    return [inp for i, inp in enumerate(valid) if i not in skipped]


class _Checked:
    """A batch after whole-request checks: the inputs to write and the per-input errors so far."""

    def __init__(self, state: SimState, inputs: list[dict[str, Any]], problems: list[list[Problem] | None]) -> None:
        bad = [i for i, p in enumerate(problems) if p]
        self.batch_mode = state.opts["validation_error_mode"] == "batch"
        self.first_invalid = first_invalid(state, problems[bad[0]]) if bad and self.batch_mode else None  # type: ignore[arg-type]
        self.valid = [inp for inp, p in zip(inputs, problems, strict=True) if not p] if bad else inputs
        self.errors = [validation_error_item(state, inputs[i], problems[i]) for i in bad]  # type: ignore[arg-type]
        self.with_invalid = bool(bad)


def _checked_write(
    state: SimState, call: Call, address: Any,
) -> tuple[ObjectType, _Checked] | Response:
    """A write batch's object type and its inputs after the whole-request checks, or the answer that ends it."""
    req = _batch_request(state, call, "write")
    if isinstance(req, Response):
        return req
    ot, inputs = req
    problems = _check_inputs(state, ot, inputs, address)
    if isinstance(problems, Response):
        return problems
    checked = _Checked(state, inputs, problems)
    return checked.first_invalid if checked.first_invalid is not None else (ot, checked)


def _batch_request(
    state: SimState, call: Call, access: str, limit: int = MAX_INPUTS
) -> tuple[ObjectType, list[Any]] | Response:
    """The object type and inputs of a batch, or the 400/403 that ends it."""
    ot = resolve_type(state, call, access)
    if isinstance(ot, Response):
        return ot
    inputs = parse_inputs(call.payload, limit)
    if isinstance(inputs, Response):
        return inputs
    return ot, inputs


def batch_upsert(state: SimState, call: Call) -> Response:
    """``POST .../batch/upsert``: create or update by a unique property."""
    started = now_iso()
    req = _checked_write(state, call, _upsert_address)
    if isinstance(req, Response):
        return req
    ot, checked = req
    valid = checked.valid
    if not checked.with_invalid and state.opts["partial_write_rate"]:
        valid = _partial_write(state, call, valid)
    results, conflicts = state.db.upsert(ot, valid, all_or_nothing=checked.batch_mode)
    state.count("inputs_written", len(results))
    if conflicts and checked.batch_mode:
        return error(409, conflicts[0][2], "CONFLICT")
    errors = checked.errors + [conflict_error_item(valid[i], prop, message) for i, prop, message in conflicts]
    return batch_answer(call, results, errors, started)


def not_found_item(ot: ObjectType, ids: list[str]) -> dict[str, Any]:
    """The ``errors[]`` item naming ids that address no (live) object."""
    return standard_error(
        "OBJECT_NOT_FOUND", f"Could not get some {ot.enum_name} objects, they may be deleted or not exist", {"ids": ids}
    )


def _ids(inputs: list[dict[str, Any]]) -> list[str] | Response:
    ids = [inp.get("id") for inp in inputs]
    if not all(type(i) is str and i for i in ids):
        return _required("id")
    return ids  # type: ignore[return-value]


# -- batch/read ---------------------------------------------------------------------------


def _read_properties(ot: ObjectType, payload: dict[str, Any], key: str) -> list[str] | Response:
    names = payload.get(key) or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return error(400, f'Invalid input: "{key}" must be an array of property names.')
    return [n for n in names if n in ot.props]  # HubSpot ignores names it does not know


def _history(result: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The current value as the only history entry (the simulator keeps no history)."""
    props = result["properties"]
    return {
        n: [{"value": props[n], "timestamp": result["updatedAt"], "sourceType": "API"}]
        for n in names
        if props.get(n) is not None
    }


def batch_read(state: SimState, call: Call) -> Response:
    """``POST .../batch/read``: objects by record id or by a unique property (top-level ``idProperty``)."""
    started = now_iso()
    payload = call.payload if isinstance(call.payload, dict) else {}
    history = payload.get("propertiesWithHistory")
    req = _batch_request(state, call, "read", 50 if history else MAX_INPUTS)
    if isinstance(req, Response):
        return req
    ot, inputs = req
    idp = payload.get("idProperty") or "hs_object_id"
    if type(idp) is not str or (idp != "hs_object_id" and idp not in ot.id_props):
        return non_unique_id_property(str(idp))
    ids = _ids(inputs)
    wanted = _read_properties(ot, payload, "properties")
    with_history = _read_properties(ot, payload, "propertiesWithHistory")
    for bad in (ids, wanted, with_history):
        if isinstance(bad, Response):
            return bad
    always = ["hs_object_id", ot.created, ot.modified]
    names = list(dict.fromkeys([*always, *wanted, *with_history]))  # type: ignore[misc]
    archived = call.query.get("archived", "false").lower() == "true"
    found, missing = state.db.read(ot, idp, ids, names, archived)  # type: ignore[arg-type]
    if with_history:
        for r in found:
            r["propertiesWithHistory"] = _history(r, with_history)  # type: ignore[arg-type]
    if missing and not found and state.opts["read_all_missing_404"]:
        item = not_found_item(ot, missing)
        return error(404, item["message"], "OBJECT_NOT_FOUND", context=item["context"])
    return batch_answer(call, found, [not_found_item(ot, missing)] if missing else [], started)


# -- batch/update -------------------------------------------------------------------------


def _update_address(ot: ObjectType, inp: dict[str, Any]) -> tuple[str, str, None] | Response:
    idp = inp.get("idProperty")
    if idp is not None and (idp == "hs_object_id" or idp not in ot.id_props):
        return non_unique_id_property(idp)  # omit idProperty to address record ids
    return idp or "hs_object_id", ot.key(idp, inp["id"]) if idp else inp["id"], None


def batch_update(state: SimState, call: Call) -> Response:
    """``POST .../batch/update``: change existing objects (by record id, or ``idProperty`` per input)."""
    started = now_iso()
    req = _checked_write(state, call, _update_address)
    if isinstance(req, Response):
        return req
    ot, checked = req
    valid = checked.valid
    results, conflicts, missing = state.db.update(ot, valid, all_or_nothing=checked.batch_mode)
    state.count("inputs_written", len(results))
    if conflicts and checked.batch_mode:
        return error(409, conflicts[0][2], "CONFLICT")
    errors = checked.errors + [conflict_error_item(valid[i], prop, message) for i, prop, message in conflicts]
    if missing:
        errors.append(not_found_item(ot, missing))
    return batch_answer(call, results, errors, started)


# -- batch/archive ------------------------------------------------------------------------


def batch_archive(state: SimState, call: Call) -> Response:
    """``POST .../batch/archive``: move objects (by record id) to the recycle bin; 204."""
    started = now_iso()
    req = _batch_request(state, call, "write")
    if isinstance(req, Response):
        return req
    ot, inputs = req
    ids = _ids(inputs)
    if isinstance(ids, Response):
        return ids
    missing = state.db.archive(ot, ids)
    if missing and state.opts["archive_unknown_ids"] == "error":
        return batch_answer(call, [], [not_found_item(ot, missing)], started)
    return Response(204)


# -- batch/create -------------------------------------------------------------------------

Link = tuple[str, str, list[AssociationType]]  # (to type, to id, types)


def _association_inputs(inp: dict[str, Any]) -> list[tuple[str, list[tuple[Any, int | None]]]] | Response:
    """``[(to id, [(category, type id)])]`` of an input's ``associations``, or the 400."""
    assocs = inp.get("associations") or []
    out = []
    for a in assocs if isinstance(assocs, list) else [None]:
        to = a.get("to") if isinstance(a, dict) else None
        types = a.get("types") if isinstance(a, dict) else None
        if not isinstance(to, dict) or to.get("id") in (None, "") or not isinstance(types, list) or not types:
            return error(400, 'Invalid input: each association needs "to": {"id"} and a non-empty "types" array.')
        if not all(isinstance(t, dict) for t in types):
            return error(400, 'Invalid input: "types" must hold {associationCategory, associationTypeId} objects.')
        pairs = [(t.get("associationCategory"), type_id_of(t.get("associationTypeId"))) for t in types]
        out.append((str(to["id"]), pairs))
    return out


def _resolve_links(
    state: SimState, ot: ObjectType, inp: dict[str, Any]
) -> tuple[list[Link], list[Problem]] | Response:
    """The links a create input asks for, and problems with unknown type ids or objects."""
    wanted = _association_inputs(inp)
    if isinstance(wanted, Response):
        return wanted
    db = state.db
    links: list[Link] = []
    problems: list[Problem] = []
    for to_id, types in wanted:
        with db.catalog_lock:
            targets = {db.association_types.target_type(ot.name, c, t) for c, t in types}
        to_type = targets.pop() if len(targets) == 1 else None
        if to_type is None:
            listed = ", ".join(f"{c}/{t}" for c, t in types)
            message = f"Association type(s) {listed} not valid from {ot.name}"
            problems.append(("associations", "INVALID_ASSOCIATION_TYPE", message))
            continue
        to_ot = db.types[to_type]
        if not db.exists(to_ot, to_id):
            message = f"Could not find {to_ot.enum_name} {to_id} to associate"
            problems.append(("associations", "OBJECT_NOT_FOUND", message))
            continue
        found = [db.association_type(ot.name, to_type, c, t) for c, t in types]
        links.append((to_type, to_id, [f for f in found if f is not None]))
    return links, problems


def _check_create(
    state: SimState, ot: ObjectType, inputs: list[dict[str, Any]]
) -> tuple[list[list[Problem] | None], list[list[Link]]] | Response:
    rules = state.db.rules_of(ot)
    problems: list[list[Problem] | None] = []
    links: list[list[Link]] = []
    for inp in inputs:
        bad = _check_shape(inp, needs_id=False)
        if bad is not None:
            return bad
        found = _validated(ot, inp, rules, None)
        resolved = _resolve_links(state, ot, inp)
        for answer in (found, resolved):
            if isinstance(answer, Response):
                return answer
        input_links, link_problems = resolved  # type: ignore[misc]
        problems.append([*(found or []), *link_problems] or None)  # type: ignore[misc]
        links.append(input_links)
    return problems, links


def _traced(inputs: list[dict[str, Any]]) -> bool:
    """Whether every input carries its own objectWriteTraceId (HubSpot then answers conflicts per input)."""
    traces = [inp.get("objectWriteTraceId") for inp in inputs]
    return all(traces) and len(set(traces)) == len(traces)


def _create_conflict_item(inp: dict[str, Any], message: str, existing: str | None) -> dict[str, Any]:
    ctx: dict[str, list[str]] = {"objectWriteTraceId": [inp["objectWriteTraceId"]]}
    if existing is not None:
        ctx["existingId"] = [existing]
    return standard_error("CONFLICT", message, ctx)


def batch_create(state: SimState, call: Call) -> Response:
    """``POST .../batch/create``: new objects, optionally associated on creation; 201."""
    started = now_iso()
    req = _batch_request(state, call, "write")
    if isinstance(req, Response):
        return req
    ot, inputs = req
    checked_links = _check_create(state, ot, inputs)
    if isinstance(checked_links, Response):
        return checked_links
    problems, links = checked_links
    checked = _Checked(state, inputs, problems)
    if checked.first_invalid is not None:
        return checked.first_invalid
    valid_links = [lk for lk, p in zip(links, problems, strict=True) if not p]
    traced = _traced(checked.valid)
    results, conflicts, created = state.db.create(ot, checked.valid, all_or_nothing=not traced)
    if conflicts and not traced:
        return error(409, conflicts[0][2], "CONFLICT")  # names only the first, nothing is written
    state.count("inputs_written", len(results))
    db = state.db
    with db.store_lock, db.catalog_lock:
        for obj, input_links in zip(created, valid_links, strict=True):
            if obj is None:
                continue
            for to_type, to_id, types in input_links:
                db.links.add(db.association_types, (ot.name, obj.id, to_type, to_id), types)
    errors = checked.errors + [_create_conflict_item(checked.valid[n], msg, owner) for n, _, msg, owner in conflicts]
    return batch_answer(call, results, errors, started, ok=201)


def _batch(action: str) -> str:
    return rf"/crm/(?:v3/objects|objects/{DATED})/(?P<type>[^/]+)/batch/{action}/?"


ROUTES: list[Route] = [
    route(_batch("upsert"), "batch_upsert", batch_upsert, ("POST",), batch=True, faults=True),
    route(_batch("read"), "batch_read", batch_read, ("POST",), batch=True, faults=True),
    route(_batch("update"), "batch_update", batch_update, ("POST",), batch=True, faults=True),
    route(_batch("create"), "batch_create", batch_create, ("POST",), batch=True, faults=True),
    route(_batch("archive"), "batch_archive", batch_archive, ("POST",), batch=True, faults=True),
]
