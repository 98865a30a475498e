"""The checkpoint ledger on its own: STATE waits for the low watermark of unresolved records."""

from __future__ import annotations

from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger


def make():
    written = []
    return CheckpointLedger(written.append), written


def test_state_with_nothing_outstanding_is_written_at_once():
    ledger, written = make()
    ledger.add({"s": 1}, boundary=1)
    assert written == [{"s": 1}]


def test_state_waits_for_buffered_and_in_flight_records():
    ledger, written = make()
    ledger.buffer_started("contacts", seq=1)           # record 1 buffered
    ledger.add({"s": 1}, boundary=2)                    # STATE after record 1
    assert written == []
    ledger.moved_to_batch("contacts", None, batch_id=1, batch_min=1)
    assert written == []                                # in flight: still not acknowledged
    ledger.batch_done(1)
    assert written == [{"s": 1}]


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


def test_a_failed_batch_holds_every_later_checkpoint():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.moved_to_batch("a", None, batch_id=1, batch_min=1)   # never completes (failed)
    ledger.buffer_started("a", seq=2)
    ledger.moved_to_batch("a", None, batch_id=2, batch_min=2)
    ledger.add({"s": "after 2"}, boundary=3)
    ledger.batch_done(2)
    assert written == []


def test_records_left_in_the_buffer_keep_their_checkpoint_waiting():
    ledger, written = make()
    ledger.buffer_started("a", seq=1)
    ledger.add({"s": 1}, boundary=4)                    # records 1..3 before it
    ledger.moved_to_batch("a", remaining_min=2, batch_id=1, batch_min=1)  # 2 and 3 held back
    ledger.batch_done(1)
    assert written == []
    ledger.moved_to_batch("a", None, batch_id=2, batch_min=2)
    ledger.batch_done(2)
    assert written == [{"s": 1}]
