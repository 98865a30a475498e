"""One frozen, typed settings object, built once from the validated config.

Defaults live in the config schema only (`TargetHubSpotUpsert.config_jsonschema`); this module
reads them from there, so no other module repeats a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

SECRET_SETTINGS = ("access_token", "client_secret", "refresh_token")


@dataclass(frozen=True, slots=True)
class Settings:
    """The target's own settings (the SDK's built-ins stay with the SDK)."""

    api_base_url: str
    api_version: str
    unknown_properties: str
    property_group: str
    null_values: str
    batch_size_rows: int
    max_concurrent_requests: int
    max_requests_per_10_seconds: int
    request_timeout: float
    max_retries: int
    max_rejected_records: int
    log_record_values: bool
    skip_unchanged: bool
    change_cache_path: str
    change_cache_max_age_days: int
    full_resync: bool
    dry_run: bool
    progress_interval: float
    detailed_metrics: bool
    hard_delete: bool = False
    access_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    oauth_token_url: str | None = None
    object_mappings: Mapping[str, Mapping[str, Any]] | None = None
    rejected_records_path: str | None = None
    run_report_path: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], schema: Mapping[str, Any]) -> Settings:
        """Take each setting from `config`, else the schema's default."""
        properties = schema.get("properties") or {}
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = config.get(item.name)
            if value is None:
                value = (properties.get(item.name) or {}).get("default")
            if value is not None:
                values[item.name] = _coerce(item.type, value)
        return cls(**values)

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint: the setting, or HubSpot's v1 endpoint on the API host."""
        return self.oauth_token_url or f"{self.api_base_url.rstrip('/')}/oauth/v1/token"

    @property
    def clear_nulls(self) -> bool:
        """A null clears the HubSpot value instead of leaving it."""
        return self.null_values == "clear"

    def shaping(self) -> dict[str, Any]:
        """The settings that shaped a run, for the run report: no secrets, no OAuth client id."""
        hidden = {*SECRET_SETTINGS, "client_id"}
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        shown["credentials"] = "access_token" if self.access_token else "oauth"
        return shown

    def __repr__(self) -> str:
        """Never show secrets."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in SECRET_SETTINGS}
        return f"Settings({shown})"


def _coerce(kind: object, value: Any) -> Any:  # noqa: ANN401 - config values are untyped JSON
    """Numbers from environment variables arrive as text; the schema check has vetted them."""
    if kind in ("int", int):
        return int(value)
    if kind in ("float", float):
        return float(value)
    if kind in ("bool", bool):
        return value if isinstance(value, bool) else str(value).strip().lower() in {"true", "1", "yes", "on"}
    return value
