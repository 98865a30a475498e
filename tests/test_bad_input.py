"""Bad input never crashes: it ends as a rejected record, or as a one-line input error naming the line
and the stream, and the STATE of what landed before it is still written.

Each case sends a good record and a STATE, the bad line, then another good record and STATE, with
`batch_size_rows: 1` so the first record lands before the bad line is read.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.core.errors import InputError
from target_hubspot_upsert.pipeline.rejects import KEPT_LEVELS, json_line
from target_hubspot_upsert.singer.messages import _decode_exact, _read_envelope, decode_line, decode_raw_record

from .helpers import contact, lines, record, run_cli, run_in_process, schema, state

BEFORE = lines([schema("contacts", key=["email"]), record("contacts", contact(1)), state({"n": 1})])
AFTER = lines([record("contacts", contact(2)), state({"n": 2})])
BAD_LINE = 4


def bad_record(fields: str) -> str:
    return '{"type": "RECORD", "stream": "contacts", "record": {"email": "bad@example.com", ' + fields + "}}\n"


def nested(depth: int, opener: str = '{"a": ', closer: str = "}") -> str:
    return opener * depth + "1" + closer * depth


# name: (bad line, extra settings, error code of the rejected record)
REJECTED = {
    "lone surrogate escape": (bad_record('"firstname": "x\\ud800y"'), {}, "INVALID_VALUE"),
    "900 deep, in validation": (bad_record(f'"firstname": {nested(900)}'), {}, "SCHEMA_MISMATCH"),
    "900 deep list, in serialization": (
        bad_record(f'"firstname": {nested(900, "[", "]")}'), {"validate_records": False}, "INVALID_VALUE",
    ),
    "900 deep, as an unknown field": (
        bad_record(f'"nickname": {nested(900)}'), {"validate_records": False}, "UNKNOWN_PROPERTY",
    ),
    "exponent of a billion": (bad_record('"num_orders": 1e999999999'), {"validate_records": False}, "INVALID_VALUE"),
    "a billion decimals": (bad_record('"firstname": 1.5e-999999999'), {"validate_records": False}, "INVALID_VALUE"),
    "an exponent no Decimal holds": (
        bad_record('"num_orders": 1e99999999999999999999'), {"validate_records": False}, "INVALID_VALUE",
    ),
    "a negative exponent no Decimal holds": (
        bad_record('"firstname": -2.5E-99999999999999999999'), {"validate_records": False}, "INVALID_VALUE",
    ),
    "an exponent no Decimal holds, validated": (bad_record('"num_orders": 1e99999999999999999999'), {}, "SCHEMA_MISMATCH"),
    "5,000-digit integer": (bad_record(f'"num_orders": {"9" * 5000}'), {}, "SCHEMA_MISMATCH"),
    "NaN": (bad_record('"num_orders": NaN'), {"validate_records": False}, "INVALID_VALUE"),
    "-Infinity": (bad_record('"num_orders": -Infinity'), {}, "SCHEMA_MISMATCH"),
}


@pytest.mark.parametrize("name", REJECTED)
def test_bad_values_are_rejected_records_written_as_valid_json(sim, config, tmp_path, name):
    bad, extra, code = REJECTED[name]
    path = tmp_path / "rejected.jsonl"
    cfg = {**config, "batch_size_rows": 1, "max_rejected_records": 5, "rejected_records_path": str(path), **extra}
    run = run_in_process(cfg, BEFORE + bad + AFTER)
    assert run.error is None, run.error
    assert run.states[-1] == {"n": 2}
    assert {o["properties"]["email"] for o in sim.objects("contacts")} == {"user1@example.com", "user2@example.com"}
    (line,) = path.read_bytes().decode("utf-8").splitlines()  # valid UTF-8, one line
    rejected = json.loads(line)  # valid JSON (no NaN literal, whatever the record held)
    assert rejected["error"]["code"] == code and rejected["position"] == 2


# name: (bad line, words of the error besides the line and the stream)
FATAL = {
    "1,000 deep": (bad_record(f'"firstname": {nested(1000)}'), "nests objects or arrays too deeply"),
    "100,000 deep": (bad_record(f'"firstname": {nested(100_000, "[", "]")}'), "nests objects or arrays too deeply"),
    "RECORD without a record": ('{"type": "RECORD", "stream": "contacts", "record": [1, 2]}\n', "needs a stream name"),
    "SCHEMA with a remote $ref": (
        json.dumps({"type": "SCHEMA", "stream": "contacts", "schema": {"type": "object", "properties": {
            "email": {"$ref": "http://127.0.0.1:9/s.json"}}}}) + "\n",
        "refers to another document",
    ),
    "SCHEMA that is not a JSON schema": (
        json.dumps({"type": "SCHEMA", "stream": "contacts", "schema": {"type": "object", "properties": {
            "email": {"type": "text"}}}}) + "\n",
        "is not a valid JSON schema",
    ),
    "SCHEMA with key_properties a string": (
        json.dumps({"type": "SCHEMA", "stream": "contacts", "schema": {"properties": {}}, "key_properties": "email"})
        + "\n",
        "'key_properties' must be a list",
    ),
    "ACTIVATE_VERSION of an unknown stream": ('{"type": "ACTIVATE_VERSION", "stream": "contacts2", "version": 1}\n',
                                              "before a corresponding schema"),
}


@pytest.mark.parametrize("name", FATAL)
def test_malformed_lines_are_one_input_error_naming_line_and_stream(sim, config, name, tmp_path):
    bad, words = FATAL[name]
    if "deep" in name:
        # Through the command line: in this process, pytest's own frames and hooks would meet
        # the nesting first (a deep object that pytest inspects exceeds its recursion limit).
        cli = run_cli({**config, "batch_size_rows": 1}, BEFORE + bad + AFTER, tmp_path=tmp_path)
        assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
        errors = [line for line in cli.stderr.splitlines() if "| ERROR" in line]
        assert len(errors) == 1 and f"Input line {BAD_LINE}" in errors[0] and words in errors[0], errors
        assert "contacts" in errors[0] and "bad@example.com" not in cli.stderr
        assert cli.states == [{"n": 1}]
        return
    run = run_in_process({**config, "batch_size_rows": 1}, BEFORE + bad + AFTER)
    assert isinstance(run.error, InputError), run.error
    message = str(run.error)
    assert message.startswith(f"Input line {BAD_LINE}") and "contacts" in message and words in message, message
    assert "\n" not in message and "bad@example.com" not in message
    assert run.states == [{"n": 1}]  # the record before it landed, and its STATE was written


def test_a_state_that_json_cannot_hold_is_an_input_error(sim, config):
    run = run_in_process({**config, "batch_size_rows": 1}, BEFORE + '{"type": "STATE", "value": {"n": NaN}}\n' + AFTER)
    assert isinstance(run.error, InputError)
    assert str(run.error).startswith(f"Input line {BAD_LINE}: the STATE value cannot be written back as JSON")
    assert run.states == [{"n": 1}]


@pytest.fixture
def batch_files(tmp_path) -> dict[str, tuple[Path, str | None]]:
    """Files a BATCH message may name, and the compression it declares for each."""
    (tmp_path / "binary.jsonl").write_bytes(b"\x00\x01\xff\xfe\x80 not text\n")
    (tmp_path / "array.jsonl").write_text('[{"email": "bad@example.com"}]\n')
    (tmp_path / "plain.jsonl").write_text('{"email": "bad@example.com"}\n')
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"email": "bad@example.com"}\n' * 100)[:40])
    return {
        "missing": (tmp_path / "nowhere" / "missing.jsonl", None),
        "a directory": (tmp_path, None),
        "binary": (tmp_path / "binary.jsonl", None),
        "a JSON array": (tmp_path / "array.jsonl", None),
        "gzip that is not gzip": (tmp_path / "plain.jsonl", "gzip"),
        "gzip cut short": (tmp_path / "cut.jsonl.gz", "gzip"),
    }


BATCH_WORDS = {
    "missing": "does not exist",
    "a directory": "is a directory",
    "binary": "not UTF-8 (its line 1)",
    "a JSON array": "its line 1 is not a JSON object",
    "gzip that is not gzip": "is not gzip data",
    "gzip cut short": "ends in the middle of its gzip data",
}


@pytest.mark.parametrize("name", BATCH_WORDS)
def test_a_batch_file_that_cannot_be_read_is_one_input_error_naming_line_stream_and_file(
    sim, config, batch_files, name,
):
    path, compression = batch_files[name]
    batch = {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl", "compression": compression},
             "manifest": [str(path)]}
    run = run_in_process({**config, "batch_size_rows": 1}, BEFORE + json.dumps(batch) + "\n" + AFTER)
    assert isinstance(run.error, InputError), run.error
    message = str(run.error)
    assert message.startswith(f"Input line {BAD_LINE}: BATCH file {str(path)!r} of stream 'contacts'"), message
    assert BATCH_WORDS[name] in message and "bad@example.com" not in message
    assert run.states == [{"n": 1}]
    assert not (path.parent / "nowhere").exists()  # no folder is made for a missing file


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"manifest": "plain.jsonl"}, "'manifest' must be a list of file names"),
        ({"manifest": [""]}, "'manifest' must be a list of file names"),
        ({"encoding": "jsonl"}, "'encoding' must be an object"),
        ({"encoding": {"format": "jsonl", "level": 9}}, "'encoding' must be an object"),
        ({"encoding": {"compression": "gzip"}}, "'encoding' must be an object with a 'format'"),
    ],
)
def test_a_batch_message_of_the_wrong_shape_is_an_input_error(sim, config, fields, words):
    batch = {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"}, "manifest": [], **fields}
    run = run_in_process(config, BEFORE + json.dumps(batch) + "\n")
    assert isinstance(run.error, InputError)
    assert str(run.error).startswith(f"Input line {BAD_LINE}: the BATCH message of stream 'contacts': its {words}")


def test_good_batch_files_still_load(sim, config, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(contact(7)) + "\n\n")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress((json.dumps(contact(8)) + "\n").encode()))
    batches = [
        {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"}, "manifest": [str(tmp_path / "a.jsonl")]},
        {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl", "compression": "gzip"},
         "manifest": [(tmp_path / "b.jsonl.gz").as_uri()]},
    ]
    run = run_in_process(config, BEFORE + lines(batches) + AFTER)
    assert run.error is None, run.error
    assert len(sim.objects("contacts")) == 4 and run.states[-1] == {"n": 2}


def test_the_rejected_line_is_valid_json_however_deep_or_odd_the_record():
    deep: object = "leaf"
    for _ in range(5000):  # deeper than JSON encoding allows
        deep = [deep]
    line = json.loads(json_line({"record": {"deep": deep, "nan": math.nan, "inf": -math.inf}}))
    assert line["record"]["nan"] == "nan" and line["record"]["inf"] == "-inf"
    kept, levels = line["record"]["deep"], 1
    while isinstance(kept, list):
        kept, levels = kept[0], levels + 1
    assert KEPT_LEVELS - 3 <= levels <= KEPT_LEVELS and "not kept" in kept  # counted from the line itself


# --- through the command line: no traceback, one clear error line --------------------------------


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR " in line]


@pytest.mark.parametrize("source", ["stdin", "--input"])
def test_raw_bytes_that_are_not_utf8_are_a_rejected_record_whatever_the_locale(sim, config, tmp_path, source):
    bad = b'{"type": "RECORD", "stream": "contacts", "record": {"email": "bad@example.com", "firstname": "caf\xe9"}}\n'
    data = BEFORE.encode() + bad + AFTER.encode()
    path = tmp_path / "rejected.jsonl"
    cfg = {**config, "max_rejected_records": 1, "rejected_records_path": str(path)}
    if source == "--input":
        (tmp_path / "input.singer").write_bytes(data)
        data, args = b"", ["--input", str(tmp_path / "input.singer")]
    else:
        args = []
    # PYTHONIOENCODING makes Python read stdin strictly, as a UTF-8 locale does (and --input files always).
    run = run_cli(cfg, data, tmp_path=tmp_path, args=args, env={"PYTHONIOENCODING": "utf-8"})
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "not valid Unicode" in run.stderr
    assert run.states[-1] == {"n": 2}
    assert json.loads(path.read_bytes().decode("utf-8"))["record"]["firstname"] == "caf\udce9"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (bad_record(f'"firstname": {nested(100_000)}'), "Input line 4 (stream 'contacts') nests objects or arrays"),
        ('{"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"}, "manifest": ["/"]}\n',
         "Input line 4: BATCH file '/' of stream 'contacts' is a directory, not a file."),
    ],
    ids=["100,000 deep", "BATCH of a directory"],
)
def test_on_the_command_line_an_input_error_is_one_error_line(sim, config, tmp_path, bad, words):
    run = run_cli({**config, "batch_size_rows": 1}, BEFORE + bad + AFTER, tmp_path=tmp_path)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (error,) = error_lines(run.stderr)
    assert words in error
    assert run.states == [{"n": 1}]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")) | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(message=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6), ascii_only=st.booleans())
def test_the_fast_reader_reads_every_line_as_the_exact_one_does(message, ascii_only):
    # orjson reads most lines; whatever it reads must equal the standard library's reading
    # (numbers that are not integers as Decimal, integers of any size exactly, escapes, surrogates).
    line = json.dumps(message, ensure_ascii=ascii_only)
    fast, exact = decode_line(line, 1), _decode_exact(line, 1)
    assert fast == exact
    assert repr(fast) == repr(exact)  # the same types too (Decimal, int), not only equal values


NUMBER_LITERALS = st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(numbers=st.lists(NUMBER_LITERALS, min_size=1, max_size=5), depth=st.integers(0, 3), spaced=st.booleans())
def test_the_fast_reader_keeps_each_number_literal_exact(numbers, depth, spaced):
    # Taps write numbers in any JSON form (1.50, 1E5, 0.10000000000000000555, 40-digit integers):
    # each must be read as the standard library reads it, Decimal of the literal's own text.
    gap = " " if spaced else ""
    values = f",{gap}".join(numbers)
    line = '{"type":"RECORD","stream":"s","record":{"n":' + "[" * depth + values + "]" * depth + "}}"
    if depth == 0:
        line = '{"type":"RECORD","stream":"s","record":{' + ",".join(f'"f{i}":{n}' for i, n in enumerate(numbers)) + "}}"
    fast, exact = decode_line(line, 1), _decode_exact(line, 1)
    assert fast == exact
    assert repr(fast) == repr(exact)


def _record_read_as_raw_text(line: str) -> object:
    """What skip_unchanged's short path reads of a RECORD line: its record as raw text, parsed when needed."""
    envelope = _read_envelope(line)
    return decode_raw_record(envelope.record, 1)


@settings(max_examples=300, deadline=None)
@given(record_=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6), ascii_only=st.booleans())
def test_a_record_read_as_raw_text_is_read_as_the_exact_reader_reads_it(record_, ascii_only):
    line = json.dumps({"type": "RECORD", "stream": "s", "record": record_, "time_extracted": "x"}, ensure_ascii=ascii_only)
    exact = _decode_exact(line, 1)["record"]
    try:
        raw = _record_read_as_raw_text(line)
    except ValueError:  # a line the envelope reader refuses (lone surrogates) is read the usual way
        return
    assert raw == exact
    assert repr(raw) == repr(exact)  # Decimal for every number that is not an integer, ints of any size


@settings(max_examples=300, deadline=None)
@given(numbers=st.lists(NUMBER_LITERALS, min_size=1, max_size=5), spaced=st.booleans())
def test_a_record_read_as_raw_text_keeps_each_number_literal_exact(numbers, spaced):
    gap = " " if spaced else ""
    line = '{"type":"RECORD","stream":"s","record":{' + f",{gap}".join(f'"f{i}":{n}' for i, n in enumerate(numbers)) + "}}"
    raw, exact = _record_read_as_raw_text(line), _decode_exact(line, 1)["record"]
    assert repr(raw) == repr(exact)


@pytest.mark.parametrize("depth", [150, 199, 200, 201, 400, 990, 1200])
def test_the_fast_reader_leaves_deep_lines_to_the_standard_library(depth):
    line = '{"type":"RECORD","stream":"s","record":{"n":' + "[" * depth + "1.5" + "]" * depth + "}}"
    try:
        exact: object = _decode_exact(line, 1)
    except InputError as exc:
        exact = str(exc)
    try:
        fast: object = decode_line(line, 1)
    except InputError as exc:
        fast = str(exc)
    assert repr(fast) == repr(exact)
