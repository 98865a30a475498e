"""Several batches in flight: per-id ordering, STATE never early, a rate limiter that avoids 429s."""

from __future__ import annotations

import random

import pytest

from target_hubspot_upsert.core.errors import DailyLimitReached
from target_hubspot_upsert.http.ratelimit import RateLimiter

from .helpers import FakeClock, contacts_with_states, landed_times, record, run_in_process, schema, state


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_id_ordering_and_state_under_random_latency(sim, config, seed):
    rng = random.Random(seed)
    sim.configure(latency_ms=12, latency_jitter_ms=11, seed=seed)
    messages = [schema("contacts")]
    last: dict[str, dict] = {}
    for i in range(1500):
        email = f"hot{rng.randrange(60)}@example.com"  # a few hot ids, updated across many batches
        rec = {"email": email, "firstname": f"v{i}", "num_orders": i}
        last[email] = rec
        messages.append(record("contacts", rec))
        if rng.random() < 0.03:
            messages.append(state({"i": i}))
    messages.append(state({"i": "end"}))
    run = run_in_process({**config, "max_concurrent_requests": 8, "batch_size_rows": rng.choice([5, 10, 20])}, messages)
    assert run.error is None
    assert sim.stats["max_concurrent_upserts"] > 1  # really concurrent
    for email, rec in last.items():
        landed = sim.find("contacts", "email", email)["properties"]
        assert landed["firstname"] == rec["firstname"], f"{email} ended with an older record"
    # Never two requests for the same id in flight at once.
    spans: dict[str, list[tuple[float, float]]] = {}
    for entry in sim.upsert_requests():
        for record_id in entry.ids:
            spans.setdefault(record_id, []).append((entry.started, entry.finished))
    for record_id, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in zip(intervals, intervals[1:]):
            assert start >= end, f"two requests for {record_id} overlapped"
    assert run.states[-1] == {"i": "end"}


@pytest.mark.parametrize("seed", [4, 5])
def test_state_is_never_early_with_concurrency(sim, config, seed):
    sim.configure(latency_ms=10, latency_jitter_ms=9, seed=seed)
    run = run_in_process({**config, "max_concurrent_requests": 8, "batch_size_rows": 17}, contacts_with_states(1200, 23))
    assert run.error is None
    landed = landed_times(sim)
    for value, written_at in zip(run.states, run.state_times, strict=True):
        assert all(landed[f"user{i}@example.com"] <= written_at for i in range(value["n"]))


def test_sole_client_sees_no_429_and_follows_the_headers(sim, config):
    # A short window keeps the test quick: 15 requests per second, announced in the headers.
    sim.configure(rate_limit_per_10s=15, rate_limit_interval_ms=1000, latency_ms=5)
    run = run_in_process({**config, "batch_size_rows": 10}, contacts_with_states(600, 100), real_time=True)
    assert run.error is None
    assert len(sim.objects("contacts")) == 600
    assert sim.stats["rate_limited_ten_secondly"] == 0
    assert run.target.runtime.client.limiter.limit == 15


def test_shared_account_429_slows_down_instead_of_hammering(sim, config):
    sim.configure(rate_limit_per_10s=20, rate_limit_interval_ms=1000)
    sim.consume_rate_limit(20)  # another app just used the whole window
    run = run_in_process({**config, "batch_size_rows": 10}, contacts_with_states(300, 100), real_time=True)
    assert run.error is None
    assert len(sim.objects("contacts")) == 300
    assert 1 <= sim.stats["rate_limited_ten_secondly"] <= 3
    assert run.target.runtime.client.totals.rate_limited >= 1  # here it hit the catalogue read


def test_another_client_seen_in_remaining_header_leaves_room_without_429(sim, config):
    # Another client of the same app used 15 of the 20 slots just before the run. The first
    # answer's X-HubSpot-RateLimit-Remaining shows it; the target waits for those slots to
    # free instead of sending into a full window.
    sim.configure(rate_limit_per_10s=20, rate_limit_interval_ms=1000)
    sim.consume_rate_limit(15)
    run = run_in_process({**config, "batch_size_rows": 10}, contacts_with_states(300, 100), real_time=True)
    assert run.error is None
    assert len(sim.objects("contacts")) == 300
    assert sim.stats["rate_limited_ten_secondly"] == 0
    assert run.target.runtime.client.limiter.throttled_seconds > 0


def test_daily_limit_midway_checkpoints_what_landed_and_stops(sim, config):
    sim.script_faults([None, None, None, "daily_429"])
    run = run_in_process({**config, "max_concurrent_requests": 1, "batch_size_rows": 10}, contacts_with_states(100, 10))
    assert isinstance(run.error, DailyLimitReached)
    assert "midnight in the HubSpot account's time zone" in str(run.error)
    assert run.states[-1] == {"n": 30}
    assert len(sim.objects("contacts")) == 30


def test_rate_limiter_never_exceeds_its_window():
    clock = FakeClock()
    limiter = RateLimiter(10, window_s=10.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(55):
        limiter.acquire()
        sent.append(clock())
    for i, t in enumerate(sent):
        in_window = [s for s in sent[: i + 1] if s > t - 10.0]
        assert len(in_window) <= 10
    assert sent[-1] - sent[0] < 55  # and it does not wait longer than it has to


def test_rate_limiter_adapts_to_headers_and_backs_off_after_429():
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.observe({"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    assert limiter.limit == 190
    before = clock()
    pause = limiter.on_rate_limited(None)
    limiter.acquire()
    assert clock() - before >= pause - 1e-9 and pause >= 10.0


def _headers(limit: int, remaining: int) -> dict[str, str]:
    return {"X-HubSpot-RateLimit-Max": str(limit), "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}


def test_rate_limiter_books_requests_it_did_not_send_from_remaining():
    clock = FakeClock()
    limiter = RateLimiter(10, window_s=10.0, clock=clock, sleep=clock.sleep)
    first = limiter.acquire()
    limiter.acquire()
    # HubSpot counted 7 (3 remaining): 5 came from someone else.
    limiter.observe(_headers(10, 3), first)
    start = clock()
    for _ in range(3):
        limiter.acquire()
    assert clock() == start  # 2 + 5 + 3 = 10: still room
    # The same answer seen again books nothing more.
    limiter.observe(_headers(10, 3), first)
    assert len(limiter._foreign) == 5
    limiter.acquire()
    assert clock() - start >= 10.0  # the 11th waits for the window


def test_rate_limiter_sole_client_books_nothing():
    clock = FakeClock()
    limiter = RateLimiter(10, window_s=10.0, clock=clock, sleep=clock.sleep)
    stamps = [limiter.acquire() for _ in range(4)]
    # Answers arrive out of order and HubSpot may count fewer than were sent by then.
    limiter.observe(_headers(10, 6), stamps[3])
    limiter.observe(_headers(10, 8), stamps[1])
    limiter.observe(_headers(10, 10), stamps[0])
    assert len(limiter._foreign) == 0
    start = clock()
    for _ in range(6):
        limiter.acquire()
    assert clock() == start
