"""HubSpot HTTP client: wire format, auth, rate limiting and metrics. Knows nothing of Singer.

Every request goes through the shared transport (`transport.py`) and retry loop (`retry.py`).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from target_hubspot_upsert.core.errors import DailyLimitReached, HubSpotAuthError, brief
from target_hubspot_upsert.core.model import json_list
from target_hubspot_upsert.http.auth import OAuthTokenProvider, TokenProvider
from target_hubspot_upsert.http.ratelimit import RateLimiter
from target_hubspot_upsert.http.requestmetrics import RequestMetrics
from target_hubspot_upsert.http.retry import (
    Action,
    Attempt,
    AttemptHooks,
    Decision,
    Request,
    RetryLoop,
    parse_body,
    retry_after_seconds,
    should_retry,
)
from target_hubspot_upsert.http.transport import Transport

__all__ = [
    "Action", "ApiResponse", "HubSpotClient", "RequestTally", "retry_after_seconds", "should_retry",
]



@functools.cache
def write_answer_reader(id_property: str) -> Callable[[bytes], Any]:
    """How a 2xx batch upsert, update or create answer is read: only what ties results to inputs.

    HubSpot's answer (BatchResponseSimplePublicUpsertObject, BatchResponseSimplePublicObject)
    repeats every property of every object; reading each of them costs more than the rest of
    the answer's handling. Of each result this keeps `id`, `objectWriteTraceId`, `new` and the
    id property's value, of the answer `status` and `errors`, as the same dicts and lists any
    JSON reading would give (a key left out is one that was absent or null). An answer of any
    other shape (a result that is not an object, properties that are not one, not JSON, nested
    too deeply to read) is read as any JSON, by `parse_body`, and judged from that. Two readings
    differ from orjson's, both kept as HubSpot wrote them: integers beyond 64 bits stay exact,
    and text that is not UTF-8 in a part not kept does not discard the answer.
    """
    fields: list[tuple[str, Any, Any]] = [("id", Any, None), ("objectWriteTraceId", Any, None), ("new", Any, None)]
    if id_property:
        value = msgspec.defstruct("IdValue", [("value", Any, None)], rename={"value": id_property}, omit_defaults=True)
        fields.append(("properties", value | None, None))
    result = msgspec.defstruct("WriteResult", fields, omit_defaults=True)
    results = list[result] | None  # type: ignore[valid-type]  # a type made at run time
    answer = msgspec.defstruct(
        "WriteAnswer", [("status", Any, None), ("results", results, None), ("errors", Any, None)], omit_defaults=True,
    )
    decode, to_builtins = msgspec.json.Decoder(answer).decode, msgspec.to_builtins

    def read(content: bytes) -> Any:  # noqa: ANN401 - parsed JSON
        try:
            return to_builtins(decode(content))
        except (msgspec.MsgspecError, RecursionError):  # not HubSpot's documented shape, not JSON, too deep
            return parse_body(content)

    return read


@dataclass
class ApiResponse:
    """A parsed HubSpot answer handed back to the caller."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def message(self) -> str:
        """HubSpot's `message`, shortened ("" when the answer has none)."""
        return brief(str(self.body.get("message") or "")) if isinstance(self.body, dict) else ""


@dataclass
class RequestTally:
    """Counters one caller (a stream) keeps of its requests."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, retries: int = 0, rate_limited: int = 0) -> None:
        """Add counts thread-safely."""
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.rate_limited += rate_limited


def _auth_message(status: int, body: Any, auth_kind: str) -> str:  # noqa: ANN401
    body = body if isinstance(body, dict) else {}
    category = body.get("category") or ""
    hub_message = brief(str(body.get("message") or ""))
    setting = (
        "access_token"
        if auth_kind == "access_token"
        else "client_id / client_secret / refresh_token"
    )
    if status == 403:
        scopes: list[str] = []
        for err in json_list(body.get("errors")):
            context = err.get("context") if isinstance(err, dict) else None
            if isinstance(context, dict):
                for key in ("requiredGranularScopes", "requiredScopes", "scopes"):
                    scopes.extend(str(s) for s in context.get(key) or [])
        scope_text = (
            f"it lacks the scope(s) {', '.join(dict.fromkeys(scopes))}"
            if scopes
            else "it lacks a required scope"
        )
        return (
            f"HubSpot refused the request (403 {category or 'FORBIDDEN'}): {scope_text}. "
            f"Grant the scope to the app behind the {setting} setting and run again. "
            f"HubSpot said: {hub_message}"
        )
    what = (
        "expired"
        if category == "EXPIRED_AUTHENTICATION"
        else "missing, invalid or revoked"
    )
    return (
        f"HubSpot rejected the credentials (401 {category or 'UNAUTHORIZED'}): the token is "
        f"{what}. Check the {setting} setting. HubSpot said: {hub_message}"
    )


class HubSpotClient:
    """Thread-safe HubSpot CRM client used by all sinks of a run."""

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 60.0,
        max_retries: int = 8,
        api_version: str = "v3",
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        user_agent: str = "target-hubspot-upsert",
        pool_size: int = 10,
        transport: Transport | None = None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        """Create a client; no request is made until one is needed.

        `transport` is shared with the OAuth token provider when given; `timeout`, `user_agent`
        and `pool_size` configure a new one otherwise.
        """
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.limiter = limiter or RateLimiter(None)
        self.api_version = api_version
        self.transport = transport or Transport(timeout=timeout, pool_size=pool_size, user_agent=user_agent)
        self._loop = RetryLoop(
            self.transport, max_retries=max_retries, sleep=sleep, rand=rand,
            window_s=lambda: self.limiter.window_s,
        )
        self.metrics = metrics or RequestMetrics()
        self.totals = RequestTally()

    # --- paths --------------------------------------------------------------------------

    def objects_path(self, object_type: str, action: str) -> str:
        """Path of an object endpoint (`batch/read`, ...) for the configured API version."""
        ot = quote(object_type, safe="")
        if self.api_version == "v3":
            return f"/crm/v3/objects/{ot}/{action}"
        return f"/crm/objects/{self.api_version}/{ot}/{action}"

    def properties_path(self, object_type: str, suffix: str = "") -> str:
        """Path of the properties endpoints for the configured API version."""
        ot = quote(object_type, safe="")
        if self.api_version == "v3":
            return f"/crm/v3/properties/{ot}{suffix}"
        return f"/crm/properties/{self.api_version}/{ot}{suffix}"

    # --- HTTP ---------------------------------------------------------------------------

    def close(self) -> None:
        """Log the request metrics not logged yet."""
        self.metrics.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,  # noqa: ANN401
        endpoint: str | None = None,
        stream: str | None = None,
        tally: RequestTally | None = None,
        attempts: Callable[[HubSpotClient, str, str | None, RequestTally | None], _ApiAttempts] | None = None,
        read_ok: Callable[[bytes], Any] | None = None,
    ) -> ApiResponse:
        """Send a request with rate limiting and retries; return 2xx/4xx answers.

        `attempts` builds other hooks around each attempt (search paces itself: see search.py);
        `read_ok` reads a 2xx answer's body (default: any JSON, as every other answer).

        Raises:
            HubSpotAuthError: on 401/403.
            DailyLimitReached: on a DAILY 429.
            RetriesExhausted: when a retriable failure outlasts `max_retries`.
            RedirectRefused, HostUnreachable: when api_base_url does not lead to HubSpot's API.
        """
        endpoint = endpoint or path
        request = Request(
            method, self.base_url + path,
            orjson.dumps(json) if json is not None else None,
            {"Content-Type": "application/json"} if json is not None else {},
            setting="api_base_url", label=f"HubSpot request {method} {endpoint}", read_ok=read_ok,
        )
        hooks = (attempts or _ApiAttempts)(self, endpoint, stream, tally)
        attempt = self._loop.run(request, hooks)
        assert attempt.status is not None  # noqa: S101 - the loop returns answers only
        return ApiResponse(attempt.status, attempt.body, attempt.headers)

    # --- endpoints ----------------------------------------------------------------------

    def batch_upsert(
        self, object_type: str, inputs: list[dict[str, Any]], *, stream: str | None = None,
        tally: RequestTally | None = None, id_property: str | None = None,
    ) -> ApiResponse:
        """POST one batch (at most 100 inputs) to the batch upsert endpoint."""
        return self.batch_write(object_type, "upsert", inputs, stream=stream, tally=tally, id_property=id_property)

    def get_properties(self, object_type: str) -> ApiResponse:
        """GET the property catalogue of an object type."""
        return self.request("GET", self.properties_path(object_type), endpoint=f"properties/{object_type}")

    def create_property(self, object_type: str, definition: dict[str, Any]) -> ApiResponse:
        """POST a new property definition."""
        return self.request(
            "POST", self.properties_path(object_type), json=definition,
            endpoint=f"properties/{object_type}",
        )

    def get_groups(self, object_type: str) -> ApiResponse:
        """GET the property groups of an object type."""
        return self.request(
            "GET", self.properties_path(object_type, "/groups"),
            endpoint=f"properties/{object_type}/groups",
        )

    def create_group(self, object_type: str, name: str, label: str) -> ApiResponse:
        """POST a new property group."""
        return self.request(
            "POST", self.properties_path(object_type, "/groups"),
            json={"name": name, "label": label}, endpoint=f"properties/{object_type}/groups",
        )

    # --- beyond upsert: read, update, create, archive, associations ---------------------

    def associations_path(self, from_type: str, to_type: str, suffix: str) -> str:
        """Path of an associations v4 endpoint between two object types."""
        base = "/crm/v4/associations" if self.api_version == "v3" else f"/crm/associations/{self.api_version}"
        return f"{base}/{quote(from_type, safe='')}/{quote(to_type, safe='')}/{suffix}"

    def batch_write(
        self, object_type: str, action: str, inputs: list[dict[str, Any]], *, stream: str | None = None,
        tally: RequestTally | None = None, id_property: str | None = None,
    ) -> ApiResponse:
        """POST one batch (at most 100 inputs) to `batch/upsert`, `batch/update` or `batch/create`.

        With `id_property` (the inputs' unique property, "" for none), a 2xx answer's body holds
        only what ties its results to the inputs (`write_answer_reader`).
        """
        return self.request(
            "POST", self.objects_path(object_type, f"batch/{action}"), json={"inputs": inputs},
            endpoint=f"{object_type}/batch/{action}", stream=stream, tally=tally,
            read_ok=None if id_property is None else write_answer_reader(id_property),
        )

    def batch_read(
        self, object_type: str, id_property: str, ids: list[str], *, properties: list[str] | None = None,
        stream: str | None = None, tally: RequestTally | None = None,
    ) -> ApiResponse:
        """POST `batch/read`: objects by the values of a unique property (record ids for hs_object_id).

        The answer holds `properties` (default: the id property alone).
        """
        # HubSpot's model (BatchReadInputSimplePublicObjectId) requires propertiesWithHistory: empty, no history.
        body: dict[str, Any] = {
            "inputs": [{"id": i} for i in ids], "properties": properties or [id_property], "propertiesWithHistory": [],
        }
        if id_property != "hs_object_id":
            body["idProperty"] = id_property
        return self.request(
            "POST", self.objects_path(object_type, "batch/read"), json=body,
            endpoint=f"{object_type}/batch/read", stream=stream, tally=tally,
        )

    def batch_archive(
        self, object_type: str, object_ids: list[str], *, stream: str | None = None,
        tally: RequestTally | None = None,
    ) -> ApiResponse:
        """POST `batch/archive` (record ids; restorable from HubSpot's recycle bin for 90 days)."""
        return self.request(
            "POST", self.objects_path(object_type, "batch/archive"), json={"inputs": [{"id": i} for i in object_ids]},
            endpoint=f"{object_type}/batch/archive", stream=stream, tally=tally,
        )

    def associate(
        self, from_type: str, to_type: str, pairs: list[tuple[str, str]], types: list[dict[str, Any]] | None, *,
        stream: str | None = None, tally: RequestTally | None = None,
    ) -> ApiResponse:
        """Associate object pairs: with `types` (labels) through `batch/create`, else the pair's default.

        The v4 association batch endpoints take no slot of the ten-secondly window (see RateLimiter.exempt).
        """
        inputs: list[dict[str, Any]] = [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]
        suffix = "batch/associate/default"
        if types is not None:
            suffix = "batch/create"
            for item in inputs:
                item["types"] = types
        with self.limiter.exempt():
            return self.request(
                "POST", self.associations_path(from_type, to_type, suffix), json={"inputs": inputs},
                endpoint=f"associations/{from_type}/{to_type}/{suffix}", stream=stream, tally=tally,
            )

    def association_labels(self, from_type: str, to_type: str) -> ApiResponse:
        """GET the association types (labels) from one object type to another."""
        return self.request(
            "GET", self.associations_path(from_type, to_type, "labels"),
            endpoint=f"associations/{from_type}/{to_type}/labels",
        )

    def get_account_details(self) -> ApiResponse:
        """GET the account the token belongs to (`portalId`, time zone, ...).

        Always the v3 path: HubSpot dates the account-info API on its own schedule.
        """
        return self.request("GET", "/account-info/v3/details", endpoint="account-info/details")

    def get_schemas(self) -> ApiResponse:
        """GET the account's custom object types (HubSpot's schemas API; standard types are not listed)."""
        path = "/crm/v3/schemas" if self.api_version == "v3" else f"/crm/{self.api_version}/schemas"
        return self.request("GET", path, endpoint="schemas")

    def get_token_details(self, token: str) -> ApiResponse:
        """POST a private-app token to HubSpot's token metadata endpoint (`hubId`, `scopes`, ...)."""
        return self.request(
            "POST", "/oauth/v2/private-apps/get/access-token-info", json={"tokenKey": token},
            endpoint="private-apps/access-token-info",
        )


class _ApiAttempts(AttemptHooks):
    """Around each attempt of an API request: rate limiter, token, metrics and tallies."""

    def __init__(self, client: HubSpotClient, endpoint: str, stream: str | None, tally: RequestTally | None) -> None:
        self.client = client
        self.endpoint = endpoint
        self.stream = stream
        self.tallies = [t for t in (tally, client.totals) if t is not None]
        self.sent_at: float | None = None
        self.counted = False  # whether the attempt took a slot of the rate-limit window
        self.token = ""
        self.refreshed = False

    def before(self) -> dict[str, str]:
        self.sent_at = self.client.limiter.acquire()
        self.counted = not self.client.limiter.exempting
        self.token = self.client.auth.token()
        return {"Authorization": f"Bearer {self.token}"}

    def observed(self, attempt: Attempt, decision: Decision) -> None:
        outcome = attempt.status if attempt.status is not None else type(attempt.error).__name__
        self.client.metrics.observe(self.endpoint, outcome, attempt.elapsed, self.stream)
        for t in self.tallies:
            t.add(requests=1, rate_limited=int(decision.rate_limited))
        # A successful answer's round trip teaches the limiter its window margin (RateLimiter).
        ok = self.counted and attempt.status is not None and 200 <= attempt.status < 300
        if attempt.headers or ok:
            self.client.limiter.observe(attempt.headers, self.sent_at, round_trip_of=self.endpoint if ok else None)

    def refused(self, attempt: Attempt, decision: Decision) -> bool:
        auth = self.client.auth
        if decision.action is Action.DAILY_LIMIT:
            msg = (
                "HubSpot's daily API limit for this account was reached (429 DAILY). It "
                "resets at midnight in the HubSpot account's time zone; records acknowledged "
                "so far are checkpointed, so run again after the reset to continue."
            )
            raise DailyLimitReached(msg)
        category = attempt.body.get("category") if isinstance(attempt.body, dict) else None
        if (
            attempt.status == 401 and category == "EXPIRED_AUTHENTICATION"
            and isinstance(auth, OAuthTokenProvider) and not self.refreshed
        ):
            # One refresh-and-retry for a token that expired in flight; never a storm.
            self.refreshed = True
            auth.invalidate(self.token)
            return True
        raise HubSpotAuthError(_auth_message(attempt.status or 0, attempt.body, auth.kind))

    def retrying(self, decision: Decision) -> float:
        for t in self.tallies:
            t.add(retries=1)
        if decision.rate_limited:
            # Rate-limited requests wait inside the limiter, together with every other request.
            self.client.limiter.on_rate_limited(decision.wait)
            return 0.0
        return decision.wait
