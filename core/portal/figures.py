"""Reconcile figures: what `core.reconcile` compares with the ledger's.

Segment figures of the mirrored ledger, its fingerprints (`core.figures`),
and the provisional proposals' figures, each read in one short visit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa

from dossync.core import figures as fp
from dossync.core import money
from dossync.core.model import Dossier
from dossync.core.portal.dossiers import unknown_dossier
from dossync.core.portal.records import ReconcileView
from dossync.core.portal.schema import MONEY, connect
from dossync.core.portal.state import _sync_state
from dossync.core.portal.store import _has_tables, dialect_of

# The portal side of `core.reconcile`: the mirrored ledger's figures per
# segment (fiscal year x period x journal x account), computed exactly as the
# connectors compute them on the package side (same grouping, same checksum,
# whose one definition is core/figures.py's `checksum_sql`), so the two frames
# compare value for value.
_FIGURES_CHECKSUM = fp.checksum_sql("b.id", "b.rv", "l.line_no")


def _figures_sql(where: str = "", per_booking: bool = False) -> str:
    extra = "b.id AS booking_id, coalesce(b.reference, '') AS reference, " if per_booking else ""
    out = "booking_id, reference, " if per_booking else ""
    return f"""
        WITH agg AS (
            SELECT {extra}b.fiscal_year_id AS fy, b.period_id AS pid, b.journal, l.account,
                   count(*) AS line_count, CAST(sum(l.debit) AS {MONEY}) AS debit,
                   CAST(sum(l.credit) AS {MONEY}) AS credit,
                   CAST(sum({_FIGURES_CHECKSUM}) AS BIGINT) AS checksum
            FROM lines l JOIN bookings b ON b.dossier = l.dossier AND b.id = l.booking_id
            WHERE l.dossier = $code AND b.dossier = $code {where}
            GROUP BY {"b.id, b.reference, " if per_booking else ""}b.fiscal_year_id,
                     b.period_id, b.journal, l.account),
        fy AS (SELECT id, min(code) AS code FROM fiscal_years WHERE dossier = $code GROUP BY id),
        pe AS (SELECT id, min(code) AS code FROM periods WHERE dossier = $code GROUP BY id)
        SELECT {out}coalesce(fy.code, '') AS fiscal_year, coalesce(pe.code, '') AS period,
               agg.journal, agg.account, agg.line_count, agg.debit, agg.credit, agg.checksum
        FROM agg LEFT JOIN fy ON fy.id = agg.fy LEFT JOIN pe ON pe.id = agg.pid"""


def quarantined_bookings(path: Path, code: str) -> list[int]:
    """Ids of the dossier's ledger bookings kept out of the portal (quarantine)."""
    with connect(path, read_only=True) as con:
        return _quarantined_bookings(con, code)


def _quarantined_bookings(con, code: str) -> list[int]:
    rows = con.execute("SELECT DISTINCT TRY_CAST(key AS BIGINT) FROM quarantine "
                       "WHERE dossier = ? AND stream = 'bookings'", [code]).fetchall()
    return sorted(r[0] for r in rows if r[0] is not None)


def reconcile_view(path: Path, code: str,
                   started: Callable[[Dossier], str | None] | None = None) -> ReconcileView:
    """One visit: the state, quarantine, small tables, provisional figures and
    the whole fingerprint (core.figures).

    started: called with the dossier as soon as it is read (reconcile starts
    on the ledger then, beside this visit); returns the journal list for the
    fingerprint, or None for none.
    """
    whole = None
    with connect(path, read_only=True) as con:
        state = _sync_state(con, code, last_run=True)
        journals = started(state.dossier) if started and state.dossier else None
        provisional = _PROVISIONAL_SCHEMA.empty_table()
        if state.dossier is None:
            quarantined, periods, years = [], {}, {}
        else:
            quarantined = _quarantined_bookings(con, code)
            periods = dict(con.execute("SELECT id, min(code) FROM periods WHERE dossier = ? "
                                       "GROUP BY id", [code]).fetchall())
            years = dict(con.execute("SELECT id, min(code) FROM fiscal_years WHERE dossier = ? "
                                     "GROUP BY id", [code]).fetchall())
            provisional = _provisional_figures(con, code)
            if journals is not None:
                whole = _fingerprint(con, code, journals)
    if state.dossier is None:
        raise unknown_dossier(path, code)
    return ReconcileView(state=state, quarantined=quarantined,
                         journals=state.journals, accounts=state.accounts,
                         periods=periods, fiscal_years=years, provisional=provisional,
                         fingerprint=whole)


def _fingerprint(con, code: str, journals: str) -> dict[str, int]:
    lines = con.execute(f"SELECT {fp.line_sums(dialect_of(con))} FROM lines WHERE dossier = ?",
                        [code]).fetchall()[0]
    bookings = con.execute(f"SELECT {fp.booking_sums(dialect_of(con), '?')} FROM bookings "
                           f"WHERE dossier = ?", [journals, code]).fetchall()[0]
    return {**dict(zip(fp.LINE_FIELDS, lines)), **dict(zip(fp.BOOKING_FIELDS, bookings))}


def booking_fingerprints(path: Path, code: str, period_codes: list[str],
                         period_ids: list[int]) -> tuple[pa.Table, list[int]]:
    """Per mirrored booking in the periods with these codes (as the portal
    has them) or these ids: core.figures.BOOKING_PRINT. Also returns the
    portal's ids of those period codes."""
    with connect(path, read_only=True) as con:
        return _booking_fingerprints(con, code, period_codes, period_ids)


def _booking_fingerprints(con, code: str, period_codes: list[str],
                          period_ids: list[int]) -> tuple[pa.Table, list[int]]:
    ids = [r[0] for r in con.execute(
        "SELECT DISTINCT id FROM periods WHERE dossier = ? AND list_contains(?, code)",
        [code, list(period_codes)]).fetchall()]
    table = con.sql(
        f"SELECT {fp.booking_print(dialect_of(con))} FROM bookings b LEFT JOIN lines l "
        f"ON l.dossier = b.dossier AND l.booking_id = b.id "
        f"WHERE b.dossier = ? AND list_contains(?, b.period_id) GROUP BY b.id",
        params=[code, sorted(set(ids) | set(period_ids))]).to_arrow_table()
    return fp.booking_print_table(table), ids


def period_fingerprints(path: Path, code: str, journals: str) -> pa.Table:
    """The fingerprint per period id, as the demo connector's period_fingerprints."""
    with connect(path, read_only=True) as con:
        return con.sql(f"""
            WITH bk AS (
                SELECT b.period_id, min(b.fiscal_year_id) AS fy_min,
                       max(b.fiscal_year_id) AS fy_max, {fp.booking_sums(dialect_of(con), '$journals', 'b')}
                FROM bookings b WHERE b.dossier = $code GROUP BY b.period_id),
            ln AS (
                SELECT b.period_id, {fp.line_sums(dialect_of(con), 'l')}
                FROM lines l JOIN bookings b ON b.dossier = l.dossier AND b.id = l.booking_id
                WHERE l.dossier = $code AND b.dossier = $code GROUP BY b.period_id)
            SELECT bk.period_id, bk.fy_min, bk.fy_max,
                   {", ".join(f"coalesce(ln.{n}, 0) AS {n}" for n in fp.LINE_FIELDS)},
                   {", ".join(f"bk.{n}" for n in fp.BOOKING_FIELDS)}
            FROM bk LEFT JOIN ln ON ln.period_id IS NOT DISTINCT FROM bk.period_id""",
            params={"journals": journals, "code": code}).to_arrow_table()


_PROVISIONAL_SCHEMA = pa.schema([
    ("ref", pa.string()), ("fiscal_year", pa.string()), ("period", pa.string()),
    ("journal", pa.string()), ("account", pa.string()), ("line_count", pa.int64()),
    ("debit", money.ARROW), ("credit", money.ARROW)])


def _provisional_figures(con, code: str) -> pa.Table:
    """Per provisional booking and segment: ref, fiscal_year, period, journal,
    account, line_count, debit, credit (empty before the tables exist)."""
    if not _has_tables(con, "provisional_bookings", "provisional_lines"):
        return _PROVISIONAL_SCHEMA.empty_table()
    return con.sql(f"""
        WITH fy AS (SELECT id, min(code) AS code FROM fiscal_years
                    WHERE dossier = $code GROUP BY id),
        pe AS (SELECT id, min(code) AS code FROM periods WHERE dossier = $code GROUP BY id)
        SELECT b.ref, coalesce(fy.code, '') AS fiscal_year, coalesce(pe.code, '') AS period,
               coalesce(b.journal, '') AS journal, l.account, count(*) AS line_count,
               CAST(coalesce(sum(l.debit), 0) AS {MONEY}) AS debit,
               CAST(coalesce(sum(l.credit), 0) AS {MONEY}) AS credit
        FROM provisional_lines l JOIN provisional_bookings b
          ON b.dossier = l.dossier AND b.id = l.booking_id
        LEFT JOIN fy ON fy.id = b.fiscal_year_id LEFT JOIN pe ON pe.id = b.period_id
        WHERE l.dossier = $code
        GROUP BY b.ref, fy.code, pe.code, b.journal, l.account""", params={"code": code}).to_arrow_table().cast(_PROVISIONAL_SCHEMA)


def reconciliation_figures(path: Path, code: str,
                           booking_ids: list[int] | tuple[int, ...] = (),
                           periods: list[str] | None = None) -> dict[str, pa.Table]:
    """The portal's figures for reconcile, in one short read-only visit.

    figures: per segment of the mirrored (definitive) bookings: fiscal_year,
      period, journal, account, line_count, debit, credit, checksum; only
      in the periods with these codes when `periods` is given.
    bookings: the same per booking and segment for `booking_ids` (with
      booking_id, reference first): the portal's copy of the bookings the
      ledger changed or deleted since the last sync.
    """
    params = {"code": code}
    with connect(path, read_only=True) as con:
        if periods is None:
            figures = con.sql(_figures_sql(), params=params).to_arrow_table()
        else:
            within = ("AND (b.period_id IN (SELECT id FROM periods WHERE dossier = $code AND "
                      "list_contains($periods, code))")
            if "" in periods:  # bookings whose period the portal does not know
                within += " OR b.period_id NOT IN (SELECT id FROM periods WHERE dossier = $code)"
            figures = con.sql(_figures_sql(within + ")"),
                              params={**params, "periods": list(periods)}).to_arrow_table()
        con.register("wanted_bookings",
                     pa.table({"id": pa.array(list(booking_ids), pa.int64())}))
        bookings = con.sql(_figures_sql("AND b.id IN (SELECT id FROM wanted_bookings)",
                                        per_booking=True), params=params).to_arrow_table()
    return {"figures": figures, "bookings": bookings}
