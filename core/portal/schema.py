"""The portal's tables: their definitions, creating them, and migrations.

`connect` opens the portal at this release's schema: a portal written by an
older release (tests/fixtures/portal-0.3.0) is brought up to date the first
time this process opens it, in one transaction, losing nothing. Every job
module opens the portal through it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dossync.core import money
from dossync.core.classes import mar_sql
from dossync.core.portal.store import (LOCK_WAIT_SECONDS, DIALECT, CatalogError,
                                       Connection, PortalAddress, _columns, _connect, _has_table,
                                       _one, _transaction, _turn, dialect_of,
                                       is_postgres)
from dossync.core.streams import STREAMS, Stream

# 4: exact money (DECIMAL(18,6) instead of cents), account classes, lines in
#    other commodities, draft bookings, dossier currency/time zone/proposals
#    file, per-stream counts of every run, the package's proposal queue.
# 6: the job queue (`jobs`).
# 7: a running job can be asked to stop (`jobs.cancel_requested`).
# 8: the connector version of each dossier's last full load (`dossiers.connector_version`).
SCHEMA_VERSION = 8
MONEY = money.SQL


JOBS_DDL = """CREATE TABLE IF NOT EXISTS jobs (
        job VARCHAR PRIMARY KEY, dossier VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        options VARCHAR NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        worker VARCHAR, lease_until TIMESTAMP, not_before TIMESTAMP, run_id VARCHAR,
        queued_at TIMESTAMP NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP,
        error VARCHAR, cancel_requested BOOLEAN DEFAULT false)"""

_DDL = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS dossiers (
        code VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, package VARCHAR NOT NULL,
        source VARCHAR NOT NULL, email VARCHAR, language VARCHAR NOT NULL DEFAULT 'nl',
        nightly BOOLEAN NOT NULL DEFAULT false, updated_until DATE, active_period VARCHAR,
        pending_proposals INTEGER NOT NULL DEFAULT 0, created_at TIMESTAMP NOT NULL,
        currency VARCHAR, timezone VARCHAR, proposals_file VARCHAR, book_currency VARCHAR,
        connector_version INTEGER)""",
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
    # The job queue: syncs waiting for a worker (`dossync worker`), oldest first.
    # A running job belongs to its worker until lease_until; a worker that
    # died lets its lease run out and the job is claimable again. not_before:
    # a job whose dossier was busy waits until then. options: the sync's
    # options (ManualOptions) as JSON.
    JOBS_DDL,
]
_DDL = [ddl.replace("{MONEY}", MONEY) for ddl in _DDL]


# PostgreSQL only: who holds each dossier's sync (the advisory lock's holder, with
# the server's process id of its session, so a holder whose session ended is
# seen as gone), and how far that sync is: other machines' syncs in the monitor.
SYNC_HOLDERS_DDL = """CREATE TABLE IF NOT EXISTS sync_holders (
        dossier VARCHAR PRIMARY KEY, backend_pid INTEGER NOT NULL, holder VARCHAR NOT NULL,
        since TIMESTAMP NOT NULL, progress VARCHAR, cancel BOOLEAN NOT NULL DEFAULT false)"""


# PostgreSQL only (DuckDB scans by zone maps): the portal's own tables that every
# visit reads by dossier (the mirrored streams get theirs by dossier and key).
_PG_INDEXES = {"sync_runs": "dossier, finished_at", "quarantine": "dossier, stream, key",
               "provisional_bookings": "dossier, id", "provisional_lines": "dossier, booking_id",
               "reconcile_runs": "dossier, checked_at", "outbox": "status, created_at",
               "jobs": "status, queued_at"}


def _mirror_ddl(stream: Stream) -> str:
    cols = ", ".join(f"{c.name} {c.sql}" for c in stream.columns)
    return f"CREATE TABLE IF NOT EXISTS {stream.name} (dossier VARCHAR NOT NULL, {cols})"


@contextmanager
def connect(path: PortalAddress, *, read_only: bool = False,
            wait: float = LOCK_WAIT_SECONDS) -> Iterator[Connection]:
    """Open the portal briefly; wait with backoff while another process holds it.

    Threads of one process take turns here on a DuckDB portal (store._turn). A portal at an
    older schema is brought up to this one first: asked on every visit (one
    small query), so a long-lived process (the UI, the scheduler) also sees a
    portal file that was put back from an older backup or built anew meanwhile.
    """
    with _turn(path):
        with _connect(path, read_only=read_only, wait=wait) as con:
            if _schema_version(con) >= SCHEMA_VERSION:
                yield con
                return
        # written by an older version: bring it up to this schema, then go on
        initialise(path)
        with _connect(path, read_only=read_only, wait=wait) as con:
            yield con


def _schema_version(con) -> int:
    if dialect_of(con) != DIALECT and not _has_table(con, "meta"):
        return 0  # asked, not tried: a failed query would end PostgreSQL's transaction
    try:
        row = _one(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall())
    except CatalogError:  # no meta table: not initialised yet
        return 0
    return int(row[0]) if row else 0


def portal_exists(path: PortalAddress) -> bool:
    """Does this database hold a dossync portal (its meta table)?"""
    with _turn(path), _connect(path, read_only=True, wait=LOCK_WAIT_SECONDS) as con:
        return _has_table(con, "meta")


def erase_portal(path: PortalAddress) -> None:
    """Remove the whole portal (`demo --force`): the file, or the tables in the database."""
    if not is_postgres(path):
        for leftover in (path, path.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
        return
    tables = [ddl.split("EXISTS ", 1)[1].split(" ", 1)[0] for ddl in _DDL]
    tables += ["sync_holders", *(stream.name for stream in STREAMS)]
    with _turn(path), _connect(path, read_only=False, wait=LOCK_WAIT_SECONDS) as con, \
            _transaction(con):
        con.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")


def initialise(path: PortalAddress) -> None:
    """Create the portal's tables, or add what a newer version needs (idempotent)."""
    if not is_postgres(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with _turn(path), _connect(path, read_only=False, wait=LOCK_WAIT_SECONDS) as con:
        _create_schema(con)


@contextmanager
def _connect_creating(path: PortalAddress) -> Iterator[Connection]:
    """Open the portal for writing, creating it first if there is none (one visit)."""
    if not is_postgres(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with _turn(path), _connect(path, read_only=False, wait=LOCK_WAIT_SECONDS) as con:
        if _schema_version(con) < SCHEMA_VERSION:
            _create_schema(con)
        yield con


def _create_schema(con) -> None:
    """Create what is missing; bring a portal written by an earlier release up to date."""
    version = _schema_version(con)
    if version >= SCHEMA_VERSION:
        return  # another process got here first
    postgres = dialect_of(con) != DIALECT
    with _transaction(con):
        if postgres:  # one process creates the schema; the others find it done
            con.execute("SELECT pg_advisory_xact_lock(7368716)")  # 'dossync' schema lock
            if _schema_version(con) >= SCHEMA_VERSION:
                return
            from dossync.core.portal.pgstore import TRY_BIGINT_DDL
            con.raw.execute(TRY_BIGINT_DDL)
        if 0 < version < 4:
            _migrate_to_4(con)
        if 0 < version < 5:
            _migrate_to_5(con)
        if 0 < version < 6:
            _migrate_to_6(con)
        if 0 < version < 7:
            _migrate_to_7(con)
        if 0 < version < 8:
            _migrate_to_8(con)
        for ddl in _DDL:
            con.execute(ddl.replace(" BLOB ", " BYTEA ") if postgres else ddl)
        if postgres:
            con.execute(SYNC_HOLDERS_DDL)
        for stream in STREAMS:
            con.execute(_mirror_ddl(stream))
            if postgres:  # a server's tables hold every dossier: each read takes one
                con.execute(f"CREATE INDEX IF NOT EXISTS {stream.name}_by_dossier ON "
                            f"{stream.name} (dossier, {', '.join(stream.key)})")
        if postgres:
            for table, columns in _PG_INDEXES.items():
                con.execute(f"CREATE INDEX IF NOT EXISTS {table}_by_dossier ON {table} "
                            f"({columns})")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) "
                    "DO UPDATE SET value = excluded.value", [str(SCHEMA_VERSION)])


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


def _migrate_to_7(con) -> None:
    """Schema 6 to 7, in the caller's transaction: a running job's stop request."""
    if "cancel_requested" not in _columns(con, "jobs"):
        con.execute("ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN DEFAULT false")


def _migrate_to_8(con) -> None:
    """Schema 7 to 8, in the caller's transaction: the connector version of each dossier's
    last full load. A dossier whose last successful full load was made by 0.4.0 or later
    (its run has per-stream counts, which 0.4.0 began to keep) has what version 2 of every
    connector brought, the account classes and exact amounts: it is recorded at 2. The
    others keep NULL, "loaded before versions were recorded": what that means is each
    connector's decision (`VersionHistory.unrecorded`). No figure is rewritten."""
    if "connector_version" in _columns(con, "dossiers"):
        return
    con.execute("ALTER TABLE dossiers ADD COLUMN connector_version INTEGER")
    con.execute("""
        UPDATE dossiers SET connector_version = 2 WHERE code IN (
            SELECT r.dossier FROM sync_runs r
            WHERE r.kind = 'full' AND r.status = 'succeeded' AND r.stream_counts IS NOT NULL
              AND r.finished_at = (SELECT max(l.finished_at) FROM sync_runs l
                                   WHERE l.dossier = r.dossier AND l.kind = 'full'
                                     AND l.status = 'succeeded'))""")


def _migrate_to_6(con) -> None:
    """Schema 5 to 6, in the caller's transaction: the job queue's table, empty."""
    con.execute(JOBS_DDL)


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
