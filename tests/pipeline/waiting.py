"""Waiting in the pipeline's unit tests: a bounded poll, never a fixed sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WAIT = 5.0  # upper bound for anything that should happen promptly


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def in_background(call: Callable[[], object]) -> tuple[threading.Event, threading.Thread]:
    """Run `call` on a daemon thread, started now: the Event is set once `call` has returned."""
    returned = threading.Event()

    def run() -> None:
        call()
        returned.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return returned, thread
