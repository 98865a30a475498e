"""A real pipeline against the simulator: batches, last-write-wins, STATE only after landing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from target_hubspot_upsert.core.errors import HubSpotAuthError, HubSpotConfigError, RetriesExhausted

from .conftest import TOKEN
from .helpers import (
    FIXTURES,
    contact,
    contacts_with_states,
    landed_times,
    record,
    run_cli,
    run_in_process,
    schema,
    start_slow_tap_run,
    state,
    states_in,
)


def test_batches_respect_hubspot_limit_and_batch_size_rows(sim, config):
    run = run_in_process(config, contacts_with_states(250, 1000))
    assert run.error is None
    sizes = [e.input_count for e in sim.upsert_requests()]
    assert sum(sizes) == 250 and max(sizes) <= 100

    sim.reset()
    run = run_in_process({**config, "batch_size_rows": 30}, contacts_with_states(250, 1000))
    assert run.error is None
    sizes = [e.input_count for e in sim.upsert_requests()]
    assert sum(sizes) == 250 and max(sizes) <= 30


def test_what_lands_is_the_last_record_per_id(sim, config):
    messages = [schema("contacts")]
    expected = {}
    for i in range(600):
        rec = contact(i % 70, num_orders=i, firstname=f"v{i}")
        expected[rec["email"]] = rec
        messages.append(record("contacts", rec))
    sim.configure(latency_ms=5, latency_jitter_ms=5)
    run = run_in_process({**config, "max_concurrent_requests": 6, "batch_size_rows": 25}, messages)
    assert run.error is None
    assert len(sim.objects("contacts")) == 70
    for email, rec in expected.items():
        landed = sim.find("contacts", "email", email)["properties"]
        assert landed["firstname"] == rec["firstname"]
        assert landed["num_orders"] == str(rec["num_orders"])


def test_state_is_relayed_in_order_and_only_after_its_records_landed(sim, config):
    sim.configure(latency_ms=15, latency_jitter_ms=14, seed=7)
    run = run_in_process(
        {**config, "max_concurrent_requests": 5, "batch_size_rows": 40},
        contacts_with_states(900, 37),
    )
    assert run.error is None
    counts = [s["n"] for s in run.states]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert counts[-1] == 900
    assert len(counts) > 3  # checkpoints were relayed during the run, not only at the end
    landed = landed_times(sim)
    for value, written_at in zip(run.states, run.state_times, strict=True):
        for i in range(value["n"]):
            email = f"user{i}@example.com"
            assert email in landed, f"STATE {value} written before {email} landed"
            assert landed[email] <= written_at, f"STATE {value} written before {email} was acknowledged"


def test_401_midway_stops_with_state_covering_only_landed_records(sim, config):
    sim.configure(latency_ms=20)

    def revoke_after_three_upserts():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(sim.upsert_requests()) < 3:
            time.sleep(0.002)
        sim.revoke_token(TOKEN)

    threading.Thread(target=revoke_after_three_upserts, daemon=True).start()
    run = run_in_process(
        {**config, "max_concurrent_requests": 2, "batch_size_rows": 20},
        contacts_with_states(400, 10),
    )
    assert isinstance(run.error, HubSpotAuthError)
    assert "access_token" in str(run.error) and TOKEN not in str(run.error)
    landed = {o["properties"]["email"] for o in sim.objects("contacts")}
    assert run.states, "the checkpoints before the 401 were relayed"
    last = run.states[-1]["n"]
    assert last < 400
    assert all(f"user{i}@example.com" in landed for i in range(last))


def test_sigterm_midway_leaves_state_covering_only_landed_records(sim, config, tmp_path):
    sim.configure(latency_ms=30)
    # 110 records (four full batches and a partial one), then keep the pipe open like a slow tap.
    proc = start_slow_tap_run({**config, "batch_size_rows": 25}, contacts_with_states(110, 10)[:-1], tmp_path,
                              until=lambda: len(sim.upsert_requests()) >= 2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143  # 128 + SIGTERM, like a process the signal ended
    assert "Traceback" not in stderr and "SIGTERM" in stderr
    # The summary still reconciles: the buffered tail is reported as never sent.
    summary = re.search(
        r"received (\d+), created (\d+), updated (\d+), merged (\d+), rejected (\d+), unconfirmed \(run stopped\) (\d+)",
        stderr,
    )
    assert summary is not None
    received, *outcomes = map(int, summary.groups())
    assert 0 < received <= 110 and sum(outcomes) == received  # the signal may come before all is read
    states = states_in(stdout)
    landed = {o["properties"]["email"] for o in sim.objects("contacts")}
    # In-flight batches were given time to land, and their checkpoints were written.
    assert states
    last = states[-1]["n"]
    assert last < 110  # the buffered tail was never acknowledged, so never checkpointed
    assert all(f"user{i}@example.com" in landed for i in range(last))


def test_sigterm_during_a_long_retry_wait_exits_without_waiting_it_out(sim, config, tmp_path):
    sim.configure(retry_after_seconds=120)
    sim.script_faults([429] * 20)
    proc = start_slow_tap_run({**config, "batch_size_rows": 10}, contacts_with_states(30, 10)[:-1], tmp_path,
                              until=lambda: sim.stats["rate_limited_ten_secondly"] >= 1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert time.monotonic() - started < 10  # neither the 120 s wait nor the 30 s grace
    assert stdout == ""  # nothing landed, so nothing is checkpointed
    assert "unconfirmed (run stopped) 30" in stderr


def test_retries_recover_from_429_5xx_and_dropped_connections(sim, config):
    sim.script_faults([429, 500, "drop", 503, "drop_after_write", 423, 502, 504])
    run = run_in_process({**config, "max_concurrent_requests": 1}, contacts_with_states(300, 50))
    assert run.error is None
    assert len(sim.objects("contacts")) == 300
    statuses = [e.status for e in sim.upsert_requests()]
    assert statuses.count(None) == 2  # both dropped connections were retried
    assert {429, 500, 503, 423, 502, 504} <= set(statuses)
    stats = run.target.runtime.report.stats["contacts"]
    assert stats.tally.retries == 8 and stats.tally.rate_limited == 1
    assert stats.created + stats.updated == 300
    assert run.states[-1] == {"n": 300}


def test_timeouts_that_outlast_the_retries_name_request_timeout(sim, config):
    sim.configure(latency_ms=1500)
    run = run_in_process({**config, "request_timeout": 0.2, "max_retries": 1}, contacts_with_states(5, 5))
    assert isinstance(run.error, RetriesExhausted)
    assert re.search(r"no complete answer within request_timeout \((ReadTimeoutError|ExchangeTimeout)\)", str(run.error))
    assert "raise request_timeout or max_retries" in str(run.error)
    assert run.states == []


def test_timeouts_are_retried(sim, config):
    sim.configure(latency_ms=1500)

    def speed_up():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not sim.upsert_requests():
            time.sleep(0.01)
        time.sleep(0.5)  # the first upsert has read its 1.5 s latency and timed out (0.3 s) by now
        sim.configure(latency_ms=0)

    threading.Thread(target=speed_up, daemon=True).start()
    run = run_in_process({**config, "request_timeout": 0.3}, contacts_with_states(50, 50))
    assert run.error is None
    assert len(sim.objects("contacts")) == 50
    assert run.target.runtime.report.stats["contacts"].tally.retries >= 1


def test_daily_limit_is_fatal_with_a_clear_message(sim, config):
    sim.script_faults(["daily_429"])
    run = run_in_process(config, contacts_with_states(10, 10))
    assert run.error is not None
    assert "daily" in str(run.error).lower() and "midnight" in str(run.error)
    assert run.states == []


def test_object_without_default_id_property_is_a_config_error_at_schema(sim, config):
    run = run_in_process(config, [schema("companies", {"name": {"type": "string"}})])
    assert isinstance(run.error, HubSpotConfigError)
    message = " ".join(run.error.errors)
    assert "companies" in message and "object_mappings" in message and "id_property" in message
    assert sim.upsert_requests() == []


def test_stream_not_named_after_an_object_and_without_mapping_says_so(sim, config):
    run = run_in_process(config, [schema("accounts", {"name": {"type": "string"}})])
    assert isinstance(run.error, HubSpotConfigError)
    message = " ".join(run.error.errors)
    assert "Stream 'accounts' is not named after a HubSpot object" in message
    assert '{"accounts": {"object_type": "companies", "id_property": "<unique property>"}}' in message
    assert sim.requests == []


def test_custom_object_by_type_id_and_custom_unique_property(sim, config):
    cfg = {**config, "object_mappings": {"widgets_table": {"object_type": "2-1234567", "id_property": "widget_id"}}}
    props = {"widget_id": {"type": "string"}, "name": {"type": "string"}, "size": {"type": "number"}}
    run = run_in_process(cfg, [
        schema("widgets_table", props),
        record("widgets_table", {"widget_id": "w-1", "name": "Sprocket", "size": 2.50}),
    ])
    assert run.error is None
    landed = sim.find("p_widgets", "widget_id", "w-1")
    assert landed["properties"]["name"] == "Sprocket" and landed["properties"]["size"] == "2.5"


def test_batch_messages_are_split_into_requests_of_at_most_100(sim, config, tmp_path):
    batch_file = tmp_path / "contacts.jsonl"
    batch_file.write_text("".join(json.dumps(contact(i)) + "\n" for i in range(230)))
    run = run_in_process(config, [
        schema("contacts"),
        {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl", "compression": "none"},
         "manifest": [batch_file.as_uri()]},
        state({"batch": 1}),
    ])
    assert run.error is None
    assert len(sim.objects("contacts")) == 230
    assert max(e.input_count for e in sim.upsert_requests()) <= 100
    assert run.states == [{"batch": 1}]


def test_cli_pipeline_prints_only_state_on_stdout_and_a_summary(sim, config, tmp_path):
    run = run_cli(config, (FIXTURES / "contacts_basic.singer").read_text(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"bookmarks": {"contacts": {"updated_at": "2024-03-02T00:00:00Z"}}}]
    assert "Stream 'contacts' -> contacts: received 5, created 4, updated 0, merged 1, rejected 0" in run.stderr
    assert "http_request_duration" in run.stderr and "record_count" in run.stderr
    assert TOKEN not in run.stdout + run.stderr


def test_config_errors_exit_cleanly_without_traceback(sim, config, tmp_path):
    run = run_cli({**config, "batch_size_rows": 500}, "", tmp_path=tmp_path)
    assert run.returncode == 1
    assert "batch_size_rows must be a whole number from 1 to 100" in run.stderr
    assert "Traceback" not in run.stderr


def test_module_and_console_script_both_work(tmp_path):
    about = subprocess.run(
        [sys.executable, "-m", "target_hubspot_upsert", "--about", "--format=markdown"],
        capture_output=True, text=True, check=True,
    )
    for setting in ("access_token", "object_mappings", "batch_size_rows", "max_concurrent_requests"):
        assert setting in about.stdout
    scripts = os.path.dirname(sys.executable)
    version = subprocess.run(
        [os.path.join(scripts, "target-hubspot-upsert"), "--version"], capture_output=True, text=True, check=True,
    )
    assert "target-hubspot-upsert" in version.stdout + version.stderr


@pytest.mark.parametrize("api_version", ["v3", "2026-09"])
def test_both_api_versions(sim, config, api_version):
    run = run_in_process({**config, "api_version": api_version}, contacts_with_states(120, 60))
    assert run.error is None
    assert len(sim.objects("contacts")) == 120
    paths = {e.path for e in sim.upsert_requests()}
    expected = "/crm/v3/objects/contacts/batch/upsert" if api_version == "v3" else "/crm/objects/2026-09/contacts/batch/upsert"
    assert paths == {expected}


def landed_and_in_flight(sim) -> bool:
    """A batch landed and a later one is being answered."""
    upserts = sim.upsert_requests()
    return any(e.status == 200 for e in upserts) and any(e.status is None and e.seq > min(
        e2.seq for e2 in upserts if e2.status == 200) for e in upserts)


def test_a_second_sigterm_during_the_grace_still_writes_checkpoints_and_summary(sim, config, tmp_path):
    # Each answer takes 6 s: once batches 1-2 landed, batches 3-4 are in flight when the signals come.
    sim.configure(latency_ms=6000)
    proc = start_slow_tap_run({**config, "batch_size_rows": 10, "max_concurrent_requests": 2},
                              contacts_with_states(40, 10)[:-1], tmp_path,
                              until=lambda: landed_and_in_flight(sim))
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    second = time.monotonic()
    still_waiting = proc.poll() is None  # (under load the batches may all have landed already)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - second < 3  # not the rest of the 6 s answers nor the 30 s grace
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "Received SIGTERM again" in stderr or not still_waiting
    assert re.search(r"Stream 'contacts' -> contacts: received \d+", stderr)  # the summary was written
    states = states_in(stdout)
    assert states and states[-1]["n"] >= 10  # the checkpoints earned by the batches that landed
