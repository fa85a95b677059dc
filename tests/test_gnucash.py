"""GnuCash books written by piecash, synced through the real CLI.

The reference figures are piecash's own: an account's balance is
`get_balance(recurse=False, natural_sign=False)` (the sum of its split
quantities). For accounts in a foreign currency the portal holds their
value in the book currency, which the test derives from the same
transaction the way the connector documents it; a transaction with no
split in the book currency stays in its own currency (its `commodity`).
Amounts are compared exactly, as Decimals.

Most steps run the CLI's own entry point in this process (`dossync`, same
code, same JSON, without a new interpreter per call); the steps whose exit
code, stderr or process matter run it as a real child process (`cli`, `cli_json`).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import logging
import random
import shutil
import sqlite3
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import cli, cli_json
from dossync.core import portal
from dossync.core.cli import main

import piecash  # noqa: E402  (the oracle, in the dev extra: missing, the suite fails)

START = datetime.date(2021, 1, 1)
CORPUS = Path(__file__).resolve().parent / "corpus" / "gnucash"


def dossync(home: Path, *args: str):
    """The CLI in this process: (exit code, its one JSON document)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            status = main(["--home", str(home), *args, "--json"])
    finally:
        for handler in root.handlers[len(handlers):]:
            root.removeHandler(handler)
            handler.close()
    return status, json.loads(out.getvalue())


def assert_conserved(result: dict) -> None:
    """Every stream of a sync: read = inserted + updated + unchanged + quarantined."""
    assert set(result["streams"]) == {"accounts", "journals", "fiscal_years", "periods",
                                      "relations", "bookings", "lines", "matchings"}, result
    for name, c in result["streams"].items():
        assert c["read"] == c["inserted"] + c["updated"] + c["unchanged"] + c["quarantined"], (
            name, c)


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
    """The portal's account code: the GnuCash code, else the full name."""
    return account.code or account.fullname


Figures = dict[tuple[str, str | None], tuple[Decimal, Decimal]]


def piecash_trial_balance(path: Path) -> Figures:
    """{(account, commodity): (debit, credit)}, exact, from piecash's own figures; commodity
    None for the book currency (EUR), else the currency a transaction without a rate stays in."""
    book = _open(path, readonly=True)
    try:
        eur = book.default_currency
        result: dict[tuple, list[Decimal]] = {}

        def add(account, commodity, amount: Decimal) -> None:
            amounts = result.setdefault((key(account), commodity), [Decimal(0), Decimal(0)])
            amounts[0 if amount > 0 else 1] += abs(amount)

        for account in book.accounts:
            if account.commodity == eur:
                # piecash's balance of the account: the sum of its split quantities.
                balance = account.get_balance(recurse=False, natural_sign=False)
                assert sum((s.quantity for s in account.splits), Decimal(0)) == balance
                for split in account.splits:
                    add(account, None, split.quantity)
                continue
            for split in account.splits:  # a foreign account: its splits' worth in EUR
                tx = split.transaction
                others = [s for s in tx.splits if s.account.commodity == eur]
                if tx.currency == eur:
                    add(account, None, split.value)
                elif others:  # (one foreign split per transaction here: no rounding left)
                    add(account, None, -sum(s.quantity for s in others))
                else:  # no rate: kept in the transaction's currency
                    add(account, tx.currency.mnemonic, split.value)
        return {k: (d, c) for k, (d, c) in result.items()}
    finally:
        book.close()


def portal_trial_balance(home: Path, code: str) -> Figures:
    """The portal's exact trial balance (core.portal, unrounded)."""
    return {(row.account, row.commodity): (row.debit, row.credit)
            for row in portal.report_trial_balance(home / "portal.duckdb", code)}


def nonzero(figures: Figures) -> Figures:
    return {k: v for k, v in figures.items() if v != (0, 0)}


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
    assert any(w.startswith("1 GnuCash transaction(s) in USD") for w in result["warnings"])
    assert_conserved(result)

    expected = piecash_trial_balance(book)
    # EUR and foreign accounts, codes and full names; the USD fee kept in USD
    assert {k for k in expected if k[1]} == {("Assets:US Bank", "USD"),
                                             ("Expenses:US Fees", "USD")}
    assert len(expected) == 11
    assert portal_trial_balance(home, "GC") == expected
    code, rows = cli_json(home, "report", "GC", "trial-balance")
    assert code == 0
    report = {(r["account"], r["commodity"]): Decimal(r["balance_exact"]) for r in rows}
    assert report == {k: d - c for k, (d, c) in expected.items()}
    assert all(Decimal(r["balance"]) == Decimal(r["balance_exact"]) for r in rows)  # cents
    by_code = {r["account"]: (r["name"], r["class"]) for r in rows}
    assert by_code["604"] == ("Expenses:Groceries", "cost")
    assert {k: by_code[k][1] for k in ("550", "570", "552", "499", "700")} == {
        "550": "bank", "570": "bank", "552": "bank", "499": "liability", "700": "revenue"}
    assert by_code["Equity:Opening Balances"][1] == "equity"
    status, dossiers = dossync(home, "dossier", "list")
    assert dossiers[0]["book_currency"] == "EUR"
    assert digest(book) == before  # read-only: the book is untouched

    import duckdb
    con = duckdb.connect(str(home / "portal.duckdb"), read_only=True)
    try:
        relations = set(con.execute(
            "SELECT kind, name, email FROM relations WHERE dossier = 'GC'").fetchall())
        references = dict(con.execute(
            "SELECT description, reference FROM bookings WHERE dossier = 'GC' "
            "AND (description LIKE 'sale %' OR description = 'opening')").fetchall())
    finally:
        con.close()
    assert relations == {("customer", "Bakkerij Peeters", "info@peeters.be"),
                         ("supplier", "Drukkerij Claes", None)}
    # the reference is the transaction's num, when it has one
    assert references.pop("opening") is None and len(references) > 50
    assert all(ref == "S" + what.split()[1] for what, ref in references.items()), references


def test_edits_then_simple_sync_bring_the_portal_in_line(book, tmp_path):
    from piecash import Split, Transaction

    home = tmp_path / "firm"
    assert dossync(home, "dossier", "add", "GC", "--package", "gnucash",
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
    code, result = dossync(home, "sync", "GC")
    assert code == 0 and result["status"] == "succeeded", result
    assert result["kind"] == "simple"
    assert any("no change cursor" in w for w in result["warnings"]), result
    assert_conserved(result)
    assert result["streams"]["bookings"]["updated"] == 1
    assert result["streams"]["bookings"]["inserted"] == 1
    assert result["streams"]["bookings"]["deleted"] == 1
    assert portal_trial_balance(home, "GC") == piecash_trial_balance(book)

    # Nothing changed since: a second simple sync finds nothing to write.
    code, again = dossync(home, "sync", "GC")
    assert code == 0 and again["rows"]["inserted"] == again["rows"]["updated"] == 0, again
    assert again["rows"]["deleted"] == 0
    assert_conserved(again)
    assert portal_trial_balance(home, "GC") == piecash_trial_balance(book)


def _assert_refused(home: Path, source: Path, *needles: str) -> None:
    code, doc = dossync(home, "dossier", "add", "BAD", "--package", "gnucash",
                        "--source", str(source))
    assert code == 1 and doc["exit_code"] == 1, doc
    for needle in needles:
        assert needle in doc["error"], doc
    code, listed = dossync(home, "dossier", "list")
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
    home = tmp_path / "firm"
    done = cli(home, "dossier", "add", "BAD", "--package", "gnucash", "--source", str(book))
    assert done.returncode == 1, done.stderr
    for needle in ("book.gnucash", "locked", "could not obtain the lock", "boekhouder-pc"):
        assert needle in done.stderr, done.stderr
    assert dossync(home, "dossier", "list") == (0, [])


# --- invoices, bills and their payments (GnuCash business features) ----------------------
def _stamp(day: datetime.date) -> str:
    return f"{day.isoformat()} 10:59:00"  # how GnuCash 3+ stores a posted date


def make_invoice_book(path: Path) -> dict[str, str]:
    """A book with a customer invoice, a customer credit note and a vendor bill, posted as
    GnuCash posts them, the invoice paid in full and the bill in part; returns the guids.

    piecash writes the accounts, owners, transactions and lots (each document's post lot on
    the A/R or A/P account, its payments' splits in that lot); it has no API to post
    invoices, so the business rows GnuCash writes when posting (invoices, entries, bill
    terms, the credit-note, trans-txn-type and trans-date-due slots, the lot's invoice
    link) are written in SQL, column by column as GnuCash 3+ writes them. The bill's
    posting carries no trans-date-due slot: its due date comes from its terms (Net 30).
    """
    from piecash import Account, Customer, Split, Transaction, Vendor
    from piecash.core.transaction import Lot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = piecash.create_book(str(path), currency="EUR", overwrite=True)
        eur = book.default_currency
        root = book.root_account
        assets = Account("Assets", "ASSET", eur, parent=root, placeholder=True)
        liabilities = Account("Liabilities", "LIABILITY", eur, parent=root, placeholder=True)
        bank = Account("Bank", "BANK", eur, parent=assets, code="550000")
        receivable = Account("Accounts Receivable", "RECEIVABLE", eur, parent=assets)
        vat_in = Account("VAT deductible", "ASSET", eur, parent=assets, code="411000")
        payable = Account("Accounts Payable", "PAYABLE", eur, parent=liabilities, code="440000")
        vat_out = Account("VAT payable", "LIABILITY", eur, parent=liabilities, code="451000")
        sales = Account("Sales", "INCOME", eur, parent=root, code="700000")
        office = Account("Office", "EXPENSE", eur, parent=root, code="610000")
        customer = Customer("Bakkerij Peeters", eur, book=book)
        vendor = Vendor("Drukkerij Claes", eur, book=book)
        book.flush()

        d = datetime.date
        lots = {ref: Lot(f"{kind} {ref}", account) for ref, kind, account in (
            ("INV-001", "Invoice", receivable), ("CN-002", "Credit Note", receivable),
            ("BILL-7", "Bill", payable))}
        D = Decimal
        posts = {
            "INV-001": Transaction(eur, "Bakkerij Peeters", num="INV-001", post_date=d(2023, 3, 1),
                                   splits=[Split(receivable, D("121"), lot=lots["INV-001"]),
                                           Split(sales, D("-100")), Split(vat_out, D("-21"))]),
            "CN-002": Transaction(eur, "Bakkerij Peeters", num="CN-002", post_date=d(2023, 3, 10),
                                  splits=[Split(receivable, D("-24.20"), lot=lots["CN-002"]),
                                          Split(sales, D("20")), Split(vat_out, D("4.20"))]),
            "BILL-7": Transaction(eur, "Drukkerij Claes", num="BILL-7", post_date=d(2023, 3, 5),
                                  splits=[Split(payable, D("-60.50"), lot=lots["BILL-7"]),
                                          Split(office, D("50")), Split(vat_in, D("10.50"))]),
        }
        payments = [
            Transaction(eur, "Bakkerij Peeters", post_date=d(2023, 3, 20), splits=[
                Split(bank, D("121")), Split(receivable, D("-121"), lot=lots["INV-001"])]),
            Transaction(eur, "Drukkerij Claes", post_date=d(2023, 3, 25), splits=[
                Split(bank, D("-30")), Split(payable, D("30"), lot=lots["BILL-7"])]),
        ]
        book.save()
        guids = {"customer": customer.guid, "vendor": vendor.guid, "eur": eur.guid,
                 "vat_in": vat_in.guid, "vat_out": vat_out.guid,
                 "receivable": receivable.guid, "payable": payable.guid,
                 "sales": sales.guid, "office": office.guid, "payable_lot": lots["BILL-7"].guid}
        posted = {ref: (t.guid, lots[ref].guid) for ref, t in posts.items()}
        paid = [t.guid for t in payments]
        book.close()

    def guid(*parts) -> str:
        return hashlib.md5(repr(parts).encode()).hexdigest()

    terms = guid("terms")
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO billterms VALUES (?, 'Net 30', '30 days net', 1, 0, NULL, "
                    "'GNC_TERM_TYPE_DAYS', 30, 0, 0, 1, 0)", [terms])
        slot = ("INSERT INTO slots (obj_guid, name, slot_type, int64_val, string_val, "
                "timespec_val, guid_val) VALUES (?, ?, ?, ?, ?, ?, ?)")
        docs = [("INV-001", d(2023, 3, 1), 2, "customer", "receivable", "sales", 0, Decimal("100")),
                ("CN-002", d(2023, 3, 10), 2, "customer", "receivable", "sales", 1, Decimal("20")),
                ("BILL-7", d(2023, 3, 5), 4, "vendor", "payable", "office", 0, Decimal("50"))]
        for ref, day, owner_type, owner, account, line_account, credit_note, net in docs:
            invoice = guid("invoice", ref)
            post_txn, post_lot = posted[ref]
            con.execute(
                "INSERT INTO invoices VALUES (?, ?, ?, ?, '', 1, ?, ?, ?, ?, '', ?, ?, ?, "
                "NULL, NULL, 0, 1)",
                [invoice, ref, _stamp(day), _stamp(day), guids["eur"], owner_type, guids[owner],
                 terms if owner == "vendor" else None, post_txn, post_lot, guids[account]])
            bill = owner == "vendor"
            con.execute(
                "INSERT INTO entries (guid, date, date_entered, description, action, notes, "
                "quantity_num, quantity_denom, i_acct, i_price_num, i_price_denom, invoice, "
                "b_acct, b_price_num, b_price_denom, bill, i_taxable, b_taxable) "
                "VALUES (?, ?, ?, 'Services', 'Hours', '', 1, 1, ?, ?, 100, ?, ?, ?, 100, ?, 1, 1)",
                [guid("entry", ref), _stamp(day), _stamp(day),
                 None if bill else guids[line_account], 0 if bill else int(net * 100),
                 None if bill else invoice, guids[line_account] if bill else None,
                 int(net * 100) if bill else 0, invoice if bill else None])
            con.execute(slot, [invoice, "credit-note", 1, credit_note, None, None, None])
            con.execute(slot, [post_txn, "trans-txn-type", 4, None, "I", None, None])
            if not bill:
                con.execute(slot, [post_txn, "trans-date-due", 6, None, None,
                                   _stamp(day + datetime.timedelta(days=30)), None])
            frame = guid("frame", ref)
            con.execute(slot, [post_lot, "gncInvoice", 9, None, None, None, frame])
            con.execute(slot, [frame, "gncInvoice/invoice-guid", 5, None, None, None, invoice])
        for tx in paid:
            con.execute(slot, [tx, "trans-txn-type", 4, None, "P", None, None])
        # GnuCash's business tax table (21% VAT), booking on the two VAT accounts
        tax = guid("taxtable")
        con.execute("INSERT INTO taxtables VALUES (?, 'VAT 21%', 1, 0, NULL)", [tax])
        for account in ("vat_out", "vat_in"):
            con.execute("INSERT INTO taxtable_entries (taxtable, account, amount_num, "
                        "amount_denom, type) VALUES (?, ?, 21, 1, 2)", [tax, guids[account]])
    return guids


def test_invoices_and_bills_reach_the_archive_with_their_payments(tmp_path):
    from piecash import Split, Transaction
    from piecash.core.transaction import Lot

    book = tmp_path / "business.gnucash"
    guids = make_invoice_book(book)
    home = tmp_path / "firm"
    before = digest(book)
    code, result = cli_json(home, "dossier", "add", "GB", "--package", "gnucash",
                            "--source", str(book))
    assert code == 0 and result["status"] == "succeeded", result
    assert result["rows"]["quarantined"] == 0, result
    assert digest(book) == before

    def archive() -> dict[str, tuple]:
        code, rows = dossync(home, "report", "GB", "archive")
        assert code == 0, rows
        return {r["ref"]: (r["journal"], r["date"], r["due_date"], r["relation"], r["amount"],
                           r["booking_status"], r["payment_status"]) for r in rows}

    assert archive() == {
        "INV-001": ("GNC-SALES", "2023-03-01", "2023-03-31", "Bakkerij Peeters", "121.00",
                    "booked", "paid"),
        "CN-002": ("GNC-SALES", "2023-03-10", "2023-04-09", "Bakkerij Peeters", "-24.20",
                   "booked", "open"),
        "BILL-7": ("GNC-PURCH", "2023-03-05", "2023-04-04", "Drukkerij Claes", "60.50",
                   "booked", "partly_paid"),
    }
    # The A/R and A/P accounts keep their balances under the codes the archive reads.
    expected = piecash_trial_balance(book)
    assert {("Assets:Accounts Receivable", None), ("440000", None)} <= set(expected)
    assert portal_trial_balance(home, "GB") == expected
    classes = dict(portal.account_classes(home / "portal.duckdb", "GB"))
    assert {k: classes[k] for k in ("Assets:Accounts Receivable", "440000", "411000", "451000",
                                    "550000", "700000", "610000")} == {
        "Assets:Accounts Receivable": "receivable", "440000": "payable", "411000": "vat",
        "451000": "vat", "550000": "bank", "700000": "revenue", "610000": "cost"}

    # The rest of the bill is paid in GnuCash: a simple sync marks it paid.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gnc = _open(book, readonly=False)
        eur = gnc.default_currency
        lot = gnc.session.query(Lot).filter_by(guid=guids["payable_lot"]).one()
        Transaction(eur, "Drukkerij Claes", post_date=datetime.date(2023, 4, 2), splits=[
            Split(gnc.accounts(code="550000"), Decimal("-30.50")),
            Split(gnc.accounts(code="440000"), Decimal("30.50"), lot=lot)])
        gnc.save()
        gnc.close()
    code, result = dossync(home, "sync", "GB")
    assert code == 0 and result["status"] == "succeeded", result
    assert_conserved(result)
    assert archive()["BILL-7"][-1] == "paid"
    assert portal_trial_balance(home, "GB") == piecash_trial_balance(book)


def test_reconcile_says_what_an_edit_of_the_book_needs(book, tmp_path):
    from piecash import Split, Transaction

    home = tmp_path / "firm"
    assert dossync(home, "dossier", "add", "GC", "--package", "gnucash",
                   "--source", str(book))[0] == 0
    code, doc = dossync(home, "reconcile", "GC")
    assert (code, doc["verdict"]) == (0, "in_sync"), doc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gnc = _open(book, readonly=False)
        eur = gnc.default_currency
        Transaction(eur, "late sale", post_date=datetime.date(2023, 2, 1), splits=[
            Split(gnc.accounts(code="550"), Decimal("55.50")),
            Split(gnc.accounts(code="700"), Decimal("-55.50"))])
        gnc.save()
        gnc.close()
    code, doc = dossync(home, "reconcile", "GC")
    assert (code, doc["verdict"]) == (5, "simple_sync"), doc
    assert any("no change cursor" in r for r in doc["reasons"]), doc["reasons"]
    assert {d["period"] for d in doc["differences"]} == {"2023-02"}
    assert dossync(home, "sync", "GC")[0] == 0
    code, doc = dossync(home, "reconcile", "GC")
    assert (code, doc["verdict"]) == (0, "in_sync"), doc
    assert portal_trial_balance(home, "GC") == piecash_trial_balance(book)


@pytest.mark.parametrize("posted, terms, due", [
    ("2023-03-05", ("GNC_TERM_TYPE_DAYS", 30, 0), "2023-04-04"),
    # proximo: the 15th of next month, or of the month after when posted after the cutoff
    ("2023-03-20", ("GNC_TERM_TYPE_PROXIMO", 15, 25), "2023-04-15"),
    ("2023-03-27", ("GNC_TERM_TYPE_PROXIMO", 15, 25), "2023-05-15"),
    ("2023-12-27", ("GNC_TERM_TYPE_PROXIMO", 10, 25), "2024-02-10"),
    # a due day past the month's end is its last day; a cutoff of 0 is the month's last day
    ("2024-01-10", ("GNC_TERM_TYPE_PROXIMO", 31, 0), "2024-02-29"),
    ("2023-01-31", ("GNC_TERM_TYPE_PROXIMO", 5, -3), "2023-03-05"),
    (None, ("GNC_TERM_TYPE_DAYS", 30, 0), None),
    ("2023-03-05", None, None),
])
def test_due_dates_follow_the_bill_terms(posted, terms, due):
    from dossync.core.connectors.gnucash import _due_by_terms

    assert _due_by_terms(posted, terms) == due


@pytest.mark.parametrize("stored, brussels, new_york", [
    ("2023-03-01 10:59:00", "2023-03-01", "2023-03-01"),  # GnuCash 3 and later: 10:59 UTC
    ("20230301105900", "2023-03-01", "2023-03-01"),       # GnuCash 2.6.19 and later
    ("20141224230000", "2014-12-25", "2014-12-24"),       # GnuCash 2.6: local midnight in UTC
    ("2023-06-30 22:30:00", "2023-07-01", "2023-06-30"),  # summer time
    ("20230301", "2023-03-01", "2023-03-01"),             # a gdate: a plain date
    (None, None, None), ("", None, None), ("not a date", None, None),
])
def test_dates_of_gnucash_2_and_3_books_read_as_gnucash_shows_them(stored, brussels, new_york):
    from dossync.core.connectors.gnucash import local_dates

    assert local_dates([stored], "Europe/Brussels") == [brussels]
    assert local_dates([stored], "America/New_York") == [new_york]


def test_split_amounts_are_exact_fractions_and_converted_lines_balance_exactly():
    from fractions import Fraction

    from dossync.core.connectors.gnucash import Account, Chart, Currency, _amounts, exact

    eur, usd = "e" * 32, "u" * 32
    book = Chart({g: Account(g, g, g, kind, commodity, 100) for g, kind, commodity in (
        ("bank", "BANK", eur), ("us1", "EXPENSE", usd), ("us2", "EXPENSE", usd),
        ("us3", "EXPENSE", usd))}, frozenset(), eur)
    cur = Currency(eur, "EUR", 100)

    def split(account, value, quantity):
        return ("g", "t", account, "", value.numerator, value.denominator,
                quantity.numerator, quantity.denominator, None)

    F = Fraction
    # 110.00 USD paid from the EUR bank (100.00 EUR): 10/11 EUR per USD. 36.67 USD is
    # 33.3363.. EUR, rounded 33.34; the cent left over goes to the largest converted line.
    usd_tx = [split("bank", F(-110), F(-100)), split("us1", F(3667, 100), F(3667, 100)),
              split("us2", F(3667, 100), F(3667, 100)), split("us3", F(3666, 100), F(3666, 100))]
    assert _amounts(usd_tx, usd, book, cur) == [
        (F(-100), None), (F(3333, 100), None), (F(3334, 100), None), (F(3333, 100), None)]
    # no split in the book currency: kept, exactly, in the transaction's currency
    assert _amounts(usd_tx[1:2] + [split("us2", F(-3667, 100), F(-3667, 100))], usd, book,
                    cur) == [(F(3667, 100), usd), (F(-3667, 100), usd)]
    # denominators GnuCash allows that are not powers of ten: exact until the 6th decimal
    assert _amounts([split("bank", F(1, 3), F(1, 3)), split("us1", F(-1, 3), F(-1, 7))], eur,
                    book, cur) == [(F(1, 3), None), (F(-1, 3), None)]
    assert exact(F(1, 3)) == Decimal("0.333333")
    assert exact(F(-2, 3)) == Decimal("-0.666667")
    assert exact(F(12345, 1000)) == Decimal("12.345")


def test_an_invoice_in_another_currency_reaches_the_archive_in_the_book_currency(tmp_path):
    """A USD invoice in a EUR book: its A/R line is converted at the rate its EUR lines imply."""
    from piecash import Account, Customer, Split, Transaction, factories
    from piecash.core.transaction import Lot

    path = tmp_path / "usd.gnucash"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = piecash.create_book(str(path), currency="EUR", overwrite=True)
        eur = book.default_currency
        usd = factories.create_currency_from_ISO("USD")
        root = book.root_account
        receivable = Account("Receivable USD", "RECEIVABLE", usd, parent=root)
        sales = Account("Sales", "INCOME", eur, parent=root, code="700000")
        vat = Account("VAT payable", "LIABILITY", eur, parent=root, code="451000")
        customer = Customer("Acme Inc", usd, book=book)
        book.flush()
        lot = Lot("Invoice US-1", receivable)
        D = Decimal
        post = Transaction(usd, "Acme Inc", num="US-1", post_date=datetime.date(2023, 5, 2), splits=[
            Split(receivable, D("121"), quantity=D("121"), lot=lot),
            Split(sales, D("-100"), quantity=D("-92.00")),
            Split(vat, D("-21"), quantity=D("-19.32"))])
        book.save()
        ids = {"customer": customer.guid, "usd": usd.guid, "receivable": receivable.guid,
               "post": post.guid, "lot": lot.guid}
        book.close()
    invoice, frame = hashlib.md5(b"invoice").hexdigest(), hashlib.md5(b"frame").hexdigest()
    day = _stamp(datetime.date(2023, 5, 2))
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO invoices VALUES (?, 'US-1', ?, ?, '', 1, ?, 2, ?, NULL, '', ?, ?, ?, "
                    "NULL, NULL, 0, 1)", [invoice, day, day, ids["usd"], ids["customer"],
                                          ids["post"], ids["lot"], ids["receivable"]])
        slot = ("INSERT INTO slots (obj_guid, name, slot_type, int64_val, string_val, "
                "timespec_val, guid_val) VALUES (?, ?, ?, ?, ?, ?, ?)")
        con.execute(slot, [invoice, "credit-note", 1, 0, None, None, None])
        con.execute(slot, [ids["lot"], "gncInvoice", 9, None, None, None, frame])
        con.execute(slot, [frame, "gncInvoice/invoice-guid", 5, None, None, None, invoice])

    home = tmp_path / "firm"
    code, result = cli_json(home, "dossier", "add", "US", "--package", "gnucash",
                            "--source", str(path))
    assert code == 0 and result["status"] == "succeeded", result
    assert result["rows"]["quarantined"] == 0, result
    code, rows = dossync(home, "report", "US", "archive")
    assert code == 0, rows
    (doc,) = rows
    # 92.00 + 19.32 EUR: the A/R line carries the EUR its other lines imply, exactly
    assert (doc["ref"], doc["relation"], doc["amount"]) == ("US-1", "Acme Inc", "111.32")
    balance = portal_trial_balance(home, "US")
    assert balance[("700000", None)] == (0, Decimal("92.00"))
    assert balance[("451000", None)] == (0, Decimal("19.32"))
    assert sum(d - c for d, c in balance.values()) == 0  # the book still balances, in cents


# --- booking proposals written into the book ----------------------------------------------
def _proposal_book(tmp_path: Path) -> tuple[Path, Path]:
    """The business book (A/R, A/P, income, expense, VAT in a tax table, a customer and a
    vendor), activated as dossier GP; (book, home)."""
    book = tmp_path / "business.gnucash"
    make_invoice_book(book)
    home = tmp_path / "firm"
    code, result = dossync(home, "dossier", "add", "GP", "--package", "gnucash",
                           "--source", str(book))
    assert code == 0 and result["status"] == "succeeded", result
    return book, home


def _archive(home: Path, code: str) -> dict[str, dict]:
    status, rows = dossync(home, "report", code, "archive")
    assert status == 0, rows
    return {r["ref"]: r for r in rows}


def _book_proposals(book: Path) -> dict[str, tuple]:
    """{num: (post date, description, [(account, value, quantity)])} of the WL- transactions
    in the book, as piecash reads them."""
    gnc = _open(book, readonly=True)
    try:
        return {t.num: (t.post_date, t.description, t.currency.mnemonic,
                        sorted((key(s.account), s.value, s.quantity) for s in t.splits))
                for t in gnc.transactions if t.num.startswith("WL-")}
    finally:
        gnc.close()


def test_proposals_go_into_the_book_and_the_sync_makes_them_definitive(tmp_path):
    book, home = _proposal_book(tmp_path)
    _, before = dossync(home, "report", "GP", "dashboard")
    status, sent = cli_json(home, "propose", "GP", "--count", "4")
    assert status == 0, sent
    refs = {p["ref"] for p in sent["proposals"]}
    assert (sent["pending_proposals"], sent["queued"], set(sent["delivered"])) == (4, 0, refs)

    # provisional at once: the dashboard moves, the archive shows them provisional
    _, after = dossync(home, "report", "GP", "dashboard")
    sales = sum(Decimal(p["amount"]) for p in sent["proposals"] if p["journal"] == "GNC-SALES")
    assert Decimal(after["receivables"]) - Decimal(before["receivables"]) == sales
    archive = _archive(home, "GP")
    assert {r for r, d in archive.items() if d["booking_status"] == "provisional"} == refs

    # in the book, as piecash reads it: num = ref, balanced, in EUR, on the proposal's date
    with sqlite3.connect(book) as con:  # stored as GnuCash 3 stores a posted date
        stamps = con.execute("SELECT post_date FROM transactions WHERE num LIKE 'WL-%'").fetchall()
    assert len(stamps) == 4 and all(s.endswith(" 10:59:00") for (s,) in stamps), stamps
    written = _book_proposals(book)
    assert set(written) == refs
    for proposal in sent["proposals"]:
        day, description, currency, splits = written[proposal["ref"]]
        assert (day.isoformat(), currency) == (proposal["date"], "EUR")
        assert proposal["ref"] in description
        assert sum(v for _, v, _ in splits) == 0 and all(v == q for _, v, q in splits)
        assert sum(v for _, v, _ in splits if v > 0) == Decimal(proposal["amount"])
        accounts = {a for a, _, _ in splits}
        assert ("Assets:Accounts Receivable" if proposal["journal"] == "GNC-SALES"
                else "440000") in accounts

    # a simple sync reads them back: definitive, never counted twice
    status, run = dossync(home, "sync", "GP")
    assert status == 0 and run["status"] == "succeeded", run
    assert run["pending_proposals"] == 0 and run["rows"]["quarantined"] == 0, run
    assert_conserved(run)
    archive = _archive(home, "GP")
    assert not [r for r, d in archive.items() if d["booking_status"] == "provisional"]
    for proposal in sent["proposals"]:
        doc = archive[proposal["ref"]]
        assert (doc["journal"], doc["date"], doc["amount"]) == (
            proposal["journal"], proposal["date"], proposal["amount"])
        assert doc["relation"] == ("Bakkerij Peeters" if proposal["journal"] == "GNC-SALES"
                                   else "Drukkerij Claes")
    assert nonzero(portal_trial_balance(home, "GP")) == nonzero(piecash_trial_balance(book))
    _, settled = dossync(home, "report", "GP", "dashboard")
    assert settled["receivables"] == after["receivables"]


def test_proposals_wait_while_gnucash_has_the_book_open(tmp_path):
    book, home = _proposal_book(tmp_path)
    with sqlite3.connect(book) as con:
        con.execute("INSERT INTO gnclock (hostname, pid) VALUES ('boekhouder-pc', 4242)")
    before = digest(book)
    status, sent = cli_json(home, "propose", "GP", "--count", "3")
    assert status == 0, sent
    refs = {p["ref"] for p in sent["proposals"]}
    assert (sent["queued"], sent["delivered"], sent["pending_proposals"]) == (3, [], 3)
    (warning,) = sent["warnings"]
    assert "queue" in warning and "GnuCash has the book" in warning, warning
    assert "boekhouder-pc (pid 4242)" in warning and "close it there" in warning, warning
    assert digest(book) == before  # not a byte written while GnuCash has it open
    archive = _archive(home, "GP")
    assert {r for r, d in archive.items() if d["booking_status"] == "provisional"} == refs

    with sqlite3.connect(book) as con:  # GnuCash closed the book
        con.execute("DELETE FROM gnclock")
    status, run = dossync(home, "sync", "GP")
    assert status == 0 and run["status"] == "succeeded", run
    # the sync sent the queue before reading the book: definitive in the same sync
    assert set(_book_proposals(book)) == refs
    assert run["pending_proposals"] == 0, run
    assert nonzero(portal_trial_balance(home, "GP")) == nonzero(piecash_trial_balance(book))


def _proposal(ref: str, day: str, *lines: tuple, kind: str = "sales", relation=None):
    from dossync.core.model import Proposal, ProposalLine

    return Proposal(ref=ref, journal="GNC-SALES" if kind == "sales" else "GNC-PURCH",
                    kind=kind, date=day, relation_id=relation,
                    amount=sum((Decimal(d) for _, d, _, *_ in lines), Decimal(0)),
                    lines=tuple(ProposalLine(a, Decimal(d), Decimal(c), None, bool(o))
                                for a, d, c, *o in lines))


def test_the_same_queue_sent_twice_goes_into_a_gnucash_2_6_book_once(tmp_path):
    """Written straight by the core function into all_account_types (GnuCash 2.6): its own
    date format, each reference once however often it is sent, all or nothing."""
    from dossync.core.connectors.gnucash_connector import GnuCashConnector
    from dossync.core.connectors.gnucash_proposals import receive_proposals
    from dossync.core.model import ConnectorSettings, PackageBusy, TerminalError

    book = tmp_path / "all_account_types.gnucash"
    shutil.copy(CORPUS / book.name, book)
    book.chmod(0o644)
    settings = ConnectorSettings()
    queue = [_proposal("WL-T-0001", "2015-01-10", ("RECEIVABLE", "121.00", "0", 1),
                       ("INCOME", "0", "100.00"), ("LIABILITY", "0", "21.00")),
             _proposal("WL-T-0002", "2015-07-01", ("EXPENSE", "30.50", "0"),
                       ("PAYABLE", "0", "30.50", 1), kind="purchase")]
    receive_proposals(book, settings, queue)
    receive_proposals(book, settings, queue)  # sent again (a retry): nothing doubles
    with sqlite3.connect(book) as con:
        rows = con.execute("SELECT num, post_date, length(enter_date), currency_guid FROM "
                           "transactions WHERE num LIKE 'WL-%' ORDER BY num").fetchall()
        ((eur,),) = con.execute("SELECT guid FROM commodities WHERE mnemonic = 'EUR'").fetchall()
        posted = con.execute("SELECT gdate_val FROM slots WHERE name = 'date-posted' AND "
                             "obj_guid IN (SELECT guid FROM transactions WHERE num LIKE 'WL-%') "
                             "ORDER BY gdate_val").fetchall()
    # GnuCash 2.6's own format: local (Brussels) midnight in UTC, winter and summer
    assert rows == [("WL-T-0001", "20150109230000", 14, eur),
                    ("WL-T-0002", "20150630220000", 14, eur)]
    assert posted == [("20150110",), ("20150701",)]

    connector = GnuCashConnector(book, settings)
    bookings = {b["reference"]: b for b in connector.tables["bookings"].to_pylist()
                if b["reference"]}
    assert {r: (b["journal"], b["doc_type"], b["doc_no"], b["date"], b["due_date"])
            for r, b in bookings.items()} == {
        "WL-T-0001": ("GNC-SALES", "invoice", "WL-T-0001", "2015-01-10", "2015-02-09"),
        "WL-T-0002": ("GNC-PURCH", "invoice", "WL-T-0002", "2015-07-01", "2015-07-31")}

    # all or nothing: one bad proposal and the whole queue stays out of the book
    unchanged = digest(book)
    bad = [_proposal("WL-T-0003", "2015-02-01", ("CASH", "5.00", "0"), ("INCOME", "0", "5.00")),
           _proposal("WL-T-0004", "2015-02-01", ("STOCK", "5.00", "0"), ("CASH", "0", "5.00"))]
    with pytest.raises(TerminalError, match="STOCK .* not in the book currency EUR"):
        receive_proposals(book, settings, bad)
    with pytest.raises(TerminalError, match="account Nowhere is not in GnuCash book"):
        receive_proposals(book, settings, [_proposal(
            "WL-T-0005", "2015-02-01", ("Nowhere", "5.00", "0"), ("INCOME", "0", "5.00"))])
    assert digest(book) == unchanged
    with sqlite3.connect(book) as con:
        con.execute("INSERT INTO gnclock (hostname, pid) VALUES ('boekhouder-pc', 77)")
    before_lock = digest(book)
    with pytest.raises(PackageBusy, match="open on boekhouder-pc .pid 77.: close it there"):
        receive_proposals(book, settings, bad[:1])
    assert digest(book) == before_lock
    with sqlite3.connect(book) as con:
        assert con.execute("SELECT count(*) FROM transactions WHERE num IN "
                           "('WL-T-0003', 'WL-T-0004', 'WL-T-0005')").fetchone() == (0,)
