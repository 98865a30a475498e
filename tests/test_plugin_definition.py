"""The Meltano plugin definitions agree with the target's config schema.

`target-hubspot-upsert.plugin.yml` (Hub-style definition) and the loader in `meltano.yml`
must list exactly the settings the target accepts, with a Meltano `kind` that matches the
JSON schema type, `sensitive: true` on every secret, the schema's enum as `options`, its
defaults as `value` and its descriptions word for word, and the capabilities `--about`
reports. `meltano.yml`'s loader is the definition as `meltano add --from-ref` writes it.
Adding a setting to the target without adding it to both files fails here (see
`test_a_new_schema_setting_is_reported`). The README's settings table is checked against
`--about` in tests/test_docs.py.

Which SDK built-ins count: every setting `target-hubspot-upsert --about` reports is the
target's own `config_jsonschema` plus what `append_builtin_config` adds. The built-ins
that change what this target does (validate_records, stream_maps, stream_map_config and
the flattening_* settings) are listed in both files. `EXCLUDED_BUILTINS` are accepted by
the SDK but do nothing useful here; they are left out on purpose, and a built-in a future
SDK adds fails the test until it is listed or excluded.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from target_hubspot_upsert.core.mapping import mapping_problems
from target_hubspot_upsert.singer.config import config_problems
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILE = ROOT / "target-hubspot-upsert.plugin.yml"
MELTANO_FILE = ROOT / "meltano.yml"
PACKAGE_DIR = ROOT / "target_hubspot_upsert"

EXCLUDED_BUILTINS: dict[str, str] = {
    "add_record_metadata": "adds _sdc_* fields, which are never HubSpot properties and are never sent",
    "faker_config": "only for stream-map expressions calling `fake`, which needs the faker extra this package does not install",
}
#: Keys of a Hub definition that `meltano add --from-ref` copies into meltano.yml.
KEYS_MELTANO_KEEPS = (
    "name", "namespace", "label", "description", "pip_url", "executable", "capabilities",
    "settings_group_validation", "settings",
)
KIND_BY_JSON_TYPE = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}
SECRET_KINDS = {"string"}  # with `sensitive: true`; Meltano 4 deprecates kind `password`


# -- what the target accepts ---------------------------------------------------------------


def builtin_setting_names(target_cls: type = TargetHubSpotUpsert) -> set[str]:
    """Names the SDK appends to any config schema of this target class."""
    empty: dict[str, Any] = {"properties": {}}
    target_cls.append_builtin_config(empty)
    return set(empty["properties"])


def accepted_settings(target_cls: type = TargetHubSpotUpsert) -> dict[str, dict[str, Any]]:
    """The target's own settings plus the SDK built-ins, as `--about` reports them."""
    schema = copy.deepcopy(target_cls.config_jsonschema)
    target_cls.append_builtin_config(schema)
    return schema["properties"]


def settings_to_define(target_cls: type = TargetHubSpotUpsert) -> dict[str, dict[str, Any]]:
    """Accepted settings minus the built-ins left out on purpose."""
    return {k: v for k, v in accepted_settings(target_cls).items() if k not in EXCLUDED_BUILTINS}


def json_type(prop: Mapping[str, Any]) -> str | None:
    """The non-null JSON type of a schema property (None when ambiguous)."""
    types = prop.get("type")
    if isinstance(types, str):
        types = [types]
    non_null = [t for t in types or [] if t != "null"]
    return non_null[0] if len(non_null) == 1 else None


def is_secret(prop: Mapping[str, Any]) -> bool:
    """Secret in the SDK's sense (`secret=True` makes both keys true)."""
    return bool(prop.get("secret") or prop.get("writeOnly"))


# -- the checker ---------------------------------------------------------------------------


def definition_problems(
    settings: list[Mapping[str, Any]],
    schema_properties: Mapping[str, Mapping[str, Any]],
    *,
    where: str,
    need_docs: bool = False,
) -> list[str]:
    """Every disagreement between a plugin's `settings` list and the schema properties."""
    problems: list[str] = []
    by_name: dict[str, Mapping[str, Any]] = {}
    for setting in settings:
        name = setting.get("name")
        if not name:
            problems.append(f"{where}: a setting has no name: {setting!r}")
            continue
        if name in by_name:
            problems.append(f"{where}: setting '{name}' is defined twice")
        by_name[name] = setting
    for name in sorted(set(schema_properties) - set(by_name)):
        problems.append(f"{where}: setting '{name}' is in the target's config schema but not defined")
    for name in sorted(set(by_name) - set(schema_properties)):
        why = f" (left out on purpose: {EXCLUDED_BUILTINS[name]})" if name in EXCLUDED_BUILTINS else ""
        problems.append(f"{where}: setting '{name}' is defined but the target does not take it{why}")
    for name in sorted(set(by_name) & set(schema_properties)):
        problems.extend(_setting_problems(by_name[name], schema_properties[name], where=where, need_docs=need_docs))
    return problems


def _setting_problems(
    setting: Mapping[str, Any], prop: Mapping[str, Any], *, where: str, need_docs: bool,
) -> list[str]:
    name = setting["name"]
    kind = setting.get("kind")
    sensitive = setting.get("sensitive") is True
    problems: list[str] = []
    if kind is None:
        return [f"{where}: setting '{name}' has no kind"]
    if need_docs and not (str(setting.get("label") or "").strip() and str(setting.get("description") or "").strip()):
        problems.append(f"{where}: setting '{name}' needs a label and a description")
    elif need_docs and setting["description"] != prop.get("description"):
        problems.append(f"{where}: the description of '{name}' is not the target's (`--about`): {prop.get('description')!r}")
    if is_secret(prop):
        if not sensitive:
            problems.append(f"{where}: setting '{name}' is a secret but is not `sensitive: true`")
        if kind not in SECRET_KINDS:
            problems.append(f"{where}: secret setting '{name}' has kind '{kind}', expected one of {sorted(SECRET_KINDS)}")
    else:
        if sensitive:
            problems.append(f"{where}: setting '{name}' is `sensitive: true` but the schema does not mark it secret")
        if kind == "password":
            problems.append(f"{where}: setting '{name}' has kind 'password' but is not a secret")
        enum = prop.get("enum")
        if enum is not None:
            enum = [getattr(v, "value", v) for v in enum]  # the SDK's load_method enum holds Enum members
            values = [o.get("value") for o in setting.get("options") or []]
            if kind != "options":
                problems.append(f"{where}: setting '{name}' has kind '{kind}', expected 'options' (the schema has an enum)")
            elif sorted(map(str, values)) != sorted(str(v) for v in enum if v is not None):
                problems.append(f"{where}: options of '{name}' are {values}, the schema allows {enum}")
        else:
            expected = KIND_BY_JSON_TYPE.get(json_type(prop) or "")
            if expected is None:
                problems.append(f"{where}: setting '{name}' has schema type {prop.get('type')!r} that maps to no Meltano kind")
            elif kind != expected:
                problems.append(
                    f"{where}: setting '{name}' has kind '{kind}' but its schema type is "
                    f"{json_type(prop)!r} (kind '{expected}')"
                )
    if "value" not in setting and prop.get("default") is not None:
        problems.append(f"{where}: setting '{name}' has no value, the target's default is {prop['default']!r}")
    if "value" in setting:
        if "default" not in prop:
            problems.append(f"{where}: setting '{name}' sets value {setting['value']!r} but the target has no default for it")
        elif setting["value"] != getattr(prop["default"], "value", prop["default"]):
            problems.append(f"{where}: setting '{name}' sets value {setting['value']!r}, the target's default is {prop['default']!r}")
    return problems


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_def() -> dict[str, Any]:
    return yaml.safe_load(PLUGIN_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def meltano_project() -> dict[str, Any]:
    return yaml.safe_load(MELTANO_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def meltano_loader(meltano_project) -> dict[str, Any]:
    loaders = [p for p in meltano_project["plugins"]["loaders"] if p["name"] == "target-hubspot-upsert"]
    assert len(loaders) == 1, "meltano.yml must define the loader target-hubspot-upsert once"
    return loaders[0]


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "target_hubspot_upsert", "--about", "--format=json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(proc.stdout)


# -- the accepted settings are what users see ----------------------------------------------


def test_accepted_settings_are_what_about_reports(about):
    assert set(accepted_settings()) == set(about["settings"]["properties"])


def test_excluded_builtins_are_sdk_builtins_without_effect():
    builtins = builtin_setting_names()
    assert set(EXCLUDED_BUILTINS) <= builtins
    own = set(TargetHubSpotUpsert.config_jsonschema["properties"]) - builtins
    assert not own & set(EXCLUDED_BUILTINS)
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE_DIR.rglob("*.py"))
    for name in ("add_record_metadata",):
        read = rf"""config(\.get\(|\[)\s*["']{name}["']"""
        assert not re.search(read, source), f"the target now reads {name}: define it instead"
    assert importlib.util.find_spec("faker") is None, "faker is installed: faker_config now works, define it"


# -- the Hub-style definition ----------------------------------------------------------------


def test_plugin_definition_settings_match_schema(plugin_def):
    problems = definition_problems(plugin_def["settings"], settings_to_define(), where=PLUGIN_FILE.name, need_docs=True)
    assert not problems, "\n".join(problems)


def test_plugin_definition_metadata(plugin_def, about):
    assert plugin_def["name"] == "target-hubspot-upsert"
    assert plugin_def["namespace"] == "target_hubspot_upsert"
    assert plugin_def["executable"] == "target-hubspot-upsert"
    # Installed from the package index by name, like any published plugin.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert plugin_def["pip_url"] == project["name"] == "target-hubspot-upsert"
    assert project["scripts"][plugin_def["executable"]] == "target_hubspot_upsert.singer.cli:main"
    for key in ("label", "description"):
        assert str(plugin_def.get(key) or "").strip(), f"{key} is missing"
    assert plugin_def["capabilities"] == about["capabilities"]
    defined = {s["name"] for s in plugin_def["settings"]}
    for group in plugin_def.get("settings_group_validation") or []:
        assert set(group) <= defined, f"settings_group_validation names unknown settings: {group}"


def test_plugin_definition_settings_group_validation_matches_target(plugin_def):
    # Each group on its own is a complete set of credentials for the target.
    for group in plugin_def["settings_group_validation"]:
        assert config_problems(dict.fromkeys(group, "x")) == [], group


# -- meltano.yml -------------------------------------------------------------------------------


def test_no_placeholders_in_install_instructions():
    for path in (PLUGIN_FILE, MELTANO_FILE, ROOT / "README.md", ROOT / "pyproject.toml"):
        text = path.read_text(encoding="utf-8")
        assert "<org>" not in text, f"{path.name} has a placeholder"
        assert "git+https://" not in text, f"{path.name} installs from a repository URL"


def test_meltano_loader_settings_match_schema(meltano_loader):
    problems = definition_problems(meltano_loader["settings"], settings_to_define(), where=MELTANO_FILE.name, need_docs=True)
    assert not problems, "\n".join(problems)


def test_meltano_loader_is_the_plugin_definition(meltano_loader, plugin_def):
    # What `meltano add --from-ref target-hubspot-upsert.plugin.yml` writes, but for pip_url:
    # the example project installs this checkout, editable.
    assert meltano_loader["pip_url"] == "-e ."
    for key in KEYS_MELTANO_KEEPS:
        if key != "pip_url":
            assert meltano_loader.get(key) == plugin_def.get(key), f"meltano.yml's loader differs in {key}"
    assert set(meltano_loader) <= {*KEYS_MELTANO_KEEPS, "config"}


def test_meltano_loader_config(meltano_loader):
    config = meltano_loader["config"]
    assert config["access_token"] == "$HUBSPOT_ACCESS_TOKEN"
    assert config["api_base_url"] == "$HUBSPOT_API_BASE_URL"
    assert set(config) <= set(settings_to_define())
    assert mapping_problems(config["object_mappings"]) == []


def test_meltano_project_works_offline(meltano_project):
    assert meltano_project["send_anonymous_usage_stats"] is False
    assert meltano_project["cli"]["disable_version_check"] is True
    assert meltano_project["project_id"]
    for plugins in meltano_project["plugins"].values():
        for plugin in plugins:
            if "inherit_from" in plugin:
                continue  # reuses its parent's definition and virtualenv
            for key in ("namespace", "pip_url", "executable"):
                assert plugin.get(key), f"{plugin['name']}: {key} must be set (no Hub look-up)"
            assert plugin["pip_url"] == "-e ." or "==" in plugin["pip_url"], f"{plugin['name']}: pin pip_url"
            for setting in plugin.get("settings", []):
                assert setting.get("kind"), f"{plugin['name']}.{setting['name']} has no kind"


def test_meltano_job_and_sample_data(meltano_project, meltano_loader):
    jobs = {j["name"]: j for j in meltano_project.get("jobs", [])}
    assert "sync-hubspot" in jobs
    extractors = {p["name"]: p for p in meltano_project["plugins"]["extractors"]}
    mappings = meltano_loader["config"]["object_mappings"]
    for task in jobs["sync-hubspot"]["tasks"]:
        tap, target = task.split()
        assert target == "target-hubspot-upsert"
        stream = extractors[tap]["config"]["stream_name"]
        id_property = mappings[stream]["id_property"]
        files = [
            p for pattern in extractors[tap]["config"]["paths"]
            for p in ROOT.glob(pattern.replace("$MELTANO_PROJECT_ROOT/", ""))
        ]
        assert files, f"{tap}: no sample file matches {extractors[tap]['config']['paths']}"
        for path in files:
            for line in path.read_text(encoding="utf-8").splitlines():
                assert json.loads(line)[id_property], f"{path}: a record has no {id_property}"


# -- the checker catches drift -------------------------------------------------------------------
# Each case compares with the problems found without the change, so only the real checks
# above fail when the definitions themselves drift.


def _new_problems(before: list[str], after: list[str]) -> list[str]:
    return [p for p in after if p not in before]


def test_a_new_schema_setting_is_reported(monkeypatch, plugin_def, meltano_loader):
    """A setting added to the target's schema but not to the definitions fails the check."""
    cases = ((plugin_def["settings"], PLUGIN_FILE.name), (meltano_loader["settings"], MELTANO_FILE.name))
    before = {where: definition_problems(settings, settings_to_define(), where=where) for settings, where in cases}
    monkeypatch.setitem(
        TargetHubSpotUpsert.config_jsonschema["properties"], "shiny_new_setting",
        {"type": ["integer", "null"], "description": "Added to the target, not to the definitions."},
    )
    for settings, where in cases:
        after = definition_problems(settings, settings_to_define(), where=where)
        assert _new_problems(before[where], after) == [
            f"{where}: setting 'shiny_new_setting' is in the target's config schema but not defined",
        ]


def test_a_new_sdk_builtin_is_reported(plugin_def):
    class WithNewBuiltin(TargetHubSpotUpsert):
        @classmethod
        def append_builtin_config(cls, config_jsonschema: dict) -> None:
            super().append_builtin_config(config_jsonschema)
            config_jsonschema["properties"].setdefault("new_sdk_builtin", {"type": ["boolean", "null"]})

    before = definition_problems(plugin_def["settings"], settings_to_define(), where="def")
    after = definition_problems(plugin_def["settings"], settings_to_define(WithNewBuiltin), where="def")
    assert _new_problems(before, after) == ["def: setting 'new_sdk_builtin' is in the target's config schema but not defined"]


def test_drift_in_a_definition_is_reported(plugin_def):
    before = definition_problems(plugin_def["settings"], settings_to_define(), where="def")
    settings = copy.deepcopy(plugin_def["settings"])
    by_name = {s["name"]: s for s in settings}
    del by_name["refresh_token"]["sensitive"]
    by_name["batch_size_rows"]["kind"] = "string"
    by_name["request_timeout"]["kind"] = "integer"
    by_name["null_values"]["options"].pop()
    by_name["max_retries"]["value"] = 3
    by_name["client_id"]["sensitive"] = True
    settings.append({"name": "add_record_metadata", "kind": "boolean"})
    settings.append({"name": "not_a_setting", "kind": "string"})
    after = definition_problems(settings, settings_to_define(), where="def")
    assert _new_problems(before, after) == [
        "def: setting 'add_record_metadata' is defined but the target does not take it (left out on purpose: "
        + EXCLUDED_BUILTINS["add_record_metadata"] + ")",
        "def: setting 'not_a_setting' is defined but the target does not take it",
        "def: setting 'batch_size_rows' has kind 'string' but its schema type is 'integer' (kind 'integer')",
        "def: setting 'client_id' is `sensitive: true` but the schema does not mark it secret",
        "def: setting 'max_retries' sets value 3, the target's default is 8",
        "def: options of 'null_values' are ['skip'], the schema allows ['skip', 'clear']",
        "def: setting 'refresh_token' is a secret but is not `sensitive: true`",
        "def: setting 'request_timeout' has kind 'integer' but its schema type is 'number' (kind 'decimal')",
    ]


def test_text_and_default_drift_is_reported(plugin_def):
    before = definition_problems(plugin_def["settings"], settings_to_define(), where="def", need_docs=True)
    settings = copy.deepcopy(plugin_def["settings"])
    by_name = {s["name"]: s for s in settings}
    by_name["max_retries"]["description"] = "Retries."
    del by_name["load_method"]["value"]
    after = definition_problems(settings, settings_to_define(), where="def", need_docs=True)
    assert _new_problems(before, after) == [
        "def: setting 'load_method' has no value, the target's default is 'append-only'",
        "def: the description of 'max_retries' is not the target's (`--about`): "
        + repr(settings_to_define()["max_retries"]["description"]),
    ]
