"""A local HTTP server that behaves like HubSpot's CRM API (standard library only).

It implements what the target needs (batch upsert on the ``v3`` and date-versioned paths,
the Properties API, static-token and OAuth authentication, rate limits) with HubSpot's
validation rules and error bodies, plus fault injection (scripted and random errors,
dropped connections, partial writes) so clients can be tested against the failures the
real service produces. ``/_sim/...`` endpoints let another process inspect and steer it.

The server is independent of the target package on purpose: it models HubSpot, not the
client, so the client's assumptions cannot leak into it.

Control endpoints (unauthenticated, not logged in :attr:`HubSpotSimulator.requests`):

- ``GET /_sim/health``, ``GET /_sim/stats``, ``GET /_sim/options``
- ``GET /_sim/objects/{objectType}`` -> ``{"results": [...]}``
- ``GET /_sim/requests[?upserts_only=1][&since=SEQ]`` -> ``{"results": [entry...]}``
- ``POST /_sim/configure`` (JSON options), ``POST /_sim/reset``
- ``POST /_sim/script`` ``{"faults": [...]}``, ``POST /_sim/revoke`` ``{"token": ...}``
- ``POST /_sim/consume`` ``{"n": N}``
- ``POST /_sim/validation_rule`` ``{"object_type", "property", "value", "message"?}``
- ``POST /_sim/object_type`` ``{"name", "type_id", "properties", "aliases"?}``
"""

from __future__ import annotations

import collections
import json
import random
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from .catalog import (
    FIELD_TYPES_BY_TYPE,
    ObjectTypeSpec,
    build_object_type,
    default_object_types,
    make_group,
    make_property,
)

__all__ = ["FAULTS", "OPTION_DEFAULTS", "HubSpotSimulator", "RequestLogEntry"]

# ---------------------------------------------------------------------------------------
# Options

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
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "seed": 0,
    "validation_error_mode": "batch",
    "error_detail": "full",
    "partial_write_rate": 0.0,
    "log_bodies": True,
}

#: Named (non-integer) items accepted by :meth:`HubSpotSimulator.script_faults`.
FAULTS = frozenset({"daily_429", "drop", "drop_after_write", "empty_200"})


def _opt_int_or_none(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError(f"{name} must be a non-negative number or None, got {v!r}")
    return int(v)


def _opt_number(name: str, v: Any, lo: float = 0.0, hi: float | None = None) -> float:
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float))
        or v < lo
        or (hi is not None and v > hi)
    ):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a number {bound}, got {v!r}")
    return v


def _opt_str_set(name: str, v: Any) -> frozenset[str]:
    if isinstance(v, str) or not isinstance(v, Iterable):
        raise TypeError(f"{name} must be a collection of strings, got {v!r}")
    items = frozenset(v)
    if not all(isinstance(t, str) and t for t in items):
        raise ValueError(f"{name} must contain non-empty strings")
    return items


def _normalize_option(name: str, v: Any) -> Any:
    """Validate one option value and convert it to its internal (immutable) form."""
    if name in ("tokens", "refresh_tokens"):
        return _opt_str_set(name, v)
    if name == "token_scopes":
        if v is None:
            return None
        if not isinstance(v, Mapping):
            raise ValueError("token_scopes must be a mapping token -> list of scopes")
        return {str(t): frozenset(s) for t, s in v.items()}
    if name == "oauth_clients":
        if not isinstance(v, Mapping):
            raise ValueError(
                "oauth_clients must be a mapping client_id -> client_secret"
            )
        return {str(k): str(s) for k, s in v.items()}
    if name in ("rate_limit_per_10s", "daily_limit"):
        return _opt_int_or_none(name, v)
    if name == "retry_after_seconds":
        return None if v is None else _opt_number(name, v)
    if name in ("token_ttl_seconds", "latency_ms", "latency_jitter_ms"):
        return _opt_number(name, v)
    if name == "rate_limit_interval_ms":
        return _opt_number(name, v, lo=1)
    if name in ("error_rate", "drop_rate", "partial_write_rate"):
        return float(_opt_number(name, v, 0.0, 1.0))
    if name in ("rotate_refresh_tokens", "rate_limit_headers", "log_bodies"):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be a boolean, got {v!r}")
        return v
    if name == "seed":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"seed must be an integer, got {v!r}")
        return v
    if name == "validation_error_mode":
        if v not in ("batch", "multi_status"):
            raise ValueError("validation_error_mode must be 'batch' or 'multi_status'")
        return v
    if name == "error_detail":
        if v not in ("full", "none"):
            raise ValueError("error_detail must be 'full' or 'none'")
        return v
    raise ValueError(f"unknown simulator option {name!r}")


# ---------------------------------------------------------------------------------------
# Request log


@dataclass
class RequestLogEntry:
    """One request received by the simulator (control ``/_sim/`` calls are not logged).

    Attributes:
        seq: Arrival order, from 1.
        method: HTTP method.
        path: URL path without the query string.
        query: Query parameters.
        object_type: Canonical object type name, or None (unknown type or no type).
        endpoint: ``batch_upsert``, ``properties``, ``property_groups``, ``oauth`` or ``other``.
        status: Response status, or None while in progress or when the connection was dropped.
        request_body: Parsed JSON (or form dict), None when empty or when ``log_bodies``
            is off. OAuth grants are logged verbatim, so tests can look for leaked tokens.
        response_body: Parsed JSON answer, None when dropped, non-JSON or ``log_bodies`` off.
        started: ``time.monotonic()`` at arrival.
        finished: ``time.monotonic()`` when the answer was ready (None while in progress).
        dropped: True when the connection was closed without an answer.
        auth: Non-secret fingerprint of the bearer token (first 4 chars and length).
        input_count: Number of inputs of a batch upsert (None for other calls).
        ids: The inputs' ``id`` values of a batch upsert (None for other calls).
        fault: Injected fault applied to this request (e.g. ``503``, ``"drop"``), or None.
    """

    seq: int
    method: str
    path: str
    query: dict[str, str]
    object_type: str | None = None
    endpoint: str = "other"
    status: int | None = None
    request_body: Any = None
    response_body: Any = None
    started: float = 0.0
    finished: float | None = None
    dropped: bool = False
    auth: str | None = None
    input_count: int | None = None
    ids: list[Any] | None = None
    fault: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as a JSON-serialisable dict."""
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "object_type": self.object_type,
            "endpoint": self.endpoint,
            "status": self.status,
            "request_body": self.request_body,
            "response_body": self.response_body,
            "started": self.started,
            "finished": self.finished,
            "dropped": self.dropped,
            "auth": self.auth,
            "input_count": self.input_count,
            "ids": self.ids,
            "fault": self.fault,
        }


def _fingerprint(secret: str | None) -> str | None:
    """Short, non-secret identification of a token: its first 4 characters and length."""
    if secret is None:
        return None
    return f"{secret[:4]}...({len(secret)})"


# ---------------------------------------------------------------------------------------
# Value validation

_NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_INT_RE = re.compile(r"-?[0-9]+")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-]([0-9]{2}):?([0-9]{2}))"
)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PROPERTY_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_DAY_MS = 86_400_000
MAX_STRING_LENGTH = 65_536

_NOT_A_STRING = object()  # sentinel: an input carries a non-string property value

# Validator kinds, precomputed per property so per-value checks are a dict lookup + branch.
_K_RO, _K_STR, _K_EMAIL, _K_NUM, _K_BOOL, _K_DATE, _K_DT, _K_ENUM, _K_MULTI, _K_ANY = (
    range(10)
)


def _compile_validator(
    prop: Mapping[str, Any], email_property: bool
) -> tuple[int, frozenset[str]]:
    meta = prop.get("modificationMetadata") or {}
    if meta.get("readOnlyValue") or prop.get("calculated"):
        return _K_RO, frozenset()
    ptype = prop.get("type")
    if ptype == "number":
        return _K_NUM, frozenset()
    if ptype == "bool":
        return _K_BOOL, frozenset()
    if ptype == "date":
        return _K_DATE, frozenset()
    if ptype == "datetime":
        return _K_DT, frozenset()
    if ptype == "enumeration":
        if prop.get("externalOptions"):
            return _K_ANY, frozenset()
        values = frozenset(o["value"] for o in prop.get("options") or ())
        return (_K_MULTI if prop.get("fieldType") == "checkbox" else _K_ENUM), values
    return (_K_EMAIL if email_property else _K_STR), frozenset()


def _check_value(
    name: str, value: str, kind: int, options: frozenset[str]
) -> tuple[str, str] | None:
    """Return ``(code, message)`` when ``value`` is not valid for the property, else None."""
    if kind == _K_RO:
        return (
            "READ_ONLY_VALUE",
            f'"{name}" is a read only property; its value cannot be set.',
        )
    if value == "":
        return None  # always valid: clears the value
    if kind == _K_STR or kind == _K_ANY:
        if len(value) > MAX_STRING_LENGTH:
            return (
                "INVALID_STRING_LENGTH",
                (
                    f"Property {name} has a value of {len(value)} characters, more than "
                    f"the maximum of {MAX_STRING_LENGTH}."
                ),
            )
        return None
    if kind == _K_NUM:
        if _NUMBER_RE.fullmatch(value):
            return None
        return "INVALID_INTEGER", f"{value} was not a valid number."
    if kind == _K_BOOL:
        if value == "true" or value == "false":
            return None
        return (
            "INVALID_BOOLEAN",
            f"{value} was not a valid boolean. Valid values are true and false.",
        )
    if kind == _K_ENUM:
        if value in options:
            return None
        return (
            "INVALID_OPTION",
            f"{value} was not one of the allowed options: [{', '.join(sorted(options))}]",
        )
    if kind == _K_MULTI:
        parts = value.removeprefix(";")
        for part in parts.split(";"):
            if part and part not in options:
                return (
                    "INVALID_OPTION",
                    f"{part} was not one of the allowed options: [{', '.join(sorted(options))}]",
                )
        return None
    if kind == _K_DATE:
        m = _DATE_RE.fullmatch(value)
        if m:
            try:
                date(int(m[1]), int(m[2]), int(m[3]))
                return None
            except ValueError:
                pass
        elif _INT_RE.fullmatch(value):
            ms = int(value)
            if ms % _DAY_MS == 0:
                return None
            rem = ms % _DAY_MS
            at = f"{rem // 3_600_000}:{rem // 60_000 % 60}:{rem // 1000 % 60}.{rem % 1000}"
            return "INVALID_DATE", f"{value} is at {at} UTC, not midnight!"
        return "INVALID_DATE", f"{value} was not a valid date."
    if kind == _K_DT:
        if _INT_RE.fullmatch(value):
            return None
        m = _DATETIME_RE.fullmatch(value)
        if m:
            try:
                date(int(m[1]), int(m[2]), int(m[3]))
                if (
                    int(m[4]) < 24
                    and int(m[5]) < 60
                    and int(m[6] or 0) < 60
                    and int(m[7] or 0) < 24
                    and int(m[8] or 0) < 60
                ):
                    return None
            except ValueError:
                pass
        return "INVALID_DATETIME", f"{value} was not a valid datetime."
    if kind == _K_EMAIL:
        if len(value) <= MAX_STRING_LENGTH and _EMAIL_RE.fullmatch(value):
            return None
        return "INVALID_EMAIL", f"Email address {value} is invalid"
    return None


# ---------------------------------------------------------------------------------------
# Object types and storage


class _ObjectType:
    """A compiled, immutable view of an :class:`ObjectTypeSpec` (replaced on change)."""

    __slots__ = (
        "created",
        "groups",
        "id_props",
        "index_props",
        "modified",
        "multi_props",
        "name",
        "props",
        "spec",
        "validators",
    )

    def __init__(self, spec: ObjectTypeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.props: dict[str, dict[str, Any]] = {p["name"]: p for p in spec.properties}
        is_contacts = spec.name == "contacts"
        self.validators = {
            n: _compile_validator(p, is_contacts and n == "email")
            for n, p in self.props.items()
        }
        unique = {n for n, p in self.props.items() if p.get("hasUniqueValue")}
        # Contacts can also be upserted by email, which is not flagged unique in the catalogue.
        self.id_props = frozenset(
            unique | ({"email"} if is_contacts and "email" in self.props else set())
        )
        self.index_props = self.id_props
        self.multi_props = frozenset(
            n for n, (k, _) in self.validators.items() if k == _K_MULTI
        )
        self.groups = {g["name"]: g for g in spec.groups}
        self.created = spec.created_property
        self.modified = spec.modified_property


class _StoredObject:
    __slots__ = ("created_at", "id", "properties", "updated_at")

    def __init__(self, oid: str, now: str) -> None:
        self.id = oid
        self.properties: dict[str, str] = {}
        self.created_at = now
        self.updated_at = now

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "properties": dict(self.properties),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


class _Store:
    """Objects of one type, with an index per unique (idProperty-capable) property."""

    __slots__ = ("index", "objects")

    def __init__(self) -> None:
        self.objects: dict[str, _StoredObject] = {}
        self.index: dict[str, dict[str, str]] = {}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _correlation_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------------------
# Responses


# A prebuilt encoder: json.dumps() with arguments builds a new one per call (slow).
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


class _Response:
    __slots__ = ("body", "content_type", "drop", "headers", "obj", "status")

    def __init__(
        self,
        status: int,
        obj: Any = None,
        *,
        text: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        drop: bool = False,
        content_type: str = "application/json;charset=utf-8",
    ) -> None:
        self.status = status
        self.obj = obj
        self.headers = headers if headers is not None else []
        self.drop = drop
        if text is not None:
            self.body = text.encode()
            self.content_type = (
                content_type
                if content_type.startswith("text/")
                else "text/plain;charset=utf-8"
            )
        elif obj is None and status == 204:
            self.body = b""
            self.content_type = content_type
        else:
            self.body = _ENCODER.encode(obj).encode()
            self.content_type = content_type


def _error(
    status: int, message: str, category: str | None = "VALIDATION_ERROR", **extra: Any
) -> _Response:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": _correlation_id(),
    }
    body.update(extra)
    if category is not None:
        body["category"] = category
    return _Response(status, body)


_UNAUTHORIZED_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    207: "Multi-Status",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _fault_response(status: int) -> _Response:
    """The body HubSpot (or its edge) sends for an injected error status."""
    if status == 423:
        return _error(423, "Resource locked", "LOCKED")
    if status == 429:
        return _rate_limited("TEN_SECONDLY_ROLLING")
    if status == 502:
        return _Response(
            502,
            text="<html><head><title>502 Bad Gateway</title></head><body>"
            "<center><h1>502 Bad Gateway</h1></center></body></html>",
            content_type="text/html;charset=utf-8",
        )
    if status == 504:
        return _Response(504, text="upstream request timeout")
    if status == 503:
        return _error(
            503, "Service Unavailable. Please try again later.", "SERVICE_UNAVAILABLE"
        )
    if status >= 500:
        return _error(status, "internal error", "INTERNAL_ERROR")
    return _error(
        status,
        f"Injected error {status}",
        "VALIDATION_ERROR" if status == 400 else "ERROR",
    )


def _rate_limited(policy: str) -> _Response:
    if policy == "DAILY":
        message, name = "You have reached your daily limit.", "DAILY"
    else:
        message, name = (
            "You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
        )
    return _Response(
        429,
        {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": _correlation_id(),
            "policyName": name,
            "groupName": "api-calls",
        },
    )


# ---------------------------------------------------------------------------------------
# Routing

_DATED = r"[0-9]{4}-[0-9]{2}"
_R_UPSERT_V3 = re.compile(r"/crm/v3/objects/([^/]+)/batch/upsert/?")
_R_UPSERT_DATED = re.compile(rf"/crm/objects/{_DATED}/([^/]+)/batch/upsert/?")
_R_PROPS = re.compile(rf"/crm/(?:v3/properties|properties/{_DATED})/([^/]+)/?")
_R_GROUPS = re.compile(rf"/crm/(?:v3/properties|properties/{_DATED})/([^/]+)/groups/?")
_R_PROP_ONE = re.compile(
    rf"/crm/(?:v3/properties|properties/{_DATED})/([^/]+)/([^/]+)/?"
)


# ---------------------------------------------------------------------------------------
# The simulator


class HubSpotSimulator:
    """In-process HubSpot CRM API simulator serving real HTTP on 127.0.0.1.

    Every option (see :data:`OPTION_DEFAULTS`) can be given to the constructor and changed
    later with :meth:`configure`, from any thread.

    Example:
        >>> with HubSpotSimulator(tokens={"t"}, rate_limit_per_10s=100) as sim:
        ...     url = sim.base_url  # point the client here, with "Authorization: Bearer t"

    Args:
        tokens: Valid static bearer tokens (default ``{"sim-token"}``).
        host: Loopback address to bind.
        port: TCP port; 0 picks a free one.
        **options: Any other option of :data:`OPTION_DEFAULTS`.
    """

    def __init__(
        self,
        tokens: Iterable[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        if not (host.startswith("127.") or host == "localhost"):
            raise ValueError(
                f"the simulator only binds to loopback addresses, not {host!r}"
            )
        self._host = host
        self._port = port
        self._opts: dict[str, Any] = dict(OPTION_DEFAULTS)
        self._lock = threading.Lock()  # stats, log, rate window, script, tokens, RNG
        self._store_lock = threading.Lock()  # object storage
        self._catalog_lock = threading.Lock()  # object types / property catalogues
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._issued: dict[str, float] = {}  # OAuth access token -> monotonic expiry
        self._reset_state()
        if tokens is not None:
            options["tokens"] = tokens
        self.configure(**options)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the socket and serve in a daemon thread.

        Returns:
            The simulator itself (so ``sim = HubSpotSimulator().start()`` works).
        """
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="hubspot-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        # Wake serve_forever's select() with a throwaway connection instead of waiting
        # for its poll interval (keeps fixtures that start/stop per test fast).
        try:
            with socket.create_connection(_address(server), timeout=1):
                pass
        except OSError:
            pass
        stopper.join(timeout=5)
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (only available once started)."""
        if self._server is None:
            raise RuntimeError("simulator is not running; call start() first")
        return _address(self._server)[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("simulator is not running; call start() first")
        host, port = _address(self._server)
        return f"http://{host}:{port}"

    # -- configuration ------------------------------------------------------------------

    def configure(self, **options: Any) -> None:
        """Change options at runtime (thread-safe; unknown names raise ``ValueError``).

        Args:
            **options: Options of :data:`OPTION_DEFAULTS`.
        """
        normalized = {
            name: _normalize_option(name, value) for name, value in options.items()
        }
        with self._lock:
            self._opts.update(normalized)
            if "seed" in normalized:
                self._rng.seed(normalized["seed"])

    @property
    def options(self) -> dict[str, Any]:
        """A JSON-friendly snapshot of the current options (sets become sorted lists)."""
        with self._lock:
            out = {}
            for k, v in self._opts.items():
                if isinstance(v, frozenset):
                    v = sorted(v)
                elif k == "token_scopes" and v is not None:
                    v = {t: sorted(s) for t, s in v.items()}
                elif isinstance(v, dict):
                    v = dict(v)
                out[k] = v
            return out

    def reset(self) -> None:
        """Clear objects, the request log, stats, scripted faults, validation rules and rate
        counters, and restore the default object types and catalogues. Options are kept.
        """
        with self._lock, self._store_lock, self._catalog_lock:
            self._reset_state()
            self._rng.seed(self._opts["seed"])

    def _reset_state(self) -> None:
        self._types: dict[str, _ObjectType] = {}
        self._aliases: dict[str, str] = {}
        self._stores: dict[str, _Store] = {}
        for spec in default_object_types():
            self._register_type(spec)
        self._next_id = 1
        self._log: list[RequestLogEntry] = []
        self._seq = 0
        self._stats = self._empty_stats()
        self._script: collections.deque[int | str | None] = collections.deque()
        self._oauth_script: collections.deque[int | None] = collections.deque()
        self._rules: dict[str, list[tuple[str, str, str]]] = {}
        self._window: collections.deque[float] = collections.deque()
        self._daily_count = 0
        if not hasattr(self, "_in_flight"):  # requests may be in flight across a reset
            self._in_flight = 0
        if not hasattr(self, "_rng"):
            self._rng = random.Random(OPTION_DEFAULTS["seed"])

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {
            "requests": 0,
            "by_status": {},
            "upserts": 0,
            "inputs_written": 0,
            "rate_limited": 0,
            "rate_limited_ten_secondly": 0,
            "rate_limited_daily": 0,
            "dropped": 0,
            "faults_injected": 0,
            "max_concurrent_upserts": 0,
            "token_grants": 0,
            "properties_created": 0,
        }

    def _register_type(self, spec: ObjectTypeSpec) -> None:
        ot = _ObjectType(spec)
        self._types[spec.name] = ot
        for alias in spec.all_names:
            self._aliases[alias.lower()] = spec.name
        self._stores.setdefault(spec.name, _Store())

    def _resolve(self, object_type: str) -> _ObjectType | None:
        name = self._aliases.get(object_type.lower())
        return self._types.get(name) if name is not None else None

    def _resolve_or_raise(self, object_type: str) -> _ObjectType:
        ot = self._resolve(object_type)
        if ot is None:
            raise KeyError(f"Unable to infer object type from: {object_type}")
        return ot

    # -- test helpers --------------------------------------------------------------------

    def objects(self, object_type: str) -> list[dict[str, Any]]:
        """Return copies of the stored objects of a type, in creation order.

        Args:
            object_type: Name, type id or alias.

        Returns:
            ``[{"id", "properties", "createdAt", "updatedAt"}, ...]``.
        """
        ot = self._resolve_or_raise(object_type)
        with self._store_lock:
            return [o.to_dict() for o in self._stores[ot.name].objects.values()]

    def find(
        self, object_type: str, property: str, value: str
    ) -> dict[str, Any] | None:
        """Return a copy of the first stored object whose ``property`` equals ``value``.

        Email values are compared case-insensitively, others exactly.

        Args:
            object_type: Name, type id or alias.
            property: Property name.
            value: Value to look for.

        Returns:
            The object (as in :meth:`objects`) or None.
        """
        ot = self._resolve_or_raise(object_type)
        is_email = property == "email"
        wanted = value.lower() if is_email else value
        with self._store_lock:
            store = self._stores[ot.name]
            if property == "hs_object_id":
                obj = store.objects.get(value)
                return obj.to_dict() if obj else None
            for obj in store.objects.values():
                v = obj.properties.get(property)
                if v is not None and (v.lower() if is_email else v) == wanted:
                    return obj.to_dict()
        return None

    @property
    def requests(self) -> list[RequestLogEntry]:
        """Every logged request in arrival order (a snapshot list of the live entries)."""
        with self._lock:
            return list(self._log)

    def upsert_requests(self, object_type: str | None = None) -> list[RequestLogEntry]:
        """Logged batch upsert requests, optionally only those of one object type.

        Args:
            object_type: Name, type id or alias; None for all types.

        Returns:
            The matching entries in arrival order.
        """
        name = self._resolve_or_raise(object_type).name if object_type else None
        with self._lock:
            return [
                e
                for e in self._log
                if e.endpoint == "batch_upsert"
                and (name is None or e.object_type == name)
            ]

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: ``requests``, ``by_status`` (status -> count), ``upserts``,
        ``inputs_written``, ``rate_limited`` / ``rate_limited_ten_secondly`` /
        ``rate_limited_daily``, ``dropped``, ``faults_injected``, ``max_concurrent_upserts``,
        ``token_grants``, ``properties_created``.
        """
        with self._lock:
            out = dict(self._stats)
            out["by_status"] = dict(self._stats["by_status"])
            return out

    def script_faults(self, faults: Iterable[int | str | None]) -> None:
        """Replace the fault script: one item per upcoming batch upsert request, in order.

        Items: an HTTP status (``429`` = ten-secondly rate limit, ``423``, ``500``, ``502``,
        ``503``, ``504``...), ``"daily_429"``, ``"drop"`` (close the connection, write not
        applied), ``"drop_after_write"`` (apply the write, then close the connection),
        ``"empty_200"`` (200 with no results, nothing written) or None (behave normally).
        Scripted items take precedence over random faults.

        Args:
            faults: The script.
        """
        items: list[int | str | None] = []
        for f in faults:
            if (
                f is None
                or f in FAULTS
                or (isinstance(f, int) and not isinstance(f, bool) and 400 <= f <= 599)
            ):
                items.append(f)
            else:
                raise ValueError(f"unknown fault {f!r}")
        with self._lock:
            self._script = collections.deque(items)

    def script_oauth_faults(self, faults: Iterable[int | None]) -> None:
        """Replace the token endpoint's fault script: one item per upcoming token request.

        Items: an HTTP status (answered with HubSpot's error body, no token issued) or None
        (behave normally).

        Args:
            faults: The script.
        """
        items: list[int | None] = []
        for f in faults:
            if f is not None and not (isinstance(f, int) and not isinstance(f, bool) and 400 <= f <= 599):
                raise ValueError(f"unknown OAuth fault {f!r}")
            items.append(f)
        with self._lock:
            self._oauth_script = collections.deque(items)

    def revoke_token(self, token: str) -> None:
        """Invalidate a static token, an issued OAuth access token or a refresh token.

        Args:
            token: The token; later requests with it get 401.
        """
        with self._lock:
            self._opts["tokens"] = self._opts["tokens"] - {token}
            self._opts["refresh_tokens"] = self._opts["refresh_tokens"] - {token}
            self._issued.pop(token, None)

    def add_validation_rule(
        self,
        object_type: str,
        property: str,
        value: str,
        message: str = "This value is not allowed by a validation rule.",
    ) -> None:
        """Add an admin validation rule: inputs setting ``property`` to ``value`` are rejected.

        Rejections use code ``VALIDATION_RULE_VIOLATION`` and are answered per
        ``validation_error_mode``, like any invalid value.

        Args:
            object_type: Name, type id or alias.
            property: Property name.
            value: Forbidden value (exact match).
            message: Message reported to the client.
        """
        ot = self._resolve_or_raise(object_type)
        with self._lock:
            self._rules.setdefault(ot.name, []).append((property, value, message))

    def add_object_type(
        self,
        name: str,
        type_id: str,
        properties: Iterable[Mapping[str, Any]],
        aliases: Iterable[str] = (),
    ) -> None:
        """Define an object type at runtime (e.g. another custom object).

        Args:
            name: Canonical name.
            type_id: Object type id (``2-<n>`` for a custom object, which also gets ``p_<name>``).
            properties: Property definitions: full HubSpot dicts or partial ones with at
                least ``name`` (``type``, ``fieldType``, ``options``, ``hasUniqueValue``...).
            aliases: Extra names.
        """
        spec = build_object_type(
            name, type_id, [dict(p) for p in properties], aliases=aliases
        )
        with self._catalog_lock:
            self._register_type(spec)

    def consume_rate_limit(self, n: int) -> None:
        """Record ``n`` phantom requests (another app of the same account) in the rolling
        window and the daily count.

        Args:
            n: Number of requests to record.
        """
        now = time.monotonic()
        with self._lock:
            self._window.extend([now] * n)
            self._daily_count += n

    # -- HTTP entry point ----------------------------------------------------------------

    def _handle_http(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> _Response:
        split = urlsplit(raw_path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path.startswith("/_sim/") or path == "/_sim":
            try:
                return self._control(method, path, query, body)
            except (ValueError, KeyError, TypeError) as exc:
                return _Response(
                    400, {"status": "error", "message": str(exc).strip("'\"")}
                )
        token = _bearer(headers.get("Authorization"))
        with self._lock:
            self._seq += 1
            entry = RequestLogEntry(
                seq=self._seq,
                method=method,
                path=path,
                query=query,
                started=time.monotonic(),
                auth=_fingerprint(token),
            )
            self._log.append(entry)
        try:
            resp = self._serve(entry, method, path, headers, token, body)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            resp = _error(500, "internal simulator error", "INTERNAL_ERROR")
        entry.finished = time.monotonic()
        with self._lock:
            st = self._stats
            st["requests"] += 1
            if resp.drop:
                entry.dropped = True
                entry.response_body = None
                st["dropped"] += 1
            else:
                entry.status = resp.status
                if entry.response_body is None and self._opts["log_bodies"]:
                    entry.response_body = resp.obj
                by = st["by_status"]
                by[resp.status] = by.get(resp.status, 0) + 1
        return resp

    def _serve(
        self,
        entry: RequestLogEntry,
        method: str,
        path: str,
        headers: Any,
        token: str | None,
        body: bytes,
    ) -> _Response:
        if path.startswith("/oauth/"):
            entry.endpoint = "oauth"
            return self._oauth(entry, method, path, headers, body)
        if not path.startswith("/crm/"):
            return _error(404, f"Not found: {path}", "OBJECT_NOT_FOUND")

        m = None
        if method == "POST":
            m = _R_UPSERT_V3.fullmatch(path) or _R_UPSERT_DATED.fullmatch(path)
        is_upsert = m is not None
        dated = is_upsert and path.startswith("/crm/objects/")
        if is_upsert:
            entry.endpoint = "batch_upsert"
            # Parsed once here so even faulted requests log their input count and ids.
            try:
                payload: Any = json.loads(body) if body else None
            except ValueError as exc:
                payload = exc
            if isinstance(payload, dict) and isinstance(payload.get("inputs"), list):
                entry.input_count = len(payload["inputs"])
                entry.ids = [
                    i.get("id") if isinstance(i, dict) else None
                    for i in payload["inputs"]
                ]
            if self._opts["log_bodies"] and not isinstance(payload, ValueError):
                entry.request_body = payload
            with self._lock:
                self._in_flight += 1
                self._stats["upserts"] += 1
                self._stats["max_concurrent_upserts"] = max(
                    self._stats["max_concurrent_upserts"], self._in_flight
                )
        try:
            denied = self._authenticate(token)
            if denied is not None:
                return denied
            # Rate limit and fault script are decided together so a rate-limited request
            # never consumes a scripted fault, and scripted 429s don't count in the window.
            fault: int | str | None = None
            daily_headers = token not in self._issued
            with self._lock:
                if is_upsert and self._script and self._script[0] in (429, "daily_429"):
                    fault = self._script.popleft()
                    policy: str | None = (
                        "DAILY" if fault == "daily_429" else "TEN_SECONDLY_ROLLING"
                    )
                    rl_headers = self._rate_headers(daily_headers)
                else:
                    policy, rl_headers = self._rate_check(daily_headers)
                    if policy is None and is_upsert:
                        if self._script:
                            fault = self._script.popleft()
                        if fault is None:
                            fault = self._random_fault()
                if fault is not None:
                    self._stats["faults_injected"] += 1
                if policy is not None:
                    self._stats["rate_limited"] += 1
                    self._stats[
                        "rate_limited_daily"
                        if policy == "DAILY"
                        else "rate_limited_ten_secondly"
                    ] += 1
                retry_after = self._opts["retry_after_seconds"]
            entry.fault = fault
            if policy is not None:
                resp = _rate_limited(policy)
                if retry_after is not None:
                    rl_headers.append(("Retry-After", _fmt_number(retry_after)))
            elif is_upsert:
                assert m is not None
                resp = self._upsert_with_faults(
                    entry, m.group(1), token, payload, dated, fault
                )
            else:
                resp = self._route_other(entry, method, path, token, body)
            resp.headers.extend(rl_headers)
            return resp
        finally:
            if is_upsert:
                with self._lock:
                    self._in_flight -= 1

    # -- auth and rate limits ------------------------------------------------------------

    def _authenticate(self, token: str | None) -> _Response | None:
        if token is not None:
            if token in self._opts["tokens"]:
                return None
            expiry = self._issued.get(token)
            if expiry is not None:
                now = time.monotonic()
                if now < expiry:
                    return None
                return _error(
                    401,
                    f"The OAuth token used to make this call expired "
                    f"{int(now - expiry)} second(s) ago.",
                    "EXPIRED_AUTHENTICATION",
                )
        return _error(401, _UNAUTHORIZED_MESSAGE, "INVALID_AUTHENTICATION")

    def _scope_denied(self, token: str | None, scope: str) -> _Response | None:
        scopes = self._opts["token_scopes"]
        if scopes is None or token not in scopes or scope in scopes[token]:
            return None
        return _error(
            403,
            "This app hasn't been granted all required scopes to make this call. Read more about "
            "required scopes here: https://developers.hubspot.com/scopes.",
            "MISSING_SCOPES",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": [scope]},
                }
            ],
            links={"scopes": "https://developers.hubspot.com/scopes"},
        )

    def _prune_window(self, now: float) -> None:
        cutoff = now - self._opts["rate_limit_interval_ms"] / 1000.0
        win = self._window
        while win and win[0] <= cutoff:
            win.popleft()

    def _rate_headers(self, daily_headers: bool = True) -> list[tuple[str, str]]:
        """Rate-limit headers for the current state (lock held).

        HubSpot leaves the daily headers out for OAuth apps (``daily_headers=False``).
        """
        o = self._opts
        out: list[tuple[str, str]] = []
        if not o["rate_limit_headers"]:
            return out
        limit = o["rate_limit_per_10s"]
        if limit is not None:
            self._prune_window(time.monotonic())
            out += [
                ("X-HubSpot-RateLimit-Max", str(limit)),
                (
                    "X-HubSpot-RateLimit-Remaining",
                    str(max(0, limit - len(self._window))),
                ),
                (
                    "X-HubSpot-RateLimit-Interval-Milliseconds",
                    _fmt_number(o["rate_limit_interval_ms"]),
                ),
            ]
        daily = o["daily_limit"]
        if daily is not None and daily_headers:
            out += [
                ("X-HubSpot-RateLimit-Daily", str(daily)),
                (
                    "X-HubSpot-RateLimit-Daily-Remaining",
                    str(max(0, daily - self._daily_count)),
                ),
            ]
        return out

    def _rate_check(
        self, daily_headers: bool = True
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """Count one request against the limits (lock held); return the violated policy."""
        now = time.monotonic()
        self._prune_window(now)
        limit = self._opts["rate_limit_per_10s"]
        daily = self._opts["daily_limit"]
        policy = None
        if daily is not None and self._daily_count >= daily:
            policy = "DAILY"
        elif limit is not None and len(self._window) >= limit:
            policy = "TEN_SECONDLY_ROLLING"
        else:
            self._window.append(now)
            self._daily_count += 1
        return policy, self._rate_headers(daily_headers)

    def _random_fault(self) -> int | str | None:
        """Draw a random fault per ``error_rate`` / ``drop_rate`` (lock held)."""
        o = self._opts
        if o["error_rate"] and self._rng.random() < o["error_rate"]:
            return self._rng.choice((500, 502, 503, 504))
        if o["drop_rate"] and self._rng.random() < o["drop_rate"]:
            return "drop"
        return None

    def _sleep_latency(self) -> None:
        with self._lock:
            latency = self._opts["latency_ms"]
            jitter = self._opts["latency_jitter_ms"]
            if jitter:
                latency += self._rng.uniform(-jitter, jitter)
        if latency > 0:
            time.sleep(latency / 1000.0)

    # -- OAuth -----------------------------------------------------------------------------

    def _oauth(
        self, entry: RequestLogEntry, method: str, path: str, headers: Any, body: bytes
    ) -> _Response:
        if path not in ("/oauth/v1/token", "/oauth/v3/token"):
            return _error(404, f"Not found: {path}", "OBJECT_NOT_FOUND")
        if method != "POST":
            return _error(405, f"Method {method} not allowed", None)
        with self._lock:
            fault = self._oauth_script.popleft() if self._oauth_script else None
            if fault is not None:
                self._stats["faults_injected"] += 1
        if fault is not None:
            return _error(fault, "Simulated token endpoint failure.", "INTERNAL_ERROR")
        text = body.decode("utf-8", "replace")
        params: dict[str, Any] = {}
        ctype = (headers.get("Content-Type") or "").lower()
        if path == "/oauth/v3/token" and (
            "json" in ctype or text.lstrip().startswith("{")
        ):
            parsed = _parse_json_or_none(body)
            if isinstance(parsed, dict):
                params = {k: v for k, v in parsed.items() if isinstance(v, str)}
        else:
            params = dict(parse_qsl(text, keep_blank_values=True))
        if self._opts["log_bodies"]:
            # Logged verbatim: tests read issued tokens from the log to prove they never leak.
            entry.request_body = params
        cid = _correlation_id()
        if params.get("grant_type") != "refresh_token":
            return _Response(
                400,
                {
                    "status": "BAD_GRANT_TYPE",
                    "message": "missing or unsupported grant_type",
                    "correlationId": cid,
                },
            )
        with self._lock:
            clients = self._opts["oauth_clients"]
            client_id = params.get("client_id")
            if client_id not in clients or clients[client_id] != params.get(
                "client_secret"
            ):
                return _Response(
                    400,
                    {
                        "status": "BAD_CLIENT_ID",
                        "message": "missing or unknown client id",
                        "correlationId": cid,
                    },
                )
            refresh = params.get("refresh_token")
            if not refresh or refresh not in self._opts["refresh_tokens"]:
                return _Response(
                    400,
                    {
                        "status": "BAD_REFRESH_TOKEN",
                        "message": "missing or unknown refresh token",
                        "correlationId": cid,
                    },
                )
            if self._opts["rotate_refresh_tokens"]:
                new_refresh = secrets.token_hex(16)
                self._opts["refresh_tokens"] = (
                    self._opts["refresh_tokens"] - {refresh}
                ) | {new_refresh}
                refresh = new_refresh
            ttl = self._opts["token_ttl_seconds"]
            access = "sim-oauth-" + secrets.token_urlsafe(24)
            self._issued[access] = time.monotonic() + ttl
            self._stats["token_grants"] += 1
        body_obj = {
            "token_type": "bearer",
            "refresh_token": refresh,
            "access_token": access,
            "expires_in": int(ttl) if float(ttl).is_integer() else ttl,
        }
        return _Response(200, body_obj)

    # -- Properties API --------------------------------------------------------------------

    def _route_other(
        self,
        entry: RequestLogEntry,
        method: str,
        path: str,
        token: str | None,
        body: bytes,
    ) -> _Response:
        m = _R_GROUPS.fullmatch(path)
        if m:
            entry.endpoint = "property_groups"
            return self._with_type(
                entry,
                m.group(1),
                lambda ot: self._groups(entry, ot, method, token, body),
            )
        m = _R_PROPS.fullmatch(path)
        if m:
            entry.endpoint = "properties"
            return self._with_type(
                entry,
                m.group(1),
                lambda ot: self._properties(entry, ot, method, token, body),
            )
        m = _R_PROP_ONE.fullmatch(path)
        if m:
            entry.endpoint = "properties"

            def one(ot: _ObjectType) -> _Response:
                if method != "GET":
                    return _error(405, f"Method {method} not allowed", None)
                denied = self._scope_denied(
                    token, f"crm.schemas.{ot.spec.scope_name}.read"
                )
                if denied:
                    return denied
                prop = ot.props.get(m.group(2))
                if prop is None:
                    return _error(
                        404,
                        f"Unable to find property {m.group(2)} on object type {ot.name}",
                        "OBJECT_NOT_FOUND",
                    )
                return _Response(200, prop)

            return self._with_type(entry, m.group(1), one)
        return _error(404, f"Not found: {path}", "OBJECT_NOT_FOUND")

    def _with_type(self, entry: RequestLogEntry, ref: str, fn: Any) -> _Response:
        ot = self._resolve(ref)
        if ot is None:
            return _error(400, f"Unable to infer object type from: {ref}")
        entry.object_type = ot.name
        return fn(ot)

    def _properties(
        self,
        entry: RequestLogEntry,
        ot: _ObjectType,
        method: str,
        token: str | None,
        body: bytes,
    ) -> _Response:
        if method == "GET":
            denied = self._scope_denied(token, f"crm.schemas.{ot.spec.scope_name}.read")
            if denied:
                return denied
            archived = entry.query.get("archived", "false").lower() == "true"
            return _Response(
                200, {"results": [] if archived else list(ot.props.values())}
            )
        if method != "POST":
            return _error(405, f"Method {method} not allowed", None)
        denied = self._scope_denied(token, f"crm.schemas.{ot.spec.scope_name}.write")
        if denied:
            return denied
        data = _parse_json_or_none(body)
        if self._opts["log_bodies"]:
            entry.request_body = data
        if not isinstance(data, dict):
            return _error(
                400, "Invalid input JSON: expected a property definition object"
            )
        missing = [
            f
            for f in ("name", "label", "type", "fieldType", "groupName")
            if not isinstance(data.get(f), str) or not data.get(f)
        ]
        if missing:
            return _error(
                400,
                f"Missing required fields: {', '.join(missing)}",
                errors=[
                    {
                        "message": f"{f} is required",
                        "code": "REQUIRED_FIELD",
                        "context": {"field": [f]},
                    }
                    for f in missing
                ],
            )
        name, ptype, ftype = data["name"], data["type"], data["fieldType"]
        if not _PROPERTY_NAME_RE.fullmatch(name):
            return _error(
                400,
                f"Property name '{name}' is invalid: use lowercase letters, digits and "
                f"underscores, starting with a letter.",
            )
        if ptype not in FIELD_TYPES_BY_TYPE:
            return _error(
                400,
                f"Invalid property type '{ptype}'. Valid types are "
                f"{sorted(FIELD_TYPES_BY_TYPE)}",
            )
        if ftype not in FIELD_TYPES_BY_TYPE[ptype]:
            return _error(
                400,
                f"fieldType '{ftype}' is not valid for property type '{ptype}'. Valid "
                f"fieldTypes are {sorted(FIELD_TYPES_BY_TYPE[ptype])}",
            )
        options = data.get("options", [])
        if not isinstance(options, list) or not all(
            isinstance(o, dict)
            and isinstance(o.get("label"), str)
            and isinstance(o.get("value"), str)
            for o in options
        ):
            return _error(
                400, "options must be a list of objects with string label and value"
            )
        unique = data.get("hasUniqueValue", False)
        if not isinstance(unique, bool):
            return _error(400, "hasUniqueValue must be a boolean")
        with self._catalog_lock:
            ot = self._types[ot.name]  # re-read: another request may have changed it
            if name in ot.props:
                return _error(
                    409,
                    f"Property named '{name}' already exists.",
                    "OBJECT_ALREADY_EXISTS",
                )
            if data["groupName"] not in ot.groups:
                return _error(
                    400, f"Property group '{data['groupName']}' does not exist."
                )
            if (
                unique
                and sum(1 for p in ot.props.values() if p.get("hasUniqueValue")) >= 10
            ):
                return _error(
                    400, "An object can have at most 10 properties with unique values."
                )
            prop = make_property(
                name,
                ptype,
                ftype,
                label=data["label"],
                group=data["groupName"],
                description=str(data.get("description", "")),
                options=[(o["label"], o["value"]) for o in options] or None,
                unique=unique,
                external_options=bool(data.get("externalOptions", False)),
                hidden=bool(data.get("hidden", False)),
                display_order=int(data.get("displayOrder", -1))
                if isinstance(data.get("displayOrder", -1), int)
                else -1,
            )
            if ptype == "enumeration" and not options:
                prop["options"] = []
            if data.get("formField") is not None:
                prop["formField"] = bool(data["formField"])
            spec = ot.spec.copy()
            spec.properties.append(prop)
            self._types[ot.name] = _ObjectType(
                spec
            )  # copy-on-write: readers keep their snapshot
        with self._lock:
            self._stats["properties_created"] += 1
        return _Response(201, prop)

    def _groups(
        self,
        entry: RequestLogEntry,
        ot: _ObjectType,
        method: str,
        token: str | None,
        body: bytes,
    ) -> _Response:
        if method == "GET":
            denied = self._scope_denied(token, f"crm.schemas.{ot.spec.scope_name}.read")
            return denied or _Response(200, {"results": list(ot.groups.values())})
        if method != "POST":
            return _error(405, f"Method {method} not allowed", None)
        denied = self._scope_denied(token, f"crm.schemas.{ot.spec.scope_name}.write")
        if denied:
            return denied
        data = _parse_json_or_none(body)
        if self._opts["log_bodies"]:
            entry.request_body = data
        if not isinstance(data, dict) or not all(
            isinstance(data.get(f), str) and data.get(f) for f in ("name", "label")
        ):
            return _error(400, "A property group needs a name and a label.")
        name = data["name"]
        if not _PROPERTY_NAME_RE.fullmatch(name):
            return _error(400, f"Property group name '{name}' is invalid.")
        with self._catalog_lock:
            ot = self._types[ot.name]
            if name in ot.groups:
                return _error(
                    409,
                    f"Property group named '{name}' already exists.",
                    "OBJECT_ALREADY_EXISTS",
                )
            group = make_group(
                name,
                data["label"],
                data.get("displayOrder", -1)
                if isinstance(data.get("displayOrder", -1), int)
                else -1,
            )
            spec = ot.spec.copy()
            spec.groups.append(group)
            self._types[ot.name] = _ObjectType(spec)
        return _Response(201, group)

    # -- batch upsert ----------------------------------------------------------------------

    def _upsert_with_faults(
        self,
        entry: RequestLogEntry,
        ref: str,
        token: str | None,
        payload: Any,
        dated: bool,
        fault: int | str | None,
    ) -> _Response:
        started = _now_iso()
        ot = self._resolve(ref)
        if ot is not None:
            entry.object_type = ot.name
        self._sleep_latency()  # while counted as in flight
        if isinstance(fault, int):
            return _fault_response(fault)
        if fault == "drop":
            return _Response(0, None, drop=True)
        if fault == "empty_200":
            return _Response(
                200,
                {
                    "status": "COMPLETE",
                    "results": [],
                    "startedAt": started,
                    "completedAt": _now_iso(),
                },
            )
        if ot is None:
            return _error(400, f"Unable to infer object type from: {ref}")
        denied = self._scope_denied(token, f"crm.objects.{ot.spec.scope_name}.write")
        if denied:
            return denied
        resp = self._upsert(entry, ot, payload, dated, started)
        if fault == "drop_after_write":
            resp.drop = True
        return resp

    def _upsert(
        self,
        entry: RequestLogEntry,
        ot: _ObjectType,
        payload: Any,
        dated: bool,
        started: str,
    ) -> _Response:
        if isinstance(payload, ValueError):
            return _error(
                400,
                f"Invalid input JSON on line {getattr(payload, 'lineno', 1)}, column "
                f"{getattr(payload, 'colno', 1)}: {getattr(payload, 'msg', str(payload))}",
            )
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
            return _error(
                400, 'Invalid input JSON: expected an object with an "inputs" array.'
            )
        inputs: list[Any] = payload["inputs"]
        if not 1 <= len(inputs) <= 100:
            return _error(
                400, f"Batch size must be between 1 and 100, got {len(inputs)} inputs."
            )

        # One pass per input: whole-request errors (structure, idProperty) return at once;
        # value problems are collected and answered per validation_error_mode afterwards.
        with self._lock:
            rules = self._rules.get(ot.name)
            rules = list(rules) if rules else None
        id_props = ot.id_props
        seen: set[tuple[str, str]] = set()
        dups: list[str] = []
        problems: list[list[tuple[str, str, str]] | None] = []
        for inp in inputs:
            if type(inp) is not dict:
                return _error(400, "Invalid input JSON: each input must be an object.")
            iid = inp.get("id")
            if type(iid) is not str or not iid:
                return _error(
                    400,
                    'Invalid input: "id" is required and must be a non-empty string.',
                    errors=[
                        {
                            "message": "id is required",
                            "code": "REQUIRED_FIELD",
                            "context": {"field": ["id"]},
                        }
                    ],
                )
            props = inp.get("properties")
            if type(props) is not dict:
                return _error(
                    400,
                    'Invalid input: "properties" is required and must be an object.',
                    errors=[
                        {
                            "message": "properties is required",
                            "code": "REQUIRED_FIELD",
                            "context": {"field": ["properties"]},
                        }
                    ],
                )
            idp = inp.get("idProperty")
            if idp is not None and type(idp) is not str:
                return _error(400, 'Invalid input: "idProperty" must be a string.')
            trace = inp.get("objectWriteTraceId")
            if trace is not None and type(trace) is not str:
                return _error(
                    400, 'Invalid input: "objectWriteTraceId" must be a string.'
                )
            # HubSpot defaults the idProperty to hs_object_id, which upsert rejects.
            idp = idp or "hs_object_id"
            if idp not in id_props:
                msg = f"Unable to perform update/upsert by non-unique or non-existent property {idp}"
                return _error(
                    400,
                    msg,
                    errors=[
                        {
                            "message": msg,
                            "code": "INVALID_ID_PROPERTY",
                            "context": {"propertyName": [idp]},
                        }
                    ],
                )
            key = iid.lower() if idp == "email" else iid
            if (idp, key) in seen:
                if key not in dups:
                    dups.append(key)
            else:
                seen.add((idp, key))
            found = self._validate_input(ot, idp, iid, props, rules)
            if found is _NOT_A_STRING:
                k = next(k for k, v in props.items() if type(v) is not str)
                v = props[k]
                msg = (
                    f'Invalid input JSON: value of property "{k}" must be a string, got '
                    f"{'null' if v is None else type(v).__name__}."
                )
                return _error(
                    400,
                    msg,
                    errors=[
                        {
                            "message": msg,
                            "code": "INVALID_TYPE",
                            "context": {"propertyName": [k]},
                        }
                    ],
                )
            problems.append(found)
        if dups:
            # Duplicate ids fail the whole request in every mode.
            return _error(
                400,
                f"Duplicate IDs found in batch input: [{', '.join(dups)}]. IDs must be unique",
                context={"ids": dups},
            )

        bad = [i for i, p in enumerate(problems) if p]
        opts = self._opts
        if bad and opts["validation_error_mode"] == "batch":
            if opts["error_detail"] == "none":
                return _error(400, "Invalid input")
            first = problems[bad[0]]
            assert first is not None
            return _error(
                400,
                _property_values_message(first),
                errors=[
                    {"message": msg, "code": code, "context": {"propertyName": [name]}}
                    for name, code, msg in first
                ],
            )

        valid = [inp for inp, p in zip(inputs, problems) if not p] if bad else inputs
        if not bad and opts["partial_write_rate"]:
            with self._lock:
                if self._rng.random() < opts["partial_write_rate"]:
                    n_drop = self._rng.randint(1, len(valid))
                    skipped = set(self._rng.sample(range(len(valid)), n_drop))
                    valid = [inp for i, inp in enumerate(valid) if i not in skipped]
                    entry.fault = "partial_write"
        all_or_nothing = opts["validation_error_mode"] == "batch"
        results, conflicts = self._write(ot, valid, all_or_nothing)
        if conflicts and all_or_nothing:
            return _error(409, conflicts[0][2], "CONFLICT")
        body_obj: dict[str, Any] = {"status": "COMPLETE", "results": results}
        status = 200
        if bad or conflicts:
            errors = []
            for i in bad:
                inp = inputs[i]
                trace = inp.get("objectWriteTraceId")
                ctx: dict[str, list[str]] = (
                    {"objectWriteTraceId": [trace]} if trace else {"id": [inp["id"]]}
                )
                if opts["error_detail"] == "none":
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": "Invalid input",
                            "context": ctx,
                        }
                    )
                    continue
                found = problems[i]
                assert found is not None
                ctx["propertyName"] = list(dict.fromkeys(name for name, _, _ in found))
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": _property_values_message(found),
                        "code": found[0][1],
                        "context": ctx,
                    }
                )
            for i, prop, message in conflicts:
                inp = valid[i]
                trace = inp.get("objectWriteTraceId")
                ctx = {"objectWriteTraceId": [trace]} if trace else {"id": [inp["id"]]}
                ctx["propertyName"] = [prop]
                errors.append(
                    {
                        "status": "error",
                        "category": "CONFLICT",
                        "message": message,
                        "context": ctx,
                    }
                )
            body_obj["numErrors"] = len(errors)
            body_obj["errors"] = errors
            status = 200 if dated else 207
        body_obj["startedAt"] = started
        body_obj["completedAt"] = _now_iso()
        return _Response(status, body_obj)

    def _validate_input(
        self,
        ot: _ObjectType,
        idp: str,
        iid: str,
        props: dict[str, Any],
        rules: list[tuple[str, str, str]] | None,
    ) -> Any:
        """Return the ``(property, code, message)`` problems of one input, None when valid,
        or ``_NOT_A_STRING`` when a property value is not a JSON string.
        """
        problems: list[tuple[str, str, str]] | None = None
        validators = ot.validators
        kind, options = validators[idp]
        if kind == _K_EMAIL:
            bad = (
                None
                if _EMAIL_RE.fullmatch(iid) and len(iid) <= MAX_STRING_LENGTH
                else _check_value(idp, iid, kind, options)
            )
        elif kind == _K_STR and len(iid) <= MAX_STRING_LENGTH:
            bad = None
        else:
            bad = _check_value(idp, iid, kind, options)
        if bad:
            problems = [(idp, *bad)]
        for name, value in props.items():
            if type(value) is not str:
                return _NOT_A_STRING
            v = validators.get(name)
            if v is None:
                bad = ("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            else:
                # Inline fast accepts for the common kinds; _check_value explains failures.
                kind = v[0]
                if kind == _K_STR:
                    if len(value) <= MAX_STRING_LENGTH:
                        continue
                elif kind == _K_NUM:
                    if _NUMBER_RE.fullmatch(value):
                        continue
                elif kind == _K_BOOL:
                    if value == "true" or value == "false":
                        continue
                elif kind == _K_ENUM:
                    if value in v[1] or value == "":
                        continue
                elif kind == _K_DATE:
                    m = _DATE_RE.fullmatch(value)
                    # Days 01-28 exist in every month; other dates get the full check.
                    if m and "01" <= m[2] <= "12" and "01" <= m[3] <= "28":
                        continue
                bad = _check_value(name, value, kind, v[1])
                if bad is None:
                    continue
            if problems is None:
                problems = []
            problems.append((name, *bad))
        if rules:
            for prop, value, message in rules:
                if props.get(prop) == value or (prop == idp and iid == value):
                    if problems is None:
                        problems = []
                    if not any(p[0] == prop for p in problems):
                        problems.append((prop, "VALIDATION_RULE_VIOLATION", message))
        return problems

    def _write(
        self, ot: _ObjectType, inputs: list[dict[str, Any]], all_or_nothing: bool
    ) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]]]:
        """Apply validated inputs to the store.

        Returns:
            The HubSpot result objects, and the ``(input index, property, message)``
            unique-value conflicts. Conflicting inputs are not written; with
            ``all_or_nothing`` nothing is written when there is any conflict.
        """
        now = _now_iso()
        results: list[dict[str, Any]] = []
        is_contacts = ot.name == "contacts"
        index_props = ot.index_props
        multi = ot.multi_props
        modified = ot.modified
        with self._store_lock:
            store = self._stores[ot.name]
            indexes = store.index
            objects = store.objects
            conflicts = _unique_conflicts(ot, indexes, inputs)
            if conflicts and all_or_nothing:
                return results, conflicts
            skip = {c[0] for c in conflicts}
            for n, inp in enumerate(inputs):
                if skip and n in skip:
                    continue
                idp = inp["idProperty"]
                key = inp["id"].lower() if idp == "email" else inp["id"]
                in_props: dict[str, str] = inp["properties"]
                ix = indexes.get(idp)
                if ix is None:
                    ix = indexes[idp] = {}
                oid = ix.get(key)
                if oid is None:
                    oid = str(self._next_id)
                    self._next_id += 1
                    obj = _StoredObject(oid, now)
                    objects[oid] = obj
                    props = obj.properties
                    props["hs_object_id"] = oid
                    props[ot.created] = now
                    props[idp] = key
                    ix[key] = oid
                    new = True
                else:
                    obj = objects[oid]
                    props = obj.properties
                    new = False
                # Other unique values this input sets: their indexes must follow (rare).
                before = None
                if not index_props.isdisjoint(in_props):
                    before = {p: props.get(p) for p in index_props if p in in_props}
                    before.pop(idp, None)
                if (
                    "" in in_props.values()
                    or (multi and not multi.isdisjoint(in_props))
                    or (is_contacts and "email" in in_props)
                ):
                    for name, value in in_props.items():
                        if value == "":
                            props.pop(name, None)
                        elif name in multi and value[0] == ";":
                            existing = props.get(name, "")
                            merged = dict.fromkeys(x for x in existing.split(";") if x)
                            merged.update(
                                dict.fromkeys(x for x in value[1:].split(";") if x)
                            )
                            if merged:
                                props[name] = ";".join(merged)
                        elif is_contacts and name == "email":
                            props[name] = value.lower()
                        else:
                            props[name] = value
                else:
                    props.update(in_props)  # fast path: plain assignments
                props[idp] = key
                if is_contacts and (new or "email" in in_props):
                    email = props.get("email")
                    if email and "@" in email:
                        props["hs_email_domain"] = email.rsplit("@", 1)[1]
                    else:
                        props.pop("hs_email_domain", None)
                props[modified] = now
                obj.updated_at = now
                if before:
                    for p, old in before.items():
                        cur = props.get(p)
                        if old != cur:
                            pix = indexes.setdefault(p, {})
                            if old is not None and pix.get(old) == oid:
                                del pix[old]
                            if cur is not None:
                                pix[cur] = oid
                result = {
                    "id": oid,
                    "properties": props.copy(),
                    "createdAt": obj.created_at,
                    "updatedAt": now,
                    "archived": False,
                    "new": new,
                }
                trace = inp.get("objectWriteTraceId")
                if trace is not None:
                    result["objectWriteTraceId"] = trace
                results.append(result)
        with self._lock:
            self._stats["inputs_written"] += len(results)
        return results, conflicts

    # -- control endpoints ---------------------------------------------------------------

    def _control(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> _Response:
        parts = path.strip("/").split("/")
        action = parts[1] if len(parts) > 1 else ""
        data = _parse_json_or_none(body) if body.strip() else None
        if body.strip() and data is None:
            raise ValueError("invalid JSON body")
        if method == "GET":
            if action == "health":
                return _Response(200, {"status": "ok"})
            if action == "objects" and len(parts) == 3:
                ot = self._resolve(parts[2])
                if ot is None:
                    return _error(
                        404, f"Unable to infer object type from: {parts[2]}", None
                    )
                return _Response(200, {"results": self.objects(ot.name)})
            if action == "requests":
                entries = (
                    self.upsert_requests()
                    if query.get("upserts_only") in ("1", "true")
                    else self.requests
                )
                since = int(query.get("since", 0))
                return _Response(
                    200, {"results": [e.to_dict() for e in entries if e.seq > since]}
                )
            if action == "stats":
                return _Response(200, self.stats)
            if action == "options":
                return _Response(200, self.options)
        elif method == "POST":
            if not isinstance(data, (dict, type(None))):
                raise ValueError("expected a JSON object body")
            data = data or {}
            if action == "configure":
                self.configure(**data)
                return _Response(200, self.options)
            if action == "reset":
                self.reset()
                return _Response(200, {"status": "ok"})
            if action == "script":
                self.script_faults(data.get("faults", []))
                return _Response(200, {"status": "ok"})
            if action == "revoke":
                self.revoke_token(data["token"])
                return _Response(200, {"status": "ok"})
            if action == "consume":
                self.consume_rate_limit(int(data.get("n", 1)))
                return _Response(200, {"status": "ok"})
            if action == "validation_rule":
                self.add_validation_rule(
                    data["object_type"],
                    data["property"],
                    data["value"],
                    **({"message": data["message"]} if "message" in data else {}),
                )
                return _Response(200, {"status": "ok"})
            if action == "object_type":
                self.add_object_type(
                    data["name"],
                    data["type_id"],
                    data.get("properties", []),
                    data.get("aliases", ()),
                )
                return _Response(200, {"status": "ok"})
        return _Response(
            404,
            {"status": "error", "message": f"unknown control endpoint {method} {path}"},
        )


def _unique_conflicts(
    ot: _ObjectType, indexes: dict[str, dict[str, str]], inputs: list[dict[str, Any]]
) -> list[tuple[int, str, str]]:
    """Find inputs that would give a unique property a value another object holds.

    HubSpot refuses them (e.g. upserting by ``external_id`` with an email that belongs to
    another contact: "Contact already exists. Existing ID: ..."). Two inputs of one
    request claiming the same value for different objects conflict as well.
    """
    out: list[tuple[int, str, str]] = []
    claimed: dict[tuple[str, str], object] = {}
    index_props = ot.index_props
    label = ot.name.rstrip("s").replace("_", " ").capitalize()
    for n, inp in enumerate(inputs):
        in_props = inp["properties"]
        if index_props.isdisjoint(in_props):
            continue  # the common case: the input sets no unique property
        idp = inp["idProperty"]
        others = in_props.keys() & index_props
        others.discard(idp)
        if not others:
            continue
        key = inp["id"].lower() if idp == "email" else inp["id"]
        target: object = indexes.get(idp, {}).get(key) or (idp, key)
        for prop in sorted(others):
            value = in_props[prop]
            if value == "":
                continue
            if prop == "email":
                value = value.lower()
            owner = indexes.get(prop, {}).get(value)
            first = claimed.setdefault((prop, value), target)
            if owner is not None and owner != target:
                out.append((n, prop, f"{label} already exists. Existing ID: {owner}"))
                break
            if first != target:
                out.append(
                    (
                        n,
                        prop,
                        f"{label} already exists: another input sets {prop} to {value}",
                    )
                )
                break
    return out


def _property_values_message(problems: list[tuple[str, str, str]]) -> str:
    items = [
        {
            "isValid": False,
            "message": msg,
            "error": code,
            "name": name,
            "localizedErrorMessage": msg,
        }
        for name, code, msg in problems
    ]
    return "Property values were not valid: " + json.dumps(items, separators=(",", ":"))


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _parse_json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _address(server: ThreadingHTTPServer) -> tuple[str, int]:
    """The bound (host, port) of a server, typed."""
    host, port = server.server_address[:2]
    return (host.decode() if isinstance(host, bytes) else str(host)), int(port)


def _fmt_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


# ---------------------------------------------------------------------------------------
# HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP adapter: reads the request, lets the simulator answer, writes it in one go."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    server_version = "HubSpotSimulator/1.0"
    disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stalls on small answers
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (stdout/stderr must stay quiet and fast)."""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._write(_error(400, "Unreadable request body", None))
            return
        resp = self.server.sim._handle_http(self.command, self.path, self.headers, body)
        if resp.drop:
            # Close without answering: the client sees a connection error.
            self.close_connection = True
            return
        self._write(resp)

    def _write(self, resp: _Response) -> None:
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
            f"Content-Type: {resp.content_type}",
            f"Content-Length: {len(resp.body)}",
        ]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: HubSpotSimulator) -> None:
        self.sim = sim
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def close_connections(self) -> None:
        """Shut down kept-alive connections so a stopped simulator answers nothing more."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # clients hanging up are normal
        print(
            f"hubspot-simulator: error handling a request from {client_address}:",
            file=sys.stderr,
        )
        traceback.print_exc(file=sys.stderr)
