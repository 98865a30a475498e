"""Hostile servers: every exchange ends in bounded time and memory, and credentials go nowhere else.

Real local servers (tests/hostile.py), the real transport and retry loop; no mocking of urllib3.
Bounds are asserted on bytes (what the client read, what the server got onto the wire), not on
timings; `finishes` only keeps a broken bound from hanging the test run.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from target_hubspot_upsert.auth import OAuthTokenProvider, StaticToken
from target_hubspot_upsert.client import HubSpotClient
from target_hubspot_upsert.errors import HostUnreachable, RedirectRefused, RetriesExhausted
from target_hubspot_upsert.transport import MAX_RESPONSE_BYTES, Transport

from .helpers import run_cli
from .hostile import HostileServer, refused_port
from .test_end_to_end import contacts_with_states

TOKEN = "hostile-test-token-31337"
CLIENT_SECRET = "hostile-client-secret-271828"
REFRESH_TOKEN = "hostile-refresh-token-161803"
TIMEOUT = 1.0  # request_timeout for these tests


@pytest.fixture
def recorder() -> Iterator[HostileServer]:
    """Where hostile servers redirect to: it must never receive anything."""
    with HostileServer("record") as server:
        yield server


@dataclass
class Caller:
    """One way the target talks HTTP: an API request, or an OAuth token request."""

    transport: Transport
    sleeps: list[float]
    call: Callable[[], Any]


def api_caller(base_url: str) -> Caller:
    sleeps: list[float] = []
    transport = Transport(timeout=TIMEOUT)
    client = HubSpotClient(base_url, StaticToken(TOKEN), max_retries=1, sleep=sleeps.append, transport=transport)
    return Caller(transport, sleeps, lambda: client.batch_upsert("contacts", [{"id": "a@b.c", "properties": {}}]))


def oauth_caller(base_url: str) -> Caller:
    sleeps: list[float] = []
    transport = Transport(timeout=TIMEOUT)
    provider = OAuthTokenProvider(
        client_id="hostile-client", client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN,
        token_url=f"{base_url}/oauth/v1/token", transport=transport, max_retries=1, sleep=sleeps.append,
    )
    return Caller(transport, sleeps, provider.token)


CALLERS = {"api": (api_caller, "api_base_url"), "oauth": (oauth_caller, "oauth_token_url")}


def finishes(call: Callable[[], Any], limit: float = 60.0) -> BaseException | None:
    """Run `call` in a thread; the exception it ended with (a hang fails the test instead of the run)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert outcome, f"the call was still running after {limit} s"
    return outcome[0]


def assert_no_secret_in(text: str) -> None:
    for secret in (TOKEN, CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in text


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("kind", ["api", "oauth"])
def test_redirects_are_fatal_never_followed_never_retried(kind, status, recorder):
    make, setting = CALLERS[kind]
    with HostileServer("redirect", status=status, location=recorder.url) as server:
        caller = make(server.url)
        error = finishes(caller.call)
        assert server.wait_idle()
    assert isinstance(error, RedirectRefused)
    assert setting in str(error) and f"HTTP {status}" in str(error)
    assert_no_secret_in(str(error))
    assert len(server.received) == 1 and caller.sleeps == []  # never retried
    assert recorder.received == []  # nothing, and so no credential, reached the redirect target


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("trickle", {"declared": 1000, "interval": 0.4}),  # a body of one byte every 0.4 s
        ("slow_headers", {"interval": 0.4}),  # the headers never end
    ],
)
@pytest.mark.parametrize("kind", ["api", "oauth"])
def test_slow_answers_end_at_request_timeout(kind, mode, options):
    make, _ = CALLERS[kind]
    with HostileServer(mode, **options) as server:
        caller = make(server.url)
        error = finishes(caller.call)
        assert server.wait_idle(), "the server saw the client hang up"
    assert isinstance(error, RetriesExhausted)
    assert "no complete answer within request_timeout" in str(error) and "raise request_timeout" in str(error)
    assert len(server.received) == 2  # max_retries 1: timeouts keep the normal retry policy
    # Each attempt lasted about request_timeout: a few bytes at 0.4 s each, then the client hung up.
    assert caller.transport.bytes_read <= 2 * (TIMEOUT / options["interval"] + 2)
    assert all(s.hung_up and s.body_bytes <= TIMEOUT / options["interval"] + 3 for s in server.sent)


@pytest.mark.parametrize(
    ("mode", "most_read"),
    [
        ("huge", 0),  # 200 MB declared: refused from the Content-Length alone
        ("huge_undeclared", MAX_RESPONSE_BYTES + 1),  # 200 MB streamed without a length
        ("endless_chunked", MAX_RESPONSE_BYTES + 1),
    ],
)
@pytest.mark.parametrize("kind", ["api", "oauth"])
def test_huge_and_endless_answers_are_cut_at_the_cap(kind, mode, most_read):
    make, _ = CALLERS[kind]
    with HostileServer(mode) as server:
        caller = make(server.url)
        tracemalloc.start()
        try:
            error = finishes(caller.call)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert server.wait_idle()
    assert isinstance(error, RetriesExhausted), error
    assert "answer too large" in str(error)
    assert len(server.received) == 2
    assert caller.transport.bytes_read <= 2 * most_read  # two attempts, each read no further than the cap
    assert peak < MAX_RESPONSE_BYTES + (8 << 20)  # the cap plus small change, whatever the server sends
    # The server could not push much beyond what the client read (socket buffers) before it hung up.
    assert all(s.hung_up and s.body_bytes < MAX_RESPONSE_BYTES + (16 << 20) for s in server.sent)


@pytest.mark.parametrize("kind", ["api", "oauth"])
def test_a_refused_port_fails_fast_naming_host_and_setting(kind):
    make, setting = CALLERS[kind]
    sock, port = refused_port()
    with sock:
        caller = make(f"http://127.0.0.1:{port}")
        error = finishes(caller.call)
    assert isinstance(error, HostUnreachable)
    assert f"127.0.0.1:{port}" in str(error) and setting in str(error) and "refused" in str(error)
    assert len(caller.sleeps) == 1 and sum(caller.sleeps) < 1  # two tries, one short pause between them


@pytest.mark.parametrize("kind", ["api", "oauth"])
def test_a_name_that_does_not_resolve_fails_fast_naming_host_and_setting(kind):
    make, setting = CALLERS[kind]
    caller = make("https://nowhere.invalid")
    error = finishes(caller.call)
    assert isinstance(error, HostUnreachable)
    assert "nowhere.invalid" in str(error) and setting in str(error) and "does not resolve" in str(error)
    assert len(caller.sleeps) == 1 and sum(caller.sleeps) < 1


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory) -> tuple[ssl.SSLContext, str]:
    """A server context with a throwaway self-signed certificate for 127.0.0.1, and the CA file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, str(cert)


@pytest.mark.parametrize(
    ("mode", "options", "words", "most_read"),
    [
        ("trickle", {"declared": 1000, "interval": 0.4}, "request_timeout", 2 * (TIMEOUT / 0.4 + 2)),
        ("endless_chunked", {}, "answer too large", 2 * (MAX_RESPONSE_BYTES + 1)),
    ],
)
def test_the_same_bounds_hold_over_tls(mode, options, words, most_read, tls_context, monkeypatch):
    context, ca_file = tls_context
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with HostileServer(mode, tls=context, **options) as server:
        caller = api_caller(server.url)
        error = finishes(caller.call)
        assert server.wait_idle()
    assert isinstance(error, RetriesExhausted), error  # not mistaken for a TLS failure
    assert words in str(error) and len(server.received) == 2
    assert caller.transport.bytes_read <= most_read
    assert all(s.hung_up for s in server.sent)


def test_a_host_that_answered_before_is_retried_as_usual_when_it_goes_away():
    with HostileServer("record") as server:
        caller = api_caller(server.url)
        assert finishes(caller.call) is None
    # The port is closed now: a restart or a network fault, not a wrong URL.
    error = finishes(caller.call)
    assert isinstance(error, RetriesExhausted) and "after 1 retries" in str(error)


def test_servers_stop_their_loops_by_themselves():
    with HostileServer("trickle", declared=1000, interval=0.1, max_seconds=0.5) as server:
        transport = Transport(timeout=30)
        error = finishes(lambda: transport.send("GET", server.url + "/x", None, {}))
        assert server.wait_idle(10)
    # The server gave up after max_seconds, with the client still reading: it saw a short body.
    assert error is not None and server.sent[0].hung_up is False


# --- end to end: what a user sees --------------------------------------------------------------


def e2e_config(where: str, hostile_url: str, sim_url: str) -> dict:
    if where == "api":
        return {"access_token": TOKEN, "api_base_url": hostile_url}
    return {
        "client_id": "hostile-client", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
        "api_base_url": sim_url, "oauth_token_url": f"{hostile_url}/oauth/v1/token",
    }


def assert_clean_failure(run, *fragments: str) -> None:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr
    assert_no_secret_in(run.stdout + run.stderr)


@pytest.mark.parametrize("where", ["api", "oauth"])
def test_end_to_end_a_redirect_stops_the_run_with_a_clear_message(where, recorder, sim, tmp_path):
    with HostileServer("redirect", status=307, location=recorder.url) as server:
        run = run_cli(e2e_config(where, server.url, sim.base_url), contacts_with_states(5, 5), tmp_path=tmp_path)
    setting = "api_base_url" if where == "api" else "oauth_token_url"
    assert_clean_failure(run, "got a redirect (HTTP 307", f"check the {setting} setting")
    assert recorder.received == [] and len(server.received) == 1
    assert sim.upsert_requests() == []


@pytest.mark.parametrize("where", ["api", "oauth"])
def test_end_to_end_a_trickling_server_stops_the_run_after_the_retries(where, sim, tmp_path):
    with HostileServer("trickle", declared=1000, interval=0.4) as server:
        cfg = {**e2e_config(where, server.url, sim.base_url), "request_timeout": TIMEOUT, "max_retries": 1}
        run = run_cli(cfg, contacts_with_states(5, 5), tmp_path=tmp_path)
        assert server.wait_idle()
    assert_clean_failure(run, "kept failing (no complete answer within request_timeout", "raise request_timeout")
    assert len(server.received) == 2
    assert all(s.hung_up and s.body_bytes <= TIMEOUT / 0.4 + 3 for s in server.sent)


def test_end_to_end_a_host_that_does_not_resolve_is_named(tmp_path):
    run = run_cli({"access_token": TOKEN, "api_base_url": "https://nowhere.invalid"}, contacts_with_states(5, 5),
                  tmp_path=tmp_path)
    assert_clean_failure(run, "could not connect to nowhere.invalid: the host name does not resolve",
                         "Check the api_base_url setting")
