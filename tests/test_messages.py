"""Messages that say what to do: --help, "did you mean", unique properties, map fields, one line each."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from target_hubspot_upsert.singer.config import unknown_env_warnings
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .conftest import TOKEN
from .helpers import contact, record, run_cli, run_in_process, schema, state

FLAGS = ["--version", "--about", "--format", "--config", "--input", "--check", "--full-resync", "--help"]
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} \| [A-Z]+ +\| ")


def _options(help_text: str) -> list[str]:
    return help_text[help_text.index("Options:"):].splitlines()[1:]


@pytest.mark.parametrize("columns", ["60", "200"])
def test_help_lists_every_flag_on_one_line_each(columns):
    proc = subprocess.run(
        [sys.executable, "-m", "target_hubspot_upsert", "--help"], capture_output=True, text=True, timeout=60,
        env={"COLUMNS": columns, "PATH": ""}, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in _options(proc.stdout) if line.strip()]
    assert [line.split()[0] for line in lines] == FLAGS, proc.stdout  # no continuation lines
    check = next(line for line in lines if line.split()[0] == "--check")
    assert "Dry run" in check and "write nothing" in check
    assert "skip_unchanged" in next(line for line in lines if line.split()[0] == "--full-resync")


# -- configuration errors ---------------------------------------------------------------------


def test_a_misspelt_environment_variable_gets_a_did_you_mean(tmp_path):
    run = run_cli(None, "", tmp_path=tmp_path, args=["--config", "ENV"],
                  env={"TARGET_HUBSPOT_UPSERT_ACESS_TOKEN": "pat-secret-value"})
    assert run.returncode == 1
    assert ("Environment variable TARGET_HUBSPOT_UPSERT_ACESS_TOKEN names no setting (did you mean "
            "TARGET_HUBSPOT_UPSERT_ACCESS_TOKEN?); it is ignored.") in run.stderr
    assert "No credentials" in run.stderr
    assert "pat-secret-value" not in run.stderr


def test_environment_variables_of_known_settings_and_of_the_sdk_are_not_reported():
    known = TargetHubSpotUpsert._known_settings()
    environ = {"TARGET_HUBSPOT_UPSERT_ACCESS_TOKEN": "x", "TARGET_HUBSPOT_UPSERT_LOGLEVEL": "INFO",
               "TARGET_HUBSPOT_UPSERT__LOAD_SCHEMA": "x", "TARGET_HUBSPOT_UPSERT_BATCH_SIZE_ROW": "5", "HOME": "/",
               "TARGET_HUBSPOT_UPSERT_OBJECT_MAPPINGS_ACCOUNTS_OBJECT_TYPE": "companies"}  # as Meltano exports it
    assert unknown_env_warnings(environ, "TARGET_HUBSPOT_UPSERT_", known) == [
        "Environment variable TARGET_HUBSPOT_UPSERT_BATCH_SIZE_ROW names no setting (did you mean "
        "TARGET_HUBSPOT_UPSERT_BATCH_SIZE_ROWS?); it is ignored."
    ]


def test_one_error_line_per_configuration_error(tmp_path):
    run = run_cli({"access_token": "x", "batch_size_rows": "abc"}, "", tmp_path=tmp_path)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert "batch_size_rows must be a whole number from 1 to 100" in errors[0] and "'abc'" in errors[0]


def test_no_env_parsing_notice_on_an_ordinary_run(sim, config, tmp_path):
    run = run_cli(config, [schema("contacts"), record("contacts", contact(1)), state(1)], tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Skipping parse of env var settings" not in run.stderr


def test_load_method_description_names_write_mode():
    description = TargetHubSpotUpsert.config_jsonschema["properties"]["load_method"]["description"]
    assert "write_mode" in description and "Every load is a HubSpot upsert" not in description


# -- HubSpot objects and properties -------------------------------------------------------------


@pytest.mark.parametrize(("object_type", "suggested"), [("compnies", "'companies'"), ("widgts", "'p12345678_widgets'")])
def test_an_unknown_object_type_gets_a_did_you_mean_from_hubspots_schemas(sim, config, object_type, suggested):
    mappings = {"accounts": {"object_type": object_type, "id_property": "company_external_id"}}
    run = run_in_process({**config, "object_mappings": mappings},
                         [schema("accounts", {"company_external_id": {"type": "string"}})])
    assert run.error is not None
    assert f"Check object_mappings.accounts.object_type (did you mean {suggested}" in str(run.error)
    assert any(e.path.endswith("/schemas") for e in sim.requests)


def test_an_id_property_without_unique_values_lists_the_unique_ones(sim, config):
    mappings = {"accounts": {"object_type": "companies", "id_property": "name"}}
    run = run_in_process({**config, "object_mappings": mappings}, [schema("accounts", {"name": {"type": "string"}})])
    assert run.error is not None
    assert "does not have unique values" in str(run.error)
    assert "Its unique properties: company_external_id." in str(run.error)


def test_check_of_a_missing_id_property_lists_the_unique_ones(sim, config, tmp_path):
    mappings = {"accounts": {"object_type": "companies", "id_property": "company_ext_id"}}
    run = run_cli({**config, "object_mappings": mappings}, "", tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 1
    assert "has no property 'company_ext_id'" in run.stderr
    assert "Its unique properties: company_external_id." in run.stderr


def test_a_failing_stream_map_names_its_output_field(sim, config, tmp_path):
    rejected = tmp_path / "rejected.jsonl"
    settings = {
        **config, "unknown_properties": "create", "max_rejected_records": 1, "rejected_records_path": str(rejected),
        "stream_maps": {"contacts": {"lifetime_value": "float(total_spent)", "total_spent": "__NULL__"}},
    }
    props = {"email": {"type": "string"}, "total_spent": {"type": ["string", "null"]}}
    run = run_cli(settings, [schema("contacts", props), record("contacts", {"email": "a@b.co", "total_spent": "12.5"}),
                             record("contacts", {"email": "c@d.co", "total_spent": "lots"}), state(1)],
                  tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "the stream_maps expression of field 'lifetime_value' failed on this record" in run.stderr
    assert "fix stream_maps.contacts.lifetime_value or the data" in run.stderr
    (line,) = rejected.read_text().splitlines()
    assert "field 'lifetime_value'" in json.loads(line)["error"]["message"]


# -- dry runs, the summary, the run report ----------------------------------------------------


def test_dry_run_text_speaks_of_a_dry_run(sim, config, tmp_path):
    messages = [schema("contacts"), record("contacts", contact(1)), record("contacts", {"email": "x"}),
                record("contacts", {"email": "y"}), state(1)]
    run = run_cli({**config, "max_rejected_records": 5}, messages, tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    assert "Dry run: 2 record(s) would be rejected (max_rejected_records is 5: a real run would go on)." in run.stderr
    assert str(sys.maxsize) not in run.stderr
    assert "STATE" not in run.stderr


def test_a_stopped_dry_run_does_not_talk_of_state(sim, config, tmp_path):
    text = json.dumps(schema("contacts")) + "\n" + json.dumps(record("contacts", contact(1))) + "\nnot json\n"
    run = run_cli(config, text, tmp_path=tmp_path, args=["--check"])
    assert run.returncode != 0
    assert "is not valid JSON" in run.stderr
    assert "STATE" not in run.stderr


def test_every_log_message_is_one_line(sim, config, tmp_path):
    messages = [schema("contacts"), *(record("contacts", contact(i)) for i in range(3)),
                record("contacts", {"email": "x"}), record("contacts", {"email": "y"}), state(1)]
    run = run_cli({**config, "max_rejected_records": 1}, messages, tmp_path=tmp_path)
    assert run.returncode != 0
    assert "2 record(s) rejected, more than max_rejected_records (1)" in run.stderr
    assert "INVALID_ID: 2 record(s)" in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert all(LOG_LINE.match(line) for line in lines), run.stderr


def test_run_report_has_times_version_and_settings_without_secrets(sim, config, tmp_path):
    path = tmp_path / "report.json"
    run = run_cli({**config, "run_report_path": str(path), "batch_size_rows": 50},
                  [schema("contacts"), record("contacts", contact(1)), state(1)], tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    text = path.read_text()
    report = json.loads(text)
    assert report["started_at"] <= report["finished_at"]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$", report["finished_at"])
    assert report["target_version"] and report["target_version"] != "unknown"
    assert report["settings"]["batch_size_rows"] == 50 and report["settings"]["credentials"] == "access_token"
    assert "access_token" not in report["settings"] and TOKEN not in text
    assert not any(key.startswith("would_") for key in report["streams"]["contacts"])


def test_dry_run_report_has_the_would_counts(sim, config, tmp_path):
    path = tmp_path / "report.json"
    run = run_cli({**config, "run_report_path": str(path)}, [schema("contacts"), record("contacts", contact(1))],
                  tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr
    stream = json.loads(path.read_text())["streams"]["contacts"]
    assert stream["would_write"] == 1 and stream["would_requests"] == 1


def test_the_change_cache_cpu_figure_is_not_logged_for_a_small_run(sim, config, tmp_path):
    settings = {**config, "skip_unchanged": True, "change_cache_path": str(tmp_path / "cache.sqlite")}
    run = run_cli(settings, [schema("contacts"), record("contacts", contact(1)), state(1)], tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "skip_unchanged: 1 input(s) looked up" in run.stderr
    assert "Change cache CPU" not in run.stderr
