"""The type look-up in front of the compiled validator accepts exactly what the validator accepts."""

from __future__ import annotations

from decimal import Decimal

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.exceptions import InvalidRecord

from target_hubspot_upsert.singer.sinks import FastValidator, field_types

TYPE_NAMES = st.sampled_from(["string", "integer", "number", "boolean", "null", "object", "array"])
FIELD_SCHEMAS = st.one_of(
    st.builds(lambda t: {"type": t}, TYPE_NAMES),
    st.builds(lambda ts: {"type": ts}, st.lists(TYPE_NAMES, min_size=1, max_size=3, unique=True)),
    st.builds(lambda t: {"type": t, "format": "date-time"}, TYPE_NAMES),
    st.builds(lambda t: {"type": t, "maxLength": 3}, TYPE_NAMES),  # not only typed: the validator decides
)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
    st.decimals(allow_nan=False, allow_infinity=False), st.just(Decimal("2.0")), st.just(3.0),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
FIELDS = ["a", "b", "c", "d"]


@settings(max_examples=400, deadline=None)
@given(
    schemas=st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, FIELD_SCHEMAS)),
    record=st.fixed_dictionaries({}, optional=dict.fromkeys([*FIELDS, "extra"], VALUES)),
)
def test_the_type_look_up_accepts_what_the_compiled_validator_accepts(schemas, record):
    schema = {"type": "object", "properties": schemas}
    compiled = fastjsonschema.compile(schema, use_formats=False, use_default=False)
    try:
        compiled(record)
        valid = True
    except fastjsonschema.JsonSchemaValueException:
        valid = False
    validator = FastValidator(schema)
    for vouched_for in (None, validator.vouches(record)):  # as the sink asks: after the type look-up, or not
        try:
            validator.validate(record, vouched_for=vouched_for)
            fast_valid = True
        except InvalidRecord:
            fast_valid = False
        assert fast_valid == valid


@pytest.mark.parametrize(
    ("schema", "simple"),
    [
        ({"type": "object", "properties": {"a": {"type": ["string", "null"], "format": "date"}}}, True),
        ({"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]}}}, False),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, False),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}, False),
        ({"properties": {"a": {"type": "string"}}}, False),
        ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}}, False),
    ],
)
def test_only_schemas_that_only_type_their_fields_take_the_look_up(schema, simple):
    assert (field_types(schema) is not None) == simple
