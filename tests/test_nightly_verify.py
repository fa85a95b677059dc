"""`nightly --verify`: a self-healing nightly instead of a blind periodic full reload."""
from __future__ import annotations

import re

from conftest import (assert_portal_equals_ledger, cli, cli_json, codes, portal_trial_balance)
from dossync.core import portal
from dossync.core.home import Home
from dossync.core.monitor import monitor_rows


def _ledger(home, code: str, *args: str) -> str:
    done = cli(home, "ledger", code, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_verify_repairs_a_closed_period_edit_and_flags_a_restored_backup(demo_home):
    edited, restored, untouched = codes(demo_home)
    for code in (edited, restored, untouched):
        assert cli(demo_home, "dossier", "set", code, "--nightly").returncode == 0
    period = re.search(r"closed period (\d{4}-\d{2})",
                       _ledger(demo_home, edited, "edit-closed-period")).group(1)
    _ledger(demo_home, restored, "snapshot", "monday")
    _ledger(demo_home, restored, "new-bookings", "6")
    assert cli(demo_home, "sync", restored).returncode == 0
    _ledger(demo_home, restored, "restore-backup", "monday")
    untouched_before = portal_trial_balance(demo_home, untouched)
    runs_before = {c: len(portal.runs(demo_home / "portal.duckdb", c)) for c in codes(demo_home)}

    status, doc = cli_json(demo_home, "nightly", "--verify")
    # the restored dossier's simple sync is refused (the ledger went back in time): a failure
    assert status == 4, doc
    verified = {v["dossier"]: v for v in doc["verified"]}
    assert set(verified) == {edited, restored, untouched}

    # 1. the silent edit: repaired at once by reloading that period only
    v = verified[edited]
    assert v["before"] == "full_sync" and v["segments"] == [
        {"fiscal_year": period[:4], "period": period}]
    assert v["repaired"] is True and v["verdict"] == "in_sync", v
    assert v["action_required"] is False and v["error"] is None
    assert v["repair"]["kind"] == "repair" and v["repair"]["status"] == "succeeded"
    full_rows = cli_json(demo_home, "reconcile", edited)
    assert full_rows[0] == 0 and full_rows[1]["verdict"] == "in_sync"
    assert v["repair"]["rows"]["read"] < full_rows[1]["full_sync_rows"] / 5
    assert_portal_equals_ledger(demo_home, edited)

    # 2. the restored backup: only a full sync is safe; left to staff, with the reason
    v = verified[restored]
    assert v["verdict"] == "full_sync" and v["repaired"] is False and v["repair"] is None
    assert v["action_required"] is True
    assert any("back in time" in r for r in v["reasons"])
    rows = {r["code"]: r for r in monitor_rows(Home(demo_home))}
    assert rows[restored]["state"] == "action_required"
    assert "back in time" in rows[restored]["reason"]
    states = {r["code"]: r["state"] for r in cli_json(demo_home, "status")[1]}
    assert states == {edited: "ok", restored: "action_required", untouched: "ok"}

    # 3. the rest untouched: one simple sync, figures unchanged, in sync
    v = verified[untouched]
    assert v["verdict"] == "in_sync" and v["repaired"] is False and v["repair"] is None
    assert portal_trial_balance(demo_home, untouched) == untouched_before
    assert len(portal.runs(demo_home / "portal.duckdb", untouched)) == runs_before[untouched] + 1
    assert cli(demo_home, "reconcile", untouched).returncode == 0

    # staff runs the full sync; the next verified nightly finds everything in order
    assert cli(demo_home, "sync", restored, "--full").returncode == 0
    status, doc = cli_json(demo_home, "nightly", "--verify")
    assert status == 0, doc
    assert {v["dossier"]: v["verdict"] for v in doc["verified"]} == {
        edited: "in_sync", restored: "in_sync", untouched: "in_sync"}
    assert all(r["state"] == "ok" for r in cli_json(demo_home, "status")[1])


def test_verify_from_dossync_toml_and_only_when_asked(demo_home):
    first, second, third = codes(demo_home)
    for code in (first, second):
        assert cli(demo_home, "dossier", "set", code, "--nightly").returncode == 0
    _ledger(demo_home, first, "new-bookings", "4")

    status, doc = cli_json(demo_home, "nightly")  # verify is off by default
    assert status == 0 and doc["verified"] == []

    (demo_home / "dossync.toml").write_text("[nightly]\nverify = true\n")
    _ledger(demo_home, second, "new-bookings", "4")
    status, doc = cli_json(demo_home, "nightly")
    assert status == 0, doc
    assert [r["dossier"] for r in doc["runs"]] == [first, second]
    assert [(v["dossier"], v["verdict"], v["repaired"]) for v in doc["verified"]] == [
        (first, "in_sync", False), (second, "in_sync", False)]
    assert doc["runs"][1]["rows"]["inserted"] > 0
