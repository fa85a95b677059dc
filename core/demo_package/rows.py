"""The demo ledger's rows as named records, one type per table.

Each row type lists the columns of its table in ``core/ledger_schema.sql``
order, so a row is written as it is (``INSERT INTO t (its fields)``) and read
back by name. A :class:`Posting` is one line of a document before it is
booked; booked, it becomes a :class:`BookingLineRow`: the booking's id and the
line's number followed by the posting's fields, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator, NamedTuple


class MetaRow(NamedTuple):
    key: str
    value: str


class AccountRow(NamedTuple):
    code: str
    name: str
    rv: int


class JournalRow(NamedTuple):
    code: str
    name: str
    kind: str
    rv: int


class FiscalYearRow(NamedTuple):
    id: int
    code: str
    start_date: str
    end_date: str
    closed: int
    rv: int


class PeriodRow(NamedTuple):
    id: int
    fiscal_year_id: int
    code: str  # YYYY-MM
    start_date: str
    end_date: str
    closed: int
    rv: int


class RelationRow(NamedTuple):
    id: int
    kind: str  # customer | supplier
    name: str
    vat_number: str | None
    email: str | None
    language: str | None
    rv: int


class BookingRow(NamedTuple):
    id: int
    journal: str
    doc_no: str
    doc_type: str  # invoice | credit_note | statement | misc
    fiscal_year_id: int
    period_id: int
    date: str
    due_date: str | None
    relation_id: int | None
    description: str | None
    reference: str | None  # the worklist proposal it was booked from
    rv: int


class Posting(NamedTuple):
    """One line of a document: an account debited or credited, in cents."""

    account: str
    relation_id: int | None = None
    description: str | None = None
    debit: int = 0
    credit: int = 0
    vat_code: str | None = None


class BookingLineRow(NamedTuple):
    """A booked line: ``BookingLineRow(booking_id, line_no, *posting)``."""

    booking_id: int
    line_no: int
    account: str
    relation_id: int | None
    description: str | None
    debit: int
    credit: int
    vat_code: str | None


class MatchingRow(NamedTuple):
    id: int
    invoice_id: int
    payment_id: int  # a bank statement, or the credit note that settles the invoice
    amount: int
    rv: int


# debit(), credit() and booked() run for every line of a generated ledger, millions of
# times for the benchmarks' ledgers: a Posting is made by tuple.__new__ from its fields
# in order (the NamedTuple's own __new__ is a second Python call), and a booked line is
# a plain tuple (SQLite binds those fastest; the garbage collector does not track them).
_new = tuple.__new__


def debit(account: str, amount: int, *, relation_id: int | None = None,
          description: str | None = None, vat_code: str | None = None) -> Posting:
    """`amount` cents on the debit side of `account`."""
    return _new(Posting, (account, relation_id, description, amount, 0, vat_code))


def credit(account: str, amount: int, *, relation_id: int | None = None,
           description: str | None = None, vat_code: str | None = None) -> Posting:
    """`amount` cents on the credit side of `account`."""
    return _new(Posting, (account, relation_id, description, 0, amount, vat_code))


def booked(booking_id: int, postings: list[Posting]) -> list[tuple]:
    """`postings` as the lines of booking `booking_id`, numbered from 1: rows of
    booking_lines, in :class:`BookingLineRow`'s field order (``BookingLineRow._make(row)``
    names them)."""
    return [(booking_id, line_no) + posting for line_no, posting in enumerate(postings, 1)]


@dataclass
class LedgerRows:
    """Every row of a new ledger, table by table; the field order is the insert order.
    The booking lines are tuples in :class:`BookingLineRow`'s field order (:func:`booked`)."""

    meta: list[MetaRow]
    accounts: list[AccountRow]
    journals: list[JournalRow]
    fiscal_years: list[FiscalYearRow]
    periods: list[PeriodRow]
    relations: list[RelationRow]
    bookings: list[BookingRow]
    booking_lines: list[tuple]
    matchings: list[MatchingRow]

    def tables(self) -> Iterator[tuple[str, type[tuple], list[tuple]]]:
        """(table name, row type, rows) in insert order."""
        for f in fields(self):
            yield f.name, ROW_TYPES[f.name], getattr(self, f.name)

    @property
    def change_counter(self) -> int:
        """The counter value of the last row written: every rv is at most this."""
        return int(next(row.value for row in self.meta if row.key == "change_counter"))


ROW_TYPES: dict[str, type[tuple]] = {
    "meta": MetaRow, "accounts": AccountRow, "journals": JournalRow,
    "fiscal_years": FiscalYearRow, "periods": PeriodRow, "relations": RelationRow,
    "bookings": BookingRow, "booking_lines": BookingLineRow, "matchings": MatchingRow,
}
"""The type of each table's rows: its fields are the table's columns, in order."""
