"""StreamBuffer with a real Dispatcher and CheckpointLedger: merge, per-id order, ledger marks, hand-off.

The dispatcher's `write` is a recording stand-in (no HTTP); with one worker, batches are written
in the order they were handed over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import (
    ARCHIVE,
    UPDATED,
    WRITE,
    Batch,
    BatchOutcome,
    PendingInput,
    RecordRef,
)
from target_hubspot_upsert.pipeline.buffer import StreamBuffer
from target_hubspot_upsert.pipeline.changecache import Triaged
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger
from target_hubspot_upsert.pipeline.dispatch import Dispatcher
from target_hubspot_upsert.pipeline.report import StreamStats

from .waiting import WAIT, wait_until


def record(seq: int, key: str, op: str = WRITE, **properties: str) -> PendingInput:
    """Record number `seq` for `key` as the sink would buffer it."""
    return PendingInput(
        id=key, properties={"email": key, **properties}, records=[RecordRef(seq, seq, {"n": seq})], op=op,
    )


class Sent:
    """One batch as the writer saw it."""

    def __init__(self, batch: Batch, finished_before: list[int]) -> None:
        self.batch_id = batch.batch_id
        self.op = batch.op
        self.keys = [item.key for item in batch.inputs]
        self.properties = [dict(item.properties) for item in batch.inputs]
        self.seqs = [[ref.seq for ref in item.records] for item in batch.inputs]
        self.finished_before = finished_before


class FakeTriage:
    """Stands in for ObjectTriage: decides by key which ready inputs are unchanged or not looked up."""

    def __init__(self, unchanged: set[str], passthrough: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.unchanged = unchanged
        self.passthrough = passthrough
        self.asked: list[list[str]] = []

    def triage(self, ready: list[PendingInput]) -> Triaged:
        self.asked.append([item.key for item in ready])
        return Triaged(
            unchanged=[i for i in ready if i.key in self.unchanged],
            changed=[i for i in ready if i.key not in self.unchanged and i.key not in self.passthrough],
            passthrough=[i for i in ready if i.key in self.passthrough],
        )


class Rig:
    def __init__(
        self, *, batch_size: int = 2, drain_size: int = 4, write_mode: str = "upsert", max_concurrent: int = 1,
        triage: FakeTriage | None = None, gated: bool = False,
    ) -> None:
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.states: list[Any] = []
        self.ledger = CheckpointLedger(self.states.append)
        self.sent: list[Sent] = []
        self.finished: list[int] = []
        self.dispatcher = Dispatcher(self.write, self.on_outcome, self.ledger, max_concurrent=max_concurrent)
        self.stats = StreamStats("people", "contacts")
        target = ObjectTarget("people", "contacts", "email", write_mode)
        self.buffer = StreamBuffer(
            "people", target, dispatcher=self.dispatcher, ledger=self.ledger, stats=self.stats,
            batch_size=batch_size, drain_size=drain_size, triage=triage,  # type: ignore[arg-type]
        )

    def write(self, batch: Batch) -> BatchOutcome:
        self.sent.append(Sent(batch, list(self.finished)))
        assert self.gate.wait(WAIT)
        for item in batch.inputs:
            item.result = UPDATED
        return BatchOutcome()

    def on_outcome(self, batch: Batch, outcome: BatchOutcome) -> None:
        self.finished.append(batch.batch_id)

    def finish(self) -> None:
        self.buffer.flush(final=True)
        assert self.dispatcher.join(timeout=WAIT)


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.gate.set()
        rig.dispatcher.shutdown()


@pytest.fixture
def make(rigs) -> Callable[..., Rig]:
    def build(**kwargs: Any) -> Rig:
        rig = Rig(**kwargs)
        rigs.append(rig)
        return rig

    return build


def test_records_for_one_id_merge_property_by_property_later_values_winning(make):
    rig = make()
    rig.buffer.add(record(1, "a@x.io", firstname="Ann", city="Oslo"))
    rig.buffer.add(record(2, "b@x.io", firstname="Bob"))
    rig.buffer.add(record(3, "a@x.io", city="Bergen"))
    assert len(rig.buffer) == 2
    rig.finish()
    assert [s.keys for s in rig.sent] == [["a@x.io", "b@x.io"]]
    assert rig.sent[0].properties[0] == {"email": "a@x.io", "firstname": "Ann", "city": "Bergen"}
    assert rig.sent[0].seqs == [[1, 3], [2]]  # both records of a@x.io ride with its input


def test_merged_records_keep_every_association_asked_for(make):
    rig = make()
    first, second = record(1, "a@x.io"), record(2, "a@x.io")
    first.links = ["link-1"]  # type: ignore[list-item]
    second.links = ["link-2"]  # type: ignore[list-item]
    rig.buffer.add(first)
    rig.buffer.add(record(3, "a@x.io"))  # asks for none
    rig.buffer.add(second)
    assert rig.buffer.inputs()[0].links == ["link-1", "link-2"]


def test_a_different_operation_on_an_id_sends_what_is_buffered_first(make):
    rig = make(drain_size=10)
    rig.buffer.add(record(1, "a@x.io", firstname="Ann"))
    rig.buffer.add(record(2, "b@x.io"))
    rig.buffer.add(record(3, "a@x.io", op=ARCHIVE))
    assert "a@x.io" in rig.buffer
    assert rig.buffer.inputs()[0].op == ARCHIVE
    rig.finish()
    assert [(s.op, s.keys) for s in rig.sent] == [
        (WRITE, ["a@x.io", "b@x.io"]),
        (ARCHIVE, ["a@x.io"]),
    ]
    assert 1 in rig.sent[1].finished_before  # the archive went after the write's outcome


def test_create_mode_never_merges_a_later_record_into_the_first(make):
    rig = make(write_mode="create", drain_size=10)
    rig.buffer.add(record(1, "a@x.io", firstname="First"))
    rig.buffer.add(record(2, "a@x.io", firstname="Second"))
    rig.finish()
    assert [s.keys for s in rig.sent] == [["a@x.io"], ["a@x.io"]]
    assert [s.properties[0]["firstname"] for s in rig.sent] == ["First", "Second"]
    assert [s.seqs for s in rig.sent] == [[[1]], [[2]]]
    assert 1 in rig.sent[1].finished_before


def test_upsert_mode_merges_the_same_records(make):
    rig = make(drain_size=10)
    rig.buffer.add(record(1, "a@x.io", firstname="First"))
    rig.buffer.add(record(2, "a@x.io", firstname="Second"))
    rig.finish()
    assert [s.seqs for s in rig.sent] == [[[1, 2]]]


def test_is_full_counts_distinct_ids_against_drain_size(make):
    rig = make(drain_size=3)
    rig.buffer.add(record(1, "a@x.io"))
    rig.buffer.add(record(2, "b@x.io"))
    rig.buffer.add(record(3, "a@x.io"))  # merged: still two ids
    assert not rig.buffer.is_full
    assert len(rig.buffer) == 2
    rig.buffer.add(record(4, "c@x.io"))
    assert rig.buffer.is_full
    rig.finish()
    assert not rig.buffer.is_full
    assert len(rig.buffer) == 0


def test_the_buffer_is_handed_over_in_request_sized_chunks_in_order(make):
    rig = make(batch_size=2, drain_size=10)
    keys = [f"{n}@x.io" for n in range(5)]
    for seq, key in enumerate(keys, start=1):
        rig.buffer.add(record(seq, key))
    rig.finish()
    assert [s.keys for s in rig.sent] == [keys[0:2], keys[2:4], keys[4:5]]
    assert sorted(rig.finished) == [s.batch_id for s in rig.sent]


def test_the_ledger_holds_a_state_while_its_records_are_buffered_or_in_flight(make):
    rig = make(gated=True)
    rig.buffer.add(record(1, "a@x.io"))
    rig.ledger.add({"after": 1}, boundary=2)
    assert rig.states == []  # buffer_started: record 1 is buffered
    rig.buffer.flush(final=False)
    assert len(rig.buffer) == 0
    assert wait_until(lambda: len(rig.sent) == 1)
    assert rig.states == []  # moved_to_batch: record 1 is in flight
    rig.gate.set()
    assert rig.dispatcher.join(timeout=WAIT)
    assert rig.states == [{"after": 1}]


def test_a_state_waits_for_the_records_left_in_the_buffer(make):
    rig = make(batch_size=1, drain_size=10)
    rig.buffer.add(record(1, "a@x.io"))
    rig.buffer.add(record(2, "b@x.io"))
    rig.ledger.add({"after": 2}, boundary=3)
    # Only what is reserved goes: hold b back by putting it in flight for another stream's sake.
    blocker = record(99, "b@x.io")
    assert rig.dispatcher.reserve("contacts", [blocker]) == [blocker]
    rig.buffer.flush(final=False)
    assert "b@x.io" in rig.buffer
    assert rig.dispatcher.join(timeout=WAIT)
    assert [s.keys for s in rig.sent] == [["a@x.io"]]
    assert rig.states == []  # record 2 is still buffered
    rig.dispatcher.release("contacts", [blocker])
    rig.finish()
    assert rig.states == [{"after": 2}]


def test_an_id_in_flight_is_held_back_until_its_batch_has_an_outcome(make):
    rig = make(max_concurrent=2, gated=True, drain_size=10)
    rig.buffer.add(record(1, "a@x.io", city="Oslo"))
    rig.buffer.flush(final=False)
    assert wait_until(lambda: len(rig.sent) == 1)
    rig.buffer.add(record(2, "a@x.io", city="Bergen"))
    rig.buffer.add(record(3, "b@x.io"))
    rig.buffer.flush(final=False)
    assert wait_until(lambda: len(rig.sent) == 2)
    assert rig.sent[1].keys == ["b@x.io"]  # a@x.io is in flight: it waits
    assert "a@x.io" in rig.buffer
    rig.gate.set()
    rig.finish()
    assert [s.keys for s in rig.sent] == [["a@x.io"], ["b@x.io"], ["a@x.io"]]
    assert rig.sent[2].properties[0]["city"] == "Bergen"
    assert rig.sent[0].batch_id in rig.sent[2].finished_before


def test_skip_unchanged_counts_and_releases_unchanged_inputs_without_a_request(make):
    triage = FakeTriage(unchanged={"a@x.io"})
    rig = make(triage=triage)
    rig.buffer.add(record(1, "a@x.io", city="Oslo"))
    rig.buffer.add(record(2, "a@x.io", city="Oslo"))  # merged into one unchanged input
    rig.ledger.add({"after": 2}, boundary=3)
    assert rig.states == []
    rig.buffer.flush(final=False, hold=True)
    assert rig.sent == []
    assert (rig.stats.unchanged, rig.stats.merged) == (1, 1)
    assert rig.states == [{"after": 2}]  # resolved without a request
    assert len(rig.buffer) == 0
    again = record(3, "a@x.io")
    assert rig.dispatcher.reserve("contacts", [again]) == [again]  # released, not left in flight


def test_skip_unchanged_holds_changed_inputs_until_they_fill_a_request(make):
    triage = FakeTriage(unchanged={"u@x.io"}, passthrough={"p@x.io"})
    rig = make(triage=triage, batch_size=2, drain_size=3)
    rig.buffer.add(record(1, "c1@x.io", city="Oslo"))
    rig.buffer.add(record(2, "u@x.io"))
    rig.buffer.add(record(3, "p@x.io"))
    rig.ledger.add({"after": 3}, boundary=4)
    rig.buffer.flush(final=False, hold=True)
    assert triage.asked == [["c1@x.io", "u@x.io", "p@x.io"]]
    assert rig.dispatcher.join(timeout=WAIT)
    assert [s.keys for s in rig.sent] == [["p@x.io"]]  # passthrough goes as usual
    assert rig.stats.unchanged == 1
    assert len(rig.buffer) == 1  # c1 held: half a request
    assert "c1@x.io" not in rig.buffer  # held, no longer buffered by id
    assert rig.states == []  # the held changed input keeps the STATE waiting
    rig.buffer.add(record(4, "c2@x.io"))
    rig.buffer.flush(final=False, hold=True)
    assert rig.dispatcher.join(timeout=WAIT)
    assert [s.keys for s in rig.sent] == [["p@x.io"], ["c1@x.io", "c2@x.io"]]  # a full request
    assert len(rig.buffer) == 0
    assert rig.states == [{"after": 3}]


def test_skip_unchanged_sends_the_held_rest_on_a_final_flush(make):
    triage = FakeTriage(unchanged=set())
    rig = make(triage=triage, batch_size=3, drain_size=10)
    rig.buffer.add(record(1, "c1@x.io"))
    rig.buffer.flush(final=False, hold=True)
    assert rig.dispatcher.join(timeout=WAIT)
    assert rig.sent == []
    assert len(rig.buffer) == 1
    rig.ledger.add({"after": 1}, boundary=2)
    assert rig.states == []
    rig.finish()
    assert [s.keys for s in rig.sent] == [["c1@x.io"]]
    assert rig.states == [{"after": 1}]
