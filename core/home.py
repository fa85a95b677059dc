"""A user's home: where the portal file, ledgers, logs, outbox and settings live.

Chosen with `--home` or `DOSSYNC_HOME` (default `./data`). The portal is the
file HOME/portal.duckdb, unless a PostgreSQL database is named: `--portal`
(which the CLI hands on as DOSSYNC_PORTAL, so the processes it starts use
it too), else DOSSYNC_PORTAL, else `[portal] url` in dossync.toml. Every path the rest
of the code touches is derived here, so the layout is written down once. The
firm's settings, HOME/dossync.toml, come typed and checked from
`Home.settings()` (core/settings.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dossync.core.addresses import PortalUrl, portal_url_problem, redact_url
from dossync.core.model import UsageError
from dossync.core.settings import MAX_JOBS, Settings, load_settings, portal_url

PORTAL_FILE = "portal.duckdb"
PORTAL_ENV = "DOSSYNC_PORTAL"


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

    @cached_property
    def portal(self):
        """Where the portal is: HOME/portal.duckdb, or a PostgreSQL address (a PortalUrl)."""
        url = os.environ.get(PORTAL_ENV) or portal_url(self.config_file)
        if not url:
            return self.root / PORTAL_FILE
        problem = portal_url_problem(url)
        if problem:
            raise UsageError(f"{PORTAL_ENV} {redact_url(url)[:80]!r} {problem}")
        return PortalUrl(url)

    @property
    def on_server(self) -> bool:
        """Is the portal on a PostgreSQL server (shared by the firm's machines)?"""
        return not isinstance(self.portal, Path)

    @property
    def portal_name(self) -> str:
        """The portal as messages name it (a server's address without its password)."""
        return str(self.portal) if not self.on_server else self.portal.redacted

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
        if self.on_server:
            from dossync.core.portal.schema import portal_exists
            return portal_exists(self.portal)
        return self.portal.is_file()

    def require(self) -> "Home":
        """Refuse clearly when there is no portal here yet."""
        self.check_folder()
        if self.exists():  # one look (on a server, a connection)
            return self
        if self.on_server:
            raise UsageError(
                f"no dossync portal in the database {self.portal_name} yet: create it with "
                f"'dossync --home {self.root} dossier add CODE --package demo --source LEDGER' "
                f"or 'dossync --home {self.root} demo', or point --portal / {PORTAL_ENV} at "
                f"the firm's portal")
        raise UsageError(
            f"no dossync home at {self.root} (no {PORTAL_FILE} there yet): "
            f"create one with 'dossync --home {self.root} demo' or "
            f"'dossync --home {self.root} dossier add CODE --package demo --source LEDGER', "
            f"or point --home / DOSSYNC_HOME at an existing one")

    def create(self) -> "Home":
        self.check_folder()
        for folder in (self.root, self.ledgers, self.staging, self.locks, self.logs, self.outbox):
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"{folder} is a file where dossync keeps a folder: move it "
                                 f"away and run the command again")
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def settings(self) -> Settings:
        """`dossync.toml`, checked and typed (core/settings.py): the defaults when absent;
        a broken file or a bad value is a usage error naming the key and the file. Read
        again only when the file changed."""
        return load_settings(self.config_file)


__all__ = ["Home", "MAX_JOBS", "PORTAL_ENV", "PORTAL_FILE"]
