"""Configuring the target from TARGET_HUBSPOT_UPSERT_* environment variables (`--config ENV`).

The Singer SDK (0.54) reads one variable per setting, `TARGET_HUBSPOT_UPSERT_<SETTING>`,
for the target's own settings and the SDK built-ins. It converts integer and boolean
settings, parses object and array settings (`object_mappings`, `stream_maps`) as JSON, and
passes everything else as a string. With `--config FILE --config ENV` the variables override
the file. The target runs as a subprocess, as a pipeline runs it, against the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hubspot_simulator import HubSpotSimulator

from .helpers import record, state, states_in

TOKEN = "env-config-token-7d41c9e2"
PREFIX = "TARGET_HUBSPOT_UPSERT_"

ACCOUNTS_SCHEMA = {
    "type": "SCHEMA",
    "stream": "accounts",
    "schema": {
        "type": "object",
        "properties": {
            "company_external_id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "numberofemployees": {"type": ["integer", "null"]},
            "nickname": {"type": ["string", "null"]},  # not a HubSpot property of companies
        },
    },
    "key_properties": ["company_external_id"],
}
GADGETS_SCHEMA = {
    "type": "SCHEMA",
    "stream": "gadgets",
    "schema": {
        "type": "object",
        "properties": {
            "widget_id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "color": {"type": ["string", "null"]},
        },
    },
    "key_properties": ["widget_id"],
}
OBJECT_MAPPINGS = {
    "accounts": {"object_type": "companies", "id_property": "company_external_id"},
    "gadgets": {"object_type": "p_widgets", "id_property": "widget_id"},
}


def _account(i: int) -> dict[str, Any]:
    return {"company_external_id": f"ACC-{i:03d}", "name": f"Account {i}", "numberofemployees": 10 * i, "nickname": f"a{i}"}


def run_with_env(
    settings: dict[str, str], messages: list[dict], *, config_file: Path | None = None, timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m target_hubspot_upsert --config ENV` with TARGET_HUBSPOT_UPSERT_* set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update({PREFIX + name.upper(): value for name, value in settings.items()})
    cmd = [sys.executable, "-m", "target_hubspot_upsert"]
    if config_file is not None:
        cmd += ["--config", str(config_file)]
    cmd += ["--config", "ENV"]
    return subprocess.run(
        cmd, input="".join(json.dumps(m) + "\n" for m in messages), capture_output=True, text=True,
        env=env, timeout=timeout, check=False,
    )


@pytest.fixture
def sim():
    with HubSpotSimulator(tokens={TOKEN}) as simulator:
        yield simulator


def test_every_kind_of_setting_from_env(sim):
    """Strings, integers, booleans, options and the object_mappings JSON all come from env."""
    settings = {
        "access_token": TOKEN,
        "api_base_url": sim.base_url,
        "object_mappings": json.dumps(OBJECT_MAPPINGS),
        "batch_size_rows": "2",
        "max_concurrent_requests": "1",
        "max_retries": "0",
        "validate_records": "true",
        "unknown_properties": "ignore",
        "null_values": "clear",
    }
    messages = [
        ACCOUNTS_SCHEMA,
        *[record("accounts", _account(i)) for i in range(1, 6)],
        state({"bookmarks": {"accounts": 5}}),
        GADGETS_SCHEMA,
        record("gadgets", {"widget_id": "W-1", "name": "Sprocket", "color": "red"}),
        record("gadgets", {"widget_id": "W-2", "name": None, "color": "blue"}),
        state({"bookmarks": {"accounts": 5, "gadgets": 2}}),
    ]
    proc = run_with_env(settings, messages)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # object_mappings (JSON): the accounts stream landed in companies, by company_external_id.
    companies = {o["properties"]["company_external_id"]: o["properties"] for o in sim.objects("companies")}
    assert set(companies) == {f"ACC-{i:03d}" for i in range(1, 6)}
    assert companies["ACC-003"]["name"] == "Account 3"
    assert float(companies["ACC-003"]["numberofemployees"]) == 30
    # batch_size_rows (integer): 5 records in batches of at most 2.
    company_upserts = sim.upsert_requests("companies")
    assert [e.input_count for e in company_upserts] == [2, 2, 1]
    # unknown_properties=ignore (options): the unknown field was left out, not refused.
    for entry in company_upserts:
        for item in entry.request_body["inputs"]:
            assert "nickname" not in item["properties"]
    # The custom object, and null_values=clear: a null is sent as "" (clears the value).
    widgets = {o["properties"]["widget_id"]: o["properties"] for o in sim.objects("p_widgets")}
    assert widgets["W-1"]["name"] == "Sprocket" and widgets["W-1"]["color"] == "red"
    sent = {i["id"]: i["properties"] for e in sim.upsert_requests("p_widgets") for i in e.request_body["inputs"]}
    assert sent["W-2"]["name"] == ""
    # Only STATE on stdout, the last one once everything before it landed; no token in logs.
    states = states_in(proc.stdout)
    assert states and states[-1] == {"bookmarks": {"accounts": 5, "gadgets": 2}}
    assert TOKEN not in proc.stderr
    assert f"Parsing 'object_mappings' config from env variable '{PREFIX}OBJECT_MAPPINGS'" in proc.stderr


def test_env_overrides_the_config_file(sim, tmp_path):
    """`--config FILE --config ENV`: the variables win over the file's values."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({
        "access_token": "wrong-token-from-the-file",
        "api_base_url": sim.base_url,
        "object_mappings": {"accounts": {"object_type": "contacts", "id_property": "email"}},
        "max_retries": 0,
    }))
    settings = {"access_token": TOKEN, "object_mappings": json.dumps(OBJECT_MAPPINGS)}
    messages = [ACCOUNTS_SCHEMA, record("accounts", _account(1)), state({"n": 1})]
    proc = run_with_env({**settings, "unknown_properties": "ignore"}, messages, config_file=config_file)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [o["properties"]["company_external_id"] for o in sim.objects("companies")] == ["ACC-001"]
    assert sim.objects("contacts") == []
    assert states_in(proc.stdout) == [{"n": 1}]


def test_a_bad_setting_from_env_is_a_clear_config_error(sim):
    settings = {
        "access_token": TOKEN,
        "api_base_url": sim.base_url,
        "object_mappings": json.dumps({"accounts": {"object_type": "companies", "id_propery": "x"}}),
        "unknown_properties": "explode",
    }
    proc = run_with_env(settings, [ACCOUNTS_SCHEMA, record("accounts", _account(1))])
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "object_mappings['accounts']: unknown key(s) id_propery" in proc.stderr
    assert "unknown_properties" in proc.stderr
    assert sim.upsert_requests() == []
    assert proc.stdout == ""


def test_request_timeout_from_env(sim):
    settings = {
        "access_token": TOKEN, "api_base_url": sim.base_url, "request_timeout": "30",
        "object_mappings": json.dumps(OBJECT_MAPPINGS), "unknown_properties": "ignore",
    }
    proc = run_with_env(settings, [ACCOUNTS_SCHEMA, state({"n": 1})])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"n": 1}


@pytest.mark.parametrize(
    ("setting", "value"),
    [("object_mappings", '{"accounts": '), ("batch_size_rows", "ten"), ("validate_records", "nope"),
     ("max_rejected_records", "1.5")],
)
def test_malformed_env_value_is_a_clear_config_error(sim, setting, value):
    settings = {"access_token": TOKEN, "api_base_url": sim.base_url, setting: value}
    proc = run_with_env(settings, [ACCOUNTS_SCHEMA])
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert PREFIX + setting.upper() in proc.stderr
