"""A write counts only when HubSpot's answer ties it to its input: answers that confirm less than was sent.

Each scenario runs the command line against a simulator whose answers are rewritten (duplicate,
extra and anonymous results, CANCELED and PENDING statuses, half-confirmed associations) and
checks what HubSpot holds, the counts, the last STATE and the change cache.
"""

from __future__ import annotations

import json

import pytest

from .helpers import contact, record, run_cli, schema, state, summary

MESSAGES = [
    schema("contacts", key=["email"]),
    *(record("contacts", contact(i)) for i in range(1, 5)),
    state({"n": 4}),
]


def held(sim) -> dict[str, str]:
    """email -> firstname of the contacts HubSpot holds."""
    return {o["properties"]["email"]: o["properties"].get("firstname") for o in sim.objects("contacts")}


def rejected_codes(path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["error"]["code"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["duplicate_result", "extra_result", "anonymous_results", "half", "canceled", "pending"])
def test_an_answer_that_confirms_less_never_lands_an_input_it_does_not_tie(sim, config, tmp_path, mode):
    sim.script_rewrites("batch_upsert", [mode])
    run = run_cli(config, MESSAGES, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    # Every contact is in HubSpot with the values sent: what the first answer did not tie was read
    # back or sent again, never counted by position.
    assert held(sim) == {f"user{i}@example.com": f"User {i}" for i in range(1, 5)}
    line = summary(run.stderr, "contacts")
    assert "received 4, created 4, updated 0, merged 0, rejected 0" in line, line
    assert run.states == [{"n": 4}]


@pytest.mark.parametrize("mode", ["duplicate_result", "extra_result", "canceled"])
def test_an_input_no_answer_ever_confirms_is_rejected_not_acknowledged(sim, config, tmp_path, mode):
    # The first request and both of its resends are answered without confirming the last input.
    sim.script_rewrites("batch_upsert", [mode, "canceled", "canceled"])
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "max_rejected_records": 4, "rejected_records_path": str(rejected)}
    run = run_cli(cfg, MESSAGES, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    expected_held = 0 if mode == "canceled" else 3
    assert len(held(sim)) == expected_held
    line = summary(run.stderr, "contacts")
    assert f"created {expected_held}," in line, line
    assert f"rejected {4 - expected_held}" in line, line
    assert rejected_codes(rejected) == ["NOT_ACKNOWLEDGED"] * (4 - expected_held)
    assert run.states == [{"n": 4}]  # every record resolved: landed or rejected with a reason


def test_unconfirmed_inputs_hold_state_back_when_the_run_fails(sim, config, tmp_path):
    sim.script_rewrites("batch_upsert", ["canceled", "canceled", "canceled"])
    run = run_cli(config, MESSAGES, tmp_path=tmp_path)  # max_rejected_records: 0
    assert run.returncode != 0
    assert run.states == []
    assert held(sim) == {}
    assert "NOT_ACKNOWLEDGED" in run.stderr


def test_a_duplicate_result_never_lands_an_input_in_the_change_cache(sim, config, tmp_path):
    cfg = {**config, "skip_unchanged": True, "change_cache_path": str(tmp_path / "cache.sqlite"),
           "max_rejected_records": 4}
    sim.script_rewrites("batch_upsert", ["duplicate_result", "canceled", "canceled"])
    first = run_cli(cfg, MESSAGES, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert len(held(sim)) == 3
    # The next run sends the one HubSpot never confirmed: it was not cached as written.
    second = run_cli(cfg, MESSAGES, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr
    assert held(sim) == {f"user{i}@example.com": f"User {i}" for i in range(1, 5)}
    line = summary(second.stderr, "contacts")
    assert "created 1" in line, line
    assert "unchanged 3" in line, line


def test_a_create_without_a_unique_property_is_never_sent_twice(sim, config, tmp_path):
    sim.add_object_type("notes_x", "2-901", [{"name": "body", "type": "string"}])
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "max_rejected_records": 4, "rejected_records_path": str(rejected),
           "object_mappings": {"notes": {"object_type": "notes_x", "write_mode": "create", "id_property": None}}}
    messages = [
        schema("notes", {"body": {"type": "string"}}),
        *(record("notes", {"body": f"note {i}"}) for i in range(4)),
        state({"n": 4}),
    ]
    sim.script_rewrites("batch_create", ["duplicate_result"])
    run = run_cli(cfg, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    # Three were created and tied; the fourth was not written, and a second create could have
    # made a duplicate had it been: it is rejected, not sent again.
    assert sorted(o["properties"]["body"] for o in sim.objects("notes_x")) == ["note 0", "note 1", "note 2"]
    assert rejected_codes(rejected) == ["NOT_ACKNOWLEDGED"]
    assert len([e for e in sim.requests if e.endpoint == "batch_create"]) == 1


ASSOCIATED = {
    "accounts": {"object_type": "companies", "id_property": "company_external_id"},
    "contacts": {"associations": [
        {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"},
    ]},
}
COMPANY_SCHEMA = {"company_external_id": {"type": "string"}, "name": {"type": "string"}}
CONTACT_SCHEMA = {"email": {"type": "string"}, "company_ref": {"type": ["string", "null"]}}


def associated_messages() -> list[dict]:
    return [
        schema("accounts", COMPANY_SCHEMA, key=["company_external_id"]),
        record("accounts", {"company_external_id": "c-1", "name": "One"}),
        record("accounts", {"company_external_id": "c-2", "name": "Two"}),
        schema("contacts", CONTACT_SCHEMA, key=["email"]),
        *(record("contacts", {"email": f"user{i}@example.com", "company_ref": f"c-{1 + i % 2}"}) for i in range(4)),
        state({"n": 6}),
    ]


def linked(sim) -> set[tuple[str, str]]:
    emails = {o["id"]: o["properties"]["email"] for o in sim.objects("contacts")}
    refs = {o["id"]: o["properties"]["company_external_id"] for o in sim.objects("companies")}
    return {(emails[link["fromId"]], refs[link["toId"]]) for link in sim.associations("contacts", "companies")}


ALL_LINKS = {(f"user{i}@example.com", f"c-{1 + i % 2}") for i in range(4)}


@pytest.mark.parametrize("mode", ["half", "canceled", "duplicate_result", "pending"])
def test_associations_count_only_the_pairs_an_answer_confirms(sim, config, tmp_path, mode):
    sim.script_rewrites("associations_default", [mode])
    cfg = {**config, "object_mappings": ASSOCIATED}
    run = run_cli(cfg, associated_messages(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    # The pairs the first answer left unconfirmed were sent again and confirmed then.
    assert linked(sim) == ALL_LINKS
    assert "associations 4;" in summary(run.stderr, "contacts")
    assert run.states == [{"n": 6}]


def test_associations_never_confirmed_are_rejected_and_not_cached(sim, config, tmp_path):
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "object_mappings": ASSOCIATED, "max_rejected_records": 4,
           "rejected_records_path": str(rejected), "skip_unchanged": True,
           "change_cache_path": str(tmp_path / "cache.sqlite")}
    sim.script_rewrites("associations_default", ["half", "canceled", "canceled"])
    first = run_cli(cfg, associated_messages(), tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert len(linked(sim)) == 2
    line = summary(first.stderr, "contacts")
    assert "associations 2;" in line, line
    assert rejected_codes(rejected) == ["ASSOCIATION_NOT_CONFIRMED"] * 2
    assert first.states == [{"n": 6}]
    # The two contacts whose association was never confirmed are sent again next run.
    second = run_cli(cfg, associated_messages(), tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr
    assert linked(sim) == ALL_LINKS
    line = summary(second.stderr, "contacts")
    assert "unchanged 2" in line, line
    assert "associations 2;" in line, line
