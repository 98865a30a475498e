"""Associations: link each written object to other objects found by a unique property (v4 associations API).

After a batch's objects are acknowledged, the other objects' record ids are looked up with
`batch/read` (kept in a bounded LRU cache for the run) and the pairs are associated with
`batch/associate/default`, or `batch/create` with the configured label's type. Associations are
only added, never removed. A value no object has rejects that record's association; the object
itself has landed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from target_hubspot_upsert.core.errors import HubSpotConfigError, HubSpotFatalError, brief
from target_hubspot_upsert.core.mapping import AssociationSpec, ObjectTarget
from target_hubspot_upsert.core.model import (
    CREATED,
    HUBSPOT_MAX_BATCH,
    UPDATED,
    Batch,
    BatchOutcome,
    LinkRequest,
    PendingInput,
    RecordRef,
    ids_by_value,
    json_list,
)
from target_hubspot_upsert.hubspot.client import HubSpotClient, RequestTally
from target_hubspot_upsert.hubspot.failures import ISOLATABLE_STATUSES, Failure, bisect_failures
from target_hubspot_upsert.hubspot.matching import MatchWriter

logger = logging.getLogger("target_hubspot_upsert.hubspot.associations")

ID_CACHE_SIZE = 100_000  # other objects' record ids kept per run (a few MB at most)
Pair = tuple[str, str]  # (from record id, to record id)
MAX_PAIR_RESENDS = 2  # how often a pair no answer confirmed is sent again before it is rejected


class IdCache:
    """Record ids of objects by `(object type, unique property, value)`: an LRU with a fixed cap."""

    def __init__(self, capacity: int = ID_CACHE_SIZE) -> None:
        """Hold at most `capacity` ids; the least recently used go first."""
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> str | None:
        """The cached id, or None."""
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                self._ids.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str], object_id: str) -> None:
        """Remember an id, forgetting the least recently used past the cap."""
        with self._lock:
            self._ids[key] = object_id
            self._ids.move_to_end(key)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)

    def forget_type(self, object_type: str) -> None:
        """Objects of this type were archived: their cached ids may be stale."""
        with self._lock:
            for key in [k for k in self._ids if k[0] == object_type]:
                del self._ids[key]

    def __len__(self) -> int:
        """Ids held."""
        return len(self._ids)


@dataclass
class _LinkRejections:
    """Association failures of one batch, one rejection per record (its messages joined)."""

    by_ref: dict[int, tuple[PendingInput, RecordRef, str, list[str], list[str]]] = field(default_factory=dict)

    def add(self, item: PendingInput, ref: RecordRef, code: str, message: str, safe: str) -> None:
        entry = self.by_ref.setdefault(id(ref), (item, ref, code, [], []))
        if message not in entry[3]:
            entry[3].append(message)
            entry[4].append(safe)

    def into(self, outcome: BatchOutcome) -> None:
        for item, ref, code, messages, safes in self.by_ref.values():
            outcome.link_rejected.append((item, ref, code, "; ".join(messages), "; ".join(safes)))


def _written(object_type: str) -> str:
    return f"the record's {object_type} object was written, without this association"


class Associator:
    """Makes the associations of each batch's records, through the shared client."""

    def __init__(
        self, client: HubSpotClient, *, wait_for_earlier: Callable[[int, set[str]], None] | None = None,
        cache: IdCache | None = None, log_values: bool = False, matcher: MatchWriter | None = None,
    ) -> None:
        """`wait_for_earlier(batch id, object types)` waits for earlier batches writing those types.

        `log_values`: fatal errors quote HubSpot's message (see `Failure.for_fatal_error`).
        """
        self.client = client
        self.log_values = log_values
        self.wait_for_earlier = wait_for_earlier
        self.ids = cache or IdCache()
        self.matcher = matcher  # associations by a property that need not be unique: through search
        self._labels: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._labels_lock = threading.Lock()

    def forget(self, object_type: str) -> None:
        """Objects of `object_type` were archived."""
        self.ids.forget_type(object_type)

    # --- labels -------------------------------------------------------------------------

    def prepare(self, target: ObjectTarget) -> None:
        """Resolve every configured label now (once per object pair), so a wrong one stops the run before sending."""
        for spec in target.associations:
            self.types_for(target, spec)

    def types_for(self, target: ObjectTarget, spec: AssociationSpec) -> list[dict[str, Any]] | None:
        """The `types` of a labelled association, or None for HubSpot's default association of the pair."""
        if spec.label is None:
            return None
        labels = self._pair_labels(target, spec)
        wanted = spec.label
        found = [t for t in labels if isinstance(wanted, str) and t.get("label") == wanted]
        found = found or [
            t for t in labels if isinstance(wanted, str) and str(t.get("label") or "").lower() == wanted.lower()
        ]
        as_id = wanted if isinstance(wanted, int) else int(wanted) if wanted.isdigit() else None
        found = found or [t for t in labels if as_id is not None and t.get("typeId") == as_id]
        if not found:
            named = ", ".join(
                f"{t.get('label')!r} ({t.get('typeId')})" if t.get("label") else f"unlabelled ({t.get('typeId')})"
                for t in labels
            )
            msg = (
                f"object_mappings.{target.stream}.{spec.where}.label: HubSpot has no association label or type id "
                f"{wanted!r} from {target.object_type} to {spec.to_object_type}; it has {named or 'none'}. Create "
                "the label in HubSpot, or leave label out for the default association."
            )
            raise HubSpotConfigError(msg)
        return [{"associationCategory": found[0].get("category"), "associationTypeId": found[0].get("typeId")}]

    def _pair_labels(self, target: ObjectTarget, spec: AssociationSpec) -> list[dict[str, Any]]:
        key = (target.canonical_type, spec.to_key)
        with self._labels_lock:
            labels = self._labels.get(key)
            if labels is None:
                response = self.client.association_labels(target.object_type, spec.to_object_type)
                body = response.body if isinstance(response.body, dict) else {}
                if response.status != 200:
                    msg = (
                        f"object_mappings.{target.stream}.{spec.where}: could not read the association labels "
                        f"from {target.object_type} to {spec.to_object_type} (HTTP {response.status} "
                        f"{brief(str(body.get('message') or ''))})."
                    )
                    raise HubSpotConfigError(msg)
                labels = [t for t in json_list(body.get("results")) if isinstance(t, dict)]
                self._labels[key] = labels
            return labels

    # --- one batch ----------------------------------------------------------------------

    def link(self, batch: Batch, outcome: BatchOutcome, tally: RequestTally | None = None) -> None:
        """Associate the objects the batch wrote with the objects its records name."""
        written = [item for item in batch.inputs if item.links and item.result in (CREATED, UPDATED)]
        if not written:
            return
        rejections = _LinkRejections()
        self._find_own_ids(batch, [item for item in written if item.object_id is None], rejections, tally)
        if self.wait_for_earlier is not None:
            self.wait_for_earlier(batch.batch_id, {spec.to_key for spec in batch.target.associations})
        for spec in batch.target.associations:
            wanted = [(item, req) for item in written for req in item.links or () if req.spec.index == spec.index]
            wanted = [(item, req) for item, req in wanted if item.object_id is not None]
            if wanted:
                pairs = self._resolve(batch, spec, wanted, rejections, tally)
                if pairs:
                    outcome.associations += self._associate(batch, spec, pairs, rejections, tally)
        rejections.into(outcome)

    def _find_own_ids(
        self, batch: Batch, items: list[PendingInput], rejections: _LinkRejections, tally: RequestTally | None,
    ) -> None:
        """Record ids of written objects HubSpot's answer did not tie to their inputs."""
        if not items:
            return
        target = batch.target
        if target.id_property:
            found, _ = self._read_ids(batch, target.object_type, target.id_property, [i.id for i in items], tally)
            for item in items:
                item.object_id = found.get(item.id)
        for item in items:
            if item.object_id is None:
                message = (
                    f"HubSpot's answer did not say which {target.object_type} object it wrote for this record, "
                    "so its associations were not made; the object itself was written"
                )
                for req in item.links or ():
                    rejections.add(item, req.ref, "ASSOCIATION_NOT_MADE", message, message)

    def _resolve(
        self, batch: Batch, spec: AssociationSpec, wanted: list[tuple[PendingInput, LinkRequest]],
        rejections: _LinkRejections, tally: RequestTally | None,
    ) -> dict[Pair, list[tuple[PendingInput, LinkRequest]]]:
        """The other objects' record ids (cache, then `batch/read`); values without an object are rejected."""
        values = list(dict.fromkeys(req.value for _, req in wanted))
        matcher = self.matcher
        if matcher is not None and (spec.to_key, spec.to_id_property) in matcher.searched_links:
            return self._resolve_searched(batch, spec, wanted, values, rejections, tally)
        if spec.to_id_property == "hs_object_id":
            ids, failures = {v: v for v in values}, dict[str, Failure]()
        else:
            ids, failures = self._lookup(batch, spec, values, tally)
        pairs: dict[Pair, list[tuple[PendingInput, LinkRequest]]] = {}
        object_type = batch.target.object_type
        for item, req in wanted:
            to_id = ids.get(req.value)
            if to_id is not None:
                pairs.setdefault((str(item.object_id), to_id), []).append((item, req))
                continue
            head = f"association {spec.where} (field '{spec.field}')"
            failure = failures.get(req.value)
            if failure is not None:
                rejections.add(
                    item, req.ref, failure.code or failure.category,
                    f"{head}: looking up {spec.to_object_type} {req.value!r} failed: {brief(failure.describe(), 500)}; "
                    + _written(object_type),
                    f"{head}: looking up the {spec.to_object_type} object failed: {failure.describe_safe()}; "
                    + _written(object_type),
                )
                continue
            rejections.add(
                item, req.ref, "ASSOCIATION_TARGET_NOT_FOUND",
                f"{head}: no {spec.to_object_type} object has {spec.to_id_property} = {req.value!r}; "
                + _written(object_type),
                f"{head}: no {spec.to_object_type} object has the {spec.to_id_property} value given "
                "(the value is in rejected_records_path); " + _written(object_type),
            )
        return pairs

    def _resolve_searched(
        self, batch: Batch, spec: AssociationSpec, wanted: list[tuple[PendingInput, LinkRequest]], values: list[str],
        rejections: _LinkRejections, tally: RequestTally | None,
    ) -> dict[Pair, list[tuple[PendingInput, LinkRequest]]]:
        """Pairs to objects found by search (`to_id_property` not unique), by the ambiguity rule of matching.py."""
        assert self.matcher is not None  # noqa: S101 - checked by the caller
        found = self.matcher.link_targets(
            spec.to_object_type, spec.to_key, spec.to_id_property, values, batch.stream, tally,
        )
        pairs: dict[Pair, list[tuple[PendingInput, LinkRequest]]] = {}
        head = f"association {spec.where} (field '{spec.field}')"
        written = _written(batch.target.object_type)
        for item, req in wanted:
            ids = found.get(req.value, [])
            if isinstance(ids, int):
                what = f"{ids} {spec.to_object_type} objects hold {spec.to_id_property}"
                fix = "merge them in HubSpot, or set on_multiple_matches of the stream matching them"
                rejections.add(
                    item, req.ref, "AMBIGUOUS_MATCH", f"{head}: {what} {req.value!r}; {fix}; " + written,
                    f"{head}: {what} given; {fix}; " + written,
                )
            elif not ids:
                rejections.add(
                    item, req.ref, "ASSOCIATION_TARGET_NOT_FOUND",
                    f"{head}: no {spec.to_object_type} object has {spec.to_id_property} = {req.value!r}; " + written,
                    f"{head}: no {spec.to_object_type} object has the {spec.to_id_property} value given "
                    "(the value is in rejected_records_path); " + written,
                )
            for to_id in ids if isinstance(ids, list) else ():
                pairs.setdefault((str(item.object_id), to_id), []).append((item, req))
        return pairs

    def _lookup(
        self, batch: Batch, spec: AssociationSpec, values: list[str], tally: RequestTally | None,
    ) -> tuple[dict[str, str], dict[str, Failure]]:
        """Record ids by value, from the cache or HubSpot; and lookups HubSpot refused."""
        ids: dict[str, str] = {}
        unknown: list[str] = []
        for value in values:
            cached = self.ids.get((spec.to_key, spec.to_id_property, value))
            if cached is not None:
                ids[value] = cached
            else:
                unknown.append(value)
        found, failures = self._read_ids(batch, spec.to_object_type, spec.to_id_property, unknown, tally)
        for value, object_id in found.items():
            self.ids.put((spec.to_key, spec.to_id_property, value), object_id)
        ids.update(found)
        return ids, failures

    def _read_ids(
        self, batch: Batch, object_type: str, id_property: str, values: list[str], tally: RequestTally | None,
    ) -> tuple[dict[str, str], dict[str, Failure]]:
        """`batch/read` by a unique property, 100 values a request: record ids by value (see `match_key`)."""
        found: dict[str, str] = {}
        failures: dict[str, Failure] = {}

        def send(group: list[str]) -> Failure | None:
            response = self.client.batch_read(object_type, id_property, group, stream=batch.stream, tally=tally)
            if response.status == 404:
                return None  # none of them exists
            if not 200 <= response.status < 300:
                return _failure(batch, f"read of {object_type}", response.status, response.body, self.log_values)
            found.update(ids_by_value(response.body, id_property))
            return None

        def reject(value: str, failure: Failure) -> None:
            failures[value] = failure

        for start in range(0, len(values), HUBSPOT_MAX_BATCH):
            bisect_failures(values[start : start + HUBSPOT_MAX_BATCH], send, reject)
        return found, failures

    def _associate(
        self, batch: Batch, spec: AssociationSpec, pairs: dict[Pair, list[tuple[PendingInput, LinkRequest]]],
        rejections: _LinkRejections, tally: RequestTally | None,
    ) -> int:
        """Associate the pairs, 100 a request; return how many HubSpot confirmed.

        A pair counts only when the answer's results name it (its from and to ids), whatever the
        answer's `status`. A pair neither confirmed nor refused is sent again (associating is
        idempotent), at most `MAX_PAIR_RESENDS` times, then rejected ASSOCIATION_NOT_CONFIRMED.
        """
        types = self.types_for(batch.target, spec)
        made = 0
        unconfirmed: list[Pair] = []

        def send(group: list[Pair]) -> Failure | None:
            nonlocal made
            response = self.client.associate(
                batch.target.object_type, spec.to_object_type, group, types, stream=batch.stream, tally=tally,
            )
            if not 200 <= response.status < 300:
                return _failure(batch, "association", response.status, response.body, self.log_values)
            confirmed, refused, unknown = split_answer(group, response.body)
            for pair, failure in refused.items():
                reject(pair, failure)
            made += len(confirmed)
            unconfirmed.extend(unknown)
            return None

        def reject(pair: Pair, failure: Failure) -> None:
            head = f"association {spec.where} (field '{spec.field}')"
            for item, req in pairs[pair]:
                rejections.add(
                    item, req.ref, failure.code or failure.category,
                    f"{head} to {spec.to_object_type} {req.value!r} failed: {brief(failure.describe(), 500)}; "
                    + _written(batch.target.object_type),
                    f"{head} to {spec.to_object_type} failed: {failure.describe_safe()}; "
                    + _written(batch.target.object_type),
                )

        keys = list(pairs)
        for attempt in range(MAX_PAIR_RESENDS + 1):
            if attempt:
                logger.warning(
                    "HubSpot's answer did not confirm %d association(s) of stream '%s' (%s); sending them again.",
                    len(keys), batch.stream, spec.where,
                )
            for start in range(0, len(keys), HUBSPOT_MAX_BATCH):
                bisect_failures(keys[start : start + HUBSPOT_MAX_BATCH], send, reject)
            keys, unconfirmed = unconfirmed, []
        for pair in keys:
            reject(pair, _NOT_CONFIRMED)
        return made


_NOT_CONFIRMED = Failure(
    status=200, category="ASSOCIATION", code="ASSOCIATION_NOT_CONFIRMED",
    message=(
        f"HubSpot answered {MAX_PAIR_RESENDS + 1} requests for this association without confirming it (its "
        "results never named the pair); it may not exist"
    ),
)


def split_answer(group: list[Pair], body: Any) -> tuple[list[Pair], dict[Pair, Failure], list[Pair]]:  # noqa: ANN401
    """The pairs of `group` a 2xx answer confirms (its results name them), refuses (its errors), and leaves open."""
    named = _confirmed_pairs(body) if isinstance(body, dict) else set()
    refused = _refused_pairs(group, body, named)
    confirmed = [pair for pair in group if pair in named and pair not in refused]
    unknown = [pair for pair in group if pair not in named and pair not in refused]
    return confirmed, refused, unknown


def _refused_pairs(group: list[Pair], body: Any, confirmed: set[Pair]) -> dict[Pair, Failure]:  # noqa: ANN401
    """Pairs a 2xx answer's errors refuse: those whose ids an error names; all unconfirmed ones if it names none.

    `confirmed`: the pairs the answer's results name (`_confirmed_pairs`).
    """
    errors = [e for e in (body.get("errors") if isinstance(body, dict) else None) or [] if isinstance(e, dict)]
    if not errors:
        return {}
    refused: dict[Pair, Failure] = {}
    anonymous: list[Failure] = []
    for error in errors:
        failure = Failure.parse(400, error)
        raw_context = error.get("context")
        context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
        named = set(failure.ids) | {str(v) for key in ("fromObjectId", "toObjectId") for v in _listed(context.get(key))}
        hits = [pair for pair in group if pair[0] in named or pair[1] in named]
        for pair in hits:
            refused.setdefault(pair, failure)
        if not hits:
            anonymous.append(failure)
    if anonymous:
        for pair in group:
            if pair not in confirmed:
                refused.setdefault(pair, anonymous[0])
    return refused


def _listed(value: Any) -> Iterable[Any]:  # noqa: ANN401 - context values: a value or a list
    if value is None:
        return ()
    return value if isinstance(value, list) else (value,)


def _confirmed_pairs(body: dict[str, Any]) -> set[Pair]:
    """Pairs a v4 answer's results name (`batch/create`: from/toObjectId; default: from/to.id)."""
    confirmed: set[Pair] = set()
    for result in json_list(body.get("results")):
        if not isinstance(result, dict):
            continue
        if "fromObjectId" in result:
            confirmed.add((str(result.get("fromObjectId")), str(result.get("toObjectId"))))
        else:
            start, end = result.get("from"), result.get("to")
            if isinstance(start, dict) and isinstance(end, dict):
                confirmed.add((str(start.get("id")), str(end.get("id"))))
    return confirmed


def _failure(batch: Batch, action: str, status: int, body: Any, log_values: bool) -> Failure:  # noqa: ANN401 - parsed JSON
    """A failure to isolate the bad inputs from, or the error that stops the run."""
    failure = Failure.parse(status, body)
    if "unable to infer object type" in failure.message.lower():
        msg = (
            f"HubSpot refused a {action} for stream '{batch.stream}': {brief(failure.message, 300)}. "
            "Fix object_mappings."
        )
        raise HubSpotConfigError(msg)
    if status not in ISOLATABLE_STATUSES:
        msg = (
            f"HubSpot answered {status} to a {action} for stream '{batch.stream}': "
            f"{failure.for_fatal_error(log_values)}"
        )
        raise HubSpotFatalError(msg)
    return failure
