"""Keep secrets out of every log line and traceback, whatever library produced the text."""

from __future__ import annotations

import logging
import threading

MASK = "***"
MIN_SECRET_LENGTH = 4


class SecretRedactor(logging.Filter):
    """A handler filter that masks known secret values in messages and formatted tracebacks."""

    def __init__(self) -> None:
        """Start with no secrets."""
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, value: object) -> None:
        """Mask `value` from now on (tokens issued during the run are added as they arrive).

        A secret setting of the wrong type (a number, a list) is masked too, as it would print.
        """
        if isinstance(value, list | tuple | set | dict):
            for item in value.values() if isinstance(value, dict) else value:
                self.add(item)
            self.add(repr(value))
            return
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets = self._secrets | {value}

    def redact(self, text: str) -> str:
        """`text` with every known secret masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback) before any formatter sees it."""
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not stop logging
            message = str(record.msg)
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = SecretRedactor()


def install() -> None:
    """Attach the redactor to every handler that exists now (the SDK sets them up at start)."""
    loggers = [logging.getLogger(), *(
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    )]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if REDACTOR not in handler.filters:
                handler.addFilter(REDACTOR)
