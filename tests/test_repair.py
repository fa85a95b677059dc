"""`sync --repair`: reload only the segments reconcile flags, atomically."""
from __future__ import annotations

import pytest

from conftest import assert_portal_equals_ledger, cli, cli_json, codes, portal_trial_balance
from dossync.core.home import Home
from dossync.core.reconcile import reconcile
from dossync.core.sync import sync_dossier


@pytest.mark.parametrize("event", ["edit-closed-period", "restructure-fiscal-year"])
def test_repair_after_an_untracked_edit(demo_home, event):
    code = codes(demo_home)[0]
    other = codes(demo_home)[1]
    untouched = portal_trial_balance(demo_home, other)
    assert cli(demo_home, "ledger", code, event).returncode == 0
    before = reconcile(Home(demo_home), code)
    assert before.verdict == "full_sync" and before.repairable

    status, full = cli_json(demo_home, "sync", other, "--full")  # a full sync's read, for scale
    status, run = cli_json(demo_home, "sync", code, "--repair")
    assert status == 0, run
    assert run["kind"] == "repair" and run["status"] == "succeeded"
    periods = {s["period"] for s in before.segments}
    assert any(all(p in w for p in periods) for w in run["warnings"])
    assert reconcile(Home(demo_home), code).verdict == "in_sync"
    assert_portal_equals_ledger(demo_home, code)
    assert portal_trial_balance(demo_home, other) == untouched
    # a period or four of a three-year ledger, not the whole history
    assert run["rows"]["read"] < full["rows"]["read"] / 5


def test_repair_refuses_what_only_a_full_sync_can_fix(demo_home):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "snapshot", "friday")
    cli(demo_home, "ledger", code, "new-bookings", "6")
    assert cli_json(demo_home, "sync", code)[0] == 0
    cli(demo_home, "ledger", code, "restore-backup", "friday")
    before = portal_trial_balance(demo_home, code)
    status, run = cli_json(demo_home, "sync", code, "--repair")
    assert status == 1 and run["status"] == "failed"
    assert "full sync" in run["error"] or "--full" in run["error"]
    assert portal_trial_balance(demo_home, code) == before
    rows = {r["code"]: r["state"] for r in cli_json(demo_home, "status")[1]}
    assert rows[code] == "action_required"
    assert cli_json(demo_home, "sync", code, "--full")[0] == 0
    assert reconcile(Home(demo_home), code).verdict == "in_sync"


def test_repair_with_nothing_to_repair_changes_nothing(demo_home):
    code = codes(demo_home)[0]
    before = portal_trial_balance(demo_home, code)
    status, run = cli_json(demo_home, "sync", code, "--repair")
    assert status == 0 and run["rows"]["read"] == 0
    assert any("nothing to repair" in w for w in run["warnings"])
    assert portal_trial_balance(demo_home, code) == before


def test_repair_killed_at_commit_changes_nothing(demo_home):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "edit-closed-period")
    before = portal_trial_balance(demo_home, code)
    done = cli(demo_home, "sync", code, "--repair", env={"DOSSYNC_FAILPOINT": "commit"})
    assert done.returncode == -9
    assert portal_trial_balance(demo_home, code) == before
    assert cli_json(demo_home, "sync", code, "--repair")[0] == 0
    assert_portal_equals_ledger(demo_home, code)


# --- a reconcile's verdict serves the repair that follows, while it holds --------------------
def _count_reconciles(monkeypatch) -> list[str]:
    """Record every fresh reconcile the repair makes (a reused verdict makes none)."""
    from dossync.core import reconcile as reconcile_module

    calls: list[str] = []
    real = reconcile_module.reconcile

    def counted(home, code):
        calls.append(code)
        return real(home, code)

    monkeypatch.setattr(reconcile_module, "reconcile", counted)
    return calls


def test_repair_reuses_the_verdict_of_the_reconcile_just_before(demo_home, monkeypatch):
    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "edit-closed-period").returncode == 0
    verdict = reconcile(Home(demo_home), code)
    assert verdict.verdict == "full_sync" and verdict.stamp is not None
    calls = _count_reconciles(monkeypatch)
    run = sync_dossier(Home(demo_home), code, "repair")
    assert run.status == "succeeded", run.error
    assert calls == []  # the kept verdict was still true
    # only the rows the edit changed were rewritten, not the whole period
    assert 0 < run.rows.updated + run.rows.inserted + run.rows.deleted <= 10
    assert run.rows.read >= sum(1 for _ in verdict.segments)
    assert reconcile(Home(demo_home), code).verdict == "in_sync"
    assert_portal_equals_ledger(demo_home, code)


@pytest.mark.parametrize("meanwhile", ["ledger written", "portal synced"])
def test_a_kept_verdict_is_not_trusted_after_a_change(demo_home, monkeypatch, meanwhile):
    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "edit-closed-period").returncode == 0
    assert reconcile(Home(demo_home), code).verdict == "full_sync"
    if meanwhile == "ledger written":
        assert cli(demo_home, "ledger", code, "edit-closed-period").returncode == 0
    else:
        assert sync_dossier(Home(demo_home), code, "simple").status == "succeeded"
    calls = _count_reconciles(monkeypatch)
    run = sync_dossier(Home(demo_home), code, "repair")
    assert run.status == "succeeded", run.error
    assert calls == [code]  # looked again
    assert reconcile(Home(demo_home), code).verdict == "in_sync"
    assert_portal_equals_ledger(demo_home, code)


@pytest.mark.parametrize("damage", ["not json", "not an object", "stamp of the wrong type",
                                    "stamp holds, fields missing"])
def test_a_damaged_kept_verdict_only_costs_a_fresh_look(demo_home, monkeypatch, damage):
    import json

    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "edit-closed-period").returncode == 0
    verdict = reconcile(Home(demo_home), code)
    kept = Home(demo_home).verdicts / f"{code}.json"
    stamp = json.loads(kept.read_text())["stamp"]
    kept.write_text({"not json": "not json {", "not an object": "[]",
                     "stamp of the wrong type": '{"stamp": 1}',
                     "stamp holds, fields missing": json.dumps({"stamp": stamp,
                                                                "verdict": "full_sync"})}[damage])
    calls = _count_reconciles(monkeypatch)
    run = sync_dossier(Home(demo_home), code, "repair")
    assert run.status == "succeeded", run.error
    assert calls == [code]
    assert verdict.segments and reconcile(Home(demo_home), code).verdict == "in_sync"
