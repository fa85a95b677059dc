"""Long-idle dossiers: a simple sync checks a dossier left alone too long first.

A package's change tracking tells a simple sync what changed since the last
one; it cannot tell what happened beside it, and the longer a dossier went
without a sync the likelier something did: a backup put back, a correction
written into a closed year by a maintenance tool, fiscal years moved. So a
simple sync of a dossier whose last successful sync finished more than
`[sync] idle_days` ago (default 90; 0 = never check) first checks it as
reconcile does (fingerprints first: a dossier in sync costs about one scan
of its ledger) and acts on the verdict as `nightly --verify` does
(core/nightly.py):

- in sync, or only changes a simple sync brings: the simple sync runs, its
  warnings noting how long the dossier was idle and what the check found;
- differences a reload of some periods can mend: a targeted repair
  (core/repair.py's plan, from the verdict this check just kept) reloads
  them, then the simple sync brings the rest, in the same command;
- what only a full sync can mend (a rewound ledger, a deletion-log gap, a
  repair that could not run): the simple sync is not run (a sync whose
  starting point cannot be trusted would only hide it); the refused run
  and the verdict are kept in the portal, so the monitor shows the dossier
  `action_required` with the reason until a full sync.

A package without a change cursor is not checked: its simple sync compares
the whole book anyway. Time comes in as `now`: the front ends pass
core/window.py's `current_time()` (DOSSYNC_NOW for tests), else the clock.

This module sits above the engine (core/sync.py) and reconcile, which know
nothing of each other; the CLI's `sync` (and so the UI's detached syncs and
the queue's workers) comes through `sync`.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from dossync.core import portal
from dossync.core.home import Home
from dossync.core.locks import dossier_lock
from dossync.core.model import (DossierBusy, DossyncError, ManualOptions, RowCounts, RunContext,
                                SyncKind, SyncResult)
from dossync.core.reconcile import Reconciliation, reconcile
from dossync.core.sync import new_run_id, plan_options, sync_dossier

log = logging.getLogger(__name__)

__all__ = ["days_since", "idle_among", "sync"]


def sync(home: Home, code: str, kind: SyncKind = "simple", ctx: RunContext | None = None,
         options: ManualOptions | None = None, *, now: datetime | None = None) -> SyncResult:
    """`dossync sync`: a simple sync of a long-idle dossier is checked first (see the
    module's docstring); any other sync is the engine's, as it is."""
    if kind != "simple":
        return sync_dossier(home, code, kind, ctx, options)
    home.require()
    dossier = portal.get_dossier(home.portal, code)
    limit = home.settings().sync.idle_days
    seen = _last_succeeded(home, code) if limit else None  # a sync during the check moves it
    days = _idle(limit, seen, now or datetime.now())
    if dossier is None or days is None:  # an unknown dossier is refused by the engine
        return sync_dossier(home, code, "simple", ctx, options)
    if options and options.any():  # refused options are refused before anything runs
        plan_options(home, dossier, options)
    head = f"{code} was not synced for {days} days (more than [sync] idle_days = {limit})"
    from dossync.core.connectors import connector_class

    if not connector_class(dossier.package).capabilities.change_cursor:
        return sync_dossier(home, code, "simple", ctx, options, notes=(
            f"{head}; the {dossier.package} book has no change cursor, so this simple sync "
            f"compares the whole book itself: no separate check",))
    log.info("%s: checking before the simple sync", head)
    try:
        verdict = reconcile(home, code)
    except DossyncError as exc:
        log.warning("%s: the check could not run: %s", code, exc)
        return sync_dossier(home, code, "simple", ctx, options, notes=(
            f"{head}; the check before this simple sync could not run ({exc}): the simple "
            f"sync went on without it",))
    if verdict.verdict != "full_sync":
        # a verdict that needs no full sync also clears an earlier one in the monitor
        _keep(home, verdict, verdict.reasons, needs_full_sync=False)
        return sync_dossier(home, code, "simple", ctx, options, notes=(
            f"{head}; checked before this simple sync: reconcile says {verdict.verdict} "
            f"({verdict.reasons[0]})",))
    if not verdict.repairable:
        return _refuse(home, dossier, verdict, head, verdict.history_problem
                       or "; ".join(verdict.reasons), seen, ctx, options)
    periods = ", ".join(s["period"] for s in verdict.segments)
    log.info("%s: repairing %s before the simple sync", code, periods)
    try:
        repair = sync_dossier(home, code, "repair", ctx)
    except DossierBusy:
        raise
    except DossyncError as exc:  # a package that cannot reload single bookings
        return _refuse(home, dossier, verdict, head, f"the repair of {periods} could not run: "
                                                     f"{exc}", seen, ctx, options)
    if repair.status != "succeeded":
        if ctx is not None and ctx.cancel_requested is not None \
                and ctx.cancel_requested.is_set():
            return repair  # cancelled: nothing changed, nothing to mark
        return _refuse(home, dossier, verdict, head, f"the repair of {periods} failed: "
                                                     f"{repair.error}", seen, ctx, options)
    summary = repair.warnings[0] if repair.warnings else f"repaired {periods}"
    return sync_dossier(home, code, "simple", ctx, options, notes=(
        f"{head}; the check before this simple sync found differences its change tracking "
        f"cannot show and mended them at once: {summary} (repair run {repair.run_id})",))


def idle_among(home: Home, codes: list[str], now: datetime | None = None) -> dict[str, int]:
    """The dossiers idle longer than `[sync] idle_days`, in one look at the portal (the
    nightly's): code -> whole days since their last successful sync. Never synced, or
    idle_days = 0: not among them."""
    limit = home.settings().sync.idle_days
    if not limit or not codes:
        return {}
    now = now or datetime.now()
    found = {code: _idle(limit, last, now)
             for code, last in portal.last_succeeded(home.portal, codes).items()}
    return {code: days for code, days in found.items() if days is not None}


def _idle(limit: int, last: str | None, now: datetime) -> int | None:
    """Whole days idle when the last successful sync (`last`) is more than `limit` days
    before `now`, else None (also: never synced, or a limit of 0). A first sync is a
    whole-ledger load: nothing to check before it."""
    if not limit or last is None:
        return None
    if now - datetime.fromisoformat(last) <= timedelta(days=limit):
        return None
    return days_since(last, now)


def _last_succeeded(home: Home, code: str) -> str | None:
    return portal.last_succeeded(home.portal, [code]).get(code)


def days_since(stamp: str | None, now: datetime) -> int | None:
    """Whole days from an ISO time (a run's finished_at) to `now`; None for no time. A time
    after `now` (a clock set back) counts as 0 days, never fewer."""
    if not stamp:
        return None
    return max(0, (now - datetime.fromisoformat(stamp)).days)


def _refuse(home: Home, dossier, verdict: Reconciliation, head: str, why: str,
            seen: str | None, ctx: RunContext | None, options: ManualOptions | None) -> SyncResult:
    """Only a full sync can mend it: the simple sync is not run; the refused run and the
    verdict are kept, so the monitor shows the dossier action_required with the reason.

    Kept under the dossier's lock, as a sync's run is: a sync still running is waited for
    by nobody and refused (DossierBusy); one that finished while the check ran (its last
    successful sync is no longer `seen`) made the check's verdict stale, so the simple
    sync runs from what it left instead of a refusal nobody could trust."""
    code = dossier.code
    if f"dossync sync {code} --full" not in why:
        why = f"{why}; run a full sync (dossync sync {code} --full)"
    reason = f"{head}; the check before this simple sync found what only a full sync can mend: {why}"
    with dossier_lock(home, code).acquire(purpose="simple sync (idle check)"):
        moved = _last_succeeded(home, code) != seen
        if not moved:
            log.info("%s", reason)  # the run's warning says it; the log keeps it too
            _keep(home, verdict, (reason, *verdict.reasons), needs_full_sync=True)
            started = datetime.now().isoformat(timespec="milliseconds")
            result = SyncResult(run_id=new_run_id(code), dossier=code, kind="simple",
                                status="failed", rows=RowCounts(), started_at=started,
                                finished_at=started, updated_until=dossier.updated_until,
                                pending_proposals=dossier.pending_proposals,
                                active_period=dossier.active_period, warnings=(reason,),
                                needs_full_sync=True,
                                error=f"simple sync not run, nothing changed: {reason}")
            portal.record_run(home.portal, result)
            return result
    return sync_dossier(home, code, "simple", ctx, options, notes=(
        f"{head}; another sync of {code} finished while it was checked, so the check's "
        f"verdict is stale: this simple sync starts from what that sync left",))


def _keep(home: Home, verdict: Reconciliation, reasons, *, needs_full_sync: bool) -> None:
    """The check's verdict in the portal, where the monitor reads `action_required`."""
    portal.record_verdict(home.portal, verdict.dossier, verdict.verdict, list(reasons),
                          [dict(s) for s in verdict.segments], needs_full_sync)
