"""Dry runs (`--check`, `dry_run: true`): every check a run makes, and nothing written to HubSpot.

Records go through the same path as in a real run (SCHEMA checks against the catalogue,
serialization, local rejections, merging per id, batching); a batch is counted instead of sent,
and no STATE is written, so an orchestrator never records a checkpoint for a dry run.
"""

from __future__ import annotations

from typing import Any

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import ARCHIVE, WOULD_ARCHIVE, WOULD_WRITE, Batch, BatchOutcome
from target_hubspot_upsert.hubspot.client import HubSpotClient, RequestTally


class DryRunWriter:
    """Stands in for the BatchWriter: accounts for a batch as if HubSpot had taken it."""

    def write(self, batch: Batch, tally: RequestTally | None = None) -> BatchOutcome:  # noqa: ARG002
        """Count the records that would be sent (or archived), and the request."""
        for item in batch.inputs:
            item.result = WOULD_ARCHIVE if batch.op == ARCHIVE else WOULD_WRITE
        return BatchOutcome(write_mode=batch.target.write_mode)


def discard_state(state: Any) -> None:  # noqa: ANN401 - a STATE value
    """A dry run writes no STATE: nothing was loaded."""


def check_credentials(client: HubSpotClient) -> None:
    """One authenticated read: a wrong or revoked token fails here (HubSpotAuthError)."""
    client.get_account_details()


def check_object_access(client: HubSpotClient, target: ObjectTarget) -> None:
    """Read one object by the id property: proves the token may read the object type.

    HubSpot offers no way to check a write scope without writing; a missing one shows on the
    first write of a real run.
    """
    # A stream without id property (created activities) is read by record id.
    if target.id_property:
        response = client.batch_read(target.object_type, target.id_property, ["target-hubspot-upsert-check"])
    else:
        response = client.batch_read(target.object_type, "hs_object_id", ["0"])
    if response.status in (200, 207, 404):
        return
    message = response.message
    msg = (
        f"Could not read objects of '{target.object_type}' by '{target.id_property or 'hs_object_id'}' (stream "
        f"'{target.stream}'): HTTP {response.status} {message}. Check object_mappings.{target.stream}."
    )
    raise HubSpotConfigError(msg)
