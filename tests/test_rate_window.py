"""The rate limiter's window margin: learned from round trips, back to the full one when HubSpot says so."""

from __future__ import annotations

import random

import pytest

from target_hubspot_upsert.http.auth import StaticToken
from target_hubspot_upsert.http.ratelimit import MIN_ROUND_TRIPS, WINDOW_MARGIN_S, RateLimiter
from target_hubspot_upsert.http.transport import Transport
from target_hubspot_upsert.hubspot.client import HubSpotClient

from .conftest import TOKEN
from .helpers import FakeClock, contacts_with_states, run_in_process

UPSERT = "contacts/batch/upsert"


def _headers(limit: int = 100, remaining: int | None = None) -> dict[str, str]:
    headers = {"X-HubSpot-RateLimit-Max": str(limit), "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    if remaining is not None:
        headers["X-HubSpot-RateLimit-Remaining"] = str(remaining)
    return headers


def _answer_after(limiter: RateLimiter, clock: FakeClock, seconds: float, endpoint: str = UPSERT) -> float:
    """One request answered `seconds` after it was sent (no -Remaining); its send time."""
    sent = limiter.acquire()
    clock.now += seconds
    limiter.observe(_headers(), sent, round_trip_of=endpoint)
    return sent


def _learned(n: int = 200, seed: int = 1) -> tuple[RateLimiter, FakeClock]:
    """A limiter after `n` answers of 250 +/- 50 ms."""
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    rng = random.Random(seed)
    for _ in range(n):
        _answer_after(limiter, clock, rng.uniform(0.2, 0.3))
    return limiter, clock


def test_margin_starts_full_and_few_round_trips_keep_it():
    limiter, _ = _learned(MIN_ROUND_TRIPS - 1)
    assert limiter.margin_s == WINDOW_MARGIN_S == 0.3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_round_trips_narrow_the_margin_to_their_spread(seed, caplog):
    caplog.set_level("INFO", logger="target_hubspot_upsert.http.ratelimit")
    limiter, _ = _learned(200, seed)
    assert 0.10 <= limiter.margin_s <= 0.13  # spread of 250 +/- 50 ms, plus the safety
    learned = [r for r in caplog.records if "instead of 0.3 s" in r.getMessage()]
    assert len(learned) == 1  # logged once, when it first changed


def test_the_learned_margin_is_what_the_window_waits():
    limiter, clock = _learned()
    margin = limiter.margin_s
    clock.now += 30.0  # the window is empty again
    first = limiter.acquire()
    for _ in range(99):
        limiter.acquire()
    assert clock() == first  # 100 at once: the limit
    limiter.acquire()
    assert clock() - first == pytest.approx(10.0 + margin)


def test_wider_round_trips_widen_the_margin_up_to_the_full_one():
    limiter, clock = _learned()
    _answer_after(limiter, clock, 0.45)
    assert limiter.margin_s == pytest.approx(0.45 - 0.2 + 0.025, abs=0.01)  # the spread, plus the safety
    _answer_after(limiter, clock, 2.0)
    assert limiter.margin_s == WINDOW_MARGIN_S


def test_a_few_fast_answers_of_another_endpoint_do_not_widen_it():
    limiter, clock = _learned()
    learned = limiter.margin_s
    for _ in range(5):
        _answer_after(limiter, clock, 0.005, endpoint="properties/contacts")
    assert limiter.margin_s == learned


def test_answers_without_a_round_trip_teach_nothing():
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        sent = limiter.acquire()
        clock.now += 0.25
        limiter.observe(_headers(), sent)  # a failed, rate-limited or exempt request's answer
    assert limiter.margin_s == WINDOW_MARGIN_S


def test_a_429_brings_the_full_margin_back_for_good():
    limiter, clock = _learned()
    assert limiter.margin_s < WINDOW_MARGIN_S
    limiter.on_rate_limited(None)
    assert limiter.margin_s == WINDOW_MARGIN_S
    for _ in range(200):
        _answer_after(limiter, clock, 0.25)
    assert limiter.margin_s == WINDOW_MARGIN_S


def _two_requests_a_learned_window_apart():
    """A limiter that learned its margin; two requests just over one window (with that margin) apart."""
    limiter, clock = _learned()
    margin = limiter.margin_s
    clock.now += 30.0
    early = limiter.acquire()
    clock.now = early + 10.0 + margin + 0.01  # the early one has left our window (with the learned margin)
    late = limiter.acquire()
    clock.now += 0.2
    return limiter, clock, margin, late


def test_remaining_counting_more_than_the_learned_margin_allows_brings_the_full_margin_back():
    limiter, clock, _margin, late = _two_requests_a_learned_window_apart()
    # HubSpot still counts both: the early request reached it later than the round trips promised.
    limiter.observe(_headers(100, 98), late)
    assert limiter.margin_s == WINDOW_MARGIN_S
    assert len(limiter._foreign) == 0  # our own two, within the full margin: nobody else's
    for _ in range(200):
        _answer_after(limiter, clock, 0.25)
    assert limiter.margin_s == WINDOW_MARGIN_S


def test_remaining_within_the_learned_margin_keeps_it():
    limiter, _clock, margin, late = _two_requests_a_learned_window_apart()
    limiter.observe(_headers(100, 99), late)  # HubSpot counted only the late one, as expected
    assert limiter.margin_s == margin
    assert len(limiter._foreign) == 0


def test_another_client_is_still_booked_with_a_learned_margin():
    limiter, clock = _learned()
    clock.now += 30.0
    sent = limiter.acquire()
    clock.now += 0.2
    limiter.observe(_headers(100, 94), sent)  # 6 counted, 1 ours: 5 from someone else
    assert len(limiter._foreign) == 5
    assert limiter.margin_s == WINDOW_MARGIN_S  # and the narrower margin is no longer trusted


def test_only_successful_answers_to_counted_requests_are_sampled(sim):
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    client = HubSpotClient(
        sim.base_url, StaticToken(TOKEN), limiter=limiter, max_retries=3, sleep=clock.sleep,
        transport=Transport(timeout=10),
    )
    try:
        inputs = [{"id": f"u{i}@example.com", "idProperty": "email", "properties": {}} for i in range(3)]
        sim.script_faults([500, 503])
        assert client.batch_upsert("contacts", inputs).status == 200  # the third attempt
        ids = [o["id"] for o in client.batch_upsert("contacts", inputs).body["results"]]
        for _ in range(3):  # exempt from the window: not sampled
            client.associate("contacts", "contacts", [(ids[0], ids[1])], None)
        assert {endpoint: len(sample) for endpoint, sample in limiter._round_trips.items()} == {UPSERT: 2}
    finally:
        client.close()


def test_learned_margin_meets_no_429_when_hubspot_counts_on_arrival(sim, config):
    # Half the latency on the way in, with its own jitter: a margin narrower than the spread of
    # the way in would meet 429s. A short window (20 per second) keeps the test quick.
    sim.configure(rate_limit_per_10s=20, rate_limit_interval_ms=1000, latency_ms=100, latency_jitter_ms=40,
                  uplink_share=0.5)
    run = run_in_process({**config, "batch_size_rows": 10}, contacts_with_states(1500, 500), real_time=True)
    assert run.error is None
    assert len(sim.objects("contacts")) == 1500
    assert sim.stats["rate_limited_ten_secondly"] == 0
    limiter = run.target.runtime.client.limiter
    assert limiter.margin_s < WINDOW_MARGIN_S  # learned, and never sent back to the full one
