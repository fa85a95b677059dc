"""GnuCash books written by piecash, synced through the real CLI.

The reference figures are piecash's own: an account's balance is
`get_balance(recurse=False, natural_sign=False)` (the sum of its split
quantities). For accounts in a foreign currency the portal holds their
value in the book currency, which the test derives from the same
transaction the way the connector documents it.
"""
from __future__ import annotations

import datetime
import hashlib
import random
import shutil
import sqlite3
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import cents, cli, cli_json, portal_trial_balance

piecash = pytest.importorskip("piecash")

START = datetime.date(2021, 1, 1)


def _open(path: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # piecash's SQLAlchemy 1.4 deprecation noise
        return piecash.open_book(str(path), open_if_lock=True, do_backup=False, **kw)


def make_book(path: Path, transactions: int = 400, seed: int = 6) -> None:
    """A EUR book with USD and GBP accounts, a customer, a vendor, random transactions."""
    from piecash import Account, Address, Customer, Split, Transaction, Vendor

    rnd = random.Random(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = piecash.create_book(str(path), currency="EUR", overwrite=True)
        eur = book.default_currency
        usd, gbp = book.currencies(mnemonic="USD"), book.currencies(mnemonic="GBP")
        root = book.root_account
        assets = Account("Assets", "ASSET", eur, parent=root, placeholder=True)
        bank = Account("Bank", "BANK", eur, parent=assets, code="550")
        cash = Account("Cash", "CASH", eur, parent=assets, code="570")
        us_bank = Account("US Bank", "BANK", usd, parent=assets)
        uk_bank = Account("UK Bank", "BANK", gbp, parent=assets, code="552")
        card = Account("Credit Card", "CREDIT", eur,
                       parent=Account("Liabilities", "LIABILITY", eur, parent=root), code="499")
        income = Account("Income", "INCOME", eur, parent=root)
        sales = Account("Sales", "INCOME", eur, parent=income, code="700")
        expenses = Account("Expenses", "EXPENSE", eur, parent=root)
        groceries = Account("Groceries", "EXPENSE", eur, parent=expenses, code="604")
        travel = Account("Travel", "EXPENSE", eur, parent=expenses)
        us_fees = Account("US Fees", "EXPENSE", usd, parent=expenses)
        equity = Account("Opening Balances", "EQUITY", eur,
                         parent=Account("Equity", "EQUITY", eur, parent=root))
        Customer("Bakkerij Peeters", eur, address=Address(name="Peeters", email="info@peeters.be"),
                 book=book)
        Vendor("Drukkerij Claes", eur, book=book)
        book.flush()

        def money(low: int, high: int) -> Decimal:
            return Decimal(rnd.randint(low * 100, high * 100)) / 100

        Transaction(eur, "opening", post_date=START, splits=[
            Split(bank, Decimal("5000")), Split(equity, Decimal("-5000"))])
        for i in range(transactions):
            day = START + datetime.timedelta(days=rnd.randint(0, 2 * 365))
            kind = rnd.random()
            a = money(5, 900)
            if kind < 0.45:  # an expense in EUR, sometimes split over two accounts
                pay = rnd.choice([bank, cash, card])
                if rnd.random() < 0.3:
                    b = money(1, 90)
                    splits = [Split(groceries, a), Split(travel, b), Split(pay, -(a + b))]
                else:
                    splits = [Split(rnd.choice([groceries, travel]), a), Split(pay, -a)]
                Transaction(eur, f"expense {i}", num=str(i), post_date=day, splits=splits)
            elif kind < 0.7:  # a sale
                Transaction(eur, f"sale {i}", num=f"S{i}", post_date=day,
                            splits=[Split(bank, a), Split(sales, -a)])
            elif kind < 0.8:  # paid in USD from the US account, booked on a EUR expense
                eur_amount = (a * Decimal("0.9")).quantize(Decimal("0.01"))
                Transaction(usd, f"usd expense {i}", post_date=day, splits=[
                    Split(us_bank, -a), Split(travel, value=a, quantity=eur_amount)])
            elif kind < 0.9:  # EUR moved to the US or UK account
                foreign, rate = rnd.choice([(us_bank, Decimal("1.1")), (uk_bank, Decimal("0.85"))])
                Transaction(eur, f"transfer {i}", post_date=day, splits=[
                    Split(bank, -a),
                    Split(foreign, value=a, quantity=(a * rate).quantize(Decimal("0.01")))])
            else:  # paid in GBP from the UK account, booked on a EUR expense
                eur_amount = (a * Decimal("1.17")).quantize(Decimal("0.01"))
                Transaction(gbp, f"gbp expense {i}", post_date=day, splits=[
                    Split(uk_bank, -a), Split(groceries, value=a, quantity=eur_amount)])
        # USD on both sides: no split in the book currency, no rate in the transaction.
        Transaction(usd, "us fee", post_date=START + datetime.timedelta(days=40), splits=[
            Split(us_bank, Decimal("-12.50")), Split(us_fees, Decimal("12.50"))])
        book.save()
        book.close()


def key(account) -> str:
    return account.code or account.fullname


def piecash_trial_balance(path: Path) -> dict[str, tuple[int, int]]:
    """{account: (debit, credit)} in EUR cents, from piecash's own figures."""
    book = _open(path, readonly=True)
    try:
        eur = book.default_currency
        result: dict[str, list[int]] = {}
        for account in book.accounts:
            if account.commodity == eur:
                # piecash's balance of the account: the sum of its split quantities.
                balance = account.get_balance(recurse=False, natural_sign=False)
                debit = sum(s.quantity for s in account.splits if s.quantity > 0)
                assert debit - sum(-s.quantity for s in account.splits if s.quantity < 0) == balance
                amounts = [debit, debit - balance]
            else:  # a foreign account: its splits' worth in EUR
                debit = credit = Decimal(0)
                for split in account.splits:
                    tx = split.transaction
                    if tx.currency == eur:
                        worth = split.value
                    else:
                        others = [s for s in tx.splits if s.account.commodity == eur]
                        if not others:
                            continue  # no rate: kept out by the connector (warned)
                        worth = -sum(s.quantity for s in others)
                    debit += max(worth, 0)
                    credit += max(-worth, 0)
                amounts = [debit, credit]
            if amounts != [0, 0]:
                result[key(account)] = tuple(int(x * 100) for x in amounts)
        return result
    finally:
        book.close()


@pytest.fixture(scope="module")
def _book_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gnucash") / "book.gnucash"
    make_book(path)
    return path


@pytest.fixture
def book(_book_template, tmp_path) -> Path:
    path = tmp_path / "book.gnucash"
    shutil.copy(_book_template, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_activation_matches_piecash_balances(book, tmp_path):
    home = tmp_path / "firm"
    before = digest(book)
    code, result = cli_json(home, "dossier", "add", "GC", "--package", "gnucash",
                            "--source", str(book))
    assert code == 0, result
    assert result["status"] == "succeeded" and result["rows"]["quarantined"] == 0
    assert any("1 GnuCash transaction(s) in USD" in w for w in result["warnings"]), result

    expected = piecash_trial_balance(book)
    assert len(expected) == 9  # EUR and foreign accounts, codes and full names
    assert portal_trial_balance(home, "GC") == expected
    code, rows = cli_json(home, "report", "GC", "trial-balance")
    assert code == 0
    report = {r["account"]: cents(r["balance"]) for r in rows if cents(r["balance"])}
    assert report == {k: d - c for k, (d, c) in expected.items() if d != c}
    assert {r["account"]: r["name"] for r in rows}["604"] == "Expenses:Groceries"
    assert digest(book) == before  # read-only: the book is untouched

    import duckdb
    con = duckdb.connect(str(home / "portal.duckdb"), read_only=True)
    try:
        relations = set(con.execute(
            "SELECT kind, name, email FROM relations WHERE dossier = 'GC'").fetchall())
    finally:
        con.close()
    assert relations == {("customer", "Bakkerij Peeters", "info@peeters.be"),
                         ("supplier", "Drukkerij Claes", None)}


def test_edits_then_simple_sync_bring_the_portal_in_line(book, tmp_path):
    from piecash import Split, Transaction

    home = tmp_path / "firm"
    assert cli_json(home, "dossier", "add", "GC", "--package", "gnucash",
                    "--source", str(book))[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gnc = _open(book, readonly=False)
        eur = gnc.default_currency
        eur_txs = sorted((t for t in gnc.transactions
                          if t.currency == eur and len(t.splits) == 2
                          and all(s.account.commodity == eur for s in t.splits)),
                         key=lambda t: (t.post_date, t.description))
        edited, deleted = eur_txs[0], eur_txs[1]
        for split in edited.splits:  # the same booking, another amount
            split.value = split.quantity = split.value * 2 + (1 if split.value > 0 else -1)
        gnc.delete(deleted)
        bank = gnc.accounts(code="550")
        Transaction(eur, "new sale", post_date=datetime.date(2023, 2, 1), splits=[
            Split(bank, Decimal("321.09")), Split(gnc.accounts(code="700"), Decimal("-321.09"))])
        gnc.save()
        gnc.close()

    assert portal_trial_balance(home, "GC") != piecash_trial_balance(book)
    code, result = cli_json(home, "sync", "GC")
    assert code == 0 and result["status"] == "succeeded", result
    assert result["kind"] == "simple"
    assert any("no change cursor" in w for w in result["warnings"]), result
    assert portal_trial_balance(home, "GC") == piecash_trial_balance(book)

    # Nothing changed since: a second simple sync finds nothing to write.
    code, again = cli_json(home, "sync", "GC")
    assert code == 0 and again["rows"]["inserted"] == again["rows"]["updated"] == 0, again
    assert again["rows"]["deleted"] == 0
    assert portal_trial_balance(home, "GC") == piecash_trial_balance(book)


def _assert_refused(home: Path, source: Path, *needles: str) -> None:
    done = cli(home, "dossier", "add", "BAD", "--package", "gnucash", "--source", str(source))
    assert done.returncode == 1, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr
    code, listed = cli_json(home, "dossier", "list")
    assert code == 0 and listed == []


def test_a_file_that_is_not_a_book_is_refused(tmp_path):
    text = tmp_path / "notes.gnucash"
    text.write_text("these are not the books you are looking for\n" * 20)
    _assert_refused(tmp_path / "firm", text, "notes.gnucash", "not a GnuCash book",
                    "file is not a database")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    _assert_refused(tmp_path / "firm", other, "other.sqlite", "not a GnuCash book",
                    "no such table: gnclock")


def test_a_book_locked_by_gnucash_is_refused(book, tmp_path):
    with sqlite3.connect(book) as con:
        con.execute("INSERT INTO gnclock (hostname, pid) VALUES ('boekhouder-pc', 4242)")
    _assert_refused(tmp_path / "firm", book, "book.gnucash", "locked",
                    "could not obtain the lock", "boekhouder-pc")
