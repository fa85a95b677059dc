"""The nightly run: a headless simple sync of every dossier with nightly on.

It never changes the updated-until date and never emails. Dossiers run a few
at a time in worker processes (a sync is mostly Python work between two
short portal visits, so threads would only take turns); one dossier's
failure never stops the others, and a dossier another process is already
syncing is skipped and reported.

The worker processes are core/workers.py's: this module decides what each
dossier's task is (`_one`: a simple sync, then `verify_dossier`) and what
the batch reports; the pool starts, stops and reaps the processes. With one
job, or one dossier, everything runs in this process.

Stopping. SIGTERM or SIGINT (Ctrl-C) starts nothing new: each running sync
is cancelled at its next batch (it changes nothing) and a commit already
under way finishes. A worker still busy STOP_GRACE seconds later (waiting
for a ledger the package keeps locked, say) is killed, one that is
committing gets COMMIT_GRACE (core/workers.py): a sync is all or nothing per
dossier, so the portal keeps such a dossier as it was. The nightly then
reports what it did and exits 1 (FAILED; `stopped` in its JSON names the
signal); a second signal kills the workers at once. SIGTERM to one worker
(the monitor's cancel) cancels that worker's sync only. The workers die
with the nightly however it dies, kill -9 included (core/workers.py).

Logs go to HOME/logs/nightly.log for the length of the run (core/logs.py:
the same rotation as the CLI's dossync.log), and through the root logger to
wherever the caller logs.

With `verify` the nightly heals itself instead of running a blind periodic
full reload: after its simple sync each dossier is reconciled; segments a
reload can fix (an edit in a closed period, moved fiscal years) are repaired
at once (`sync --repair`) and reconciled again; when only a full sync can
help (a rewound ledger, a deletion-log gap) the dossier is left for staff,
marked `action_required` in the monitor with the reason.

The quiet window. When the nightly runs inside `[full_sync] window`, it
also runs the full syncs scheduled for the window whose time has come
(queued `full` jobs, core/window.py), after the simple syncs, one at a
time, throttled by `[full_sync] max_rows_per_second` as every full sync is;
it claims and ends their jobs as a worker would (core/jobqueue.py), so
`dossync jobs` shows them succeeded or failed.
"""
from __future__ import annotations

import logging
import threading
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dossync.core import idle, portal
from dossync.core.home import Home
from dossync.core.jobqueue import run_due_jobs
from dossync.core.logs import configure_logging
from dossync.core.model import (DossierBusy, DossyncError, ExitCode, ManualOptions, RowCounts,
                                RunContext, SyncResult, UsageError)
from dossync.core.reconcile import Reconciliation, reconcile
from dossync.core.sync import new_run_id, sync_dossier
from dossync.core.workers import (COMMIT_GRACE, STOP_GRACE, ProgressHook, in_workers,
                                  now as _now, stop_on_signals)

log = logging.getLogger("dossync.nightly")

__all__ = ["COMMIT_GRACE", "STOP_GRACE", "NightlyResult", "Verification", "queue_nightly",
           "run_nightly", "run_scheduled_full_syncs", "verify_dossier"]


@dataclass(frozen=True)
class Verification:
    """What `--verify` found and did for one dossier after its simple sync.

    verdict: the reconcile verdict after any repair (None: reconcile itself
    failed, see error). before: the verdict before the repair. repaired: a
    repair ran and reconcile now says in_sync. action_required: only staff
    can help (a full sync). reasons: reconcile's reasons (after the repair,
    or why no repair was possible). segments: the periods that needed a
    reload. repair: the repair run, if one ran. error: a failure of the
    verification itself (reconcile or repair), else None.
    """

    dossier: str
    verdict: str | None
    before: str | None = None
    repaired: bool = False
    action_required: bool = False
    reasons: tuple[str, ...] = ()
    segments: tuple[dict, ...] = ()
    repair: SyncResult | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {"dossier": self.dossier, "verdict": self.verdict, "before": self.before,
                "repaired": self.repaired, "action_required": self.action_required,
                "reasons": list(self.reasons), "segments": [dict(s) for s in self.segments],
                "repair": self.repair.to_json() if self.repair else None, "error": self.error}


@dataclass
class NightlyResult:
    """stopped: what stopped the run before it was done (a signal's name, or
    "stop requested" by the caller), else None."""

    runs: list[SyncResult] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    verified: list[Verification] = field(default_factory=list)
    scheduled: list[portal.Job] = field(default_factory=list)  # quiet-window jobs it ended
    started_at: str = ""
    finished_at: str = ""
    stopped: str | None = None

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.runs if r.status == "succeeded")

    @property
    def failed(self) -> int:
        """Failed syncs, plus dossiers whose verification (reconcile or repair) failed."""
        broken = {r.dossier for r in self.runs if r.status != "succeeded"}
        return len(broken) + sum(1 for v in self.verified
                                 if v.error is not None and v.dossier not in broken)

    @property
    def exit_code(self) -> ExitCode:
        if self.stopped:  # not done: the operation failed, the message says so
            return ExitCode.FAILED
        return ExitCode.PARTIAL if self.failed else ExitCode.OK

    def to_json(self) -> dict:
        return {"runs": [r.to_json() for r in self.runs], "succeeded": self.succeeded,
                "failed": self.failed, "skipped": self.skipped,
                "verified": [v.to_json() for v in self.verified],
                "scheduled": [j.to_json() for j in self.scheduled],
                "started_at": self.started_at, "finished_at": self.finished_at,
                "stopped": self.stopped}


def queue_nightly(home: Home) -> list[portal.Job]:
    """`nightly --queue`: one simple-sync job per nightly dossier, in one commit, for
    `dossync worker` to run (a simple sync with no options, as the nightly's own)."""
    home.require()
    codes = [d.code for d in portal.list_dossiers(home.portal) if d.nightly]
    log.info("nightly: %d job(s) queued", len(codes))
    return portal.enqueue_jobs(home.portal, [(code, "simple", ManualOptions()) for code in codes])


def run_nightly(home: Home, jobs: int = 4, stop: threading.Event | None = None,
                verify: bool = False, now: datetime | None = None) -> NightlyResult:
    """Simple-sync every nightly dossier, `jobs` at a time.

    `stop` (set on SIGTERM by the scheduler) starts nothing new and cancels
    the running syncs at their next batch; running commits finish (see
    STOP_GRACE). Without `stop` the nightly answers SIGTERM and SIGINT
    itself that way (when called from the main thread), and its result says
    it stopped (exit 1). `verify` reconciles each dossier after its sync and
    repairs what a segment reload can fix (see `verify_dossier`). With more
    than one job the dossiers are shared among worker processes. At `now`
    (default: the clock) inside the quiet window, the due scheduled full
    syncs run after them (`run_scheduled_full_syncs`).
    """
    home.require()
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    own_signals = stop is None
    stop = stop or threading.Event()
    logs = configure_logging(home, "nightly", logger=log.name, level=logging.INFO,
                             make_folder=True)
    result = NightlyResult(started_at=datetime.now().isoformat(timespec="seconds"))
    try:
        with stop_on_signals(stop, _abandon) if own_signals else nullcontext([]) as received:
            dossiers = [d for d in portal.list_dossiers(home.portal) if d.nightly]
            # One look at the portal for all of them, one commit for the runs that
            # found nothing new: the fixed cost per dossier stays small.
            codes = [d.code for d in dossiers]
            states = portal.sync_states(home.portal, codes)
            # a dossier idle longer than [sync] idle_days is checked before its simple sync,
            # as `dossync sync` checks it (core/idle.py)
            now = now or datetime.now()
            idle_days = idle.idle_among(home, codes, now)
            log.info("nightly: %d dossier(s) with nightly on, %d at a time", len(dossiers), jobs)
            unchanged: list[SyncResult] = []
            tasks = [(code, (states.get(code), now if code in idle_days else None))
                     for code in codes]
            with closing(_each(home, tasks, jobs, stop, verify)) as outcomes:
                for kind, outcome, quiet in outcomes:
                    unchanged.extend(quiet)
                    if kind == "skipped":
                        result.skipped.append(outcome)
                        continue
                    run, checked = outcome
                    result.runs.append(run)
                    if checked is not None:
                        result.verified.append(checked)
            if stop.is_set():
                result.stopped = received[0] if received else "stop requested"
            order = {code: n for n, code in enumerate(codes)}  # workers finish in any order
            result.runs.sort(key=lambda r: order[r.dossier])
            result.skipped.sort(key=lambda s: order[s["dossier"]])
            result.verified.sort(key=lambda v: order[v.dossier])
            portal.record_runs(home.portal, unchanged)
            for job, run in run_scheduled_full_syncs(home, now, stop):
                result.scheduled.append(job)
                result.runs.append(run)
            if stop.is_set() and not result.stopped:
                result.stopped = received[0] if received else "stop requested"
        result.finished_at = datetime.now().isoformat(timespec="seconds")
        if result.stopped:
            left = sum(1 for s in result.skipped if s["reason"] == _NOT_STARTED)
            log.warning("nightly stopped (%s) before it was done: %d dossier(s) synced, %d failed "
                        "or cancelled, %d not started; a cancelled sync changes nothing, the next "
                        "nightly takes them up", result.stopped, result.succeeded, result.failed,
                        left)
        log.info("nightly done: %d succeeded, %d failed, %d skipped%s", result.succeeded,
                 result.failed, len(result.skipped),
                 f", {sum(v.repaired for v in result.verified)} repaired, "
                 f"{sum(v.action_required for v in result.verified)} need a full sync"
                 if verify else "")
    finally:
        logs.close()
    return result


def run_scheduled_full_syncs(home: Home, now: datetime,
                             stop: threading.Event) -> list[tuple[portal.Job, SyncResult]]:
    """The full syncs scheduled for the quiet window that are due at `now`, when `now` is
    inside it (none otherwise, nor without a window): each job claimed, run here and
    ended as a worker would (core/jobqueue.py); one at a time, each throttled by
    `[full_sync] max_rows_per_second` (the engine reads it)."""
    window = home.settings().full_sync.quiet_window
    if window is None or not window.contains(now) or stop.is_set():
        return []

    def run(job: portal.Job, cancel) -> SyncResult:
        result = sync_dossier(home, job.dossier, "full", RunContext(cancel_requested=cancel),
                              job.options)
        if result.status == "succeeded":
            log.info("%s: scheduled full sync ok (job %s): read %d, inserted %d, updated %d, "
                     "deleted %d, quarantined %d", job.dossier, job.job, result.rows.read,
                     result.rows.inserted, result.rows.updated, result.rows.deleted,
                     result.rows.quarantined)
        else:
            log.error("%s: scheduled full sync failed (job %s): %s", job.dossier, job.job,
                      result.error)
        return result

    done = run_due_jobs(home, "full", run, due_by=now, stop=stop)
    log.info("nightly: %d scheduled full sync(s) run in the quiet window (%s)", len(done), window)
    return done


def _abandon(name: str) -> None:
    """A second SIGTERM or SIGINT: no more waiting, the workers are killed."""
    raise KeyboardInterrupt(f"{name} again: the running syncs are abandoned")


def _each(home: Home, tasks: list[tuple[str, tuple]], jobs: int, stop: threading.Event,
          verify: bool):
    """Run `_one` for every (dossier, (state, idle check time)): inline for one job, else in
    worker processes."""
    if jobs == 1 or len(tasks) < 2:
        _init_worker(str(home.root), verify, stop)
        for code, payload in tasks:
            yield _one(code, payload)
        return
    root = str(home.root)
    yield from in_workers(
        tasks, min(jobs, len(tasks)), stop,
        start=lambda halt, progress: _init_worker(root, verify, halt, progress),
        run=_one, not_started=_not_started, abandoned=_abandoned)


# --- one dossier's task ------------------------------------------------------------
_NOT_STARTED = "stopped before it started (shutdown)"


def _not_started(code: str) -> tuple[str, dict, list[SyncResult]]:
    return "skipped", {"dossier": code, "reason": _NOT_STARTED}, []


def _abandoned(code: str, since: str, why: str) -> tuple[str, tuple, list[SyncResult]]:
    """A failed run for a dossier whose worker never reported; recorded with the quiet runs."""
    log.error("%s failed: %s", code, why)
    run = SyncResult(run_id=new_run_id(code), dossier=code, kind="simple", status="failed",
                     rows=RowCounts(), started_at=since or _now(), finished_at=_now(), error=why)
    return "run", (run, None), [run]


_WORKER: dict = {}


def _init_worker(root: str, verify: bool, stop,
                 progress: ProgressHook | None = None) -> None:
    """What `_one` works with, in this process or in each worker (core/workers.py): the
    home, whether to verify, the stop flag, and the progress hook the pool watches."""
    _WORKER.update(home=Home(Path(root)), verify=verify, stop=stop, progress=progress)


def _one(code: str, payload: tuple) -> tuple[str, object, list[SyncResult]]:
    """One dossier's nightly: ("run", (sync, verification), quiet runs) or ("skipped", ...).

    payload: the dossier's state read with the others', and the time to count its idle
    days at when it was idle too long (its simple sync is then checked first, core/idle.py),
    else None."""
    state, idle_now = payload
    home, verify, stop = _WORKER["home"], _WORKER["verify"], _WORKER["stop"]
    progress = _WORKER.get("progress")
    if stop.is_set():
        return _not_started(code)
    quiet: list[SyncResult] = []
    ctx = RunContext(cancel_requested=stop, on_progress=progress)
    try:
        if idle_now is not None:
            run = idle.sync(home, code, "simple", ctx, now=idle_now)
        else:
            run = sync_dossier(home, code, "simple", ctx, known=state, record=quiet.append)
    except DossierBusy as exc:
        log.warning("%s skipped: %s", code, exc)
        return "skipped", {"dossier": code, "reason": str(exc)}, []
    finally:
        if progress is not None:
            progress.clear()
    if run.status == "succeeded":
        log.info("%s ok: read %d, inserted %d, updated %d, deleted %d, quarantined %d",
                 code, run.rows.read, run.rows.inserted, run.rows.updated,
                 run.rows.deleted, run.rows.quarantined)
    else:
        log.error("%s failed: %s", code, run.error)
    checked = None
    if verify and (run.status == "succeeded" or run.needs_full_sync) and not stop.is_set():
        if quiet:  # reconcile reads the run history: write this one first
            portal.record_runs(home.portal, quiet)
            quiet = []
        checked = verify_dossier(home, code, run, ctx)
    return "run", (run, checked), quiet


# --- --verify -------------------------------------------------------------------
def verify_dossier(home: Home, code: str, run: SyncResult,
                   ctx: RunContext | None = None) -> Verification:
    """Reconcile one dossier after its nightly sync; repair what a reload can fix.

    `run` is that simple sync. A full_sync verdict a segment reload can fix
    is repaired at once and reconciled again; one it cannot (a rewound
    ledger, a deletion-log gap, a repair that failed or left differences)
    is marked for staff: recorded in the portal so the monitor shows the
    dossier `action_required` with the reason. Never raises for a dossier's
    own trouble: the failure is in `error`, so the other dossiers go on.
    """
    try:
        first = reconcile(home, code)
    except DossyncError as exc:
        log.error("%s verify failed: %s", code, exc)
        return Verification(code, None, error=f"reconcile failed: {exc}")
    except Exception as exc:  # a defect: logged with its traceback, reported, never silent
        log.exception("%s verify failed unexpectedly", code)
        return Verification(code, None, error=f"reconcile failed unexpectedly "
                                              f"({type(exc).__name__}: {exc})")
    if first.verdict != "full_sync":
        log.info("%s verified: %s", code, first.verdict)
        # a verdict that needs no full sync also clears an earlier one in the monitor
        _record_verdict(home, code, first, needs_full_sync=False)
        return Verification(code, first.verdict, before=first.verdict, reasons=first.reasons)
    if not first.repairable or run.needs_full_sync:
        why = first.history_problem or (run.warnings[0] if run.warnings else first.reasons[0])
        log.warning("%s needs a full sync: %s", code, why)
        _record_verdict(home, code, first, needs_full_sync=True)
        return Verification(code, first.verdict, before=first.verdict, action_required=True,
                            reasons=first.reasons, segments=tuple(first.segments))
    periods = ", ".join(s["period"] for s in first.segments)
    log.info("%s: repairing %s (%d rows instead of %d for a full sync)", code, periods,
             first.repair_rows, first.full_sync_rows)
    try:
        repair = sync_dossier(home, code, "repair", ctx)
    except DossyncError as exc:  # busy, or a version without --repair: staff decides
        log.error("%s repair of %s not run: %s", code, periods, exc)
        reasons = (*first.reasons, f"the repair of {periods} could not run: {exc}")
        _record_verdict(home, code, first, needs_full_sync=True, reasons=reasons)
        return Verification(code, first.verdict, before=first.verdict, action_required=True,
                            reasons=reasons, segments=tuple(first.segments),
                            error=f"repair not run: {exc}")
    try:
        after = reconcile(home, code)
    except DossyncError as exc:
        log.error("%s verify after the repair failed: %s", code, exc)
        return Verification(code, None, before=first.verdict, segments=tuple(first.segments),
                            repair=repair, error=f"reconcile after the repair failed: {exc}")
    repaired = repair.status == "succeeded" and after.verdict == "in_sync"
    if repaired:
        log.info("%s repaired %s: in sync (read %d rows)", code, periods, repair.rows.read)
        _record_verdict(home, code, after, needs_full_sync=False)
        return Verification(code, after.verdict, before=first.verdict, repaired=True,
                            reasons=after.reasons, segments=tuple(first.segments), repair=repair)
    error = (f"repair failed: {repair.error}" if repair.status != "succeeded"
             else f"after the repair reconcile still says {after.verdict}")
    log.error("%s: %s", code, error)
    needs_full = after.verdict == "full_sync" or repair.status != "succeeded"
    reasons = after.reasons + ((f"the repair of {periods} failed: {repair.error}",)
                               if repair.status != "succeeded" else ())
    _record_verdict(home, code, after, needs_full_sync=needs_full, reasons=reasons)
    return Verification(code, after.verdict, before=first.verdict, action_required=needs_full,
                        reasons=reasons, segments=tuple(first.segments), repair=repair,
                        error=error if needs_full else None)


def _record_verdict(home: Home, code: str, result: Reconciliation, *, needs_full_sync: bool,
                    reasons: tuple[str, ...] | None = None) -> None:
    """Keep the verdict in the portal, where the monitor reads `action_required`."""
    portal.record_verdict(home.portal, code, result.verdict, list(reasons or result.reasons),
           [dict(s) for s in result.segments], needs_full_sync)
