"""The portal's reports: trial balance, profit and loss, dashboard, archive.

What the client sees, exact (Decimal); `core.reports` rounds them once, for
showing, into the contract's shapes.
"""
from __future__ import annotations

from pathlib import Path

from dossync.core.portal.records import (ArchiveDocument, Dashboard, MonthlyRevenue, PnlAccount,
                                         PnlReport, TrialBalanceRow)
from dossync.core.portal.schema import MONEY, connect
from dossync.core.portal.store import _dicts, _one, _records

# Amounts come back exact (Decimal); `core.reports` rounds them for showing.
# The client sees definitive bookings plus the provisional ones: proposals
# from the worklist (until the package holds a booking with their reference:
# then that booking stands for them, never both) and bookings the package
# itself holds as drafts (Beancount's `!`); unless validated_only. Money
# reports take the lines in the dossier's currency (commodity NULL).
_BOOKS = """
    bk AS (
        SELECT id, journal, doc_no, doc_type, date, due_date, relation_id, fiscal_year_id,
               period_id, coalesce(draft, false) AS provisional FROM bookings
        WHERE dossier = $code AND NOT ($validated_only AND coalesce(draft, false))
        UNION ALL
        SELECT id, journal, ref, doc_type, date, due_date, relation_id, fiscal_year_id,
               period_id, true FROM provisional_bookings
        WHERE dossier = $code AND NOT $validated_only
          AND ref NOT IN (SELECT reference FROM bookings
                          WHERE dossier = $code AND reference IS NOT NULL)),
    ln AS (
        SELECT booking_id, account, debit, credit, relation_id, commodity FROM lines
        WHERE dossier = $code
        UNION ALL
        SELECT booking_id, account, debit, credit, relation_id, NULL FROM provisional_lines
        WHERE dossier = $code AND NOT $validated_only),
    ac AS (SELECT code, any_value(name) AS name, any_value(class) AS class FROM accounts
           WHERE dossier = $code GROUP BY code)"""


def _fiscal_year_for(con, code: str, period: str | None) -> tuple | None:
    """(id, code, start, end) of the fiscal year holding `period`; else the one holding
    today (a calendar-year book: this year); else the latest one."""
    if period:
        row = _one(con.execute(
            "SELECT f.id, f.code, f.start_date, f.end_date FROM periods p JOIN fiscal_years f "
            "ON f.dossier = p.dossier AND f.id = p.fiscal_year_id "
            "WHERE p.dossier = ? AND p.code = ?", [code, period]).fetchall())
        if row:
            return row
    return _one(con.execute(
        "SELECT id, code, start_date, end_date FROM fiscal_years WHERE dossier = ? "
        "ORDER BY (current_date BETWEEN start_date AND end_date) DESC, start_date DESC LIMIT 1",
        [code]).fetchall())


def _period_end(period: str | None) -> str | None:
    """First day after period YYYY-MM, as an ISO date (bookings before it count)."""
    if not period:
        return None
    year, month = int(period[:4]), int(period[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01"


def report_trial_balance(path: Path, code: str, period: str | None = None,
                         validated_only: bool = False) -> list[TrialBalanceRow]:
    """Per account (and commodity: None for the dossier's currency) over bookings up to
    the end of `period`; exact amounts."""
    before = _period_end(period)
    with connect(path, read_only=True) as con:
        return _records(con.execute(f"""
            WITH {_BOOKS}
            SELECT l.account, any_value(a.name) AS name, any_value(a.class) AS account_class,
                   l.commodity, CAST(sum(l.debit) AS {MONEY}) AS debit,
                   CAST(sum(l.credit) AS {MONEY}) AS credit
            FROM ln l JOIN bk b ON b.id = l.booking_id
            LEFT JOIN ac a ON a.code = l.account
            WHERE $before IS NULL OR b.date < CAST($before AS DATE)
            GROUP BY l.account, l.commodity ORDER BY l.account, l.commodity NULLS FIRST""",
            {"code": code, "before": before, "validated_only": validated_only}), TrialBalanceRow)


def report_pnl(path: Path, code: str, period: str | None = None,
               validated_only: bool = False) -> PnlReport:
    """Profit and loss of the fiscal year (up to `period` when given): per account of
    class revenue (credit - debit) or cost (debit - credit), exact."""
    with connect(path, read_only=True) as con:
        fy = _fiscal_year_for(con, code, period or _active_period(con, code))
        if fy is None:
            return PnlReport(fiscal_year=None, accounts=[])
        before = _period_end(period)
        rows = _records(con.execute(f"""
            WITH {_BOOKS}
            SELECT l.account, any_value(a.name) AS name, a.class AS account_class,
                   CAST(sum(CASE WHEN a.class = 'revenue' THEN l.credit - l.debit
                                 ELSE l.debit - l.credit END) AS {MONEY}) AS amount
            FROM ln l JOIN bk b ON b.id = l.booking_id
            JOIN ac a ON a.code = l.account
            WHERE b.fiscal_year_id = $fy AND a.class IN ('revenue', 'cost')
              AND l.commodity IS NULL
              AND ($before IS NULL OR b.date < CAST($before AS DATE))
            GROUP BY l.account, a.class ORDER BY a.class DESC, l.account""",
            {"code": code, "fy": fy[0], "before": before,
             "validated_only": validated_only}), PnlAccount)
    return PnlReport(fiscal_year=fy[1], accounts=rows)


def _active_period(con, code: str) -> str | None:
    row = _one(con.execute("SELECT active_period FROM dossiers WHERE code = ?", [code]).fetchall())
    return row[0] if row else None


def report_dashboard(path: Path, code: str, validated_only: bool = False) -> Dashboard:
    """The portal's dashboard figures for the current fiscal year, exact, by account class."""
    with connect(path, read_only=True) as con:
        period = _active_period(con, code)
        fy = _fiscal_year_for(con, code, period)
        params = {"code": code, "fy": fy[0] if fy else None, "validated_only": validated_only}

        def net(cls: str, credit_side: bool, this_year: bool) -> str:
            amount = "l.credit - l.debit" if credit_side else "l.debit - l.credit"
            year = " AND b.fiscal_year_id = $fy" if this_year else ""
            return (f"CAST(coalesce(sum(CASE WHEN a.class = '{cls}'{year} THEN {amount} END), 0) "
                    f"AS {MONEY})")

        (row,) = _dicts(con.execute(f"""
            WITH {_BOOKS}
            SELECT {net('revenue', True, True)} AS revenue, {net('cost', False, True)} AS costs,
                   {net('bank', False, False)} AS bank,
                   {net('receivable', False, False)} AS receivables,
                   {net('payable', True, False)} AS payables,
                   {net('vat', True, False)} AS vat_position
            FROM ln l JOIN bk b ON b.id = l.booking_id JOIN ac a ON a.code = l.account
            WHERE l.commodity IS NULL""", params))
        monthly = _records(con.execute(f"""
            WITH {_BOOKS}
            SELECT p.code AS period, CAST(sum(l.credit - l.debit) AS {MONEY}) AS revenue
            FROM ln l JOIN bk b ON b.id = l.booking_id JOIN ac a ON a.code = l.account
            JOIN periods p ON p.dossier = $code AND p.id = b.period_id
            WHERE b.fiscal_year_id = $fy AND a.class = 'revenue' AND l.commodity IS NULL
            GROUP BY p.code ORDER BY p.code""", params), MonthlyRevenue)
    return Dashboard(fiscal_year=fy[1] if fy else None, **row,
                     result=row["revenue"] - row["costs"], monthly_revenue=monthly)


def report_archive(path: Path, code: str, period: str | None = None,
                   validated_only: bool = False) -> list[ArchiveDocument]:
    """Invoices and credit notes, by date, journal and number."""
    before = _period_end(period)
    with connect(path, read_only=True) as con:
        return _records(con.execute(f"""
            WITH {_BOOKS},
            docs AS (
                SELECT b.*, j.kind FROM bk b JOIN journals j ON j.dossier = $code AND j.code = b.journal
                WHERE j.kind IN ('purchase', 'sales') AND b.doc_type IN ('invoice', 'credit_note')
                  AND ($before IS NULL OR b.date < CAST($before AS DATE))),
            -- a document's amount is its open item: the lines that name the customer
            -- or supplier (receivable for sales, payable for purchases)
            gross AS (
                SELECT l.booking_id id,
                       CAST(sum(CASE WHEN d.kind = 'sales' THEN l.debit - l.credit
                                     ELSE l.credit - l.debit END) AS {MONEY}) amount
                FROM ln l JOIN docs d ON d.id = l.booking_id
                WHERE l.relation_id IS NOT NULL AND l.commodity IS NULL
                GROUP BY l.booking_id),
            paid AS (
                SELECT m.invoice_id id, CAST(sum(m.amount) AS {MONEY}) paid FROM matchings m
                WHERE m.dossier = $code GROUP BY m.invoice_id)
            SELECT d.doc_no AS ref, d.journal, strftime(d.date, '%Y-%m-%d') AS date,
                   strftime(d.due_date, '%Y-%m-%d') AS due_date, r.name AS relation,
                   coalesce(g.amount, 0) AS amount, coalesce(p.paid, 0) AS paid, d.provisional
            FROM docs d LEFT JOIN gross g ON g.id = d.id LEFT JOIN paid p ON p.id = d.id
            LEFT JOIN relations r ON r.dossier = $code AND r.id = d.relation_id
            ORDER BY d.date, d.journal, d.doc_no""",
            {"code": code, "before": before, "validated_only": validated_only}), ArchiveDocument)
