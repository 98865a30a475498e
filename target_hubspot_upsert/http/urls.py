"""Checks of the URL settings, made with the parser urllib3 uses, so the host approved is the host connected to.

Pure: no I/O. A URL passes only in its plain form (no user info, escapes, backslashes, spaces or
control characters), because every unusual spelling is a chance for two parsers to disagree.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

#: Host names plain http:// may be used with (the local simulator): loopback only.
LOOPBACK_NAMES = frozenset({"localhost"})
_EXAMPLE = {"api_base_url": "https://api.hubapi.com", "oauth_token_url": "https://api.hubapi.com/oauth/v1/token"}


@dataclass(frozen=True)
class UrlVerdict:
    """The outcome of a check: a problem to report, or the host (as urllib3 will use it) that passed."""

    problem: str | None = None
    host: str | None = None


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 in dotted-quad form, and `[::1]` (as urllib3 spells hosts).

    Other spellings that also reach the machine itself (`2130706433`, `127.1`, `0`,
    `[::ffff:127.0.0.1]`) are refused: only the forms anyone would write for the simulator pass.
    """
    if host in LOOPBACK_NAMES:
        return True
    if host.startswith("[") and host.endswith("]") and "%" not in host:
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return address.is_loopback and address.ipv4_mapped is None
    try:
        return ipaddress.IPv4Address(host).is_loopback  # strict: no octal, hex or short forms
    except ValueError:
        return False


def _bad_character(url: str) -> str | None:
    for index, char in enumerate(url):
        if char == "\\":
            what = "a backslash"
        elif char.isspace():
            what = "whitespace"
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            what = "a control character"
        elif ord(char) > 0x7F:
            what = "a non-ASCII character (write the host in its xn-- form)"
        else:
            continue
        return f"{what} at position {index + 1}"
    return None


def _shown(url: str) -> str:
    # Never echo what may be credentials (user info before an '@').
    return "the URL" if "@" in url else repr(url[:100])


def check_url(setting: str, url: str) -> UrlVerdict:
    """Check `url` for `setting` (`api_base_url` or `oauth_token_url`); messages name the setting."""
    example = _EXAMPLE.get(setting, "https://api.hubapi.com")
    bad = _bad_character(url)
    if bad:
        return UrlVerdict(f"{setting} must be a plain URL such as {example}; it contains {bad}.")
    try:
        parts = parse_url(url)
    except LocationParseError:
        return UrlVerdict(f"{setting} is not a valid URL (expected e.g. {example}); got {_shown(url)}.")
    problems = itertools.chain(
        _authority_problems(setting, url, parts, example), _rest_problems(setting, url, parts, example),
    )
    problem = next(problems, None)
    return UrlVerdict(problem) if problem else UrlVerdict(host=parts.host or "")


def _authority_problems(setting: str, url: str, parts: Url, example: str) -> Iterator[str]:
    """Scheme, user info, host and port: what decides where the request goes."""
    if parts.scheme not in {"http", "https"} or "://" not in url:
        yield f"{setting} must be an https:// URL (e.g. {example}); got {_shown(url)}."
        return
    authority = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
    if parts.auth is not None or "@" in authority:
        yield (
            f"{setting} must not contain user info (a 'name@' before the host): remove it; credentials "
            "go in access_token or the OAuth settings."
        )
    if not parts.host:
        yield f"{setting} has no host name (expected e.g. {example}); got {_shown(url)}."
    if "%" in authority:
        yield f"{setting}: write the host and port without %-escapes; got {_shown(url)}."
    if parts.port == 0:
        yield f"{setting}: port 0 is not a port; got {_shown(url)}."


def _rest_problems(setting: str, url: str, parts: Url, example: str) -> Iterator[str]:
    """Clear text to a remote host, a query or fragment, and the path each setting allows."""
    if parts.query is not None or parts.fragment is not None:
        extra = "?" + parts.query if parts.query is not None else "#" + str(parts.fragment)
        yield f"{setting} must not have a query or fragment: remove {extra[:60]!r}."
    if parts.scheme == "http" and not is_loopback_host(parts.host or ""):
        yield (
            f"{setting} must be an https:// URL (http:// is accepted only for 127.x.x.x, [::1] or "
            f"localhost, e.g. the bundled simulator) so tokens are never sent in clear text; got {_shown(url)}."
        )
    path = parts.path or ""
    if setting == "api_base_url" and path not in {"", "/"}:
        yield (
            f"api_base_url must be only the scheme and host (e.g. {example}): remove {path.rstrip('/')[:80]!r}: "
            "the target adds API paths itself."
        )
    if setting == "oauth_token_url" and path in {"", "/"}:
        yield f"oauth_token_url has no path; expected e.g. {example}."
