"""Command-line entry point: user mistakes end with a clear message and no traceback."""

from __future__ import annotations

import atexit
import json
import logging
import signal
import sys
from pathlib import Path

from singer_sdk.exceptions import ConfigValidationError, StreamMapConfigError

from target_hubspot_upsert.core.errors import UserFacingError
from target_hubspot_upsert.core.logs import install as install_one_line_logging
from target_hubspot_upsert.core.redact import REDACTOR, install
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

logger = logging.getLogger("target_hubspot_upsert")


def config_file_problems(argv: list[str]) -> list[str]:
    """Problems with the `--config` files named on the command line (ENV is not a file)."""
    paths: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            paths.append(argv[index + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    problems = []
    for raw in paths:
        if raw == "ENV":
            continue
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"Config file {raw} does not exist.")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"Config file {raw} cannot be read ({type(exc).__name__}).")
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # The position only: the text may hold secrets.
            where = f"line {exc.lineno}, column {exc.colno}"
            problems.append(f"Config file {raw} is not valid JSON ({exc.msg} at {where}).")
            continue
        if not isinstance(data, dict):
            problems.append(f"Config file {raw} must hold a JSON object of settings, not a {type(data).__name__}.")
    return problems


def _drop_generic_config_line(record: logging.LogRecord) -> bool:
    # The SDK follows every ConfigValidationError's own lines with "Config validation failed",
    # also for problems found while reading input (unknown properties): the lines say it all.
    return record.msg != "Config validation failed"


def _drop_env_parse_line(record: logging.LogRecord) -> bool:
    # The SDK logs this on every run without --config ENV: it tells the user nothing.
    return record.msg != "Skipping parse of env var settings..."


def _ignore_late_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def main() -> None:
    """Run the target CLI."""
    logging.getLogger(TargetHubSpotUpsert.name).addFilter(_drop_generic_config_line)
    logging.getLogger(TargetHubSpotUpsert.name).addFilter(_drop_env_parse_line)
    install_one_line_logging()
    # Python puts back the default SIGTERM/SIGINT action while the interpreter shuts down, so a
    # signal in those last milliseconds would end a finished run with -15; it has nothing left to
    # stop by then (the runtime already finished or aborted).
    atexit.register(_ignore_late_signals)
    problems = config_file_problems(sys.argv[1:])
    if problems:
        for problem in problems:
            logger.error("Configuration error: %s", problem)
        sys.exit(1)
    try:
        TargetHubSpotUpsert.cli()
    except ConfigValidationError as exc:
        for error in exc.errors or [str(exc)]:
            logger.error("Configuration error: %s", REDACTOR.redact(str(error)))  # noqa: TRY400 - a user mistake: no traceback
        sys.exit(1)
    except StreamMapConfigError as exc:
        logger.error("Configuration error in stream_maps: %s", REDACTOR.redact(str(exc)))  # noqa: TRY400 - a user mistake
        sys.exit(1)
    except UserFacingError as exc:
        logger.error("%s", exc)  # noqa: TRY400 - a user mistake: no traceback
        sys.exit(exc.exit_code)
    except Exception:
        # A bug, not a user mistake: keep the traceback for the report, without secrets.
        install()
        logger.exception("Unexpected error in target-hubspot-upsert; please report it.")
        sys.exit(70)
