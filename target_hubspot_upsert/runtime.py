"""Wiring of one run: builds the client, dispatcher, checkpoints, pre-flight and reporter the sinks share."""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from singer_sdk import metrics

from target_hubspot_upsert.associations import Associator
from target_hubspot_upsert.auth import OAuthTokenProvider, StaticToken, TokenProvider
from target_hubspot_upsert.changecache import ChangeTracker
from target_hubspot_upsert.checkpoints import CheckpointLedger, write_state_line
from target_hubspot_upsert.client import HubSpotClient
from target_hubspot_upsert.dispatch import Dispatcher
from target_hubspot_upsert.dryrun import DryRunWriter, discard_state
from target_hubspot_upsert.errors import HubSpotFatalError, TooManyRejectedRecords
from target_hubspot_upsert.logs import install as install_one_line_logging
from target_hubspot_upsert.matcher import MatchMemory
from target_hubspot_upsert.matching import MatchWriter
from target_hubspot_upsert.model import WOULD_ARCHIVE, WOULD_WRITE, WRITE, Batch, BatchOutcome, Rejection
from target_hubspot_upsert.preflight import Preflight
from target_hubspot_upsert.ratelimit import RateLimiter
from target_hubspot_upsert.redact import REDACTOR
from target_hubspot_upsert.redact import install as install_redactor
from target_hubspot_upsert.rejects import RejectionLog
from target_hubspot_upsert.report import Reporter, StreamStats
from target_hubspot_upsert.requestmetrics import RequestMetrics
from target_hubspot_upsert.search import Searcher, SearchPacer
from target_hubspot_upsert.settings import SECRET_SETTINGS, Settings
from target_hubspot_upsert.transport import Transport
from target_hubspot_upsert.writer import BatchWriter


def make_token_provider(
    settings: Settings, sleep: Callable[[float], None] = time.sleep, transport: Transport | None = None,
) -> TokenProvider:
    """The token provider the (already validated) settings ask for; OAuth shares `transport`."""
    if settings.access_token:
        return StaticToken(settings.access_token)
    return OAuthTokenProvider(
        client_id=str(settings.client_id),
        client_secret=str(settings.client_secret),
        refresh_token=str(settings.refresh_token),
        token_url=settings.token_url,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        sleep=sleep,
        transport=transport,
    )


class Runtime:
    """What one run shares across streams and threads, and how a stop is waited out."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        write_state: Callable[[Any], None] = write_state_line,
    ) -> None:
        """Build every part from the settings.

        `sleep` and `clock` are injectable so tests never wait for backoffs or the window.
        """
        self.settings = settings
        # Waiting (backoffs, the rate-limit window) ends early when the run is stopping.
        self.stopping = threading.Event()
        # Set when the run begins to stop (begin_stop): waits that would end after the
        # deadline fail at once instead.
        self.wait_deadline: float | None = None
        self.draining = threading.Event()
        for key in SECRET_SETTINGS:
            REDACTOR.add(getattr(settings, key))
        install_redactor()
        install_one_line_logging()
        self.client = self._make_client(settings, sleep or self._sleep, clock)
        self.ledger = CheckpointLedger(discard_state if settings.dry_run else write_state)
        self.rejects = RejectionLog(
            settings.rejected_records_path,
            # A dry run lists every record a real run would reject; the limit decides its exit code.
            sys.maxsize if settings.dry_run else settings.max_rejected_records,
            log_values=settings.log_record_values,
        )
        self.dispatcher = Dispatcher(
            self._write, self._on_outcome, self.ledger, max_concurrent=settings.max_concurrent_requests,
        )
        # match_property streams (and associations to objects found by search): one search pace and
        # one memory of values for the run.
        matcher = MatchWriter(Searcher(self.client, SearchPacer(sleep=sleep or self._sleep)), MatchMemory())
        # Associations wait for earlier batches writing the objects they look up.
        self.associator = Associator(
            self.client, wait_for_earlier=self.dispatcher.wait_for_earlier, log_values=settings.log_record_values,
            matcher=matcher,
        )
        self.writer: BatchWriter | DryRunWriter = (
            DryRunWriter(matcher) if settings.dry_run
            else BatchWriter(
                self.client, on_archived=self.associator.forget, log_values=settings.log_record_values,
                matcher=matcher,
            )
        )
        self.preflight = Preflight(self.client, settings, searched_links=matcher.searched_links)
        self.report = Reporter(settings, self.client, self.rejects, self.ledger, lambda: self.dispatcher.in_flight)
        self.seq = 0  # records numbered in input order across streams
        self.finished = False

    @staticmethod
    def _make_client(settings: Settings, sleep: Callable[[float], None], clock: Callable[[], float]) -> HubSpotClient:
        """One client, one rate limiter and one transport (pools, deadlines, size cap) for every request."""
        transport = Transport(timeout=settings.request_timeout, pool_size=settings.max_concurrent_requests + 2)
        return HubSpotClient(
            settings.api_base_url,
            make_token_provider(settings, sleep, transport),
            limiter=RateLimiter(settings.max_requests_per_10_seconds, sleep=sleep, clock=clock),
            max_retries=settings.max_retries,
            api_version=settings.api_version,
            sleep=sleep,
            transport=transport,
            metrics=RequestMetrics(detailed=settings.detailed_metrics),
        )
    @functools.cached_property
    def changes(self) -> ChangeTracker | None:
        """skip_unchanged: the change cache (its file is opened when the first records need it)."""
        return ChangeTracker(self.settings, self.client) if self.settings.skip_unchanged else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], schema: Mapping[str, Any], **kwargs: Any) -> Runtime:  # noqa: ANN401
        """A runtime for a validated config, defaults taken from its schema."""
        return cls(Settings.from_config(config, schema), **kwargs)

    # --- waiting and stopping -------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        """Wait; once the run stops, a wait that would outlast the grace period fails at once."""
        end = time.monotonic() + seconds
        if not self.draining.wait(seconds):
            return
        deadline = self.wait_deadline
        if deadline is not None and end <= deadline and not self.stopping.wait(max(0.0, end - time.monotonic())):
            return
        msg = "The run is stopping; not waiting to retry."
        raise HubSpotFatalError(msg)

    def stop_now(self) -> None:
        """Stop waiting at once: retries and waits for batches in flight end now."""
        self.wait_deadline = time.monotonic()
        self.stopping.set()
        self.draining.set()

    def begin_stop(self, grace_s: float) -> None:
        """The run is stopping: waits that would outlast `grace_s` end now, with a failure."""
        self.wait_deadline = time.monotonic() + grace_s
        self.draining.set()

    def check(self) -> None:
        """On the main thread, before taking more input: stop if the run is failing."""
        self.dispatcher.raise_if_failed()
        if self.rejects.limit_passed:
            raise TooManyRejectedRecords(self.rejects.summary(limit_passed=True))

    # --- outcomes -----------------------------------------------------------------------

    def reject(self, stats: StreamStats, rejection: Rejection) -> None:
        """Count and report one rejected record; past the limit, cap the checkpoints."""
        self.report.note_rejection(stats, rejection)
        cap = self.rejects.add(rejection)
        if cap is not None:
            self.ledger.cap(cap)

    def _write(self, batch: Batch) -> BatchOutcome:
        stats = self.report.stats[batch.stream]
        timer = (
            metrics.Timer(
                metrics.Metric.BATCH_PROCESSING_TIME,
                {metrics.Tag.STREAM: batch.stream, "object_type": batch.target.object_type},
            )
            if self.settings.detailed_metrics else contextlib.nullcontext()
        )
        with timer:
            # One job: the write (or archive), then its associations, before the ledger marks it done.
            if self.changes is not None:
                self.changes.before_write(batch)
            try:
                outcome = self.writer.write(batch, stats.tally)
                if batch.target.associations and batch.op == WRITE:
                    self.associator.link(batch, outcome, stats.tally)
            except BaseException:
                if self.changes is not None:
                    self.changes.write_failed(batch)
                raise
            return outcome

    def _on_outcome(self, batch: Batch, outcome: BatchOutcome) -> None:
        if self.changes is not None:
            self.changes.acknowledged(batch, outcome)  # before the ids are released (per-id order)
        stats = self.report.stats[batch.stream]
        counts = outcome.counts(batch.inputs)
        if counts.get(WOULD_WRITE) or counts.get(WOULD_ARCHIVE):
            counts["would_requests"] = 1
        stats.add_outcomes(counts, batch.inputs, outcome.associations)
        for item, ref, code, message, safe in outcome.link_rejected:
            self.reject(
                stats,
                Rejection(
                    seq=ref.seq, stream=batch.stream, object_type=batch.target.object_type, id=item.id or None,
                    position=ref.position, record=ref.record, category="ASSOCIATION", code=code,
                    message=message, line=ref.line, safe_message=safe,
                ),
            )
        for item, category, code, message, safe in outcome.rejected:
            latest = item.records[-1]
            for ref in item.records:  # records merged into the input were not written either
                note = "" if ref is latest else f" (merged with record #{latest.position} for the same id)"
                self.reject(
                    stats,
                    Rejection(
                        seq=ref.seq,
                        stream=batch.stream,
                        object_type=batch.target.object_type,
                        id=item.id or None,
                        position=ref.position,
                        record=ref.record,
                        category=category,
                        code=code,
                        message=message + note,
                        line=ref.line,
                        safe_message=safe + note,
                    ),
                )

    def close(self) -> None:
        """Release threads, files and metric counters."""
        self.stopping.set()
        self.draining.set()
        self.dispatcher.shutdown()
        self.report.stop_ticking()
        self.client.close()
        self.rejects.close()
        if self.changes is not None:
            self.changes.close()
