"""One logging configuration for every dossync process: the CLI's and the nightly's.

`configure_logging(home, name)` writes a logger's records to HOME/logs/NAME.log,
rotated at LOG_MAX_BYTES with LOG_BACKUPS old files, in one format (time,
process, level, logger, message: the nightly's workers write the same file).

- The CLI configures the root logger once per command (`configure_logging(home,
  verbose=...)`): HOME/logs/dossync.log, and one short line per warning on
  stderr (every record with --verbose); tracebacks go to the file only. A
  second call replaces what the first installed (the tests run the CLI's main
  many times in one process).
- The nightly adds HOME/logs/nightly.log to its own logger, "dossync.nightly",
  for the length of its run (`logger="dossync.nightly"`, then `close()`); its
  records reach dossync.log and stderr through the root logger as well.

A log file is never a reason to fail: one that cannot be opened or written
(a read-only HOME, a full disk) costs one warning on stderr, and the command
goes on logging to stderr only.
"""
from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dossync.core.home import Home

LOG_MAX_BYTES = 5_000_000  # a log file is rotated at this size ...
LOG_BACKUPS = 5  # ... keeping this many old ones (NAME.log.1 ... NAME.log.5)
FILE_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
STDERR_FORMAT = "%(levelname)s %(name)s: %(message)s"


class LogFile(logging.handlers.RotatingFileHandler):
    """HOME/logs/NAME.log, rotated. When it cannot be written (a full disk, a read-only
    HOME) the command goes on with stderr only, after one warning: a log is never a
    reason to fail."""

    broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        self.broken = True
        _log_file_warning(self.baseFilename, sys.exc_info()[1])
        with contextlib.suppress(OSError):  # its last buffered line cannot be written either
            self.close()


class ShortFormatter(logging.Formatter):
    """One line per record on stderr: tracebacks go to the log file only."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


def _log_file_warning(path, exc: BaseException | None) -> None:
    reason = getattr(exc, "strerror", None) or exc or "unknown error"
    print(f"dossync: warning: the log file {path} cannot be written ({reason}); "
          f"logging to stderr only", file=sys.stderr)


@dataclass
class LogSetup:
    """What one `configure_logging` call installed on `logger` (its name, "" for root)."""

    logger: str
    handlers: list[logging.Handler] = field(default_factory=list)
    level: int = logging.NOTSET  # the logger's level before, restored by close()

    @property
    def file(self) -> Path | None:
        """The log file being written, if it can be."""
        for handler in self.handlers:
            if isinstance(handler, LogFile) and not handler.broken:
                return Path(handler.baseFilename)
        return None

    def close(self) -> None:
        """Take the handlers off the logger again and close them."""
        target = logging.getLogger(self.logger)
        for handler in self.handlers:
            target.removeHandler(handler)
            with contextlib.suppress(OSError):
                handler.close()
        self.handlers.clear()
        target.setLevel(self.level)


# The root logger's handlers, what the CLI's main installed: one list, kept in place.
PROCESS_HANDLERS: list[logging.Handler] = []
_process: LogSetup | None = None  # the root logger's setup: replaced by the next one


def configure_logging(home: Home, name: str = "dossync", *, logger: str = "",
                      verbose: bool = False, stderr: bool | None = None,
                      level: int | None = None, make_folder: bool = False) -> LogSetup:
    """Log `logger`'s records (root: "") to HOME/logs/`name`.log, rotated (LOG_MAX_BYTES,
    LOG_BACKUPS), and to stderr too (WARNING and up; everything when `verbose`) when
    `stderr`, by default for the root logger only. Returns what it installed; `close()`
    takes it off again.

    For the root logger an earlier configuration is replaced. level: the logger's level
    (default: DEBUG when verbose, else INFO). make_folder: create HOME/logs when missing
    (else a missing folder means no log file: a command before HOME exists).
    """
    global _process
    if not logger and _process is not None:
        _process.close()
        _process = None
    target = logging.getLogger(logger)
    setup = LogSetup(logger, PROCESS_HANDLERS if not logger else [], level=target.level)
    target.setLevel(level if level is not None else logging.DEBUG if verbose else logging.INFO)
    if stderr is None:
        stderr = not logger  # the process's configuration shows warnings; a run's file only
    if stderr:
        to_stderr = logging.StreamHandler(sys.stderr)
        to_stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
        to_stderr.setFormatter(ShortFormatter(STDERR_FORMAT))
        setup.handlers.append(to_stderr)
    path = home.logs / f"{name}.log"
    try:
        if make_folder:
            home.logs.mkdir(parents=True, exist_ok=True)
        if home.logs.is_dir():
            to_file = LogFile(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS,
                              encoding="utf-8")
            to_file.setFormatter(logging.Formatter(FILE_FORMAT))
            setup.handlers.append(to_file)
    except OSError as exc:  # a read-only HOME: reading commands work all the same
        _log_file_warning(path, exc)
    for handler in setup.handlers:
        target.addHandler(handler)
    if not logger:
        _process = setup
    return setup


def log_file() -> Path | None:
    """The log file the process's (the CLI's) configuration writes, if it can."""
    return _process.file if _process is not None else None
