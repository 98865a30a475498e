"""Archive the objects of deleted records: find their record ids by the id property, then `batch/archive`.

HubSpot archives into its recycle bin (restorable for 90 days); this is not a GDPR deletion. An id
HubSpot does not have is "already absent", not a rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from target_hubspot_upsert.core.model import (
    ALREADY_ABSENT,
    ARCHIVED,
    Batch,
    BatchOutcome,
    PendingInput,
    ids_by_value,
    match_key,
)
from target_hubspot_upsert.hubspot.client import ApiResponse, HubSpotClient, RequestTally
from target_hubspot_upsert.hubspot.failures import Failure, bisect_failures, isolatable_or_raise, reject_into


def _not_found_ids(body: Any) -> set[str]:  # noqa: ANN401 - parsed JSON
    """Ids an answer's OBJECT_NOT_FOUND errors name (lowercased)."""
    ids: set[str] = set()
    for error in (body.get("errors") if isinstance(body, dict) else None) or []:
        failure = Failure.parse(400, error)
        if "OBJECT_NOT_FOUND" in (failure.category, failure.code):
            ids.update(i.lower() for i in failure.ids)
    return ids


class Archiver:
    """Archives one batch of deleted records' objects, through the shared client."""

    def __init__(
        self, client: HubSpotClient, *, on_archived: Callable[[str], None] | None = None, log_values: bool = False,
    ) -> None:
        """`on_archived(object type)` is told when objects of a type were archived (caches forget them).

        `log_values`: fatal errors quote HubSpot's message (see `Failure.for_fatal_error`).
        """
        self.client = client
        self.on_archived = on_archived
        self.log_values = log_values

    def archive(self, batch: Batch, outcome: BatchOutcome, tally: RequestTally | None) -> None:
        """Mark each input archived, already absent, or rejected."""
        bisect_failures(
            list(batch.inputs),
            lambda group: self._find(batch, group, tally),
            lambda item, failure: reject_into(outcome, item, failure),
        )
        found = [item for item in batch.inputs if item.object_id is not None and not item.result]
        if not found:
            return
        bisect_failures(
            found,
            lambda group: self._archive(batch, group, tally),
            lambda item, failure: reject_into(outcome, item, failure),
        )
        if self.on_archived is not None and any(item.result == ARCHIVED for item in found):
            self.on_archived(batch.target.canonical_type)

    def _find(self, batch: Batch, group: list[PendingInput], tally: RequestTally | None) -> Failure | None:
        """Read the record ids of `group`'s objects; those HubSpot does not have are already absent."""
        target = batch.target
        response = self.client.batch_read(
            target.object_type, target.id_property, [item.id for item in group], stream=batch.stream, tally=tally,
        )
        if response.status == 404:
            for item in group:  # every id unknown, answered as one 404
                item.result = ALREADY_ABSENT
            return None
        if not 200 <= response.status < 300:
            return self._failure(batch, "read", response)
        found = ids_by_value(response.body, target.id_property)
        for item in group:
            item.object_id = found.get(match_key(target.id_property, item.id), item.object_id)
            if item.object_id is None:
                item.result = ALREADY_ABSENT  # named as missing, or simply not returned
        return None

    def _archive(self, batch: Batch, group: list[PendingInput], tally: RequestTally | None) -> Failure | None:
        """Archive `group`'s objects by record id."""
        object_ids = list(dict.fromkeys(str(item.object_id) for item in group))
        response = self.client.batch_archive(batch.target.object_type, object_ids, stream=batch.stream, tally=tally)
        if not 200 <= response.status < 300:
            return self._failure(batch, "archive", response)
        gone = _not_found_ids(response.body)  # archived meanwhile by someone else
        for item in group:
            item.result = ALREADY_ABSENT if str(item.object_id).lower() in gone else ARCHIVED
        return None

    def _failure(self, batch: Batch, action: str, response: ApiResponse) -> Failure:
        """A failure to isolate the bad inputs from, or the error that stops the run."""
        target = batch.target
        return isolatable_or_raise(
            batch, response.status, Failure.parse(response.status, response.body), action=action,
            cannot=f"find '{target.object_type}' objects by '{target.id_property}' to archive them",
            log_values=self.log_values, unknown_type_on_404=False,
        )
