"""Command-line entry point: user mistakes end with a clear message and no traceback."""

from __future__ import annotations

import logging
import sys

from singer_sdk.exceptions import ConfigValidationError

from target_hubspot_upsert.errors import UserFacingError
from target_hubspot_upsert.redact import REDACTOR, install
from target_hubspot_upsert.target import TargetHubSpotUpsert

logger = logging.getLogger("target_hubspot_upsert")


def main() -> None:
    """Run the target CLI."""
    try:
        TargetHubSpotUpsert.cli()
    except ConfigValidationError as exc:
        for error in exc.errors or [str(exc)]:
            logger.error("Configuration error: %s", REDACTOR.redact(str(error)))  # noqa: TRY400 - a user mistake: no traceback
        sys.exit(1)
    except UserFacingError as exc:
        logger.error("%s", exc)  # noqa: TRY400 - a user mistake: no traceback
        sys.exit(exc.exit_code)
    except Exception:
        # A bug, not a user mistake: keep the traceback for the report, without secrets.
        install()
        logger.exception("Unexpected error in target-hubspot-upsert; please report it.")
        sys.exit(70)
