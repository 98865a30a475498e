"""The floor: a plain client doing the least any loader must, to compare the target's CPU with.

    python bench/floor.py --url URL --token TOKEN [--object contacts] [--id-property email] < input.singer

It reads Singer lines from stdin (orjson, with the standard library's exact ``Decimal`` reading for
a line whose floats orjson cannot give exactly), turns each value into the text the target sends
for its HubSpot property type (e-mails lowercased, date-times in UTC with milliseconds and ``Z``,
dates as ``YYYY-MM-DD``, exact decimal text, ``true``/``false``, enumeration options checked),
POSTs 100 inputs per ``batch/upsert`` with one urllib3 pool, one request at a time, reads each
answer, and writes each STATE value to stdout once every record before it is acknowledged. No validation,
retries, rate limiting, rejections or reports: any surprise ends it with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import urllib3

BATCH = 100
#: Any decimal literal of 15 significant digits or fewer survives a double (repr gives it back), so
#: only a line with a run of 16 digits and points is read again exactly. Digits and points become
#: "0", the rest " ": a translate and a substring search (~0.5 µs a line; a regular expression ~10).
DIGITS = bytes(0x30 if chr(b) in "0123456789." else 0x20 for b in range(256))
LONG_RUN = b"0" * 16


def number(value: Any) -> str:
    """Exact decimal text: no exponent, no trailing zeros, integers without a point."""
    if type(value) is int:
        return str(value)
    d = value if type(value) is Decimal else Decimal(repr(value))
    if d == d.to_integral_value():
        return str(int(d))
    return format(d, "f").rstrip("0").rstrip(".")


def date_time(value: str) -> str:
    """ISO 8601 date-time, in UTC with milliseconds (no zone: UTC)."""
    dt = datetime.fromisoformat(value)
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return f"{dt.replace(microsecond=0, tzinfo=None).isoformat()}.{dt.microsecond // 1000:03d}Z"


def converter(prop: dict[str, Any]) -> Callable[[Any], str]:
    """The value-to-text function for a HubSpot property definition."""
    kind = prop["type"]
    if kind == "number":
        return number
    if kind == "datetime":
        return date_time
    if kind == "date":
        return lambda v: date.fromisoformat(v).isoformat()
    if kind == "bool":
        return lambda v: "true" if v else "false"
    if kind == "enumeration" and not prop.get("externalOptions"):
        options = frozenset(o["value"] for o in prop["options"])
        return lambda v: v if v in options else sys.exit(f"a value of {prop['name']} is not one of its options")
    return str


def parse(line: bytes) -> Any:
    """One Singer line; floats that orjson cannot give exactly are read again as ``Decimal``."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits
        return json.loads(line, parse_float=Decimal)
    if LONG_RUN in line.translate(DIGITS):  # maybe a float of 16+ digits: a double would round it
        return json.loads(line, parse_float=Decimal)
    return message


def main() -> None:
    """Load stdin into the upsert endpoint; STATE after acknowledgement."""
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--object", default="contacts")
    p.add_argument("--id-property", default="email")
    args = p.parse_args()
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    pool = urllib3.PoolManager(headers=headers, timeout=urllib3.Timeout(connect=10, read=60), retries=False)
    answer = pool.request("GET", f"{args.url}/crm/v3/properties/{args.object}")
    convert = {prop["name"]: converter(prop) for prop in orjson.loads(answer.data)["results"]}
    upsert = f"{args.url}/crm/v3/objects/{args.object}/batch/upsert"
    id_prop, lower = args.id_property, args.id_property == "email"
    inputs: list[dict[str, Any]] = []
    state: Any = None

    def flush() -> None:
        nonlocal state
        if inputs:
            answer = pool.request("POST", upsert, body=orjson.dumps({"inputs": inputs}))
            if answer.status != 200 or len(orjson.loads(answer.data)["results"]) != len(inputs):
                sys.exit(f"batch upsert answered {answer.status}")
            inputs.clear()
        if state is not None:
            sys.stdout.buffer.write(orjson.dumps(state) + b"\n")  # the value, as Singer targets emit it
            state = None

    for line in sys.stdin.buffer:
        message = parse(line)
        if message["type"] == "RECORD":
            props = {k: convert[k](v) for k, v in message["record"].items() if v is not None}
            key = props[id_prop] = props[id_prop].strip().lower() if lower else props[id_prop]
            inputs.append({"id": key, "idProperty": id_prop, "properties": props})
            if len(inputs) == BATCH:
                flush()
        elif message["type"] == "STATE":
            state = message["value"]
            if not inputs:
                flush()  # every record before it is acknowledged
    flush()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
