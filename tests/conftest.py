"""Shared fixtures: a local HubSpot simulator per test, and ways to run the target against it."""

from __future__ import annotations

import pytest
from hubspot_simulator import HubSpotSimulator

TOKEN = "test-token-5f1d2c"


@pytest.fixture
def sim():
    """A fresh simulator on a free loopback port."""
    with HubSpotSimulator(tokens={TOKEN}) as simulator:
        yield simulator


@pytest.fixture
def config(sim):
    """A minimal valid config pointing at the simulator."""
    return {"access_token": TOKEN, "api_base_url": sim.base_url}
