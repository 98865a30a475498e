"""Config keys that are no setting: one warning naming them, with the closest setting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.singer.config import unknown_settings_warning
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .helpers import contact, record, run_cli, schema, state

ROOT = Path(__file__).resolve().parent.parent


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Unknown setting")]


def test_a_misspelt_setting_is_warned_about_once_with_the_closest_name(sim, config, tmp_path):
    run = run_cli({**config, "max_rejected_record": 3}, [schema("contacts"), record("contacts", contact(1)), state(1)],
                  tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "Unknown setting" in line]
    assert len(lines) == 1
    assert lines[0].endswith("Unknown setting 'max_rejected_record' (did you mean 'max_rejected_records'?); it is ignored.")
    assert "| WARNING " in lines[0]


def test_a_misspelt_token_warns_before_the_missing_credentials_error(sim, tmp_path):
    run = run_cli({"acess_token": "x", "api_base_url": sim.base_url}, "", tmp_path=tmp_path)
    assert run.returncode == 1
    warning = run.stderr.index("Unknown setting 'acess_token' (did you mean 'access_token'?); it is ignored.")
    assert warning < run.stderr.index("No credentials")


def test_several_unknown_settings_are_named_in_one_warning(config, caplog):
    caplog.set_level(logging.WARNING, logger="target_hubspot_upsert")
    TargetHubSpotUpsert(config={**config, "zzz_qqq": 1, "batch_size_row": 5})
    assert _warnings(caplog) == [
        "Unknown settings 'batch_size_row' (did you mean 'batch_size_rows'?), 'zzz_qqq'; they are ignored."
    ]


def test_every_setting_about_lists_is_known(config, caplog):
    caplog.set_level(logging.WARNING, logger="target_hubspot_upsert")
    every = dict.fromkeys(TargetHubSpotUpsert._known_settings())
    assert {"load_method", "add_record_metadata", "validate_records", "stream_maps", "stream_map_config",
            "faker_config", "flattening_enabled", "batch_size_rows"} <= set(every)
    assert unknown_settings_warning(every, TargetHubSpotUpsert._known_settings()) is None
    TargetHubSpotUpsert(config={**config, "validate_records": True, "load_method": "upsert",
                                "add_record_metadata": False, "stream_maps": {}, "flattening_enabled": False,
                                "batch_config": None})
    assert _warnings(caplog) == []


def test_what_meltano_passes_from_the_plugin_definition_is_known(config, caplog):
    # Meltano writes the target's config from the settings it defines (their values, defaults
    # included) and nothing else: its own extras (`_log_parser`, `_dialect`) stay out of it.
    definition = yaml.safe_load((ROOT / "target-hubspot-upsert.plugin.yml").read_text(encoding="utf-8"))
    meltano_config = {s["name"]: s["value"] for s in definition["settings"] if "value" in s}
    caplog.set_level(logging.WARNING, logger="target_hubspot_upsert")
    TargetHubSpotUpsert(config={**meltano_config, **config})
    assert _warnings(caplog) == []


def test_no_suggestion_when_nothing_is_close():
    assert unknown_settings_warning({"colour": 1}, ["access_token"]) == "Unknown setting 'colour'; it is ignored."
    assert unknown_settings_warning({"access_token": 1}, ["access_token"]) is None


def test_unknown_keys_in_an_object_mapping_are_errors_with_the_closest_key(config):
    with pytest.raises(HubSpotConfigError) as excinfo:
        TargetHubSpotUpsert(config={**config, "object_mappings": {"accounts": {"object_type": "companies", "id_propery": "x"}}})
    assert excinfo.value.errors == [
        "object_mappings['accounts']: unknown key(s) id_propery (did you mean id_property?); "
        "allowed keys are object_type, id_property, match_property, on_multiple_matches, write_mode and associations"
    ]
