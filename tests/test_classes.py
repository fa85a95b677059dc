"""Dashboard and P&L by account class, for charts that are not the Belgian MAR.

The expected figures come from the packages' own libraries (Beancount's
loader and get_weight; piecash's accounts and splits), by their own account
types, through code that shares nothing with the connectors.
"""
from __future__ import annotations

import shutil
import warnings
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from conftest import cli_json

CORPUS = Path(__file__).resolve().parent / "corpus"


def cents(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def beancount_figures(path: Path) -> dict:
    """Revenue and costs of the ledger's last year, and the P&L per account, in the
    operating currency, as Beancount weighs them."""
    from beancount import loader
    from beancount.core import convert, data

    entries, errors, options = loader.load_file(str(path))
    assert not errors
    currency = options["operating_currency"][0]
    year = max(e.date.year for e in entries if isinstance(e, data.Transaction))
    income, expenses = options["name_income"], options["name_expenses"]
    per_account: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        if not isinstance(entry, data.Transaction) or entry.date.year != year:
            continue
        for posting in entry.postings:
            weight = convert.get_weight(posting)
            root = posting.account.split(":")[0]
            if weight.currency == currency and root in (income, expenses):
                per_account[posting.account] += -weight.number if root == income \
                    else weight.number
    revenue = sum((v for a, v in per_account.items() if a.startswith(income + ":")), Decimal(0))
    costs = sum((v for a, v in per_account.items() if a.startswith(expenses + ":")), Decimal(0))
    return {"year": str(year), "revenue": revenue, "costs": costs, "accounts": per_account}


@pytest.mark.parametrize("name", ["fava-example", "query-example"])
def test_beancount_dashboard_and_pnl_follow_income_and_expenses(tmp_path, name):
    source = tmp_path / f"{name}.beancount"
    shutil.copy(CORPUS / "beancount" / f"{name}.beancount", source)
    home = tmp_path / "firm"
    assert cli_json(home, "dossier", "add", "BC", "--package", "beancount",
                    "--source", str(source))[0] == 0
    expected = beancount_figures(source)
    assert expected["revenue"] > 0 and expected["costs"] > 0
    _, dashboard = cli_json(home, "report", "BC", "dashboard")
    assert dashboard["fiscal_year"] == expected["year"]  # a calendar-year book: its year
    assert (dashboard["revenue"], dashboard["costs"]) == (
        cents(expected["revenue"]), cents(expected["costs"]))
    assert dashboard["result"] == cents(expected["revenue"] - expected["costs"])
    assert dashboard["currency"] == "USD"
    _, pnl = cli_json(home, "report", "BC", "pnl")
    assert {a["account"]: a["amount"] for a in pnl["accounts"]} == {
        account: cents(value) for account, value in expected["accounts"].items()}
    assert {a["class"] for a in pnl["accounts"]} == {"revenue", "cost"}


def test_gnucash_dashboard_follows_the_account_types(tmp_path):
    import piecash
    source = tmp_path / "book_prices.gnucash"
    shutil.copy(CORPUS / "gnucash" / "book_prices.gnucash", source)
    home = tmp_path / "firm"
    assert cli_json(home, "dossier", "add", "BP", "--package", "gnucash",
                    "--source", str(source))[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = piecash.open_book(str(source), readonly=True, open_if_lock=True, do_backup=False)
    try:
        currency = book.default_currency
        year = max(t.post_date.year for t in book.transactions)
        revenue = costs = bank = Decimal(0)
        for account in book.accounts:
            if account.commodity != currency:
                continue
            for split in account.splits:
                if account.type == "INCOME" and split.transaction.post_date.year == year:
                    revenue -= split.quantity
                elif account.type == "EXPENSE" and split.transaction.post_date.year == year:
                    costs += split.quantity
                elif account.type in ("BANK", "CASH"):
                    bank += split.quantity
    finally:
        book.close()
    assert revenue > 0 and costs > 0 and bank != 0
    _, dashboard = cli_json(home, "report", "BP", "dashboard")
    assert dashboard["fiscal_year"] == str(year)
    assert (dashboard["revenue"], dashboard["costs"], dashboard["bank"]) == (
        cents(revenue), cents(costs), cents(bank))
    assert dashboard["currency"] == "EUR"
