"""The ledger streams every connector delivers, in one canonical shape.

A connector yields each stream as Arrow record batches with exactly these
columns; the sync engine, the validation rules and the portal store all read
this one table of definitions, so adding a column is a one-line change.
Money is exact (`core.money`: decimal128(18, 6), DECIMAL(18,6) in the
portal); dates are ISO text as the package gives them (validated before
they reach the portal, where they become DATE).

Beyond the money in the dossier's currency, a line may weigh in another
commodity (`commodity`: Beancount's vacation hours, a GnuCash transaction in
a currency the book has no rate for): kept exactly, in that commodity, and
left out of the money reports. An account says its class (core.classes),
its commodity when it is not the dossier's currency, and whether it is a
placeholder (a parent that takes no bookings). A booking the package holds
as not yet definitive (`draft`: Beancount's `!` flag) shows as provisional.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from dossync.core import money


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    sql: str  # the portal's column type
    nullable: bool = True


@dataclass(frozen=True)
class Stream:
    """One stream: its columns, its key, and whether it carries a row version.

    `follows` names the stream whose change cursor this one rides on: a
    booking's lines have no row version of their own; they are read, replaced
    and deleted together with their booking.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    follows: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow) for c in self.columns])


S, I, B, M = pa.string(), pa.int64(), pa.bool_(), money.ARROW
MONEY_SQL = money.SQL

STREAMS: tuple[Stream, ...] = (
    Stream("accounts", (
        Column("code", S, "VARCHAR", False), Column("name", S, "VARCHAR"),
        Column("class", S, "VARCHAR"), Column("commodity", S, "VARCHAR"),
        Column("placeholder", B, "BOOLEAN"), Column("rv", I, "BIGINT"),
    ), key=("code",)),
    Stream("journals", (
        Column("code", S, "VARCHAR", False), Column("name", S, "VARCHAR"),
        Column("kind", S, "VARCHAR"), Column("rv", I, "BIGINT"),
    ), key=("code",)),
    Stream("fiscal_years", (
        Column("id", I, "BIGINT", False), Column("code", S, "VARCHAR"),
        Column("start_date", S, "DATE"), Column("end_date", S, "DATE"),
        Column("closed", B, "BOOLEAN"), Column("rv", I, "BIGINT"),
    ), key=("id",)),
    Stream("periods", (
        Column("id", I, "BIGINT", False), Column("fiscal_year_id", I, "BIGINT"),
        Column("code", S, "VARCHAR"), Column("start_date", S, "DATE"),
        Column("end_date", S, "DATE"), Column("closed", B, "BOOLEAN"),
        Column("rv", I, "BIGINT"),
    ), key=("id",)),
    Stream("relations", (
        Column("id", I, "BIGINT", False), Column("kind", S, "VARCHAR"),
        Column("name", S, "VARCHAR"), Column("vat_number", S, "VARCHAR"),
        Column("email", S, "VARCHAR"), Column("language", S, "VARCHAR"),
        Column("rv", I, "BIGINT"),
    ), key=("id",)),
    Stream("bookings", (
        Column("id", I, "BIGINT", False), Column("journal", S, "VARCHAR"),
        Column("doc_no", S, "VARCHAR"), Column("doc_type", S, "VARCHAR"),
        Column("fiscal_year_id", I, "BIGINT"), Column("period_id", I, "BIGINT"),
        Column("date", S, "DATE"), Column("due_date", S, "DATE"),
        Column("relation_id", I, "BIGINT"), Column("description", S, "VARCHAR"),
        Column("reference", S, "VARCHAR"), Column("draft", B, "BOOLEAN"),
        Column("rv", I, "BIGINT"),
    ), key=("id",)),
    Stream("lines", (
        Column("booking_id", I, "BIGINT", False), Column("line_no", I, "BIGINT", False),
        Column("account", S, "VARCHAR"), Column("relation_id", I, "BIGINT"),
        Column("description", S, "VARCHAR"), Column("debit", M, MONEY_SQL),
        Column("credit", M, MONEY_SQL), Column("vat_code", S, "VARCHAR"),
        Column("commodity", S, "VARCHAR"),
    ), key=("booking_id", "line_no"), follows="bookings"),
    Stream("matchings", (
        Column("id", I, "BIGINT", False), Column("invoice_id", I, "BIGINT"),
        Column("payment_id", I, "BIGINT"), Column("amount", M, MONEY_SQL),
        Column("rv", I, "BIGINT"),
    ), key=("id",)),
)

BY_NAME: dict[str, Stream] = {s.name: s for s in STREAMS}
