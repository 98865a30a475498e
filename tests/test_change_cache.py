"""skip_unchanged: the change cache sends only what changed, and never skips a change."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import ARCHIVE, PendingInput
from target_hubspot_upsert.pipeline.changecache import (
    ChangeCache,
    ObjectTriage,
    generation_key,
    input_digest,
    object_key,
    utc_day,
)

from .conftest import TOKEN
from .helpers import (
    contact,
    contacts_with_states,
    enable_oauth,
    landed_times,
    lines,
    oauth_config,
    record,
    run_cli,
    run_in_process,
    schema,
    start_slow_tap_run,
    state,
)

TOKEN_B = "test-token-other-portal"


def upserts_since(sim, since: int) -> list:
    return [e for e in sim.requests[since:] if e.endpoint == "batch_upsert"]


def sent_ids(sim, since: int = 0) -> list[str]:
    """Ids of every input of the batch upserts logged after the first `since` requests."""
    return [i for e in upserts_since(sim, since) for i in e.ids or []]


def query(path: str | Path, sql: str) -> list[tuple]:
    """Every row of one query on the cache file, on a connection closed afterwards."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def tables_in(path: str) -> set[str]:
    return {name for (name,) in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def age_entries(path: str, days: int) -> None:
    """Make every cache entry `days` days older (what a clock moved forward would see)."""
    tables = tables_in(path)
    with sqlite3.connect(path) as conn:
        for table in tables:
            conn.execute(f'UPDATE "{table}" SET d = d - ?', (days,))  # noqa: S608 - table names from the file


def stats_of(run, stream: str = "contacts"):
    return run.target.runtime.report.stats[stream]


# --- what is skipped --------------------------------------------------------------------


def test_a_second_run_of_the_same_input_sends_nothing_and_emits_the_same_state(sim, cache_config, tmp_path):
    report_path = tmp_path / "report.json"
    config = {**cache_config, "run_report_path": str(report_path), "batch_size_rows": 50}
    messages = contacts_with_states(500, 40)
    first = run_in_process(config, messages)
    assert first.error is None
    assert len(sent_ids(sim)) == 500
    mark = len(sim.requests)

    second = run_in_process(config, messages)
    assert second.error is None
    assert upserts_since(sim, mark) == []  # nothing sent
    assert second.states[-1] == first.states[-1] == {"n": 500}
    assert len(second.states) > 1  # unchanged records do not hold checkpoints back
    stats = stats_of(second)
    assert (stats.received, stats.unchanged, stats.created + stats.updated + stats.rejected) == (500, 500, 0)
    assert stats.requests_saved == 10  # 500 unchanged records / 50 per request
    report = json.loads(report_path.read_text())["streams"]["contacts"]
    assert report["unchanged"] == 500 and report["requests_saved"] == 10 and report["requests"] == 0
    # One account look-up per run, and only with skip_unchanged on.
    assert sum(e.endpoint == "account_info" for e in sim.requests) == 2


def test_the_summary_reconciles_with_unchanged_and_names_the_requests_saved(sim, cache_config, tmp_path):
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(150)), state({"n": 150})]
    assert run_cli(cache_config, messages, tmp_path=tmp_path).returncode == 0
    changed = [schema("contacts")]
    for i in range(150):
        changed.append(record("contacts", contact(i, firstname="New" if i < 3 else f"User {i}")))
        if i == 7:
            changed.append(record("contacts", contact(7)))  # merged with the one before: both unchanged
    changed += [record("contacts", {"email": "broken"}), state({"n": 152})]
    run = run_cli({**cache_config, "max_rejected_records": 1}, changed, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    line = re.search(r"Stream 'contacts' -> contacts: (.*); elapsed [^;]+ s, \d+ records/s$", run.stderr, re.MULTILINE)
    assert line is not None
    assert line.group(1) == (
        "received 152, created 0, updated 3, merged 1, rejected 1, unchanged 147; "
        "requests 1 (2 saved by skip_unchanged), retries 0, 429s 0"
    )


def test_only_the_changed_records_are_sent_in_full_batches(sim, cache_config):
    config = {**cache_config, "batch_size_rows": 100}
    assert run_in_process(config, contacts_with_states(10_000, 1000)).error is None
    mark = len(sim.requests)
    messages = [schema("contacts")]
    changed = set()
    for i in range(10_000):
        rec = contact(i, num_orders=i)
        if i % 100 == 37:  # 1% changed
            rec["firstname"] = f"Changed {i}"
            changed.add(rec["email"])
        messages.append(record("contacts", rec))
        if (i + 1) % 1000 == 0:
            messages.append(state({"n": i + 1}))
    run = run_in_process(config, messages)
    assert run.error is None
    assert set(sent_ids(sim, mark)) == changed and len(sent_ids(sim, mark)) == 100
    assert len(upserts_since(sim, mark)) == 1  # held until they filled one batch, not 100 requests
    assert sim.find("contacts", "email", "user37@example.com")["properties"]["firstname"] == "Changed 37"
    assert run.states[-1] == {"n": 10_000}
    stats = stats_of(run)
    assert (stats.updated, stats.unchanged, stats.requests_saved) == (100, 9_900, 99)


def test_state_waits_for_held_changed_records_to_land(sim, cache_config):
    config = {**cache_config, "batch_size_rows": 10, "max_concurrent_requests": 3}
    assert run_in_process(config, contacts_with_states(600, 600)).error is None
    sim.configure(latency_ms=10, latency_jitter_ms=9, seed=3)
    messages = [schema("contacts")]
    for i in range(600):
        messages.append(record("contacts", contact(i, num_orders=i + (1 if i % 7 == 0 else 0))))
        if (i + 1) % 13 == 0:
            messages.append(state({"n": i + 1}))
    messages.append(state({"n": 600}))
    mark = len(sim.requests)
    run = run_in_process(config, messages)
    assert run.error is None
    landed = landed_times(sim)
    changed = {f"user{i}@example.com" for i in range(0, 600, 7)}
    assert set(sent_ids(sim, mark)) == changed
    assert len(run.states) > 3
    for value, written_at in zip(run.states, run.state_times, strict=True):
        for i in range(0, value["n"], 7):
            assert landed[f"user{i}@example.com"] <= written_at, f"STATE {value} written before user{i} landed"


def test_other_spellings_of_the_same_values_are_unchanged(sim, cache_config):
    props = {
        "email": {"type": "string"},
        "lifetime_value": {"type": ["number", "string", "null"]},
        "is_vip": {"type": ["boolean", "string", "null"]},
        "last_order_at": {"type": ["string", "null"]},
        "interests": {"type": ["array", "string", "null"], "items": {"type": "string"}},
        "firstname": {"type": ["string", "null"]},
    }
    first = {"email": "Ada@Example.com", "lifetime_value": "1.50", "is_vip": True,
             "last_order_at": "2024-03-01T08:30:00Z", "interests": ["music", "sports"], "firstname": None}
    again = {"email": "ada@example.com", "lifetime_value": "1.5", "is_vip": "True",
             "last_order_at": "2024-03-01T09:30:00+01:00", "interests": "music;sports"}
    text = lines([schema("contacts", props), record("contacts", first)]).replace('"1.50"', "1.50")
    assert run_in_process(cache_config, text).error is None
    assert sim.find("contacts", "email", "ada@example.com")["properties"]["lifetime_value"] == "1.5"
    mark = len(sim.requests)
    run = run_in_process(cache_config, [schema("contacts", props), record("contacts", again)])
    assert run.error is None
    assert upserts_since(sim, mark) == []
    assert stats_of(run).unchanged == 1


def test_nulls_hash_as_they_are_sent(sim, cache_config):
    null_name = [schema("contacts"), record("contacts", contact(1, firstname=None))]
    assert run_in_process(cache_config, null_name).error is None
    mark = len(sim.requests)
    # Under skip a null is left out: the same as no field at all.
    assert run_in_process(cache_config, [schema("contacts"), record("contacts", {"email": "user1@example.com"})]).error is None
    assert upserts_since(sim, mark) == []
    # Under clear a null is sent as "" (it clears the value): a change, then the same as "".
    clear = {**cache_config, "null_values": "clear"}
    assert run_in_process(clear, null_name).error is None
    assert sent_ids(sim, mark) == ["user1@example.com"]
    mark = len(sim.requests)
    assert run_in_process(clear, [schema("contacts"), record("contacts", contact(1, firstname=""))]).error is None
    assert upserts_since(sim, mark) == []


# --- per-id order ------------------------------------------------------------------------


def test_an_id_in_flight_with_another_value_is_sent_again_not_compared(sim, cache_config):
    ada = {"email": "ada@example.com", "firstname": "A"}
    assert run_in_process(cache_config, [schema("contacts"), record("contacts", ada)]).error is None
    sim.configure(latency_ms=150)
    mark = len(sim.requests)
    # B goes out first; A (what the cache holds) comes back while B is in flight: A must win.
    messages = [schema("contacts"), record("contacts", {**ada, "firstname": "B"}),
                *(record("contacts", contact(i)) for i in range(5)), record("contacts", ada), state({"n": 7})]
    run = run_in_process({**cache_config, "batch_size_rows": 1}, messages)
    assert run.error is None
    assert sim.find("contacts", "email", "ada@example.com")["properties"]["firstname"] == "A"
    assert sent_ids(sim, mark).count("ada@example.com") == 2
    assert run.states == [{"n": 7}]


def test_records_merged_in_one_buffer_are_compared_as_merged(sim, cache_config):
    ada = {"email": "ada@example.com", "firstname": "A", "num_orders": 1}
    assert run_in_process(cache_config, [schema("contacts"), record("contacts", ada)]).error is None
    mark = len(sim.requests)
    run = run_in_process(cache_config, [
        schema("contacts"), record("contacts", {**ada, "firstname": "B"}), record("contacts", ada),
    ])
    assert run.error is None
    assert upserts_since(sim, mark) == []
    stats = stats_of(run)
    assert (stats.unchanged, stats.merged) == (1, 1)


# --- crash safety ------------------------------------------------------------------------


def test_kill_9_while_batches_are_in_flight_leaves_a_cache_that_resends(sim, cache_config, tmp_path):
    config = {**cache_config, "batch_size_rows": 10, "max_concurrent_requests": 2}

    def messages(value: str) -> list[dict]:
        return contacts_with_states(80, 10) if value == "A" else [
            schema("contacts"),
            *(record("contacts", contact(i, num_orders=i, firstname=f"{value} {i}")) for i in range(80)),
            state({"n": 80}),
        ]

    assert run_cli(config, messages("A"), tmp_path=tmp_path).returncode == 0
    mark = len(sim.requests)
    sim.configure(latency_ms=1000)

    def a_later_batch_in_flight() -> bool:
        # Kill once a batch was answered and a later one is in flight (being written, not yet answered).
        batches = upserts_since(sim, mark)
        answered = [e.finished for e in batches if e.status == 200 and e.finished is not None]
        return bool(answered) and any(e.finished is None and e.ids and e.started >= min(answered) for e in batches)

    proc = start_slow_tap_run(config, messages("B"), tmp_path, a_later_batch_in_flight, timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    in_flight = {i for e in upserts_since(sim, mark) if e.finished is None for i in e.ids or []}
    assert in_flight
    while any(e.finished is None for e in upserts_since(sim, mark)):
        time.sleep(0.01)  # HubSpot still writes what the dead process sent
    written = {i for e in upserts_since(sim, mark) for i in e.ids or []}
    for email in in_flight:
        assert sim.find("contacts", "email", email)["properties"]["firstname"].startswith("B ")

    # The source changes back to A: every object HubSpot got B for must be sent again.
    sim.configure(latency_ms=0)
    mark = len(sim.requests)
    run = run_cli(config, messages("A"), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert written <= set(sent_ids(sim, mark))
    for obj in sim.objects("contacts"):
        assert obj["properties"]["firstname"] == f"User {obj['properties']['num_orders']}", obj
    assert run.states[-1] == {"n": 80}


def test_a_rejected_input_leaves_no_entry(sim, cache_config):
    ada = {"email": "ada@example.com", "firstname": "Ada"}
    assert run_in_process(cache_config, [schema("contacts"), record("contacts", ada)]).error is None
    age_entries(cache_config["change_cache_path"], 30)  # stale: sent again
    sim.add_validation_rule("contacts", "firstname", "Ada")
    run = run_in_process({**cache_config, "max_rejected_records": 1}, [schema("contacts"), record("contacts", ada)])
    assert run.error is None and stats_of(run).rejected == 1
    assert query(cache_config["change_cache_path"], 'SELECT count(*) FROM "portal_12345678"')[0][0] == 0


def test_a_failed_batch_leaves_no_entry(sim, cache_config):
    config = {**cache_config, "request_timeout": 0.2, "max_retries": 1}
    assert run_in_process(config, [schema("contacts"), record("contacts", contact(1))]).error is None
    age_entries(config["change_cache_path"], 30)
    sim.configure(latency_ms=1000)
    run = run_in_process(config, [schema("contacts"), record("contacts", contact(1))])
    assert run.error is not None  # no answer within the timeout: the outcome is unknown
    assert query(config["change_cache_path"], 'SELECT count(*) FROM "portal_12345678"')[0][0] == 0


# --- accounts, age, full resync ------------------------------------------------------------


def test_two_portals_share_one_file_without_mixing(sim, cache_config):
    sim.configure(tokens={TOKEN, TOKEN_B}, portals={TOKEN: 111, TOKEN_B: 222})
    messages = contacts_with_states(120, 60)
    assert run_in_process(cache_config, messages).error is None
    mark = len(sim.requests)
    other = run_in_process({**cache_config, "access_token": TOKEN_B}, messages)
    assert other.error is None
    assert len(sent_ids(sim, mark)) == 120  # another account starts from empty
    mark = len(sim.requests)
    assert run_in_process(cache_config, messages).error is None
    assert run_in_process({**cache_config, "access_token": TOKEN_B}, messages).error is None
    assert upserts_since(sim, mark) == []
    assert tables_in(cache_config["change_cache_path"]) == {"portal_111", "portal_222"}


@pytest.mark.parametrize("account_info", ["missing", "forbidden"])
def test_without_account_details_the_token_metadata_names_the_account(sim, cache_config, account_info):
    sim.configure(account_info=account_info, portals={TOKEN: 333})
    messages = contacts_with_states(40, 20)
    assert run_in_process(cache_config, messages).error is None
    mark = len(sim.requests)
    second = run_in_process(cache_config, messages)
    assert second.error is None and upserts_since(sim, mark) == []
    assert second.states[-1] == {"n": 40}
    assert [e.endpoint for e in sim.requests[mark:] if e.endpoint in {"account_info", "token_info"}] == [
        "account_info", "token_info"]
    assert tables_in(cache_config["change_cache_path"]) == {"portal_333"}


def test_when_hubspot_names_no_account_the_cache_is_kept_per_token(sim, cache_config, caplog):
    sim.configure(account_info="missing", token_info="missing", tokens={TOKEN, TOKEN_B})
    messages = contacts_with_states(40, 20)
    first = run_in_process(cache_config, messages)
    assert first.error is None
    assert "kept per token" in caplog.text and TOKEN not in caplog.text
    mark = len(sim.requests)
    assert run_in_process(cache_config, messages).error is None
    assert upserts_since(sim, mark) == []  # the same token: unchanged records are skipped
    mark = len(sim.requests)
    assert run_in_process({**cache_config, "access_token": TOKEN_B}, messages).error is None
    assert len(sent_ids(sim, mark)) == 40  # another token starts from empty: never another account's entries
    tables = tables_in(cache_config["change_cache_path"])
    assert len(tables) == 2 and all(re.fullmatch(r"token_[0-9a-f]{16}", name) for name in tables)
    assert not any(TOKEN in name or TOKEN_B in name for name in tables)


def test_oauth_without_account_details_keys_the_cache_by_app_and_refresh_token(sim, cache_config):
    enable_oauth(sim)
    sim.configure(account_info="missing")
    config = {**oauth_config(sim), "skip_unchanged": True, "change_cache_path": cache_config["change_cache_path"]}
    messages = contacts_with_states(30, 10)
    assert run_in_process(config, messages).error is None
    mark = len(sim.requests)
    assert run_in_process(config, messages).error is None
    assert upserts_since(sim, mark) == []
    assert not any(e.endpoint == "token_info" for e in sim.requests)  # its token would go in a URL path
    (table,) = tables_in(config["change_cache_path"])
    assert re.fullmatch(r"token_[0-9a-f]{16}", table)


def test_entries_older_than_the_max_age_are_sent_again(sim, cache_config):
    config = {**cache_config, "change_cache_max_age_days": 7}
    messages = contacts_with_states(50, 50)
    assert run_in_process(config, messages).error is None
    age_entries(config["change_cache_path"], 6)
    mark = len(sim.requests)
    assert run_in_process(config, messages).error is None
    assert upserts_since(sim, mark) == []  # 6 days old: still trusted
    age_entries(config["change_cache_path"], 1)
    run = run_in_process(config, messages)
    assert run.error is None
    assert len(sent_ids(sim, mark)) == 50  # 7 days old: sent again, and refreshed
    assert query(config["change_cache_path"], 'SELECT min(d), max(d) FROM "portal_12345678"')[0] == (utc_day(), utc_day())
    mark = len(sim.requests)
    assert run_in_process(config, messages).error is None
    assert upserts_since(sim, mark) == []


def test_full_resync_sends_everything_and_refreshes_the_cache(sim, cache_config, tmp_path):
    messages = contacts_with_states(60, 30)
    assert run_cli(cache_config, messages, tmp_path=tmp_path).returncode == 0
    age_entries(cache_config["change_cache_path"], 3)
    mark = len(sim.requests)
    run = run_cli(cache_config, messages, tmp_path=tmp_path, args=["--full-resync"])
    assert run.returncode == 0, run.stderr
    assert len(sent_ids(sim, mark)) == 60
    assert "full resync" in run.stderr
    assert query(cache_config["change_cache_path"], 'SELECT min(d) FROM "portal_12345678"')[0] == (utc_day(),)
    mark = len(sim.requests)
    assert run_cli(cache_config, messages, tmp_path=tmp_path).returncode == 0  # the flag held for one run
    assert upserts_since(sim, mark) == []
    assert run_in_process({**cache_config, "full_resync": True}, messages).error is None  # the setting
    assert len(sent_ids(sim, mark)) == 60


def test_a_dry_run_shows_what_would_be_skipped_and_writes_no_entry(sim, cache_config, tmp_path):
    assert run_in_process(cache_config, contacts_with_states(50, 50)).error is None
    age_entries(cache_config["change_cache_path"], 1)
    before = query(cache_config["change_cache_path"], 'SELECT k, h, d FROM "portal_12345678" ORDER BY k')
    mark = len(sim.requests)
    messages = [schema("contacts"), *(record("contacts", contact(i, num_orders=i + (i == 3))) for i in range(50))]
    run = run_cli(cache_config, messages, tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    assert upserts_since(sim, mark) == []
    assert "would create or update 1 record(s) as 1 object(s) in 1 request(s); unchanged 49 (not sent)" in run.stderr
    assert query(cache_config["change_cache_path"], 'SELECT k, h, d FROM "portal_12345678" ORDER BY k') == before


def test_an_account_look_up_that_fails_stops_the_run_before_anything_is_sent(sim, cache_config):
    # The look-up starts in the background with the first stream; its failure surfaces when the
    # cache is first needed, as the run's one error.
    sim.configure(hostile={"mode": "redirect", "paths": "/account-info/", "location": "http://127.0.0.1:9"})
    run = run_in_process(cache_config, contacts_with_states(30, 10))
    assert run.error is not None
    assert "redirect" in str(run.error).lower() and "api_base_url" in str(run.error)
    assert sent_ids(sim) == []
    assert run.states == []


def test_off_by_default_no_account_lookup_and_no_file(sim, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_in_process(config, contacts_with_states(30, 30))
    assert run.error is None
    assert not any(e.endpoint == "account_info" for e in sim.requests)
    assert not (tmp_path / ".target-hubspot-upsert").exists()
    assert "unchanged" not in stats_of(run).summary_line()


def test_the_default_file_is_under_the_working_directory(sim, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_in_process({**config, "skip_unchanged": True}, contacts_with_states(10, 10)).error is None
    assert (tmp_path / ".target-hubspot-upsert" / "changes.sqlite").is_file()


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("change_cache_max_age_days", 0, "change_cache_max_age_days must be a whole number of days, at least 1"),
    ("change_cache_path", " ", "change_cache_path must name a file"),
])
def test_bad_cache_settings_are_config_errors(sim, cache_config, tmp_path, setting, value, message):
    run = run_cli({**cache_config, setting: value}, "", tmp_path=tmp_path)
    assert run.returncode == 1 and message in run.stderr


def test_an_unusable_cache_file_stops_with_a_clear_message(sim, cache_config, tmp_path):
    Path(cache_config["change_cache_path"]).parent.mkdir(parents=True)
    Path(cache_config["change_cache_path"]).write_text("not a database" * 100)
    run = run_cli(cache_config, contacts_with_states(5, 5), tmp_path=tmp_path)
    assert run.returncode == 1
    assert "Could not open the change cache" in run.stderr and "Traceback" not in run.stderr
    assert run.states == []


# --- the hashes and the file ----------------------------------------------------------------


def test_input_digest_ignores_key_order_and_includes_associations():
    a = input_digest({"email": "a@b.co", "firstname": "A"})
    assert a == input_digest({"firstname": "A", "email": "a@b.co"})
    assert a != input_digest({"email": "a@b.co", "firstname": "B"})
    assert a != input_digest({"email": "a@b.co", "firstname": "A", "lastname": ""})
    assert input_digest({"x": "1"}, []) == input_digest({"x": "1"})
    with_assoc = input_digest({"x": "1"}, [("companies", "9", 279), ("deals", "3", 4)])
    assert with_assoc == input_digest({"x": "1"}, [("deals", "3", 4), ("companies", "9", 279)])
    assert with_assoc not in (input_digest({"x": "1"}), input_digest({"x": "1"}, [("companies", "9", 279)]))
    assert input_digest({"x": "\ud800"}) is None  # not encodable: the writer rejects it, never cached


def test_object_keys_differ_by_type_property_and_id_as_hubspot_matches_ids():
    key = object_key("contacts", "email", "a@b.co")
    assert key == object_key("contacts", "email", " A@b.co")  # emails match in any case
    assert key != object_key("contacts", "email", "b@b.co")
    assert key != object_key("companies", "email", "a@b.co")
    assert key != object_key("contacts", "external_id", "a@b.co")
    assert object_key("contacts", "external_id", "X1") != object_key("contacts", "external_id", "x1")


def test_the_hot_path_hashes_as_the_public_functions_do():
    items = [PendingInput("ada@example.com", {"email": "ada@example.com", "n": "1"}, []),
             PendingInput("b@c.de", {"firstname": "\ud800"}, []),
             PendingInput("c@d.de", {}, [], op=ARCHIVE)]
    triage = ObjectTriage(None, ObjectTarget("contacts", "0-1", "email"))  # type: ignore[arg-type]  # canonical type: contacts
    keys, digests = zip(*triage._hashes(items), strict=True)
    assert list(keys) == [object_key("contacts", "email", item.id) for item in items]
    assert digests[0] == input_digest(items[0].properties)
    assert digests[1:] == (None, None)  # not encodable; an archive


# --- deletes and associations --------------------------------------------------------------

DELETES_SCHEMA = {
    "email": {"type": "string"},
    "firstname": {"type": ["string", "null"]},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}


def test_an_archive_removes_the_entry_so_the_same_record_recreates_the_object(sim, cache_config):
    config = {**cache_config, "hard_delete": True}
    ada = {"email": "ada@example.com", "firstname": "Ada"}
    assert run_in_process(config, [schema("contacts", DELETES_SCHEMA), record("contacts", ada)]).error is None
    deleted = {**ada, "_sdc_deleted_at": "2024-03-01T10:00:00Z"}
    run = run_in_process(config, [schema("contacts", DELETES_SCHEMA), record("contacts", deleted)])
    assert run.error is None and stats_of(run).archived == 1
    assert sim.objects("contacts") == []
    ada_key = object_key("contacts", "email", "ada@example.com")
    rows = query(config["change_cache_path"], 'SELECT k FROM "portal_12345678"')
    # The object's entry is gone; what is left is its generation as an association target.
    assert rows == [(generation_key("contacts", "email", "ada@example.com"),)] and ada_key not in rows[0]
    mark = len(sim.requests)
    run = run_in_process(config, [schema("contacts", DELETES_SCHEMA), record("contacts", ada)])
    assert run.error is None
    assert sent_ids(sim, mark) == ["ada@example.com"]  # not skipped: the object was archived
    assert [o["properties"]["firstname"] for o in sim.objects("contacts")] == ["Ada"]


def test_associations_are_part_of_what_is_compared(sim, cache_config):
    config = {**cache_config, "object_mappings": {
        "accounts": {"object_type": "companies", "id_property": "company_external_id"},
        "contacts": {"associations": [
            {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"},
        ]},
    }}
    accounts = [
        schema("accounts", {"company_external_id": {"type": "string"}, "name": {"type": ["string", "null"]}}),
        record("accounts", {"company_external_id": "c-1", "name": "Acme"}),
        record("accounts", {"company_external_id": "c-2", "name": "Globex"}),
    ]
    contact_schema = schema("contacts", {"email": {"type": "string"}, "firstname": {"type": ["string", "null"]},
                                         "company_ref": {"type": ["string", "null"]}})

    def messages(company: str) -> list[dict]:
        return [*accounts, contact_schema,
                record("contacts", {"email": "ada@example.com", "firstname": "Ada", "company_ref": company})]

    assert run_in_process(config, messages("c-1")).error is None
    assert len(sim.associations("contacts", "companies")) == 1
    mark = len(sim.requests)
    assert run_in_process(config, messages("c-1")).error is None
    assert [e.endpoint for e in sim.requests[mark:] if e.endpoint.startswith(("batch", "associations"))] == []
    run = run_in_process(config, messages("c-2"))  # same properties, another company: sent
    assert run.error is None
    assert sent_ids(sim, mark) == ["ada@example.com"]
    assert len(sim.associations("contacts", "companies")) == 2
    assert stats_of(run, "accounts").unchanged == 2


def test_written_entries_are_seen_before_their_commit_and_a_delete_drops_them(tmp_path, monkeypatch):
    path = tmp_path / "changes.sqlite"
    cache = ChangeCache(path, 1)

    def in_file() -> dict[int, tuple[int, int, int | None]]:
        return {k: (h, d, r) for k, h, d, r in query(path, 'SELECT k, h, d, r FROM "portal_1"')}

    try:
        cache.write([(1, 11, 100, None), (2, 22, 100, 7), (3, 33, 100, -5)])
        assert in_file() == {}  # not committed yet: one transaction per many batches
        assert cache.lookup([1, 2, 3, 4]) == {1: (11, 100, None), 2: (22, 100, 7), 3: (33, 100, -5)}
        cache.write((), [2], durable=True)  # a changed value is about to be sent
        assert cache.lookup([1, 2, 3]) == {1: (11, 100, None), 3: (33, 100, -5)}
        with cache._lock:  # what the next COMMIT_ENTRIES-th entry or close would do
            cache._commit_pending()
        assert in_file() == {1: (11, 100, None), 3: (33, 100, -5)}  # the deleted entry is not resurrected
        cache.write([(1, 12, 101, 9)])
        assert cache.lookup([1]) == {1: (12, 101, 9)}  # the newer value, not the committed one
        monkeypatch.setattr("target_hubspot_upsert.pipeline.changecache.COMMIT_ENTRIES", 3)
        cache.write([(5, 55, 101, None), (6, 66, 101, None)])  # three pending: committed
        assert in_file() == {1: (12, 101, 9), 3: (33, 100, -5), 5: (55, 101, None), 6: (66, 101, None)}
        cache.write([(7, 77, 101, None)])
    finally:
        cache.close()
    assert in_file()[7] == (77, 101, None)  # closing commits what is pending


def test_the_cache_size_benchmark_runs_against_the_current_cache():
    script = Path(__file__).resolve().parents[1] / "bench" / "cache_size.py"
    done = subprocess.run([sys.executable, str(script), "--entries", "3000"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^3,000 entries written in \d+ s: \d+ MiB, [0-9.]+ bytes per entry$", done.stdout, re.MULTILINE)
    assert "3,000 look-ups, 500 per query" in done.stdout and "(3,000 found)" in done.stdout


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    committed=st.dictionaries(st.integers(0, 30), st.tuples(st.integers(98, 102), st.none() | st.integers(0, 3))),
    pending=st.dictionaries(st.integers(0, 30), st.tuples(st.integers(98, 102), st.none() | st.integers(0, 3))),
    gone=st.lists(st.integers(0, 30), max_size=5),
    asked=st.lists(st.tuples(st.integers(0, 35), st.integers(0, 3)), max_size=40, unique_by=lambda pair: pair[0]),
    days=st.tuples(st.integers(97, 103), st.integers(97, 103)),
)
def test_the_look_up_as_read_in_sqlite_finds_what_the_rows_say(
    tmp_path, monkeypatch, committed, pending, gone, asked, days,
):
    """`changed_as_read` (compared in SQLite) against `lookup` (rows compared here), committed and pending entries."""
    monkeypatch.setattr("target_hubspot_upsert.pipeline.changecache.LOOKUP_CHUNK", 7)  # several queries
    cache = ChangeCache(Path(tempfile.mkdtemp(dir=tmp_path)) / "changes.sqlite", 1)
    try:
        cache.write([(k, 1, d, r) for k, (d, r) in committed.items()])
        with cache._lock:
            cache._commit_pending()
        cache.write([(k, 1, d, r) for k, (d, r) in pending.items()])  # newer than the file, not committed
        cache.write((), gone)
        oldest, newest = days
        keys, as_read = [k for k, _ in asked], [r for _, r in asked]
        rows = cache.lookup(keys)
        expected = {k for k, r in asked if k not in rows or rows[k][2] != r or not oldest <= rows[k][1] <= newest}
        assert cache.changed_as_read(keys, as_read, oldest, newest) == expected
    finally:
        cache.close()


def test_the_look_up_as_read_keeps_within_sqlites_parameter_limit_and_any_day_range(tmp_path):
    cache = ChangeCache(tmp_path / "changes.sqlite", 1)
    try:
        cache.write([(k, 1, 100, 7) for k in range(1, 601)])
        with cache._lock:
            cache._commit_pending()
        cache._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # the default before SQLite 3.32
        keys = list(range(1, 701))
        assert cache.changed_as_read(keys, [7] * 700, 100, 100) == set(range(601, 701))
        assert cache.changed_as_read(keys, [7] * 700, 100 - 10**19 + 1, 100) == set(range(601, 701))
    finally:
        cache.close()


def test_a_huge_max_age_skips_as_any_other(sim, cache_config):
    config = {**cache_config, "change_cache_max_age_days": 10**19}
    messages = contacts_with_states(20, 20)
    assert run_in_process(config, messages).error is None
    run = run_in_process(config, messages)
    assert run.error is None and stats_of(run).unchanged == 20
