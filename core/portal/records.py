"""The typed records at the portal's boundary.

What the engine hands the portal (StagedSync, SyncOptions) and what the
portal hands back: the state a sync starts from, what reconcile reads, and
the rows of runs, quarantine, monitor, periods, proposals, outbox and
reports. Plain immutable values; each row is built from its query's columns
by name (`store._records`), never by position.

The rows that go out as JSON as they are (runs, quarantine, outbox) and the
periods the UI and the sync planning read as dicts travel as `to_json()`
dicts, whose keys and their order are the CLI's JSON (CONTRACT.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pyarrow as pa

from dossync.core.model import Dossier, ManualOptions, QuarantinedRow, SyncKind, SyncStatus


# --- what a sync starts from, and writes ----------------------------------------------
@dataclass(frozen=True)
class SyncState:
    """What the portal remembers of a dossier, read in one short look before a sync.

    dossier: its settings (None: unknown); cursor: the ledger position of the
    last sync (None: never synced); recent: the newest (key, rv) per stream,
    and probe: the portal's copy of those newest bookings and their lines,
    to check that the ledger did not go back in time.
    """

    dossier: Dossier | None
    cursor: int | None
    deletion_log_from: int | None
    recent: dict[str, list[tuple[str, int]]]
    accounts: frozenset[str]
    journals: frozenset[str]
    periods: frozenset[int]
    probe: dict[str, pa.Table]
    last_run: str | None = None  # the newest sync run: any sync since changes it
    queued: int = 0  # proposals waiting in the portal's queue for the package
    history: str | None = None  # the package's history id at the cursor, if it keeps one
    quarantined: dict[str, list[str]] = field(default_factory=dict)  # keys in quarantine, per stream


@dataclass(frozen=True)
class StagedSync:
    """Everything one sync will write, staged outside the portal.

    mode: full (replace the dossier), incremental (rows changed since the
    cursor, plus the deletion log) or diff (everything read, for packages
    without a change cursor: only rows whose content hash changed are
    written, and rows no longer in the package are deleted).
    files: stream -> Parquet file of the rows read.
    bad: stream -> Arrow table of the keys to keep out (quarantined).
    deletions: Arrow table (stream, key, seq) from the package's deletion log.
    settled_proposals: the references of the proposals the package says it
    has dealt with (a connector with capability proposal_status): they leave
    the portal's provisional rows in the sync's transaction.
    """

    mode: Literal["full", "incremental", "diff", "repair"]
    files: dict[str, Path]
    bad: dict[str, pa.Table]
    deletions: pa.Table
    quarantine: list[QuarantinedRow]
    high_water: int
    deletion_log_from: int
    rows_read: int
    active_period: str | None = None
    options: "SyncOptions | None" = None
    repair_bookings: tuple[int, ...] = ()  # repair: the bookings reloaded (ids)
    stream_reads: dict[str, int] = field(default_factory=dict)  # rows staged per stream
    currency: str | None = None  # the book currency the connector read the money in
    history: str | None = None  # the package's history id at high_water, if it keeps one
    settled_proposals: tuple[str, ...] = ()  # proposals the package has dealt with (refs)
    # full: the version of the connector that read the whole ledger, recorded as the
    # dossier's (what it may lack after a connector upgrade is judged against it)
    connector_version: int | None = None


@dataclass(frozen=True)
class SyncOptions:
    """The manual sync options; applied in the sync's own commit, or not at all.

    until: the updated-until date shown in the portal; reset_counter: blue
    counter to 0; new_period: the active booking period (earlier ones close);
    email: an outbox entry (id, recipient, subject, raw message) to queue.
    """

    until: str | None = None
    reset_counter: bool = False
    new_period: str | None = None
    email: tuple[str, str, str, bytes] | None = None


# --- what reconcile reads -------------------------------------------------------------
@dataclass(frozen=True)
class ReconcileView:
    """What reconcile needs from the portal before it looks at the ledger (one visit).

    state: the dossier's sync state (as for an incremental sync). quarantined:
    ledger booking ids kept out. journals, accounts: the codes the portal
    knows. periods, fiscal_years: id -> code of the mirrored tables.
    provisional: the provisional proposals' figures (_provisional_figures).
    fingerprint: the whole fingerprint of the mirror, when asked for.
    """

    state: SyncState
    quarantined: list[int]
    journals: frozenset[str]
    accounts: frozenset[str]
    periods: dict[int, str]
    fiscal_years: dict[int, str]
    provisional: pa.Table
    fingerprint: dict[str, int] | None = None


# --- runs, quarantine, the monitor ----------------------------------------------------
@dataclass(frozen=True)
class SyncRun:
    """A recorded sync run, newest first in `runs`.

    started_at, finished_at: ISO timestamps to the second. read, inserted,
    updated, deleted, quarantined: its row counts. streams: stream -> its
    counts (StreamCounts.to_json), None for a run of a release before them.
    """

    run_id: str
    dossier: str
    kind: SyncKind
    status: SyncStatus
    started_at: str
    finished_at: str
    read: int | None
    inserted: int | None
    updated: int | None
    deleted: int | None
    quarantined: int | None
    warnings: tuple[str, ...]
    error: str | None
    needs_full_sync: bool
    streams: dict[str, dict] | None

    def to_json(self) -> dict:
        return {**asdict(self), "warnings": list(self.warnings)}


@dataclass(frozen=True)
class QuarantineEntry:
    """A ledger row kept out of the portal: its stream, key, why, and the run that found it."""

    stream: str
    key: str
    reason: str
    detail: str | None
    run_id: str | None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LastSync:
    """A dossier's newest sync run, as the monitor shows it."""

    run_id: str
    kind: SyncKind
    status: SyncStatus
    finished_at: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MonitorEntry:
    """One dossier in the active clients monitor.

    last_sync: None before its first run. needs_full_sync: its last run said
    so, or a reconcile verdict kept since its last full sync or repair does;
    error: why (the verdict's first reason then). quarantined: rows kept out.
    last_succeeded: when its newest successful sync finished (ISO to the
    second), None before its first: the monitor counts idle days from it.
    """

    dossier: Dossier
    last_sync: LastSync | None
    needs_full_sync: bool
    error: str | None
    quarantined: int
    last_succeeded: str | None = None


@dataclass(frozen=True)
class FullLoad:
    """What a full sync of a dossier costs, from what the portal remembers.

    last_rows: rows its last successful full sync read (None: none recorded);
    last_seconds: how long that run took; portal_rows: the rows the portal
    holds for it now (sync_state, as of its last sync of any kind).
    """

    dossier: str
    last_rows: int | None
    last_seconds: float | None
    portal_rows: int


# --- periods, proposals, the outbox ---------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A booking period as the portal shows it; closed by the package, or before the
    dossier's active period. Dates ISO."""

    id: int
    code: str
    fiscal_year_id: int | None
    fiscal_year: str | None
    start_date: str | None
    end_date: str | None
    closed: bool | None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class QueuedProposal:
    """A proposal waiting in the portal's queue for the package (Proposal.to_record as JSON)."""

    ref: str
    proposal: str


@dataclass(frozen=True)
class ClaimedProposal:
    """A queued proposal claimed for delivery; handed_before: an earlier attempt handed
    it to the package already (the package may have it)."""

    ref: str
    proposal: str
    handed_before: bool


@dataclass(frozen=True)
class ProposalAccount:
    """An account proposals can book on, and its class (revenue, cost, vat, ...)."""

    code: str
    account_class: str | None


@dataclass(frozen=True)
class Journal:
    code: str
    kind: str | None


@dataclass(frozen=True)
class Relation:
    id: int
    kind: str | None
    name: str | None


@dataclass(frozen=True)
class ReferenceData:
    """What proposals are built from (`reference_data` gives the order)."""

    accounts: list[ProposalAccount]
    journals: list[Journal]
    relations: list[Relation]


@dataclass(frozen=True)
class OutboxEmail:
    """A client email in the outbox (without its message); timestamps ISO to the second."""

    id: str
    dossier: str
    run_id: str | None
    recipient: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    created_at: str
    sent_at: str | None

    def to_json(self) -> dict:
        return asdict(self)



# --- the job queue ----------------------------------------------------------------------
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_KEYS = ("job", "dossier", "kind", "status", "attempts", "worker", "run_id", "queued_at",
            "started_at", "finished_at", "error")


@dataclass(frozen=True)
class Job:
    """A sync in the job queue; timestamps ISO to the second.

    options: the sync's options as they travel with the job (not in its
    JSON). attempts: the runs begun (a run refused because the dossier was
    busy does not count). worker: `host:pid` of the worker that holds or
    last held it. error: why it failed, or, while queued, why it waits.
    """

    job: str
    dossier: str
    kind: SyncKind
    status: JobStatus
    attempts: int
    worker: str | None
    run_id: str | None
    queued_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    options: ManualOptions = field(default_factory=ManualOptions)

    def to_json(self) -> dict:
        return {key: getattr(self, key) for key in JOB_KEYS}


# --- the portal's reports (exact amounts; core.reports rounds them) ----------------------
@dataclass(frozen=True)
class TrialBalanceRow:
    """One account (and commodity: None for the dossier's currency) of the trial balance."""

    account: str
    name: str | None
    account_class: str | None
    commodity: str | None
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class PnlAccount:
    """A revenue account (credit - debit) or cost account (debit - credit) and its amount."""

    account: str
    name: str | None
    account_class: str
    amount: Decimal


@dataclass(frozen=True)
class PnlReport:
    fiscal_year: str | None
    accounts: list[PnlAccount]


@dataclass(frozen=True)
class MonthlyRevenue:
    period: str
    revenue: Decimal


@dataclass(frozen=True)
class Dashboard:
    """The dashboard's figures: revenue, costs and result of the fiscal year; bank,
    receivables, payables and VAT position over all years."""

    fiscal_year: str | None
    revenue: Decimal
    costs: Decimal
    result: Decimal
    bank: Decimal
    receivables: Decimal
    payables: Decimal
    vat_position: Decimal
    monthly_revenue: list[MonthlyRevenue]


@dataclass(frozen=True)
class ArchiveDocument:
    """An invoice or credit note: its open item (`amount`), what was paid of it by the
    ledger's matchings, and whether it is provisional (a proposal, a draft)."""

    ref: str
    journal: str
    date: str | None
    due_date: str | None
    relation: str | None
    amount: Decimal
    paid: Decimal
    provisional: bool
