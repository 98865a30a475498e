"""HubSpot error bodies, read defensively; and bisection of inputs a request refuses as a whole."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from target_hubspot_upsert.core.errors import HubSpotConfigError, HubSpotFatalError, brief
from target_hubspot_upsert.core.model import Batch, BatchOutcome, PendingInput, json_list

#: Whole-request answers whose bad inputs can be isolated; any other failure stops the run.
ISOLATABLE_STATUSES = frozenset({400, 409, 422})

_EMBEDDED_JSON = re.compile(r"\[\{.*\}\]", re.DOTALL)
T = TypeVar("T")


def _as_list(value: Any) -> list[str]:  # noqa: ANN401 - HubSpot context values: str or list
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


@dataclass
class Detail:
    """One problem named by an error body."""

    code: str
    message: str
    property: str | None = None


@dataclass
class Failure:
    """A request-level failure, parsed from whatever fields HubSpot filled in (all optional)."""

    status: int
    category: str
    message: str
    code: str
    traces: set[str] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)
    details: list[Detail] = field(default_factory=list)

    @classmethod
    def parse(cls, status: int, body: Any) -> Failure:  # noqa: ANN401
        """Read a HubSpot error body defensively."""
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or f"HTTP {status}")
        category = str(body.get("category") or body.get("status") or "ERROR")
        failure = cls(status=status, category=category, message=message, code="")
        raw_context = body.get("context")
        context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
        failure.traces.update(_as_list(context.get("objectWriteTraceId")))
        failure.ids.extend(_as_list(context.get("ids")))
        for err in json_list(body.get("errors")):
            if not isinstance(err, dict):
                continue
            raw_context = err.get("context")
            err_context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
            failure.traces.update(_as_list(err_context.get("objectWriteTraceId")))
            code = str(err.get("code") or err.get("subCategory") or "")
            names: list[str | None] = [*_as_list(err_context.get("propertyName"))] or [None]
            for name in names:
                failure.details.append(Detail(code, str(err.get("message") or message), name))
        # HubSpot often embeds the per-property problems as JSON inside the message text.
        match = _EMBEDDED_JSON.search(message)
        if match:
            try:
                embedded = json.loads(match.group(0))
            except ValueError:
                embedded = []
            for item in embedded if isinstance(embedded, list) else []:
                if isinstance(item, dict):
                    failure.details.append(
                        Detail(str(item.get("error") or ""), str(item.get("message") or ""), item.get("name"))
                    )
        codes = [d.code for d in failure.details if d.code]
        # Codes live in errors[].code (above), else in subCategory, else the category names the problem:
        # HubSpot's StandardError and Error models have no other code field.
        sub_category = body.get("subCategory")
        fallback = sub_category if isinstance(sub_category, str) and sub_category else category
        failure.code = codes[0] if codes else fallback
        return failure

    def describe(self) -> str:
        """One line for reports: the detail messages when there are any."""
        messages = [d.message for d in self.details if d.message]
        return "; ".join(dict.fromkeys(messages)) if messages else self.message

    def describe_safe(self) -> str:
        """The error code and property names only: HubSpot's messages quote record values."""
        if self.status in (0, 200):  # our own reasons, which never quote values
            return self.message
        return f"HubSpot rejected it ({self.code_and_properties()})"

    def code_and_properties(self) -> str:
        """`CODE for 'a', 'b'`: what names the problem without quoting any value."""
        props = sorted({d.property for d in self.details if d.property})
        named = f" for {', '.join(repr(p) for p in props)}" if props else ""
        return f"{self.code or self.category}{named}"

    def for_fatal_error(self, log_values: bool) -> str:
        """What an error that stops the run says of HubSpot's answer: its words only if values may be logged."""
        return brief(self.message, 300) if log_values else self.code_and_properties()


def bisect_failures(
    group: list[T], send: Callable[[list[T]], Failure | None], reject: Callable[[T, Failure], None],
) -> None:
    """Send `group`; when HubSpot refuses it whole, send halves until each bad input is alone, and reject it.

    With one bad input among n this costs about 2·log2(n) extra requests.
    """
    failure = send(group)
    if failure is None:
        return
    if len(group) == 1:
        reject(group[0], failure)
        return
    middle = len(group) // 2
    bisect_failures(group[:middle], send, reject)
    bisect_failures(group[middle:], send, reject)


def isolatable_or_raise(
    batch: Batch, status: int, failure: Failure, *, action: str, cannot: str, log_values: bool,
    unknown_type_on_404: bool = True,
) -> Failure:
    """A whole-request failure the batch's inputs can be isolated from, or the error that stops the run.

    `action` names the request in fatal messages (`upsert`, `archive`); `cannot` says what HubSpot
    could not do when the id property is not unique (`upsert 'contacts' by 'email'`).
    """
    target = batch.target
    lowered = failure.message.lower()
    if "unable to infer object type" in lowered or (unknown_type_on_404 and status == 404):
        msg = (
            f"HubSpot does not know object type '{target.object_type}' (stream '{batch.stream}'): "
            f"{brief(failure.message, 300)}. Fix object_mappings.{batch.stream}.object_type."
        )
        raise HubSpotConfigError(msg)
    if "non-unique" in lowered or "non-existent property" in lowered:
        msg = (
            f"HubSpot cannot {cannot} (stream '{batch.stream}'): {brief(failure.message, 300)}. Set "
            f"object_mappings.{batch.stream}.id_property to a property with unique values."
        )
        raise HubSpotConfigError(msg)
    if status not in ISOLATABLE_STATUSES:
        msg = (
            f"HubSpot answered {status} to a batch {action} of '{target.object_type}' "
            f"(stream '{batch.stream}'): {failure.for_fatal_error(log_values)}"
        )
        raise HubSpotFatalError(msg)
    return failure


def reject_into(outcome: BatchOutcome, item: PendingInput, failure: Failure) -> None:
    """Count `item` as rejected in `outcome`, for HubSpot's reason in `failure`.

    HubSpot's words are shortened: a record's reason is a line, not a copy of an answer.
    """
    reason = brief(failure.describe(), 1000)
    outcome.rejected.append((item, failure.category, failure.code or failure.category, reason, failure.describe_safe()))
