"""Singer METRIC lines of HubSpot requests: one aggregate per stream and interval, or one per request.

By default (`detailed_metrics: false`) each request's duration is kept, and every progress interval
logs, per stream that sent requests in it, one `http_request_count` counter and one
`http_request_duration` timer whose value is the median and whose tags hold the 50th and 95th
percentiles. With `detailed_metrics: true` every request is logged as it ends, as the SDK does.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from singer_sdk import metrics

#: Durations kept per stream and interval; beyond that a uniform sample (reservoir) is kept.
SAMPLES_KEPT = 4096


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


class _Window:
    """One stream's requests since the last flush."""

    __slots__ = ("count", "samples")

    def __init__(self) -> None:
        self.count = 0
        self.samples: list[float] = []

    def add(self, elapsed: float, rand: random.Random) -> None:
        self.count += 1
        if len(self.samples) < SAMPLES_KEPT:
            self.samples.append(elapsed)
        else:
            slot = rand.randrange(self.count)
            if slot < SAMPLES_KEPT:
                self.samples[slot] = elapsed


class RequestMetrics:
    """Request metrics of one run, logged per request or aggregated per stream and interval."""

    def __init__(self, *, detailed: bool = False) -> None:
        """`detailed`: log every request's duration and the SDK's request counters as they happen."""
        self.detailed = detailed
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._counters: dict[str, metrics.Counter] = {}
        self._rand = random.Random(0)  # noqa: S311 - sampling, not security

    def observe(self, endpoint: str, status: int | str, elapsed: float, stream: str | None) -> None:
        """One request attempt ended after `elapsed` seconds."""
        if self.detailed:
            self._log_one(endpoint, status, elapsed, stream)
            return
        with self._lock:
            window = self._windows.get(stream or "")
            if window is None:
                window = self._windows[stream or ""] = _Window()
            window.add(elapsed, self._rand)

    def _log_one(self, endpoint: str, status: int | str, elapsed: float, stream: str | None) -> None:
        tags: dict[str, Any] = {metrics.Tag.ENDPOINT: endpoint, metrics.Tag.HTTP_STATUS_CODE: status}
        if stream:
            tags[metrics.Tag.STREAM] = stream
        metrics.log(
            metrics.get_metrics_logger(),
            metrics.Point("timer", metrics.Metric.HTTP_REQUEST_DURATION, elapsed, tags),
        )
        key = f"{stream}|{endpoint}"
        with self._lock:
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = metrics.http_request_counter(stream or "", endpoint)
            counter.increment()

    def flush(self) -> None:
        """Log the aggregates of the requests since the last flush (nothing for a quiet stream)."""
        with self._lock:
            windows, self._windows = self._windows, {}
        logger = metrics.get_metrics_logger()
        for stream, window in windows.items():
            tags: dict[str, Any] = {metrics.Tag.STREAM: stream} if stream else {}
            metrics.log(logger, metrics.Point("counter", metrics.Metric.HTTP_REQUEST_COUNT, window.count, tags))
            p50 = round(percentile(window.samples, 0.5), 6)
            p95 = round(percentile(window.samples, 0.95), 6)
            metrics.log(
                logger,
                metrics.Point(
                    "timer", metrics.Metric.HTTP_REQUEST_DURATION, p50,
                    {**tags, "requests": window.count, "p50": p50, "p95": p95},
                ),
            )

    def close(self) -> None:
        """The last aggregates, or the per-request counters' last values."""
        self.flush()
        with self._lock:
            counters, self._counters = list(self._counters.values()), {}
        for counter in counters:
            counter.exit()
