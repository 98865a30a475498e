"""skip_unchanged's short path: a record read exactly as the one HubSpot last acknowledged is unchanged.

The change cache compares what a record would send (its converted properties) with what HubSpot
acknowledged, which costs a record's validation and conversion before the comparison. Its row
also keeps a hash of the one record that value came from, as it was read (`as_read`): the
record's fields and values, in order, hashed after a `fingerprint` of everything that decides
how a record converts (the target's version, the stream, its object, the SCHEMA, the settings but
secrets, and HubSpot's definitions of the object's properties). A record with the same hash
converts to the same value, so it is unchanged without being validated or converted again.

What keeps it safe:
- only writes of streams looked up by id (no associations, no match_property) take it, and no
  deletes; a field outside the SCHEMA converts as HubSpot's definition of it says (part of the
  fingerprint; a property `unknown_properties: create` makes changes the next run's);
- an id already buffered, held or in flight, or offered twice before a look-up, goes the whole
  way (compared by value once its batch has landed), so per-id order holds;
- records wait here at most a drain's worth at a time (`AS_READ_BATCH`), numbered when they are read (a STATE after
  them waits: the checkpoint ledger holds their lowest number), and every record of the stream
  that goes the whole way sends those waiting here first, so the buffer keeps input order;
- a record that is not found unchanged goes the whole way with the number and input line it was
  read with, and the hash it was read with (noted in the cache once HubSpot acknowledged it).
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

import msgspec
import orjson
import xxhash

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.hubspot.serialization import PropertySpec, StreamPlan
from target_hubspot_upsert.pipeline.buffer import StreamBuffer
from target_hubspot_upsert.pipeline.changecache import TRIAGE_SIZE, ObjectTriage
from target_hubspot_upsert.pipeline.checkpoints import CheckpointLedger
from target_hubspot_upsert.pipeline.report import StreamStats

#: Records waiting for one look-up at most (`ChangeCache.changed_as_read`, one query); no more than
#: the buffer would hold before it drains (a lower `batch_size_rows` asks for small drains).
AS_READ_BATCH = TRIAGE_SIZE
#: ... and no more raw text than this (bytes), whatever the records' size: memory stays flat.
AS_READ_BYTES = 16 * 1024 * 1024
#: A record as read: its fields and values in order; exact decimals as JSON numbers, never as text
#: (a Decimal and a string of the same digits must not hash alike).
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode

Numbered = tuple[int, int, int]  # (record number in the run, position in its stream, input line)
# (the record, parsed or raw; its id; its hash as read; its numbering)
_Waiting = tuple[dict[str, Any] | msgspec.Raw, str, int, Numbered]
WholeWay = Callable[[dict[str, Any] | msgspec.Raw, Numbered, int | None], None]


#: The distributions whose code reads, checks, converts and hashes records (with the target's own).
_CODE = ("target-hubspot-upsert", "singer-sdk", "fastjsonschema", "msgspec", "orjson", "xxhash")


@functools.cache
def code_versions() -> str:
    """The versions of the code that decides how records convert: another version compares by value once."""
    found = []
    for name in _CODE:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} unknown")
    return ", ".join(found)


def fingerprint(
    versions: str, target: ObjectTarget, schema: Mapping[str, Any], key_properties: Sequence[str],
    config: Mapping[str, Any], catalog: Mapping[str, PropertySpec], secrets: tuple[str, ...],
) -> bytes:
    """What decides how a stream's records convert, as bytes that are the same in every run that decides alike.

    `versions` (`code_versions`), the stream's object mapping, its SCHEMA and key properties (a
    record missing one stops the run), the settings but secrets (stream maps, validation, nulls,
    unknown properties...), and HubSpot's definition of each of the object's properties.
    """
    properties = [
        (name, spec.type, spec.field_type, sorted(spec.options) if spec.options else None, spec.read_only, spec.unique)
        for name, spec in sorted(catalog.items())
    ]
    shaping = {key: value for key, value in config.items() if key not in secrets}
    try:
        return orjson.dumps(
            {
                "versions": versions, "target": repr(target), "schema": schema, "key_properties": list(key_properties),
                "config": shaping, "properties": properties,
            },
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str,
        )
    except (orjson.JSONEncodeError, TypeError):
        return repr((versions, target, properties, time.time_ns())).encode()  # never matches another run


class AsReadSkip:
    """One stream's records on the short path, until one look-up says which are unchanged.

    Records come as parsed (`offer`: BATCH files, records a stream map made) or as the raw text of
    an input line's record (`offer_raw`: only its id, and the delete marker, are parsed). The two
    hash differently (a tag in the key), so each finds what a run reading the same way noted.
    """

    def __init__(
        self, *, buffer: StreamBuffer, triage: ObjectTriage, ledger: CheckpointLedger, stats: StreamStats,
        plan: StreamPlan, deletes: bool, stream_fingerprint: bytes, next_seq: Callable[[], int],
        check: Callable[[], None],
    ) -> None:
        """Bind to a stream's buffer, its triage (the cache) and its plan (ids, declared fields).

        `next_seq` numbers a record in the run (`offer_raw` numbers records itself); `check` raises
        when the run is failing (a worker's fatal error, the rejection limit).
        """
        self._next_seq = next_seq
        self._check = check
        self._buffer = buffer
        self._triage = triage
        self._ledger = ledger
        self._stats = stats
        self._plan = plan
        self._deletes = deletes
        # xxh3 seeded with 64 bits of the fingerprint (and how the record was read): a different
        # hash for every stream, SCHEMA, setting, version and catalogue. A row written by a run
        # that read or hashed otherwise never matches: its record goes the whole way once, is
        # found unchanged by value, and its row takes this run's hash (ObjectTriage.triage).
        self._parsed_seed = _seed(stream_fingerprint, b"parsed")
        self._raw_seed = _seed(stream_fingerprint, b"raw")
        # `_sdc_` fields the SCHEMA declares are never sent (Singer metadata, e.g. extraction times
        # that differ each run): left out of the hash of a parsed record; raw text keeps them, so
        # such a stream's lines are parsed (`offer_raw` declines).
        self._metadata = frozenset(name for name in plan.schema_fields if name.startswith("_sdc_"))
        # The id (and the delete marker) of a record's raw text, without the other fields.
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("id", Any)]
        rename = {"id": plan.id_field}
        if deletes:
            fields.append(("deleted", Any, None))
            rename["deleted"] = "_sdc_deleted_at"
        self._id_of = msgspec.json.Decoder(
            msgspec.defstruct("RecordId", fields, rename=rename), float_hook=decimal.Decimal,
        ).decode
        self._lowercase_id = plan.lowercase_id
        # Live views of the ids buffered and reserved (held to send, or in flight) for the object type.
        self._buffered, self._reserved = buffer.held_keys()
        self.numbered = 0  # records of the stream numbered here (`offer_raw`), for the SDK's counter
        self._waiting: dict[str, _Waiting] = {}
        self._size = min(AS_READ_BATCH, buffer.drain_size)
        self._raw_bytes = 0  # text of the raw records waiting: looked up once it passes AS_READ_BYTES
        self._mark = f"{buffer.ledger_key}#as-read"
        buffer.short_path = self  # whatever flushes the buffer resolves these records first

    def bind(self, *, number: Callable[[], Numbered], the_whole_way: WholeWay) -> None:
        """The sink's side: `number` numbers the next record; `the_whole_way` takes one (numbered) to the buffer."""
        self.number = number
        self.the_whole_way = the_whole_way

    def __len__(self) -> int:
        """Records waiting for the look-up."""
        return len(self._waiting)

    def as_read(self, record: dict[str, Any]) -> int | None:
        """A parsed record's hash as read (with the stream's fingerprint); None when it cannot be encoded."""
        if self._metadata:
            metadata = self._metadata
            record = {key: value for key, value in record.items() if key not in metadata}
        try:
            data = _ENCODE(record)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError, RecursionError):
            return None
        if b"null" in data and _not_finite(record):
            return None  # NaN and infinities are written as null: never alike with a null
        return _signed(_xxh3(data, self._parsed_seed))

    def offer(self, record: dict[str, Any]) -> bool:
        """Take a parsed record onto the short path (numbered now), or say no (False): it goes the whole way."""
        if self._deletes and record.get("_sdc_deleted_at") not in (None, ""):
            return False
        record_id = self._plan.record_id(record)[0]
        waiting = self._waiting
        if record_id is None or record_id in waiting or record_id in self._buffered or record_id in self._reserved:
            return False
        as_read = self.as_read(record)
        if as_read is None:
            return False
        numbered = self.number()  # the sink's numbering (`offer_raw` numbers its records itself)
        if not waiting:
            self._ledger.buffer_started(self._mark, numbered[0])
        waiting[record_id] = (record, record_id, as_read, numbered)
        if len(waiting) >= self._size:
            self.resolve()
        return True

    @property
    def takes_raw(self) -> bool:
        """Whether `offer_raw` may take records: not when the SCHEMA declares `_sdc_` fields (parsed instead)."""
        return not self._metadata

    def offer_raw(self, raw: msgspec.Raw, line: int) -> bool:
        """Take a record's raw text (valid JSON) onto the short path, or say no (False): it is parsed as usual.

        Only for a stream that `takes_raw`. Only its id is read here, normalized as
        `StreamPlan.record_id` does without its checks: a record that is not valid is never found
        unchanged (its text is never that of a record HubSpot acknowledged), so it goes the whole
        way and is rejected there.
        """
        try:
            found: Any = self._id_of(raw)  # a struct made for this stream's id field
        except (ValueError, RecursionError, ArithmeticError):  # not an object, no id, too deep: the usual path says so
            return False
        if self._deletes and found.deleted not in (None, ""):
            return False
        value = found.id
        if type(value) is str:
            record_id: str | None = value.strip().lower() if self._lowercase_id else value
        else:
            record_id = self._plan.record_id({self._plan.id_field: value})[0]
        waiting = self._waiting
        if not record_id or record_id in waiting or record_id in self._buffered or record_id in self._reserved:
            return False
        stats = self._stats
        stats.received += 1
        self.numbered += 1
        seq = self._next_seq()
        if not waiting:
            self._ledger.buffer_started(self._mark, seq)
        as_read = _xxh3(raw, self._raw_seed)
        waiting[record_id] = (
            raw, record_id, as_read - _WRAP if as_read > _INT64_MAX else as_read, (seq, stats.received, line),
        )
        self._raw_bytes += len(raw)
        if len(waiting) >= self._size or self._raw_bytes > AS_READ_BYTES:
            self.resolve()
        return True

    def resolve(self) -> None:
        """Look the waiting records up: count the unchanged ones, send the others the whole way, in order."""
        if not self._waiting:
            return
        waiting, self._waiting = list(self._waiting.values()), {}
        self._raw_bytes = 0
        self._check()  # a failing run stops here, not after reading all its unchanged input
        rest = self._triage.changed_as_read(waiting)
        if len(rest) < len(waiting):
            self._stats.count_unchanged(len(waiting) - len(rest), 0)
        buffer = self._buffer
        for record, _id, as_read, numbered in rest:
            self.the_whole_way(record, numbered, as_read)
            if buffer.is_full:
                buffer.flush(final=False, hold=True)
        self._ledger.set_buffer(self._mark, None)  # the rest is in the buffer (or resolved) now


#: A record's 64-bit hash as read. xxh3 rather than blake2b: a tenth of the CPU for a record's
#: text (0.1 µs against 0.65 for 276 bytes), which is most of what a re-sync costs per record
#: besides reading the line and the look-up. Collisions are as unlikely for data that is not
#: crafted to collide (one in 2^64 per comparison), and a hash found equal is always the same
#: object's row.
_xxh3 = xxhash.xxh3_64_intdigest
_INT64_MAX, _WRAP = (1 << 63) - 1, 1 << 64  # SQLite keeps signed 64-bit integers


def _signed(value: int) -> int:
    return value - _WRAP if value > _INT64_MAX else value


def _seed(stream_fingerprint: bytes, how: bytes) -> int:
    """64 bits of a stream's fingerprint and of how its records are read, to seed their hash."""
    return int.from_bytes(hashlib.blake2b(stream_fingerprint + b"\0" + how, digest_size=8).digest(), "little")


def _not_finite(value: Any) -> bool:  # noqa: ANN401 - any JSON value
    """Whether a value holds a float that is NaN or infinite, at any depth (walked without recursion)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is float:
            if not math.isfinite(node):
                return True
        elif kind is dict:
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
    return False
