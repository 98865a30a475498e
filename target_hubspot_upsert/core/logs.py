"""One log message, one line: Meltano prefixes each stderr line, so a line break would lose the prefix."""

from __future__ import annotations

import logging

#: The target's loggers: its own modules, and the SDK's logger named after the plugin.
LOGGER_NAMES = ("target_hubspot_upsert", "target-hubspot-upsert")


class OneLinePerMessage(logging.Filter):
    """A message holding line breaks is logged as one message per line, at the same level.

    An error's lines after the first are its details, logged as warnings: a failed run ends with
    exactly one ERROR line, the one that says what stopped it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass one-line messages; re-log a multi-line one line by line and drop the original."""
        message = record.getMessage()
        if "\n" not in message:
            return True
        parts = [line for line in message.splitlines() if line.strip()]
        for index, line in enumerate(parts):
            level = record.levelno
            if index and level >= logging.ERROR:
                level = logging.WARNING
            part = logging.makeLogRecord({
                **record.__dict__, "msg": line, "args": None, "message": line,
                "levelno": level, "levelname": logging.getLevelName(level),
                # A traceback (a bug report) stays with the last line.
                "exc_info": record.exc_info if index == len(parts) - 1 else None,
                "exc_text": record.exc_text if index == len(parts) - 1 else None,
            })
            logging.getLogger(record.name).handle(part)
        return False


def install() -> None:
    """Add the filter to the target's loggers (each module's too: a parent's filters skip them), once."""
    names = {*LOGGER_NAMES, *(n for n in list(logging.root.manager.loggerDict) if n.startswith(LOGGER_NAMES))}
    for name in sorted(names):
        target = logging.getLogger(name)
        if not any(isinstance(f, OneLinePerMessage) for f in target.filters):
            target.addFilter(OneLinePerMessage())
