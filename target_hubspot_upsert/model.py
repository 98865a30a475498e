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

    stream: str
    object_type: str
    id: str | None
    position: int
    record: dict[str, Any]
    category: str
    code: str
    message: str


@dataclass
class BatchOutcome:
    """What happened to every input of a batch."""

    created: int = 0
    updated: int = 0
    merged: int = 0
    rejected: list[tuple[PendingInput, str, str, str]] = field(default_factory=list)
