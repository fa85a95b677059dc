"""The domain's small vocabulary: closed sets, result objects, errors.

Everything the CLI prints, the TUI shows and the tests assert on is one of
these values. They are plain immutable data; behaviour lives in the modules
that produce them (`sync`, `portal`, `reports`).
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Literal

SyncKind = Literal["simple", "full", "repair"]
SyncStatus = Literal["succeeded", "failed"]
DossierState = Literal["ok", "failed", "action_required", "syncing"]
Package = Literal["demo", "gnucash", "beancount"]
Language = Literal["nl", "fr", "en"]

PACKAGES: tuple[str, ...] = ("demo", "gnucash", "beancount")
DEFAULT_TIMEZONE = "Europe/Brussels"  # where the firm's books are kept
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


class PackageBusy(LedgerUnavailable):
    """The package cannot take writes now (GnuCash has the book open): try again later."""


class PortalBusy(TransientError):
    """The portal file stayed locked by other processes past the wait limit."""


class PortalUnreachable(TransientError):
    """The portal's server cannot be reached now (down, restarting, a dropped link): a
    worker or the heartbeat tries again; a command says so and changed nothing."""


class DossierBusy(DossyncError):
    """Another process is syncing this dossier."""

    exit_code = ExitCode.BUSY


class SyncCancelled(DossyncError):
    """The user cancelled; nothing was changed."""


# --- results ----------------------------------------------------------------
class ConservationError(TerminalError):
    """A sync would have lost records: read != inserted + updated + unchanged + quarantined."""


@dataclass(frozen=True)
class StreamCounts:
    """What a sync did with one stream's records: the conservation proof.

    Every record read from the package is inserted, updated, unchanged (read
    again, already in the portal as it is) or quarantined with a reason:
    read = inserted + updated + unchanged + quarantined, checked on every
    sync before it commits. deleted: portal records removed because the
    package no longer has them (not part of the equation: they were not read).
    """

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0

    def balanced(self) -> bool:
        return self.read == self.inserted + self.updated + self.unchanged + self.quarantined

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RowCounts:
    """What a sync did, in records over all streams (lines included).

    Attributes: read (rows read from the package, deletion-log records
    included), inserted, updated, deleted (applied to the portal),
    quarantined (bad rows kept out, with a reason); streams: per stream
    (StreamCounts), the proof that nothing read was lost.
    """

    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    streams: tuple[tuple[str, StreamCounts], ...] = ()


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
            "streams": {name: counts.to_json() for name, counts in self.rows.streams},
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
    currency: str | None = None  # the book currency, when the package does not say (GnuCash)
    timezone: str = DEFAULT_TIMEZONE  # how the package's timestamps become dates (GnuCash)
    proposals_file: str | None = None  # Beancount: the include file that receives proposals
    book_currency: str | None = None  # the currency its money is in, as its last sync read it
    # the connector version of its last full load (None: loaded before versions were
    # recorded; the connector's VersionHistory says what that means)
    connector_version: int | None = None

    def settings(self) -> "ConnectorSettings":
        return ConnectorSettings(currency=self.currency, timezone=self.timezone,
                                 proposals_file=self.proposals_file)



@dataclass(frozen=True)
class ConnectorSettings:
    """What a connector needs to know of its dossier beyond the package and file.

    currency: the book currency to use when the package does not say (None:
    the connector derives it from the book, or refuses when it cannot).
    timezone: the zone the package's timestamps are read in (IANA name).
    proposals_file: where a package written as text files takes proposals.
    allowed_plugins: Beancount plugins the firm trusts beyond Beancount's own
    (`[beancount] allowed_plugins` in HOME/dossync.toml; the default: none).
    """

    currency: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    proposals_file: str | None = None
    allowed_plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProposalLine:
    """One line of a booking proposal: amounts in the dossier's currency (cents precision).

    open_item: the line that names the customer or supplier (receivable or payable).
    """

    account: str
    debit: Decimal
    credit: Decimal
    vat_code: str | None = None
    open_item: bool = False


@dataclass(frozen=True)
class Proposal:
    """One booking proposal from the worklist: a processed purchase or sales invoice.

    ref: its reference (WL-CODE-XXXXXXXX), which the package's booking keeps,
    so the definitive booking replaces the provisional one. kind: sales |
    purchase. journal: the portal's journal of that kind. amount: gross.
    relation_id / relation_name: the customer or supplier, if the dossier has them.
    """

    ref: str
    journal: str
    kind: str
    date: str
    relation_id: int | None
    amount: Decimal
    lines: tuple[ProposalLine, ...]
    relation_name: str | None = None
    note: str = ""

    @property
    def description(self) -> str:
        what = "sales invoice" if self.kind == "sales" else "purchase invoice"
        return f"{what} {self.ref}" + (f" ({self.relation_name})" if self.relation_name else "")

    def to_json(self) -> dict:
        doc = {"ref": self.ref, "journal": self.journal, "date": self.date,
               "amount": str(self.amount.quantize(Decimal("0.01")))}
        if self.note:
            doc["note"] = self.note
        return doc

    def to_record(self) -> dict:
        """Everything, as JSON-able values (kept in the portal's proposal queue)."""
        return {"ref": self.ref, "journal": self.journal, "kind": self.kind, "date": self.date,
                "relation_id": self.relation_id, "relation_name": self.relation_name,
                "amount": str(self.amount), "note": self.note,
                "lines": [{"account": l.account, "debit": str(l.debit), "credit": str(l.credit),
                           "vat_code": l.vat_code, "open_item": l.open_item} for l in self.lines]}

    @classmethod
    def from_record(cls, doc: dict) -> "Proposal":
        return cls(ref=doc["ref"], journal=doc["journal"], kind=doc["kind"], date=doc["date"],
                   relation_id=doc["relation_id"], relation_name=doc.get("relation_name"),
                   amount=Decimal(doc["amount"]), note=doc.get("note", ""),
                   lines=tuple(ProposalLine(l["account"], Decimal(l["debit"]),
                                            Decimal(l["credit"]), l.get("vat_code"),
                                            bool(l.get("open_item"))) for l in doc["lines"]))


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

    # rows per second a whole-ledger read (a full sync, an activation) may take;
    # None: [full_sync] max_rows_per_second in dossync.toml (0 = unthrottled)
    max_rows_per_second: int | None = None
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
