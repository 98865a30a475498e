"""Plain data passed between the sink, the dispatcher and the batch writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from target_hubspot_upsert.mapping import ObjectTarget


@dataclass(slots=True)
class RecordRef:
    """One received record, kept until its batch has an outcome (for reports)."""

    seq: int
    position: int
    record: dict[str, Any]
    line: int = 0  # input line, for messages


@dataclass(slots=True, eq=False)  # identity: two inputs are never "equal"
class PendingInput:
    """One upsert input: the merge of every buffered record with the same id."""

    id: str
    properties: dict[str, str]
    records: list[RecordRef]
    trace: str = ""

    def wire(self, id_property: str) -> dict[str, Any]:
        """The input as HubSpot's batch upsert expects it."""
        return {
            "id": self.id,
            "idProperty": id_property,
            "properties": self.properties,
            "objectWriteTraceId": self.trace,
        }


@dataclass(slots=True)
class Batch:
    """A request's worth of inputs for one stream."""

    batch_id: int
    stream: str
    target: ObjectTarget
    inputs: list[PendingInput]
    min_seq: int


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


@dataclass
class BatchOutcome:
    """What happened to every input of a batch."""

    created: int = 0
    updated: int = 0
    merged: int = 0
    would_write: int = 0  # dry runs: inputs that would have been sent
    # (input, category, code, message, message without record values)
    rejected: list[tuple[PendingInput, str, str, str, str]] = field(default_factory=list)
