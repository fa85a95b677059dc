"""Reconcile: ledger figures against portal figures, and the verdict each ledger event earns."""
from __future__ import annotations

import json
import re
import sqlite3
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from conftest import (YES_EVENTS, portal_of, assert_portal_equals_ledger, cli, codes, event,
                      ledger_path, ledger_trial_balance, portal_trial_balance)
from dossync.core import portal
from dossync.core.connectors import open_connector
from dossync.core.home import Home
from dossync.core.model import LedgerUnavailable
from dossync.core.reconcile import ledger_figures, portal_figures, reconcile
from dossync.core.sync import sync_dossier

PROVISIONAL_DDL = [
    """CREATE TABLE IF NOT EXISTS provisional_bookings (dossier VARCHAR, id BIGINT, ref VARCHAR,
       journal VARCHAR, doc_type VARCHAR, date DATE, due_date DATE, relation_id BIGINT,
       fiscal_year_id BIGINT, period_id BIGINT, amount BIGINT, sent_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS provisional_lines (dossier VARCHAR, booking_id BIGINT,
       line_no BIGINT, account VARCHAR, debit BIGINT, credit BIGINT, vat_code VARCHAR,
       relation_id BIGINT)""",
]


def sync(home: Path, code: str, kind: str = "simple") -> None:
    result = sync_dossier(Home(home), code, kind)
    assert result.status == "succeeded", result.error


def periods_of(ledger: Path, where: str, params: tuple = ()) -> set[str]:
    with sqlite3.connect(ledger) as con:
        return {r[0] for r in con.execute(
            f"SELECT DISTINCT p.code FROM bookings b JOIN periods p ON p.id = b.period_id "
            f"WHERE {where}", params)}


def propose(home: Path, code: str, count: int = 3) -> None:
    """Send proposals from the worklist; by hand where `dossync propose` is not there yet."""
    done = cli(home, "propose", code, "--count", str(count))
    if done.returncode == 0:
        return
    assert "invalid choice" in done.stderr, done.stderr
    ledger = ledger_path(home, code)
    with sqlite3.connect(ledger) as con:
        rel = con.execute("SELECT min(id) FROM relations WHERE kind = 'supplier'").fetchone()[0]
        pid, fy = con.execute("SELECT id, fiscal_year_id FROM periods "
                              "WHERE code = '2026-10'").fetchone()
        for n in range(count):
            net, vat = 10_000 + 100 * n, 2_100 + 21 * n
            lines = [{"account": "440000", "debit": 0, "credit": net + vat},
                     {"account": "611000", "debit": net, "credit": 0, "vat_code": "A21"},
                     {"account": "411000", "debit": vat, "credit": 0}]
            con.execute("INSERT INTO proposals VALUES (?, 'AANK', '2026-10-15', ?, ?, ?, "
                        "'received', NULL, '2026-10-15T10:00:00')",
                        (f"WL-TEST-{n}", rel, net + vat, json.dumps(lines)))
            with portal.connect(portal_of(home)) as pcon:
                for ddl in PROVISIONAL_DDL:
                    pcon.execute(ddl)
                pcon.execute("INSERT INTO provisional_bookings VALUES (?, ?, ?, 'AANK', 'invoice', "
                             "DATE '2026-10-15', NULL, ?, ?, ?, ?, now())",
                             [code, -1 - n, f"WL-TEST-{n}", rel, fy, pid, net + vat])
                for no, line in enumerate(lines, start=1):
                    pcon.execute("INSERT INTO provisional_lines VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                                 [code, -1 - n, no, line["account"], line["debit"],
                                  line["credit"], rel])


def test_figures_are_equal_on_both_sides_after_activation(demo_home):
    home = Home(demo_home)
    for code in codes(demo_home):
        connector = open_connector("demo", ledger_path(demo_home, code))
        try:
            ledger = ledger_figures(connector)
        finally:
            connector.close()
        mirrored = portal_figures(home, code)
        key = ["fiscal_year", "period", "journal", "account"]
        assert ledger.height > 100
        assert ledger.sort(key).equals(mirrored.sort(key))
        # exact amounts (the package keeps cents), and every line counted once
        with sqlite3.connect(ledger_path(demo_home, code)) as con:
            lines, debit = con.execute("SELECT count(*), sum(debit) FROM booking_lines").fetchone()
        assert (ledger["line_count"].sum(), ledger["debit"].sum()) == (
            lines, Decimal(debit).scaleb(-2))
        result = reconcile(home, code)
        assert result.verdict == "in_sync", result.reasons
        assert result.differences == [] and result.segments == []
        doc = result.to_json()
        assert {"dossier", "verdict", "reasons", "differences", "segments"} <= set(doc)
        json.dumps(doc)


@pytest.mark.parametrize("args", YES_EVENTS, ids=lambda e: e[0])
def test_tracked_event_needs_a_simple_sync_and_then_is_in_sync(demo_home, args):
    home, code = Home(demo_home), codes(demo_home)[0]
    if args[0] == "validate-proposals":
        propose(demo_home, code)
    event(demo_home, code, *args)
    result = reconcile(home, code)
    assert result.verdict == "simple_sync", result.reasons
    assert result.differences, "the event changed the books: some segment must differ"
    assert all(d["explained_by"] in ("pending_changes", "provisional")
               for d in result.differences)
    assert result.segments == []
    assert any("since the last sync" in r for r in result.reasons)
    sync(demo_home, code)
    after = reconcile(home, code)
    assert after.verdict == "in_sync", after.reasons
    assert after.differences == []


def test_provisional_proposals_never_ask_for_a_full_sync(demo_home):
    home, code = Home(demo_home), codes(demo_home)[1]
    propose(demo_home, code, 3)
    result = reconcile(home, code)
    assert result.verdict == "in_sync", result.reasons
    assert result.provisional == 3
    assert any("3 provisional proposals not yet booked" in r for r in result.reasons)

    event(demo_home, code, "validate-proposals")
    result = reconcile(home, code)
    assert result.verdict == "simple_sync", result.reasons
    assert {d["explained_by"] for d in result.differences} == {"provisional"}
    assert any("3 proposals now booked" in r for r in result.reasons)
    sync(demo_home, code)
    assert reconcile(home, code).verdict == "in_sync"


def test_edit_in_a_closed_period_names_exactly_that_period(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    message = event(demo_home, code, "edit-closed-period")
    period = re.search(r"closed period (\d{4}-\d{2})", message).group(1)
    result = reconcile(home, code)
    assert result.verdict == "full_sync"
    assert result.segments == [{"fiscal_year": period[:4], "period": period}]
    assert result.repairable and result.history_problem is None
    assert all(d["period"] == period and d["explained_by"] is None for d in result.differences)
    assert any(period in r for r in result.reasons)
    ledger = ledger_path(demo_home, code)
    # the repair reads the booking that differs and the small period tables, not the period
    (booking,) = result.bookings
    with sqlite3.connect(ledger) as con:
        small = con.execute("SELECT (SELECT count(*) FROM fiscal_years) + "
                            "(SELECT count(*) FROM periods)").fetchone()[0]
        own = con.execute(
            "SELECT 1 + (SELECT count(*) FROM booking_lines WHERE booking_id = ?) + "
            "(SELECT count(*) FROM matchings WHERE ? IN (invoice_id, payment_id))",
            (booking, booking)).fetchone()[0]
    assert result.repair_rows == small + own < result.full_sync_rows / 10
    run = sync_dossier(home, code, "repair")
    assert run.rows.read == result.repair_rows  # priced right
    assert reconcile(home, code).verdict == "in_sync"
    assert_portal_equals_ledger(demo_home, code)


def test_a_simple_sync_cannot_see_a_silent_edit_a_full_sync_can(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    event(demo_home, code, "edit-closed-period")
    result = reconcile(home, code)
    sync(demo_home, code)  # a simple sync cannot see the edit
    assert reconcile(home, code).segments == result.segments
    sync(demo_home, code, "full")
    assert reconcile(home, code).verdict == "in_sync"
    assert_portal_equals_ledger(demo_home, code)


def test_restored_backup_names_the_periods_that_went_back(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    event(demo_home, code, "snapshot", "monday")
    with sqlite3.connect(ledger) as con:
        counter = int(con.execute("SELECT value FROM meta WHERE key = 'change_counter'")
                      .fetchone()[0])
    event(demo_home, code, "new-bookings", "8")
    changed = periods_of(ledger, "b.rv > ?", (counter,))
    sync(demo_home, code)
    event(demo_home, code, "restore-backup", "monday")

    result = reconcile(home, code)
    assert result.verdict == "full_sync"
    assert not result.repairable
    assert "back in time" in result.history_problem
    assert any("back in time" in r for r in result.reasons)
    assert {s["period"] for s in result.segments} == changed
    sync(demo_home, code, "full")
    assert reconcile(home, code).verdict == "in_sync"


def test_restructured_fiscal_year_names_the_moved_periods(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    event(demo_home, code, "restructure-fiscal-year")
    result = reconcile(home, code)
    assert result.verdict == "full_sync", result.reasons
    assert result.segments == [{"fiscal_year": "2025", "period": p}
                               for p in ("2026-01", "2026-02", "2026-03")]
    assert result.repairable
    assert any("fiscal years rearranged" in r for r in result.reasons)
    sync(demo_home, code, "full")
    assert reconcile(home, code).verdict == "in_sync"


def test_purged_deletion_log_needs_a_full_sync(demo_home):
    home, code = Home(demo_home), codes(demo_home)[1]
    ledger = ledger_path(demo_home, code)
    with sqlite3.connect(ledger) as con:
        before = {r[0]: r[1] for r in con.execute(
            "SELECT b.id, p.code FROM bookings b JOIN periods p ON p.id = b.period_id")}
    event(demo_home, code, "delete-bookings", "3")
    event(demo_home, code, "purge-deletion-log")
    with sqlite3.connect(ledger) as con:
        gone = set(before) - {r[0] for r in con.execute("SELECT id FROM bookings")}
    result = reconcile(home, code)
    assert result.verdict == "full_sync"
    assert "deletion log" in result.history_problem and not result.repairable
    assert {s["period"] for s in result.segments} == {before[i] for i in gone}
    sync(demo_home, code, "full")
    assert reconcile(home, code).verdict == "in_sync"
    assert portal_trial_balance(demo_home, code) == ledger_trial_balance(demo_home, code)


def test_an_edit_next_to_pending_changes_is_still_unexplained(demo_home):
    """Pending changes in open periods do not hide a silent edit in a closed one."""
    home, code = Home(demo_home), codes(demo_home)[2]
    message = event(demo_home, code, "edit-closed-period")
    period = re.search(r"closed period (\d{4}-\d{2})", message).group(1)
    event(demo_home, code, "new-bookings", "6")
    result = reconcile(home, code)
    assert result.verdict == "full_sync"
    assert [s["period"] for s in result.segments] == [period]
    explained = {d["explained_by"] for d in result.differences if d["period"] != period}
    assert explained == {"pending_changes"}


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_an_unreachable_ledger_raises_naming_the_file(demo_home, damage):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    if damage == "missing":
        ledger.unlink()
    else:
        ledger.write_bytes(b"this is no ledger" * 100)
    with pytest.raises(LedgerUnavailable, match=re.escape(str(ledger))):
        reconcile(Home(demo_home), code)


def test_differences_frame_keeps_amounts_exact(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    event(demo_home, code, "edit-closed-period")
    frame = reconcile(home, code).frame()
    assert frame.schema["ledger_amount"] == pl.Decimal(18, 2)
    assert frame.height >= 2


# --- fingerprints: only the periods that differ are compared segment by segment ------------
SILENT_EDITS = {
    # a line's amount moves to another account of the chart
    "account": ["UPDATE booking_lines SET account = (SELECT min(code) FROM accounts WHERE code <> "
                "(SELECT account FROM booking_lines WHERE booking_id = :id AND line_no = 1)) "
                "WHERE booking_id = :id AND line_no = 1"],
    # two debit lines of one booking swap amounts: still balanced, per account not the same
    "swap": ["UPDATE booking_lines SET debit = CASE line_no WHEN :a THEN :db WHEN :b THEN :da END "
             "WHERE booking_id = :id AND line_no IN (:a, :b)"],
    "journal": ["UPDATE bookings SET journal = (SELECT min(code) FROM journals WHERE code <> "
                "(SELECT journal FROM bookings WHERE id = :id)) WHERE id = :id"],
    "line numbers": ["UPDATE booking_lines SET line_no = line_no + 10 WHERE booking_id = :id"],
    "period": ["UPDATE bookings SET period_id = (SELECT min(id) FROM periods WHERE id <> "
               "(SELECT period_id FROM bookings WHERE id = :id) AND fiscal_year_id = "
               "(SELECT fiscal_year_id FROM bookings WHERE id = :id)) WHERE id = :id"],
}


def silent_edit(ledger: Path, kind: str) -> tuple[int, set[str]]:
    """Edit one booking of the first fiscal year behind change tracking's back.

    Returns the booking id and the codes of the periods it touches, before and after.
    """
    with sqlite3.connect(ledger) as con:
        booking, a, da, b, db = con.execute(
            "SELECT x.booking_id, x.line_no, x.debit, y.line_no, y.debit FROM booking_lines x "
            "JOIN booking_lines y ON y.booking_id = x.booking_id AND y.line_no > x.line_no "
            "AND y.account <> x.account AND y.debit > 0 AND y.debit <> x.debit "
            "JOIN bookings bk ON bk.id = x.booking_id "
            "WHERE x.debit > 0 AND bk.fiscal_year_id = (SELECT min(id) FROM fiscal_years) "
            "ORDER BY x.booking_id LIMIT 1").fetchone()
        before = periods_of(ledger, "b.id = ?", (booking,))
        for sql in SILENT_EDITS[kind]:
            con.execute(sql, {"id": booking, "a": a, "da": da, "b": b, "db": db})
    return booking, before | periods_of(ledger, "b.id = ?", (booking,))


def test_in_sync_is_decided_on_fingerprints_alone(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    result = reconcile(home, code)
    assert result.verdict == "in_sync"
    with sqlite3.connect(ledger_path(demo_home, code)) as con:
        periods, lines = con.execute("SELECT (SELECT count(*) FROM periods), "
                                     "(SELECT count(*) FROM booking_lines)").fetchone()
    assert (result.periods_compared, result.periods_detailed) == (periods, 0)
    assert result.ledger_lines == result.portal_lines == lines


@pytest.mark.parametrize("kind", sorted(SILENT_EDITS))
def test_a_silent_edit_is_found_in_its_periods_and_repaired(demo_home, kind):
    home, code = Home(demo_home), codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    booking, touched = silent_edit(ledger, kind)
    result = reconcile(home, code)
    assert result.verdict == "full_sync", result.reasons
    assert {s["period"] for s in result.segments} == touched
    assert result.periods_detailed == len(touched)  # only those compared per segment
    assert result.repairable
    assert result.bookings == (booking,)  # named, and all a repair reads of the period
    with sqlite3.connect(ledger) as con:
        doc_no = con.execute("SELECT doc_no FROM bookings WHERE id = ?", (booking,)).fetchone()[0]
    assert any(re.match(r"1 booking in (that period|those periods) differs", r) and doc_no in r
               for r in result.reasons), result.reasons
    run = sync_dossier(home, code, "repair")
    assert run.status == "succeeded", run.error
    with sqlite3.connect(ledger) as con:
        lines = con.execute("SELECT count(*) FROM booking_lines WHERE booking_id = ?",
                            (booking,)).fetchone()[0]
        small = con.execute("SELECT (SELECT count(*) FROM fiscal_years) + "
                            "(SELECT count(*) FROM periods)").fetchone()[0]
    assert run.rows.read <= small + 1 + lines + 5  # + its matchings
    after = reconcile(home, code)
    assert after.verdict == "in_sync", after.reasons
    assert portal_trial_balance(demo_home, code) == ledger_trial_balance(demo_home, code)


def test_quarantined_bookings_are_left_out_of_both_fingerprints(tmp_path):
    from dossync.core import demo_package

    company = demo_package.demo_companies(1, 2500, seed=11)[0]
    ledger = tmp_path / "bad.sqlite"
    demo_package.create_ledger(ledger, company, seed=11)
    with sqlite3.connect(ledger) as con:
        spoiled = con.execute("SELECT min(id) FROM bookings WHERE doc_type = 'invoice'").fetchone()[0]
        con.execute("UPDATE booking_lines SET debit = debit + 100 WHERE booking_id = ? AND "
                    "debit > 0", (spoiled,))
    home = tmp_path / "home"
    done = cli(home, "dossier", "add", "BAD", "--package", "demo", "--source", str(ledger))
    assert done.returncode == 0, done.stderr
    assert portal.quarantined_bookings(portal_of(home), "BAD") == [spoiled]
    result = reconcile(Home(home), "BAD")
    assert result.verdict == "in_sync", result.reasons
    assert result.periods_detailed == 0
    assert any("in quarantine left out" in r for r in result.reasons)


def test_a_chart_with_other_codes_compares_every_segment(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    with sqlite3.connect(ledger_path(demo_home, code)) as con:
        counter = int(con.execute("SELECT value FROM meta WHERE key = 'change_counter'")
                      .fetchone()[0]) + 1
        con.execute("INSERT INTO accounts (code, name, rv) VALUES ('BANK-EUR', 'Bank', ?)",
                    (counter,))
        con.execute("UPDATE meta SET value = ? WHERE key = 'change_counter'", (str(counter),))
    sync(demo_home, code)
    result = reconcile(home, code)
    assert result.verdict == "in_sync", result.reasons
    assert result.periods_detailed == result.periods_compared > 0
    event(demo_home, code, "edit-closed-period")
    assert reconcile(home, code).verdict == "full_sync"


def test_a_renamed_fiscal_year_is_repaired_without_reloading_bookings(demo_home):
    home, code = Home(demo_home), codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    with sqlite3.connect(ledger) as con:  # a maintenance tool renames it, untracked
        fy, old = con.execute("SELECT id, code FROM fiscal_years ORDER BY code LIMIT 1").fetchone()
        con.execute("UPDATE fiscal_years SET code = ? WHERE id = ?", (f"FY{old}", fy))
        periods = {r[0] for r in con.execute(
            "SELECT DISTINCT p.code FROM periods p JOIN bookings b ON b.period_id = p.id "
            "WHERE b.fiscal_year_id = ?", (fy,))}
    result = reconcile(home, code)
    assert result.verdict == "full_sync" and result.repairable, result.reasons
    assert {s["period"] for s in result.segments} == periods
    assert {s["fiscal_year"] for s in result.segments} == {f"FY{old}"}
    assert result.bookings == ()
    assert any("no booking in those periods differs" in r for r in result.reasons)
    run = sync_dossier(home, code, "repair")
    assert run.status == "succeeded", run.error
    assert run.rows.updated == 1  # the fiscal year's row, nothing else
    after = reconcile(home, code)
    assert after.verdict == "in_sync", after.reasons
