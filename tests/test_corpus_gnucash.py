"""Every real GnuCash book of the corpus, synced: the portal equals the package's own figures.

The books are copies of piecash's test books (tests/corpus/gnucash, MIT), saved by GnuCash
2.6 and 3.x and by piecash, none of them made by dossync. Per account, the portal's trial
balance must equal what the package itself adds up, to the cent and exactly:
- GnuCash 3.x books: piecash's own split quantities (accounts in the book currency) and
  values (the others: their transactions are in the book currency, which is asserted);
- GnuCash 2.6 books (all_account_types, empty_book, test_book): piecash refuses to open
  them, so the test reads their splits with plain sqlite3 and adds num/denom as
  fractions.Fraction.
This code shares nothing with the connector: accounts are matched by their full name, which
the test computes itself, and rounding to the cent is the test's own.

Then each book is changed with the package's own tool (a piecash transaction for 3.x
books; for 2.6 books rows inserted with sqlite3 the way GnuCash 2.6 writes them: dates as
local midnight converted to UTC, 'YYYYMMDDHHMMSS'), a simple sync runs, and the figures
are equal again.
"""
from __future__ import annotations

import datetime
import shutil
import sqlite3
import uuid
import warnings
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from conftest import cli, cli_json
from test_gnucash import assert_conserved, dossync

import piecash  # noqa: E402  (the oracle, in the dev extra: missing, the suite fails)

CORPUS = Path(__file__).resolve().parent / "corpus" / "gnucash"
BOOKS = ("all_account_types", "book_prices", "default_book", "empty_book", "investment",
         "invoices", "simple_sample", "test_book")
GNUCASH_2_6 = {"all_account_types", "empty_book", "test_book"}  # piecash refuses these
WITHOUT_TRANSACTIONS = {"empty_book", "default_book", "invoices", "test_book"}
# The book currency each book has: EUR (simple_sample's root account says nothing: it comes
# from its transactions); empty_book has no commodity at all.
CURRENCY = {book: "EUR" for book in BOOKS} | {"empty_book": None}
CHANGE_DAY = datetime.date(2024, 3, 15)
CHANGE = "dossync corpus change"


def test_the_corpus_is_complete():
    assert sorted(p.stem for p in CORPUS.glob("*.gnucash")) == sorted(BOOKS)
    assert (CORPUS / "LICENSE-piecash").is_file()


def copy_book(name: str, tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    target = tmp_path / f"{name}.gnucash"
    shutil.copy(CORPUS / f"{name}.gnucash", target)
    target.chmod(0o644)
    return target


def cent(amount) -> Decimal:
    return Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- the package's own figures ------------------------------------------------------------
def piecash_figures(path: Path, currency: str) -> dict[str, Decimal]:
    """{account full name: balance} of every account with splits, by piecash (3.x books)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = piecash.open_book(str(path), readonly=True, open_if_lock=True, do_backup=False)
    try:
        figures: dict[str, list[Decimal]] = {}
        for account in book.accounts:
            if account.commodity is None or account.commodity.namespace == "template":
                continue  # scheduled-transaction templates: not part of the books
            if not account.splits:
                continue
            in_book_currency = (account.commodity.namespace == "CURRENCY"
                                and account.commodity.mnemonic == currency)
            for split in account.splits:
                if in_book_currency:
                    amount = split.quantity
                else:
                    assert split.transaction.currency.mnemonic == currency, account.fullname
                    amount = split.value
                debit_credit = figures.setdefault(account.fullname, [Decimal(0), Decimal(0)])
                debit_credit[0 if amount > 0 else 1] += abs(amount)
        return {name: (d, c) for name, (d, c) in figures.items()}
    finally:
        book.close()


def sqlite_figures(path: Path, currency: str) -> dict[str, tuple[Fraction, Fraction]]:
    """The same figures read with plain sqlite3 (piecash does not open GnuCash 2.6 books)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ((root, template),) = con.execute(
            "SELECT root_account_guid, root_template_guid FROM books").fetchall()
        accounts = {g: (name, parent, commodity) for g, name, parent, commodity in con.execute(
            "SELECT guid, name, parent_guid, commodity_guid FROM accounts")}
        commodities = {g: (ns, m) for g, ns, m in con.execute(
            "SELECT guid, namespace, mnemonic FROM commodities")}

        def full_name(guid: str) -> str | None:
            names = []
            while guid != root:
                if guid == template or guid not in accounts:
                    return None
                name, guid, _ = accounts[guid]
                names.append(name)
            return ":".join(reversed(names))

        figures: dict[str, list[Fraction]] = {}
        for account, vn, vd, qn, qd, tx_currency in con.execute(
                "SELECT s.account_guid, s.value_num, s.value_denom, s.quantity_num, "
                "s.quantity_denom, t.currency_guid FROM splits s "
                "JOIN transactions t ON t.guid = s.tx_guid"):
            name = full_name(account)
            if name is None:
                continue
            if commodities.get(accounts[account][2]) == ("CURRENCY", currency):
                amount = Fraction(qn, qd)
            else:
                assert commodities[tx_currency] == ("CURRENCY", currency), name
                amount = Fraction(vn, vd)
            debit_credit = figures.setdefault(name, [Fraction(0), Fraction(0)])
            debit_credit[0 if amount > 0 else 1] += abs(amount)
        return {name: (d, c) for name, (d, c) in figures.items()}
    finally:
        con.close()


def package_figures(name: str, path: Path) -> dict[str, tuple[str, str, Fraction]]:
    """{full name: (debit, credit to the cent, exact balance)} as the package adds them up."""
    currency = CURRENCY[name] or "EUR"
    raw = (sqlite_figures if name in GNUCASH_2_6 else piecash_figures)(path, currency)
    return {account: (str(cent(Decimal(d.numerator) / d.denominator if isinstance(d, Fraction)
                                   else d)),
                      str(cent(Decimal(c.numerator) / c.denominator if isinstance(c, Fraction)
                               else c)),
                      Fraction(d) - Fraction(c))
            for account, (d, c) in raw.items()}


def portal_figures(home: Path, code: str) -> dict[str, tuple[str, str, Fraction]]:
    """The same, from the portal's trial balance as the CLI reports it (report --json)."""
    status, rows = dossync(home, "report", code, "trial-balance")
    assert status == 0, rows
    assert all(r["commodity"] is None for r in rows), rows  # all in the book currency
    assert len({r["name"] for r in rows}) == len(rows)
    figures = {r["name"]: (r["debit"], r["credit"], Fraction(Decimal(r["balance_exact"])))
               for r in rows}
    for r in rows:  # the rounded balance is the exact one rounded
        assert Decimal(r["balance"]) == cent(Decimal(r["balance_exact"])), r
    return figures


# --- changes made with the package's own tools ---------------------------------------------
def change_with_piecash(path: Path) -> None:
    """A new transaction between two ordinary accounts in the book currency, by piecash."""
    from piecash import Split, Transaction

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = piecash.open_book(str(path), readonly=False, open_if_lock=True, do_backup=False)
        try:
            eur = book.commodities(namespace="CURRENCY", mnemonic="EUR")
            usable = sorted((a for a in book.accounts
                             if a.commodity == eur and not a.placeholder
                             and a.type in ("ASSET", "BANK", "CASH", "INCOME", "EXPENSE")),
                            key=lambda a: a.fullname)
            first, second = usable[0], usable[-1]
            Transaction(eur, CHANGE, post_date=CHANGE_DAY, splits=[
                Split(first, Decimal("123.45")), Split(second, Decimal("-123.45"))])
            book.save()
        finally:
            book.close()


# Rows as GnuCash writes them, by column name (the column order differs between books).
COMMODITY = ("INSERT INTO commodities (guid, namespace, mnemonic, fullname, cusip, fraction, "
             "quote_flag, quote_source, quote_tz) VALUES (?, 'CURRENCY', ?, ?, ?, 100, 1, "
             "'currency', '')")
ACCOUNT = ("INSERT INTO accounts (guid, name, account_type, commodity_guid, commodity_scu, "
           "non_std_scu, parent_guid, code, description, hidden, placeholder) "
           "VALUES (?, ?, ?, ?, 100, 0, ?, '', '', 0, 0)")
TRANSACTION = ("INSERT INTO transactions (guid, currency_guid, num, post_date, enter_date, "
               "description) VALUES (?, ?, '', ?, ?, ?)")
SPLIT = ("INSERT INTO splits (guid, tx_guid, account_guid, memo, action, reconcile_state, "
         "reconcile_date, value_num, value_denom, quantity_num, quantity_denom, lot_guid) "
         "VALUES (?, ?, ?, '', '', 'n', ?, ?, 100, ?, 100, NULL)")


def gnucash_2_6_stamp(day: datetime.date) -> str:
    """A posted date as GnuCash 2.6 stores it: local (Brussels) midnight in UTC, digits."""
    midnight = datetime.datetime.combine(day, datetime.time(), ZoneInfo("Europe/Brussels"))
    return midnight.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")


def change_with_sqlite_2_6(path: Path) -> None:
    """The same change for a 2.6 book, its rows as GnuCash 2.6 writes them. empty_book has
    no commodity and no account yet: they are added first, as GnuCash 2.6 adds them."""
    with sqlite3.connect(path) as con:
        ((root,),) = con.execute("SELECT root_account_guid FROM books").fetchall()
        eur = con.execute("SELECT guid FROM commodities WHERE namespace = 'CURRENCY' "
                          "AND mnemonic = 'EUR'").fetchall()
        if eur:
            eur = eur[0][0]
        else:
            eur = uuid.uuid4().hex
            con.execute(COMMODITY, [eur, "EUR", "Euro", "978"])
            for name, kind in (("Checking", "BANK"), ("Salary", "INCOME")):
                con.execute(ACCOUNT, [uuid.uuid4().hex, name, kind, eur, root])
        usable = [g for (g,) in con.execute(
            "SELECT guid FROM accounts WHERE commodity_guid = ? AND placeholder = 0 "
            "AND account_type IN ('ASSET', 'BANK', 'CASH', 'INCOME', 'EXPENSE') "
            "ORDER BY name, guid", [eur])]
        tx = uuid.uuid4().hex
        con.execute(TRANSACTION, [tx, eur, gnucash_2_6_stamp(CHANGE_DAY), "20240316081500",
                                  CHANGE])
        for account, amount in ((usable[0], 12345), (usable[-1], -12345)):
            con.execute(SPLIT, [uuid.uuid4().hex, tx, account, None, amount, amount])
        con.execute("INSERT INTO slots (obj_guid, name, slot_type, int64_val, double_val, "
                    "numeric_val_num, numeric_val_denom, gdate_val) "
                    "VALUES (?, 'date-posted', 10, 0, 0.0, 0, 1, ?)",
                    [tx, CHANGE_DAY.strftime("%Y%m%d")])


def booking_dates(home: Path, code: str) -> dict[str, list[str]]:
    """{date: [descriptions]} of the dossier's bookings, straight from the portal file."""
    con = duckdb.connect(str(home / "portal.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT strftime(date, '%Y-%m-%d'), coalesce(description, '') "
                           "FROM bookings WHERE dossier = ? ORDER BY 1, 2", [code]).fetchall()
    finally:
        con.close()
    out: dict[str, list[str]] = {}
    for day, description in rows:
        out.setdefault(day, []).append(description)
    return out


# --- the tests -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", BOOKS)
def test_every_book_syncs_to_the_package_figures(name, tmp_path):
    book = copy_book(name, tmp_path)
    home = tmp_path / "firm"
    status, result = dossync(home, "dossier", "add", "BK", "--package", "gnucash",
                             "--source", str(book))
    assert status == 0 and result["status"] == "succeeded", result
    assert result["rows"]["quarantined"] == 0, result
    assert result["warnings"] == [], result
    assert_conserved(result)
    status, (dossier,) = dossync(home, "dossier", "list")
    assert dossier["book_currency"] == CURRENCY[name]

    expected = package_figures(name, book)
    assert portal_figures(home, "BK") == expected
    if name in WITHOUT_TRANSACTIONS:
        assert expected == {}  # an empty ledger, synced fine
    else:
        assert expected and any(balance for _, _, balance in expected.values())

    (change_with_sqlite_2_6 if name in GNUCASH_2_6 else change_with_piecash)(book)
    status, result = dossync(home, "sync", "BK")
    assert status == 0 and result["status"] == "succeeded", result
    assert result["kind"] == "simple" and result["rows"]["quarantined"] == 0, result
    assert_conserved(result)
    assert result["streams"]["bookings"]["inserted"] == 1, result["streams"]
    changed = package_figures(name, book)
    assert changed != expected
    assert portal_figures(home, "BK") == changed
    # read as GnuCash shows it, in both date formats
    assert booking_dates(home, "BK")[CHANGE_DAY.isoformat()].count(CHANGE) == 1
    status, (dossier,) = dossync(home, "dossier", "list")
    assert dossier["book_currency"] == "EUR"


def test_a_book_saved_by_gnucash_gets_its_currency_from_its_transactions(tmp_path):
    """simple_sample's root account has no commodity: EUR comes from its transactions."""
    book = copy_book("simple_sample", tmp_path)
    home = tmp_path / "firm"
    status, result = cli_json(home, "dossier", "add", "SS", "--package", "gnucash",
                              "--source", str(book))
    assert status == 0 and result["warnings"] == [], result
    status, (dossier,) = dossync(home, "dossier", "list")
    assert (dossier["currency"], dossier["book_currency"]) == (None, "EUR")
    status, pnl = dossync(home, "report", "SS", "pnl")
    assert status == 0
    # income 1 (150.00); expense 1 (200.00) and the loan's interest (30.00)
    assert (pnl["revenue"], pnl["costs"]) == ("150.00", "230.00"), pnl


def test_gnucash_2_6_dates_are_read_in_the_dossier_time_zone(tmp_path):
    """all_account_types (GnuCash 2.6) stores 20141224230000: Brussels' 25 December,
    still 24 December in New York."""
    book = copy_book("all_account_types", tmp_path)
    home = tmp_path / "firm"
    assert dossync(home, "dossier", "add", "BXL", "--package", "gnucash",
                   "--source", str(book))[0] == 0
    status, result = cli_json(home, "dossier", "add", "NYC", "--package", "gnucash",
                              "--source", str(book), "--timezone", "America/New_York")
    assert status == 0, result
    brussels, new_york = booking_dates(home, "BXL"), booking_dates(home, "NYC")
    assert {d: len(v) for d, v in brussels.items()} == {"2014-12-25": 12, "2014-12-26": 1}
    assert {d: len(v) for d, v in new_york.items()} == {"2014-12-24": 12, "2014-12-25": 1}


def test_a_currency_override_wins_and_must_be_in_the_book(tmp_path):
    book = copy_book("book_prices", tmp_path)
    home = tmp_path / "firm"
    # USD is a commodity of the book, but no transaction touches it: everything stays in EUR.
    status, result = dossync(home, "dossier", "add", "BP", "--package", "gnucash",
                             "--source", str(book), "--currency", "USD")
    assert status == 0 and result["rows"]["quarantined"] == 0, result
    assert any(w.startswith("20 GnuCash transaction(s) in EUR") for w in result["warnings"])
    status, (dossier,) = dossync(home, "dossier", "list")
    assert (dossier["currency"], dossier["book_currency"]) == ("USD", "USD")
    status, rows = dossync(home, "report", "BP", "trial-balance")
    assert {r["commodity"] for r in rows} == {"EUR"}
    assert {r["name"]: Fraction(Decimal(r["balance_exact"])) for r in rows} == {
        k: v[2] for k, v in package_figures("book_prices", book).items()}
    status, dashboard = dossync(home, "report", "BP", "dashboard")
    assert dashboard["currency"] == "USD" and dashboard["bank"] == "0.00"

    # GBP is not in the book: refused, clearly, and the dossier is not added.
    done = cli(home, "dossier", "add", "GBP", "--package", "gnucash", "--source", str(book),
               "--currency", "GBP")
    assert done.returncode == 1, done.stderr
    assert "has no commodity GBP" in done.stderr and "--currency" in done.stderr, done.stderr
    # also for a book without transactions yet: it needs no --currency at all
    status, doc = dossync(home, "dossier", "add", "EMPTY", "--package", "gnucash", "--source",
                          str(copy_book("empty_book", tmp_path)), "--currency", "EUR")
    assert status == 1 and "has no commodity EUR" in doc["error"], doc
    assert [d["code"] for d in dossync(home, "dossier", "list")[1]] == ["BP"]


def test_a_book_whose_currency_cannot_be_told_is_refused(tmp_path):
    """simple_sample plus a USD account and a USD transaction (as GnuCash 3 writes them):
    no root commodity, transactions in two currencies, accounts in two currencies."""
    book = copy_book("simple_sample", tmp_path)
    with sqlite3.connect(book) as con:
        ((root,),) = con.execute("SELECT root_account_guid FROM books").fetchall()
        usd, bank, fees, tx = (uuid.uuid4().hex for _ in range(4))
        con.execute(COMMODITY, [usd, "USD", "US Dollar", "840"])
        for account, name, kind in ((bank, "US Bank", "BANK"), (fees, "US Fees", "EXPENSE")):
            con.execute(ACCOUNT, [account, name, kind, usd, root])
        con.execute(TRANSACTION, [tx, usd, "2014-12-28 10:59:00", "2014-12-28 12:00:00",
                                  "bank fee"])
        for account, amount in ((bank, -1250), (fees, 1250)):
            con.execute(SPLIT, [uuid.uuid4().hex, tx, account, "1970-01-01 00:00:00", amount,
                                amount])
    home = tmp_path / "firm"
    done = cli(home, "dossier", "add", "MIX", "--package", "gnucash", "--source", str(book))
    assert done.returncode == 1, done.stderr
    for needle in (str(book), "does not say its currency", "EUR (5 transactions)",
                   "USD (1 transaction)", "dossync dossier set CODE --currency EUR",
                   "--currency EUR"):
        assert needle in done.stderr, done.stderr
    status, listed = dossync(home, "dossier", "list")
    assert status == 0 and listed == []

    # Told: EUR. The USD transaction has no rate: kept, exactly, in USD.
    status, result = dossync(home, "dossier", "add", "MIX", "--package", "gnucash",
                             "--source", str(book), "--currency", "EUR")
    assert status == 0 and result["rows"]["quarantined"] == 0, result
    assert any(w.startswith("1 GnuCash transaction(s) in USD") for w in result["warnings"])
    status, rows = dossync(home, "report", "MIX", "trial-balance")
    usd_rows = {r["name"]: (r["balance_exact"], r["class"]) for r in rows if r["commodity"]}
    assert usd_rows == {"US Bank": ("-12.5", "bank"), "US Fees": ("12.5", "cost")}
    assert {r["name"]: Fraction(Decimal(r["balance_exact"])) for r in rows
            if not r["commodity"]} == {k: v[2] for k, v in
                                       package_figures("simple_sample", copy_book(
                                           "simple_sample", tmp_path / "again")).items()}
