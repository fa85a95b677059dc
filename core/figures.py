"""The figures formulas, in one place: what the package's side and the portal's compute alike.

Reconcile compares segment figures (fiscal year x period x journal x
account): line count, debit, credit and a checksum over the lines' booking
keys and versions, which the package's SQLite, the portal's DuckDB and
Polars (for a package without figures of its own) compute from one formula
and one set of constants (`checksum_sql`, `checksum_expr`).

Grouping a million booking lines by segment makes SQLite sort them all,
which costs several times a plain scan. Most of the time the two sides
agree, so reconcile first compares fingerprints that need no grouping
(`whole`) or group only by period along an index (`per_period`), and asks
for segment figures only in the periods whose fingerprints differ.

A fingerprint is a handful of sums that every change of a segment's figures
moves: a line's amount (debit, credit), a line moving to another account
(a sum mixing the account code with the amount), to another booking
(sum of booking ids) or position (sum of line numbers), and per booking its
id, version, period, fiscal year and journal (a sum over bookings). Two
engines compute them: the package's SQLite and the portal's DuckDB, with the
same integer arithmetic, every product reduced modulo P = 2**31 - 1 so no
sum overflows.

Only canonical account codes (digits, no leading zero, at most 18 digits)
are mixed in by their value; a chart with other codes does not use the
fingerprints (reconcile then computes every segment's figures). Where the
two engines could read a malformed value differently (SQLite casts the
prefix of '12ab' to 12, DuckDB gives nothing), the fingerprints can only
disagree, which costs a detailed comparison, never a missed difference.
"""
from __future__ import annotations

import re
from typing import Iterable, Literal

import pyarrow as pa

Dialect = Literal["sqlite", "duckdb", "postgres"]

P = 2147483647  # every product is reduced modulo this prime below 2**31
LINE_FIELDS = ("line_count", "debit", "credit", "booking_sum", "line_no_sum", "account_mix")
BOOKING_FIELDS = ("bookings", "booking_mix")
_CANONICAL = re.compile(r"[1-9][0-9]{0,17}")


# --- the segment checksum -------------------------------------------------------------
# A segment's checksum is the sum over its lines of
#   ((booking id mod P) * CHECKSUM_ID + (booking rv mod P) * CHECKSUM_RV + line_no) mod P.
# Integer arithmetic on non-negative values, reduced before multiplying
# (content-hash versions are 63-bit), so SQLite, DuckDB and Polars compute the
# same number without overflow; additive, so the share of some bookings can be
# taken off a segment's figures. A booking that changed (new rv), moved or
# vanished changes its segment's checksum even when counts and amounts stay equal.
CHECKSUM_ID = 1000003
CHECKSUM_RV = 7919


def checksum_sql(booking_id: str, rv: str, line_no: str) -> str:
    """One line's checksum term as SQL, the same text for SQLite and DuckDB: the
    arguments are the column expressions of the booking id, the booking's rv and
    the line number (e.g. "b.id", "b.rv", "l.line_no")."""
    return (f"(({booking_id} % {P}) * {CHECKSUM_ID} + ({rv} % {P}) * {CHECKSUM_RV} "
            f"+ {line_no}) % {P}")


def checksum_expr(booking_id: str = "booking_id", rv: str = "rv", line_no: str = "line_no"):
    """One line's checksum term as a Polars expression over these columns."""
    import polars as pl  # only reconcile's fallback needs it; the portal's users do not

    return (((pl.col(booking_id) % P) * CHECKSUM_ID + (pl.col(rv) % P) * CHECKSUM_RV
             + pl.col(line_no)) % P)


# --- fingerprints ---------------------------------------------------------------------
def canonical_chart(codes: Iterable[str]) -> bool:
    """Do all these account codes mix into the fingerprint by their value?"""
    return all(_CANONICAL.fullmatch(code or "") for code in codes)


def journal_list(codes: Iterable[str]) -> str:
    """The journal codes as '|A|B|': a journal's position in it is its number."""
    return "|" + "|".join(sorted(set(codes))) + "|"


def _int(dialect: Dialect, expr: str) -> str:
    if dialect == "sqlite":
        return f"CAST({expr} AS INTEGER)"
    return f"coalesce(TRY_CAST({expr} AS BIGINT), 0)"


def _totals(dialect: Dialect, sums: list[str]) -> list[str]:
    """Sums as plain 64-bit integers, 0 over no rows (DuckDB sums into 128 bits)."""
    if dialect != "sqlite":  # DuckDB sums into 128 bits, PostgreSQL into numeric
        return [f"CAST(coalesce({s}, 0) AS BIGINT)" for s in sums]
    return [f"coalesce({s}, 0)" for s in sums]


def _cents(dialect: Dialect, expr: str) -> str:
    """An amount in whole cents: the package keeps cents, the portal exact decimals
    (a fingerprint compares a package in cents, the demo package's, so the
    portal's amounts of it are whole cents)."""
    if dialect == "sqlite":
        return expr
    return f"CAST(round({expr} * 100) AS BIGINT)"


def _account_mix(dialect: Dialect, a: str) -> str:
    """Per line: its account code mixed with its amounts (moves between accounts show)."""
    account = f"({_int(dialect, a + 'account')} % {P} * 64 + length({a}account))"
    debit, credit = _cents(dialect, f"{a}debit"), _cents(dialect, f"{a}credit")
    return f"{account} * (({debit} * 3 + {credit} + 1) % {P}) % {P}"


def line_sums(dialect: Dialect, alias: str = "") -> str:
    """SELECT list of the line fingerprint (LINE_FIELDS), for lines aliased `alias`."""
    a = f"{alias}." if alias else ""
    sums = _totals(dialect, ["count(*)", _cents(dialect, f"sum({a}debit)"),
                             _cents(dialect, f"sum({a}credit)"),
                             f"sum({a}booking_id % {P})", f"sum({a}line_no)",
                             f"sum({_account_mix(dialect, a)})"])
    return ", ".join(f"{s} AS {name}" for s, name in zip(sums, LINE_FIELDS))


def booking_sums(dialect: Dialect, journals_param: str, alias: str = "") -> str:
    """SELECT list of the booking fingerprint (BOOKING_FIELDS).

    journals_param: the SQL placeholder bound to `journal_list(...)`.
    """
    a = f"{alias}." if alias else ""
    journal = f"(instr({journals_param}, '|' || {a}journal || '|') * 64 + length({a}journal))"
    mix = (f"(({a}id % {P}) * 7919 % {P} + ({a}rv % {P}) * 1000003 % {P} "
           f"+ (coalesce({a}period_id, 0) % {P}) * 31 % {P} "
           f"+ (coalesce({a}fiscal_year_id, 0) % {P}) * 131 % {P} + {journal} * 65599 % {P})")
    sums = _totals(dialect, ["count(*)", f"sum({mix})"])
    return ", ".join(f"{s} AS {name}" for s, name in zip(sums, BOOKING_FIELDS))


# --- per booking: which bookings of a flagged period a repair reloads ----------------
BOOKING_PRINT = ("id", "rv", "period_id", "fiscal_year_id", "journal", "joined",
                 *LINE_FIELDS[:3], *LINE_FIELDS[4:])


def booking_print(dialect: Dialect) -> str:
    """SELECT list over `bookings b LEFT JOIN lines l ... GROUP BY b.id`: a booking's
    own fields that enter the figures and its lines' sums (BOOKING_PRINT).
    `joined` counts the joined rows: a duplicated booking row doubles it."""
    sums = _totals(dialect, ["count(*)", "count(l.booking_id)", _cents(dialect, "sum(l.debit)"),
                             _cents(dialect, "sum(l.credit)"),
                             "sum(l.line_no)", f"sum({_account_mix(dialect, 'l.')})"])
    fields = ["b.id", "min(b.rv)", "min(b.period_id)", "min(b.fiscal_year_id)",
              "min(b.journal)", *sums]
    return ", ".join(f"{f} AS {n}" for f, n in zip(fields, BOOKING_PRINT))


def booking_print_table(table: pa.Table) -> pa.Table:
    """The per-booking prints in one Arrow schema, whichever engine computed them."""
    schema = pa.schema([pa.field(n, pa.string() if n == "journal" else pa.int64())
                        for n in BOOKING_PRINT])
    if table.num_rows == 0:
        return schema.empty_table()
    return pa.Table.from_arrays([table.column(i).cast(f.type) for i, f in enumerate(schema)],
                                schema=schema)
