"""The portal on a PostgreSQL server: the second backend behind `store.py`.

Chosen by a `postgresql://` address (`--portal`, `DOSSYNC_PORTAL`, or
`[portal] url` in dossync.toml; see core/home.py). The job modules keep
their queries; this module gives them a connection that answers like
DuckDB's (`execute`, `fetchall`, `description`, `executemany`, `sql(...)
.to_arrow_table()`, `register`) over psycopg 3, and speaks PostgreSQL's
spelling of the few DuckDB words the queries use:

- parameters `?` and `$name` (psycopg's `%s`, `%(name)s`);
- `list_contains(list, x)` is `x = ANY(list)`; `strftime` is `to_char`;
  `arg_max(a, b)` the first of `a` ordered by `b`; `TRY_CAST(x AS BIGINT)`
  a small function the schema creates; `instr` is `strpos`;
- `CREATE OR REPLACE TEMP TABLE` drops the old one first;
- a row count where DuckDB answers an INSERT or CREATE TABLE AS with one.

Arrow tables (`register`) and a sync's staged Parquet files
(`stage_parquet`) reach the server through `COPY ... FROM STDIN` in CSV
written by Arrow's own writer: one round trip per batch, no Python loop
per row. Sums of whole numbers come back as `int` (PostgreSQL's `numeric`
without a fraction), as DuckDB gives them.

The address's password (in the URL, or from `PGPASSWORD` / `.pgpass` as
libpq finds them) is never written anywhere: messages name the address
with the password replaced (`redacted`).
"""
from __future__ import annotations

import io
import logging
import re
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from psycopg.adapt import Loader

from dossync.core.addresses import redact_url as redact
from dossync.core.model import DossyncError, PortalUnreachable, TerminalError

log = logging.getLogger(__name__)

DIALECT = "postgres"
CONNECT_TIMEOUT = 10  # seconds to reach the server before the command says it cannot


# --- results ---------------------------------------------------------------------------
class _Numeric(Loader):
    """`numeric` as DuckDB answers: a whole number (a sum of integers) as int, else Decimal."""

    def load(self, data) -> int | Decimal:
        text = bytes(data).decode()
        if "." in text or "e" in text.lower() or text in ("NaN", "Infinity", "-Infinity"):
            return Decimal(text)
        return int(text)


_ARROW_TYPES = {20: pa.int64(), 23: pa.int32(), 21: pa.int16(), 25: pa.string(),
                1043: pa.string(), 1042: pa.string(), 1082: pa.date32(),
                1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 16: pa.bool_(),
                701: pa.float64(), 700: pa.float32(), 17: pa.binary()}


def _arrow_type(column, values: list):
    known = _ARROW_TYPES.get(column.type_code)
    if known is not None:
        return known
    if column.type_code == 1700:  # numeric: the column's scale, else the values' own
        if column.scale is not None:
            return pa.decimal128(38, column.scale)
        if all(v is None or isinstance(v, int) for v in values):
            return pa.int64() if all(v is None or abs(v) < 2**63 for v in values) \
                else pa.decimal128(38, 0)
        scale = max((-v.as_tuple().exponent for v in values if isinstance(v, Decimal)),
                    default=0)
        return pa.decimal128(38, max(scale, 0))
    return None  # let Arrow infer it


class _Result:
    """`con.sql(...)`'s answer: the rows, as an Arrow table on request."""

    def __init__(self, description, rows: list[tuple]) -> None:
        self.description = description
        self._rows = rows

    def fetchall(self) -> list[tuple]:
        return self._rows

    def to_arrow_table(self) -> pa.Table:
        columns = list(zip(*self._rows)) if self._rows else [[] for _ in self.description]
        arrays, names = [], []
        for column, values in zip(self.description, columns):
            values = list(values)
            kind = _arrow_type(column, values)
            if kind is not None and pa.types.is_decimal(kind):
                values = [None if v is None else Decimal(v) for v in values]
            arrays.append(pa.array(values, type=kind))
            names.append(column.name)
        return pa.Table.from_arrays(arrays, names=names)


# --- DuckDB's words in PostgreSQL -------------------------------------------------------
_STRFTIME = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH24", "%M": "MI", "%S": "SS",
             "T": '"T"'}
_TOKENS = re.compile(r"--[^\n]*|'(?:[^']|'')*'|\?|\$[A-Za-z_]\w*|%|\b(list_contains|strftime|arg_max|"
                     r"TRY_CAST|instr)\s*\(", re.IGNORECASE)


def _args(sql: str, start: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose '(' is just before `start`, and the
    index after its ')'."""
    depth, args, begin, i, quoted = 0, [], start, start, False
    while i < len(sql):
        ch = sql[i]
        if quoted:
            if ch == "'":
                quoted = False
        elif ch == "'":
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                args.append(sql[begin:i].strip())
                return args, i + 1
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(sql[begin:i].strip())
            begin = i + 1
        i += 1
    raise ValueError(f"unbalanced call in: {sql[:200]}")


def _pg_format(fmt: str) -> str:
    out, i = [], 0
    while i < len(fmt):
        two = fmt[i:i + 2]
        if two in _STRFTIME:
            out.append(_STRFTIME[two])
            i += 2
        else:
            out.append(_STRFTIME.get(fmt[i], fmt[i]))
            i += 1
    return "".join(out)


def translate(sql: str) -> str:
    """A query in DuckDB's words as PostgreSQL (and psycopg's parameters) spell it."""
    out, i = [], 0
    while True:
        match = _TOKENS.search(sql, i)
        if match is None:
            out.append(sql[i:])
            break
        out.append(sql[i:match.start()])
        token = match.group(0)
        i = match.end()
        if token.startswith("--"):  # a comment (its words may hold an apostrophe)
            continue
        if token.startswith("'"):
            out.append(token.replace("%", "%%"))
        elif token == "?":
            out.append("%s")
        elif token == "%":
            out.append("%%")
        elif token.startswith("$"):
            out.append(f"%({token[1:]})s")
        else:
            name = match.group(1).lower()
            raw, i = _args(sql, i)
            args = [translate(a) for a in raw]
            if name == "list_contains":
                out.append(f"({args[1]} = ANY({args[0]}))")
            elif name == "strftime":
                fmt = raw[1].strip("'")
                out.append(f"to_char({args[0]}, '{_pg_format(fmt)}')")
            elif name == "arg_max":
                out.append(f"(array_agg({args[0]} ORDER BY {args[1]} DESC NULLS LAST))[1]")
            elif name == "try_cast":
                expr, _, kind = args[0].rpartition(" AS ")
                if kind.strip().upper() != "BIGINT":
                    raise ValueError(f"TRY_CAST to {kind} has no PostgreSQL spelling here")
                out.append(f"dossync_try_bigint(CAST({expr} AS text))")
            elif name == "instr":
                out.append(f"strpos({args[0]}, {args[1]})")
    return "".join(out)


_CACHE: dict[str, str] = {}
_REPLACE_TABLE = re.compile(r"^\s*CREATE\s+OR\s+REPLACE\s+TEMP(?:ORARY)?\s+TABLE\s+(\w+)",
                            re.IGNORECASE)
_CREATED_TABLE = re.compile(r"^\s*CREATE\s+TEMP(?:ORARY)?\s+TABLE\s+(\w+)\s+AS\b", re.IGNORECASE)

# created with the schema: TRY_CAST(x AS BIGINT) as DuckDB has it
TRY_BIGINT_DDL = r"""CREATE OR REPLACE FUNCTION dossync_try_bigint(t text) RETURNS bigint
    LANGUAGE sql IMMUTABLE AS
    $f$ SELECT CASE WHEN t ~ '^\s*[-+]?[0-9]{1,18}\s*$' THEN t::bigint END $f$"""


def _pg_sql(sql: str) -> tuple[str | None, str]:
    """(the temporary table to drop first, or None; the query) in PostgreSQL's words."""
    found = _CACHE.get(sql)
    if found is None:
        query, drop = translate(sql), None
        replaced = _REPLACE_TABLE.match(query)
        if replaced:  # CREATE OR REPLACE TEMP TABLE x AS: drop x, then create it
            drop = replaced.group(1)
            query = "CREATE TEMP TABLE" + query[replaced.end() - len(drop) - 1:]
        found = (drop, query)
        if len(_CACHE) < 4096:
            _CACHE[sql] = found
    return found


# --- the connection ----------------------------------------------------------------------
class PgConnection:
    """A psycopg connection that answers as a DuckDB connection does (see the module)."""

    dialect = DIALECT

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        self._cursor = psycopg.ClientCursor(raw)
        self._rows: list[tuple] | None = None
        self.description = None

    def execute(self, sql: str, params=None) -> "PgConnection":
        drop, query = _pg_sql(sql)
        cursor = self._cursor
        if drop:
            cursor.execute(f"DROP TABLE IF EXISTS {drop}")
        cursor.execute(query, params or ())  # always formatted: '%%' is '%'
        self.description = cursor.description
        if cursor.description is not None:
            self._rows = cursor.fetchall()
        else:  # DuckDB answers an INSERT, UPDATE or CREATE TABLE AS with its row count
            self._rows = [(max(cursor.rowcount, 0),)]
        created = _CREATED_TABLE.search(query)
        if created:  # a temporary table has no statistics until it is analysed
            cursor.execute(f"ANALYZE {created.group(1)}")
        return self

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows or [], None
        return rows

    def executemany(self, sql: str, rows) -> None:
        self._cursor.executemany(_pg_sql(sql)[1], list(rows))

    def sql(self, sql: str, params=None) -> _Result:
        self.execute(sql, params)
        return _Result(self.description, self.fetchall())

    def register(self, name: str, table: pa.Table) -> None:
        """An Arrow table as a temporary table of this name (DuckDB registers it as a view)."""
        _create_temp(self, name, table.schema)
        copy_batches(self, name, table.to_batches())

    def unregister(self, name: str) -> None:
        self._cursor.execute(f"DROP TABLE IF EXISTS {name}")

    def close(self) -> None:
        self.raw.close()


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return _pg_type(kind.value_type)
    if pa.types.is_int64(kind) or pa.types.is_uint32(kind):
        return "BIGINT"
    if pa.types.is_integer(kind):
        return "INTEGER"
    if pa.types.is_decimal(kind):
        return f"NUMERIC({kind.precision}, {kind.scale})"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_floating(kind):
        return "DOUBLE PRECISION"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "BYTEA"
    return "TEXT"


def _create_temp(con: PgConnection, name: str, schema: pa.Schema) -> None:
    cols = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in schema)
    con.raw.execute(f"DROP TABLE IF EXISTS {name}")
    con.raw.execute(f"CREATE TEMP TABLE {name} ({cols})")


_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary columns decoded (the CSV writer wants plain ones)."""
    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    return pa.RecordBatch.from_arrays(
        [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns],
        names=batch.schema.names)


def copy_batches(con: PgConnection, table: str, batches) -> int:
    """COPY Arrow record batches into `table` (CSV written by Arrow: nulls unquoted and
    empty, every value quoted, so an empty text stays an empty text). The rows copied."""
    rows = 0
    with con.raw.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            buffer = io.BytesIO()
            pa_csv.write_csv(_plain(batch), buffer, _CSV)
            copy.write(buffer.getbuffer())
            rows += batch.num_rows
    if rows:
        con.raw.execute(f"ANALYZE {table}")
    return rows


def stage_parquet(con: PgConnection, name: str, file: Path) -> None:
    """A staged Parquet file as a temporary table of this name, copied in batches."""
    source = pq.ParquetFile(file)
    _create_temp(con, name, source.schema_arrow)
    copy_batches(con, name, source.iter_batches(batch_size=65536))


# --- connections -------------------------------------------------------------------------
def _session_zone() -> str:
    offset = datetime.now().astimezone().utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def open_raw(url: str, *, autocommit: bool = True, **options) -> psycopg.Connection:
    """A plain psycopg connection to the portal's server (errors say so in words)."""
    try:
        raw = psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT,
                              application_name="dossync", **options)
    except psycopg.Error as exc:
        raise _unreachable(url, exc) from None
    raw.adapters.register_loader("numeric", _Numeric)
    # the portal's timestamps are local, as DuckDB's now() and Python's datetime.now()
    raw.execute(f"SET TIME ZONE INTERVAL '{_session_zone()}' HOUR TO MINUTE")
    return raw


def _unreachable(url: str, exc: Exception) -> DossyncError:
    """The error a failed connection is: PortalUnreachable (worth another try: the server
    is down, restarting, or the link dropped) or, when the server answered no (a refused
    login, an unknown database), TerminalError."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = first.replace(url, redact(url))
    message = (f"the portal database {redact(url)} cannot be reached ({first}); dossync "
               f"changed nothing: check the address, that the server runs and accepts this "
               f"user (the password comes from the address, PGPASSWORD or ~/.pgpass), then run "
               f"the command again")
    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc)
    # the server said no at login (an unknown database, a refused user): psycopg gives no
    # SQLSTATE for a failed connection, the server's FATAL line says it; "the database
    # system is starting up / shutting down" is a server going or coming: try again
    answered = ((state[:2] not in ("", "08") and not state.startswith("57P"))
                or (not state and "FATAL:" in text and "the database system is" not in text))
    return TerminalError(message) if answered else PortalUnreachable(message)


def session_lost(raw: psycopg.Connection) -> bool:
    """Is this connection's session gone (closed, or broken by the server or the link)?
    Its advisory locks are then released by the server."""
    return raw.closed or raw.broken


@contextmanager
def connect(url: str, *, read_only: bool, wait: float) -> Iterator[PgConnection]:
    """A connection to the portal's database until the block ends (autocommit: a
    transaction is the caller's BEGIN ... COMMIT, as on DuckDB)."""
    del read_only, wait  # the server has no single-writer file to wait for
    con = PgConnection(open_raw(url))
    try:
        yield con
    except psycopg.OperationalError as exc:
        if session_lost(con.raw):
            raise _unreachable(url, exc) from exc
        raise
    finally:
        con.close()


def rollback(con: PgConnection) -> None:
    """ROLLBACK of the open transaction; nothing to undo is no error."""
    if con.raw.closed:
        return
    try:
        con.raw.execute("ROLLBACK")
    except psycopg.OperationalError as exc:  # the connection broke: the server rolled back
        log.debug("ROLLBACK on a broken connection: %s", exc)


# --- the catalog ---------------------------------------------------------------------------
def has_tables(con: PgConnection, *names: str) -> bool:
    found = con.raw.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = ANY(%s)", [list(names)]).fetchall()
    return found[0][0] == len(names)


def columns(con: PgConnection, table: str) -> dict[str, str]:
    return dict(con.raw.execute(
        "SELECT column_name, upper(data_type) FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        [table]).fetchall())

