"""The package's ledger files: one SQLite file per dossier, and how it writes to them.

The schema is ``core/ledger_schema.sql`` (the engine's demo connector is
written against that file, not against this package). Like a legacy package,
the ledger has no unique keys, a global change counter copied into every
tracked row's ``rv``, a deletion log with limited retention and a history
log of its commits. :func:`write_ledger` writes a new ledger in one go; a
:class:`Transaction` is the package's own write path for later changes (one
per ledger event), keeping the counter, the row versions and the history as
the package would.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import secrets
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from dossync.core.demo_package.events import LedgerEventError
from dossync.core.demo_package.rows import (BookingLineRow, BookingRow, LedgerRows, MatchingRow,
                                            Posting, booked)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "ledger_schema.sql"

HISTORY_DDL = "CREATE TABLE IF NOT EXISTS history (counter INTEGER PRIMARY KEY, id TEXT NOT NULL)"

_BATCH = 200_000  # rows per executemany in the bulk insert


def _schema_statements() -> tuple[list[str], list[str]]:
    """The schema's DDL split into (tables, indexes), in file order."""
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    stmts = [s.strip() for s in text.split(";") if s.strip()]
    tables = [s for s in stmts if not s.upper().startswith("CREATE INDEX")]
    indexes = [s for s in stmts if s.upper().startswith("CREATE INDEX")]
    return tables, indexes


@functools.cache
def _insert_sql(table: str, row_type: type[tuple]) -> str:
    """The INSERT of one `row_type` row into `table`, its columns named by its fields."""
    columns = row_type._fields  # type: ignore[attr-defined]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def write_ledger(path: Path, rows: LedgerRows) -> None:
    """Write a new ledger file at `path` holding `rows` (FileExistsError if it exists).

    The file is built under a temporary name and renamed into place, so no
    reader ever sees a half-filled ledger."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"ledger already exists: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".creating")
    tmp.unlink(missing_ok=True)
    tables, indexes = _schema_statements()
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN")
        for stmt in tables:
            conn.execute(stmt)
        for table, row_type, data in rows.tables():
            sql = _insert_sql(table, row_type)
            for start in range(0, len(data), _BATCH):
                conn.executemany(sql, data[start:start + _BATCH])
        for stmt in indexes:
            conn.execute(stmt)
        record_history(conn, rows.change_counter)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    if path.exists():
        tmp.unlink(missing_ok=True)
        raise FileExistsError(f"ledger already exists: {path}")
    os.replace(tmp, path)


class Totals(NamedTuple):
    debit: int
    credit: int


def ledger_trial_balance(path: Path) -> dict[str, Totals]:
    """Account -> (debit cents, credit cents), summed over all booking lines."""
    with connect(Path(path)) as conn:
        rows = conn.execute(
            "SELECT account, SUM(debit), SUM(credit) FROM booking_lines "
            "GROUP BY account ORDER BY account").fetchall()
    return {a: Totals(debit=int(d or 0), credit=int(c or 0)) for a, d, c in rows}


def record_history(conn: sqlite3.Connection, counter: int) -> str:
    """Log a commit that brought the change counter to `counter`, in the caller's
    transaction: its history id is chained from the previous one with a fresh
    nonce (a ledger written before the log existed starts its chain here)."""
    conn.execute(HISTORY_DDL)
    row = conn.execute("SELECT id FROM history ORDER BY counter DESC LIMIT 1").fetchone()
    history_id = hashlib.sha256(
        f"{row[0] if row else ''}:{counter}:{secrets.token_hex(16)}".encode()).hexdigest()[:32]
    conn.execute("INSERT OR REPLACE INTO history VALUES (?, ?)", (counter, history_id))
    return history_id


def utc_now() -> str:
    """Now, in UTC, to the second: when a deletion or a proposal is logged."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class _Connection:
    """A short-lived connection; closes on exit (sqlite3's own context manager
    only ends the transaction)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self.conn.execute("PRAGMA foreign_keys=OFF")

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


def connect(path: Path) -> _Connection:
    """A connection to the ledger at `path`, for a `with` block (LedgerEventError if
    there is no such file: connecting would create an empty one)."""
    if not path.is_file():
        raise LedgerEventError(f"ledger not found: {path}")
    return _Connection(path)


class PeriodRef(NamedTuple):
    """Where a day falls: its period, that period's fiscal year, and whether the
    period is closed."""

    id: int
    fiscal_year_id: int
    closed: bool


class Transaction:
    """One event's write transaction: allocates change-counter values, ids, doc numbers.

    Opens with BEGIN IMMEDIATE (one writer at a time, like the package). A
    tracked event ends it with :meth:`commit`, which stores the counter and logs
    the commit in the history if it took counter values; the maintenance tools
    that bypass tracking take none."""

    def __init__(self, conn: sqlite3.Connection, path: Path, event: str) -> None:
        self.conn = conn
        self.path = path
        self.event = event
        conn.execute("BEGIN IMMEDIATE")
        self.meta = dict(conn.execute("SELECT key, value FROM meta"))
        if "change_counter" not in self.meta:
            raise LedgerEventError(f"{path}: not a demo ledger (meta.change_counter missing)")
        self.counter_before = int(self.meta["change_counter"])
        self.counter = self.counter_before
        # the same event on the same ledger state draws the same numbers
        self.rng = random.Random(f"{self.meta.get('code', '')}:{self.counter_before}:{event}")
        self._next_booking: int | None = None
        self._next_matching: int | None = None
        self._doc_seq: dict[tuple[str, str], int] = {}

    def next_rv(self) -> int:
        self.counter += 1
        return self.counter

    def commit(self) -> None:
        if self.counter != self.counter_before:
            self.conn.execute("UPDATE meta SET value=? WHERE key='change_counter'",
                              (str(self.counter),))
            record_history(self.conn, self.counter)
        self.conn.execute("COMMIT")

    def period_of(self, day: str) -> PeriodRef | None:
        """The period containing `day` (YYYY-MM-DD), if any."""
        row = self.conn.execute(
            "SELECT id, fiscal_year_id, closed FROM periods WHERE start_date<=? AND end_date>=? "
            "ORDER BY id LIMIT 1", (day, day)).fetchone()
        if row is None:
            return None
        pid, fiscal_year_id, closed = row
        return PeriodRef(id=int(pid), fiscal_year_id=int(fiscal_year_id), closed=bool(closed))

    def doc_no(self, journal: str, day: str) -> str:
        """The next document number of `journal` in the year of `day`."""
        year = day[:4]
        key = (journal, year)
        if key not in self._doc_seq:
            prefix = f"{journal}-{year}-"
            best = 0
            for (doc,) in self.conn.execute(
                    "SELECT doc_no FROM bookings WHERE journal=? AND doc_no LIKE ?",
                    (journal, prefix + "%")):
                tail = doc[len(prefix):]
                if tail.isdigit():
                    best = max(best, int(tail))
            self._doc_seq[key] = best
        self._doc_seq[key] += 1
        return f"{journal}-{year}-{self._doc_seq[key]:05d}"

    def insert_booking(self, journal: str, doc_type: str, day: str, due: str | None,
                       relation: int | None, description: str | None, reference: str | None,
                       postings: list[Posting]) -> tuple[int, str]:
        """Book `postings` as one document; its booking id and document number."""
        debit = sum(p.debit for p in postings)
        credit = sum(p.credit for p in postings)
        if debit != credit:
            raise LedgerEventError(f"{self.path}: refusing unbalanced booking {debit} != {credit}")
        where = self.period_of(day)
        if where is None:
            raise LedgerEventError(f"{self.path}: no period contains {day}")
        if self._next_booking is None:
            self._next_booking = (self.conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM bookings").fetchone()[0]) + 1
        bid = self._next_booking
        self._next_booking += 1
        doc = self.doc_no(journal, day)
        row = BookingRow(id=bid, journal=journal, doc_no=doc, doc_type=doc_type,
                         fiscal_year_id=where.fiscal_year_id, period_id=where.id, date=day,
                         due_date=due, relation_id=relation, description=description,
                         reference=reference, rv=self.next_rv())
        self.conn.execute(_insert_sql("bookings", BookingRow), row)
        self.conn.executemany(_insert_sql("booking_lines", BookingLineRow),
                              booked(bid, postings))
        return bid, doc

    def insert_matching(self, invoice_id: int, payment_id: int, amount: int) -> None:
        if self._next_matching is None:
            self._next_matching = (self.conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM matchings").fetchone()[0]) + 1
        row = MatchingRow(id=self._next_matching, invoice_id=invoice_id, payment_id=payment_id,
                          amount=amount, rv=self.next_rv())
        self.conn.execute(_insert_sql("matchings", MatchingRow), row)
        self._next_matching += 1

    def log_deletion(self, stream: str, key: str, when: str) -> None:
        self.conn.execute("INSERT INTO deletion_log (seq, stream, key, deleted_at) "
                          "VALUES (?,?,?,?)", (self.next_rv(), stream, key, when))


TransactionBody = Callable[[Transaction, list[str]], str]
EventHandler = Callable[[Path, str, list[str]], str]


def in_transaction(body: TransactionBody) -> EventHandler:
    """An event handler running `body` in one :class:`Transaction` on the ledger at
    `path`; a failure of SQLite (a locked or damaged file) becomes a LedgerEventError."""

    @functools.wraps(body)
    def handler(path: Path, event: str, args: list[str]) -> str:
        with connect(path) as conn:
            try:
                return body(Transaction(conn, path, event), args)
            except sqlite3.DatabaseError as exc:
                raise LedgerEventError(f"{path}: {event} failed: {exc}") from exc

    return handler
