"""A user's home: where the portal file, ledgers, logs and outbox live.

Chosen with `--home` or `DOSSYNC_HOME` (default `./data`). Every path the rest of the code touches is derived here, so the
layout is written down once.
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from datetime import time as clock
from pathlib import Path
from typing import Callable

from dossync.core.model import LANGUAGES, UsageError
from dossync.core.validate import address_problem

PORTAL_FILE = "portal.duckdb"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, option: str | os.PathLike | None) -> "Home":
        """HOME from `--home`, else DOSSYNC_HOME, else ./data; a file there is refused."""
        source = "--home" if option else "DOSSYNC_HOME" if os.environ.get("DOSSYNC_HOME") else None
        raw = option or os.environ.get("DOSSYNC_HOME") or "data"
        try:
            home = cls(Path(raw).expanduser().resolve())
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
            raise UsageError(f"{source or 'HOME'} {str(raw)!r} is not a usable folder: {exc}") \
                from None
        home.check_folder(source)
        return home

    def check_folder(self, source: str | None = None) -> "Home":
        """Refuse a HOME that exists but is no folder (`--home` pointing at a file)."""
        if self.root.exists() and not self.root.is_dir():
            named = f"{source} {self.root}" if source else f"HOME {self.root}"
            hint = (f" (did you mean --home {self.root.parent}?)"
                    if self.root.name == PORTAL_FILE else "")
            raise UsageError(f"{named} is a file, not a folder: point --home or DOSSYNC_HOME at "
                             f"the firm's folder, the one that holds {PORTAL_FILE}{hint}")
        return self

    @property
    def portal(self) -> Path:
        return self.root / PORTAL_FILE

    @property
    def ledgers(self) -> Path:
        return self.root / "ledgers"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def verdicts(self) -> Path:
        """The last reconcile verdict per dossier, for the repair that follows."""
        return self.root / "verdicts"

    @property
    def config_file(self) -> Path:
        return self.root / "dossync.toml"

    def exists(self) -> bool:
        return self.portal.is_file()

    def require(self) -> "Home":
        """Refuse clearly when there is no portal here yet."""
        self.check_folder()
        if not self.exists():
            raise UsageError(
                f"no dossync home at {self.root} (no {PORTAL_FILE} there yet): "
                f"create one with 'dossync --home {self.root} demo' or "
                f"'dossync --home {self.root} dossier add CODE --package demo --source LEDGER', "
                f"or point --home / DOSSYNC_HOME at an existing one")
        return self

    def create(self) -> "Home":
        self.check_folder()
        for folder in (self.root, self.ledgers, self.staging, self.locks, self.logs, self.outbox):
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"{folder} is a file where dossync keeps a folder: move it "
                                 f"away and run the command again")
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def config(self) -> dict:
        """`dossync.toml` as a dict ({} when absent), every known setting checked
        (`SETTINGS`); a broken file or a bad value is a usage error naming it."""
        if not self.config_file.is_file():
            return {}
        try:
            config = tomllib.loads(self.config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{self.config_file} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise UsageError(f"{self.config_file} cannot be read: {exc.strerror or exc}") from exc
        check_config(config, self.config_file)
        return config


# --- dossync.toml: every setting, checked in one place --------------------------------
MAX_JOBS = 64


def _whole(low: int, high: int | None = None, what: str = "",
           note: str = "") -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low \
                or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"{low} or more"
            return f"use a whole number{what}, {span}{note}"
        return None
    return check


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else "use true or false"


def _text(value: object) -> str | None:
    return None if isinstance(value, str) else "use a quoted string"


def _seconds(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        return "use a number of seconds above 0, at most 3600"
    return None


def _clock(value: object) -> str | None:
    if isinstance(value, clock):  # written unquoted, 02:00, TOML reads a time of day
        return None
    if isinstance(value, str):
        try:
            clock.fromisoformat(value)
            return None
        except ValueError:
            pass
    return 'use a time of day "HH:MM" (24 h), e.g. "02:00"'


def _sender(value: object) -> str | None:
    if not isinstance(value, str):
        return "use a quoted email address"
    problem = address_problem(value)
    return f"the sender address {problem}" if problem else None


def _names(value: object) -> str | None:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        return 'use a list of Python module names, e.g. ["firm_checks", "firm_plugins.*"]'
    return None


def _language(value: object) -> str | None:
    if value in ("", *LANGUAGES):
        return None
    return f"use one of {', '.join(LANGUAGES)} (or \"\" for the locale)"


# (section, key) -> the check: None when the value is good, else what to write instead.
# A key not listed here is left alone (a newer version's setting, a comment's example).
SETTINGS: dict[tuple[str, str], Callable[[object], str | None]] = {
    ("smtp", "host"): _text,
    ("smtp", "port"): _whole(1, 65535),
    ("smtp", "sender"): _sender,
    ("smtp", "starttls"): _flag,
    ("smtp", "username"): _text,
    ("smtp", "timeout"): _seconds,
    ("smtp", "allow_plain_auth"): _flag,
    ("nightly", "time"): _clock,
    ("nightly", "jobs"): _whole(1, MAX_JOBS, " of dossiers synced at a time"),
    ("nightly", "verify"): _flag,
    ("full_sync", "max_rows_per_second"): _whole(0, None, " of rows per second", " (0 = unthrottled)"),
    ("full_sync", "window"): _text,
    ("portal", "url"): _text,
    ("sync", "idle_days"): _whole(0, None, " of days"),
    ("beancount", "allowed_plugins"): _names,
    ("ui", "language"): _language,
}


def _toml(value: object) -> str:
    """A value as it would be written in dossync.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def check_config(config: dict, path: Path) -> None:
    """Refuse the first bad setting, naming the key, the file, the value and the fix."""
    for section in sorted({s for s, _ in SETTINGS}):
        if section in config and not isinstance(config[section], dict):
            raise UsageError(f"{section} = {_toml(config[section])} in {path}: {section} must be "
                             f"a table, written [{section}] on a line of its own")
    for (section, key), check in SETTINGS.items():
        table = config.get(section, {})
        if key in table:
            problem = check(table[key])
            if problem:
                raise UsageError(f"[{section}] {key} = {_toml(table[key])} in {path}: {problem}")
