"""Dry runs (`--check`, `dry_run: true`): every check a run makes, and nothing written to HubSpot.

Records go through the same path as in a real run (SCHEMA checks against the catalogue,
serialization, local rejections, merging per id, batching); a batch is counted instead of sent,
and no STATE is written, so an orchestrator never records a checkpoint for a dry run.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import ARCHIVE, WOULD_ARCHIVE, WOULD_WRITE, Batch, BatchOutcome
from target_hubspot_upsert.hubspot.client import HubSpotClient, RequestTally
from target_hubspot_upsert.hubspot.matching import MatchWriter
from target_hubspot_upsert.hubspot.search import searchable, value_room


class DryRunWriter:
    """Stands in for the BatchWriter: accounts for a batch as if HubSpot had taken it.

    Streams with `match_property` search (a read) for their values, and count how many would
    match one object, none, or several (`match_lines`).
    """

    def __init__(self, matcher: MatchWriter | None = None) -> None:
        """`matcher` searches for the values of `match_property` streams."""
        self.matcher = matcher
        self.matches: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()

    def write(self, batch: Batch, tally: RequestTally | None = None) -> BatchOutcome:
        """Count the records that would be sent (or archived), and the request."""
        if batch.target.match_property and self.matcher is not None:
            room = value_room(batch.target.match_property)
            keys = [item.key for item in batch.inputs if searchable(room, item.key)]
            found = self.matcher.lookup(batch, keys, tally)
            counts = Counter("none" if not found[k] else "one" if len(found[k]) == 1 else "several" for k in keys)
            with self._lock:
                self.matches.setdefault(batch.stream, Counter()).update(counts)
        for item in batch.inputs:
            item.result = WOULD_ARCHIVE if batch.op == ARCHIVE else WOULD_WRITE
        return BatchOutcome(write_mode=batch.target.write_mode)

    def match_lines(self) -> list[str]:
        """Per `match_property` stream: values that match one object, none, or several (ambiguous)."""
        return [
            f"Dry run, stream '{stream}': {c['one']} value(s) match one object, {c['none']} match none, "
            f"{c['several']} match several"
            for stream, c in sorted(self.matches.items())
        ]


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
    if target.id_property and not target.match_property:  # a match_property need not be unique: by record id
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
