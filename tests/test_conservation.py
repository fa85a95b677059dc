"""Conservation: every record a sync reads is in the portal or in quarantine, and the run proves it.

Per stream, read = inserted + updated + unchanged + quarantined, checked in
code before every commit; a sync that would lose a record fails and changes
nothing. The GnuCash and Beancount connectors' own checks are in their
corpus tests (tests/test_corpus_*.py); these cover the demo package and the
check itself.
"""
from __future__ import annotations

import sqlite3

import duckdb

from conftest import cli, cli_json, codes, portal_trial_balance
from dossync.core import portal
from dossync.core.home import Home
from dossync.core.streams import STREAMS
from dossync.core.sync import sync_dossier


def assert_conserved(run: dict) -> dict:
    """The run's per-stream counts balance; returns them."""
    assert set(run["streams"]) == {s.name for s in STREAMS}
    for name, c in run["streams"].items():
        assert c["read"] == c["inserted"] + c["updated"] + c["unchanged"] + c["quarantined"], name
    assert run["rows"]["inserted"] == sum(c["inserted"] for c in run["streams"].values())
    assert run["rows"]["updated"] == sum(c["updated"] for c in run["streams"].values())
    return run["streams"]


def ledger_rows(path, table: str) -> int:
    with sqlite3.connect(path) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_activation_accounts_for_every_record_quarantine_included(tmp_path, bad_ledger):
    path, spoiled = bad_ledger
    home = tmp_path / "home"
    status, run = cli_json(home, "dossier", "add", "BAD", "--package", "demo", "--source",
                           str(path))
    assert status == 0
    streams = assert_conserved(run)
    # every row of the ledger was read, and the ones kept out are the quarantined ones
    assert streams["bookings"]["read"] == ledger_rows(path, "bookings")
    assert streams["lines"]["read"] == ledger_rows(path, "booking_lines")
    assert streams["bookings"]["quarantined"] == 5  # four bad bookings, one of them twice
    assert streams["relations"]["quarantined"] == 1
    assert streams["lines"]["quarantined"] > 0  # the bad bookings' lines stay out with them
    kept = portal.quarantined(home / "portal.duckdb", "BAD")
    assert {q["stream"] for q in kept} == {"bookings", "relations"}
    # the monitor says so, with the count, until a sync has none
    _, rows = cli_json(home, "status")
    assert rows[0]["state"] == "action_required" and rows[0]["quarantined"] == len(kept)
    with sqlite3.connect(path) as con:  # the accountant repairs the relation's name
        con.execute("UPDATE relations SET name = 'Evil Corp', rv = rv + 100000 WHERE id = ?",
                    (spoiled["relation"],))
        con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 100000 "
                    "WHERE key = 'change_counter'")
    status, run = cli_json(home, "sync", "BAD")
    assert status == 0
    assert_conserved(run)["relations"] == {"read": 1, "inserted": 0, "updated": 1,
                                           "unchanged": 0, "quarantined": 0, "deleted": 0}
    _, rows = cli_json(home, "status")
    assert rows[0]["quarantined"] == len(kept) - 1


def test_simple_syncs_count_what_they_read_again_as_unchanged(demo_home):
    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "new-bookings", "15").returncode == 0
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0
    streams = assert_conserved(run)
    assert streams["bookings"]["inserted"] == 15
    assert cli(demo_home, "ledger", code, "delete-bookings", "3").returncode == 0
    status, run = cli_json(demo_home, "sync", code)
    streams = assert_conserved(run)
    assert streams["bookings"]["unchanged"] > 0  # the lookback window, read again
    assert streams["bookings"]["deleted"] == 3
    status, run = cli_json(demo_home, "sync", code, "--full")
    streams = assert_conserved(run)
    assert streams["bookings"]["read"] == streams["bookings"]["updated"]  # all rewritten
    assert streams["lines"]["read"] == streams["lines"]["updated"] + streams["lines"]["inserted"]


def test_a_sync_that_would_lose_records_fails_and_changes_nothing(demo_home, monkeypatch):
    """A defect that drops a staged line on its way to the portal is caught before the commit."""
    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "new-bookings", "6").returncode == 0
    home = Home(demo_home)
    before = portal_trial_balance(demo_home, code)
    state_before = portal.sync_state(home.portal, code)
    runs_before = len(portal.runs(home.portal, code, limit=1000))
    original = portal.apply._new_rows  # apply_sync's own planner (core/portal/apply.py)

    def leaky(stream, mode):  # loses the first line of every booking it writes
        rows = original(stream, mode)
        return f"SELECT * FROM ({rows}) WHERE line_no > 1" if stream.name == "lines" else rows

    monkeypatch.setattr(portal.apply, "_new_rows", leaky)
    result = sync_dossier(home, code, "simple")
    assert result.status == "failed"
    assert "lines: the sync would lose records" in result.error
    assert "nothing was committed" in result.error
    assert portal_trial_balance(demo_home, code) == before
    assert portal.sync_state(home.portal, code).cursor == state_before.cursor
    runs = portal.runs(home.portal, code, limit=1000)
    assert len(runs) == runs_before + 1 and runs[0]["status"] == "failed"
    monkeypatch.undo()
    assert sync_dossier(home, code, "simple").status == "succeeded"


def test_every_run_keeps_its_counts(demo_home):
    code = codes(demo_home)[1]
    assert cli(demo_home, "ledger", code, "new-bookings", "4").returncode == 0
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0
    _, shown = cli_json(demo_home, "dossier", "show", code)
    assert shown["runs"][0]["run_id"] == run["run_id"]
    assert shown["runs"][0]["streams"] == run["streams"]
    con = duckdb.connect(str(demo_home / "portal.duckdb"), read_only=True)
    try:
        kept = con.execute("SELECT stream_counts FROM sync_runs WHERE run_id = ?",
                           [run["run_id"]]).fetchall()
    finally:
        con.close()
    assert kept and kept[0][0]
