"""Connectors for books that are read whole: no change cursor, content versions.

GnuCash books and Beancount files keep no row versions and no deletion log.
Their connectors read the whole book once, into Arrow tables in the
canonical shape of `core.streams`, and give every row a stable 63-bit hash
of its content as its version (`rv`); a booking's hash covers its lines, so
a changed line changes its booking's version. The engine's simple sync for
such packages reads everything and writes only the rows whose version
differs from the portal's, and deletes the keys that disappeared.

The book is read at open time and the file is let go at once: nothing stays
open on the accountant's book during the rest of the sync.

`SnapshotConnector` declares none of the optional capabilities of
`core.connectors.base`: no change cursor, no deletion log, no figures
(reconcile computes them from the streams), no reload of single bookings.
A package's own class adds what its package offers (GnuCash and Beancount:
taking proposals).
"""
from __future__ import annotations

import hashlib
from datetime import date
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dossync.core.connectors.base import Capabilities, LedgerPosition
from dossync.core.streams import BY_NAME, STREAMS

BATCH_ROWS = 65_536
MASK63 = (1 << 63) - 1
COLON = pa.scalar(":", pa.string())


def stable_id(*parts: object) -> int:
    """A stable non-negative int64 for a text key (a GUID, a transaction hash)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & MASK63


def int64_array(values) -> pa.Array:
    """An Arrow int64 array over a numpy array's memory, without a copy.

    (`pa.array` of an ndarray imports numpy.ma the first time, some 10 ms of
    an activation; this does not.)
    """
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def stable_ids(digests: list[bytes]) -> pa.Array:
    """`stable_id` of many keys at once, from their 8-byte blake2b digests (of the parts joined
    by "\\x1f", as `stable_id` joins them)."""
    return _digests_to_ids(digests)


def table(stream: str, columns: dict[str, Iterable | pa.Array]) -> pa.Table:
    """The stream's canonical table from whatever columns are given (others null)."""
    definition = BY_NAME[stream]
    given = {k: v for k, v in columns.items()}
    length = None
    arrays = []
    for column in definition.columns:
        if column.name in given:
            value = given[column.name]
            if isinstance(value, (pa.Array, pa.ChunkedArray)):
                array = value
            elif isinstance(value, np.ndarray) and value.dtype == np.int64:
                array = int64_array(value)
            else:
                array = pa.array(value if isinstance(value, (list, np.ndarray)) else list(value),
                                 type=column.arrow)
            if array.type != column.arrow:
                array = array.cast(column.arrow)
            length = len(array)
            arrays.append(array)
        else:
            arrays.append(None)
    length = length or 0
    arrays = [a if a is not None else pa.nulls(length, c.arrow)
              for a, c in zip(arrays, definition.columns)]
    return pa.Table.from_arrays(arrays, schema=definition.schema)


def calendar(first: str, last: str) -> tuple[pa.Table, pa.Table]:
    """Calendar fiscal years (id = year) and months (id = year*100+month) from first to last."""
    y0, m0 = int(first[:4]), int(first[5:7])
    y1, m1 = int(last[:4]), int(last[5:7])
    months = []
    y, m = y0, m0
    while (y, m) <= (y1, m1):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)

    def month_end(y: int, m: int) -> str:
        nxt = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
        return date.fromordinal(nxt.toordinal() - 1).isoformat()

    years = sorted({y for y, _ in months})
    fiscal_years = table("fiscal_years", {
        "id": years, "code": [str(y) for y in years],
        "start_date": [f"{y}-01-01" for y in years], "end_date": [f"{y}-12-31" for y in years],
        "closed": [False] * len(years)})
    periods = table("periods", {
        "id": [y * 100 + m for y, m in months], "fiscal_year_id": [y for y, _ in months],
        "code": [f"{y}-{m:02d}" for y, m in months],
        "start_date": [f"{y}-{m:02d}-01" for y, m in months],
        "end_date": [month_end(y, m) for y, m in months], "closed": [False] * len(months)})
    return fiscal_years, periods


def period_columns(dates: pa.Array) -> tuple[pa.Array, pa.Array]:
    """fiscal_year_id and period_id of ISO dates, as `calendar` numbers them."""
    year = pc.cast(pc.utf8_slice_codeunits(dates, 0, 4), pa.int64())
    month = pc.cast(pc.utf8_slice_codeunits(dates, 5, 7), pa.int64())
    return year, pc.add(pc.multiply(year, 100), month)


def _row_bytes(t: pa.Table, skip: str | None = "rv") -> pa.Array:
    """Every row's content as one binary value, built column-wise in Arrow.

    Each field is written as `<byte length>:<text>` (its text: the value cast to
    a string; booleans as true/false) or `-` when null, fields separated by
    commas. Length prefixes make the encoding injective (no two different rows
    give the same bytes, whatever their text holds), and it depends only on the
    values, so it is the same in every process and Python version.
    """
    # One join of every piece: the columns' lengths and texts between literal ":" and ","
    # (adjacent literals merged), "-" for a column that is all null.
    parts: list = []
    literal = ""
    for name, column in zip(t.column_names, t.columns):
        if name == skip:
            continue
        if parts or literal:
            literal += ","
        if column.null_count == len(column):  # a column the book does not fill: all `-`
            literal += "-"
            continue
        text = column if column.type == pa.string() else pc.cast(column, pa.string())
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        length = pc.cast(pc.binary_length(text), pa.string())
        if text.null_count:  # `-` for its nulls: this field is made on its own
            if literal:
                parts.append(pa.scalar(literal, pa.string()))
            parts.append(pc.fill_null(pc.binary_join_element_wise(length, text, ":"), "-"))
        else:
            parts.extend((pa.scalar(literal, pa.string()), length) if literal else (length,))
            parts.extend((COLON, text))
        literal = ""
    if not parts:  # nothing but empty columns
        return pa.array([literal.encode()] * t.num_rows, pa.binary())
    if literal:
        parts.append(pa.scalar(literal, pa.string()))
    joined = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    return pc.cast(joined, pa.binary())


def _binary_parts(array: pa.Array) -> tuple[memoryview, np.ndarray]:
    """The data buffer and value offsets of a non-null binary array (no copy of the data)."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    start = array.offset  # a slice: its offsets start further in, still into the whole buffer
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[start:start + len(array) + 1]
    data = array.buffers()[2]
    return memoryview(data if data is not None else b""), offsets


def _digests_to_ids(digests: list[bytes]) -> pa.Array:
    """8-byte blake2b digests → non-negative int64 (big-endian, top bit cleared), as stable_id."""
    if not digests:
        return pa.array([], pa.int64())
    values = np.frombuffer(b"".join(digests), dtype=">u8") & np.uint64(MASK63)
    return int64_array(values)


def _row_versions(rows: pa.Array) -> pa.Array:
    """blake2b-64 of each row's bytes."""
    data, offsets = _binary_parts(rows)
    blake = hashlib.blake2b(digest_size=8).copy  # copies: no parameters to parse per row
    digests = []
    for s, e in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        h = blake()
        h.update(data[s:e])
        digests.append(h.digest())
    return _digests_to_ids(digests)


def _lines_of_bookings(bookings: pa.Table, lines: pa.Table) -> pa.Array:
    """Each booking's lines as one binary value: their row bytes in line_no order, concatenated
    (empty for a booking without lines)."""
    n = bookings.num_rows
    if not lines.num_rows:
        return pa.array([b""] * n, pa.binary())
    keys = bookings.column("id").to_numpy()
    ids = lines.column("booking_id").to_numpy()
    if not _in_booking_order(keys, ids, lines.column("line_no").to_numpy()):
        order = pc.sort_indices(lines, sort_keys=[("booking_id", "ascending"),
                                                  ("line_no", "ascending")])
        lines = lines.take(order)
        ids = lines.column("booking_id").to_numpy()
    rows = _row_bytes(lines, skip=None)
    # the runs of equal booking ids in the lines, each joined into one value
    first = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    run_offsets = np.append(first, len(ids)).astype(np.int32)
    runs = pa.ListArray.from_arrays(
        pa.Array.from_buffers(pa.int32(), len(run_offsets), [None, pa.py_buffer(run_offsets)]),
        rows)
    joined = pc.binary_join(runs, pa.scalar(b"", pa.binary()))
    run_ids = ids[first]
    if len(run_ids) == n and np.array_equal(run_ids, keys):
        return joined  # the lines came in the bookings' order (beancount's do)
    order = np.argsort(run_ids, kind="stable")
    run_ids = run_ids[order]
    at = np.minimum(np.searchsorted(run_ids, keys), len(run_ids) - 1)
    found = run_ids[at] == keys
    taken = joined.take(int64_array(order[at]))
    if found.all():
        return taken
    return pc.if_else(pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(
        np.packbits(found, bitorder="little"))]), taken, pa.scalar(b"", pa.binary()))


def _in_booking_order(keys: np.ndarray, ids: np.ndarray, line_no: np.ndarray) -> bool:
    """Whether the lines already come as sorting them by (booking_id, line_no) would group
    them: each booking's lines together, once, in rising line_no, with distinct booking ids."""
    if not len(ids):
        return True
    new_run = np.concatenate(([True], ids[1:] != ids[:-1]))
    if not np.all(new_run[1:] | (line_no[1:] > line_no[:-1])):
        return False
    run_ids = np.sort(ids[new_run])  # (not np.unique: it imports numpy.ma, ~10 ms)
    return bool(np.all(run_ids[1:] != run_ids[:-1]))


def with_versions(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Set every row's rv to a hash of its content (bookings: with their lines).

    The hash is blake2b (8 bytes, top bit cleared) of the row's bytes as
    `_row_bytes` writes them; a booking's bytes are followed by its lines'
    bytes in line_no order. It depends only on the content, never on the
    process, the Python version or the row order of the tables.
    """
    out = dict(tables)
    for stream in STREAMS:
        if "rv" not in stream.names:
            continue
        t = tables[stream.name]
        if not t.num_rows:
            rv = pa.array([], pa.int64())
        elif stream.name == "bookings":  # the booking's bytes, \x1e, its lines' bytes
            rv = _row_versions(pc.binary_join_element_wise(
                _row_bytes(t), _lines_of_bookings(t, tables["lines"]),
                pa.scalar(b"\x1e", pa.binary())))
        else:
            rv = _row_versions(_row_bytes(t))
        out[stream.name] = t.set_column(t.schema.get_field_index("rv"), "rv", rv)
    return out


class SnapshotConnector:
    """A book read whole into canonical Arrow tables; subclasses fill `tables`.

    Attributes: package, source, capabilities, currency (the book's, the money
    columns' currency), warnings (what the engine should pass on to the user),
    tables.
    """

    package = "snapshot"
    capabilities = Capabilities()  # reading whole books is all it does
    warnings: Sequence[str] = ()

    def __init__(self, source: str, tables: dict[str, pa.Table], warnings: list[str],
                 currency: str | None = None) -> None:
        self.source = source
        self.currency = currency
        self.warnings = list(warnings)
        self.tables = with_versions(tables)

    def position(self) -> LedgerPosition:
        return LedgerPosition(high_water=0, deletion_log_from=0)

    def count(self, stream: str, since: int | None) -> int:
        return self.tables[stream].num_rows  # no cursor: always the whole book

    def read(self, stream: str, since: int | None) -> Iterator[pa.RecordBatch]:
        yield from self.tables[stream].to_batches(max_chunksize=BATCH_ROWS)

    def _selected(self, stream: str, column: str, keys: list[str]) -> pa.Table:
        t = self.tables[stream]
        typed = pa.array([int(k) for k in keys] if pa.types.is_integer(t.schema.field(column).type)
                         else [str(k) for k in keys], t.schema.field(column).type)
        return t.filter(pc.is_in(t.column(column), value_set=typed))

    def read_keys(self, stream: str, keys: list[str]) -> pa.Table:
        column = "booking_id" if stream == "lines" else BY_NAME[stream].key[0]
        return self._selected(stream, column, keys)

    def close(self) -> None:
        """Nothing to let go: the book file was closed right after reading."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
