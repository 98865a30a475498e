"""The benchmark's floor program (bench/floor.py) sends what the target sends, and reads numbers exactly."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from target_hubspot_upsert.hubspot.serialization import number_text

from .conftest import TOKEN

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run = _load("run")
floor = _load("floor")


def _sent(sim, since: int) -> dict[str, tuple[str, dict[str, str]]]:
    """The accepted upsert inputs logged after request ``since``: id -> (idProperty, properties)."""
    sent = {}
    for entry in sim.requests[since:]:
        if entry.endpoint == "batch_upsert":
            assert entry.status == 200, entry.response_body
            for item in entry.request_body["inputs"]:
                sent[item["id"]] = (item["idProperty"], item["properties"])
    return sent


@pytest.mark.parametrize(("stream", "id_property"), [("contacts", "email"), ("companies", "company_external_id")])
def test_the_floor_sends_what_the_target_sends(sim, tmp_path, stream, id_property):
    path = tmp_path / "input.singer"
    expected = run.write_realistic(path, 300, "t", stream)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"access_token": TOKEN, "api_base_url": sim.base_url,
                                  "object_mappings": {stream: {"id_property": id_property}}}))
    programs = {
        "target": [sys.executable, "-m", "target_hubspot_upsert", "--config", str(config)],
        "floor": [sys.executable, str(BENCH / "floor.py"), "--url", sim.base_url, "--token", TOKEN,
                  "--object", stream, "--id-property", id_property],
    }
    sent = {}
    for name, args in programs.items():
        since = len(sim.requests)
        with path.open("rb") as stdin:
            done = subprocess.run(args, stdin=stdin, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode()
        states = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
        assert states[-1] == expected, name
        sent[name] = _sent(sim, since)
    assert len(sent["floor"]) == 300
    assert sent["floor"] == sent["target"]
    if stream == "contacts":  # e-mails lowercased, date-times in UTC, the decimal exact
        _, props = sent["floor"]["user2.t@example.com"]
        assert props["last_order_at"] == "2024-03-03T02:02:02.002Z"
        assert props["lifetime_value"] == "2.03"
        assert props["is_vip"] == "false"


@example(Decimal("0.10000000000000001"))  # a double is 0.1
@example(Decimal("12345678901234567E3"))
@example(Decimal(123456789012345678901234567890))
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 300))
def test_the_floor_reads_numbers_exactly(value):
    literal = format(value, "f") if "E" not in str(value) else str(value)
    line = ('{"type":"RECORD","stream":"s","record":{"n":' + literal + "}}").encode()
    number = floor.parse(line)["record"]["n"]
    assert floor.number(number) == number_text(json.loads(line, parse_float=Decimal)["record"]["n"])
