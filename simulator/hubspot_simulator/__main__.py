"""Command line entry point: run the HubSpot simulator as a standalone process.

Prints exactly one line, ``HubSpot simulator listening on http://127.0.0.1:PORT``, to
stdout once the socket is bound (and writes the URL to ``--url-file`` if given), then
serves until SIGTERM or SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .server import HubSpotSimulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hubspot-simulator", description="Local HubSpot CRM API simulator."
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (default 127.0.0.1)",
    )
    p.add_argument(
        "--port", type=int, default=0, help="TCP port, 0 picks a free one (default 0)"
    )
    p.add_argument(
        "--token",
        action="extend",
        nargs="+",
        dest="tokens",
        metavar="T",
        help="valid bearer token(s); repeatable (default sim-token)",
    )
    p.add_argument(
        "--latency-ms", type=float, default=0, help="added latency of each batch upsert"
    )
    p.add_argument(
        "--jitter-ms", type=float, default=0, help="uniform +/- jitter on the latency"
    )
    p.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="requests per rolling window (default: none)",
    )
    p.add_argument(
        "--rate-limit-interval-ms",
        type=float,
        default=10000,
        help="rolling window length",
    )
    p.add_argument(
        "--daily-limit", type=int, default=None, help="requests per day (default: none)"
    )
    p.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="probability of a 5xx on batch upserts",
    )
    p.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        help="probability of a dropped connection",
    )
    p.add_argument(
        "--validation-error-mode", choices=("batch", "multi_status"), default="batch"
    )
    p.add_argument(
        "--no-log-bodies", action="store_true", help="log only input counts and ids"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    p.add_argument(
        "--url-file",
        default=None,
        help="write the base URL to this file once listening",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGTERM/SIGINT.

    Args:
        argv: Command line arguments (default ``sys.argv[1:]``).

    Returns:
        The process exit code (0 on a signal-initiated shutdown).
    """
    args = _parser().parse_args(argv)
    options: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "latency_jitter_ms": args.jitter_ms,
        "rate_limit_per_10s": args.rate_limit,
        "rate_limit_interval_ms": args.rate_limit_interval_ms,
        "daily_limit": args.daily_limit,
        "error_rate": args.error_rate,
        "drop_rate": args.drop_rate,
        "validation_error_mode": args.validation_error_mode,
        "log_bodies": not args.no_log_bodies,
        "seed": args.seed,
    }
    # The store grows to millions of acyclic dicts and this process makes little cyclic
    # garbage: rarer collections save ~15% CPU per request in benchmarks.
    gc.set_threshold(100_000, 50, 100)
    try:
        sim = HubSpotSimulator(
            tokens=args.tokens, host=args.host, port=args.port, **options
        )
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"hubspot-simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    url = sim.base_url
    if args.url_file:
        tmp = f"{args.url_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(url + "\n")
        os.replace(tmp, args.url_file)  # atomic: readers never see a half-written URL
    print(f"HubSpot simulator listening on {url}", flush=True)
    try:
        while not stop.wait(
            0.2
        ):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
