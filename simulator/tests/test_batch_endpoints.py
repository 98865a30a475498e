"""Object batch endpoints beyond upsert: read, update, create, archive (HubSpot's documented behaviour)."""

from __future__ import annotations

import pytest
import requests
from hubspot_simulator import HubSpotSimulator
from sim_helpers import READ, TOKEN, contact, post, upsert

NOT_FOUND = "Could not get some CONTACT objects, they may be deleted or not exist"


def v3(action: str, object_type: str = "contacts") -> str:
    return f"/crm/v3/objects/{object_type}/batch/{action}"


def dated(action: str, object_type: str = "contacts") -> str:
    return f"/crm/objects/2026-09/{object_type}/batch/{action}"


def seed(http, sim, *emails: str) -> list[str]:
    """Upsert contacts; return their record ids."""
    r = upsert(http, sim, [contact(e, firstname=e.split("@")[0]) for e in emails])
    assert r.status_code == 200
    return [res["id"] for res in r.json()["results"]]


# --------------------------------------------------------------------------- batch/read


def test_read_by_record_id_and_by_unique_property(sim, http):
    a, b = seed(http, sim, "a@x.com", "b@x.com")
    r = post(http, sim, v3("read"), {**READ, "inputs": [{"id": a}, {"id": b}], "properties": ["firstname", "lastname", "nope"]})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "COMPLETE" and "errors" not in body
    first = body["results"][0]
    assert first["id"] == a and first["archived"] is False
    # Requested properties (unset ones as null, unknown ones left out) plus the bookkeeping ones.
    assert first["properties"]["firstname"] == "a" and first["properties"]["lastname"] is None
    assert "nope" not in first["properties"]
    assert first["properties"]["hs_object_id"] == a
    assert {"createdate", "lastmodifieddate"} <= first["properties"].keys()
    assert "email" not in first["properties"]
    r = post(http, sim, v3("read", "0-1"), {**READ, "idProperty": "email", "inputs": [{"id": "B@X.com"}], "properties": ["email"]})
    assert r.status_code == 200
    assert [(x["id"], x["properties"]["email"]) for x in r.json()["results"]] == [(b, "b@x.com")]


def test_read_missing_ids_answer_207_with_object_not_found(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("read"), {**READ, "inputs": [{"id": a}, {"id": "999"}, {"id": "998"}]})
    assert r.status_code == 207
    body = r.json()
    assert [x["id"] for x in body["results"]] == [a]
    assert body["numErrors"] == 1
    assert body["errors"] == [
        {"status": "error", "category": "OBJECT_NOT_FOUND", "message": NOT_FOUND, "context": {"ids": ["999", "998"]},
         "errors": [], "links": {}}
    ]
    # The dated path folds the errors into a 200.
    r = post(http, sim, dated("read"), {**READ, "inputs": [{"id": a}, {"id": "999"}]})
    assert r.status_code == 200 and r.json()["errors"][0]["context"] == {"ids": ["999"]}
    # All missing: 207 with no results by default, 404 when configured.
    r = post(http, sim, v3("read"), {**READ, "inputs": [{"id": "999"}]})
    assert r.status_code == 207 and r.json()["results"] == []
    sim.configure(read_all_missing_404=True)
    r = post(http, sim, v3("read"), {**READ, "inputs": [{"id": "999"}]})
    assert r.status_code == 404
    assert r.json()["category"] == "OBJECT_NOT_FOUND" and r.json()["context"] == {"ids": ["999"]}
    assert post(http, sim, v3("read"), {**READ, "inputs": [{"id": a}, {"id": "999"}]}).status_code == 207


def test_read_rejects_non_unique_id_property_and_limits_history_reads(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("read"), {**READ, "idProperty": "firstname", "inputs": [{"id": "a"}]})
    assert r.status_code == 400 and "non-unique" in r.json()["message"]
    r = post(http, sim, v3("read"), {"inputs": [{"id": a}], "properties": [], "propertiesWithHistory": ["firstname"]})
    history = r.json()["results"][0]["propertiesWithHistory"]["firstname"]
    assert [h["value"] for h in history] == ["a"]
    many = {"inputs": [{"id": str(i)} for i in range(51)], "properties": [], "propertiesWithHistory": ["firstname"]}
    assert post(http, sim, v3("read"), many).status_code == 400
    assert post(http, sim, v3("read"), {**READ, "inputs": [{"id": str(i)} for i in range(100)]}).status_code == 207


# --------------------------------------------------------------------------- batch/update


def test_update_by_record_id_and_id_property(sim, http):
    a, b = seed(http, sim, "a@x.com", "b@x.com")
    r = post(http, sim, v3("update"), {"inputs": [
        {"id": a, "properties": {"lastname": "Lee"}, "objectWriteTraceId": "t1"},
        {"id": "B@x.com", "idProperty": "email", "properties": {"num_orders": "3"}},
    ]})  # fmt: skip
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["id"] for x in results] == [a, b]
    assert results[0]["objectWriteTraceId"] == "t1" and "new" not in results[0]
    assert sim.find("contacts", "email", "a@x.com")["properties"]["lastname"] == "Lee"
    assert sim.find("contacts", "email", "a@x.com")["properties"]["firstname"] == "a"  # merged
    assert sim.find("contacts", "email", "b@x.com")["properties"]["num_orders"] == "3"


def test_update_of_unknown_ids_is_207_and_creates_nothing(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("update"), {"inputs": [
        {"id": a, "properties": {"lastname": "Lee"}},
        {"id": "404", "properties": {"lastname": "Nobody"}},
        {"id": "nobody@x.com", "idProperty": "email", "properties": {"lastname": "Nobody"}},
    ]})  # fmt: skip
    assert r.status_code == 207
    body = r.json()
    assert [x["id"] for x in body["results"]] == [a]
    assert body["errors"] == [
        {"status": "error", "category": "OBJECT_NOT_FOUND", "message": NOT_FOUND,
         "context": {"ids": ["404", "nobody@x.com"]}, "errors": [], "links": {}},
    ]  # fmt: skip
    assert len(sim.objects("contacts")) == 1


def test_update_whole_request_errors(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {}}, {"id": a, "properties": {}}]})
    assert r.status_code == 400
    assert r.json()["message"].startswith("Duplicate IDs found in batch input")
    assert r.json()["context"] == {"ids": [a]}
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "idProperty": "hs_object_id", "properties": {}}]})
    assert r.status_code == 400 and "hs_object_id" in r.json()["message"]
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {"num_orders": "many"}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "INVALID_INTEGER"
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {"hs_object_id": "7"}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "READ_ONLY_VALUE"
    assert "num_orders" not in sim.find("contacts", "email", "a@x.com")["properties"]


def test_update_multi_status_writes_the_valid_inputs(sim, http):
    sim.configure(validation_error_mode="multi_status")
    a, b = seed(http, sim, "a@x.com", "b@x.com")
    r = post(http, sim, v3("update"), {"inputs": [
        {"id": a, "properties": {"num_orders": "x"}, "objectWriteTraceId": "bad"},
        {"id": b, "properties": {"num_orders": "2"}},
        {"id": b + "0", "properties": {"num_orders": "2"}},
    ]})  # fmt: skip
    assert r.status_code == 207
    body = r.json()
    assert [x["id"] for x in body["results"]] == [b]
    assert [e["category"] for e in body["errors"]] == ["VALIDATION_ERROR", "OBJECT_NOT_FOUND"]
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["bad"]


def test_update_cannot_take_another_objects_unique_value(sim, http):
    a, _ = seed(http, sim, "a@x.com", "b@x.com")
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {"email": "b@x.com"}}]})
    assert r.status_code == 409 and r.json()["category"] == "CONFLICT"
    assert sim.find("contacts", "hs_object_id", a)["properties"]["email"] == "a@x.com"
    # Changing a unique value moves the index: the new value finds the object, the old one does not.
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {"email": "A2@x.com"}}]})
    assert r.status_code == 200
    r = post(http, sim, v3("read"), {**READ, "idProperty": "email", "inputs": [{"id": "a2@x.com"}, {"id": "a@x.com"}]})
    assert [x["id"] for x in r.json()["results"]] == [a]
    assert r.json()["errors"][0]["context"] == {"ids": ["a@x.com"]}


# --------------------------------------------------------------------------- batch/create


def test_create_answers_201(sim, http):
    r = post(http, sim, v3("create"), {"inputs": [
        {"associations": [], "properties": {"email": "New@x.com", "firstname": "N"}, "objectWriteTraceId": "t1"},
        {"associations": [], "properties": {"firstname": "No email"}},
    ]})  # fmt: skip
    assert r.status_code == 201
    results = r.json()["results"]
    assert results[0]["properties"]["email"] == "new@x.com" and results[0]["objectWriteTraceId"] == "t1"
    assert results[0]["id"] != results[1]["id"] and "new" not in results[0]
    assert sim.find("contacts", "email", "new@x.com")["id"] == results[0]["id"]
    assert post(http, sim, dated("create"), {"inputs": [{"associations": [], "properties": {}}]}).status_code == 201


def test_create_conflict_without_trace_ids_fails_the_whole_request(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("create"), {"inputs": [
        {"associations": [], "properties": {"email": "fresh@x.com"}},
        {"associations": [], "properties": {"email": "A@x.com"}},
    ]})  # fmt: skip
    assert r.status_code == 409
    assert r.json()["category"] == "CONFLICT"
    assert r.json()["message"] == f"Contact already exists. Existing ID: {a}"
    assert len(sim.objects("contacts")) == 1  # nothing written


def test_create_conflicts_with_trace_ids_are_per_input(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("create"), {"inputs": [
        {"associations": [], "properties": {"email": "fresh@x.com"}, "objectWriteTraceId": "t1"},
        {"associations": [], "properties": {"email": "a@x.com"}, "objectWriteTraceId": "t2"},
        {"associations": [], "properties": {"email": "fresh@x.com"}, "objectWriteTraceId": "t3"},
    ]})  # fmt: skip
    assert r.status_code == 207
    body = r.json()
    (created,) = body["results"]
    assert created["objectWriteTraceId"] == "t1"
    assert body["errors"] == [
        {"status": "error", "category": "CONFLICT", "message": f"Contact already exists. Existing ID: {a}",
         "context": {"objectWriteTraceId": ["t2"], "existingId": [a]}, "errors": [], "links": {}},
        {"status": "error", "category": "CONFLICT",
         "message": f"Contact already exists. Existing ID: {created['id']}",
         "context": {"objectWriteTraceId": ["t3"], "existingId": [created["id"]]}, "errors": [], "links": {}},
    ]  # fmt: skip
    # The dated path: 201 with the errors in the body.
    r = post(http, sim, dated("create"), {"inputs": [{"associations": [], "properties": {"email": "a@x.com"}, "objectWriteTraceId": "x"}]})
    assert r.status_code == 201 and r.json()["numErrors"] == 1


def test_create_validates_values_like_upsert(sim, http):
    r = post(http, sim, v3("create"), {"inputs": [{"associations": [], "properties": {"email": "not-an-email"}}]})
    assert r.status_code == 400 and "INVALID_EMAIL" in r.json()["message"]
    r = post(http, sim, v3("create"), {"inputs": [{"associations": [], "properties": {"ghost": "x"}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    sim.configure(validation_error_mode="multi_status")
    r = post(http, sim, v3("create"), {"inputs": [{"associations": [], "properties": {"ghost": "x"}}, {"associations": [], "properties": {"firstname": "ok"}}]})
    assert r.status_code == 207 and len(r.json()["results"]) == 1
    assert r.json()["errors"][0]["context"]["propertyName"] == ["ghost"]


def test_create_with_associations(sim, http):
    company = post(http, sim, v3("create", "companies"), {"inputs": [{"associations": [], "properties": {"name": "Acme"}}]})
    company_id = company.json()["results"][0]["id"]
    to_company = {"to": {"id": company_id}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1},
    ]}  # fmt: skip
    r = post(http, sim, v3("create"), {"inputs": [{"properties": {"email": "c@x.com"}, "associations": [to_company]}]})
    assert r.status_code == 201
    contact_id = r.json()["results"][0]["id"]
    assert sim.associations("contacts", "companies") == [
        {"fromId": contact_id, "toObjectType": "companies", "toId": company_id, "types": [
            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
        ]},
    ]  # fmt: skip
    # Stored both ways, with the inverse type ids.
    back = sim.associations("0-2")
    assert [(x["fromId"], x["toId"], [t["typeId"] for t in x["types"]]) for x in back] == [
        (company_id, contact_id, [2, 280])
    ]
    sim.configure(validation_error_mode="multi_status")
    bad_type = {"to": {"id": company_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 9999}]}
    bad_company = {**to_company, "to": {"id": "424242"}}
    r = post(http, sim, v3("create"), {"inputs": [
        {"properties": {"email": "d@x.com"}, "associations": [bad_type]},
        {"properties": {"email": "e@x.com"}, "associations": [bad_company]},
    ]})  # fmt: skip
    assert r.status_code == 207 and r.json()["results"] == []
    assert [e["context"]["propertyName"] for e in r.json()["errors"]] == [["associations"], ["associations"]]
    assert [e["errors"][0]["code"] for e in r.json()["errors"]] == ["INVALID_ASSOCIATION_TYPE", "OBJECT_NOT_FOUND"]


# --------------------------------------------------------------------------- batch/archive


def test_archive_hides_objects_and_frees_their_unique_values(sim, http):
    a, b = seed(http, sim, "a@x.com", "b@x.com")
    r = post(http, sim, v3("archive"), {"inputs": [{"id": a}, {"id": "999"}]})
    assert r.status_code == 204 and r.content == b""
    assert [o["id"] for o in sim.objects("contacts")] == [b]
    assert [o["id"] for o in sim.objects("contacts", archived=True)] == [a]
    assert sim.find("contacts", "email", "a@x.com") is None
    r = post(http, sim, v3("read"), {**READ, "inputs": [{"id": a}]})
    assert r.status_code == 207 and r.json()["results"] == []
    r = post(http, sim, v3("read") + "?archived=true", {**READ, "inputs": [{"id": a}], "properties": ["email"]})
    assert r.json()["results"][0]["archived"] is True
    assert r.json()["results"][0]["properties"]["email"] == "a@x.com"
    # An upsert of the archived object's email creates a new object.
    r = upsert(http, sim, [contact("a@x.com")])
    assert r.json()["results"][0]["new"] is True and r.json()["results"][0]["id"] not in (a, b)
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {"lastname": "x"}}]})
    assert r.status_code == 207 and r.json()["errors"][0]["context"] == {"ids": [a]}


def test_archive_unknown_ids_option(sim, http):
    sim.configure(archive_unknown_ids="error")
    (a,) = seed(http, sim, "a@x.com")
    r = post(http, sim, v3("archive"), {"inputs": [{"id": a}, {"id": "999"}]})
    assert r.status_code == 207
    assert r.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert r.json()["errors"][0]["context"] == {"ids": ["999"]}
    assert sim.objects("contacts") == []
    assert post(http, sim, dated("archive"), {"inputs": [{"id": "998"}]}).status_code == 200
    with pytest.raises(ValueError, match="archive_unknown_ids"):
        sim.configure(archive_unknown_ids="maybe")


# --------------------------------------------------------------------------- shared behaviour


@pytest.mark.off_contract_requests
@pytest.mark.parametrize("action", ["read", "update", "create", "archive"])
def test_batch_limits_and_malformed_bodies(sim, http, action):
    too_many = [{"id": str(i), "properties": {}} for i in range(101)]
    assert post(http, sim, v3(action), {"inputs": too_many}).status_code == 400
    assert post(http, sim, v3(action), {"inputs": []}).status_code == 400
    assert post(http, sim, v3(action), {"nothing": 1}).status_code == 400
    r = post(http, sim, v3(action, "gizmos"), {"inputs": [{"id": "1", "properties": {}}]})
    assert r.status_code == 400 and r.json()["message"] == "Unable to infer object type from: gizmos"


def test_endpoints_count_against_the_rate_limit_and_are_logged(sim, http):
    sim.configure(rate_limit_per_10s=3)
    (a,) = seed(http, sim, "a@x.com")
    assert post(http, sim, v3("read"), {**READ, "inputs": [{"id": a}]}).status_code == 200
    r = post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {}}]})
    assert r.status_code == 200 and r.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    r = post(http, sim, v3("create"), {"inputs": [{"associations": [], "properties": {}}]})
    assert r.status_code == 429 and r.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert post(http, sim, v3("archive"), {"inputs": [{"id": a}]}).status_code == 429
    log = sim.requests
    assert [e.endpoint for e in log] == ["batch_upsert", "batch_read", "batch_update", "batch_create", "batch_archive"]
    assert log[1].ids == [a] and log[1].input_count == 1 and log[1].object_type == "contacts"
    assert sim.upsert_requests() == log[:1]


def test_scripted_faults_apply_to_every_object_batch_endpoint(sim, http):
    (a,) = seed(http, sim, "a@x.com")
    sim.script_faults([503, "drop_after_write"])
    assert post(http, sim, v3("read"), {**READ, "inputs": [{"id": a}]}).status_code == 503
    with pytest.raises(requests.ConnectionError):
        post(http, sim, v3("update"), {"inputs": [{"id": a, "properties": {"lastname": "Late"}}]})
    assert sim.find("contacts", "email", "a@x.com")["properties"]["lastname"] == "Late"


def test_scopes_are_checked_per_access(http):
    scopes = {"reader": ["crm.objects.contacts.read"], "writer": ["crm.objects.contacts.write"]}
    with HubSpotSimulator(tokens={TOKEN, "reader", "writer"}, token_scopes=scopes) as s:
        (a,) = seed(http, s, "a@x.com")
        assert post(http, s, v3("read"), {**READ, "inputs": [{"id": a}]}, token="reader").status_code == 200
        r = post(http, s, v3("read"), {**READ, "inputs": [{"id": a}]}, token="writer")
        assert r.status_code == 403
        assert r.json()["errors"][0]["context"] == {"requiredGranularScopes": ["crm.objects.contacts.read"]}
        for action, body in (("update", {"inputs": [{"id": a, "properties": {}}]}),
                             ("create", {"inputs": [{"properties": {}, "associations": []}]}),
                             ("archive", {"inputs": [{"id": a}]})):  # fmt: skip
            assert post(http, s, v3(action), body, token="reader").status_code == 403
            assert post(http, s, v3(action), body, token="writer").status_code in (200, 201, 204)
