"""Hypothesis strategies for Singer input: good contact records and STATE lines mixed with garbage.

Each example is a list of input lines (bytes, without their newline). Good records carry unique
emails and every STATE written by the fuzz carries its own marker, so a test can check which
checkpoints could have been written from what landed.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from .helpers import CONTACT_SCHEMA

STREAM = "contacts"
SCHEMA_LINE = json.dumps(
    {"type": "SCHEMA", "stream": STREAM, "schema": CONTACT_SCHEMA, "key_properties": ["email"]}
).encode()

# JSON values of every kind, NaN and Infinity included (Python's json writes them as literals).
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
message_types = st.sampled_from(["RECORD", "SCHEMA", "STATE", "BATCH", "ACTIVATE_VERSION", "FOO", "", "record"])


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def _nested(depth: int, inner: str = "1") -> str:
    return '{"a":' * depth + inner + "}" * depth


# Lines a tap could get wrong, by kind; each yields the bytes of one line.
odd_messages = st.builds(
    lambda kind, fields: _dumps({"type": kind, **fields}),
    message_types,
    st.dictionaries(
        st.sampled_from(["stream", "record", "schema", "key_properties", "value", "version", "encoding", "manifest"]),
        json_values,
        max_size=4,
    ),
)
odd_records = st.builds(
    lambda stream, rec: _dumps({"type": "RECORD", "stream": stream, "record": rec}),
    st.sampled_from([STREAM, 5, None, "", ["contacts"], "other"]) | json_values,
    json_values | st.dictionaries(st.sampled_from(["email", "firstname", "num_orders", "other"]), json_values),
)
# Property schemas with JSON-schema keywords holding any value.
property_schemas = st.dictionaries(
    st.sampled_from(["type", "format", "properties", "items", "anyOf", "enum", "maxLength", "required", "$ref"]),
    json_values | st.sampled_from(["string", "integer", "number", "object", "array", "date-time", ["string", "null"]]),
    max_size=3,
)
odd_schemas = st.builds(
    lambda schema, keys: _dumps({"type": "SCHEMA", "stream": STREAM, "schema": schema, "key_properties": keys}),
    json_values
    | st.builds(lambda p: {"type": "object", "properties": p}, json_values)
    | st.builds(
        lambda p: {"type": "object", "properties": p},
        st.dictionaries(st.sampled_from(["email", "firstname", "num_orders", "other", ""]), property_schemas),
    ),
    json_values | st.sampled_from([["email"], ["other"], [], None]),
)
literal_lines = st.sampled_from([
    b'{"type": "STATE"}',
    b'{"type": "STATE", "value": NaN}',
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x1@example.com", "num_orders": 1e400}}',
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x2@example.com", "num_orders": 1e999999999}}',
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x3@example.com", "num_orders": -Infinity}}',
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x4@example.com", "num_orders": ' + b"9" * 5000 + b"}}",
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x5@example.com", "firstname": "\\ud800"}}',
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x6@example.com", "firstname": "\xff\xfe"}}',
    b'{"type": "RECORD", "stream": "contacts", "record": {"email": "x7@example.com", "firstname": "'
    + b"y" * 100_000 + b'"}}',
    b'{"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"}, "manifest": "not-a-list"}',
    b'{"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"}, "manifest": ["/nonexistent/x.jsonl"]}',
    b'{"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl", "compression": "gzip"}, '
    b'"manifest": ["/dev/null"]}',
    b'{"type": "ACTIVATE_VERSION", "stream": "contacts", "version": 1}',
    b"[]",
    b"NaN",
    b"",
])
deep_lines = st.builds(
    lambda depth, where: (
        b'{"type": "RECORD", "stream": "contacts", "record": {"email": "deep@example.com", "firstname": '
        + _nested(depth).encode() + b"}}"
        if where == "record"
        else _nested(depth).encode()
    ),
    st.sampled_from([50, 900, 1000, 100_000]),
    st.sampled_from(["record", "line"]),
)
garbage = (
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))
    | json_values.map(_dumps)
    | odd_messages
    | odd_records
    | odd_schemas
    | literal_lines
    | deep_lines
)


@st.composite
def singer_inputs(draw: st.DrawFn, max_lines: int = 8) -> list[tuple[str, Any, bytes]]:
    """A SCHEMA line, then good records, STATE lines and garbage in any order.

    Returns `(kind, key, line)`: kind `record` (key: its email), `state` (key: its marker) or
    `garbage`.
    """
    lines: list[tuple[str, Any, bytes]] = [("schema", None, SCHEMA_LINE)]
    for index in range(draw(st.integers(1, max_lines))):
        kind = draw(st.sampled_from(["record", "record", "state", "garbage", "garbage"]))
        if kind == "record":
            email = f"fuzz{index}@example.com"
            rec = {"type": "RECORD", "stream": STREAM, "record": {"email": email, "firstname": f"Fuzz {index}"}}
            lines.append(("record", email, _dumps(rec)))
        elif kind == "state":
            marker = {"fuzz_state": index}
            lines.append(("state", marker, _dumps({"type": "STATE", "value": marker})))
        else:
            lines.append(("garbage", None, draw(garbage)))
    return lines
