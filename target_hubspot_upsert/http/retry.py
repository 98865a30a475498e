"""The one retry loop of every HTTP request the target makes (API and OAuth), and its pure retry decision."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from target_hubspot_upsert.core.errors import (
    HostUnreachable,
    HubSpotFatalError,
    RedirectRefused,
    RetriesExhausted,
    brief,
)
from target_hubspot_upsert.http.transport import ResponseTooLarge, Transport

#: Answers worth asking again: rate limit, lock, HubSpot or gateway trouble.
RETRIABLE_STATUSES = frozenset({423, 429, 500, 502, 503, 504, 521, 522, 523, 524})
#: The longest wait between two tries of one request.
MAX_BACKOFF_S = 30.0


def backoff_wait(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after attempt number `attempt` (1-based): 0.5, 1, 2, ... up to 30, with "equal jitter".

    The jitter spreads concurrent workers out; `rand` is injectable so tests stay deterministic.
    """
    base = min(0.5 * 2.0 ** min(attempt - 1, 16), MAX_BACKOFF_S)
    return base * (0.5 + rand() / 2)


logger = logging.getLogger("target_hubspot_upsert.hubspot.client")

#: Tries before a host whose name does not resolve, or that refuses connections, is given up on
#: (unless it has answered earlier in the run: then it is a passing fault, retried as usual).
UNREACHABLE_TRIES = 2


class Action(Enum):
    """What to do with an HTTP outcome."""

    RETURN = "return"  # hand the response to the caller (success or a request error)
    RETRY = "retry"
    AUTH_FAILED = "auth_failed"
    DAILY_LIMIT = "daily_limit"
    REDIRECTED = "redirected"  # HubSpot never redirects: the URL setting points elsewhere


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


def unreachable_reason(error: BaseException | None) -> str | None:
    """Why a connection could not even start (name not resolved, refused), or None."""
    if isinstance(error, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    if isinstance(error, urllib3.exceptions.NewConnectionError) and isinstance(
        error.__cause__ or error.__context__, ConnectionRefusedError
    ):
        return "the connection was refused (nothing listens on that port)"
    return None


def describe_connection_error(error: BaseException) -> str:
    """A connection-level failure in words, with the exception class for searching logs."""
    name = type(error).__name__
    if isinstance(error, ResponseTooLarge):
        what = "answer too large"
    elif isinstance(error, urllib3.exceptions.NewConnectionError):  # also a TimeoutError in urllib3 2
        what = unreachable_reason(error) or "could not connect"
    elif isinstance(error, urllib3.exceptions.TimeoutError):  # a socket timeout or the whole exchange's
        what = "no complete answer within request_timeout"
    elif isinstance(error, urllib3.exceptions.ProtocolError):
        what = "connection dropped"
    else:
        what = "connection error"
    return f"{what} ({name})"


def _rate_limited(body: Any, hint: float | None, attempt: int, window_s: float) -> Decision:  # noqa: ANN401
    """A 429: the daily limit is final; the rolling window is waited out, longer if it repeats."""
    policy = body.get("policyName") if isinstance(body, dict) else None
    if policy == "DAILY":
        return Decision(Action.DAILY_LIMIT, reason="DAILY")
    wait = hint if hint is not None else window_s * min(attempt, 3)
    return Decision(Action.RETRY, wait, "429 TEN_SECONDLY_ROLLING", rate_limited=True)


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

    Order: redirects are final; server hint first (Retry-After), then HubSpot's 429 policy, 423,
    5xx and connection-level errors. 400s and other client errors are returned, never retried as is.
    """
    jittered = backoff_wait(attempt, rand)
    if error is not None:
        return Decision(Action.RETRY, jittered, describe_connection_error(error))
    assert status is not None  # noqa: S101 - either an error or a status
    if 300 <= status < 400:
        return Decision(Action.REDIRECTED, reason=str(status))
    if status in (401, 403):
        return Decision(Action.AUTH_FAILED, reason=str(status))
    hint = retry_after_seconds(headers)
    if status == 429:
        return _rate_limited(body, hint, attempt, window_s)
    if status in RETRIABLE_STATUSES:
        wait = hint if hint is not None else jittered
        if status == 423:
            wait = max(wait, 2.0)  # HubSpot: wait at least 2 s after 423 Locked
        return Decision(Action.RETRY, wait, str(status))
    return Decision(Action.RETURN)


@dataclass(frozen=True)
class Request:
    """One logical request: what to send, the setting its URL comes from, and how to name it."""

    method: str
    url: str
    body: bytes | None
    headers: Mapping[str, str]
    setting: str  # api_base_url or oauth_token_url: named when the server is wrong or unreachable
    label: str  # e.g. "HubSpot request POST contacts/batch/upsert"
    # How a 2xx answer's body is read (any other is read by `parse_body`); None: `parse_body`.
    read_ok: Callable[[bytes], Any] | None = None


@dataclass
class Attempt:
    """What one attempt got: an answer (status, headers, parsed body) or a connection-level error."""

    number: int
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


class AttemptHooks:
    """What a caller adds around each attempt; these defaults add nothing (the OAuth token request)."""

    def before(self) -> dict[str, str]:
        """Headers for the next attempt (taken just before it is sent)."""
        return {}

    def observed(self, attempt: Attempt, decision: Decision) -> None:
        """Called after every attempt, with its decision."""

    def refused(self, attempt: Attempt, decision: Decision) -> bool:
        """A 401/403 or DAILY 429: raise, return True to try again, or False to return the answer."""
        del attempt, decision  # the default hands every refusal back to the caller
        return False

    def retrying(self, decision: Decision) -> float:
        """Called before a retry; returns the seconds to sleep."""
        return decision.wait


def parse_body(content: bytes) -> Any:  # noqa: ANN401 - parsed JSON of any shape
    """JSON answer, or a short excerpt of a text answer as `{"message": ...}`."""
    if not content:
        return None
    try:
        # orjson: request and response bodies are the bulk of the client's CPU per record.
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"message": brief(content[:400].decode("utf-8", "replace"))}


def _where(url: str) -> str:
    parts = parse_url(url)
    return f"{parts.host}:{parts.port}" if parts.port else str(parts.host)


def _redirect_message(request: Request, attempt: Attempt) -> str:
    location = str(attempt.headers.get("Location") or "")
    try:
        target = parse_url(location)
        to = f" to {brief(f'{target.scheme}://{target.host}', 80)}" if target.host else " to another path"
    except LocationParseError:
        to = ""
    return (
        f"{request.label} got a redirect (HTTP {attempt.status}{to}) from {_where(request.url)}. "
        f"HubSpot never redirects API calls, so the target does not follow redirects and sent nothing "
        f"there: check the {request.setting} setting."
    )


def _exhausted_message(request: Request, decision: Decision, attempt: Attempt, retries: int) -> str:
    if "request_timeout" in decision.reason:
        hint = "raise request_timeout or max_retries, or try again later"
    elif attempt.error is not None:
        hint = f"check the {request.setting} setting ({_where(request.url)}) and the network, or try again later"
    else:
        hint = "raise max_retries or try again later"
    return f"{request.label} kept failing ({decision.reason}) after {retries} retries; {hint}."


class RetryLoop:
    """Sends a request until it gets an answer to hand back, retrying what `should_retry` says to.

    Connection-level failures are retried like 5xx, except that a host that never answered and
    cannot be reached (name not resolved, connection refused) is given up on after
    `UNREACHABLE_TRIES`, naming the host and the setting: that is a wrong URL, not bad luck.
    """

    def __init__(
        self, transport: Transport, *, max_retries: int, sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random, window_s: Callable[[], float] = lambda: 10.0,
    ) -> None:
        """`sleep`, `rand` and `window_s` (the rate-limit window, for 429 waits) are injectable."""
        self.transport = transport
        self.max_retries = max_retries
        self._sleep = sleep
        self._rand = rand
        self._window_s = window_s

    def run(self, request: Request, hooks: AttemptHooks | None = None) -> Attempt:
        """The final attempt: a 2xx or 4xx answer, or a refusal the hooks chose to return.

        Raises:
            RedirectRefused: on any 3xx.
            HostUnreachable: when the host cannot be reached at all.
            RetriesExhausted: when a retriable failure outlasts `max_retries`.
            HubSpotFatalError: on TLS errors (and whatever the hooks raise).
        """
        hooks = hooks or AttemptHooks()
        number = unreachable_tries = 0
        while True:
            number += 1
            attempt = self._attempt(request, hooks.before(), number)
            decision = should_retry(
                attempt.status, attempt.body, attempt.headers, number, error=attempt.error,
                window_s=self._window_s(), rand=self._rand,
            )
            hooks.observed(attempt, decision)
            if decision.action is Action.RETURN:
                return attempt
            if decision.action is Action.REDIRECTED:
                raise RedirectRefused(_redirect_message(request, attempt))
            if decision.action is not Action.RETRY:
                if hooks.refused(attempt, decision):
                    continue
                return attempt
            why = None if self.transport.has_answered(request.url) else unreachable_reason(attempt.error)
            unreachable_tries += why is not None
            if why and (unreachable_tries >= UNREACHABLE_TRIES or number > self.max_retries):
                msg = (
                    f"{request.label}: could not connect to {_where(request.url)}: {why} "
                    f"({unreachable_tries} tries). Check the {request.setting} setting and the network."
                )
                raise HostUnreachable(msg)
            if number > self.max_retries:
                raise RetriesExhausted(_exhausted_message(request, decision, attempt, self.max_retries))
            wait = hooks.retrying(decision)
            retry = "one more try" if why else f"retry {number} of {self.max_retries}"
            logger.warning("%s: %s; %s in %.1f s.", request.label, decision.reason, retry, decision.wait)
            if wait > 0:
                self._sleep(wait)

    def _attempt(self, request: Request, headers: Mapping[str, str], number: int) -> Attempt:
        started = time.monotonic()
        try:
            reply = self.transport.send(request.method, request.url, request.body, {**request.headers, **headers})
        except urllib3.exceptions.SSLError as exc:
            msg = (
                f"TLS error talking to {_where(request.url)} ({type(exc).__name__}): check the "
                f"{request.setting} setting and the CA bundle (REQUESTS_CA_BUNDLE)."
            )
            raise HubSpotFatalError(msg) from None
        except urllib3.exceptions.HTTPError as exc:
            # Without its traceback: the frames it holds (and what they read) are not kept for retries.
            return Attempt(number, error=exc.with_traceback(None), elapsed=time.monotonic() - started)
        read = request.read_ok if request.read_ok is not None and 200 <= reply.status < 300 else parse_body
        return Attempt(number, reply.status, reply.headers, read(reply.content), elapsed=time.monotonic() - started)
