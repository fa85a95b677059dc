"""Connector for the demo accounting package (one SQLite ledger per dossier).

Bulk reads go through the ADBC SQLite driver, which hands out Arrow record
batches straight from SQLite without building Python rows. All reads of one
sync happen inside one read transaction, so the streams form one consistent
snapshot of the ledger even while the accountant keeps working.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc

from core.connectors.base import Capabilities, LedgerPosition
from core.model import LedgerUnavailable
from core.streams import BY_NAME, Stream

BATCH_ROWS = 65_536

# Canonical stream -> (SELECT list, FROM, the rows changed since a cursor).
# Nullable text comes through COALESCE(.., ''): the driver infers a column's
# type from its first batch, and an all-NULL first batch would be taken for
# integers. `_conform` turns the empty strings back into nulls.
_SELECT = {
    "accounts": ("code, name, rv", "accounts", "rv > ?"),
    "journals": ("code, name, kind, rv", "journals", "rv > ?"),
    "fiscal_years": ("id, code, start_date, end_date, closed, rv", "fiscal_years", "rv > ?"),
    "periods": ("id, fiscal_year_id, code, start_date, end_date, closed, rv", "periods", "rv > ?"),
    "relations": (
        "id, kind, name, COALESCE(vat_number, ''), COALESCE(email, ''), COALESCE(language, ''), rv",
        "relations", "rv > ?"),
    # Every row sharing an id with a changed booking comes along, so a
    # duplicate id is seen (and quarantined) even when only one copy changed.
    "bookings": (
        "id, journal, doc_no, doc_type, fiscal_year_id, period_id, date, COALESCE(due_date, ''), "
        "relation_id, COALESCE(description, ''), COALESCE(reference, ''), rv",
        "bookings", "id IN (SELECT id FROM bookings WHERE rv > ?)"),
    "lines": (
        "booking_id, line_no, account, relation_id, COALESCE(description, ''), debit, credit, "
        "COALESCE(vat_code, '')",
        "booking_lines", "booking_id IN (SELECT id FROM bookings WHERE rv > ?)"),
    "matchings": ("id, invoice_id, payment_id, amount, rv", "matchings", "rv > ?"),
}
_KEY_SQL = {"accounts": "code", "relations": "id", "bookings": "id", "matchings": "id",
            "journals": "code", "fiscal_years": "id", "periods": "id"}


def _conform(batch: pa.RecordBatch, stream: Stream) -> pa.RecordBatch:
    """Rename and cast a driver batch to the stream's canonical schema."""
    arrays = []
    for column, array in zip(stream.columns, batch.columns):
        if pa.types.is_null(array.type):
            array = pa.nulls(len(array), column.arrow)
        elif array.type != column.arrow:
            array = array.cast(column.arrow)
        if column.arrow == pa.string() and column.nullable:
            array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=stream.schema)


class DemoConnector:
    """Reads one demo ledger; never writes to it."""

    package = "demo"
    capabilities = Capabilities(change_cursor=True, deletion_log=True, figures=True)

    def __init__(self, path: Path) -> None:
        self.source = str(path)
        self.path = path
        if not path.is_file():
            raise LedgerUnavailable(
                f"ledger file {path} does not exist: check the dossier's --source "
                f"(dossync dossier set CODE --source PATH) or restore the file")
        try:
            with path.open("rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise LedgerUnavailable(f"ledger file {path} cannot be read: {exc}") from exc
        if header != b"SQLite format 3\x00":
            raise LedgerUnavailable(
                f"ledger file {path} is not a demo package ledger (not an SQLite database): "
                f"is the file corrupt or the wrong one?")
        try:
            self._conn = adbc.connect(f"file:{path}?mode=ro")
            self._cur = self._conn.cursor()
            self._cur.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
            # One read transaction for the whole sync: a consistent snapshot.
            self._meta = dict(self._fetch("SELECT key, value FROM meta"))
        except Exception as exc:  # the driver raises OSError/ProgrammingError/...
            self.close()
            raise LedgerUnavailable(
                f"ledger file {path} cannot be opened as a demo package ledger: {exc}") from exc

    # -- helpers ----------------------------------------------------------
    def _fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            self._cur.execute(sql, params if params else None)
            table = self._cur.fetch_arrow_table()
        except Exception as exc:
            raise LedgerUnavailable(f"reading ledger {self.path} failed: {exc}") from exc
        return list(zip(*(c.to_pylist() for c in table.columns))) if table.num_columns else []

    # -- the Connector protocol ---------------------------------------------
    def position(self) -> LedgerPosition:
        return LedgerPosition(
            high_water=int(self._meta.get("change_counter", 0)),
            deletion_log_from=int(self._meta.get("deletion_log_from", 1)),
            active_period=self._meta.get("active_period"),
        )

    def _sql(self, stream: str, since: int | None, select: str | None = None) -> tuple[str, tuple]:
        columns, table, where = _SELECT[stream]
        sql = f"SELECT {select or columns} FROM {table}"
        if since is None:
            return sql, ()
        return f"{sql} WHERE {where}", (since,)

    def count(self, stream: str, since: int | None) -> int:
        sql, params = self._sql(stream, since, "count(*)")
        return int(self._fetch(sql, params)[0][0])

    def read(self, stream: str, since: int | None) -> Iterator[pa.RecordBatch]:
        definition = BY_NAME[stream]
        sql, params = self._sql(stream, since)
        try:
            self._cur.execute(sql, params if params else None)
            reader = self._cur.fetch_record_batch()
            for batch in reader:
                yield _conform(batch, definition)
        except LedgerUnavailable:
            raise
        except Exception as exc:
            raise LedgerUnavailable(f"reading {stream} from ledger {self.path} failed: {exc}") from exc

    def deletions(self, since: int) -> pa.Table:
        rows = self._fetch("SELECT stream, key FROM deletion_log WHERE seq > ? ORDER BY seq", (since,))
        return pa.table({"stream": [r[0] for r in rows], "key": [str(r[1]) for r in rows]},
                        schema=pa.schema([("stream", pa.string()), ("key", pa.string())]))

    def read_keys(self, stream: str, keys: list[str]) -> pa.Table:
        """The stream's rows with these keys (for lines: of these bookings)."""
        definition = BY_NAME[stream]
        columns, table, _ = _SELECT[stream]
        key_sql = "booking_id" if stream == "lines" else _KEY_SQL[stream]
        typed = [int(k) for k in keys] if key_sql.endswith("id") else list(keys)
        if not typed:
            return definition.schema.empty_table()
        marks = ",".join("?" for _ in typed)
        try:
            self._cur.execute(f"SELECT {columns} FROM {table} WHERE {key_sql} IN ({marks})",
                              tuple(typed))
            batches = [_conform(b, definition) for b in self._cur.fetch_record_batch()]
        except Exception as exc:
            raise LedgerUnavailable(f"reading {stream} from ledger {self.path} failed: {exc}") from exc
        return pa.Table.from_batches(batches, schema=definition.schema)

    def versions(self, stream: str, keys: list[str]) -> dict[str, int]:
        if not keys:
            return {}
        key_sql = _KEY_SQL[stream]
        marks = ",".join("?" for _ in keys)
        table = _SELECT[stream][1]
        typed = [int(k) for k in keys] if key_sql == "id" else list(keys)
        rows = self._fetch(
            f"SELECT CAST({key_sql} AS TEXT), max(rv) FROM {table} WHERE {key_sql} IN ({marks}) "
            f"GROUP BY {key_sql}", tuple(typed))
        return {str(k): int(v) for k, v in rows}

    def close(self) -> None:
        for thing in (getattr(self, "_cur", None), getattr(self, "_conn", None)):
            if thing is not None:
                try:
                    thing.close()
                except Exception as exc:  # closing a broken handle: report, don't mask
                    import logging

                    logging.getLogger(__name__).debug("closing ledger handle: %s", exc)
        self._cur = self._conn = None

    def __enter__(self) -> "DemoConnector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ledger_is_sqlite(path: Path) -> bool:
    """Cheap check used by `dossier add`: does the file look like a demo ledger?"""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.execute("SELECT value FROM meta WHERE key = 'change_counter'").fetchone()
        return True
    except sqlite3.Error:
        return False
