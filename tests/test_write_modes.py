"""Update-only and create-only streams, through the command line, against the simulator."""

from __future__ import annotations

import json

import pytest

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.core.mapping import mapping_problems, resolve_stream

from .helpers import FIXTURES, contact, record, run_cli, run_in_process, schema, state, summary

NOTE_PROPERTIES = [{"name": "hs_note_body", "type": "string"}, {"name": "hs_timestamp", "type": "datetime"}]


def seed_contacts(config: dict, *people: tuple[str, str]) -> None:
    """Upsert (email, firstname) contacts before the run under test."""
    run = run_in_process(config, [schema("contacts")] + [record("contacts", {"email": e, "firstname": f}) for e, f in people])
    assert run.error is None, run.error


def test_update_writes_only_objects_that_exist(sim, config, tmp_path):
    seed_contacts(config, ("ada@example.com", "Ada"), ("grace@example.com", "Grace"))
    report_path, rejected_path = tmp_path / "run.json", tmp_path / "rejected.jsonl"
    run = run_cli(
        {**config, "object_mappings": {"contacts": {"write_mode": "update"}}, "run_report_path": str(report_path),
         "rejected_records_path": str(rejected_path)},
        (FIXTURES / "contacts_update.singer").read_text(), tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert summary(run.stderr, "contacts").startswith(
        "Stream 'contacts' -> contacts: received 4, created 0, updated 2, merged 1, rejected 0, skipped (not found) 1;"
    )
    assert sim.find("contacts", "email", "nobody@example.com") is None  # never created
    assert len(sim.objects("contacts")) == 2
    ada = sim.find("contacts", "email", "ada@example.com")["properties"]
    assert ada["firstname"] == "Ada" and ada["lifecyclestage"] == "customer"
    assert sim.find("contacts", "email", "grace@example.com")["properties"]["lifecyclestage"] == "customer"
    assert [e.endpoint for e in sim.requests if e.method == "POST"] == ["batch_upsert", "batch_update"]
    stream = json.loads(report_path.read_text())["streams"]["contacts"]
    assert (stream["received"], stream["updated"], stream["merged"], stream["skipped_not_found"]) == (4, 2, 1, 1)
    assert stream["skipped"] == [
        {"record": 2, "input_line": 3, "id": "nobody@example.com", "outcome": "skipped (not found)"},
    ]
    assert not rejected_path.exists() or rejected_path.read_text() == ""  # a skip is not a rejection
    assert "nobody@example.com" not in run.stderr  # no record values in the logs
    assert run.states == [{"bookmarks": {"contacts": {"updated_at": "2024-03-03T00:00:00Z"}}}]


def test_create_writes_only_new_objects_and_notes_without_id(sim, config, tmp_path):
    sim.add_object_type("notes", "0-46", NOTE_PROPERTIES)
    seed_contacts(config, ("ada@example.com", "Ada"))
    report_path = tmp_path / "run.json"
    cfg = {
        **config, "run_report_path": str(report_path),
        "object_mappings": {"contacts": {"write_mode": "create"}, "notes": {"write_mode": "create"}},
    }
    run = run_cli(cfg, (FIXTURES / "contacts_create.singer").read_text(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert summary(run.stderr, "contacts").startswith(
        "Stream 'contacts' -> contacts: received 4, created 2, updated 0, merged 0, rejected 0, skipped (exists) 2;"
    )
    assert summary(run.stderr, "notes").startswith(
        "Stream 'notes' -> notes: received 2, created 2, updated 0, merged 0, rejected 0;"
    )
    assert sim.find("contacts", "email", "ada@example.com")["properties"]["firstname"] == "Ada"  # untouched
    # The first record for a unique value creates it; the later one is skipped (exists), not merged in.
    assert sim.find("contacts", "email", "margaret@example.com")["properties"]["firstname"] == "Maggie"
    assert sim.find("contacts", "email", "linus@example.com") is not None
    creates = [e for e in sim.requests if e.endpoint == "batch_create"]
    assert {e.object_type for e in creates} == {"contacts", "notes"}
    for entry in creates:  # every input carries its own trace id, so a conflict is tied to its record
        traces = [i["objectWriteTraceId"] for i in entry.request_body["inputs"]]
        assert all(traces) and len(set(traces)) == len(traces)
    assert len(sim.objects("notes")) == 2  # no unique property: each record is its own object
    stream = json.loads(report_path.read_text())["streams"]["contacts"]
    assert stream["skipped_exists"] == 2
    assert sorted(s["id"] for s in stream["skipped"]) == ["ada@example.com", "margaret@example.com"]

    # Re-sending a stream without id property creates its objects again (the README warns).
    again = run_cli(cfg, (FIXTURES / "contacts_create.singer").read_text(), tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(sim.objects("notes")) == 4
    assert "received 4, created 0, updated 0, merged 0, rejected 0, skipped (exists) 4" in summary(again.stderr, "contacts")


def test_create_conflict_answered_409_for_the_whole_request_is_isolated_and_skipped(sim, config, monkeypatch):
    """Without trace ids HubSpot fails the whole create with 409 naming one conflict: isolate it, skip it."""
    from target_hubspot_upsert.hubspot import writer  # noqa: PLC0415

    untraced = writer.wire

    def without_trace(batch, item):
        body = untraced(batch, item)
        body.pop("objectWriteTraceId", None)
        return body

    monkeypatch.setattr(writer, "wire", without_trace)
    seed_contacts(config, ("ada@example.com", "Ada"))
    messages = [schema("contacts"), record("contacts", contact(1)), record("contacts", {"email": "ada@example.com"}),
                record("contacts", contact(2)), state({"n": 3})]
    run = run_in_process({**config, "object_mappings": {"contacts": {"write_mode": "create"}}}, messages)
    assert run.error is None
    assert any(e.endpoint == "batch_create" and e.status == 409 for e in sim.requests)
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.created, stats.skipped_exists, stats.rejected) == (2, 1, 0)
    assert run.states == [{"n": 3}]


def test_update_when_no_id_exists_skips_every_record(sim, config):
    messages = [schema("contacts"), record("contacts", contact(1)), record("contacts", contact(2))]
    run = run_in_process({**config, "object_mappings": {"contacts": {"write_mode": "update"}}}, messages)
    assert run.error is None
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.updated, stats.skipped_not_found, stats.rejected) == (0, 2, 0)


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"write_mode": "merge"}, "object_mappings.s.write_mode: must be one of upsert, update or create; got 'merge'"),
        ({"write_mode": None}, "object_mappings.s.write_mode: must be one of upsert, update or create; got None"),
        ({"associations": {"field": "x"}}, "object_mappings.s.associations: must be a list of objects like"),
        ({"associations": ["companies"]}, "object_mappings.s.associations[0]: must be an object with field"),
        ({"associations": [{"field": "c", "to_object_type": "companies"}]},
         "object_mappings.s.associations[0]: missing to_id_property"),
        ({"associations": [{"field": "c", "to_object_type": "companies", "to_id_property": "x", "labels": "P"}]},
         "object_mappings.s.associations[0]: unknown key(s) labels; allowed keys are field, to_object_type, "
         "to_id_property and label"),
        ({"associations": [{"field": "", "to_object_type": "companies", "to_id_property": "x"}]},
         "object_mappings.s.associations[0].field: must be the name of the record field"),
        ({"associations": [{"field": "c", "to_object_type": "Companies!", "to_id_property": "x"}]},
         "object_mappings.s.associations[0].to_object_type: 'Companies!' is not a HubSpot object type"),
        ({"associations": [{"field": "c", "to_object_type": "companies", "to_id_property": 7}]},
         "object_mappings.s.associations[0].to_id_property: must be a HubSpot property name"),
        ({"associations": [{"field": "c", "to_object_type": "companies", "to_id_property": "x", "label": True}]},
         "object_mappings.s.associations[0].label: must be a label name (text) or an association type id"),
        ({"associations": [{"field": "c", "to_object_type": "companies", "to_id_property": "x", "label": 0}]},
         "object_mappings.s.associations[0].label: an association type id is a whole number of at least 1"),
        ({"object_type": "contacts", "color": "red"}, "allowed keys are object_type, id_property, match_property, on_multiple_matches, write_mode and associations"),
    ],
)
def test_mapping_problems_name_the_setting(entry, expected):
    problems = mapping_problems({"s": {"object_type": "companies", "id_property": "x", **entry}})
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_valid_write_modes_and_associations_have_no_problems():
    mappings = {
        "a": {"object_type": "contacts", "write_mode": "update"},
        "b": {"object_type": "notes", "write_mode": "create"},
        "c": {"object_type": "deals", "id_property": "deal_external_id", "associations": [
            {"field": "buyers", "to_object_type": "contacts", "to_id_property": "email", "label": "Decision maker"},
            {"field": "account", "to_object_type": "0-2", "to_id_property": "company_external_id", "label": 5},
        ]},
    }
    assert mapping_problems(mappings) == []
    notes = resolve_stream("b", mappings)
    assert (notes.object_type, notes.id_property, notes.write_mode) == ("notes", "", "create")
    deals = resolve_stream("c", mappings)
    assert [(a.field, a.to_key, a.label) for a in deals.associations] == [
        ("buyers", "contacts", "Decision maker"), ("account", "companies", 5),
    ]


def test_only_create_streams_may_lack_an_id_property():
    with pytest.raises(HubSpotConfigError, match="set its write_mode to create"):
        resolve_stream("notes", {})
    with pytest.raises(HubSpotConfigError, match=r"Set object_mappings\.notes\.id_property"):
        resolve_stream("notes", {"notes": {"write_mode": "update"}})


def test_config_errors_reach_the_command_line(sim, config, tmp_path):
    bad = {**config, "object_mappings": {"contacts": {"write_mode": "replace", "associations": [{"field": "c"}]}}}
    run = run_cli(bad, [schema("contacts")], tmp_path=tmp_path)
    assert run.returncode != 0
    assert "object_mappings.contacts.write_mode: must be one of upsert, update or create" in run.stderr
    assert "object_mappings.contacts.associations[0]: missing to_object_type, to_id_property" in run.stderr


@pytest.mark.parametrize("batch_size_rows", [100, 1])
def test_create_never_overwrites_whatever_the_batch_boundaries(sim, config, tmp_path, batch_size_rows):
    cfg = {**config, "batch_size_rows": batch_size_rows, "object_mappings": {"contacts": {"write_mode": "create"}}}
    messages = [schema("contacts", key=["email"])]
    messages += [record("contacts", {"email": "twice@example.com", "firstname": name}) for name in ("First", "Second")]
    messages += [record("contacts", contact(i)) for i in range(3)]
    messages += [record("contacts", {"email": "twice@example.com", "firstname": "Third"}), state({"s": 1})]
    run = run_cli(cfg, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sim.find("contacts", "email", "twice@example.com")["properties"]["firstname"] == "First"
    assert "received 6, created 4, updated 0, merged 0, rejected 0, skipped (exists) 2" in summary(run.stderr, "contacts")
    assert run.states == [{"s": 1}]
