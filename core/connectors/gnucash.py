"""Reading GnuCash books saved as SQLite (`--package gnucash`, `gnucash_connector`).

The book is opened read-only (`mode=ro`), read whole in one read
transaction and let go; the reader never writes to it (booking proposals go
in through `core.connectors.gnucash_proposals`, which uses this module's
rules; `gnucash_connector.GnuCashConnector` joins the two). A book that GnuCash has
open (a row in its `gnclock` table) is refused: GnuCash may be halfway
through saving it. An XML book is refused with the way to save it as SQLite.

The book currency (what the money columns are in, `currency`):
`settings.currency` when set (the user's override wins; it must be a
commodity of the book, else the book is refused); else the
root account's commodity (books piecash creates set it); else the currency
of the book's transactions when they all share one (books GnuCash itself
saves leave the root's commodity empty); else the one currency the
accounts' commodities use. Failing all that a book with transactions is
refused (TerminalError) naming the candidates and the fix; a book without
transactions syncs with an empty ledger (currency: what the accounts say,
or None).

Dates: GnuCash keeps timestamps in UTC, as 'YYYYMMDDHHMMSS' (2.x; 2.6 wrote
local midnight converted to UTC, '20141224230000' for 25 December 2014 in
Brussels) or 'YYYY-MM-DD HH:MM:SS' (3.x: 10:59:00 UTC of the day). Every
timestamp (a transaction's post_date, timespec slots such as
`trans-date-due`) is read as GnuCash shows it: converted to
`settings.timezone` (IANA name, default Europe/Brussels) and taken as that
day. `gdate` slots are plain dates.

What the portal gets from a GnuCash book:
- accounts: every account under the book's root (not the scheduled-
  transaction templates); code = the GnuCash account code when it is set and
  unique in the book, else the full name ("Expenses:Groceries"); name = the
  full name; class from GnuCash's account type (INCOME revenue, EXPENSE
  cost, BANK and CASH bank, RECEIVABLE receivable, PAYABLE payable, EQUITY
  and TRADING equity, LIABILITY and CREDIT liability, ASSET, STOCK, MUTUAL
  and CURRENCY asset), except that an account the business tax tables book
  tax on (`taxtable_entries.account`) is vat.
- journals: GnuCash has none. The posting transactions of posted customer
  invoices go to GNC-SALES (kind sales) and those of vendor bills to
  GNC-PURCH (kind purchase), as documents (doc_type invoice, or credit_note
  when the invoice's `credit-note` slot is set; doc_no = the invoice id;
  relation = the owner, a job's owner for a job; due date = the posting
  transaction's `trans-date-due` slot, else from the bill terms as GnuCash
  computes them: days terms, or proximo terms). The booking proposals
  dossync wrote into the book (marked with the `dossync-proposal` slot) go
  there too, as invoices: doc_no = their reference, relation = the owner in
  their `dossync-relation` slot, due date = their `trans-date-due` slot.
  Every other transaction, employee vouchers included, goes to GNC (kind
  misc).
- the A/R and A/P lines of an invoice's lot, and the open-item line of a
  proposal (its `dossync-open-item` split slot), carry the owner as their
  relation: the portal takes a document's amount from those lines.
- fiscal years and periods: calendar years and months over the transaction
  dates (GnuCash keeps no fiscal calendar in the book).
- relations: the customers and vendors of the business tables.
- bookings: transactions (reference = the transaction's num when it has
  one: a proposal's reference lives there); lines: their splits, exact
  (num/denom computed as fractions, quantized to 6 decimals only at the
  end), positive = debit, in the book currency:
  * a split on an account in the book currency counts its quantity (what
    GnuCash and piecash add up as that account's balance);
  * else, in a transaction in the book currency, its value;
  * else (a foreign transaction on a foreign account) its value converted
    at the rate the transaction itself implies through its splits on
    book-currency accounts, rounded (half up) to the book currency's
    fraction; what rounding leaves over goes to the largest converted line,
    so the booking balances exactly;
  * a transaction with no split in the book currency at all has no such
    rate (nor one whose book-currency splits' values cancel out): its other
    lines keep their values in the transaction's currency, with
    `commodity` = that currency (shown per commodity in the trial balance,
    left out of the money reports), and `warnings` says so.
  A denominator of 0 (a damaged book) reads as 0, with a warning.
- matchings: GnuCash pays an invoice through its lot (`invoices.post_lot`):
  every split in that lot outside the posting transaction is a matching,
  id = the split's GUID, invoice = the posting transaction, payment = the
  split's transaction, amount = how much it brings the invoice's open
  balance down, exactly (positive for a payment, negative if it adds back);
  splits kept in a foreign commodity make no matching.
"""
from __future__ import annotations

import calendar as calendar_module
import datetime
import decimal
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import pyarrow as pa

from dossync.core import money
from dossync.core.connectors.base import sqlite_uri
from dossync.core.connectors.snapshot import calendar, period_columns, table
from dossync.core.model import ConnectorSettings, LedgerUnavailable, TerminalError

JOURNAL = "GNC"
SALES, PURCHASES = "GNC-SALES", "GNC-PURCH"
JOURNALS = ((JOURNAL, "GnuCash transactions", "misc"),
            (SALES, "GnuCash customer invoices", "sales"),
            (PURCHASES, "GnuCash vendor bills", "purchase"))
# GncOwnerType: what an invoice's owner_type says its owner_guid is.
CUSTOMER, JOB, VENDOR = 2, 3, 4

# The slots dossync writes on the booking proposals it puts into a book.
PROPOSAL_SLOT = "dossync-proposal"    # on the transaction, string: 'sales' | 'purchase'
RELATION_SLOT = "dossync-relation"    # on the transaction, guid: the customer or vendor
OPEN_ITEM_SLOT = "dossync-open-item"  # on the receivable/payable split, int64 1

CLASS_OF_TYPE = {
    "INCOME": "revenue", "EXPENSE": "cost", "BANK": "bank", "CASH": "bank",
    "RECEIVABLE": "receivable", "PAYABLE": "payable", "EQUITY": "equity", "TRADING": "equity",
    "LIABILITY": "liability", "CREDIT": "liability",
    "ASSET": "asset", "STOCK": "asset", "MUTUAL": "asset", "CURRENCY": "asset",
}

_QUERIES = {
    "books": "SELECT guid, root_account_guid, root_template_guid FROM books",
    "accounts": ("SELECT guid, name, account_type, commodity_guid, parent_guid, code, "
                 "commodity_scu, coalesce(placeholder, 0) FROM accounts"),
    "commodities": "SELECT guid, namespace, mnemonic, fraction FROM commodities",
    "transactions": "SELECT guid, currency_guid, num, post_date, description FROM transactions",
    "splits": ("SELECT guid, tx_guid, account_guid, memo, value_num, value_denom, "
               "quantity_num, quantity_denom, lot_guid FROM splits"),
    "customers": "SELECT guid, name, addr_email, 'customer' FROM customers",
    "vendors": "SELECT guid, name, addr_email, 'supplier' FROM vendors",
    "invoices": ("SELECT guid, id, owner_type, owner_guid, terms, post_txn, post_lot "
                 "FROM invoices WHERE post_txn IS NOT NULL AND post_lot IS NOT NULL"),
    "jobs": "SELECT guid, owner_type, owner_guid FROM jobs",
    "billterms": "SELECT guid, type, duedays, cutoff FROM billterms",
    "tax_accounts": "SELECT DISTINCT account FROM taxtable_entries",
    "slots": ("SELECT obj_guid, name, int64_val, string_val, timespec_val, guid_val, gdate_val "
              "FROM slots WHERE name IN ('credit-note', 'trans-date-due', "
              f"'{PROPOSAL_SLOT}', '{RELATION_SLOT}', '{OPEN_ITEM_SLOT}')"),
}

_EXACT = decimal.Context(prec=80)  # wide enough for any num/denom GnuCash stores


def guid_id(guid: str) -> int:
    """A GnuCash GUID (32 hex digits) as a stable non-negative int64."""
    return int(guid[:15], 16)


def zone(name: str | None) -> str:
    """The IANA time zone name, checked; TerminalError when it is not one."""
    name = name or "Europe/Brussels"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TerminalError(
            f"time zone {name!r} is not an IANA time zone: fix it with "
            f"'dossync dossier set CODE --timezone Europe/Brussels'") from None
    return name


def local_dates(stamps: list[str | None], timezone: str) -> list[str | None]:
    """GnuCash timestamps as the ISO dates GnuCash shows in `timezone`, all at once.

    'YYYY-MM-DD HH:MM:SS' (3.x) and 'YYYYMMDDHHMMSS' (2.x) are UTC: converted to
    the zone, then the day is taken. 'YYYYMMDD' (a gdate) is a plain date.
    Empty or unreadable stamps give None.
    """
    digits = pl.DataFrame({"d": pl.Series(stamps, dtype=pl.String)}).select(
        pl.col("d").str.replace_all(r"[^0-9]", ""))
    dates = digits.select(
        pl.when(pl.col("d").str.len_chars() == 8)
        .then(pl.col("d").str.strptime(pl.Date, "%Y%m%d", strict=False))
        .otherwise(pl.col("d").str.strptime(pl.Datetime("us"), "%Y%m%d%H%M%S", strict=False)
                   .dt.replace_time_zone("UTC").dt.convert_time_zone(timezone).dt.date())
        .cast(pl.String))
    return dates.to_series().to_list()


def read_tables(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """The raw tables dossync reads, in the connection's current transaction."""
    return {name: conn.execute(sql).fetchall() for name, sql in _QUERIES.items()}


def refuse_xml(path: Path) -> None:
    """LedgerUnavailable for a missing file or an XML book (dossync reads SQLite books)."""
    if not path.is_file():
        raise LedgerUnavailable(f"GnuCash book {path} does not exist: check the dossier's --source")
    with path.open("rb") as fh:
        header = fh.read(16)
    if header.startswith(b"\x1f\x8b") or header.lstrip().startswith(b"<?xml"):
        raise LedgerUnavailable(
            f"{path} is a GnuCash XML book; dossync reads SQLite books: in GnuCash use "
            f"File > Save As... with data format 'sqlite3'")


def read_book(path: Path) -> dict[str, list[tuple]]:
    """The book's raw tables, read in one read-only transaction; raises LedgerUnavailable."""
    refuse_xml(path)
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
            raw = read_tables(conn)
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


# --- the chart and the book currency -------------------------------------------------
@dataclass(frozen=True)
class Account:
    guid: str
    code: str  # the portal's account code
    name: str  # the full name
    type: str  # GnuCash's account_type
    commodity: str | None  # commodity guid
    scu: int  # the smallest unit of its commodity the account keeps
    placeholder: bool = False  # a parent account GnuCash keeps bookings off


@dataclass(frozen=True)
class Chart:
    """The accounts under the book's root, and those under its template root."""

    accounts: dict[str, Account]
    templates: frozenset[str]
    root_commodity: str | None


def chart(raw: dict) -> Chart:
    _, root, template = raw["books"][0]
    by_guid = {row[0]: row for row in raw["accounts"]}
    full: dict[str, str | None] = {}
    under_template: set[str] = set()

    def full_name(guid: str) -> str | None:  # None: not under the book's root
        if guid in full:
            return full[guid]
        full[guid] = None  # (a cycle in a damaged book ends here)
        _, name, _, _, parent, _, _, _ = by_guid[guid]
        if guid == root:
            result = ""
        elif guid == template:
            result = None
            under_template.add(guid)
        elif parent is None or parent not in by_guid:
            result = None
        else:
            above = full_name(parent)
            if parent in under_template:
                under_template.add(guid)
            result = None if above is None else (f"{above}:{name}" if above else name)
        full[guid] = result
        return result

    names = {g: full_name(g) for g in by_guid}
    codes = Counter(row[5] for g, row in by_guid.items() if row[5] and names[g])
    accounts = {}
    for guid, name in names.items():
        if not name:
            continue
        _, _, kind, commodity, _, code, scu, placeholder = by_guid[guid]
        accounts[guid] = Account(guid, code if code and codes[code] == 1 else name, name, kind,
                                 commodity, scu or 0, bool(placeholder))
    root_commodity = by_guid[root][3] if root in by_guid else None
    return Chart(accounts, frozenset(under_template), root_commodity)


@dataclass(frozen=True)
class Currency:
    guid: str | None
    mnemonic: str | None
    fraction: int = 100


def book_currency(raw: dict, book: Chart, settings: ConnectorSettings, source: str,
                  transactions: list[tuple] | None = None) -> Currency:
    """The book currency, by the rule in the module docstring (TerminalError when it cannot
    be told for a book with transactions). transactions: the book's own (no templates)."""
    commodities = {guid: (namespace, mnemonic, fraction or 1)
                   for guid, namespace, mnemonic, fraction in raw["commodities"]}

    def of(guid: str) -> Currency:
        _, mnemonic, fraction = commodities[guid]
        return Currency(guid, mnemonic, fraction)

    txs = raw["transactions"] if transactions is None else transactions
    if settings.currency:
        wanted = settings.currency.upper()
        found = sorted((namespace != "CURRENCY", guid) for guid, (namespace, mnemonic, _)
                       in commodities.items() if mnemonic.upper() == wanted)
        if found:
            return of(found[0][1])
        present = sorted({m for ns, m, _ in commodities.values() if ns == "CURRENCY"})
        raise TerminalError(
            f"GnuCash book {source} has no commodity {wanted}, the dossier's --currency: its "
            f"currencies are {', '.join(present) or 'none yet'}. Fix the dossier's setting: "
            + (f"'dossync dossier set CODE --currency {present[0]}', or " if present else "")
            + "'dossync dossier set CODE --currency \"\"' to let dossync read it from the book "
            "(a book without transactions needs none)")
    if book.root_commodity in commodities:
        return of(book.root_commodity)
    counts = Counter(currency for _, currency, *_ in txs
                     if commodities.get(currency, ("",))[0] == "CURRENCY")
    if len(counts) == 1:
        return of(next(iter(counts)))
    used = Counter(a.commodity for a in book.accounts.values()
                   if commodities.get(a.commodity, ("",))[0] == "CURRENCY")
    if len(used) == 1:
        return of(next(iter(used)))
    if not txs:
        return Currency(None, None)
    named = lambda c: commodities[c][1]  # noqa: E731
    candidates = ", ".join(f"{named(c)} ({n} transaction{'s' if n != 1 else ''})"
                           for c, n in counts.most_common()) or "none"
    accounts = ", ".join(f"{named(c)} ({n} account{'s' if n != 1 else ''})"
                         for c, n in used.most_common()) or "none"
    example = named(counts.most_common(1)[0][0]) if counts else "EUR"
    raise TerminalError(
        f"GnuCash book {source} does not say its currency: its root account has none, its "
        f"transactions are in {candidates} and its accounts in {accounts}. Tell dossync the "
        f"book currency: 'dossync dossier set CODE --currency {example}' (when adding the "
        f"dossier: 'dossync dossier add CODE ... --currency {example}')")


# --- amounts ---------------------------------------------------------------------------
def _fraction(num: int, denom: int) -> Fraction | None:
    return Fraction(num, denom) if denom else None


def _round_to(amount: Fraction, fraction: int) -> Fraction:
    """amount rounded half up (away from zero) to a multiple of 1/fraction."""
    scaled = abs(amount) * fraction
    units = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    return Fraction(units if amount >= 0 else -units, fraction)


def exact(amount: Fraction) -> decimal.Decimal:
    """A fraction as the portal keeps money: a Decimal at money.SCALE decimals (OutOfRange,
    a terminal error, beyond a trillion)."""
    quotient = _EXACT.divide(decimal.Decimal(amount.numerator),
                             decimal.Decimal(amount.denominator))
    return money.exact(quotient)


def _amounts(splits: list[tuple], currency_of_tx: str, book: Chart, cur: Currency
             ) -> list[tuple[Fraction, str | None]]:
    """Each split's amount and the commodity it is in (None: the book currency), by the rule
    in the module docstring; without a rate, a split keeps its value in the transaction's
    currency (the guid)."""
    amounts: list[Fraction | None] = []
    values: list[Fraction] = []
    for _, _, account_guid, _, vn, vd, qn, qd, _ in splits:
        account = book.accounts.get(account_guid)
        value = _fraction(vn, vd) or Fraction(0)
        values.append(value)
        if account is not None and account.commodity == cur.guid:
            amounts.append(_fraction(qn, qd) or Fraction(0))
        elif currency_of_tx == cur.guid:
            amounts.append(value)
        else:
            amounts.append(None)
    converted = [i for i, a in enumerate(amounts) if a is None]
    if converted:
        known = [i for i, a in enumerate(amounts) if a is not None]
        book_sum = sum((amounts[i] for i in known), Fraction(0))
        tx_sum = sum((values[i] for i in known), Fraction(0))
        if tx_sum == 0:  # no rate: these splits stay in the transaction's currency
            return [(a, None) if a is not None else (v, currency_of_tx)
                    for a, v in zip(amounts, values)]
        rate = book_sum / tx_sum
        for i in converted:
            amounts[i] = _round_to(values[i] * rate, cur.fraction)
        residue = -sum(amounts)
        if residue:
            largest = max(converted, key=lambda i: abs(amounts[i]))
            amounts[largest] += residue
    return [(a, None) for a in amounts]


# --- the streams -----------------------------------------------------------------------
def convert(raw: dict, source: str, settings: ConnectorSettings | None = None
            ) -> tuple[dict[str, pa.Table], list[str], str | None]:
    """The canonical streams of a raw book, warnings, and the book currency's ISO code."""
    settings = settings or ConnectorSettings()
    timezone = zone(settings.timezone)
    book = chart(raw)
    mnemonic = {guid: m for guid, _, m, _ in raw["commodities"]}
    warnings: list[str] = []

    splits_of: dict[str, list[tuple]] = defaultdict(list)
    for split in raw["splits"]:
        splits_of[split[1]].append(split)
    # Scheduled-transaction templates live under the template root: not bookings.
    transactions = sorted(
        (t for t in raw["transactions"]
         if not any(s[2] in book.templates for s in splits_of.get(t[0], ()))),
        key=lambda t: t[0])
    cur = book_currency(raw, book, settings, source, transactions)

    slots: dict[str, dict[str, tuple]] = defaultdict(dict)
    for obj, name, int64, string, timespec, guid, gdate in raw["slots"]:
        slots[name][obj] = (int64, string, timespec, guid, gdate)
    tx_dates = dict(zip((t[0] for t in transactions),
                        local_dates([t[3] for t in transactions], timezone)))
    due_slots = list(slots["trans-date-due"].items())
    due = {obj: day for (obj, _), day in zip(due_slots, local_dates(
        [v[2] or v[4] for _, v in due_slots], timezone)) if day}

    documents = _documents(raw, tx_dates, due, slots)
    lot_owner = {lot: doc["relation_id"] for doc in documents.values()
                 if (lot := doc.get("lot_guid"))}

    booking_rows: list[tuple] = []
    line_rows: list[tuple] = []
    amount_of: dict[str, tuple[Fraction, str | None]] = {}  # split guid -> amount, commodity
    foreign: Counter = Counter()
    for guid, currency, num, _, description in transactions:
        splits = sorted(splits_of.get(guid, ()), key=lambda s: s[0])
        amounts = _amounts(splits, currency, book, cur)
        kept_in = {c for _, c in amounts if c}
        if kept_in:
            foreign[mnemonic.get(currency, currency)] += 1
        doc = documents.get(guid, {})
        for line_no, (split, (amount, kept)) in enumerate(zip(splits, amounts), 1):
            split_guid, _, account_guid, memo, *_, lot = split
            commodity = mnemonic.get(kept, kept) if kept else None
            account = book.accounts.get(account_guid)
            amount_of[split_guid] = (amount, commodity)
            relation = lot_owner.get(lot) if lot else None
            if relation is None and split_guid in slots[OPEN_ITEM_SLOT]:
                relation = doc.get("relation_id")
            line_rows.append((
                guid_id(guid), line_no,
                account.code if account else account_guid,  # unknown: quarantined by the sync
                relation, memo or None,
                exact(amount) if amount > 0 else money.ZERO,
                exact(-amount) if amount < 0 else money.ZERO, commodity))
        number = num or None
        booking_rows.append((
            guid_id(guid), doc.get("journal", JOURNAL), doc.get("doc_no") or number,
            doc.get("doc_type", "transaction"), tx_dates.get(guid), doc.get("due_date"),
            doc.get("relation_id"), description or None, number))
    damaged = sum(1 for s in raw["splits"] if s[1] in tx_dates and not (s[5] and s[7]))
    if damaged:
        warnings.append(f"{damaged} GnuCash split(s) have an amount with denominator 0 (a "
                        f"damaged book): read as 0; GnuCash's 'Check & Repair' fixes them")
    if foreign:
        book_name = cur.mnemonic or "(unknown)"
        for commodity, count in sorted(foreign.items()):
            warnings.append(
                f"{count} GnuCash transaction(s) in {commodity} touch no account in the book "
                f"currency {book_name}: no rate to convert them, so they are kept in "
                f"{commodity} (shown per commodity in the trial balance, left out of the "
                f"money reports)")

    dates = pa.array([r[4] for r in booking_rows], pa.string())
    year, period = period_columns(dates)
    bookings = table("bookings", {
        "id": [r[0] for r in booking_rows], "journal": [r[1] for r in booking_rows],
        "doc_no": [r[2] for r in booking_rows], "doc_type": [r[3] for r in booking_rows],
        "fiscal_year_id": year, "period_id": period, "date": dates,
        "due_date": [r[5] for r in booking_rows], "relation_id": [r[6] for r in booking_rows],
        "description": [r[7] for r in booking_rows], "reference": [r[8] for r in booking_rows],
        "draft": [False] * len(booking_rows)})
    lines = table("lines", {
        name: [r[i] for r in line_rows] for i, name in enumerate(
            ("booking_id", "line_no", "account", "relation_id", "description", "debit",
             "credit", "commodity"))})

    tax_accounts = {row[0] for row in raw["tax_accounts"]}
    accounts = list(book.accounts.values())
    relations = raw["customers"] + raw["vendors"]
    tables = {
        "accounts": table("accounts", {
            "code": [a.code for a in accounts], "name": [a.name for a in accounts],
            "class": ["vat" if a.guid in tax_accounts else CLASS_OF_TYPE.get(a.type, "asset")
                      for a in accounts],
            "commodity": [None if a.commodity == cur.guid else mnemonic.get(a.commodity)
                          for a in accounts],
            "placeholder": [a.placeholder for a in accounts]}),
        "journals": table("journals", {"code": [j[0] for j in JOURNALS],
                                       "name": [j[1] for j in JOURNALS],
                                       "kind": [j[2] for j in JOURNALS]}),
        "relations": table("relations", {
            "id": [guid_id(r[0]) for r in relations], "kind": [r[3] for r in relations],
            "name": [r[1] for r in relations], "email": [r[2] or None for r in relations]}),
        "bookings": bookings,
        "lines": lines,
        "matchings": _matchings(raw, documents, amount_of),
    }
    known = [d for d in dates.to_pylist() if d]
    if known:
        tables["fiscal_years"], tables["periods"] = calendar(min(known), max(known))
    else:
        tables["fiscal_years"], tables["periods"] = table("fiscal_years", {}), table("periods", {})
    return tables, warnings, cur.mnemonic


def _documents(raw: dict, tx_dates: dict[str, str | None], due: dict[str, str],
               slots: dict[str, dict[str, tuple]]) -> dict[str, dict]:
    """The documents among the transactions, by transaction GUID: posted invoices and bills,
    and the proposals dossync wrote.

    Each: journal, doc_type, doc_no, relation_id, due_date (the posting's trans-date-due
    slot, else from the bill terms), and for an invoice lot_guid (its post lot).
    """
    owner_of_job = {guid: (kind, owner) for guid, kind, owner in raw["jobs"]}
    terms_of = {guid: (kind, days, cutoff) for guid, kind, days, cutoff in raw["billterms"]
                if days is not None}
    credit_notes = {guid for guid, value in slots["credit-note"].items() if value[0]}
    docs: dict[str, dict] = {}
    for guid, number, owner_type, owner, terms, post_txn, post_lot in raw["invoices"]:
        if owner_type == JOB and owner in owner_of_job:
            owner_type, owner = owner_of_job[owner]
        journal = {CUSTOMER: SALES, VENDOR: PURCHASES}.get(owner_type)
        if journal is None or post_txn not in tx_dates or post_txn in docs:
            continue  # employee vouchers stay in GNC
        docs[post_txn] = {
            "lot_guid": post_lot, "journal": journal,
            "doc_type": "credit_note" if guid in credit_notes else "invoice",
            "doc_no": number or None, "relation_id": guid_id(owner) if owner else None,
            "due_date": due.get(post_txn) or _due_by_terms(tx_dates.get(post_txn),
                                                           terms_of.get(terms))}
    relation_of = {obj: value[3] for obj, value in slots[RELATION_SLOT].items() if value[3]}
    for tx, value in slots[PROPOSAL_SLOT].items():
        if tx not in tx_dates or tx in docs:
            continue
        owner = relation_of.get(tx)
        docs[tx] = {"journal": PURCHASES if value[1] == "purchase" else SALES,
                    "doc_type": "invoice", "doc_no": None,  # the num: the proposal's ref
                    "relation_id": guid_id(owner) if owner else None,
                    "due_date": due.get(tx)}
    return docs


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


def _matchings(raw: dict, documents: dict[str, dict],
               amount_of: dict[str, tuple[Fraction, str | None]]) -> pa.Table:
    """Every split in an invoice's lot outside its posting: what it pays off that invoice."""
    post_of_lot = {doc["lot_guid"]: tx for tx, doc in documents.items() if doc.get("lot_guid")}
    in_lot: dict[str, list[tuple]] = defaultdict(list)
    for guid, tx, *_, lot in raw["splits"]:
        if lot in post_of_lot and guid in amount_of:
            in_lot[lot].append((guid, tx))
    rows = []
    for lot, members in in_lot.items():
        post = post_of_lot[lot]
        posted = [amount_of[g] for g, tx in members if tx == post]
        if any(c for _, c in posted):
            continue
        total = sum((a for a, _ in posted), Fraction(0))
        sign = (total > 0) - (total < 0)
        for guid, tx in members:
            amount, commodity = amount_of[guid]
            if tx == post or commodity or not sign or not amount:
                continue
            rows.append((guid_id(guid), guid_id(post), guid_id(tx), exact(-amount * sign)))
    rows.sort()
    return table("matchings", {"id": [r[0] for r in rows], "invoice_id": [r[1] for r in rows],
                               "payment_id": [r[2] for r in rows],
                               "amount": pa.array([r[3] for r in rows], money.ARROW)})
