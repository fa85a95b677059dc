"""A stopped or killed nightly leaves nothing behind (issue 10, item 4).

`nightly --jobs 3` syncs its dossiers in worker processes. SIGTERM to the
nightly, or Ctrl-C (SIGINT to its process group), stops the workers and the
nightly exits 1 saying so; kill -9 of the nightly takes its workers with it.
Either way no process is left within seconds, the caller's stdout and stderr
reach end of file, no dossier stays locked, every dossier shows its old sync
or its new one (never a mix), and the next nightly runs fine.

The syncs are held up the way a package holds them: every ledger is locked
(an exclusive SQLite transaction: the package is writing), so each worker
has taken its dossier's lock and waits for the ledger (up to 30 s) when the
nightly is stopped. That is the hard case: a worker deep in a driver call
cannot look at a stop flag.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import (DOSSYNC, ROOT, assert_portal_equals_ledger, cli, cli_json, codes,
                      ledger_path, ledger_trial_balance, portal_trial_balance)
from dossync.core import demo_package, portal
from dossync.core.home import Home
from dossync.core.locks import DossierLock
from dossync.core.monitor import cancel_sync

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                 reason="finds the nightly's processes in /proc (Linux)")]

JOBS = 3
GONE_WITHIN = 10.0  # seconds from the signal until no process of the nightly is left
# The nightly with Linux's parent-death signal switched off: its workers must
# still notice a killed parent, by the pipe they watch (systems without prctl).
WITHOUT_PRCTL = [sys.executable, "-c",
                 "import sys, dossync.core.workers as w; w._set_death_signal = lambda: None; "
                 "from dossync.core.cli import main; sys.exit(main(sys.argv[1:]))"]


def nightly_firm(home: Path) -> dict[str, dict]:
    """Four nightly dossiers (one more than the jobs), each with new bookings to sync;
    returns each one's trial balance in the portal before the nightly."""
    extra = home / "ledgers" / "EXTRA.sqlite"
    shutil.copy(ledger_path(home, codes(home)[0]), extra)
    done = cli(home, "dossier", "add", "EXTRA", "--package", "demo", "--source", str(extra),
               "--name", "Extra BV")
    assert done.returncode == 0, done.stderr
    for code in codes(home):
        portal.update_dossier(home / "portal.duckdb", code, nightly=True)
        demo_package.apply_event(ledger_path(home, code), "new-bookings", ["8"])
    before = {code: portal_trial_balance(home, code) for code in codes(home)}
    assert all(before[code] != ledger_trial_balance(home, code) for code in codes(home))
    return before


@contextmanager
def ledgers_locked(home: Path):
    """The package writing to every ledger: an exclusive transaction holds each one."""
    held = []
    try:
        for code in codes(home):
            con = sqlite3.connect(ledger_path(home, code), isolation_level=None)
            held.append(con)
            con.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        for con in held:
            con.close()  # the empty transaction rolls back


def start(home: Path, *args: str, command: list[str] = DOSSYNC) -> subprocess.Popen:
    """The nightly in a session of its own: its workers keep that session when orphaned."""
    return subprocess.Popen([*command, "--home", str(home), "nightly", "--jobs", str(JOBS),
                             "--json", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def processes(nightly: subprocess.Popen, home: Path) -> set[int]:
    """Live processes of the nightly: in its session, or named for its home (zombies are gone)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        state, _ppid, _group, session = stat.rsplit(")", 1)[1].split()[:4]
        if state in "ZX":
            continue
        if int(session) == nightly.pid or (str(home).encode() in cmdline
                                           and b"nightly" in cmdline):
            found.add(int(entry.name))
    return found


def wait_for_workers(home: Path, nightly: subprocess.Popen) -> dict[str, int]:
    """Until JOBS worker processes each hold a dossier's lock; returns {dossier: worker pid}."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert nightly.poll() is None, f"the nightly ended early: {nightly.communicate()}"
        workers = processes(nightly, home) - {nightly.pid}
        holders = {}
        for code in codes(home):
            try:
                holder = json.loads((home / "locks" / f"{code}.lock").read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            if holder.get("pid") in workers and DossierLock(home / "locks", code).is_held():
                holders[code] = holder["pid"]
        if len(workers) == JOBS and sorted(holders.values()) == sorted(workers):
            return holders
        time.sleep(0.05)
    raise AssertionError(f"the nightly never had {JOBS} workers each syncing a dossier")


def callers_pipes_held(nightly: subprocess.Popen, workers) -> set[str]:
    """The caller's stdout/stderr pipes that a worker holds too (as stdout or stderr)."""
    def pipes(pid: int) -> set[str]:
        return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (1, 2)}

    return pipes(nightly.pid) & set().union(*(pipes(pid) for pid in workers))


def end(home: Path, nightly: subprocess.Popen, signalled: float) -> tuple[str, str]:
    """Read the nightly's stdout and stderr to the end; assert nothing of it is left."""
    try:
        out, err = nightly.communicate(timeout=GONE_WITHIN)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the caller's stdout/stderr still open {GONE_WITHIN:.0f}s after "
                             f"the signal: held by {processes(nightly, home)}") from None
    while processes(nightly, home) and time.monotonic() - signalled < GONE_WITHIN:
        time.sleep(0.05)
    assert not processes(nightly, home), "processes of the nightly left behind"
    return out, err


def kill_leftovers(nightly: subprocess.Popen, home: Path) -> None:
    """Whatever happened, leave no process behind for the next test."""
    for pid in processes(nightly, home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if nightly.poll() is None:
        nightly.kill()
    nightly.communicate()


def assert_portal_whole_and_next_nightly_fine(home: Path, before: dict[str, dict]) -> None:
    for code in codes(home):
        assert not DossierLock(home / "locks", code).is_held(), f"{code} still locked"
        assert portal_trial_balance(home, code) in (before[code],
                                                    ledger_trial_balance(home, code)), code
    status, rows = cli_json(home, "status")
    assert status == 0 and all(r["state"] != "syncing" for r in rows), rows
    status, docs = cli_json(home, "reconcile", "--all")
    assert status in (0, 5) and len(docs) == len(codes(home)), docs
    assert all(d["verdict"] in ("in_sync", "simple_sync") for d in docs), docs  # no half sync
    status, doc = cli_json(home, "nightly", "--jobs", str(JOBS))
    assert status == 0 and doc["succeeded"] == len(codes(home)), doc
    for code in codes(home):
        assert_portal_equals_ledger(home, code)


@pytest.mark.parametrize("how", ["SIGTERM to the nightly", "Ctrl-C to its process group"])
def test_a_stopped_nightly_stops_its_workers_and_exits_1(demo_home, how):
    before = nightly_firm(demo_home)
    with ledgers_locked(demo_home):
        nightly = start(demo_home)
        try:
            busy = wait_for_workers(demo_home, nightly)
            shared = callers_pipes_held(nightly, busy.values())
            signalled = time.monotonic()
            if how.startswith("SIGTERM"):
                nightly.send_signal(signal.SIGTERM)
            else:
                os.killpg(nightly.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
            out, err = end(demo_home, nightly, signalled)
        finally:
            kill_leftovers(nightly, demo_home)
    name = "SIGTERM" if how.startswith("SIGTERM") else "SIGINT"
    assert nightly.returncode == 1, err
    assert f"nightly stopped ({name})" in err
    doc = json.loads(out)
    assert doc["stopped"] == name and doc["succeeded"] == 0
    # the syncs waiting for their ledgers were abandoned, nothing else started
    assert sorted(r["dossier"] for r in doc["runs"]) == sorted(busy)
    assert all(r["status"] == "failed" for r in doc["runs"])
    assert [s["dossier"] for s in doc["skipped"]] == sorted(set(codes(demo_home)) - set(busy))
    assert not shared, "a worker held the caller's stdout or stderr"
    assert_portal_whole_and_next_nightly_fine(demo_home, before)


@pytest.mark.parametrize("command", [DOSSYNC, WITHOUT_PRCTL], ids=["prctl", "pipe"])
def test_a_nightly_killed_with_kill_9_takes_its_workers_along(demo_home, command):
    before = nightly_firm(demo_home)
    with ledgers_locked(demo_home):
        nightly = start(demo_home, command=command)
        try:
            busy = wait_for_workers(demo_home, nightly)
            shared = callers_pipes_held(nightly, busy.values())
            signalled = time.monotonic()
            nightly.kill()
            end(demo_home, nightly, signalled)
        finally:
            kill_leftovers(nightly, demo_home)
    assert nightly.returncode == -signal.SIGKILL
    assert not shared, "a worker held the caller's stdout or stderr"
    assert_portal_whole_and_next_nightly_fine(demo_home, before)


def test_sigterm_to_one_worker_cancels_that_dossier_only(demo_home):
    """The monitor's cancel signals the process holding the dossier's lock: a worker."""
    nightly_firm(demo_home)
    with ledgers_locked(demo_home):
        nightly = start(demo_home)
        try:
            busy = wait_for_workers(demo_home, nightly)
            cancelled = sorted(busy)[0]
            assert cancel_sync(Home(demo_home), cancelled)
        except BaseException:
            kill_leftovers(nightly, demo_home)
            raise
    try:  # the ledgers are free: the others go on
        out, err = nightly.communicate(timeout=120)
    finally:
        kill_leftovers(nightly, demo_home)
    assert nightly.returncode == 4, err  # PARTIAL
    runs = {r["dossier"]: r for r in json.loads(out)["runs"]}
    assert set(runs) == set(codes(demo_home))
    assert runs[cancelled]["status"] == "failed" and "cancelled" in runs[cancelled]["error"]
    assert all(r["status"] == "succeeded" for code, r in runs.items() if code != cancelled)
    assert portal_trial_balance(demo_home, cancelled) != ledger_trial_balance(demo_home, cancelled)
    status, doc = cli_json(demo_home, "nightly", "--jobs", str(JOBS))
    assert status == 0, doc
    for code in codes(demo_home):
        assert_portal_equals_ledger(demo_home, code)
