"""Records of a layout seen before (fields in order, each value's type) take a compiled serializer.

What it gives must be exactly what `StreamPlan.properties` gives, and a record it cannot serialize
must go the whole way, to be rejected with its reason.
"""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.hubspot.serialization import PropertySpec, build_plan

from .helpers import record, run_in_process, schema, state

OPTIONS = frozenset({"lead", "customer"})
CATALOG = {
    "email": PropertySpec("email", "string", unique=True),
    "firstname": PropertySpec("firstname", "string"),
    "phone": PropertySpec("phone", "phone_number"),
    "when": PropertySpec("when", "datetime", "date"),
    "day": PropertySpec("day", "date", "date"),
    "amount": PropertySpec("amount", "number", "number"),
    "vip": PropertySpec("vip", "bool", "booleancheckbox"),
    "stage": PropertySpec("stage", "enumeration", "select", options=OPTIONS),
    "tags": PropertySpec("tags", "enumeration", "checkbox", options=OPTIONS),
    "score": PropertySpec("score", "number", "number", read_only=True),
}
FIELDS = [*CATALOG, "declared_only", "undeclared"]  # declared_only: in the SCHEMA, not a property

# A few values of each type, bad ones among them: records of one layout with different values.
POOLS: dict[type, list] = {
    str: ["Ann", "lead", "customer", " lead ", "x" * 70_000, "true", "2024-05-01", "1.50", "nope", "",
          "2024-05-01T13:45:00+02:00", "2024-05-01T13:45:00.123Z", "2024-13-01T00:00:00Z"],
    int: [0, 7, -3, 10**20],
    float: [1.5, 2.0, float("nan"), float("inf")],
    Decimal: [Decimal("1234.56"), Decimal("1E+2000"), Decimal("-0.10")],
    bool: [True, False],
    type(None): [None],
    list: [["lead"], ["lead", "customer"], ["other"], [], [1, 2]],
    dict: [{"a": 1}, {}],
}


def records_of_one_layout():
    """Records with the same fields in the same order, each field's values of one type."""
    # Few fields, so that many records have no bad value and their layouts are learned.
    layout = st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(list(POOLS))), min_size=1,
                      max_size=4, unique_by=lambda pair: pair[0])
    return layout.flatmap(lambda fields: st.lists(
        st.tuples(*(st.sampled_from(POOLS[kind]) for _, kind in fields)).map(
            lambda values: dict(zip([name for name, _ in fields], values, strict=True)),
        ),
        min_size=1, max_size=12,
    ))


@settings(max_examples=500, deadline=None)
@given(records=st.lists(records_of_one_layout(), min_size=1, max_size=4).map(lambda groups: [r for g in groups for r in g]),
       clear_nulls=st.booleans())
def test_a_layouts_serializer_gives_what_properties_gives_or_sends_the_record_the_whole_way(records, clear_nulls):
    plan = build_plan([f for f in FIELDS if f != "undeclared"], CATALOG, "email", clear_nulls=clear_nulls)
    serializers = {}
    for rec in records:
        layout = (tuple(rec), tuple(map(type, rec.values())))
        properties, bad = plan.properties(rec, "id@example.com")
        shaped = serializers.get(layout)
        if shaped is not None:
            got = shaped(rec, "id@example.com")
            if bad:
                assert got is None  # the whole way: rejected there with its reason
            else:
                assert got == properties
                assert list(got) == list(properties)  # the same order too
        elif not bad:
            serializers[layout] = plan.shape_of(rec)
            assert serializers[layout](rec, "id@example.com") == properties


def test_the_serializer_binds_field_names_never_writes_them_into_its_code():
    odd = 'x"]; import os; os.exit(1) #'
    plan = build_plan([odd], {odd: PropertySpec(odd, "string"), "email": CATALOG["email"]}, "email")
    rec = {odd: "value", "email": "a@example.com"}
    assert plan.shape_of(rec)(rec, "a@example.com") == {odd: "value", "email": "a@example.com"}


REALISTIC = {
    "email": {"type": "string"},
    "firstname": {"type": ["string", "null"]},
    "lifecyclestage": {"type": ["string", "null"]},
    "num_orders": {"type": ["integer", "null"]},
}


def test_a_bad_value_in_a_layout_seen_before_is_rejected_with_its_reason(sim, config, tmp_path):
    path = tmp_path / "rejected.jsonl"
    good = [
        record("contacts", {"email": f"u{i}@example.com", "firstname": f"U{i}", "lifecyclestage": "lead",
                            "num_orders": i})
        for i in range(5)
    ]
    bad = [
        # the same layout as the good ones: an option HubSpot does not have, text over HubSpot's length
        record("contacts", {"email": "bad1@example.com", "firstname": "B", "lifecyclestage": "no-such-stage",
                            "num_orders": 1}),
        record("contacts", {"email": "bad2@example.com", "firstname": "y" * 70_000, "lifecyclestage": "lead",
                            "num_orders": 1}),
        # the same fields, a value of a type the SCHEMA does not allow
        record("contacts", {"email": "bad3@example.com", "firstname": "B", "lifecyclestage": "lead",
                            "num_orders": "many"}),
    ]
    messages = [schema("contacts", REALISTIC, key=["email"]), *good, *bad, *good[:1], state({"n": 1})]
    cfg = {**config, "max_rejected_records": 10, "rejected_records_path": str(path)}
    run = run_in_process(cfg, messages)
    assert run.error is None, run.error
    assert run.states == [{"n": 1}]
    landed = {o["properties"]["email"]: o["properties"] for o in sim.objects("contacts")}
    assert set(landed) == {f"u{i}@example.com" for i in range(5)}
    assert landed["u3@example.com"]["num_orders"] == "3" and landed["u3@example.com"]["lifecyclestage"] == "lead"
    rejected = {r["id"] or r["position"]: r["error"] for r in map(json.loads, path.read_text().splitlines())}
    assert rejected["bad1@example.com"]["code"] == "INVALID_VALUE"
    assert "not an option" in rejected["bad1@example.com"]["message"]
    assert rejected["bad2@example.com"]["code"] == "INVALID_VALUE"
    assert "65,536" in rejected["bad2@example.com"]["message"]
    assert rejected[8]["code"] == "SCHEMA_MISMATCH"  # record #8: the SCHEMA checked, not its layout


def test_layouts_are_compiled_when_seen_again_and_within_a_budget_of_fields(sim, config, monkeypatch):
    from target_hubspot_upsert.hubspot import serialization  # noqa: PLC0415
    from target_hubspot_upsert.singer import sinks  # noqa: PLC0415

    compiled = []
    shape_of = serialization.StreamPlan.shape_of
    monkeypatch.setattr(serialization.StreamPlan, "shape_of", lambda self, rec: compiled.append(rec) or shape_of(self, rec))
    monkeypatch.setattr(sinks, "MAX_LAYOUT_FIELDS", 8)  # two 4-field layouts
    # Four layouts (firstname and num_orders null or not), three records each; then one seen once.
    records = [
        {"email": f"u{i}@example.com", "firstname": None if i % 2 else f"U{i}",
         "lifecyclestage": "lead", "num_orders": None if i % 4 < 2 else i}
        for i in range(12)
    ]
    records.append({"email": "once@example.com", "lifecyclestage": "lead"})
    messages = [schema("contacts", REALISTIC, key=["email"]), *(record("contacts", r) for r in records), state({"n": 1})]
    run = run_in_process(config, messages)
    assert run.error is None, run.error
    assert len(sim.objects("contacts")) == 13  # every record lands, compiled or not
    assert len(compiled) == 2  # on second sight only, and no more than the budget holds
