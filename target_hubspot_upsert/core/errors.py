"""Typed errors: the type tells the caller what to do (fix config, fix input, stop, retry)."""

from __future__ import annotations

import re

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError

_SPACES = re.compile(r"\s+")


def brief(text: str, limit: int = 200) -> str:
    """A server's text shortened for a message: answers are never quoted at length."""
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class UserFacingError(Exception):
    """An error caused by configuration, input or the account, reported without a traceback."""

    exit_code = 1


class HubSpotConfigError(ConfigValidationError):
    """A configuration problem found before or while reading input."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        """Initialize with a summary and the individual problems."""
        super().__init__(message, errors=errors or [message])


class InputError(UserFacingError):
    """Malformed Singer input: not JSON, a RECORD before its SCHEMA, schema violations."""


class HubSpotFatalError(FatalAPIError, UserFacingError):
    """HubSpot answered in a way that retrying cannot fix."""


class HubSpotAuthError(HubSpotFatalError):
    """401 or 403: the token is missing, invalid, expired or lacks a scope."""


class DailyLimitReached(HubSpotFatalError):
    """HubSpot's DAILY rate-limit policy answered 429."""


class RetriesExhausted(HubSpotFatalError):
    """A retriable failure persisted past `max_retries`."""


class RedirectRefused(HubSpotFatalError):
    """A server answered with a redirect: the URL setting points somewhere that is not HubSpot's API."""


class HostUnreachable(HubSpotFatalError):
    """The host of a URL setting does not resolve or refuses connections: the setting is wrong."""


class TooManyRejectedRecords(UserFacingError):
    """More records were rejected than `max_rejected_records` allows."""


class CheckFailed(UserFacingError):
    """A dry run found what would make a real run fail."""


class Interrupted(UserFacingError):
    """The run received SIGTERM or SIGINT."""

    def __init__(self, message: str, signum: int) -> None:
        """Exit like a process killed by the signal would: 128 + its number."""
        super().__init__(message)
        self.exit_code = 128 + signum
