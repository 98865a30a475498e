"""`--check` / `dry_run`: every check a run makes, nothing written to HubSpot."""

from __future__ import annotations

import json

import pytest

from .conftest import TOKEN
from .helpers import contact, record, run_cli, schema, state


def writes(sim) -> list:
    """Requests that could have changed HubSpot (anything but GETs and batch reads)."""
    return [e for e in sim.requests if e.method != "GET" and not e.path.endswith("/batch/read")]


def test_a_good_config_and_input_report_what_would_be_sent(sim, config, tmp_path):
    report = tmp_path / "report.json"
    messages = [schema("contacts"), *[record("contacts", contact(i)) for i in range(5)],
                record("contacts", contact(3, firstname="again")),
                *[record("contacts", contact(i)) for i in range(5, 150)], state({"n": 151})]
    run = run_cli({**config, "run_report_path": str(report)}, messages, tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    assert writes(sim) == [] and sim.objects("contacts") == []
    assert run.stdout == ""  # a dry run writes no STATE
    assert ("Dry run, stream 'contacts' -> contacts: received 151; would create or update 151 record(s) "
            "as 150 object(s) in 2 request(s); rejected 0") in run.stderr
    assert "nothing was written to HubSpot" in run.stderr
    data = json.loads(report.read_text())
    assert data["dry_run"] is True and data["status"] == "succeeded"
    assert data["streams"]["contacts"]["would_write"] == 150


def test_the_dry_run_setting_does_the_same_without_the_flag(sim, config, tmp_path):
    run = run_cli({**config, "dry_run": True}, [schema("contacts"), record("contacts", contact(1))], tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert writes(sim) == [] and "would create or update 1 record(s)" in run.stderr


def test_input_with_an_unknown_field_and_a_bad_value_lists_what_would_be_rejected(sim, config, tmp_path):
    props = {"email": {"type": "string"}, "num_orders": {"type": ["string", "null"]}}
    messages = [
        schema("contacts", props),
        record("contacts", {"email": "a@b.co", "num_orders": "3"}),
        record("contacts", {"email": "b@b.co", "num_orders": "lots"}),
        record("contacts", {"email": "c@b.co", "shoe_size": 43}),
    ]
    run = run_cli(config, messages, tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 1
    assert writes(sim) == [] and sim.objects("contacts") == []
    assert "received 3; would create or update 1 record(s)" in run.stderr and "rejected 2" in run.stderr
    assert "INVALID_VALUE: 1 record(s), e.g. record #2 (input line 3) - property 'num_orders'" in run.stderr
    assert "UNKNOWN_PROPERTY: 1 record(s), e.g. record #3 (input line 4) - field 'shoe_size'" in run.stderr
    assert "Dry run: 2 record(s) would be rejected, more than max_rejected_records (0)" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("setup", "settings", "expected"),
    [
        ("wrong token", {"access_token": "not-a-real-token"}, "HubSpot rejected the credentials (401"),
        ("missing scope", {"object_mappings": {"contacts": {"id_property": "email"}}},
         "lacks the scope(s) crm.schemas.contacts.read"),
        ("unknown object type", {"object_mappings": {"widgets": {"object_type": "p_nothing", "id_property": "sku"}}},
         "Could not read the properties of HubSpot object 'p_nothing'"),
        ("id property not unique", {"object_mappings": {"contacts": {"id_property": "firstname"}}},
         "HubSpot property 'firstname' of 'contacts' does not have unique values"),
        ("id property missing", {"object_mappings": {"contacts": {"id_property": "shoe_size"}}},
         "HubSpot object 'contacts' has no property 'shoe_size'"),
    ],
)
def test_a_broken_configuration_is_caught_without_input(sim, config, tmp_path, setup, settings, expected):
    if setup == "missing scope":
        sim.configure(token_scopes={TOKEN: []})
    run = run_cli({**config, **settings}, "", tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 1, run.stderr
    assert expected in run.stderr
    assert "Traceback" not in run.stderr and writes(sim) == []


def test_a_good_configuration_without_input_checks_every_mapped_object(sim, config, tmp_path):
    mappings = {"people": {"object_type": "contacts", "id_property": "email"},
                "firms": {"object_type": "companies", "id_property": "company_external_id"}}
    run = run_cli({**config, "object_mappings": mappings}, "", tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    reads = {e.path for e in sim.requests if e.path.endswith("/batch/read")}
    assert reads == {"/crm/v3/objects/contacts/batch/read", "/crm/v3/objects/companies/batch/read"}
    assert "2 object mapping(s) checked" in run.stderr and writes(sim) == []


def test_a_dry_run_counts_archives_and_checks_association_labels(sim, config, tmp_path):
    props = {"email": {"type": "string"}, "company_ref": {"type": ["string", "null"]},
             "_sdc_deleted_at": {"type": ["string", "null"]}}
    messages = [schema("contacts", props), record("contacts", contact(1, company_ref="c-1")),
                record("contacts", {"email": "gone@example.com", "_sdc_deleted_at": "2024-03-01T00:00:00Z"})]
    association = {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"}
    cfg = {**config, "hard_delete": True, "object_mappings": {"contacts": {"associations": [association]}}}
    run = run_cli(cfg, messages, tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    assert writes(sim) == []
    assert ("received 2; would create or update 1 record(s) as 1 object(s) and archive 1 object(s) in 2 "
            "request(s); rejected 0") in run.stderr

    labelled = {"contacts": {"associations": [{**association, "label": "Best friend"}]}}
    run = run_cli({**cfg, "object_mappings": labelled}, [], tmp_path=tmp_path, args=["--check"])
    assert run.returncode != 0 and writes(sim) == []
    assert "object_mappings.contacts.associations[0].label: HubSpot has no association label" in run.stderr


def test_a_dry_run_of_every_feature_never_writes_to_hubspot_or_the_change_cache(sim, config, tmp_path):
    from hubspot_simulator.pipeline import is_write  # noqa: PLC0415

    sim.add_association_label("contacts", "companies", "Decision maker", "Decided by")
    cache = tmp_path / "cache.sqlite"
    companies = {"company_external_id": {"type": "string"}, "name": {"type": "string"},
                 "loyalty_tier": {"type": "string", "enum": ["gold", "silver"]}}
    contacts = {"email": {"type": "string"}, "firstname": {"type": "string"}, "company_ref": {"type": "string"},
                "_sdc_deleted_at": {"type": ["string", "null"]}}
    # A real run first, so the dry run has objects to update, archive and associate with.
    real = {**config, "object_mappings": {"accounts": {"object_type": "companies",
                                                        "id_property": "company_external_id"}},
            "unknown_properties": "ignore"}
    seed = [schema("accounts", companies, key=["company_external_id"]),
            record("accounts", {"company_external_id": "c-1", "name": "One"})]
    assert run_cli(real, seed, tmp_path=tmp_path).returncode == 0
    sim.configure(read_only=True)
    before = len(sim.requests)
    cfg = {
        **config, "hard_delete": True, "unknown_properties": "create", "skip_unchanged": True,
        "change_cache_path": str(cache), "max_rejected_records": 10,
        "object_mappings": {
            "accounts": {"object_type": "companies", "id_property": "company_external_id"},
            "contacts": {"associations": [{"field": "company_ref", "to_object_type": "companies",
                                           "to_id_property": "company_external_id", "label": "Decision maker"}]},
            "leads": {"object_type": "contacts", "write_mode": "update"},
            "prospects": {"object_type": "contacts", "write_mode": "create"},
        },
    }
    messages = [
        schema("accounts", companies, key=["company_external_id"]),
        record("accounts", {"company_external_id": "c-1", "name": "One", "loyalty_tier": "gold"}),
        record("accounts", {"company_external_id": "c-2", "name": "Two", "brand_new_field": 3}),
        schema("contacts", contacts, key=["email"]),
        record("contacts", {"email": "a@example.com", "firstname": "A", "company_ref": "c-1"}),
        record("contacts", {"email": "b@example.com", "_sdc_deleted_at": "2026-01-01T00:00:00Z"}),
        schema("leads", {"email": {"type": "string"}, "firstname": {"type": "string"}}, key=["email"]),
        record("leads", {"email": "a@example.com", "firstname": "Lead"}),
        schema("prospects", {"email": {"type": "string"}}, key=["email"]),
        record("prospects", {"email": "p@example.com"}),
        state({"n": 6}),
    ]
    for args in (["--check"], ["--check", "--full-resync"]):
        run = run_cli(cfg, messages, tmp_path=tmp_path, args=args)
        assert run.returncode == 0, run.stderr
        assert run.stdout == ""
        assert "would create property loyalty_tier" in run.stderr.replace("'", "")
        assert "would create property brand_new_field" in run.stderr.replace("'", "")
    attempted = [(e.method, e.path) for e in sim.requests[before:] if is_write(e.endpoint, e.method)]
    assert attempted == []
    assert sim.stats["writes_refused"] == 0
    assert not cache.exists() and list(tmp_path.glob("cache.sqlite*")) == []
    assert {o["properties"]["company_external_id"] for o in sim.objects("companies")} == {"c-1"}


def test_a_dry_run_reads_an_existing_change_cache_without_changing_it(sim, config, tmp_path):
    import hashlib  # noqa: PLC0415

    cache = tmp_path / "cache.sqlite"
    cfg = {**config, "skip_unchanged": True, "change_cache_path": str(cache)}
    messages = [schema("contacts"), *[record("contacts", contact(i)) for i in range(5)], state({"n": 5})]
    assert run_cli(cfg, messages, tmp_path=tmp_path).returncode == 0
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("cache.sqlite*")}
    changed = [*messages[:-1], record("contacts", contact(7)), state({"n": 6})]
    sim.configure(read_only=True)
    run = run_cli(cfg, changed, tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    assert "unchanged 5" in run.stderr
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("cache.sqlite*")} == files
