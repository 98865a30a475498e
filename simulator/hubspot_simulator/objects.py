"""Object batch endpoints: ``/crm/v3/objects/{type}/batch/...`` and the dated ``/crm/objects/{version}/...``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .responses import Response, error, now_iso
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
    state: SimState, ot: ObjectType, inp: dict[str, Any], rules: Any, idp: str | None
) -> list[Problem] | Response | None:
    found = validate_input(ot.validators, inp["properties"], rules, idp, inp.get("id") if idp else None)
    if found is NOT_A_STRING:
        name, msg = not_a_string_message(inp["properties"])
        return error(
            400, msg, errors=[{"message": msg, "code": "INVALID_TYPE", "context": {"propertyName": [name]}}]
        )
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
        return {"status": "error", "category": "VALIDATION_ERROR", "message": "Invalid input", "context": ctx}
    ctx["propertyName"] = list(dict.fromkeys(name for name, _, _ in found))
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": property_values_message(found),
        "code": found[0][1],
        "context": ctx,
    }


def conflict_error_item(inp: dict[str, Any], prop: str, message: str) -> dict[str, Any]:
    """The per-input ``errors[]`` item of an input that claims another object's unique value."""
    ctx = _input_context(inp)
    ctx["propertyName"] = [prop]
    return {"status": "error", "category": "CONFLICT", "message": message, "context": ctx}


def first_invalid(state: SimState, found: list[Problem]) -> Response:
    """The whole-request 400 of ``validation_error_mode: batch``: the first invalid input's problems."""
    if state.opts["error_detail"] == "none":
        return error(400, "Invalid input")
    errors = [{"message": msg, "code": code, "context": {"propertyName": [name]}} for name, code, msg in found]
    return error(400, property_values_message(found), errors=errors)


def batch_answer(
    call: Call, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str, ok: int = 200
) -> Response:
    """A batch answer: ``ok`` (or 207 on v3 paths when there are errors), errors in the body."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    status = ok
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        status = ok if call.dated else 207
    body["startedAt"] = started
    body["completedAt"] = now_iso()
    return Response(status, body)


def resolve_type(state: SimState, call: Call, access: str) -> ObjectType | Response:
    """The call's object type, or the 400 (unknown type) / 403 (scope missing)."""
    ref = call.match["type"]
    ot = state.db.resolve(ref)
    if ot is None:
        return error(400, f"Unable to infer object type from: {ref}")
    return state.scope_denied(call.token, f"crm.objects.{ot.spec.scope_name}.{access}") or ot


# -- batch/upsert -------------------------------------------------------------------------


def _check_upsert(
    state: SimState, ot: ObjectType, inputs: list[dict[str, Any]]
) -> list[list[Problem] | None] | Response:
    """Per-input problems, or the whole-request 400 (shape, idProperty, duplicates, non-strings)."""
    rules = state.db.rules_of(ot)
    seen: set[tuple[str, str]] = set()
    dups: list[str] = []
    problems: list[list[Problem] | None] = []
    for inp in inputs:
        bad = _check_shape(inp, needs_id=True)
        if bad is not None:
            return bad
        # HubSpot defaults the idProperty to hs_object_id, which upsert rejects.
        idp = inp.get("idProperty") or "hs_object_id"
        if idp not in ot.id_props:
            return non_unique_id_property(idp)
        key = ot.key(idp, inp["id"])
        _note_duplicate(seen, dups, (idp, key), key)
        found = _validated(state, ot, inp, rules, idp)
        if isinstance(found, Response):
            return found
        problems.append(found)
    if dups:
        return duplicate_ids(dups)  # in every validation_error_mode
    return problems


def _partial_write(state: SimState, call: Call, valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out a random part of a valid batch (``partial_write_rate``), answering 200 anyway."""
    with state.lock:
        rng = state.faults.rng
        if rng.random() >= state.opts["partial_write_rate"]:
            return valid
        skipped = set(rng.sample(range(len(valid)), rng.randint(1, len(valid))))
    call.entry.fault = "partial_write"
    return [inp for i, inp in enumerate(valid) if i not in skipped]


def batch_upsert(state: SimState, call: Call) -> Response:
    """``POST .../batch/upsert``: create or update by a unique property."""
    started = now_iso()
    ot = resolve_type(state, call, "write")
    if isinstance(ot, Response):
        return ot
    inputs = parse_inputs(call.payload)
    if isinstance(inputs, Response):
        return inputs
    problems = _check_upsert(state, ot, inputs)
    if isinstance(problems, Response):
        return problems
    bad = [i for i, p in enumerate(problems) if p]
    batch_mode = state.opts["validation_error_mode"] == "batch"
    if bad and batch_mode:
        return first_invalid(state, problems[bad[0]])  # type: ignore[arg-type]
    valid = [inp for inp, p in zip(inputs, problems, strict=True) if not p] if bad else inputs
    if not bad and state.opts["partial_write_rate"]:
        valid = _partial_write(state, call, valid)
    results, conflicts = state.db.upsert(ot, valid, all_or_nothing=batch_mode)
    state.count("inputs_written", len(results))
    if conflicts and batch_mode:
        return error(409, conflicts[0][2], "CONFLICT")
    errors = [validation_error_item(state, inputs[i], problems[i]) for i in bad]  # type: ignore[arg-type]
    errors += [conflict_error_item(valid[i], prop, message) for i, prop, message in conflicts]
    return batch_answer(call, results, errors, started)


def _batch(action: str) -> str:
    return rf"/crm/(?:v3/objects|objects/{DATED})/(?P<type>[^/]+)/batch/{action}/?"


ROUTES: list[Route] = [
    route(_batch("upsert"), "batch_upsert", batch_upsert, ("POST",), batch=True, faults=True),
]
