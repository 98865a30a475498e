"""Property-based tests: every value the serializer emits is one HubSpot accepts and reads back
as the same value; every value it refuses raises BadValue (and is then reported, never sent)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hubspot_simulator import validation as sim_validation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.hubspot.serialization import BadValue, PropertySpec, text

OPTIONS = ["alpha", "beta", "gamma", "1", "2.5", "true"]
PROPERTIES = {
    "string": {"name": "p", "type": "string", "fieldType": "text"},
    "phone_number": {"name": "p", "type": "phone_number", "fieldType": "phonenumber"},
    "number": {"name": "p", "type": "number", "fieldType": "number"},
    "bool": {"name": "p", "type": "bool", "fieldType": "booleancheckbox",
             "options": [{"value": "true", "label": "Yes"}, {"value": "false", "label": "No"}]},
    "date": {"name": "p", "type": "date", "fieldType": "date"},
    "datetime": {"name": "p", "type": "datetime", "fieldType": "date"},
    "select": {"name": "p", "type": "enumeration", "fieldType": "select",
               "options": [{"value": v, "label": v} for v in OPTIONS]},
    "checkbox": {"name": "p", "type": "enumeration", "fieldType": "checkbox",
                 "options": [{"value": v, "label": v} for v in OPTIONS]},
    "external": {"name": "p", "type": "enumeration", "fieldType": "select", "externalOptions": True, "options": []},
}

offsets = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-14 * 60, 14 * 60))
aware_datetimes = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2099, 12, 31), timezones=offsets)
naive_datetimes = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2099, 12, 31))
# Every JSON-schema type the SDK can hand a sink, in the Python types it uses.
json_values = st.one_of(
    st.booleans(),                                        # boolean
    st.integers(min_value=-(10**30), max_value=10**30),   # integer
    st.floats(allow_nan=True, allow_infinity=True),       # number (float)
    st.decimals(allow_nan=True, allow_infinity=True),     # number (SDK parses JSON floats as Decimal)
    st.text(max_size=30),                                 # string
    st.sampled_from(OPTIONS),                             # string that is an option
    st.dates(),                                           # string, format date (parsed)
    aware_datetimes, naive_datetimes,                     # string, format date-time (parsed)
    st.builds(lambda d: d.isoformat(), st.dates()),       # string, format date (raw text)
    st.builds(lambda d: d.isoformat(), aware_datetimes),  # string, format date-time (raw text)
    st.lists(st.sampled_from(OPTIONS), max_size=4),       # array of option strings
    st.lists(st.text(max_size=5), max_size=3),            # array of strings
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),  # object
)


def simulator_accepts(kind_name: str, wire: str) -> bool:
    """HubSpot's validation as the simulator implements it."""
    kind, options = sim_validation.compile_validator(PROPERTIES[kind_name], email_property=False)
    return sim_validation.check_value("p", wire, kind, options) is None


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def expected_reading(kind_name: str, value):
    """What HubSpot should read the wire value as, computed independently of the serializer."""
    if kind_name == "number":
        if isinstance(value, float):
            return Decimal(repr(value))
        return Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    if kind_name == "bool":
        return value if isinstance(value, bool) else value.strip().lower() == "true"
    if kind_name in ("date", "datetime"):
        if isinstance(value, str):
            value = date.fromisoformat(value) if len(value.strip()) == 10 else datetime.fromisoformat(value.strip())
        if isinstance(value, int):
            value = datetime.fromtimestamp(value / 1000, tz=UTC)
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        utc = as_utc(value)
        if kind_name == "date":
            return utc.date()
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    return None


def read_back(kind_name: str, wire: str):
    if kind_name == "number":
        return Decimal(wire)
    if kind_name == "bool":
        return wire == "true"
    if kind_name == "date":
        return date.fromisoformat(wire)
    if kind_name == "datetime":
        return datetime.fromisoformat(wire)
    return wire


@pytest.mark.parametrize("kind_name", sorted(PROPERTIES))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(value=json_values)
def test_emitted_values_are_accepted_and_read_back_unchanged(kind_name, value):
    convert = PropertySpec.from_hubspot(PROPERTIES[kind_name]).converter()
    try:
        wire = convert(value)
    except BadValue as exc:
        assert exc.expected  # a refusal always says what was expected
        return
    assert isinstance(wire, str)
    assert simulator_accepts(kind_name, wire), f"{value!r} -> {wire!r} rejected by HubSpot rules"
    if kind_name in ("number", "bool", "date", "datetime"):
        assert read_back(kind_name, wire) == expected_reading(kind_name, value)
    elif kind_name == "checkbox":
        items = value.split(";") if isinstance(value, str) else value
        expected = list(dict.fromkeys(i.strip() if isinstance(i, str) else text(i) for i in items))
        assert (wire.split(";") if wire else []) == [e for e in expected if e]
        assert not wire.startswith(";")  # replace, never append
    elif kind_name == "select":
        assert wire in OPTIONS
    elif isinstance(value, str):
        assert wire == value


# Values every type must accept (so the test above cannot pass by refusing everything).
@settings(max_examples=200, deadline=None)
@given(
    number=st.one_of(st.integers(), st.decimals(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False)),
    flag=st.booleans(),
    day=st.dates(),
    moment=st.one_of(aware_datetimes, naive_datetimes),
    option=st.sampled_from(OPTIONS),
    options=st.lists(st.sampled_from(OPTIONS), max_size=5),
)
def test_valid_values_of_each_type_are_always_serialized(number, flag, day, moment, option, options):
    spec = {k: PropertySpec.from_hubspot(v).converter() for k, v in PROPERTIES.items()}
    for kind_name, value in [
        ("number", number), ("bool", flag), ("date", day), ("datetime", moment),
        ("select", option), ("checkbox", options), ("string", str(number)),
    ]:
        wire = spec[kind_name](value)
        assert simulator_accepts(kind_name, wire)
    assert "e" not in spec["number"](number).lower()  # never an exponent (HubSpot rejects 1.0E7)


@pytest.mark.parametrize(
    ("kind_name", "value", "wire"),
    [
        ("number", Decimal("1.0E7"), "10000000"),
        ("number", 10.0, "10"),
        ("number", Decimal("0.1000"), "0.1"),
        ("number", "  42.50 ", "42.5"),
        ("bool", "TRUE", "true"),
        ("date", datetime(2024, 5, 1, tzinfo=UTC), "2024-05-01"),
        ("date", "2024-05-01T00:00:00Z", "2024-05-01"),
        ("datetime", datetime(2024, 5, 1, 13, 45, 7, 123456), "2024-05-01T13:45:07.123Z"),
        ("datetime", "2024-05-01T15:45:07+02:00", "2024-05-01T13:45:07.000Z"),
        ("datetime", date(2024, 5, 1), "2024-05-01T00:00:00.000Z"),
        ("checkbox", ";alpha;beta", "alpha;beta"),
        ("checkbox", ["beta", "alpha", "beta"], "beta;alpha"),
        ("external", "anything-goes", "anything-goes"),
        ("string", ["a", "b"], "a;b"),
        ("string", {"k": 1}, '{"k":1}'),
    ],
)
def test_known_conversions(kind_name, value, wire):
    assert PropertySpec.from_hubspot(PROPERTIES[kind_name]).converter()(value) == wire


@pytest.mark.parametrize(
    ("kind_name", "value"),
    [
        ("number", True), ("number", "12abc"), ("number", float("nan")), ("number", Decimal("Infinity")),
        ("bool", 1), ("bool", "yes"),
        ("date", "2024-05-01T10:00:00Z"), ("date", datetime(2024, 5, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))),
        ("date", "not a date"), ("datetime", "yesterday"),
        ("select", "delta"), ("checkbox", ["alpha", "delta"]), ("string", "x" * 65_537),
    ],
)
def test_refused_values_say_what_was_expected(kind_name, value):
    with pytest.raises(BadValue) as info:
        PropertySpec.from_hubspot(PROPERTIES[kind_name]).converter()(value)
    assert info.value.expected


# --- the fast paths give the general paths' answers ------------------------------------------

from target_hubspot_upsert.hubspot import serialization as ser  # noqa: E402

OFFSETS = st.one_of(
    st.sampled_from(["Z", "+00:00", "-00:00", "", "+02:00", "-05:30", "+14:00", "+0000", "z"]),
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)).map(
        lambda d: datetime(2000, 1, 1, tzinfo=timezone(d)).isoformat()[19:]),
)
DATETIME_TEXT = st.builds(
    lambda moment, sep, digits, offset, pad: pad + moment.isoformat(sep=sep)[:19]
    + (f".{moment.microsecond:06d}"[: digits + 1] if digits else "") + offset + pad,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.sampled_from(["T", " ", "t"]), st.integers(0, 6), OFFSETS, st.sampled_from(["", " ", "\n"]),
)
DATE_TEXT = st.dates().map(date.isoformat) | st.from_regex(r"\d{4}-\d\d-\d\d", fullmatch=True)


def _outcome(convert, value):
    try:
        return convert(value)
    except BadValue as exc:
        return ("BadValue", exc.expected, str(exc))


@settings(max_examples=500, deadline=None)
@given(value=DATETIME_TEXT | DATE_TEXT | st.text(st.sampled_from("0123456789-T:.+Z "), max_size=32))
def test_the_date_time_fast_path_gives_the_general_answer(value):
    assert _outcome(ser.datetime_text, value) == _outcome(ser._datetime_text, value)
    assert _outcome(ser.date_text, value) == _outcome(ser._date_text, value)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_date_time_beyond_the_utc_range_is_a_bad_value(value):
    for convert in (ser.datetime_text, ser.date_text):
        with pytest.raises(BadValue, match="out of range"):
            convert(value)


NUMBER_TEXT = st.from_regex(r"-?(0|[1-9][0-9]{0,45})(\.[0-9]{1,45})?([eE][+-]?[0-9]{1,4})?", fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(literal=NUMBER_TEXT | st.sampled_from(["NaN", "-Infinity", "1E+1001", "0.000", "-0.50", "1.0E-7"]))
def test_the_decimal_fast_path_gives_the_general_answer(literal):
    assert _outcome(ser.decimal_text, Decimal(literal)) == _outcome(ser._decimal_text, Decimal(literal))


@settings(max_examples=200, deadline=None)
@given(value=st.sampled_from(["lead", " lead ", "Lead", "", "customer", "x"]) | st.integers() | st.booleans())
def test_the_enumeration_fast_path_gives_the_general_answer(value):
    options = frozenset({"lead", "customer", "1", "true"})
    convert = ser.enumeration_converter(options, multi=False)
    option = ser._option_text(value)
    if option in options:
        assert convert(value) == option
    else:
        with pytest.raises(BadValue, match="is not an option"):
            convert(value)
