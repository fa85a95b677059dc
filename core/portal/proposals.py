"""Worklist proposals: shown at once as provisional bookings, queued for the
package until it confirms them; and what they are built from (periods,
account classes, journals, relations)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dossync.core.portal.records import (ClaimedProposal, Journal, Period, ProposalAccount,
                                         QueuedProposal, ReferenceData, Relation)
from dossync.core.portal.schema import connect
from dossync.core.portal.store import _has_table, _records, _transaction


def add_proposals(path: Path, code: str, bookings: pa.Table, lines: pa.Table,
                  queue: list[tuple[str, str]] = ()) -> int:
    """Show sent proposals at once as provisional bookings; the blue counter goes up;
    `queue` (ref, proposal as JSON) waits for delivery to the package. One transaction.

    `bookings` has the provisional_bookings columns without dossier and id
    (ids are handed out here, negative); `lines` refers to a booking by `ref`.
    Returns the new counter.
    """
    with connect(path) as con:
        with _transaction(con):
            low = con.execute("SELECT coalesce(min(id), 0) FROM provisional_bookings "
                              "WHERE dossier = ?", [code]).fetchall()[0][0]
            con.register("new_bookings", bookings)
            con.register("new_lines", lines)
            con.execute("""
                CREATE OR REPLACE TEMP TABLE numbered AS
                SELECT ?::BIGINT - row_number() OVER (ORDER BY ref) AS id, * FROM new_bookings""",
                        [low])
            con.execute("""
                INSERT INTO provisional_bookings (dossier, id, ref, journal, doc_type, date,
                    due_date, relation_id, fiscal_year_id, period_id, amount, sent_at)
                SELECT ?, id, ref, journal, doc_type, CAST(date AS DATE), CAST(due_date AS DATE),
                       relation_id, fiscal_year_id, period_id, amount, now() FROM numbered""",
                        [code])
            con.execute("""
                INSERT INTO provisional_lines (dossier, booking_id, line_no, account, debit,
                    credit, vat_code, relation_id)
                SELECT ?, n.id, l.line_no, l.account, l.debit, l.credit, l.vat_code, l.relation_id
                FROM new_lines l JOIN numbered n USING (ref)""", [code])
            if queue:
                con.executemany("INSERT INTO proposal_queue (dossier, ref, proposal, queued_at) "
                                "VALUES (?, ?, ?, now())", [[code, ref, doc] for ref, doc in queue])
            counter = con.execute(
                "UPDATE dossiers SET pending_proposals = pending_proposals + ? WHERE code = ? "
                "RETURNING pending_proposals", [bookings.num_rows, code]).fetchall()[0][0]
            con.execute("DROP TABLE numbered")
    return int(counter)


def queued_proposals(path: Path, code: str) -> list[QueuedProposal]:
    """The proposals still to hand to the package, oldest first."""
    with connect(path, read_only=True) as con:
        if not _has_table(con, "proposal_queue"):
            return []
        return _records(con.execute(
            "SELECT ref, proposal FROM proposal_queue WHERE dossier = ? ORDER BY queued_at, ref",
            [code]), QueuedProposal)


def claim_proposals(path: Path, code: str) -> list[ClaimedProposal]:
    """The queued proposals, oldest first, each marked as handed over to the package
    from now (`attempts` counts these), in one commit before the package is called: a
    proposal never marked was certainly never handed over, whoever was killed since."""
    with connect(path) as con, _transaction(con):
        rows = _records(con.execute("SELECT ref, proposal, attempts > 0 AS handed_before "
                                    "FROM proposal_queue WHERE dossier = ? "
                                    "ORDER BY queued_at, ref", [code]), ClaimedProposal)
        if rows:
            con.execute("UPDATE proposal_queue SET attempts = attempts + 1 "
                        "WHERE dossier = ? AND list_contains(?, ref)",
                        [code, [r.ref for r in rows]])
    return rows


def proposals_delivered(path: Path, code: str, refs: list[str]) -> None:
    with connect(path) as con:
        con.execute("DELETE FROM proposal_queue WHERE dossier = ? AND list_contains(?, ref)",
                    [code, list(refs)])


def withdraw_proposals(path: Path, code: str, refs: list[str]) -> int:
    """Take proposals the package refused back out of the portal (provisional rows, queue,
    counter), in one transaction; returns how many were still there."""
    with connect(path) as con:
        with _transaction(con):
            ids = [r[0] for r in con.execute(
                "SELECT id FROM provisional_bookings WHERE dossier = ? AND list_contains(?, ref)",
                [code, list(refs)]).fetchall()]
            con.execute("DELETE FROM provisional_lines WHERE dossier = ? "
                        "AND list_contains(?, booking_id)", [code, ids])
            con.execute("DELETE FROM provisional_bookings WHERE dossier = ? "
                        "AND list_contains(?, id)", [code, ids])
            con.execute("DELETE FROM proposal_queue WHERE dossier = ? AND list_contains(?, ref)",
                        [code, list(refs)])
            con.execute("UPDATE dossiers SET pending_proposals = greatest(pending_proposals - ?, 0) "
                        "WHERE code = ?", [len(ids), code])
    return len(ids)


def proposals_attempted(path: Path, code: str, refs: list[str], error: str) -> None:
    """Why the last delivery of these queued proposals failed (claim_proposals counted it)."""
    if not refs:
        return
    with connect(path) as con:
        con.execute("UPDATE proposal_queue SET last_error = ? "
                    "WHERE dossier = ? AND list_contains(?, ref)", [error, code, list(refs)])


def account_classes(path: Path, code: str) -> dict[str, str | None]:
    """account code -> class, for every account of the dossier."""
    with connect(path, read_only=True) as con:
        return dict(con.execute("SELECT code, any_value(class) FROM accounts WHERE dossier = ? "
                                "GROUP BY code", [code]).fetchall())


def periods(path: Path, code: str) -> list[dict]:
    """The dossier's periods with their status as the portal shows it (Period, as dicts).

    A period is closed when the package closed it or when it lies before
    the active booking period set in the portal.
    """
    with connect(path, read_only=True) as con:
        rows = _records(con.execute("""
            SELECT p.id, p.code, f.id AS fiscal_year_id, f.code AS fiscal_year,
                   strftime(p.start_date, '%Y-%m-%d') AS start_date,
                   strftime(p.end_date, '%Y-%m-%d') AS end_date,
                   p.closed OR (d.active_period IS NOT NULL AND p.code < d.active_period) AS closed
            FROM periods p JOIN dossiers d ON d.code = p.dossier
            LEFT JOIN fiscal_years f ON f.dossier = p.dossier AND f.id = p.fiscal_year_id
            WHERE p.dossier = ? ORDER BY p.code""", [code]), Period)
    return [r.to_json() for r in rows]


def reference_data(path: Path, code: str) -> ReferenceData:
    """What proposals are built from, in one visit: `accounts` in the dossier's currency
    that take bookings (no placeholders), by class and code, VAT accounts from the most
    credited (VAT due) to the most debited (VAT recoverable) in the mirrored ledger;
    `journals` by code; `relations` by id."""
    with connect(path, read_only=True) as con:
        accounts = _records(con.execute("""
            WITH net AS (SELECT account, sum(credit - debit) AS owed FROM lines
                         WHERE dossier = $code AND commodity IS NULL GROUP BY account),
            ac AS (SELECT code, any_value(class) AS class FROM accounts
                   WHERE dossier = $code AND commodity IS NULL AND NOT coalesce(placeholder, false)
                   GROUP BY code)
            SELECT a.code, a.class AS account_class FROM ac a LEFT JOIN net n ON n.account = a.code
            ORDER BY a.class, CASE WHEN a.class = 'vat' THEN -coalesce(n.owed, 0) END, a.code""",
            {"code": code}), ProposalAccount)
        return ReferenceData(
            accounts=accounts,
            journals=_records(con.execute("SELECT code, kind FROM journals WHERE dossier = ? "
                                          "ORDER BY code", [code]), Journal),
            relations=_records(con.execute("SELECT id, kind, name FROM relations "
                                           "WHERE dossier = ? ORDER BY id", [code]), Relation),
        )
