"""One bad record never blocks the good ones; every record ends created, updated, merged or rejected."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from target_hubspot_upsert.core.errors import InputError, TooManyRejectedRecords

from .helpers import contact, lines, record, run_cli, run_in_process, schema, state

MODES = ["batch", "multi_status"]


def mixed_records(n: int = 1000):
    """n contacts of which 2% are bad, of four kinds (two caught locally, two only by HubSpot)."""
    messages = [schema("contacts", {
        "email": {"type": ["string", "null"]}, "firstname": {"type": ["string", "null"]},
        "num_orders": {"type": ["string", "null"]},
    })]
    bad: dict[str, str] = {}
    for i in range(n):
        rec = {"email": f"user{i}@example.com", "firstname": f"User {i}", "num_orders": str(i)}
        kind = (i // 50) % 4 if i % 50 == 7 else None  # 1 in 50 bad, kinds rotating
        if kind == 0:
            rec["email"] = None                              # missing id (local)
            bad[f"#{i}"] = "INVALID_ID"
        elif kind == 1:
            rec["email"] = f"not-an-email-{i}"               # invalid email id (local)
            bad[f"#{i}"] = "INVALID_ID"
        elif kind == 2:
            rec["num_orders"] = f"{i} orders"                # serializer refuses (local)
            bad[rec["email"]] = "INVALID_VALUE"
        elif kind == 3:
            rec["firstname"] = f"BLOCKED-{i}"                # admin validation rule (HubSpot only)
            bad[rec["email"]] = "VALIDATION_RULE_VIOLATION"
        messages.append(record("contacts", rec))
        if i % 100 == 99:
            messages.append(state({"n": i + 1}))
    return messages, bad


def block_names(sim, n=1000):
    for i in range(7, n, 50):
        sim.add_validation_rule("contacts", "firstname", f"BLOCKED-{i}", "Names on the block list are not allowed")


@pytest.mark.parametrize("mode", MODES)
def test_two_percent_bad_records_under_the_limit(sim, config, tmp_path, mode):
    sim.configure(validation_error_mode=mode)
    block_names(sim)
    messages, bad = mixed_records()
    rejected_path = tmp_path / "rejected.jsonl"
    run = run_cli(
        {**config, "max_rejected_records": 100, "rejected_records_path": str(rejected_path)},
        messages, tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert len(sim.objects("contacts")) == 980
    rejected = [json.loads(line) for line in rejected_path.read_text().splitlines()]
    assert len(rejected) == 20
    codes = sorted(r["error"]["code"] for r in rejected)
    assert codes == sorted(bad.values())
    for r in rejected:
        assert r["stream"] == "contacts" and r["object_type"] == "contacts" and r["record"]
        assert r["error"]["message"] and r["rejected_at"]
    rule = [r for r in rejected if r["error"]["code"] == "VALIDATION_RULE_VIOLATION"]
    assert all("block list" in r["error"]["message"] for r in rule)
    assert "received 1000, created 980, updated 0, merged 0, rejected 20" in run.stderr
    assert "20 record(s) rejected" in run.stderr
    assert run.states[-1] == {"n": 1000}


def test_past_the_limit_the_run_stops_with_a_grouped_message(sim, config, tmp_path):
    block_names(sim)
    messages, _ = mixed_records()
    run = run_cli({**config, "rejected_records_path": str(tmp_path / "r.jsonl")}, messages, tmp_path=tmp_path)
    assert run.returncode != 0
    assert "more than max_rejected_records (0)" in run.stderr
    assert "INVALID_ID: 1 record(s), e.g. record #8 (input line 9) - the id property 'email' is missing" in run.stderr
    assert str(tmp_path / "r.jsonl") in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("mode", MODES)
def test_every_record_is_accounted_for(sim, config, mode):
    sim.configure(validation_error_mode=mode)
    block_names(sim, 300)
    messages, _ = mixed_records(300)
    # Duplicates in one batch are merged: the later record's properties win, property by property.
    messages += [
        record("contacts", {"email": "user0@example.com", "firstname": "Merged"}),
        record("contacts", {"email": "user0@example.com", "num_orders": "999"}),
    ]
    run = run_in_process({**config, "max_rejected_records": 100}, messages)
    assert run.error is None
    stats = run.target.runtime.report.stats["contacts"]
    assert stats.received == 302
    assert stats.created + stats.updated + stats.merged + stats.rejected == stats.received
    assert stats.rejected == 6 and stats.merged == 1  # 300 records, 1 in 50 bad
    merged = sim.find("contacts", "email", "user0@example.com")["properties"]
    assert merged["firstname"] == "Merged" and merged["num_orders"] == "999"


@pytest.mark.parametrize("mode", MODES)
def test_a_rejected_merged_input_rejects_every_record_merged_into_it(sim, config, mode, tmp_path):
    sim.configure(validation_error_mode=mode)
    sim.add_validation_rule("contacts", "firstname", "BANNED")
    path = tmp_path / "rejected.jsonl"
    messages = [
        schema("contacts"),
        record("contacts", {"email": "m@example.com", "num_orders": 5}),
        record("contacts", {"email": "m@example.com", "firstname": "BANNED"}),
        record("contacts", {"email": "k@example.com", "firstname": "ok"}),
        state({"n": 3}),
    ]
    run = run_in_process({**config, "max_rejected_records": 10, "rejected_records_path": str(path)}, messages)
    assert run.error is None
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.created, stats.merged, stats.rejected) == (1, 0, 2)
    rejected = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["record"] for r in rejected] == [
        {"email": "m@example.com", "num_orders": 5}, {"email": "m@example.com", "firstname": "BANNED"},
    ]
    assert "merged with record #2" in rejected[0]["error"]["message"]
    assert sim.find("contacts", "email", "m@example.com") is None
    assert run.states == [{"n": 3}]


def test_a_record_without_its_id_key_property_is_rejected_not_fatal(sim, config):
    messages = [
        schema("contacts", key=["email"]),
        record("contacts", contact(1)),
        record("contacts", {"firstname": "No email"}),
        record("contacts", contact(2)),
        state({"n": 3}),
    ]
    run = run_in_process({**config, "max_rejected_records": 1}, messages)
    assert run.error is None
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.created, stats.rejected) == (2, 1)
    assert "the id property 'email' is missing or empty" in run.target.runtime.report.stats["contacts"].first_errors[0]
    assert run.states == [{"n": 3}]


def test_a_record_without_another_key_property_stops_the_run_naming_it(sim, config):
    messages = [
        schema("contacts", key=["email", "num_orders"]),
        record("contacts", contact(1, num_orders=3)),
        record("contacts", contact(2)),
    ]
    run = run_in_process(config, messages)
    assert isinstance(run.error, InputError)
    assert str(run.error) == (
        "Input line 3: record #2 of stream 'contacts' has no 'num_orders', one of its key_properties "
        "['email', 'num_orders']; fix the tap or its SCHEMA's key_properties."
    )


@pytest.mark.parametrize("bad", [b'"caf\xe9"', b'"bad \\ud800"'], ids=["latin-1 byte", "lone surrogate"])
def test_text_that_is_not_valid_unicode_rejects_its_record_only(sim, config, tmp_path, bad):
    head = lines([schema("contacts"), record("contacts", contact(1))]).encode()
    bad_line = b'{"type":"RECORD","stream":"contacts","record":{"email":"x@example.com","firstname":' + bad + b"}}\n"
    tail = lines([record("contacts", contact(2)), state({"n": 3})]).encode()
    run = run_cli({**config, "max_rejected_records": 1}, head + bad_line + tail, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "not valid Unicode" in run.stderr
    assert run.states == [{"n": 3}]
    assert len(sim.objects("contacts")) == 2 and sim.find("contacts", "email", "x@example.com") is None


def test_config_file_mistakes_are_clear_errors(tmp_path):
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "broken.json").write_text('{"access_token": ')
    for path, expected in [
        (tmp_path / "missing.json", "does not exist"),
        (tmp_path / "list.json", "must hold a JSON object of settings, not a list"),
        (tmp_path / "broken.json", "is not valid JSON"),
        (tmp_path, "cannot be read"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "target_hubspot_upsert", "--config", str(path)],
                              input="", capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and proc.stdout == ""
        assert f"Config file {path} {expected}" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("detail", ["full", "none"])
def test_isolation_cost_is_bounded(sim, config, detail):
    """One bad record in 100 costs at most 2*log2(100) extra requests, even with no hint."""
    sim.configure(validation_error_mode="batch", error_detail=detail)
    # Like HubSpot's own messages ("abc was not a valid number."), this one names the value.
    sim.add_validation_rule("contacts", "firstname", "BLOCKED", "BLOCKED is on the block list")
    messages = [schema("contacts")] + [
        record("contacts", contact(i, firstname="BLOCKED" if i == 63 else "ok")) for i in range(100)
    ]
    run = run_in_process({**config, "max_rejected_records": 1}, messages)
    assert run.error is None
    assert len(sim.objects("contacts")) == 99
    extra = len(sim.upsert_requests()) - 1
    assert extra <= 2 * math.log2(100)
    if detail == "full":
        assert extra == 1  # the error named the value: pulled out, the rest resent once


def test_a_2xx_that_does_not_account_for_every_input_is_not_success(sim, config):
    sim.script_faults(["empty_200"])
    run = run_in_process({**config, "max_concurrent_requests": 1}, [schema("contacts")] + [
        record("contacts", contact(i)) for i in range(50)
    ] + [state({"done": True})])
    assert run.error is None
    assert len(sim.objects("contacts")) == 50  # the missing inputs were sent again
    assert len(sim.upsert_requests()) == 2
    assert run.states == [{"done": True}]


def test_partial_writes_are_resent_until_acknowledged(sim, config):
    sim.configure(partial_write_rate=0.5, seed=3)
    run = run_in_process({**config, "max_rejected_records": 1000}, [schema("contacts")] + [
        record("contacts", contact(i)) for i in range(400)
    ])
    assert run.error is None
    stats = run.target.runtime.report.stats["contacts"]
    landed = len(sim.objects("contacts"))
    assert stats.created + stats.updated == landed
    assert stats.created + stats.updated + stats.rejected == 400
    if stats.rejected:
        assert all("NOT_ACKNOWLEDGED" in e for e in stats.first_errors)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "SCHEMA", "stream": "contacts", "schema": {"type": "object", "properties": {"email": {"type": "string"}}}}\n'
         "this is not json\n", "Input line 2 is not valid JSON"),
        ('{"type": "RECORD", "stream": "ghost", "record": {"email": "a@b.co"}}\n', "Input line 1"),
    ],
)
def test_malformed_input_names_the_line_and_stream(sim, config, text, expected):
    run = run_in_process(config, text)
    assert isinstance(run.error, InputError)
    assert expected in str(run.error)
    assert run.states == []


def test_malformed_input_after_checkpoints_keeps_only_acknowledged_state(sim, config, tmp_path):
    good = [schema("contacts")] + [record("contacts", contact(i)) for i in range(100)] + [state({"n": 100})]
    text = lines(good) + lines([record("contacts", contact(101))]) + "{broken\n"
    run = run_cli(config, text, tmp_path=tmp_path)
    assert run.returncode != 0
    assert "Input line 104 is not valid JSON" in run.stderr and "Traceback" not in run.stderr
    assert run.states == [{"n": 100}]


def test_too_many_rejections_from_hubspot_stop_the_run(sim, config):
    sim.configure(validation_error_mode="multi_status")
    sim.add_validation_rule("contacts", "firstname", "BLOCKED", "blocked")
    run = run_in_process(config, [schema("contacts")] + [
        record("contacts", contact(i, firstname="BLOCKED")) for i in range(5)
    ])
    assert isinstance(run.error, TooManyRejectedRecords)


def test_whole_batch_409_conflict_is_isolated(sim, config):
    """A unique-value conflict fails the whole batch with 409; the other inputs still land."""
    cfg = {**config, "max_rejected_records": 5,
           "object_mappings": {"people": {"object_type": "contacts", "id_property": "external_id"}}}
    props = {"external_id": {"type": "string"}, "email": {"type": "string"}, "firstname": {"type": "string"}}
    first = run_in_process(cfg, [schema("people", props), record("people", {"external_id": "x-0", "email": "taken@example.com", "firstname": "Owner"})])
    assert first.error is None
    messages = [schema("people", props)] + [
        record("people", {"external_id": f"x-{i}", "email": "taken@example.com" if i == 17 else f"p{i}@example.com", "firstname": "P"})
        for i in range(1, 41)
    ]
    run = run_in_process(cfg, messages)
    assert run.error is None
    assert 409 in {e.status for e in sim.upsert_requests()}
    stats = run.target.runtime.report.stats["people"]
    assert stats.created == 39 and stats.rejected == 1
    assert "record #17 " in stats.first_errors[0] and "CONFLICT" in stats.first_errors[0]
    assert "x-17" not in stats.first_errors[0]  # ids are personal data: not in logs or the report
    assert sim.find("contacts", "external_id", "x-18") is not None


def test_a_record_message_without_a_record_object_is_an_input_error(sim, config):
    run = run_in_process(config, [schema("contacts"), {"type": "RECORD", "stream": "contacts", "record": None}])
    assert isinstance(run.error, InputError)
    assert "Input line 2" in str(run.error)
