"""The `hostile` option: the simulator plays a misbehaving server, and every answer ends by itself."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from hubspot_simulator import HubSpotSimulator
from hubspot_simulator.__main__ import _options, _parser, main
from sim_helpers import AUTH


def raw_exchange(sim, path: str = "/crm/v3/objects/contacts/batch/upsert", *, limit: int = 1 << 20,
                 timeout: float = 10) -> bytes:
    """Send a request on a plain socket and read what comes back (until close or `limit` bytes)."""
    host, port = sim.base_url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        data = b""
        while len(data) < limit:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    return data


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("trickle", "mapping"),
        ({"mode": "teapot"}, "mode must be one of"),
        ({}, "mode must be one of"),
        ({"mode": "redirect"}, "location must be an http(s) URL"),
        ({"mode": "redirect", "location": "ftp://x"}, "location must be an http(s) URL"),
        ({"mode": "redirect", "location": "http://x", "status": 200}, "status must be 301"),
        ({"mode": "trickle", "bytes_per_second": 0}, "bytes_per_second must be a number above 0"),
        ({"mode": "trickle", "max_seconds": -1}, "max_seconds must be a number above 0"),
        ({"mode": "huge", "size": -5}, "size must be a whole number"),
        ({"mode": "huge", "size": 1.5}, "size must be a whole number"),
        ({"mode": "huge", "paths": "crm"}, "paths must be a path prefix"),
        ({"mode": "huge", "speed": 3}, "unknown keys ['speed']"),
    ],
)
def test_bad_hostile_options_are_refused_everywhere(sim, http, value, words):
    with pytest.raises(ValueError, match="hostile") as caught:
        sim.configure(hostile=value)
    assert words in str(caught.value)
    r = http.post(sim.base_url + "/_sim/configure", json={"hostile": value}, timeout=5)
    assert r.status_code == 400 and words in r.json()["message"]
    assert sim.options["hostile"] is None


def test_configured_over_http_with_defaults_filled_in_and_only_under_its_paths(sim, http):
    r = http.post(sim.base_url + "/_sim/configure", timeout=5, json={
        "hostile": {"mode": "redirect", "location": "http://127.0.0.1:9", "status": 307, "paths": "/oauth/"},
    })
    assert r.status_code == 200
    assert r.json()["hostile"] == {
        "mode": "redirect", "paths": "/oauth/", "status": 307, "location": "http://127.0.0.1:9",
        "bytes_per_second": 1.0, "size": 200_000_000, "max_seconds": 30.0,
    }
    moved = http.post(sim.base_url + "/oauth/v1/token?x=1", data={"grant_type": "refresh_token"},
                      allow_redirects=False, timeout=5)
    assert moved.status_code == 307 and moved.headers["Location"] == "http://127.0.0.1:9/oauth/v1/token"
    # Other paths, and the control endpoints, answer as usual.
    assert http.get(sim.base_url + "/crm/v3/properties/contacts", headers=AUTH, timeout=5).status_code == 200
    assert http.get(sim.base_url + "/_sim/health", timeout=5).json() == {"status": "ok"}
    first = sim.requests[0]
    assert (first.path, first.endpoint, first.fault, first.status) == ("/oauth/v1/token", "hostile",
                                                                        "hostile:redirect", 307)
    sim.configure(hostile=None)
    assert http.post(sim.base_url + "/oauth/v1/token", timeout=5).status_code == 400


def test_control_paths_are_never_hostile(sim, http):
    sim.configure(hostile={"mode": "endless"})
    assert http.get(sim.base_url + "/_sim/health", timeout=5).json() == {"status": "ok"}
    assert http.post(sim.base_url + "/_sim/configure", json={"hostile": None}, timeout=5).status_code == 200


def test_huge_declares_its_size_and_huge_undeclared_sends_it_then_closes(sim):
    sim.configure(hostile={"mode": "huge_undeclared", "size": 100_000})
    data = raw_exchange(sim)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"200" in head.split(b"\r\n")[0] and b"Content-Length" not in head and len(body) == 100_000
    sim.configure(hostile={"mode": "huge", "size": 100_000})
    head, body = raw_exchange(sim).split(b"\r\n\r\n", 1)
    assert b"Content-Length: 100000" in head and len(body) == 100_000
    assert sim.wait_idle(5)
    assert [(e.bytes_sent, e.hung_up) for e in sim.requests] == [(100_000, False), (100_000, False)]


def test_endless_is_chunked_and_stops_when_the_client_hangs_up(sim):
    sim.configure(hostile={"mode": "endless"})
    data = raw_exchange(sim, limit=1 << 20)  # read a mebibyte, then hang up
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"Transfer-Encoding: chunked" in head
    assert sim.wait_idle(10)
    (entry,) = sim.requests
    assert entry.hung_up is True and entry.bytes_sent < 64 << 20  # it noticed, within socket buffers


def test_slow_modes_pace_their_bytes_and_end_after_max_seconds(sim):
    sim.configure(hostile={"mode": "slow_headers", "bytes_per_second": 20, "max_seconds": 0.5})
    data = raw_exchange(sim)
    assert data and (b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 100).startswith(data) and len(data) <= 0.5 * 20 + 2
    sim.configure(hostile={"mode": "trickle", "bytes_per_second": 20, "max_seconds": 0.5, "size": 1000})
    head, body = raw_exchange(sim).split(b"\r\n\r\n", 1)
    assert b"Content-Length: 1000" in head and 0 < len(body) <= 0.5 * 20 + 2
    assert sim.wait_idle(5)
    assert [e.hung_up for e in sim.requests] == [False, False]


def test_stop_ends_a_hostile_answer_at_once():
    sim = HubSpotSimulator().start()
    sim.configure(hostile={"mode": "trickle", "bytes_per_second": 1, "max_seconds": 600})
    reader = threading.Thread(target=lambda: raw_exchange(sim, timeout=60), daemon=True)
    reader.start()
    deadline = time.monotonic() + 5
    while not sim.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    sim.stop()
    assert sim.wait_idle(5)
    reader.join(5)
    assert not reader.is_alive()


def test_cli_flags_make_the_option():
    args = _parser().parse_args(["--hostile", "trickle", "--hostile-bytes-per-second", "4", "--hostile-size", "10",
                                 "--hostile-paths", "/crm/", "--hostile-max-seconds", "2"])
    assert _options(args)["hostile"] == {"mode": "trickle", "bytes_per_second": 4.0, "size": 10, "paths": "/crm/",
                                         "max_seconds": 2.0}
    args = _parser().parse_args(["--hostile", "redirect", "--hostile-location", "http://127.0.0.1:1",
                                 "--hostile-status", "308"])
    assert _options(args)["hostile"] == {"mode": "redirect", "location": "http://127.0.0.1:1", "status": 308}
    assert _options(_parser().parse_args([]))["hostile"] is None


def test_cli_refuses_hostile_settings_without_a_mode_or_a_bad_one(capsys):
    assert main(["--hostile-size", "5"]) == 2
    assert "need --hostile MODE" in capsys.readouterr().err
    assert main(["--hostile", "redirect"]) == 2  # without --hostile-location
    assert "location must be an http(s) URL" in capsys.readouterr().err


def test_a_client_gets_the_redirect_through_requests_too(sim):
    sim.configure(hostile={"mode": "redirect", "location": "http://127.0.0.1:9", "status": 301})
    r = requests.get(sim.base_url + "/crm/v3/properties/contacts", headers=AUTH, allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["Location"].endswith("/crm/v3/properties/contacts")
