"""Booking proposals written into a GnuCash SQLite book (--package gnucash).

The GnuCash connector's proposals capability (`gnucash_connector`, asked by
`core.connectors.send_proposals`): no connector is opened for it, the book
is not read whole first.

A proposal becomes an ordinary GnuCash transaction, written the way GnuCash
itself writes one, so that GnuCash opens the book as usual and the
accountant sees the proposal in the registers, to check, change or delete:
- `transactions`: currency = the book currency (the reader's rule,
  `gnucash.book_currency`), num = the proposal's reference, description =
  the proposal's description, post_date in the book's own format (a book
  with GnuCash's 'ISO-8601 formatted date strings' feature, or from GnuCash
  3 on: 'YYYY-MM-DD 10:59:00'; a GnuCash 2 book: local midnight of the date
  in `settings.timezone` converted to UTC, 'YYYYMMDDHHMMSS'), enter_date =
  now (UTC, same format);
- `splits`: one per proposal line, value = quantity = the line's amount
  (debit positive, credit negative) in the book currency's fraction, on the
  account whose portal code is the line's account (the reader's code rule:
  the GnuCash code when unique, else the full name), reconcile_state 'n';
- `slots`: `date-posted` (a gdate, as GnuCash 3 writes it), and
  `trans-date-due` (the date plus 30 days, as the portal shows the
  provisional booking), plus dossync's markers, which the reader turns into
  an invoice in GNC-SALES / GNC-PURCH with doc_no = the reference:
  `dossync-proposal` ('sales' | 'purchase'), `dossync-relation` (the
  customer's or vendor's GUID) on the transaction and `dossync-open-item`
  on the receivable/payable split, whose line then carries that relation.

Only while GnuCash does not have the book open: the file is opened
read-write with BEGIN IMMEDIATE (no other writer in between), and a row in
`gnclock` raises PackageBusy (the proposals stay queued in the portal; the
next sync sends them). All proposals go in one SQLite transaction: all or
none; an account that is missing or not in the book currency, an amount
finer than the currency's fraction, or an unbalanced proposal is refused
(TerminalError) before anything is written. Idempotent by reference: a
proposal whose reference is already the num of a transaction carrying the
`dossync-proposal` marker is not written again.
"""
from __future__ import annotations

import datetime
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from dossync.core.connectors.gnucash import (OPEN_ITEM_SLOT, PROPOSAL_SLOT, RELATION_SLOT,
                                             book_currency, chart, guid_id, read_tables, refuse_xml,
                                             zone)
from dossync.core.model import (ConnectorSettings, LedgerUnavailable, PackageBusy, Proposal,
                        TerminalError)

# GnuCash's KvpValue types as its SQL backend stores them in slots.slot_type
INT64, STRING, GUID, TIMESPEC, GDATE = 1, 4, 5, 6, 10
ISO_FEATURE = "features/ISO-8601 formatted date strings in SQLite3 databases."
DUE_DAYS = 30  # as the portal dates the provisional booking's due date


class _Format:
    """How this book writes timestamps: ISO ('YYYY-MM-DD HH:MM:SS') or GnuCash 2's digits."""

    def __init__(self, iso: bool, timezone: str) -> None:
        self.iso = iso
        self.zone = ZoneInfo(timezone)

    def stamp(self, moment: datetime.datetime) -> str:
        utc = moment.astimezone(datetime.timezone.utc)
        return utc.strftime("%Y-%m-%d %H:%M:%S" if self.iso else "%Y%m%d%H%M%S")

    def day(self, day: datetime.date) -> str:
        """A posted date as GnuCash writes it: 10:59 UTC (ISO books), local midnight (2.x)."""
        if self.iso:
            return f"{day.isoformat()} 10:59:00"
        return self.stamp(datetime.datetime.combine(day, datetime.time(), tzinfo=self.zone))

    @property
    def epoch(self) -> str:  # what GnuCash writes in a timestamp column it leaves unset
        return "1970-01-01 00:00:00" if self.iso else "19700101000000"


def _iso_book(conn: sqlite3.Connection) -> bool:
    """Whether the book keeps ISO date strings: GnuCash's feature flag, else GnuCash 3 or
    later in `versions`, else what its transactions already hold."""
    if conn.execute("SELECT 1 FROM slots WHERE name = ? LIMIT 1", [ISO_FEATURE]).fetchall():
        return True
    version = conn.execute(
        "SELECT table_version FROM versions WHERE table_name = 'Gnucash'").fetchall()
    if version:
        return int(version[0][0]) >= 3000000
    sample = conn.execute("SELECT post_date FROM transactions WHERE post_date IS NOT NULL "
                          "LIMIT 1").fetchall()
    return not sample or "-" in sample[0][0]


def _rw_uri(path: Path) -> str:
    return "file:" + quote(str(path.resolve())) + "?mode=rw"


def receive_proposals(path: Path, settings: ConnectorSettings, proposals: list[Proposal]) -> None:
    """Write the proposals into the book as transactions, all or none (see module docstring)."""
    path = Path(path)
    settings = settings or ConnectorSettings()
    refuse_xml(path)
    if not proposals:
        return
    timezone = zone(settings.timezone)
    try:
        conn = sqlite3.connect(_rw_uri(path), uri=True, timeout=5, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"{path} cannot be opened as a GnuCash book: {exc}") from exc
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # another program is writing the file
            raise PackageBusy(
                f"GnuCash book {path} is being written by another program ({exc}): the "
                f"proposals wait in the portal and go to the book with the next sync") from exc
        try:
            try:
                locks = conn.execute("SELECT hostname, pid FROM gnclock").fetchall()
            except sqlite3.Error as exc:
                raise LedgerUnavailable(
                    f"{path} is not a GnuCash book (sqlite: {exc}): check the dossier's "
                    f"--source") from exc
            if locks:
                host, pid = locks[0]
                raise PackageBusy(
                    f"GnuCash has the book {path} open on {host} (pid {pid}): close it there; "
                    f"the proposals wait in the portal and go to the book with the next sync")
            _write(conn, path, settings, timezone, proposals)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise LedgerUnavailable(
            f"{path}: the proposals could not be written to the GnuCash book (sqlite: {exc}); "
            f"nothing was written, they stay queued in the portal") from exc
    finally:
        conn.close()


def _write(conn: sqlite3.Connection, path: Path, settings: ConnectorSettings, timezone: str,
           proposals: list[Proposal]) -> None:
    raw = read_tables(conn)
    if not raw["books"]:
        raise LedgerUnavailable(f"{path} is not a GnuCash book: its books table is empty")
    book = chart(raw)
    currency = book_currency(raw, book, settings, str(path))
    if currency.guid is None:
        raise TerminalError(
            f"GnuCash book {path} has no {currency.mnemonic or 'book'} currency to book "
            f"proposals in: create an account in that currency in GnuCash, then send them again")
    by_code = {a.code: a for a in book.accounts.values()}
    owners = {guid_id(guid): guid for guid, *_ in raw["customers"] + raw["vendors"]}
    fmt = _Format(_iso_book(conn), timezone)
    done = {num for (num,) in conn.execute(
        "SELECT t.num FROM transactions t JOIN slots s ON s.obj_guid = t.guid "
        "WHERE s.name = ?", [PROPOSAL_SLOT]).fetchall()}

    planned = []
    for proposal in proposals:
        if proposal.ref in done:
            continue  # already in the book: sent before (a retry, a queue sent twice)
        done.add(proposal.ref)
        splits = []
        for line in proposal.lines:
            account = by_code.get(line.account)
            if account is None:
                raise TerminalError(
                    f"proposal {proposal.ref}: account {line.account} is not in GnuCash book "
                    f"{path}; nothing was written (sync the dossier so the worklist sees the "
                    f"book's accounts as they are now)")
            if account.commodity != currency.guid:
                raise TerminalError(
                    f"proposal {proposal.ref}: account {line.account} of GnuCash book {path} is "
                    f"not in the book currency {currency.mnemonic}; nothing was written")
            amount = Decimal(line.debit) - Decimal(line.credit)
            value = amount * currency.fraction
            quantity = amount * (account.scu or currency.fraction)
            if value != value.to_integral_value() or quantity != quantity.to_integral_value():
                raise TerminalError(
                    f"proposal {proposal.ref}: {amount} on {line.account} is finer than "
                    f"{currency.mnemonic}'s smallest unit (1/{currency.fraction}); nothing was "
                    f"written")
            splits.append((account, int(value), int(quantity), line.open_item))
        if sum(s[1] for s in splits) != 0:
            raise TerminalError(f"proposal {proposal.ref} does not balance; nothing was written")
        planned.append((proposal, splits))

    now = fmt.stamp(datetime.datetime.now(datetime.timezone.utc))
    for proposal, splits in planned:
        day = datetime.date.fromisoformat(proposal.date)
        tx = uuid.uuid4().hex
        conn.execute("INSERT INTO transactions (guid, currency_guid, num, post_date, enter_date, "
                     "description) VALUES (?, ?, ?, ?, ?, ?)",
                     [tx, currency.guid, proposal.ref, fmt.day(day), now, proposal.description])
        for account, value, quantity, open_item in splits:
            split = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO splits (guid, tx_guid, account_guid, memo, action, reconcile_state, "
                "reconcile_date, value_num, value_denom, quantity_num, quantity_denom, lot_guid) "
                "VALUES (?, ?, ?, '', '', 'n', ?, ?, ?, ?, ?, NULL)",
                [split, tx, account.guid, fmt.epoch, value, currency.fraction, quantity,
                 account.scu or currency.fraction])
            if open_item:
                _slot(conn, fmt, split, OPEN_ITEM_SLOT, INT64, int64_val=1)
        _slot(conn, fmt, tx, "date-posted", GDATE, gdate_val=day.strftime("%Y%m%d"))
        _slot(conn, fmt, tx, "trans-date-due", TIMESPEC,
              timespec_val=fmt.day(day + datetime.timedelta(days=DUE_DAYS)))
        _slot(conn, fmt, tx, PROPOSAL_SLOT, STRING,
              string_val="purchase" if proposal.kind == "purchase" else "sales")
        owner = owners.get(proposal.relation_id) if proposal.relation_id is not None else None
        if owner:
            _slot(conn, fmt, tx, RELATION_SLOT, GUID, guid_val=owner)


def _slot(conn: sqlite3.Connection, fmt: _Format, obj: str, name: str, slot_type: int,
          **value) -> None:
    """One slot row, its unused columns filled as GnuCash fills them."""
    row = {"int64_val": 0, "string_val": None, "double_val": None if fmt.iso else 0.0,
           "timespec_val": fmt.epoch,
           "guid_val": None, "numeric_val_num": 0, "numeric_val_denom": 1, "gdate_val": None,
           **value}
    conn.execute(
        "INSERT INTO slots (obj_guid, name, slot_type, int64_val, string_val, double_val, "
        "timespec_val, guid_val, numeric_val_num, numeric_val_denom, gdate_val) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [obj, name, slot_type, *row.values()])
