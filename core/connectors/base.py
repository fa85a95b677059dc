"""What a connector is: one dossier of one accounting package, read-only.

A connector declares what it can do (`Capabilities`) and yields each stream
of `core.streams` as Arrow record batches. The sync engine never sees
package-specific SQL or files; it asks for streams since a cursor, for the
deletions since a cursor, and for the ledger's position (how far its change
counter has come and how far back its deletion log still reaches).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Protocol, Sequence
from urllib.parse import quote

import pyarrow as pa


DELETIONS = pa.schema([("stream", pa.string()), ("key", pa.string()), ("seq", pa.int64())])


@dataclass(frozen=True)
class Capabilities:
    """What the package offers; the engine adapts (and says so) where it lacks one.

    change_cursor: rows carry a monotonic version, so a simple sync reads only changes.
    deletion_log: deletions are recorded (with limited retention).
    figures: the package can compute aggregates itself (for reconcile).
    ordered_commits: versions are handed out in commit order (one writer at a
        time), so a counter that did not move means nothing changed at all.
    history: the package names each point of its history (`history_at`), so a
        ledger put back from a backup is known even after it moved on.
    """

    change_cursor: bool
    deletion_log: bool
    figures: bool
    ordered_commits: bool = False
    history: bool = False


@dataclass(frozen=True)
class LedgerPosition:
    """Where the ledger stands now.

    high_water: the highest row version handed out so far.
    deletion_log_from: the first version from which the deletion log is complete.
    active_period: the package's active booking period (YYYY-MM), if it has one.
    history: the package's id for its history up to high_water, if it keeps one.
    """

    high_water: int
    deletion_log_from: int
    active_period: str | None = None
    history: str | None = None


@dataclass(frozen=True)
class RowVersion:
    """A record's key and version, to check a ledger against the portal."""

    stream: str
    key: str
    rv: int


class Connector(Protocol):
    """package, source, capabilities; currency: the ISO code the money columns are in
    (None: a book without money, whose currency nothing tells)."""

    package: str
    source: str
    capabilities: Capabilities
    currency: str | None

    def position(self) -> LedgerPosition: ...

    def count(self, stream: str, since: int | None) -> int: ...

    def read(self, stream: str, since: int | None) -> Iterator[pa.RecordBatch]:
        """Batches of the stream's rows changed after `since` (all when None)."""
        ...

    def deletions(self, since: int) -> pa.Table:
        """Records deleted after `since` (schema DELETIONS: stream, key, seq = the version
        the deletion took; a key may be handed out again later, to a new record)."""
        ...

    def read_keys(self, stream: str, keys: list[str]) -> pa.Table:
        """The stream's rows with these keys (lines: the lines of these bookings)."""
        ...

    # Only when capabilities.history:
    def history_at(self, counter: int) -> str | None:
        """The history id of the commit that brought the counter to `counter`, or None."""
        ...

    def versions(self, stream: str, keys: list[str]) -> dict[str, int]:
        """Current versions of the given records (absent keys are missing)."""
        ...

    def close(self) -> None: ...

    # Only when capabilities.figures (reconcile falls back to reading the streams):
    def figures(self, exclude_bookings: Sequence[int] = (),
                grain: Literal["segment", "period"] = "segment") -> pa.Table:
        """Aggregates computed by the package, not a full read.

        segment: fiscal_year, period (codes), journal, account, line_count,
        debit, credit (cents), checksum (sum over lines of ((booking id % P)
        * 1000003 + (booking rv % P) * 7919 + line_no) % P, P = 2147483647).
        period: fiscal_year, period, bookings, line_count.
        """
        ...

    def changed_segments(self, since: int, exclude_bookings: Sequence[int] = ()) -> pa.Table:
        """booking_id, reference and segment figures of the bookings changed after `since`."""
        ...

    # Optional, to spare reconcile the segment figures where nothing differs
    # (core.figures; used when the connector has them):
    #   fingerprint(journals, only=None) -> {field: int}: the whole ledger, or
    #       only the given bookings; must not use the connector's own cursor
    #       (it runs beside other reads).
    #   period_fingerprints(exclude_bookings, journals) -> Arrow table per period id.
    # Optional, for a targeted repair (sync --repair):
    #   read_bookings(stream, booking_ids): bookings, lines or matchings of those bookings.
    #   booking_fingerprints(period_ids) -> Arrow table (core.figures.BOOKING_PRINT)
    #       and booking_rows(booking_ids) -> int: which bookings differ, and
    #       what reading them costs.
    #   stamp() -> str: changes whenever the package's files do (a kept
    #       reconcile verdict is reused only while it holds).


def sqlite_uri(path: Path | str) -> str:
    """A read-only SQLite URI for a file: '?', '#', '%' and spaces in its name escaped
    (a plain f"file:{path}" would cut a name like 'Klant #12.sqlite' short)."""
    return "file:" + quote(str(Path(path).resolve())) + "?mode=ro"
