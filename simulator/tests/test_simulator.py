"""Tests of the local HubSpot simulator (the hubspot_simulator package).

They talk real HTTP to a simulator on a free loopback port and assert on concrete
response bodies and stored objects, since the target's own tests trust these behaviours.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
import requests
from hubspot_simulator import HubSpotSimulator
from hubspot_simulator.__main__ import _options, _parser
from sim_helpers import AUTH, TOKEN, contact, upsert

# --------------------------------------------------------------------------- auth


def test_missing_and_unknown_token_get_hubspot_401(sim, http):
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
    ):
        r = http.post(
            sim.base_url + "/crm/v3/objects/contacts/batch/upsert",
            json={"inputs": [contact("a@x.com")]},
            headers=headers,
        )
        assert r.status_code == 401
        body = r.json()
        assert body["status"] == "error"
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found.")
        assert body["correlationId"]
    assert sim.objects("contacts") == []


def test_missing_scope_gets_403_naming_the_scope(http):
    with HubSpotSimulator(
        tokens={"a", "b"},
        token_scopes={
            "a": ["crm.objects.companies.write", "crm.schemas.contacts.read"]
        },
    ) as s:
        r = upsert(http, s, [contact("a@x.com")], token="a")
        assert r.status_code == 403
        body = r.json()
        assert body["category"] == "MISSING_SCOPES"
        assert body["errors"][0]["context"] == {
            "requiredGranularScopes": ["crm.objects.contacts.write"]
        }
        assert body["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
        assert (
            http.get(
                s.base_url + "/crm/v3/properties/contacts",
                headers={"Authorization": "Bearer a"},
            ).status_code
            == 200
        )
        r = http.get(
            s.base_url + "/crm/v3/properties/deals",
            headers={"Authorization": "Bearer a"},
        )
        assert r.status_code == 403
        assert r.json()["errors"][0]["context"]["requiredGranularScopes"] == [
            "crm.schemas.deals.read"
        ]
        # Custom objects share the "custom" scopes; tokens without a scope list may do anything.
        r = upsert(
            http,
            s,
            [{"id": "w1", "idProperty": "widget_id", "properties": {}}],
            "p_widgets",
            token="a",
        )
        assert r.json()["errors"][0]["context"]["requiredGranularScopes"] == [
            "crm.objects.custom.write"
        ]
        assert upsert(http, s, [contact("a@x.com")], token="b").status_code == 200


def test_revoked_token_gets_401(sim, http):
    assert upsert(http, sim, [contact("a@x.com")]).status_code == 200
    sim.revoke_token(TOKEN)
    assert upsert(http, sim, [contact("b@x.com")]).status_code == 401


# --------------------------------------------------------------------------- upsert basics


def test_upsert_creates_then_updates(sim, http):
    r = upsert(
        http,
        sim,
        [
            contact("A@Example.com", "t1", firstname="Ann", num_orders="2"),
            contact("b@example.com", firstname="Bob"),
        ],
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt"} <= body.keys()
    first, second = body["results"]
    assert first["new"] is True and second["new"] is True
    assert first["objectWriteTraceId"] == "t1" and "objectWriteTraceId" not in second
    assert first["archived"] is False
    assert (
        first["properties"]["email"] == "a@example.com"
    )  # HubSpot stores emails lowercased
    assert first["properties"]["firstname"] == "Ann"
    assert first["properties"]["hs_object_id"] == first["id"]
    assert first["properties"]["hs_email_domain"] == "example.com"
    assert first["id"] != second["id"]

    r = upsert(http, sim, [contact("a@EXAMPLE.com", "t2", lastname="Lee")])
    (result,) = r.json()["results"]
    assert result["new"] is False
    assert result["id"] == first["id"]
    assert result["createdAt"] == first["createdAt"]

    stored = sim.find("contacts", "email", "A@example.COM")
    assert stored is not None
    assert stored["id"] == first["id"]
    assert stored["properties"]["firstname"] == "Ann"  # merged, not replaced
    assert stored["properties"]["lastname"] == "Lee"
    assert stored["properties"]["num_orders"] == "2"
    assert {"createdate", "lastmodifieddate", "hs_object_id"} <= stored[
        "properties"
    ].keys()
    assert len(sim.objects("0-1")) == 2


def test_upsert_by_custom_unique_property_and_custom_object_aliases(sim, http):
    r = upsert(
        http,
        sim,
        [{"id": "X1", "idProperty": "external_id", "properties": {"firstname": "X"}}],
    )
    assert r.json()["results"][0]["new"] is True
    r = upsert(
        http,
        sim,
        [{"id": "X1", "idProperty": "external_id", "properties": {"email": "x@y.io"}}],
    )
    assert r.json()["results"][0]["new"] is False
    assert sim.find("contacts", "external_id", "X1")["properties"]["email"] == "x@y.io"
    # The email set through another id property is now an upsert key too.
    r = upsert(http, sim, [contact("x@y.io", lastname="Y")])
    assert r.json()["results"][0]["new"] is False
    assert len(sim.objects("contacts")) == 1

    for alias in ("p_widgets", "2-1234567", "widgets"):
        r = upsert(
            http,
            sim,
            [
                {
                    "id": "w-1",
                    "idProperty": "widget_id",
                    "properties": {"size": "3", "color": "red", "tags": "alpha;beta"},
                }
            ],
            alias,
        )
        assert r.status_code == 200, r.text
    assert [o["properties"]["widget_id"] for o in sim.objects("p_widgets")] == ["w-1"]
    assert [e.object_type for e in sim.upsert_requests("2-1234567")] == ["widgets"] * 3


def test_unique_value_owned_by_another_object_conflicts(sim, http):
    upsert(http, sim, [contact("taken@x.com")])
    owner = sim.find("contacts", "email", "taken@x.com")["id"]
    by_key = {
        "id": "K1",
        "idProperty": "external_id",
        "objectWriteTraceId": "t-k1",
        "properties": {"email": "TAKEN@x.com"},
    }
    r = upsert(
        http, sim, [by_key, {"id": "K2", "idProperty": "external_id", "properties": {}}]
    )
    assert r.status_code == 409
    assert r.json()["category"] == "CONFLICT"
    assert r.json()["message"] == f"Contact already exists. Existing ID: {owner}"
    assert sim.find("contacts", "external_id", "K2") is None  # nothing written
    sim.configure(validation_error_mode="multi_status")
    r = upsert(
        http, sim, [by_key, {"id": "K2", "idProperty": "external_id", "properties": {}}]
    )
    assert r.status_code == 207
    (error,) = r.json()["errors"]
    assert error["category"] == "CONFLICT"
    assert error["context"] == {
        "objectWriteTraceId": ["t-k1"],
        "propertyName": ["email"],
    }
    assert [res["properties"]["external_id"] for res in r.json()["results"]] == ["K2"]
    # Setting the value on its own owner is no conflict.
    r = upsert(http, sim, [contact("taken@x.com", external_id="K9")])
    assert r.status_code == 200 and r.json()["results"][0]["id"] == owner


def test_duplicate_ids_fail_whole_request_in_every_mode(sim, http):
    for mode in ("batch", "multi_status"):
        sim.configure(validation_error_mode=mode)
        r = upsert(
            http, sim, [contact("a@x.com"), contact("b@x.com"), contact("A@X.com")]
        )
        assert r.status_code == 400
        body = r.json()
        assert (
            body["message"]
            == "Duplicate IDs found in batch input: [a@x.com]. IDs must be unique"
        )
        assert body["context"] == {"ids": ["a@x.com"]}
        assert body["category"] == "VALIDATION_ERROR"
        assert body["status"] == "error"
    # Non-email ids compare exactly.
    r = upsert(
        http,
        sim,
        [
            {"id": "K", "idProperty": "external_id", "properties": {}},
            {"id": "k", "idProperty": "external_id", "properties": {}},
        ],
    )
    assert r.status_code == 200
    assert len(sim.objects("contacts")) == 2


@pytest.mark.parametrize("count", [0, 101])
def test_batch_size_outside_1_to_100_rejected(sim, http, count):
    r = upsert(http, sim, [contact(f"u{i}@x.com") for i in range(count)])
    assert r.status_code == 400
    assert r.json()["category"] == "VALIDATION_ERROR"
    assert "Batch size must be between 1 and 100" in r.json()["message"]
    assert sim.objects("contacts") == []


def test_batch_of_100_accepted(sim, http):
    r = upsert(http, sim, [contact(f"u{i}@x.com") for i in range(100)])
    assert r.status_code == 200
    assert len(r.json()["results"]) == 100
    assert len(sim.objects("contacts")) == 100


@pytest.mark.off_contract_requests
@pytest.mark.parametrize("value", [3, None, True, 1.5, ["a"]])
def test_non_string_property_values_rejected(sim, http, value):
    r = upsert(
        http,
        sim,
        [
            contact("a@x.com", firstname="ok"),
            {
                "id": "b@x.com",
                "idProperty": "email",
                "properties": {"num_orders": value},
            },
        ],
    )
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert '"num_orders"' in body["message"]
    assert body["errors"][0]["context"]["propertyName"] == ["num_orders"]
    assert sim.objects("contacts") == []


@pytest.mark.off_contract_requests
@pytest.mark.parametrize(
    "bad_input",
    [
        {"idProperty": "email", "properties": {}},
        {"id": "", "idProperty": "email", "properties": {}},
        {"id": 5, "idProperty": "email", "properties": {}},
        {"id": "a@x.com", "idProperty": "email"},
        {"id": "a@x.com", "idProperty": "email", "properties": ["x"]},
        "not an object",
    ],
)
def test_structurally_invalid_inputs_rejected(sim, http, bad_input):
    r = upsert(http, sim, [bad_input])
    assert r.status_code == 400
    assert r.json()["category"] == "VALIDATION_ERROR"


@pytest.mark.off_contract_requests
def test_invalid_json_and_missing_inputs_rejected(sim, http):
    for data in (b"{not json", b"[]", b'{"inputs": {}}', b""):
        r = http.post(
            sim.base_url + "/crm/v3/objects/contacts/batch/upsert",
            data=data,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, data
        assert r.json()["category"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "id_property", ["hs_object_id", "firstname", "nonexistent", None]
)
def test_non_unique_id_property_rejected(sim, http, id_property):
    item: dict[str, Any] = {"id": "1", "properties": {"firstname": "x"}}
    if id_property is not None:
        item["idProperty"] = id_property
    r = upsert(http, sim, [item])
    assert r.status_code == 400
    body = r.json()
    expected = id_property or "hs_object_id"
    assert (
        body["message"]
        == f"Unable to perform update/upsert by non-unique or non-existent property {expected}"
    )
    assert body["category"] == "VALIDATION_ERROR"


def test_unknown_object_type(sim, http):
    r = upsert(http, sim, [contact("a@x.com")], object_type="foo")
    assert r.status_code == 400
    body = r.json()
    assert body["message"] == "Unable to infer object type from: foo"
    assert body["category"] == "VALIDATION_ERROR"
    r = http.get(sim.base_url + "/crm/v3/properties/foo", headers=AUTH)
    assert r.status_code == 400
    assert r.json()["message"] == "Unable to infer object type from: foo"


# --------------------------------------------------------------------------- value validation

INVALID_VALUES = [
    ("foo", "x", "PROPERTY_DOESNT_EXIST", 'Property "foo" does not exist'),
    ("hs_object_id", "5", "READ_ONLY_VALUE", "hs_object_id"),
    ("createdate", "", "READ_ONLY_VALUE", "createdate"),
    ("hs_email_domain", "x.com", "READ_ONLY_VALUE", "hs_email_domain"),
    ("num_orders", "abc", "INVALID_INTEGER", "abc was not a valid number."),
    ("num_orders", "1e5", "INVALID_INTEGER", "1e5"),
    ("num_orders", "+1", "INVALID_INTEGER", "+1"),
    ("num_orders", " 1", "INVALID_INTEGER", " 1"),
    ("num_orders", "1.", "INVALID_INTEGER", "1."),
    ("lifetime_value", "1,000", "INVALID_INTEGER", "1,000"),
    ("is_vip", "yes", "INVALID_BOOLEAN", "yes"),
    ("is_vip", "True", "INVALID_BOOLEAN", "True"),
    ("date_of_birth", "2024-02-30", "INVALID_DATE", "2024-02-30"),
    ("date_of_birth", "2024-1-2", "INVALID_DATE", "2024-1-2"),
    ("date_of_birth", "1704067200001", "INVALID_DATE", "not midnight"),
    ("date_of_birth", "2024-01-02T00:00:00Z", "INVALID_DATE", "2024-01-02T00:00:00Z"),
    ("last_order_at", "2024-01-02 03:04:05", "INVALID_DATETIME", "2024-01-02 03:04:05"),
    ("last_order_at", "2024-01-02T03:04:05", "INVALID_DATETIME", "2024-01-02T03:04:05"),
    (
        "last_order_at",
        "2024-13-02T03:04:05Z",
        "INVALID_DATETIME",
        "2024-13-02T03:04:05Z",
    ),
    ("last_order_at", "yesterday", "INVALID_DATETIME", "yesterday"),
    ("lifecyclestage", "Lead", "INVALID_OPTION", "Lead"),
    ("interests", "sports;golf", "INVALID_OPTION", "golf"),
    ("interests", "sports; music", "INVALID_OPTION", " music"),
    ("email", "not-an-email", "INVALID_EMAIL", "Email address not-an-email is invalid"),
    ("notes", "x" * 65_537, "INVALID_STRING_LENGTH", "notes"),
]


@pytest.mark.parametrize(
    "prop,value,code,fragment",
    INVALID_VALUES,
    ids=[f"{p}-{c}" for p, _, c, _ in INVALID_VALUES],
)
def test_invalid_value_fails_whole_batch_in_batch_mode(
    sim, http, prop, value, code, fragment
):
    r = upsert(
        http,
        sim,
        [
            contact("ok@x.com", "trace-ok", firstname="fine"),
            contact("bad@x.com", "trace-bad", **{prop: value}),
        ],
    )
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    detail = json.loads(body["message"][len("Property values were not valid: ") :])
    assert detail == [
        {
            "isValid": False,
            "message": detail[0]["message"],
            "error": code,
            "name": prop,
            "localizedErrorMessage": detail[0]["message"],
        }
    ]
    assert fragment in detail[0]["message"]
    assert body["errors"] == [
        {
            "message": detail[0]["message"],
            "code": code,
            "in": prop,
            "context": {"propertyName": [prop]},
        }
    ]
    # HubSpot names neither the input index, its id nor its trace id.
    assert "bad@x.com" not in r.text and "trace-bad" not in r.text
    assert sim.objects("contacts") == []


def test_invalid_email_id_rejected(sim, http):
    r = upsert(http, sim, [contact("foo")])
    assert r.status_code == 400
    assert r.json()["errors"][0] == {
        "message": "Email address foo is invalid",
        "code": "INVALID_EMAIL",
        "in": "email",
        "context": {"propertyName": ["email"]},
    }


def test_batch_mode_reports_only_first_invalid_input(sim, http):
    r = upsert(
        http,
        sim,
        [
            contact("a@x.com", num_orders="x", is_vip="maybe"),
            contact("b@x.com", lifecyclestage="nope"),
        ],
    )
    codes = [e["code"] for e in r.json()["errors"]]
    assert codes == ["INVALID_INTEGER", "INVALID_BOOLEAN"]


VALID_VALUES = [
    ("num_orders", "-12.50"),
    ("num_orders", "0"),
    ("is_vip", "false"),
    ("date_of_birth", "2024-02-29"),
    ("date_of_birth", "1704067200000"),
    ("last_order_at", "2024-01-02T03:04:05.678Z"),
    ("last_order_at", "2024-01-02T03:04:05+02:00"),
    ("last_order_at", "1704164645678"),
    ("lifecyclestage", "marketingqualifiedlead"),
    ("interests", "sports;music"),
    ("interests", ";tech"),
    ("hubspot_owner_id", "12345"),
    ("phone", "+1 (555) 010-0000"),
    ("notes", "x" * 65_536),
    ("num_orders", ""),
    ("is_vip", ""),
    ("lifecyclestage", ""),
]


@pytest.mark.parametrize(
    "prop,value", VALID_VALUES, ids=[f"{p}={v[:20]}" for p, v in VALID_VALUES]
)
def test_valid_values_accepted(sim, http, prop, value):
    r = upsert(http, sim, [contact("a@x.com", **{prop: value})])
    assert r.status_code == 200, r.text
    stored = sim.find("contacts", "email", "a@x.com")["properties"]
    if value == "":
        assert prop not in stored
    elif value.startswith(";"):
        assert stored[prop] == value[1:]
    else:
        assert stored[prop] == value


def test_multi_status_mode_writes_valid_inputs(sim, http):
    sim.configure(validation_error_mode="multi_status")
    r = upsert(
        http,
        sim,
        [
            contact("ok@x.com", "t-ok", num_orders="1"),
            contact("bad@x.com", "t-bad", num_orders="x"),
            contact("worse@x.com", is_vip="nah"),
        ],
    )
    assert r.status_code == 207
    body = r.json()
    assert body["status"] == "COMPLETE"
    assert body["numErrors"] == 2
    assert [res["objectWriteTraceId"] for res in body["results"]] == ["t-ok"]
    first, second = body["errors"]
    assert first["status"] == "error" and first["category"] == "VALIDATION_ERROR"
    assert first["errors"][0]["code"] == "INVALID_INTEGER" and "code" not in first
    assert first["context"] == {
        "objectWriteTraceId": ["t-bad"],
        "propertyName": ["num_orders"],
    }
    assert "x was not a valid number." in first["message"]
    assert second["errors"][0]["code"] == "INVALID_BOOLEAN"
    assert second["context"] == {"id": ["worse@x.com"], "propertyName": ["is_vip"]}
    assert [o["properties"]["email"] for o in sim.objects("contacts")] == ["ok@x.com"]


def test_multi_status_all_invalid_is_207_with_no_results(sim, http):
    sim.configure(validation_error_mode="multi_status")
    r = upsert(http, sim, [contact("a@x.com", "t1", foo="1")])
    assert r.status_code == 207
    body = r.json()
    assert body["results"] == [] and body["numErrors"] == 1
    assert body["errors"][0]["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert sim.objects("contacts") == []


def test_dated_path_folds_errors_into_200(sim, http):
    path = "/crm/objects/2026-09/contacts/batch/upsert"
    r = upsert(http, sim, [contact("a@x.com")], path=path)
    assert r.status_code == 200 and r.json()["results"][0]["new"] is True
    r = upsert(http, sim, [contact("b@x.com", num_orders="x")], path=path)
    assert r.status_code == 400  # batch mode: whole request fails on this path too
    sim.configure(validation_error_mode="multi_status")
    r = upsert(
        http,
        sim,
        [contact("c@x.com", "t-c"), contact("d@x.com", "t-d", num_orders="x")],
        path=path,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["t-d"]
    assert [res["objectWriteTraceId"] for res in body["results"]] == ["t-c"]
    assert sim.upsert_requests("contacts")[-1].path == path


def test_error_detail_none_names_nothing(sim, http):
    sim.configure(error_detail="none")
    r = upsert(http, sim, [contact("a@x.com", num_orders="x")])
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"status", "message", "correlationId", "category"}
    assert body["message"] == "Invalid input" and body["category"] == "VALIDATION_ERROR"


def test_validation_rules_reject_unpredictable_values(sim, http):
    sim.add_validation_rule(
        "contacts", "lifecyclestage", "other", message="Stage 'other' is not allowed."
    )
    r = upsert(http, sim, [contact("a@x.com", lifecyclestage="other")])
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {
            "message": "Stage 'other' is not allowed.",
            "code": "VALIDATION_RULE_VIOLATION",
            "in": "lifecyclestage",
            "context": {"propertyName": ["lifecyclestage"]},
        }
    ]
    sim.configure(validation_error_mode="multi_status")
    r = upsert(
        http,
        sim,
        [contact("a@x.com", "t1", lifecyclestage="other"), contact("b@x.com", "t2")],
    )
    assert r.status_code == 207
    assert r.json()["errors"][0]["errors"][0]["code"] == "VALIDATION_RULE_VIOLATION"
    assert r.json()["errors"][0]["context"]["objectWriteTraceId"] == ["t1"]
    assert [o["properties"]["email"] for o in sim.objects("contacts")] == ["b@x.com"]


# --------------------------------------------------------------------------- write semantics


def test_multi_select_append_and_replace(sim, http):
    upsert(http, sim, [contact("a@x.com", interests="sports")])
    upsert(http, sim, [contact("a@x.com", interests=";music")])
    assert (
        sim.find("contacts", "email", "a@x.com")["properties"]["interests"]
        == "sports;music"
    )
    upsert(http, sim, [contact("a@x.com", interests=";music;tech")])
    assert (
        sim.find("contacts", "email", "a@x.com")["properties"]["interests"]
        == "sports;music;tech"
    )
    upsert(http, sim, [contact("a@x.com", interests="travel")])
    assert (
        sim.find("contacts", "email", "a@x.com")["properties"]["interests"] == "travel"
    )


def test_empty_string_clears_value(sim, http):
    upsert(http, sim, [contact("a@x.com", firstname="Ann", num_orders="3")])
    r = upsert(http, sim, [contact("a@x.com", firstname="")])
    assert "firstname" not in r.json()["results"][0]["properties"]
    props = sim.find("contacts", "email", "a@x.com")["properties"]
    assert "firstname" not in props and props["num_orders"] == "3"


def test_partial_write_answers_200_but_writes_less(sim, http):
    sim.configure(partial_write_rate=1.0, seed=7)
    inputs = [contact(f"u{i}@x.com", f"t{i}") for i in range(10)]
    r = upsert(http, sim, inputs)
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) < 10
    stored = sorted(o["properties"]["email"] for o in sim.objects("contacts"))
    assert stored == sorted(res["properties"]["email"] for res in results)
    assert sim.upsert_requests()[-1].fault == "partial_write"


# --------------------------------------------------------------------------- properties API


def test_property_catalogue(sim, http):
    r = http.get(
        sim.base_url + "/crm/v3/properties/contacts?archived=false", headers=AUTH
    )
    assert r.status_code == 200
    props = {p["name"]: p for p in r.json()["results"]}
    assert props["email"]["type"] == "string"
    assert props["hs_object_id"]["modificationMetadata"]["readOnlyValue"] is True
    assert props["hs_email_domain"]["calculated"] is True
    assert props["external_id"]["hasUniqueValue"] is True
    assert props["interests"]["fieldType"] == "checkbox"
    assert [o["value"] for o in props["lifecyclestage"]["options"]][:2] == [
        "subscriber",
        "lead",
    ]
    assert props["hubspot_owner_id"]["externalOptions"] is True
    for object_type in (
        "companies",
        "deals",
        "tickets",
        "products",
        "line_items",
        "subscriptions",
        "p_widgets",
        "0-69",
    ):
        results = http.get(
            sim.base_url + f"/crm/v3/properties/{object_type}", headers=AUTH
        ).json()["results"]
        assert any(p["hasUniqueValue"] for p in results), object_type
        assert any(p["calculated"] for p in results), object_type
        assert any(p["name"] == "hs_object_id" for p in results), object_type
    groups = http.get(
        sim.base_url + "/crm/v3/properties/deals/groups", headers=AUTH
    ).json()["results"]
    assert "dealinformation" in [g["name"] for g in groups]


def test_create_property_then_conflict(sim, http):
    url = sim.base_url + "/crm/v3/properties/contacts"
    spec = {
        "name": "favourite_color",
        "label": "Favourite color",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [{"label": "Red", "value": "red", "hidden": False}],
    }
    assert (
        upsert(http, sim, [contact("a@x.com", favourite_color="red")]).status_code
        == 400
    )
    r = http.post(url, json=spec, headers=AUTH)
    assert r.status_code == 201
    assert (
        r.json()["name"] == "favourite_color"
        and r.json()["options"][0]["value"] == "red"
    )
    r = http.post(url, json=spec, headers=AUTH)
    assert r.status_code == 409
    assert r.json()["message"] == "Property named 'favourite_color' already exists."
    assert r.json()["category"] == "OBJECT_ALREADY_EXISTS"
    assert (
        upsert(http, sim, [contact("a@x.com", favourite_color="red")]).status_code
        == 200
    )
    assert (
        upsert(http, sim, [contact("a@x.com", favourite_color="blue")]).json()[
            "errors"
        ][0]["code"]
        == "INVALID_OPTION"
    )
    assert sim.stats["properties_created"] == 1
    # A new unique property becomes an upsert key.
    r = http.post(
        url,
        json={
            "name": "crm_key",
            "label": "Key",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
            "hasUniqueValue": True,
        },
        headers=AUTH,
    )
    assert r.status_code == 201
    r = upsert(
        http,
        sim,
        [{"id": "k1", "idProperty": "crm_key", "properties": {"firstname": "K"}}],
    )
    assert r.status_code == 200 and r.json()["results"][0]["new"] is True
    sim.reset()
    assert (
        upsert(http, sim, [contact("a@x.com", favourite_color="red")]).status_code
        == 400
    )


@pytest.mark.off_contract_requests
@pytest.mark.parametrize(
    "change",
    [
        {"type": "number", "fieldType": "text"},
        {"type": "bool", "fieldType": "select"},
        {"type": "string", "fieldType": "number"},
        {"groupName": "nosuchgroup"},
        {"name": "Bad Name"},
        {"label": None},
    ],
)
def test_create_property_validation(sim, http, change):
    spec = {
        "name": "p1",
        "label": "P1",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
    }
    spec.update(change)
    spec = {k: v for k, v in spec.items() if v is not None}
    r = http.post(sim.base_url + "/crm/v3/properties/contacts", json=spec, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["category"] == "VALIDATION_ERROR"


def test_create_group(sim, http):
    url = sim.base_url + "/crm/v3/properties/companies/groups"
    r = http.post(url, json={"name": "imported", "label": "Imported"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["name"] == "imported"
    assert (
        http.post(
            url, json={"name": "imported", "label": "Imported"}, headers=AUTH
        ).status_code
        == 409
    )
    r = http.post(
        sim.base_url + "/crm/v3/properties/companies",
        headers=AUTH,
        json={
            "name": "src",
            "label": "Src",
            "type": "string",
            "fieldType": "text",
            "groupName": "imported",
        },
    )
    assert r.status_code == 201


def test_add_object_type_at_runtime(sim, http):
    sim.add_object_type(
        "gadgets",
        "2-999",
        [
            {"name": "gadget_key", "hasUniqueValue": True},
            {"name": "weight", "type": "number"},
        ],
    )
    r = upsert(
        http,
        sim,
        [{"id": "g1", "idProperty": "gadget_key", "properties": {"weight": "x"}}],
        "p_gadgets",
    )
    assert r.json()["errors"][0]["code"] == "INVALID_INTEGER"
    r = upsert(
        http,
        sim,
        [{"id": "g1", "idProperty": "gadget_key", "properties": {"weight": "2"}}],
        "2-999",
    )
    assert r.status_code == 200
    assert sim.objects("gadgets")[0]["properties"]["weight"] == "2"


# --------------------------------------------------------------------------- rate limits


def test_ten_secondly_limit_headers_and_429(sim, http, clock):
    sim.configure(rate_limit_per_10s=3, rate_limit_interval_ms=400)
    remaining = []
    for i in range(3):
        r = upsert(http, sim, [contact(f"u{i}@x.com")])
        assert r.status_code == 200
        assert r.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "400"
        remaining.append(r.headers["X-HubSpot-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = upsert(http, sim, [contact("late@x.com")])
    assert r.status_code == 429
    body = r.json()
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert (
        body["errorType"] == "RATE_LIMIT"
        and body["policyName"] == "TEN_SECONDLY_ROLLING"
    )
    assert (
        body["groupName"] == "api-calls"
        and body["status"] == "error"
        and body["correlationId"]
    )
    assert "Retry-After" not in r.headers
    assert sim.find("contacts", "email", "late@x.com") is None
    clock.advance(0.39)
    assert upsert(http, sim, [contact("late@x.com")]).status_code == 429  # the window still holds 3
    clock.advance(0.02)
    assert upsert(http, sim, [contact("late@x.com")]).status_code == 200  # 429s did not count
    stats = sim.stats
    assert stats["rate_limited_ten_secondly"] == 2 and stats["by_status"][429] == 2


def test_daily_limit_and_retry_after(sim, http):
    sim.configure(daily_limit=2, retry_after_seconds=7)
    r = upsert(http, sim, [contact("a@x.com")])
    assert r.headers["X-HubSpot-RateLimit-Daily"] == "2"
    assert r.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    assert "X-HubSpot-RateLimit-Max" not in r.headers
    assert upsert(http, sim, [contact("b@x.com")]).status_code == 200
    r = upsert(http, sim, [contact("c@x.com")])
    assert r.status_code == 429
    assert r.json()["policyName"] == "DAILY"
    assert r.json()["message"] == "You have reached your daily limit."
    assert r.headers["Retry-After"] == "7"
    assert sim.stats["rate_limited_daily"] == 1


def test_consume_rate_limit_and_headers_off(sim, http):
    sim.configure(rate_limit_per_10s=5, rate_limit_headers=False)
    sim.consume_rate_limit(5)
    r = upsert(http, sim, [contact("a@x.com")])
    assert r.status_code == 429
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in r.headers)


# --------------------------------------------------------------------------- faults


def test_scripted_faults_in_order(sim, http):
    sim.script_faults([503, 429, "daily_429", 423, 502, "empty_200", None, 500])
    seen = []
    for i in range(8):
        r = upsert(http, sim, [contact(f"u{i}@x.com")])
        seen.append(r.status_code)
        if i == 1:
            assert r.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        if i == 2:
            assert r.json()["policyName"] == "DAILY"
        if i == 3:
            assert r.json()["category"] == "LOCKED"
        if i == 4:
            assert r.headers["Content-Type"].startswith("text/html")
        if i == 5:
            assert r.json()["results"] == []
    assert seen == [503, 429, 429, 423, 502, 200, 200, 500]
    assert [o["properties"]["email"] for o in sim.objects("contacts")] == ["u6@x.com"]
    assert (
        upsert(http, sim, [contact("after@x.com")]).status_code == 200
    )  # script exhausted
    assert [e.fault for e in sim.upsert_requests()][:6] == [
        503,
        429,
        "daily_429",
        423,
        502,
        "empty_200",
    ]


def test_scripted_drop_is_a_connection_error_and_writes_nothing(sim, http):
    sim.script_faults(["drop"])
    with pytest.raises(requests.ConnectionError):
        upsert(http, sim, [contact("a@x.com")])
    assert sim.objects("contacts") == []
    entry = sim.upsert_requests()[-1]
    assert entry.dropped is True and entry.status is None and entry.ids == ["a@x.com"]
    assert sim.stats["dropped"] == 1
    assert (
        upsert(http, sim, [contact("a@x.com")]).status_code == 200
    )  # the session recovers


def test_scripted_drop_after_write_applies_the_write(sim, http):
    sim.script_faults(["drop_after_write"])
    with pytest.raises(requests.ConnectionError):
        upsert(http, sim, [contact("a@x.com", firstname="A")])
    assert sim.find("contacts", "email", "a@x.com")["properties"]["firstname"] == "A"
    r = upsert(http, sim, [contact("a@x.com", firstname="B")])
    assert r.json()["results"][0]["new"] is False


def test_random_faults(sim, http):
    sim.configure(error_rate=1.0)
    statuses = {
        upsert(http, sim, [contact(f"u{i}@x.com")]).status_code for i in range(12)
    }
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
    sim.configure(error_rate=0.0, drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        upsert(http, sim, [contact("a@x.com")])
    assert sim.objects("contacts") == []


def test_latency_and_max_concurrency(http):
    """Latency is slept through the injected ``sleep`` while the request counts as in flight:
    a sleep that waits for all four requests proves they were held at the same time."""
    arrived = threading.Barrier(4)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        arrived.wait(timeout=10)

    statuses = []

    def worker(s: HubSpotSimulator, i: int) -> None:
        with requests.Session() as session:
            statuses.append(upsert(session, s, [contact(f"u{i}@x.com")]).status_code)

    with HubSpotSimulator(tokens={TOKEN}, latency_ms=150, sleep=sleep) as s:
        threads = [threading.Thread(target=worker, args=(s, i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 4
        assert slept == [0.15] * 4
        assert s.stats["max_concurrent_upserts"] == 4
        # Properties reads get no latency.
        http.get(s.base_url + "/crm/v3/properties/contacts", headers=AUTH)
        assert len(slept) == 4


def test_latency_jitter_and_request_log_times(sim, http, clock):
    sim.configure(latency_ms=200, latency_jitter_ms=50)
    for i in range(5):
        upsert(http, sim, [contact(f"u{i}@x.com")])
    assert len(clock.slept) == 5 and all(0.15 <= t <= 0.25 for t in clock.slept)
    assert len(set(clock.slept)) > 1
    for entry, slept in zip(sim.upsert_requests(), clock.slept, strict=True):
        assert entry.finished - entry.started == pytest.approx(slept)


def _send_at_the_limit(sim, clock, http) -> int:
    """Upserts sent one by one exactly at 8 per second (every 1/8 s), as a client counting
    requests when it sends them and keeping no margin would; the 429s they got.

    Times are multiples of 1/8 s, so the float arithmetic of the window is exact.
    """
    base = float(int(clock()) + 1)
    statuses = []
    for i in range(48):
        clock.now = base + i / 8  # each answer comes back within 1/8 s (latency below)
        statuses.append(upsert(http, sim, [contact(f"u{i}@x.com")]).status_code)
    assert set(statuses) <= {200, 429}
    return statuses.count(429)


def test_uplink_share_counts_a_request_when_it_arrives(sim, http, clock):
    # 8 requests per second, 50 +/- 50 ms of latency: all of it after counting (the default),
    # then all of it on the way in. A request sent 1 s after another but arriving faster lands in
    # the other's window and is refused; counted on sending, it never is.
    sim.configure(rate_limit_per_10s=8, rate_limit_interval_ms=1000, latency_ms=50, latency_jitter_ms=50, seed=9)
    assert _send_at_the_limit(sim, clock, http) == 0
    assert sim.stats["rate_limited_ten_secondly"] == 0
    sim.reset()
    sim.configure(uplink_share=1.0)
    refused = _send_at_the_limit(sim, clock, http)
    assert refused > 0
    assert sim.stats["rate_limited_ten_secondly"] == refused


def test_uplink_share_splits_latency_and_jitter(sim, http, clock):
    sim.configure(latency_ms=200, latency_jitter_ms=40, uplink_share=0.25)
    for i in range(20):
        upsert(http, sim, [contact(f"u{i}@x.com")])
    uplink, downlink = clock.slept[0::2], clock.slept[1::2]
    assert len(uplink) == len(downlink) == 20
    assert all(0.04 <= t <= 0.06 for t in uplink)  # 50 +/- 10 ms
    assert all(0.12 <= t <= 0.18 for t in downlink)  # 150 +/- 30 ms
    assert len(set(uplink)) > 1 and len(set(downlink)) > 1
    with pytest.raises(ValueError, match="uplink_share"):
        sim.configure(uplink_share=1.5)
    assert _options(_parser().parse_args([]))["uplink_share"] == 0.0
    assert _options(_parser().parse_args(["--uplink-share", "0.5"]))["uplink_share"] == 0.5


def test_script_rejects_unknown_fault(sim):
    with pytest.raises(ValueError):
        sim.script_faults(["explode"])
    with pytest.raises(ValueError):
        sim.configure(no_such_option=1)


# --------------------------------------------------------------------------- OAuth


def test_oauth_grant_rotation_and_expiry(http, clock):
    with HubSpotSimulator(
        clock=clock,
        tokens=set(),
        oauth_clients={"cid": "s3cr3t-value"},
        refresh_tokens={"r1-refresh"},
        token_ttl_seconds=1,
        rotate_refresh_tokens=True,
    ) as s:
        form = {
            "grant_type": "refresh_token",
            "client_id": "cid",
            "client_secret": "s3cr3t-value",
            "refresh_token": "r1-refresh",
        }
        r = http.post(s.base_url + "/oauth/v1/token", data=form)
        assert r.status_code == 200
        grant = r.json()
        assert grant["token_type"] == "bearer" and grant["expires_in"] == 1
        assert grant["refresh_token"] != "r1-refresh"  # rotated
        access = grant["access_token"]
        assert upsert(http, s, [contact("a@x.com")], token=access).status_code == 200
        # The old refresh token is now invalid; the new one works on v3 with a JSON body.
        r = http.post(s.base_url + "/oauth/v1/token", data=form)
        assert r.status_code == 400
        assert r.json()["status"] == "BAD_REFRESH_TOKEN"
        assert r.json()["message"] == "missing or unknown refresh token"
        r = http.post(
            s.base_url + "/oauth/v3/token",
            json={**form, "refresh_token": grant["refresh_token"]},
        )
        assert r.status_code == 200
        r = http.post(
            s.base_url + "/oauth/v3/token", data={**form, "client_secret": "wrong"}
        )
        assert r.status_code == 400 and r.json()["status"] == "BAD_CLIENT_ID"
        assert s.stats["token_grants"] == 2
        # Grants are logged verbatim (tests search output for leaked tokens), the bearer
        # token only as a fingerprint.
        grants = [e for e in s.requests if e.endpoint == "oauth" and e.status == 200]
        assert grants[0].response_body["access_token"] == access
        assert grants[0].request_body["client_secret"] == "s3cr3t-value"
        upserts = s.upsert_requests()
        assert upserts[0].auth == f"{access[:4]}...({len(access)})"
        assert access not in json.dumps(upserts[0].to_dict())
        clock.advance(0.9)
        assert upsert(http, s, [contact("b@x.com")], token=access).status_code == 200
        clock.advance(0.2)
        r = upsert(http, s, [contact("b@x.com")], token=access)
        assert r.status_code == 401
        assert r.json()["category"] == "EXPIRED_AUTHENTICATION"
        assert r.json()["message"].startswith(
            "The OAuth token used to make this call expired "
        )


def test_oauth_tokens_get_no_daily_headers(http):
    with HubSpotSimulator(
        oauth_clients={"c": "s"},
        refresh_tokens={"r"},
        daily_limit=100,
        rate_limit_per_10s=100,
    ) as s:
        form = {
            "grant_type": "refresh_token",
            "client_id": "c",
            "client_secret": "s",
            "refresh_token": "r",
        }
        access = http.post(s.base_url + "/oauth/v1/token", data=form).json()[
            "access_token"
        ]
        r = upsert(http, s, [contact("a@x.com")], token=access)
        assert r.headers["X-HubSpot-RateLimit-Max"] == "100"
        assert "X-HubSpot-RateLimit-Daily" not in r.headers
        r = upsert(http, s, [contact("b@x.com")])
        assert r.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "98"


def test_oauth_without_rotation_returns_same_refresh_token(http):
    with HubSpotSimulator(oauth_clients={"cid": "s"}, refresh_tokens={"r1"}) as s:
        form = {
            "grant_type": "refresh_token",
            "client_id": "cid",
            "client_secret": "s",
            "refresh_token": "r1",
        }
        first = http.post(s.base_url + "/oauth/v1/token", data=form).json()
        second = http.post(s.base_url + "/oauth/v1/token", data=form).json()
        assert first["refresh_token"] == second["refresh_token"] == "r1"
        assert (
            first["expires_in"] == 1800
            and first["access_token"] != second["access_token"]
        )


# --------------------------------------------------------------------------- log, control, lifecycle


def test_request_log_entries(sim, http):
    upsert(http, sim, [contact("a@x.com", "t1")])
    http.get(sim.base_url + "/crm/v3/properties/contacts", headers=AUTH)
    entries = sim.requests
    assert [e.seq for e in entries] == [1, 2]
    up = entries[0]
    assert up.method == "POST" and up.object_type == "contacts" and up.status == 200
    assert up.input_count == 1 and up.ids == ["a@x.com"]
    assert up.request_body["inputs"][0]["objectWriteTraceId"] == "t1"
    assert up.response_body["results"][0]["new"] is True
    assert up.auth == "sim-...(9)" and TOKEN not in json.dumps(up.to_dict())
    assert up.started <= up.finished
    assert sim.upsert_requests() == [up]
    assert sim.upsert_requests("companies") == []
    sim.configure(log_bodies=False)
    upsert(http, sim, [contact("b@x.com"), contact("c@x.com")])
    last = sim.upsert_requests()[-1]
    assert last.request_body is None and last.response_body is None
    assert last.input_count == 2 and last.ids == ["b@x.com", "c@x.com"]


def test_control_endpoints(sim, http):
    base = sim.base_url + "/_sim"
    assert http.get(base + "/health").json() == {"status": "ok"}
    assert (
        http.post(
            base + "/configure",
            json={"validation_error_mode": "multi_status", "tokens": ["x"]},
        ).status_code
        == 200
    )
    assert (
        http.post(
            base + "/configure", json={"validation_error_mode": "bogus"}
        ).status_code
        == 400
    )
    r = upsert(
        http, sim, [contact("a@x.com"), contact("b@x.com", num_orders="z")], token="x"
    )
    assert r.status_code == 207
    assert http.post(base + "/script", json={"faults": [504]}).status_code == 200
    assert upsert(http, sim, [contact("c@x.com")], token="x").status_code == 504
    objects = http.get(base + "/objects/0-1").json()["results"]
    assert [o["properties"]["email"] for o in objects] == ["a@x.com"]
    reqs = http.get(base + "/requests", params={"upserts_only": "1"}).json()["results"]
    assert [e["status"] for e in reqs] == [207, 504]
    assert reqs[0]["ids"] == ["a@x.com", "b@x.com"]
    stats = http.get(base + "/stats").json()
    assert stats["requests"] == 2 and stats["by_status"] == {"207": 1, "504": 1}
    assert http.post(base + "/revoke", json={"token": "x"}).status_code == 200
    assert upsert(http, sim, [contact("d@x.com")], token="x").status_code == 401
    assert http.post(base + "/configure", data="{oops").status_code == 400
    r = http.post(
        base + "/validation_rule",
        json={"object_type": "0-1", "property": "firstname", "value": "Bad"},
    )
    assert r.status_code == 200
    r = http.post(
        base + "/object_type",
        json={
            "name": "things",
            "type_id": "2-42",
            "properties": [{"name": "thing_id", "hasUniqueValue": True}],
        },
    )
    assert r.status_code == 200
    assert http.post(base + "/consume", json={"n": 3}).status_code == 200
    sim.configure(tokens=["x"])
    r = upsert(
        http,
        sim,
        [{"id": "t1", "idProperty": "thing_id", "properties": {}}],
        "p_things",
        token="x",
    )
    assert r.status_code == 200
    r = upsert(http, sim, [contact("bad@x.com", firstname="Bad")], token="x")
    assert r.json()["errors"][0]["errors"][0]["code"] == "VALIDATION_RULE_VIOLATION"
    assert http.post(base + "/reset").status_code == 200
    assert (
        sim.objects("contacts") == []
        and sim.requests == []
        and sim.stats["requests"] == 0
    )


def test_stop_closes_kept_alive_connections(http):
    s = HubSpotSimulator().start()
    url = s.base_url + "/crm/v3/objects/contacts/batch/upsert"
    assert (
        http.post(url, json={"inputs": [contact("a@x.com")]}, headers=AUTH).status_code
        == 200
    )
    s.stop()
    with pytest.raises(requests.ConnectionError):
        http.post(url, json={"inputs": [contact("b@x.com")]}, headers=AUTH, timeout=5)


def test_cli_prints_url_serves_and_exits_on_sigterm(tmp_path):
    url_file = tmp_path / "url.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubspot_simulator",
            "--token",
            "cli-token",
            "second-token",
            "--rate-limit",
            "50",
            "--validation-error-mode",
            "multi_status",
            "--url-file",
            str(url_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("HubSpot simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert url_file.read_text().strip() == url
        assert requests.get(url + "/_sim/health", timeout=5).json() == {"status": "ok"}
        r = requests.post(
            url + "/crm/v3/objects/contacts/batch/upsert",
            timeout=5,
            headers={"Authorization": "Bearer cli-token"},
            json={"inputs": [contact("a@x.com"), contact("b@x.com", num_orders="x")]},
        )
        assert r.status_code == 207
        assert r.headers["X-HubSpot-RateLimit-Max"] == "50"
        r = requests.get(
            url + "/crm/v3/properties/contacts",
            timeout=5,
            headers={"Authorization": "Bearer second-token"},
        )
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == ""  # exactly one line in total
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
