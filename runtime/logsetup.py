"""The daemon's logging, from ``[basic]`` of ``oort.toml``, on the standard library's handlers.

- **Where:** stderr (``consoleLog``, default on) and/or a file (``fileLog``; ``logFile``, default
  ``<data>/log/oort.log``) rotated by size (``rotateSize`` bytes, ``rotateCount`` old files kept), as eKuiper's keys.
- **How:** ``logFormat`` ``text`` (one human line: time, level, logger, message; shorter on a terminal) or
  ``json`` (one JSON object per line: ``time``, ``level``, ``logger``, ``message``, ``exception`` when there is
  one), for log shippers. ``logDisableTimestamp`` drops the time (the journal adds its own).
- **What:** ``logLevel`` for everything, ``logLevels`` per logger (``{"oort.websocket" = "debug"}``), and the
  REST access log ``oort.access`` (one line per request) only with ``accessLog = true``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from runtime.config import PY_LOG_LEVELS, Config

ACCESS_LOGGER = "oort.access"
LISTENING_LOGGER = "oort.listening"  # "... listening on ...", one line per listener, at any log level
LOG_DIR = "log"  # in the data dir: the default place of the log file


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, *, timestamps: bool = True) -> None:
        super().__init__()
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {}
        if self._timestamps:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            doc["time"] = f"{stamp}.{int(record.msecs):03d}Z"
        doc["level"] = record.levelname
        doc["logger"] = record.name
        doc["message"] = record.getMessage()
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def _text_formatter(stream: TextIO | None, timestamps: bool) -> logging.Formatter:
    if not timestamps:
        return logging.Formatter("%(levelname)s %(name)s: %(message)s")
    if stream is not None and stream.isatty():  # a person watching: the date is noise
        return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure(config: Config, data_dir: Path) -> list[logging.Handler]:
    """Install the handlers ``config`` asks for on the root logger (replacing earlier ones); returns them.

    Raises:
      OSError: the log file's folder cannot be made or the file opened.
    """
    basic = config.basic
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = []
    timestamps = not basic.log_disable_timestamp
    if basic.console_log:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(
            JsonFormatter(timestamps=timestamps)
            if basic.log_format == "json"
            else _text_formatter(sys.stderr, timestamps)
        )
        handlers.append(console)
    if basic.file_log:
        path = Path(basic.log_file) if basic.log_file else data_dir / LOG_DIR / "oort.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.handlers.RotatingFileHandler(
            path, maxBytes=basic.rotate_size, backupCount=basic.rotate_count, encoding="utf-8"
        )
        file.setFormatter(
            JsonFormatter(timestamps=timestamps)
            if basic.log_format == "json"
            else _text_formatter(None, timestamps)
        )
        handlers.append(file)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(PY_LOG_LEVELS.get(basic.log_level.lower(), logging.INFO))
    for name, level in basic.log_levels.items():
        logging.getLogger(name).setLevel(PY_LOG_LEVELS[level.lower()])
    if LISTENING_LOGGER not in basic.log_levels:
        logging.getLogger(LISTENING_LOGGER).setLevel(logging.INFO)
    access = logging.getLogger(ACCESS_LOGGER)
    if not basic.access_log:
        access.setLevel(logging.WARNING)  # its lines are INFO: off unless asked for
    elif ACCESS_LOGGER not in basic.log_levels:
        access.setLevel(logging.INFO)
    return handlers
