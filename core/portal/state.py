"""Sync state: what the portal remembers of a dossier before a sync starts.

The cursor and deletion-log position of its last sync, the newest rows per
stream (to see a ledger that went back in time), the reference keys it knows
and the rows in quarantine, read in one short visit (`SyncState`).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dossync.core.portal.dossiers import _read_dossier
from dossync.core.portal.records import SyncState
from dossync.core.portal.schema import connect
from dossync.core.portal.store import _one
from dossync.core.streams import BY_NAME


def sync_state(path: Path, code: str, probe: int = 20, codes: bool | None = None,
               last_run: bool = False) -> SyncState:
    """The state a sync starts from; probe=0 (a full sync) skips what only an
    incremental sync needs: the rewind probe and (unless `codes`) the known
    reference keys (accounts, journals, periods; a repair checks against them).
    last_run: also the newest sync run (a kept reconcile verdict is checked
    against it)."""
    with connect(path, read_only=True) as con:
        return _sync_state(con, code, probe, codes, last_run)


def sync_states(path: Path, codes: list[str]) -> dict[str, SyncState]:
    """Many dossiers' states in one look (the nightly reads them all at once)."""
    with connect(path, read_only=True) as con:
        return {code: _sync_state(con, code) for code in codes}


def _sync_state(con, code: str, probe: int = 20, codes: bool | None = None,
                last_run: bool = False) -> SyncState:
    dossier = _read_dossier(con, code)
    pos = _one(con.execute("SELECT high_water, deletion_log_from, history FROM ledger_position "
                           "WHERE dossier = ?", [code]).fetchall())
    recent: dict[str, list[tuple[str, int]]] = {"bookings": [], "matchings": [], "relations": []}
    accounts = journals = periods = frozenset()
    tables = {name: BY_NAME[name].schema.empty_table() for name in ("bookings", "lines")}
    if probe:
        for stream in recent:
            recent[stream] = [(str(k), int(rv)) for k, rv in con.execute(
                f"SELECT id, rv FROM {stream} WHERE dossier = ? ORDER BY rv DESC LIMIT ?",
                [code, probe]).fetchall()]
        keys = [k for k, _ in recent["bookings"]]
        tables = {name: _read_keys(con, code, name, keys) for name in ("bookings", "lines")}
    if probe if codes is None else codes:
        accounts = frozenset(r[0] for r in con.execute(
            "SELECT code FROM accounts WHERE dossier = ?", [code]).fetchall())
        journals = frozenset(r[0] for r in con.execute(
            "SELECT code FROM journals WHERE dossier = ?", [code]).fetchall())
        periods = frozenset(r[0] for r in con.execute(
            "SELECT id FROM periods WHERE dossier = ?", [code]).fetchall())
    last = _one(con.execute("SELECT arg_max(run_id, finished_at) FROM sync_runs WHERE dossier = ?",
                            [code]).fetchall()) if last_run else None
    queued = con.execute("SELECT count(*) FROM proposal_queue WHERE dossier = ?",
                         [code]).fetchall()[0][0]
    quarantined: dict[str, list[str]] = {}
    if probe:  # a simple sync judges the quarantined rows again
        for stream, key in con.execute("SELECT DISTINCT stream, key FROM quarantine "
                                       "WHERE dossier = ? ORDER BY stream, key", [code]).fetchall():
            quarantined.setdefault(stream, []).append(key)
    return SyncState(dossier=dossier, last_run=last[0] if last else None,
                     queued=queued,
                     cursor=pos[0] if pos else None, deletion_log_from=pos[1] if pos else None,
                     history=pos[2] if pos else None, quarantined=quarantined,
                     recent=recent, accounts=accounts, journals=journals, periods=periods,
                     probe=tables)


def read_keys(path: Path, code: str, stream: str, keys: list[str]) -> pa.Table:
    """Mirrored rows of a stream by key (lines: of these bookings), shaped like the stream."""
    with connect(path, read_only=True) as con:
        return _read_keys(con, code, stream, keys)


def _read_keys(con, code: str, stream: str, keys: list[str]) -> pa.Table:
    definition = BY_NAME[stream]
    key = "booking_id" if stream == "lines" else definition.key[0]
    cols = ", ".join(f"strftime({c.name}, '%Y-%m-%d') AS {c.name}" if c.sql == "DATE" else c.name
                     for c in definition.columns)
    column = next(c for c in definition.columns if c.name == key)
    if pa.types.is_integer(column.arrow):
        # integer keys compare as integers: the filter then uses the column's
        # zone maps instead of casting every row of the dossier to text
        wanted = pa.array([int(k) for k in keys if str(k).lstrip("-").isdigit()], pa.int64())
    else:
        wanted = pa.array(keys, pa.string())
    con.register("wanted", pa.table({"k": wanted}))
    table = con.sql(f"SELECT {cols} FROM {stream} WHERE dossier = ? AND "
                    f"{key} IN (SELECT k FROM wanted)",
                    params=[code]).to_arrow_table()
    con.unregister("wanted")
    return table.cast(definition.schema)
