"""The README and the docs/ pages stay true: the settings table is `--about`'s, runnable blocks run.

A fenced block right after a `<!-- runnable -->` line (in README.md or a docs/*.md page) is run here:

- `bash` blocks by bash (`-euo pipefail`) in an empty folder holding a copy of `examples/`, with
  this environment's `target-hubspot-upsert` first on PATH and `HUBSPOT_ACCESS_TOKEN` /
  `HUBSPOT_API_BASE_URL` naming a fresh local simulator; they must exit 0 without warnings
  about unknown settings;
- `json` blocks are configs: every key a known setting, the values valid for the config schema
  and the target's cross-field checks (credentials added when the example leaves them out).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

from target_hubspot_upsert.singer.config import config_problems, unknown_settings_warning
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .conftest import TOKEN
from .helpers import FIXTURES, record, run_cli, run_in_process, schema, state

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DESIGN = ROOT / "docs" / "design.md"
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README."""

    lang: str
    text: str
    line: int
    runnable: bool
    file: str = "README.md"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def readme_blocks() -> list[Block]:
    """The fenced blocks of README.md, then of each docs/ page."""
    blocks = []
    for path in (README, *DOCS):
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            blocks.append(Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1,
                                before == MARKER, name))
    return blocks


def test_readme_links_every_docs_page_and_the_pages_link_back():
    text = README.read_text(encoding="utf-8")
    assert DOCS
    for page in DOCS:
        assert f"](docs/{page.name})" in text, page.name
        assert "](../README.md)" in page.read_text(encoding="utf-8"), page.name


def runnable(lang: str) -> list[Block]:
    return [b for b in readme_blocks() if b.runnable and b.lang == lang]


def full_schema() -> dict:
    schema = copy.deepcopy(TargetHubSpotUpsert.config_jsonschema)
    TargetHubSpotUpsert.append_builtin_config(schema)
    return schema


def about(fmt: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "target_hubspot_upsert", "--about", f"--format={fmt}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout


def _table(markdown: str) -> str:
    start = markdown.index("| Setting | Required | Default | Description |")
    end = markdown.find("\n\n", start)
    return markdown[start:end if end != -1 else None].strip()


# -- settings and capabilities --------------------------------------------------------------


def test_readme_settings_table_is_what_about_prints():
    assert _table(README.read_text(encoding="utf-8")) == _table(about("markdown"))


def test_readme_settings_table_lists_every_setting():
    rows = set(re.findall(r"^\| ([a-z0-9_.]+) \|", README.read_text(), flags=re.MULTILINE))
    assert set(full_schema()["properties"]) <= rows


def test_readme_capabilities_are_what_about_reports():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("Capabilities (`--about`"):]
    listed = re.findall(r"^- `([a-z-]+)`$", section[: section.index("\n## ")], flags=re.MULTILINE)
    assert listed == json.loads(about("json"))["capabilities"]


# -- install instructions -------------------------------------------------------------------


def test_readme_installs_the_package_by_its_name_and_from_a_clone():
    text = README.read_text(encoding="utf-8")
    name = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    for command in (f"pipx install {name}", f"uv tool install {name}", "uv tool install .", "pipx install ."):
        assert command in text, command
    assert "pip install uv" in text
    assert "pipx install meltano" in text or "uv tool install meltano" in text
    assert '-m "not meltano"' in text


def test_readme_gives_the_two_setup_commands_ci_runs():
    text = README.read_text()
    assert "uv run python examples/demo.py" in text
    assert "uv run pytest" in text
    assert "uv run pytest" in (ROOT / ".ci" / "run").read_text()


# -- runnable blocks ------------------------------------------------------------------------


def test_readme_has_runnable_blocks_and_every_json_block_is_one():
    blocks = readme_blocks()
    assert len(runnable("bash")) >= 2
    assert len(runnable("json")) >= 8
    unmarked = [b.where for b in blocks if b.lang == "json" and not b.runnable]
    assert not unmarked, f"json blocks without {MARKER} at {unmarked}"
    assert {b.lang for b in blocks if b.runnable} <= {"bash", "json"}


@pytest.mark.parametrize("block", runnable("json"), ids=lambda b: b.where.replace("/", "-"))
def test_readme_json_config_is_valid(block):
    config = json.loads(block.text)
    schema = full_schema()
    assert unknown_settings_warning(config, schema["properties"]) is None
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(config)]
    assert not errors, errors
    credentials = {"client_id", "client_secret", "refresh_token", "access_token"}
    checked = config if credentials & set(config) else {**config, "access_token": "pat-na1-example"}
    assert config_problems(checked) == []


@pytest.mark.parametrize("block", runnable("bash"), ids=lambda b: b.where.replace("/", "-"))
def test_readme_shell_block_runs(block, sim, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TARGET_HUBSPOT_UPSERT_", "HUBSPOT_")) and k not in ("SINGER_SDK_LOG_CONFIG", "LOGLEVEL")}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_API_BASE_URL": sim.base_url,
    }
    proc = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-euo", "pipefail", "-c", block.text], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )
    assert proc.returncode == 0, f"{block.where} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "Unknown setting" not in proc.stderr
    assert sim.objects("contacts"), "nothing landed"


# -- stream maps ----------------------------------------------------------------------------


def _stream_maps_config() -> dict:
    text = README.read_text()
    section = text[text.index("### Field names that differ from property names"):]
    start = section.index("```json") + len("```json")
    return json.loads(section[start:section.index("```", start)])


@pytest.mark.parametrize("key", [["email_address"], []], ids=["key-property-renamed", "no-key-properties"])
def test_readme_stream_maps_example_runs(sim, key):
    config = {**_stream_maps_config(), "access_token": TOKEN, "api_base_url": sim.base_url, "unknown_properties": "create"}
    props = {name: {"type": ["string", "null"]} for name in
             ("email_address", "first_name", "internal_notes", "total_spent")}
    run = run_in_process(config, [
        schema("customers", props, key=key),
        record("customers", {"email_address": "a@b.co", "first_name": "Ann", "internal_notes": "x",
                             "total_spent": "12.50"}),
        record("customers", {"email_address": "c@d.co", "first_name": "Cy", "total_spent": None}),
        state({"done": True}),
    ])
    assert run.error is None, run.error
    ann = sim.find("contacts", "email", "a@b.co")["properties"]
    assert ann["firstname"] == "Ann" and ann["lifetime_value"] == "12.5"
    assert "internal_notes" not in ann and "total_spent" not in ann and "email_address" not in ann
    assert "lifetime_value" not in sim.find("contacts", "email", "c@d.co")["properties"]
    assert run.states == [{"done": True}]


def test_stream_maps_example_without_key_properties_line_fails_as_the_readme_says(sim):
    config = _stream_maps_config()
    del config["stream_maps"]["customers"]["__key_properties__"]
    run = run_in_process({**config, "access_token": TOKEN, "api_base_url": sim.base_url}, [
        schema("customers", {"email_address": {"type": "string"}}, key=["email_address"]),
    ])
    assert "Removing key property 'email_address' is not permitted" in str(run.error)
    assert "Removing key property 'email_address' is not permitted" in README.read_text()


# -- quieter logs ---------------------------------------------------------------------------


def _logging_configs() -> list[str]:
    """The YAML blocks of the README's "Fewer METRIC lines": drop every metric, then the per-request ones."""
    text = README.read_text()
    section = text[text.index("### Fewer METRIC lines"):]
    section = section[: section.index("\n## ")]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)


def _metrics(stderr: str) -> set[str]:
    return set(re.findall(r'METRIC: \{"type":"\w+","metric":"(\w+)"', stderr))


def _run_logged(config_text: str | None, sim, tmp_path, **settings) -> str:
    env = {}
    if config_text is not None:
        (tmp_path / "target-logging.yml").write_text(config_text)
        env["SINGER_SDK_LOG_CONFIG"] = str(tmp_path / "target-logging.yml")
    messages = [schema("contacts"), *(record("contacts", {"email": f"u{i}@example.com"}) for i in range(5)), state(1)]
    run = run_cli({"access_token": TOKEN, "api_base_url": sim.base_url, "batch_size_rows": 2, **settings},
                  messages, tmp_path=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "Stream 'contacts' -> contacts: received 5" in run.stderr
    return run.stderr


def test_readme_logging_config_drops_every_metric(sim, tmp_path, monkeypatch):
    monkeypatch.delenv("SINGER_SDK_LOG_CONFIG", raising=False)
    default = _metrics(_run_logged(None, sim, tmp_path))
    assert default == {"http_request_duration", "http_request_count", "record_count"}  # aggregates only
    assert _metrics(_run_logged(_logging_configs()[0], sim, tmp_path)) == set()


def test_readme_logging_filter_drops_the_per_request_metrics_of_detailed_metrics(sim, tmp_path, monkeypatch):
    monkeypatch.delenv("SINGER_SDK_LOG_CONFIG", raising=False)
    detailed = _metrics(_run_logged(None, sim, tmp_path, detailed_metrics=True))
    assert {"http_request_duration", "batch_processing_time", "record_count", "http_request_count"} <= detailed
    filtered = _metrics(_run_logged(_logging_configs()[1], sim, tmp_path, detailed_metrics=True))
    assert filtered == detailed - {"http_request_duration", "batch_processing_time"}


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


def _label_command() -> str:
    (block,) = [b for b in readme_blocks() if b.lang == "bash" and "/_sim/association_label" in b.text]
    return block.text


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's command uses curl")
def test_readme_associations_example_runs_on_its_fixture(sim):
    _, example = readme_examples("Write modes, deletes and associations")[3]
    # The one command the README gives to prepare a fresh simulator, run as written.
    subprocess.run([shutil.which("bash") or "/bin/bash", "-euo", "pipefail", "-c", _label_command()],
                   env={**os.environ, "HUBSPOT_API_BASE_URL": sim.base_url}, check=True, timeout=60, capture_output=True)
    run = run_in_process({**example, "access_token": TOKEN, "api_base_url": sim.base_url},
                         (FIXTURES / "associations.singer").read_text())
    assert run.error is None, run.error
    assert len(sim.associations("contacts", "companies")) == 4
    assert len(sim.associations("deals")) == 3
    assert run.target.runtime.report.stats["contacts"].rejected == 1  # the contact of an unknown company


def test_readme_create_only_example_runs_on_a_fresh_simulator(sim):
    _, example = readme_examples("Write modes, deletes and associations")[1]
    run = run_in_process({**example, "access_token": TOKEN, "api_base_url": sim.base_url}, [
        schema("signups", {"email": {"type": "string"}, "firstname": {"type": ["string", "null"]}}, key=["email"]),
        record("signups", {"email": "new@example.com", "firstname": "New"}),
        schema("call_notes", {"hs_note_body": {"type": "string"}, "hs_timestamp": {"type": "string", "format": "date-time"}}),
        record("call_notes", {"hs_note_body": "Called about renewal", "hs_timestamp": "2026-01-05T10:00:00Z"}),
        record("call_notes", {"hs_note_body": "Called again", "hs_timestamp": "2026-01-06T10:00:00Z"}),
        state({"done": True}),
    ])
    assert run.error is None, run.error
    assert sim.find("contacts", "email", "new@example.com")["properties"]["firstname"] == "New"
    assert sorted(n["properties"]["hs_note_body"] for n in sim.objects("notes")) == ["Called about renewal", "Called again"]
    assert run.states == [{"done": True}]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_to_readme_sections_land_on_a_heading():
    text = README.read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", re.sub(r"(?ms)^```.*?^```$", "", text), re.MULTILINE)}
    links = [(README.name, a) for a in re.findall(r"\]\(#([^)]+)\)", text)]
    for page in DOCS:
        links += [(page.name, a) for a in re.findall(r"\]\(\.\./README\.md#([^)]+)\)", page.read_text(encoding="utf-8"))]
    assert links
    missing = [f"{where}: #{anchor}" for where, anchor in links if anchor not in anchors]
    assert not missing, missing
