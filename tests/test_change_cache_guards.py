"""The change cache cannot be made to claim values HubSpot does not hold.

One writer per file and account, entries dated in the future, association targets archived and
created again, and a signal after the last STATE.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time

from .helpers import contact, record, run_cli, schema, start_slow_tap_run, state, summary


def cache_path(tmp_path):
    """The file of the `cache_config` fixture's change_cache_path."""
    return tmp_path / "cache" / "changes.sqlite"


def contacts(n: int, name: str = "User") -> list[dict]:
    return [schema("contacts", key=["email"]),
            *(record("contacts", contact(i, firstname=f"{name} {i}")) for i in range(n)), state({"n": n})]


def test_a_second_run_on_the_same_cache_and_account_stops_before_sending_anything(sim, cache_config, tmp_path):
    (tmp_path / "a").mkdir()
    first = start_slow_tap_run(
        cache_config, contacts(50, "A")[:-1], tmp_path / "a", until=cache_path(tmp_path).exists,
    )
    try:
        mark = len(sim.requests)
        (tmp_path / "b").mkdir()
        second = run_cli(cache_config, contacts(50, "B"), tmp_path=tmp_path / "b")
        assert second.returncode != 0
        assert "Another run is writing the change cache" in second.stderr
        assert "Traceback" not in second.stderr
        assert second.states == []
        sent = [e for e in sim.requests[mark:] if e.endpoint in ("batch_upsert", "properties", "property_groups")
                and e.method == "POST"]
        assert sent == []
    finally:
        _out, err = first.communicate(lines_end(), timeout=60)
    assert first.returncode == 0, err
    assert {o["properties"]["firstname"] for o in sim.objects("contacts")} == {f"A {i}" for i in range(50)}
    # Once the first run is done, the next one goes ahead.
    third = run_cli(cache_config, contacts(50, "B"), tmp_path=tmp_path / "b")
    assert third.returncode == 0, third.stderr
    assert {o["properties"]["firstname"] for o in sim.objects("contacts")} == {f"B {i}" for i in range(50)}


def lines_end() -> str:
    return '{"type": "STATE", "value": {"n": 50}}\n'


def test_runs_for_another_account_on_the_same_file_are_not_held_up(sim, cache_config, tmp_path):
    (tmp_path / "a").mkdir()
    first = start_slow_tap_run(cache_config, contacts(5)[:-1], tmp_path / "a", until=cache_path(tmp_path).exists)
    try:
        sim.configure(portals={"other-token": 999}, tokens={cache_config["access_token"], "other-token"})
        (tmp_path / "b").mkdir()
        other = run_cli({**cache_config, "access_token": "other-token"}, contacts(5), tmp_path=tmp_path / "b")
        assert other.returncode == 0, other.stderr
    finally:
        _out, err = first.communicate('{"type": "STATE", "value": {"n": 5}}\n', timeout=60)
    assert first.returncode == 0, err


def test_entries_dated_in_the_future_count_as_expired(sim, cache_config, tmp_path):
    assert run_cli(cache_config, contacts(10), tmp_path=tmp_path).returncode == 0
    with contextlib.closing(sqlite3.connect(cache_path(tmp_path))) as conn:  # as if written a year ahead
        (table,) = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        conn.execute(f'UPDATE "{table}" SET d = d + 366')  # noqa: S608 - the table name read from the file
        conn.commit()
    again = run_cli(cache_config, contacts(10), tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    line = summary(again.stderr, "contacts")
    assert "unchanged 0" in line and "updated 10" in line, line
    third = run_cli(cache_config, contacts(10), tmp_path=tmp_path)  # rewritten with today's date
    assert "unchanged 10" in summary(third.stderr, "contacts")


MAPPINGS = {
    "accounts": {"object_type": "companies", "id_property": "company_external_id"},
    "contacts": {"associations": [
        {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"},
    ]},
}
COMPANY = {"company_external_id": {"type": "string"}, "_sdc_deleted_at": {"type": ["string", "null"]}}
CONTACT = {"email": {"type": "string"}, "company_ref": {"type": "string"}}


def test_records_pointing_to_an_archived_and_recreated_target_are_linked_again(sim, cache_config, tmp_path):
    cfg = {**cache_config, "hard_delete": True, "object_mappings": MAPPINGS}
    company = [schema("accounts", COMPANY, key=["company_external_id"]),
               record("accounts", {"company_external_id": "c-1"})]
    linked = [schema("contacts", CONTACT, key=["email"]),
              record("contacts", {"email": "a@example.com", "company_ref": "c-1"}), state({"s": 1})]
    assert run_cli(cfg, company + linked, tmp_path=tmp_path).returncode == 0
    assert len(sim.associations("contacts", "companies")) == 1
    archive = [schema("accounts", COMPANY, key=["company_external_id"]),
               record("accounts", {"company_external_id": "c-1", "_sdc_deleted_at": "2026-12-01T00:00:00Z"})]
    assert run_cli(cfg, archive, tmp_path=tmp_path).returncode == 0
    assert sim.associations("contacts", "companies") == []
    again = run_cli(cfg, company + linked, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    [live] = sim.objects("companies")
    assert [link["toId"] for link in sim.associations("contacts", "companies")] == [live["id"]]
    assert "unchanged 0" in summary(again.stderr, "contacts")
    # Nothing changed since: the next run skips both.
    last = run_cli(cfg, company + linked, tmp_path=tmp_path)
    assert "unchanged 1" in summary(last.stderr, "contacts")
    assert "unchanged 1" in summary(last.stderr, "accounts")


def test_a_target_created_anew_outside_the_target_relinks_on_its_next_creation(sim, cache_config, tmp_path):
    cfg = {**cache_config, "object_mappings": MAPPINGS}
    company = [schema("accounts", COMPANY, key=["company_external_id"]),
               record("accounts", {"company_external_id": "c-1"})]
    linked = [schema("contacts", CONTACT, key=["email"]),
              record("contacts", {"email": "a@example.com", "company_ref": "c-1"}), state({"s": 1})]
    assert run_cli(cfg, company + linked, tmp_path=tmp_path).returncode == 0
    sim.reset()  # the objects are gone (deleted in HubSpot's own UI); the cache still has them
    assert run_cli(cfg, company + linked, tmp_path=tmp_path).returncode == 0
    # The company was unchanged per the cache, so nothing recreated it and the contact was skipped:
    # the drift the max age bounds. Once the company is created again, the contact follows.
    assert run_cli({**cfg, "full_resync": True}, company, tmp_path=tmp_path).returncode == 0
    again = run_cli(cfg, linked, tmp_path=tmp_path)
    assert "unchanged 0" in summary(again.stderr, "contacts")
    assert len(sim.associations("contacts", "companies")) == 1


def test_a_signal_after_the_last_state_still_commits_the_cache_and_exits_0(sim, cache_config, tmp_path):
    cfg = {**cache_config, "log_level": "INFO"}
    (tmp_path / "a").mkdir()
    proc = start_slow_tap_run(cfg, contacts(20), tmp_path / "a", until=lambda: False, timeout=0)
    assert proc.stdin is not None
    proc.stdin.close()
    # Wait for the last STATE, then signal while the run winds down.
    deadline = time.monotonic() + 30
    first_line = ""
    while time.monotonic() < deadline and not first_line:
        first_line = proc.stdout.readline()
    assert first_line.strip() == '{"n": 20}'
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 0, err
    again = run_cli(cache_config, contacts(20), tmp_path=tmp_path)
    assert "unchanged 20" in summary(again.stderr, "contacts")
