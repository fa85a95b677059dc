"""The firm's settings: HOME/dossync.toml as one typed, frozen `Settings` object.

Every setting dossync knows is a field of one of the section dataclasses below
(`[smtp]` is `SmtpSettings`, `[nightly]` is `NightlySettings`, ...), with its
default and its check beside it: the defaults live here and nowhere else.
`load_settings` (`Home.settings()`) reads the file, checks every known key and
builds the tree once; it keeps the result for as long as the file's bytes stay
the same, so readers ask for `home.settings().smtp.timeout` wherever they need
it instead of reading the file again. A broken file or a bad value is a
UsageError (exit 2) naming the key, the value, the file and what to write
instead: `[nightly] jobs = 0 in /srv/firm/dossync.toml: use a whole number ...`.

A key or section not listed here is left alone (a newer version's setting, a
comment's example). An absent file, or an absent section, means the defaults;
an absent or empty `[smtp]` means no SMTP at all (emails wait in the outbox).
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import datetime, time as clock, timedelta
from pathlib import Path
from typing import Any, Callable

from dossync.core.addresses import is_portal_url
from dossync.core.model import LANGUAGES, UsageError
from dossync.core.validate import address_problem

MAX_JOBS = 64
DEFAULT_JOBS = 4
DEFAULT_NIGHTLY_TIME = clock(2, 0)
# One delivery attempt (connect, greeting, TLS, login, message) ends within `[smtp] timeout`.
DEFAULT_TIMEOUT = 30.0
DEFAULT_SENDER = "boekhouding@kantoor.example"
# A claim on an outbox email older than this belongs to a sender that was killed: the
# email is free again (far longer than one attempt may take, portal visits included).
CLAIM_STALE_SECONDS = 600.0
# A Python module name: what `[beancount] allowed_plugins` lists (or `package.*`).
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

Check = Callable[[object], "str | None"]


# --- the checks: None for a good value, else what to write instead --------------------------
def _whole(low: int, high: int | None = None, what: str = "", note: str = "") -> Check:
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


_CLOCK_RULE = 'use a time of day "HH:MM" (24 h), e.g. "02:00"'


def _clock(value: object) -> str | None:
    if isinstance(value, str):
        try:
            value = clock.fromisoformat(value)
        except ValueError:
            return _CLOCK_RULE
    if not isinstance(value, clock):  # unquoted, 02:00 is a TOML time of day
        return _CLOCK_RULE
    return None if value.tzinfo is None else (
        'use a time of day "HH:MM" (24 h) without an offset: the server\'s own clock')


def _to_clock(value: object) -> clock:
    return value if isinstance(value, clock) else clock.fromisoformat(str(value))


_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\Z")
_WINDOW_RULE = ('use "HH:MM-HH:MM" (24 h), e.g. "01:00-05:00"; it may wrap past midnight, '
                'e.g. "22:00-04:00"; or "" for no window')


@dataclass(frozen=True)
class QuietWindow:
    """`[full_sync] window`: the hours a full sync may load the office server. From `start`
    up to (not including) `end`; an `end` at or before `start` wraps past midnight."""

    start: clock
    end: clock

    @classmethod
    def parse(cls, text: str) -> "QuietWindow | None":
        """The window in "HH:MM-HH:MM" (None for ""); ValueError for anything else."""
        if not text.strip():
            return None
        found = _WINDOW.match(text.strip())
        if not found:
            raise ValueError(text)
        start, end = (clock(int(found[1]), int(found[2])), clock(int(found[3]), int(found[4])))
        if start == end:
            raise ValueError(text)
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, now: datetime) -> bool:
        at = now.time()
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end  # wraps past midnight

    def next_start(self, now: datetime) -> datetime:
        """When the window opens next after `now` (today, or else tomorrow)."""
        today = datetime.combine(now.date(), self.start)
        return today if today > now else today + timedelta(days=1)

    def last_start(self, now: datetime) -> datetime:
        """When the window opened last at or before `now` (the opening still open, when
        `now` is inside it)."""
        today = datetime.combine(now.date(), self.start)
        return today if today <= now else today - timedelta(days=1)


def _window(value: object) -> str | None:
    if not isinstance(value, str):
        return _WINDOW_RULE
    try:
        QuietWindow.parse(value)
    except ValueError:
        start_is_end = _WINDOW.match(value.strip())
        return ("the window starts and ends at the same time: " + _WINDOW_RULE
                if start_is_end else _WINDOW_RULE)
    return None


def _sender(value: object) -> str | None:
    if not isinstance(value, str):
        return "use a quoted email address"
    problem = address_problem(value)
    return f"the sender address {problem}" if problem else None


def _module_names(value: object) -> str | None:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        return 'use a list of Python module names, e.g. ["firm_checks", "firm_plugins.*"]'
    for name in value:
        if not MODULE_NAME.match(name.strip().removesuffix(".*")):
            return (f"{_toml(name)} is not a Python module name (give e.g. \"firm_checks\", "
                    f"or \"firm_plugins.*\" for a whole package)")
    return None


def _to_module_names(value: object) -> tuple[str, ...]:
    return tuple(name.strip() for name in value)  # type: ignore[union-attr]


def _language(value: object) -> str | None:
    if value in ("", *LANGUAGES):
        return None
    return f"use one of {', '.join(LANGUAGES)} (or \"\" for the locale)"


def _key(check: Check, convert: Callable[[Any], Any] | None = None) -> dict:
    """A field's metadata: how a value from the file is checked and then converted."""
    return {"check": check, "convert": convert}


# --- the sections -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpSettings:
    """`[smtp]`: where the "books updated" emails go out (core/notify.py). Without it they
    wait in HOME/outbox. The password comes only from DOSSYNC_SMTP_PASSWORD."""

    host: str = field(metadata=_key(_text))
    port: int = field(default=25, metadata=_key(_whole(1, 65535)))
    sender: str = field(default=DEFAULT_SENDER, metadata=_key(_sender))
    starttls: bool = field(default=False, metadata=_key(_flag))
    username: str = field(default="", metadata=_key(_text))
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=_key(_seconds, float))
    allow_plain_auth: bool = field(default=False, metadata=_key(_flag))

    @property
    def stale_after(self) -> float:
        """When another sender's claim on an email has lapsed (it was killed)."""
        return max(CLAIM_STALE_SECONDS, 4 * self.timeout)

    def plain_auth_refused(self) -> str | None:
        """Why logging in is refused: the password would cross the network in clear text."""
        if self.username and not self.starttls and not self.allow_plain_auth:
            return (f"logging in as {self.username!r} with starttls = false would send the "
                    f"password without TLS; set starttls = true or [smtp] allow_plain_auth = "
                    f"true in dossync.toml")
        return None


@dataclass(frozen=True)
class NightlySettings:
    """`[nightly]`: when `dossync scheduler` runs the nightly, how many dossiers at a time,
    and whether each is reconciled (and repaired) after its sync. `--jobs` and `--verify`
    on the command line win."""

    time: clock = field(default=DEFAULT_NIGHTLY_TIME, metadata=_key(_clock, _to_clock))
    jobs: int = field(default=DEFAULT_JOBS,
                      metadata=_key(_whole(1, MAX_JOBS, " of dossiers synced at a time")))
    verify: bool = field(default=False, metadata=_key(_flag))


@dataclass(frozen=True)
class FullSyncSettings:
    """`[full_sync]`: the throttle of every whole-ledger read (a full sync, `dossier add`, a
    first simple sync); 0 = unthrottled. `window`: the quiet hours ("01:00-05:00") a full
    sync waits for unless asked `--now` (core/window.py); "" = no window."""

    max_rows_per_second: int = field(
        default=0, metadata=_key(_whole(0, None, " of rows per second", " (0 = unthrottled)")))
    window: str = field(default="", metadata=_key(_window))

    @property
    def quiet_window(self) -> QuietWindow | None:
        """`window` as a QuietWindow (checked when the file was read); None: no window."""
        return QuietWindow.parse(self.window)


def _portal_url(value: object) -> str | None:
    if value == "" or is_portal_url(value):
        return None
    return ('use "postgresql://USER@HOST:PORT/DATABASE" (the password from PGPASSWORD or '
            '~/.pgpass), or "" for the portal file in HOME')


@dataclass(frozen=True)
class PortalSettings:
    """`[portal]`: `url`, a PostgreSQL database that holds the portal instead of
    HOME/portal.duckdb (`--portal` and DOSSYNC_PORTAL come before it)."""

    url: str = field(default="", metadata=_key(_portal_url))


@dataclass(frozen=True)
class SyncSettings:
    """`[sync]`: `idle_days`, how long a dossier may go without a successful sync before a
    simple sync checks it first, as reconcile does (core/idle.py): a package's change
    tracking does not show what happened to a ledger left alone that long. 0 = never check."""

    idle_days: int = field(default=90, metadata=_key(_whole(0, 36500, " of days",
                                                            " (0 = never check)")))


@dataclass(frozen=True)
class BeancountSettings:
    """`[beancount]`: the plugins a Beancount ledger may run beyond Beancount's own
    (`beancount.plugins.*`, `beancount.ops.*`): module names, or `package.*`."""

    allowed_plugins: tuple[str, ...] = field(
        default=(), metadata=_key(_module_names, _to_module_names))


@dataclass(frozen=True)
class UiSettings:
    """`[ui]`: `language` of what dossync writes for people (nl, fr, en; "" for the
    locale), after `--lang` and DOSSYNC_LANG (core/i18n.py)."""

    language: str = field(default="", metadata=_key(_language))


@dataclass(frozen=True)
class Settings:
    """Everything HOME/dossync.toml sets, checked; each attribute is one `[section]`.
    `smtp` is None when the file has no (or an empty) `[smtp]`."""

    smtp: SmtpSettings | None = None
    nightly: NightlySettings = field(default_factory=NightlySettings)
    full_sync: FullSyncSettings = field(default_factory=FullSyncSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    beancount: BeancountSettings = field(default_factory=BeancountSettings)
    ui: UiSettings = field(default_factory=UiSettings)

    @classmethod
    def from_dict(cls, config: dict, path: Path | str) -> "Settings":
        """Settings from dossync.toml read as a dict; the first bad setting is refused,
        naming the key, the file (`path`), the value and the fix."""
        for section in sorted(SECTIONS):
            if section in config and not isinstance(config[section], dict):
                raise UsageError(f"{section} = {_toml(config[section])} in {path}: {section} "
                                 f"must be a table, written [{section}] on a line of its own")
        values = {section: _values(kind, section, config.get(section, {}), path)
                  for section, kind in SECTIONS.items()}
        smtp = values.pop("smtp")
        if config.get("smtp") and not smtp.get("host"):
            raise UsageError(f"[smtp] in {path} needs a host (e.g. host = \"localhost\"), or "
                             f"no [smtp] at all to keep the emails in HOME/outbox")
        return cls(smtp=SmtpSettings(**smtp) if config.get("smtp") else None,
                   **{section: SECTIONS[section](**given) for section, given in values.items()})


# The sections of dossync.toml, as `Settings` holds them.
SECTIONS: dict[str, type] = {"smtp": SmtpSettings, "nightly": NightlySettings,
                             "full_sync": FullSyncSettings, "portal": PortalSettings,
                             "sync": SyncSettings, "beancount": BeancountSettings,
                             "ui": UiSettings}


def _values(kind: type, section: str, table: dict, path: Path | str) -> dict:
    """The known keys of one section, checked and converted (those absent keep the default)."""
    given = {}
    for spec in fields(kind):
        if spec.name not in table:
            continue
        value = table[spec.name]
        problem = spec.metadata["check"](value)
        if problem:
            raise UsageError(f"[{section}] {spec.name} = {_toml(value)} in {path}: {problem}")
        convert = spec.metadata["convert"]
        given[spec.name] = convert(value) if convert else value
    return given


def _toml(value: object) -> str:
    """A value as it would be written in dossync.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# --- reading the file, once per version of it -------------------------------------------------
DEFAULTS = Settings()
_CACHE: dict[Path, tuple[bytes, Settings]] = {}  # file -> (the bytes read, their settings)
_CACHE_FILES = 64


def portal_url(path: Path) -> str:
    """`[portal] url` alone, checked (where the portal is must be known before anything
    else; a bad value elsewhere in the file is for the commands that read it to refuse)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if b"portal" not in raw:
        return ""
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from exc
    section = config.get("portal", {})
    return _values(PortalSettings, "portal", section, path).get("url", "") \
        if isinstance(section, dict) else Settings.from_dict({"portal": section}, path).portal.url


def load_settings(path: Path) -> Settings:
    """The settings in `path` (the defaults when there is no such file), checked when its
    content is new to this process; the same object again while the file is unchanged."""
    if not path.is_file():
        return DEFAULTS
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # removed this instant
        return DEFAULTS
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == raw:
        return cached[1]
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from exc
    settings = Settings.from_dict(config, path)
    if len(_CACHE) >= _CACHE_FILES and path not in _CACHE:
        _CACHE.clear()  # one process rarely sees more than one HOME: tests see many
    _CACHE[path] = (raw, settings)
    return settings
