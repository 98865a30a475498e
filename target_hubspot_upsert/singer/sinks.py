"""The HubSpot sink: turns records into batch inputs and hands full buffers to the dispatcher.

It knows the SDK, not HTTP. Records with the same id inside one buffer are merged (later
values win, property by property), because HubSpot fails a whole request on duplicate ids. A
record whose operation differs from the one buffered for its id (a delete after an upsert, or
the reverse) first sends what is buffered, so operations on one id keep their order.
"""

from __future__ import annotations

import functools
import typing as t
from datetime import datetime
from decimal import Decimal
from typing import Any

import fastjsonschema
import msgspec
from singer_sdk import metrics
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator
from typing_extensions import override

from target_hubspot_upsert.core.errors import InputError, brief
from target_hubspot_upsert.core.mapping import resolve_stream
from target_hubspot_upsert.core.model import (
    ALREADY_ABSENT,
    ARCHIVE,
    ARCHIVED,
    HUBSPOT_MAX_BATCH,
    SKIPPED_EXISTS,
    SKIPPED_NOT_FOUND,
    LinkRequest,
    PendingInput,
    RecordRef,
    match_key,
    rejection,
)
from target_hubspot_upsert.hubspot.search import match_value
from target_hubspot_upsert.hubspot.serialization import BadValue, Shaped, number_text
from target_hubspot_upsert.pipeline.asread import Numbered
from target_hubspot_upsert.singer.messages import MAX_LINE_CHARS, OversizedLine, batch_records, decode_raw_record
from target_hubspot_upsert.singer.sdk_adapter import AdaptedSink, failed_map_field, open_batch_file

if t.TYPE_CHECKING:
    from singer_sdk import Target
    from singer_sdk.batch import BaseBatchFileEncoding

    from target_hubspot_upsert.pipeline.runtime import Runtime


class SinkHost(t.Protocol):
    """What a sink uses of its target (the Singer target that creates it)."""

    runtime: Runtime
    config: t.Mapping[str, t.Any]

    @property
    def current_line(self) -> int:
        """The input line being processed."""
        ...

_NOT_A_VALUE = "must hold a value (text or a number) or a list of values"
#: A record's layout: its fields in order and each value's type.
Layout = tuple[tuple[str, ...], tuple[type, ...]]
#: Layouts a sink keeps (a stream's records seldom have more than a few), and the fields their
#: compiled serializers may hold in all (about half a KiB each: some 8 MiB).
MAX_LAYOUTS = 256
MAX_LAYOUT_FIELDS = 16_384
_NO_LINKS: list[LinkRequest] = []  # a stream without associations (never changed)

_BAD_MARKER = (
    "_sdc_deleted_at holds something other than a date-time, so the record is neither archived nor written; "
    'a delete needs an RFC 3339 date-time (as the Singer SDK writes it), and null or "" means not deleted: '
    "fix the tap or the source column"
)


def is_delete_marker(value: Any) -> bool:  # noqa: ANN401 - any JSON value
    """Whether `_sdc_deleted_at` holds a date-time (RFC 3339 / ISO 8601 with a time), which marks a delete."""
    if not isinstance(value, str) or len(value) < 16 or value[10] not in "Tt ":
        return False
    try:
        datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return False
    return True


def _refuse_remote(uri: str) -> Any:  # noqa: ANN401 - fastjsonschema's handler signature
    msg = f"a $ref to another document ({brief(uri, 80)}) is not fetched"
    raise fastjsonschema.JsonSchemaDefinitionException(msg)


class _NoRemoteRefs(dict[str, Any]):
    """fastjsonschema's handlers for every URI scheme: a SCHEMA message never makes the target fetch a URL.

    Without a handler for its scheme, fastjsonschema fetches a `$ref`'s URI with urllib.
    """

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Any:  # noqa: ANN401
        return _refuse_remote


#: The Python types the JSON reader gives for each JSON-schema type that match it exactly
#: (an integral float or a Decimal is not an `integer` here: the compiled validator decides).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float, Decimal), "boolean": (bool,),
    "null": (type(None),), "object": (dict,), "array": (list,),
}
#: Keywords that do not constrain a value (formats are not checked: `use_formats=False`).
_NOTES = frozenset({"type", "format", "description", "title", "examples", "$comment"})


def field_types(schema: dict[str, Any]) -> dict[str, frozenset[type]] | None:
    """For a SCHEMA that only types its fields, each field's exact Python types; None for any other.

    A record whose every declared field holds one of its types matches such a SCHEMA; others
    (and every record of any other SCHEMA) are left to the compiled validator.
    """
    if set(schema) - {"type", "properties", "description", "title", "$schema"} or schema.get("type") not in (
        "object", ["object"],
    ):
        return None
    types: dict[str, frozenset[type]] = {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    for name, sub in properties.items():
        if not isinstance(sub, dict) or set(sub) - _NOTES or "type" not in sub:
            return None
        names = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
        if not names or not all(isinstance(n, str) and n in _JSON_TYPES for n in names):
            return None
        types[name] = frozenset(kind for n in names for kind in _JSON_TYPES[n])
    return types


class FastValidator(BaseJSONSchemaValidator):
    """Compiled JSON-schema validation (fastjsonschema): a few µs a record instead of ~100.

    A SCHEMA that only types its fields (most taps') is checked first by a look-up of each
    value's type; the compiled validator runs only when that finds a value it cannot vouch for.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        """Compile the stream's schema once."""
        super().__init__(schema)
        self._validate = fastjsonschema.compile(
            schema, handlers=_NoRemoteRefs(), use_formats=False, use_default=False,
        )
        self._types = field_types(schema)

    @property
    def types_only(self) -> bool:
        """Whether the SCHEMA only types its fields: a record's layout then decides whether it matches."""
        return self._types is not None

    def vouches(self, record: dict[str, Any]) -> bool:
        """Whether each value's type alone shows the record matches (a SCHEMA that only types its fields)."""
        types = self._types
        if types is None:
            return False
        get = types.get
        for key, value in record.items():
            allowed = get(key)
            if allowed is not None and type(value) not in allowed:
                return False
        return True

    def validate(self, record: dict[str, Any], *, vouched_for: bool | None = None) -> None:
        """Raise InvalidRecord saying what in the record does not match the SCHEMA (no values).

        `vouched_for`: what `vouches` already said of this record (None: not asked yet).
        """
        if vouched_for if vouched_for is not None else self.vouches(record):
            return
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = exc.message.replace("data.", "", 1) if exc.message.startswith("data.") else exc.message
            raise InvalidRecord(field, record) from None


class _UnloggedTimer(metrics.Timer):
    """A timer that logs nothing when it stops."""

    def __exit__(self, *exc_info: object) -> None:
        return


class HubSpotSink(AdaptedSink):
    """Buffers one stream's records and upserts them into one HubSpot object type."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        """Resolve the object and pre-flight the schema before any record is accepted."""
        self._hub_target = host = t.cast("SinkHost", target)
        self.runtime = host.runtime
        self.object_target = resolve_stream(stream_name, host.config.get("object_mappings"))
        self.stats = self.runtime.stream_stats(stream_name, self.object_target.object_type)
        super().__init__(target, stream_name, schema, key_properties)
        # Read once: the SDK computes these from the config on every access.
        self.max_size_cached = self.max_size
        self.sdc_metadata = self.include_sdc_metadata_properties
        parts = self.runtime.open_stream(
            self.object_target, self.schema, self.stats, self.max_size_cached, config=host.config,
            key_properties=self.key_properties or (),
        )
        self.plan, self.buffer = parts.plan, parts.buffer
        self.as_read = parts.as_read
        if self.as_read is not None:
            self.as_read.bind(number=self._number, the_whole_way=self._accept_waiting)
        self._deletes = self.runtime.settings.hard_delete
        self._has_id = bool(self.object_target.id_property)
        # Layouts of records seen whole (`accept_whole`): only where a layout decides the checks.
        validator = self.validator
        self._shaping = validator is None or (isinstance(validator, FastValidator) and validator.types_only)
        # A layout seen once maps to None; its serializer is compiled when it is seen again.
        self._shapes: dict[Layout, Shaped | None] = {}
        self._layout_fields = 0  # fields of the compiled serializers (MAX_LAYOUT_FIELDS)
        self._match_values = bool(self.object_target.match_property)
        self._linking = bool(self.object_target.associations)
        # Inputs keyed by their id as it is, without associations: `_buffer_shaped` may buffer them.
        self._plain_ids = self._has_id and not self._match_values and not self._linking
        self.stats.shown.update(self._counters_shown())
        self._received_here = 0  # records numbered by this sink (the stream's stats span sinks)
        self._counted = 0

    def _counters_shown(self) -> set[str]:
        """The counters beyond the upsert's that this stream's summary line always shows."""
        mode = self.object_target.write_mode
        shown = set()
        if mode == "update":
            shown.add(SKIPPED_NOT_FOUND)
        elif mode == "create" and self._has_id:
            shown.add(SKIPPED_EXISTS)
        if self._deletes:
            shown |= {ARCHIVED, ALREADY_ABSENT}
        return shown

    # --- SDK hooks ----------------------------------------------------------------------

    @property
    def max_size(self) -> int:
        """HubSpot takes at most 100 inputs per request; `batch_size_rows` may lower it."""
        return min(self.batch_size_rows or HUBSPOT_MAX_BATCH, HUBSPOT_MAX_BATCH)

    @property
    def current_size(self) -> int:
        """Distinct ids waiting in the buffer (and changed inputs held to fill a batch)."""
        return len(self.buffer)

    @property
    def is_full(self) -> bool:
        """The buffer holds as many distinct ids as it drains at once."""
        return self.buffer.is_full

    def get_sink_record_counter(self) -> metrics.Counter:
        """The SDK's `record_count` (records received), logged at most once per progress interval.

        With `detailed_metrics`, at the SDK's own interval.
        """
        settings = self.runtime.settings
        if settings.detailed_metrics:
            return super().get_sink_record_counter()
        return metrics.record_counter(self.stream_name, log_interval=settings.progress_interval)

    def get_batch_processing_timer(self) -> metrics.Timer:
        """No metric from the SDK's timer, which would time only the hand-off to the dispatcher.

        With `detailed_metrics`, each batch's `batch_processing_time` is logged once, by the
        runtime, around the write itself (retries included).
        """
        return _UnloggedTimer(metrics.Metric.BATCH_PROCESSING_TIME, {metrics.Tag.STREAM: self.stream_name})

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """A compiled validator, unless `validate_records` is off."""
        if not self.validate_schema:
            return None
        try:
            return FastValidator(self.schema)
        except (fastjsonschema.JsonSchemaDefinitionException, AttributeError, TypeError, ValueError):
            pass  # a schema fastjsonschema cannot compile: the SDK's validator says what is wrong
        except RecursionError:
            return self._schema_error("nests too deeply")
        try:
            return super().get_validator()
        except InvalidJSONSchema as exc:
            return self._schema_error(str(exc).removeprefix("Schema Validation Error: ").split("\n", 1)[0])
        except RecursionError:
            return self._schema_error("nests too deeply")

    def _schema_error(self, problem: str) -> t.NoReturn:
        msg = (
            f"Input line {self._hub_target.current_line}: the SCHEMA of stream '{self.stream_name}' is not a "
            f"valid JSON schema: {brief(problem, 200)}."
        )
        raise InputError(msg)

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """The SDK's record path (unused by this target's leaner one): check, then buffer."""
        self.accept(record)

    def process_batch(self, context: dict) -> None:  # noqa: ARG002
        """Submit the buffer (non-blocking unless the pool is full)."""
        self._count_received()
        # A drain because the buffer is full may hold changed inputs back to fill a request; a
        # drain by age or at a schema change sends them.
        self.flush(final=False, hold=self.is_full)

    def _count_received(self) -> None:
        # The SDK's record counter, advanced per batch rather than per record.
        numbered = self._received_here + (self.as_read.numbered if self.as_read is not None else 0)
        new = numbered - self._counted
        if new:
            self.count_records(new)
            self._counted = numbered

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: t.Sequence[str]) -> None:
        """BATCH messages: each file's records go through the same path as RECORD messages."""
        storage = self.batch_config.storage if self.batch_config else None
        line = self._hub_target.current_line
        if encoding.format != "jsonl":
            msg = (
                f"Input line {line}: stream '{self.stream_name}': BATCH format {encoding.format!r} is not "
                "supported; use jsonl."
            )
            raise InputError(msg)
        for path in files:
            where = f"Input line {line}: BATCH file {brief(path, 200)!r} of stream '{self.stream_name}'"
            opener = functools.partial(open_batch_file, path, storage)
            for record in batch_records(opener, encoding.compression, where):
                if isinstance(record, OversizedLine):
                    self.reject_oversized(record)
                    continue
                self.accept(record)
                if self.is_full:
                    self.flush(final=False, hold=True)

    # --- buffering ----------------------------------------------------------------------

    def accept(self, record: dict[str, Any]) -> None:
        """The per-record work of the SDK's record path that matters here, then buffering.

        With skip_unchanged, a record may first take the short path (`AsReadSkip`); every other
        record sends the ones waiting there on their way first, so the buffer keeps input order.
        """
        as_read = self.as_read
        if as_read is not None:
            if as_read.offer(record):
                return
            as_read.resolve()
        self.accept_whole(record)

    def _accept_waiting(self, record: dict[str, Any] | msgspec.Raw, numbered: Numbered, as_read: int | None) -> None:
        """A record back from the short path, not found unchanged: parsed now if it came as raw text."""
        if isinstance(record, msgspec.Raw):
            record = decode_raw_record(record, numbered[2])
        self.accept_whole(record, numbered, as_read)

    def accept_whole(
        self, record: dict[str, Any], numbered: Numbered | None = None, as_read: int | None = None,
    ) -> None:
        """The whole way: check the record against its SCHEMA, then buffer it (or reject it).

        `numbered`: the record's numbering when it was read (it waited on the short path), and
        `as_read` its hash as read. A delete (with `hard_delete`) needs only its id: its other
        values are not checked.
        """
        layout = None
        if self._shaping:
            # Records of a layout seen before (fields in order, each value's type) match the
            # SCHEMA, have their key properties, are no deletes, and serialize the same way.
            layout = (tuple(record), tuple(map(type, record.values())))
            shape = self._shapes.get(layout)
            if shape is not None:
                if self._plain_ids and self._buffer_shaped(record, shape, numbered, as_read):
                    return
                self.add_record(record, deleted=False, numbered=numbered, as_read=as_read, shape=shape)
                return
        validator = self.validator
        deleted = self._deletes and record.get("_sdc_deleted_at") not in (None, "")
        if deleted and not is_delete_marker(record["_sdc_deleted_at"]):
            self.runtime.check()
            record_id = self.plan.record_id(record)[0] if self._has_id else None
            self._reject(record, record_id, numbered or self._number(), "INVALID_DELETE_MARKER", _BAD_MARKER)
            return
        vouched_for = None
        if layout is not None:
            learnable, vouched_for = self._layout_decides(record, validator)
            layout = layout if learnable else None
        if validator is not None and not deleted and not vouched_for:
            problem = self._schema_problem(validator, record, vouched_for)
            if problem is not None:
                self.runtime.check()
                message = (
                    f"the record does not match the stream's SCHEMA: {problem}; fix the "
                    "source data or the tap's SCHEMA (or set validate_records to false)"
                )
                self._reject(record, None, numbered or self._number(), "SCHEMA_MISMATCH", message)
                return
        for key in self.key_properties:
            if key not in record and key != self.plan.id_field:
                # A missing id value is a rejected record (add_record); any other missing key
                # property means the tap broke the Singer contract. Named by the line the record
                # was read on (it may have waited on the short path while later lines were read).
                position, line = numbered[1:] if numbered else (self.stats.received + 1, self._hub_target.current_line)
                msg = (
                    f"Input line {line}: record #{position} of stream '{self.stream_name}' has no "
                    f"'{key}', one of its key_properties {self.key_properties}; fix the tap "
                    "or its SCHEMA's key_properties."
                )
                raise InputError(msg)
        self.add_record(record, deleted=deleted, numbered=numbered, as_read=as_read, layout=layout)

    def _layout_decides(
        self, record: dict[str, Any], validator: BaseJSONSchemaValidator | None,
    ) -> tuple[bool, bool | None]:
        """Whether `record`'s layout alone decides the next record of it; the type look-up's answer (None: not asked).

        Not for a record whose `_sdc_deleted_at` is set (with hard_delete: the next one may be a
        delete), nor for one the type look-up does not vouch for (only the compiled validator can say).
        """
        if self._deletes and record.get("_sdc_deleted_at") is not None:
            return False, None
        if validator is None:
            return True, None
        vouched_for = t.cast("FastValidator", validator).vouches(record)
        return vouched_for, vouched_for

    @staticmethod
    def _schema_problem(
        validator: BaseJSONSchemaValidator, record: dict[str, Any], vouched_for: bool | None,
    ) -> str | None:
        """What in `record` does not match the SCHEMA, or None; `vouched_for`: the type look-up's answer, if asked."""
        try:
            if vouched_for is None:
                validator.validate(record)
            else:  # the type look-up said no: the compiled validator decides
                t.cast("FastValidator", validator).validate(record, vouched_for=False)
        except InvalidRecord as exc:
            return str(exc.error_message)
        return None

    def _buffer_shaped(
        self, record: dict[str, Any], shape: Shaped, numbered: Numbered | None, as_read: int | None,
    ) -> bool:
        """`add_record` for a record of a known layout with a valid id and no bad value; False for any other.

        Only for a stream whose inputs are keyed by their id as it is, without associations.
        """
        self.runtime.check()
        record_id = self.plan.record_id(record)[0]
        if record_id is None:
            return False  # add_record rejects it, with the reason
        properties = shape(record, record_id)
        if properties is None:
            return False
        seq, position, line = numbered or self._number()
        self.buffer.add(PendingInput(record_id, properties, [RecordRef(seq, position, record, line)], as_read=as_read))
        return True

    def _number(self) -> Numbered:
        """Number the next record of this stream (and of the run): (run's number, stream's, input line)."""
        self.stats.received += 1
        self._received_here += 1
        return self.runtime.next_seq(), self.stats.received, self._hub_target.current_line

    def add_record(
        self, record: dict[str, Any], *, deleted: bool, numbered: Numbered | None = None, as_read: int | None = None,
        shape: Shaped | None = None, layout: Layout | None = None,
    ) -> None:
        """Merge a record into the buffer (`deleted`: a delete to archive), or reject it locally.

        `_buffer_shaped` does the same for a record of a known layout without a bad value (keep
        the two in step).

        `shape`: how its layout serializes (`accept_whole` found it); `layout`: its layout, to learn
        its shape from when it serializes without a bad value.
        """
        runtime = self.runtime
        runtime.check()
        if numbered is None:
            numbered = self._number()
        seq, position, line = numbered
        if self._has_id:
            record_id, problem = self.plan.record_id(record)
            if record_id is None:
                raw = record.get(self.plan.id_field)  # reported as given, to find the record by
                shown = None if raw is None or (isinstance(raw, str) and not raw.strip()) else str(raw)
                self._reject(record, shown, numbered, "INVALID_ID", problem or "invalid id")
                return
            # match_property: values match in any case (search's IN takes them lowercase).
            key = match_value(record_id) if self._match_values else record_id
        elif deleted:
            message = (
                f"the record is a delete (_sdc_deleted_at is set), but stream '{self.stream_name}' has no id "
                "property to find its object by; set object_mappings.<stream>.id_property to archive deletes"
            )
            self._reject(record, None, numbered, "INVALID_ID", message)
            return
        else:
            record_id, key = "", f"#{seq}"  # created as its own object: never merged
        ref = RecordRef(seq, position, record, line)
        if deleted:
            self.buffer.add(PendingInput(record_id, {}, [ref], key=key, op=ARCHIVE))
        else:
            properties = None if shape is None else shape(record, record_id)
            if properties is None:
                properties, bad = self.plan.properties(record, record_id)
                if not bad and layout is not None:
                    self._learn(layout, record)
            else:
                bad = []
            if bad:
                message = "; ".join(b.describe() for b in bad)
                safe = "; ".join(b.describe(with_value=False) for b in bad)
                code = "UNKNOWN_PROPERTY" if all(b.code == "UNKNOWN_PROPERTY" for b in bad) else "INVALID_VALUE"
                self._reject(record, record_id, numbered, code, message, safe)
                return
            links = self._links(record, ref, record_id) if self._linking else _NO_LINKS
            if links is None:
                return  # a malformed association value: rejected
            self.buffer.add(PendingInput(record_id, properties, [ref], key=key, links=links or None, as_read=as_read))

    def _learn(self, layout: Layout, record: dict[str, Any]) -> None:
        """Note a layout whose record went the whole way without a bad value; compile it the second time.

        A layout seen once costs a dict entry; compiling one costs what serializing some hundred
        records does, so only layouts that come back are compiled, within MAX_LAYOUT_FIELDS.
        """
        shapes = self._shapes
        if layout not in shapes:
            if len(shapes) < MAX_LAYOUTS:
                shapes[layout] = None
            return
        fields = len(layout[0])
        if self._layout_fields + fields <= MAX_LAYOUT_FIELDS:
            self._layout_fields += fields
            shapes[layout] = self.plan.shape_of(record)

    def _links(self, record: dict[str, Any], ref: RecordRef, record_id: str) -> list[LinkRequest] | None:
        """The associations a record asks for, or None when it was rejected for a malformed one."""
        links: list[LinkRequest] = []
        for spec in self.object_target.associations:
            raw = record.get(spec.field)
            for value in raw if isinstance(raw, list) else (raw,):
                if value is None or (isinstance(value, str) and not value.strip()):
                    continue
                text = _association_value(value)
                if text is None:
                    message = f"association field '{spec.field}' ({spec.where}) {_NOT_A_VALUE}"
                    numbered = (ref.seq, ref.position, ref.line)
                    self._reject(ref.record, record_id or None, numbered, "INVALID_VALUE", message)
                    return None
                links.append(LinkRequest(ref, spec, match_key(spec.to_id_property, text)))
        return links

    def reject_oversized(self, line: OversizedLine) -> None:
        """Reject a RECORD line longer than the cap; the rejected-records file gets its size and first characters."""
        self.runtime.check()
        numbered = self._number()
        message = (
            f"the RECORD line is {line.size:,} characters long, over the {MAX_LINE_CHARS:,} a line may hold "
            "(HubSpot refuses far smaller requests); its first characters are kept here. Split or trim the "
            "record in the source"
        )
        record = {"_line_size": line.size, "_line_head": line.head}
        self._reject(record, None, numbered, "RECORD_TOO_LARGE", message)

    def reject_unmapped(self, record: dict[str, Any], exc: Exception) -> None:
        """Reject a record a `stream_maps` expression failed on (it never reaches the buffer)."""
        self.runtime.check()
        numbered = self._number()
        cause = str(exc).strip() or type(exc).__name__
        if exc.__cause__ is not None and str(exc.__cause__).strip():
            cause = f"{cause} ({exc.__cause__})"
        field = failed_map_field(exc)
        which = f"the stream_maps expression of field '{field}'" if field else "a stream_maps expression"
        where = f"stream_maps.{self.stream_name}.{field}" if field else "stream_maps"
        message = f"{which} failed on this record: {cause}; fix {where} or the data"
        safe = f"{which} failed on this record ({type(exc.__cause__ or exc).__name__}); fix {where} or the data"
        self._reject(record, None, numbered, "MAP_ERROR", message, safe)

    def _reject(
        self, record: dict, record_id: str | None, numbered: Numbered, code: str, message: str, safe: str | None = None,
    ) -> None:
        seq, position, line = numbered
        ref = RecordRef(seq, position, record, line)
        why = ("LOCAL_VALIDATION", code, message, message if safe is None else safe)
        found = rejection(ref, self.stream_name, self.object_target.object_type, record_id, why)
        self.runtime.reject(self.stats, found)

    def flush(self, *, final: bool, hold: bool = False) -> None:
        """Hand the buffer over to the dispatcher (see `StreamBuffer.flush`)."""
        self.buffer.flush(final=final, hold=hold)

    def retire(self) -> None:
        """A new SCHEMA replaces this sink: send all it holds before any record of the new one.

        The SDK keeps a replaced sink until its next full drain (at the end of the input here),
        so records buffered under the old SCHEMA would reach HubSpot after newer records for
        the same ids, and would hold every later checkpoint back.
        """
        self._count_received()
        self.flush(final=True)
        self._forget_layouts()

    def clean_up(self) -> None:
        """End of stream: nothing may stay buffered."""
        self._count_received()
        self.flush(final=True)
        self._forget_layouts()
        super().clean_up()

    def _forget_layouts(self) -> None:
        """This sink takes no more records: its layouts' serializers go (the SDK may keep the sink a while)."""
        self._shapes.clear()
        self._layout_fields = 0


def _association_value(value: Any) -> str | None:  # noqa: ANN401 - any JSON value
    """A record's value naming another object, as text; None when it cannot name one."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return number_text(value)
    except BadValue:
        return None
