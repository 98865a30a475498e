"""The target's settings: their schema (what `--about` lists), and the checks of a config and of the environment."""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
import re
import typing as t
from pathlib import Path

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import (
    BATCH_CONFIG,
    STREAM_MAPS_CONFIG,
    TARGET_HARD_DELETE_CONFIG,
)

from target_hubspot_upsert.core.mapping import mapping_problems
from target_hubspot_upsert.core.model import HUBSPOT_MAX_BATCH
from target_hubspot_upsert.http.urls import check_url

logger = logging.getLogger("target_hubspot_upsert")
_API_VERSION = re.compile(r"^(v3|\d{4}-\d{2})$")


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


def schema_types(schema: t.Mapping[str, t.Any]) -> set[str]:
    """The JSON types a setting's schema allows."""
    kinds = schema.get("type") or [s.get("type") for s in schema.get("anyOf", [])]
    return {kinds} if isinstance(kinds, str) else {k for k in kinds if isinstance(k, str)}


def _env_name(prefix: str, setting: str) -> str:
    """The environment variable the Singer SDK reads `setting` from (`PREFIX<SETTING>`)."""
    return prefix + setting.upper().replace("-", "_")


def env_problems(config_schema: t.Mapping[str, t.Any], prefix: str) -> list[str]:
    """Check `PREFIX<SETTING>` variables before the SDK parses them (it crashes on bad values)."""
    problems: list[str] = []
    for key, schema in (config_schema.get("properties") or {}).items():
        name = _env_name(prefix, key)
        raw = os.environ.get(name)
        if raw is None:
            continue
        kinds = schema_types(schema)
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
UNLISTED_SETTINGS = frozenset(BATCH_CONFIG["properties"])


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
    variables = {_env_name(prefix, name): name for name in known if "." not in name}
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



#: The settings schema: every setting with its description (the SDK's built-ins are added by the SDK).
CONFIG_SCHEMA = th.PropertiesList(
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
CONFIG_SCHEMA = _with_sdk_settings(CONFIG_SCHEMA, TARGET_HARD_DELETE_CONFIG, STREAM_MAPS_CONFIG)
