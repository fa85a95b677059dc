"""The job queue's worker (`dossync worker`): claims queued syncs and runs them.

The queue itself lives in the portal (core/portal/jobs.py). A worker claims
the oldest claimable job, runs it, records how it ended, and goes on; up to
`concurrency` jobs at once, never two of one dossier. Its id is
`host:pid`.

Each job runs as a child process, `dossync sync CODE [--full|--repair]
[options] --json`: the sync keeps its all-or-nothing guarantee and its own
SIGTERM handling, and the worker reads the one JSON document it prints
(run_id, status, error). A child that exits 3 (BUSY: another process syncs
that dossier), or a dossier whose lock is held when the job is claimed,
puts the job back in the queue: it waits BUSY_WAIT seconds and never fails
for it, and that attempt does not count.

Leases. A running job belongs to its worker until its lease runs out; a
heartbeat thread extends the leases of the worker's jobs every third of
the lease. A worker killed outright (kill -9) stops extending them: once
its lease has run out, the job is claimable again (attempts + 1). The
children run in their own session and live on if their worker dies: the
sync they run still finishes or changes nothing, and the job's next run
waits for that dossier's lock like any other.

Stopping. SIGTERM or SIGINT: nothing new is claimed, the running jobs
finish and are recorded, then the worker exits 0. A second signal cancels
the running syncs (SIGTERM to each: they change nothing) and puts their
jobs back in the queue. With `until_idle` the worker also stops when no job
is queued or running.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Callable

from dossync.core import portal, window
from dossync.core.home import Home
from dossync.core.locks import dossier_lock
from dossync.core.model import (DossierBusy, DossyncError, ExitCode, SyncKind, SyncResult,
                                TransientError, UsageError)
from dossync.core.monitor import sync_command
from dossync.core.portal import Job
from dossync.core.workers import stop_on_signals

log = logging.getLogger("dossync.jobqueue")

DEFAULT_LEASE = 60.0  # seconds; the heartbeat extends it every third of it
POLL_SECONDS = 0.25  # how often a worker with nothing to start looks again
STOP_SECONDS = 5.0  # a stop request for a running job is seen within this (the heartbeat)
BUSY_WAIT = 2.0  # a job whose dossier was busy waits this long before it is claimed again


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_command(home: Home, job: Job) -> list[str]:
    """The child process that runs a job: `dossync sync` with the job's kind and options."""
    return sync_command(home, job.dossier, job.kind, job.options)


@dataclass
class WorkerResult:
    """What one worker did: the jobs it finished, and why it stopped."""

    worker: str
    jobs: list[Job] = field(default_factory=list)
    stopped: str | None = None  # the signal that stopped it, None when it went idle

    @property
    def succeeded(self) -> int:
        return sum(1 for j in self.jobs if j.status == "succeeded")

    @property
    def failed(self) -> int:
        return sum(1 for j in self.jobs if j.status == "failed")

    def to_json(self) -> dict:
        return {"worker": self.worker, "jobs": [j.to_json() for j in self.jobs],
                "run": len(self.jobs), "succeeded": self.succeeded, "failed": self.failed,
                "stopped": self.stopped}


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen
    out: IO[bytes]
    err: IO[bytes]
    cancelled: bool = False  # the worker was stopped: the job goes back to the queue
    stop_requested: bool = False  # `jobs cancel` asked: the job ends cancelled


@dataclass(frozen=True)
class _Outcome:
    status: str  # succeeded, failed, cancelled, or busy (back to the queue)
    run_id: str | None
    error: str | None


def _outcome(returncode: int, out: bytes, err: bytes, cancelled: bool,
             stop_requested: bool = False) -> _Outcome:
    """How a job's child ended, from its exit code and its one JSON document."""
    try:
        doc = json.loads(out.decode("utf-8", "replace"))
    except ValueError:
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    run_id, error = doc.get("run_id"), doc.get("error")
    if returncode == ExitCode.BUSY:
        return _Outcome("busy", None, error or "another process is syncing this dossier")
    if stop_requested and returncode != ExitCode.OK:
        return _Outcome("cancelled", run_id, "cancelled while it ran ('dossync jobs cancel'): "
                                             "the sync stopped and changed nothing")
    if cancelled and returncode != ExitCode.OK:
        return _Outcome("busy", None, "the worker was stopped: the sync was cancelled and "
                                      "changed nothing; the job waits for the next worker")
    if returncode == ExitCode.OK and doc.get("status", "succeeded") == "succeeded":
        return _Outcome("succeeded", run_id, None)
    if not error:
        if returncode < 0:
            error = (f"the sync process was killed by signal {signal.Signals(-returncode).name}; "
                     f"a sync is all or nothing, so the portal kept the dossier as it was")
        else:
            last = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            error = f"the sync exited with code {returncode}: {last}"
    return _Outcome("failed", run_id, error)


class _Heartbeat(threading.Thread):
    """Extends the leases of the worker's running jobs every third of the lease."""

    def __init__(self, path, worker: str, lease: float, running: Callable[[], list[str]],
                 on_stop: Callable[[list[str]], None]) -> None:
        super().__init__(name="dossync-heartbeat", daemon=True)
        self.path, self.worker, self.lease, self.running = path, worker, lease, running
        self.on_stop = on_stop
        self.done = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        # every third of the lease, and often enough that a stop request is seen soon
        while not self.done.wait(min(max(self.lease / 3, 0.2), STOP_SECONDS)):
            try:
                held = portal.heartbeat(self.path, self.worker, self.running(), self.lease)
                if any(held.values()):
                    self.on_stop([job for job, stop in held.items() if stop])
            except TransientError as exc:  # the portal stayed locked: the next beat tries again
                log.warning("worker %s: could not extend its leases: %s", self.worker, exc)
            except BaseException as exc:  # handed to the main loop, which raises it
                self.failure = exc
                return


def run_worker(home: Home, *, concurrency: int = 1, lease: float = DEFAULT_LEASE,
               until_idle: bool = False, stop: threading.Event | None = None,
               on_finished: Callable[[Job], None] | None = None,
               clock: Callable[[], datetime] = datetime.now) -> WorkerResult:
    """Claim and run queued jobs until stopped (or, with `until_idle`, until none is left).

    `stop` set (or SIGTERM/SIGINT when the caller gives none, from the main
    thread): nothing new is claimed and the running jobs finish. Each job
    that ends is recorded in the portal and handed to `on_finished`.
    `clock` says when a waiting job is due (a full sync scheduled for the
    quiet window); the CLI's reads DOSSYNC_NOW (core/window.py). Such a job
    not yet due does not keep an `until_idle` worker waiting.
    """
    home.require()
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if lease < 1:
        raise UsageError("--lease must be at least 1 second")
    path = home.portal
    worker = worker_id()
    result = WorkerResult(worker=worker)
    running: dict[str, _Running] = {}
    guard = threading.Lock()
    own_signals = stop is None
    stop = stop or threading.Event()

    def held() -> list[str]:
        with guard:
            return list(running)

    def cancel_running(_signal: str) -> None:
        with guard:
            for r in running.values():
                r.cancelled = True
                if r.process.poll() is None:
                    r.process.send_signal(signal.SIGTERM)

    def stop_jobs(jobs: list[str]) -> None:  # asked by 'dossync jobs cancel', on any machine
        with guard:
            for job in jobs:
                r = running.get(job)
                if r is not None and not r.stop_requested and r.process.poll() is None:
                    r.stop_requested = True
                    log.info("job %s: stop requested; stopping its sync", job)
                    r.process.send_signal(signal.SIGTERM)

    beat = _Heartbeat(path, worker, lease, held, stop_jobs)
    log.info("worker %s: started (%d at a time, lease %ss)", worker, concurrency, lease)
    beat.start()
    try:
        with stop_on_signals(stop, cancel_running) if own_signals else nullcontext([]) as seen:
            while True:
                if beat.failure is not None:
                    raise beat.failure
                for job_id, r in list(running.items()):
                    if r.process.poll() is not None and _conclude(path, worker, r, result,
                                                                 on_finished):
                        with guard:
                            del running[job_id]
                if stop.is_set():
                    if not running:
                        break
                    stop.wait(POLL_SECONDS)
                    continue
                if len(running) < concurrency and _claim_and_start(home, worker, lease, running,
                                                                   guard, clock()):
                    continue  # claim the next one at once
                if until_idle and not running and _waiting(path, clock()) == 0:
                    break
                stop.wait(POLL_SECONDS)
            if stop.is_set():
                result.stopped = seen[0] if seen else "stop requested"
    finally:
        beat.done.set()
        beat.join()
        for r in running.values():  # only when the loop failed: the syncs go on, their jobs
            r.out.close()           # are claimed again once the leases run out
            r.err.close()
    log.info("worker %s: stopped after %d job(s)", worker, len(result.jobs))
    return result


def _waiting(path, now: datetime) -> int:
    """Jobs to wait for: those due within a few busy waits (not a full sync scheduled for
    a quiet window hours away)."""
    try:
        return portal.jobs_waiting(path, due_by=now + timedelta(seconds=10 * BUSY_WAIT))
    except TransientError as exc:
        log.warning("could not read the queue: %s", exc)
        return 1


def _outside_its_window(home: Home, worker: str, job: Job, now: datetime | None) -> bool:
    """A full sync scheduled for the quiet window that a worker claims after the window
    closed again (no worker ran that night): back in the queue for the next window,
    as the firm asked; True when so. (`sync --full --now --queue` jobs run whenever.)"""
    if job.kind != "full" or not (job.error or "").startswith(window.SCHEDULED):
        return False
    now = now or window.current_time()
    at = window.waits_until(home, "full", now)
    if at is None:
        return False
    log.info("job %s: the quiet window has closed; it waits for the next one (%s)", job.job, at)
    try:
        portal.requeue_job(home.portal, job.job, worker, window.waiting_reason(home, at),
                           (at - now).total_seconds(), not_before=at)
    except TransientError as exc:  # its lease runs out and it is claimed again
        log.warning("job %s: could not put it back in the queue: %s", job.job, exc)
    return True


def _claim_and_start(home: Home, worker: str, lease: float, running: dict[str, _Running],
                     guard: threading.Lock, due_by: datetime | None = None) -> bool:
    """Claim one job and start its child (or put it back if its dossier is busy).
    False when there was nothing to claim."""
    try:
        job = portal.claim_job(home.portal, worker, lease,
                               exclude=[r.job.dossier for r in running.values()],
                               due_by=due_by)
    except TransientError as exc:
        log.warning("worker %s: could not claim a job: %s", worker, exc)
        return False
    if job is None:
        return False
    if _outside_its_window(home, worker, job, due_by):
        return True
    lock = dossier_lock(home, job.dossier)
    if lock.is_held():
        reason = (f"waiting: dossier {job.dossier} is busy ({lock.holder() or 'another process'})"
                  f"; the job runs when it is free")
        log.info("job %s: %s", job.job, reason)
        try:
            portal.requeue_job(home.portal, job.job, worker, reason, BUSY_WAIT)
        except TransientError as exc:  # its lease runs out and it is claimed again
            log.warning("job %s: could not put it back in the queue: %s", job.job, exc)
        return True
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    try:
        process = subprocess.Popen(job_command(home, job), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, start_new_session=True, cwd=str(home.root))
    except OSError as exc:
        out.close()
        err.close()
        portal.finish_job(home.portal, job.job, worker, "failed", None,
                          f"the sync process could not be started: {exc}")
        raise
    log.info("job %s: %s sync of %s started (attempt %d, pid %d)", job.job, job.kind,
             job.dossier, job.attempts, process.pid)
    with guard:
        running[job.job] = _Running(job, process, out, err)
    return True


def _conclude(path, worker: str, r: _Running, result: WorkerResult,
              on_finished: Callable[[Job], None] | None) -> bool:
    """Record how a child ended. False when the portal could not be reached (try again)."""
    r.out.seek(0)
    r.err.seek(0)
    outcome = _outcome(r.process.returncode, r.out.read(), r.err.read(), r.cancelled,
                       r.stop_requested)
    job = r.job
    try:
        if outcome.status == "busy":
            log.info("job %s: dossier %s busy, back in the queue: %s", job.job, job.dossier,
                     outcome.error)
            portal.requeue_job(path, job.job, worker, f"waiting: {outcome.error}", BUSY_WAIT)
        else:
            kept = portal.finish_job(path, job.job, worker, outcome.status, outcome.run_id,
                                     outcome.error)
            if not kept:
                log.warning("job %s: its lease ran out and another worker took it over; "
                            "this run (%s, %s) is in the sync history only", job.job,
                            outcome.status, outcome.run_id)
            else:
                finished = portal.require_job(path, job.job)
                result.jobs.append(finished)
                log.info("job %s: %s", job.job, finished.status)
                if on_finished is not None:
                    on_finished(finished)
    except TransientError as exc:
        log.warning("job %s: could not record its end yet: %s", job.job, exc)
        return False
    r.out.close()
    r.err.close()
    return True


class _Either:
    """Set when either event is: the caller's stop, or a `jobs cancel` of the job."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def run_due_jobs(home: Home, kind: SyncKind,
                 run: Callable[[Job, object], SyncResult], *, due_by: datetime,
                 stop: threading.Event,
                 lease: float = DEFAULT_LEASE) -> list[tuple[Job, SyncResult]]:
    """Claim the due queued jobs of one `kind` one at a time, as a worker would, and run
    each in this process: `run(job, cancel)` returns its sync's result, `cancel` (an
    Event-like `.is_set()`) telling it to stop. The nightly runs the full syncs scheduled
    for the quiet window this way (core/nightly.py), with its throttle and its log.

    Each job ends as a worker ends it (`_outcome`, `finish_job`): succeeded, failed, or
    cancelled when `dossync jobs cancel` asked (the heartbeat that extends its lease sees
    the request); a busy dossier, or a `stop` that cut the sync short, puts the job back
    in the queue (that attempt does not count). Returns the ended jobs with their runs.
    """
    path, worker = home.portal, worker_id()
    done: list[tuple[Job, SyncResult]] = []
    busy: list[str] = []  # dossiers another process syncs: not claimed again in this call
    asked: dict[str, threading.Event] = {}
    guard = threading.Lock()

    def held() -> list[str]:
        with guard:
            return list(asked)

    def stop_jobs(jobs: list[str]) -> None:
        with guard:
            for job in jobs:
                if job in asked:
                    log.info("job %s: stop requested; stopping its sync", job)
                    asked[job].set()

    beat = _Heartbeat(path, worker, lease, held, stop_jobs)
    beat.start()
    try:
        while not stop.is_set():
            if beat.failure is not None:
                raise beat.failure
            job = portal.claim_job(path, worker, lease, exclude=busy, kind=kind, due_by=due_by)
            if job is None:
                break
            with guard:
                cancel = asked[job.job] = threading.Event()
            log.info("job %s: %s sync of %s started in this process (attempt %d)", job.job,
                     job.kind, job.dossier, job.attempts)
            try:
                result = run(job, _Either(stop, cancel))
            except DossierBusy as exc:
                busy.append(job.dossier)
                log.info("job %s: dossier %s busy, back in the queue: %s", job.job,
                         job.dossier, exc)
                portal.requeue_job(path, job.job, worker, f"waiting: {exc}", BUSY_WAIT)
                continue
            except Exception as exc:  # refused (a dossier removed since), or a defect: the
                log.exception("job %s: %s sync of %s failed", job.job, job.kind, job.dossier)
                portal.finish_job(path, job.job, worker, "failed", None,  # others go on
                                  str(exc) if isinstance(exc, DossyncError) else
                                  f"the sync failed unexpectedly ({type(exc).__name__}: {exc})")
                continue
            except BaseException:  # interrupted: the job waits for the next run
                portal.requeue_job(path, job.job, worker, "waiting: interrupted", 0)
                raise
            finally:
                with guard:
                    asked.pop(job.job, None)
            code = ExitCode.OK if result.status == "succeeded" else ExitCode.FAILED
            outcome = _outcome(code, json.dumps(result.to_json()).encode(), b"",
                               stop.is_set(), cancel.is_set())
            if outcome.status == "busy":  # stopped with the caller: the job waits
                portal.requeue_job(path, job.job, worker, f"waiting: {outcome.error}", 0)
                continue
            if portal.finish_job(path, job.job, worker, outcome.status, outcome.run_id,
                                 outcome.error):
                finished = portal.require_job(path, job.job)
                log.info("job %s: %s", job.job, finished.status)
                done.append((finished, result))
    finally:
        beat.done.set()
        beat.join()
    return done


__all__ = ["BUSY_WAIT", "DEFAULT_LEASE", "WorkerResult", "run_due_jobs", "run_worker",
           "job_command", "worker_id"]
