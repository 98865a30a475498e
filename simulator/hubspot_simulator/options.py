"""The simulator's runtime options: their defaults, and the checks that normalise them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import hostile

#: Every runtime option and its default (constructor kwargs, ``configure()``, CLI, HTTP).
OPTION_DEFAULTS: dict[str, Any] = {
    "tokens": frozenset({"sim-token"}),
    "token_scopes": None,
    "oauth_clients": {},
    "refresh_tokens": frozenset(),
    "token_ttl_seconds": 1800,
    "rotate_refresh_tokens": False,
    "rate_limit_per_10s": None,
    "rate_limit_interval_ms": 10000,
    "rate_limit_headers": True,
    "daily_limit": None,
    "retry_after_seconds": None,
    "latency_ms": 0,
    "latency_jitter_ms": 0,
    # The share of the latency spent before the request is counted (on its way to HubSpot), 0 to 1.
    "uplink_share": 0.0,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "seed": 0,
    "validation_error_mode": "batch",
    "error_detail": "full",
    "partial_write_rate": 0.0,
    "log_bodies": True,
    # batch/read: HubSpot answers 207 with OBJECT_NOT_FOUND; one report says 404 when all are missing.
    "read_all_missing_404": False,
    # batch/archive of unknown record ids: "ignore" (204, as a single DELETE does) or "error" (207).
    "archive_unknown_ids": "ignore",
    # GET /account-info/v3/details: the portal of each token (``portals``), else ``portal_id``.
    "portal_id": 12345678,
    "portals": {},
    # Either answer as HubSpot does ("ok"), or as a HubSpot without it ("missing": 404; account info
    # also "forbidden": 403).
    "account_info": "ok",
    "token_info": "ok",
    "account_type": "STANDARD",
    "time_zone": "US/Eastern",
    "company_currency": "USD",
    "ui_domain": "app.hubspot.com",
    # A misbehaving server instead of HubSpot (see hostile.py): None, or {"mode": ..., ...}.
    "hostile": None,
    "read_only": False,
    # Search (POST .../search): its own per-second limit (None: none), and how many seconds its
    # index trails writes (objects written more recently are found as they were, or not at all).
    "search_rate_limit_per_second": None,
    "search_index_lag_seconds": 0,
}

#: Named (non-integer) items accepted by :meth:`HubSpotSimulator.script_faults`.
FAULTS = frozenset({"daily_429", "drop", "drop_after_write", "empty_200"})


def _int_or_none(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError(f"{name} must be a non-negative number or None, got {v!r}")
    return int(v)


def _number(name: str, v: Any, lo: float = 0.0, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a number {bound}, got {v!r}")
    return v


def _number_or_none(name: str, v: Any) -> float | None:
    return None if v is None else _number(name, v)


def _interval(name: str, v: Any) -> float:
    return _number(name, v, lo=1)


def _probability(name: str, v: Any) -> float:
    return float(_number(name, v, 0.0, 1.0))


def _str_set(name: str, v: Any) -> frozenset[str]:
    if isinstance(v, str) or not isinstance(v, Iterable):
        raise TypeError(f"{name} must be a collection of strings, got {v!r}")
    items = frozenset(v)
    if not all(isinstance(t, str) and t for t in items):
        raise ValueError(f"{name} must contain non-empty strings")
    return items


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be a boolean, got {v!r}")
    return v


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    return v


def _token_scopes(name: str, v: Any) -> dict[str, frozenset[str]] | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise ValueError(f"{name} must be a mapping token -> list of scopes")
    return {str(t): frozenset(s) for t, s in v.items()}


def _oauth_clients(name: str, v: Any) -> dict[str, str]:
    if not isinstance(v, Mapping):
        raise ValueError(f"{name} must be a mapping client_id -> client_secret")
    return {str(k): str(s) for k, s in v.items()}


def _portals(name: str, v: Any) -> dict[str, int]:
    if not isinstance(v, Mapping):
        raise ValueError(f"{name} must be a mapping token -> portal id")
    return {str(t): _int(name, pid) for t, pid in v.items()}


def _text(name: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"{name} must be a non-empty string, got {v!r}")
    return v


def _choice(*allowed: str) -> Callable[[str, Any], str]:
    def check(name: str, v: Any) -> str:
        if v not in allowed:
            raise ValueError(f"{name} must be " + " or ".join(repr(a) for a in allowed))
        return v

    return check


_NORMALIZERS: dict[str, Callable[[str, Any], Any]] = {
    "tokens": _str_set,
    "refresh_tokens": _str_set,
    "token_scopes": _token_scopes,
    "oauth_clients": _oauth_clients,
    "token_ttl_seconds": _number,
    "rotate_refresh_tokens": _bool,
    "rate_limit_per_10s": _int_or_none,
    "rate_limit_interval_ms": _interval,
    "rate_limit_headers": _bool,
    "daily_limit": _int_or_none,
    "retry_after_seconds": _number_or_none,
    "latency_ms": _number,
    "latency_jitter_ms": _number,
    "uplink_share": _probability,
    "error_rate": _probability,
    "drop_rate": _probability,
    "seed": _int,
    "validation_error_mode": _choice("batch", "multi_status"),
    "error_detail": _choice("full", "none"),
    "partial_write_rate": _probability,
    "log_bodies": _bool,
    "read_all_missing_404": _bool,
    "archive_unknown_ids": _choice("ignore", "error"),
    "portal_id": _int,
    "portals": _portals,
    "account_info": _choice("ok", "missing", "forbidden"),
    "token_info": _choice("ok", "missing"),
    "account_type": _text,
    "time_zone": _text,
    "company_currency": _text,
    "ui_domain": _text,
    "hostile": hostile.normalize,
    "read_only": _bool,
    "search_rate_limit_per_second": _int_or_none,
    "search_index_lag_seconds": _number,
}


def normalize_option(name: str, value: Any) -> Any:
    """Validate one option value and convert it to its internal (immutable) form.

    Raises:
        ValueError: Unknown option or invalid value.
        TypeError: A collection option given something that is not a collection.
    """
    normalizer = _NORMALIZERS.get(name)
    if normalizer is None:
        raise ValueError(f"unknown simulator option {name!r}")
    return normalizer(name, value)


def snapshot(opts: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-friendly copy of the options (sets become sorted lists)."""
    out: dict[str, Any] = {}
    for k, v in opts.items():
        if isinstance(v, frozenset):
            out[k] = sorted(v)
        elif k == "token_scopes" and v is not None:
            out[k] = {t: sorted(s) for t, s in v.items()}
        elif isinstance(v, dict):
            out[k] = dict(v)
        else:
            out[k] = v
    return out
