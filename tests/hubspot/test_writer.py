"""BatchWriter against a recording stand-in for HubSpotClient: every input ends with an outcome.

The stand-in answers each request through a function the test gives it, and records what was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import (
    CREATED,
    SKIPPED_NOT_FOUND,
    UPDATED,
    Batch,
    PendingInput,
    RecordRef,
)
from target_hubspot_upsert.hubspot.writer import BatchWriter, holds_values, same_value, tie_results


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Reply = Callable[[list[dict[str, Any]]], Answer]


class FakeClient:
    """Records each request; `on_write` and `on_read` answer them (default: read finds nothing)."""

    def __init__(self, on_write: Reply, on_read: Reply | None = None) -> None:
        self.on_write = on_write
        self.on_read = on_read or (lambda ids: Answer(200, {"status": "COMPLETE", "results": []}))
        self.writes: list[tuple[str, list[dict[str, Any]]]] = []
        self.reads: list[tuple[str, list[str], list[str] | None]] = []

    def batch_upsert(self, object_type: str, inputs: list[dict[str, Any]], **_: Any) -> Answer:
        return self.batch_write(object_type, "upsert", inputs)

    def batch_write(self, object_type: str, action: str, inputs: list[dict[str, Any]], **_: Any) -> Answer:
        self.writes.append((action, [dict(i) for i in inputs]))
        return self.on_write(inputs)

    def batch_read(
        self, object_type: str, id_property: str, ids: list[str], *, properties: list[str] | None = None, **_: Any,
    ) -> Answer:
        self.reads.append((id_property, list(ids), properties))
        return self.on_read([{"id": i} for i in ids])


def make_batch(values: list[dict[str, str]], *, write_mode: str = "upsert", id_property: str = "email") -> Batch:
    target = ObjectTarget("people", "contacts", id_property, write_mode)
    inputs = [
        PendingInput(
            id=v.get(id_property, "") if id_property else "", properties=dict(v),
            records=[RecordRef(n, n, {})], key=v.get(id_property) or f"row-{n}",
        )
        for n, v in enumerate(values, start=1)
    ]
    return Batch(7, "people", target, inputs, 1)


def echo(new: bool = False, skip: Callable[[dict[str, Any]], bool] = lambda i: False) -> Reply:
    """A HubSpot that writes every input and ties each result by trace id (except those `skip` names)."""
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        return Answer(200, {"status": "COMPLETE", "results": [
            {"id": f"oid-{i['properties']['email']}", "new": new, "objectWriteTraceId": i["objectWriteTraceId"],
             "properties": dict(i["properties"])}
            for i in inputs if not skip(i)
        ]})
    return reply


def traced(batch: Batch) -> tuple[dict[str, PendingInput], dict[str, PendingInput]]:
    """Give the batch's inputs their trace ids as the writer does; return them by trace and by id."""
    for index, item in enumerate(batch.inputs):
        item.trace = f"7-{index}"
    return {i.trace: i for i in batch.inputs}, {i.id: i for i in batch.inputs}


def rejected_codes(outcome) -> dict[str, str]:
    return {entry[0].id: entry[2] for entry in outcome.rejected}


PEOPLE = [{"email": "a@x.io", "firstname": "Ann"}, {"email": "b@x.io", "firstname": "Bob"}]


def test_results_tied_by_trace_id_land_as_created_or_updated():
    client = FakeClient(lambda inputs: Answer(200, {"results": [
        {"id": "11", "new": True, "objectWriteTraceId": inputs[0]["objectWriteTraceId"]},
        {"id": "22", "new": False, "objectWriteTraceId": inputs[1]["objectWriteTraceId"]},
    ]}))
    batch = make_batch(PEOPLE)
    outcome = BatchWriter(client).write(batch)
    assert [(i.result, i.object_id) for i in batch.inputs] == [(CREATED, "11"), (UPDATED, "22")]
    assert [i["objectWriteTraceId"] for i in client.writes[0][1]] == ["7-0", "7-1"]
    assert outcome.rejected == []
    assert len(client.writes) == 1
    assert client.reads == []


def test_results_without_trace_ids_are_tied_by_id_value_in_hubspots_spelling():
    client = FakeClient(lambda inputs: Answer(200, {"results": [
        {"id": "22", "new": False, "properties": {"email": "B@X.IO"}},  # emails match in any case
        {"id": "11", "new": True, "properties": {"email": "a@x.io"}},
    ]}))
    batch = make_batch(PEOPLE)
    BatchWriter(client).write(batch)
    assert [(i.result, i.object_id) for i in batch.inputs] == [(CREATED, "11"), (UPDATED, "22")]
    assert len(client.writes) == 1


def test_a_result_whose_id_value_contradicts_its_trace_ties_nothing():
    batch = make_batch(PEOPLE)
    by_trace, by_id = traced(batch)
    body = {"results": [{"id": "1", "objectWriteTraceId": "7-0", "properties": {"email": "b@x.io"}}]}
    assert tie_results(batch, body, by_trace, by_id) == []


def test_a_duplicate_or_extra_result_ties_nothing_more():
    batch = make_batch(PEOPLE)
    by_trace, by_id = traced(batch)
    first = {"id": "1", "objectWriteTraceId": "7-0"}
    body = {"results": [
        first,
        {"id": "2", "objectWriteTraceId": "7-0"},  # duplicate for input 0
        {"id": "3", "objectWriteTraceId": "9-9"},  # extra: no such input
        {"id": "4", "properties": {"email": "z@x.io"}},  # extra by value
        "not a result",
    ]}
    ties = tie_results(batch, body, by_trace, by_id)
    assert [(item.id, result) for item, result in ties] == [("a@x.io", first)]


def test_one_object_id_claimed_by_two_inputs_ties_neither():
    batch = make_batch([*PEOPLE, {"email": "c@x.io"}])
    by_trace, by_id = traced(batch)
    body = {"results": [
        {"id": "same", "objectWriteTraceId": "7-0"},
        {"id": "same", "objectWriteTraceId": "7-1"},
        {"id": "other", "objectWriteTraceId": "7-2"},
    ]}
    ties = tie_results(batch, body, by_trace, by_id)
    assert [item.id for item, _ in ties] == ["c@x.io"]


def test_inputs_tied_to_nothing_are_read_back_and_count_when_hubspot_holds_their_values():
    values = [
        {"email": "a@x.io", "amount": "1.50"},
        {"email": "Mixed@X.io", "amount": "2", "closedate": "2024-03-01T10:00:00Z"},
    ]

    def read(ids: list[dict[str, Any]]) -> Answer:
        return Answer(200, {"results": [
            {"id": "501", "createdAt": "2001-01-01T00:00:00Z", "properties": {"email": "a@x.io", "amount": "1.5"}},
            {"id": "502", "createdAt": "2001-01-01T00:00:00Z", "properties": {
                "email": "mixed@x.io", "amount": "2.0", "closedate": "1709287200000"}},
        ]})

    client = FakeClient(lambda inputs: Answer(200, {"status": "COMPLETE", "results": []}), read)
    batch = make_batch(values)
    types = {"amount": "number", "closedate": "datetime", "email": "string"}
    outcome = BatchWriter(client, property_type=lambda _target, name: types.get(name)).write(batch)
    assert outcome.rejected == []
    assert [(i.result, i.object_id) for i in batch.inputs] == [(UPDATED, "501"), (UPDATED, "502")]
    assert len(client.writes) == 1  # confirmed by reading: not sent again
    assert client.reads[0][0] == "email"
    assert client.reads[0][1] == ["a@x.io", "Mixed@X.io"]
    assert client.reads[0][2] == ["amount", "closedate", "email"]


def test_a_read_back_object_created_after_the_request_counts_as_created():
    def read(ids: list[dict[str, Any]]) -> Answer:
        return Answer(200, {"results": [{"id": "9", "createdAt": "2999-01-01T00:00:00Z",
                                         "properties": {"email": "a@x.io", "firstname": "Ann"}}]})

    client = FakeClient(lambda inputs: Answer(200, {"results": []}), read)
    batch = make_batch(PEOPLE[:1])
    BatchWriter(client).write(batch)
    assert batch.inputs[0].result == CREATED


def test_inputs_never_confirmed_are_resent_then_rejected_not_acknowledged():
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        return echo(skip=lambda i: i["properties"]["email"] == "b@x.io")(inputs)

    def read(ids: list[dict[str, Any]]) -> Answer:  # HubSpot holds an older value
        return Answer(200, {"results": [{"id": "2", "properties": {"email": "b@x.io", "firstname": "Old"}}]})

    client = FakeClient(reply, read)
    batch = make_batch(PEOPLE)
    outcome = BatchWriter(client, max_resends=2).write(batch)
    assert batch.inputs[0].result == UPDATED
    assert rejected_codes(outcome) == {"b@x.io": "NOT_ACKNOWLEDGED"}
    assert [[i["id"] for i in inputs] for _, inputs in client.writes] == [["a@x.io", "b@x.io"], ["b@x.io"], ["b@x.io"]]
    assert len(client.reads) == 3


def test_a_create_without_unique_property_is_never_sent_twice():
    client = FakeClient(lambda inputs: Answer(200, {"status": "COMPLETE", "results": []}))
    batch = make_batch([{"subject": "Call Ann"}, {"subject": "Call Bob"}], write_mode="create", id_property="")
    outcome = BatchWriter(client, max_resends=2).write(batch)
    assert len(client.writes) == 1
    assert client.writes[0][0] == "create"
    assert client.reads == []  # nothing to read it back by
    assert [entry[2] for entry in outcome.rejected] == ["NOT_ACKNOWLEDGED", "NOT_ACKNOWLEDGED"]
    assert "not sent again" in outcome.rejected[0][3]


def test_per_input_errors_reject_their_input_with_their_code():
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        good, bad = inputs
        return Answer(207, {
            "status": "COMPLETE",
            "results": [{"id": "1", "objectWriteTraceId": good["objectWriteTraceId"]}],
            "errors": [{"status": "error", "category": "VALIDATION_ERROR",  # a StandardError
                        "message": "Email address bob@ is invalid",
                        "context": {"objectWriteTraceId": [bad["objectWriteTraceId"]]},
                        "errors": [{"code": "INVALID_EMAIL", "message": "Email address bob@ is invalid"}],
                        "links": {}}],
        })

    client = FakeClient(reply)
    batch = make_batch([{"email": "a@x.io"}, {"email": "bob@"}])
    outcome = BatchWriter(client).write(batch)
    assert batch.inputs[0].result == UPDATED
    assert rejected_codes(outcome) == {"bob@": "INVALID_EMAIL"}
    entry = outcome.rejected[0]
    assert entry[1] == "VALIDATION_ERROR"
    assert "bob@" not in entry[4]  # the safe message quotes no value
    assert len(client.writes) == 1


def test_a_per_input_error_named_by_id_value_rejects_that_input():
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        return Answer(207, {"results": [{"id": "1", "objectWriteTraceId": inputs[0]["objectWriteTraceId"]}],
                            "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "no",
                                        "context": {"ids": ["B@x.io"]},
                                        "errors": [{"code": "BAD_THING", "message": "no"}]}]})

    batch = make_batch(PEOPLE)
    outcome = BatchWriter(FakeClient(reply)).write(batch)
    assert rejected_codes(outcome) == {"b@x.io": "BAD_THING"}


@pytest.mark.parametrize("bad_index", [0, 11, 15])
def test_a_whole_request_400_is_isolated_by_bisection(bad_index):
    emails = [f"p{n}@x.io" for n in range(16)]
    bad = emails[bad_index]

    def reply(inputs: list[dict[str, Any]]) -> Answer:
        if any(i["id"] == bad for i in inputs):
            return Answer(400, {"status": "error", "category": "VALIDATION_ERROR", "message": "Something is wrong"})
        return echo()(inputs)

    client = FakeClient(reply)
    batch = make_batch([{"email": e} for e in emails])
    outcome = BatchWriter(client).write(batch)
    assert rejected_codes(outcome) == {bad: "VALIDATION_ERROR"}
    assert all(i.result == UPDATED for i in batch.inputs if i.id != bad)
    assert len(client.writes) <= 1 + 2 * 4  # at most 2 requests per halving of 16
    if bad_index == 15:
        # The whole, then one left half per level: a right half whose left half landed is split
        # further without being sent whole.
        assert [len(inputs) for _, inputs in client.writes] == [16, 8, 4, 2, 1]
    sent_ok = [i["id"] for _, inputs in client.writes for i in inputs if i["id"] != bad]
    assert sorted(set(sent_ok)) == sorted(e for e in emails if e != bad)


def test_a_400_naming_the_trace_rejects_only_that_input():
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        if len(inputs) > 1:
            return Answer(400, {"category": "VALIDATION_ERROR", "message": "bad",
                                "errors": [{"code": "INVALID_OPTION",
                                            "context": {"objectWriteTraceId": ["7-0"], "propertyName": ["x"]}}]})
        return echo()(inputs)

    client = FakeClient(reply)
    batch = make_batch(PEOPLE)
    outcome = BatchWriter(client).write(batch)
    assert rejected_codes(outcome) == {"a@x.io": "INVALID_OPTION"}
    assert batch.inputs[1].result == UPDATED
    assert len(client.writes) == 2


def test_update_mode_object_not_found_is_skipped_not_rejected():
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        found, missing = inputs
        return Answer(207, {
            "results": [{"id": "1", "objectWriteTraceId": found["objectWriteTraceId"]}],
            "errors": [{"category": "OBJECT_NOT_FOUND", "message": "Could not find",
                        "context": {"objectWriteTraceId": [missing["objectWriteTraceId"]]}}],
        })

    client = FakeClient(reply)
    batch = make_batch(PEOPLE, write_mode="update")
    outcome = BatchWriter(client).write(batch)
    assert client.writes[0][0] == "update"
    assert outcome.rejected == []
    assert [i.result for i in batch.inputs] == [UPDATED, SKIPPED_NOT_FOUND]
    assert outcome.counts(batch.inputs) == {UPDATED: 1, SKIPPED_NOT_FOUND: 1, "merged": 0}


def test_update_mode_404_for_the_whole_batch_skips_every_input():
    client = FakeClient(lambda inputs: Answer(404, {"category": "OBJECT_NOT_FOUND", "message": "none found"}))
    batch = make_batch(PEOPLE, write_mode="update")
    outcome = BatchWriter(client).write(batch)
    assert outcome.rejected == []
    assert [i.result for i in batch.inputs] == [SKIPPED_NOT_FOUND, SKIPPED_NOT_FOUND]


def test_upsert_mode_object_not_found_is_a_rejection():
    def reply(inputs: list[dict[str, Any]]) -> Answer:
        return Answer(207, {"errors": [{"category": "OBJECT_NOT_FOUND", "message": "Could not find",
                                        "context": {"objectWriteTraceId": [inputs[0]["objectWriteTraceId"]]}}]})

    batch = make_batch(PEOPLE[:1])
    outcome = BatchWriter(FakeClient(reply)).write(batch)
    assert rejected_codes(outcome) == {"a@x.io": "OBJECT_NOT_FOUND"}


@pytest.mark.parametrize(("sent", "held", "kind", "name"), [
    ("1.50", "1.5", "number", "amount"),
    ("2", "2.0", "number", "amount"),
    ("100", 100, "number", "amount"),
    ("Ann@Example.COM", "ann@example.com", "string", "email"),
    ("2024-03-01T10:00:00Z", "1709287200000", "datetime", "closedate"),
    ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.000Z", "datetime", "closedate"),
    ("2024-03-01T12:00:00+02:00", "2024-03-01T10:00:00Z", "datetime", "closedate"),
    ("", None, "string", "city"),
    ("same", "same", None, "x"),
])
def test_same_value_accepts_hubspots_spelling(sent, held, kind, name):
    assert same_value(sent, held, kind, name)


@pytest.mark.parametrize(("sent", "held", "kind", "name"), [
    ("1.50", "1.51", "number", "amount"),
    ("Ann", "ann", "string", "firstname"),  # only emails compare in any case
    ("A@x.io", "a@x.io", "string", "secondary_note"),  # an "@" is no email property
    ("2024-03-01T10:00:00Z", "1709287200001", "datetime", "closedate"),
    ("x", None, "string", "city"),
    ("", "x", "string", "city"),
    ("abc", "abd", "string", "city"),
    ("01234", "1234", "string", "zip"),  # a text value keeps its leading zeros
    ("1e3", "1000", "string", "code"),
    ("1.50", "1.5", None, "amount"),  # type unknown: only the same text counts
    ("2024-03-01T10:00:00Z", "1709287200000", "string", "note"),
])
def test_same_value_refuses_other_values(sent, held, kind, name):
    assert not same_value(sent, held, kind, name)


def test_holds_values_needs_every_value_sent():
    held = {"email": "a@x.io", "amount": "1.5", "extra": "ignored"}
    assert holds_values(held, {"email": "a@x.io", "amount": "1.50"}, {"amount": "number"}.get)
    assert not holds_values(held, {"email": "a@x.io", "amount": "1.50"})  # type unknown: not the same text
    assert not holds_values(held, {"email": "a@x.io", "amount": "2"})
    assert not holds_values(held, {"city": "Oslo"})
    assert holds_values(held, {"city": ""})  # a cleared value reads back as absent
    assert not holds_values(None, {"email": "a@x.io"})


