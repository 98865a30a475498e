"""Rejected records: the optional JSONL report, the counts by error code, and the limit."""

from __future__ import annotations

import heapq
import json
import logging
import math
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from target_hubspot_upsert.core.model import Rejection

logger = logging.getLogger("target_hubspot_upsert.pipeline.rejects")
IDS_PER_CODE = 5


#: Levels of a rejected record kept in the file when it nests too deeply for JSON encoding.
KEPT_LEVELS = 100


def _plain(value: Any, depth: int = 0) -> Any:  # noqa: ANN401 - any JSON value
    """`value` with NaN and Infinity as text and levels past `KEPT_LEVELS` cut, so JSON can hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if not isinstance(value, dict | list):
        return value
    if depth >= KEPT_LEVELS:
        return f"(nested more than {KEPT_LEVELS} levels deep: not kept)"
    if isinstance(value, dict):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    return [_plain(item, depth + 1) for item in value]


def json_line(line: dict[str, Any]) -> str:
    """One line of the rejected-records file: valid JSON whatever the record held.

    ASCII escapes keep lone surrogates valid UTF-8; NaN and Infinity (which JSON lacks) become
    text, and a record nested too deeply for the encoder is cut at `KEPT_LEVELS`.
    """
    try:
        return json.dumps(line, default=str, ensure_ascii=True, allow_nan=False)
    except (ValueError, RecursionError):
        return json.dumps(_plain(line), default=str, ensure_ascii=True, allow_nan=False)


class RejectionLog:
    """Collects rejections from every thread; past `max_rejected` it stops the run."""

    def __init__(self, path: str | None, max_rejected: int, *, log_values: bool = False) -> None:
        """Open the report (append-only) when a path is configured.

        Record values (ids included) go to that file only; logs get them with `log_values`.
        """
        self.path = path
        self.max_rejected = max_rejected
        self.log_values = log_values
        self.count = 0
        self._by_code: dict[str, list[tuple[str, str]]] = defaultdict(list)  # (record, message)
        self._count_by_code: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._lowest: list[int] = []  # max-heap (negated) of the smallest max_rejected + 1 seqs
        self._file: IO[str] | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    @property
    def limit_passed(self) -> bool:
        """More rejections than `max_rejected_records` allows: the run stops taking input."""
        return self.count > self.max_rejected

    def add(self, rejection: Rejection) -> int | None:
        """Record one rejection; return the checkpoint cap once the limit is passed.

        The cap is the run number of the record that breaks the limit in input order: the
        (max + 1)-th smallest among the rejected ones. A checkpoint after it is never written,
        however the batches completed. It can only move earlier as rejections arrive.
        """
        with self._lock:
            self.count += 1
            heap = self._lowest
            if len(heap) <= self.max_rejected:
                heapq.heappush(heap, -rejection.seq)
            elif rejection.seq < -heap[0]:
                heapq.heapreplace(heap, -rejection.seq)
            key = rejection.code or rejection.category
            self._count_by_code[key] += 1
            label = f"record #{rejection.position} (input line {rejection.line})"
            message = rejection.safe_message or rejection.message
            if self.log_values:
                label = f"{label} id {rejection.id!r}" if rejection.id else label
                message = rejection.message
            if len(self._by_code[key]) < IDS_PER_CODE:
                self._by_code[key].append((label, message))
            logger.warning("Rejected %s of stream '%s' (%s): %s", label, rejection.stream, key, message)
            if self._file is not None:
                line = {
                    "stream": rejection.stream,
                    "object_type": rejection.object_type,
                    "id": rejection.id,
                    "position": rejection.position,
                    "record": rejection.record,
                    "error": {
                        "category": rejection.category,
                        "code": rejection.code,
                        "message": rejection.message,
                    },
                    "rejected_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                }
                self._file.write(json_line(line) + "\n")
                self._file.flush()
            return -heap[0] if len(heap) > self.max_rejected else None

    def grouping(self) -> list[str]:
        """One line per error code: how many, and at most five ids, each with its message."""
        lines = []
        for code, examples in sorted(self._by_code.items(), key=lambda kv: -self._count_by_code[kv[0]]):
            messages = {message for _, message in examples}
            if len(messages) == 1:
                shown = f"{', '.join(label for label, _ in examples)} - {examples[0][1]}"
            else:
                shown = "; ".join(f"{label} - {message}" for label, message in examples)
            lines.append(f"  {code}: {self._count_by_code[code]} record(s), e.g. {shown}")
        return lines

    def summary(self, *, limit_passed: bool, dry_run_limit: int | None = None) -> str:
        """The message for the log or the failure: a head line, one line per code, where the list is.

        `dry_run_limit`: a dry run's `max_rejected_records` (the log's own limit is lifted so
        that it lists every rejection).
        """
        where = (
            f"The full list is in {self.path}."
            if self.path
            else "Set rejected_records_path to keep the full list."
        )
        if dry_run_limit is not None:
            verdict = "a real run would stop" if self.count > dry_run_limit else "a real run would go on"
            head = (
                f"Dry run: {self.count} record(s) would be rejected (max_rejected_records is "
                f"{dry_run_limit}: {verdict})."
            )
        elif limit_passed:
            head = (
                f"{self.count} record(s) rejected, more than max_rejected_records "
                f"({self.max_rejected}); stopped reading input. Every good record already read was "
                "still sent; STATE stops before the record that broke the limit, so the next run "
                "sends from there again."
            )
        else:
            head = f"{self.count} record(s) rejected (max_rejected_records is {self.max_rejected})."
        return "\n".join([head, *self.grouping(), where])

    def close(self) -> None:
        """Close the report file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
