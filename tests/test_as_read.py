"""skip_unchanged's short path: records read exactly as the ones HubSpot acknowledged, found without conversion."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal

import msgspec
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.core.errors import InputError
from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.hubspot.serialization import PropertySpec
from target_hubspot_upsert.pipeline.asread import code_versions, fingerprint
from target_hubspot_upsert.singer.messages import LineCountingReader, _read_envelope, bounded_lines, decode_raw_record

from .helpers import (
    contact,
    contacts_with_states,
    landed_times,
    lines,
    record,
    run_cli,
    run_in_process,
    schema,
    state,
)
from .test_change_cache import query, sent_ids, stats_of, upserts_since


def as_read_skips(run) -> int:
    return run.target.runtime.changes.skipped_as_read


def test_a_resync_of_unchanged_records_finds_them_as_read_and_emits_states(sim, cache_config):
    messages = contacts_with_states(700, 100)
    first = run_in_process(cache_config, messages)
    assert first.error is None and as_read_skips(first) == 0
    mark = len(sim.requests)
    second = run_in_process(cache_config, messages)
    assert second.error is None
    assert upserts_since(sim, mark) == []
    assert as_read_skips(second) == 700
    stats = stats_of(second)
    assert (stats.received, stats.unchanged, stats.created + stats.updated + stats.rejected) == (700, 700, 0)
    # A look-up at least every 500 records: STATEs are written as they are passed, not only at the end.
    assert len(second.states) >= 2 and second.states[-1] == {"n": 700}
    assert [s["n"] for s in second.states] == sorted({s["n"] for s in second.states})
    assert first.states[-1] == {"n": 700}


def test_a_change_among_unchanged_records_is_sent_and_state_waits_for_it(sim, cache_config):
    assert run_in_process(cache_config, contacts_with_states(300, 300)).error is None
    messages = [schema("contacts")]
    for i in range(300):
        messages.append(record("contacts", contact(i, num_orders=i + (1 if i in (5, 250) else 0))))
        if i == 120:
            messages.append(state({"n": 121}))
    messages.append(state({"n": 300}))
    mark = len(sim.requests)
    run = run_in_process(cache_config, messages)
    assert run.error is None
    assert sorted(sent_ids(sim, mark)) == ["user250@example.com", "user5@example.com"]
    assert as_read_skips(run) == 298
    assert sim.find("contacts", "email", "user5@example.com")["properties"]["num_orders"] == "6"
    landed = landed_times(sim)
    assert run.states == [{"n": 300}]  # one look-up for the 300 records: the newest STATE
    assert run.state_times[0] >= max(landed["user5@example.com"], landed["user250@example.com"])


def test_the_last_record_of_an_id_wins_whatever_path_each_takes(sim, cache_config):
    ada = contact(1, firstname="A")
    assert run_in_process(cache_config, [schema("contacts"), record("contacts", ada)]).error is None
    # What HubSpot holds, then a change: the change is sent.
    run = run_in_process(cache_config, [schema("contacts"), record("contacts", ada),
                                        record("contacts", {**ada, "firstname": "B"})])
    assert run.error is None
    assert sim.find("contacts", "email", "user1@example.com")["properties"]["firstname"] == "B"
    # A change, then what the cache held before it: the first run's value wins again.
    run = run_in_process(cache_config, [schema("contacts"), record("contacts", {**ada, "firstname": "C"}),
                                        record("contacts", {**ada, "firstname": "B"})])
    assert run.error is None
    assert sim.find("contacts", "email", "user1@example.com")["properties"]["firstname"] == "B"
    assert as_read_skips(run) == 0  # the second record of an id goes the whole way


def test_a_changed_schema_or_property_catalogue_compares_by_value_once_then_as_read_again(sim, cache_config):
    messages = contacts_with_states(50, 50)
    assert run_in_process(cache_config, messages).error is None
    described = [{**messages[0], "schema": {**messages[0]["schema"], "description": "v2"}}, *messages[1:]]
    run = run_in_process(cache_config, described)
    assert run.error is None
    assert (stats_of(run).unchanged, as_read_skips(run)) == (50, 0)  # another SCHEMA: compared by value
    run = run_in_process(cache_config, described)
    assert (stats_of(run).unchanged, as_read_skips(run)) == (50, 50)  # noted as read by the run before

    # A property added in HubSpot changes how records may convert: compared by value again.
    created = requests.post(
        f"{sim.base_url}/crm/v3/properties/contacts", timeout=10,
        headers={"Authorization": f"Bearer {cache_config['access_token']}"},
        json={"name": "loyalty_tier", "label": "Loyalty tier", "type": "string", "fieldType": "text",
              "groupName": "contactinformation"},
    )
    assert created.status_code == 201, created.text
    mark = len(sim.requests)
    run = run_in_process(cache_config, described)
    assert run.error is None and upserts_since(sim, mark) == []
    assert (stats_of(run).unchanged, as_read_skips(run)) == (50, 0)


def test_settings_are_part_of_the_fingerprint(sim, cache_config):
    messages = [schema("contacts"), record("contacts", contact(1, firstname=None))]
    assert run_in_process(cache_config, messages).error is None
    clear = {**cache_config, "null_values": "clear"}  # the same record now clears firstname
    mark = len(sim.requests)
    run = run_in_process(clear, messages)
    assert run.error is None
    assert sent_ids(sim, mark) == ["user1@example.com"] and as_read_skips(run) == 0


def test_a_cache_of_the_first_format_gains_the_column_and_is_read(sim, cache_config):
    messages = contacts_with_states(40, 40)
    assert run_in_process(cache_config, messages).error is None
    path = cache_config["change_cache_path"]
    with sqlite3.connect(path) as conn:  # what a run of the version before wrote
        conn.execute("CREATE TABLE old (k INTEGER PRIMARY KEY, h INTEGER NOT NULL, d INTEGER NOT NULL) WITHOUT ROWID")
        conn.execute('INSERT INTO old SELECT k, h, d FROM "portal_12345678"')
        conn.execute('DROP TABLE "portal_12345678"')
        conn.execute('ALTER TABLE old RENAME TO "portal_12345678"')
        conn.execute("PRAGMA user_version=1")
    dry = run_in_process({**cache_config, "dry_run": True}, messages)  # reads it, changes nothing
    assert dry.error is None and stats_of(dry).unchanged == 40
    assert [row[1] for row in query(path, 'PRAGMA table_info("portal_12345678")')] == ["k", "h", "d"]
    run = run_in_process(cache_config, messages)
    assert run.error is None and (stats_of(run).unchanged, as_read_skips(run)) == (40, 0)
    assert query(path, "PRAGMA user_version") == [(2,)]
    run = run_in_process(cache_config, messages)
    assert (stats_of(run).unchanged, as_read_skips(run)) == (40, 40)


def test_nan_and_infinity_are_never_alike_with_each_other_or_null(sim, cache_config):
    props = {"email": {"type": "string"}, "lastname": {"type": ["object", "null"]}}

    def run_with(value: str):
        text = lines([schema("contacts", props)]) + (
            '{"type": "RECORD", "stream": "contacts", "record": {"email": "u1@example.com", "lastname": {"a": '
            + value + "}}}\n"
        )
        return run_in_process(cache_config, text)

    assert run_with("Infinity").error is None
    held = sim.find("contacts", "email", "u1@example.com")["properties"]["lastname"]
    run = run_with("NaN")
    assert run.error is None
    assert as_read_skips(run) == 0 and stats_of(run).unchanged == 0  # a change: sent
    assert sim.find("contacts", "email", "u1@example.com")["properties"]["lastname"] != held


def test_a_record_missing_a_key_property_stops_the_run_naming_its_own_line(sim, cache_config, tmp_path):
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(50))]
    assert run_in_process(cache_config, messages).error is None
    # The same records, now under key properties the first one lacks: as with an empty cache,
    # the run stops at that record's line (2), though it waited on the short path while more were read.
    keyed = [schema("contacts", key=["email", "region"]), record("contacts", contact(0)),
             *(record("contacts", {**contact(i), "region": "eu"}) for i in range(1, 50))]
    run = run_cli(cache_config, keyed, tmp_path=tmp_path)
    assert run.returncode == 1
    assert "Input line 2: record #1 of stream 'contacts' has no 'region'" in run.stderr


def test_an_exponent_no_decimal_holds_is_a_rejected_record_on_the_short_path_too(sim, cache_config, tmp_path):
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(1, 4))]
    assert run_in_process(cache_config, messages).error is None
    rejected = tmp_path / "rejected.jsonl"
    config = {**cache_config, "validate_records": False, "rejected_records_path": str(rejected), "max_rejected_records": 5}
    text = lines(messages) + "".join(
        '{"type": "RECORD", "stream": "contacts", "record": {"email": ' + email + ', "num_orders": 1e99999999999999999999}}\n'
        for email in ('"user2@example.com"', "2.5e-99999999999999999999")  # a known id; an id no Decimal holds
    ) + lines([state({"n": 1})])
    run = run_cli(config, text, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    reasons = [json.loads(line)["error"] for line in rejected.read_text().splitlines()]
    assert [reason["code"] for reason in reasons] == ["INVALID_VALUE", "INVALID_ID"]
    assert "a number of at most 1,000 digits" in reasons[0]["message"]


def test_large_unchanged_records_are_looked_up_before_their_text_grows_past_16_mib(sim, cache_config):
    # 40 records of 1 MiB each (a field the SCHEMA declares and HubSpot does not have, left out):
    # at most 16 MiB of their text waits for a look-up, so STATEs are written along the way.
    config = {**cache_config, "unknown_properties": "ignore"}
    props = {"email": {"type": "string"}, "blob": {"type": "string"}}
    messages = [schema("contacts", props)]
    for i in range(40):
        messages += [record("contacts", {"email": f"user{i}@example.com", "blob": f"{i:04d}" * (1 << 18)}),
                     state({"n": i + 1})]
    assert run_in_process(config, messages).error is None
    run = run_in_process(config, messages)
    assert run.error is None and as_read_skips(run) == 40
    assert len(run.states) >= 2 and run.states[-1] == {"n": 40}


def test_a_line_too_deep_for_the_fast_reader_is_never_taken_as_raw_text():
    deep = '{"stream": "SECRET-VALUE", "x": ' + "[" * 300 + "1" + "]" * 300 + "}"
    shallow = '{"stream": "SECRET-VALUE", "x": [[1]]}'
    text = "".join(
        '{"type": "RECORD", "stream": "contacts", "record": {"email": "u1@example.com", "lastname": ' + value + "}}\n"
        for value in (shallow, deep)
    )
    reader = LineCountingReader()
    taken: list[int] = []
    reader.raw_taker = lambda _stream: lambda _raw, line: taken.append(line) is None
    usual: list[dict] = []
    reader.process_lines(io.StringIO(text), {"RECORD": usual.append})
    assert taken == [1]  # the deep line is read as usual, near the top of the stack
    assert [m["record"]["lastname"]["stream"] for m in usual] == ["SECRET-VALUE"]


def test_a_record_too_deep_to_read_is_an_error_that_quotes_none_of_its_fields():
    record = '{"stream": "SECRET-VALUE", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    raw = _read_envelope('{"type": "RECORD", "stream": "contacts", "record": ' + "[" * 10 + "]" * 10 + "}").record
    assert bytes(raw) == b"[" * 10 + b"]" * 10  # what the short path holds: the record's own text
    with pytest.raises(InputError) as raised:
        decode_raw_record(msgspec.Raw(record.encode()), 7)
    assert "Input line 7" in str(raised.value) and "SECRET-VALUE" not in str(raised.value)


def _spec(options: list[str]) -> dict[str, PropertySpec]:
    return {"tier": PropertySpec("tier", "enumeration", "select", frozenset(options))}


def test_the_fingerprint_follows_property_options_and_is_the_same_in_every_process():
    target = ObjectTarget("contacts", "contacts", "email")
    schema_ = {"properties": {"tier": {"type": "string"}, "n": {"type": "number", "maximum": Decimal("1.5")}}}
    config = {"access_token": "secret-token", "null_values": "skip"}
    here = fingerprint("1.0", target, schema_, ["email"], config, _spec(["gold", "silver", "bronze"]), ("access_token",))
    assert b"secret-token" not in here
    assert here != fingerprint("1.0", target, schema_, ["email"], config, _spec(["gold", "silver"]), ("access_token",))
    assert here != fingerprint("1.1", target, schema_, ["email"], config, _spec(["gold", "silver", "bronze"]),
                               ("access_token",))
    assert here != fingerprint("1.0", target, schema_, ["email", "region"], config, _spec(["gold", "silver", "bronze"]),
                               ("access_token",))
    assert "singer-sdk" in code_versions() and "msgspec" in code_versions()
    code = (
        "import sys; from decimal import Decimal; from target_hubspot_upsert.core.mapping import ObjectTarget; "
        "from target_hubspot_upsert.hubspot.serialization import PropertySpec; "
        "from target_hubspot_upsert.pipeline.asread import fingerprint; "
        "spec = {'tier': PropertySpec('tier', 'enumeration', 'select', frozenset(['bronze', 'silver', 'gold']))}; "
        "schema = {'properties': {'tier': {'type': 'string'}, 'n': {'type': 'number', 'maximum': Decimal('1.5')}}}; "
        "sys.stdout.buffer.write(fingerprint('1.0', ObjectTarget('contacts', 'contacts', 'email'), schema, ['email'], "
        "{'access_token': 'another', 'null_values': 'skip'}, spec, ('access_token',)))"
    )
    for seed in ("1", "2"):  # string hashing differs between processes: sets must not change the bytes
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out == here


# --- the hash as read ----------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).filter(lambda d: d != d.to_integral_value()),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_RECORDS = st.dictionaries(st.sampled_from(["email", "a", "b", "c"]), _VALUES, min_size=1)


def _hasher():
    from target_hubspot_upsert.pipeline import asread  # noqa: PLC0415

    return asread._ENCODE  # the bytes the short path hashes


def _typed(value):
    """A value with its Python type at every level, so `1`, `True`, `"1"` and `Decimal("1.5")` differ."""
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    return (type(value).__name__, str(value))


@given(_RECORDS, _RECORDS)
def test_records_read_alike_only_when_their_fields_types_and_values_are_alike(a, b):
    encode = _hasher()
    assert (encode(a) == encode(b)) == (_typed(a) == _typed(b))


def test_a_decimal_a_string_a_boolean_and_an_integer_read_differently():
    encode = _hasher()
    forms = [{"x": Decimal("1.5")}, {"x": "1.5"}, {"x": 1}, {"x": True}, {"x": "1"}, {"x": None}, {"x": "null"},
             {"x": ["a", "b"]}, {"x": "a;b"}, {"x": Decimal("1.50")}]
    assert len({encode(f) for f in forms}) == len(forms)
    assert json.loads(encode({"x": Decimal("1234.56")})) == {"x": 1234.56}  # a JSON number, not text


def test_a_hash_as_read_fits_the_caches_signed_64_bit_column():
    from target_hubspot_upsert.pipeline.asread import _signed  # noqa: PLC0415

    assert [_signed(v) for v in (0, 5, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)] == [0, 5, (1 << 63) - 1, -(1 << 63), -1]


_LINES = st.sampled_from([
    '{"type": "RECORD", "stream": "s", "record": {"email": "take@example.com", "n": 1.50}}',
    '{"type":"RECORD","stream":"s","record":{"email":"keep@example.com"},"time_extracted":"x"}',
    '{"record": {"email": "take2@example.com"}, "stream": "s", "type": "RECORD"}',
    '{"type": "RECORD", "stream": "other", "record": {"email": "take@example.com"}}',
    '{"type": "RECORD", "stream": "s", "record": "take"}',
    '{"type": "RECORD", "stream": "s"}',
    '{"type": "RECORD", "stream": 5, "record": {"email": "take@example.com"}}',
    '{"type": "RECORD", "stream": "s", "record": {"email": "take@example.com"}, "type": "STATE", "value": 1}',
    '{"type": "STATE", "type": "RECORD", "stream": "s", "record": {"email": "take@example.com"}}',
    '{"type": "RECORD", "stream": 5, "stream": "s", "record": {"email": "take@example.com"}}',
    '{"stream": "s", "record": {"email": "take@example.com"}}',
    '{"type": null, "stream": "s", "record": {"email": "take@example.com"}}',
    '{"type": "record", "stream": "s", "record": {"email": "take@example.com"}}',
    '{"type": "STATE", "value": {"bookmark": 1}}',
    '{"type": "ACTIVATE_VERSION", "stream": "s", "version": 1}',
    '{"type": "RECORD", "stream": "s", "record": {"take": ' + "[" * 150 + "]" * 150 + "}}",
    '{"type": "RECORD", "stream": "s", "record": {"take": ' + "[" * 250 + "]" * 250 + "}}",
    '{"type": "RECORD", "stream": "s", "record": {"email": "take", "pad": "' + "x" * 500 + '"}}',
    '{"type": "RECORD", "stream": "s", "record": {"email": "take", "pad": "' + "x" * 627 + '"}}',
    '{"type": "RECORD", "stream": "s", "record": {"email": "take", "pad": "' + "x" * 628 + '"}}',
    '{"type": "RECORD", "stream": "s", "record": {"email": "take", "pad": "' + "x" * 900 + '"}}',
    "   ",
    '{"type": "RECORD", "stream": "s", "record": {"email": "take"',
    "[1, 2]",
])


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_LINES, max_size=12), last_newline=st.booleans())
def test_lines_taken_as_raw_text_or_read_as_usual_are_the_lines_the_plain_reader_reads(texts, last_newline):
    """Every line reaches the sink once, with its number, taken (as raw text or parsed) or read as usual; errors alike.

    The reference reads line by line (`bounded_lines`, then `_one_line` for each): the reader's
    own loop must give the same messages, line numbers, errors and counts, with no taker, with a
    raw taker (skip_unchanged), a record taker (a stream read as it is), or both. The record-age
    check runs after every second RECORD (`RECORDS_PER_CHECK` set to 2), whichever way each went.

    Lines of 701 characters and longer are oversized here (`MAX_LINE_CHARS` set to 700), those
    over 400 characters have their brackets counted, and the raw taker takes records holding
    "take" (as `AsReadSkip.offer_raw` takes some records and declines others).
    """
    text = "\n".join(texts) + ("\n" if last_newline else "")

    def read(mode: str) -> tuple[list[tuple[int, str, object]], object]:
        reader = LineCountingReader()
        seen: list[tuple[int, str, object]] = []
        reader.on_oversized = lambda line: seen.append((reader.line_number, "oversized", line))
        reader.every_records = lambda: seen.append((reader.line_number, "every 2 records", None))
        if mode in ("raw", "both"):
            def take(raw: msgspec.Raw, line: int) -> bool:
                assert line == reader.line_number
                if b"take" not in bytes(raw) or not bytes(raw).startswith(b"{"):  # offer_raw reads objects only
                    return False
                seen.append((line, "RECORD", {"type": "RECORD", "stream": "s", "record": decode_raw_record(raw, line)}))
                return True
            reader.raw_taker = lambda stream: take if stream == "s" else None
        if mode in ("records", "both"):
            def take_record(record: dict) -> None:
                seen.append((reader.line_number, "RECORD", {"record": record}))
            reader.record_taker = lambda stream: take_record if stream == "s" else None
        callbacks = {kind: (lambda message, kind=kind: seen.append((reader.line_number, kind, message)))
                     for kind in ("RECORD", "STATE", "ACTIVATE_VERSION")}
        try:
            if mode == "line by line":
                counts: dict[str, int] = {}
                for line in bounded_lines(io.StringIO(text)):
                    reader.line_number += 1
                    reader._one_line(line, callbacks, counts)
            else:
                counts = reader.process_lines(io.StringIO(text), callbacks)
        except InputError as exc:
            return seen, str(exc)
        return seen, dict(counts)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("target_hubspot_upsert.singer.messages.MAX_LINE_CHARS", 700)
        patch.setattr("target_hubspot_upsert.singer.messages.RECORDS_PER_CHECK", 2)
        expected = read("line by line")
        for mode in ("no taker", "raw", "records", "both"):
            got = read(mode)
            for (line, kind, message), (line2, kind2, message2) in zip(expected[0], got[0], strict=True):
                assert (line, kind) == (line2, kind2), mode
                if kind == "RECORD":
                    message, message2 = message.get("record"), message2.get("record")
                assert repr(message) == repr(message2), mode
            assert expected[1] == got[1], mode
