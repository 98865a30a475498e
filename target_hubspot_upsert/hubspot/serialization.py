"""Turn record values into the strings HubSpot expects, by the HubSpot property's own type.

Everything here is pure: a property description in, a converter out. Converters raise
`BadValue` with the expected format when a value cannot be represented; they never guess.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

MAX_STRING_LENGTH = 65_536
#: Digits before or after the point of a number written out (1e400 has 401): beyond it, a number
#: is out of any property's range, and writing it would take unbounded time and memory (1e999999999).
MAX_NUMBER_DIGITS = 1_000
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Converter = Callable[[Any], str]


class BadValue(ValueError):
    """A value that cannot be sent as the property's type."""

    def __init__(self, expected: str, detail: str | None = None) -> None:
        """Say what format was expected and, optionally, what was wrong."""
        self.expected = expected
        self.detail = detail
        super().__init__(detail or f"expected {expected}")


# --- scalar converters -------------------------------------------------------------------


def decimal_text(d: Decimal) -> str:
    """Exact decimal text: no exponent, no trailing zeros, integers without a point."""
    shown = str(d)
    # The common case: a short fraction in plain notation whose last digit is not 0 is its own answer.
    if len(shown) <= _PLAIN_DIGITS and shown[-1] != "0" and "." in shown and "E" not in shown:
        return shown
    return _decimal_text(d)


#: Characters of a Decimal's text `decimal_text` returns as it is (far below `MAX_NUMBER_DIGITS`).
_PLAIN_DIGITS = 40


def _decimal_text(d: Decimal) -> str:
    """`decimal_text` for any Decimal."""
    if not d.is_finite():
        raise BadValue("a finite number", f"{d} is not a finite number")
    if d and abs(d.adjusted()) > MAX_NUMBER_DIGITS:
        raise BadValue(
            f"a number of at most {MAX_NUMBER_DIGITS:,} digits",
            f"a number with an exponent of {d.adjusted():,} is out of range",
        )
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def number_text(value: Any) -> str:  # noqa: ANN401 - any JSON value
    """Serialize a number property value."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is Decimal:
        return decimal_text(value)
    if isinstance(value, bool):
        raise BadValue("a number", "a boolean is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue("a finite number", f"{value} is not a finite number")
        # repr() is the shortest text that round-trips, so 0.1 stays 0.1 (not 0.1000000000000000055...).
        return decimal_text(Decimal(repr(value)))
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise BadValue("a decimal number such as 1234.5") from None
        return decimal_text(d)
    raise BadValue("a decimal number such as 1234.5")


def bool_text(value: Any) -> str:  # noqa: ANN401
    """Serialize a bool property value: booleans, or the strings true/false in any case."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered
    raise BadValue("true or false")


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _parse_datetime(value: Any, expected: str) -> datetime | date:  # noqa: ANN401
    """Read a date or date-time from Python objects, ISO 8601 text or epoch milliseconds."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise BadValue(expected, f"{value} is not a valid epoch-milliseconds time") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise BadValue(expected)


_DATETIME_EXPECTED = "an ISO 8601 date-time such as 2024-05-01T13:45:00Z"
_DATE_EXPECTED = "a date (YYYY-MM-DD) or a date-time at midnight UTC"
_OUT_OF_RANGE = "the date-time is out of range (years 1 to 9999 in UTC)"
_from_iso = datetime.fromisoformat
_date_from_iso = date.fromisoformat


_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
_HOURS_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60))


def _utc_text(dt: datetime, text: str) -> str:
    """`dt`, read from `text` by `fromisoformat`, as HubSpot's UTC text with milliseconds.

    A naive date-time is taken as UTC. With `text` laid out as `YYYY-MM-DDTHH:MM:SS...` (the
    form taps write; `fromisoformat` refused any that are not digits), the answer is cut from it:
    in UTC its first 19 characters; with an offset of whole minutes that keeps the same UTC day,
    its date and seconds around the shifted hour and minute. Anything else is converted with
    `astimezone` and written anew.
    """
    offset = dt.utcoffset()
    laid_out = text[4] == "-" and text[7] == "-" and text[10] == "T" and text[13] == ":" and text[16] == ":"
    if not offset:  # naive (taken as UTC) or UTC
        if laid_out:
            return text[:19] + _MILLIS[dt.microsecond // 1000]
    elif laid_out and not offset.microseconds:
        seconds = offset.days * 86400 + offset.seconds
        if not seconds % 60:
            minute = dt.hour * 60 + dt.minute - seconds // 60
            if 0 <= minute < 1440:
                return text[:11] + _HOURS_MINUTES[minute] + text[16:19] + _MILLIS[dt.microsecond // 1000]
    if offset:
        dt = dt.astimezone(UTC)
    return dt.isoformat()[:19] + _MILLIS[dt.microsecond // 1000]


def datetime_text(value: Any) -> str:  # noqa: ANN401
    """Serialize a datetime property value as ISO 8601 UTC with milliseconds.

    Text longer than `YYYY-MM-DDTHH:MM` (the forms taps write) is read with one `fromisoformat`
    and written by `_utc_text`; anything else takes `_datetime_text`, with the same result.
    """
    if type(value) is str:
        stripped = value.strip()
        if len(stripped) > 16:  # a date-time (a bare date, basic-format forms: below)
            try:
                parsed = _from_iso(stripped)
            except ValueError:
                raise BadValue(_DATETIME_EXPECTED) from None
            try:
                return _utc_text(parsed, stripped)
            except OverflowError:  # beyond year 1 or 9999 in UTC
                raise BadValue(_DATETIME_EXPECTED, _OUT_OF_RANGE) from None
    return _datetime_text(value)


def _datetime_text(value: Any) -> str:  # noqa: ANN401
    """`datetime_text` for any value: dates, epoch milliseconds, Python objects."""
    parsed = _parse_datetime(value, _DATETIME_EXPECTED)
    try:
        dt = (
            _as_utc(parsed)
            if isinstance(parsed, datetime)
            else datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
        )
    except OverflowError:  # beyond year 1 or 9999 in UTC
        raise BadValue(_DATETIME_EXPECTED, _OUT_OF_RANGE) from None
    # isoformat() zero-pads years before 1000, which strftime's %Y does not.
    return f"{dt.replace(microsecond=0, tzinfo=None).isoformat()}.{dt.microsecond // 1000:03d}Z"


def date_text(value: Any) -> str:  # noqa: ANN401
    """Serialize a date property value as YYYY-MM-DD; date-times must be midnight UTC."""
    if type(value) is str:
        stripped = value.strip()
        if len(stripped) == 10:  # a bare date, the form taps write
            try:
                return _date_from_iso(stripped).isoformat()
            except ValueError:
                raise BadValue(_DATE_EXPECTED) from None
    return _date_text(value)


def _date_text(value: Any) -> str:  # noqa: ANN401
    """`date_text` for any value."""
    expected = _DATE_EXPECTED
    parsed = _parse_datetime(value, expected)
    if isinstance(parsed, datetime):
        try:
            dt = _as_utc(parsed)
        except OverflowError:  # beyond year 1 or 9999 in UTC
            raise BadValue(expected, _OUT_OF_RANGE) from None
        if (dt.hour, dt.minute, dt.second, dt.microsecond) != (0, 0, 0, 0):
            raise BadValue(
                expected,
                f"{dt.isoformat()} is not midnight UTC; HubSpot date properties "
                "only hold whole days",
            )
        return dt.date().isoformat()
    return parsed.isoformat()


def text(value: Any) -> str:  # noqa: ANN401
    """Serialize any JSON value as text (string and phone_number properties)."""
    if isinstance(value, str):
        result = value
    elif isinstance(value, bool):
        result = "true" if value else "false"
    elif isinstance(value, int | float | Decimal):
        result = number_text(value)
    elif isinstance(value, datetime):
        result = datetime_text(value)
    elif isinstance(value, date):
        result = value.isoformat()
    elif isinstance(value, list | tuple):
        result = ";".join(text(item) for item in value if item is not None)
    elif isinstance(value, dict):
        result = json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    else:
        result = str(value)
    if len(result) > MAX_STRING_LENGTH:
        raise BadValue(
            f"text of at most {MAX_STRING_LENGTH:,} characters",
            f"text of {len(result):,} characters exceeds HubSpot's limit of "
            f"{MAX_STRING_LENGTH:,}",
        )
    return result


def _option_text(value: Any) -> str:  # noqa: ANN401
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, str):
        return value.strip()
    raise BadValue("an option value")


def _one_option(options: frozenset[str], check: Callable[[str], str]) -> Converter:
    """The converter of a single-select property whose options are checked."""

    def convert(value: Any) -> str:  # noqa: ANN401
        if type(value) is str and value in options:  # an option as it is: the common case
            return value
        return check(_option_text(value))

    return convert


def enumeration_converter(options: frozenset[str] | None, *, multi: bool) -> Converter:
    """Build a converter for a (multi-)select property; `options=None` means unchecked."""
    allowed_hint = (
        "one of: " + ", ".join(sorted(options)[:20]) + (" ..." if len(options) > 20 else "")
        if options
        else "an option value"
    )

    def check(option: str) -> str:
        if options is not None and option not in options:
            raise BadValue(allowed_hint, f"'{option}' is not an option of this property")
        return option

    if not multi:
        if options is None:
            # Unchecked (external or empty options): sent as given; stripping could turn a
            # value into "" and clear the property.
            return text
        return _one_option(options, check)

    def convert_multi(value: Any) -> str:  # noqa: ANN401
        items: Iterable[Any] = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) and not isinstance(value, str):
            raise BadValue("a list of option values or a ';'-separated string")
        seen: dict[str, None] = {}
        for item in items:
            if item is None:
                continue
            option = _option_text(item)
            if option:
                seen[check(option)] = None
        # Joined without a leading ';': a leading ';' would append instead of replace.
        return ";".join(seen)

    return convert_multi


# --- property catalogue ------------------------------------------------------------------


@dataclass(frozen=True)
class PropertySpec:
    """The parts of a HubSpot property definition that decide how values are written."""

    name: str
    type: str
    field_type: str = "text"
    options: frozenset[str] | None = None
    read_only: bool = False
    unique: bool = False

    @property
    def multi(self) -> bool:
        """Multi-select checkbox enumerations take several `;`-joined options."""
        return self.type == "enumeration" and self.field_type == "checkbox"

    @classmethod
    def from_hubspot(cls, prop: Mapping[str, Any]) -> PropertySpec:
        """Read a property as returned by `GET /crm/v3/properties/{objectType}`."""
        raw_options = prop.get("options") or []
        options: frozenset[str] | None = frozenset(
            str(o.get("value")) for o in raw_options if isinstance(o, Mapping)
        )
        if prop.get("externalOptions") or not options:
            options = None  # options live outside HubSpot (e.g. owners): nothing to check
        metadata = prop.get("modificationMetadata") or {}
        return cls(
            name=str(prop["name"]),
            type=str(prop.get("type") or "string"),
            field_type=str(prop.get("fieldType") or "text"),
            options=options,
            read_only=bool(metadata.get("readOnlyValue") or prop.get("calculated")),
            unique=bool(prop.get("hasUniqueValue")),
        )

    def converter(self) -> Converter:
        """The converter for values of this property."""
        if self.type == "number":
            return number_text
        if self.type == "bool":
            return bool_text
        if self.type == "date":
            return date_text
        if self.type == "datetime":
            return datetime_text
        if self.type == "enumeration":
            return enumeration_converter(self.options, multi=self.multi)
        return text


def derive_property_definition(field_name: str, field_schema: Mapping[str, Any]) -> dict[str, Any]:
    """HubSpot `type`/`fieldType` for creating a property from a stream field's JSON schema."""
    types = field_schema.get("type") or []
    if isinstance(types, str):
        types = [types]
    types = [t for t in types if t != "null"]
    fmt = field_schema.get("format")
    definition: dict[str, Any]
    if "string" in types and fmt == "date":
        definition = {"type": "date", "fieldType": "date"}
    elif "string" in types and fmt == "date-time":
        definition = {"type": "datetime", "fieldType": "date"}
    elif types and set(types) <= {"integer", "number"}:
        definition = {"type": "number", "fieldType": "number"}
    elif types == ["boolean"]:
        definition = {
            "type": "bool",
            "fieldType": "booleancheckbox",
            "options": [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ],
        }
    elif types == ["object"]:
        definition = {"type": "string", "fieldType": "textarea"}
    else:
        # Strings, arrays of strings (sent ';'-joined) and anything untyped land as text.
        definition = {"type": "string", "fieldType": "text"}
    label = field_name.replace("_", " ").strip().capitalize() or field_name
    return {"name": field_name, "label": label, **definition}


# --- per-stream plan ---------------------------------------------------------------------


@dataclass
class BadField:
    """One value of a record that cannot be sent."""

    field: str
    value: Any
    expected: str
    detail: str
    code: str = "INVALID_VALUE"

    def describe(self, *, with_value: bool = True) -> str:
        """A message naming the property and the expected format (and the value, if asked)."""
        if self.code == "UNKNOWN_PROPERTY":
            return self.detail
        hint = f"expected {self.expected}"
        head = f"property '{self.field}'" + (f" value {_shown(self.value)}" if with_value else "")
        if not with_value or self.detail == hint:
            return f"{head}: {hint}"
        return f"{head}: {self.detail} ({hint})"


_TOO_DEEP = "a value nested less deeply (objects and lists within a few hundred levels)"
_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 80, 80


def _shown(value: Any) -> str:  # noqa: ANN401 - any JSON value
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        shown = str(value)
    elif isinstance(value, date | datetime):
        shown = value.isoformat()
    elif isinstance(value, str):
        shown = repr(value[:81])
    else:
        shown = _REPR.repr(value)  # a few levels of a nested value, however deep it goes
    return shown[:77] + "..." if len(shown) > 80 else shown


#: What to do with a record field its stream's SCHEMA does not declare, decided once per field.
#: A `(property name, converter)` pair sends it; `IGNORE` leaves it out; anything else is the
#: reason every record carrying it is rejected.
IGNORE = "ignore"
FieldDecision = tuple[str, Converter] | str
UndeclaredResolver = Callable[[str, Any], FieldDecision]


def _ignore_undeclared(key: str, value: Any) -> FieldDecision:  # noqa: ANN401, ARG001
    return IGNORE


#: (converter, value type) -> what that converter does with a value of that type (`shape_of`).
_DIRECT: dict[tuple[Converter, type], Converter] = {(number_text, int): str, (number_text, Decimal): decimal_text}


#: A record layout's serializer (`StreamPlan.shape_of`): a record of that layout and its id to
#: the properties `StreamPlan.properties` gives it, or None when a value is bad (the whole way then).
Shaped = Callable[[Mapping[str, Any], str], "dict[str, str] | None"]


@dataclass
class StreamPlan:
    """Per-stream serialization, compiled once per SCHEMA so each record costs a dict walk."""

    id_field: str
    id_converter: Converter
    converters: dict[str, tuple[str, Converter]]
    clear_nulls: bool = False
    lowercase_id: bool = False
    id_in_properties: bool = True
    unknown: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    schema_fields: frozenset[str] = frozenset()  # fields the stream's SCHEMA declares
    # Fields outside the SCHEMA: decided once each by `resolve_undeclared`.
    resolve_undeclared: UndeclaredResolver = _ignore_undeclared
    ignored: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)

    def record_id(self, record: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """Return `(id, None)` or `(None, reason)` for a record's upsert id."""
        value = record.get(self.id_field)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None, f"the id property '{self.id_field}' is missing or empty"
        try:
            record_id = value if type(value) is str else self.id_converter(value)
        except BadValue as exc:
            return None, f"the id property '{self.id_field}' value is invalid: {exc.expected}"
        except RecursionError:
            return None, f"the id property '{self.id_field}' value is invalid: {_TOO_DEEP}"
        if self.lowercase_id:
            record_id = record_id.strip().lower()
            if not EMAIL_PATTERN.match(record_id):
                return None, f"the id property '{self.id_field}' is not a valid email address"
        if not record_id:
            return None, f"the id property '{self.id_field}' is empty"
        return record_id, None

    def properties(self, record: Mapping[str, Any], record_id: str) -> tuple[dict[str, str], list[BadField]]:
        """Serialize a record's properties; bad values are returned, never sent.

        The id property is carried as `record_id` (already normalized by `record_id()`).
        """
        props: dict[str, str] = {}
        bad: list[BadField] = []
        converters = self.converters
        for key, value in record.items():
            entry = converters.get(key)
            if entry is None:
                entry = self._undeclared(key, value, bad)
                if entry is None:
                    continue
            name, convert = entry
            if value is None:
                if self.clear_nulls:
                    props[name] = ""
                continue
            if convert is text and type(value) is str and len(value) <= MAX_STRING_LENGTH:
                props[name] = value  # the common case, without a call
                continue
            try:
                props[name] = convert(value)
            except BadValue as exc:
                bad.append(BadField(key, value, exc.expected, str(exc)))
            except RecursionError:  # lists of lists (joined) or objects (JSON text) nested too deeply
                bad.append(BadField(key, value, _TOO_DEEP, f"expected {_TOO_DEEP}"))
        if self.id_in_properties:
            props[self.id_field] = record_id
        return props, bad

    def shape_of(self, record: Mapping[str, Any]) -> Shaped:
        """The serializer of `record`'s layout (its fields in order, each value's type).

        Call it only once `properties` serialized `record` without a bad value: what that decided
        for each field holds for every record of the layout. The serializer is straight-line
        code, compiled here, that builds the same dict as `properties`: text sent as it is (its
        length checked), each other value through its converter, the fields left out then (not
        sent, ignored, nulls unless `clear_nulls`, the id) left out, and the id last. A value its
        converter refuses makes it answer None. Only names made here go into its source; the
        fields, properties and converters are bound to them.
        """
        bound: dict[str, Any] = {"BadValue": BadValue, "MAX": MAX_STRING_LENGTH}
        reads: list[str] = []
        long_texts: list[str] = []
        items: list[str] = []
        for i, (key, value) in enumerate(record.items()):
            entry = self.converters.get(key)
            if entry is None or (value is None and not self.clear_nulls):
                continue
            name, convert = entry
            bound[f"k{i}"], bound[f"n{i}"] = key, name
            kind = type(value)
            if value is None:
                items.append(f'n{i}: ""')
            elif convert is text and kind is str:
                reads.append(f"        v{i} = record[k{i}]")
                long_texts.append(f"len(v{i}) > MAX")
                items.append(f"n{i}: v{i}")
            elif convert is bool_text and kind is bool:
                items.append(f'n{i}: "true" if record[k{i}] else "false"')
            else:
                # What the converter would call for a value of this type, where that is one call.
                bound[f"c{i}"] = _DIRECT.get((convert, kind), convert)
                items.append(f"n{i}: c{i}(record[k{i}])")
        if self.id_in_properties:
            bound["n_id"] = self.id_field
            items.append("n_id: record_id")
        lines = ["def shaped(record, record_id):", "    try:", *reads]
        if long_texts:
            lines.append(f"        if {' or '.join(long_texts)}:\n            return None")
        lines.append("        return {" + ", ".join(items) + "}")
        lines += ["    except (BadValue, RecursionError):", "        return None"]
        exec(compile("\n".join(lines), "<layout serializer>", "exec"), bound)  # noqa: S102 - only names made here
        return cast("Shaped", bound["shaped"])

    def _undeclared(self, key: str, value: Any, bad: list[BadField]) -> tuple[str, Converter] | None:  # noqa: ANN401
        """A field without a converter: declared but not sent, ignored, refused, or decided now."""
        if key in self.schema_fields or key in self.ignored or key == self.id_field:
            return None
        reason = self.refused.get(key)
        if reason is None:
            decision = self.resolve_undeclared(key, value)
            if decision == IGNORE:
                self.ignored.add(key)
                return None
            if isinstance(decision, tuple):
                self.converters[key] = decision
                return decision
            reason = self.refused[key] = decision
        bad.append(BadField(key, None, "", reason, code="UNKNOWN_PROPERTY"))
        return None


def build_plan(
    fields: Iterable[str],
    catalog: Mapping[str, PropertySpec],
    id_property: str,
    *,
    clear_nulls: bool = False,
    resolve_undeclared: UndeclaredResolver = _ignore_undeclared,
    exclude: frozenset[str] = frozenset(),
) -> StreamPlan:
    """Compile the per-field converters for a stream against an object's catalogue.

    Fields that are not properties are listed in `unknown`; read-only and calculated
    properties in `read_only` (never sent). The id property is always kept; `id_property` ""
    means the stream has none (objects it creates have no unique property). `exclude` names
    fields that are never properties (association fields), declared or not.
    """
    converters: dict[str, tuple[str, Converter]] = {}
    unknown: list[str] = []
    read_only: list[str] = []
    fields = list(fields)
    for name in fields:
        if name.startswith("_sdc_") or name in exclude:
            continue  # Singer metadata columns (and association fields) are not HubSpot properties
        spec = catalog.get(name)
        if spec is None:
            unknown.append(name)
        elif spec.read_only and name != id_property:
            read_only.append(name)
        else:
            converters[name] = (name, spec.converter())
    id_spec = catalog.get(id_property)
    id_converter = id_spec.converter() if id_spec is not None else text
    # HubSpot matches emails exactly; its own tooling lowercases them, and so do we.
    lowercase_id = id_property == "email"
    converters.pop(id_property, None)  # the id is converted once, by record_id()
    return StreamPlan(
        id_field=id_property,
        id_converter=id_converter,
        converters=converters,
        clear_nulls=clear_nulls,
        lowercase_id=lowercase_id,
        id_in_properties=bool(id_property) and not (id_spec is not None and id_spec.read_only),
        unknown=unknown,
        read_only=read_only,
        schema_fields=frozenset(fields),
        resolve_undeclared=resolve_undeclared,
        ignored=set(exclude),
    )
