"""The README's settings table stays in step with the config schema."""

from __future__ import annotations

import re
from pathlib import Path

from target_hubspot_upsert.target import TargetHubSpotUpsert

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
