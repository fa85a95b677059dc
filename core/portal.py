"""The portal store: one DuckDB file for the whole firm.

This is the only module that speaks DuckDB. It holds the mirrored ledger of
every dossier (keyed by dossier), the dossiers and their settings, per-stream
sync state, sync runs, quarantined rows, and answers the portal's reports.

DuckDB lets one process at a time hold the file, read-only connections
included. So every function here opens a connection, does one short piece
of work and closes it again; a caller that finds the file locked waits with
backoff. Sync writes happen in `apply_sync`, one transaction per dossier:
the data, the cursor and the run record commit together or not at all.
"""
from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator, Literal

import duckdb
import pyarrow as pa

from dossync.core import failpoints
from dossync.core import figures as fp
from dossync.core import money
from dossync.core.classes import mar_sql
from dossync.core.connectors.base import DELETIONS
from dossync.core.model import (DEFAULT_TIMEZONE, ConservationError, Dossier, PortalBusy,
                                QuarantinedRow, RowCounts, StreamCounts, SyncResult, TerminalError,
                                UsageError)
from dossync.core.streams import BY_NAME, STREAMS, Stream

# 4: exact money (DECIMAL(18,6) instead of cents), account classes, lines in
#    other commodities, draft bookings, dossier currency/time zone/proposals
#    file, per-stream counts of every run, the package's proposal queue.
SCHEMA_VERSION = 5
MONEY = money.SQL
LOCK_WAIT_SECONDS = 120.0
WRITE_MEMORY_LIMIT = "160MB"  # for a sync's commit (DuckDB spills to disk beyond it)

_DDL = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS dossiers (
        code VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, package VARCHAR NOT NULL,
        source VARCHAR NOT NULL, email VARCHAR, language VARCHAR NOT NULL DEFAULT 'nl',
        nightly BOOLEAN NOT NULL DEFAULT false, updated_until DATE, active_period VARCHAR,
        pending_proposals INTEGER NOT NULL DEFAULT 0, created_at TIMESTAMP NOT NULL,
        currency VARCHAR, timezone VARCHAR, proposals_file VARCHAR, book_currency VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS sync_state (
        dossier VARCHAR NOT NULL, stream VARCHAR NOT NULL, cursor BIGINT, row_count BIGINT,
        synced_at TIMESTAMP, PRIMARY KEY (dossier, stream))""",
    """CREATE TABLE IF NOT EXISTS ledger_position (
        dossier VARCHAR PRIMARY KEY, high_water BIGINT NOT NULL,
        deletion_log_from BIGINT NOT NULL, synced_at TIMESTAMP NOT NULL, history VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS sync_runs (
        run_id VARCHAR PRIMARY KEY, dossier VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        status VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP NOT NULL,
        rows_read BIGINT, rows_inserted BIGINT, rows_updated BIGINT, rows_deleted BIGINT,
        rows_quarantined BIGINT, warnings VARCHAR, error VARCHAR,
        needs_full_sync BOOLEAN NOT NULL DEFAULT false, stream_counts VARCHAR)""",
    # Booking proposals sent from the worklist, shown at once as provisional
    # until the package's definitive booking (same reference) replaces them.
    # Ids are negative so they never meet a ledger booking's id.
    """CREATE TABLE IF NOT EXISTS provisional_bookings (
        dossier VARCHAR NOT NULL, id BIGINT NOT NULL, ref VARCHAR NOT NULL, journal VARCHAR,
        doc_type VARCHAR, date DATE, due_date DATE, relation_id BIGINT, fiscal_year_id BIGINT,
        period_id BIGINT, amount {MONEY}, sent_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS provisional_lines (
        dossier VARCHAR NOT NULL, booking_id BIGINT NOT NULL, line_no BIGINT, account VARCHAR,
        debit {MONEY}, credit {MONEY}, vat_code VARCHAR, relation_id BIGINT)""",
    # Proposals the package has not confirmed yet (GnuCash had the book open,
    # or the sender was killed): shown as provisional already, sent by the next
    # sync, oldest first; attempts counts the hand-overs to the package.
    """CREATE TABLE IF NOT EXISTS proposal_queue (
        dossier VARCHAR NOT NULL, ref VARCHAR NOT NULL, proposal VARCHAR NOT NULL,
        queued_at TIMESTAMP NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
        PRIMARY KEY (dossier, ref))""",
    """CREATE TABLE IF NOT EXISTS outbox (
        id VARCHAR PRIMARY KEY, dossier VARCHAR NOT NULL, run_id VARCHAR, recipient VARCHAR NOT NULL,
        subject VARCHAR NOT NULL, message BLOB NOT NULL, status VARCHAR NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR, created_at TIMESTAMP NOT NULL,
        sent_at TIMESTAMP, claimed_by VARCHAR, claimed_at TIMESTAMP)""",
    # Reconcile verdicts kept by `nightly --verify`: a full-sync need shows in
    # the monitor until a full sync or a repair succeeds after it.
    """CREATE TABLE IF NOT EXISTS reconcile_runs (
        dossier VARCHAR NOT NULL, checked_at TIMESTAMP NOT NULL, verdict VARCHAR NOT NULL,
        reasons VARCHAR NOT NULL, segments VARCHAR NOT NULL, needs_full_sync BOOLEAN NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        dossier VARCHAR NOT NULL, stream VARCHAR NOT NULL, key VARCHAR NOT NULL,
        reason VARCHAR NOT NULL, detail VARCHAR, run_id VARCHAR, found_at TIMESTAMP)""",
]
_DDL = [ddl.replace("{MONEY}", MONEY) for ddl in _DDL]


def _mirror_ddl(stream: Stream) -> str:
    cols = ", ".join(f"{c.name} {c.sql}" for c in stream.columns)
    return f"CREATE TABLE IF NOT EXISTS {stream.name} (dossier VARCHAR NOT NULL, {cols})"


# --- connections ----------------------------------------------------------
def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _one(rows: list[tuple]) -> tuple | None:
    """The first row or None (a result is always read whole: DuckDB wants it finished)."""
    return rows[0] if rows else None


def _is_other_configuration(exc: Exception) -> bool:
    return "different configuration" in str(exc)


@contextmanager
def connect(path: Path, *, read_only: bool = False,
            wait: float = LOCK_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the portal briefly; wait with backoff while another process holds it.

    Within one process DuckDB shares one open database between threads, in
    one mode: a reader that finds it open for writing simply joins it.
    Threads of one process (the nightly's workers) take turns here: their
    portal work is short, and DuckDB's Arrow registration is not safe to
    run from several threads on one database at once.
    """
    with _THREADS:
        with _connect(path, read_only=read_only, wait=wait) as con:
            if str(path) in _CURRENT or _schema_version(con) >= SCHEMA_VERSION:
                _CURRENT.add(str(path))
                yield con
                return
        # written by an older version: bring it up to this schema, then go on
        initialise(path)
        with _connect(path, read_only=read_only, wait=wait) as con:
            yield con


_THREADS = threading.RLock()
_CURRENT: set[str] = set()  # portal files this process found at the current schema


def _schema_version(con) -> int:
    try:
        row = _one(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall())
    except duckdb.CatalogException:  # no meta table: not initialised yet
        return 0
    return int(row[0]) if row else 0


@contextmanager
def _connect(path: Path, *, read_only: bool, wait: float) -> Iterator[duckdb.DuckDBPyConnection]:
    deadline = time.monotonic() + wait
    delay = 0.01
    mode = read_only
    while True:
        try:
            con = duckdb.connect(str(path), read_only=mode)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if _is_other_configuration(exc) and read_only and mode:
                mode = False  # this process has it open for writing: read through that
                continue
            mode = read_only
            retry = _is_lock_conflict(exc) or _is_other_configuration(exc)
            if not retry:
                raise _file_problem(path, exc) or exc
            if time.monotonic() > deadline:
                raise PortalBusy(
                    f"the portal file {path} stayed locked for {wait:.0f}s by another process: "
                    f"{exc}; try again when it is done") from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise _file_problem(path, exc) or exc
    try:
        yield con
    except duckdb.Error as exc:  # the file itself failing mid-work: a damaged block, a full disk
        raise _file_problem(path, exc) or exc
    finally:
        con.close()


def _file_problem(path: Path, exc: Exception) -> TerminalError | None:
    """What DuckDB's words about the portal file itself mean for the user, or None.

    A damaged file, a full disk, a read-only one: no retry helps, no traceback
    either. DuckDB has changed nothing when it says so (a failed commit is
    rolled back), so the portal is as the last successful command left it.
    """
    chain, seen = [], exc  # a failed ROLLBACK after a failed COMMIT hides the commit's reason
    while seen is not None and len(chain) < 5:
        chain.append(seen)
        seen = None if seen.__suppress_context__ else seen.__context__
    for cause in chain:
        problem = _file_problem_of(path, str(cause) or type(cause).__name__)
        if problem is not None:
            return problem
    return None


def _file_problem_of(path: Path, text: str) -> TerminalError | None:
    first = text.splitlines()[0]
    if any(s in text for s in ("not a valid DuckDB database", "Corrupt database file",
                               "does not match stored checksum")):
        problem = (f"the portal file {path} is damaged ({first}); dossync changed nothing: "
                   f"restore {path.name} from the latest backup (with the scheduler stopped); "
                   f"syncs then bring the dossiers up to date")
    elif "file with version number" in text or "newer version of DuckDB" in text:
        problem = (f"the portal file {path} was written by a newer version of dossync "
                   f"({first}); dossync changed nothing: use that version, or restore "
                   f"{path.name} from a backup made with this one")
    elif "No space left on device" in text or "Disk quota exceeded" in text:
        problem = (f"the disk holding the portal file {path} is full ({first}); the portal was "
                   f"left as it was: free some space there, then run the command again")
    elif "Read-only file system" in text or "Permission denied" in text:
        problem = (f"the portal file {path} cannot be written ({first}); the portal was left as "
                   f"it was: run this command where HOME is writable, as the user that owns it "
                   f"(status, report, reconcile and dossier list only read, and work as they are)")
    else:
        return None
    return TerminalError(problem)


def initialise(path: Path) -> None:
    """Create the portal's tables, or add what a newer version needs (idempotent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREADS, _connect(path, read_only=False, wait=LOCK_WAIT_SECONDS) as con:
        _create_schema(con)
    _CURRENT.add(str(path))


def _create_schema(con) -> None:
    """Create what is missing; bring a portal written by an earlier release up to date."""
    version = _schema_version(con)
    if version >= SCHEMA_VERSION:
        return  # another process got here first
    con.execute("BEGIN TRANSACTION")
    try:
        if 0 < version < 4:
            _migrate_to_4(con)
        if 0 < version < 5:
            _migrate_to_5(con)
        for ddl in _DDL:
            con.execute(ddl)
        for stream in STREAMS:
            con.execute(_mirror_ddl(stream))
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                    [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise


def _rollback(con) -> None:
    """Undo the open transaction before the error that ended it is raised on.

    A COMMIT that failed (a full disk) has already ended the transaction:
    DuckDB then refuses the ROLLBACK, and that refusal must not hide the
    error that matters, which the caller raises next."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass  # no transaction left to undo: the caller's own error follows


def _has_table(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                            [name]).fetchall()[0][0])


def _columns(con, table: str) -> dict[str, str]:
    return dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                            "WHERE table_name = ?", [table]).fetchall())


def _cents_to_money(column: str) -> str:
    """An old integer-cents column as exact money (multiplied: DuckDB divides decimals as doubles)."""
    return f"CAST(CAST({column} AS DECIMAL(36,0)) * CAST(0.01 AS DECIMAL(3,2)) AS {MONEY})"


# Columns schema 5 added to tables that existed before (the DDL above has them too).
_ADDED_IN_5: dict[str, tuple[tuple[str, str], ...]] = {
    # an email is claimed by one sender before it is sent (two flushes never send it twice)
    "outbox": (("claimed_by", "VARCHAR"), ("claimed_at", "TIMESTAMP")),
    # the package's id for the point of its history the portal last saw (a restored
    # backup that has moved on since no longer knows it)
    "ledger_position": (("history", "VARCHAR"),),
}


def _migrate_to_5(con) -> None:
    """Schema 4 to 5, in the caller's transaction: new columns, nothing rewritten."""
    for table, added in _ADDED_IN_5.items():
        have = _columns(con, table)
        for column, sql_type in added:
            if have and column not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def _migrate_to_4(con) -> None:
    """Schema 3 (0.3.0) to 4, in the caller's transaction, losing nothing.

    Amounts in cents become exact money of the same value; the mirrored
    tables are rebuilt in the canonical column order (a migrated portal and a
    new one look alike); the demo package's accounts get their MAR classes
    (the connector gives them from now on; its change cursor would not read
    unchanged accounts again); the other packages' accounts get theirs with
    their next sync, which reads their whole book.
    """
    for table, added in (("dossiers", ("currency", "timezone", "proposals_file",
                                        "book_currency")),
                         ("sync_runs", ("stream_counts",))):
        have = _columns(con, table)
        for column in added:
            if have and column not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR")
    demo = "(SELECT code FROM dossiers WHERE package = 'demo')"
    derived = {("accounts", "class"): f"CASE WHEN dossier IN {demo} THEN {mar_sql('code')} END"}
    for stream in STREAMS:
        if not _has_table(con, stream.name):
            continue
        have = _columns(con, stream.name)
        exprs = []
        for column in stream.columns:
            if column.name not in have:
                exprs.append(derived.get((stream.name, column.name), "NULL"))
            elif column.sql == MONEY and have[column.name].replace(" ", "") != MONEY:
                exprs.append(_cents_to_money(column.name))
            else:
                exprs.append(column.name)
        _rebuild(con, stream.name, _mirror_ddl(stream),
                 ["dossier", *stream.names], ["dossier", *exprs])
    for table, money_columns in (("provisional_bookings", ("amount",)),
                                 ("provisional_lines", ("debit", "credit"))):
        if not _has_table(con, table):
            continue
        ddl = next(d for d in _DDL if f"EXISTS {table} " in d)
        have = list(_columns(con, table))
        _rebuild(con, table, ddl, have,
                 [_cents_to_money(c) if c in money_columns else c for c in have])


def _rebuild(con, table: str, ddl: str, columns: list[str], exprs: list[str]) -> None:
    con.execute(ddl.replace(f"EXISTS {table} (", f"EXISTS {table}__new (", 1))
    con.execute(f"INSERT INTO {table}__new ({', '.join(columns)}) "
                f"SELECT {', '.join(exprs)} FROM {table}")
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {table}__new RENAME TO {table}")


# --- dossiers ---------------------------------------------------------------
def _dossier_cols(alias: str = "") -> str:
    """The SELECT list of a Dossier, in its fields' order (alias: a table alias)."""
    a = f"{alias}." if alias else ""
    return (f"{a}code, {a}name, {a}package, {a}source, {a}email, {a}language, {a}nightly, "
            f"strftime({a}updated_until, '%Y-%m-%d'), {a}active_period, {a}pending_proposals, "
            f"{a}currency, coalesce({a}timezone, '{DEFAULT_TIMEZONE}'), {a}proposals_file, "
            f"{a}book_currency")


_DOSSIER_COLS = _dossier_cols()
_DOSSIER_WIDTH = len(fields(Dossier))


def _dossier(row: tuple) -> Dossier:
    return Dossier(*row)


def list_dossiers(path: Path) -> list[Dossier]:
    with connect(path, read_only=True) as con:
        rows = con.execute(f"SELECT {_DOSSIER_COLS} FROM dossiers ORDER BY code").fetchall()
    return [_dossier(r) for r in rows]


def get_dossier(path: Path, code: str) -> Dossier | None:
    with connect(path, read_only=True) as con:
        row = _one(con.execute(f"SELECT {_DOSSIER_COLS} FROM dossiers WHERE code = ?", [code]).fetchall())
    return _dossier(row) if row else None


def unknown_dossier(path: Path, code: str) -> UsageError:
    """The error for a dossier code the portal does not know, listing the ones it does."""
    known = ", ".join(d.code for d in list_dossiers(path)) or "none yet"
    return UsageError(f"unknown dossier {code!r} (known: {known})")


def require_dossier(path: Path, code: str) -> Dossier:
    """The dossier, or a usage error that lists the known ones."""
    dossier = get_dossier(path, code)
    if dossier is None:
        raise unknown_dossier(path, code)
    return dossier


def add_dossier(path: Path, dossier: Dossier) -> None:
    """Add a dossier (creating the portal first if there is none): one visit.

    Raises UsageError when the code is taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREADS, _connect(path, read_only=False, wait=LOCK_WAIT_SECONDS) as con:
        if str(path) not in _CURRENT and _schema_version(con) < SCHEMA_VERSION:
            _create_schema(con)
        _CURRENT.add(str(path))
        if con.execute("SELECT count(*) FROM dossiers WHERE code = ?", [dossier.code]).fetchall()[0][0]:
            raise UsageError(f"dossier {dossier.code} already exists; change it with "
                             f"'dossync dossier set {dossier.code}'")
        con.execute(
            "INSERT INTO dossiers (code, name, package, source, email, language, nightly, "
            "updated_until, active_period, pending_proposals, created_at, currency, timezone, "
            "proposals_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?)",
            [dossier.code, dossier.name, dossier.package, dossier.source, dossier.email,
             dossier.language, dossier.nightly, dossier.updated_until, dossier.active_period,
             dossier.pending_proposals, dossier.currency, dossier.timezone,
             dossier.proposals_file])


def update_dossier(path: Path, code: str, **changes) -> None:
    allowed = {"name", "source", "email", "language", "nightly", "package", "currency",
               "timezone", "proposals_file"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)} on a dossier")
    if not changes:
        return
    sets = ", ".join(f"{k} = ?" for k in changes)
    with connect(path) as con:
        con.execute(f"UPDATE dossiers SET {sets} WHERE code = ?", [*changes.values(), code])


def remove_dossier(path: Path, code: str) -> None:
    """Forget a dossier entirely (used when its activation failed)."""
    with connect(path) as con:
        con.execute("BEGIN")
        for table in ["dossiers"]:
            con.execute(f"DELETE FROM {table} WHERE code = ?", [code])
        for table in ["sync_state", "ledger_position", "sync_runs", "quarantine",
                      "reconcile_runs", "provisional_bookings", "provisional_lines",
                      "proposal_queue", *(s.name for s in STREAMS)]:
            con.execute(f"DELETE FROM {table} WHERE dossier = ?", [code])
        con.execute("COMMIT")


# --- sync state -----------------------------------------------------------
@dataclass(frozen=True)
class SyncState:
    """What the portal remembers of a dossier, read in one short look before a sync.

    dossier: its settings (None: unknown); cursor: the ledger position of the
    last sync (None: never synced); recent: the newest (key, rv) per stream,
    and probe: the portal's copy of those newest bookings and their lines,
    to check that the ledger did not go back in time.
    """

    dossier: Dossier | None
    cursor: int | None
    deletion_log_from: int | None
    recent: dict[str, list[tuple[str, int]]]
    accounts: frozenset[str]
    journals: frozenset[str]
    periods: frozenset[int]
    probe: dict[str, pa.Table]
    last_run: str | None = None  # the newest sync run: any sync since changes it
    queued: int = 0  # proposals waiting in the portal's queue for the package
    history: str | None = None  # the package's history id at the cursor, if it keeps one
    quarantined: dict[str, list[str]] = field(default_factory=dict)  # keys in quarantine, per stream


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
    row = _one(con.execute(f"SELECT {_DOSSIER_COLS} FROM dossiers WHERE code = ?",
                           [code]).fetchall())
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
                                       "WHERE dossier = ? ORDER BY ALL", [code]).fetchall():
            quarantined.setdefault(stream, []).append(key)
    return SyncState(dossier=_dossier(row) if row else None, last_run=last[0] if last else None,
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


# --- applying a sync --------------------------------------------------------
@dataclass(frozen=True)
class StagedSync:
    """Everything one sync will write, staged outside the portal.

    mode: full (replace the dossier), incremental (rows changed since the
    cursor, plus the deletion log) or diff (everything read, for packages
    without a change cursor: only rows whose content hash changed are
    written, and rows no longer in the package are deleted).
    files: stream -> Parquet file of the rows read.
    bad: stream -> Arrow table of the keys to keep out (quarantined).
    deletions: Arrow table (stream, key, seq) from the package's deletion log.
    """

    mode: Literal["full", "incremental", "diff", "repair"]
    files: dict[str, Path]
    bad: dict[str, pa.Table]
    deletions: pa.Table
    quarantine: list[QuarantinedRow]
    high_water: int
    deletion_log_from: int
    rows_read: int
    active_period: str | None = None
    options: "SyncOptions | None" = None
    repair_bookings: tuple[int, ...] = ()  # repair: the bookings reloaded (ids)
    stream_reads: dict[str, int] = field(default_factory=dict)  # rows staged per stream
    currency: str | None = None  # the book currency the connector read the money in
    history: str | None = None  # the package's history id at high_water, if it keeps one


@dataclass(frozen=True)
class SyncOptions:
    """The manual sync options; applied in the sync's own commit, or not at all.

    until: the updated-until date shown in the portal; reset_counter: blue
    counter to 0; new_period: the active booking period (earlier ones close);
    email: an outbox entry (id, recipient, subject, raw message) to queue.
    """

    until: str | None = None
    reset_counter: bool = False
    new_period: str | None = None
    email: tuple[str, str, str, bytes] | None = None


def _new_rows(stream: Stream, mode: str) -> str:
    """The staged rows this sync writes: bad keys left out; in a diff, only changed ones."""
    if mode == "repair":
        return f"SELECT * FROM rep_add_{stream.name}"
    using = ", ".join(stream.key)
    rows = f"SELECT s.* FROM stg_{stream.name} s ANTI JOIN bad_{stream.name} b USING ({using})"
    if mode not in ("full", "repair"):
        if stream.follows == "bookings":
            rows += " WHERE s.booking_id IN (SELECT id FROM chg_bookings)"
        else:
            rows += f" SEMI JOIN chg_{stream.name} c USING ({using})"
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
        file = staged.files[stream.name]
        con.execute(f"CREATE OR REPLACE TEMP VIEW stg_{stream.name} AS "
                    f"SELECT * FROM read_parquet('{_sql_path(file)}')")
        if staged.mode in ("incremental", "diff") and stream.follows is None:
            # The keys whose version differs from the portal's (in a diff, rv is
            # a content hash). A table, not a view: it must not change while
            # the sync rewrites the portal.
            (key,) = stream.key
            con.execute(f"CREATE OR REPLACE TEMP TABLE chg_{stream.name} AS "
                        f"SELECT {key} FROM stg_{stream.name} s ANTI JOIN "
                        f"(SELECT {key}, rv FROM {stream.name} WHERE dossier = '{_sql_str(code)}') p "
                        f"USING ({key}, rv)")
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
            using = ", ".join(stream.key)
            con.execute(f"CREATE OR REPLACE TEMP TABLE rep_new_{stream.name} AS SELECT {cast} "
                        f"FROM stg_{stream.name} s ANTI JOIN bad_{stream.name} b USING ({using})")
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
        # the portal never relies on row order: let DuckDB insert in parallel
        con.execute("SET preserve_insertion_order = false")
        if staged.mode == "repair":  # many small statements: one thread plans and runs them faster
            con.execute("SET threads = 1")
        # DuckDB spills past this; a full sync's peak stays that of its other phases
        con.execute(f"SET memory_limit = '{WRITE_MEMORY_LIMIT}'")
        unchanged_streams = _stage_views(con, code, staged)
        # a repair reads only some streams: the others stay as they are
        written = [stream for stream in STREAMS if stream.name in staged.files]
        con.execute("BEGIN TRANSACTION")
        try:
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
                    old, matched = _one(con.execute(
                        f"SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM "
                        f"({new_rows}) n WHERE {' AND '.join(f'n.{k} = t.{k}' for k in stream.key)})) "
                        f"FROM {stream.name} t WHERE {scope}", params).fetchall())
                    con.execute(f"DELETE FROM {stream.name} t WHERE {scope}", params)
                cols = ", ".join(f"CAST({c.name} AS DATE)" if c.sql == "DATE" else c.name
                                 for c in stream.columns)
                new = con.execute(f"INSERT INTO {stream.name} (dossier, {', '.join(stream.names)}) "
                                  f"SELECT $dossier, {cols} FROM ({new_rows})", params).fetchall()[0][0]
                per_stream.append((stream.name, _conserved(stream, StreamCounts(
                    read=read, inserted=new - matched, updated=matched, unchanged=unchanged,
                    quarantined=quarantined, deleted=old - matched), staged)))
                updated += matched
                inserted += new - matched
                deleted += old - matched
            con.execute(
                "INSERT OR REPLACE INTO sync_state "
                + " UNION ALL ".join(
                    f"SELECT $dossier, '{stream.name}', $cursor, count(*), now() "
                    f"FROM {stream.name} WHERE dossier = $dossier" for stream in written),
                {**params, "cursor": staged.high_water})
            _apply_quarantine(con, code, staged, result.run_id)
            con.execute("INSERT OR REPLACE INTO ledger_position (dossier, high_water, "
                        "deletion_log_from, synced_at, history) VALUES (?, ?, ?, now(), ?)",
                        [code, staged.high_water, staged.deletion_log_from, staged.history])
            if staged.active_period:
                con.execute("UPDATE dossiers SET active_period = ? WHERE code = ? "
                            "AND active_period IS NULL", [staged.active_period, code])
            if staged.currency:
                con.execute("UPDATE dossiers SET book_currency = ? WHERE code = ?",
                            [staged.currency, code])
            _replace_provisional(con, code)
            _apply_options(con, code, staged.options, result.run_id)
            counts = RowCounts(read=staged.rows_read, inserted=inserted, updated=updated,
                               deleted=deleted, quarantined=len(staged.quarantine),
                               streams=tuple(per_stream))
            _insert_run(con, result, counts)
            failpoints.hit("commit")
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        after = _dossier(_one(con.execute(f"SELECT {_DOSSIER_COLS} FROM dossiers WHERE code = ?",
                                          [code]).fetchall()))
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
                                f"INTERSECT ALL SELECT * FROM rep_old_{stream.name})").fetchall())[0]
    keys = ", ".join(stream.key)
    good = f"stg_{stream.name} s ANTI JOIN bad_{stream.name} b USING ({keys})"
    if stream.follows == "bookings":
        return _one(con.execute(
            f"SELECT count(*) FROM {good} WHERE s.booking_id IN (SELECT p.id FROM bookings p "
            f"SEMI JOIN stg_bookings n USING (id, rv) WHERE p.dossier = {dossier})").fetchall())[0]
    return _one(con.execute(
        f"SELECT count(*) FROM {good} SEMI JOIN (SELECT {keys}, rv FROM {stream.name} "
        f"WHERE dossier = {dossier}) p USING ({keys}, rv)").fetchall())[0]


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


def _replace_provisional(con, code: str) -> None:
    """Definitive bookings replace their proposals: never counted twice. (A draft with
    the proposal's reference stands for it in the reports, `_BOOKS`; the proposal
    stays pending until the accountant makes it definitive.)"""
    done = con.execute("""
        SELECT DISTINCT p.id FROM provisional_bookings p JOIN bookings b
          ON b.dossier = p.dossier AND b.reference = p.ref AND NOT coalesce(b.draft, false)
        WHERE p.dossier = ?""", [code]).fetchall()
    if not done:
        return
    ids = [r[0] for r in done]
    con.execute("DELETE FROM provisional_lines WHERE dossier = ? AND list_contains(?, booking_id)",
                [code, ids])
    con.execute("DELETE FROM provisional_bookings WHERE dossier = ? AND list_contains(?, id)",
                [code, ids])
    con.execute("UPDATE dossiers SET pending_proposals = greatest(pending_proposals - ?, 0) "
                "WHERE code = ?", [len(ids), code])


def _apply_options(con, code: str, options: "SyncOptions | None", run_id: str) -> None:
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
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        for result in results:
            _insert_run(con, result, result.rows)
        con.execute("COMMIT")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


# --- runs, quarantine, status -------------------------------------------------
_RUN_COLS = ("run_id, dossier, kind, status, strftime(started_at, '%Y-%m-%dT%H:%M:%S'), "
             "strftime(finished_at, '%Y-%m-%dT%H:%M:%S'), rows_read, rows_inserted, rows_updated, "
             "rows_deleted, rows_quarantined, warnings, error, needs_full_sync, stream_counts")


def _run(row: tuple) -> dict:
    keys = ["run_id", "dossier", "kind", "status", "started_at", "finished_at", "read", "inserted",
            "updated", "deleted", "quarantined", "warnings", "error", "needs_full_sync", "streams"]
    run = dict(zip(keys, row))
    run["warnings"] = json.loads(run["warnings"] or "[]")
    run["streams"] = json.loads(run["streams"]) if run["streams"] else None
    return run


def runs(path: Path, code: str | None = None, limit: int = 50) -> list[dict]:
    where, params = ("WHERE dossier = ?", [code]) if code else ("", [])
    with connect(path, read_only=True) as con:
        rows = con.execute(f"SELECT {_RUN_COLS} FROM sync_runs {where} "
                           f"ORDER BY started_at DESC, run_id DESC LIMIT {int(limit)}", params).fetchall()
    return [_run(r) for r in rows]


def quarantined(path: Path, code: str) -> list[dict]:
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT stream, key, reason, detail, run_id FROM quarantine "
                           "WHERE dossier = ? ORDER BY stream, key", [code]).fetchall()
    return [dict(zip(["stream", "key", "reason", "detail", "run_id"], r)) for r in rows]


def record_verdict(path: Path, code: str, verdict: str, reasons: list[str],
                   segments: list[dict], needs_full_sync: bool) -> None:
    """Keep a reconcile verdict (nightly --verify); the monitor shows a full-sync need."""
    with connect(path) as con:
        con.execute("INSERT INTO reconcile_runs VALUES (?, now(), ?, ?, ?, ?)",
                    [code, verdict, json.dumps(list(reasons)), json.dumps(list(segments)),
                     needs_full_sync])


def monitor(path: Path) -> list[dict]:
    """One row per dossier for the active clients monitor (state without locks)."""
    with connect(path, read_only=True) as con:
        rows = con.execute(f"""
            WITH last AS (
                SELECT dossier, arg_max(run_id, finished_at) run_id FROM sync_runs GROUP BY dossier),
            q AS (SELECT dossier, count(*) n FROM quarantine GROUP BY dossier),
            v AS (SELECT dossier, max(checked_at) AS at, arg_max(needs_full_sync, checked_at) AS needs,
                         arg_max(reasons, checked_at) AS reasons FROM reconcile_runs GROUP BY dossier),
            fixed AS (SELECT dossier, max(finished_at) AS at FROM sync_runs
                      WHERE status = 'succeeded' AND kind IN ('full', 'repair') GROUP BY dossier)
            SELECT {_dossier_cols("d")}, r.run_id, r.kind, r.status, strftime(r.finished_at, '%Y-%m-%dT%H:%M:%S'),
                   r.needs_full_sync, r.error, coalesce(q.n, 0),
                   coalesce(v.needs AND (f.at IS NULL OR v.at > f.at), false), v.reasons
            FROM dossiers d LEFT JOIN last l ON l.dossier = d.code
            LEFT JOIN sync_runs r ON r.run_id = l.run_id
            LEFT JOIN q ON q.dossier = d.code
            LEFT JOIN v ON v.dossier = d.code LEFT JOIN fixed f ON f.dossier = d.code
            ORDER BY d.code""").fetchall()
    out = []
    for row in rows:
        dossier = _dossier(row[:_DOSSIER_WIDTH])
        (run_id, kind, status, finished, needs_full, error, quarantine_count,
         verdict_needs, verdict_reasons) = row[_DOSSIER_WIDTH:]
        if verdict_needs and not needs_full:
            error = (json.loads(verdict_reasons) or [error])[0]
        out.append({"dossier": dossier,
                    "last_sync": None if run_id is None else
                    {"run_id": run_id, "kind": kind, "status": status, "finished_at": finished},
                    "needs_full_sync": bool(needs_full) or bool(verdict_needs), "error": error,
                    "quarantined": int(quarantine_count)})
    return out


# --- the portal's reports ---------------------------------------------------------
# Amounts come back exact (Decimal); `core.reports` rounds them for showing.
# The client sees definitive bookings plus the provisional ones: proposals
# from the worklist (until the package holds a booking with their reference:
# then that booking stands for them, never both) and bookings the package
# itself holds as drafts (Beancount's `!`); unless validated_only. Money
# reports take the lines in the dossier's currency (commodity NULL).
_BOOKS = """
    bk AS (
        SELECT id, journal, doc_no, doc_type, date, due_date, relation_id, fiscal_year_id,
               period_id, coalesce(draft, false) AS provisional FROM bookings
        WHERE dossier = $code AND NOT ($validated_only AND coalesce(draft, false))
        UNION ALL
        SELECT id, journal, ref, doc_type, date, due_date, relation_id, fiscal_year_id,
               period_id, true FROM provisional_bookings
        WHERE dossier = $code AND NOT $validated_only
          AND ref NOT IN (SELECT reference FROM bookings
                          WHERE dossier = $code AND reference IS NOT NULL)),
    ln AS (
        SELECT booking_id, account, debit, credit, relation_id, commodity FROM lines
        WHERE dossier = $code
        UNION ALL
        SELECT booking_id, account, debit, credit, relation_id, NULL FROM provisional_lines
        WHERE dossier = $code AND NOT $validated_only),
    ac AS (SELECT code, any_value(name) AS name, any_value(class) AS class FROM accounts
           WHERE dossier = $code GROUP BY code)"""


def _fiscal_year_for(con, code: str, period: str | None) -> tuple | None:
    """(id, code, start, end) of the fiscal year holding `period`; else the one holding
    today (a calendar-year book: this year); else the latest one."""
    if period:
        row = _one(con.execute(
            "SELECT f.id, f.code, f.start_date, f.end_date FROM periods p JOIN fiscal_years f "
            "ON f.dossier = p.dossier AND f.id = p.fiscal_year_id "
            "WHERE p.dossier = ? AND p.code = ?", [code, period]).fetchall())
        if row:
            return row
    return _one(con.execute(
        "SELECT id, code, start_date, end_date FROM fiscal_years WHERE dossier = ? "
        "ORDER BY (current_date BETWEEN start_date AND end_date) DESC, start_date DESC LIMIT 1",
        [code]).fetchall())


def _period_end(period: str | None) -> str | None:
    """First day after period YYYY-MM, as an ISO date (bookings before it count)."""
    if not period:
        return None
    year, month = int(period[:4]), int(period[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01"


def report_trial_balance(path: Path, code: str, period: str | None = None,
                         validated_only: bool = False) -> list[tuple]:
    """(account, name, class, commodity, debit, credit) per account (and commodity: None
    for the dossier's currency) over bookings up to the end of `period`; exact amounts."""
    before = _period_end(period)
    with connect(path, read_only=True) as con:
        return con.execute(f"""
            WITH {_BOOKS}
            SELECT l.account, any_value(a.name), any_value(a.class), l.commodity,
                   CAST(sum(l.debit) AS {MONEY}), CAST(sum(l.credit) AS {MONEY})
            FROM ln l JOIN bk b ON b.id = l.booking_id
            LEFT JOIN ac a ON a.code = l.account
            WHERE $before IS NULL OR b.date < CAST($before AS DATE)
            GROUP BY l.account, l.commodity ORDER BY l.account, l.commodity NULLS FIRST""",
            {"code": code, "before": before, "validated_only": validated_only}).fetchall()


def report_pnl(path: Path, code: str, period: str | None = None,
               validated_only: bool = False) -> dict:
    """Profit and loss of the fiscal year (up to `period` when given): per account of
    class revenue (credit - debit) or cost (debit - credit), exact."""
    with connect(path, read_only=True) as con:
        fy = _fiscal_year_for(con, code, period or _active_period(con, code))
        if fy is None:
            return {"fiscal_year": None, "accounts": []}
        before = _period_end(period)
        rows = con.execute(f"""
            WITH {_BOOKS}
            SELECT l.account, any_value(a.name), a.class,
                   CAST(sum(CASE WHEN a.class = 'revenue' THEN l.credit - l.debit
                                 ELSE l.debit - l.credit END) AS {MONEY})
            FROM ln l JOIN bk b ON b.id = l.booking_id
            JOIN ac a ON a.code = l.account
            WHERE b.fiscal_year_id = $fy AND a.class IN ('revenue', 'cost')
              AND l.commodity IS NULL
              AND ($before IS NULL OR b.date < CAST($before AS DATE))
            GROUP BY l.account, a.class ORDER BY a.class DESC, l.account""",
            {"code": code, "fy": fy[0], "before": before,
             "validated_only": validated_only}).fetchall()
    return {"fiscal_year": fy[1], "accounts": rows}


def _active_period(con, code: str) -> str | None:
    row = _one(con.execute("SELECT active_period FROM dossiers WHERE code = ?", [code]).fetchall())
    return row[0] if row else None


def report_dashboard(path: Path, code: str, validated_only: bool = False) -> dict:
    """The portal's dashboard figures for the current fiscal year, exact, by account class."""
    with connect(path, read_only=True) as con:
        period = _active_period(con, code)
        fy = _fiscal_year_for(con, code, period)
        params = {"code": code, "fy": fy[0] if fy else None, "validated_only": validated_only}

        def net(cls: str, credit_side: bool, this_year: bool) -> str:
            amount = "l.credit - l.debit" if credit_side else "l.debit - l.credit"
            year = " AND b.fiscal_year_id = $fy" if this_year else ""
            return (f"CAST(coalesce(sum(CASE WHEN a.class = '{cls}'{year} THEN {amount} END), 0) "
                    f"AS {MONEY})")

        row = _one(con.execute(f"""
            WITH {_BOOKS}
            SELECT {net('revenue', True, True)}, {net('cost', False, True)},
                   {net('bank', False, False)}, {net('receivable', False, False)},
                   {net('payable', True, False)}, {net('vat', True, False)}
            FROM ln l JOIN bk b ON b.id = l.booking_id JOIN ac a ON a.code = l.account
            WHERE l.commodity IS NULL""", params).fetchall())
        monthly = con.execute(f"""
            WITH {_BOOKS}
            SELECT p.code, CAST(sum(l.credit - l.debit) AS {MONEY})
            FROM ln l JOIN bk b ON b.id = l.booking_id JOIN ac a ON a.code = l.account
            JOIN periods p ON p.dossier = $code AND p.id = b.period_id
            WHERE b.fiscal_year_id = $fy AND a.class = 'revenue' AND l.commodity IS NULL
            GROUP BY p.code ORDER BY p.code""", params).fetchall()
    revenue, costs, bank, receivables, payables, vat = row
    return {"fiscal_year": fy[1] if fy else None, "revenue": revenue, "costs": costs,
            "result": revenue - costs, "bank": bank, "receivables": receivables,
            "payables": payables, "vat_position": vat, "monthly_revenue": monthly}


def report_archive(path: Path, code: str, period: str | None = None,
                   validated_only: bool = False) -> list[tuple]:
    """Invoices and credit notes: (ref, journal, date, due_date, relation, amount, paid, provisional)."""
    before = _period_end(period)
    with connect(path, read_only=True) as con:
        return con.execute(f"""
            WITH {_BOOKS},
            docs AS (
                SELECT b.*, j.kind FROM bk b JOIN journals j ON j.dossier = $code AND j.code = b.journal
                WHERE j.kind IN ('purchase', 'sales') AND b.doc_type IN ('invoice', 'credit_note')
                  AND ($before IS NULL OR b.date < CAST($before AS DATE))),
            -- a document's amount is its open item: the lines that name the customer
            -- or supplier (receivable for sales, payable for purchases)
            gross AS (
                SELECT l.booking_id id,
                       CAST(sum(CASE WHEN d.kind = 'sales' THEN l.debit - l.credit
                                     ELSE l.credit - l.debit END) AS {MONEY}) amount
                FROM ln l JOIN docs d ON d.id = l.booking_id
                WHERE l.relation_id IS NOT NULL AND l.commodity IS NULL
                GROUP BY l.booking_id),
            paid AS (
                SELECT m.invoice_id id, CAST(sum(m.amount) AS {MONEY}) paid FROM matchings m
                WHERE m.dossier = $code GROUP BY m.invoice_id)
            SELECT d.doc_no, d.journal, strftime(d.date, '%Y-%m-%d'),
                   strftime(d.due_date, '%Y-%m-%d'), r.name, coalesce(g.amount, 0),
                   coalesce(p.paid, 0), d.provisional
            FROM docs d LEFT JOIN gross g ON g.id = d.id LEFT JOIN paid p ON p.id = d.id
            LEFT JOIN relations r ON r.dossier = $code AND r.id = d.relation_id
            ORDER BY d.date, d.journal, d.doc_no""",
            {"code": code, "before": before, "validated_only": validated_only}).fetchall()


# --- worklist proposals, periods, outbox -----------------------------------------------
def add_proposals(path: Path, code: str, bookings: pa.Table, lines: pa.Table,
                  queue: list[tuple[str, str]] = ()) -> int:
    """Show sent proposals at once as provisional bookings; the blue counter goes up;
    `queue` (ref, proposal as JSON) waits for delivery to the package. One transaction.

    `bookings` has the provisional_bookings columns without dossier and id
    (ids are handed out here, negative); `lines` refers to a booking by `ref`.
    Returns the new counter.
    """
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
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
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
    return int(counter)


def queued_proposals(path: Path, code: str) -> list[tuple[str, str]]:
    """(ref, proposal as JSON) of the proposals still to hand to the package, oldest first."""
    with connect(path, read_only=True) as con:
        if not _has_table(con, "proposal_queue"):
            return []
        return [tuple(r) for r in con.execute(
            "SELECT ref, proposal FROM proposal_queue WHERE dossier = ? ORDER BY queued_at, ref",
            [code]).fetchall()]


def claim_proposals(path: Path, code: str) -> list[tuple[str, str, bool]]:
    """(ref, proposal as JSON, handed over before) of the queued proposals, oldest first,
    each marked as handed over to the package from now (`attempts` counts these), in
    one commit before the package is called: a proposal never marked was certainly never
    handed over, whoever was killed since."""
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            rows = con.execute("SELECT ref, proposal, attempts > 0 FROM proposal_queue "
                               "WHERE dossier = ? ORDER BY queued_at, ref", [code]).fetchall()
            if rows:
                con.execute("UPDATE proposal_queue SET attempts = attempts + 1 "
                            "WHERE dossier = ? AND list_contains(?, ref)",
                            [code, [r[0] for r in rows]])
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
    return [(ref, doc, bool(before)) for ref, doc, before in rows]


def proposals_delivered(path: Path, code: str, refs: list[str]) -> None:
    with connect(path) as con:
        con.execute("DELETE FROM proposal_queue WHERE dossier = ? AND list_contains(?, ref)",
                    [code, list(refs)])


def withdraw_proposals(path: Path, code: str, refs: list[str]) -> int:
    """Take proposals the package refused back out of the portal (provisional rows, queue,
    counter), in one transaction; returns how many were still there."""
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
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
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
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
    """The dossier's periods with their status as the portal shows it.

    A period is closed when the package closed it or when it lies before
    the active booking period set in the portal.
    """
    with connect(path, read_only=True) as con:
        rows = con.execute("""
            SELECT p.id, p.code, f.id, f.code, strftime(p.start_date, '%Y-%m-%d'),
                   strftime(p.end_date, '%Y-%m-%d'),
                   p.closed OR (d.active_period IS NOT NULL AND p.code < d.active_period)
            FROM periods p JOIN dossiers d ON d.code = p.dossier
            LEFT JOIN fiscal_years f ON f.dossier = p.dossier AND f.id = p.fiscal_year_id
            WHERE p.dossier = ? ORDER BY p.code""", [code]).fetchall()
    keys = ["id", "code", "fiscal_year_id", "fiscal_year", "start_date", "end_date", "closed"]
    return [dict(zip(keys, r)) for r in rows]


def reference_data(path: Path, code: str) -> dict:
    """What proposals are built from, in one visit: `accounts`, (code, class) of the
    accounts in the dossier's currency that take bookings (no placeholders), by class
    and code, VAT accounts from the most credited (VAT due) to the most debited (VAT
    recoverable) in the mirrored ledger; `journals` (code, kind); `relations` (id, kind,
    name)."""
    with connect(path, read_only=True) as con:
        accounts = con.execute("""
            WITH net AS (SELECT account, sum(credit - debit) AS owed FROM lines
                         WHERE dossier = $code AND commodity IS NULL GROUP BY account),
            ac AS (SELECT code, any_value(class) AS class FROM accounts
                   WHERE dossier = $code AND commodity IS NULL AND NOT coalesce(placeholder, false)
                   GROUP BY code)
            SELECT a.code, a.class FROM ac a LEFT JOIN net n ON n.account = a.code
            ORDER BY a.class, CASE WHEN a.class = 'vat' THEN -coalesce(n.owed, 0) END, a.code""",
            {"code": code}).fetchall()
        return {
            "accounts": [tuple(r) for r in accounts],
            "journals": con.execute("SELECT code, kind FROM journals WHERE dossier = ? ORDER BY code",
                                    [code]).fetchall(),
            "relations": con.execute("SELECT id, kind, name FROM relations WHERE dossier = ? "
                                     "ORDER BY id", [code]).fetchall(),
        }


_OUTBOX_COLS = ("id, dossier, run_id, recipient, subject, status, attempts, last_error, "
                "strftime(created_at, '%Y-%m-%dT%H:%M:%S'), strftime(sent_at, '%Y-%m-%dT%H:%M:%S')")


def outbox(path: Path, statuses: tuple[str, ...] = ("queued", "failed", "sent")) -> list[dict]:
    keys = ["id", "dossier", "run_id", "recipient", "subject", "status", "attempts", "last_error",
            "created_at", "sent_at"]
    with connect(path, read_only=True) as con:
        rows = con.execute(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE list_contains(?, status) "
                           f"ORDER BY created_at, id", [list(statuses)]).fetchall()
    return [dict(zip(keys, r)) for r in rows]


def outbox_message(path: Path, email_id: str) -> bytes:
    with connect(path, read_only=True) as con:
        return bytes(con.execute("SELECT message FROM outbox WHERE id = ?", [email_id]).fetchall()[0][0])


def claim_email(path: Path, email_id: str, claimer: str, stale_after: float) -> bytes | None:
    """Claim a queued or failed email for one sender: its message if `claimer` holds it now.

    One UPDATE decides (one writer at a time, a row lock on a server
    database): only an email nobody holds, or whose claim is older than
    `stale_after` seconds (its sender was killed), changes hands; reading
    the claim back in the same visit tells who won. A sent email is never
    claimed again.
    """
    now = datetime.now()
    with connect(path) as con:
        con.execute("UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id = ? "
                    "AND status IN ('queued', 'failed') "
                    "AND (claimed_by IS NULL OR claimed_at IS NULL OR claimed_at < ?)",
                    [claimer, now, email_id, now - timedelta(seconds=stale_after)])
        row = _one(con.execute("SELECT claimed_by, message FROM outbox WHERE id = ? "
                               "AND status IN ('queued', 'failed')", [email_id]).fetchall())
    return bytes(row[1]) if row and row[0] == claimer else None


def mark_email(path: Path, email_id: str, status: str, error: str | None = None,
               claim: str | None = None) -> None:
    """Record a delivery attempt and let go of the claim.

    A sent email is recorded sent whatever happened meanwhile. Any other
    outcome is recorded only while `claim` still holds the email (or nobody
    does): a sender whose stale claim was taken over never overwrites the
    newer attempt, nor a sent email.
    """
    with connect(path) as con:
        con.execute("UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, "
                    "sent_at = CASE WHEN ? = 'sent' THEN now() ELSE sent_at END, "
                    "claimed_by = NULL, claimed_at = NULL WHERE id = ? AND (? = 'sent' OR "
                    "(status <> 'sent' AND (claimed_by IS NULL OR claimed_by = ?)))",
                    [status, error, status, email_id, status, claim])


# --- reconciliation figures ---
# The portal side of `core.reconcile`: the mirrored ledger's figures per
# segment (fiscal year x period x journal x account), computed exactly as the
# connectors compute them on the package side (same grouping, same checksum:
# the sum over lines of ((booking id % P) * 1000003 + (booking rv % P) * 7919
# + line_no) % P with P = 2147483647), so the two frames compare value for value.
_FIGURES_CHECKSUM = "((b.id % 2147483647) * 1000003 + (b.rv % 2147483647) * 7919 + l.line_no) % 2147483647"


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
            GROUP BY ALL),
        fy AS (SELECT id, min(code) AS code FROM fiscal_years WHERE dossier = $code GROUP BY id),
        pe AS (SELECT id, min(code) AS code FROM periods WHERE dossier = $code GROUP BY id)
        SELECT {out}coalesce(fy.code, '') AS fiscal_year, coalesce(pe.code, '') AS period,
               agg.journal, agg.account, agg.line_count, agg.debit, agg.credit, agg.checksum
        FROM agg LEFT JOIN fy ON fy.id = agg.fy LEFT JOIN pe ON pe.id = agg.pid"""


def _has_provisional_tables(con) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name IN "
                        "('provisional_bookings', 'provisional_lines')").fetchall()
    return found[0][0] == 2


def quarantined_bookings(path: Path, code: str) -> list[int]:
    """Ids of the dossier's ledger bookings kept out of the portal (quarantine)."""
    with connect(path, read_only=True) as con:
        return _quarantined_bookings(con, code)


def _quarantined_bookings(con, code: str) -> list[int]:
    rows = con.execute("SELECT DISTINCT TRY_CAST(key AS BIGINT) FROM quarantine "
                       "WHERE dossier = ? AND stream = 'bookings'", [code]).fetchall()
    return sorted(r[0] for r in rows if r[0] is not None)


@dataclass(frozen=True)
class ReconcileView:
    """What reconcile needs from the portal before it looks at the ledger (one visit).

    state: the dossier's sync state (as for an incremental sync). quarantined:
    ledger booking ids kept out. journals, accounts: the codes the portal
    knows. periods, fiscal_years: id -> code of the mirrored tables.
    provisional: the provisional proposals' figures (_provisional_figures).
    fingerprint: the whole fingerprint of the mirror, when asked for.
    """

    state: SyncState
    quarantined: list[int]
    journals: frozenset[str]
    accounts: frozenset[str]
    periods: dict[int, str]
    fiscal_years: dict[int, str]
    provisional: pa.Table
    fingerprint: dict[str, int] | None = None


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
    lines = con.execute(f"SELECT {fp.line_sums('duckdb')} FROM lines WHERE dossier = ?",
                        [code]).fetchall()[0]
    bookings = con.execute(f"SELECT {fp.booking_sums('duckdb', '?')} FROM bookings "
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
        f"SELECT {fp.booking_print('duckdb')} FROM bookings b LEFT JOIN lines l "
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
                       max(b.fiscal_year_id) AS fy_max, {fp.booking_sums('duckdb', '$1', 'b')}
                FROM bookings b WHERE b.dossier = $2 GROUP BY b.period_id),
            ln AS (
                SELECT b.period_id, {fp.line_sums('duckdb', 'l')}
                FROM lines l JOIN bookings b ON b.dossier = l.dossier AND b.id = l.booking_id
                WHERE l.dossier = $2 AND b.dossier = $2 GROUP BY b.period_id)
            SELECT bk.period_id, bk.fy_min, bk.fy_max,
                   {", ".join(f"coalesce(ln.{n}, 0) AS {n}" for n in fp.LINE_FIELDS)},
                   {", ".join(f"bk.{n}" for n in fp.BOOKING_FIELDS)}
            FROM bk LEFT JOIN ln ON ln.period_id IS NOT DISTINCT FROM bk.period_id""",
            params=[journals, code]).to_arrow_table()


_PROVISIONAL_SCHEMA = pa.schema([
    ("ref", pa.string()), ("fiscal_year", pa.string()), ("period", pa.string()),
    ("journal", pa.string()), ("account", pa.string()), ("line_count", pa.int64()),
    ("debit", money.ARROW), ("credit", money.ARROW)])


def _provisional_figures(con, code: str) -> pa.Table:
    """Per provisional booking and segment: ref, fiscal_year, period, journal,
    account, line_count, debit, credit (empty before the tables exist)."""
    if not _has_provisional_tables(con):
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
        GROUP BY ALL""", params={"code": code}).to_arrow_table().cast(_PROVISIONAL_SCHEMA)


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
