"""What the client sees in the portal, shaped for the CLI's JSON and tables.

The figures come from `portal` in integer cents; this module turns them
into the contract's shapes (decimal strings, payment statuses).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from core import portal
from core.model import cents_to_str

Report = Literal["dashboard", "trial-balance", "pnl", "archive"]
REPORTS: tuple[str, ...] = ("dashboard", "trial-balance", "pnl", "archive")


def trial_balance(path: Path, code: str, period: str | None = None,
                  validated_only: bool = False) -> list[dict]:
    return [{"account": account, "name": name, "debit": cents_to_str(debit),
             "credit": cents_to_str(credit), "balance": cents_to_str(debit - credit)}
            for account, name, debit, credit
            in portal.report_trial_balance(path, code, period, validated_only)]


def pnl(path: Path, code: str, period: str | None = None, validated_only: bool = False) -> dict:
    data = portal.report_pnl(path, code, period, validated_only)
    revenue = sum(a for acc, _, a in data["accounts"] if acc.startswith("7"))
    costs = sum(a for acc, _, a in data["accounts"] if acc.startswith("6"))
    return {"fiscal_year": data["fiscal_year"], "period": period,
            "revenue": cents_to_str(revenue), "costs": cents_to_str(costs),
            "result": cents_to_str(revenue - costs),
            "accounts": [{"account": acc, "name": name, "amount": cents_to_str(amount)}
                         for acc, name, amount in data["accounts"]]}


def dashboard(path: Path, code: str, validated_only: bool = False) -> dict:
    dossier = portal.get_dossier(path, code)
    figures = portal.report_dashboard(path, code, validated_only)
    return {"updated_until": dossier.updated_until, "active_period": dossier.active_period,
            "fiscal_year": figures["fiscal_year"],
            **{k: cents_to_str(figures[k]) for k in
               ("revenue", "costs", "result", "bank", "receivables", "payables", "vat_position")},
            "monthly_revenue": [{"period": p, "revenue": cents_to_str(a)}
                                for p, a in figures["monthly_revenue"]]}


def payment_status(amount: int, paid: int) -> str:
    if paid <= 0:
        return "open"
    return "paid" if paid >= abs(amount) else "partly_paid"


def archive(path: Path, code: str, period: str | None = None,
            validated_only: bool = False) -> list[dict]:
    return [{"ref": ref, "journal": journal, "date": date, "due_date": due, "relation": relation,
             "amount": cents_to_str(amount),
             "booking_status": "provisional" if provisional else "booked",
             "payment_status": payment_status(amount, paid)}
            for ref, journal, date, due, relation, amount, paid, provisional
            in portal.report_archive(path, code, period, validated_only)]
