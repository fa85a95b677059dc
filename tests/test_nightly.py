"""Nightly runs and the scheduler service."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta

from conftest import (DOSSYNC, ROOT, assert_portal_equals_ledger, cli, cli_json, codes,
                      ledger_path, ledger_trial_balance, portal_trial_balance)
from dossync.core import portal
from dossync.core.locks import DossierLock


def _all_nightly(home) -> list[str]:
    for code in codes(home):
        assert cli(home, "dossier", "set", code, "--nightly").returncode == 0
    return codes(home)


def test_one_missing_ledger_never_stops_the_others(demo_home):
    first, second, third = _all_nightly(demo_home)
    cli(demo_home, "dossier", "set", second, "--email", "zaak@klant.example")
    # a manual sync set an updated-until date earlier; the nightly must keep it
    assert cli_json(demo_home, "sync", first, "--until", "2026-10-20")[0] == 0
    for code in (first, third):
        cli(demo_home, "ledger", code, "new-bookings", "5")
    ledger = ledger_path(demo_home, second)
    ledger.rename(ledger.with_suffix(".missing"))

    status, doc = cli_json(demo_home, "nightly", "--jobs", "2")
    assert status == 4  # PARTIAL
    by_code = {r["dossier"]: r for r in doc["runs"]}
    assert doc["succeeded"] == 2 and doc["failed"] == 1
    assert by_code[second]["status"] == "failed" and str(ledger) in by_code[second]["error"]
    for code in (first, third):
        assert by_code[code]["status"] == "succeeded" and by_code[code]["kind"] == "simple"
        assert by_code[code]["rows"]["inserted"] > 0
    assert all(r["email"] == "skipped" for r in doc["runs"])
    rows = {r["code"]: r for r in cli_json(demo_home, "status")[1]}
    assert rows[first]["updated_until"] == "2026-10-20"
    assert rows[third]["updated_until"] is None
    assert rows[second]["state"] == "failed"
    assert cli_json(demo_home, "outbox")[1]["emails"] == []
    log = (demo_home / "logs" / "nightly.log").read_text()
    assert f"{second} failed" in log and f"{first} ok" in log


def test_only_dossiers_with_nightly_on(demo_home):
    first, second, third = codes(demo_home)
    for code, flag in ((first, "--nightly"), (second, "--no-nightly"), (third, "--no-nightly")):
        cli(demo_home, "dossier", "set", code, flag)
    status, doc = cli_json(demo_home, "nightly")
    assert status == 0
    assert [r["dossier"] for r in doc["runs"]] == [first]


def test_a_dossier_being_synced_is_skipped_and_reported(demo_home):
    first, second, third = _all_nightly(demo_home)
    lock = DossierLock(demo_home / "locks", second).acquire(purpose="test sync")
    try:
        status, doc = cli_json(demo_home, "nightly")
    finally:
        lock.release()
    assert status == 0
    assert [s["dossier"] for s in doc["skipped"]] == [second]
    assert "pid" in doc["skipped"][0]["reason"]
    assert sorted(r["dossier"] for r in doc["runs"]) == sorted([first, third])


def _schedule(home, seconds_ahead: int) -> datetime:
    at = datetime.now() + timedelta(seconds=seconds_ahead)
    (home / "dossync.toml").write_text(f'[nightly]\ntime = "{at:%H:%M:%S}"\njobs = 2\n')
    return at


def _runs(home) -> list[dict]:
    return portal.runs(home / "portal.duckdb", limit=1000)


def test_scheduler_runs_the_nightly_and_stops_on_sigterm(demo_home):
    nightly = _all_nightly(demo_home)
    before = len(_runs(demo_home))
    at = _schedule(demo_home, 3)
    service = subprocess.Popen([*DOSSYNC, "--home", str(demo_home), "scheduler"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_runs(demo_home)) < before + len(nightly):
            time.sleep(0.5)
        runs = _runs(demo_home)[: len(_runs(demo_home)) - before]
        assert sorted(r["dossier"] for r in runs) == sorted(nightly)
        assert all(r["kind"] == "simple" and r["status"] == "succeeded" for r in runs)
        assert all(r["started_at"] >= at.strftime("%Y-%m-%dT%H:%M:%S") for r in runs)
        assert service.poll() is None  # still serving, waiting for tomorrow
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=20) == 0
    finally:
        if service.poll() is None:
            service.kill()
    assert "next nightly at" in service.stderr.read()


def test_sigterm_during_the_nightly_lets_commits_finish(demo_home):
    """Stopped mid-run: every dossier is either synced completely or not at all."""
    nightly = _all_nightly(demo_home)
    for code in nightly:  # work for every sync
        assert cli(demo_home, "ledger", code, "new-bookings", "3").returncode == 0
    before = {code: portal_trial_balance(demo_home, code) for code in nightly}
    busy = nightly[0]
    # The package is writing to the first ledger: its sync waits inside the read,
    # holding the dossier, so the signal surely comes while the nightly runs.
    package = sqlite3.connect(ledger_path(demo_home, busy), isolation_level=None, timeout=5)
    package.execute("BEGIN EXCLUSIVE")
    _schedule(demo_home, 2)
    service = subprocess.Popen([*DOSSYNC, "--home", str(demo_home), "scheduler"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not DossierLock(demo_home / "locks", busy).is_held():
            assert time.monotonic() < deadline, "the nightly never started its sync of " + busy
            assert service.poll() is None, service.stderr.read()
            time.sleep(0.1)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0
    finally:
        package.execute("ROLLBACK")
        package.close()
        if service.poll() is None:
            service.kill()
    for code in nightly:
        assert not DossierLock(demo_home / "locks", code).is_held()
        synced = portal_trial_balance(demo_home, code)
        assert synced in (before[code], ledger_trial_balance(demo_home, code)), code
        assert cli_json(demo_home, "sync", code)[0] == 0
        assert_portal_equals_ledger(demo_home, code)


