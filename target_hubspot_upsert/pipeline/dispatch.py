"""A bounded pool of in-flight batches with per-id ordering.

The main thread keeps reading input; it blocks only when `max_concurrent_requests` batches
are in flight, which bounds memory. An id already in flight is held back in its sink's buffer
until that batch has an outcome, so each object ends with its last record's values.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from target_hubspot_upsert.core.errors import HubSpotFatalError
from target_hubspot_upsert.core.model import Batch, BatchOutcome, PendingInput
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger

logger = logging.getLogger("target_hubspot_upsert.pipeline.dispatch")


class Flushable(Protocol):
    """What the dispatcher knows of a stream's buffer."""

    object_key: str

    def __len__(self) -> int:
        """Inputs held."""
        ...

    def flush(self, *, final: bool, cascade: bool = True, hold: bool = False) -> None:
        """Hand over what it holds."""
        ...


class Dispatcher:
    """Runs batch writes on worker threads and reports outcomes."""

    def __init__(
        self,
        write: Callable[[Batch], BatchOutcome],
        on_outcome: Callable[[Batch, BatchOutcome], None],
        ledger: CheckpointLedger,
        *,
        max_concurrent: int = 8,
    ) -> None:
        """`write` runs on a worker; `on_outcome` records its result before the ledger moves on."""
        self._write = write
        self._on_outcome = on_outcome
        self.ledger = ledger
        self.max_concurrent = max_concurrent
        # Daemon threads: a stopped run exits without waiting for a request still in its retry
        # loop (an unacknowledged batch is simply not checkpointed, and is re-sent next run).
        self._queue: queue.SimpleQueue[tuple[str, Batch] | None] = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, name=f"hubspot-upsert-{n}", daemon=True)
            for n in range(max_concurrent)
        ]
        for worker in self._workers:
            worker.start()
        self._cond = threading.Condition()
        self._reserved: dict[str, set[str]] = {}  # object type -> keys of inputs reserved (held or in flight)
        self._batches: dict[int, str] = {}  # in-flight batch id -> object type
        self._finished = 0
        self._next_batch_id = 0
        self.failure: BaseException | None = None
        self._buffers: list[Flushable] = []  # every stream buffer of the run, by registration

    @property
    def in_flight(self) -> int:
        """Batches being written now."""
        return len(self._batches)

    def raise_if_failed(self) -> None:
        """Re-raise on the main thread a fatal error a worker hit."""
        if self.failure is not None:
            raise self.failure

    def reserve(self, object_key: str, items: list[PendingInput]) -> list[PendingInput]:
        """Return the items whose ids are not in flight, marking them in flight."""
        ready = []
        with self._cond:
            reserved = self._reserved.setdefault(object_key, set())
            for item in items:
                if item.key not in reserved:
                    reserved.add(item.key)
                    ready.append(item)
        return ready

    def reserved_keys(self, object_key: str) -> set[str]:
        """The keys reserved for `object_key` (held to send, or in flight): a live set, never replaced.

        Read it on the main thread, without the lock (a membership test is atomic), and never
        change it. Only the main thread reserves; workers release, so a stale answer is at worst an
        id released just now, which then takes the longer, always safe path.
        """
        with self._cond:
            return self._reserved.setdefault(object_key, set())

    def release(self, object_key: str, items: list[PendingInput]) -> None:
        """Undo `reserve` for items that will not be sent (HubSpot already has their values)."""
        with self._cond:
            reserved = self._reserved.get(object_key, set())
            for item in items:
                reserved.discard(item.key)
            self._cond.notify_all()

    @property
    def finished(self) -> int:
        """Batches finished so far: read before trying to send, to wait for progress since then."""
        return self._finished

    def wait_for_progress(self, timeout: float = 1.0, since: int | None = None) -> None:
        """Wait until some batch finishes (or `timeout`); at once if one finished after `since`."""
        with self._cond:
            if since is None or self._finished == since:
                self._cond.wait(timeout)
        self.raise_if_failed()

    def submit(
        self, object_key: str, make_batch: Callable[[int], Batch], buffer_key: str,
        remaining_min: int | None,
    ) -> None:
        """Submit a batch, blocking while the pool is full."""
        with self._cond:
            while len(self._batches) >= self.max_concurrent and self.failure is None:
                self._cond.wait(1.0)
            if self.failure is not None:
                raise self.failure
            self._next_batch_id += 1
            batch = make_batch(self._next_batch_id)
            self._batches[batch.batch_id] = object_key
            # Registered under the pool lock so the ledger never sees the records nowhere.
            self.ledger.moved_to_batch(buffer_key, remaining_min, batch.batch_id, batch.min_seq)
        self._queue.put((object_key, batch))

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run(*job)

    def _run(self, object_key: str, batch: Batch) -> None:
        try:
            if self.failure is not None:
                return  # the run is failing: do not send more (the batch is never checkpointed)
            outcome = self._write(batch)
            self._on_outcome(batch, outcome)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            with self._cond:
                if self.failure is None:
                    self.failure = exc
            # The batch never reaches the ledger, so no checkpoint can pass its records.
        else:
            self.ledger.batch_done(batch.batch_id)
        finally:
            with self._cond:
                reserved = self._reserved.get(object_key, set())
                for item in batch.inputs:
                    reserved.discard(item.key)
                self._batches.pop(batch.batch_id, None)
                self._finished += 1
                self._cond.notify_all()

    def wait_for_earlier(self, batch_id: int, object_keys: set[str]) -> None:
        """On a worker: wait until no batch submitted before `batch_id` writing one of `object_keys` is in flight.

        Associations look up objects that earlier batches (of any stream) may be writing. Only
        earlier batches are waited for, and they were queued first, so this never deadlocks.
        """
        with self._cond:
            while self.failure is None and any(
                other < batch_id and key in object_keys for other, key in self._batches.items()
            ):
                self._cond.wait(0.5)
            if self.failure is not None:
                msg = "The run is failing; not making associations."
                raise HubSpotFatalError(msg)

    def register(self, buffer: Flushable) -> None:
        """Note a stream's buffer, so streams whose associations look up its objects can flush it first."""
        self._buffers.append(buffer)

    def flush_buffers(self, object_keys: Iterable[str], *, exclude: Flushable) -> None:
        """Hand over everything other streams hold of these object types (on the main thread).

        Whole buffers, waiting for ids still in flight: the look-ups of the batch about to go out
        then see every write and archive of those objects received before it (`wait_for_earlier`
        makes them wait for those batches), whatever the timing.
        """
        for buffer in self._buffers:
            if buffer is not exclude and buffer.object_key in object_keys and len(buffer):
                buffer.flush(final=True, cascade=False)

    def flush_all(self) -> None:
        """Hand over everything every stream holds (the rejection-limit stop)."""
        for buffer in self._buffers:
            if len(buffer):
                buffer.flush(final=True)

    def wait_for_types(self, object_keys: set[str]) -> None:
        """On the main thread: wait until no batch writing one of `object_keys` is in flight."""
        with self._cond:
            while self.failure is None and any(key in object_keys for key in self._batches.values()):
                self._cond.wait(0.5)
        self.raise_if_failed()

    def join(self, timeout: float | None = None, stop: threading.Event | None = None) -> bool:
        """Wait for every in-flight batch; return False if `timeout` passed or `stop` was set first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._batches:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or (stop is not None and stop.is_set()):
                    return False
                self._cond.wait(min(remaining, 0.2) if remaining is not None else 0.2)
        return True

    def shutdown(self) -> None:
        """Let the worker threads end once the queue is empty."""
        for _ in self._workers:
            self._queue.put(None)
