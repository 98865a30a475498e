"""Associations v4 and account details, over HTTP."""

from __future__ import annotations

from hubspot_simulator import HubSpotSimulator
from sim_helpers import TOKEN, post

V4 = "/crm/v4/associations"


def create(http, sim, object_type: str, *names: str) -> list[str]:
    key = {"contacts": "email", "deals": "dealname"}.get(object_type, "name")
    body = {"inputs": [{"properties": {key: n}, "associations": []} for n in names]}
    r = post(http, sim, f"/crm/v3/objects/{object_type}/batch/create", body)
    assert r.status_code == 201, r.text
    return [x["id"] for x in r.json()["results"]]


def labels(http, sim, path: str) -> list[dict]:
    r = http.get(sim.base_url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def hubspot(type_id: int, label: str | None = None) -> dict:
    """A type as HubSpot's answers give it: no "label" when unlabelled (never null)."""
    return {"category": "HUBSPOT_DEFINED", "typeId": type_id} | ({"label": label} if label is not None else {})


def test_labels_of_hubspot_defined_pairs(sim, http):
    assert labels(http, sim, f"{V4}/contacts/companies/labels") == [hubspot(279), hubspot(1, "Primary")]
    assert labels(http, sim, f"{V4}/0-1/0-2/labels") == [hubspot(279), hubspot(1, "Primary")]
    assert labels(http, sim, f"{V4}/companies/contacts/labels") == [hubspot(280), hubspot(2, "Primary")]
    assert labels(http, sim, f"{V4}/deals/companies/labels") == [hubspot(341), hubspot(5, "Primary")]
    assert labels(http, sim, f"{V4}/deals/contacts/labels") == [hubspot(3)]
    assert labels(http, sim, f"{V4}/tickets/companies/labels") == [hubspot(339), hubspot(26, "Primary")]
    assert labels(http, sim, f"{V4}/line_items/deals/labels") == [hubspot(20)]
    assert labels(http, sim, "/crm/associations/2026-09/contacts/companies/labels") == [hubspot(279), hubspot(1, "Primary")]
    # A pair HubSpot's table leaves out gets a default type, the same each time it is asked for.
    (custom,) = labels(http, sim, f"{V4}/contacts/widgets/labels")
    assert "label" not in custom and labels(http, sim, f"{V4}/contacts/p_widgets/labels") == [custom]


def test_user_defined_labels(sim, http):
    type_id, inverse = sim.add_association_label("contacts", "companies", "Manager", "Managed company")
    assert labels(http, sim, f"{V4}/contacts/companies/labels")[-1] == {
        "category": "USER_DEFINED", "typeId": type_id, "label": "Manager"
    }
    assert labels(http, sim, f"{V4}/companies/contacts/labels")[-1]["label"] == "Managed company"
    r = http.post(sim.base_url + "/_sim/association_label", json={"from": "deals", "to": "0-1", "label": "Buyer"})
    assert r.status_code == 200
    assert labels(http, sim, f"{V4}/deals/contacts/labels")[-1] == {
        "category": "USER_DEFINED", "typeId": r.json()["typeId"], "label": "Buyer"
    }
    [contact] = create(http, sim, "contacts", "a@x.com")
    [company] = create(http, sim, "companies", "Acme")
    body = {"inputs": [{"from": {"id": contact}, "to": {"id": company},
                        "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": type_id}]}]}  # fmt: skip
    r = post(http, sim, f"{V4}/contacts/companies/batch/create", body)
    assert r.status_code == 201 and r.json()["results"][0]["labels"] == ["Manager"]
    (back,) = sim.associations("companies")
    assert back["types"] == [{"category": "USER_DEFINED", "typeId": inverse, "label": "Managed company"}]


def test_batch_create_links_both_ways_and_reports_per_input_errors(sim, http):
    c1, c2 = create(http, sim, "contacts", "a@x.com", "b@x.com")
    [company] = create(http, sim, "companies", "Acme")
    primary = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]
    r = post(http, sim, f"{V4}/contacts/companies/batch/create", {"inputs": [
        {"from": {"id": c1}, "to": {"id": company}, "types": primary},
    ]})  # fmt: skip
    assert r.status_code == 201
    assert r.json()["results"] == [
        {"fromObjectTypeId": "0-1", "fromObjectId": c1, "toObjectTypeId": "0-2",
         "toObjectId": company, "labels": ["Primary"]},
    ]  # fmt: skip
    r = post(http, sim, f"{V4}/0-1/0-2/batch/create", {"inputs": [
        {"from": {"id": c2}, "to": {"id": company}, "types": primary},
        {"from": {"id": "999"}, "to": {"id": company}, "types": primary},
        {"from": {"id": c2}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                               "associationTypeId": 3}]},
    ]})  # fmt: skip
    assert r.status_code == 207
    body = r.json()
    assert [x["fromObjectId"] for x in body["results"]] == [c2]
    assert [e["category"] for e in body["errors"]] == ["OBJECT_NOT_FOUND", "VALIDATION_ERROR"]
    assert body["errors"][0]["context"] == {"ids": ["999"]}
    assert body["errors"][1]["context"] == {"associationTypeId": ["HUBSPOT_DEFINED/3"]}
    r = http.get(sim.base_url + "/_sim/associations/companies/contacts").json()["results"]
    assert sorted((x["fromId"], x["toId"], x["types"][0]["typeId"]) for x in r) == [(company, c1, 2), (company, c2, 2)]
    # Dated path: 201 with errors in the body.
    r = post(http, sim, "/crm/associations/2026-09/contacts/companies/batch/create",
             {"inputs": [{"from": {"id": "999"}, "to": {"id": company}, "types": primary}]})  # fmt: skip
    assert r.status_code == 201 and r.json()["numErrors"] == 1


def test_associate_default_read_and_archive(sim, http):
    c1, c2, c3 = create(http, sim, "contacts", "a@x.com", "b@x.com", "c@x.com")
    [deal] = create(http, sim, "deals", "Big deal")
    r = post(http, sim, f"{V4}/deals/contacts/batch/associate/default", {"inputs": [
        {"from": {"id": deal}, "to": {"id": c1}},
        {"from": {"id": deal}, "to": {"id": c2}},
        {"from": {"id": deal}, "to": {"id": "999"}},
    ]})  # fmt: skip
    assert r.status_code == 200  # errors in the body, never a 207
    body = r.json()
    assert body["results"][0] == {
        "from": {"id": deal}, "to": {"id": c1},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3},
    }  # fmt: skip
    assert body["numErrors"] == 1 and body["errors"][0]["context"] == {"ids": ["999"]}
    r = post(http, sim, f"{V4}/deals/contacts/batch/read", {"inputs": [{"id": deal}]})
    assert r.status_code == 200
    (result,) = r.json()["results"]
    assert result["from"] == {"id": deal}
    assert [(t["toObjectId"], t["associationTypes"]) for t in result["to"]] == [
        (c1, [hubspot(3)]), (c2, [hubspot(3)])
    ]
    r = post(http, sim, f"{V4}/contacts/deals/batch/read", {"inputs": [{"id": c1}, {"id": c3}, {"id": "999"}]})
    assert r.status_code == 207
    assert r.json()["results"][0]["to"][0]["associationTypes"] == [hubspot(4)]
    errors = r.json()["errors"]
    assert errors[0]["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND" and errors[1]["context"] == {"ids": ["999"]}
    r = post(http, sim, f"{V4}/deals/contacts/batch/archive", {"inputs": [{"from": {"id": deal}, "to": [{"id": c1}]}]})
    assert r.status_code == 204
    assert [x["toId"] for x in sim.associations("deals", "contacts")] == [c2]
    assert [x["fromId"] for x in sim.associations("contacts")] == [c2]  # gone from both ends
    # Archiving an object drops its links.
    post(http, sim, "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": c2}]})
    assert sim.associations("deals") == []


def test_association_batches_skip_the_ten_secondly_window_but_count_daily(sim, http):
    c1, c2 = create(http, sim, "contacts", "a@x.com", "b@x.com")
    [company] = create(http, sim, "companies", "Acme")
    sim.configure(rate_limit_per_10s=2, daily_limit=9)
    sim.consume_rate_limit(2)  # the window is full; 4 of the day's 9 requests are used
    inputs = {"inputs": [{"from": {"id": c1}, "to": {"id": company}}]}
    for _ in range(3):
        assert post(http, sim, f"{V4}/contacts/companies/batch/associate/default", inputs).status_code == 200
    assert post(http, sim, f"{V4}/contacts/companies/batch/read", {"inputs": [{"id": c2}]}).status_code == 207
    r = http.get(sim.base_url + f"{V4}/contacts/companies/labels", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 429 and r.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert post(http, sim, f"{V4}/contacts/companies/batch/associate/default", inputs).status_code == 200
    r = post(http, sim, f"{V4}/contacts/companies/batch/associate/default", inputs)
    assert r.status_code == 429 and r.json()["policyName"] == "DAILY"
    assert [e.endpoint for e in sim.requests[-7:]] == [
        "associations_default", "associations_default", "associations_default", "associations_read",
        "association_labels", "associations_default", "associations_default",
    ]  # fmt: skip
    assert sim.requests[-4].ids == [c2]


def test_association_scopes_cover_both_object_types(http):
    scopes = {"t": ["crm.objects.contacts.write", "crm.objects.contacts.read"]}
    with HubSpotSimulator(tokens={TOKEN, "t"}, token_scopes=scopes) as s:
        [contact] = create(http, s, "contacts", "a@x.com")
        [company] = create(http, s, "companies", "Acme")
        inputs = {"inputs": [{"from": {"id": contact}, "to": {"id": company}}]}
        r = post(http, s, f"{V4}/contacts/companies/batch/associate/default", inputs, token="t")
        assert r.status_code == 403
        assert r.json()["errors"][0]["context"] == {"requiredGranularScopes": ["crm.objects.companies.write"]}
        assert post(http, s, f"{V4}/contacts/companies/batch/associate/default", inputs).status_code == 200


def test_account_details_per_token(http):
    with HubSpotSimulator(tokens={"a", "b"}, portal_id=111, portals={"b": 222}, time_zone="Asia/Kolkata") as s:
        url = s.base_url + "/account-info/v3/details"
        r = http.get(url, headers={"Authorization": "Bearer a"})
        assert r.status_code == 200
        assert r.json() == {
            "portalId": 111, "accountType": "STANDARD", "timeZone": "Asia/Kolkata", "companyCurrency": "USD",
            "additionalCurrencies": [], "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1",
            "utcOffset": "+05:30", "utcOffsetMilliseconds": 19_800_000,
        }  # fmt: skip
        assert http.get(url, headers={"Authorization": "Bearer b"}).json()["portalId"] == 222
        assert http.get(url).status_code == 401
        s.configure(rate_limit_per_10s=3)  # the two answered calls above count, the 401 does not
        assert http.get(url, headers={"Authorization": "Bearer a"}).status_code == 200
        assert http.get(url, headers={"Authorization": "Bearer a"}).status_code == 429
        assert [e.endpoint for e in s.requests] == ["account_info"] * 5
