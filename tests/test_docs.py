"""The README stays true: its settings table matches the config schema, its examples run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from target_hubspot_upsert.target import TargetHubSpotUpsert, config_problems

from .conftest import TOKEN
from .helpers import FIXTURES, record, run_in_process, schema, state

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


def readme_examples(section_title: str) -> list[tuple[dict, dict]]:
    """(`config` of the meltano.yml snippet, JSON config) of each example pair in a README section."""
    text = README.read_text()
    start = text.index(f"## {section_title}\n")
    section = text[start:text.index("\n## ", start + 3)]
    blocks = re.findall(r"```(yaml|json)\n(.*?)```", section, flags=re.DOTALL)
    pairs = []
    for (kind_a, yaml_text), (kind_b, json_text) in zip(blocks[::2], blocks[1::2], strict=True):
        assert (kind_a, kind_b) == ("yaml", "json"), "each example gives meltano.yml, then the JSON config"
        (loader,) = yaml.safe_load(yaml_text)["plugins"]["loaders"]
        assert loader["name"] == "target-hubspot-upsert"
        pairs.append((loader["config"], json.loads(json_text)))
    return pairs


def test_readme_beyond_upsert_examples_agree_and_are_valid():
    pairs = readme_examples("Write modes, deletes and associations")
    assert len(pairs) == 4  # write_mode update, write_mode create, hard_delete, associations
    for from_yaml, from_json in pairs:
        assert from_yaml == from_json
        assert config_problems({**from_json, "access_token": "x"}) == []
    features = [json.dumps(c) for _, c in pairs]
    assert '"write_mode": "update"' in features[0] and '"write_mode": "create"' in features[1]
    assert '"hard_delete": true' in features[2] and '"associations"' in features[3]


def test_readme_associations_example_runs_on_its_fixture(sim):
    _, example = readme_examples("Write modes, deletes and associations")[3]
    sim.add_association_label("deals", "contacts", "Decision maker")
    run = run_in_process({**example, "access_token": TOKEN, "api_base_url": sim.base_url},
                         (FIXTURES / "associations.singer").read_text())
    assert run.error is None, run.error
    assert len(sim.associations("contacts", "companies")) == 4
    assert len(sim.associations("deals")) == 3
    assert run.target.runtime.report.stats["contacts"].rejected == 1  # the contact of an unknown company
