"""One stream's inputs on their way out: the only code that changes a stream's buffer.

A `StreamBuffer` owns merge by id (later values win, property by property; HubSpot fails a whole
request on duplicate ids), per-id order (an id in flight waits here for its batch's outcome; an
operation on an id that differs from the one buffered sends what is buffered first), the
checkpoint ledger's marks for what it holds, and the hand-off of request-sized chunks to the
dispatcher. With `skip_unchanged` it asks the change cache which inputs HubSpot already has
(`ObjectTriage.triage`, which only decides) and holds the changed ones until they fill a request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, KeysView
from typing import Protocol

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import ARCHIVE, WRITE, Batch, PendingInput
from target_hubspot_upsert.pipeline.changecache import ObjectTriage
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger
from target_hubspot_upsert.pipeline.dispatch import Dispatcher
from target_hubspot_upsert.pipeline.report import StreamStats


class ShortPath(Protocol):
    """Records of the stream waiting to be found unchanged before they would enter the buffer (`AsReadSkip`)."""

    def __len__(self) -> int:
        """Records waiting."""
        ...

    def resolve(self) -> None:
        """Count the unchanged ones; bring the others into the buffer, in input order."""
        ...


class StreamBuffer:
    """The inputs of one stream (one SCHEMA of it) not yet handed to the dispatcher."""

    def __init__(
        self, stream: str, target: ObjectTarget, *, dispatcher: Dispatcher, ledger: CheckpointLedger,
        stats: StreamStats, batch_size: int, drain_size: int, triage: ObjectTriage | None = None,
    ) -> None:
        """`batch_size` inputs go in a request; a full buffer (`drain_size` distinct ids) is drained."""
        self.stream = stream
        self.target = target
        self.object_key = target.canonical_type
        self.batch_size = batch_size
        self.drain_size = drain_size
        self._dispatcher = dispatcher
        self._ledger = ledger
        self._stats = stats
        self._triage = triage
        self._inputs: dict[str, PendingInput] = {}
        self._held: list[PendingInput] = []  # skip_unchanged: changed inputs waiting to fill a request
        self.ledger_key = f"{stream}#{id(self)}"
        self._held_key = f"{self.ledger_key}#changed"
        self._create_only = target.write_mode == "create"
        self.link_types = frozenset(spec.to_key for spec in target.associations)
        self.short_path: ShortPath | None = None  # records waiting before they would come in
        dispatcher.register(self)

    # --- what it holds ------------------------------------------------------------------

    def __len__(self) -> int:
        """Distinct ids waiting, changed inputs held to fill a request, and records on the short path."""
        return len(self._inputs) + len(self._held) + (len(self.short_path) if self.short_path is not None else 0)

    def __contains__(self, key: str) -> bool:
        """Whether an input for `key` is buffered (not yet handed over)."""
        return key in self._inputs

    def held_keys(self) -> tuple[KeysView[str], set[str]]:
        """Live views (main thread) of the keys buffered, and of those reserved (held, or in flight)."""
        return self._inputs.keys(), self._dispatcher.reserved_keys(self.object_key)

    @property
    def is_full(self) -> bool:
        """The buffer holds `drain_size` distinct ids."""
        return len(self._inputs) >= self.drain_size

    def inputs(self) -> list[PendingInput]:
        """The buffered inputs, in the order they came (a copy)."""
        return list(self._inputs.values())

    # --- adding -------------------------------------------------------------------------

    def add(self, new: PendingInput) -> None:
        """Merge `new` into the input buffered for its key (same operation), or buffer it.

        The earlier operation on an id goes first when the operations differ. Under write_mode
        create a later record is never merged into the first: the first creates the object, the
        later ones are sent after it and skipped (exists), within a batch as across batches.
        """
        entry = self._inputs.get(new.key)
        if entry is not None and (entry.op != new.op or self._create_only):
            self._send_now(new.key)
            entry = None
        if entry is not None:
            entry.properties.update(new.properties)
            entry.records.extend(new.records)
            entry.as_read = None  # a merge of records: no one record as read is its value
            if new.links:
                entry.links = [*(entry.links or ()), *new.links]
            return
        if not self._inputs:
            self._ledger.buffer_started(self.ledger_key, new.records[0].seq)
        self._inputs[new.key] = new

    def _send_now(self, key: str) -> None:
        """Hand over what is buffered, waiting until the input for `key` has left the buffer."""
        dispatcher = self._dispatcher
        while key in self._inputs:
            mark = dispatcher.finished
            self.flush(final=False)
            if key in self._inputs:
                dispatcher.wait_for_progress(since=mark)

    # --- handing over -------------------------------------------------------------------

    def flush(self, *, final: bool, cascade: bool = True, hold: bool = False) -> None:
        """Hand over what can go now; ids still in flight wait here for the next batch.

        With `final`, wait until the buffer is empty (end of input, a new SCHEMA). With `hold` (a
        drain because the buffer is full), skip_unchanged keeps changed inputs back until they fill
        a request. With `cascade`, other streams' buffers of the object types this stream's
        associations look up are handed over whole first.
        """
        if self.short_path is not None:
            self.short_path.resolve()  # those records came before anything sent from now on
        dispatcher = self._dispatcher
        while self._inputs:
            mark = dispatcher.finished
            ready = dispatcher.reserve(self.object_key, list(self._inputs.values()))
            if ready:
                if cascade and self.link_types:
                    dispatcher.flush_buffers(self.link_types, exclude=self)
                if self._triage is not None:
                    ready = self._skip_unchanged(self._triage, ready)
                for op in (WRITE, ARCHIVE):
                    self._submit([item for item in ready if item.op == op], op)
            if not self._inputs or (not final and len(self._inputs) < self.drain_size):
                break
            if not ready:
                self._send_held(everything=True)  # the ids waited for may be held here, not in flight
                dispatcher.wait_for_progress(since=mark)
        if not hold:
            self._send_held(everything=True)

    def _skip_unchanged(self, triage: ObjectTriage, ready: list[PendingInput]) -> list[PendingInput]:
        """Drop what HubSpot has, hold what changed; return what goes out as usual."""
        if self.link_types:
            # The targets' generations are compared once their writes and archives have landed.
            self._dispatcher.wait_for_types(set(self.link_types - {self.object_key}))
        triaged = triage.triage(ready)
        ledger = self._ledger
        if triaged.changed:  # registered with the ledger before they leave the buffer: nothing slips
            self._held.extend(triaged.changed)
            ledger.set_buffer(self._held_key, min(item.records[0].seq for item in self._held))
        self._remove(triaged.changed)
        if triaged.unchanged:
            self._remove(triaged.unchanged)
            merged = sum(len(item.records) - 1 for item in triaged.unchanged)
            self._stats.count_unchanged(len(triaged.unchanged), merged)
            self._dispatcher.release(self.object_key, triaged.unchanged)
        first = next(iter(self._inputs.values()), None)
        ledger.set_buffer(self.ledger_key, first.records[0].seq if first is not None else None)
        self._send_held(everything=False)
        return triaged.passthrough

    def _remove(self, items: Iterable[PendingInput]) -> None:
        for item in items:
            del self._inputs[item.key]

    def _send_held(self, *, everything: bool) -> None:
        """Hand over held inputs a full request at a time (with `everything`, the rest too)."""
        size = self.batch_size
        while self._held and (everything or len(self._held) >= size):
            chunk, self._held = self._held[:size], self._held[size:]
            remaining_min = min((item.records[0].seq for item in self._held), default=None)
            self._hand_over(chunk, WRITE, self._held_key, remaining_min)

    def _submit(self, items: list[PendingInput], op: str) -> None:
        """Hand over reserved inputs of one operation, a request's worth at a time."""
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            self._remove(chunk)
            remaining = next(iter(self._inputs.values()), None)
            self._hand_over(chunk, op, self.ledger_key, remaining.records[0].seq if remaining is not None else None)

    def _hand_over(self, chunk: list[PendingInput], op: str, ledger_key: str, remaining_min: int | None) -> None:
        """One request's worth of inputs, taken from the ledger entry `ledger_key` (`remaining_min`: its next)."""
        batch_min = min(item.records[0].seq for item in chunk)
        self._dispatcher.submit(
            self.object_key,
            functools.partial(self._make_batch, chunk=chunk, batch_min=batch_min, op=op),
            ledger_key,
            remaining_min,
        )

    def _make_batch(self, batch_id: int, *, chunk: list[PendingInput], batch_min: int, op: str) -> Batch:
        return Batch(batch_id, self.stream, self.target, chunk, batch_min, op)
