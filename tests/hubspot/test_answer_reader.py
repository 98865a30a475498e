"""A 2xx batch write answer read for what ties its results ties exactly what the whole answer ties.

`write_answer_reader` keeps of each result only its id, trace id, `new` and id value; whatever
HubSpot (or something in its place) answers, the writer must reach the same ties, outcomes and
per-input errors as from the answer read whole.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.http.retry import parse_body
from target_hubspot_upsert.hubspot.client import write_answer_reader
from target_hubspot_upsert.hubspot.writer import BatchWriter, IdIndex, tie_results

from .test_writer import Answer, FakeClient, make_batch, traced

PEOPLE = [{"email": "a@x.io"}, {"email": "b@x.io"}, {"email": "c@x.io"}]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=4))
TRACES = st.sampled_from(["7-0", "7-1", "7-2", "9-9", "", 70]) | SCALARS
VALUES = st.sampled_from(["a@x.io", "B@X.IO ", " c@x.io", "z@x.io", "", 5]) | SCALARS
IDS = st.sampled_from(["11", "22", "11", 33, ""]) | SCALARS
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=3), max_leaves=6)
PROPERTIES = st.one_of(
    st.fixed_dictionaries({}, optional={"email": VALUES, "firstname": JSON, "hs_object_id": IDS}),
    st.none(), st.lists(VALUES, max_size=2), st.text(max_size=3),
)
RESULT = st.fixed_dictionaries(
    {}, optional={"id": IDS, "objectWriteTraceId": TRACES, "new": st.booleans() | SCALARS, "properties": PROPERTIES,
                  "createdAt": st.text(max_size=3), "archived": st.booleans()},
)
ANSWER = st.fixed_dictionaries(
    {}, optional={
        "status": st.sampled_from(["COMPLETE", "PENDING"]) | SCALARS,
        "results": st.lists(RESULT | JSON, max_size=6) | st.none() | JSON,
        "errors": st.lists(st.fixed_dictionaries({}, optional={"message": JSON, "context": JSON}), max_size=2) | JSON,
        "numErrors": st.integers(0, 1000),
    },
)


def ties_of(body, id_property="email"):
    batch = make_batch(PEOPLE, id_property=id_property)
    by_trace, _ = traced(batch)
    body = body if isinstance(body, dict) else {}  # as BatchWriter._apply takes it
    ties = tie_results(batch, body, by_trace, IdIndex(batch.inputs, id_property))
    return [(item.trace, result.get("id"), result.get("new") is True) for item, result in ties]


@settings(max_examples=600, deadline=None)
@given(answer=ANSWER | JSON, id_property=st.sampled_from(["email", ""]))
def test_the_answer_read_for_its_ties_ties_what_the_whole_answer_ties(answer, id_property):
    content = orjson.dumps(answer)
    whole, kept = parse_body(content), write_answer_reader(id_property)(content)
    assert ties_of(kept, id_property) == ties_of(whole, id_property)
    if isinstance(whole, dict):
        assert kept.get("errors") == whole.get("errors")
        assert kept.get("status") == whole.get("status")


def test_only_what_ties_is_kept_of_an_answer_of_hubspots_shape():
    answer = {"status": "COMPLETE", "results": [
        {"id": "11", "objectWriteTraceId": "7-0", "new": True, "archived": False, "createdAt": "2024-01-01T00:00:00Z",
         "properties": {"email": "a@x.io", "firstname": "Ann", "hs_object_id": "11"}},
    ], "startedAt": "2024-01-01T00:00:00Z"}
    assert write_answer_reader("email")(orjson.dumps(answer)) == {"status": "COMPLETE", "results": [
        {"id": "11", "objectWriteTraceId": "7-0", "new": True, "properties": {"email": "a@x.io"}},
    ]}


def test_an_answer_that_is_not_json_reads_as_the_client_reads_any_answer():
    assert write_answer_reader("email")(b"<html>busy</html>") == parse_body(b"<html>busy</html>")
    assert write_answer_reader("email")(b"") is None


@pytest.mark.parametrize("malformed", [True, 5, "abc", {"id": "1"}])
def test_results_or_errors_that_are_no_array_tie_nothing_and_the_inputs_are_resolved(malformed):
    answer = {"status": "COMPLETE", "results": malformed, "errors": malformed}
    client = FakeClient(lambda inputs: Answer(200, write_answer_reader("email")(orjson.dumps(answer))))
    batch = make_batch(PEOPLE[:2])
    outcome = BatchWriter(client, max_resends=1).write(batch)  # no traceback: read back, sent again, rejected
    assert [entry[0].id for entry in outcome.rejected] == ["a@x.io", "b@x.io"]
    assert {entry[2] for entry in outcome.rejected} == {"NOT_ACKNOWLEDGED"}
    assert len(client.writes) == 2 and len(client.reads) == 2


@pytest.mark.parametrize("where", ["errors", "skipped property"])
def test_an_answer_nested_too_deeply_to_read_is_read_as_any_answer(where):
    deep = "[" * 1100 + "]" * 1100
    if where == "errors":
        content = b'{"status":"COMPLETE","results":[],"errors":' + deep.encode() + b"}"
    else:
        content = ('{"results":[{"id":"1","objectWriteTraceId":"7-0","properties":{"x":' + deep + "}}]}").encode()
    assert write_answer_reader("email")(content) == parse_body(content)  # no RecursionError
