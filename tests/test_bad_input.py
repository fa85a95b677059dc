"""Bad ledger rows are quarantined with reasons; unreadable ledgers fail clearly."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import cli, cli_json, codes, ledger_path, portal_trial_balance
from dossync.core import portal


def test_bad_rows_are_quarantined_and_the_rest_synced(tmp_path, bad_ledger):
    path, spoiled = bad_ledger
    home = tmp_path / "home"
    status, run = cli_json(home, "dossier", "add", "BAD", "--package", "demo", "--source", str(path))
    assert status == 0, run
    assert run["status"] == "succeeded"
    assert run["rows"]["quarantined"] == 5
    assert any("quarantined" in w for w in run["warnings"])

    reasons = {(q["stream"], q["key"]): q["reason"]
               for q in portal.quarantined(home / "portal.duckdb", "BAD")}
    assert "unbalanced" in reasons["bookings", str(spoiled["unbalanced"])]
    assert "unknown account 999999" in reasons["bookings", str(spoiled["unknown account"])]
    assert "impossible date 2025-02-30" in reasons["bookings", str(spoiled["impossible date"])]
    assert "duplicate id" in reasons["bookings", str(spoiled["duplicate"])]
    assert "control characters" in reasons["relations", str(spoiled["relation"])]

    # everything else is in the portal: the ledger's trial balance without the bad bookings
    bad_ids = [spoiled[k] for k in ("unbalanced", "unknown account", "impossible date", "duplicate")]
    with sqlite3.connect(path) as con:
        expected = {a: (d, c) for a, d, c in con.execute(
            f"SELECT account, sum(debit), sum(credit) FROM booking_lines WHERE booking_id NOT IN "
            f"({','.join('?' * len(bad_ids))}) GROUP BY account", bad_ids) if (d, c) != (0, 0)}
    assert portal_trial_balance(home, "BAD") == expected

    status, rows = cli_json(home, "status")
    assert rows[0]["state"] == "action_required"
    shown = cli(home, "dossier", "show", "BAD")
    assert shown.returncode == 0 and "unbalanced" in shown.stdout


def _tracked(ledger: Path, statement: str, *args) -> None:
    """A change the package tracks: `statement` takes the next change-counter value first."""
    with sqlite3.connect(ledger) as con:
        counter = int(con.execute("SELECT value FROM meta WHERE key='change_counter'")
                      .fetchone()[0]) + 1
        con.execute(statement, (counter, *args))
        con.execute("UPDATE meta SET value = ? WHERE key = 'change_counter'", (str(counter),))


def test_fixed_rows_leave_quarantine_on_the_next_sync(tmp_path, bad_ledger):
    path, spoiled = bad_ledger
    home = tmp_path / "home"
    assert cli_json(home, "dossier", "add", "BAD", "--package", "demo", "--source", str(path))[0] == 0
    # the accountant corrects the date, as the package would
    _tracked(path, "UPDATE bookings SET date = '2025-02-28', rv = ? WHERE id = ?",
             spoiled["impossible date"])
    status, run = cli_json(home, "sync", "BAD")
    assert status == 0
    keys = {q["key"] for q in portal.quarantined(home / "portal.duckdb", "BAD")}
    assert str(spoiled["impossible date"]) not in keys
    assert str(spoiled["unbalanced"]) in keys


def test_quarantined_booking_is_judged_again_once_its_account_exists(tmp_path, bad_ledger):
    """The booking did not change; the account it lacked was opened: the next simple sync lets it in."""
    path, spoiled = bad_ledger
    home = tmp_path / "home"
    assert cli_json(home, "dossier", "add", "BAD", "--package", "demo", "--source", str(path))[0] == 0
    # the accountant opens the account, as the package would
    _tracked(path, "INSERT INTO accounts VALUES ('999999', 'Nieuwe rekening', ?)")
    status, run = cli_json(home, "sync", "BAD")
    assert status == 0 and run["status"] == "succeeded", run
    keys = {q["key"] for q in portal.quarantined(home / "portal.duckdb", "BAD")}
    assert str(spoiled["unknown account"]) not in keys
    assert {str(spoiled[k]) for k in ("unbalanced", "impossible date", "duplicate")} <= keys
    still_bad = [spoiled[k] for k in ("unbalanced", "impossible date", "duplicate")]
    with sqlite3.connect(path) as con:
        expected = {a: (d, c) for a, d, c in con.execute(
            f"SELECT account, sum(debit), sum(credit) FROM booking_lines WHERE booking_id NOT IN "
            f"({','.join('?' * len(still_bad))}) GROUP BY account", still_bad) if (d, c) != (0, 0)}
    assert portal_trial_balance(home, "BAD") == expected  # the booking is in, account 999999 too
    assert "999999" in expected
    # judged again at every sync, never counted twice: a second sync changes nothing
    status, again = cli_json(home, "sync", "BAD")
    assert status == 0 and again["rows"]["inserted"] == 0, again
    assert portal_trial_balance(home, "BAD") == expected


def test_missing_ledger_file_fails_with_its_name(demo_home):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    ledger.rename(ledger.with_suffix(".moved"))
    done = cli(demo_home, "sync", code)
    assert done.returncode == 1
    assert str(ledger) in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    status, run = cli_json(demo_home, "sync", code)
    assert status == 1 and run["status"] == "failed" and str(ledger) in run["error"]
    assert {r["code"]: r["state"] for r in cli_json(demo_home, "status")[1]}[code] == "failed"


@pytest.mark.parametrize("content", [b"this is no database at all" * 100,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_ledger_file_fails_with_its_name(demo_home, content):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    before = portal_trial_balance(demo_home, code)
    ledger.write_bytes(content)
    for args in ([], ["--full"]):
        done = cli(demo_home, "sync", code, *args)
        assert done.returncode == 1, done.stderr
        assert str(ledger) in done.stderr
        assert "Traceback" not in done.stderr
    assert portal_trial_balance(demo_home, code) == before


def test_sqlite_file_that_is_not_a_ledger(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    home = tmp_path / "home"
    done = cli(home, "dossier", "add", "OTHER", "--package", "demo", "--source", str(other))
    assert done.returncode == 1
    assert str(other) in done.stderr and "Traceback" not in done.stderr
    # a failed activation leaves no half-registered dossier behind
    assert cli_json(home, "dossier", "list")[1] == []


def _hold_ledger_lock(ledger: Path, seconds: float):
    """Another process (the package) holds the ledger locked for `seconds`, as in a commit."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "w = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "w.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2])); w.execute('COMMIT')\n"), str(ledger), str(seconds)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_ledger_the_package_is_writing_is_waited_for(demo_home):
    import time

    from dossync.core.home import Home
    from dossync.core.sync import sync_dossier

    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "new-bookings", "3").returncode == 0
    holder = _hold_ledger_lock(ledger_path(demo_home, code), 1.5)
    started = time.monotonic()
    result = sync_dossier(Home(demo_home), code, "simple")
    holder.wait(timeout=30)
    assert result.status == "succeeded", result.error
    assert time.monotonic() - started >= 1.0  # it waited for the commit, then read
    assert result.rows.inserted > 0


def test_a_ledger_locked_too_long_fails_clearly_and_changes_nothing(demo_home, monkeypatch):
    from dossync.core.connectors import demo
    from dossync.core.home import Home
    from dossync.core.sync import sync_dossier

    code = codes(demo_home)[0]
    before = portal_trial_balance(demo_home, code)
    monkeypatch.setattr(demo, "LOCK_WAIT_MS", 300)
    ledger = ledger_path(demo_home, code)
    holder = _hold_ledger_lock(ledger, 3)
    try:
        result = sync_dossier(Home(demo_home), code, "simple")
    finally:
        holder.wait(timeout=30)
    assert result.status == "failed"
    assert "stayed locked" in result.error and str(ledger) in result.error
    assert portal_trial_balance(demo_home, code) == before
