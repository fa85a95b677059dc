"""The nightly's worker processes: a few forked workers that take tasks one at a time.

`in_workers` hands tasks (for the nightly: a dossier code and its sync state)
to `jobs` worker processes, one at a time as each becomes free, and yields
each task's outcome in the parent as it arrives. What a task is and what its
outcome means belong to the caller (core/nightly.py); this module owns the
processes: starting them, stopping them, and making sure none outlives the
nightly.

Stopping. When the caller's `stop` is set, nothing new starts (the tasks not
handed out yet come back as `not_started`) and every worker's stop flag is
set, so a running sync is cancelled at its next batch. A worker still busy
STOP_GRACE seconds later is killed; one whose task reported the commit
phase (`Progress.phase == "commit"`) gets COMMIT_GRACE, so that a running
commit finishes. A task whose worker died or was killed comes back as
`abandoned`. A KeyboardInterrupt in the parent (a second signal) kills the
workers at once. SIGTERM or SIGINT to one worker (the monitor's cancel)
sets that worker's own stop flag: its running task only.

The workers die with the nightly however it dies, kill -9 included: on
Linux the kernel kills them (prctl PR_SET_PDEATHSIG), and everywhere they
watch a pipe whose only write end the nightly holds. They never hold the
caller's stdout or stderr (what they write reaches the nightly's stderr
through a pipe it reads), so a killed nightly never leaves the caller's
pipe open.

The workers are forked (the tasks' callables need not be picklable); an
outcome crosses a pipe, pickled. An exception a task raises is raised again
in the parent, as it would have been in one process.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, wait as wait_for
from multiprocessing.process import BaseProcess
from typing import Callable, Iterator, Protocol, Sequence, TypeVar

from dossync.core.model import DossyncError, Progress

log = logging.getLogger("dossync.nightly.workers")

# A stopped nightly gives a running task this long to wind down (a sync is
# cancelled at its next batch) before it kills the worker; a worker that is
# committing gets COMMIT_GRACE, so that a running commit finishes.
STOP_GRACE = 5.0
COMMIT_GRACE = 60.0
_POLL = 0.2  # seconds between the parent's looks at the stop flag while workers run
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

Outcome = TypeVar("Outcome")


class ProgressHook(Protocol):
    """A task's progress events go here (a sync's `RunContext.on_progress`): it tells the
    parent while the task commits. `clear()`: not committing any more."""

    def __call__(self, event: Progress) -> None: ...

    def clear(self) -> None: ...


# In each worker, once before its first task: start(stop, progress). `stop` (is_set())
# says the nightly stopped or this worker was told to cancel; `progress`: see ProgressHook.
Start = Callable[[object, ProgressHook], None]


@dataclass
class _Worker:
    """One worker process as the parent sees it; `key` is the task it is on."""

    index: int
    process: BaseProcess
    conn: Connection
    key: str | None = None
    since: str = ""


def in_workers(tasks: Sequence[tuple[str, object]], jobs: int, stop, *, start: Start,
               run: Callable[[str, object], Outcome],
               not_started: Callable[[str], Outcome],
               abandoned: Callable[[str, str, str], Outcome],
               name: str = "dossync-nightly") -> Iterator[Outcome]:
    """Run `run(key, payload)` for every task in `jobs` worker processes; yield the outcomes
    in the order they arrive.

    tasks: (key, payload) pairs; the key (a dossier code) names the task in messages.
    stop: the caller's flag (is_set()): see the module's docstring. start: each worker's
    setup (see `Start`). not_started(key): the outcome of a task never handed out because
    of `stop`. abandoned(key, since, why): the outcome of a task whose worker died or was
    killed before it reported (`since`: when it was handed out, "" if never).

    Every worker is gone when this returns or raises (or is closed).
    """
    context = multiprocessing.get_context("fork")
    halt = _SharedFlag(context)
    committing = context.RawArray(ctypes.c_bool, jobs)
    lifeline = os.pipe()  # the workers watch it: only the parent holds the write end
    relay = os.pipe()  # the workers' stdout and stderr, copied to the nightly's stderr
    workers: list[_Worker] = []
    relay_thread: threading.Thread | None = None
    pending = deque(tasks)
    stopped_at: float | None = None
    hurry = False
    try:
        try:
            for index in range(jobs):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_worker_main, name=f"{name}-{index + 1}",
                    args=(index, theirs, [w.conn for w in workers] + [mine], lifeline, relay,
                          start, run, halt, committing, os.getpid()))
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
                    yield not_started(pending.popleft()[0])
            for worker in workers:
                if pending and worker.key is None and worker.process.exitcode is None:
                    task = pending.popleft()
                    try:
                        worker.conn.send(task)
                    except OSError:  # it died while idle: another worker takes the task
                        pending.appendleft(task)
                        _retire(worker)
                    else:
                        worker.key, worker.since = task[0], now()
            busy = [w for w in workers if w.key is not None]
            if not busy:
                while pending:  # every worker is gone
                    yield abandoned(pending.popleft()[0], "", "not run: the nightly's worker "
                                    "processes all died; see the log")
                return
            if stopped_at is not None:
                late = time.monotonic() - stopped_at
                for worker in busy:
                    if _overdue(worker, committing, late):
                        key, since = worker.key, worker.since
                        _retire(worker)
                        yield abandoned(key, since, (
                            f"abandoned: the nightly was stopped and this sync had not ended "
                            f"{late:.0f}s later; a sync is all or nothing, so the portal keeps "
                            f"the dossier as it was"))
            busy = [w for w in workers if w.key is not None]
            ready = set(wait_for([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                 timeout=_POLL))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                reply = _receive(worker)
                key, since = worker.key, worker.since
                if reply is None:  # gone without a word
                    _retire(worker)
                    yield abandoned(key, since, (
                        f"its worker process died ({_how(worker.process.exitcode)}) before it "
                        f"reported; a sync is all or nothing, so the portal shows the dossier "
                        f"whole, as it was before or after this sync"))
                    continue
                worker.key = None
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


@contextmanager
def stop_on_signals(stop: threading.Event,
                    on_second: Callable[[str], None]) -> Iterator[list[str]]:
    """SIGTERM or SIGINT sets `stop`; a second one calls `on_second` with its name (it may
    raise). Yields the names of the signals that stopped it. Outside the main thread
    nothing is installed: only the main thread may set handlers, so the caller owns them."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handle(signum, _frame) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            on_second(name)
            return
        received.append(name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def now() -> str:
    """The time a task was handed out, as the runs record times."""
    return datetime.now().isoformat(timespec="milliseconds")


# --- the parent's side ----------------------------------------------------------------------
def _overdue(worker: _Worker, committing, late: float) -> bool:
    return late > COMMIT_GRACE or (late > STOP_GRACE and not committing[worker.index])


def _wind_down(workers: list[_Worker], committing, since: float, hurry: bool) -> None:
    """Tell every worker to end; kill those not gone within the grace (all at once if `hurry`)."""
    try:
        for worker in workers:
            if worker.process.exitcode is None:
                try:
                    worker.conn.send(None)  # read after its running task, if any
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
    worker.key = None


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


# --- flags ------------------------------------------------------------------------------------
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
    """Progress hook: tells the parent while this worker's task commits (it may finish)."""

    def __init__(self, flags, index: int) -> None:
        self._flags, self._index = flags, index

    def __call__(self, event: Progress) -> None:
        self._flags[self._index] = event.phase == "commit"

    def clear(self) -> None:
        self._flags[self._index] = False


# --- the worker's side ----------------------------------------------------------------------
def _worker_main(index: int, conn: Connection, inherited: list[Connection],
                 lifeline: tuple[int, int], relay: tuple[int, int], start: Start,
                 run: Callable[[str, object], object], halt: _SharedFlag, committing,
                 parent: int) -> None:
    """A worker process: the tasks its parent hands it, one at a time, until told to end."""
    _stdio_to(relay)
    _die_with_parent(parent, lifeline)
    for other in inherited:  # the parent's ends of the pipes to the workers forked before
        other.close()
    cancel = _Flag()

    def cancel_running(_signum, _frame) -> None:
        cancel.set()  # this worker's running task only (the monitor's cancel, Ctrl-C)

    signal.signal(signal.SIGTERM, cancel_running)
    signal.signal(signal.SIGINT, cancel_running)
    progress = _CommitFlag(committing, index)
    start(_AnyOf(halt, cancel), progress)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        cancel.clear()
        key, payload = task
        try:
            outcome = ("done", run(key, payload))
        except Exception as exc:  # raised again in the parent, as in one process
            log.exception("%s: the nightly's worker failed", key)
            outcome = ("raise", _portable(exc, key))
        finally:
            progress.clear()  # done committing, whatever happened
        conn.send(outcome)


def _portable(exc: Exception, key: str) -> Exception:
    """The exception itself if it survives the pipe to the parent, else its words."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # unpicklable attributes, or an __init__ that unpickling cannot call
        return DossyncError(f"{key}: {type(exc).__name__}: {exc}")
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
