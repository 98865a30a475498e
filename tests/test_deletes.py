"""Records with `_sdc_deleted_at` archive their objects under `hard_delete`, in order with upserts of the same id."""

from __future__ import annotations

import json
import random
import re

from .helpers import FIXTURES, contact, record, run_cli, run_in_process, schema, state

DELETED_AT = "2024-03-01T10:00:00Z"
SCHEMA_PROPS = {
    "email": {"type": "string"},
    "firstname": {"type": ["string", "null"]},
    "num_orders": {"type": ["integer", "null"]},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}


def counts(stderr: str, stream: str = "contacts") -> dict[str, int]:
    """The counters of a stream's summary line."""
    line = re.search(rf"Stream '{stream}' -> [^:]*: ([^;]*);", stderr)
    assert line, stderr
    return {name: int(n) for n, name in (re.match(r"(.*) (\d+)$", p).groups()[::-1] for p in line.group(1).split(", "))}


def test_deletes_archive_in_order_with_upserts_of_the_same_id(sim, config, tmp_path):
    report_path = tmp_path / "run.json"
    run = run_cli({**config, "hard_delete": True, "run_report_path": str(report_path)},
                  (FIXTURES / "contacts_deletes.singer").read_text(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert counts(run.stderr) == {
        "received": 6, "created": 3, "updated": 0, "merged": 0, "rejected": 0, "archived": 2, "already absent": 1,
    }
    live = {o["properties"]["email"]: o for o in sim.objects("contacts")}
    archived = {o["properties"]["email"]: o for o in sim.objects("contacts", archived=True)}
    assert set(live) == {"ada@example.com"}  # an upsert after the delete recreates the object
    assert live["ada@example.com"]["properties"]["firstname"] == "Ada v2"
    assert set(archived) == {"ada@example.com", "grace@example.com"}  # a delete after an upsert leaves it archived
    assert archived["ada@example.com"]["id"] != live["ada@example.com"]["id"]
    archives = [e for e in sim.requests if e.endpoint == "batch_archive"]
    assert all(set(e.request_body) == {"inputs"} and all(set(i) == {"id"} for i in e.request_body["inputs"])
               for e in archives)  # record ids only, found with batch/read by the id property
    reads = [e for e in sim.requests if e.endpoint == "batch_read"]
    assert reads and all(e.request_body["idProperty"] == "email" for e in reads)
    stream = json.loads(report_path.read_text())["streams"]["contacts"]
    assert (stream["archived"], stream["already_absent"], stream["created"]) == (2, 1, 3)
    assert stream["skipped"] == [
        {"record": 6, "input_line": 7, "id": "nobody@example.com", "outcome": "already absent"},
    ]
    assert run.states == [{"lsn": 1042}]


def test_without_hard_delete_deleted_records_are_upserted_without_the_field(sim, config, tmp_path):
    run = run_cli(config, (FIXTURES / "contacts_deletes.singer").read_text(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert counts(run.stderr) == {"received": 6, "created": 3, "updated": 0, "merged": 3, "rejected": 0}
    assert len(sim.objects("contacts")) == 3 and sim.objects("contacts", archived=True) == []
    assert not any("_sdc_deleted_at" in o["properties"] for o in sim.objects("contacts"))
    assert not any(e.endpoint in ("batch_archive", "batch_read") for e in sim.requests)


def test_deletes_interleaved_with_upserts_under_concurrency(sim, config, tmp_path):
    """Random upserts and deletes of 25 ids (600 records), 8 requests in flight, jittery latency: the last operation per id wins."""
    sim.configure(latency_ms=15, latency_jitter_ms=14, seed=11)
    rng = random.Random(5)
    messages = [schema("contacts", SCHEMA_PROPS, ["email"])]
    expected: dict[str, dict | None] = {}
    ever_live: set[str] = set()
    for i in range(600):
        who = contact(rng.randrange(25))
        email = who["email"]
        if rng.random() < 0.3:
            messages.append(record("contacts", {"email": email, "_sdc_deleted_at": DELETED_AT}))
            expected[email] = None
        else:
            rec = {"email": email, "firstname": f"v{i}", "num_orders": i}
            messages.append(record("contacts", rec))
            expected[email] = {**(expected.get(email) or {}), **rec}
            ever_live.add(email)
        if i % 50 == 49:
            messages.append(state({"n": i + 1}))
    report_path = tmp_path / "run.json"
    cfg = {**config, "hard_delete": True, "max_concurrent_requests": 8, "batch_size_rows": 10,
           "run_report_path": str(report_path), "max_requests_per_10_seconds": 10_000}
    run = run_cli(cfg, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    live = {o["properties"]["email"]: o["properties"] for o in sim.objects("contacts")}
    assert set(live) == {email for email, props in expected.items() if props is not None}
    for email, props in live.items():
        assert props["firstname"] == expected[email]["firstname"], email
        assert props["num_orders"] == str(expected[email]["num_orders"]), email
    archived = {o["properties"]["email"] for o in sim.objects("contacts", archived=True)}
    assert {email for email, props in expected.items() if props is None and email in ever_live} <= archived
    found = counts(run.stderr)
    assert found["received"] == 600 and found["rejected"] == 0
    assert sum(n for name, n in found.items() if name != "received") == 600
    assert found["archived"] > 0 and found["created"] > 25  # objects were archived and recreated
    stream = json.loads(report_path.read_text())["streams"]["contacts"]
    parts = ("created", "updated", "merged", "skipped_not_found", "skipped_exists", "archived", "already_absent",
             "rejected")
    assert sum(stream[k] for k in parts) == stream["received"] == 600 and stream["unconfirmed"] == 0
    assert [s["n"] for s in run.states] == list(range(50, 601, 50))
    assert max(sim.stats["max_concurrent_upserts"], 1) > 1


def test_state_waits_for_the_archives_before_it(sim, config):
    sim.configure(latency_ms=20, latency_jitter_ms=15, seed=3)
    messages = [schema("contacts", SCHEMA_PROPS, ["email"])]
    messages += [record("contacts", contact(i)) for i in range(30)]
    messages.append(state({"phase": "upserted"}))
    messages += [record("contacts", {"email": contact(i)["email"], "_sdc_deleted_at": DELETED_AT}) for i in range(30)]
    messages.append(state({"phase": "deleted"}))
    run = run_in_process({**config, "hard_delete": True, "batch_size_rows": 7, "max_concurrent_requests": 4}, messages)
    assert run.error is None, run.error
    assert run.states[-1] == {"phase": "deleted"}
    archived_at = max(e.finished for e in sim.requests if e.endpoint == "batch_archive" and e.status == 204)
    assert run.state_times[-1] >= archived_at
    assert sim.objects("contacts") == [] and len(sim.objects("contacts", archived=True)) == 30


def test_a_delete_in_a_stream_without_id_property_is_rejected(sim, config, tmp_path):
    sim.add_object_type("notes", "0-46", [{"name": "hs_note_body"}])
    rejected = tmp_path / "rejected.jsonl"
    messages = [
        schema("notes", {"hs_note_body": {"type": "string"}}),
        record("notes", {"hs_note_body": "kept"}),
        record("notes", {"hs_note_body": "gone", "_sdc_deleted_at": DELETED_AT}),
    ]
    cfg = {**config, "hard_delete": True, "max_rejected_records": 1, "rejected_records_path": str(rejected),
           "object_mappings": {"notes": {"write_mode": "create"}}}
    run = run_cli(cfg, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert counts(run.stderr, "notes") == {"received": 2, "created": 1, "updated": 0, "merged": 0, "rejected": 1,
                                           "archived": 0, "already absent": 0}
    line = json.loads(rejected.read_text())
    assert line["error"]["code"] == "INVALID_ID" and "no id property" in line["error"]["message"]


def test_a_delete_needs_no_valid_values_besides_its_id(sim, config):
    props = {"email": {"type": "string"}, "num_orders": {"type": "integer"}}  # required-looking, not nullable
    run_in_process(config, [schema("contacts", props), record("contacts", contact(1, num_orders=3))])
    messages = [schema("contacts", props),
                record("contacts", {"email": contact(1)["email"], "num_orders": None, "_sdc_deleted_at": DELETED_AT})]
    run = run_in_process({**config, "hard_delete": True}, messages)
    assert run.error is None, run.error
    assert run.target.runtime.report.stats["contacts"].archived == 1


def test_only_a_date_time_in_the_delete_marker_archives(sim, config, tmp_path):
    junk = ["junk", False, 0, [], {}, True, "2024-01-01", "yesterday 12:00"]
    props = {"email": {"type": "string"}, "firstname": {"type": ["string", "null"]}, "_sdc_deleted_at": {}}
    first = [schema("contacts", props, key=["email"])]
    first += [record("contacts", {"email": f"u{i}@example.com", "firstname": "Kept"}) for i in range(len(junk) + 1)]
    assert run_cli(config, first, tmp_path=tmp_path).returncode == 0
    rejected = tmp_path / "rejected.jsonl"
    deletes = [schema("contacts", props, key=["email"])]
    deletes += [record("contacts", {"email": f"u{i}@example.com", "_sdc_deleted_at": v}) for i, v in enumerate(junk)]
    deletes += [record("contacts", {"email": f"u{len(junk)}@example.com", "_sdc_deleted_at": "2026-12-01T10:00:00Z"})]
    deletes += [state({"done": True})]
    cfg = {**config, "hard_delete": True, "max_rejected_records": len(junk), "rejected_records_path": str(rejected)}
    run = run_cli(cfg, deletes, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert {o["properties"]["email"] for o in sim.objects("contacts", archived=True)} == {f"u{len(junk)}@example.com"}
    assert {o["properties"]["firstname"] for o in sim.objects("contacts")} == {"Kept"}  # left as they were
    lines = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert [line["error"]["code"] for line in lines] == ["INVALID_DELETE_MARKER"] * len(junk)
    assert all("_sdc_deleted_at" in line["error"]["message"] for line in lines)
    assert counts(run.stderr)["rejected"] == len(junk)
    assert counts(run.stderr)["archived"] == 1
    assert run.states == [{"done": True}]
    # Past the limit the run stops, as for any rejection.
    again = run_cli({**cfg, "max_rejected_records": 0}, deletes[:2], tmp_path=tmp_path)
    assert again.returncode != 0
