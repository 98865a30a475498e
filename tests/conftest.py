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


@pytest.fixture
def cache_config(config, tmp_path):
    """The simulator config with skip_unchanged on and a cache file in the test's directory."""
    return {**config, "skip_unchanged": True, "change_cache_path": str(tmp_path / "cache" / "changes.sqlite")}
