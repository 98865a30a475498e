"""Progress lines, the end-of-run summary and the JSON run report."""

from __future__ import annotations

import json

from .helpers import contact, record, run_cli, run_in_process, schema, state


def test_run_report_has_per_stream_counts_requests_retries_and_first_errors(sim, config, tmp_path):
    report_path = tmp_path / "reports" / "run.json"
    sim.script_faults([503, 429])
    messages = [schema("contacts")] + [record("contacts", contact(i)) for i in range(150)]
    messages += [record("contacts", {"email": "broken"}), state({"n": 151})]
    run = run_in_process({**config, "run_report_path": str(report_path), "max_rejected_records": 5}, messages)
    assert run.error is None
    report = json.loads(report_path.read_text())
    assert report["status"] == "succeeded" and report["error"] is None
    stream = report["streams"]["contacts"]
    assert stream["received"] == 151 and stream["created"] == 150 and stream["rejected"] == 1
    assert stream["requests"] == 4 and stream["retries"] == 2 and stream["rate_limited_429s"] == 1
    assert stream["duration_seconds"] >= 0
    assert stream["first_errors"] == [
        "record #151 (input line 152): INVALID_ID: the id property 'email' is not a valid email address"
    ]
    assert report["rejected_total"] == 1


def test_run_report_is_written_when_the_run_fails(sim, config, tmp_path):
    report_path = tmp_path / "run.json"
    run = run_cli({**config, "run_report_path": str(report_path)}, [schema("contacts"), record("contacts", {"email": "x"})], tmp_path=tmp_path)
    assert run.returncode != 0
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed" and "more than max_rejected_records" in report["error"]
