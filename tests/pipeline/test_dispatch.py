"""Dispatcher on its own: bounded in-flight batches, per-id reservations, failures handed to the main thread.

Writes are stand-ins gated by Events; every wait is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from target_hubspot_upsert.core.errors import HubSpotFatalError
from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import UPDATED, Batch, BatchOutcome, PendingInput, RecordRef
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger
from target_hubspot_upsert.pipeline.dispatch import Dispatcher

from .waiting import WAIT, in_background, wait_until

TARGET = ObjectTarget("people", "contacts", "email")



def pending(seq: int, key: str) -> PendingInput:
    return PendingInput(id=key, properties={"email": key}, records=[RecordRef(seq, seq, {})])


class Rig:
    """A dispatcher whose writes wait for `gate`, recording what it was asked and told."""

    def __init__(self, max_concurrent: int = 2, fail: BaseException | None = None) -> None:
        self.gate = threading.Event()
        self.states: list[Any] = []
        self.ledger = CheckpointLedger(self.states.append)
        self.started: list[int] = []
        self.outcomes: list[int] = []
        self.fail = fail
        self.dispatcher = Dispatcher(self.write, self.on_outcome, self.ledger, max_concurrent=max_concurrent)

    def write(self, batch: Batch) -> BatchOutcome:
        self.started.append(batch.batch_id)
        assert self.gate.wait(WAIT)
        if self.fail is not None:
            raise self.fail
        for item in batch.inputs:
            item.result = UPDATED
        return BatchOutcome()

    def on_outcome(self, batch: Batch, outcome: BatchOutcome) -> None:
        self.outcomes.append(batch.batch_id)

    def submit(self, seq: int, key: str, object_key: str = "contacts") -> None:
        item = pending(seq, key)
        self.ledger.buffer_started(f"buf-{seq}", seq)
        self.dispatcher.submit(
            object_key, lambda batch_id: Batch(batch_id, "people", TARGET, [item], seq), f"buf-{seq}", None,
        )


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.gate.set()
    made.dispatcher.shutdown()


def test_submit_blocks_while_max_concurrent_batches_are_in_flight(rig):
    rig.submit(1, "a@x.io")
    rig.submit(2, "b@x.io")
    assert wait_until(lambda: len(rig.started) == 2)
    assert rig.dispatcher.in_flight == 2
    third_submitted, thread = in_background(lambda: rig.submit(3, "c@x.io"))
    assert not third_submitted.wait(0.1)  # the pool is full: the main thread waits
    assert rig.dispatcher.in_flight == 2
    rig.gate.set()
    assert third_submitted.wait(WAIT)
    thread.join(WAIT)
    assert rig.dispatcher.join(timeout=WAIT)
    assert sorted(rig.outcomes) == [1, 2, 3]
    assert rig.dispatcher.in_flight == 0


def test_a_finished_batch_releases_its_checkpoint(rig):
    rig.submit(1, "a@x.io")
    rig.ledger.add({"s": 1}, boundary=2)
    assert rig.states == []
    rig.gate.set()
    assert rig.dispatcher.join(timeout=WAIT)
    assert rig.states == [{"s": 1}]


def test_reserve_hands_out_each_id_once_per_object_type(rig):
    d = rig.dispatcher
    a, b = pending(1, "a@x.io"), pending(2, "b@x.io")
    assert d.reserve("contacts", [a]) == [a]
    again = pending(3, "a@x.io")
    assert d.reserve("contacts", [again, b]) == [b]  # a is in flight
    assert d.reserve("companies", [again]) == [again]  # same id, another object type
    d.release("contacts", [a])
    assert d.reserve("contacts", [again]) == [again]


def test_ids_of_a_finished_batch_can_be_reserved_again(rig):
    d = rig.dispatcher
    item = pending(1, "a@x.io")
    assert d.reserve("contacts", [item]) == [item]
    d.submit("contacts", lambda batch_id: Batch(batch_id, "people", TARGET, [item], 1), "buf", None)
    assert d.reserve("contacts", [pending(2, "a@x.io")]) == []
    rig.gate.set()
    assert d.join(timeout=WAIT)
    later = pending(3, "a@x.io")
    assert d.reserve("contacts", [later]) == [later]


def test_wait_for_progress_returns_at_once_when_a_batch_finished_since_the_mark(rig):
    d = rig.dispatcher
    mark = d.finished
    rig.gate.set()
    rig.submit(1, "a@x.io")
    assert d.join(timeout=WAIT)
    assert d.finished == mark + 1
    started = time.monotonic()
    d.wait_for_progress(timeout=30.0, since=mark)
    assert time.monotonic() - started < WAIT  # generous: it must not sit out its 30 s timeout


def test_wait_for_earlier_waits_only_for_earlier_batches_of_the_types_named(rig):
    d = rig.dispatcher
    rig.submit(1, "a@x.io", object_key="companies")  # batch 1, gated
    assert wait_until(lambda: rig.started == [1])
    d.wait_for_earlier(1, {"companies"})  # nothing before batch 1: returns at once
    d.wait_for_earlier(2, {"deals"})  # batch 1 writes companies, not deals
    done, thread = in_background(lambda: d.wait_for_earlier(2, {"companies"}))  # a later batch
    assert not done.wait(0.1)
    rig.gate.set()
    assert done.wait(WAIT)
    thread.join(WAIT)
    assert rig.outcomes == [1]


def test_wait_for_earlier_refuses_once_the_run_is_failing():
    rig = Rig(fail=RuntimeError("boom"))
    try:
        rig.submit(1, "a@x.io")
        rig.gate.set()
        assert rig.dispatcher.join(timeout=WAIT)
        with pytest.raises(HubSpotFatalError):
            rig.dispatcher.wait_for_earlier(5, {"contacts"})
    finally:
        rig.dispatcher.shutdown()


class FakeBuffer:
    def __init__(self, object_key: str, size: int) -> None:
        self.object_key = object_key
        self.size = size
        self.calls: list[dict[str, bool]] = []

    def __len__(self) -> int:
        return self.size

    def flush(self, *, final: bool, cascade: bool = True, hold: bool = False) -> None:
        self.calls.append({"final": final, "cascade": cascade, "hold": hold})


def test_flush_buffers_hands_over_other_non_empty_buffers_of_the_types_named(rig):
    d = rig.dispatcher
    me = FakeBuffer("companies", 3)
    other = FakeBuffer("companies", 2)
    empty = FakeBuffer("companies", 0)
    deals = FakeBuffer("deals", 4)
    for buffer in (me, other, empty, deals):
        d.register(buffer)
    d.flush_buffers({"companies"}, exclude=me)
    assert me.calls == []
    assert other.calls == [{"final": True, "cascade": False, "hold": False}]
    assert empty.calls == []
    assert deals.calls == []
    d.flush_all()
    assert me.calls == [{"final": True, "cascade": True, "hold": False}]
    assert deals.calls == [{"final": True, "cascade": True, "hold": False}]
    assert empty.calls == []


def test_a_worker_failure_is_raised_on_the_main_thread_and_holds_the_checkpoint():
    boom = RuntimeError("HubSpot said no")
    rig = Rig(fail=boom)
    try:
        rig.submit(1, "a@x.io")
        rig.ledger.add({"s": 1}, boundary=2)
        rig.dispatcher.raise_if_failed()  # nothing failed yet
        rig.gate.set()
        assert rig.dispatcher.join(timeout=WAIT)
        with pytest.raises(RuntimeError, match="HubSpot said no") as caught:
            rig.dispatcher.raise_if_failed()
        assert caught.value is boom
        with pytest.raises(RuntimeError):
            rig.dispatcher.wait_for_progress(timeout=0.01)
        with pytest.raises(RuntimeError):
            rig.submit(2, "b@x.io")  # no more batches once the run is failing
        assert rig.outcomes == []
        assert rig.states == []  # the failed batch's records were never resolved
        assert rig.ledger.holding()
    finally:
        rig.dispatcher.shutdown()


def test_join_gives_up_after_its_timeout_or_when_stopped(rig):
    d = rig.dispatcher
    rig.submit(1, "a@x.io")
    assert wait_until(lambda: rig.started == [1])
    assert d.join(timeout=0.05) is False
    stop = threading.Event()
    stop.set()
    assert d.join(timeout=WAIT, stop=stop) is False
    rig.gate.set()
    assert d.join(timeout=WAIT) is True
    assert rig.outcomes == [1]


def test_join_with_nothing_in_flight_returns_at_once(rig):
    assert rig.dispatcher.join(timeout=0.0) is True


def test_wait_for_types_waits_for_batches_of_those_types(rig):
    d = rig.dispatcher
    rig.submit(1, "a@x.io", object_key="companies")
    assert wait_until(lambda: rig.started == [1])
    d.wait_for_types({"deals"})  # not writing deals: at once
    done, thread = in_background(lambda: d.wait_for_types({"companies"}))
    assert not done.wait(0.1)
    rig.gate.set()
    assert done.wait(WAIT)
    thread.join(WAIT)
