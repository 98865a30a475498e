"""URL settings: the verdict of the check against where urllib3 really connects.

Each row is a URL and whether it must pass. For every URL the check accepts, the host it approved
must be the host urllib3 connects to; an accepted http:// URL must resolve to loopback addresses
only, and a request through the target's transport must reach a recording server listening there.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
import urllib3
from urllib3.util import parse_url

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.http.transport import Transport
from target_hubspot_upsert.http.urls import check_url
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .hostile import Recorder

P = "{port}"  # a port; a local recording server's where a request is sent

# (url, accepted, words the refusal must contain)
URLS = [
    ("https://api.hubapi.com", True, ""),
    ("https://api.hubapi.com/", True, ""),
    ("HTTPS://API.HUBAPI.COM", True, ""),  # scheme and host are case-insensitive; urllib3 lowercases
    ("https://api.hubapi.com:443", True, ""),
    (f"http://127.0.0.1:{P}", True, ""),
    (f"http://127.0.0.1:{P}/", True, ""),
    (f"HTTP://127.0.0.1:{P}", True, ""),
    (f"http://localhost:{P}", True, ""),
    (f"http://127.1.2.3:{P}", True, ""),  # all of 127.0.0.0/8 is loopback
    (f"http://[::1]:{P}", True, ""),
    (f"http://[0:0:0:0:0:0:0:1]:{P}", True, ""),  # ::1 written out
    # user info: the classic bypasses, and credentials in a URL
    ("http://example.com\\@127.0.0.1", False, "backslash"),  # urllib3 connects to example.com
    ("http://example.com\\@127.0.0.1/", False, "backslash"),
    ("http://127.0.0.1@example.com", False, "user info"),  # connects to example.com
    ("http://127.0.0.1:80@example.com/", False, "user info"),
    ("http://example.com;@127.0.0.1/", False, "user info"),
    ("https://user:pw@api.hubapi.com", False, "user info"),
    ("http://@127.0.0.1/", False, "user info"),  # empty user info
    ("http://example.com#@127.0.0.1/", False, "fragment"),  # connects to example.com
    ("http://127.0.0.1#@example.com/", False, "fragment"),
    # '@' in the path: the host is 127.0.0.1 (fine for the token URL), but a base URL has no path
    ("http://127.0.0.1/@example.com", False, "path"),
    ("http://127.0.0.1?@example.com", False, "query"),
    # other spellings of loopback, refused because only the plain ones are trusted
    ("http://2130706433/", False, "https://"),  # decimal 127.0.0.1
    ("http://0177.0.0.1/", False, "https://"),  # octal
    ("http://0x7f.0.0.1/", False, "https://"),  # hex
    ("http://127.1/", False, "https://"),  # short form
    ("http://0/", False, "https://"),
    ("http://0.0.0.0/", False, "https://"),
    ("http://localhost./", False, "https://"),  # trailing dot: a DNS name, not the hosts file
    ("http://127.0.0.1.nip.io/", False, "https://"),  # public DNS name that resolves to loopback
    ("http://[::ffff:127.0.0.1]/", False, "https://"),  # IPv4-mapped IPv6
    ("http://[::127.0.0.1]/", False, "https://"),
    ("http://[::1%25lo]/", False, "%-escapes"),  # zone id
    ("http://%31%32%37.0.0.1/", False, "%-escapes"),  # percent-encoded host (urllib3 decodes it)
    ("https://api%2ehubapi.com", False, "%-escapes"),
    # whitespace and control characters anywhere
    (" https://api.hubapi.com", False, "whitespace"),
    ("https://api.hubapi.com ", False, "whitespace"),
    ("https://api.hub\tapi.com", False, "whitespace"),
    ("https://api.hubapi.com\n", False, "whitespace"),
    ("https://api.hubapi.com/\r\nX-Injected: 1", False, "whitespace"),
    ("https://api.hubapi.com\x00", False, "control character"),
    ("https://\uff41\uff50\uff49.hubapi.com", False, "non-ASCII"),  # full-width "api": IDNA folds it to api
    # schemes, hosts, ports
    ("http://api.hubapi.com", False, "clear text"),
    ("http://10.0.0.5:8080", False, "https://"),
    ("ftp://api.hubapi.com", False, "https://"),
    ("api.hubapi.com", False, "https://"),
    ("//api.hubapi.com", False, "https://"),
    ("https:/api.hubapi.com", False, "https://"),
    ("https://", False, "no host"),
    ("http:///", False, "no host"),
    ("http://:80/", False, "no host"),
    ("https://api.hubapi.com:0", False, "port 0"),
    ("https://api.hubapi.com:99999", False, "not a valid URL"),
    ("https://api.hubapi.com:abc", False, "not a valid URL"),
    ("https://api.hubapi.com?x=1", False, "remove '?x=1'"),
    ("https://api.hubapi.com#top", False, "remove '#top'"),
]


def connected_host(url: str) -> str | None:
    """The host urllib3 opens a connection to for `url` (None when it cannot parse it)."""
    try:
        return urllib3.PoolManager().connection_from_url(url).host
    except (urllib3.exceptions.LocationParseError, ValueError, urllib3.exceptions.URLSchemeUnknown):
        return None


def resolves_to_loopback_only(host: str) -> bool:
    infos = socket.getaddrinfo(host.strip("[]"), 80, type=socket.SOCK_STREAM)
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


@pytest.mark.parametrize(("template", "accepted", "words"), URLS)
@pytest.mark.parametrize("setting", ["api_base_url", "oauth_token_url"])
def test_url_checks_agree_with_where_urllib3_connects(template, accepted, words, setting):
    url = template.replace(P, "8080")
    if setting == "oauth_token_url" and words == "path":
        accepted = True  # the token URL has a path
    elif setting == "oauth_token_url" and accepted:
        url = url.rstrip("/") + "/oauth/v1/token"
    verdict = check_url(setting, url)
    if not accepted:
        assert verdict.problem is not None and verdict.host is None
        assert setting in verdict.problem and words in verdict.problem, verdict.problem
        assert "pw" not in verdict.problem  # user info is never echoed
        return
    assert verdict.problem is None, verdict.problem
    # The approved host is the one urllib3 will connect to, whatever the spelling.
    assert verdict.host == parse_url(url).host
    assert connected_host(url) == verdict.host.strip("[]")
    if parse_url(url).scheme == "http":
        assert resolves_to_loopback_only(verdict.host)


@pytest.mark.parametrize("template", [row[0] for row in URLS if row[1] and P in row[0]])
def test_every_accepted_loopback_url_reaches_a_local_server_there(template):
    host = parse_url(template.replace(P, "1")).host.strip("[]")
    address = "127.0.0.1" if host == "localhost" else host
    try:
        recorder = Recorder(host=address)
    except OSError:
        pytest.skip(f"cannot listen on {address} on this machine")
    with recorder:
        url = template.replace(P, recorder.url.rsplit(":", 1)[1]).rstrip("/")
        assert check_url("api_base_url", url).problem is None
        reply = Transport(timeout=5).send("GET", url + "/probe", None, {})
    assert reply.status == 200
    assert [r.path for r in recorder.received] == ["/probe"]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://example.com\\@127.0.0.1", "example.com"),
        ("http://127.0.0.1@example.com", "example.com"),
        ("http://example.com#@127.0.0.1/", "example.com"),
    ],
)
def test_the_old_bypasses_really_lead_elsewhere(url, host):
    # Why these are refused: a check that looked for 127.0.0.1 in the text would have passed them.
    assert "127.0.0.1" in url and connected_host(url) == host
    assert check_url("api_base_url", url).problem is not None


def test_api_base_url_with_a_path_says_what_to_remove():
    with pytest.raises(HubSpotConfigError) as info:
        TargetHubSpotUpsert(config={"access_token": "t0k3n-xyz", "api_base_url": "https://api.hubapi.com/crm/v3"})
    assert "remove '/crm/v3': the target adds API paths itself" in "\n".join(info.value.errors)


def test_oauth_token_url_needs_its_path():
    assert "has no path" in str(check_url("oauth_token_url", "https://api.hubapi.com").problem)
