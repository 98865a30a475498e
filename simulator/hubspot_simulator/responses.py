"""HTTP answers and the error bodies HubSpot (and its edge) send."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# A prebuilt encoder: json.dumps() with arguments builds a new one per call (slow).
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)

JSON = "application/json;charset=utf-8"

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    207: "Multi-Status",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Response:
    """One answer: status, JSON object (or text), extra headers; ``drop`` closes instead, ``play`` writes it."""

    __slots__ = ("body", "content_type", "drop", "headers", "obj", "play", "status")

    def __init__(
        self,
        status: int,
        obj: Any = None,
        *,
        text: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        drop: bool = False,
        content_type: str = JSON,
        play: Callable[[io.BufferedIOBase], None] | None = None,
    ) -> None:
        self.status = status
        self.obj = obj
        self.headers = headers if headers is not None else []
        self.drop = drop
        self.play = play  # writes the whole answer itself (hostile modes), instead of body and headers
        if text is not None:
            self.body = text.encode()
            self.content_type = content_type if content_type.startswith("text/") else "text/plain;charset=utf-8"
        elif obj is None and status == 204:
            self.body = b""
            self.content_type = content_type
        else:
            self.body = _ENCODER.encode(obj).encode()
            self.content_type = content_type


def now_iso() -> str:
    """The current UTC time as HubSpot writes it (millisecond precision, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def no_results(started: str, status: str = "COMPLETE", code: int = 200) -> Response:
    """A batch answer that confirms nothing: ``status`` with empty ``results``, started at ``started``."""
    return Response(code, {"status": status, "results": [], "startedAt": started, "completedAt": now_iso()})


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot puts in every error body."""
    return str(uuid.uuid4())


def error(status: int, message: str, category: str | None = "VALIDATION_ERROR", **extra: Any) -> Response:
    """HubSpot's standard error body."""
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation_id()}
    body.update(extra)
    if category is not None:
        body["category"] = category
    return Response(status, body)


def standard_error(
    category: str,
    message: str,
    context: dict[str, list[str]],
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One per-input item of a batch answer's ``errors[]``, as HubSpot's ``StandardError`` model has it.

    Codes go in ``errors[].code`` (each detail may name its property in ``in`` and ``context``);
    the item itself has no code field. ``extra``: optional fields of the model (``subCategory``).
    """
    item: dict[str, Any] = {"status": "error", "category": category, "message": message, "context": context}
    item.update(extra)
    item["errors"] = errors if errors is not None else []
    item["links"] = {}
    return item


def error_detail(message: str, code: str, prop: str | None = None, **context: list[str]) -> dict[str, Any]:
    """One ``ErrorDetail``: a message and code, with the property it is about in ``in`` and ``context``."""
    detail: dict[str, Any] = {"message": message, "code": code}
    if prop is not None:
        detail["in"] = prop
        context = {"propertyName": [prop], **context}
    if context:
        detail["context"] = context
    return detail


def not_found(path: str) -> Response:
    """The answer to a path no route knows."""
    return error(404, f"Not found: {path}", "OBJECT_NOT_FOUND")


def method_not_allowed(method: str) -> Response:
    """The answer to a known path called with the wrong method."""
    return error(405, f"Method {method} not allowed", "VALIDATION_ERROR")


def rate_limited(policy: str) -> Response:
    """The 429 body of the ``TEN_SECONDLY_ROLLING``, ``DAILY`` or ``SECONDLY`` (search) policy."""
    if policy == "DAILY":
        message = "You have reached your daily limit."
    elif policy == "SECONDLY":
        message = "You have reached your secondly limit."
    else:
        message, policy = "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"
    body = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        # HubSpot's Error model requires a category; the rate-limit guide adds errorType and policyName.
        "category": "RATE_LIMITS",
        "policyName": policy,
        "groupName": "api-calls",
    }
    return Response(429, body)


def fault_response(status: int) -> Response:
    """The body HubSpot (or its edge) sends for an injected error status."""
    if status == 423:
        return error(423, "Resource locked", "LOCKED")
    if status == 429:
        return rate_limited("TEN_SECONDLY_ROLLING")
    if status == 502:
        html = (
            "<html><head><title>502 Bad Gateway</title></head><body>"
            "<center><h1>502 Bad Gateway</h1></center></body></html>"
        )
        return Response(502, text=html, content_type="text/html;charset=utf-8")
    if status == 504:
        return Response(504, text="upstream request timeout")
    if status == 503:
        return error(503, "Service Unavailable. Please try again later.", "SERVICE_UNAVAILABLE")
    if status >= 500:
        return error(status, "internal error", "INTERNAL_ERROR")
    return error(status, f"Injected error {status}", "VALIDATION_ERROR" if status == 400 else "ERROR")


def parse_json_or_none(body: bytes) -> Any:
    """The parsed JSON body, or None when empty or invalid."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def fmt_number(v: float) -> str:
    """A number as a header value: no ``.0`` on whole numbers."""
    return str(int(v)) if float(v).is_integer() else str(v)
