"""HubSpot's checks of property values on write, per property type, and their messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

_NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_INT_RE = re.compile(r"-?[0-9]+")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-]([0-9]{2}):?([0-9]{2}))"
)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PROPERTY_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_DAY_MS = 86_400_000
MAX_STRING_LENGTH = 65_536

#: Returned by :func:`validate_input` when a property value is not a JSON string.
NOT_A_STRING = object()

# Validator kinds, precomputed per property so per-value checks are a dict lookup + branch.
K_RO, K_STR, K_EMAIL, K_NUM, K_BOOL, K_DATE, K_DT, K_ENUM, K_MULTI, K_ANY = range(10)

Problem = tuple[str, str, str]  # (property, code, message)
Validator = tuple[int, frozenset[str]]  # (kind, enumeration options)


def compile_validator(prop: Mapping[str, Any], email_property: bool) -> Validator:
    """The validator kind (and allowed options) of one property definition."""
    meta = prop.get("modificationMetadata") or {}
    if meta.get("readOnlyValue") or prop.get("calculated"):
        return K_RO, frozenset()
    kind = {"number": K_NUM, "bool": K_BOOL, "date": K_DATE, "datetime": K_DT}.get(prop.get("type") or "")
    if kind is not None:
        return kind, frozenset()
    if prop.get("type") == "enumeration":
        if prop.get("externalOptions"):
            return K_ANY, frozenset()
        values = frozenset(o["value"] for o in prop.get("options") or ())
        return (K_MULTI if prop.get("fieldType") == "checkbox" else K_ENUM), values
    return (K_EMAIL if email_property else K_STR), frozenset()


def _check_string(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    if len(value) <= MAX_STRING_LENGTH:
        return None
    return (
        "INVALID_STRING_LENGTH",
        f"Property {name} has a value of {len(value)} characters, more than the maximum of {MAX_STRING_LENGTH}.",
    )


def _check_number(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    return None if _NUMBER_RE.fullmatch(value) else ("INVALID_INTEGER", f"{value} was not a valid number.")


def _check_bool(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    if value in ("true", "false"):
        return None
    return "INVALID_BOOLEAN", f"{value} was not a valid boolean. Valid values are true and false."


def _not_an_option(value: str, options: frozenset[str]) -> tuple[str, str]:
    return "INVALID_OPTION", f"{value} was not one of the allowed options: [{', '.join(sorted(options))}]"


def _check_enum(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    return None if value in options else _not_an_option(value, options)


def _check_multi(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    for part in value.removeprefix(";").split(";"):
        if part and part not in options:
            return _not_an_option(part, options)
    return None


def _real_day(m: re.Match[str]) -> bool:
    """Whether groups 1-3 of ``m`` (year, month, day) name a day of the calendar."""
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _check_date(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    m = _DATE_RE.fullmatch(value)
    if m:
        if _real_day(m):
            return None
    elif _INT_RE.fullmatch(value):
        rem = int(value) % _DAY_MS
        if rem == 0:
            return None
        at = f"{rem // 3_600_000}:{rem // 60_000 % 60}:{rem // 1000 % 60}.{rem % 1000}"
        return "INVALID_DATE", f"{value} is at {at} UTC, not midnight!"
    return "INVALID_DATE", f"{value} was not a valid date."


def _check_datetime(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    if _INT_RE.fullmatch(value):
        return None
    m = _DATETIME_RE.fullmatch(value)
    if m and _real_day(m):
        hour, minute, second = int(m[4]), int(m[5]), int(m[6] or 0)
        off_h, off_m = int(m[7] or 0), int(m[8] or 0)
        if hour < 24 and minute < 60 and second < 60 and off_h < 24 and off_m < 60:
            return None
    return "INVALID_DATETIME", f"{value} was not a valid datetime."


def _check_email(name: str, value: str, options: frozenset[str]) -> tuple[str, str] | None:
    if len(value) <= MAX_STRING_LENGTH and _EMAIL_RE.fullmatch(value):
        return None
    return "INVALID_EMAIL", f"Email address {value} is invalid"


_CHECKS: dict[int, Callable[[str, str, frozenset[str]], tuple[str, str] | None]] = {
    K_STR: _check_string,
    K_ANY: _check_string,
    K_NUM: _check_number,
    K_BOOL: _check_bool,
    K_ENUM: _check_enum,
    K_MULTI: _check_multi,
    K_DATE: _check_date,
    K_DT: _check_datetime,
    K_EMAIL: _check_email,
}


def check_value(name: str, value: str, kind: int, options: frozenset[str]) -> tuple[str, str] | None:
    """Return ``(code, message)`` when ``value`` is not valid for the property, else None."""
    if kind == K_RO:
        return "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
    if value == "":
        return None  # always valid: clears the value
    return _CHECKS[kind](name, value, options)


def _fast_accept(kind: int, value: str, options: frozenset[str]) -> bool:
    """Inline accepts for the common kinds; :func:`check_value` explains failures."""
    if kind == K_STR:
        return len(value) <= MAX_STRING_LENGTH
    if kind == K_NUM:
        return _NUMBER_RE.fullmatch(value) is not None
    if kind == K_BOOL:
        return value in ("true", "false")
    if kind == K_ENUM:
        return value in options or value == ""
    if kind == K_DATE:
        m = _DATE_RE.fullmatch(value)
        # Days 01-28 exist in every month; other dates get the full check.
        return bool(m and "01" <= m[2] <= "12" and "01" <= m[3] <= "28")
    return False


def validate_input(
    validators: Mapping[str, Validator],
    props: dict[str, Any],
    rules: list[tuple[str, str, str]] | None,
    idp: str | None = None,
    iid: str | None = None,
) -> list[Problem] | object | None:
    """Check one input's id value (if addressed by a property) and its property values.

    Returns:
        The ``(property, code, message)`` problems, None when valid, or
        :data:`NOT_A_STRING` when a property value is not a JSON string.
    """
    problems: list[Problem] | None = None
    if idp is not None and iid is not None:
        kind, options = validators[idp]
        bad = check_value(idp, iid, kind, options)
        if bad:
            problems = [(idp, *bad)]
    for name, value in props.items():
        if type(value) is not str:
            return NOT_A_STRING
        v = validators.get(name)
        if v is None:
            bad = ("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
        elif _fast_accept(v[0], value, v[1]) or (bad := check_value(name, value, *v)) is None:
            continue
        if problems is None:
            problems = []
        problems.append((name, *bad))
    if rules:
        problems = _apply_rules(rules, props, idp, iid, problems)
    return problems


def _apply_rules(
    rules: list[tuple[str, str, str]],
    props: dict[str, Any],
    idp: str | None,
    iid: str | None,
    problems: list[Problem] | None,
) -> list[Problem] | None:
    for prop, value, message in rules:
        if props.get(prop) == value or (idp is not None and prop == idp and iid == value):
            if problems is None:
                problems = []
            if not any(p[0] == prop for p in problems):
                problems.append((prop, "VALIDATION_RULE_VIOLATION", message))
    return problems


def property_values_message(problems: list[Problem]) -> str:
    """HubSpot's "Property values were not valid: [...]" message."""
    items = [
        {"isValid": False, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg}
        for name, code, msg in problems
    ]
    return "Property values were not valid: " + json.dumps(items, separators=(",", ":"))


def not_a_string_message(props: dict[str, Any]) -> tuple[str, str]:
    """The property name and message for the first non-string property value."""
    k = next(k for k, v in props.items() if type(v) is not str)
    v = props[k]
    kind = "null" if v is None else type(v).__name__
    return k, f'Invalid input JSON: value of property "{k}" must be a string, got {kind}.'
