"""The contract check itself: bodies against HubSpot's models, and a test session that fails on a bad exchange."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from hubspot_simulator import contract
from hubspot_simulator.contract import OBJECTS

UPSERT = "BatchInputSimplePublicObjectBatchInputUpsert"


def problems(model: str, body, module: str = OBJECTS) -> list[tuple[str, str]]:
    return [(p.path, p.kind) for p in contract.check(module, model, body)]


def test_a_conforming_upsert_body_has_no_problems():
    body = {"inputs": [{"id": "a@x.com", "idProperty": "email", "properties": {"age": "3"}, "objectWriteTraceId": "t"}]}
    assert problems(UPSERT, body) == []


def test_a_number_in_properties_is_named_by_its_path():
    body = {"inputs": [{"id": "a@x.com", "properties": {"firstname": "A", "age": 3}}]}
    assert problems(UPSERT, body) == [("inputs[0].properties.age", "type")]


def test_a_missing_required_field_is_named():
    body = {"inputs": [{"id": "1"}], "properties": []}
    assert problems("BatchReadInputSimplePublicObjectId", body) == [("propertiesWithHistory", "missing")]
    # HubSpot's current spec requires associations on create inputs (the 12.x model leaves it optional).
    create = {"inputs": [{"properties": {}}]}
    assert problems("BatchInputSimplePublicObjectBatchInputForCreate", create) == [("inputs[0].associations", "missing")]


def test_an_undeclared_field_is_named():
    body = {"inputs": [{"id": "a", "properties": {}, "idProprety": "email"}]}
    assert problems(UPSERT, body) == [("inputs[0].idProprety", "undeclared")]


def test_enumerations_and_nested_models_are_checked():
    body = {"inputs": [{"from": {"id": "1"}, "to": {"id": 2}, "types": [
        {"associationCategory": "HUBSPOT", "associationTypeId": "279"}]}]}  # fmt: skip
    assert sorted(problems("BatchInputPublicAssociationMultiPost", body, contract.ASSOCIATIONS)) == [
        ("inputs[0].to.id", "type"),
        ("inputs[0].types[0].associationCategory", "value"),
        ("inputs[0].types[0].associationTypeId", "type"),
    ]


def test_answers_per_status():
    op = contract.operation("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert op is not None and op.name == "objects batch/upsert"
    item = {"status": "error", "category": "VALIDATION_ERROR", "message": "m", "context": {"id": ["a"]}, "code": "X"}
    body = {"status": "COMPLETE", "results": [], "errors": [item], "numErrors": 1,
            "startedAt": "2026-01-01T00:00:00.000Z", "completedAt": "2026-01-01T00:00:00.100Z"}  # fmt: skip
    found = sorted((p.path, p.kind) for p in contract.check_answer(op, 207, body))
    assert found == [("errors[0].code", "undeclared"), ("errors[0].errors", "missing"), ("errors[0].links", "missing")]
    limited = {"status": "error", "message": "m", "correlationId": "c", "category": "RATE_LIMITS"}
    assert [(p.path, p.kind) for p in contract.check_answer(op, 429, limited)] == [
        ("errorType", "missing"), ("policyName", "missing"),
    ]
    # Map values may be null in answers' properties (HubSpot's examples), never in requests.
    result = {"id": "1", "properties": {"firstname": None}, "createdAt": "2026-01-01T00:00:00Z",
              "updatedAt": "2026-01-01T00:00:00Z", "new": True}  # fmt: skip
    ok = {"status": "COMPLETE", "results": [result], "startedAt": "2026-01-01T00:00:00Z",
          "completedAt": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert contract.check_answer(op, 200, ok) == []


# -- the session check: an inner pytest run against a real simulator --------------------------

INNER = """
import requests
from hubspot_simulator import HubSpotSimulator

AUTH = {"Authorization": "Bearer t"}


def test_the_exchange():
    with HubSpotSimulator(tokens={"t"}, account_type=ACCOUNT_TYPE) as sim:
        requests.post(sim.base_url + "/crm/v3/objects/contacts/batch/upsert", json=BODY, headers=AUTH, timeout=10)
        requests.get(sim.base_url + "/account-info/v3/details", headers=AUTH, timeout=10)
"""


def inner_run(tmp_path, body, account_type: str = "STANDARD", *args: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_inner.py"
    test.write_text(textwrap.dedent(INNER).replace("BODY", repr(body)).replace("ACCOUNT_TYPE", repr(account_type)))
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )


GOOD = {"inputs": [{"id": "a@x.com", "idProperty": "email", "properties": {"firstname": "A"}}]}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"inputs": [{"id": "a@x.com", "idProperty": "email", "properties": {"firstname": 7}}]},
         "request inputs[0].properties.firstname: a number where the model has a string"),
        ({"inputs": [{"idProperty": "email", "properties": {}}]},
         "request inputs[0].id: required by SimplePublicObjectBatchInputUpsert, missing"),
        ({"inputs": [{"id": "a@x.com", "idProperty": "email", "properties": {}, "extra": "x"}]},
         "request inputs[0].extra: field not declared by SimplePublicObjectBatchInputUpsert"),
    ],
    ids=["number-in-properties", "missing-required-field", "undeclared-field"],
)
def test_a_planted_bad_request_fails_the_session(tmp_path, body, named):
    run = inner_run(tmp_path, body)
    assert run.returncode == 1, run.stdout + run.stderr
    assert (
        "test_inner.py::test_the_exchange: objects batch/upsert (POST /crm/v3/objects/contacts/batch/upsert): "
        + named
    ) in run.stdout
    assert "1 passed, 1 error" in run.stdout  # the test itself passed: only the check fails it


def test_a_planted_bad_answer_fails_the_session(tmp_path):
    run = inner_run(tmp_path, GOOD, "NOT_AN_ACCOUNT_TYPE")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "account details (GET /account-info/v3/details): answer 200 accountType: 'NOT_AN_ACCOUNT_TYPE'" in run.stdout


def test_conforming_exchanges_pass_also_under_xdist(tmp_path):
    run = inner_run(tmp_path, GOOD, "STANDARD", "-n", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 exchanges with the simulator checked against hubspot-api-client's models, 0 outside" in run.stdout
    run = inner_run(tmp_path, {"inputs": [{"id": 1, "properties": {}}]}, "STANDARD", "-n", "2")
    assert run.returncode == 1 and "request inputs[0].id: a number where the model has a string" in run.stdout
