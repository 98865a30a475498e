"""Counts and what the user reads about them: progress lines, the summary and the run report."""

from __future__ import annotations

import json
import logging
import operator
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from target_hubspot_upsert.core.model import (
    ALREADY_ABSENT,
    ARCHIVED,
    HUBSPOT_MAX_BATCH,
    SKIPPED,
    SKIPPED_EXISTS,
    SKIPPED_NOT_FOUND,
    UNCHANGED,
    PendingInput,
    Rejection,
)
from target_hubspot_upsert.core.redact import REDACTOR
from target_hubspot_upsert.core.settings import Settings
from target_hubspot_upsert.hubspot.client import HubSpotClient, RequestTally
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger
from target_hubspot_upsert.pipeline.rejects import RejectionLog

logger = logging.getLogger("target_hubspot_upsert")
#: Seconds from the start of the run to its first progress line (or progress_interval, if shorter).
FIRST_PROGRESS_S = 5.0
FIRST_ERRORS_KEPT = 5
SKIPPED_LISTED = 100  # skipped records listed per stream in the run report
#: Counters beyond the upsert's, in summary order, with their wording.
EXTRA_COUNTERS = {
    SKIPPED_NOT_FOUND: "skipped (not found)",
    SKIPPED_EXISTS: "skipped (exists)",
    ARCHIVED: "archived",
    ALREADY_ABSENT: "already absent",
    UNCHANGED: "unchanged",
}


def target_version() -> str:
    """The installed target's version."""
    try:
        return metadata.version("target-hubspot-upsert")
    except metadata.PackageNotFoundError:
        return "unknown"


def format_duration(seconds: float) -> str:
    """`4.2 s`, `35 s`, `12 min 5 s`, `2 h 3 min`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass
class StreamStats:
    """Per-stream counters; `received` is the sum of the outcomes at the end.

    received = created + updated + merged + skipped (not found) + skipped (exists) + archived
    + already absent + unchanged + rejected. `associations` counts associations made (not records).
    """

    stream: str
    object_type: str
    received: int = 0
    created: int = 0
    updated: int = 0
    merged: int = 0
    rejected: int = 0
    skipped_not_found: int = 0
    skipped_exists: int = 0
    archived: int = 0
    already_absent: int = 0
    unchanged: int = 0  # skip_unchanged: HubSpot already had the values, not sent
    # Records per request when skip_unchanged is on (the summary then names the requests saved).
    batch_size: int | None = None
    associations: int = 0
    would_write: int = 0  # dry runs: inputs that would be sent
    would_archive: int = 0  # dry runs: deleted records' objects that would be archived
    would_requests: int = 0
    shown: set[str] = field(default_factory=set)  # extra counters shown even at 0 (by write mode)
    skipped_examples: list[dict[str, Any]] = field(default_factory=list)
    tally: RequestTally = field(default_factory=RequestTally)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    first_errors: list[str] = field(default_factory=list)
    last_progress: tuple[int, int] = (0, 0)  # (done, received) at the last progress line
    last_progress_at: float | None = None  # when it was logged
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        """Records with an outcome."""
        return (
            self.created + self.updated + self.merged + self.rejected
            + self.skipped_not_found + self.skipped_exists + self.archived + self.already_absent
            + self.unchanged + self.would_write + self.would_archive
        )

    @property
    def requests_saved(self) -> int:
        """Requests the unchanged records would have taken."""
        return -(-self.unchanged // self.batch_size) if self.batch_size else 0

    def dry_run_line(self) -> str:
        """A dry run's line for this stream: what a real run would send."""
        return (
            f"Dry run, stream '{self.stream}' -> {self.object_type}: received {self.received}; would "
            f"create or update {self.would_write + self.merged} record(s) as {self.would_write} object(s) "
            + (f"and archive {self.would_archive} object(s) " if self.would_archive else "")
            + f"in {self.would_requests} request(s); "
            + (f"unchanged {self.unchanged} (not sent); " if self.batch_size else "")
            + f"rejected {self.rejected}"
        )

    def summary_line(self) -> str:
        """The end-of-run line for this stream; on a stopped run, what has no confirmed outcome."""
        unsent = self.received - self.done
        elapsed = (self.finished or time.monotonic()) - self.started
        return (
            f"Stream '{self.stream}' -> {self.object_type}: received {self.received}, "
            f"created {self.created}, updated {self.updated}, merged {self.merged}, "
            f"rejected {self.rejected}"
            + "".join(
                f", {label} {getattr(self, name)}"
                for name, label in EXTRA_COUNTERS.items()
                if getattr(self, name) or name in self.shown
            )
            + (f", unconfirmed (run stopped) {unsent}" if unsent else "")
            + (f"; associations {self.associations}" if self.associations else "")
            + f"; requests {self.tally.requests}"
            + (f" ({self.requests_saved} saved by skip_unchanged)" if self.batch_size else "")
            + f", retries {self.tally.retries}, 429s {self.tally.rate_limited}"
            + f"; elapsed {format_duration(elapsed)}, {self.done / max(elapsed, 1e-3):.0f} records/s"
        )

    def report(self, *, dry_run: bool = False) -> dict[str, Any]:
        """This stream's part of the run report (the would_* counts in dry runs only)."""
        end = self.finished or time.monotonic()
        return {
            "object_type": self.object_type,
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "merged": self.merged,
            "rejected": self.rejected,
            "skipped_not_found": self.skipped_not_found,
            "skipped_exists": self.skipped_exists,
            "archived": self.archived,
            "already_absent": self.already_absent,
            "unchanged": self.unchanged,
            **({
                "would_write": self.would_write,
                "would_archive": self.would_archive,
                "would_requests": self.would_requests,
            } if dry_run else {}),
            "unconfirmed": self.received - self.done,
            "associations_created": self.associations,
            "requests": self.tally.requests,
            "requests_saved": self.requests_saved,
            "retries": self.tally.retries,
            "rate_limited_429s": self.tally.rate_limited,
            "duration_seconds": round(end - self.started, 3),
            "first_errors": list(self.first_errors),
            "skipped": list(self.skipped_examples),
        }

    def count_unchanged(self, inputs: int, merged: int) -> None:
        """skip_unchanged: `inputs` inputs (holding `merged` more records) were not sent: HubSpot has them."""
        with self.lock:
            self.unchanged += inputs
            self.merged += merged

    def add_outcomes(self, counts: Counter[str], inputs: list[PendingInput], associations: int) -> None:
        """Count a batch's outcomes; list its skipped records (up to SKIPPED_LISTED per stream)."""
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
            self.associations += associations
            if SKIPPED.isdisjoint(map(_RESULT, inputs)):
                return  # nothing skipped to list (the common case: no Python loop)
            for item in inputs:
                if item.result in SKIPPED and len(self.skipped_examples) < SKIPPED_LISTED:
                    ref = item.records[-1]
                    self.skipped_examples.append({
                        "record": ref.position,
                        "input_line": ref.line,
                        "id": item.id,
                        "outcome": EXTRA_COUNTERS[item.result],
                    })


_RESULT = operator.attrgetter("result")


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
        self.started_at = datetime.now(UTC)
        self._fraction_read: Callable[[], float | None] = lambda: None
        self._ticker: threading.Thread | None = None
        self._ticker_lock = threading.Lock()
        self._stop_ticking = threading.Event()

    def stream_stats(self, stream: str, object_type: str) -> StreamStats:
        """Counters of a stream (kept across schema changes)."""
        stats = self.stats.get(stream)
        if stats is None:
            stats = self.stats[stream] = StreamStats(stream, object_type)
            self._start_ticking()
            if self.settings.skip_unchanged:
                stats.batch_size = min(self.settings.batch_size_rows, HUBSPOT_MAX_BATCH)
                stats.shown.add(UNCHANGED)
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

    def watch_input(self, fraction_read: Callable[[], float | None]) -> None:
        """How much of the input has been read (0 to 1), when its size is known: for the time left."""
        self._fraction_read = fraction_read

    def _start_ticking(self) -> None:
        with self._ticker_lock:
            if self._ticker is None and not self._stop_ticking.is_set():
                self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        """Progress lines and aggregated metrics: the first after a few seconds, then every interval."""
        interval = self.settings.progress_interval
        wait = min(FIRST_PROGRESS_S, interval)
        while not self._stop_ticking.wait(wait):
            self.log_progress(time.monotonic())
            wait = interval

    def stop_ticking(self) -> None:
        """No more progress lines (the summary follows)."""
        self._stop_ticking.set()
        with self._ticker_lock:
            ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=5.0)

    def log_progress(self, now: float) -> None:
        """One line per stream still at work, then the interval's request metrics."""
        for stats in list(self.stats.values()):
            with stats.lock:
                done, received, rejected = stats.done, stats.received, stats.rejected
            if stats.finished is not None or ((done, received) == stats.last_progress and done == received):
                continue  # nothing new since its last line
            line = self.progress_line(stats, done, received, rejected, now)
            stats.last_progress, stats.last_progress_at = (done, received), now
            logger.info("%s", line)
        self._client.metrics.flush()

    def progress_line(self, stats: StreamStats, done: int, received: int, rejected: int, now: float) -> str:
        """`Progress 'contacts': 4100 records done of 4500 received (820 records/s), ...`."""
        elapsed = max(now - stats.started, 1e-3)
        rate = done / elapsed
        line = (
            f"Progress '{stats.stream}': {done} records done of {received} received ({rate:.0f} records/s), "
            f"{self._in_flight()} requests in flight, {rejected} rejected so far"  # in flight: all streams
        )
        fraction = self._fraction_read()
        # The time left goes by the rate since the last line: the first seconds of a run are faster
        # than its steady pace (HubSpot's rate-limit window starts empty).
        recent = rate
        if stats.last_progress_at is not None and now > stats.last_progress_at and done > stats.last_progress[0]:
            recent = (done - stats.last_progress[0]) / (now - stats.last_progress_at)
        limiter = self._client.limiter
        if limiter.limit:  # no faster than the rate limit lets full requests go
            per_request = min(self.settings.batch_size_rows, HUBSPOT_MAX_BATCH)
            recent = min(recent, limiter.limit / limiter.window_s * per_request)
        if fraction and recent > 0:
            expected = received / min(fraction, 1.0)
            left = max(expected - done, 0) / recent
            line += f", about {format_duration(left)} left ({min(fraction, 1.0):.0%} of the input read)"
        return line + "."

    def log_summary(self, *, grouping: bool = True, stopped: bool = False) -> None:
        """One line per stream, plus the rejection grouping (unless the error message has it).

        On a stopped run, also where the next run resumes.
        """
        self.stop_ticking()
        now = time.monotonic()
        unconfirmed = 0
        for stats in self.stats.values():
            stats.finished = stats.finished or now
            unconfirmed += stats.received - stats.done
            logger.info(stats.dry_run_line() if self.settings.dry_run else stats.summary_line())
        if unconfirmed and self.settings.dry_run:
            logger.warning("Dry run: %d record(s) read were not counted: the run stopped first.", unconfirmed)
        elif unconfirmed:
            logger.warning(
                "%d record(s) have no confirmed outcome: they were not sent, or HubSpot's answer "
                "never arrived. The last STATE written does not cover them, so the next run "
                "sends them again (upserts are idempotent).",
                unconfirmed,
            )
        if self.rejects.count and grouping:
            dry_limit = self.settings.max_rejected_records if self.settings.dry_run else None
            for text in self.rejects.summary(limit_passed=False, dry_run_limit=dry_limit).splitlines():
                logger.warning("%s", text)
        if stopped and not self.settings.dry_run:  # a dry run writes no STATE: nothing to resume
            line = self.ledger.written_line
            if line is not None:
                logger.warning("The last STATE written was input line %d; the next run resumes from there.", line)

    def write_report(self, status: str, error: str | None = None) -> None:
        """Write the JSON run report when `run_report_path` is set."""
        path = self.settings.run_report_path
        if not path:
            return
        dry_run = self.settings.dry_run
        report = {
            "status": status,
            "dry_run": dry_run,
            "error": REDACTOR.redact(error) if error else None,
            "target_version": target_version(),
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "settings": self.settings.shaping(),
            "streams": {name: stats.report(dry_run=dry_run) for name, stats in self.stats.items()},
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
