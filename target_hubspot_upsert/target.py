"""The Singer target: settings, cross-field checks, and wiring of the shared runtime."""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import logging
import os
import re
import signal
import typing as t
from collections import Counter
from pathlib import Path

import click
from singer_sdk import typing as th
from singer_sdk.exceptions import (
    InvalidInputLine,
    InvalidRecord,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.helpers.capabilities import (
    BATCH_CONFIG,
    STREAM_MAPS_CONFIG,
    TARGET_HARD_DELETE_CONFIG,
    CapabilitiesEnum,
    TargetCapabilities,
)
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from target_hubspot_upsert.checkpoints import state_json
from target_hubspot_upsert.dryrun import DryRunWriter, check_credentials
from target_hubspot_upsert.errors import (
    CheckFailed,
    HubSpotConfigError,
    InputError,
    Interrupted,
    TooManyRejectedRecords,
)
from target_hubspot_upsert.mapping import mapping_problems, resolve_stream
from target_hubspot_upsert.messages import (
    MAX_LINE_CHARS,
    OversizedLine,
    bounded_lines,
    decode_line,
    fraction_read,
    message_problem,
    read_as_utf8,
)
from target_hubspot_upsert.model import HUBSPOT_MAX_BATCH
from target_hubspot_upsert.redact import REDACTOR
from target_hubspot_upsert.runtime import Runtime
from target_hubspot_upsert.sdk_adapter import AdaptedReader, AdaptedTarget, batch_encoding
from target_hubspot_upsert.settings import SECRET_SETTINGS
from target_hubspot_upsert.sinks import HubSpotSink
from target_hubspot_upsert.urls import check_url

logger = logging.getLogger("target_hubspot_upsert")
SHUTDOWN_GRACE_S = 30.0
AGE_CHECK_EVERY = 1024
_API_VERSION = re.compile(r"^(v3|\d{4}-\d{2})$")


class LineCountingReader(AdaptedReader):
    """Singer reader that knows the input line number, for error messages."""

    def __init__(self) -> None:
        """Start at line 0."""
        super().__init__()
        self.line_number = 0
        self.on_oversized: t.Callable[[OversizedLine], None] = self._oversized

    def _oversized(self, line: OversizedLine) -> None:
        raise oversized_error(self.line_number, line)

    def deserialize_json(self, line: str) -> dict:
        """Parse one line; a line that is not a JSON object is a clear input error."""
        self.line_number += 1
        if not line.strip():
            return {"type": "_BLANK"}
        # Parsed here rather than by the SDK reader, which logs a traceback for bad lines
        # and builds a new decoder for every line.
        return decode_line(line, self.line_number)

    def process_lines(
        self, file_input: t.IO[str] | None, callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        """The SDK's reading loop, with the per-line checks done once per line, not twice."""
        stats: dict[str, int] = {}
        for line in bounded_lines(file_input or self.default_input):
            if type(line) is OversizedLine:
                self.line_number += 1
                self.on_oversized(line)
                stats["RECORD"] = stats.get("RECORD", 0) + 1
                continue
            message = self.deserialize_json(t.cast("str", line))
            kind = message.get("type")
            if not isinstance(kind, str):
                msg = f"Input line {self.line_number} has no message type (a string): it is not a Singer message."
                raise InputError(msg)
            problem = message_problem(message) if kind != "RECORD" else None  # RECORD: checked by handle_record
            if problem is not None:
                msg = f"Input line {self.line_number}: {problem}."
                raise InputError(msg)
            callback = callbacks.get(kind)
            if callback is not None:
                callback(message)
            else:
                self.on_unknown(message)
            stats[kind] = stats.get(kind, 0) + 1
        return Counter(stats)

    @override
    def on_unknown(self, message_dict: dict) -> None:
        """Blank lines are skipped; any other unknown type is an input error."""
        if message_dict.get("type") == "_BLANK":
            return
        msg = (
            f"Input line {self.line_number}: unknown Singer message type "
            f"{message_dict.get('type')!r}."
        )
        raise InputError(msg)


def oversized_error(line_number: int, line: OversizedLine) -> InputError:
    """The error for a line over the cap that is not a RECORD of a stream with a SCHEMA."""
    return InputError(
        f"Input line {line_number} is {line.size:,} characters long, over the {MAX_LINE_CHARS:,} a line may hold, "
        "and is not a RECORD of a stream whose SCHEMA came before it."
    )


#: What the Singer SDK reads as true or false in an environment variable.
_ENV_BOOLEANS = frozenset({"true", "1", "yes", "on", "false", "0", "no", "off", ""})


def config_problems(config: t.Mapping[str, t.Any]) -> list[str]:
    """Cross-field checks the JSON schema cannot express, each with how to fix it."""
    return [
        *_credential_problems(config),
        *_url_problems(config),
        *_value_problems(config),
        *_range_problems(config),
        *mapping_problems(config.get("object_mappings")),
    ]


def _credential_problems(config: t.Mapping[str, t.Any]) -> list[str]:
    """Either a static token or all three OAuth settings."""
    problems: list[str] = []
    oauth_keys = ("client_id", "client_secret", "refresh_token")
    has_token = bool(config.get("access_token"))
    oauth_set = [k for k in oauth_keys if config.get(k)]
    if has_token and oauth_set:
        problems.append(
            "Set either access_token or the OAuth settings (client_id, client_secret, "
            f"refresh_token), not both: found access_token and {', '.join(oauth_set)}."
        )
    elif not has_token and not oauth_set:
        problems.append(
            "No credentials: set access_token (a private-app token or service key), or "
            "client_id, client_secret and refresh_token for OAuth."
        )
    elif oauth_set and len(oauth_set) < len(oauth_keys):
        missing = [k for k in oauth_keys if k not in oauth_set]
        problems.append(f"OAuth needs client_id, client_secret and refresh_token: also set {', '.join(missing)}.")
    return problems


def _url_problems(config: t.Mapping[str, t.Any]) -> list[str]:
    """The URLs credentials are sent to, checked as the HTTP library will read them."""
    problems: list[str] = []
    for key in ("api_base_url", "oauth_token_url"):
        url = config.get(key)
        if isinstance(url, str):  # other types are the JSON schema's to report
            problem = check_url(key, url).problem
            if problem:
                problems.append(problem)
    return problems


def _value_problems(config: t.Mapping[str, t.Any]) -> list[str]:
    """Batch size, load method, file paths and API version."""
    problems: list[str] = []
    batch_size = config.get("batch_size_rows")
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool)
        or not 1 <= batch_size <= HUBSPOT_MAX_BATCH
    ):
        problems.append(
            f"batch_size_rows must be a whole number from 1 to {HUBSPOT_MAX_BATCH} "
            f"(HubSpot's limit per batch request); got {batch_size!r}."
        )
    if str(config.get("load_method") or "") in {"overwrite", "TargetLoadMethods.OVERWRITE"}:
        problems.append(
            "load_method 'overwrite' (delete everything, then load) is not supported: each stream writes "
            "by its object_mappings write_mode. Use 'upsert' or 'append-only' (the same here)."
        )
    for key in ("rejected_records_path", "run_report_path", "change_cache_path"):
        value = config.get(key)
        if isinstance(value, str) and value and Path(value).is_dir():
            problems.append(f"{key} must name a file, not a directory; got {value!r}.")
    api_version = config.get("api_version")
    if api_version is not None and not (isinstance(api_version, str) and _API_VERSION.match(api_version)):
        problems.append(f"api_version must be 'v3' or a dated version such as '2026-09'; got {api_version!r}.")
    return problems


#: Numeric settings and the smallest value each accepts (whole numbers unless noted).
_MINIMUMS: dict[str, tuple[float, str]] = {
    "max_concurrent_requests": (1, "a whole number of at least 1"),
    "max_requests_per_10_seconds": (1, "a whole number of at least 1"),
    "max_retries": (0, "a whole number of at least 0"),
    "max_rejected_records": (0, "a whole number of at least 0"),
    "change_cache_max_age_days": (1, "a whole number of days, at least 1 (use full_resync to send everything once)"),
}


def _range_problems(config: t.Mapping[str, t.Any]) -> list[str]:
    """Numbers out of range (types are the JSON schema's job)."""
    problems: list[str] = []
    for key, (minimum, expected) in _MINIMUMS.items():
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < minimum:
            problems.append(f"{key} must be {expected}; got {value!r}.")
    interval = config.get("progress_interval")
    if isinstance(interval, int | float) and not isinstance(interval, bool) and not interval >= 1:
        problems.append(f"progress_interval must be a number of seconds, at least 1; got {interval!r}.")
    timeout = config.get("request_timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and not timeout > 0:
        problems.append(f"request_timeout must be a number of seconds above 0; got {timeout!r}.")
    group = config.get("property_group")
    if isinstance(group, str) and not group.strip():
        problems.append("property_group must not be empty; leave it out for the default 'target_hubspot_upsert'.")
    cache_path = config.get("change_cache_path")
    if isinstance(cache_path, str) and not cache_path.strip():
        problems.append(
            "change_cache_path must name a file; leave it out for the default '.target-hubspot-upsert/changes.sqlite'."
        )
    return problems


def _types(schema: t.Mapping[str, t.Any]) -> set[str]:
    kinds = schema.get("type") or [s.get("type") for s in schema.get("anyOf", [])]
    return {kinds} if isinstance(kinds, str) else {k for k in kinds if isinstance(k, str)}


def env_problems(config_schema: t.Mapping[str, t.Any], prefix: str) -> list[str]:
    """Check `PREFIX<SETTING>` variables before the SDK parses them (it crashes on bad values)."""
    problems: list[str] = []
    for key, schema in (config_schema.get("properties") or {}).items():
        name = prefix + key.upper().replace("-", "_")
        raw = os.environ.get(name)
        if raw is None:
            continue
        kinds = _types(schema)
        shown = "(hidden)" if schema.get("secret") else repr(raw[:60])
        try:
            if "boolean" in kinds and kinds <= {"boolean", "null"}:
                if raw.strip().lower() not in _ENV_BOOLEANS:
                    problems.append(
                        f"Environment variable {name} must hold true or false for setting {key}; got {shown}."
                    )
            elif "integer" in kinds and "string" not in kinds:
                int(raw)
            elif "number" in kinds and "string" not in kinds:
                float(raw)
            elif kinds & {"object", "array"}:
                json.loads(raw)
        except ValueError:
            expected = (
                "JSON" if kinds & {"object", "array"}
                else "a whole number" if "integer" in kinds else "a number"
            )
            problems.append(f"Environment variable {name} must hold {expected} for setting {key}; got {shown}.")
    return problems


#: Accepted although `--about` does not list it: the sink reads BATCH messages, and the SDK
#: reads their storage from `batch_config`.
_UNLISTED_SETTINGS = frozenset(BATCH_CONFIG["properties"])


def unknown_settings_warning(config: t.Mapping[str, t.Any], known: t.Iterable[str]) -> str | None:
    """One line naming the config keys that are no setting, each with the closest setting name."""
    names = sorted(set(known))
    unknown = sorted(str(key) for key in config if key not in names)
    if not unknown:
        return None
    shown = []
    for key in unknown:
        close = difflib.get_close_matches(key, names, n=1)
        shown.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if len(unknown) == 1:
        return f"Unknown setting {shown[0]}; it is ignored."
    return f"Unknown settings {', '.join(shown)}; they are ignored."


def unknown_env_warnings(environ: t.Mapping[str, str], prefix: str, known: t.Iterable[str]) -> list[str]:
    """One line per `PREFIX<NAME>` variable that names no setting, with the closest variable name."""
    variables = {prefix + name.upper().replace("-", "_"): name for name in known if "." not in name}
    sdk_own = {prefix + "LOGLEVEL"}  # the SDK's log level for this plugin
    warnings = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in variables or name in sdk_own or name.startswith(prefix + "_"):
            continue  # PREFIX__<x>: an orchestrator's own variables (Meltano's extras), not settings
        if name.startswith(tuple(f"{variable}_" for variable in variables)):
            continue  # a value inside an object setting, as Meltano exports them (..._STREAM_MAPS_<STREAM>_<FIELD>)
        close = difflib.get_close_matches(name, list(variables), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"Environment variable {name} names no setting{hint}; it is ignored.")
    return warnings


_BUILTIN_DESCRIPTIONS = {
    "hard_delete": (
        "Archive the object of each record whose `_sdc_deleted_at` is set (found by its id property; HubSpot "
        "keeps it restorable for 90 days). Off: such records are written like any other, the field left out."
    ),
    "stream_maps": (
        "Inline transformations applied before the upsert: rename, drop or compute fields, filter "
        "records, drop streams (see [Stream Maps](https://sdk.meltano.com/en/latest/stream_maps.html)). "
        "A renamed key property needs `__key_properties__`."
    ),
    "stream_map_config": "User-defined values that stream map expressions read as `config`.",
}


def _with_sdk_settings(schema: dict[str, t.Any], *builtins: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """Add SDK built-in settings (name, type, default), described as they work in this target where that differs."""
    for builtin in builtins:
        for name, prop in copy.deepcopy(builtin["properties"]).items():
            prop["description"] = _BUILTIN_DESCRIPTIONS.get(name, prop.get("description"))
            schema["properties"][name] = prop
    return schema


class TargetHubSpotUpsert(AdaptedTarget):
    """Upserts Singer streams into HubSpot CRM objects through the batch upsert API."""

    name = "target-hubspot-upsert"
    #: Set by the `--check` command-line flag: a dry run whatever the config says.
    check_requested = False
    #: Set by the `--full-resync` command-line flag: `full_resync` for this run.
    full_resync_requested = False
    default_sink_class = HubSpotSink
    message_reader_class = LineCountingReader
    #: `hard-delete`: records with `_sdc_deleted_at` archive their objects when `hard_delete` is on.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [*AdaptedTarget.capabilities, TargetCapabilities.HARD_DELETE]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "access_token", th.StringType, secret=True,
            description="HubSpot private-app access token or service key, sent as `Authorization: Bearer`. Set this or the three OAuth settings (client_id, client_secret, refresh_token), not both.",
        ),
        th.Property(
            "client_id", th.StringType,
            description="OAuth client id of a HubSpot public app (with client_secret and refresh_token, instead of access_token).",
        ),
        th.Property(
            "client_secret", th.StringType, secret=True,
            description="OAuth client secret of the HubSpot public app.",
        ),
        th.Property(
            "refresh_token", th.StringType, secret=True,
            description="OAuth refresh token of the installing HubSpot account. Access tokens are refreshed from it ahead of expiry; a rotated refresh token is used for the rest of the run.",
        ),
        th.Property(
            "oauth_token_url", th.StringType,
            description="OAuth token endpoint. Default: `{api_base_url}/oauth/v1/token`; `/oauth/v3/token` takes the same grant. Same rules as api_base_url, with a path.",
        ),
        th.Property(
            "api_base_url", th.StringType, default="https://api.hubapi.com",
            description="HubSpot API base URL: scheme and host only (the target adds the paths). Must be https:// (http:// only for 127.x.x.x, [::1] or localhost, e.g. the bundled simulator); no user info, query or fragment.",
        ),
        th.Property(
            "api_version", th.StringType, default="v3",
            description="`v3` for `/crm/v3/objects/...`, or a dated version such as `2026-09` for `/crm/objects/2026-09/...` (HubSpot retires the v3 paths in September 2027).",
        ),
        th.Property(
            "object_mappings",
            th.ObjectType(
                additional_properties=th.ObjectType(
                    th.Property("object_type", th.StringType, description="HubSpot object name (`contacts`), object type id (`0-1`, `2-1234567`) or custom object name (`p_widgets`)."),
                    th.Property("id_property", th.StringType, description="Unique property the upsert matches on (`email` by default for contacts). Optional for a `create` stream of an object without unique property (notes, calls, tasks). Use it when the property has unique values in HubSpot; otherwise use `match_property`."),
                    th.Property("match_property", th.StringType, description="A property that need not be unique (companies by `domain`, contacts by `phone`): objects are found through HubSpot's search API, then updated by record id or created. Exclusive with `id_property`; use `id_property` whenever the property has unique values (one request per 100 records, no search). Needs `crm.objects.<object>.read` besides write."),
                    th.Property(
                        "on_multiple_matches", th.StringType, allowed_values=["reject", "update_all", "oldest"],
                        description="With `match_property`, when several objects hold a record's value: `reject` (default: the record is rejected `AMBIGUOUS_MATCH`, nothing written), `update_all` (update every one), `oldest` (update the one created first).",
                    ),
                    th.Property(
                        "write_mode", th.StringType, allowed_values=["upsert", "update", "create"],
                        description="`upsert` (default): create or update. `update`: only objects that exist (others are skipped, not found). `create`: only new objects (existing ones are skipped).",
                    ),
                    th.Property(
                        "associations",
                        th.ArrayType(th.ObjectType(
                            th.Property("field", th.StringType, description="Record field holding the other object's unique value, or a list of values."),
                            th.Property("to_object_type", th.StringType, description="Object type of the other object (`companies`, `0-2`, `p_widgets`)."),
                            th.Property("to_id_property", th.StringType, description="Property the other object is found by: a unique one, one that need not be unique (found through search, as with `match_property`), or `hs_object_id` when the field holds record ids."),
                            th.Property("label", th.CustomType({"type": ["string", "integer"]}), description="Association label name or type id; default: HubSpot's default association of the pair."),
                        )),
                        description="Associations made after each record's object is written (only added, never removed).",
                    ),
                ),
            ),
            description='Per stream: `{"<stream>": {"object_type": "...", "id_property": "...", "write_mode": "upsert", "associations": [...]}}`. A stream named after a HubSpot object needs no entry, except for its id property (contacts default to `email`). `write_mode`: `upsert`, `update` (only objects that exist) or `create` (only new objects); `associations`: links to other objects found by a unique value (README: Write modes, deletes and associations); `match_property` (instead of `id_property`): find objects by a property that need not be unique, such as the `domain` of companies, through the search API, with `on_multiple_matches` for a value several objects hold (README: Companies by domain).',
        ),
        th.Property(
            "unknown_properties", th.StringType, default="fail", allowed_values=["fail", "ignore", "create"],
            description="What to do with stream fields that are not properties of the object: `fail` (stop before sending), `ignore` (leave them out, warn once), `create` (create the properties, typed from the JSON schema).",
        ),
        th.Property(
            "property_group", th.StringType, default="target_hubspot_upsert",
            description="Property group that properties created by `unknown_properties: create` go into (created when missing).",
        ),
        th.Property(
            "null_values", th.StringType, default="skip", allowed_values=["skip", "clear"],
            description="`skip`: a null leaves the HubSpot value unchanged. `clear`: a null is sent as an empty string, clearing the value.",
        ),
        th.Property(
            "batch_size_rows", th.IntegerType, default=100,
            description="Records per batch request, 1 to 100 (HubSpot's limit).",
        ),
        th.Property(
            "max_concurrent_requests", th.IntegerType, default=8,
            description="Batch requests in flight at once, across streams.",
        ),
        th.Property(
            "max_requests_per_10_seconds", th.IntegerType, default=100,
            description="Client-side rate limit over a rolling 10 s window until HubSpot's `X-HubSpot-RateLimit-*` headers say otherwise (100 Free/Starter, 190 Professional/Enterprise, 250 with the limit increase).",
        ),
        th.Property(
            "request_timeout", th.NumberType, default=60,
            description="Seconds one request may take in all (connect, send, the complete answer) before it is retried; answers larger than 32 MiB are cut off and retried the same way.",
        ),
        th.Property(
            "max_retries", th.IntegerType, default=8,
            description="Retries of one request after 429, 423, 5xx, timeouts or dropped connections (never after a 400).",
        ),
        th.Property(
            "rejected_records_path", th.StringType,
            description="JSONL file that receives one line per rejected record (stream, object type, id, record, error, time). Appended to, flushed as it goes.",
        ),
        th.Property(
            "max_rejected_records", th.IntegerType, default=0,
            description="Rejected records tolerated before the run stops with a non-zero exit.",
        ),
        th.Property(
            "dry_run", th.BooleanType, default=False,
            description="Check everything and write nothing (also the `--check` flag): credentials, every mapped object type and id property, and, for piped input, every record's fields and values. Prints per stream how many records would be created or updated in how many requests and which would be rejected, writes no STATE, and exits 1 if a real run would fail.",
        ),
        th.Property(
            "progress_interval", th.NumberType, default=15,
            description="Seconds between progress lines (per stream: records done of received, records/s, requests in flight, rejections so far, time left when the input's size is known) and between aggregated METRIC lines. The first comes 5 s after the run starts (sooner when this is shorter).",
        ),
        th.Property(
            "detailed_metrics", th.BooleanType, default=False,
            description="Log a METRIC line for every request and every batch, as the Singer SDK does. Off by default: per stream and progress_interval, one line each for records, requests and request latency (p50/p95).",
        ),
        th.Property(
            "log_record_values", th.BooleanType, default=False,
            description="Put record values (ids, rejected values, HubSpot's messages quoting them) into the logs, for debugging. Off by default: logs name the stream, input line, property and error code, and the values go only to `rejected_records_path`.",
        ),
        th.Property(
            "run_report_path", th.StringType,
            description="Optional JSON file written at the end of the run with per-stream counts, requests, retries, 429s, duration and first errors.",
        ),
        th.Property(
            "skip_unchanged", th.BooleanType, default=False,
            description="Send only what changed: a record whose serialized properties equal those HubSpot last acknowledged for its object (noted in `change_cache_path`) is counted `unchanged` and not sent. For full-table re-syncs where few rows change.",
        ),
        th.Property(
            "change_cache_path", th.StringType, default=".target-hubspot-upsert/changes.sqlite",
            description="SQLite file of the change cache used by `skip_unchanged` (relative to the working directory), one table per HubSpot account. Keep it on a persistent volume: without it every record is sent again.",
        ),
        th.Property(
            "change_cache_max_age_days", th.IntegerType, default=7,
            description="With `skip_unchanged`, a record is sent anyway when its object's cache entry was written this many days ago or more (UTC days), so edits made in HubSpot are overwritten at least that often.",
        ),
        th.Property(
            "full_resync", th.BooleanType, default=False,
            description="With `skip_unchanged`, send every record for this run and refresh the change cache (also the `--full-resync` command-line flag).",
        ),
        # -- the SDK's built-in settings, described as they work in this target -------------
        th.Property(
            "add_record_metadata", th.BooleanType,
            description="Accepted for compatibility with other Singer targets; the `_sdc_*` metadata fields are never sent, as they are not HubSpot properties.",
        ),
        th.Property(
            "load_method", th.StringType, default="append-only", allowed_values=["append-only", "upsert", "overwrite"],
            description="Accepted for compatibility with other Singer targets: `append-only` and `upsert` behave the same, and each stream writes by its `object_mappings` `write_mode` (upsert by default, or update or create); `overwrite` (delete all, then load) is refused as a configuration error.",
        ),
        th.Property(
            "validate_records", th.BooleanType, default=True,
            description="Check every record against its stream's SCHEMA before sending it; a record that does not match stops the run with a message naming it.",
        ),
        th.Property(
            "flattening_enabled", th.BooleanType,
            description="Flatten nested objects into top-level fields (e.g. `address__city`) before they are matched to HubSpot properties.",
        ),
        th.Property(
            "flattening_max_depth", th.IntegerType,
            description="How many levels of nested objects to flatten; required when flattening_enabled is true.",
        ),
        th.Property(
            "flattening_max_key_length", th.IntegerType,
            description="Longest name a flattened field may have (255 unless set); longer names are abbreviated.",
        ),
        th.Property(
            "flattening_separator", th.StringType,
            description="Separator between the parts of a flattened field name (`__` unless set).",
        ),
    ).to_dict()
    config_jsonschema = _with_sdk_settings(config_jsonschema, TARGET_HARD_DELETE_CONFIG, STREAM_MAPS_CONFIG)

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command line, with the flags this target adds, so `--help` lists every flag.

        `--check` and `--full-resync` are taken off the command line before it is parsed (cli.py);
        they are declared here to be listed.
        """
        command = super().get_singer_command()
        # One line per flag, also when the terminal is narrow or stdout is not a terminal.
        command.context_settings.update(terminal_width=120, max_content_width=120)
        command.help = (
            "Load Singer RECORDs from stdin (or --input) into HubSpot CRM objects; "
            "STATE lines go to stdout once HubSpot acknowledged the records before them."
        )
        command.params.extend([
            click.Option(
                ["--check"], is_flag=True, expose_value=False,
                help="Dry run: check settings, credentials and piped input; write nothing to HubSpot.",
            ),
            click.Option(
                ["--full-resync"], is_flag=True, expose_value=False,
                help="With skip_unchanged: send every record this run and refresh the change cache.",
            ),
        ])
        return command

    def __init__(
        self,
        *args: t.Any,  # noqa: ANN401
        sleep: t.Callable[[float], None] | None = None,
        clock: t.Callable[[], float] | None = None,
        **kwargs: t.Any,  # noqa: ANN401
    ) -> None:
        """Validate the config, then build the runtime every sink shares.

        `sleep`/`clock` replace real waiting in tests (backoffs, the rate-limit window).
        """
        for warning in unknown_env_warnings(os.environ, self.env_var_prefix(), self._known_settings()):
            logger.warning("%s", warning)
        if kwargs.get("parse_env_config") and (problems := env_problems(self._full_schema(), self.env_var_prefix())):
            raise HubSpotConfigError("Config validation failed", errors=problems)
        super().__init__(*args, **kwargs)
        self._records_seen = 0
        self._signalled = False
        self._input_done = False  # then, once the last STATE is written, a signal no longer stops the run
        self._routes: dict[str, list[tuple[bool, t.Any, str]]] = {}
        self.max_parallelism = 1  # batches are concurrent in the dispatcher, not per sink
        runtime_kwargs: dict[str, t.Any] = {}
        if sleep is not None:
            runtime_kwargs["sleep"] = sleep
        if clock is not None:
            runtime_kwargs["clock"] = clock
        overrides = {"dry_run": self.check_requested, "full_resync": self.full_resync_requested}
        config = {**self.config, **{key: True for key, on in overrides.items() if on}}
        self.runtime = Runtime.from_config(config, self.config_jsonschema, **runtime_kwargs)
        if isinstance(self.message_reader, LineCountingReader):
            self.message_reader.on_oversized = self._handle_oversized

    def _handle_oversized(self, line: OversizedLine) -> None:
        """A RECORD line over the cap is a rejected record of its stream; any other is an input error."""
        stream = line.record_stream()
        routes = self._routes.get(stream) if stream is not None else None
        if stream is not None and routes is None and stream in self.mapper.stream_maps:
            routes = self._route(stream)
        if not routes:
            raise oversized_error(self.current_line, line)
        self._sink_for(routes[0][2], {}).reject_oversized(line)

    @classmethod
    def _full_schema(cls) -> dict[str, t.Any]:
        """This target's settings schema with the SDK's built-ins (a copy)."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        return schema

    @classmethod
    def _known_settings(cls) -> list[str]:
        """Every setting `--about` lists: this target's schema and the SDK's built-ins."""
        return list(cls._full_schema()["properties"])

    @property
    def current_line(self) -> int:
        """Input line being processed."""
        return getattr(self.message_reader, "line_number", 0)

    @override
    def check_config(self, *, raise_errors: bool = True) -> list[str]:
        """One message listing every problem: schema errors and cross-field checks together."""
        for key in SECRET_SETTINGS:
            REDACTOR.add(self.config.get(key))
        # The SDK passes number settings from environment variables through as text.
        for key, schema in self.config_jsonschema["properties"].items():
            value = self.raw_config.get(key)
            if isinstance(value, str) and "number" in _types(schema):
                with contextlib.suppress(ValueError):  # a bad value is reported by the schema check
                    self.raw_config[key] = float(value)
        if warning := unknown_settings_warning(self.raw_config, [*self._known_settings(), *_UNLISTED_SETTINGS]):
            logger.warning("%s", warning)
        errors = super().check_config(raise_errors=False)
        errors = [REDACTOR.redact(e) for e in errors]
        own = config_problems(self.config)
        # A setting this target checks itself gets its message only, not the schema's as well.
        errors = [e for e in errors if not any(e.endswith(f"in config['{p.split(' ', 1)[0]}']") for p in own)]
        errors = [*errors, *own]
        if errors and raise_errors:
            raise HubSpotConfigError("Config validation failed", errors=errors)
        return errors

    # --- messages -----------------------------------------------------------------------

    @override
    def handle_record(self, message_dict: dict) -> None:
        """The SDK's per-record path (maps, SDC columns, validation, counters), leaner.

        No copy for identity maps (records are never mutated here), no timestamp parsing (the
        serializer does it by property type), the max-age check every 1,024 records.
        """
        stream_name = message_dict.get("stream")
        record = message_dict.get("record")
        if not isinstance(stream_name, str) or not isinstance(record, dict):
            # Not the SDK's check of required keys: its message quotes the whole line, values and all.
            which = f"the RECORD message of stream {stream_name!r}" if isinstance(stream_name, str) else "a RECORD message"
            msg = f"Input line {self.current_line}: {which} needs a stream name and a record object."
            raise InputError(msg)
        routes = self._routes.get(stream_name)
        if routes is None:
            routes = self._route(stream_name)
        for identity, stream_map, alias in routes:
            if identity:
                transformed = record
            else:
                try:
                    transformed = stream_map.transform(copy.copy(record))
                except Exception as exc:  # noqa: BLE001 - a user's expression failed on this record
                    self._sink_for(alias, record).reject_unmapped(record, exc)
                    continue
                if transformed is None:
                    continue  # filtered out by the map
            sink = self._sink_for(alias, transformed)
            if sink.sdc_metadata:
                sink.add_sdc_metadata(transformed, message_dict)
            sink.accept(transformed)
            if sink.is_full:
                self.drain_one(sink)
        self._records_seen += 1
        if not self._records_seen % AGE_CHECK_EVERY:
            self.check_record_age()

    def _sink_for(self, alias: str, record: dict) -> HubSpotSink:
        sink = t.cast("HubSpotSink | None", self.active_sink(alias))
        if sink is None:
            self.require_sink(alias)
            sink = t.cast("HubSpotSink", self.get_sink(alias, record=record))
        return sink

    def _route(self, stream_name: str) -> list[tuple[bool, t.Any, str]]:
        """Per stream, once: its maps, whether each is the identity, and the sink alias."""
        stream_maps = self.mapper.stream_maps.get(stream_name)
        if stream_maps is None:
            self.require_sink(stream_name)
            stream_maps = self.mapper.stream_maps[stream_name]
        routes = [
            (type(m) is SameRecordTransform and not m.flattening_enabled, m, m.stream_alias)
            for m in stream_maps
        ]
        self._routes[stream_name] = routes
        return routes

    def flush_objects(self, object_keys: set[str], *, exclude: HubSpotSink) -> None:
        """Send everything other streams hold of these object types (a stream's associations look them up).

        Whole buffers, waiting for ids still in flight: the look-ups of the batch about to go out
        then see every write and archive of those objects received before it (the dispatcher
        makes them wait for earlier batches of those types), whatever the timing.
        """
        for sink in self.all_sinks():
            hub_sink = t.cast("HubSpotSink", sink)
            if hub_sink is not exclude and hub_sink.object_key in object_keys and hub_sink.current_size:
                hub_sink.flush(final=True, cascade=False)

    @override
    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: t.Sequence[str] | None = None,
    ) -> HubSpotSink:
        """A changed SCHEMA replaces the sink: the old one sends all it holds first."""
        if schema is not None:
            self._routes.clear()  # the SDK has registered the stream's maps again
            existing = t.cast("HubSpotSink | None", self.active_sink(stream_name))
            if existing is not None and (
                existing.original_schema != schema or existing.key_properties != key_properties
            ):
                existing.retire()
        return t.cast(
            "HubSpotSink",
            super().get_sink(stream_name, record=record, schema=schema, key_properties=key_properties),
        )

    @override
    def handle_state(self, message_dict: dict) -> None:
        """Held by the ledger until every record received before it has an outcome."""
        if "value" not in message_dict:  # the reader checks it; this method is public
            msg = f"Input line {self.current_line}: a STATE message needs a 'value'."
            raise InputError(msg)
        try:  # checked now, on its line: it is written later, maybe from a worker thread
            state_json(message_dict["value"])
        except (ValueError, TypeError, RecursionError):
            msg = (
                f"Input line {self.current_line}: the STATE value cannot be written back as JSON "
                "(it holds NaN or Infinity, or nests too deeply); fix the tap's state."
            )
            raise InputError(msg) from None
        self.runtime.check()
        self.runtime.ledger.add(message_dict["value"], self.runtime.seq + 1, self.current_line)

    @override
    def handle_batch(self, message_dict: dict) -> None:
        """A BATCH message: its files' records go through each of the stream's sinks.

        Its shape was checked by the reader; a stream without a SCHEMA is an input error.
        """
        stream_name = message_dict["stream"]
        self.require_sink(stream_name)
        encoding = batch_encoding(message_dict["encoding"]["format"], message_dict["encoding"].get("compression"))
        for stream_map in self.mapper.stream_maps[stream_name]:
            sink = t.cast("HubSpotSink", self.get_sink(stream_map.stream_alias))
            sink.process_batch_files(encoding, message_dict["manifest"])
            self.check_record_age()

    @override
    def handle_activate_version(self, message_dict: dict) -> None:
        """The SDK's handling (a warning: HubSpot has no table versions), once the stream has a SCHEMA."""
        self.require_sink(message_dict["stream"])  # its shape was checked by the reader
        super().handle_activate_version(message_dict)

    @override
    def handle_signal(self, signum: int) -> None:
        """Unwind the main thread; `listen` then lets in-flight batches land and checkpoints them."""
        name = signal.Signals(signum).name
        if self._input_done and not self._signalled and not self.runtime.ledger.holding():
            # The input is read and its last STATE written: finish (the change cache's entries
            # are committed at close) and end as the successful run it is.
            self._signalled = True
            logger.warning("Received %s after the last STATE: finishing the run.", name)
            return
        if self._signalled or self.runtime.finished:
            # Already stopping: cut the wait short; the summary and report are still written.
            logger.warning("Received %s again: not waiting for the batches in flight.", name)
            self.runtime.stop_now()
            return
        self._signalled = True
        msg = f"Received {name}: stopped reading input."
        raise Interrupted(msg, signum)

    def listen(self, file_input: t.IO[str] | None = None) -> None:  # type: ignore[misc]
        """Read input; on any failure, stop cleanly with checkpoints up to what landed."""
        source = file_input if file_input is not None else self.message_reader.default_input
        read_as_utf8(source)
        self.runtime.report.watch_input(fraction_read(source))
        try:
            super().listen(file_input)
        except BaseException as exc:  # noqa: BLE001 - stop cleanly whatever ended the run, then re-raise
            self.abort(exc)
            raise self._explain(exc) from None

    def _explain(self, exc: BaseException) -> BaseException:
        line = self.current_line
        if isinstance(exc, RecordsWithoutSchemaException):
            return InputError(f"Input line {line}: {exc} Send the stream's SCHEMA message first.")
        if isinstance(exc, InvalidInputLine | MissingKeyPropertiesError | InvalidRecord):
            return InputError(f"Input line {line}: {exc}")
        return exc

    def process_endofpipe(self) -> None:
        """Flush every buffer, wait for every batch, write the last checkpoint, summarize."""
        self._input_done = True
        super().process_endofpipe()
        runtime = self.runtime
        runtime.dispatcher.join()
        runtime.check()
        if runtime.settings.dry_run:
            self._check_mapped_objects()
        runtime.report.log_summary()
        if isinstance(runtime.writer, DryRunWriter):  # match_property streams: what the search found
            for line in runtime.writer.match_lines():
                logger.info(line)
        if runtime.settings.dry_run and runtime.rejects.count > runtime.settings.max_rejected_records:
            msg = (
                f"Dry run: {runtime.rejects.count} record(s) would be rejected, more than "
                f"max_rejected_records ({runtime.settings.max_rejected_records}); a real run would stop. "
                "Nothing was written to HubSpot."
            )
            runtime.report.write_report("failed", error=msg)
            runtime.finished = True
            runtime.close()
            raise CheckFailed(msg)
        runtime.report.write_report("succeeded")
        runtime.close()

    def _send_what_was_read(self) -> None:
        """Submit every buffered record and wait for all batches (the rejection-limit stop)."""
        runtime = self.runtime
        sinks = self.all_sinks()
        try:
            for sink in sinks:
                t.cast("HubSpotSink", sink).flush(final=True)
        except Exception as exc:  # noqa: BLE001 - a failing pool: what was sent is checkpointed
            logger.error("Could not send every buffered record: %s", exc)  # noqa: TRY400 - reported, not a bug
        runtime.dispatcher.join(stop=runtime.stopping)

    def _check_mapped_objects(self) -> None:
        """Dry runs: every mapped stream's object, id property and read access, input or not."""
        mappings = self.runtime.settings.object_mappings or {}
        check_credentials(self.runtime.client)
        streams = dict.fromkeys([*mappings, *self.runtime.report.stats])
        for stream in streams:
            target = resolve_stream(stream, mappings)
            self.runtime.preflight.check_object(target)
            self.runtime.associator.prepare(target)  # association labels
        logger.info("Dry run: credentials and %d object mapping(s) checked; nothing was written to HubSpot.", len(streams))

    def abort(self, exc: BaseException) -> None:
        """Stop sending; give in-flight batches a bounded time to land and checkpoint.

        After too many rejections the good records already read are all sent first (the
        requests' own timeouts and retries bound that); a signal cuts the wait short.
        """
        runtime = self.runtime
        if runtime.finished:
            return
        runtime.finished = True
        if isinstance(exc, TooManyRejectedRecords):
            self._send_what_was_read()
        else:
            runtime.begin_stop(SHUTDOWN_GRACE_S)
            if runtime.dispatcher.in_flight:
                logger.info("Waiting up to %.0f s for %d batch(es) in flight.", SHUTDOWN_GRACE_S, runtime.dispatcher.in_flight)
                runtime.dispatcher.join(timeout=SHUTDOWN_GRACE_S, stop=runtime.stopping)
        runtime.report.log_summary(grouping=not isinstance(exc, TooManyRejectedRecords), stopped=True)
        runtime.report.write_report("failed", error=str(self._explain(exc)) or type(exc).__name__)
        runtime.close()
