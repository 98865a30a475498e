"""Command line entry point: run the HubSpot simulator as a standalone process.

Prints exactly one line, ``HubSpot simulator listening on http://127.0.0.1:PORT``, to
stdout once the socket is bound (and writes the URL to ``--url-file`` if given), then
serves until SIGTERM or SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .hostile import MODES
from .server import HubSpotSimulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hubspot-simulator", description="Local HubSpot CRM API simulator.")
    add = p.add_argument
    add("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    add("--port", type=int, default=0, help="TCP port, 0 picks a free one (default 0)")
    add("--token", action="extend", nargs="+", dest="tokens", metavar="T",
        help="valid bearer token(s); repeatable (default sim-token)")  # fmt: skip
    add("--latency-ms", type=float, default=0, help="added latency of each batch request")
    add("--jitter-ms", type=float, default=0, help="uniform +/- jitter on the latency")
    add("--uplink-share", type=float, default=0.0,
        help="share (0-1) of the latency and jitter spent before the request is counted (default 0)")
    add("--rate-limit", type=int, default=None, help="requests per rolling window (default: none)")
    add("--rate-limit-interval-ms", type=float, default=10000, help="rolling window length")
    add("--daily-limit", type=int, default=None, help="requests per day (default: none)")
    add("--search-rate-limit", type=int, default=None, help="searches per second (default: none; HubSpot: 4-5)")
    add("--search-index-lag", type=float, default=0, help="seconds search results trail writes (default 0)")
    add("--error-rate", type=float, default=0.0, help="probability of a 5xx on object batch requests")
    add("--drop-rate", type=float, default=0.0, help="probability of a dropped connection")
    add("--validation-error-mode", choices=("batch", "multi_status"), default="batch")
    add("--no-log-bodies", action="store_true", help="log only input counts and ids")
    add("--seed", type=int, default=0, help="seed of the fault RNG")
    add("--portal-id", type=int, default=12345678, help="portal id of GET /account-info/v3/details")
    add("--url-file", default=None, help="write the base URL to this file once listening")
    hostile = p.add_argument_group("hostile server", "misbehave instead of answering like HubSpot (see hostile.py)")
    add = hostile.add_argument
    add("--hostile", choices=MODES, default=None, metavar="MODE", help=f"one of {', '.join(MODES)}")
    add("--hostile-paths", metavar="PREFIX", help="only paths starting with this (default: every API path)")
    add("--hostile-location", metavar="URL", help="redirect: where to (the request path is appended)")
    add("--hostile-status", type=int, metavar="N", help="redirect: 301, 302 (default), 303, 307 or 308")
    add("--hostile-bytes-per-second", type=float, metavar="R", help="trickle, slow_headers: pace (default 1)")
    add("--hostile-size", type=int, metavar="BYTES", help="trickle, huge: body size (default 200000000)")
    add("--hostile-max-seconds", type=float, metavar="S", help="every mode ends after this (default 30)")
    return p


def _hostile(args: argparse.Namespace) -> dict[str, Any] | None:
    given = {
        key: getattr(args, f"hostile_{key}")
        for key in ("paths", "location", "status", "bytes_per_second", "size", "max_seconds")
        if getattr(args, f"hostile_{key}") is not None
    }
    if args.hostile is None:
        if given:
            raise ValueError("the --hostile-* settings need --hostile MODE")
        return None
    return {"mode": args.hostile, **given}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "latency_ms": args.latency_ms,
        "latency_jitter_ms": args.jitter_ms,
        "uplink_share": args.uplink_share,
        "rate_limit_per_10s": args.rate_limit,
        "rate_limit_interval_ms": args.rate_limit_interval_ms,
        "daily_limit": args.daily_limit,
        "search_rate_limit_per_second": args.search_rate_limit,
        "search_index_lag_seconds": args.search_index_lag,
        "error_rate": args.error_rate,
        "drop_rate": args.drop_rate,
        "validation_error_mode": args.validation_error_mode,
        "log_bodies": not args.no_log_bodies,
        "seed": args.seed,
        "portal_id": args.portal_id,
        "hostile": _hostile(args),
    }


def _write_url_file(path: str, url: str) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: readers never see a half-written URL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGTERM/SIGINT.

    Args:
        argv: Command line arguments (default ``sys.argv[1:]``).

    Returns:
        The process exit code (0 on a signal-initiated shutdown).
    """
    args = _parser().parse_args(argv)
    # The store grows to millions of acyclic dicts and this process makes little cyclic
    # garbage: rarer collections save ~15% CPU per request in benchmarks.
    gc.set_threshold(100_000, 50, 100)
    try:
        sim = HubSpotSimulator(tokens=args.tokens, host=args.host, port=args.port, **_options(args))
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"hubspot-simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    if args.url_file:
        _write_url_file(args.url_file, sim.base_url)
    print(f"HubSpot simulator listening on {sim.base_url}", flush=True)
    try:
        while not stop.wait(0.2):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
