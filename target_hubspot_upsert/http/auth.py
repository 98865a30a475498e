"""Access tokens: a static private-app token / service key, or OAuth refresh-token grants."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlencode

from target_hubspot_upsert.core.errors import HubSpotAuthError, brief
from target_hubspot_upsert.core.redact import REDACTOR
from target_hubspot_upsert.http.retry import Request, RetryLoop
from target_hubspot_upsert.http.transport import Transport

logger = logging.getLogger("target_hubspot_upsert.http.auth")


class TokenProvider(Protocol):
    """Supplies the bearer token for each request."""

    kind: str

    def token(self) -> str:
        """Return a token valid for at least the next request."""
        ...

    def identity(self) -> str:
        """What names the credential across runs (secret: only ever hashed, never logged)."""
        ...


class StaticToken:
    """A private-app token or service key, sent as is."""

    kind = "access_token"

    def __init__(self, token: str) -> None:
        """Keep the token; it is never logged."""
        self._token = token

    def token(self) -> str:
        """Return the static token."""
        return self._token

    def identity(self) -> str:
        """The token itself: a static token belongs to one HubSpot account."""
        return self._token

    def __repr__(self) -> str:
        """Never show the token."""
        return "StaticToken(***)"


class OAuthTokenProvider:
    """Refresh-token flow with refresh ahead of expiry, one refresh at a time.

    HubSpot says a 401 is not a reliable refresh signal, so tokens are refreshed from
    `expires_in` before they expire. A rotated refresh token in the answer replaces the old
    one for the rest of the run.
    """

    kind = "oauth"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_url: str,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        transport: Transport | None = None,
        max_retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """Configure the grant; nothing is requested until the first token is needed.

        Token requests go through the same transport (shared with the API client when given,
        else a new one with `timeout`) and the same retry loop as API requests: a timeout, a
        dropped connection, a 429 or a 5xx is retried up to `max_retries` times with backoff
        (`sleep` and `rand` are injectable for tests); a redirect or an unreachable host is fatal.
        """
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._configured_refresh_token = refresh_token  # kept when HubSpot issues a new one
        self._token_url = token_url
        self._clock = clock
        self._loop = RetryLoop(transport or Transport(timeout=timeout), max_retries=max_retries, sleep=sleep, rand=rand)
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self.refreshes = 0

    def __repr__(self) -> str:
        """Never show secrets."""
        return f"OAuthTokenProvider(client_id={self._client_id!r}, token_url={self._token_url!r})"

    def token(self) -> str:
        """Return a valid access token, refreshing first when it is about to expire."""
        with self._lock:
            if self._access_token is None or self._clock() >= self._expires_at:
                self._refresh()
            assert self._access_token is not None  # noqa: S101 - set by _refresh or it raised
            return self._access_token

    def identity(self) -> str:
        """The app and the configured refresh token: one installation in one HubSpot account."""
        return f"{self._client_id}\0{self._configured_refresh_token}"

    def invalidate(self, token: str) -> None:
        """Forget `token` (HubSpot said it expired) so the next call refreshes."""
        with self._lock:
            if self._access_token == token:
                self._access_token = None

    def _refresh(self) -> None:
        form = urlencode({
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }).encode()
        request = Request(
            "POST", self._token_url, form, {"Content-Type": "application/x-www-form-urlencoded"},
            setting="oauth_token_url", label="OAuth token request",
        )
        attempt = self._loop.run(request)  # retriable failures are retried there
        body = attempt.body if isinstance(attempt.body, dict) else {}
        if attempt.status != 200 or not body.get("access_token"):
            status = body.get("status") or body.get("category") or attempt.status
            detail = brief(str(body.get("message") or ""))
            msg = (
                f"HubSpot refused to issue an access token ({status}: {detail}). Check the "
                "client_id, client_secret and refresh_token settings: the refresh token may "
                "be revoked or belong to another app."
            )
            raise HubSpotAuthError(msg)
        try:
            ttl = float(body.get("expires_in") or 1800)
        except (TypeError, ValueError):
            ttl = 1800.0  # HubSpot's documented lifetime
        # Refresh when a fifth of the lifetime (at most 5 minutes) is left.
        self._expires_at = self._clock() + ttl - min(300.0, ttl * 0.2)
        self._access_token = str(body["access_token"])
        REDACTOR.add(self._access_token)
        new_refresh = body.get("refresh_token")
        if new_refresh and new_refresh != self._refresh_token:
            self._refresh_token = str(new_refresh)
            REDACTOR.add(self._refresh_token)
            logger.warning(
                "HubSpot issued a new refresh token; this run uses it from now on. If HubSpot "
                "revokes the old one, the configured refresh_token stops working: get a new one "
                "from your HubSpot app before the next run."
            )
        self.refreshes += 1
        logger.info("Obtained an OAuth access token (valid %.0f s).", ttl)
