"""The README stays true: its settings table matches the config schema, its examples run."""

from __future__ import annotations

import json
import re
from pathlib import Path

from target_hubspot_upsert.target import TargetHubSpotUpsert

from .conftest import TOKEN
from .helpers import record, run_in_process, schema, state

README = Path(__file__).parent.parent / "README.md"


def test_readme_settings_table_lists_every_setting():
    schema = dict(TargetHubSpotUpsert.config_jsonschema)
    schema = {**schema, "properties": dict(schema["properties"])}
    TargetHubSpotUpsert.append_builtin_config(schema)
    rows = set(re.findall(r"^\| ([a-z0-9_.]+) \|", README.read_text(), flags=re.MULTILINE))
    missing = set(schema["properties"]) - rows
    assert not missing, f"README settings table lacks {sorted(missing)}"
    ours = set(TargetHubSpotUpsert.config_jsonschema["properties"])
    assert ours <= rows


def test_readme_gives_the_two_setup_commands_ci_runs():
    text = README.read_text()
    assert "uv run python examples/demo.py" in text
    assert "uv run pytest" in text
    assert "uv run pytest" in (Path(__file__).parent.parent / ".ci" / "run").read_text()


def test_readme_stream_maps_example_runs(sim):
    text = README.read_text()
    section = text[text.index("### Field names that differ from property names"):]
    block = json.loads(section[section.index("```json") + len("```json"):section.index("```", section.index("```json") + 7)])
    config = {**block, "access_token": TOKEN, "api_base_url": sim.base_url, "unknown_properties": "create"}
    props = {name: {"type": ["string", "null"]} for name in
             ("email_address", "first_name", "internal_notes", "total_spent")}
    run = run_in_process(config, [
        schema("customers", props),
        record("customers", {"email_address": "a@b.co", "first_name": "Ann", "internal_notes": "x",
                             "total_spent": "12.50"}),
        record("customers", {"email_address": "c@d.co", "first_name": "Cy", "total_spent": None}),
        state({"done": True}),
    ])
    assert run.error is None, run.error
    ann = sim.find("contacts", "email", "a@b.co")["properties"]
    assert ann["firstname"] == "Ann" and ann["lifetime_value"] == "12.5"
    assert "internal_notes" not in ann and "total_spent" not in ann
    assert "lifetime_value" not in sim.find("contacts", "email", "c@d.co")["properties"]
    assert run.states == [{"done": True}]
