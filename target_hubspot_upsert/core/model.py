"""Plain data passed between the sink, the dispatcher and the batch writer."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from target_hubspot_upsert.core.mapping import AssociationSpec, ObjectTarget

#: What an input asks for: the stream's write (upsert, update or create by its write_mode), or an archive.
WRITE = "write"
ARCHIVE = "archive"

#: HubSpot's limit of inputs per batch request.
HUBSPOT_MAX_BATCH = 100

#: What happened to an input that was not rejected (`PendingInput.result`), as StreamStats counts it.
CREATED = "created"
UPDATED = "updated"
SKIPPED_NOT_FOUND = "skipped_not_found"
SKIPPED_EXISTS = "skipped_exists"
ARCHIVED = "archived"
ALREADY_ABSENT = "already_absent"
WOULD_WRITE = "would_write"  # dry runs
WOULD_ARCHIVE = "would_archive"
UNCHANGED = "unchanged"  # skip_unchanged: HubSpot already has the values (never sent; not a writer result)
SKIPPED = frozenset({SKIPPED_NOT_FOUND, SKIPPED_EXISTS, ALREADY_ABSENT})


def match_key(id_property: str, value: str) -> str:
    """A unique property's value as HubSpot matches it: emails in any case, other values exactly."""
    return value.strip().lower() if id_property == "email" else value


def json_list(value: Any) -> list[Any]:  # noqa: ANN401 - parsed JSON
    """An answer's member that should be an array: itself when it is one, else no items (a malformed answer)."""
    return value if isinstance(value, list) else []


def ids_by_value(body: Any, id_property: str) -> dict[str, str]:  # noqa: ANN401 - parsed JSON
    """A `batch/read` answer's record ids by `id_property` value (as `match_key` gives it)."""
    found: dict[str, str] = {}
    for result in json_list(body.get("results") if isinstance(body, dict) else None):
        props = result.get("properties") if isinstance(result, dict) else None
        value = props.get(id_property) if isinstance(props, dict) else None
        if value is not None and result.get("id") not in (None, ""):
            found[match_key(id_property, str(value))] = str(result["id"])
    return found


@dataclass(slots=True)
class RecordRef:
    """One received record, kept until its batch has an outcome (for reports)."""

    seq: int
    position: int
    record: dict[str, Any]
    line: int = 0  # input line, for messages


@dataclass(slots=True)
class LinkRequest:
    """One association a record asks for: its object to the object whose unique value is `value`."""

    ref: RecordRef
    spec: AssociationSpec
    value: str


@dataclass(slots=True, eq=False)  # identity: two inputs are never "equal"
class PendingInput:
    """One input of a batch request: the merge of every buffered record with the same id."""

    id: str  # the id property's value; "" for a created object without unique property
    properties: dict[str, str]
    records: list[RecordRef]
    trace: str = ""
    key: str = ""  # buffer and in-flight key: the id, or a token unique to the record
    op: str = WRITE
    links: list[LinkRequest] | None = None
    result: str = ""  # one of the outcomes above, set by the writer
    object_id: str | None = None  # HubSpot's record id, when the answer names it
    # skip_unchanged: (row key, value hash or None, the cached row is deleted before sending)
    cache_entry: tuple[int, int | None, bool] | None = None
    # skip_unchanged: the hash of the one record this input holds, as read (`AsReadSkip.as_read`);
    # None once records are merged into it, or when the stream is not compared as read.
    as_read: int | None = None

    def __post_init__(self) -> None:
        """An input without its own key is keyed by its id."""
        if not self.key:
            self.key = self.id

    def wire(self, id_property: str) -> dict[str, Any]:
        """The input as HubSpot's batch upsert (and update) expects it.

        By record id (`hs_object_id`, e.g. objects a search found) it carries no `idProperty`:
        HubSpot refuses `hs_object_id` there.
        """
        if id_property == "hs_object_id":
            return {"id": self.id, "properties": self.properties, "objectWriteTraceId": self.trace}
        return {
            "id": self.id,
            "idProperty": id_property,
            "properties": self.properties,
            "objectWriteTraceId": self.trace,
        }


@dataclass(slots=True)
class Batch:
    """A request's worth of inputs for one stream, all with the same operation."""

    batch_id: int
    stream: str
    target: ObjectTarget
    inputs: list[PendingInput]
    min_seq: int
    op: str = WRITE
    sent_at: float = 0.0  # wall-clock time the writer first sent it (read-backs compare createdAt)


@dataclass(slots=True)
class Rejection:
    """A record that will not land, with HubSpot's (or our) reason."""

    seq: int  # the record's number in the run (input order), for checkpoints
    stream: str
    object_type: str
    id: str | None
    position: int
    record: dict[str, Any]
    category: str
    code: str
    message: str  # may quote values: for the rejected-records file (and logs, if asked)
    line: int = 0
    safe_message: str = ""  # the same without any record value: for logs at the default level


def rejection(
    ref: RecordRef, stream: str, object_type: str, record_id: str | None, why: tuple[str, str, str, str],
) -> Rejection:
    """The one way to build a Rejection: a received record (`ref`) and `why` it will not land.

    `why` is (category, code, message, message without record values).
    """
    category, code, message, safe = why
    return Rejection(
        seq=ref.seq, stream=stream, object_type=object_type, id=record_id, position=ref.position,
        record=ref.record, category=category, code=code, message=message, line=ref.line, safe_message=safe,
    )


_RESULT = operator.attrgetter("result")
_RECORDS = operator.attrgetter("records")


@dataclass
class BatchOutcome:
    """What happened to every input of a batch (each input's `result`, or a rejection)."""

    # (input, category, code, message, message without record values): none of its records landed
    rejected: list[tuple[PendingInput, str, str, str, str]] = field(default_factory=list)
    # (input, record, code, message, message without record values): the object landed, an association did not
    link_rejected: list[tuple[PendingInput, RecordRef, str, str, str]] = field(default_factory=list)
    associations: int = 0  # associations HubSpot acknowledged
    write_mode: str = "upsert"

    def counts(self, inputs: list[PendingInput]) -> Counter[str]:
        """Records per outcome: each input's result for its latest record not rejected, the others merged."""
        if inputs and not self.rejected and not self.link_rejected:
            counts = Counter(map(_RESULT, inputs))  # the common case: every input has its result
            if "" not in counts:
                counts["merged"] += sum(map(len, map(_RECORDS, inputs))) - len(inputs)
                return counts
        counts = Counter()
        rejected = {id(entry[0]) for entry in self.rejected}
        link_rejected = {id(entry[1]) for entry in self.link_rejected}
        for item in inputs:
            if id(item) in rejected or not item.result:
                continue
            kept = len(item.records)
            if link_rejected:
                kept -= sum(1 for ref in item.records if id(ref) in link_rejected)
            if kept:
                counts[item.result] += 1
                counts["merged"] += kept - 1
        return counts
