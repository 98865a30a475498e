"""Fixtures of the simulator's tests: one simulator on a fake clock, reset before each test."""

from __future__ import annotations

import threading

import pytest
import requests
from hubspot_simulator import OPTION_DEFAULTS, HubSpotSimulator
from sim_helpers import TOKEN


class FakeClock:
    """Monotonic seconds that move only when a test says so (``sleep`` moves them too)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


@pytest.fixture(scope="session")
def _clock():
    return FakeClock()


@pytest.fixture(scope="session")
def _server(_clock):
    with HubSpotSimulator(tokens={TOKEN}, clock=_clock, sleep=_clock.sleep) as s:
        yield s


@pytest.fixture
def clock(_clock):
    """The shared simulator's clock."""
    _clock.slept.clear()
    return _clock


@pytest.fixture
def sim(_server):
    """The shared simulator, back to default options and an empty state."""
    _server.configure(**{**OPTION_DEFAULTS, "tokens": {TOKEN}})
    _server.reset()
    return _server


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session
