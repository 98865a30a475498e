"""Hostile servers: every exchange ends in bounded time and memory, and credentials go nowhere else.

The HubSpot simulator plays each hostile server (its `hostile` option), for API requests and for the
OAuth token endpoint alike; the real transport and retry loop talk to it, with no mocking of urllib3.
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
from dataclasses import dataclass, field
from typing import Any

import pytest
from hubspot_simulator import HubSpotSimulator

from target_hubspot_upsert.core.errors import HostUnreachable, RedirectRefused, RetriesExhausted
from target_hubspot_upsert.http.auth import OAuthTokenProvider, StaticToken
from target_hubspot_upsert.http.transport import MAX_RESPONSE_BYTES, Transport
from target_hubspot_upsert.hubspot.client import HubSpotClient

from .helpers import contacts_with_states, run_cli
from .hostile import Recorder, refused_port

TOKEN = "hostile-test-token-31337"
CLIENT_SECRET = "hostile-client-secret-271828"
REFRESH_TOKEN = "hostile-refresh-token-161803"
SECRETS = (TOKEN, CLIENT_SECRET, REFRESH_TOKEN)
TIMEOUT = 1.0  # request_timeout for these tests
RATE = 2.5  # bytes per second of the slow modes: a few bytes per request_timeout
SLOW_MOST = TIMEOUT * RATE + 3  # what one attempt can get of a slow answer (a byte or two of slack)
TIMED_OUT = ("no complete answer within request_timeout", "raise request_timeout")


@dataclass(frozen=True)
class Case:
    """One hostile server and what the client must make of it."""

    mode: str
    options: dict[str, Any] = field(default_factory=dict)
    error: type[Exception] = RetriesExhausted
    words: tuple[str, ...] = ()
    attempts: int = 2  # requests the server gets: max_retries is 1, and only redirects are final
    most_read: float = 0  # body bytes the client may read per attempt
    most_sent: float | None = None  # body bytes the server may get onto the wire per attempt


CASES = {
    **{
        f"redirect-{status}": Case("redirect", {"status": status}, RedirectRefused, (f"HTTP {status}",), attempts=1)
        for status in (301, 302, 303, 307, 308)
    },
    # A body of one byte every 0.4 s: ends at request_timeout, then once more after the retry.
    "trickle": Case("trickle", {"bytes_per_second": RATE, "size": 1000}, words=TIMED_OUT, most_read=SLOW_MOST,
                    most_sent=SLOW_MOST),
    "slow_headers": Case("slow_headers", {"bytes_per_second": RATE}, words=TIMED_OUT, most_sent=0),
    # 200 MB declared: refused from the Content-Length alone, before reading any of it.
    "huge": Case("huge", words=("answer too large",), most_sent=MAX_RESPONSE_BYTES + (16 << 20)),
    # Without a length, or chunked without end: read up to the cap and no further.
    "huge_undeclared": Case("huge_undeclared", words=("answer too large",), most_read=MAX_RESPONSE_BYTES + 1,
                            most_sent=MAX_RESPONSE_BYTES + (16 << 20)),
    "endless": Case("endless", words=("answer too large",), most_read=MAX_RESPONSE_BYTES + 1,
                    most_sent=MAX_RESPONSE_BYTES + (16 << 20)),
}
HUGE = {"huge", "huge_undeclared", "endless"}


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
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Where hostile servers redirect to: it must never receive anything."""
    with Recorder() as server:
        yield server


def hostile(sim: HubSpotSimulator, case: Case, recorder: Recorder, **extra: Any) -> None:
    options = {"mode": case.mode, **case.options, **extra}
    if case.mode == "redirect":
        options["location"] = recorder.url
    sim.configure(hostile=options)


def call_measured(caller: Caller, huge: bool) -> tuple[BaseException | None, int]:
    """The call's outcome and its peak of traced memory (0 when not traced)."""
    if not huge:
        return finishes(caller.call), 0
    tracemalloc.start()
    try:
        error = finishes(caller.call)
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_bounded(case: Case, caller: Caller, sim: HubSpotSimulator, peak: int) -> None:
    """What the client read and the server sent stayed within the case's bounds."""
    entries = sim.requests
    assert len(entries) == case.attempts
    assert caller.transport.bytes_read <= case.attempts * case.most_read
    if case.mode != "redirect":
        assert all(e.hung_up for e in entries), "the client hung up on every attempt"
    if case.most_sent is not None:
        assert all(e.bytes_sent <= case.most_sent for e in entries), [e.bytes_sent for e in entries]
    assert peak < MAX_RESPONSE_BYTES + (8 << 20)  # the cap plus small change, whatever the server sends


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("kind", ["api", "oauth"])
def test_every_hostile_server_ends_in_bounded_time_and_memory(kind, name, recorder):
    case = CASES[name]
    make, setting = CALLERS[kind]
    with HubSpotSimulator(tokens={TOKEN}) as sim:
        hostile(sim, case, recorder)
        caller = make(sim.base_url)
        error, peak = call_measured(caller, name in HUGE)
        assert sim.wait_idle(), "every hostile answer ended"
        assert_bounded(case, caller, sim, peak)
    assert isinstance(error, case.error), error
    for words in case.words:
        assert words in str(error)
    if case.mode == "redirect":
        assert setting in str(error) and caller.sleeps == []  # never retried
    assert_no_secret_in(str(error))
    assert recorder.received == []  # nothing, and so no credential, reached the redirect target


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


@pytest.mark.parametrize("name", ["trickle", "endless"])
def test_the_same_bounds_hold_over_tls(name, tls_context, recorder, monkeypatch):
    context, ca_file = tls_context
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    case = CASES[name]
    with HubSpotSimulator(tokens={TOKEN}, tls=context) as sim:
        assert sim.base_url.startswith("https://")
        hostile(sim, case, recorder)
        caller = api_caller(sim.base_url)
        error = finishes(caller.call)
        assert sim.wait_idle()
        assert_bounded(case, caller, sim, 0)
    assert isinstance(error, case.error), error  # not mistaken for a TLS failure
    assert all(words in str(error) for words in case.words)


def test_a_host_that_answered_before_is_retried_as_usual_when_it_goes_away():
    with HubSpotSimulator(tokens={TOKEN}) as sim:
        caller = api_caller(sim.base_url)
        assert finishes(caller.call) is None
    # The port is closed now: a restart or a network fault, not a wrong URL.
    error = finishes(caller.call)
    assert isinstance(error, RetriesExhausted) and "after 1 retries" in str(error)


def test_hostile_answers_stop_by_themselves():
    with HubSpotSimulator(tokens={TOKEN}) as sim:
        sim.configure(hostile={"mode": "trickle", "size": 1000, "bytes_per_second": 10, "max_seconds": 0.5})
        transport = Transport(timeout=30)
        error = finishes(lambda: transport.send("GET", sim.base_url + "/x", None, {}))
        assert sim.wait_idle(10)
        (entry,) = sim.requests
    # The server gave up after max_seconds, with the client still reading: it saw a short body.
    assert error is not None and entry.hung_up is False and 0 < entry.bytes_sent < 1000


# --- end to end: what a user sees --------------------------------------------------------------


def e2e_config(where: str, sim_url: str) -> dict:
    if where == "api":
        return {"access_token": TOKEN, "api_base_url": sim_url}
    return {
        "client_id": "hostile-client", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
        "api_base_url": sim_url,
    }


def assert_clean_failure(run, *fragments: str) -> None:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr
    assert_no_secret_in(run.stdout + run.stderr)


# With OAuth only the token endpoint misbehaves: the same simulator answers the API as HubSpot would.
PATHS = {"api": "/", "oauth": "/oauth/"}


@pytest.mark.parametrize("where", ["api", "oauth"])
def test_end_to_end_a_redirect_stops_the_run_with_a_clear_message(where, recorder, tmp_path):
    with HubSpotSimulator(tokens={TOKEN}) as sim:
        hostile(sim, CASES["redirect-307"], recorder, paths=PATHS[where])
        run = run_cli(e2e_config(where, sim.base_url), contacts_with_states(5, 5), tmp_path=tmp_path)
        requests = sim.requests
    setting = "api_base_url" if where == "api" else "oauth_token_url"
    assert_clean_failure(run, "got a redirect (HTTP 307", f"check the {setting} setting")
    assert recorder.received == [] and len(requests) == 1 and requests[0].fault == "hostile:redirect"


@pytest.mark.parametrize("where", ["api", "oauth"])
def test_end_to_end_a_trickling_server_stops_the_run_after_the_retries(where, recorder, tmp_path):
    with HubSpotSimulator(tokens={TOKEN}) as sim:
        hostile(sim, CASES["trickle"], recorder, paths=PATHS[where])
        cfg = {**e2e_config(where, sim.base_url), "request_timeout": TIMEOUT, "max_retries": 1}
        run = run_cli(cfg, contacts_with_states(5, 5), tmp_path=tmp_path)
        assert sim.wait_idle()
        requests = sim.requests
    assert_clean_failure(run, "kept failing (no complete answer within request_timeout", "raise request_timeout")
    assert len(requests) == 2
    assert all(e.hung_up and e.bytes_sent <= SLOW_MOST for e in requests)
    assert sim.upsert_requests() == []


def test_end_to_end_a_host_that_does_not_resolve_is_named(tmp_path):
    run = run_cli({"access_token": TOKEN, "api_base_url": "https://nowhere.invalid"}, contacts_with_states(5, 5),
                  tmp_path=tmp_path)
    assert_clean_failure(run, "could not connect to nowhere.invalid: the host name does not resolve",
                         "Check the api_base_url setting")
