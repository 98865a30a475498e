"""HubSpot HTTP client: wire format, auth, rate limiting and the retry decision. Knows nothing of Singer."""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests
import requests.certs
import requests.utils
import urllib3
from singer_sdk import metrics

from target_hubspot_upsert.auth import OAuthTokenProvider, TokenProvider
from target_hubspot_upsert.errors import (
    DailyLimitReached,
    HubSpotAuthError,
    HubSpotFatalError,
    RetriesExhausted,
)
from target_hubspot_upsert.ratelimit import RETRIABLE_STATUSES, RateLimiter, backoff_wait

logger = logging.getLogger("target_hubspot_upsert.client")



class Transport:
    """HTTP through urllib3, the engine under `requests`, without requests' per-call layers.

    Measured on the benchmark machine, a 100-input upsert costs ~1.7 ms of client CPU through
    `requests.Session` and ~1.0 ms through urllib3 directly: 6-7 µs per record, a fifth of
    the per-record budget. Proxy and CA settings follow the same environment variables as
    requests (`HTTPS_PROXY`, `NO_PROXY`, `REQUESTS_CA_BUNDLE`, ...), read once.
    """

    def __init__(self, base_url: str, *, timeout: float, pool_size: int, user_agent: str) -> None:
        """Build one thread-safe connection pool for the run."""
        proxies = requests.utils.get_environ_proxies(base_url)
        proxy = proxies.get(urlsplit(base_url).scheme) or proxies.get("all")
        ca_certs = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or requests.certs.where()  # type: ignore[attr-defined]  # the stubs omit it; requests has it
        )
        options: dict[str, Any] = {
            "num_pools": 4,
            "maxsize": pool_size,
            "retries": False,  # retries are decided by should_retry, not hidden in the pool
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "ca_certs": ca_certs,
            "headers": {"User-Agent": user_agent, "Accept": "application/json"},
        }
        self.pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )

    def send(
        self, method: str, url: str, body: bytes | None, token: str,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange; connection-level failures raise urllib3 errors."""
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.pool.request(method, url, body=body, headers=headers, preload_content=True)
        return response.status, response.headers, response.data


class Action(Enum):
    """What to do with an HTTP outcome."""

    RETURN = "return"  # hand the response to the caller (success or a request error)
    RETRY = "retry"
    AUTH_FAILED = "auth_failed"
    DAILY_LIMIT = "daily_limit"


@dataclass(frozen=True)
class Decision:
    """The retry decision for one attempt."""

    action: Action
    wait: float = 0.0
    reason: str = ""
    rate_limited: bool = False


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Read a `Retry-After` header (seconds or an HTTP date); HubSpot rarely sends one."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def describe_connection_error(error: BaseException) -> str:
    """A connection-level failure in words, with the exception class for searching logs."""
    name = type(error).__name__
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # also a TimeoutError in urllib3 2
        what = "could not connect"
    elif isinstance(error, urllib3.exceptions.TimeoutError):
        what = "no answer within request_timeout"
    elif isinstance(error, urllib3.exceptions.ProtocolError):
        what = "connection dropped"
    else:
        what = "connection error"
    return f"{what} ({name})"


def should_retry(
    status: int | None,
    body: Any,  # noqa: ANN401 - parsed JSON of any shape
    headers: Mapping[str, str],
    attempt: int,
    *,
    error: BaseException | None = None,
    window_s: float = 10.0,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Decide what to do after attempt number `attempt` (1-based). Pure: no I/O, no sleeping.

    Order: server hint first (Retry-After), then HubSpot's 429 policy, 423, 5xx and
    connection-level errors. 400s and other client errors are returned, never retried as is.
    """
    jittered = backoff_wait(attempt, rand)
    if error is not None:
        return Decision(Action.RETRY, jittered, describe_connection_error(error))
    assert status is not None  # noqa: S101 - either an error or a status
    if status in (401, 403):
        return Decision(Action.AUTH_FAILED, reason=str(status))
    hint = retry_after_seconds(headers)
    if status == 429:
        policy = body.get("policyName") if isinstance(body, dict) else None
        if policy == "DAILY":
            return Decision(Action.DAILY_LIMIT, reason="DAILY")
        # TEN_SECONDLY_ROLLING (or unnamed): wait out the rolling window, longer if it repeats.
        wait = hint if hint is not None else window_s * min(attempt, 3)
        return Decision(Action.RETRY, wait, "429 TEN_SECONDLY_ROLLING", rate_limited=True)
    if status in RETRIABLE_STATUSES:
        wait = hint if hint is not None else jittered
        if status == 423:
            wait = max(wait, 2.0)  # HubSpot: wait at least 2 s after 423 Locked
        return Decision(Action.RETRY, wait, str(status))
    return Decision(Action.RETURN)


@dataclass
class ApiResponse:
    """A parsed HubSpot answer handed back to the caller."""

    status: int
    body: Any
    headers: Mapping[str, str]


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
    hub_message = str(body.get("message") or "").strip()
    setting = (
        "access_token"
        if auth_kind == "access_token"
        else "client_id / client_secret / refresh_token"
    )
    if status == 403:
        scopes: list[str] = []
        for err in body.get("errors") or []:
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
    ) -> None:
        """Create a client; no request is made until one is needed."""
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.limiter = limiter or RateLimiter(None)
        self.timeout = timeout
        self.max_retries = max_retries
        self.api_version = api_version
        self._sleep = sleep
        self._rand = rand
        self._transport = Transport(
            self.base_url, timeout=timeout, pool_size=pool_size, user_agent=user_agent
        )
        self._metrics_lock = threading.Lock()
        self._counters: dict[str, metrics.Counter] = {}
        self.totals = RequestTally()

    # --- paths --------------------------------------------------------------------------

    def upsert_path(self, object_type: str) -> str:
        """Path of the batch upsert endpoint for the configured API version."""
        ot = quote(object_type, safe="")
        if self.api_version == "v3":
            return f"/crm/v3/objects/{ot}/batch/upsert"
        return f"/crm/objects/{self.api_version}/{ot}/batch/upsert"

    def properties_path(self, object_type: str, suffix: str = "") -> str:
        """Path of the properties endpoints for the configured API version."""
        ot = quote(object_type, safe="")
        if self.api_version == "v3":
            return f"/crm/v3/properties/{ot}{suffix}"
        return f"/crm/properties/{self.api_version}/{ot}{suffix}"

    # --- HTTP ---------------------------------------------------------------------------

    def _count(self, endpoint: str, status: int | str, elapsed: float, stream: str | None) -> None:
        tags: dict[str, Any] = {
            metrics.Tag.ENDPOINT: endpoint,
            metrics.Tag.HTTP_STATUS_CODE: status,
        }
        if stream:
            tags[metrics.Tag.STREAM] = stream
        metrics.log(
            metrics.get_metrics_logger(),
            metrics.Point("timer", metrics.Metric.HTTP_REQUEST_DURATION, elapsed, tags),
        )
        key = f"{stream}|{endpoint}"
        with self._metrics_lock:
            counter = self._counters.get(key)
            if counter is None:
                counter = metrics.http_request_counter(stream or "", endpoint)
                self._counters[key] = counter
            counter.increment()

    def close(self) -> None:
        """Flush the request counters' last values."""
        with self._metrics_lock:
            for counter in self._counters.values():
                counter.exit()
            self._counters.clear()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,  # noqa: ANN401
        endpoint: str | None = None,
        stream: str | None = None,
        tally: RequestTally | None = None,
    ) -> ApiResponse:
        """Send a request with rate limiting and retries; return 2xx/4xx answers.

        Raises:
            HubSpotAuthError: on 401/403.
            DailyLimitReached: on a DAILY 429.
            RetriesExhausted: when a retriable failure outlasts `max_retries`.
        """
        url = self.base_url + path
        endpoint = endpoint or path
        # orjson: request and response bodies are the bulk of the client's CPU per record.
        payload = orjson.dumps(json) if json is not None else None
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            sent_at = self.limiter.acquire()
            token = self.auth.token()
            started = time.monotonic()
            status: int | None = None
            body: Any = None
            headers: Mapping[str, str] = {}
            error: BaseException | None = None
            try:
                status, headers, content = self._transport.send(method, url, payload, token)
                try:
                    body = orjson.loads(content) if content else None
                except orjson.JSONDecodeError:
                    body = {"message": content[:500].decode("utf-8", "replace")}
            except urllib3.exceptions.SSLError as exc:
                msg = (
                    f"TLS error talking to {self.base_url} ({type(exc).__name__}): check "
                    "api_base_url and the CA bundle (REQUESTS_CA_BUNDLE)."
                )
                raise HubSpotFatalError(msg) from None
            except urllib3.exceptions.HTTPError as exc:
                error = exc  # dropped connection, reset, timeout: retried
            elapsed = time.monotonic() - started
            self._count(endpoint, status if status is not None else type(error).__name__, elapsed, stream)
            for t in (tally, self.totals):
                if t is not None:
                    t.add(requests=1)
            if headers:
                self.limiter.observe(headers, sent_at)
            decision = should_retry(
                status, body, headers, attempt, error=error,
                window_s=self.limiter.window_s, rand=self._rand,
            )
            if decision.action is Action.RETURN:
                assert status is not None  # noqa: S101
                return ApiResponse(status, body, headers)
            if decision.action is Action.AUTH_FAILED:
                category = body.get("category") if isinstance(body, dict) else None
                if (
                    status == 401
                    and category == "EXPIRED_AUTHENTICATION"
                    and isinstance(self.auth, OAuthTokenProvider)
                    and not refreshed
                ):
                    # One refresh-and-retry for a token that expired in flight; never a storm.
                    refreshed = True
                    self.auth.invalidate(token)
                    continue
                raise HubSpotAuthError(_auth_message(status or 0, body, self.auth.kind))
            if decision.action is Action.DAILY_LIMIT:
                msg = (
                    "HubSpot's daily API limit for this account was reached (429 DAILY). It "
                    "resets at midnight in the HubSpot account's time zone; records acknowledged "
                    "so far are checkpointed, so run again after the reset to continue."
                )
                raise DailyLimitReached(msg)
            wait = decision.wait
            if decision.rate_limited:
                wait = self.limiter.on_rate_limited(decision.wait)
                for t in (tally, self.totals):
                    if t is not None:
                        t.add(rate_limited=1)
            if attempt > self.max_retries:
                hint = (
                    "raise request_timeout or max_retries, or try again later"
                    if "request_timeout" in decision.reason
                    else "raise max_retries or try again later"
                )
                msg = (
                    f"HubSpot request {method} {endpoint} kept failing ({decision.reason}) after "
                    f"{self.max_retries} retries; {hint}."
                )
                raise RetriesExhausted(msg)
            for t in (tally, self.totals):
                if t is not None:
                    t.add(retries=1)
            logger.warning(
                "HubSpot %s %s: %s; retry %d of %d in %.1f s.",
                method, endpoint, decision.reason, attempt, self.max_retries, wait,
            )
            if not decision.rate_limited:
                self._sleep(wait)
            # Rate-limited requests wait inside the limiter, together with every other request.

    # --- endpoints ----------------------------------------------------------------------

    def batch_upsert(
        self, object_type: str, inputs: list[dict[str, Any]], *, stream: str | None = None,
        tally: RequestTally | None = None,
    ) -> ApiResponse:
        """POST one batch (at most 100 inputs) to the batch upsert endpoint."""
        return self.request(
            "POST", self.upsert_path(object_type), json={"inputs": inputs},
            endpoint=f"{object_type}/batch/upsert", stream=stream, tally=tally,
        )

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

    def get_account_details(self) -> ApiResponse:
        """GET the account the token belongs to (`portalId`, time zone, ...)."""
        return self.request(
            "GET", f"/account-info/{quote(self.api_version, safe='')}/details", endpoint="account-info/details",
        )
