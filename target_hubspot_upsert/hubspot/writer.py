"""Send a batch and account for every input: created, updated, skipped, archived or rejected with a reason.

A stream's `write_mode` picks the endpoint: `batch/upsert`, `batch/update` (an id HubSpot does
not have is skipped, not rejected) or `batch/create` (an object whose unique value exists is
skipped). Archives go through `deletes.Archiver`. Partial failures (207, or `errors` in a 200)
are tied back through `objectWriteTraceId`. A whole-batch 400/409 is isolated from what the
error body names (trace ids, ids, property names and values), falling back to bisection: with
one bad input in 100 that costs at most 2·log2(100) extra requests.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

import orjson

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import (
    ARCHIVE,
    CREATED,
    SKIPPED_EXISTS,
    SKIPPED_NOT_FOUND,
    UPDATED,
    Batch,
    BatchOutcome,
    PendingInput,
    json_list,
    match_key,
)
from target_hubspot_upsert.hubspot.client import HubSpotClient, RequestTally
from target_hubspot_upsert.hubspot.deletes import Archiver
from target_hubspot_upsert.hubspot.failures import Failure, isolatable_or_raise, reject_into
from target_hubspot_upsert.hubspot.matching import MatchWriter
from target_hubspot_upsert.hubspot.serialization import BadValue, date_text, datetime_text, number_text

logger = logging.getLogger("target_hubspot_upsert.hubspot.writer")

# A read-back input whose object HubSpot created less than this before the request went out still
# counts as created by it (clocks differ).
READ_BACK_SLACK_S = 5.0
# Codes that make every input carrying the named property invalid, whatever its value.
PROPERTY_WIDE_CODES = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE", "PROPERTY_NOT_FOUND"})


def _mentions(message: str, value: str) -> bool:
    if not value:
        return False
    pattern = r"(?<![\w@.+-])" + re.escape(value) + r"(?![\w@.+-])"
    return re.search(pattern, message) is not None


def skip_kind(write_mode: str, failure: Failure) -> str | None:
    """The skip an error means in this write mode (None: it is a rejection).

    `update` writes only objects that exist: OBJECT_NOT_FOUND is "skipped (not found)".
    `create` writes only new objects: a CONFLICT (the unique value exists) is "skipped (exists)".
    """
    if write_mode == "update" and "OBJECT_NOT_FOUND" in (failure.category, failure.code):
        return SKIPPED_NOT_FOUND
    if write_mode == "create" and (failure.status == 409 or "CONFLICT" in (failure.category, failure.code)):
        return SKIPPED_EXISTS
    return None


def wire(batch: Batch, item: PendingInput) -> dict[str, Any]:
    """One input in the body of the batch's endpoint."""
    if batch.target.write_mode == "create":
        # `associations` is required by HubSpot's model (SimplePublicObjectBatchInputForCreate): none here,
        # associations are written afterwards through the v4 endpoints.
        return {"properties": item.properties, "associations": [], "objectWriteTraceId": item.trace}
    return item.wire(batch.target.id_property)


class BatchWriter:
    """Writes one batch through the client, isolating bad inputs from good ones."""

    def __init__(
        self, client: HubSpotClient, *, max_resends: int = 2, on_archived: Callable[[str], None] | None = None,
        log_values: bool = False, property_type: Callable[[ObjectTarget, str], str | None] | None = None,
        matcher: MatchWriter | None = None,
    ) -> None:
        """`max_resends`: how often inputs missing from a 2xx answer are sent again.

        `on_archived(object type)` is told when objects of a type were archived. `log_values` (the
        `log_record_values` setting): fatal errors quote HubSpot's message, which may hold record
        values; otherwise they name its error code and properties only. `property_type(target,
        name)` is a property's HubSpot type, so read-backs compare values in HubSpot's spelling for
        that type (without it, only the same text counts).
        """
        self.client = client
        self.property_type = property_type
        self.max_resends = max_resends
        self.archiver = Archiver(client, on_archived=on_archived, log_values=log_values)
        self.log_values = log_values
        self.matcher = matcher  # streams with match_property (objects found through search)

    def write(self, batch: Batch, tally: RequestTally | None = None) -> BatchOutcome:
        """Write (or archive) `batch` and return what happened to each of its inputs."""
        outcome = BatchOutcome(write_mode=batch.target.write_mode)
        for index, item in enumerate(batch.inputs):
            item.trace = f"{batch.batch_id}-{index}"
        batch.sent_at = time.time()
        matcher = self.matcher if batch.target.match_property else None
        if batch.op == ARCHIVE:
            if matcher is not None:
                matcher.archive(batch, outcome, tally, self.archiver)
            else:
                self.archiver.archive(batch, outcome, tally)
        elif matcher is not None:
            matcher.write(batch, outcome, tally, lambda b, g, o, t: self._settle(b, g, o, t, resends=0))
        else:
            self._settle(batch, list(batch.inputs), outcome, tally, resends=0)
        return outcome

    # --- sending ------------------------------------------------------------------------

    def _send(
        self, batch: Batch, group: list[PendingInput], outcome: BatchOutcome,
        tally: RequestTally | None, resends: int,
    ) -> Failure | None:
        """Send `group`; apply a 2xx answer and return None, or return the failure."""
        target = batch.target
        try:
            if target.write_mode == "create":
                inputs = [wire(batch, item) for item in group]
            else:  # `wire`, one call fewer per input
                id_property = target.id_property
                inputs = [item.wire(id_property) for item in group]
            # With the id property named, the answer is read for what ties its results only.
            if target.write_mode == "upsert":
                response = self.client.batch_upsert(
                    target.object_type, inputs, stream=batch.stream, tally=tally, id_property=target.id_property,
                )
            else:
                response = self.client.batch_write(
                    target.object_type, target.write_mode, inputs, stream=batch.stream, tally=tally,
                    id_property=target.id_property,
                )
        except orjson.JSONEncodeError:
            self._unencodable(batch, group, outcome, tally, resends)
            return None
        if 200 <= response.status < 300:
            self._apply(batch, group, response.body, outcome, tally, resends)
            return None
        failure = Failure.parse(response.status, response.body)
        if response.status == 404 and skip_kind(target.write_mode, failure) is not None:
            for item in group:  # all ids unknown, answered as one 404
                self._reject(outcome, item, failure)
            return None
        return self._failure(batch, response.status, failure)

    def _failure(self, batch: Batch, status: int, failure: Failure) -> Failure:
        """A failure the batch's inputs can be isolated from, or the error that stops the run."""
        mode, target = batch.target.write_mode, batch.target
        return isolatable_or_raise(
            batch, status, failure, action=mode,
            cannot=f"{mode} '{target.object_type}' by '{target.id_property}'", log_values=self.log_values,
        )

    def _unencodable(
        self, batch: Batch, group: list[PendingInput], outcome: BatchOutcome,
        tally: RequestTally | None, resends: int,
    ) -> None:
        """Reject the inputs whose text cannot be sent as JSON (invalid Unicode); send the rest."""
        failure = Failure(
            status=0, category="LOCAL_VALIDATION", code="INVALID_VALUE",
            message=(
                "a value holds text that is not valid Unicode (a lone surrogate or a byte that "
                "is not UTF-8); fix the encoding in the source"
            ),
        )
        good = []
        for item in group:
            try:
                orjson.dumps(wire(batch, item))
            except orjson.JSONEncodeError:
                self._reject(outcome, item, failure)
            else:
                good.append(item)
        if good:
            self._settle(batch, good, outcome, tally, resends)

    def _settle(
        self, batch: Batch, group: list[PendingInput], outcome: BatchOutcome,
        tally: RequestTally | None, resends: int,
    ) -> None:
        failure = self._send(batch, group, outcome, tally, resends)
        if failure is not None:
            self._isolate(batch, group, failure, outcome, tally, resends)

    def _isolate(
        self, batch: Batch, group: list[PendingInput], failure: Failure, outcome: BatchOutcome,
        tally: RequestTally | None, resends: int,
    ) -> None:
        """`group` is known to fail as a whole with `failure`: pull out the bad inputs."""
        culprits, suspects, deferred = self._identify(group, failure)
        if deferred:
            # HubSpot saw duplicate ids we could not merge (it normalizes ids differently):
            # send the later duplicates in a request of their own.
            rest = [item for item in group if item not in deferred]
            if rest:
                self._settle(batch, rest, outcome, tally, resends)
            self._settle(batch, deferred, outcome, tally, resends)
            return
        if culprits:
            for item in culprits:
                self._reject(outcome, item, failure)
            rest = [item for item in group if item not in culprits]
            if rest:
                self._settle(batch, rest, outcome, tally, resends)
            return
        if suspects and len(suspects) < len(group):
            clean = [item for item in group if item not in suspects]
            self._settle(batch, clean, outcome, tally, resends)
            group = suspects
        if len(group) == 1:
            self._reject(outcome, group[0], failure)
            return
        # Bisection. When the left half lands, the right half must hold the bad input: it is
        # split further without being sent whole, which keeps the cost at ~2 requests a level.
        middle = len(group) // 2
        left, right = group[:middle], group[middle:]
        left_failure = self._send(batch, left, outcome, tally, resends)
        if left_failure is None:
            self._isolate(batch, right, failure, outcome, tally, resends)
        else:
            self._isolate(batch, left, left_failure, outcome, tally, resends)
            self._settle(batch, right, outcome, tally, resends)

    def _identify(
        self, group: list[PendingInput], failure: Failure,
    ) -> tuple[list[PendingInput], list[PendingInput], list[PendingInput]]:
        """Return (culprits, suspects, deferred duplicates) from what the error names."""
        if failure.traces:
            traced = [item for item in group if item.trace in failure.traces]
            if traced:
                return traced, [], []
        deferred = _later_duplicates(group, failure.ids)
        if deferred:
            return [], [], deferred
        culprits, suspects = _named_by_details(group, failure)
        return _unique(culprits), _unique(suspects), []

    # --- 2xx answers --------------------------------------------------------------------

    def _apply(
        self, batch: Batch, group: list[PendingInput], body: Any, outcome: BatchOutcome,  # noqa: ANN401
        tally: RequestTally | None, resends: int,
    ) -> None:
        """Account for a 2xx answer: the results and errors it ties to inputs, then the inputs it does not tie.

        Whatever the answer's `status` (`COMPLETE`, `CANCELED`, `PENDING`), only what its results
        and errors tie to an input counts; nothing is ever settled by position.
        """
        body = body if isinstance(body, dict) else {}
        by_trace = {item.trace: item for item in group}
        id_property = batch.target.id_property
        by_id = IdIndex(group, id_property)
        ties = tie_results(batch, body, by_trace, by_id)
        done = {item.trace for item, _ in ties}
        _land(batch.target.write_mode, ties)
        unmatched = self._apply_errors(body, id_property, by_trace, by_id, done, outcome)
        missing = [item for item in group if item.trace not in done]
        if missing:
            self._settle_missing(batch, missing, unmatched, outcome, tally, resends)

    def _apply_errors(
        self, body: dict, id_property: str, by_trace: dict[str, PendingInput], by_id: ById,
        done: set[str], outcome: BatchOutcome,
    ) -> list[Failure]:
        """Reject the inputs each per-input error names; return the errors that name none."""
        unmatched: list[Failure] = []
        for error in json_list(body.get("errors")):
            failure = Failure.parse(400, error)
            items = [by_trace[t] for t in failure.traces if t in by_trace]
            if not items and failure.ids:
                keys = (match_key(id_property, i) for i in failure.ids)
                items = [found for k in keys if (found := by_id.get(k)) is not None]
            items = [item for item in items if item.trace not in done]
            if not items:
                unmatched.append(failure)
            for item in items:
                done.add(item.trace)
                self._reject(outcome, item, failure)
        return unmatched

    def _settle_missing(
        self, batch: Batch, missing: list[PendingInput], unmatched: list[Failure],
        outcome: BatchOutcome, tally: RequestTally | None, resends: int,
    ) -> None:
        """Inputs a 2xx answer did not tie to a result or an error.

        Each is read back (by its unique property) and counts only when HubSpot holds the values
        sent; the rest are sent again (upserts and updates are idempotent; a create without a
        unique property is not, so it is never sent twice) and finally rejected NOT_ACKNOWLEDGED.
        """
        if len(missing) == 1 and len(unmatched) == 1:
            self._reject(outcome, missing[0], unmatched[0])  # the one error is this input's
            return
        target = batch.target
        if target.id_property:
            missing = self._read_back(batch, missing, tally)
            if not missing:
                return
        repeatable = bool(target.id_property) or target.write_mode != "create"
        if repeatable and resends < self.max_resends:
            logger.warning(
                "HubSpot's answer did not confirm %d input(s) of stream '%s' (no result or error tied to them); "
                "sending them again.", len(missing), batch.stream,
            )
            self._settle(batch, missing, outcome, tally, resends + 1)
            return
        if unmatched:
            reason = unmatched[0]
        elif repeatable:
            reason = not_acknowledged(
                f"HubSpot answered {self.max_resends + 1} requests for this input without a result tied to it "
                "(by objectWriteTraceId or id value), and reading it back did not show the values sent; it "
                "was not confirmed written"
            )
        else:
            reason = not_acknowledged(
                "HubSpot's answer did not tie a result to this create (by objectWriteTraceId); it was not sent "
                "again, since a second create could make a duplicate: check HubSpot for the object"
            )
        for item in missing:
            self._reject(outcome, item, reason)

    def _read_back(self, batch: Batch, items: list[PendingInput], tally: RequestTally | None) -> list[PendingInput]:
        """Count the inputs HubSpot holds with the values sent (`batch/read`); return the others."""
        target = batch.target
        id_property = target.id_property
        names = sorted({name for item in items for name in item.properties} | {id_property})
        response = self.client.batch_read(
            target.object_type, id_property, [item.id for item in items], properties=names,
            stream=batch.stream, tally=tally,
        )
        if not 200 <= response.status < 300 or not isinstance(response.body, dict):
            return items
        held: dict[str, dict] = {}
        for result in json_list(response.body.get("results")):
            props = result.get("properties") if isinstance(result, dict) else None
            value = props.get(id_property) if isinstance(props, dict) else None
            if value is not None and result.get("id") not in (None, ""):
                held.setdefault(match_key(id_property, str(value)), result)
        unconfirmed = []
        kind_of = functools.partial(self.property_type, target) if self.property_type else lambda _name: None
        for item in items:
            result = held.get(match_key(id_property, item.id))
            if result is None or not holds_values(result.get("properties"), item.properties, kind_of):
                unconfirmed.append(item)
                continue
            item.object_id = str(result["id"])
            item.result = read_back_result(target.write_mode, result, batch.sent_at)
        if len(unconfirmed) < len(items):
            logger.info(
                "Stream '%s': %d input(s) HubSpot's answer did not confirm were read back and hold the values sent.",
                batch.stream, len(items) - len(unconfirmed),
            )
        return unconfirmed

    @staticmethod
    def _reject(outcome: BatchOutcome, item: PendingInput, failure: Failure) -> None:
        kind = skip_kind(outcome.write_mode, failure)
        if kind is not None:
            item.result = kind
            return
        reject_into(outcome, item, failure)


def _later_duplicates(group: list[PendingInput], ids: list[str]) -> list[PendingInput]:
    """Inputs whose id HubSpot named as duplicated, after the first of each (ids it normalizes)."""
    named = {i.lower() for i in ids}
    seen: set[str] = set()
    deferred = []
    for item in group:
        key = item.id.lower()
        if key in named:
            if key in seen:
                deferred.append(item)
            seen.add(key)
    return deferred


def _named_by_details(group: list[PendingInput], failure: Failure) -> tuple[list[PendingInput], list[PendingInput]]:
    """Culprits (named by property and value, or by email) and suspects (by property only)."""
    culprits: list[PendingInput] = []
    suspects: list[PendingInput] = []
    message_text = failure.message + " " + " ".join(d.message for d in failure.details)
    for detail in failure.details:
        name = detail.property
        if not name:
            continue
        having = [item for item in group if name in item.properties]
        if detail.code in PROPERTY_WIDE_CODES:
            culprits.extend(having)
            continue
        by_value = [item for item in having if _mentions(message_text, item.properties[name])]
        if by_value and len(by_value) < len(group):
            culprits.extend(by_value)
        else:
            suspects.extend(having)
    if not culprits and "email" in message_text.lower():
        culprits = [
            item for item in group
            if _mentions(message_text, item.id) or _mentions(message_text, item.properties.get("email", ""))
        ]
        if len(culprits) == len(group) and len(group) > 1:
            culprits = []
    return culprits, suspects


class ById(Protocol):
    """A group's inputs by id value (as `match_key` gives it)."""

    def get(self, key: str, /) -> PendingInput | None:
        """The input with that id value, or None."""
        ...


class IdIndex:
    """A group's inputs by id value, made on first use: most answers tie every result by its trace id."""

    __slots__ = ("_group", "_id_property", "_index")

    def __init__(self, group: list[PendingInput], id_property: str) -> None:
        """Index `group` by `id_property` values when first asked."""
        self._group = group
        self._id_property = id_property
        self._index: dict[str, PendingInput] | None = None

    def get(self, key: str, /) -> PendingInput | None:
        """The input whose id value is `key`, or None."""
        if self._index is None:
            id_property = self._id_property
            self._index = {match_key(id_property, item.id): item for item in self._group if item.id}
        return self._index.get(key)


def tie_results(
    batch: Batch, body: dict, by_trace: dict[str, PendingInput], by_id: ById,
) -> list[tuple[PendingInput, dict]]:
    """The (input, result) pairs an answer ties one to one.

    A result is tied to an input by its `objectWriteTraceId`, or, when it carries none, by its
    id-property value; a result whose id value contradicts its trace id ties nothing. A second
    result for an input already tied (a duplicate) and a result tied to no input (an extra) are
    ignored. When one object id is claimed by results for two different inputs, neither is tied.
    """
    id_property = batch.target.id_property
    ties: dict[str, tuple[PendingInput, dict]] = {}
    claimed: dict[str, str] = {}  # trace id -> the object id its result names
    owners: dict[str, str] = {}  # object id -> the first trace id tied to it
    shared: set[str] = set()  # object ids named by the results of two different inputs
    for result in json_list(body.get("results")):
        if not isinstance(result, dict):
            continue
        props = result.get("properties")
        value = props.get(id_property) if id_property and isinstance(props, dict) else None
        trace = result.get("objectWriteTraceId")
        if trace not in (None, ""):
            item = by_trace.get(trace if type(trace) is str else str(trace))
            # The id value as sent (the serializer lowercases emails) ties at once; any other is
            # compared in its matching form.
            if item is not None and value is not None and value != item.id:
                value_key = match_key(id_property, str(value))
                if value_key != item.id and value_key != match_key(id_property, item.id):
                    item = None  # the result is some other object's
        else:
            item = by_id.get(match_key(id_property, str(value))) if value is not None else None
        if item is None or item.trace in ties:
            continue
        trace = item.trace
        ties[trace] = (item, result)
        object_id = result.get("id")
        if object_id not in (None, ""):
            object_id = claimed[trace] = object_id if type(object_id) is str else str(object_id)
            if owners.setdefault(object_id, trace) != trace:
                shared.add(object_id)
    if not shared:
        return list(ties.values())
    return [tie for trace, tie in ties.items() if claimed.get(trace) not in shared]


def not_acknowledged(message: str) -> Failure:
    """The reason for an input HubSpot never confirmed."""
    return Failure(status=200, category="NOT_ACKNOWLEDGED", code="NOT_ACKNOWLEDGED", message=message)


def holds_values(
    held: Any, sent: dict[str, str], kind_of: Callable[[str], str | None] = lambda _name: None,  # noqa: ANN401
) -> bool:
    """Whether the properties HubSpot returned hold every value that was sent (in HubSpot's spelling).

    `kind_of(name)` is the property's HubSpot type when known (`number`, `date`, `datetime`...).
    """
    if not isinstance(held, dict):
        return False
    return all(same_value(value, held.get(name), kind_of(name), name) for name, value in sent.items())


def same_value(sent: str, held: Any, kind: str | None = None, name: str = "") -> bool:  # noqa: ANN401 - parsed JSON
    """`sent` (a wire value) and what HubSpot returned are the same value.

    HubSpot answers with its own spelling of some values, by the property's type: numbers
    (`1.50` as `1.5`), dates and date-times (ISO with milliseconds, or epoch milliseconds), the
    contact's email in lower case, and a cleared value as null or "". Any other value must be the
    same text: a text property holding `1234` does not hold `01234`.
    """
    if held is None:
        return sent == ""
    text = str(held)
    if text == sent or (name == "email" and text == sent.strip().lower()):
        return True
    convert = _CANONICAL.get(kind or "")
    if convert is None:
        return False
    try:
        # Both in the serializer's spelling; HubSpot may answer a date or date-time in epoch milliseconds.
        return convert(int(text) if text.isdigit() else text) == convert(sent)
    except BadValue:
        return False


#: The serializer's conversion of the property types whose values HubSpot spells its own way.
_CANONICAL: dict[str, Callable[[Any], str]] = {"number": number_text, "date": date_text, "datetime": datetime_text}


def read_back_result(write_mode: str, result: dict, sent_at: float) -> str:
    """What a read-back input counts as: created when HubSpot created the object after the request went out."""
    try:
        created_at = datetime.fromisoformat(str(result.get("createdAt") or "")).timestamp()
    except ValueError:
        created_at = None
    new = created_at is not None and created_at >= sent_at - READ_BACK_SLACK_S
    if write_mode == "create":
        return CREATED if new else SKIPPED_EXISTS
    if write_mode == "update":
        return UPDATED
    return CREATED if new else UPDATED


def _land(write_mode: str, ties: list[tuple[PendingInput, dict]]) -> None:
    """Note what each result tied to an input says happened to it, and its record id."""
    fixed = None if write_mode == "upsert" else CREATED if write_mode == "create" else UPDATED
    for item, result in ties:
        item.result = fixed or (CREATED if result.get("new") is True else UPDATED)
        object_id = result.get("id")
        if object_id in (None, ""):
            item.object_id = None
        else:
            item.object_id = object_id if type(object_id) is str else str(object_id)


def _unique(items: Iterable[PendingInput]) -> list[PendingInput]:
    seen: set[str] = set()
    result = []
    for item in items:
        if item.trace not in seen:
            seen.add(item.trace)
            result.append(item)
    return result
