"""The package's maintenance tools: ledger events that bypass change tracking.

Real packages ship such tools (purging an old deletion log, correcting a
closed year, moving a fiscal year's end), and they change the books without
moving the change counter or logging what they did. A sync cannot see these
changes; reconciling finds them. Each runs in one
:class:`~dossync.core.demo_package.ledger.Transaction` but takes no counter
value, so the change counter and the history stay as they were.
"""

from __future__ import annotations

from dossync.core.demo_package.documents import ALT_COST_ACCOUNTS
from dossync.core.demo_package.events import LedgerEventError, no_args
from dossync.core.demo_package.ledger import Transaction, in_transaction


@in_transaction
def purge_deletion_log(tx: Transaction, args: list[str]) -> str:
    no_args(tx.path, tx.event, args)
    count, max_seq = tx.conn.execute("SELECT COUNT(*), MAX(seq) FROM deletion_log").fetchone()
    if not count:
        tx.conn.execute("ROLLBACK")
        return "deletion log already empty: nothing purged"
    tx.conn.execute("DELETE FROM deletion_log")
    # what the log still holds starts after the purged entries
    tx.conn.execute("UPDATE meta SET value=? WHERE key='deletion_log_from'", (str(max_seq + 1),))
    tx.commit()
    return f"purged {count} deletion log entries; the log is now complete from seq {max_seq + 1}"


@in_transaction
def edit_closed_period(tx: Transaction, args: list[str]) -> str:
    no_args(tx.path, tx.event, args)
    candidates = tx.conn.execute(
        "SELECT p.id, p.code FROM periods p JOIN fiscal_years f ON f.id = p.fiscal_year_id "
        "WHERE p.closed=1 AND f.closed=1 ORDER BY (p.code = '2025-06') DESC, p.code DESC"
    ).fetchall()
    for period_id, period_code in candidates:
        invoices = tx.conn.execute(
            "SELECT b.id, b.doc_no FROM bookings b WHERE b.period_id=? AND b.journal='AANK' "
            "AND b.doc_type='invoice' AND EXISTS (SELECT 1 FROM booking_lines l WHERE "
            "l.booking_id=b.id AND l.account='440000' AND l.credit>0) AND EXISTS (SELECT 1 FROM "
            "booking_lines l WHERE l.booking_id=b.id AND l.account LIKE '6%' AND l.debit>0) "
            "ORDER BY b.id", (period_id,)).fetchall()
        if invoices:
            break
    else:
        raise LedgerEventError(f"{tx.path}: no purchase invoice in a closed fiscal year to edit")
    bid, doc = invoices[int(tx.rng.random() * len(invoices))]
    line_no, old_account = tx.conn.execute(
        "SELECT line_no, account FROM booking_lines WHERE booking_id=? AND account LIKE '6%' "
        "AND debit>0 ORDER BY line_no LIMIT 1", (bid,)).fetchone()
    new_account = next(a for a in ALT_COST_ACCOUNTS if a != old_account)
    delta = 100 * (1 + int(tx.rng.random() * 8)) + int(tx.rng.random() * 100)
    tx.conn.execute("UPDATE booking_lines SET account=?, debit=debit+? "
                    "WHERE booking_id=? AND line_no=?", (new_account, delta, bid, line_no))
    ap_no = tx.conn.execute("SELECT MIN(line_no) FROM booking_lines WHERE booking_id=? "
                            "AND account='440000' AND credit>0", (bid,)).fetchone()[0]
    tx.conn.execute("UPDATE booking_lines SET credit=credit+? WHERE booking_id=? AND line_no=?",
                    (delta, bid, ap_no))
    tx.conn.execute("COMMIT")  # untracked: no rv, no counter
    return (f"edited {doc} in closed period {period_code} (change tracking bypassed): line "
            f"{line_no} account {old_account}->{new_account}, amount +{delta / 100:.2f} EUR on "
            f"the cost and supplier lines")


@in_transaction
def restructure_fiscal_year(tx: Transaction, args: list[str]) -> str:
    no_args(tx.path, tx.event, args)
    fiscal_years = {code: (fid, end) for fid, code, end in tx.conn.execute(
        "SELECT id, code, end_date FROM fiscal_years")}
    if "2025" not in fiscal_years or "2026" not in fiscal_years:
        raise LedgerEventError(f"{tx.path}: fiscal years 2025 and 2026 are required")
    fy25, end25 = fiscal_years["2025"]
    fy26, _ = fiscal_years["2026"]
    if end25 == "2026-03-31":
        raise LedgerEventError(f"{tx.path}: fiscal year 2025 already ends on 2026-03-31")
    tx.conn.execute("UPDATE fiscal_years SET end_date='2026-03-31' WHERE id=?", (fy25,))
    tx.conn.execute("UPDATE fiscal_years SET start_date='2026-04-01' WHERE id=?", (fy26,))
    pids = [pid for (pid,) in tx.conn.execute(
        "SELECT id FROM periods WHERE code IN ('2026-01','2026-02','2026-03')")]
    marks = ",".join("?" * len(pids))
    tx.conn.execute(f"UPDATE periods SET fiscal_year_id=? WHERE id IN ({marks})", (fy25, *pids))
    moved = tx.conn.execute(f"UPDATE bookings SET fiscal_year_id=? WHERE period_id IN ({marks})",
                            (fy25, *pids)).rowcount
    tx.conn.execute("COMMIT")  # untracked
    return (f"restructured fiscal years (change tracking bypassed): FY 2025 now runs "
            f"2025-01-01..2026-03-31, FY 2026 2026-04-01..2026-12-31; periods 2026-01..2026-03 "
            f"and {moved} bookings moved to FY 2025")
