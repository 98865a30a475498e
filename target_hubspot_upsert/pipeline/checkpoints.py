"""The checkpoint ledger: STATE is written only once every record received before it is resolved.

Every record gets a sequence number when it arrives. A STATE received when the next number is
N may be written once no record numbered below N is still buffered or in flight: the lowest
such number (the low watermark) is tracked per sink buffer and per in-flight batch, which is
cheap because they change per batch, not per record. When several checkpoints become
writable at once only the newest is written: it supersedes the others.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import simplejson  # STATE only: exact decimals, in the SDK's own STATE line format


def state_json(state: Any) -> str:  # noqa: ANN401 - Singer state is any JSON
    """A STATE value as its STATE line's JSON (Decimal-exact).

    Raises ValueError, TypeError or RecursionError when it cannot be written (NaN, too deep).
    """
    return simplejson.dumps(state, use_decimal=True)


def write_state_line(state: Any) -> None:  # noqa: ANN401 - Singer state is any JSON
    """Write a STATE value to stdout, the Singer channel (Decimal-exact)."""
    sys.stdout.write(state_json(state) + "\n")
    sys.stdout.flush()


class CheckpointLedger:
    """Holds STATE messages until the records before them have outcomes."""

    def __init__(self, write: Callable[[Any], None] = write_state_line) -> None:
        """`write` emits one STATE value; called under the ledger's lock, in order."""
        self._write = write
        self._lock = threading.Lock()
        self._buffers: dict[str, int] = {}
        self._in_flight: dict[int, int] = {}
        self._pending: deque[tuple[int, int, Any]] = deque()
        self._cap = math.inf  # no checkpoint after this record number (rejection limit)
        self.written_line: int | None = None  # input line of the last STATE written

    def cap(self, seq: int) -> None:
        """Never write a checkpoint that covers record `seq` (it broke the rejection limit)."""
        with self._lock:
            self._cap = min(self._cap, seq)

    def buffer_started(self, key: str, seq: int) -> None:
        """A sink buffer went from empty to holding record `seq`."""
        with self._lock:
            self._buffers[key] = seq

    def set_buffer(self, key: str, low: int | None) -> None:
        """A buffer's lowest record is now `low` (None: empty), e.g. after records left it resolved."""
        with self._lock:
            self._set_low(key, low)
            self._release()

    def moved_to_batch(self, key: str, remaining_min: int | None, batch_id: int, batch_min: int) -> None:
        """Records left a sink buffer for an in-flight batch (atomically, so nothing slips)."""
        with self._lock:
            self._in_flight[batch_id] = batch_min
            self._set_low(key, remaining_min)

    def _set_low(self, key: str, low: int | None) -> None:
        """(Under the lock.) Note a buffer's lowest record; None: the buffer is empty."""
        if low is None:
            self._buffers.pop(key, None)
        else:
            self._buffers[key] = low

    def holding(self) -> bool:
        """Whether a STATE received is still waiting to be written."""
        with self._lock:
            return bool(self._pending)

    def batch_done(self, batch_id: int) -> None:
        """Every record of the batch has an outcome."""
        with self._lock:
            self._in_flight.pop(batch_id, None)
            self._release()

    def add(self, state: Any, boundary: int, line: int = 0) -> None:  # noqa: ANN401
        """A STATE (input line `line`) arrived after records numbered below `boundary`.

        A STATE with the same boundary as the one held before it supersedes it (only the newest
        of them could ever be written), so what is held is bounded by the records in flight,
        not by how many STATE messages the input holds.
        """
        with self._lock:
            pending = self._pending
            if pending and pending[-1][0] == boundary:
                pending[-1] = (boundary, line, state)
            else:
                pending.append((boundary, line, state))
            self._release()

    def _release(self) -> None:
        low = min(
            min(self._buffers.values(), default=math.inf),
            min(self._in_flight.values(), default=math.inf),
            self._cap,
        )
        newest = None
        while self._pending and self._pending[0][0] <= low:
            newest = self._pending.popleft()
        if newest is not None:
            self.written_line = newest[1]
            self._write(newest[2])
