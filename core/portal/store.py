"""The store seam: everything that knows the portal is a DuckDB file.

The job modules beside this one (schema, dossiers, state, apply, runlog,
reports, proposals, emails, figures) hold the portal's queries; this
module holds what is DuckDB's and not a query of a job: opening the file,
waiting while another process holds it, what DuckDB's errors about the file
mean for the user, transactions, catalog look-ups, SQL literals, and rows
read by column name.

DuckDB lets one process at a time hold the file, read-only connections
included. So every visit opens a connection, does one short piece of work
and closes it again; a caller that finds the file locked waits with backoff.

What a backend provides (a second one, PostgreSQL, goes in a module beside
this one and provides the same names):

- `_connect(path, *, read_only, wait)`: a context manager that opens the
  store (a `Connection`) and closes it afterwards; waits while another
  holder conflicts (PortalBusy after `wait` seconds); turns errors about the
  store itself (damaged, full, unwritable) into a TerminalError.
- `_turn(path)`: what a thread holds around a visit (`_THREADS`, on DuckDB only).
- `_transaction(con)`: BEGIN ... COMMIT, and ROLLBACK on any error without
  hiding it: every sync is all or nothing per dossier.
- `_tune_for_bulk_write(con, ...)`: the settings of a sync's commit.
- `_has_table`, `_has_tables`, `_columns`, `CatalogError` (the error of a
  query naming a table that is not there): the catalog, for migrations.
- `_sql_str`, `_sql_path`: literals where a parameter cannot go (DDL, views).
- `_one`, `_dicts`, `_records`: results, rows read by column name.
- `DIALECT`: the SQL flavour `core.figures` writes its fingerprints in.

The connection a backend yields answers `execute(sql, params)` (then
`fetchall()` and `description`), `executemany`, `sql(sql, params=...)
.to_arrow_table()`, and `register(name, arrow_table)` / `unregister(name)`
for Arrow tables the queries join. The job modules' queries are written in
DuckDB's SQL, kept to what PostgreSQL also reads but for a few words
(`list_contains`, `strftime`, `arg_max`, `TRY_CAST`, `instr`, CREATE OR
REPLACE TEMP TABLE): a backend with another dialect brings its spelling of
those. Anti and semi joins are NOT EXISTS / EXISTS, upserts ON CONFLICT.

The second backend is PostgreSQL (`pgstore.py`): an address beginning
`postgresql://` where a portal file's path would be opens the portal there.
The functions below look at the connection they are given and speak to
either; `stage_parquet` and `register` put Arrow data where the queries
find it (a view over the file in DuckDB, a table filled by COPY in
PostgreSQL).
"""
from __future__ import annotations

import random
import contextlib
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TypeVar

import duckdb

from dossync.core.addresses import is_portal_url
from dossync.core.model import PortalBusy, TerminalError

PortalAddress = Path | str  # a portal file, or a postgresql:// address (pgstore.PortalUrl)

LOCK_WAIT_SECONDS = 120.0
WRITE_MEMORY_LIMIT = "160MB"  # for a sync's commit (DuckDB spills to disk beyond it)
DIALECT = "duckdb"  # as core.figures names it; a PostgreSQL connection says "postgres"
Connection = duckdb.DuckDBPyConnection
CatalogError = duckdb.CatalogException  # (on PostgreSQL the schema asks the catalog first)

R = TypeVar("R")


# --- connections ----------------------------------------------------------------------
def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _is_other_configuration(exc: Exception) -> bool:
    return "different configuration" in str(exc)


# Threads of one process (the nightly's workers) take turns on a visit: their
# portal work is short, and DuckDB's Arrow registration is not safe to run
# from several threads on one database at once.
_THREADS = threading.RLock()


def _turn(path: "PortalAddress"):
    """What a thread holds around a visit: `_THREADS` on a DuckDB portal; nothing on a
    PostgreSQL one, where each thread has a connection of its own and a visit's network
    round trips must not keep the process's other threads (the UI's monitor) waiting."""
    return contextlib.nullcontext() if is_postgres(path) else _THREADS


def is_postgres(address: PortalAddress) -> bool:
    """Is this portal on a PostgreSQL server (a postgresql:// address)?"""
    return is_portal_url(address)


def _pg():
    """The PostgreSQL backend, imported when a portal there is first opened."""
    import dossync.core.portal.pgstore as pgstore
    return pgstore


def dialect_of(con) -> str:
    """The SQL flavour of this connection, as core.figures names it."""
    return getattr(con, "dialect", DIALECT)


@contextmanager
def _connect(path: PortalAddress, *, read_only: bool, wait: float) -> Iterator[Connection]:
    """The portal, open until the block ends; waits while another process holds its file.

    Within one process DuckDB shares one open database between threads, in
    one mode: a reader that finds it open for writing simply joins it.
    """
    if is_postgres(path):
        pg = _pg()
        with pg.connect(path, read_only=read_only, wait=wait) as con:
            yield con
        return
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


# --- transactions and settings ----------------------------------------------------------
def _rollback(con) -> None:
    """Undo the open transaction before the error that ended it is raised on.

    A COMMIT that failed (a full disk) has already ended the transaction:
    DuckDB then refuses the ROLLBACK, and that refusal must not hide the
    error that matters, which the caller raises next."""
    if dialect_of(con) != DIALECT:
        _pg().rollback(con)
        return
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass  # no transaction left to undo: the caller's own error follows


@contextmanager
def _transaction(con) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back when anything
    ends it early (a kill included), the error then raised on."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise


def _tune_for_bulk_write(con, *, single_thread: bool) -> None:
    """The settings of a sync's commit, on its own connection (DuckDB's: a server has its own)."""
    if dialect_of(con) != DIALECT:
        return
    # the portal never relies on row order: let DuckDB insert in parallel
    con.execute("SET preserve_insertion_order = false")
    if single_thread:  # many small statements: one thread plans and runs them faster
        con.execute("SET threads = 1")
    # DuckDB spills past this; a full sync's peak stays that of its other phases
    con.execute(f"SET memory_limit = '{WRITE_MEMORY_LIMIT}'")


# --- the catalog, literals, results -----------------------------------------------------
def _has_table(con, name: str) -> bool:
    return _has_tables(con, name)


def _has_tables(con, *names: str) -> bool:
    """Are all these tables there?"""
    if dialect_of(con) != DIALECT:
        return _pg().has_tables(con, *names)
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE list_contains(?, table_name)",
                        [list(names)]).fetchall()
    return found[0][0] == len(names)


def _columns(con, table: str) -> dict[str, str]:
    if dialect_of(con) != DIALECT:
        return _pg().columns(con, table)
    return dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                            "WHERE table_name = ?", [table]).fetchall())


def after_bulk_write(con, tables: list[str]) -> None:
    """After a commit that rewrote many rows of these tables: PostgreSQL's planner gets
    their statistics now rather than at autovacuum's next round (a fresh dossier's
    reports would otherwise be planned blind). DuckDB keeps its own as it writes."""
    if dialect_of(con) != DIALECT:
        con.execute(f"ANALYZE {', '.join(tables)}")


def stage_parquet(con, name: str, file: Path) -> None:
    """A staged Parquet file under this name for the queries that follow: a view over the
    file in DuckDB, a temporary table filled by COPY in PostgreSQL."""
    if dialect_of(con) != DIALECT:
        _pg().stage_parquet(con, name, file)
        return
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS "
                f"SELECT * FROM read_parquet('{_sql_path(file)}')")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _one(rows: list[tuple]) -> tuple | None:
    """The first row or None (a result is always read whole: DuckDB wants it finished)."""
    return rows[0] if rows else None


def _dicts(cursor) -> list[dict]:
    """The rows of an executed query as {column name: value}, read whole."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _records(cursor, record: type[R]) -> list[R]:
    """The rows of an executed query as `record`s, each field given by the column of its
    name (a column the record lacks, or a field no column gives, is an error)."""
    return [record(**row) for row in _dicts(cursor)]
