"""A user's home: where the portal file, ledgers, logs and outbox live.

Chosen with `--home` or `DOSSYNC_HOME` (default `./data`). Every path the rest of the code touches is derived here, so the
layout is written down once.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.model import UsageError

PORTAL_FILE = "portal.duckdb"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, option: str | os.PathLike | None) -> "Home":
        raw = option or os.environ.get("DOSSYNC_HOME") or "data"
        return cls(Path(raw).expanduser().resolve())

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
        if not self.exists():
            raise UsageError(
                f"no dossync home at {self.root} (no {PORTAL_FILE} there yet): "
                f"create one with 'dossync --home {self.root} demo' or "
                f"'dossync --home {self.root} dossier add CODE --package demo --source LEDGER', "
                f"or point --home / DOSSYNC_HOME at an existing one")
        return self

    def create(self) -> "Home":
        for folder in (self.root, self.ledgers, self.staging, self.locks, self.logs, self.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def config(self) -> dict:
        """`dossync.toml` as a dict ({} when absent); a broken file is a usage error."""
        if not self.config_file.is_file():
            return {}
        try:
            return tomllib.loads(self.config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{self.config_file} is not valid TOML: {exc}") from exc
