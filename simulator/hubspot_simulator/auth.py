"""Authentication: bearer tokens (static and issued OAuth access tokens) and their scopes."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .responses import Response, error

UNAUTHORIZED_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. Read more about "
    "required scopes here: https://developers.hubspot.com/scopes."
)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class IssuedTokens:
    """OAuth access tokens the token endpoint issued, with their expiry (monotonic seconds).

    Not thread-safe: callers hold the simulator's state lock. Kept across ``reset()``.
    """

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}

    def issue(self, ttl: float, now: float) -> str:
        """A fresh access token valid for ``ttl`` seconds."""
        access = "sim-oauth-" + secrets.token_urlsafe(24)
        self.expiry[access] = now + ttl
        return access

    def __contains__(self, token: object) -> bool:
        return token in self.expiry

    def revoke(self, token: str) -> None:
        """Forget an issued token."""
        self.expiry.pop(token, None)

    def authenticate(self, opts: Mapping[str, Any], token: str | None, now: float) -> Response | None:
        """None when ``token`` is a valid static or unexpired issued token, else the 401."""
        if token is not None:
            if token in opts["tokens"]:
                return None
            expiry = self.expiry.get(token)
            if expiry is not None:
                if now < expiry:
                    return None
                return error(
                    401,
                    f"The OAuth token used to make this call expired {int(now - expiry)} second(s) ago.",
                    "EXPIRED_AUTHENTICATION",
                )
        return error(401, UNAUTHORIZED_MESSAGE, "INVALID_AUTHENTICATION")


def scope_denied(opts: Mapping[str, Any], token: str | None, *scopes: str) -> Response | None:
    """HubSpot's 403 when ``token_scopes`` lists the token without one of ``scopes``, else None."""
    granted = opts["token_scopes"]
    if granted is None or token not in granted:
        return None
    missing = [s for s in scopes if s not in granted[token]]
    if not missing:
        return None
    return error(
        403,
        _SCOPES_MESSAGE,
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": missing},
            }
        ],
        links={"scopes": "https://developers.hubspot.com/scopes"},
    )
