"""The nightly run: a headless simple sync of every dossier with nightly on.

It never changes the updated-until date and never emails. Dossiers run a few
at a time in worker processes (a sync is mostly Python work between two
short portal visits, so threads would only take turns); one dossier's
failure never stops the others, and a dossier another process is already
syncing is skipped and reported.

Stopping. SIGTERM or SIGINT (Ctrl-C) starts nothing new: each running sync
is cancelled at its next batch (it changes nothing) and a commit already
under way finishes. A worker still busy STOP_GRACE seconds later (waiting
for a ledger the package keeps locked, say) is killed, one that is
committing gets COMMIT_GRACE: a sync is all or nothing per dossier, so the
portal keeps such a dossier as it was. The nightly then reports what it did
and exits 1 (FAILED); a second signal kills the workers at once. SIGTERM to
one worker (the monitor's cancel) cancels that worker's sync only.

The workers die with the nightly however it dies, kill -9 included: on
Linux the kernel kills them (prctl PR_SET_PDEATHSIG), and everywhere they
watch a pipe whose only write end the nightly holds. They never hold the
caller's stdout or stderr (what they write reaches the nightly's stderr
through a pipe it reads), so a killed nightly never leaves the caller's
pipe open.

With `verify` the nightly heals itself instead of running a blind periodic
full reload: after its simple sync each dossier is reconciled; segments a
reload can fix (an edit in a closed period, moved fiscal years) are repaired
at once (`sync --repair`) and reconciled again; when only a full sync can
help (a rewound ledger, a deletion-log gap) the dossier is left for staff,
marked `action_required` in the monitor with the reason.
"""
from __future__ import annotations

import ctypes
import logging
import logging.handlers
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait as wait_for
from multiprocessing.process import BaseProcess
from pathlib import Path

from dossync.core import portal
from dossync.core.home import Home
from dossync.core.model import (DossierBusy, DossyncError, ExitCode, Progress, RowCounts,
                                RunContext, SyncResult, UsageError)
from dossync.core.reconcile import Reconciliation, reconcile
from dossync.core.sync import new_run_id, sync_dossier

log = logging.getLogger("dossync.nightly")

# A stopped nightly gives a running sync this long to wind down (it is
# cancelled at its next batch) before it kills the worker; a worker that is
# committing gets COMMIT_GRACE, so that a running commit finishes.
STOP_GRACE = 5.0
COMMIT_GRACE = 60.0
_POLL = 0.2  # seconds between the parent's looks at the stop flag while workers run
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
                "started_at": self.started_at, "finished_at": self.finished_at,
                "stopped": self.stopped}


def _file_log(home: Home) -> logging.Handler:
    home.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(home.logs / "nightly.log", maxBytes=2_000_000,
                                                   backupCount=7, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def run_nightly(home: Home, jobs: int = 4, stop: threading.Event | None = None,
                verify: bool = False) -> NightlyResult:
    """Simple-sync every nightly dossier, `jobs` at a time.

    `stop` (set on SIGTERM by the scheduler) starts nothing new and cancels
    the running syncs at their next batch; running commits finish (see
    STOP_GRACE). Without `stop` the nightly answers SIGTERM and SIGINT
    itself that way (when called from the main thread), and its result says
    it stopped (exit 1). `verify` reconciles each dossier after its sync and
    repairs what a segment reload can fix (see `verify_dossier`). With more
    than one job the dossiers are shared among worker processes.
    """
    home.require()
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    own_signals = stop is None
    stop = stop or threading.Event()
    handler = _file_log(home)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    result = NightlyResult(started_at=datetime.now().isoformat(timespec="seconds"))
    try:
        with _stop_on_signals(stop) if own_signals else nullcontext([]) as received:
            dossiers = [d for d in portal.list_dossiers(home.portal) if d.nightly]
            # One look at the portal for all of them, one commit for the runs that
            # found nothing new: the fixed cost per dossier stays small.
            codes = [d.code for d in dossiers]
            states = portal.sync_states(home.portal, codes)
            log.info("nightly: %d dossier(s) with nightly on, %d at a time", len(dossiers), jobs)
            unchanged: list[SyncResult] = []
            with closing(_each(home, codes, states, jobs, stop, verify)) as outcomes:
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
        log.removeHandler(handler)
        handler.close()
    return result


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """SIGTERM or SIGINT sets `stop`; a second one raises KeyboardInterrupt (no more
    waiting: the workers are killed). Yields the names of the signals received."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may set handlers: the caller owns signals
        return

    def on_signal(signum, _frame) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            raise KeyboardInterrupt(f"{name} again: the running syncs are abandoned")
        received.append(name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _each(home: Home, codes: list[str], states: dict, jobs: int, stop: threading.Event,
          verify: bool):
    """Run `_one` for every dossier: inline for one job, else in worker processes."""
    if jobs == 1 or len(codes) < 2:
        _init_worker(str(home.root), verify, stop)
        for code in codes:
            yield _one(code, states.get(code))
        return
    yield from _in_workers(home, codes, states, min(jobs, len(codes)), stop, verify)


# --- worker processes -------------------------------------------------------------
@dataclass
class _Worker:
    """One worker process as the nightly sees it; `code` is the dossier it is on."""

    index: int
    process: BaseProcess
    conn: Connection
    code: str | None = None
    since: str = ""


def _in_workers(home: Home, codes: list[str], states: dict, jobs: int, stop: threading.Event,
                verify: bool):
    """Hand the dossiers one at a time to `jobs` worker processes; yield `_one`'s outcomes.

    Every worker is gone when this returns or raises (see the module's
    docstring: stopping, and dying with the nightly).
    """
    context = multiprocessing.get_context("fork")
    halt = _SharedFlag(context)
    committing = context.RawArray(ctypes.c_bool, jobs)
    lifeline = os.pipe()  # the workers watch it: only the parent holds the write end
    relay = os.pipe()  # the workers' stdout and stderr, copied to the nightly's stderr
    workers: list[_Worker] = []
    relay_thread: threading.Thread | None = None
    pending = deque(codes)
    stopped_at: float | None = None
    hurry = False
    try:
        try:
            for index in range(jobs):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_worker_main, name=f"dossync-nightly-{index + 1}",
                    args=(index, theirs, [w.conn for w in workers] + [mine], lifeline, relay,
                          str(home.root), verify, halt, committing, os.getpid()))
                process.start()
                theirs.close()
                workers.append(_Worker(index, process, mine))
        finally:
            os.close(lifeline[0])
            os.close(relay[1])
        # started after the forks: a forked child gets no copy of a running thread
        relay_thread = threading.Thread(target=_relay, args=(relay[0],), name="nightly-relay",
                                        daemon=True)
        relay_thread.start()
        while True:
            if stopped_at is None and stop.is_set():
                stopped_at = time.monotonic()
                halt.set()
                while pending:
                    yield _not_started(pending.popleft())
            for worker in workers:
                if pending and worker.code is None and worker.process.exitcode is None:
                    code = pending.popleft()
                    try:
                        worker.conn.send((code, states.get(code)))
                    except OSError:  # it died while idle: another worker takes the dossier
                        pending.appendleft(code)
                        _retire(worker)
                    else:
                        worker.code, worker.since = code, _now()
            busy = [w for w in workers if w.code is not None]
            if not busy:
                while pending:  # every worker is gone
                    yield _abandoned(pending.popleft(), "", "not run: the nightly's worker "
                                     "processes all died; see the log")
                return
            if stopped_at is not None:
                late = time.monotonic() - stopped_at
                for worker in busy:
                    if _overdue(worker, committing, late):
                        code, since = worker.code, worker.since
                        _retire(worker)
                        yield _abandoned(code, since, (
                            f"abandoned: the nightly was stopped and this sync had not ended "
                            f"{late:.0f}s later; a sync is all or nothing, so the portal keeps "
                            f"the dossier as it was"))
            busy = [w for w in workers if w.code is not None]
            ready = set(wait_for([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                 timeout=_POLL))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                reply = _receive(worker)
                code, since = worker.code, worker.since
                if reply is None:  # gone without a word
                    _retire(worker)
                    yield _abandoned(code, since, (
                        f"its worker process died ({_how(worker.process.exitcode)}) before it "
                        f"reported; a sync is all or nothing, so the portal shows the dossier "
                        f"whole, as it was before or after this sync"))
                    continue
                worker.code = None
                tag, value = reply
                if tag == "raise":  # as it would have been raised in one process
                    raise value
                yield value
    except KeyboardInterrupt:
        hurry = True  # a second signal, or Ctrl-C where the caller owns signals: no waiting
        raise
    finally:
        halt.set()
        _wind_down(workers, committing,
                   stopped_at if stopped_at is not None else time.monotonic(), hurry)
        os.close(lifeline[1])  # a worker still alive somehow sees its parent go
        if relay_thread is None:
            os.close(relay[0])
        else:
            relay_thread.join(timeout=2)  # the workers' last words before the summary


def _overdue(worker: _Worker, committing, late: float) -> bool:
    return late > COMMIT_GRACE or (late > STOP_GRACE and not committing[worker.index])


def _wind_down(workers: list[_Worker], committing, since: float, hurry: bool) -> None:
    """Tell every worker to end; kill those not gone within the grace (all at once if `hurry`)."""
    try:
        for worker in workers:
            if worker.process.exitcode is None:
                try:
                    worker.conn.send(None)  # read after its running dossier, if any
                except OSError:
                    _retire(worker)  # already dead: nothing to tell
        while live := [w for w in workers if w.process.is_alive()]:
            late = time.monotonic() - since
            for worker in live:
                if hurry or _overdue(worker, committing, late):
                    worker.process.kill()
            wait_for([w.process.sentinel for w in live]
                     + [w.conn for w in live if not w.conn.closed], timeout=_POLL)
            for worker in live:  # outcomes nobody waits for any more
                try:
                    while not worker.conn.closed and worker.conn.poll():
                        worker.conn.recv()
                except (EOFError, OSError):
                    worker.conn.close()
    finally:
        for worker in workers:
            _retire(worker)


def _retire(worker: _Worker) -> None:
    """Make sure the worker is gone (SIGKILL if need be) and reaped."""
    if worker.process.exitcode is None:
        worker.process.kill()
    worker.process.join()
    worker.conn.close()
    worker.code = None


def _receive(worker: _Worker):
    """The worker's reply, or None when it is gone without one."""
    try:
        if not worker.conn.closed and worker.conn.poll():
            return worker.conn.recv()
    except (EOFError, OSError):
        pass  # its end closed: the caller reports the worker as dead
    return None


def _how(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"


def _now() -> str:
    return datetime.now().isoformat(timespec="milliseconds")


_NOT_STARTED = "stopped before it started (shutdown)"


def _not_started(code: str) -> tuple[str, dict, list[SyncResult]]:
    return "skipped", {"dossier": code, "reason": _NOT_STARTED}, []


def _abandoned(code: str, since: str, why: str) -> tuple[str, tuple, list[SyncResult]]:
    """A failed run for a dossier whose worker never reported; recorded with the quiet runs."""
    log.error("%s failed: %s", code, why)
    run = SyncResult(run_id=new_run_id(code), dossier=code, kind="simple", status="failed",
                     rows=RowCounts(), started_at=since or _now(), finished_at=_now(), error=why)
    return "run", (run, None), [run]


def _relay(fd: int) -> None:
    """Copy what the workers write to the nightly's stderr until the last one is gone."""
    with open(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            try:
                out = getattr(sys.stderr, "buffer", None)
                if out is not None:
                    out.write(chunk)
                else:
                    sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                continue  # our stderr is gone: keep draining, or a worker would block writing


class _Flag:
    """A flag a signal handler may set: no lock that the interrupted code might hold."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


class _SharedFlag:
    """The nightly's stop, seen by every worker: one byte of shared memory and no
    lock (a worker killed while holding a multiprocessing.Event's lock would
    leave the others waiting on it for ever)."""

    def __init__(self, context) -> None:
        self._byte = context.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._byte.value = True

    def is_set(self) -> bool:
        return bool(self._byte.value)


class _AnyOf:
    def __init__(self, *flags) -> None:
        self._flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self._flags)


class _CommitFlag:
    """Progress hook: tells the parent while this worker's sync commits (it may finish)."""

    def __init__(self, flags, index: int) -> None:
        self._flags, self._index = flags, index

    def __call__(self, event: Progress) -> None:
        self._flags[self._index] = event.phase == "commit"

    def clear(self) -> None:
        self._flags[self._index] = False


def _worker_main(index: int, conn: Connection, inherited: list[Connection],
                 lifeline: tuple[int, int], relay: tuple[int, int], root: str, verify: bool,
                 halt: _SharedFlag, committing, parent: int) -> None:
    """A worker process: the dossiers its parent hands it, one at a time, until told to end."""
    _stdio_to(relay)
    _die_with_parent(parent, lifeline)
    for other in inherited:  # the parent's ends of the pipes to the workers forked before
        other.close()
    cancel = _Flag()

    def cancel_running(_signum, _frame) -> None:
        cancel.set()  # this worker's running sync only (the monitor's cancel, Ctrl-C)

    signal.signal(signal.SIGTERM, cancel_running)
    signal.signal(signal.SIGINT, cancel_running)
    progress = _CommitFlag(committing, index)
    _init_worker(root, verify, _AnyOf(halt, cancel), progress)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        cancel.clear()
        code, state = task
        try:
            outcome = ("done", _one(code, state))
        except Exception as exc:  # raised again in the parent, as in one process
            log.exception("%s: the nightly's worker failed", code)
            outcome = ("raise", _portable(exc, code))
        conn.send(outcome)


def _portable(exc: Exception, code: str) -> Exception:
    """The exception itself if it survives the pipe to the parent, else its words."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # unpicklable attributes, or an __init__ that unpickling cannot call
        return DossyncError(f"{code}: {type(exc).__name__}: {exc}")
    return exc


def _stdio_to(relay: tuple[int, int]) -> None:
    """Stdout and stderr to the parent's pipe, never the caller's: a worker must not keep
    the caller's pipe open (killed, the nightly could not close it)."""
    read_end, write_end = relay
    os.close(read_end)
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)


def _die_with_parent(parent: int, lifeline: tuple[int, int]) -> None:
    """Do not outlive the nightly, however it dies (kill -9 included)."""
    watch, keep = lifeline
    os.close(keep)  # the parent's is then the only write end: its death closes the pipe
    _set_death_signal()
    if os.getppid() != parent:  # it died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(watch,), name="nightly-parent-watch",
                     daemon=True).start()


def _set_death_signal() -> None:
    """Linux: the kernel sends this process SIGKILL when its parent dies.

    (Strictly, when the parent's thread that forked it ends: the nightly
    forks its workers from the thread that runs it and reaps them before
    it returns.)
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        failed = libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL),
                            ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    except (OSError, AttributeError) as exc:
        log.warning("no parent-death signal for the nightly's worker (%s); it watches its "
                    "parent's pipe instead", exc)
        return
    if failed:
        log.warning("no parent-death signal for the nightly's worker (%s); it watches its "
                    "parent's pipe instead", os.strerror(ctypes.get_errno()))


def _watch_parent(fd: int) -> None:
    """The parent never writes: the read returns when its end closes, that is when it is gone."""
    try:
        os.read(fd, 1)
    except OSError as exc:
        log.warning("the nightly's worker cannot watch its parent's pipe: %s", exc)
        return
    os._exit(1)  # the sync in progress is abandoned: all or nothing, like kill -9


_WORKER: dict = {}


def _init_worker(root: str, verify: bool, stop, progress: _CommitFlag | None = None) -> None:
    _WORKER.update(home=Home(Path(root)), verify=verify, stop=stop, progress=progress)


def _one(code: str, state) -> tuple[str, object, list[SyncResult]]:
    """One dossier's nightly: ("run", (sync, verification), quiet runs) or ("skipped", ...)."""
    home, verify, stop = _WORKER["home"], _WORKER["verify"], _WORKER["stop"]
    progress = _WORKER.get("progress")
    if stop.is_set():
        return _not_started(code)
    quiet: list[SyncResult] = []
    ctx = RunContext(cancel_requested=stop, on_progress=progress)
    try:
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
