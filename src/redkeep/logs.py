"""Logging set-up for the redkeep service and CLI: stdlib :mod:`logging`, text or JSON lines.

:func:`configure_logging` installs one stderr handler on the root logger (replacing the one it
installed before, so calling it again is safe) and sets the level of the ``redkeep`` loggers
from ``settings.log_level``; other loggers keep the root level (WARNING by default). Every
record passes through :class:`ScrubFilter` (installed on the handler and in the log record
factory, so other handlers get scrubbed records too): passwords, tokens and URL credentials
never reach the output.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from redkeep.errors import scrub

__all__ = ["JsonFormatter", "ScrubFilter", "TextFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else came from ``extra=`` and goes into JSON lines.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)
_HANDLER_MARK = "_redkeep_handler"


class ScrubFilter(logging.Filter):
    """Runs the message (after ``%`` formatting), traceback and stack of each record through
    :func:`redkeep.errors.scrub`. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as usual
            return True
        record.msg = scrub(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """``2024-05-01 12:00:00,123 INFO    redkeep.queue: message`` (output scrubbed again)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC ISO 8601), ``level``, ``logger``, ``message``,
    ``exc`` when there is a traceback, plus any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        line = orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return scrub(line)


def configure_logging(settings: Any, *, stream: IO[str] | None = None) -> logging.Handler:
    """Log to ``stream`` (default stderr) in ``settings.log_format`` ("text" or "json") with
    ``redkeep`` loggers at ``settings.log_level``. Returns the installed handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ScrubFilter())
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    logging.getLogger("redkeep").setLevel(settings.log_level)
    _install_record_factory()
    return handler


def _install_record_factory() -> None:
    # Scrub at record creation too, so handlers added by others (error trackers, pytest's
    # caplog, handlers earlier in the chain) never see a secret either.
    previous = logging.getLogRecordFactory()
    if getattr(previous, _HANDLER_MARK, False):
        return
    scrubber = ScrubFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrubber.filter(record)
        return record

    setattr(factory, _HANDLER_MARK, True)
    logging.setLogRecordFactory(factory)
