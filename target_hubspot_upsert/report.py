"""Counts and what the user reads about them: progress lines, the summary and the run report."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from target_hubspot_upsert.checkpoints import CheckpointLedger
from target_hubspot_upsert.client import HubSpotClient, RequestTally
from target_hubspot_upsert.model import Rejection
from target_hubspot_upsert.redact import REDACTOR
from target_hubspot_upsert.rejects import RejectionLog
from target_hubspot_upsert.settings import Settings

logger = logging.getLogger("target_hubspot_upsert")
PROGRESS_INTERVAL_S = 30.0
FIRST_ERRORS_KEPT = 5


@dataclass
class StreamStats:
    """Per-stream counters; `received` is the sum of the outcomes at the end."""

    stream: str
    object_type: str
    received: int = 0
    created: int = 0
    updated: int = 0
    merged: int = 0
    rejected: int = 0
    unchanged: int = 0  # skip_unchanged: HubSpot already had the value, not sent
    # Records per request when skip_unchanged is on (the summary then shows unchanged and the
    # requests saved); None when it is off.
    batch_size: int | None = None
    would_write: int = 0  # dry runs
    would_requests: int = 0
    tally: RequestTally = field(default_factory=RequestTally)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    first_errors: list[str] = field(default_factory=list)
    last_progress: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        """Records with an outcome."""
        return self.created + self.updated + self.merged + self.unchanged + self.rejected + self.would_write

    @property
    def requests_saved(self) -> int:
        """Requests the unchanged records would have taken."""
        return -(-self.unchanged // self.batch_size) if self.batch_size else 0

    def dry_run_line(self) -> str:
        """A dry run's line for this stream: what a real run would send."""
        return (
            f"Dry run, stream '{self.stream}' -> {self.object_type}: received {self.received}; would "
            f"create or update {self.would_write + self.merged} record(s) as {self.would_write} object(s) "
            f"in {self.would_requests} request(s); "
            + (f"unchanged {self.unchanged} (not sent); " if self.batch_size else "")
            + f"rejected {self.rejected}"
        )

    def summary_line(self) -> str:
        """The end-of-run line for this stream; on a stopped run, what has no confirmed outcome."""
        unsent = self.received - self.done
        return (
            f"Stream '{self.stream}' -> {self.object_type}: received {self.received}, "
            f"created {self.created}, updated {self.updated}, merged {self.merged}, "
            + (f"unchanged {self.unchanged}, " if self.batch_size else "")
            + f"rejected {self.rejected}"
            + (f", unconfirmed (run stopped) {unsent}" if unsent else "")
            + f"; requests {self.tally.requests}"
            + (f" ({self.requests_saved} saved by skip_unchanged)" if self.batch_size else "")
            + f", retries {self.tally.retries}, 429s {self.tally.rate_limited}"
        )

    def report(self) -> dict[str, Any]:
        """This stream's part of the run report."""
        end = self.finished or time.monotonic()
        return {
            "object_type": self.object_type,
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "merged": self.merged,
            "rejected": self.rejected,
            "unchanged": self.unchanged,
            "would_write": self.would_write,
            "would_requests": self.would_requests,
            "unconfirmed": self.received - self.done,
            "requests": self.tally.requests,
            "requests_saved": self.requests_saved,
            "retries": self.tally.retries,
            "rate_limited_429s": self.tally.rate_limited,
            "duration_seconds": round(end - self.started, 3),
            "first_errors": list(self.first_errors),
        }


class Reporter:
    """Per-stream counters of one run, and the lines and files that report them."""

    def __init__(
        self, settings: Settings, client: HubSpotClient, rejects: RejectionLog, ledger: CheckpointLedger,
        in_flight: Callable[[], int],
    ) -> None:
        """Keep what the summary and report read at the end."""
        self.settings = settings
        self._client = client
        self.rejects = rejects
        self.ledger = ledger
        self._in_flight = in_flight
        self.stats: dict[str, StreamStats] = {}
        self.started = time.monotonic()

    def stream_stats(self, stream: str, object_type: str) -> StreamStats:
        """Counters of a stream (kept across schema changes)."""
        stats = self.stats.get(stream)
        if stats is None:
            batch_size = min(self.settings.batch_size_rows, 100) if self.settings.skip_unchanged else None
            stats = self.stats[stream] = StreamStats(stream, object_type, batch_size=batch_size)
        return stats

    def note_rejection(self, stats: StreamStats, rejection: Rejection) -> None:
        """Count a rejected record and keep the first few reasons (no record values)."""
        with stats.lock:
            stats.rejected += 1
            if len(stats.first_errors) < FIRST_ERRORS_KEPT:
                stats.first_errors.append(
                    f"record #{rejection.position} (input line {rejection.line}): {rejection.code}: "
                    f"{rejection.safe_message or rejection.message}"
                )

    def maybe_log_progress(self, stats: StreamStats, now: float) -> None:
        """A concise progress line at most every 30 s per stream."""
        if now - stats.last_progress < PROGRESS_INTERVAL_S:
            return
        stats.last_progress = now
        elapsed = max(now - stats.started, 1e-9)
        logger.info(
            "Progress '%s': %d records done of %d received (%.0f records/s), %d requests in "
            "flight, %d rejected so far.",
            stats.stream, stats.done, stats.received, stats.done / elapsed,
            self._in_flight(), stats.rejected,
        )

    def log_summary(self, *, grouping: bool = True, stopped: bool = False) -> None:
        """One line per stream, plus the rejection grouping (unless the error message has it).

        On a stopped run, also where the next run resumes.
        """
        now = time.monotonic()
        unconfirmed = 0
        for stats in self.stats.values():
            stats.finished = stats.finished or now
            unconfirmed += stats.received - stats.done
            logger.info(stats.dry_run_line() if self.settings.dry_run else stats.summary_line())
        if unconfirmed:
            logger.warning(
                "%d record(s) have no confirmed outcome: they were not sent, or HubSpot's answer "
                "never arrived. The last STATE written does not cover them, so the next run "
                "sends them again (upserts are idempotent).",
                unconfirmed,
            )
        if self.rejects.count and grouping:
            logger.warning(self.rejects.summary(limit_passed=False))
        if stopped:
            line = self.ledger.written_line
            if line is not None:
                logger.warning("The last STATE written was input line %d; the next run resumes from there.", line)
            else:
                logger.warning("No STATE was written in this run; the next run starts where the last one did.")

    def write_report(self, status: str, error: str | None = None) -> None:
        """Write the JSON run report when `run_report_path` is set."""
        path = self.settings.run_report_path
        if not path:
            return
        report = {
            "status": status,
            "dry_run": self.settings.dry_run,
            "error": REDACTOR.redact(error) if error else None,
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "streams": {name: stats.report() for name, stats in self.stats.items()},
            "rejected_total": self.rejects.count,
            "rejected_records_path": self.settings.rejected_records_path,
            "requests_total": self._client.totals.requests,
            "oauth_refreshes": getattr(self._client.auth, "refreshes", None),
        }
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            logger.error("Could not write the run report to %s (%s); check run_report_path.", path, exc)  # noqa: TRY400
