"""Rejected records: the optional JSONL report, the counts by error code, and the limit."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from target_hubspot_upsert.errors import TooManyRejectedRecords
from target_hubspot_upsert.model import Rejection

logger = logging.getLogger("target_hubspot_upsert.rejects")
IDS_PER_CODE = 5


class RejectionLog:
    """Collects rejections from every thread; past `max_rejected` it stops the run."""

    def __init__(self, path: str | None, max_rejected: int) -> None:
        """Open the report (append-only) when a path is configured."""
        self.path = path
        self.max_rejected = max_rejected
        self.count = 0
        self._by_code: dict[str, list[tuple[str, str]]] = defaultdict(list)  # (record, message)
        self._count_by_code: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, rejection: Rejection) -> None:
        """Record one rejection; raise when the limit is passed."""
        with self._lock:
            self.count += 1
            key = rejection.code or rejection.category
            self._count_by_code[key] += 1
            if len(self._by_code[key]) < IDS_PER_CODE:
                label = rejection.id or f"record #{rejection.position}"
                self._by_code[key].append((label, rejection.message))
            logger.warning(
                "Rejected record %s of stream '%s' (%s): %s",
                rejection.id or f"#{rejection.position}", rejection.stream, key, rejection.message,
            )
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
                self._file.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
                self._file.flush()
            if self.count > self.max_rejected:
                raise TooManyRejectedRecords(self.summary(limit_passed=True))

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

    def summary(self, *, limit_passed: bool) -> str:
        """The message for the log or the failure."""
        where = (
            f"The full list is in {self.path}."
            if self.path
            else "Set rejected_records_path to keep the full list."
        )
        head = (
            f"{self.count} record(s) rejected, more than max_rejected_records "
            f"({self.max_rejected}); stopping."
            if limit_passed
            else f"{self.count} record(s) rejected (max_rejected_records is {self.max_rejected})."
        )
        return "\n".join([head, *self.grouping(), where])

    def close(self) -> None:
        """Close the report file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
