"""Simple and full syncs against the demo package: the portal equals the ledger."""
from __future__ import annotations

import pytest

import sqlite3
import time


from conftest import (YES_EVENTS, portal_of, portal_sql, assert_portal_equals_ledger, build_demo, cli, cli_json, codes,
                      ledger_path, ledger_trial_balance, portal_trial_balance)
from dossync.core import demo_package, portal
from dossync.core.cli import main


def test_demo_activates_every_dossier_equal_to_its_ledger(demo_home):
    status, rows = cli_json(demo_home, "status")
    assert status == 0
    assert len(rows) == 3
    for row in rows:
        assert row["state"] == "ok"
        assert row["last_sync"]["kind"] == "full"
        assert row["last_sync"]["status"] == "succeeded"
        assert row["active_period"] == "2026-10"
    for code in codes(demo_home):
        tb = ledger_trial_balance(demo_home, code)
        assert len(tb) > 10
        assert portal_trial_balance(demo_home, code) == tb
        # the CLI's JSON shows the same figures, as decimal strings
        status, doc = cli_json(demo_home, "report", code, "trial-balance")
        assert status == 0
        assert {r["account"] for r in doc} == set(tb)
        assert all(r["debit"].count(".") == 1 and len(r["debit"].split(".")[1]) == 2 for r in doc)


@pytest.mark.parametrize("event", YES_EVENTS, ids=lambda e: e[0])
def test_tracked_event_then_simple_sync_brings_portal_in_line(demo_home, event):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    if event[0] == "validate-proposals":  # proposals the package received, to be validated
        assert cli_json(demo_home, "propose", code, "--count", "3")[0] == 0
    before = ledger_trial_balance(demo_home, code)
    done = cli(demo_home, "ledger", code, *event)
    assert done.returncode == 0, done.stderr
    assert ledger_trial_balance(demo_home, code) != before, f"{event} changed nothing to sync"
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0, run
    assert run["status"] == "succeeded" and run["kind"] == "simple" and run["error"] is None
    assert_portal_equals_ledger(demo_home, code)
    total_lines = sum(1 for _ in _lines(ledger))
    # cost follows the change, not the ledger: a handful of documents, a few dozen rows
    assert run["rows"]["read"] < total_lines / 10


def _lines(ledger):
    import sqlite3

    with sqlite3.connect(ledger) as con:
        yield from con.execute("SELECT 1 FROM booking_lines")


def test_rows_read_grows_with_the_change_not_the_ledger(demo_home):
    small, large = codes(demo_home)[-1], codes(demo_home)[0]
    reads = {}
    for code in (small, large):
        for n in ("5", "50"):
            cli(demo_home, "ledger", code, "new-bookings", n)
            status, run = cli_json(demo_home, "sync", code)
            assert status == 0
            reads[code, n] = run["rows"]["read"]
    for code in (small, large):
        assert reads[code, "50"] > 4 * reads[code, "5"]
    # same change, ledgers of different size: about the same number of rows read
    assert reads[large, "50"] < 1.5 * reads[small, "50"]


def test_deletions_reach_the_portal(demo_home):
    code = codes(demo_home)[1]
    cli(demo_home, "ledger", code, "delete-bookings", "3")
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0
    assert run["rows"]["deleted"] >= 3
    assert_portal_equals_ledger(demo_home, code)


def test_restored_backup_is_detected_and_full_sync_repairs(demo_home):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "snapshot", "monday")
    cli(demo_home, "ledger", code, "new-bookings", "8")
    assert cli_json(demo_home, "sync", code)[0] == 0
    assert cli(demo_home, "ledger", code, "restore-backup", "monday").returncode == 0
    before = portal_trial_balance(demo_home, code)

    status, run = cli_json(demo_home, "sync", code)
    assert status == 1
    assert run["status"] == "failed"
    assert any("back in time" in w and "--full" in w for w in run["warnings"])
    assert portal_trial_balance(demo_home, code) == before  # nothing applied
    status, rows = cli_json(demo_home, "status")
    assert {r["code"]: r["state"] for r in rows}[code] == "action_required"

    status, run = cli_json(demo_home, "sync", code, "--full")
    assert status == 0 and run["kind"] == "full"
    assert_portal_equals_ledger(demo_home, code)
    assert {r["code"]: r["state"] for r in cli_json(demo_home, "status")[1]}[code] == "ok"


def test_restored_backup_that_moved_on_is_still_detected(demo_home):
    """The counter passed the portal's again, but hands the same versions to other content."""
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "snapshot", "before")
    cli(demo_home, "ledger", code, "delete-bookings", "2")
    cli(demo_home, "ledger", code, "new-bookings", "6")
    assert cli_json(demo_home, "sync", code)[0] == 0
    cli(demo_home, "ledger", code, "restore-backup", "before")
    cli(demo_home, "ledger", code, "new-bookings", "20")
    status, run = cli_json(demo_home, "sync", code)
    assert status == 1, run
    assert any("back in time" in w for w in run["warnings"])


def _restore_and_move_on(home, code: str, *, new: str = "45") -> dict:
    """The hostile tester's replay: a backup put back, then a day of work on it."""
    for event in (("snapshot", "monday"), ("new-bookings", "30")):
        assert cli(home, "ledger", code, *event).returncode == 0
    assert cli_json(home, "sync", code)[0] == 0
    for event in (("restore-backup", "monday"), ("delete-bookings", "12"), ("new-bookings", new)):
        assert cli(home, "ledger", code, *event).returncode == 0
    return portal_trial_balance(home, code)


def test_restored_backup_is_detected_however_far_the_ledger_moved_on(tmp_path_factory):
    """The hostile tester's firm (--lines 5000, seed 1; seeds 3 and 42 behave alike)."""
    home = build_demo(tmp_path_factory, "restored", 1, 5000, 1)
    code = codes(home)[0]
    before = _restore_and_move_on(home, code)
    status, run = cli_json(home, "sync", code)
    assert status == 1 and run["status"] == "failed", run
    assert any("back in time" in w and "--full" in w for w in run["warnings"]), run
    assert portal_trial_balance(home, code) == before  # nothing applied
    # A portal from before the package's history ids: the versions it saw decide.
    portal_sql(home, "UPDATE ledger_position SET history = NULL")
    status, run = cli_json(home, "sync", code)
    assert status == 1 and any("back in time" in w for w in run["warnings"]), run
    status, verdict = cli_json(home, "reconcile", code)
    assert status == 5 and verdict["verdict"] == "full_sync", verdict
    status, run = cli_json(home, "sync", code, "--full")
    assert status == 0, run
    assert_portal_equals_ledger(home, code)
    assert cli_json(home, "reconcile", code)[1]["verdict"] == "in_sync"
    assert cli_json(home, "sync", code)[0] == 0  # and simple syncs go on from there


def test_restored_backup_back_at_the_same_counter_is_detected(demo_home):
    """The cheap nightly path (the counter did not move) still asks the package's history."""
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    _restore_and_move_on(demo_home, code, new="5")
    seen = portal.sync_state(portal_of(demo_home), code).cursor
    with sqlite3.connect(ledger) as con:  # the restored ledger happens to reach the same counter
        con.execute("UPDATE meta SET value = ? WHERE key = 'change_counter'", (str(seen),))
    status, run = cli_json(demo_home, "sync", code)
    assert status == 1 and any("back in time" in w for w in run["warnings"]), run


def test_purged_deletion_log_is_detected(demo_home):
    code = codes(demo_home)[1]
    cli(demo_home, "ledger", code, "delete-bookings", "3")
    cli(demo_home, "ledger", code, "purge-deletion-log")
    status, run = cli_json(demo_home, "sync", code)
    assert status == 1
    assert any("deletion log" in w and "--full" in w for w in run["warnings"])
    status, run = cli_json(demo_home, "sync", code, "--full")
    assert status == 0
    assert_portal_equals_ledger(demo_home, code)


def test_purge_after_a_sync_is_harmless(demo_home):
    code = codes(demo_home)[1]
    cli(demo_home, "ledger", code, "delete-bookings", "3")
    assert cli_json(demo_home, "sync", code)[0] == 0
    cli(demo_home, "ledger", code, "purge-deletion-log")
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0, run
    assert_portal_equals_ledger(demo_home, code)


@pytest.mark.parametrize("event", ["edit-closed-period", "restructure-fiscal-year"])
def test_untracked_edits_need_a_full_sync(demo_home, event):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, event)
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0  # a simple sync cannot see these (that is what reconcile is for)
    status, run = cli_json(demo_home, "sync", code, "--full")
    assert status == 0
    assert_portal_equals_ledger(demo_home, code)


def test_sync_of_one_dossier_never_changes_another(demo_home):
    first, second = codes(demo_home)[:2]
    before = portal_trial_balance(demo_home, second)
    cli(demo_home, "ledger", first, "new-bookings", "10")
    assert cli_json(demo_home, "sync", first, "--full")[0] == 0
    assert cli_json(demo_home, "sync", first)[0] == 0
    assert portal_trial_balance(demo_home, second) == before


def test_demo_is_deterministic(tmp_path):
    a = demo_package.demo_companies(4, 2000, seed=3)
    b = demo_package.demo_companies(4, 2000, seed=3)
    assert a == b
    for name in ("x", "y"):
        demo_package.create_ledger(tmp_path / f"{name}.sqlite", a[0], seed=3)
    assert (demo_package.ledger_trial_balance(tmp_path / "x.sqlite")
            == demo_package.ledger_trial_balance(tmp_path / "y.sqlite"))


def test_a_deleted_id_handed_out_again_survives_the_lookback(tmp_path):
    """The package reuses the id of a deleted booking; re-reading the deletion later
    (lookback window) must not delete the new booking (found by the property test)."""
    home = tmp_path / "firm"
    assert cli(home, "demo", "--dossiers", "1", "--lines", "1500", "--seed", "5").returncode == 0
    code = codes(home)[0]
    ledger = ledger_path(home, code)
    import sqlite3

    cli(home, "ledger", code, "delete-bookings", "2")
    cli(home, "ledger", code, "book-vat-return")
    with sqlite3.connect(ledger) as con:  # the scenario: a deleted id is in use again
        deleted = {int(k) for (k,) in con.execute(
            "SELECT key FROM deletion_log WHERE stream = 'bookings'")}
        alive = {i for (i,) in con.execute("SELECT id FROM bookings")}
    assert deleted & alive
    assert cli_json(home, "sync", code)[0] == 0
    assert_portal_equals_ledger(home, code)
    cli(home, "ledger", code, "new-bookings", "1")
    status, run = cli_json(home, "sync", code)
    assert status == 0
    assert_portal_equals_ledger(home, code)


# --- the office server's throttle applies to every whole-ledger read ------------------------
def test_activation_and_a_first_simple_sync_obey_the_throttle(demo_home, tmp_path):
    code = codes(demo_home)[-1]  # the smallest dossier
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(ledger_path(demo_home, code).read_bytes())
    rows = cli_json(demo_home, "sync", code, "--full")[1]["rows"]["read"]
    rate = max(200, rows // 3)  # about three seconds a read; unthrottled it takes a fraction
    (demo_home / "dossync.toml").write_text(f"[full_sync]\nmax_rows_per_second = {rate}\n")
    bound = 0.8 * rows / rate

    started = time.monotonic()
    status, added = cli_json(demo_home, "dossier", "add", "THROTTLED", "--package", "demo",
                             "--source", str(copy))
    assert status == 0, added
    assert time.monotonic() - started >= bound, "dossier add read the ledger at full speed"

    # as if never synced
    portal_sql(demo_home, "DELETE FROM ledger_position WHERE dossier = 'THROTTLED'")
    portal_sql(demo_home, "DELETE FROM sync_state WHERE dossier = 'THROTTLED'")
    started = time.monotonic()
    status, run = cli_json(demo_home, "sync", "THROTTLED")
    assert status == 0 and any("activation" in w for w in run["warnings"]), run
    assert time.monotonic() - started >= bound, "a first simple sync read at full speed"
    assert_portal_equals_ledger(demo_home, "THROTTLED")


@pytest.mark.parametrize("value", ['"fast"', "-5", "2.5", "true"])
def test_a_bad_throttle_is_named(demo_home, value):
    (demo_home / "dossync.toml").write_text(f"[full_sync]\nmax_rows_per_second = {value}\n")
    status, doc = cli_json(demo_home, "sync", codes(demo_home)[0], "--full")
    assert status == 2, doc
    assert "max_rows_per_second" in doc["error"] and "dossync.toml" in doc["error"], doc


def test_a_home_whose_path_holds_brackets(tmp_path):
    """Staging files under such a path are read as files, never as glob patterns."""
    home = tmp_path / "office [2026] {a,b} *" / "firm"
    assert main(["--home", str(home), "demo", "--dossiers", "1", "--lines", "800",
                 "--seed", "3"]) == 0
    code = codes(home)[0]
    assert cli(home, "ledger", code, "new-bookings", "3").returncode == 0
    status, run = cli_json(home, "sync", code)
    assert status == 0, run
    assert_portal_equals_ledger(home, code)
    assert cli_json(home, "reconcile", code)[1]["verdict"] == "in_sync"
    assert cli_json(home, "sync", code, "--full")[0] == 0
    listed = cli(home, "dossier", "list")
    assert listed.returncode == 0 and "[2026]" in listed.stdout, listed.stdout  # not read as markup
