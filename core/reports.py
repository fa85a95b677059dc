"""What the client sees in the portal, shaped for the CLI's JSON and tables.

The figures come from `portal` exact (Decimal, as the package computed
them); this module rounds them once, at the end, into the contract's shapes
(decimal strings with two decimals, half up) and adds the exact value where
an analyst may want to check it against the package (`balance_exact`).
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from dossync.core import money, portal
from dossync.core.model import UsageError

Report = Literal["dashboard", "trial-balance", "pnl", "archive"]
REPORTS: tuple[str, ...] = ("dashboard", "trial-balance", "pnl", "archive")


def check_period(path: Path, code: str, period: str | None) -> None:
    """Refuse a period the dossier's books do not have: a report 'up to 9999-12' would
    silently show another year (the fiscal year is found from the period)."""
    if period is None:
        return
    known = [p["code"] for p in portal.periods(path, code)]
    if period in known:
        return
    if not known:
        raise UsageError(f"--period {period}: dossier {code} has no periods in the portal yet; "
                         f"sync it first ('dossync sync {code}')")
    raise UsageError(f"--period {period}: dossier {code} has no such period; its {len(known)} "
                     f"periods run {known[0]}..{known[-1]}: give one of those, or leave "
                     f"--period out")


def trial_balance(path: Path, code: str, period: str | None = None,
                  validated_only: bool = False) -> list[dict]:
    """Per account (and per commodity other than the dossier's currency): debit, credit and
    balance rounded to the cent from the exact sums; `balance_exact` unrounded."""
    check_period(path, code, period)
    return [{"account": row.account, "name": row.name, "class": row.account_class,
             "commodity": row.commodity, "debit": money.to_str(row.debit),
             "credit": money.to_str(row.credit), "balance": money.to_str(row.debit - row.credit),
             "balance_exact": money.exact_str(row.debit - row.credit)}
            for row in portal.report_trial_balance(path, code, period, validated_only)]


def pnl(path: Path, code: str, period: str | None = None, validated_only: bool = False) -> dict:
    check_period(path, code, period)
    data = portal.report_pnl(path, code, period, validated_only)
    revenue = sum((a.amount for a in data.accounts if a.account_class == "revenue"), Decimal(0))
    costs = sum((a.amount for a in data.accounts if a.account_class == "cost"), Decimal(0))
    return {"fiscal_year": data.fiscal_year, "period": period,
            "revenue": money.to_str(revenue), "costs": money.to_str(costs),
            "result": money.to_str(revenue - costs),
            "accounts": [{"account": a.account, "name": a.name, "class": a.account_class,
                          "amount": money.to_str(a.amount)} for a in data.accounts]}


def dashboard(path: Path, code: str, validated_only: bool = False) -> dict:
    dossier = portal.get_dossier(path, code)
    figures = portal.report_dashboard(path, code, validated_only)
    return {"updated_until": dossier.updated_until, "active_period": dossier.active_period,
            "fiscal_year": figures.fiscal_year, "currency": dossier.book_currency,
            **{k: money.to_str(getattr(figures, k)) for k in
               ("revenue", "costs", "result", "bank", "receivables", "payables", "vat_position")},
            "monthly_revenue": [{"period": m.period, "revenue": money.to_str(m.revenue)}
                                for m in figures.monthly_revenue]}


def payment_status(amount, paid) -> str:
    if paid <= 0:
        return "open"
    return "paid" if paid >= abs(amount) else "partly_paid"


def archive(path: Path, code: str, period: str | None = None,
            validated_only: bool = False) -> list[dict]:
    check_period(path, code, period)
    return [{"ref": doc.ref, "journal": doc.journal, "date": doc.date, "due_date": doc.due_date,
             "relation": doc.relation, "amount": money.to_str(doc.amount),
             "booking_status": "provisional" if doc.provisional else "booked",
             "payment_status": payment_status(doc.amount, doc.paid)}
            for doc in portal.report_archive(path, code, period, validated_only)]
