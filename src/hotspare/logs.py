"""How a node process logs: the one place logging is configured.

Two formats. `text` is one readable line per record, for an operator at a terminal. `json` is one
JSON object per line, for a log collector (journald, Loki, Elasticsearch): a collector then needs
no parser of ours, and a multi-line traceback stays inside its record instead of becoming lines
that look like records of their own. Every JSON record names the node, because a site's logs are
gathered in one place and a spare speaks for the servers it covers.

Messages are the code's own; camera URLs with credentials are kept out of them where they are
written, so nothing here filters secrets and nothing here may add a field that could hold one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

FORMAT_ENV = "HOTSPARE_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormatError(ValueError):
    """An unknown format name; the message lists the known ones and where the name came from."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC, ms), level, logger, message, node, and
    `exception` (the formatted traceback) when the record carries one."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "node": self.node,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument that is not JSON-able must not lose the record.
        return json.dumps(entry, ensure_ascii=False, default=str)


def _log_uncaught(kind: type[BaseException], exc: BaseException,
                  tb: TracebackType | None, where: str = "") -> None:
    """In place of Python's own traceback print, which would be lines a collector cannot read."""
    logger = logging.getLogger("hotspare")
    if issubclass(kind, KeyboardInterrupt):
        logger.warning("stopped by an interrupt%s", where)
    else:
        logger.critical("uncaught exception%s", where, exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return  # what threading's own hook also keeps quiet about
    name = args.thread.name if args.thread is not None else "?"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, f" in thread {name}")


def resolve_format(chosen: str | None) -> str:
    """The option if given, else the environment variable, else `text`."""
    source = "--log-format"
    if chosen is None:
        chosen, source = os.environ.get(FORMAT_ENV) or "text", FORMAT_ENV
    name = chosen.strip().lower()
    if name not in FORMATS:
        raise LogFormatError(f"{source}={chosen!r}: the log format is one of {', '.join(FORMATS)}")
    return name


def configure(level: str = "INFO", log_format: str | None = None, *, node: str | None = None,
              stream: TextIO | None = None) -> None:
    """Send every logger's records (uvicorn's too: nodes run it with `log_config=None`) to one
    handler on the root logger, replacing earlier ones so a second call changes the format rather
    than doubling every line. In `json`, an uncaught exception (any thread) becomes a record too.
    Raises LogFormatError before changing anything."""
    name = resolve_format(log_format)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if name == "json":
        handler.setFormatter(JsonFormatter(node))
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        sys.excepthook = sys.__excepthook__
        threading.excepthook = threading.__excepthook__
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
