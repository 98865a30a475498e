"""The retry decision is a pure function: one row per cause."""

from __future__ import annotations

import socket

import pytest
import urllib3

from target_hubspot_upsert.http.transport import ExchangeTimeout, ResponseTooLarge
from target_hubspot_upsert.hubspot.client import Action, retry_after_seconds, should_retry

TEN_SECONDLY = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}
DAILY = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"}


def half(_=None) -> float:
    return 0.5


@pytest.mark.parametrize(
    ("status", "body", "headers", "attempt", "action", "wait"),
    [
        (200, {}, {}, 1, Action.RETURN, 0.0),
        (301, {}, {"Location": "https://elsewhere.invalid/"}, 1, Action.REDIRECTED, 0.0),  # never followed
        (302, {}, {}, 1, Action.REDIRECTED, 0.0),
        (307, {}, {"Retry-After": "1"}, 1, Action.REDIRECTED, 0.0),  # nor retried
        (308, {}, {}, 2, Action.REDIRECTED, 0.0),
        (207, {}, {}, 1, Action.RETURN, 0.0),
        (400, {"category": "VALIDATION_ERROR"}, {}, 1, Action.RETURN, 0.0),  # never retried as is
        (409, {}, {}, 1, Action.RETURN, 0.0),
        (401, {}, {}, 1, Action.AUTH_FAILED, 0.0),
        (403, {}, {}, 1, Action.AUTH_FAILED, 0.0),
        (429, DAILY, {}, 1, Action.DAILY_LIMIT, 0.0),
        (429, TEN_SECONDLY, {}, 1, Action.RETRY, 10.0),           # wait out the window
        (429, TEN_SECONDLY, {}, 2, Action.RETRY, 20.0),           # longer when it repeats
        (429, TEN_SECONDLY, {"Retry-After": "3"}, 1, Action.RETRY, 3.0),  # server hint first
        (423, {}, {}, 1, Action.RETRY, 2.0),                      # at least 2 s after Locked
        (500, {}, {}, 1, Action.RETRY, 0.375),                    # 0.5 s with jitter 0.75
        (503, {}, {}, 3, Action.RETRY, 1.5),                      # 2 s with jitter 0.75
        (502, {}, {"Retry-After": "7"}, 1, Action.RETRY, 7.0),
        (504, {}, {}, 20, Action.RETRY, 22.5),                    # capped at 30 s
    ],
)
def test_should_retry(status, body, headers, attempt, action, wait):
    decision = should_retry(status, body, headers, attempt, rand=half)
    assert decision.action is action
    assert decision.wait == pytest.approx(wait)


@pytest.mark.parametrize(
    "error",
    [urllib3.exceptions.ProtocolError("reset"), urllib3.exceptions.ReadTimeoutError(None, "/x", "slow"),
     ExchangeTimeout("slow"), ResponseTooLarge("big")],
)
def test_connection_errors_and_timeouts_are_retried(error):
    decision = should_retry(None, None, {}, 1, error=error, rand=half)
    assert decision.action is Action.RETRY and decision.wait == pytest.approx(0.375)


def test_retry_after_accepts_http_dates():
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"), "no complete answer within request_timeout (ReadTimeoutError)"),
        (urllib3.exceptions.ProtocolError("Connection aborted."), "connection dropped (ProtocolError)"),
        (urllib3.exceptions.NewConnectionError(None, "failed"), "could not connect (NewConnectionError)"),
        (ExchangeTimeout("slow"), "no complete answer within request_timeout (ExchangeTimeout)"),
        (ResponseTooLarge("big"), "answer too large (ResponseTooLarge)"),
        (urllib3.exceptions.NameResolutionError("nowhere.invalid", None, socket.gaierror(-2, "unknown")),
         "the host name does not resolve (NameResolutionError)"),
    ],
)
def test_connection_failures_are_described_in_words(error, words):
    assert should_retry(None, None, {}, 1, error=error, rand=half).reason == words


def test_a_refused_connection_is_told_apart_from_other_connect_failures():
    error = urllib3.exceptions.NewConnectionError(None, "failed")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert should_retry(None, None, {}, 1, error=error, rand=half).reason == (
        "the connection was refused (nothing listens on that port) (NewConnectionError)"
    )
