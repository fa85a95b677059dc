"""Applying a sync: the SQL planner that writes one staged sync into the portal.

The engine stages what it read as Parquet files (`StagedSync`); this module
registers them, works out per stream which portal rows the sync replaces
(full, incremental, diff or repair) and writes data, quarantine, cursor,
options and the run record in one transaction: every sync is all or nothing
per dossier, and proves before it commits that no record read was lost.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dossync.core import failpoints
from dossync.core.connectors.base import DELETIONS
from dossync.core.model import ConservationError, Dossier, RowCounts, StreamCounts, SyncResult
from dossync.core.portal.dossiers import _read_dossier
from dossync.core.portal.records import StagedSync, SyncOptions
from dossync.core.portal.runlog import _insert_run
from dossync.core.portal.schema import connect
from dossync.core.portal.store import (_one, _sql_str, _transaction, _tune_for_bulk_write,
                                       after_bulk_write, stage_parquet)
from dossync.core.streams import STREAMS, Stream


BULK_ROWS = 10_000  # a sync that rewrote this many rows refreshes the planner's statistics


def _same_keys(stream: Stream, a: str, b: str) -> str:
    """`a`'s key equals `b`'s (the condition of a NOT EXISTS or EXISTS: an anti or semi join
    that DuckDB and PostgreSQL both plan as one)."""
    return " AND ".join(f"{a}.{k} = {b}.{k}" for k in stream.key)


def _good(stream: Stream) -> str:
    """The staged rows of the stream whose keys are not quarantined (aliased s)."""
    return (f"stg_{stream.name} s WHERE NOT EXISTS (SELECT 1 FROM bad_{stream.name} b "
            f"WHERE {_same_keys(stream, 'b', 's')})")


def _new_rows(stream: Stream, mode: str) -> str:
    """The staged rows this sync writes: bad keys left out; in a diff, only changed ones."""
    if mode == "repair":
        return f"SELECT * FROM rep_add_{stream.name}"
    rows = f"SELECT s.* FROM {_good(stream)}"
    if mode not in ("full", "repair"):
        if stream.follows == "bookings":
            rows += " AND s.booking_id IN (SELECT id FROM chg_bookings)"
        else:
            rows += (f" AND EXISTS (SELECT 1 FROM chg_{stream.name} c "
                     f"WHERE {_same_keys(stream, 'c', 's')})")
    return rows


def _scope(stream: Stream, mode: str) -> str:
    """SQL condition on the portal table `t` for the rows this sync replaces.

    full: all of the dossier. incremental: the keys read with a new version
    (rows read again in the lookback window are left alone), or deleted.
    diff (packages without a change cursor): keys whose content hash
    changed, and keys that are no longer in the package.
    """
    if mode == "full":
        return "t.dossier = $dossier"
    if mode == "repair":  # the rows of the reloaded segments that differ from the ledger's
        keys = ", ".join(stream.key)
        return (f"t.dossier = $dossier AND ({', '.join(f't.{k}' for k in stream.key)}) IN "
                f"(SELECT {keys} FROM rep_gone_{stream.name})")
    if stream.follows == "bookings":
        if mode == "diff":
            return ("t.dossier = $dossier AND (t.booking_id IN (SELECT id FROM chg_bookings) "
                    "OR t.booking_id NOT IN (SELECT id FROM stg_bookings))")
        return ("t.dossier = $dossier AND (t.booking_id IN (SELECT id FROM chg_bookings) "
                "OR t.booking_id IN (SELECT id FROM gone_bookings))")
    (key,) = stream.key
    if mode == "diff":
        return (f"t.dossier = $dossier AND (t.{key} IN (SELECT {key} FROM chg_{stream.name}) "
                f"OR t.{key} NOT IN (SELECT {key} FROM stg_{stream.name}))")
    return (f"t.dossier = $dossier AND (t.{key} IN (SELECT {key} FROM chg_{stream.name}) "
            f"OR t.{key} IN (SELECT {key} FROM gone_{stream.name}))")


def _stage_views(con, code: str, staged: StagedSync) -> set[str]:
    """Register the staged files (and a sync's work tables); return the streams
    that have nothing to write (a repair's unchanged ones)."""
    unchanged: set[str] = set()
    con.register("deletions", staged.deletions if staged.deletions is not None
                 else DELETIONS.empty_table())
    for stream in STREAMS:
        if stream.name not in staged.files:
            continue
        bad = staged.bad.get(stream.name)
        if bad is None:
            bad = pa.schema([stream.schema.field(k) for k in stream.key]).empty_table()
        con.register(f"bad_{stream.name}", bad)
        stage_parquet(con, f"stg_{stream.name}", staged.files[stream.name])
        if staged.mode in ("incremental", "diff") and stream.follows is None:
            # The keys whose version differs from the portal's (in a diff, rv is
            # a content hash). A table, not a view: it must not change while
            # the sync rewrites the portal.
            (key,) = stream.key
            con.execute(f"CREATE OR REPLACE TEMP TABLE chg_{stream.name} AS "
                        f"SELECT s.{key} FROM stg_{stream.name} s WHERE NOT EXISTS (SELECT 1 "
                        f"FROM {stream.name} p WHERE p.dossier = '{_sql_str(code)}' "
                        f"AND p.{key} = s.{key} AND p.rv = s.rv)")
            # Deleted records: only a deletion later than the portal's version counts
            # (a key deleted and then handed out again is a new record, not a deletion).
            cast = "TRY_CAST(d.key AS BIGINT)" if stream.columns[0].sql == "BIGINT" else "d.key"
            con.execute(f"CREATE OR REPLACE TEMP TABLE gone_{stream.name} AS "
                        f"SELECT DISTINCT t.{key} FROM {stream.name} t JOIN deletions d "
                        f"ON d.stream = '{stream.name}' AND {cast} = t.{key} "
                        f"WHERE t.dossier = '{_sql_str(code)}' AND d.seq > t.rv")
    if staged.mode == "repair":
        # the bookings a repair reloads: those whose prints differ in the
        # flagged periods (fixed before anything is rewritten)
        dossier = f"t.dossier = '{_sql_str(code)}'"
        con.register("repair_bookings",
                     pa.table({"id": pa.array(staged.repair_bookings, pa.int64())}))
        con.execute("CREATE OR REPLACE TEMP TABLE rep_bookings AS "
                    "SELECT id FROM repair_bookings UNION SELECT id FROM stg_bookings")
        old_rows = {
            "fiscal_years": dossier, "periods": dossier,
            "bookings": f"{dossier} AND t.id IN (SELECT id FROM rep_bookings)",
            "lines": f"{dossier} AND t.booking_id IN (SELECT id FROM rep_bookings)",
            "matchings": f"{dossier} AND (t.invoice_id IN (SELECT id FROM rep_bookings) "
                         f"OR t.payment_id IN (SELECT id FROM rep_bookings) "
                         f"OR t.id IN (SELECT id FROM stg_matchings))"}
        # Only rows that differ are rewritten (a silent edit touches a few of
        # the period's thousands): rep_gone_* the portal's rows that are not
        # the ledger's any more, rep_add_* the ledger's that the portal lacks.
        for stream in STREAMS:
            if stream.name not in staged.files:
                continue
            cols = ", ".join(c.name for c in stream.columns)
            cast = ", ".join(f"CAST({c.name} AS DATE) AS {c.name}" if c.sql == "DATE" else c.name
                             for c in stream.columns)
            con.execute(f"CREATE OR REPLACE TEMP TABLE rep_new_{stream.name} AS SELECT {cast} "
                        f"FROM {_good(stream)}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE rep_old_{stream.name} AS SELECT {cols} "
                        f"FROM {stream.name} t WHERE {old_rows[stream.name]}")
            gone = con.execute(f"CREATE OR REPLACE TEMP TABLE rep_gone_{stream.name} AS "
                               f"SELECT * FROM rep_old_{stream.name} EXCEPT "
                               f"SELECT * FROM rep_new_{stream.name}").fetchall()[0][0]
            add = con.execute(f"CREATE OR REPLACE TEMP TABLE rep_add_{stream.name} AS "
                              f"SELECT * FROM rep_new_{stream.name} EXCEPT "
                              f"SELECT * FROM rep_old_{stream.name}").fetchall()[0][0]
            if not gone and not add:
                unchanged.add(stream.name)
    return unchanged


def apply_sync(path: Path, code: str, staged: StagedSync,
               result: SyncResult) -> tuple[RowCounts, Dossier]:
    """Write one sync in one transaction: data, quarantine, cursor, run record.

    Killed at any instant, DuckDB's write-ahead log replays either all of
    it or none of it; the portal never shows a half sync. Before it commits,
    every stream's records are accounted for (`_conserved`): a sync that
    would lose one fails instead, and changes nothing.
    """
    inserted = updated = deleted = 0
    per_stream: list[tuple[str, StreamCounts]] = []
    params = {"dossier": code}
    with connect(path) as con:
        _tune_for_bulk_write(con, single_thread=staged.mode == "repair")
        unchanged_streams = _stage_views(con, code, staged)
        # a repair reads only some streams: the others stay as they are
        written = [stream for stream in STREAMS if stream.name in staged.files]
        with _transaction(con):
            # an activation finds nothing to replace: it only inserts
            empty = staged.mode == "full" and not con.execute(
                "SELECT " + " + ".join(f"(SELECT count(*) FROM {s.name} WHERE dossier = $dossier)"
                                       for s in written), params).fetchall()[0][0]
            # what was read, kept out, or already there: counted before anything is written
            before = {stream.name: (*_read_and_quarantined(con, stream),
                                    _unchanged(con, code, stream, staged.mode))
                      for stream in written}
            for stream in written:
                read, quarantined, unchanged = before[stream.name]
                if stream.name in unchanged_streams:  # a repair's stream where nothing differs
                    per_stream.append((stream.name, _conserved(stream, StreamCounts(
                        read=read, unchanged=unchanged, quarantined=quarantined), staged)))
                    continue
                scope = _scope(stream, staged.mode)
                new_rows = _new_rows(stream, staged.mode)
                if empty:
                    old = matched = 0
                else:
                    # (a WHERE EXISTS, not a FILTER: PostgreSQL plans only the former
                    # as a semi join)
                    old, matched = _one(con.execute(
                        f"SELECT (SELECT count(*) FROM {stream.name} t WHERE {scope}), "
                        f"(SELECT count(*) FROM {stream.name} t WHERE {scope} AND EXISTS "
                        f"(SELECT 1 FROM ({new_rows}) n WHERE {_same_keys(stream, 'n', 't')}))",
                        params).fetchall())
                    con.execute(f"DELETE FROM {stream.name} t WHERE {scope}", params)
                cols = ", ".join(f"CAST({c.name} AS DATE)" if c.sql == "DATE" else c.name
                                 for c in stream.columns)
                new = con.execute(f"INSERT INTO {stream.name} (dossier, {', '.join(stream.names)}) "
                                  f"SELECT $dossier, {cols} FROM ({new_rows}) n", params
                                  ).fetchall()[0][0]
                per_stream.append((stream.name, _conserved(stream, StreamCounts(
                    read=read, inserted=new - matched, updated=matched, unchanged=unchanged,
                    quarantined=quarantined, deleted=old - matched), staged)))
                updated += matched
                inserted += new - matched
                deleted += old - matched
            con.execute(
                "INSERT INTO sync_state (dossier, stream, cursor, row_count, synced_at) "
                "SELECT * FROM (" + " UNION ALL ".join(
                    f"SELECT $dossier, '{stream.name}', CAST($cursor AS BIGINT), count(*), now() "
                    f"FROM {stream.name} WHERE dossier = $dossier" for stream in written)
                + ") counted ON CONFLICT (dossier, stream) DO UPDATE SET cursor = excluded.cursor, "
                "row_count = excluded.row_count, synced_at = excluded.synced_at",
                {**params, "cursor": staged.high_water})
            _apply_quarantine(con, code, staged, result.run_id)
            con.execute("INSERT INTO ledger_position (dossier, high_water, deletion_log_from, "
                        "synced_at, history) VALUES (?, ?, ?, now(), ?) ON CONFLICT (dossier) "
                        "DO UPDATE SET high_water = excluded.high_water, deletion_log_from = "
                        "excluded.deletion_log_from, synced_at = excluded.synced_at, "
                        "history = excluded.history",
                        [code, staged.high_water, staged.deletion_log_from, staged.history])
            if staged.active_period:
                con.execute("UPDATE dossiers SET active_period = ? WHERE code = ? "
                            "AND active_period IS NULL", [staged.active_period, code])
            if staged.currency:
                con.execute("UPDATE dossiers SET book_currency = ? WHERE code = ?",
                            [staged.currency, code])
            if staged.connector_version is not None:  # a full sync's: core/sync.py
                # the whole ledger was read: the dossier now has all this version brings
                con.execute("UPDATE dossiers SET connector_version = ? WHERE code = ?",
                            [staged.connector_version, code])
            _replace_provisional(con, code, staged.settled_proposals)
            _apply_options(con, code, staged.options, result.run_id)
            counts = RowCounts(read=staged.rows_read, inserted=inserted, updated=updated,
                               deleted=deleted, quarantined=len(staged.quarantine),
                               streams=tuple(per_stream))
            _insert_run(con, result, counts)
            failpoints.hit("commit")
        if inserted + deleted >= BULK_ROWS:
            after_bulk_write(con, [stream.name for stream in written])
        after = _read_dossier(con, code)
    return counts, after


def _read_and_quarantined(con, stream: Stream) -> tuple[int, int]:
    """Rows staged for the stream, and how many of them are kept out (bad keys)."""
    keys = ", ".join(stream.key)
    return _one(con.execute(
        f"SELECT count(*), count(b.bad) FROM stg_{stream.name} s LEFT JOIN "
        f"(SELECT DISTINCT {keys}, true AS bad FROM bad_{stream.name}) b USING ({keys})"
    ).fetchall())


def _unchanged(con, code: str, stream: Stream, mode: str) -> int:
    """Staged good rows the portal already holds as they are (counted before the write,
    independently of what the write selects): same key and version, or for lines,
    lines of a booking whose version the portal already has."""
    if mode == "full":
        return 0  # everything is written afresh
    dossier = f"'{_sql_str(code)}'"
    if mode == "repair":
        return _one(con.execute(f"SELECT count(*) FROM (SELECT * FROM rep_new_{stream.name} "
                                f"INTERSECT ALL SELECT * FROM rep_old_{stream.name}) same"
                                ).fetchall())[0]
    if stream.follows == "bookings":
        return _one(con.execute(
            f"SELECT count(*) FROM {_good(stream)} AND s.booking_id IN (SELECT p.id FROM "
            f"bookings p WHERE p.dossier = {dossier} AND EXISTS (SELECT 1 FROM stg_bookings n "
            f"WHERE n.id = p.id AND n.rv = p.rv))").fetchall())[0]
    return _one(con.execute(
        f"SELECT count(*) FROM {_good(stream)} AND EXISTS (SELECT 1 FROM {stream.name} p "
        f"WHERE p.dossier = {dossier} AND {_same_keys(stream, 'p', 's')} AND p.rv = s.rv)"
        ).fetchall())[0]


def _conserved(stream: Stream, counts: StreamCounts, staged: StagedSync) -> StreamCounts:
    """The stream's counts, once they prove that no record read was lost."""
    expected = staged.stream_reads.get(stream.name)
    if counts.balanced() and (expected is None or expected == counts.read):
        return counts
    raise ConservationError(
        f"{stream.name}: the sync would lose records (read {counts.read}"
        + (f", {expected} staged" if expected is not None and expected != counts.read else "")
        + f"; inserted {counts.inserted} + updated {counts.updated} + unchanged "
        f"{counts.unchanged} + quarantined {counts.quarantined} = "
        f"{counts.inserted + counts.updated + counts.unchanged + counts.quarantined}); "
        f"nothing was committed. This is a defect of dossync: keep the log and report it")


def _replace_provisional(con, code: str, settled: tuple[str, ...] = ()) -> None:
    """Definitive bookings replace their proposals: never counted twice. (A draft with
    the proposal's reference stands for it in the reports, `_BOOKS`; the proposal
    stays pending until the accountant makes it definitive.) A proposal the package
    says it has dealt with (`settled`, from a connector with proposal_status) goes too,
    whether its booking still exists or not: validated and deleted before any sync, or
    rejected. Each proposal goes once, however it goes."""
    done = con.execute("""
        SELECT p.id FROM provisional_bookings p
        WHERE p.dossier = ? AND (
          EXISTS (SELECT 1 FROM bookings b WHERE b.dossier = p.dossier AND b.reference = p.ref
                  AND NOT coalesce(b.draft, false))
          OR list_contains(CAST(? AS VARCHAR[]), p.ref))""",
        [code, list(settled)]).fetchall()
    if not done:
        return
    ids = sorted({r[0] for r in done})
    con.execute("DELETE FROM provisional_lines WHERE dossier = ? AND list_contains(?, booking_id)",
                [code, ids])
    con.execute("DELETE FROM provisional_bookings WHERE dossier = ? AND list_contains(?, id)",
                [code, ids])
    con.execute("UPDATE dossiers SET pending_proposals = greatest(pending_proposals - ?, 0) "
                "WHERE code = ?", [len(ids), code])


def _apply_options(con, code: str, options: SyncOptions | None, run_id: str) -> None:
    if options is None:
        return
    if options.until:
        con.execute("UPDATE dossiers SET updated_until = CAST(? AS DATE) WHERE code = ?",
                    [options.until, code])
    if options.reset_counter:
        con.execute("UPDATE dossiers SET pending_proposals = 0 WHERE code = ?", [code])
    if options.new_period:
        con.execute("UPDATE dossiers SET active_period = ? WHERE code = ?",
                    [options.new_period, code])
    if options.email:
        email_id, recipient, subject, message = options.email
        con.execute("INSERT INTO outbox (id, dossier, run_id, recipient, subject, message, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', now())",
                    [email_id, code, run_id, recipient, subject, message])


def _apply_quarantine(con, code: str, staged: StagedSync, run_id: str) -> None:
    if staged.mode in ("full", "diff"):  # everything was read and judged afresh
        con.execute("DELETE FROM quarantine WHERE dossier = ?", [code])
    else:
        # Rows read again (or deleted) this time are judged afresh.
        judged = [f"SELECT '{stream.name}', CAST({stream.key[0]} AS VARCHAR) FROM stg_{stream.name}"
                  for stream in STREAMS if stream.name in staged.files and stream.follows is None]
        if judged:
            con.execute(f"DELETE FROM quarantine WHERE dossier = ? AND (stream, key) IN "
                        f"({' UNION ALL '.join(judged)})", [code])
        con.execute("DELETE FROM quarantine WHERE dossier = ? AND (stream, key) IN "
                    "(SELECT stream, key FROM deletions)", [code])
    if staged.quarantine:
        rows = pa.table({
            "stream": [q.stream for q in staged.quarantine],
            "key": [q.key for q in staged.quarantine],
            "reason": [q.reason for q in staged.quarantine],
            "detail": [q.detail for q in staged.quarantine],
        })
        con.register("new_quarantine", rows)
        con.execute("INSERT INTO quarantine SELECT ?, stream, key, reason, detail, ?, now() "
                    "FROM new_quarantine", [code, run_id])
