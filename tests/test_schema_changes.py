"""SCHEMA changes mid-stream, fields a SCHEMA does not declare, and the strict rejection stop."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import Run, lines, record, run_in_process, schema, state

BASE = {"email": {"type": "string"}, "firstname": {"type": ["string", "null"]}}
INT_VALUE = {**BASE, "lifetime_value": {"type": ["integer", "null"]}}
NUMBER_VALUE = {**BASE, "lifetime_value": {"type": ["number", "null"]}}
WITH_PHONE = {**INT_VALUE, "phone": {"type": ["string", "null"]}}

# (schema before, key properties before, schema after, key properties after)
CHANGES = {
    "added property": (INT_VALUE, ["email"], WITH_PHONE, ["email"]),
    "removed property": (WITH_PHONE, ["email"], INT_VALUE, ["email"]),
    "type change": (INT_VALUE, ["email"], NUMBER_VALUE, ["email"]),
    "key change": (INT_VALUE, [], INT_VALUE, ["email"]),
    "identical re-send": (INT_VALUE, ["email"], INT_VALUE, ["email"]),
}


def run_cli_timed(config: dict, text: str, tmp_path: Path, timeout: float = 120) -> Run:
    """Run the target as a pipeline would, noting when each STATE line reached stdout."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "target_hubspot_upsert", "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []
    feeder = threading.Thread(target=lambda: (proc.stdin.write(text), proc.stdin.close()), daemon=True)
    drainer = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    feeder.start()
    drainer.start()
    run = Run(returncode=-1)
    for line in proc.stdout:
        if line.strip():
            run.state_times.append(time.monotonic())
            run.states.append(json.loads(line))
    run.returncode = proc.wait(timeout=timeout)
    drainer.join(timeout)
    proc.stdout.close()
    proc.stderr.close()
    run.stderr = "".join(errors)
    return run


def value_for(props: dict, i: int, step: int) -> dict:
    """A record for contact `i` under a SCHEMA with `props`, carrying `step` in its values."""
    rec: dict[str, Any] = {"email": f"user{i}@example.com", "firstname": f"v{step}"}
    if "lifetime_value" in props:
        kinds = props["lifetime_value"]["type"]
        rec["lifetime_value"] = step + 0.5 if "number" in kinds else step
    if "phone" in props:
        rec["phone"] = f"+1 555 {step:04d}"
    return rec


def as_wire(value: Any) -> str:
    return str(value)


def scenario(change: str, seed: int = 1) -> tuple[str, dict[str, dict[str, str]], int]:
    """150 contacts, then the new SCHEMA, then 1,000 records of which 40% update the first 150.

    Returns the input text, what each id must hold, and the index of the first STATE after the change.
    """
    before, key_before, after, key_after = CHANGES[change]
    rnd = random.Random(seed)
    messages = [schema("contacts", before, key_before)]
    expected: dict[str, dict[str, str]] = {}
    step = 0

    def add(props: dict, i: int) -> None:
        nonlocal step
        step += 1
        rec = value_for(props, i, step)
        messages.append(record("contacts", rec))
        expected.setdefault(rec["email"], {}).update({k: as_wire(v) for k, v in rec.items()})
        if step % 10 == 0:
            messages.append(state({"step": step}))

    for i in range(150):
        add(before, i)
    states_before = sum(1 for m in messages if m["type"] == "STATE")
    messages.append(schema("contacts", after, key_after))
    for n in range(1000):
        add(after, rnd.randrange(150) if rnd.random() < 0.4 else 150 + n)
    messages.append(state({"step": step}))
    return lines(messages), expected, states_before


def acknowledged(sim) -> dict[str, list[tuple[float, int]]]:
    """Per id, each acknowledged write: (when, the step its values came from).

    Records merged into one input carry the latest step, so a step counts as landed once a
    write of its id with that step or a later one was acknowledged.
    """
    writes: dict[str, list[tuple[float, int]]] = {}
    for entry in sim.upsert_requests():
        if entry.status == 200:
            for item in entry.request_body["inputs"]:
                writes.setdefault(item["id"], []).append((entry.finished, int(item["properties"]["firstname"][1:])))
    return writes


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_schema_change_keeps_last_write_wins_and_relays_checkpoints(sim, config, tmp_path, change):
    sim.configure(latency_ms=6, latency_jitter_ms=6, seed=5)
    text, expected, states_before = scenario(change)
    step_ids = {
        int(m["record"]["firstname"][1:]): m["record"]["email"]
        for m in map(json.loads, text.splitlines()) if m["type"] == "RECORD"
    }
    cfg = {**config, "max_concurrent_requests": 8, "batch_size_rows": 20}
    run = run_cli_timed(cfg, text, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    for email, props in expected.items():
        landed = sim.find("contacts", "email", email)["properties"]
        for name, value in props.items():
            assert landed.get(name) == value, f"{email}.{name}: {landed.get(name)!r}, last record had {value!r}"
    # Checkpoints after the change: at least one per max_concurrent_requests batches acknowledged.
    batches_after = sum(1 for e in sim.upsert_requests() if e.status == 200) - 150 // 20
    steps = [s["step"] for s in run.states]
    assert steps == sorted(steps) and steps[-1] == 1150
    after_change = [s for s in steps if s > 150]
    assert len(after_change) >= batches_after // 8, (len(after_change), batches_after)
    # No STATE is early: every record before it had been acknowledged when it was written.
    writes = acknowledged(sim)
    for value, written_at in zip(run.states, run.state_times, strict=True):
        for step in range(1, value["step"] + 1):
            email = step_ids[step]
            assert any(s >= step and when <= written_at for when, s in writes[email]), (
                f"STATE {value} written before record {step} landed"
            )
    assert states_before == 15


def test_fields_outside_the_schema_follow_unknown_properties(sim, config, caplog):
    """`lastname` is a HubSpot property the SCHEMA lacks; `shoe_size` is neither."""
    messages = [
        schema("contacts"),
        record("contacts", {"email": "a@b.co", "firstname": "A", "lastname": "Undeclared"}),
        record("contacts", {"email": "c@d.co", "lastname": "Again", "shoe_size": 43}),
        record("contacts", {"email": "e@f.co", "firstname": "E"}),
        state({"ok": True}),
    ]
    run = run_in_process({**config, "max_rejected_records": 10}, messages)
    assert run.error is None, run.error
    stats = run.target.runtime.report.stats["contacts"]
    # A property HubSpot has is sent, warned once per field and stream.
    assert sim.find("contacts", "email", "a@b.co")["properties"]["lastname"] == "Undeclared"
    warned = [r.getMessage() for r in caplog.records if "'lastname' of stream 'contacts' is not in" in r.getMessage()]
    assert len(warned) == 1 and "it is sent as HubSpot property 'lastname'" in warned[0]
    # fail (the default): the record carrying a field HubSpot lacks is rejected, naming the field.
    assert sim.find("contacts", "email", "c@d.co") is None
    assert (stats.received, stats.created, stats.rejected) == (3, 2, 1)
    assert "UNKNOWN_PROPERTY" in stats.first_errors[0] and "'shoe_size'" in stats.first_errors[0]
    assert run.states == [{"ok": True}]


def test_an_undeclared_field_counts_against_max_rejected_records(sim, config):
    run = run_in_process(config, [
        schema("contacts"),
        record("contacts", {"email": "a@b.co", "shoe_size": 43}),
        state({"ok": True}),
    ])
    assert run.error is not None and "more than max_rejected_records (0)" in str(run.error)
    assert run.states == []


def test_an_undeclared_field_is_left_out_under_ignore(sim, config, caplog):
    run = run_in_process({**config, "unknown_properties": "ignore"}, [
        schema("contacts"),
        record("contacts", {"email": "a@b.co", "shoe_size": 43, "lastname": "Known"}),
        record("contacts", {"email": "c@d.co", "shoe_size": 44}),
        state({"ok": True}),
    ])
    assert run.error is None, run.error
    assert "shoe_size" not in sim.find("contacts", "email", "a@b.co")["properties"]
    assert sim.find("contacts", "email", "a@b.co")["properties"]["lastname"] == "Known"  # HubSpot has it: sent
    assert sim.find("contacts", "email", "c@d.co") is not None
    warned = [r for r in caplog.records if "'shoe_size' of stream 'contacts'" in r.getMessage()]
    assert len(warned) == 1 and "leaving it out" in warned[0].getMessage()
    assert run.states == [{"ok": True}]


def test_an_undeclared_field_is_created_and_sent_under_create(sim, config):
    run = run_in_process({**config, "unknown_properties": "create"}, [
        schema("contacts"),
        record("contacts", {"email": "a@b.co", "shoe_size": 43, "lastname": "Known"}),
        record("contacts", {"email": "c@d.co", "shoe_size": 44.5}),
        state({"ok": True}),
    ])
    assert run.error is None, run.error
    created = [e for e in sim.requests if e.method == "POST" and e.endpoint == "properties"]
    assert [e.request_body["name"] for e in created] == ["shoe_size"]
    assert created[0].request_body["type"] == "number"
    assert sim.find("contacts", "email", "a@b.co")["properties"]["shoe_size"] == "43"
    assert sim.find("contacts", "email", "a@b.co")["properties"]["lastname"] == "Known"
    assert sim.find("contacts", "email", "c@d.co")["properties"]["shoe_size"] == "44.5"


def test_the_strict_stop_lands_good_records_and_checkpoints_before_the_bad_one(sim, config, tmp_path):
    """One bad contact among good ones, default max_rejected_records 0."""
    messages = [schema("contacts")]
    for i in range(1, 251):
        rec = {"email": f"user{i}@example.com", "firstname": f"U{i}"}
        if i == 120:
            rec["email"] = "not-an-email"
        messages.append(record("contacts", rec))
        if i % 50 == 0:
            messages.append(state({"n": i}))
    sim.configure(latency_ms=5, latency_jitter_ms=5, seed=2)
    rejected = tmp_path / "rejected.jsonl"
    run = run_cli_timed({**config, "batch_size_rows": 30, "rejected_records_path": str(rejected)}, lines(messages), tmp_path)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    # Every good record read before the stop landed, including those after the bad one.
    received = int(run.stderr.split("received ")[1].split(",")[0])
    assert received >= 120
    for i in range(1, received + 1):
        if i != 120:
            assert sim.find("contacts", "email", f"user{i}@example.com") is not None, i
    assert f"created {received - 1}, updated 0, merged 0, rejected 1" in run.stderr
    # STATE stops before the bad record; the summary says where the next run resumes.
    assert run.states[-1] == {"n": 100}  # (a checkpoint superseded before it was written is skipped)
    assert "The last STATE written was input line 103; the next run resumes from there" in run.stderr
    assert json.loads(rejected.read_text().splitlines()[0])["position"] == 120


def test_a_record_failing_its_schema_is_rejected_not_a_stop(sim, config):
    props = {"email": {"type": "string"}, "num_orders": {"type": "integer"}}
    run = run_in_process({**config, "max_rejected_records": 5}, [
        {"type": "SCHEMA", "stream": "contacts", "key_properties": ["email"],
         "schema": {"type": "object", "properties": props, "required": ["email", "num_orders"]}},
        record("contacts", {"email": "a@b.co", "num_orders": 1}),
        record("contacts", {"email": "b@b.co"}),
        record("contacts", {"email": "c@b.co", "num_orders": "many"}),
        record("contacts", {"email": "d@b.co", "num_orders": 4}),
        state({"ok": True}),
    ])
    assert run.error is None, run.error
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.received, stats.created, stats.rejected) == (4, 2, 2)
    assert all("SCHEMA_MISMATCH" in e for e in stats.first_errors)
    assert run.states == [{"ok": True}]


# --- property-based: any interleaving lands as applying the records one by one ----------------

SCHEMAS = [INT_VALUE, NUMBER_VALUE, WITH_PHONE, BASE]

message_strategy = st.one_of(
    st.tuples(st.just("schema"), st.integers(0, len(SCHEMAS) - 1)),
    st.tuples(st.just("record"), st.integers(0, 7)),
    st.tuples(st.just("state"), st.just(0)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(message_strategy, min_size=1, max_size=60))
def test_any_interleaving_lands_as_the_records_applied_in_order(sim, config, ops):
    sim.reset()
    sim.configure(latency_ms=2, latency_jitter_ms=2)
    current = SCHEMAS[0]
    messages = [schema("contacts", current, ["email"])]
    expected: dict[str, dict[str, str]] = {}
    for step, (kind, arg) in enumerate(ops, start=1):
        if kind == "schema":
            current = SCHEMAS[arg]
            messages.append(schema("contacts", current, ["email"]))
        elif kind == "record":
            rec = value_for(current, arg, step)
            messages.append(record("contacts", rec))
            expected.setdefault(rec["email"], {}).update({k: as_wire(v) for k, v in rec.items()})
        else:
            messages.append(state({"step": step}))
    messages.append(state({"step": "end"}))
    run = run_in_process({**config, "max_concurrent_requests": 4, "batch_size_rows": 3}, messages)
    assert run.error is None, run.error
    assert len(sim.objects("contacts")) == len(expected)
    for email, props in expected.items():
        landed = sim.find("contacts", "email", email)["properties"]
        assert {k: landed.get(k) for k in props} == props
    assert run.states[-1] == {"step": "end"}
