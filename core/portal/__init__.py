"""The portal store: one DuckDB file for the whole firm.

The only package that speaks DuckDB. It holds the mirrored ledger of every
dossier (keyed by dossier), the dossiers and their settings, per-stream sync
state, sync runs, quarantined rows, proposals and the outbox, and answers
the portal's reports. Callers use this package's names
(`from dossync.core import portal; portal.runs(...)`); behind them, one
module per job:

- `store`: the DuckDB seam: opening the file, waiting while another process
  holds it, what its errors mean, transactions, catalog, SQL literals.
- `schema`: the tables, `connect` at this release's schema, migrations.
- `dossiers`: the dossier registry.
- `state`: what a sync starts from (`SyncState`).
- `apply`: writing one staged sync in one transaction (`apply_sync`).
- `runlog`: sync runs, quarantine, reconcile verdicts, the monitor.
- `reports`: trial balance, profit and loss, dashboard, archive.
- `proposals`: worklist proposals, and the periods and reference data
  they are built from.
- `emails`: the outbox of client emails.
- `jobs`: the job queue (syncs waiting for `dossync worker`).
- `figures`: the figures and fingerprints reconcile compares.
- `records`: the typed records at the boundary.

Every function opens a connection, does one short piece of work and closes
it again. Sync writes happen in `apply_sync`, one transaction per dossier:
the data, the cursor and the run record commit together or not at all.
"""
from __future__ import annotations

from dossync.core.portal.apply import apply_sync
from dossync.core.portal.dossiers import (add_dossier, get_dossier, list_dossiers, remove_dossier,
                                          require_dossier, unknown_dossier, update_dossier)
from dossync.core.portal.emails import claim_email, mark_email, outbox, outbox_message
from dossync.core.portal.figures import (booking_fingerprints, period_fingerprints,
                                         quarantined_bookings, reconcile_view,
                                         reconciliation_figures)
from dossync.core.portal.jobs import (cancel_job, claim_job, enqueue_job, enqueue_jobs,
                                      finish_job, get_job, heartbeat, jobs_waiting, list_jobs,
                                      require_job, requeue_job)
from dossync.core.portal.proposals import (account_classes, add_proposals, claim_proposals,
                                           periods, proposals_attempted, proposals_delivered,
                                           queued_proposals, reference_data, withdraw_proposals)
from dossync.core.portal.records import (JOB_KEYS, ArchiveDocument, ClaimedProposal, Dashboard,
                                         FullLoad, Job, Journal, LastSync, MonitorEntry, MonthlyRevenue, OutboxEmail,
                                         Period, PnlAccount, PnlReport, ProposalAccount,
                                         QuarantineEntry, QueuedProposal, ReconcileView,
                                         ReferenceData, Relation, StagedSync, SyncOptions,
                                         SyncRun, SyncState, TrialBalanceRow)
from dossync.core.portal.reports import (report_archive, report_dashboard, report_pnl,
                                         report_trial_balance)
from dossync.core.portal.runlog import (full_loads, last_succeeded, monitor,
                                        quarantined, record_run, record_runs, record_verdict, runs)
from dossync.core.portal.schema import (MONEY, SCHEMA_VERSION, connect, erase_portal, initialise,
                                        portal_exists)
from dossync.core.portal.state import read_keys, sync_state, sync_states
from dossync.core.portal.store import LOCK_WAIT_SECONDS, WRITE_MEMORY_LIMIT

__all__ = [
    # the store and its schema
    "LOCK_WAIT_SECONDS", "MONEY", "SCHEMA_VERSION", "WRITE_MEMORY_LIMIT", "connect", "erase_portal",
    "initialise", "portal_exists",
    # dossiers
    "add_dossier", "get_dossier", "list_dossiers", "remove_dossier", "require_dossier",
    "unknown_dossier", "update_dossier",
    # syncs
    "apply_sync", "read_keys", "sync_state", "sync_states",
    # runs, quarantine, the monitor
    "full_loads", "last_succeeded", "monitor", "quarantined", "record_run",
    "record_runs", "record_verdict", "runs",
    # reports
    "report_archive", "report_dashboard", "report_pnl", "report_trial_balance",
    # proposals, periods, the outbox
    "account_classes", "add_proposals", "claim_proposals", "periods", "proposals_attempted",
    "proposals_delivered", "queued_proposals", "reference_data", "withdraw_proposals",
    "claim_email", "mark_email", "outbox", "outbox_message",
    # the job queue
    "cancel_job", "claim_job", "enqueue_job", "enqueue_jobs", "finish_job", "get_job", "heartbeat",
    "jobs_waiting", "list_jobs", "require_job", "requeue_job",
    # reconcile
    "booking_fingerprints", "period_fingerprints", "quarantined_bookings", "reconcile_view",
    "reconciliation_figures",
    # records
    "JOB_KEYS", "ArchiveDocument", "ClaimedProposal", "Dashboard", "FullLoad", "Job", "Journal", "LastSync", "MonitorEntry",
    "MonthlyRevenue", "OutboxEmail", "Period", "PnlAccount", "PnlReport", "ProposalAccount",
    "QuarantineEntry", "QueuedProposal", "ReconcileView", "ReferenceData", "Relation",
    "StagedSync", "SyncOptions", "SyncRun", "SyncState", "TrialBalanceRow",
]
