"""CheckpointLedger on its own: a STATE is written only once every record before it has an outcome."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger, state_json


def make() -> tuple[CheckpointLedger, list[Any]]:
    written: list[Any] = []
    return CheckpointLedger(written.append), written


def test_a_state_with_nothing_outstanding_is_written_at_once_with_its_line():
    ledger, written = make()
    ledger.add({"s": 1}, boundary=1, line=7)
    assert written == [{"s": 1}]
    assert ledger.written_line == 7
    assert not ledger.holding()


def test_a_state_waits_for_every_buffer_holding_an_earlier_record():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.buffer_started("b", seq=2)
    ledger.add({"s": 1}, boundary=3, line=4)
    assert written == []
    assert ledger.holding()
    ledger.set_buffer("a", None)  # a's records resolved without a request (e.g. unchanged)
    assert written == []  # b still holds record 2
    ledger.set_buffer("b", None)
    assert written == [{"s": 1}]
    assert ledger.written_line == 4
    assert not ledger.holding()


def test_a_buffer_holding_only_later_records_does_not_hold_a_state():
    ledger, written = make()
    ledger.buffer_started("a", seq=5)
    ledger.add({"s": 1}, boundary=5)  # records 1..4 before it, none outstanding
    assert written == [{"s": 1}]


def test_a_state_waits_for_in_flight_batches_and_records_left_behind():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.add({"s": 1}, boundary=4)
    ledger.moved_to_batch("a", remaining_min=3, batch_id=1, batch_min=1)  # 1, 2 out; 3 left
    ledger.batch_done(1)
    assert written == []
    ledger.moved_to_batch("a", remaining_min=None, batch_id=2, batch_min=3)
    assert written == []  # in flight is not resolved
    ledger.batch_done(2)
    assert written == [{"s": 1}]


def test_a_batch_that_never_finishes_holds_every_later_state():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.moved_to_batch("a", None, batch_id=1, batch_min=1)  # fails: never done
    ledger.buffer_started("a", seq=2)
    ledger.moved_to_batch("a", None, batch_id=2, batch_min=2)
    ledger.add({"s": "after 2"}, boundary=3)
    ledger.batch_done(2)
    assert written == []
    assert ledger.holding()


def test_only_the_newest_of_several_writable_states_is_written():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.add({"s": 1}, boundary=2, line=2)
    ledger.buffer_started("b", seq=2)
    ledger.add({"s": 2}, boundary=3, line=4)
    ledger.add({"s": 3}, boundary=3 + 1, line=6)  # no record 3 anywhere: only waits for 1 and 2
    ledger.set_buffer("b", None)
    assert written == []
    ledger.set_buffer("a", None)
    assert written == [{"s": 3}]
    assert ledger.written_line == 6


def test_checkpoints_release_in_order_and_only_the_newest_of_a_group():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.add({"s": 1}, boundary=2)
    ledger.buffer_started("b", seq=2)
    ledger.add({"s": 2}, boundary=3)
    ledger.moved_to_batch("b", None, batch_id=1, batch_min=2)
    ledger.moved_to_batch("a", None, batch_id=2, batch_min=1)
    ledger.batch_done(1)                                # record 2 done, record 1 still in flight
    assert written == []
    ledger.batch_done(2)
    assert written == [{"s": 2}]                        # {"s": 1} is superseded, not written late


def test_states_behind_an_unresolved_record_are_released_in_order():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.add({"s": 1}, boundary=2)
    ledger.buffer_started("b", seq=2)
    ledger.add({"s": 2}, boundary=3)
    ledger.set_buffer("a", None)
    assert written == [{"s": 1}]  # record 2 still buffered: the later STATE waits
    ledger.set_buffer("b", None)
    assert written == [{"s": 1}, {"s": 2}]


def test_a_state_at_the_same_boundary_supersedes_the_one_held():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    for n in range(1000):
        ledger.add({"s": n}, boundary=2, line=n)
    assert len(ledger._pending) == 1  # bounded by records, not by STATE messages
    ledger.add({"s": "later"}, boundary=3, line=2000)
    assert len(ledger._pending) == 2
    ledger.set_buffer("a", None)
    assert written == [{"s": "later"}]
    assert ledger.written_line == 2000


def test_the_held_state_of_a_boundary_is_the_newest_one():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.add({"s": "first"}, boundary=2, line=1)
    ledger.add({"s": "second"}, boundary=2, line=2)
    ledger.set_buffer("a", None)
    assert written == [{"s": "second"}]
    assert ledger.written_line == 2


def test_cap_stops_every_state_covering_the_capped_record():
    ledger, written = make()
    ledger.cap(5)  # record 5 broke the rejection limit
    ledger.add({"s": "before 5"}, boundary=5)  # records 1..4: allowed
    assert written == [{"s": "before 5"}]
    ledger.add({"s": "after 5"}, boundary=6)
    ledger.add({"s": "much later"}, boundary=50)
    assert written == [{"s": "before 5"}]
    assert ledger.holding()


def test_cap_keeps_the_lowest_record():
    ledger, written = make()
    ledger.cap(3)
    ledger.cap(9)  # a later, higher cap does not lift the earlier one
    ledger.add({"s": 1}, boundary=3)
    assert written == [{"s": 1}]
    ledger.add({"s": 2}, boundary=4)
    assert written == [{"s": 1}]


def test_state_json_keeps_decimals_exact():
    assert state_json({"v": Decimal("1.10")}) == '{"v": 1.10}'
