"""Concurrent syncs: one process per dossier at a time, different dossiers side by side.

DESIGN.md, Invariants: "A dossier is synced by at most one process at a
time; a second request is refused with a clear message naming who holds
it." CONTRACT.md: exit 3 (BUSY) "another process is syncing that dossier;
the message names it"; `status` shows a running dossier as `syncing`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import (DOSSYNC, ROOT, assert_portal_equals_ledger, cli, cli_json, codes, ledger_path,
                      throttle)
from dossync.core import demo_package, portal
from dossync.core.home import Home
from dossync.core.locks import DossierLock
from dossync.core.model import DossierBusy
from dossync.core.sync import sync_dossier

LOCK_ERRORS = ("database is locked", "could not set lock", "conflicting lock", "is busy")


def start(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*DOSSYNC, "--home", str(home), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_holding(home: Path, code: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until `proc` holds the dossier's lock.

    Reads the holder the lock file names (no flock taken, so the waiting
    cannot itself disturb the sync), then confirms with is_held().
    """
    lock_file = home / "locks" / f"{code}.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sync ended before it was seen running: {proc.communicate()}"
        try:
            holder = json.loads(lock_file.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        if holder.get("pid") == proc.pid:
            assert DossierLock(home / "locks", code).is_held()
            return
        time.sleep(0.01)
    raise AssertionError(f"sync pid {proc.pid} never took the lock of {code}")


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_second_sync_of_same_dossier_is_refused_busy_naming_the_holder(demo_home):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "new-bookings", "10")
    throttle(demo_home, code, seconds=6.0)  # still running on a loaded machine
    runs_before = len(portal.runs(demo_home / "portal.duckdb", code, limit=1000))

    first = start(demo_home, "sync", code, "--full", "--json")
    try:
        wait_until_holding(demo_home, code, first)
        second = cli(demo_home, "sync", code)
        assert second.returncode == 3, (second.returncode, second.stderr)
        assert "pid" in second.stderr and str(first.pid) in second.stderr, second.stderr
        assert first.poll() is None  # refused while the holder runs: it did not wait its turn

        second_full = cli(demo_home, "sync", code, "--full", "--json")
        assert second_full.returncode == 3, (second_full.stdout, second_full.stderr,
                                             first.poll())
        doc = json.loads(second_full.stdout)  # exactly one JSON document
        assert isinstance(doc, dict) and doc["error"]
        assert str(first.pid) in doc["error"]
        assert first.poll() is None, "the first sync should still be running"
    finally:
        status, out, err = finish(first)
    assert status == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded" and run["kind"] == "full"
    assert_portal_equals_ledger(demo_home, code)
    # the refused requests changed nothing: only the first sync's run was added
    assert len(portal.runs(demo_home / "portal.duckdb", code, limit=1000)) == runs_before + 1
    # and the dossier is free again
    assert cli(demo_home, "sync", code).returncode == 0


def test_syncs_of_different_dossiers_run_side_by_side(demo_home):
    all_codes = codes(demo_home)
    assert len(all_codes) == 3
    for round_no in range(4):
        for code in all_codes:
            demo_package.apply_event(ledger_path(demo_home, code), "new-bookings", ["6"])
            if round_no % 2:
                demo_package.apply_event(ledger_path(demo_home, code), "delete-bookings", ["2"])
        procs = {code: start(demo_home, "sync", code,
                             *(["--full"] if (i + round_no) % 2 == 0 else []), "--json")
                 for i, code in enumerate(all_codes)}
        results = {code: finish(proc) for code, proc in procs.items()}
        for code, (status, out, err) in results.items():
            assert status == 0, (round_no, code, err)
            assert json.loads(out)["status"] == "succeeded"
            assert not [e for e in LOCK_ERRORS if e in err.lower()], (round_no, code, err)
        for code in all_codes:
            assert_portal_equals_ledger(demo_home, code)


def test_lock_of_a_killed_sync_is_taken_over_at_once(demo_home):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "new-bookings", "10")
    throttle(demo_home, code)

    first = start(demo_home, "sync", code, "--full")
    wait_until_holding(demo_home, code, first)
    os.kill(first.pid, signal.SIGKILL)
    assert finish(first)[0] == -signal.SIGKILL
    # the dead holder's name is still written in the lock file, but nobody holds it
    assert str(first.pid) in (demo_home / "locks" / f"{code}.lock").read_text()
    assert not DossierLock(demo_home / "locks", code).is_held()

    done = cli(demo_home, "sync", code)  # no stale-lock wait: the kernel freed the lock
    assert done.returncode == 0, done.stderr
    assert_portal_equals_ledger(demo_home, code)
    status, rows = cli_json(demo_home, "status")
    assert status == 0
    assert {r["code"]: r["state"] for r in rows}[code] == "ok"


def test_status_shows_a_running_sync_as_syncing(demo_home):
    code, *others = codes(demo_home)
    throttle(demo_home, code)
    first = start(demo_home, "sync", code, "--full", "--json")
    try:
        wait_until_holding(demo_home, code, first)
        status, rows = cli_json(demo_home, "status")
        assert first.poll() is None, "the sync ended before status looked: not a real overlap"
    finally:
        sync_status, _, err = finish(first)
    assert status == 0
    states = {r["code"]: r["state"] for r in rows}
    assert states[code] == "syncing"
    assert all(states[o] == "ok" for o in others), states
    assert sync_status == 0, err
    status, rows = cli_json(demo_home, "status")
    assert {r["code"]: r["state"] for r in rows}[code] == "ok"


_POLL_LOCK = """
import sys, time
from pathlib import Path
from dossync.core.locks import DossierLock
lock = DossierLock(Path(sys.argv[1]), sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    lock.is_held()
"""


def test_looking_at_the_lock_never_makes_a_sync_busy(demo_home):
    """Regression: DossierLock.is_held() used to probe the lock by taking a
    shared flock for a moment. `dossync status` (and the
    monitor) calls it for every dossier; a sync that takes its exclusive lock
    in that moment is refused as BUSY ("another process") although nobody is
    syncing. Here a process probes the lock in a loop (what status refreshes
    do, just often) while this process repeatedly takes the lock the way
    sync_dossier does (then one real sync): none may be refused.
    """
    code = codes(demo_home)[0]
    locks = demo_home / "locks"
    locks.mkdir(exist_ok=True)
    poller = subprocess.Popen([sys.executable, "-c", _POLL_LOCK, str(locks), code], cwd=ROOT)
    refused = []
    attempts = 300
    try:
        time.sleep(0.5)  # let the poller start
        assert poller.poll() is None
        for _ in range(attempts):
            try:
                DossierLock(locks, code).acquire(purpose="simple sync").release()
            except DossierBusy as exc:
                refused.append(str(exc))
            time.sleep(0.002)
        result = sync_dossier(Home(demo_home), code, "simple")
        assert result.status == "succeeded", result.error
    finally:
        poller.kill()
        poller.wait()
    assert not refused, (f"{len(refused)} of {attempts} lock attempts refused as busy while "
                         f"nobody synced, only looked: {refused[0]}")
