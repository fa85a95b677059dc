"""The run log: sync runs, quarantined rows, kept reconcile verdicts, and the
active clients monitor read from them."""
from __future__ import annotations

import json
from pathlib import Path

from dossync.core.model import RowCounts, SyncResult
from dossync.core.portal.dossiers import _dossier_cols, _dossier_of
from dossync.core.portal.records import FullLoad, LastSync, MonitorEntry, QuarantineEntry, SyncRun
from dossync.core.portal.schema import connect
from dossync.core.portal.store import _dicts, _records, _transaction


def _insert_run(con, result: SyncResult, counts: RowCounts) -> None:
    con.execute(
        "INSERT INTO sync_runs (run_id, dossier, kind, status, started_at, finished_at, "
        "rows_read, rows_inserted, rows_updated, rows_deleted, rows_quarantined, warnings, error, "
        "needs_full_sync, stream_counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [result.run_id, result.dossier, result.kind, result.status, result.started_at,
         result.finished_at, counts.read, counts.inserted, counts.updated, counts.deleted,
         counts.quarantined, json.dumps(list(result.warnings)), result.error,
         result.needs_full_sync,
         json.dumps({name: c.to_json() for name, c in counts.streams}) if counts.streams
         else None])


def record_run(path: Path, result: SyncResult) -> None:
    """Record a run that changed no data (a failed or refused sync)."""
    record_runs(path, [result])


def record_runs(path: Path, results: list[SyncResult]) -> None:
    """Record several runs that changed no data, in one commit."""
    if not results:
        return
    with connect(path) as con, _transaction(con):
        for result in results:
            _insert_run(con, result, result.rows)


# A SyncRun's columns (ordered by sync_runs.started_at, the timestamp, not this text).
_RUN_COLS = ("run_id, dossier, kind, status, "
             "strftime(started_at, '%Y-%m-%dT%H:%M:%S') AS started_at, "
             "strftime(finished_at, '%Y-%m-%dT%H:%M:%S') AS finished_at, rows_read AS read, "
             "rows_inserted AS inserted, rows_updated AS updated, rows_deleted AS deleted, "
             "rows_quarantined AS quarantined, warnings, error, needs_full_sync, "
             "stream_counts AS streams")


def _run(row: dict) -> SyncRun:
    return SyncRun(**{**row, "warnings": tuple(json.loads(row["warnings"] or "[]")),
                      "streams": json.loads(row["streams"]) if row["streams"] else None})


def runs(path: Path, code: str | None = None, limit: int = 50) -> list[dict]:
    """The newest runs (of one dossier, or of all), newest first, as JSON (SyncRun)."""
    where, params = ("WHERE dossier = ?", [code]) if code else ("", [])
    with connect(path, read_only=True) as con:
        rows = _dicts(con.execute(f"SELECT {_RUN_COLS} FROM sync_runs {where} "
                                  f"ORDER BY sync_runs.started_at DESC, run_id DESC "
                                  f"LIMIT {int(limit)}", params))
    return [_run(r).to_json() for r in rows]


def quarantined(path: Path, code: str) -> list[dict]:
    """The dossier's rows in quarantine, as JSON (QuarantineEntry)."""
    with connect(path, read_only=True) as con:
        rows = _records(con.execute("SELECT stream, key, reason, detail, run_id FROM quarantine "
                                    "WHERE dossier = ? ORDER BY stream, key", [code]),
                        QuarantineEntry)
    return [r.to_json() for r in rows]


def record_verdict(path: Path, code: str, verdict: str, reasons: list[str],
                   segments: list[dict], needs_full_sync: bool) -> None:
    """Keep a reconcile verdict (nightly --verify); the monitor shows a full-sync need."""
    with connect(path) as con:
        con.execute("INSERT INTO reconcile_runs VALUES (?, now(), ?, ?, ?, ?)",
                    [code, verdict, json.dumps(list(reasons)), json.dumps(list(segments)),
                     needs_full_sync])


def last_succeeded(path: Path, codes: list[str]) -> dict[str, str]:
    """When each dossier's newest successful sync (of any kind) finished, ISO to the second,
    in one look: code -> time, for those that have one. How long a dossier has been idle
    is counted from here (core/idle.py)."""
    if not codes:
        return {}
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT dossier, strftime(max(finished_at), '%Y-%m-%dT%H:%M:%S') "
                           "FROM sync_runs WHERE status = 'succeeded' AND list_contains(?, dossier) "
                           "GROUP BY dossier", [list(codes)]).fetchall()
    return {code: at for code, at in rows if at}


def monitor(path: Path) -> list[MonitorEntry]:
    """One entry per dossier for the active clients monitor (state without locks)."""
    with connect(path, read_only=True) as con:
        rows = _dicts(con.execute(f"""
            WITH last AS (
                SELECT dossier, arg_max(run_id, finished_at) run_id FROM sync_runs GROUP BY dossier),
            q AS (SELECT dossier, count(*) n FROM quarantine GROUP BY dossier),
            v AS (SELECT dossier, max(checked_at) AS at, arg_max(needs_full_sync, checked_at) AS needs,
                         arg_max(reasons, checked_at) AS reasons FROM reconcile_runs GROUP BY dossier),
            fixed AS (SELECT dossier, max(finished_at) AS at FROM sync_runs
                      WHERE status = 'succeeded' AND kind IN ('full', 'repair') GROUP BY dossier),
            ok AS (SELECT dossier, max(finished_at) AS at FROM sync_runs
                   WHERE status = 'succeeded' GROUP BY dossier)
            SELECT {_dossier_cols("d")}, r.run_id, r.kind, r.status,
                   strftime(r.finished_at, '%Y-%m-%dT%H:%M:%S') AS finished_at,
                   r.needs_full_sync, r.error, coalesce(q.n, 0) AS quarantined,
                   coalesce(v.needs AND (f.at IS NULL OR v.at > f.at), false) AS verdict_needs,
                   v.reasons AS verdict_reasons,
                   strftime(ok.at, '%Y-%m-%dT%H:%M:%S') AS last_succeeded
            FROM dossiers d LEFT JOIN last l ON l.dossier = d.code
            LEFT JOIN sync_runs r ON r.run_id = l.run_id
            LEFT JOIN q ON q.dossier = d.code
            LEFT JOIN v ON v.dossier = d.code LEFT JOIN fixed f ON f.dossier = d.code
            LEFT JOIN ok ON ok.dossier = d.code
            ORDER BY d.code"""))
    out = []
    for row in rows:
        error = row["error"]
        if row["verdict_needs"] and not row["needs_full_sync"]:
            error = (json.loads(row["verdict_reasons"]) or [error])[0]
        last = None if row["run_id"] is None else LastSync(
            run_id=row["run_id"], kind=row["kind"], status=row["status"],
            finished_at=row["finished_at"])
        out.append(MonitorEntry(
            dossier=_dossier_of(row), last_sync=last,
            needs_full_sync=bool(row["needs_full_sync"]) or bool(row["verdict_needs"]),
            error=error, quarantined=int(row["quarantined"]),
            last_succeeded=row["last_succeeded"]))
    return out


def full_loads(path: Path) -> dict[str, FullLoad]:
    """Per dossier, its last successful full sync (rows read, seconds taken) and the rows
    the portal holds for it: what reloading it will cost (`dossync upgrade-plan`)."""
    with connect(path, read_only=True) as con:
        held = {row[0]: int(row[1] or 0) for row in con.execute(
            "SELECT dossier, sum(row_count) FROM sync_state GROUP BY dossier").fetchall()}
        last = con.execute("""
            WITH f AS (SELECT dossier, max(finished_at) AS at FROM sync_runs
                       WHERE status = 'succeeded' AND kind = 'full' GROUP BY dossier)
            SELECT r.dossier, max(r.rows_read), max(r.started_at), max(r.finished_at)
            FROM sync_runs r JOIN f ON f.dossier = r.dossier AND f.at = r.finished_at
            WHERE r.status = 'succeeded' AND r.kind = 'full'
            GROUP BY r.dossier""").fetchall()
        codes = [row[0] for row in con.execute("SELECT code FROM dossiers").fetchall()]
    loads = {code: FullLoad(code, None, None, held.get(code, 0)) for code in codes}
    for code, rows, started, finished in last:
        if code in loads:
            loads[code] = FullLoad(code, None if rows is None else int(rows),
                                   (finished - started).total_seconds(), held.get(code, 0))
    return loads
