"""Connector for GnuCash books saved as SQLite (`--package gnucash`).

The book is opened read-only (`mode=ro`), read whole in one read
transaction and let go; nothing is ever written to it. A book that GnuCash
has open (a row in its `gnclock` table) is refused: GnuCash may be halfway
through saving it.

What the portal gets from a GnuCash book:
- accounts: every account under the book's root (not the scheduled-
  transaction templates); code = the GnuCash account code when it is set and
  unique in the book, else the full name ("Expenses:Groceries"); name = the
  full name.
- journals: GnuCash has none. The posting transactions of posted customer
  invoices go to GNC-SALES (kind sales) and those of vendor bills to
  GNC-PURCH (kind purchase), as documents (doc_type invoice, or credit_note
  when the invoice's `credit-note` slot is set; doc_no = the invoice id;
  relation = the owner, a job's owner for a job; due date = the posting
  transaction's `trans-date-due` slot, else from the bill terms as GnuCash
  computes them: days terms, or proximo terms). Every other transaction, employee vouchers included, goes to
  GNC (kind misc).
- the A/R and A/P lines of an invoice's lot carry the owner as their
  relation: the portal takes a document's amount from those lines.
- fiscal years and periods: calendar years and months over the transaction
  dates (GnuCash keeps no fiscal calendar in the book).
- relations: the customers and vendors of the business tables.
- bookings: transactions; lines: their splits, in integer cents of the
  book's currency (the root account's commodity), positive = debit:
  * a split on an account in the book currency counts its quantity (what
    GnuCash and piecash add up as that account's balance);
  * else, in a transaction in the book currency, its value;
  * else (a foreign transaction on a foreign account) its value converted
    at the rate the transaction itself implies through its splits on
    book-currency accounts; the cent left over by rounding goes to the
    largest converted line, so the booking balances. A transaction with no
    split in the book currency at all has no such rate: it is kept out of
    the money figures and counted in `warnings`.
- matchings: GnuCash pays an invoice through its lot (`invoices.post_lot`):
  every split in that lot outside the posting transaction is a matching,
  id = the split's GUID, invoice = the posting transaction, payment = the
  split's transaction, amount = how much it brings the invoice's open
  balance down, in cents (positive for a payment, negative if it adds back).
  Lines in an invoice's lot carry the invoice owner as their relation.
"""
from __future__ import annotations

import calendar as calendar_module
import datetime
import sqlite3
from pathlib import Path

import polars as pl
import pyarrow as pa

from core.connectors.base import sqlite_uri
from core.connectors.snapshot import SnapshotConnector, calendar, period_columns, table
from core.model import LedgerUnavailable

JOURNAL = "GNC"
SALES, PURCHASES = "GNC-SALES", "GNC-PURCH"
JOURNALS = ((JOURNAL, "GnuCash transactions", "misc"),
            (SALES, "GnuCash customer invoices", "sales"),
            (PURCHASES, "GnuCash vendor bills", "purchase"))
# GncOwnerType: what an invoice's owner_type says its owner_guid is.
CUSTOMER, JOB, VENDOR = 2, 3, 4

_QUERIES = {
    "books": "SELECT root_account_guid, root_template_guid FROM books",
    "accounts": "SELECT guid, name, account_type, commodity_guid, parent_guid, code FROM accounts",
    "commodities": "SELECT guid, mnemonic FROM commodities",
    "transactions": "SELECT guid, currency_guid, num, post_date, description FROM transactions",
    "splits": ("SELECT guid, tx_guid, account_guid, memo, value_num, value_denom, "
               "quantity_num, quantity_denom, lot_guid FROM splits"),
    "customers": "SELECT guid, name, addr_email, 'customer' FROM customers",
    "vendors": "SELECT guid, name, addr_email, 'supplier' FROM vendors",
    "invoices": ("SELECT guid, id, owner_type, owner_guid, terms, post_txn, post_lot "
                 "FROM invoices WHERE post_txn IS NOT NULL AND post_lot IS NOT NULL"),
    "jobs": "SELECT guid, owner_type, owner_guid FROM jobs",
    "billterms": "SELECT guid, type, duedays, cutoff FROM billterms",
    "slots": ("SELECT obj_guid, name, int64_val, timespec_val, gdate_val FROM slots "
              "WHERE name IN ('credit-note', 'trans-date-due')"),
}


def guid_id(guid: str) -> int:
    """A GnuCash GUID (32 hex digits) as a stable non-negative int64."""
    return int(guid[:15], 16)


def _iso(post_date: str | None) -> str | None:
    """GnuCash dates: 'YYYY-MM-DD HH:MM:SS' (3.x+) or 'YYYYMMDDHHMMSS' (2.x)."""
    if not post_date:
        return None
    digits = "".join(ch for ch in post_date if ch.isdigit())
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if len(digits) >= 8 else post_date


def read_book(path: Path) -> dict[str, list[tuple]]:
    """The book's raw tables, read in one read-only transaction; raises LedgerUnavailable."""
    if not path.is_file():
        raise LedgerUnavailable(f"GnuCash book {path} does not exist: check the dossier's --source")
    with path.open("rb") as fh:
        header = fh.read(16)
    if header.startswith(b"\x1f\x8b") or header.lstrip().startswith(b"<?xml"):
        raise LedgerUnavailable(
            f"{path} is a GnuCash XML book; dossync reads SQLite books: in GnuCash use "
            f"File > Save As... with data format 'sqlite3'")
    try:
        conn = sqlite3.connect(sqlite_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"{path} cannot be opened as a GnuCash book: {exc}") from exc
    try:
        conn.execute("BEGIN")  # one snapshot of the whole book
        try:
            locks = conn.execute("SELECT hostname, pid FROM gnclock").fetchall()
        except sqlite3.Error as exc:
            raise LedgerUnavailable(
                f"{path} is not a GnuCash book (sqlite: {exc}): check the dossier's --source"
            ) from exc
        if locks:
            host, pid = locks[0]
            raise LedgerUnavailable(
                f"GnuCash book {path} is locked: GnuCash has it open on {host} (pid {pid}) "
                f"(GnuCash: 'could not obtain the lock for {path.name}. That database may be in "
                f"use by another user'). Close the book in GnuCash, then sync again")
        try:
            raw = {name: conn.execute(sql).fetchall() for name, sql in _QUERIES.items()}
        except sqlite3.Error as exc:
            raise LedgerUnavailable(
                f"{path} is not a readable GnuCash book (sqlite: {exc})") from exc
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:  # "file is not a database" and the like
        raise LedgerUnavailable(
            f"{path} is not a GnuCash book (sqlite: {exc}): check the dossier's --source") from exc
    finally:
        conn.close()
    if not raw["books"]:
        raise LedgerUnavailable(f"{path} is not a GnuCash book: its books table is empty")
    return raw


def _accounts(raw: dict) -> tuple[dict[str, tuple[str, str, str, str]], str]:
    """guid -> (code, full name, commodity guid, type) of the book's accounts; the book currency."""
    root, template = raw["books"][0]
    by_guid = {guid: (name, kind, commodity, parent, code)
               for guid, name, kind, commodity, parent, code in raw["accounts"]}
    full: dict[str, str | None] = {}

    def full_name(guid: str) -> str | None:  # None: not under the book's root
        if guid in full:
            return full[guid]
        name, _, _, parent, _ = by_guid[guid]
        if guid == root:
            result = ""
        elif parent is None or parent not in by_guid or guid == template:
            result = None
        else:
            above = full_name(parent)
            result = None if above is None else (f"{above}:{name}" if above else name)
        full[guid] = result
        return result

    names = {g: full_name(g) for g in by_guid}
    codes = [c for g, (_, _, _, _, c) in by_guid.items() if c and names[g]]
    unique = {c for c in codes if codes.count(c) == 1}
    accounts = {g: ((by_guid[g][4] if by_guid[g][4] in unique else n), n, by_guid[g][2],
                    by_guid[g][1]) for g, n in names.items() if n}
    return accounts, by_guid[root][2]


def _cents(num: str, den: str) -> pl.Expr:
    """num/den in cents, rounded half up, in exact integer arithmetic."""
    return (pl.col(num) * 200 + pl.col(den)) // (pl.col(den) * 2)


def convert(raw: dict, source: str) -> tuple[dict[str, pa.Table], list[str]]:
    """The canonical streams of a raw book, and warnings about what was kept out."""
    accounts, book_currency = _accounts(raw)
    mnemonic = dict(raw["commodities"])
    warnings: list[str] = []

    account_table = table("accounts", {
        "code": [a[0] for a in accounts.values()], "name": [a[1] for a in accounts.values()]})
    code_of = pl.DataFrame({"account_guid": list(accounts),
                            "account": [a[0] for a in accounts.values()],
                            "account_commodity": [a[2] for a in accounts.values()]},
                           schema={"account_guid": pl.String, "account": pl.String,
                                   "account_commodity": pl.String})

    tx = pl.DataFrame(raw["transactions"], orient="row", schema={
        "tx_guid": pl.String, "currency": pl.String, "num": pl.String, "post_date": pl.String,
        "description": pl.String})
    tx = tx.with_columns(pl.col("post_date").map_elements(_iso, return_dtype=pl.String)
                         .alias("date"))
    splits = pl.DataFrame(raw["splits"], orient="row", schema={
        "guid": pl.String, "tx_guid": pl.String, "account_guid": pl.String, "memo": pl.String,
        "value_num": pl.Int64, "value_denom": pl.Int64, "quantity_num": pl.Int64,
        "quantity_denom": pl.Int64, "lot_guid": pl.String})
    splits = (splits.join(code_of, on="account_guid", how="left")
              .join(tx.select("tx_guid", "currency"), on="tx_guid", how="inner"))
    # Scheduled-transaction templates live under the template root: not bookings.
    templates = splits.filter(pl.col("account").is_null()).select("tx_guid").unique()
    splits = splits.join(templates, on="tx_guid", how="anti")
    tx = tx.join(templates, on="tx_guid", how="anti")

    splits = splits.with_columns(
        _cents("value_num", "value_denom").alias("value"),
        _cents("quantity_num", "quantity_denom").alias("quantity"),
    ).with_columns(
        pl.when(pl.col("account_commodity") == book_currency).then(pl.col("quantity"))
        .when(pl.col("currency") == book_currency).then(pl.col("value"))
        .otherwise(None).alias("amount"))
    splits, dropped = _convert_foreign(splits)
    if dropped:
        currencies = ", ".join(sorted({mnemonic.get(c, c) for c in dropped.values()}))
        warnings.append(
            f"{len(dropped)} GnuCash transaction(s) in {currencies} touch no account in the book "
            f"currency {mnemonic.get(book_currency, book_currency)}: no rate to convert them, "
            f"so they are kept out of the money figures")
        tx = tx.filter(~pl.col("tx_guid").is_in(list(dropped)))

    splits = splits.sort("tx_guid", "guid").with_columns(
        (pl.col("guid").cum_count().over("tx_guid")).cast(pl.Int64).alias("line_no"))
    guid_to_id = pl.col("tx_guid").str.slice(0, 15).str.to_integer(base=16)
    docs = _documents(raw, tx)
    # A split in an invoice's lot is that invoice's open item: its line carries the owner.
    splits = splits.join(docs.select("lot_guid", pl.col("relation_id").alias("lot_relation")),
                         on="lot_guid", how="left")
    matchings = _matchings(splits, docs)
    lines = splits.select(
        guid_to_id.alias("booking_id"), "line_no", "account",
        pl.col("lot_relation").alias("relation_id"),
        pl.when(pl.col("memo") == "").then(None).otherwise(pl.col("memo")).alias("description"),
        pl.when(pl.col("amount") > 0).then(pl.col("amount")).otherwise(0).alias("debit"),
        pl.when(pl.col("amount") < 0).then(-pl.col("amount")).otherwise(0).alias("credit"),
    ).to_arrow()
    tx = tx.join(docs.drop("lot_guid"), on="tx_guid", how="left").sort("tx_guid")
    tx_arrow = tx.to_arrow()
    dates = tx_arrow.column("date").combine_chunks().cast(pa.string())
    year, period = period_columns(dates)
    blank = lambda c: pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c))  # noqa: E731
    bookings = table("bookings", {
        "id": tx.select(guid_to_id).to_series().to_arrow(),
        "journal": tx.select(pl.col("journal").fill_null(JOURNAL)).to_series().to_arrow(),
        "doc_no": tx.select(pl.coalesce(blank("doc_no"), blank("num"))).to_series().to_arrow(),
        "doc_type": tx.select(pl.col("doc_type").fill_null("transaction")).to_series().to_arrow(),
        "fiscal_year_id": year, "period_id": period, "date": dates,
        "due_date": tx.select("due_date").to_series().to_arrow(),
        "relation_id": tx.select("relation_id").to_series().to_arrow(),
        "description": tx.select(blank("description")).to_series().to_arrow()})

    relations = raw["customers"] + raw["vendors"]
    tables = {
        "accounts": account_table,
        "journals": table("journals", {"code": [j[0] for j in JOURNALS],
                                       "name": [j[1] for j in JOURNALS],
                                       "kind": [j[2] for j in JOURNALS]}),
        "relations": table("relations", {
            "id": [guid_id(r[0]) for r in relations], "kind": [r[3] for r in relations],
            "name": [r[1] for r in relations], "email": [r[2] or None for r in relations]}),
        "bookings": bookings,
        "lines": table("lines", {name: lines.column(name) for name in lines.column_names}),
        "matchings": table("matchings", {
            name: matchings[name].to_arrow() for name in matchings.columns}),
    }
    known = [d for d in dates.to_pylist() if d]
    if known:
        tables["fiscal_years"], tables["periods"] = calendar(min(known), max(known))
    else:
        tables["fiscal_years"], tables["periods"] = table("fiscal_years", {}), table("periods", {})
    return tables, warnings


def _documents(raw: dict, tx: pl.DataFrame) -> pl.DataFrame:
    """The posted invoices and bills among the transactions, one row per posting transaction.

    Columns: tx_guid, lot_guid, journal, doc_type, doc_no, relation_id, due_date (from the
    posting's trans-date-due slot) and due_days (the bill terms', used when that is missing).
    """
    owner_of_job = {guid: (kind, owner) for guid, kind, owner in raw["jobs"]}
    terms_of = {guid: (kind, days, cutoff) for guid, kind, days, cutoff in raw["billterms"]
                if days is not None}
    posted_on = dict(zip(tx["tx_guid"].to_list(), tx["date"].to_list()))
    credit_notes = {guid for guid, name, int64, _, _ in raw["slots"]
                    if name == "credit-note" and int64}
    due = {guid: _iso(timespec or gdate) for guid, name, _, timespec, gdate in raw["slots"]
           if name == "trans-date-due" and (timespec or gdate)}
    present = set(tx["tx_guid"].to_list())
    rows = []
    for guid, number, owner_type, owner, terms, post_txn, post_lot in raw["invoices"]:
        if owner_type == JOB and owner in owner_of_job:
            owner_type, owner = owner_of_job[owner]
        journal = {CUSTOMER: SALES, VENDOR: PURCHASES}.get(owner_type)
        if journal is None or post_txn not in present:  # employee vouchers stay in GNC
            continue
        due_date = due.get(post_txn) or _due_by_terms(posted_on.get(post_txn), terms_of.get(terms))
        rows.append((post_txn, post_lot, journal,
                     "credit_note" if guid in credit_notes else "invoice", number or None,
                     guid_id(owner) if owner else None, due_date))
    return pl.DataFrame(rows, orient="row", schema={
        "tx_guid": pl.String, "lot_guid": pl.String, "journal": pl.String,
        "doc_type": pl.String, "doc_no": pl.String, "relation_id": pl.Int64,
        "due_date": pl.String}).unique("tx_guid", keep="first")


def _due_by_terms(posted: str | None, terms: tuple | None) -> str | None:
    """A document's due date from its bill terms, the way GnuCash computes it.

    Days terms: the posting date plus the due days. Proximo terms: that day
    of the next month (a posting after the cutoff day: of the month after),
    or the month's last day when it is shorter; a cutoff of 0 or less counts
    back from the posting month's last day.
    """
    if not posted or not terms:
        return None
    kind, days, cutoff = terms
    try:
        day = datetime.date.fromisoformat(posted)
    except ValueError:
        return None
    if kind == "GNC_TERM_TYPE_DAYS":
        return (day + datetime.timedelta(days=days)).isoformat()
    if kind != "GNC_TERM_TYPE_PROXIMO":
        return None
    cutoff = cutoff or 0
    if cutoff <= 0:
        cutoff += calendar_module.monthrange(day.year, day.month)[1]
    months = 1 if day.day <= cutoff else 2
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    last = calendar_module.monthrange(year, month)[1]
    return datetime.date(year, month, min(max(days, 1), last)).isoformat()


def _matchings(splits: pl.DataFrame, docs: pl.DataFrame) -> pl.DataFrame:
    """Every split in an invoice's lot outside its posting: what it pays off that invoice."""
    in_lot = splits.join(docs.select("lot_guid", pl.col("tx_guid").alias("post_tx")),
                         on="lot_guid", how="inner")
    sign = (in_lot.filter(pl.col("tx_guid") == pl.col("post_tx")).group_by("lot_guid")
            .agg(pl.col("amount").sum().sign().alias("sign")))
    to_id = lambda c: pl.col(c).str.slice(0, 15).str.to_integer(base=16)  # noqa: E731
    return (in_lot.filter(pl.col("tx_guid") != pl.col("post_tx"))
            .join(sign, on="lot_guid", how="inner")
            .select(to_id("guid").alias("id"), to_id("post_tx").alias("invoice_id"),
                    to_id("tx_guid").alias("payment_id"),
                    (-pl.col("amount") * pl.col("sign")).cast(pl.Int64).alias("amount"))
            .filter(pl.col("amount") != 0).sort("id"))


def _convert_foreign(splits: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
    """Fill the amounts of foreign splits in foreign transactions; which could not be."""
    todo = splits.filter(pl.col("amount").is_null()).select("tx_guid").unique()
    if not todo.height:
        return splits, {}
    rest = splits.join(todo, on="tx_guid", how="anti")
    fixed: list[pl.DataFrame] = []
    dropped: dict[str, str] = {}
    for (tx_guid,), group in splits.join(todo, on="tx_guid", how="semi").group_by(
            "tx_guid", maintain_order=True):
        known = group.filter(pl.col("amount").is_not_null())
        # The rate the transaction implies: book-currency cents per transaction-currency cent.
        book_cents = int(known["amount"].sum()) if known.height else 0
        tx_cents = int(known["value"].sum()) if known.height else 0
        if tx_cents == 0:
            dropped[tx_guid] = group["currency"][0]
            continue
        if tx_cents < 0:
            book_cents, tx_cents = -book_cents, -tx_cents
        amounts = [a if a is not None else (2 * v * book_cents + tx_cents) // (2 * tx_cents)
                   for a, v in zip(group["amount"].to_list(), group["value"].to_list())]
        residue = -sum(amounts)
        if residue:
            converted = [i for i, a in enumerate(group["amount"].to_list()) if a is None]
            largest = max(converted, key=lambda i: abs(amounts[i]))
            amounts[largest] += residue
        fixed.append(group.with_columns(pl.Series("amount", amounts, pl.Int64)))
    return pl.concat([rest, *fixed]) if fixed else rest, dropped


class GnuCashConnector(SnapshotConnector):
    """Reads one GnuCash SQLite book, whole and read-only."""

    package = "gnucash"

    def __init__(self, path: Path) -> None:
        path = Path(path)
        tables, warnings = convert(read_book(path), str(path))
        super().__init__(str(path), tables, warnings)
