"""Writing a `match_property` stream's batch: find the objects by search, update them by record id, create the rest.

Each input of the batch carries one value of the match property (records with the same value
are merged in the sink's buffer, and a value in flight is held back as ids are). For each value:

- the objects holding it come from the run's memory (values searched or written earlier in the
  run: search lags writes, so a value this run created is never searched for, nor created
  again), else from one search per up to 100 unknown values;
- none: `upsert` and `create` create an object (`batch/create`), `update` skips it (not found);
- one: `upsert` and `update` update it by record id (`batch/update`), `create` skips it (exists);
- several: `on_multiple_matches` decides: `reject` (AMBIGUOUS_MATCH, nothing written),
  `update_all` (every one), `oldest` (the one with the earliest createdAt).

The updates and creates go through the BatchWriter's own sending (isolation of bad inputs,
results tied by objectWriteTraceId, read-backs, resends), so a record counts as landed only when
HubSpot confirmed its write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import (
    ALREADY_ABSENT,
    ARCHIVE,
    ARCHIVED,
    CREATED,
    HUBSPOT_MAX_BATCH,
    SKIPPED_EXISTS,
    SKIPPED_NOT_FOUND,
    UPDATED,
    WRITE,
    Batch,
    BatchOutcome,
    PendingInput,
)
from target_hubspot_upsert.hubspot.client import RequestTally
from target_hubspot_upsert.hubspot.deletes import Archiver
from target_hubspot_upsert.hubspot.matcher import UNCERTAIN, MatchMemory
from target_hubspot_upsert.hubspot.search import Match, Searcher, match_value, searchable, value_room

#: Sends a group of inputs of a batch and accounts for them in an outcome (BatchWriter._settle).
Settle = Callable[[Batch, list[PendingInput], BatchOutcome, "RequestTally | None"], None]

AMBIGUOUS = "AMBIGUOUS_MATCH"
UNCONFIRMED = "UNCONFIRMED_CREATE"
#: Values a batch of a match_property stream takes: a few requests' worth, so its updates and its
#: creates each fill requests (see Runtime.open_stream).
MATCH_BATCH = 500


def pick(matches: tuple[Match, ...], policy: str) -> list[Match] | None:
    """The objects to update among several holding one value (None: reject the record)."""
    if len(matches) <= 1 or policy == "update_all":
        return list(matches)
    if policy == "oldest":
        return [min(matches, key=lambda m: (m.created_at, int(m.object_id) if m.object_id.isdigit() else 0))]
    return None


class MatchWriter:
    """Writes the batches of streams with `match_property` (see the module docstring)."""

    def __init__(self, searcher: Searcher, memory: MatchMemory) -> None:
        """One searcher (its pace) and one memory for the whole run."""
        self.searcher = searcher
        self.memory = memory
        # on_multiple_matches of the match streams by (object type, property): associations follow it.
        self.policies: dict[tuple[str, str], str] = {}
        # (object type, property) that associations find objects by through search (not unique).
        self.searched_links: set[tuple[str, str]] = set()

    def lookup(
        self, batch: Batch, values: list[str], tally: RequestTally | None,
    ) -> dict[str, tuple[Match, ...]]:
        """The objects holding each value: remembered, else searched (and then remembered)."""
        target = batch.target
        self.policies[(target.canonical_type, target.match_property)] = target.on_multiple_matches
        return self.find(target.object_type, target.canonical_type, target.match_property, values, batch.stream, tally)

    def find(
        self, object_type: str, object_key: str, prop: str, values: list[str], stream: str,
        tally: RequestTally | None,
    ) -> dict[str, tuple[Match, ...]]:
        """The objects of a type holding each value of `prop` (values as `match_value` gives them)."""
        known = self.memory.get(object_key, prop, values)
        unknown = [v for v in dict.fromkeys(values) if v not in known]
        if unknown:
            found = self.searcher.find(object_type, prop, unknown, stream=stream, tally=tally)
            for value in unknown:
                matches = tuple(found.get(value, ()))
                self.memory.put(object_key, prop, value, matches)
                known[value] = matches
        return known

    def link_targets(
        self, object_type: str, object_key: str, prop: str, values: list[str], stream: str,
        tally: RequestTally | None,
    ) -> dict[str, list[str] | int]:
        """Associations to objects found by a property that need not be unique: record ids per value.

        A value several objects hold follows `on_multiple_matches` of the stream of this run that
        matches that object type by `prop` (every one, the oldest); otherwise, or under `reject`,
        it maps to how many objects hold it (the association is rejected AMBIGUOUS_MATCH).
        """
        keys = [match_value(v) for v in values]
        found = self.find(object_type, object_key, prop, keys, stream, tally)
        policy = self.policies.get((object_key, prop), "reject")
        out: dict[str, list[str] | int] = {}
        for value, key in zip(values, keys, strict=True):
            matches = found[key]
            if matches == UNCERTAIN:
                continue  # not known to exist: not found
            chosen = pick(matches, policy)
            out[value] = len(matches) if chosen is None else [m.object_id for m in chosen]
        return out

    def _searchable(self, batch: Batch, outcome: BatchOutcome) -> list[PendingInput]:
        """The inputs whose value a search can carry; the others are rejected (values too long)."""
        prop = batch.target.match_property
        room = value_room(prop)
        ok = []
        for item in batch.inputs:
            if searchable(room, item.key):
                ok.append(item)
            else:
                message = (
                    f"the {prop} value is too long to search for (a search body holds at most 3,000 characters); "
                    "fix the source value"
                )
                self._reject(outcome, item, "INVALID_VALUE", message)
        return ok

    def write(self, batch: Batch, outcome: BatchOutcome, tally: RequestTally | None, settle: Settle) -> None:
        """Write a batch of a match stream; each input ends with a result or in `outcome.rejected`."""
        target = batch.target
        mode = target.write_mode
        inputs = self._searchable(batch, outcome)
        matched = self.lookup(batch, [item.key for item in inputs], tally)
        updates: list[tuple[PendingInput, list[Match]]] = []
        creates: list[PendingInput] = []
        for item in inputs:
            matches = matched[item.key]
            if matches == UNCERTAIN:
                self._reject(outcome, item, UNCONFIRMED, _uncertain_message(target.match_property))
            elif not matches:
                if mode == "update":
                    item.result = SKIPPED_NOT_FOUND
                else:
                    creates.append(item)
            elif mode == "create":
                item.result = SKIPPED_EXISTS
                item.object_id = matches[0].object_id
            else:
                chosen = pick(matches, target.on_multiple_matches)
                if chosen is None:
                    message, safe = _ambiguous_message(batch, item, len(matches))
                    self._reject(outcome, item, AMBIGUOUS, message, safe)
                else:
                    updates.append((item, chosen))
        gone = self._update(batch, updates, outcome, tally, settle)
        if gone and mode == "upsert":
            creates.extend(gone)  # the object was archived since it was found: the value is free again
        else:
            for item in gone:
                item.result = SKIPPED_NOT_FOUND
        self._create(batch, creates, outcome, tally, settle)

    def _update(
        self, batch: Batch, updates: list[tuple[PendingInput, list[Match]]], outcome: BatchOutcome,
        tally: RequestTally | None, settle: Settle,
    ) -> list[PendingInput]:
        """Update the chosen objects by record id; return the inputs none of whose objects exists any more."""
        if not updates:
            return []
        target = batch.target
        sub_target = dataclasses.replace(target, write_mode="update", id_property="hs_object_id")
        subs: dict[int, list[PendingInput]] = {}
        flat: list[PendingInput] = []
        for item, chosen in updates:
            for match in chosen:
                sub = PendingInput(
                    match.object_id, item.properties, item.records, key=item.key, links=item.links,
                    trace=f"{batch.batch_id}-u{len(flat)}",
                )
                flat.append(sub)
                subs.setdefault(id(item), []).append(sub)
        sub_outcome = BatchOutcome(write_mode="update")
        _send(batch, sub_target, flat, sub_outcome, tally, settle)
        rejected = {id(entry[0]): entry for entry in sub_outcome.rejected}
        gone: list[PendingInput] = []
        for item, _ in updates:
            if not self._account_update(batch, item, subs[id(item)], rejected, outcome):
                gone.append(item)
        return gone

    def _account_update(
        self, batch: Batch, item: PendingInput, mine: list[PendingInput],
        rejected: dict[int, tuple[PendingInput, str, str, str, str]], outcome: BatchOutcome,
    ) -> bool:
        """Account for an input from its updates; False when none of its objects exists any more."""
        memory, key, prop = self.memory, batch.target.canonical_type, batch.target.match_property
        failed = [rejected[id(s)] for s in mine if id(s) in rejected]
        landed = [s for s in mine if s.result == UPDATED and id(s) not in rejected]
        if failed:
            _, category, code, message, safe = failed[0]
            if landed:
                note = f" ({len(landed)} of the {len(mine)} objects holding the value were updated)"
                message, safe = message + note, safe + note
            outcome.rejected.append((item, category, code, message, safe))
        elif landed:
            item.result = UPDATED
            item.object_id = landed[0].object_id
            if len(landed) < len(mine):
                memory.put(key, prop, item.key, _matches_of(landed))
        elif all(s.result == SKIPPED_NOT_FOUND for s in mine):
            memory.forget(key, prop, item.key)
            return False
        else:
            self._reject(outcome, item, "NOT_ACKNOWLEDGED", "HubSpot did not confirm the update of this record")
        return True

    def _create(
        self, batch: Batch, creates: list[PendingInput], outcome: BatchOutcome,
        tally: RequestTally | None, settle: Settle,
    ) -> None:
        """Create an object per value no object holds, and remember it."""
        if not creates:
            return
        target = batch.target
        sub_target = dataclasses.replace(target, write_mode="create", id_property="")
        # A clash on another unique property is a rejection in upsert mode, "exists" in create mode.
        sub_outcome = BatchOutcome(write_mode=target.write_mode)
        subs = [
            PendingInput(item.id, item.properties, item.records, key=item.key, links=item.links,
                         trace=f"{batch.batch_id}-c{n}")
            for n, item in enumerate(creates)
        ]
        _send(batch, sub_target, subs, sub_outcome, tally, settle)
        rejected = {id(entry[0]): entry for entry in sub_outcome.rejected}
        memory, key, prop = self.memory, target.canonical_type, target.match_property
        for item, sub in zip(creates, subs, strict=True):
            entry = rejected.get(id(sub))
            if entry is not None:
                _, category, code, message, safe = entry
                outcome.rejected.append((item, category, code, message, safe))
                if code == "NOT_ACKNOWLEDGED":
                    # Whether HubSpot created it is unknown, and search lags: never create the value again.
                    memory.put(key, prop, item.key, UNCERTAIN)
                continue
            item.result = sub.result
            item.object_id = sub.object_id
            if sub.result == CREATED and sub.object_id:
                memory.put(key, prop, item.key, [Match(sub.object_id, "")])

    def archive(self, batch: Batch, outcome: BatchOutcome, tally: RequestTally | None, archiver: Archiver) -> None:
        """Deletes (`hard_delete`): archive the object the value matches (every one under `update_all`).

        A value no object holds is already absent; several under `reject` are AMBIGUOUS_MATCH.
        """
        target = batch.target
        inputs = self._searchable(batch, outcome)
        matched = self.lookup(batch, [item.key for item in inputs], tally)
        chosen: list[tuple[PendingInput, list[Match]]] = []
        for item in inputs:
            matches = matched[item.key]
            if matches == UNCERTAIN:
                self._reject(outcome, item, UNCONFIRMED, _uncertain_message(target.match_property))
            elif not matches:
                item.result = ALREADY_ABSENT
            elif (picked := pick(matches, target.on_multiple_matches)) is None:
                message, safe = _ambiguous_message(batch, item, len(matches), "archived")
                self._reject(outcome, item, AMBIGUOUS, message, safe)
            else:
                chosen.append((item, picked))
        if not chosen:
            return
        sub_target = dataclasses.replace(target, id_property="hs_object_id")
        subs = [
            (item, [PendingInput(m.object_id, {}, item.records, key=item.key, op=ARCHIVE) for m in picked])
            for item, picked in chosen
        ]
        flat = [sub for _, mine in subs for sub in mine]
        sub_outcome = BatchOutcome(write_mode=target.write_mode)
        for sub_batch in _requests(batch, sub_target, flat, ARCHIVE):
            archiver.archive(sub_batch, sub_outcome, tally)
        rejected = {id(entry[0]): entry for entry in sub_outcome.rejected}
        key, prop = target.canonical_type, target.match_property
        for (item, mine), (_, picked) in zip(subs, chosen, strict=True):
            failed = [rejected[id(s)] for s in mine if id(s) in rejected]
            if failed:
                outcome.rejected.append((item, *failed[0][1:]))
                self.memory.forget(key, prop, item.key)
                continue
            item.result = ARCHIVED if any(s.result == ARCHIVED for s in mine) else ALREADY_ABSENT
            left = [m for m in matched[item.key] if m not in picked]
            self.memory.put(key, prop, item.key, left)

    @staticmethod
    def _reject(outcome: BatchOutcome, item: PendingInput, code: str, message: str, safe: str | None = None) -> None:
        outcome.rejected.append((item, code, code, message, message if safe is None else safe))


def _requests(batch: Batch, sub_target: ObjectTarget, inputs: list[PendingInput], op: str) -> list[Batch]:
    """Inputs of `batch` as batches of `sub_target`'s kind, a request's worth each."""
    out = []
    for start in range(0, len(inputs), HUBSPOT_MAX_BATCH):
        chunk = inputs[start : start + HUBSPOT_MAX_BATCH]
        sub_batch = Batch(batch.batch_id, batch.stream, sub_target, chunk, batch.min_seq, op=op)
        sub_batch.sent_at = batch.sent_at
        out.append(sub_batch)
    return out


def _send(
    batch: Batch, sub_target: ObjectTarget, inputs: list[PendingInput], outcome: BatchOutcome,
    tally: RequestTally | None, settle: Settle,
) -> None:
    """Send inputs of `batch` as requests of `sub_target`'s kind, a request's worth at a time."""
    for sub_batch in _requests(batch, sub_target, inputs, WRITE):
        settle(sub_batch, sub_batch.inputs, outcome, tally)


def _matches_of(subs: list[PendingInput]) -> list[Match]:
    return [Match(s.id, "") for s in subs]


def _ambiguous_message(batch: Batch, item: PendingInput, count: int, what_not: str = "written") -> tuple[str, str]:
    target = batch.target
    fix = (
        f"nothing was {what_not}. Merge the duplicates in HubSpot, or set object_mappings.{batch.stream}."
        "on_multiple_matches to update_all or oldest"
    )
    what = f"{count} HubSpot '{target.object_type}' objects hold {target.match_property}"
    return f"{what} '{item.id}' (on_multiple_matches: reject), so {fix}", f"{what} of this record, so {fix}"


def _uncertain_message(prop: str) -> str:
    return (
        f"an earlier record of this run with the same {prop} was sent to be created and HubSpot did not confirm "
        "it; this one was not sent, since a second create could make a duplicate: check HubSpot for the object"
    )
