"""The search API: filters, paging, the 10,000 cap, the per-second limit and the index lag."""

from __future__ import annotations

from typing import Any

from hubspot_simulator import contract
from sim_helpers import post

SEARCH = "/crm/v3/objects/companies/search"


def _create(http, sim, *props: dict[str, str]) -> list[str]:
    inputs = [{"properties": p, "associations": []} for p in props]
    r = post(http, sim, "/crm/v3/objects/companies/batch/create", {"inputs": inputs})
    assert r.status_code == 201, r.text
    return [res["id"] for res in r.json()["results"]]


def _in(values: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "filterGroups": [{"filters": [{"propertyName": "domain", "operator": "IN", "values": values}]}],
        "properties": ["domain", "name"], "limit": 200, **extra,
    }


def test_in_matches_lowercase_values_exactly_and_eq_ignores_case(sim, http):
    ids = _create(http, sim, {"domain": "Acme.com", "name": "a"}, {"domain": "acme.com"}, {"domain": "other.org"})
    r = post(http, sim, SEARCH, _in(["acme.com"]))
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2
    assert [res["id"] for res in body["results"]] == ids[:2]
    assert body["results"][0]["properties"]["domain"] == "Acme.com"
    assert "createdAt" in body["results"][0]
    # IN values must be lowercase (HubSpot's guide): one with capitals matches nothing.
    assert post(http, sim, SEARCH, _in(["Acme.com"])).json()["total"] == 0
    eq = {"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "OTHER.org"}]}]}
    assert [res["id"] for res in post(http, sim, SEARCH, eq).json()["results"]] == [ids[2]]


def test_paging_limit_and_the_10000_cap(sim, http):
    _create(http, sim, *({"domain": "same.com"} for _ in range(5)))
    first = post(http, sim, SEARCH, _in(["same.com"], limit=2)).json()
    assert first["total"] == 5
    assert len(first["results"]) == 2
    after = first["paging"]["next"]["after"]
    second = post(http, sim, SEARCH, _in(["same.com"], limit=200, after=after)).json()
    assert len(second["results"]) == 3
    assert "paging" not in second
    assert post(http, sim, SEARCH, _in(["same.com"], limit=201)).status_code == 400
    r = post(http, sim, SEARCH, _in(["same.com"], limit=100, after="9950"))
    assert r.status_code == 400
    assert "10,000" in r.json()["message"]


def test_bodies_over_3000_characters_and_unsupported_operators_are_refused(sim, http):
    long_values = [f"{n:04d}-{'x' * 40}.com" for n in range(100)]
    r = post(http, sim, SEARCH, _in(long_values))
    assert r.status_code == 400
    assert "3,000" in r.json()["message"]
    bad = {"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "CONTAINS_TOKEN", "value": "a"}]}]}
    assert post(http, sim, SEARCH, bad).status_code == 400


def test_the_per_second_limit_answers_429_secondly_outside_the_ten_second_window(sim, http, clock):
    sim.configure(search_rate_limit_per_second=2, rate_limit_per_10s=1)
    codes = [post(http, sim, SEARCH, _in(["a.com"])).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    body = post(http, sim, SEARCH, _in(["a.com"])).json()
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "SECONDLY"
    assert {"status", "message", "correlationId", "category"} <= body.keys()
    assert contract.check_answer(contract.operation("POST", SEARCH), 429, body) == []
    clock.advance(1.01)
    assert post(http, sim, SEARCH, _in(["a.com"])).status_code == 200
    assert sim.stats["rate_limited_secondly"] == 2
    # Searches took no slot of the ten-secondly window (its limit is 1 here).
    assert post(http, sim, "/crm/v3/objects/companies/batch/create",
                {"inputs": [{"properties": {"domain": "b.com"}, "associations": []}]}).status_code == 201


def test_the_index_lags_writes(sim, http, clock):
    sim.configure(search_index_lag_seconds=2)
    [oid] = _create(http, sim, {"domain": "lag.com", "name": "old"})
    assert post(http, sim, SEARCH, _in(["lag.com"])).json()["total"] == 0  # created just now: not indexed yet
    clock.advance(2.1)
    assert post(http, sim, SEARCH, _in(["lag.com"])).json()["results"][0]["properties"]["name"] == "old"
    r = post(http, sim, "/crm/v3/objects/companies/batch/update",
             {"inputs": [{"id": oid, "properties": {"name": "new", "domain": "moved.com"}}]})
    assert r.status_code == 200
    found = post(http, sim, SEARCH, _in(["lag.com"])).json()["results"]  # found in its old state
    assert [(res["id"], res["properties"]["name"]) for res in found] == [(oid, "old")]
    assert post(http, sim, SEARCH, _in(["moved.com"])).json()["total"] == 0
    clock.advance(2.1)
    assert post(http, sim, SEARCH, _in(["lag.com"])).json()["total"] == 0
    assert post(http, sim, SEARCH, _in(["moved.com"])).json()["results"][0]["properties"]["name"] == "new"


def test_archived_objects_are_not_found(sim, http):
    ids = _create(http, sim, {"domain": "gone.com"})
    r = post(http, sim, "/crm/v3/objects/companies/batch/archive", {"inputs": [{"id": ids[0]}]})
    assert r.status_code == 204
    assert post(http, sim, SEARCH, _in(["gone.com"])).json()["total"] == 0


def test_search_needs_the_read_scope(sim, http):
    sim.configure(tokens={"ro", "wo"}, token_scopes={"ro": ["crm.objects.companies.read"],
                                                     "wo": ["crm.objects.companies.write"]})
    assert post(http, sim, SEARCH, _in(["a.com"]), token="ro").status_code == 200
    r = post(http, sim, SEARCH, _in(["a.com"]), token="wo")
    assert r.status_code == 403
    assert "crm.objects.companies.read" in r.text
