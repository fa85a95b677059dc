"""The domain's small vocabulary: closed sets, result objects, errors.

Everything the CLI prints, the TUI shows and the tests assert on is one of
these values. They are plain immutable data; behaviour lives in the modules
that produce them (`sync`, `portal`, `reports`).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

SyncKind = Literal["simple", "full", "repair"]
SyncStatus = Literal["succeeded", "failed"]
DossierState = Literal["ok", "failed", "action_required", "syncing"]
Package = Literal["demo", "gnucash", "beancount"]
Language = Literal["nl", "fr", "en"]

PACKAGES: tuple[str, ...] = ("demo", "gnucash", "beancount")
LANGUAGES: tuple[str, ...] = ("nl", "fr", "en")


class ExitCode(enum.IntEnum):
    """The CLI's exit codes: an API for scripts and cron (see CONTRACT.md)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    BUSY = 3
    PARTIAL = 4
    DIFFERENCES = 5


# --- errors -----------------------------------------------------------------
class DossyncError(Exception):
    """Base class: a message fit for a user, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageError(DossyncError):
    """Bad arguments, an unknown dossier, a missing HOME."""

    exit_code = ExitCode.USAGE


class TransientError(DossyncError):
    """Worth retrying later: a package that cannot be reached, a locked file."""


class TerminalError(DossyncError):
    """Retrying will not help until someone fixes data or configuration."""


class LedgerUnavailable(TransientError):
    """The dossier's ledger cannot be opened or read (missing, corrupt, locked)."""


class PortalBusy(TransientError):
    """The portal file stayed locked by other processes past the wait limit."""


class DossierBusy(DossyncError):
    """Another process is syncing this dossier."""

    exit_code = ExitCode.BUSY


class SyncCancelled(DossyncError):
    """The user cancelled; nothing was changed."""


# --- results ----------------------------------------------------------------
def cents_to_str(cents: int | None) -> str | None:
    """Cents as the contract's decimal string with two decimals ("1234.50")."""
    if cents is None:
        return None
    return str(Decimal(int(cents)).scaleb(-2).quantize(Decimal("0.01")))


@dataclass(frozen=True)
class RowCounts:
    """What a sync did, in records over all streams (lines included).

    Attributes: read (rows read from the package), inserted, updated, deleted
    (applied to the portal), quarantined (bad rows kept out, with a reason).
    """

    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class SyncResult:
    """One sync run, as the CLI prints it and the TUI shows it."""

    run_id: str
    dossier: str
    kind: SyncKind
    status: SyncStatus
    rows: RowCounts
    started_at: str
    finished_at: str
    updated_until: str | None = None
    pending_proposals: int = 0
    active_period: str | None = None
    email: Literal["sent", "queued", "skipped", "failed"] = "skipped"
    warnings: tuple[str, ...] = ()
    error: str | None = None
    needs_full_sync: bool = False

    def to_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "dossier": self.dossier,
            "kind": self.kind,
            "status": self.status,
            "rows": {
                "read": self.rows.read,
                "inserted": self.rows.inserted,
                "updated": self.rows.updated,
                "deleted": self.rows.deleted,
                "quarantined": self.rows.quarantined,
            },
            "updated_until": self.updated_until,
            "pending_proposals": self.pending_proposals,
            "active_period": self.active_period,
            "email": self.email,
            "warnings": list(self.warnings),
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class Dossier:
    """A client company's bookkeeping as the portal knows it."""

    code: str
    name: str
    package: str
    source: str
    email: str | None = None
    language: str = "nl"
    nightly: bool = False
    updated_until: str | None = None
    active_period: str | None = None
    pending_proposals: int = 0


@dataclass(frozen=True)
class QuarantinedRow:
    """A ledger row kept out of the portal, and why."""

    stream: str
    key: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Progress:
    """Progress of one stream of a running sync (for bars and the TUI)."""

    stream: str
    done: int
    total: int | None
    phase: Literal["read", "validate", "commit", "done"] = "read"


@dataclass
class RunContext:
    """Knobs a caller passes down to one run (kept out of the signatures)."""

    max_rows_per_second: int = 0
    cancel_requested: object = None  # threading.Event-like: .is_set()
    on_progress: object = None  # Callable[[Progress], None]
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ManualOptions:
    """The options of a manual sync (any combination; none on a nightly run).

    until: set the updated-until date (YYYY-MM-DD); reset_counter: blue
    counter to 0; notify: email the client entrepreneur; new_period: set the
    active booking period (YYYY-MM), closing every earlier one.
    """

    until: str | None = None
    reset_counter: bool = False
    notify: bool = False
    new_period: str | None = None

    def any(self) -> bool:
        return bool(self.until or self.reset_counter or self.notify or self.new_period)
