"""Associations after each record's object lands: found by a unique property, labelled or default."""

from __future__ import annotations

import json
import time

import pytest

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.http.ratelimit import RateLimiter
from target_hubspot_upsert.hubspot.associations import IdCache
from target_hubspot_upsert.hubspot.writer import BatchWriter

from .helpers import FIXTURES, FakeClock, contact, record, run_cli, run_in_process, schema, state, summary

MAPPINGS = {
    "accounts": {"object_type": "companies", "id_property": "company_external_id"},
    "contacts": {"associations": [
        {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"},
    ]},
    "deals": {"id_property": "deal_external_id", "associations": [
        {"field": "buyer_emails", "to_object_type": "contacts", "to_id_property": "email", "label": "Decision maker"},
        {"field": "account_ref", "to_object_type": "companies", "to_id_property": "company_external_id",
         "label": "Primary"},
    ]},
}


def links(sim, from_type: str, to_type: str) -> dict[tuple[str, str], set[str | None]]:
    """(from id property value, to id property value) -> labels, read from the simulator."""
    keys = {"contacts": "email", "companies": "company_external_id", "deals": "deal_external_id"}

    def value(object_type: str, object_id: str) -> str:
        return next(o for o in sim.objects(object_type) if o["id"] == object_id)["properties"][keys[object_type]]

    return {
        (value(from_type, link["fromId"]), value(to_type, link["toId"])): {t["label"] for t in link["types"]}
        for link in sim.associations(from_type, to_type)
    }


def test_contacts_and_deals_are_associated_by_unique_values(sim, config, tmp_path):
    decision_maker, _ = sim.add_association_label("deals", "contacts", "Decision maker", "Buyer")
    report_path, rejected_path = tmp_path / "run.json", tmp_path / "rejected.jsonl"
    cfg = {**config, "object_mappings": MAPPINGS, "max_rejected_records": 1,
           "run_report_path": str(report_path), "rejected_records_path": str(rejected_path)}
    run = run_cli(cfg, (FIXTURES / "associations.singer").read_text(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr

    assert links(sim, "contacts", "companies") == {
        ("ada@example.com", "c-1"): {None},
        ("grace@example.com", "c-2"): {None},
        ("edsger@example.com", "c-1"): {None},
        ("edsger@example.com", "c-2"): {None},
    }
    assert links(sim, "deals", "contacts") == {
        ("d-1", "ada@example.com"): {"Decision maker"},
        ("d-1", "grace@example.com"): {"Decision maker"},
    }
    assert links(sim, "deals", "companies") == {("d-1", "c-1"): {"Primary"}}
    deal_contacts = sim.associations("deals", "contacts")
    assert {t["typeId"] for link in deal_contacts for t in link["types"]} == {decision_maker}

    # The contact whose company does not exist landed; its association is the rejection.
    assert sim.find("contacts", "email", "alan@example.com") is not None
    assert summary(run.stderr, "contacts").startswith(
        "Stream 'contacts' -> contacts: received 5, created 4, updated 0, merged 0, rejected 1; associations 4;"
    )
    assert summary(run.stderr, "deals").startswith(
        "Stream 'deals' -> deals: received 1, created 1, updated 0, merged 0, rejected 0; associations 3;"
    )
    (line,) = [json.loads(x) for x in rejected_path.read_text().splitlines()]
    assert line["stream"] == "contacts" and line["id"] == "alan@example.com"
    assert line["error"]["code"] == "ASSOCIATION_TARGET_NOT_FOUND"
    message = line["error"]["message"]
    assert "company_ref" in message and "'c-404'" in message and "companies" in message
    assert "c-404" not in run.stderr and "alan@example.com" not in run.stderr  # values only in the file
    assert "ASSOCIATION_TARGET_NOT_FOUND" in run.stderr and "company_ref" in run.stderr

    streams = json.loads(report_path.read_text())["streams"]
    assert (streams["contacts"]["created"], streams["contacts"]["rejected"]) == (4, 1)
    assert streams["contacts"]["associations_created"] == 4 and streams["deals"]["associations_created"] == 3
    assert run.states == [{"bookmarks": {"deals": {"updated_at": "2024-03-03T00:00:00Z"}}}]

    # Company ids are looked up once per value and cached; labels once per object pair.
    reads = [e for e in sim.requests if e.endpoint == "batch_read" and e.object_type == "companies"]
    assert sorted(i for e in reads for i in e.ids) == ["c-1", "c-2", "c-404"]
    assert len([e for e in sim.requests if e.endpoint == "association_labels"]) == 2
    assert {e.endpoint for e in sim.requests if e.path.startswith("/crm/v4/")} == {
        "associations_default", "associations_create", "association_labels",
    }


def test_association_fields_are_not_properties(sim, config, tmp_path):
    """The association field is neither sent nor subject to unknown_properties (fail, the default)."""
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "object_mappings": {"contacts": MAPPINGS["contacts"]}, "max_rejected_records": 10,
           "rejected_records_path": str(rejected)}
    props = {"email": {"type": "string"}, "company_ref": {"type": ["string", "null"]}}
    run = run_in_process(cfg, [schema("contacts", props), record("contacts", {"email": "a@b.co", "company_ref": "x"}),
                               record("contacts", {"email": "c@d.co", "company_ref": "y", "other_ref": None})])
    assert run.error is None, run.error
    codes = {json.loads(line)["id"]: json.loads(line)["error"]["code"] for line in rejected.read_text().splitlines()}
    # 'other_ref' is undeclared and no property: that record is refused under fail; 'company_ref' never is.
    assert codes == {"a@b.co": "ASSOCIATION_TARGET_NOT_FOUND", "c@d.co": "UNKNOWN_PROPERTY"}
    assert sim.find("contacts", "email", "a@b.co") is not None and sim.find("contacts", "email", "c@d.co") is None
    upserts = [e.request_body for e in sim.requests if e.endpoint == "batch_upsert"]
    assert all("company_ref" not in i["properties"] for body in upserts for i in body["inputs"])


def test_associations_wait_for_the_objects_sent_before_them(sim, config, monkeypatch):
    """Companies and contacts in one run: a contact's company, sent earlier by another stream, is found.

    Company batches are slowed down, so the contacts' look-ups would miss them without the wait;
    the last companies sit in a partial buffer, sent when the contacts need them.
    """
    write = BatchWriter.write

    def slow_companies(self, batch, tally=None):
        if batch.target.canonical_type == "companies":
            time.sleep(0.3)
        return write(self, batch, tally)

    monkeypatch.setattr(BatchWriter, "write", slow_companies)
    sim.configure(latency_ms=5, latency_jitter_ms=4, seed=4)
    messages = [schema("accounts", {"company_external_id": {"type": "string"}})]
    messages += [record("accounts", {"company_external_id": f"c-{i}"}) for i in range(30)]
    messages.append(schema("contacts", {"email": {"type": "string"}, "company_ref": {"type": "string"}}))
    messages += [record("contacts", {"email": f"u{i}@example.com", "company_ref": f"c-{i % 30}"}) for i in range(90)]
    messages.append(state({"done": True}))
    cfg = {**config, "object_mappings": {k: MAPPINGS[k] for k in ("accounts", "contacts")},
           "batch_size_rows": 7, "max_concurrent_requests": 8}
    run = run_in_process(cfg, messages)
    assert run.error is None, run.error
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.created, stats.rejected, stats.associations) == (90, 0, 90)
    assert len(sim.associations("contacts", "companies")) == 90
    associated_at = max(e.finished for e in sim.requests if e.endpoint == "associations_default")
    assert run.states == [{"done": True}] and run.state_times[-1] >= associated_at


def test_record_ids_and_numbers_name_other_objects(sim, config):
    run_in_process({**config, "object_mappings": {"accounts": MAPPINGS["accounts"]}},
                   [schema("accounts", {"company_external_id": {"type": "string"}}),
                    record("accounts", {"company_external_id": "17"})])
    company_id = sim.objects("companies")[0]["id"]
    cfg = {**config, "object_mappings": {"contacts": {"associations": [
        {"field": "company_id", "to_object_type": "0-2", "to_id_property": "hs_object_id"},
        {"field": "company_number", "to_object_type": "companies", "to_id_property": "company_external_id",
         "label": 1},
    ]}}}
    props = {"email": {"type": "string"}, "company_id": {"type": "string"}, "company_number": {"type": "integer"}}
    run = run_in_process(cfg, [schema("contacts", props),
                               record("contacts", {"email": "a@b.co", "company_id": company_id, "company_number": 17})])
    assert run.error is None, run.error
    (link,) = sim.associations("contacts", "companies")
    assert {t["typeId"] for t in link["types"]} == {279, 1}  # default, and "Primary" by type id


def test_an_unknown_label_stops_before_anything_is_sent(sim, config):
    cfg = {**config, "object_mappings": {"contacts": {"associations": [
        {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id",
         "label": "Best friend"},
    ]}}}
    props = {"email": {"type": "string"}, "company_ref": {"type": "string"}}
    run = run_in_process(cfg, [schema("contacts", props), record("contacts", contact(1, company_ref="c-1"))])
    assert isinstance(run.error, HubSpotConfigError)
    assert "object_mappings.contacts.associations[0].label" in str(run.error) and "'Primary'" in str(run.error)
    assert not any(e.endpoint == "batch_upsert" for e in sim.requests)


@pytest.mark.parametrize(
    ("association", "expected"),
    [
        ({"to_object_type": "companies", "to_id_property": "nope"}, "associations[0].to_id_property: 'nope' is not a property"),
        ({"to_object_type": "p_gadgets", "to_id_property": "x"}, "associations[0].to_object_type: HubSpot has no object type 'p_gadgets'"),
    ],
)
def test_association_targets_are_checked_against_hubspot(sim, config, association, expected):
    cfg = {**config, "object_mappings": {"contacts": {"associations": [{"field": "ref", **association}]}}}
    run = run_in_process(cfg, [schema("contacts", {"email": {"type": "string"}, "ref": {"type": "string"}})])
    assert isinstance(run.error, HubSpotConfigError)
    assert expected in str(run.error)


def test_dated_api_version_uses_dated_association_paths(sim, config):
    cfg = {**config, "api_version": "2026-09", "object_mappings": {k: MAPPINGS[k] for k in ("accounts", "contacts")}}
    run = run_in_process(cfg, [
        schema("accounts", {"company_external_id": {"type": "string"}}), record("accounts", {"company_external_id": "c-1"}),
        schema("contacts", {"email": {"type": "string"}, "company_ref": {"type": "string"}}),
        record("contacts", contact(1, company_ref="c-1")),
    ])
    assert run.error is None, run.error
    paths = {e.path for e in sim.requests if "associat" in e.endpoint or e.endpoint == "batch_read"}
    assert paths == {"/crm/objects/2026-09/companies/batch/read",
                     "/crm/associations/2026-09/contacts/companies/batch/associate/default"}
    assert len(sim.associations("contacts", "companies")) == 1


def test_id_cache_is_bounded_and_forgets_archived_types():
    cache = IdCache(capacity=3)
    for n in range(5):
        cache.put(("companies", "company_external_id", f"c-{n}"), str(n))
    assert len(cache) == 3
    assert cache.get(("companies", "company_external_id", "c-0")) is None
    assert cache.get(("companies", "company_external_id", "c-2")) == "2"  # now the most recently used
    cache.put(("contacts", "email", "a@b.co"), "9")
    assert cache.get(("companies", "company_external_id", "c-2")) == "2"
    assert cache.get(("companies", "company_external_id", "c-3")) is None
    cache.forget_type("companies")
    assert len(cache) == 1 and cache.get(("contacts", "email", "a@b.co")) == "9"


def test_association_batches_take_no_slot_of_the_rolling_window():
    """HubSpot exempts the v4 association batch endpoints from the ten-secondly limit; so does the limiter."""
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.acquire()
    with limiter.exempt():
        for _ in range(5):
            limiter.acquire()
    assert clock.slept == []
    limiter.acquire()  # a third counted request in the window waits for it to pass
    assert sum(clock.slept) >= 10


def test_objects_hubspot_did_not_tie_to_their_inputs_are_looked_up_before_associating(sim, config, monkeypatch):
    """When the write's answer does not say which object is whose, the objects are read by their id property."""
    from target_hubspot_upsert.hubspot import writer  # noqa: PLC0415

    land = writer._land

    def unknown_ids(write_mode, ties):  # results without a record id
        land(write_mode, [(item, {k: v for k, v in result.items() if k != "id"}) for item, result in ties])

    monkeypatch.setattr(writer, "_land", unknown_ids)
    run_in_process({**config, "object_mappings": {"accounts": MAPPINGS["accounts"]}},
                   [schema("accounts", {"company_external_id": {"type": "string"}}),
                    record("accounts", {"company_external_id": "c-1"})])
    cfg = {**config, "object_mappings": {"contacts": MAPPINGS["contacts"]}}
    props = {"email": {"type": "string"}, "company_ref": {"type": "string"}}
    run = run_in_process(cfg, [schema("contacts", props)] + [record("contacts", contact(i, company_ref="c-1"))
                                                              for i in range(3)])
    assert run.error is None, run.error
    assert len(sim.associations("contacts", "companies")) == 3
    own = [e for e in sim.requests if e.endpoint == "batch_read" and e.object_type == "contacts"]
    assert len(own) == 1 and own[0].request_body["idProperty"] == "email"


def test_delete_then_recreate_of_a_target_gives_the_same_associations_every_time(sim, config):
    """C1, a->C1, delete C1, C1 again, b->C1: the look-ups wait for every earlier write and archive of C1."""
    sim.configure(latency_ms=15, latency_jitter_ms=15)
    cfg = {**config, "hard_delete": True, "max_concurrent_requests": 8, "max_rejected_records": 5,
           "object_mappings": {"accounts": MAPPINGS["accounts"], "contacts": MAPPINGS["contacts"]}}
    company = {"company_external_id": {"type": "string"}, "_sdc_deleted_at": {"type": ["string", "null"]}}
    props = {"email": {"type": "string"}, "company_ref": {"type": "string"}}
    messages = [
        schema("accounts", company, key=["company_external_id"]),
        schema("contacts", props, key=["email"]),
        record("accounts", {"company_external_id": "c-1"}),
        record("contacts", {"email": "a@example.com", "company_ref": "c-1"}),
        record("accounts", {"company_external_id": "c-1", "_sdc_deleted_at": "2026-12-01T00:00:00Z"}),
        record("accounts", {"company_external_id": "c-1"}),
        record("contacts", {"email": "b@example.com", "company_ref": "c-1"}),
        state({"n": 5}),
    ]
    outcomes = set()
    for _ in range(20):
        sim.reset()
        run = run_in_process(cfg, messages, real_time=True)
        assert run.error is None, run.error
        live = {o["id"] for o in sim.objects("companies")}
        targets = {link["toId"] in live for link in sim.associations("contacts", "companies")}
        stats = run.target.runtime.report.stats["contacts"]
        outcomes.add((len(sim.associations("contacts", "companies")), frozenset(targets), stats.rejected,
                      tuple(s["n"] for s in run.states)))
    assert outcomes == {(2, frozenset({True}), 0, (5,))}
