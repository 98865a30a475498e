"""Wiring of one run: builds the client, dispatcher, checkpoints, pre-flight and reporter the sinks share."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from singer_sdk import metrics

from target_hubspot_upsert.core.errors import CheckFailed, HubSpotFatalError, TooManyRejectedRecords
from target_hubspot_upsert.core.logs import install as install_one_line_logging
from target_hubspot_upsert.core.mapping import ObjectTarget, resolve_stream
from target_hubspot_upsert.core.model import (
    HUBSPOT_MAX_BATCH,
    WOULD_ARCHIVE,
    WOULD_WRITE,
    WRITE,
    Batch,
    BatchOutcome,
    Rejection,
    rejection,
)
from target_hubspot_upsert.core.redact import REDACTOR
from target_hubspot_upsert.core.redact import install as install_redactor
from target_hubspot_upsert.core.settings import SECRET_SETTINGS, Settings
from target_hubspot_upsert.http.auth import OAuthTokenProvider, StaticToken, TokenProvider
from target_hubspot_upsert.http.ratelimit import RateLimiter
from target_hubspot_upsert.http.requestmetrics import RequestMetrics
from target_hubspot_upsert.http.transport import Transport
from target_hubspot_upsert.hubspot.associations import Associator
from target_hubspot_upsert.hubspot.client import HubSpotClient
from target_hubspot_upsert.hubspot.dryrun import DryRunWriter, check_credentials, discard_state
from target_hubspot_upsert.hubspot.matcher import MatchMemory
from target_hubspot_upsert.hubspot.matching import MATCH_BATCH, MatchWriter
from target_hubspot_upsert.hubspot.preflight import Preflight
from target_hubspot_upsert.hubspot.search import Searcher, SearchPacer
from target_hubspot_upsert.hubspot.serialization import StreamPlan
from target_hubspot_upsert.hubspot.writer import BatchWriter
from target_hubspot_upsert.pipeline.asread import AsReadSkip, code_versions, fingerprint
from target_hubspot_upsert.pipeline.buffer import StreamBuffer
from target_hubspot_upsert.pipeline.changecache import TRIAGE_SIZE, ChangeTracker
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger, write_state_line
from target_hubspot_upsert.pipeline.dispatch import Dispatcher
from target_hubspot_upsert.pipeline.rejects import RejectionLog
from target_hubspot_upsert.pipeline.report import Reporter, StreamStats

logger = logging.getLogger("target_hubspot_upsert")

#: How long a stopping run waits for the batches in flight to land (and be checkpointed).
SHUTDOWN_GRACE_S = 30.0


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


@dataclass(frozen=True, slots=True)
class StreamParts:
    """What a stream's sink is handed: its serialization plan and its buffer."""

    plan: StreamPlan
    buffer: StreamBuffer
    as_read: AsReadSkip | None = None  # skip_unchanged's short path, where the stream can take it


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
        self.preflight = Preflight(self.client, settings, searched_links=matcher.searched_links)
        self.writer: BatchWriter | DryRunWriter = (
            DryRunWriter(matcher) if settings.dry_run
            else BatchWriter(
                self.client, on_archived=self.associator.forget, log_values=settings.log_record_values,
                property_type=self.preflight.property_type, matcher=matcher,
            )
        )
        self.report = Reporter(settings, self.client, self.rejects, self.ledger, lambda: self.dispatcher.in_flight)
        # Records are numbered in input order across streams (`next_seq`, a C-level counter); a
        # STATE takes a number too, its boundary: it waits for the records numbered below it.
        self.next_seq: Callable[[], int] = itertools.count(1).__next__
        self._state_number = -1  # the number the last STATE took ...
        self._state_boundary = 0  # ... and its boundary
        self._finished = False  # the run is ending: summary, report and close are done or under way
        self._input_done = False  # the input is read (the last drain is under way or done)
        self._signalled = False

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

    # --- streams --------------------------------------------------------------------------

    def stream_stats(self, stream: str, object_type: str) -> StreamStats:
        """The counters of a stream (shared by every SCHEMA of it)."""
        return self.report.stream_stats(stream, object_type)

    def open_stream(
        self, target: ObjectTarget, schema: Mapping[str, Any], stats: StreamStats, batch_size: int,
        config: Mapping[str, Any] | None = None, key_properties: Sequence[str] = (),
    ) -> StreamParts:
        """Pre-flight a stream (before any of its records is accepted) and build its buffer.

        With skip_unchanged the change cache is opened, and its account's write lock taken, before
        anything is sent (properties included); the account look-up overlaps the catalogue read.
        """
        changes = self.changes
        if changes is not None:
            changes.prefetch()
            self.preflight.catalog(target)
            _ = changes.cache
        plan = self.preflight.plan_for(target, schema)
        if target.associations:
            self.associator.prepare(target)
        # Distinct ids buffered before a drain: a request's worth; with skip_unchanged and full-size
        # requests, a few requests' worth, looked up together (the changed ones still go out a
        # request's worth at a time). A lower batch_size_rows is kept: it asks for small drains.
        full_size = changes is not None and batch_size == HUBSPOT_MAX_BATCH
        drain_size = TRIAGE_SIZE if full_size else batch_size
        if target.match_property and batch_size == HUBSPOT_MAX_BATCH:
            # A match_property batch takes a few requests' worth of values (each request still
            # carries at most 100): its updates and its creates then each fill requests, where a
            # batch of 100 mixed values would take two half-full ones.
            batch_size = drain_size = MATCH_BATCH
        triage = changes.for_object(target) if changes is not None else None
        buffer = StreamBuffer(
            target.stream, target, dispatcher=self.dispatcher, ledger=self.ledger, stats=stats,
            batch_size=batch_size, drain_size=drain_size, triage=triage,
        )
        as_read = None
        if (
            triage is not None and not self.settings.full_resync and target.id_property
            and not target.associations and not target.match_property
        ):
            stream_fingerprint = fingerprint(
                code_versions(), target, schema, key_properties, config or {}, self.preflight.catalog(target),
                SECRET_SETTINGS,
            )
            as_read = AsReadSkip(
                buffer=buffer, triage=triage, ledger=self.ledger, stats=stats, plan=plan,
                deletes=self.settings.hard_delete, stream_fingerprint=stream_fingerprint,
                next_seq=self.next_seq, check=self.check,
            )
        return StreamParts(plan, buffer, as_read)

    def add_state(self, state: Any, line: int) -> None:  # noqa: ANN401 - Singer state is any JSON
        """A STATE (input line `line`) arrived: written once every record received before it is resolved."""
        number = self.next_seq()
        if number != self._state_number + 1:  # records came since the last STATE: a new boundary
            self._state_boundary = number
        # else the same boundary: the ledger keeps only the newest of STATEs with one boundary
        self._state_number = number
        self.ledger.add(state, self._state_boundary, line)

    # --- the run's life: the end of input, stops ----------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether the run is ending (its summary and report are written or being written)."""
        return self._finished

    def on_signal(self, name: str) -> bool:
        """A SIGTERM or SIGINT arrived: True when reading must stop (raise), False to go on.

        After the input is read and its last STATE written, the run finishes as the successful
        run it is (the change cache's entries are committed at close). A second signal, or one
        while the run is already stopping, cuts the wait for batches in flight short.
        """
        if self._input_done and not self._signalled and not self.ledger.holding():
            self._signalled = True
            logger.warning("Received %s after the last STATE: finishing the run.", name)
            return False
        if self._signalled or self._finished:
            logger.warning("Received %s again: not waiting for the batches in flight.", name)
            self.stop_now()
            return False
        self._signalled = True
        return True

    def input_read(self) -> None:
        """The input is read; what follows is the last drain (the SDK's, then `finish`)."""
        self._input_done = True

    def finish(self) -> None:
        """After the last drain: wait for every batch, summarize, report, close.

        Raises:
            CheckFailed: A dry run found more rejections than `max_rejected_records`.
        """
        self.dispatcher.join()
        self.check()
        settings = self.settings
        if settings.dry_run:
            self._check_mapped_objects()
        self.report.log_summary()
        if isinstance(self.writer, DryRunWriter):  # match_property streams: what the search found
            for line in self.writer.match_lines():
                logger.info(line)
        self._finished = True
        if settings.dry_run and self.rejects.count > settings.max_rejected_records:
            msg = (
                f"Dry run: {self.rejects.count} record(s) would be rejected, more than "
                f"max_rejected_records ({settings.max_rejected_records}); a real run would stop. "
                "Nothing was written to HubSpot."
            )
            self.report.write_report("failed", error=msg)
            self.close()
            raise CheckFailed(msg)
        self.report.write_report("succeeded")
        self.close()

    def abort(self, error: BaseException, explained: str) -> None:
        """Stop sending; give in-flight batches a bounded time to land and checkpoint.

        After too many rejections the good records already read are all sent first (the
        requests' own timeouts and retries bound that); a signal cuts the wait short.
        """
        if self._finished:
            return
        self._finished = True
        limit = isinstance(error, TooManyRejectedRecords)
        if limit:
            self._send_what_was_read()
        else:
            self.begin_stop(SHUTDOWN_GRACE_S)
            if self.dispatcher.in_flight:
                logger.info(
                    "Waiting up to %.0f s for %d batch(es) in flight.", SHUTDOWN_GRACE_S, self.dispatcher.in_flight,
                )
                self.dispatcher.join(timeout=SHUTDOWN_GRACE_S, stop=self.stopping)
        self.report.log_summary(grouping=not limit, stopped=True)
        self.report.write_report("failed", error=explained or type(error).__name__)
        self.close()

    def _send_what_was_read(self) -> None:
        """Hand over every buffered record and wait for all batches (the rejection-limit stop)."""
        try:
            self.dispatcher.flush_all()
        except Exception as exc:  # noqa: BLE001 - a failing pool: what was sent is checkpointed
            logger.error("Could not send every buffered record: %s", exc)  # noqa: TRY400 - reported, not a bug
        self.dispatcher.join(stop=self.stopping)

    def _check_mapped_objects(self) -> None:
        """Dry runs: every mapped stream's object, id property and read access, input or not."""
        mappings = self.settings.object_mappings or {}
        check_credentials(self.client)
        streams = dict.fromkeys([*mappings, *self.report.stats])
        for stream in streams:
            target = resolve_stream(stream, mappings)
            self.preflight.check_object(target)
            self.associator.prepare(target)  # association labels
        logger.info(
            "Dry run: credentials and %d object mapping(s) checked; nothing was written to HubSpot.", len(streams),
        )

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
        stream, object_type = batch.stream, batch.target.object_type
        for item, ref, code, message, safe in outcome.link_rejected:
            why = ("ASSOCIATION", code, message, safe)
            self.reject(stats, rejection(ref, stream, object_type, item.id or None, why))
        for item, category, code, message, safe in outcome.rejected:
            latest = item.records[-1]
            for ref in item.records:  # records merged into the input were not written either
                note = "" if ref is latest else f" (merged with record #{latest.position} for the same id)"
                why = (category, code, message + note, safe + note)
                self.reject(stats, rejection(ref, stream, object_type, item.id or None, why))

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
