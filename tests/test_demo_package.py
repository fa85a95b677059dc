"""Tests of the demo accounting package (core/demo_package/)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dossync.core import demo_package
from dossync.core.demo_package import (
    DEMO_AS_OF,
    LEDGER_EVENTS,
    DemoCompany,
    LedgerEventError,
    apply_event,
    chart_of_accounts,
    create_ledger,
    demo_companies,
    enterprise_number_valid,
    ledger_trial_balance,
    receive_proposals,
    snapshot_dir,
)
from dossync.core.demo_package.reference import DATA_DIR
from dossync.core.demo_package.rows import ROW_TYPES, BookingLineRow, Posting

ROOT = Path(__file__).resolve().parent.parent

TABLES = ("meta", "accounts", "journals", "fiscal_years", "periods", "relations", "bookings",
          "booking_lines", "matchings", "deletion_log", "proposals")
RV_TABLES = ("accounts", "journals", "fiscal_years", "periods", "relations", "bookings",
             "matchings")
LINES = 2000


def _mod97_ok(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return len(digits) == 10 and 97 - int(digits[:8]) % 97 == int(digits[8:])


def _q(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _dump(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in TABLES}
    finally:
        conn.close()


def _versions(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        out = {t: conn.execute(f"SELECT rowid, rv FROM {t} ORDER BY rowid").fetchall()
               for t in RV_TABLES}
        out["deletion_log"] = conn.execute("SELECT * FROM deletion_log ORDER BY seq").fetchall()
        return out
    finally:
        conn.close()


def _counter(path: Path) -> int:
    return int(_q(path, "SELECT value FROM meta WHERE key='change_counter'")[0][0])


def _meta(path: Path, key: str) -> str:
    return _q(path, "SELECT value FROM meta WHERE key=?", (key,))[0][0]


def _unbalanced(path: Path) -> list[tuple]:
    return _q(path, "SELECT booking_id, SUM(debit), SUM(credit) FROM booking_lines "
                    "GROUP BY booking_id HAVING SUM(debit) <> SUM(credit)")


@pytest.fixture(scope="module")
def company() -> DemoCompany:
    return demo_companies(3, LINES, seed=7)[0]


@pytest.fixture(scope="module")
def base_ledger(tmp_path_factory: pytest.TempPathFactory, company: DemoCompany) -> Path:
    path = tmp_path_factory.mktemp("base") / "ledger.sqlite"
    create_ledger(path, company, seed=7)
    return path


@pytest.fixture()
def ledger(base_ledger: Path, tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    shutil.copy(base_ledger, path)
    return path


# --------------------------------------------------------------------------- companies


def test_demo_companies_are_deterministic_and_well_formed() -> None:
    companies = demo_companies(12, 100_000, seed=1)
    assert companies == demo_companies(12, 100_000, seed=1)
    assert companies != demo_companies(12, 100_000, seed=2)
    assert len({c.code for c in companies}) == 12
    for c in companies:
        assert re.fullmatch(r"[A-Z0-9-]{2,20}", c.code), c.code
        assert re.fullmatch(r"\d{4}\.\d{3}\.\d{3}", c.enterprise_number)
        assert _mod97_ok(c.enterprise_number) and enterprise_number_valid(c.enterprise_number)
        assert c.language in ("nl", "fr", "en")
        assert "@" in c.email and c.name
        assert c.lines >= 500
    assert companies[0].lines == 100_000
    assert all(a.lines >= b.lines for a, b in zip(companies, companies[1:]))
    assert 4 <= sum(c.nightly for c in companies) <= 8
    assert len({c.language for c in demo_companies(8, 10_000, seed=3)}) >= 2


def test_chart_of_accounts_covers_classes_1_to_7() -> None:
    chart = chart_of_accounts()
    codes = [code for code, _ in chart]
    assert 80 <= len(codes) <= 150
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"\d{6}", c) for c in codes)
    assert {c[0] for c in codes} == set("1234567")
    for needed in ("400000", "411000", "440000", "451000", "453000", "455000", "550000",
                   "570000", "604000", "620000", "630200", "700000"):
        assert needed in codes


# --------------------------------------------------------------------------- generated ledger


def test_create_refuses_existing_file(base_ledger: Path, company: DemoCompany) -> None:
    with pytest.raises(FileExistsError):
        create_ledger(base_ledger, company, seed=7)


def test_every_booking_balances_and_lines_are_one_sided(base_ledger: Path) -> None:
    assert _unbalanced(base_ledger) == []
    assert _q(base_ledger, "SELECT COUNT(*) FROM booking_lines WHERE "
                           "(debit <> 0 AND credit <> 0) OR debit < 0 OR credit < 0")[0][0] == 0
    tb = ledger_trial_balance(base_ledger)
    assert sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())


def test_line_count_near_target(base_ledger: Path, tmp_path: Path) -> None:
    n = _q(base_ledger, "SELECT COUNT(*) FROM booking_lines")[0][0]
    assert abs(n - LINES) <= LINES * 0.10, n
    for target in (500, 6000):
        path = tmp_path / f"l{target}.sqlite"
        c = demo_companies(2, target, seed=3)[0]
        create_ledger(path, c, seed=3)
        n = _q(path, "SELECT COUNT(*) FROM booking_lines")[0][0]
        assert abs(n - target) <= target * 0.10, (target, n)
        assert _unbalanced(path) == []


def test_deterministic_for_seed(base_ledger: Path, company: DemoCompany, tmp_path: Path) -> None:
    again = tmp_path / "again.sqlite"
    create_ledger(again, company, seed=7)
    assert _dump(again) == _dump(base_ledger)
    other = tmp_path / "other.sqlite"
    create_ledger(other, company, seed=8)
    assert _dump(other)["booking_lines"] != _dump(base_ledger)["booking_lines"]


def test_fiscal_years_periods_and_dates(base_ledger: Path) -> None:
    fys = _q(base_ledger, "SELECT id, code, start_date, end_date, closed FROM fiscal_years "
                          "ORDER BY id")
    assert [f[:5] for f in fys] == [
        (1, "2024", "2024-01-01", "2024-12-31", 1),
        (2, "2025", "2025-01-01", "2025-12-31", 1),
        (3, "2026", "2026-01-01", "2026-12-31", 0)]
    periods = _q(base_ledger, "SELECT id, fiscal_year_id, code, start_date, end_date, closed "
                              "FROM periods ORDER BY id")
    assert len(periods) == 36
    assert periods[0] == (1, 1, "2024-01", "2024-01-01", "2024-01-31", 1)
    assert periods[25] == (26, 3, "2026-02", "2026-02-01", "2026-02-28", 1)
    assert [p[2] for p in periods if not p[5]] == ["2026-10", "2026-11", "2026-12"]
    assert _meta(base_ledger, "active_period") == "2026-10"
    assert _meta(base_ledger, "deletion_log_from") == "1"
    lo, hi = _q(base_ledger, "SELECT MIN(date), MAX(date) FROM bookings")[0]
    assert lo >= "2024-01-01" and hi <= DEMO_AS_OF.isoformat()
    # period and fiscal year of every booking agree with its date
    assert _q(base_ledger, "SELECT COUNT(*) FROM bookings b JOIN periods p ON p.id=b.period_id "
                           "WHERE b.date NOT BETWEEN p.start_date AND p.end_date "
                           "OR b.fiscal_year_id <> p.fiscal_year_id")[0][0] == 0
    assert {j[0] for j in _q(base_ledger, "SELECT code FROM journals")} == {
        "AANK", "VERK", "FIN", "DIV"}


def test_relations_accounts_and_references(base_ledger: Path) -> None:
    kinds = dict(_q(base_ledger, "SELECT kind, COUNT(*) FROM relations GROUP BY kind"))
    assert kinds["customer"] >= 5 and kinds["supplier"] >= 5
    for (vat,) in _q(base_ledger, "SELECT vat_number FROM relations WHERE vat_number IS NOT NULL"):
        assert re.fullmatch(r"BE0\d{3}\.\d{3}\.\d{3}", vat) and _mod97_ok(vat), vat
    assert _q(base_ledger, "SELECT COUNT(*) FROM booking_lines WHERE account NOT IN "
                           "(SELECT code FROM accounts)")[0][0] == 0
    dup = _q(base_ledger, "SELECT journal, doc_no FROM bookings GROUP BY 1, 2 HAVING COUNT(*) > 1")
    assert dup == []
    # open-item lines of invoices carry the relation; invoices have a due date
    assert _q(base_ledger, "SELECT COUNT(*) FROM booking_lines l JOIN bookings b ON "
                           "b.id=l.booking_id WHERE l.account IN ('400000','440000') "
                           "AND l.relation_id IS NULL")[0][0] == 0
    assert _q(base_ledger, "SELECT COUNT(*) FROM bookings WHERE doc_type='invoice' AND "
                           "(due_date IS NULL OR relation_id IS NULL)")[0][0] == 0
    doc_types = {r[0] for r in _q(base_ledger, "SELECT DISTINCT doc_type FROM bookings")}
    assert doc_types == {"invoice", "credit_note", "statement", "misc"}


def test_matchings_settle_invoices(base_ledger: Path) -> None:
    rows = _q(base_ledger, """
        WITH tot AS (SELECT b.id, SUM(l.debit + l.credit) AS total FROM bookings b
                     JOIN booking_lines l ON l.booking_id = b.id
                     WHERE b.doc_type='invoice' AND l.account IN ('400000','440000')
                     GROUP BY b.id),
             paid AS (SELECT invoice_id, SUM(amount) AS amount FROM matchings GROUP BY 1)
        SELECT tot.id, tot.total, COALESCE(paid.amount, 0) FROM tot
        LEFT JOIN paid ON paid.invoice_id = tot.id""")
    assert all(paid <= total for _, total, paid in rows)
    full = sum(1 for _, t, p in rows if p == t)
    part = sum(1 for _, t, p in rows if 0 < p < t)
    open_ = sum(1 for _, t, p in rows if p == 0)
    assert full > len(rows) * 0.6 and part > 0 and open_ > 0
    assert _q(base_ledger, "SELECT COUNT(*) FROM matchings WHERE amount <= 0 OR "
                           "invoice_id NOT IN (SELECT id FROM bookings) OR "
                           "payment_id NOT IN (SELECT id FROM bookings)")[0][0] == 0


def test_row_versions_are_unique_and_below_counter(base_ledger: Path) -> None:
    rvs = [rv for t in RV_TABLES for (rv,) in _q(base_ledger, f"SELECT rv FROM {t}")]
    assert len(rvs) == len(set(rvs))
    assert max(rvs) == _counter(base_ledger)
    assert min(rvs) == 1


# --------------------------------------------------------------------------- tracked events


def _assert_tracked(path: Path, before: dict[str, list[tuple]], counter: int) -> None:
    """Every row that is new or changed carries an rv above the old counter."""
    after = _versions(path)
    assert _counter(path) > counter
    for t in RV_TABLES:
        old = dict(before[t])
        for rowid, rv in after[t]:
            if rowid not in old or old[rowid] != rv:
                assert rv > counter
        assert max((rv for _, rv in after[t]), default=0) <= _counter(path)


def test_new_bookings(ledger: Path) -> None:
    before, counter = _versions(ledger), _counter(ledger)
    n0 = _q(ledger, "SELECT COUNT(*) FROM bookings")[0][0]
    msg = apply_event(ledger, "new-bookings", ["12"])
    assert "12 new documents" in msg
    assert _q(ledger, "SELECT COUNT(*) FROM bookings")[0][0] == n0 + 12
    new = _q(ledger, "SELECT date, rv, period_id FROM bookings WHERE rv > ?", (counter,))
    assert len(new) == 12
    assert all("2026-10-01" <= d <= "2026-12-31" for d, _, _ in new)
    assert _unbalanced(ledger) == []
    assert _q(ledger, "SELECT COUNT(*) FROM matchings WHERE rv > ?", (counter,))[0][0] >= 0
    _assert_tracked(ledger, before, counter)
    # deterministic: the same event on the same ledger state gives the same rows
    other = ledger.with_name("other.sqlite")
    shutil.copy(ledger, other)
    apply_event(ledger, "new-bookings", ["3"])
    apply_event(other, "new-bookings", ["3"])
    assert _dump(ledger) == _dump(other)


def _add_proposals(path: Path) -> None:
    supplier = _q(path, "SELECT id FROM relations WHERE kind='supplier' ORDER BY id LIMIT 1")[0][0]
    customer = _q(path, "SELECT id FROM relations WHERE kind='customer' ORDER BY id LIMIT 1")[0][0]
    purchase = [{"account": "440000", "debit": 0, "credit": 12100, "vat_code": None},
                {"account": "611000", "debit": 10000, "credit": 0, "vat_code": "A21"},
                {"account": "411000", "debit": 2100, "credit": 0, "vat_code": "A21"}]
    sales = [{"account": "400000", "debit": 10600, "credit": 0, "vat_code": None},
             {"account": "700000", "debit": 0, "credit": 10000, "vat_code": "V06"},
             {"account": "451000", "debit": 0, "credit": 600, "vat_code": "V06"}]
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO proposals VALUES (?,?,?,?,?,?,?,?,?)", [
            ("WL-0001", "AANK", "2026-10-05", supplier, 12100, json.dumps(purchase), "received",
             None, "2026-10-06T09:00:00"),
            ("WL-0002", "VERK", "2026-08-20", customer, 10600, json.dumps(sales), "received",
             None, "2026-10-06T09:01:00"),
        ])
    conn.close()


def test_validate_proposals(ledger: Path) -> None:
    _add_proposals(ledger)
    before, counter = _versions(ledger), _counter(ledger)
    msg = apply_event(ledger, "validate-proposals", ["--change-first"])
    assert "validated 2 proposals" in msg and "WL-0001" in msg
    rows = _q(ledger, "SELECT p.ref, p.status, b.date, b.reference, b.journal, b.doc_type, "
                      "b.rv, b.relation_id, p.relation_id, b.id FROM proposals p "
                      "JOIN bookings b ON b.id = p.booking_id ORDER BY p.ref")
    assert len(rows) == 2
    for ref, status, _, reference, _, doc_type, rv, brel, prel, _ in rows:
        assert status == "booked" and reference == ref and doc_type == "invoice"
        assert rv > counter and brel == prel
    assert rows[0][2] == "2026-10-05"
    assert rows[1][2] == "2026-10-01"  # proposal dated in a closed period
    # the accountant corrected the first one: other account, other amount, still balanced
    first_lines = _q(ledger, "SELECT account, debit, credit FROM booking_lines "
                             "WHERE booking_id=? ORDER BY line_no", (rows[0][9],))
    assert ("611000", 10000, 0) not in first_lines
    assert first_lines[0][0] == "440000" and first_lines[0][2] > 12100
    assert _unbalanced(ledger) == []
    _assert_tracked(ledger, before, counter)
    assert "nothing" in apply_event(ledger, "validate-proposals", [])


def test_book_vat_return(ledger: Path) -> None:
    before, counter = _versions(ledger), _counter(ledger)
    due = _q(ledger, "SELECT SUM(l.credit - l.debit) FROM booking_lines l JOIN bookings b "
                     "ON b.id=l.booking_id WHERE l.account='451000' "
                     "AND b.date BETWEEN '2026-07-01' AND '2026-09-30'")[0][0]
    msg = apply_event(ledger, "book-vat-return", [])
    assert "2026-Q3" in msg
    (bid, day, journal), = _q(ledger, "SELECT id, date, journal FROM bookings WHERE rv > ?",
                              (counter,))
    assert day == "2026-10-01" and journal == "DIV"
    lines = {a: (d, c) for a, d, c in _q(
        ledger, "SELECT account, debit, credit FROM booking_lines WHERE booking_id=?", (bid,))}
    assert lines["451000"] == (due, 0)
    assert "451200" in lines or "411200" in lines
    assert _unbalanced(ledger) == []
    _assert_tracked(ledger, before, counter)
    with pytest.raises(LedgerEventError, match="already booked"):
        apply_event(ledger, "book-vat-return", [])


def test_year_end_closing(ledger: Path) -> None:
    before, counter = _versions(ledger), _counter(ledger)
    apply_event(ledger, "year-end-closing", [])
    rows = _q(ledger, "SELECT date, journal, period_id FROM bookings WHERE rv > ?", (counter,))
    assert len(rows) >= 3
    assert all(r == ("2026-12-31", "DIV", 36) for r in rows)
    accounts = {a for (a,) in _q(ledger, "SELECT l.account FROM booking_lines l JOIN bookings b "
                                         "ON b.id=l.booking_id WHERE b.rv > ?", (counter,))}
    assert {"630200", "490000", "456000"} <= accounts
    assert _unbalanced(ledger) == []
    _assert_tracked(ledger, before, counter)


def test_delete_bookings_logs_deletions(ledger: Path) -> None:
    apply_event(ledger, "new-bookings", ["10"])
    counter = _counter(ledger)
    open_ids = {i for (i,) in _q(ledger, "SELECT b.id FROM bookings b JOIN periods p ON "
                                         "p.id=b.period_id WHERE p.closed=0")}
    msg = apply_event(ledger, "delete-bookings", ["4"])
    assert msg.startswith("deleted 4 bookings")
    log = _q(ledger, "SELECT seq, stream, key FROM deletion_log ORDER BY seq")
    deleted = [int(k) for _, s, k in log if s == "bookings"]
    assert len(deleted) == 4 and set(deleted) <= open_ids
    assert all(seq > counter for seq, _, _ in log)
    assert len({seq for seq, _, _ in log}) == len(log)
    assert _counter(ledger) == max(seq for seq, _, _ in log)
    marks = ",".join("?" * len(deleted))
    assert _q(ledger, f"SELECT COUNT(*) FROM bookings WHERE id IN ({marks})", tuple(deleted)) \
        == [(0,)]
    assert _q(ledger, f"SELECT COUNT(*) FROM booking_lines WHERE booking_id IN ({marks})",
              tuple(deleted)) == [(0,)]
    assert _q(ledger, f"SELECT COUNT(*) FROM matchings WHERE invoice_id IN ({marks}) "
                      f"OR payment_id IN ({marks})", (*deleted, *deleted)) == [(0,)]


def test_delete_bookings_also_deletes_their_matchings(ledger: Path) -> None:
    n_open = _q(ledger, "SELECT COUNT(*) FROM bookings b JOIN periods p ON p.id=b.period_id "
                        "WHERE p.closed=0")[0][0]
    msg = apply_event(ledger, "delete-bookings", [str(n_open + 5)])
    assert f"only {n_open} were available" in msg
    streams = {s for (s,) in _q(ledger, "SELECT stream FROM deletion_log")}
    assert "bookings" in streams
    mids = [int(k) for (k,) in _q(ledger, "SELECT key FROM deletion_log "
                                          "WHERE stream='matchings'")]
    assert mids, "every open booking went: paid invoices among them, their matchings with them"
    assert not set(mids) & {i for (i,) in _q(ledger, "SELECT id FROM matchings")}
    with pytest.raises(LedgerEventError, match="no bookings in open periods"):
        apply_event(ledger, "delete-bookings", ["1"])


# --------------------------------------------------------------------------- untracked events


def test_purge_deletion_log(ledger: Path) -> None:
    assert "nothing" in apply_event(ledger, "purge-deletion-log", [])
    assert _meta(ledger, "deletion_log_from") == "1"
    apply_event(ledger, "new-bookings", ["5"])
    apply_event(ledger, "delete-bookings", ["2"])
    max_seq = _q(ledger, "SELECT MAX(seq) FROM deletion_log")[0][0]
    before, counter = _versions(ledger), _counter(ledger)
    apply_event(ledger, "purge-deletion-log", [])
    assert _q(ledger, "SELECT COUNT(*) FROM deletion_log") == [(0,)]
    assert _meta(ledger, "deletion_log_from") == str(max_seq + 1)
    assert _counter(ledger) == counter
    after = _versions(ledger)
    assert {t: after[t] for t in RV_TABLES} == {t: before[t] for t in RV_TABLES}


def test_edit_closed_period_bypasses_tracking(ledger: Path) -> None:
    before, counter = _versions(ledger), _counter(ledger)
    tb_before = ledger_trial_balance(ledger)
    lines_before = _dump(ledger)["booking_lines"]
    msg = apply_event(ledger, "edit-closed-period", [])
    assert "closed period 2025-06" in msg and "AANK-2025-" in msg
    assert _versions(ledger) == before and _counter(ledger) == counter
    assert ledger_trial_balance(ledger) != tb_before
    changed = set(_dump(ledger)["booking_lines"]) ^ set(lines_before)
    assert len(changed) == 4  # two lines, old and new versions
    (bid,) = {row[0] for row in changed}
    assert _q(ledger, "SELECT p.code, f.closed FROM bookings b JOIN periods p ON p.id=b.period_id "
                      "JOIN fiscal_years f ON f.id=b.fiscal_year_id WHERE b.id=?", (bid,)) \
        == [("2025-06", 1)]
    assert _unbalanced(ledger) == []


def test_restructure_fiscal_year_bypasses_tracking(ledger: Path) -> None:
    before, counter = _versions(ledger), _counter(ledger)
    apply_event(ledger, "restructure-fiscal-year", [])
    assert _versions(ledger) == before and _counter(ledger) == counter
    fys = dict((c, (s, e)) for c, s, e in _q(ledger, "SELECT code, start_date, end_date "
                                                     "FROM fiscal_years"))
    assert fys["2025"] == ("2025-01-01", "2026-03-31")
    assert fys["2026"] == ("2026-04-01", "2026-12-31")
    assert _q(ledger, "SELECT code, fiscal_year_id FROM periods WHERE code BETWEEN '2026-01' "
                      "AND '2026-04' ORDER BY code") == [
        ("2026-01", 2), ("2026-02", 2), ("2026-03", 2), ("2026-04", 3)]
    assert _q(ledger, "SELECT COUNT(*) FROM bookings b JOIN periods p ON p.id=b.period_id "
                      "WHERE b.fiscal_year_id <> p.fiscal_year_id") == [(0,)]
    assert _q(ledger, "SELECT COUNT(*) FROM bookings WHERE date LIKE '2026-02%' "
                      "AND fiscal_year_id=2")[0][0] > 0
    with pytest.raises(LedgerEventError, match="already"):
        apply_event(ledger, "restructure-fiscal-year", [])


def test_snapshot_and_restore_bring_back_old_contents(ledger: Path) -> None:
    old = _dump(ledger)
    msg = apply_event(ledger, "snapshot", ["before-vat"])
    assert (snapshot_dir(ledger) / "before-vat.sqlite").is_file() and "before-vat" in msg
    assert _dump(ledger) == old
    apply_event(ledger, "new-bookings", ["5"])
    apply_event(ledger, "book-vat-return", [])
    apply_event(ledger, "edit-closed-period", [])
    assert _counter(ledger) > int(dict(old["meta"])["change_counter"])
    apply_event(ledger, "restore-backup", ["before-vat"])
    assert _dump(ledger) == old


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("event", "args", "match"), [
    ("explode", [], "unknown ledger event"),
    ("new-bookings", [], "exactly one argument"),
    ("new-bookings", ["many"], "whole number"),
    ("new-bookings", ["0"], "at least 1"),
    ("delete-bookings", ["1", "2"], "exactly one argument"),
    ("book-vat-return", ["now"], "takes no arguments"),
    ("validate-proposals", ["--force"], "--change-first"),
    ("snapshot", [], "NAME"),
    ("snapshot", ["../escape"], "NAME"),
    ("restore-backup", ["never-taken"], "no snapshot 'never-taken'"),
])
def test_bad_arguments_raise_clear_errors(ledger: Path, event: str, args: list[str],
                                          match: str) -> None:
    before = _dump(ledger)
    with pytest.raises(LedgerEventError, match=match) as info:
        apply_event(ledger, event, args)
    assert str(ledger) in str(info.value)
    assert _dump(ledger) == before


def test_missing_ledger_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    for event, args in (("new-bookings", ["1"]), ("snapshot", ["x"]), ("purge-deletion-log", [])):
        with pytest.raises(LedgerEventError, match="ledger not found") as info:
            apply_event(missing, event, args)
        assert str(missing) in str(info.value)
    assert not missing.exists()


def test_every_event_has_help() -> None:
    assert set(LEDGER_EVENTS) == {
        "new-bookings", "validate-proposals", "book-vat-return", "year-end-closing",
        "delete-bookings", "purge-deletion-log", "edit-closed-period",
        "restructure-fiscal-year", "snapshot", "restore-backup"}
    for name, event in LEDGER_EVENTS.items():
        assert event.name == name
        assert event.help and "\n" not in event.help
        assert event.summary.endswith("[tracked]" if event.tracked else "[untracked]")
        assert callable(event.load()), event.handler
    assert {e.name for e in LEDGER_EVENTS.values() if e.takes_count} == {
        "new-bookings", "delete-bookings"}


def _prepare(path: Path, event: str) -> list[str]:
    """What `event` needs to find in the ledger at `path`; its arguments."""
    if event == "validate-proposals":
        _add_proposals(path)
    if event == "purge-deletion-log":
        apply_event(path, "delete-bookings", ["2"])
    if event == "restore-backup":
        apply_event(path, "snapshot", ["earlier"])
        apply_event(path, "new-bookings", ["2"])
        return ["earlier"]
    return {"new-bookings": ["3"], "delete-bookings": ["2"], "snapshot": ["now"]}.get(event, [])


@pytest.mark.parametrize("event", sorted(LEDGER_EVENTS))
def test_the_registry_says_which_events_are_tracked(ledger: Path, event: str) -> None:
    args = _prepare(ledger, event)
    counter = _counter(ledger)
    apply_event(ledger, event, args)
    if LEDGER_EVENTS[event].tracked:
        assert _counter(ledger) > counter
    else:  # the counter does not move on (a backup put back even takes it back)
        assert _counter(ledger) <= counter


# --------------------------------------------------------------------------- the package


def test_the_event_registry_loads_without_the_simulator() -> None:
    """`dossync` reads the registry on every start: it must not load SQLite or the
    generator."""
    done = subprocess.run([sys.executable, "-c", (
        "import sys; from dossync.core.demo_package.events import LEDGER_EVENTS; "
        "print(sorted(m for m in sys.modules if m.startswith('dossync.core.demo_package'))); "
        "print('sqlite3' in sys.modules)")], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == [
        "['dossync.core.demo_package', 'dossync.core.demo_package.events']", "False"]


def test_the_public_names_load_from_the_package() -> None:
    for name in demo_package.__all__:
        assert getattr(demo_package, name) is not None, name
    assert set(demo_package.__all__) <= set(dir(demo_package))
    with pytest.raises(AttributeError, match="no_such_name"):
        demo_package.no_such_name  # noqa: B018


def test_rows_are_named_after_the_schema(base_ledger: Path) -> None:
    conn = sqlite3.connect(base_ledger)
    try:
        for table, row_type in ROW_TYPES.items():
            columns = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
            assert row_type._fields == columns, table
    finally:
        conn.close()
    # a booked line is the booking's id, its number, then the posting's fields
    assert BookingLineRow._fields == ("booking_id", "line_no", *Posting._fields)


def test_the_reference_data_sits_beside_core() -> None:
    # core/../data in the source tree, dossync/data in the wheel (tests/test_wheel.py)
    assert DATA_DIR == ROOT / "data"
    assert (DATA_DIR / "mar.csv").is_file() and (DATA_DIR / "vat_codes.csv").is_file()


def test_a_proposal_received_twice_is_taken_once(ledger: Path) -> None:
    proposal = {"ref": "WL-0009", "journal": "AANK", "date": "2026-10-05", "relation_id": None,
                "amount": 100, "lines": [{"account": "440000", "debit": 0, "credit": 100}]}
    counter = _counter(ledger)
    receive_proposals(ledger, [proposal])
    receive_proposals(ledger, [proposal])
    assert _q(ledger, "SELECT ref, status FROM proposals") == [("WL-0009", "received")]
    assert _counter(ledger) == counter
    with pytest.raises(LedgerEventError, match="does not exist"):
        receive_proposals(ledger.with_name("missing.sqlite"), [proposal])
