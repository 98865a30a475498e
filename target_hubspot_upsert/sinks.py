"""The HubSpot sink: turns records into upsert inputs and hands full buffers to the dispatcher.

It knows the SDK, not HTTP. Records with the same id inside one buffer are merged (later
values win, property by property), because HubSpot fails a whole request on duplicate ids.
"""

from __future__ import annotations

import functools
import gzip
import time
import typing as t
from typing import Any

import fastjsonschema
from singer_sdk.exceptions import InvalidRecord, MissingKeyPropertiesError
from singer_sdk.singerlib.json import deserialize_json
from singer_sdk.sinks.core import BaseJSONSchemaValidator
from typing_extensions import override

from target_hubspot_upsert.errors import InputError
from target_hubspot_upsert.mapping import resolve_stream
from target_hubspot_upsert.model import Batch, PendingInput, RecordRef, Rejection
from target_hubspot_upsert.sdk_adapter import AdaptedSink, open_batch_file

if t.TYPE_CHECKING:
    from singer_sdk.batch import BaseBatchFileEncoding

    from target_hubspot_upsert.target import TargetHubSpotUpsert

HUBSPOT_MAX_BATCH = 100


class FastValidator(BaseJSONSchemaValidator):
    """Compiled JSON-schema validation (fastjsonschema): a few µs a record instead of ~100."""

    def __init__(self, schema: dict[str, Any]) -> None:
        """Compile the stream's schema once."""
        super().__init__(schema)
        self._validate = fastjsonschema.compile(schema, use_formats=False, use_default=False)

    def validate(self, record: dict[str, Any]) -> None:
        """Raise InvalidRecord saying what in the record does not match the SCHEMA (no values)."""
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = exc.message.replace("data.", "", 1) if exc.message.startswith("data.") else exc.message
            raise InvalidRecord(field, record) from None


class HubSpotSink(AdaptedSink):
    """Buffers one stream's records and upserts them into one HubSpot object type."""

    def __init__(
        self,
        target: TargetHubSpotUpsert,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        """Resolve the object and pre-flight the schema before any record is accepted."""
        self._hub_target = target
        self.runtime = target.runtime
        self.object_target = resolve_stream(stream_name, target.config.get("object_mappings"))
        self.stats = self.runtime.report.stream_stats(stream_name, self.object_target.object_type)
        super().__init__(target, stream_name, schema, key_properties)
        self.plan = self.runtime.preflight.plan_for(self.object_target, self.schema)
        self._object_key = self.object_target.canonical_type
        self._buffer_key = f"{stream_name}#{id(self)}"
        self._buffer: dict[str, PendingInput] = {}
        self._received_here = 0  # records numbered by this sink (the stream's stats span sinks)
        self._counted = 0
        # Read once: the SDK computes these from the config on every access.
        self.max_size_cached = self.max_size
        self.sdc_metadata = self.include_sdc_metadata_properties
        # skip_unchanged: looks inputs up in the change cache and holds the changed ones.
        self.changes = self.runtime.changes.for_sink(self) if self.runtime.changes is not None else None

    # --- SDK hooks ----------------------------------------------------------------------

    @property
    def max_size(self) -> int:
        """HubSpot takes at most 100 inputs per request; `batch_size_rows` may lower it."""
        return min(self.batch_size_rows or HUBSPOT_MAX_BATCH, HUBSPOT_MAX_BATCH)

    @property
    def current_size(self) -> int:
        """Distinct ids waiting in the buffer (and changed inputs held to fill a batch)."""
        return len(self._buffer) + (len(self.changes.held) if self.changes is not None else 0)

    @property
    def is_full(self) -> bool:
        """The buffer holds a request's worth of distinct ids."""
        return len(self._buffer) >= self.max_size_cached

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """A compiled validator, unless `validate_records` is off."""
        if not self.validate_schema:
            return None
        try:
            return FastValidator(self.schema)
        except fastjsonschema.JsonSchemaDefinitionException:
            return super().get_validator()

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """The SDK's record path (unused by this target's leaner one): check, then buffer."""
        self.accept(record)

    def process_batch(self, context: dict) -> None:  # noqa: ARG002
        """Submit the buffer (non-blocking unless the pool is full)."""
        self._count_received()
        full = len(self._buffer) >= self.max_size
        self.flush(final=False)
        if self.changes is not None and not full:
            self.changes.send(everything=True)  # a drain by age or at a schema change: no holding back

    def _count_received(self) -> None:
        # The SDK's record counter, advanced per batch rather than per record.
        new = self._received_here - self._counted
        if new:
            self.count_records(new)
            self._counted = self._received_here

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: t.Sequence[str]) -> None:
        """BATCH messages: each file's records go through the same path as RECORD messages."""
        storage = self.batch_config.storage if self.batch_config else None
        for path in files:
            if encoding.format != "jsonl":
                msg = f"Stream '{self.stream_name}': BATCH format '{encoding.format}' is not supported; use jsonl."
                raise InputError(msg)
            with open_batch_file(path, storage) as raw:
                lines = gzip.open(raw) if encoding.compression == "gzip" else raw  # noqa: SIM115
                for line in lines:
                    if not line.strip():
                        continue
                    record = deserialize_json(line)
                    self.accept(record)
                    if len(self._buffer) >= self.max_size:
                        self.flush(final=False)

    # --- buffering ----------------------------------------------------------------------

    def accept(self, record: dict[str, Any]) -> None:
        """The per-record work of the SDK's record path that matters here, then buffering."""
        validator = self.validator
        if validator is not None:
            try:
                validator.validate(record)
            except InvalidRecord as exc:
                self.runtime.check()
                self._count_one()
                message = (
                    f"the record does not match the stream's SCHEMA: {exc.error_message}; fix the "
                    "source data or the tap's SCHEMA (or set validate_records to false)"
                )
                self._reject(record, None, self.stats.received, "SCHEMA_MISMATCH", message)
                return
        for key in self.key_properties:
            if key not in record and key != self.plan.id_field:
                # A missing id value is a rejected record (add_record); any other missing key
                # property means the tap broke the Singer contract.
                msg = (
                    f"record #{self.stats.received + 1} of stream '{self.stream_name}' has no "
                    f"'{key}', one of its key_properties {self.key_properties}; fix the tap "
                    "or its SCHEMA's key_properties."
                )
                raise MissingKeyPropertiesError(msg)
        self.add_record(record)

    def _count_one(self) -> int:
        """Number the next record of this stream (and of the run); return the run's number."""
        self.stats.received += 1
        self._received_here += 1
        runtime = self.runtime
        runtime.seq += 1
        return runtime.seq

    def add_record(self, record: dict[str, Any]) -> None:
        """Merge a record into the buffer, or reject it locally."""
        self.runtime.check()
        seq = self._count_one()
        stats = self.stats
        record_id, problem = self.plan.record_id(record)
        if record_id is None:
            raw = record.get(self.plan.id_field)  # reported as given, to find the record by
            shown = None if raw is None or (isinstance(raw, str) and not raw.strip()) else str(raw)
            self._reject(record, shown, stats.received, "INVALID_ID", problem or "invalid id")
            return
        properties, bad = self.plan.properties(record, record_id)
        if bad:
            message = "; ".join(b.describe() for b in bad)
            safe = "; ".join(b.describe(with_value=False) for b in bad)
            code = "UNKNOWN_PROPERTY" if all(b.code == "UNKNOWN_PROPERTY" for b in bad) else "INVALID_VALUE"
            self._reject(record, record_id, stats.received, code, message, safe)
            return
        ref = RecordRef(seq, stats.received, record, self._hub_target.current_line)
        entry = self._buffer.get(record_id)
        if entry is not None:
            entry.properties.update(properties)
            entry.records.append(ref)
        else:
            if not self._buffer:
                self.runtime.ledger.buffer_started(self._buffer_key, seq)
            self._buffer[record_id] = PendingInput(record_id, properties, [ref])
        if not stats.received & 0xFF:
            self.runtime.report.maybe_log_progress(stats, time.monotonic())

    def reject_unmapped(self, record: dict[str, Any], exc: Exception) -> None:
        """Reject a record a `stream_maps` expression failed on (it never reaches the buffer)."""
        self.runtime.check()
        self._count_one()
        cause = str(exc).strip() or type(exc).__name__
        if exc.__cause__ is not None and str(exc.__cause__).strip():
            cause = f"{cause} ({exc.__cause__})"
        message = f"a stream_maps expression failed on this record: {cause}; fix stream_maps or the data"
        safe = (
            f"a stream_maps expression failed on this record ({type(exc.__cause__ or exc).__name__}); "
            "fix stream_maps or the data"
        )
        self._reject(record, None, self.stats.received, "MAP_ERROR", message, safe)

    def _reject(
        self, record: dict, record_id: str | None, position: int, code: str, message: str, safe: str | None = None,
    ) -> None:
        self.runtime.reject(
            self.stats,
            Rejection(
                seq=self.runtime.seq,
                stream=self.stream_name,
                object_type=self.object_target.object_type,
                id=record_id,
                position=position,
                record=record,
                category="LOCAL_VALIDATION",
                code=code,
                message=message,
                line=self._hub_target.current_line,
                safe_message=message if safe is None else safe,
            ),
        )

    def flush(self, *, final: bool) -> None:
        """Submit what can go now; ids still in flight wait in the buffer for the next batch.

        With `final`, wait until the buffer is empty (end of input).
        """
        dispatcher = self.runtime.dispatcher
        changes = self.changes
        while self._buffer:
            ready = dispatcher.reserve(self._object_key, list(self._buffer.values()))
            if ready and changes is not None:
                changes.triage(ready)  # skips what HubSpot has; sends the rest a full batch at a time
            elif ready:
                for start in range(0, len(ready), self.max_size):
                    chunk = ready[start : start + self.max_size]
                    for item in chunk:
                        del self._buffer[item.id]
                    remaining = next(iter(self._buffer.values()), None)
                    remaining_min = remaining.records[0].seq if remaining is not None else None
                    batch_min = min(item.records[0].seq for item in chunk)
                    dispatcher.submit(
                        self._object_key,
                        functools.partial(self._make_batch, chunk=chunk, batch_min=batch_min),
                        self._buffer_key,
                        remaining_min,
                    )
            if not self._buffer or (not final and len(self._buffer) < self.max_size):
                break
            if not ready:
                if changes is not None:
                    changes.send(everything=True)  # the ids waited for may be held here, not in flight
                dispatcher.wait_for_progress()
        if final and changes is not None:
            changes.send(everything=True)

    def _make_batch(self, batch_id: int, *, chunk: list[PendingInput], batch_min: int) -> Batch:
        return Batch(batch_id, self.stream_name, self.object_target, chunk, batch_min)

    def retire(self) -> None:
        """A new SCHEMA replaces this sink: send all it holds before any record of the new one.

        The SDK keeps a replaced sink until its next full drain (at the end of the input here),
        so records buffered under the old SCHEMA would reach HubSpot after newer records for
        the same ids, and would hold every later checkpoint back.
        """
        self._count_received()
        self.flush(final=True)

    def clean_up(self) -> None:
        """End of stream: nothing may stay buffered."""
        self._count_received()
        self.flush(final=True)
        super().clean_up()
