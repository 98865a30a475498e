"""The README's scopes table: each feature runs with exactly the scopes listed, and fails with any one left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hubspot_simulator import HubSpotSimulator

from .helpers import record, run_in_process, schema, state

README = Path(__file__).resolve().parent.parent / "README.md"
SCOPED = "scoped-token"
FULL = "full-token"
MARKER = "<!-- scopes-table:"


def scopes_table() -> dict[str, list[str]]:
    """Feature -> scopes, from the README table after the scopes-table marker."""
    text = README.read_text()
    rows = text[text.index(MARKER):].split("\n\n", 1)[0].splitlines()[3:]
    table = {}
    for row in rows:
        feature, scopes = (cell.strip() for cell in row.strip("|").split("|"))
        table[feature] = re.findall(r"`(crm\.[^`]+)`", scopes)
    return table


def concrete(scopes: list[str]) -> list[str]:
    return [s.replace("<other object>", "companies").replace("<object>", "contacts") for s in scopes]


CONTACT_PROPS = {"email": {"type": "string"}, "firstname": {"type": ["string", "null"]}}


def contacts(*rows: dict, props: dict | None = None) -> list[dict]:
    return [schema("contacts", {**CONTACT_PROPS, **(props or {})}, ["email"]),
            *(record("contacts", r) for r in rows), state({"n": len(rows)})]


def upsert_feature(sim, config):
    return config, contacts({"email": "a@x.com", "firstname": "A"}), lambda: bool(sim.find("contacts", "email", "a@x.com"))


def update_feature(sim, config):
    cfg = {**config, "object_mappings": {"contacts": {"write_mode": "update"}}}
    changed = lambda: sim.find("contacts", "email", "seeded@x.com")["properties"]["firstname"] == "New"  # noqa: E731
    return cfg, contacts({"email": "seeded@x.com", "firstname": "New"}), changed


def create_feature(sim, config):
    cfg = {**config, "object_mappings": {"contacts": {"write_mode": "create"}}}
    return cfg, contacts({"email": "new@x.com"}), lambda: bool(sim.find("contacts", "email", "new@x.com"))


def delete_feature(sim, config):
    deleted = {"_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
    msgs = contacts({"email": "seeded@x.com", "_sdc_deleted_at": "2024-03-01T10:00:00Z"}, props=deleted)
    return {**config, "hard_delete": True}, msgs, lambda: sim.find("contacts", "email", "seeded@x.com") is None


def associations_feature(sim, config):
    sim.add_association_label("contacts", "companies", "Billing contact")
    mappings = {"contacts": {"associations": [
        {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id",
         "label": "Billing contact"}]}}
    msgs = contacts({"email": "a@x.com", "company_ref": "c-1"}, props={"company_ref": {"type": "string"}})
    return {**config, "object_mappings": mappings}, msgs, lambda: len(sim.associations("contacts", "companies")) == 1


def unknown_properties_feature(sim, config):
    cfg = {**config, "unknown_properties": "create"}
    msgs = contacts({"email": "a@x.com", "shoe_size": "44"}, props={"shoe_size": {"type": "string"}})
    return cfg, msgs, lambda: (sim.find("contacts", "email", "a@x.com") or {}).get("properties", {}).get("shoe_size") == "44"


def skip_unchanged_feature(sim, config, tmp_path):
    cfg = {**config, "skip_unchanged": True, "change_cache_path": str(tmp_path / "changes.sqlite")}
    looked_up = lambda: any(e.endpoint == "account_info" and e.status == 200 for e in sim.requests)  # noqa: E731
    return cfg, contacts({"email": "a@x.com", "firstname": "A"}), looked_up


def match_property_feature(sim, config):
    cfg = {**config, "object_mappings": {"contacts": {"match_property": "email"}}}
    found = lambda: (  # noqa: E731 - found by search, updated by record id
        sim.find("contacts", "email", "seeded@x.com")["properties"]["firstname"] == "Matched"
        and not any(e.endpoint == "batch_upsert" for e in sim.requests[-3:])
    )
    return cfg, contacts({"email": "seeded@x.com", "firstname": "Matched"}), found


def check_feature(sim, config):
    read = lambda: any(e.endpoint == "batch_read" and e.status in (200, 207) for e in sim.requests)  # noqa: E731
    return {**config, "dry_run": True}, contacts({"email": "a@x.com"}), read


FEATURES = {
    "upsert (the default write mode)": upsert_feature,
    "`write_mode: update`": update_feature,
    "`write_mode: create`": create_feature,
    "deletes (`hard_delete`)": delete_feature,
    "associations with a `label` (without labels, `crm.objects.<object>.read` is not needed)": associations_feature,
    "`unknown_properties: create`": unknown_properties_feature,
    "`skip_unchanged` (its account look-up needs no scope of its own)": skip_unchanged_feature,
    "`match_property` (objects found through search)": match_property_feature,
    "`--check` (`dry_run`)": check_feature,
}


def test_the_table_lists_every_feature():
    assert list(scopes_table()) == list(FEATURES)


def run_feature(feature: str, scopes: list[str], tmp_path) -> tuple[bool, str]:
    """Run the feature with a token holding `scopes`: (did it do its job without error, what went wrong)."""
    with HubSpotSimulator(tokens={SCOPED, FULL}, token_scopes={SCOPED: scopes}) as sim:
        seed = [schema("contacts", CONTACT_PROPS, ["email"]), record("contacts", {"email": "seeded@x.com", "firstname": "Old"})]
        seeded = run_in_process({"access_token": FULL, "api_base_url": sim.base_url}, seed)
        assert seeded.error is None
        company = [schema("accounts", {"company_external_id": {"type": "string"}}, ["company_external_id"]),
                   record("accounts", {"company_external_id": "c-1"})]
        mapped = {"accounts": {"object_type": "companies", "id_property": "company_external_id"}}
        made = run_in_process({"access_token": FULL, "api_base_url": sim.base_url, "object_mappings": mapped}, company)
        assert made.error is None
        before = len(sim.requests)
        config = {"access_token": SCOPED, "api_base_url": sim.base_url}
        build = FEATURES[feature]
        args = (sim, config, tmp_path) if build is skip_unchanged_feature else (sim, config)
        cfg, messages, done = build(*args)
        run = run_in_process(cfg, messages)
        denied = [e for e in sim.requests[before:] if e.status == 403]
        ok = run.error is None and done() and not denied
        return ok, f"error={run.error!r} denied={[e.path for e in denied]}"


@pytest.mark.parametrize("feature", list(FEATURES))
def test_each_feature_runs_with_exactly_the_scopes_listed(feature, tmp_path):
    scopes = concrete(scopes_table()[feature])
    ok, why = run_feature(feature, scopes, tmp_path / "all")
    assert ok, f"{feature} with {scopes}: {why}"
    for i, left_out in enumerate(scopes):
        fewer = scopes[:i] + scopes[i + 1:]
        ok, why = run_feature(feature, fewer, tmp_path / f"without-{i}")
        assert not ok, f"{feature} still works without {left_out}: the README lists a scope it does not need"
