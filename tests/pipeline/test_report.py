"""StreamStats and Reporter: the counts reconcile, and the summary line says so.

The Reporter's client is a stand-in: it reads only request counts and the rate limit from it.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from target_hubspot_upsert.core.model import (
    CREATED,
    SKIPPED_EXISTS,
    SKIPPED_NOT_FOUND,
    UPDATED,
    BatchOutcome,
    PendingInput,
    RecordRef,
    Rejection,
)
from target_hubspot_upsert.core.settings import Settings
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger
from target_hubspot_upsert.pipeline.rejects import RejectionLog
from target_hubspot_upsert.pipeline.report import Reporter, StreamStats, format_duration

SUMMARY = re.compile(
    r"received (?P<received>\d+), created (?P<created>\d+), updated (?P<updated>\d+), "
    r"merged (?P<merged>\d+), rejected (?P<rejected>\d+)"
)


def counts_in(line: str) -> dict[str, int]:
    """Every `<label> <n>` of a summary line, by label."""
    found = {k: int(v) for k, v in SUMMARY.search(line).groupdict().items()}  # type: ignore[union-attr]
    for label, name in (("skipped (not found)", "skipped_not_found"), ("skipped (exists)", "skipped_exists"),
                        ("archived", "archived"), ("already absent", "already_absent"),
                        ("unchanged", "unchanged"), ("unconfirmed (run stopped)", "unconfirmed")):
        match = re.search(re.escape(label) + r" (\d+)", line)
        found[name] = int(match.group(1)) if match else 0
    return found


def pending(key: str, records: int, result: str = "") -> PendingInput:
    refs = [RecordRef(n, n, {}, line=n + 1) for n in range(records)]
    return PendingInput(id=key, properties={}, records=refs, result=result)


def test_summary_line_reconciles_received_with_every_outcome():
    stats = StreamStats("people", "contacts", received=18)
    outcome = BatchOutcome(write_mode="upsert")
    inputs = [pending("a", 3, CREATED), pending("b", 1, UPDATED), pending("c", 2, SKIPPED_NOT_FOUND),
              pending("d", 1, SKIPPED_EXISTS), pending("e", 2, UPDATED)]
    outcome.rejected.append((inputs[4], "VALIDATION_ERROR", "INVALID_EMAIL", "bad", "bad"))
    stats.add_outcomes(outcome.counts(inputs), inputs, associations=0)
    stats.count_unchanged(4, 2)  # 4 inputs holding 6 records
    stats.rejected += 2  # as Reporter.note_rejection counts the rejected input's records
    stats.archived += 3
    line = stats.summary_line()
    got = counts_in(line)
    assert got["created"] == 1
    assert got["updated"] == 1
    assert got["merged"] == 2 + 1 + 2  # a's extra records, c's, unchanged inputs'
    assert got["skipped_not_found"] == 1
    assert got["skipped_exists"] == 1
    assert got["unchanged"] == 4
    assert got["archived"] == 3
    assert got["rejected"] == 2
    assert got["unconfirmed"] == 0
    outcomes = sum(v for k, v in got.items() if k not in ("received", "unconfirmed"))
    assert got["received"] == outcomes == stats.done == 18


def test_a_stopped_run_names_the_records_without_an_outcome():
    stats = StreamStats("people", "contacts", received=10, created=4)
    line = stats.summary_line()
    assert "unconfirmed (run stopped) 6" in line
    assert stats.report()["unconfirmed"] == 6


def test_count_unchanged_adds_inputs_and_their_merged_records():
    stats = StreamStats("people", "contacts", batch_size=100)
    stats.count_unchanged(150, 10)
    stats.count_unchanged(1, 0)
    assert (stats.unchanged, stats.merged, stats.done) == (151, 10, 161)
    assert stats.requests_saved == 2
    assert "(2 saved by skip_unchanged)" in stats.summary_line()


def test_extra_counters_appear_only_when_used_or_shown():
    stats = StreamStats("people", "contacts", received=1, created=1)
    line = stats.summary_line()
    assert "skipped" not in line
    assert "unchanged" not in line
    stats.shown.add("unchanged")
    assert "unchanged 0" in stats.summary_line()


def test_add_outcomes_lists_skipped_records():
    stats = StreamStats("people", "contacts")
    inputs = [pending("a@x.io", 2, SKIPPED_NOT_FOUND), pending("b@x.io", 1, UPDATED)]
    stats.add_outcomes(Counter({SKIPPED_NOT_FOUND: 1, UPDATED: 1, "merged": 1}), inputs, associations=3)
    assert (stats.skipped_not_found, stats.updated, stats.merged, stats.associations) == (1, 1, 1, 3)
    assert stats.skipped_examples == [{"record": 1, "input_line": 2, "id": "a@x.io", "outcome": "skipped (not found)"}]
    assert "associations 3" in stats.summary_line()


@pytest.mark.parametrize(("seconds", "text"), [
    (4.24, "4.2 s"), (35.4, "35 s"), (725, "12 min 5 s"), (7380, "2 h 3 min"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# --- Reporter ---------------------------------------------------------------------------


@dataclass
class Limiter:
    limit: int = 100
    window_s: float = 10.0


@dataclass
class Totals:
    requests: int = 0


@dataclass
class Metrics:
    flushed: int = 0

    def flush(self) -> None:
        self.flushed += 1


@dataclass
class FakeClient:
    limiter: Limiter = field(default_factory=Limiter)
    totals: Totals = field(default_factory=lambda: Totals(42))
    metrics: Metrics = field(default_factory=Metrics)
    auth: Any = None


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "api_base_url": "https://api.hubapi.com", "api_version": "v3", "unknown_properties": "reject",
        "property_group": "contactinformation", "null_values": "ignore", "batch_size_rows": 100,
        "max_concurrent_requests": 2, "max_requests_per_10_seconds": 100, "request_timeout": 30.0,
        "max_retries": 3, "max_rejected_records": 10, "log_record_values": False, "skip_unchanged": False,
        "change_cache_path": "", "change_cache_max_age_days": 30, "full_resync": False, "dry_run": False,
        "progress_interval": 3600.0, "detailed_metrics": False, "access_token": "secret-token-value",
    }
    values.update(changes)
    return Settings(**values)


def make_reporter(**changes: Any) -> tuple[Reporter, FakeClient, CheckpointLedger]:
    client = FakeClient()
    ledger = CheckpointLedger(lambda state: None)
    s = settings(**changes)
    reporter = Reporter(s, client, RejectionLog(None, s.max_rejected_records), ledger, lambda: 3)  # type: ignore[arg-type]
    return reporter, client, ledger


def rejection(position: int) -> Rejection:
    return Rejection(seq=position, stream="people", object_type="contacts", id="a@x.io", position=position,
                     record={"email": "a@x.io"}, category="VALIDATION_ERROR", code="INVALID_EMAIL",
                     message="a@x.io is invalid", line=position + 1, safe_message="HubSpot rejected it (INVALID_EMAIL)")


def test_reporter_keeps_stats_per_stream_and_the_first_reasons_without_values():
    reporter, _, _ = make_reporter()
    try:
        stats = reporter.stream_stats("people", "contacts")
        assert reporter.stream_stats("people", "0-1") is stats  # kept across schema changes
        for n in range(7):
            reporter.note_rejection(stats, rejection(n))
        assert stats.rejected == 7
        assert len(stats.first_errors) == 5
        assert stats.first_errors[0] == "record #0 (input line 1): INVALID_EMAIL: HubSpot rejected it (INVALID_EMAIL)"
        assert all("a@x.io" not in text for text in stats.first_errors)
    finally:
        reporter.stop_ticking()


def test_reporter_with_skip_unchanged_shows_unchanged_and_saved_requests():
    reporter, _, _ = make_reporter(skip_unchanged=True, batch_size_rows=250)
    try:
        stats = reporter.stream_stats("people", "contacts")
        assert stats.batch_size == 100  # HubSpot's limit per request
        assert "unchanged 0" in stats.summary_line()
    finally:
        reporter.stop_ticking()


def test_progress_line_names_done_received_in_flight_and_time_left():
    reporter, client, _ = make_reporter()
    try:
        stats = reporter.stream_stats("people", "contacts")
        reporter.watch_input(lambda: 0.5)
        line = reporter.progress_line(stats, done=100, received=200, rejected=1, now=stats.started + 10)
        assert line.startswith("Progress 'people': 100 records done of 200 received (10 records/s), 3 requests in flight")
        assert "1 rejected so far" in line
        assert "about 30 s left (50% of the input read)" in line  # 400 expected, 300 left at 10/s
        reporter.log_progress(stats.started + 10)
        assert client.metrics.flushed == 1
    finally:
        reporter.stop_ticking()


def test_log_summary_logs_each_stream_and_the_unconfirmed(caplog):
    reporter, _, ledger = make_reporter()
    stats = reporter.stream_stats("people", "contacts")
    stats.received, stats.created = 5, 3
    ledger.add({"s": 1}, boundary=1, line=9)
    with caplog.at_level(logging.INFO, logger="target_hubspot_upsert"):
        reporter.log_summary(stopped=True)
    assert "Stream 'people' -> contacts: received 5, created 3" in caplog.text
    assert "2 record(s) have no confirmed outcome" in caplog.text
    assert "The last STATE written was input line 9" in caplog.text


def test_write_report_holds_the_counts_and_no_secret(tmp_path: Path):
    path = tmp_path / "out" / "report.json"
    reporter, _, _ = make_reporter(run_report_path=str(path))
    stats = reporter.stream_stats("people", "contacts")
    stats.received, stats.created, stats.updated = 3, 2, 1
    reporter.stop_ticking()
    reporter.write_report("ok")
    text = path.read_text(encoding="utf-8")
    assert "secret-token-value" not in text
    report = json.loads(text)
    assert report["status"] == "ok"
    assert report["requests_total"] == 42
    assert report["streams"]["people"]["created"] == 2
    assert report["streams"]["people"]["unconfirmed"] == 0
    assert report["settings"]["credentials"] == "access_token"
