"""Connector for the demo accounting package (one SQLite ledger per dossier).

It has every capability (core.connectors.base): a change cursor and deletion
log, named history, figures and fingerprints computed by SQLite, targeted
reloads, a second reader; booking proposals go to the package's inbox
through the demo package itself (`DemoConnector.receive_proposals`), and the
inbox's statuses tell which of them the accountant has dealt with
(`DemoConnector.settled_proposals`).

Bulk reads go through the ADBC SQLite driver, which hands out Arrow record
batches straight from SQLite without building Python rows. All reads of one
sync happen inside one read transaction, so the streams form one consistent
snapshot of the ledger even while the accountant keeps working.

That snapshot rests on the shared lock SQLite holds on the file, a POSIX
lock, and POSIX drops every lock a process holds on a file as soon as the
process closes any descriptor of it. SQLite shields its own connections from
that (they share their lock bookkeeping), but only within one copy of the
library: a Python `sqlite3` connection (another SQLite) or a plain open() of
the ledger, closed while our read transaction is open, would silently drop
its lock, let the package commit under our feet and hand us torn pages
("database disk image is malformed"). So every read of the ledger here, the
small ones and the side-by-side ones included, goes through ADBC's SQLite,
and the few header bytes read by hand come through one descriptor per file
that stays open while any reader of this process holds the file (`_held`).
"""
from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc

from dossync.core import figures as fp
from dossync.core import money
from dossync.core.classes import mar_sql
from dossync.core.connectors.base import (DELETIONS, Capabilities, ConnectorVersion, LedgerPosition,
                                          VersionHistory, sqlite_uri)
from dossync.core.model import ConnectorSettings, DossyncError, LedgerUnavailable, Proposal
from dossync.core.streams import BY_NAME, Stream

BATCH_ROWS = 65_536
LOCK_WAIT_MS = 30_000  # how long a read waits while the package holds the ledger locked

# Canonical stream -> (SELECT list, FROM, the rows changed since a cursor).
# Nullable text comes through COALESCE(.., ''): the driver infers a column's
# type from its first batch, and an all-NULL first batch would be taken for
# integers. `_conform` turns the empty strings back into nulls.
_SELECT = {
    # the demo package keeps the Belgian chart: an account's class follows from its code
    "accounts": (f"code, name, {mar_sql('code')}, NULL, NULL, rv", "accounts", "rv > ?"),
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
        "relation_id, COALESCE(description, ''), COALESCE(reference, ''), NULL, rv",
        "bookings", "id IN (SELECT id FROM bookings WHERE rv > ?)"),
    "lines": (
        "booking_id, line_no, account, relation_id, COALESCE(description, ''), debit, credit, "
        "COALESCE(vat_code, ''), NULL",
        "booking_lines", "booking_id IN (SELECT id FROM bookings WHERE rv > ?)"),
    "matchings": ("id, invoice_id, payment_id, amount, rv", "matchings", "rv > ?"),
}
_KEY_SQL = {"accounts": "code", "relations": "id", "bookings": "id", "matchings": "id",
            "journals": "code", "fiscal_years": "id", "periods": "id"}


# --- the ledger's own descriptor: never closed under a reader ------------------------
@dataclass
class _Held:
    fds: list[int] = field(default_factory=list)  # closed when the last reader lets go
    readers: int = 0


_held: dict[tuple[int, int], _Held] = {}  # (st_dev, st_ino) -> the file's descriptor, readers
_held_lock = threading.Lock()


def _descriptor(path: Path) -> tuple[tuple[int, int], int, bool]:
    """(the file's identity, a descriptor of it, whether the caller closes it).
    Call under _held_lock. A file a reader holds is read through its kept
    descriptor; any other is opened for the caller."""
    st = os.stat(path)
    held = _held.get((st.st_dev, st.st_ino))
    if held is not None:
        return (st.st_dev, st.st_ino), held.fds[0], False
    fd = os.open(path, os.O_RDONLY)
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    held = _held.get(key)
    if held is not None:  # the path now names a held file: closing fd would drop its locks
        held.fds.append(fd)
        return key, fd, False
    return key, fd, True


def _head(path: Path, size: int) -> tuple[os.stat_result, bytes]:
    """The file's status and its first `size` bytes, closing no descriptor of a held file."""
    with _held_lock:
        _, fd, ours = _descriptor(path)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            return os.fstat(fd), os.read(fd, size)
        finally:
            if ours:
                os.close(fd)


def _hold(path: Path) -> tuple[int, int]:
    """One more reader of this file: its descriptor stays open until `_let_go`."""
    with _held_lock:
        key, fd, ours = _descriptor(path)
        if ours:
            _held[key] = _Held([fd])
        _held[key].readers += 1
        return key


def _let_go(key: tuple[int, int]) -> None:
    """A reader is done (its SQLite connections closed first); the last one closes the file."""
    with _held_lock:
        held = _held[key]
        held.readers -= 1
        if held.readers == 0:
            del _held[key]
            for fd in held.fds:
                os.close(fd)


def _rows(cursor, sql: str, params: tuple = ()) -> list[tuple]:
    cursor.execute(sql, params if params else None)
    table = cursor.fetch_arrow_table()
    return list(zip(*(c.to_pylist() for c in table.columns))) if table.num_columns else []


def _conform(batch: pa.RecordBatch, stream: Stream) -> pa.RecordBatch:
    """Rename and cast a driver batch to the stream's canonical schema (the package
    keeps money in integer cents)."""
    arrays = []
    for column, array in zip(stream.columns, batch.columns):
        if pa.types.is_null(array.type):
            array = pa.nulls(len(array), column.arrow)
        elif column.arrow == money.ARROW:
            array = money.from_cents(array.cast(pa.int64()))
        elif array.type != column.arrow:
            array = array.cast(column.arrow)
        if column.arrow == pa.string() and column.nullable:
            array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=stream.schema)


class DemoConnector:
    """Reads one demo ledger; never writes to it (proposals go through the package)."""

    package = "demo"
    currency = "EUR"  # the demo package keeps Belgian books
    warnings: tuple[str, ...] = ()  # a read has nothing to add to its rows
    # SQLite has one writer at a time and the package takes its counter in
    # the writing transaction: versions come in commit order.
    capabilities = Capabilities(change_cursor=True, deletion_log=True, figures=True,
                                ordered_commits=True, history=True, segment_figures=True,
                                reload_by_keys=True, stamp=True, parallel_reads=True,
                                proposals=True, proposal_status=True)
    # Nothing a full sync would bring is missing from a demo dossier loaded before
    # versions were recorded: the 0.4.0 migration gave its accounts their MAR
    # classes (from their codes) and turned its cents into exact amounts of the
    # same value, and the demo package has no finer amounts than cents.
    version_history = VersionHistory((
        ConnectorVersion(1, "0.1.0", "bookings, accounts, relations, matchings, fiscal years "
                                     "and periods, read by change cursor and deletion log"),
        ConnectorVersion(2, "0.4.0", "account classes and exact amounts", reload=False),
    ), unrecorded=2)

    def __init__(self, path: Path, settings: ConnectorSettings | None = None) -> None:
        """Open the ledger at `path` (settings: none apply; the package says it all)."""
        self.source = str(path)
        self.path = path
        self._conn = self._cur = self._key = None
        if not path.is_file():
            raise LedgerUnavailable(
                f"ledger file {path} does not exist: check the dossier's --source "
                f"(dossync dossier set CODE --source PATH) or restore the file")
        try:
            # held before SQLite opens it, let go after SQLite closed it (see _held)
            self._key = _hold(path)
            _, header = _head(path, 16)
        except OSError as exc:
            self.close()
            raise LedgerUnavailable(f"ledger file {path} cannot be read: {exc}") from exc
        if header != b"SQLite format 3\x00":
            self.close()
            raise LedgerUnavailable(
                f"ledger file {path} is not a demo package ledger (not an SQLite database): "
                f"is the file corrupt or the wrong one?")
        try:
            self._conn = adbc.connect(sqlite_uri(path))
            self._cur = self._conn.cursor()
            self._cur.adbc_statement.set_options(
                **{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
            # The package may be committing right now: wait for it, as its own tools do.
            self._fetch(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
            # One read transaction for the whole sync: a consistent snapshot.
            self._meta = dict(self._fetch("SELECT key, value FROM meta"))
        except Exception as exc:  # the driver raises OSError/ProgrammingError/...
            self.close()
            if "locked" in str(exc).lower():
                raise LedgerUnavailable(
                    f"ledger file {path} stayed locked by the package for "
                    f"{LOCK_WAIT_MS // 1000}s (it is writing to it): try again when it is "
                    f"done") from exc
            raise LedgerUnavailable(
                f"ledger file {path} cannot be opened as a demo package ledger: {exc}") from exc

    def stamp(self) -> str:
        """A token that changes whenever the ledger file does (reconcile verdicts
        are reused while it holds): the file's identity, size and time, the
        change counter SQLite keeps in its header, and the same of its WAL."""
        parts = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st, header = _head(path, 28)  # not open()/close(): see _held
            except FileNotFoundError:
                parts.append("-")
                continue
            except OSError as exc:
                raise LedgerUnavailable(f"ledger file {path} cannot be read: {exc}") from exc
            parts.append(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:"
                         f"{header[24:28].hex()}")
        return f"{self.path.resolve()}|" + "|".join(parts)

    # -- helpers ----------------------------------------------------------
    def _fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return _rows(self._cur, sql, params)
        except Exception as exc:
            raise LedgerUnavailable(f"reading ledger {self.path} failed: {exc}") from exc

    # -- the Connector protocol ---------------------------------------------
    def position(self) -> LedgerPosition:
        high_water = int(self._meta.get("change_counter", 0))
        return LedgerPosition(
            high_water=high_water,
            deletion_log_from=int(self._meta.get("deletion_log_from", 1)),
            active_period=self._meta.get("active_period"),
            history=self.history_at(high_water),
        )

    @functools.cached_property
    def _keeps_history(self) -> bool:
        """Whether the ledger has its history log (asked once per snapshot)."""
        return bool(self._fetch(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'history'"))

    def history_at(self, counter: int) -> str | None:
        """The package's history id of the commit that brought its change counter
        to `counter`; None when its history log holds no such commit (a ledger
        written before the log existed has none at all)."""
        if not self._keeps_history:
            return None
        row = self._fetch("SELECT id FROM history WHERE counter = ?", (counter,))
        return str(row[0][0]) if row else None

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
        except DossyncError:
            raise
        except Exception as exc:
            raise LedgerUnavailable(f"reading {stream} from ledger {self.path} failed: {exc}") from exc

    def deletions(self, since: int) -> pa.Table:
        rows = self._fetch("SELECT stream, key, seq FROM deletion_log WHERE seq > ? ORDER BY seq",
                           (since,))
        return pa.table({"stream": [r[0] for r in rows], "key": [str(r[1]) for r in rows],
                         "seq": [int(r[2]) for r in rows]}, schema=DELETIONS)

    def parallel_reader(self) -> "DemoConnector | None":
        """A second reader on the same snapshot, to read big streams side by side.

        In the package's rollback-journal mode our open read transaction holds
        SQLite's shared lock: no writer can commit until we close, so a second
        connection sees exactly the same ledger. In WAL mode it could see a
        newer one: then there is no second reader.
        """
        mode = self._fetch("PRAGMA journal_mode")
        if mode and str(mode[0][0]).lower() == "wal":
            return None
        return DemoConnector(self.path)

    def read_bookings(self, stream: str, booking_ids: Sequence[int]) -> Iterator[pa.RecordBatch]:
        """Bookings, lines or matchings of just these bookings (targeted repair)."""
        ids = ",".join(str(int(i)) for i in booking_ids) or "NULL"
        definition = BY_NAME[stream]
        columns, table, _ = _SELECT[stream]
        where = {"bookings": f"id IN ({ids})",
                 "lines": f"booking_id IN ({ids})",
                 "matchings": f"invoice_id IN ({ids}) OR payment_id IN ({ids})"}[stream]
        try:
            self._cur.execute(f"SELECT {columns} FROM {table} WHERE {where}")
            for batch in self._cur.fetch_record_batch():
                yield _conform(batch, definition)
        except Exception as exc:
            raise LedgerUnavailable(f"reading {stream} from ledger {self.path} failed: {exc}") from exc

    def booking_rows(self, booking_ids: Sequence[int]) -> int:
        """Rows `read_bookings` hands out for these bookings (bookings, lines, matchings)."""
        ids = ",".join(str(int(i)) for i in booking_ids) or "NULL"
        return int(self._fetch(
            f"SELECT (SELECT count(*) FROM bookings WHERE id IN ({ids})) + "
            f"(SELECT count(*) FROM booking_lines WHERE booking_id IN ({ids})) + "
            f"(SELECT count(*) FROM matchings WHERE invoice_id IN ({ids}) "
            f"OR payment_id IN ({ids}))")[0][0])

    def booking_fingerprints(self, period_ids: Sequence[int]) -> pa.Table:
        """Per booking in these periods: its fields that enter the figures and
        its lines' sums (core.figures.BOOKING_PRINT), to find the bookings a
        repair must reload."""
        ids = ",".join(str(int(p)) for p in period_ids) or "NULL"
        sql = (f"SELECT {fp.booking_print('sqlite')} FROM bookings b "
               f"LEFT JOIN booking_lines l ON l.booking_id = b.id "
               f"WHERE b.period_id IN ({ids}) GROUP BY b.id")
        try:
            self._cur.execute(sql)
            table = self._cur.fetch_arrow_table()
        except Exception as exc:
            raise LedgerUnavailable(f"computing figures on ledger {self.path} failed: {exc}") from exc
        return fp.booking_print_table(table)

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
        if getattr(self, "_key", None) is not None:  # after SQLite let go of the file
            _let_go(self._key)
            self._key = None

    def __enter__(self) -> "DemoConnector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- booking proposals ------------------------------------------------------
    @classmethod
    def receive_proposals(cls, source: Path, settings: ConnectorSettings,
                          proposals: list[Proposal]) -> None:
        """The demo package takes the proposals into its inbox, all or none; a
        reference it already holds is not taken twice. Through the package's own
        code (it owns its ledger's writes), never by SQL from here."""
        from dossync.core import demo_package  # the package itself: only when sending

        try:
            demo_package.receive_proposals(Path(source), [
                {"ref": p.ref, "journal": p.journal, "date": p.date,
                 "relation_id": p.relation_id, "amount": money.cents(p.amount),
                 "lines": [{"account": l.account, "debit": money.cents(l.debit),
                            "credit": money.cents(l.credit), "vat_code": l.vat_code}
                           for l in p.lines]} for p in proposals])
        except demo_package.LedgerEventError as exc:
            raise LedgerUnavailable(f"the proposals could not be sent: {exc}") from exc

    def settled_proposals(self) -> list[str]:
        """The references of the proposals the package's inbox no longer holds as
        waiting: a proposal waits with status 'received' until the accountant deals
        with it ('booked' once validated, whether that booking still exists or not).
        Read in the sync's read transaction, on the same snapshot as the streams."""
        if not self._has_inbox:
            return []
        return [str(ref) for (ref,) in self._fetch(
            "SELECT ref FROM proposals WHERE status <> 'received' ORDER BY ref")]

    @functools.cached_property
    def _has_inbox(self) -> bool:
        """Whether the ledger has the proposals inbox (a ledger written before it has none)."""
        return bool(self._fetch(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'proposals'"))

    # -- figures (for reconcile) ----------------------------------------------
    def figures(self, exclude_bookings: Sequence[int] = (),
                grain: Literal["segment", "period"] = "segment",
                periods: Sequence[str] | None = None) -> pa.Table:
        """Aggregates of the ledger's bookings, computed by SQLite (no full read).

        grain "segment": one row per fiscal year x period x journal x account
        (codes, not ids) with line_count, debit, credit (exact money) and checksum,
        the sum over lines of FIGURES_CHECKSUM. grain "period": one row per
        fiscal year x period with bookings and line_count (what a reload of
        that period reads). `exclude_bookings`: ids left out (the bookings the
        portal quarantined, so both sides count the same population).
        `periods`: only the bookings of these period codes.

        SQLite groups by sorting, and one sort of every line of a large
        ledger is most of the cost; so the segment grain runs one aggregate
        per period (its bookings found through the index on period_id, their
        lines through the index on booking_id): many small sorts take about
        two thirds of the time of one big one, for the same rows.
        """
        conditions, params = [], []
        if exclude_bookings:
            conditions.append(_not_in(exclude_bookings, ""))
        if periods is not None:
            codes = sorted(set(periods))
            if not codes:
                return FIGURES_SCHEMAS[grain].empty_table()
            conditions.append(f"b.period_id IN (SELECT id FROM periods WHERE code IN "
                              f"({','.join('?' for _ in codes)}))")
            params.extend(codes)
        if grain == "period":
            where = "WHERE " + " AND ".join(conditions) if conditions else ""
            return self._figures_table(_PERIOD_SQL.format(where=where), tuple(params), grain)
        sql = ("SELECT COALESCE((SELECT min(code) FROM fiscal_years f WHERE f.id = agg.fy), ''), "
               "COALESCE((SELECT min(code) FROM periods p WHERE p.id = agg.pid), ''), "
               "journal, account, line_count, debit, credit, checksum FROM ("
               "SELECT b.fiscal_year_id AS fy, b.period_id AS pid, b.journal AS journal, "
               "l.account AS account, count(*) AS line_count, sum(l.debit) AS debit, "
               f"sum(l.credit) AS credit, sum({FIGURES_CHECKSUM}) AS checksum "
               # CROSS JOIN: bookings first (one period's, by index), then their lines
               "FROM bookings b CROSS JOIN booking_lines l ON l.booking_id = b.id "
               f"WHERE {' AND '.join(['b.period_id IS ?', *conditions])} "
               "GROUP BY b.fiscal_year_id, b.period_id, b.journal, l.account) AS agg")
        if periods is None:
            ids = [r[0] for r in self._fetch("SELECT DISTINCT period_id FROM bookings")]
        else:  # only the wanted periods' ids: one small query each, not one per period
            ids = [r[0] for r in self._fetch(
                f"SELECT id FROM periods WHERE code IN ({','.join('?' for _ in codes)})",
                tuple(codes))]
        parts = [self._figures_table(sql, (pid, *params), grain) for pid in ids]
        return (pa.concat_tables(parts) if parts else FIGURES_SCHEMAS[grain].empty_table())

    def fingerprint(self, journals: str, only: Sequence[int] | None = None) -> dict[str, int]:
        """The whole-ledger fingerprint (core.figures): no grouping, no join.

        The lines are summed in rowid ranges, one per core, each on its own
        read-only connection (SQLite lets go of the GIL while it steps), the
        bookings beside them. `journals`: core.figures.journal_list(...).
        `only`: just these bookings and their lines (what to take off for
        the bookings the portal keeps in quarantine).
        Returns {field: int} for figures.LINE_FIELDS and BOOKING_FIELDS.
        Uses only connections of its own: it may run beside other reads.
        """
        if only is not None:
            ids = ",".join(str(int(i)) for i in only) or "NULL"
            jobs = [(f"SELECT {fp.booking_sums('sqlite', '?')} FROM bookings WHERE id IN ({ids})",
                     (journals,)),
                    (f"SELECT {fp.line_sums('sqlite')} FROM booking_lines "
                     f"WHERE booking_id IN ({ids})", ())]
        else:
            # bare min() and max(): SQLite answers those from the b-tree's ends
            (low,), (high,) = self._parallel([("SELECT min(rowid) FROM booking_lines", ()),
                                              ("SELECT max(rowid) FROM booking_lines", ())])
            low, high = (0, -1) if low[0] is None else (low[0], high[0])
            lines = f"SELECT {fp.line_sums('sqlite')} FROM booking_lines WHERE rowid BETWEEN ? AND ?"
            jobs = [(f"SELECT {fp.booking_sums('sqlite', '?')} FROM bookings", (journals,))]
            jobs += [(lines, cut) for cut in _ranges(low, high, _workers())]
        results = self._parallel(jobs)
        out = dict(zip(fp.BOOKING_FIELDS, results[0][0]))
        for name in fp.LINE_FIELDS:
            out[name] = sum(int(r[0][fp.LINE_FIELDS.index(name)]) for r in results[1:])
        return out

    def period_fingerprints(self, exclude_bookings: Sequence[int] = (),
                            journals: str = "||") -> pa.Table:
        """The fingerprint per period id (period_id, fy_min, fy_max, LINE_FIELDS,
        BOOKING_FIELDS): lines reached through their bookings in period order
        (the index on period_id), so SQLite groups without sorting; the
        period ids split in ranges, one per core, beside the bookings' sums."""
        ids = sorted(r[0] for r in self._fetch("SELECT DISTINCT period_id FROM bookings"))
        skip = _not_in(exclude_bookings, "AND")
        lines = (f"SELECT b.period_id, {fp.line_sums('sqlite', 'l')} FROM bookings b "
                 f"CROSS JOIN booking_lines l ON l.booking_id = b.id "
                 f"WHERE b.period_id BETWEEN ? AND ? {skip} GROUP BY b.period_id")
        bookings = (f"SELECT b.period_id, min(b.fiscal_year_id), max(b.fiscal_year_id), "
                    f"{fp.booking_sums('sqlite', '?', 'b')} FROM bookings b "
                    f"{_not_in(exclude_bookings)} GROUP BY b.period_id")
        chunks = [c for c in _chunks(ids, _workers()) if c]
        results = self._parallel([(bookings, (journals,))]
                                 + [(lines, (c[0], c[-1])) for c in chunks])
        per_line = {row[0]: row[1:] for rows in results[1:] for row in rows}
        columns: dict[str, list] = {k: [] for k in FIGURES_SCHEMAS["fingerprint"].names}
        for pid, fy_min, fy_max, *booking in results[0]:
            line = per_line.get(pid, (0,) * len(fp.LINE_FIELDS))
            for name, value in zip(("period_id", "fy_min", "fy_max", *fp.LINE_FIELDS,
                                    *fp.BOOKING_FIELDS), (pid, fy_min, fy_max, *line, *booking)):
                columns[name].append(value)
        return pa.table(columns, schema=FIGURES_SCHEMAS["fingerprint"])

    def _parallel(self, jobs: list[tuple[str, tuple]]) -> list[list[tuple]]:
        """Run read-only queries at once, each on a fresh connection to the ledger.

        ADBC's SQLite, as every read here (see _held): its connections share
        their lock bookkeeping, so while this connector's read transaction is
        open they join its shared lock (the package cannot commit in between,
        nor make them wait behind its pending commit) and see its snapshot;
        closing them drops no lock. The driver lets go of the GIL while it
        steps, so they run side by side.
        """
        def run(job: tuple[str, tuple]) -> list[tuple]:
            sql, params = job
            conn = adbc.connect(sqlite_uri(self.path))
            try:
                cur = conn.cursor()
                try:
                    _rows(cur, f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
                    return _rows(cur, sql, params)
                finally:
                    cur.close()
            finally:
                conn.close()
        try:
            with ThreadPoolExecutor(max_workers=_workers() + 1) as pool:
                return list(pool.map(run, jobs))
        except Exception as exc:  # the driver raises OSError/ProgrammingError/...
            raise LedgerUnavailable(f"computing figures on ledger {self.path} failed: {exc}") from exc

    def changed_segments(self, since: int, exclude_bookings: Sequence[int] = ()) -> pa.Table:
        """Figures of the bookings changed after `since`, one row per booking and segment.

        Columns booking_id, reference, then the segment figures: what a simple
        sync would bring in. Rides on the index on bookings.rv.
        """
        sql = _FIGURES_SQL.format(select="booking_id, reference, ", group=", booking_id, reference",
                                  where="WHERE b.id IN (SELECT id FROM bookings WHERE rv > ?) "
                                  + _not_in(exclude_bookings, "AND"))
        return self._figures_table(sql, (since,), "changed")

    def _figures_table(self, sql: str, params: tuple, grain: str) -> pa.Table:
        schema = FIGURES_SCHEMAS[grain]
        try:
            self._cur.execute(sql, params if params else None)
            table = self._cur.fetch_arrow_table()
        except Exception as exc:
            raise LedgerUnavailable(f"computing figures on ledger {self.path} failed: {exc}") from exc
        if table.num_rows == 0:
            return schema.empty_table()
        return pa.Table.from_arrays(
            [money.from_cents(table.column(i).cast(pa.int64())) if f.type == money.ARROW
             else table.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema)


# --- figures (for reconcile) -------------------------------------------------
# The checksum of one booking line (core.figures: summed over a segment's lines).
FIGURES_CHECKSUM = fp.checksum_sql("b.id", "b.rv", "l.line_no")

_FIGURES_SQL = (
    "WITH agg AS (SELECT {select}fy, pid, journal, account, count(*) AS line_count, "
    "sum(debit) AS debit, sum(credit) AS credit, sum(ck) AS checksum FROM ("
    "SELECT b.id AS booking_id, COALESCE(b.reference, '') AS reference, b.fiscal_year_id AS fy, "
    "b.period_id AS pid, b.journal AS journal, l.account AS account, l.debit AS debit, "
    "l.credit AS credit, " + FIGURES_CHECKSUM + " AS ck "
    "FROM booking_lines l JOIN bookings b ON b.id = l.booking_id {where}) "
    "GROUP BY fy, pid, journal, account{group}) "
    "SELECT {select}COALESCE((SELECT min(code) FROM fiscal_years f WHERE f.id = agg.fy), '') "
    "AS fiscal_year, COALESCE((SELECT min(code) FROM periods p WHERE p.id = agg.pid), '') "
    "AS period, journal, account, "
    "line_count, debit, credit, checksum FROM agg")

_PERIOD_SQL = (
    "WITH agg AS (SELECT b.fiscal_year_id AS fy, b.period_id AS pid, "
    "count(DISTINCT b.id) AS bookings, count(l.booking_id) AS line_count "
    "FROM bookings b LEFT JOIN booking_lines l ON l.booking_id = b.id {where} "
    "GROUP BY b.fiscal_year_id, b.period_id) "
    "SELECT COALESCE((SELECT min(code) FROM fiscal_years f WHERE f.id = agg.fy), '') "
    "AS fiscal_year, COALESCE((SELECT min(code) FROM periods p WHERE p.id = agg.pid), '') "
    "AS period, bookings, line_count "
    "FROM agg")

_SEGMENT_FIELDS = [pa.field("fiscal_year", pa.string()), pa.field("period", pa.string()),
                   pa.field("journal", pa.string()), pa.field("account", pa.string()),
                   pa.field("line_count", pa.int64()), pa.field("debit", money.ARROW),
                   pa.field("credit", money.ARROW), pa.field("checksum", pa.int64())]
FIGURES_SCHEMAS = {
    "segment": pa.schema(_SEGMENT_FIELDS),
    "changed": pa.schema([pa.field("booking_id", pa.int64()), pa.field("reference", pa.string()),
                          *_SEGMENT_FIELDS]),
    "period": pa.schema([pa.field("fiscal_year", pa.string()), pa.field("period", pa.string()),
                         pa.field("bookings", pa.int64()), pa.field("line_count", pa.int64())]),
    "fingerprint": pa.schema([pa.field(n, pa.int64()) for n in (
        "period_id", "fy_min", "fy_max", *fp.LINE_FIELDS, *fp.BOOKING_FIELDS)]),
}


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _ranges(low: int, high: int, n: int) -> list[tuple[int, int]]:
    """[low, high] cut into n contiguous ranges (one when it is empty)."""
    if high < low:
        return [(low, high)]
    step = (high - low + n) // n
    return [(a, min(a + step - 1, high)) for a in range(low, high + 1, step)]


def _chunks(items: list, n: int) -> list[list]:
    size = max(1, -(-len(items) // n))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _not_in(ids: Sequence[int], joiner: str = "WHERE", column: str = "b.id") -> str:
    """SQL excluding these booking ids (integers only, so inlining them is safe)."""
    if not ids:
        return ""
    return f"{joiner} {column} NOT IN ({','.join(str(int(i)) for i in ids)})"
