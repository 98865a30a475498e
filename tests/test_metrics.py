"""Singer metrics: each one logged once, where it is measured."""

from __future__ import annotations

import json
import logging
from collections import Counter

from .helpers import contact, record, run_in_process, schema, state


def _points(caplog) -> list[dict]:
    return [json.loads(r.getMessage().removeprefix("METRIC: ")) for r in caplog.records if r.name == "singer_sdk.metrics"]


def test_each_batch_and_each_request_has_one_metric(sim, config, caplog):
    caplog.set_level(logging.INFO, logger="singer_sdk.metrics")
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(25)), state(1)]
    run = run_in_process({**config, "batch_size_rows": 10}, messages)
    assert run.error is None
    upserts = len(sim.upsert_requests())
    assert upserts == 3
    by_metric = Counter(p["metric"] for p in _points(caplog))
    assert by_metric["batch_processing_time"] == upserts
    assert by_metric["http_request_duration"] == len(sim.requests)
    batches = [p for p in _points(caplog) if p["metric"] == "batch_processing_time"]
    assert {p["tags"]["stream"] for p in batches} == {"contacts"}
    assert {p["tags"]["object_type"] for p in batches} == {"contacts"}
