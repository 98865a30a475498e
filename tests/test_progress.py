"""What a person watching a run sees: progress lines from the first seconds, quiet metrics, a summary with rate."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from hubspot_simulator import HubSpotSimulator

from target_hubspot_upsert.http.requestmetrics import percentile
from target_hubspot_upsert.pipeline.report import format_duration

from .conftest import TOKEN
from .helpers import contact, lines, record, run_in_process, schema, state

PROGRESS = re.compile(
    r"Progress 'contacts': (\d+) records done of (\d+) received \((\d+) records/s\), (\d+) requests in flight, "
    r"(\d+) rejected so far(, about .+ left \(\d+% of the input read\))?\.",
)


def _metric_points(text: str) -> list[dict]:
    return [json.loads(line.split("METRIC: ", 1)[1]) for line in text.splitlines() if "METRIC: " in line]


def _stamped_lines(stream, out: list[tuple[float, str]]) -> None:
    for raw in iter(stream.readline, ""):
        out.append((time.monotonic(), raw.rstrip("\n")))


def test_a_20000_record_run_shows_progress_within_10_s_few_metrics_and_a_summary_with_rate(tmp_path):
    """The issue's run: 20,000 records at 100 requests per 10 s, read from a file given with --input."""
    with HubSpotSimulator(tokens={TOKEN}, rate_limit_per_10s=100, latency_ms=50) as sim:
        messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(20_000)), state({"n": 1})]
        input_path = tmp_path / "input.singer"
        input_path.write_text(lines(messages))
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps({"access_token": TOKEN, "api_base_url": sim.base_url}))
        stamped: list[tuple[float, str]] = []
        with subprocess.Popen(
            [sys.executable, "-m", "target_hubspot_upsert", "--config", str(config_path), "--input", str(input_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as proc:
            reader = threading.Thread(target=_stamped_lines, args=(proc.stderr, stamped))
            reader.start()
            assert proc.stdout is not None
            stdout = proc.stdout.read()  # the STATE line: small, written at the end
            proc.wait(timeout=100)
            reader.join(timeout=10)
        assert proc.returncode == 0, "\n".join(line for _, line in stamped)
        first_request = min(entry.started for entry in sim.requests)
        upserts = len(sim.upsert_requests())
    stderr = "\n".join(line for _, line in stamped)
    assert stdout.strip() == '{"n": 1}'
    progress = [(at, PROGRESS.search(line)) for at, line in stamped if PROGRESS.search(line)]
    assert progress, stderr
    # The first progress line within 10 s of the first request, then at the steady interval (15 s).
    assert progress[0][0] - first_request < 10, stderr
    done, received = int(progress[0][1].group(1)), int(progress[0][1].group(2))
    assert 0 < done <= received <= 20_000
    assert progress[0][1].group(6), "the input is a file: its size is known, so the line estimates the time left"
    # Quiet metrics: per stream and metric at most one line per interval (15 s) and one at the end.
    run_s = stamped[-1][0] - stamped[0][0]
    bound = -(-run_s // 15) + 1
    points = _metric_points(stderr)
    per_metric = Counter((p["metric"], p["tags"].get("stream")) for p in points)
    assert per_metric, stderr
    assert all(n <= bound for n in per_metric.values()), per_metric
    assert len(points) <= 4 * bound, f"{len(points)} METRIC lines for {upserts} requests"
    assert {m for m, _ in per_metric} == {"record_count", "http_request_count", "http_request_duration"}
    assert sum(p["value"] for p in points if p["metric"] == "record_count") == 20_000
    assert sum(p["value"] for p in points if p["metric"] == "http_request_count") == upserts + 1  # + the catalogue
    durations = [p for p in points if p["metric"] == "http_request_duration" and p["tags"].get("stream") == "contacts"]
    assert durations and all(0 < p["tags"]["p50"] <= p["tags"]["p95"] for p in durations)
    # The summary: elapsed time and records per second.
    summary = re.search(r"Stream 'contacts' -> contacts: received 20000, created 20000.*; elapsed ([\d.]+) s, (\d+) records/s", stderr)
    assert summary, stderr
    assert 15 < float(summary.group(1)) < 90
    assert int(summary.group(2)) == pytest.approx(20_000 / float(summary.group(1)), rel=0.05)


def test_detailed_metrics_bring_back_one_line_per_request_and_per_batch(sim, config, caplog):
    caplog.set_level(logging.INFO, logger="singer_sdk.metrics")
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(25)), state(1)]
    run = run_in_process({**config, "batch_size_rows": 10, "detailed_metrics": True}, messages)
    assert run.error is None
    points = [json.loads(r.getMessage().removeprefix("METRIC: ")) for r in caplog.records if r.name == "singer_sdk.metrics"]
    by_metric = Counter(p["metric"] for p in points)
    assert by_metric["batch_processing_time"] == len(sim.upsert_requests()) == 3
    assert by_metric["http_request_duration"] == len(sim.requests)


def test_quiet_metrics_are_aggregates_per_stream(sim, config, caplog):
    caplog.set_level(logging.INFO, logger="singer_sdk.metrics")
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(25)), state(1)]
    run = run_in_process({**config, "batch_size_rows": 10}, messages)
    assert run.error is None
    points = [json.loads(r.getMessage().removeprefix("METRIC: ")) for r in caplog.records if r.name == "singer_sdk.metrics"]
    by_metric = Counter((p["metric"], p["tags"].get("stream")) for p in points)
    assert by_metric == {
        ("record_count", "contacts"): 1, ("http_request_count", "contacts"): 1,
        ("http_request_duration", "contacts"): 1, ("http_request_count", None): 1,
        ("http_request_duration", None): 1,
    }
    counts = {p["tags"].get("stream"): p["value"] for p in points if p["metric"] == "http_request_count"}
    assert counts == {"contacts": 3, None: len(sim.requests) - 3}


def test_progress_line_names_done_rate_in_flight_and_rejected(sim, config, caplog):
    caplog.set_level(logging.INFO, logger="target_hubspot_upsert")
    sim.configure(latency_ms=400)
    messages = [schema("contacts"), record("contacts", {"email": "x"}), *(record("contacts", contact(i)) for i in range(300))]
    run = run_in_process({**config, "progress_interval": 1, "batch_size_rows": 10, "max_concurrent_requests": 2,
                          "max_rejected_records": 1}, messages, real_time=True)
    assert run.error is None
    found = [PROGRESS.search(r.getMessage()) for r in caplog.records]
    found = [m for m in found if m]
    assert len(found) >= 2, [r.getMessage() for r in caplog.records]
    assert int(found[-1].group(4)) <= 2  # requests in flight
    assert int(found[-1].group(5)) == 1  # the rejection


def test_durations_and_percentiles_read_as_expected():
    assert format_duration(4.25) == "4.2 s"
    assert format_duration(35.4) == "35 s"
    assert format_duration(725) == "12 min 5 s"
    assert format_duration(7385) == "2 h 3 min"
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
