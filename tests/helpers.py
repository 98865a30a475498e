"""Builders for Singer messages and runners for the target (in-process and as a CLI)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

CONTACT_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": ["string"]},
        "firstname": {"type": ["string", "null"]},
        "num_orders": {"type": ["integer", "null"]},
    },
}


def schema(stream: str, properties: dict[str, Any] | None = None, key: list[str] | None = None) -> dict:
    """A SCHEMA message."""
    props = properties or CONTACT_SCHEMA["properties"]
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": props},
        "key_properties": key or [],
    }


def record(stream: str, rec: dict[str, Any]) -> dict:
    """A RECORD message."""
    return {"type": "RECORD", "stream": stream, "record": rec}


def state(value: Any) -> dict:
    """A STATE message."""
    return {"type": "STATE", "value": value}


def contact(i: int, **extra: Any) -> dict:
    """The i-th test contact."""
    return {"email": f"user{i}@example.com", "firstname": f"User {i}", **extra}


def lines(messages: list[dict]) -> str:
    """Messages as Singer input text."""
    return "".join(json.dumps(m) + "\n" for m in messages)


def contacts_with_states(n: int, every: int, *, start: int = 0) -> list[dict]:
    """n contacts; after every `every` records a STATE {"n": records so far}."""
    messages = [schema("contacts")]
    for i in range(start, start + n):
        messages.append(record("contacts", contact(i, num_orders=i)))
        if (i + 1 - start) % every == 0:
            messages.append(state({"n": i + 1}))
    messages.append(state({"n": start + n}))
    return messages


def states_in(stdout: str) -> list:
    """The STATE values the target wrote: one JSON document per non-blank stdout line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def summary(stderr: str, stream: str) -> str:
    """The end-of-run summary line of one stream."""
    found = re.search(rf"Stream '{stream}' -> [^\n]*", stderr)
    assert found, stderr
    return found.group(0)


def landed_times(sim) -> dict[str, float]:
    """When each id was first acknowledged by a successful upsert (simulator clock)."""
    times: dict[str, float] = {}
    for entry in sim.upsert_requests():
        if entry.status == 200:
            for record_id in entry.ids:
                times.setdefault(record_id, entry.finished)
    return times


CLIENT_ID = "client-1234"
CLIENT_SECRET = "csecret-9f8e7d6c5b4a"
REFRESH_TOKEN = "rtoken-0a1b2c3d4e5f"


def oauth_config(sim, **extra):
    return {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
        "api_base_url": sim.base_url, **extra,
    }


def enable_oauth(sim, ttl=1800, rotate=False):
    sim.configure(oauth_clients={CLIENT_ID: CLIENT_SECRET}, refresh_tokens={REFRESH_TOKEN},
                  token_ttl_seconds=ttl, rotate_refresh_tokens=rotate)


@dataclass
class Run:
    """What a run of the target produced."""

    states: list[Any] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    error: BaseException | None = None
    returncode: int | None = None
    target: Any = None
    state_times: list[float] = field(default_factory=list)


class FakeClock:
    """Virtual time: sleeping advances it at once, so tests never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds
        time.sleep(0)


class TimedStdout(io.StringIO):
    """stdout that notes when each STATE line was written (monotonic, like the simulator log)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def write(self, s: str) -> int:
        if s.strip():
            self.times.append(time.monotonic())
        return super().write(s)


def run_in_process(
    config: dict, messages: list[dict] | str, *, clock: FakeClock | None = None, real_time: bool = False,
) -> Run:
    """Run the target in this process, capturing stdout (STATE lines).

    Time is virtual (no real waiting) unless `real_time`, which rate-limit tests need because
    the simulator's window runs on the real clock.
    """
    from target_hubspot_upsert.singer.target import TargetHubSpotUpsert  # noqa: PLC0415

    text = messages if isinstance(messages, str) else lines(messages)
    result = Run()
    out = TimedStdout()
    if real_time:
        target = TargetHubSpotUpsert(config=config)
    else:
        clock = clock or FakeClock()
        target = TargetHubSpotUpsert(config=config, sleep=clock.sleep, clock=clock)
    result.target = target
    with contextlib.redirect_stdout(out):
        try:
            target.listen(io.StringIO(text))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            result.error = exc
    result.stdout = out.getvalue()
    result.states = states_in(result.stdout)
    result.state_times = out.times
    return result


def run_cli(
    config: dict | None, messages: list[dict] | str | bytes, *, tmp_path: Path, args: list[str] | None = None,
    env: dict[str, str] | None = None, timeout: float = 120,
) -> Run:
    """Run `python -m target_hubspot_upsert` as a subprocess, like a pipeline would (bytes are sent as they are)."""
    text = messages if isinstance(messages, str | bytes) else lines(messages)
    data = text if isinstance(text, bytes) else text.encode()
    cmd = [sys.executable, "-m", "target_hubspot_upsert"]
    if config is not None:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        cmd += ["--config", str(config_path)]
    cmd += args or []
    proc = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode("utf-8", "backslashreplace")
    return Run(states=states_in(stdout), stdout=stdout, stderr=stderr, returncode=proc.returncode)


def start_slow_tap_run(config: dict, messages: list[dict], tmp_path, until, timeout: float = 20) -> subprocess.Popen:
    """Run the CLI on `messages` with stdin left open like a slow tap; return once `until()` holds.

    Waits at most `timeout` seconds for `until()`; the process is returned either way.
    """
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "target_hubspot_upsert", "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(messages))
    proc.stdin.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        time.sleep(0.01)
    return proc
