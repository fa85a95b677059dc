"""What a connector is: one dossier of one accounting package, read-only.

Every connector yields each stream of `core.streams` as Arrow record batches
and says where the ledger stands (`Connector`). The sync engine never sees
package-specific SQL or files.

What a package offers beyond that is a capability, each a small protocol of
its own: a change cursor (`ChangeCursor`), a deletion log (`DeletionLog`),
named history (`History`), figures it computes itself (`Figures`), per-booking
figures (`SegmentFigures`), reloading single bookings (`ReloadByKeys`), a
stamp of its files (`Stamp`), a second reader on the same snapshot
(`ParallelReads`), taking booking proposals (`Proposals`, the one thing a
connector writes) and telling which of them it has dealt with
(`ProposalStatus`). A connector class declares the ones it implements in its
`capabilities`; `checked` holds that declaration against the methods the
class really has, once per class, when a connector is opened
(`core.connectors.open_connector`) or proposals are sent: a class that
declares what it lacks is refused with `CapabilityMismatch`. From then on the
engine asks `connector.capabilities.X`, never whether a method exists.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal, Protocol, Sequence
from urllib.parse import quote

import pyarrow as pa

if TYPE_CHECKING:
    from dossync.core.model import ConnectorSettings, Proposal


DELETIONS = pa.schema([("stream", pa.string()), ("key", pa.string()), ("seq", pa.int64())])


@dataclass(frozen=True)
class Capabilities:
    """What a connector class declares it can do; the engine adapts (and says so) where it
    lacks one. Each flag but ordered_commits names a protocol below (`PROTOCOLS`).

    change_cursor (ChangeCursor): rows carry a monotonic version, so a simple
        sync reads only changes; needs deletion_log (else a simple sync would
        not see deletions).
    deletion_log (DeletionLog): deletions are recorded (with limited retention).
    history (History): the package names each point of its history, so a
        ledger put back from a backup is known even after it moved on.
    figures (Figures): the package computes segment figures and fingerprints
        itself (reconcile does not read the streams).
    segment_figures (SegmentFigures): the package computes the figures of
        single bookings: the changed ones, and which ones differ from the portal.
    reload_by_keys (ReloadByKeys): the package reads single bookings with
        their lines and matchings (a targeted repair; names in reasons).
    stamp (Stamp): a token that changes whenever the package's files do.
    parallel_reads (ParallelReads): a second reader can read beside the first.
    proposals (Proposals): the package takes booking proposals.
    proposal_status (ProposalStatus): the package tells which proposals it has
        dealt with (validated, whether the booking it made still exists or not,
        or rejected), so a sync retires them from the portal; without it a
        proposal leaves the portal only when its definitive booking arrives.
    ordered_commits: versions are handed out in commit order (one writer at a
        time), so a counter that did not move means nothing changed at all (a
        promise about the versions, no method).
    """

    change_cursor: bool = False
    deletion_log: bool = False
    figures: bool = False
    ordered_commits: bool = False
    history: bool = False
    segment_figures: bool = False
    reload_by_keys: bool = False
    stamp: bool = False
    parallel_reads: bool = False
    proposals: bool = False
    proposal_status: bool = False

    @property
    def targeted_repair(self) -> bool:
        """A repair can reload just the bookings that differ: the package names
        them (segment_figures) and reads them alone (reload_by_keys)."""
        return self.segment_figures and self.reload_by_keys


@dataclass(frozen=True)
class ConnectorVersion:
    """One version of a connector: what it brought, in the words a user reads.

    number: 1, 2, ...; release: the dossync release that brought it.
    reload: a dossier last fully loaded by an earlier version lacks what this
    one brings until a full sync reads its whole ledger again (False when
    the portal's migration gave existing dossiers what it brings).
    """

    number: int
    release: str
    brought: str
    reload: bool = True


@dataclass(frozen=True)
class VersionHistory:
    """What each version of a connector class brought, oldest first; the last is current.

    The portal records, per dossier, the version of its last full load
    (dossiers.connector_version). A dossier loaded before versions were
    recorded has none: `unrecorded` says which version this connector takes
    it to have been loaded by (a decision per connector: what the releases
    before 0.7.0 could have left such a dossier without).
    """

    versions: tuple[ConnectorVersion, ...]
    unrecorded: int

    @property
    def current(self) -> int:
        return self.versions[-1].number

    def loaded(self, recorded: int | None) -> int:
        """The version a dossier's last full load is taken to be by (None: unrecorded)."""
        return self.unrecorded if recorded is None else recorded

    def missing(self, recorded: int | None) -> tuple[ConnectorVersion, ...]:
        """The versions since the dossier's last full load whose data it lacks until a
        full sync (empty: nothing to reload)."""
        loaded = self.loaded(recorded)
        return tuple(v for v in self.versions if v.number > loaded and v.reload)

    def problems(self) -> list[str]:
        """What is wrong with this declaration (empty when it is sound)."""
        numbers = [v.number for v in self.versions]
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            return [f"its versions are numbered {numbers}, not 1, 2, ... in order"]
        if self.unrecorded not in numbers:
            return [f"it takes unrecorded dossiers to be at version {self.unrecorded}, "
                    f"which it never had"]
        return []


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


class Connector(Protocol):
    """What every connector is and does.

    package: the package's name (dossier.package); source: the ledger it reads;
    capabilities: what it declared and `checked` verified; version_history: what each
    of its versions brought (a dossier loaded by an older one may lack data
    a full sync would bring: core.upgrades); currency: the ISO
    code the money columns are in (None: a book without money, whose currency
    nothing tells); warnings: what the engine passes on to the user about
    this read (empty when there is nothing to say). A class sets package and
    a default for warnings (an empty tuple) itself.
    """

    package: str
    source: str
    capabilities: Capabilities
    version_history: VersionHistory
    currency: str | None
    warnings: Sequence[str]

    def position(self) -> LedgerPosition: ...

    def count(self, stream: str, since: int | None) -> int:
        """Rows `read` hands out for the same arguments."""
        ...

    def read(self, stream: str, since: int | None) -> Iterator[pa.RecordBatch]:
        """Batches of the stream's rows changed after `since` (all when None; a
        connector without change_cursor always hands out all)."""
        ...

    def read_keys(self, stream: str, keys: list[str]) -> pa.Table:
        """The stream's rows with these keys (lines: the lines of these bookings)."""
        ...

    def close(self) -> None: ...


# --- capabilities: one protocol each ------------------------------------------------
class ChangeCursor(Protocol):
    """Rows carry a monotonic version (`rv`); `read` and `count` honour `since`."""

    def versions(self, stream: str, keys: list[str]) -> dict[str, int]:
        """Current versions of the given records (absent keys are missing)."""
        ...


class DeletionLog(Protocol):
    def deletions(self, since: int) -> pa.Table:
        """Records deleted after `since` (schema DELETIONS: stream, key, seq = the version
        the deletion took; a key may be handed out again later, to a new record)."""
        ...


class History(Protocol):
    def history_at(self, counter: int) -> str | None:
        """The history id of the commit that brought the counter to `counter`, or None."""
        ...


class Figures(Protocol):
    """Aggregates the package computes itself (reconcile; without them it reads the streams)."""

    def figures(self, exclude_bookings: Sequence[int] = (),
                grain: Literal["segment", "period"] = "segment",
                periods: Sequence[str] | None = None) -> pa.Table:
        """Aggregates computed by the package, not a full read.

        segment: fiscal_year, period (codes), journal, account, line_count,
        debit, credit, checksum (core.figures: the sum over lines of
        `checksum_sql`). period: fiscal_year, period, bookings, line_count.
        exclude_bookings: ids left out (those the portal quarantined).
        periods: only the bookings of these period codes (None: all).
        """
        ...

    def fingerprint(self, journals: str, only: Sequence[int] | None = None) -> dict[str, int]:
        """The whole ledger's fingerprint (core.figures), or only these bookings'.
        Must not use the connector's own cursor: it runs beside other reads."""
        ...

    def period_fingerprints(self, exclude_bookings: Sequence[int] = (),
                            journals: str = "||") -> pa.Table:
        """The fingerprint per period id (period_id, fy_min, fy_max, core.figures'
        LINE_FIELDS and BOOKING_FIELDS)."""
        ...


class SegmentFigures(Protocol):
    """Figures of single bookings: what changed, and which bookings differ."""

    def changed_segments(self, since: int, exclude_bookings: Sequence[int] = ()) -> pa.Table:
        """booking_id, reference and segment figures of the bookings changed after `since`."""
        ...

    def booking_fingerprints(self, period_ids: Sequence[int]) -> pa.Table:
        """Per booking of these periods, core.figures.BOOKING_PRINT: which bookings differ."""
        ...

    def booking_rows(self, booking_ids: Sequence[int]) -> int:
        """Rows `read_bookings` hands out for these bookings: what reloading them costs."""
        ...


class ReloadByKeys(Protocol):
    def read_bookings(self, stream: str, booking_ids: Sequence[int]) -> Iterator[pa.RecordBatch]:
        """Bookings, lines or matchings of just these bookings (a targeted repair)."""
        ...


class Stamp(Protocol):
    def stamp(self) -> str:
        """Changes whenever the package's files do (a kept reconcile verdict is
        reused only while it holds)."""
        ...


class ParallelReads(Protocol):
    def parallel_reader(self) -> Connector | None:
        """A second reader on the same snapshot, to read a big stream beside the
        others; None when the ledger cannot promise the same snapshot now."""
        ...


class Proposals(Protocol):
    """The package takes booking proposals, without a connector being opened (a
    classmethod: reading a whole book first would only cost time)."""

    @classmethod
    def receive_proposals(cls, source: Path, settings: ConnectorSettings,
                          proposals: list[Proposal]) -> None:
        """Hand the proposals to the package, all of them or none. Idempotent by
        reference: one the package already holds is not written again, nor refused.
        Raises PackageBusy when the package cannot take them now (they stay
        queued), LedgerUnavailable or TerminalError otherwise."""
        ...


class ProposalStatus(Protocol):
    """The package keeps its own status of the proposals it received."""

    def settled_proposals(self) -> list[str]:
        """The references of the proposals the package has dealt with: validated
        (whether the booking it made still exists or not) or rejected; not those
        still waiting for the accountant. Read on the same snapshot as the streams."""
        ...


PROTOCOLS: dict[str, type] = {
    "change_cursor": ChangeCursor, "deletion_log": DeletionLog, "history": History,
    "figures": Figures, "segment_figures": SegmentFigures, "reload_by_keys": ReloadByKeys,
    "stamp": Stamp, "parallel_reads": ParallelReads, "proposals": Proposals,
    "proposal_status": ProposalStatus,
}


class CapabilityMismatch(TypeError):
    """A connector class declares what it does not implement: a defect of the connector."""


def _methods(protocol: type) -> list[str]:
    """The methods a protocol asks for (those its body defines)."""
    return sorted(name for name, value in vars(protocol).items()
                  if not name.startswith("_") and callable(getattr(value, "__func__", value)))


@functools.cache
def checked(cls: type) -> Capabilities:
    """The capabilities `cls` declares, held against the methods it really has (once
    per class). Raises CapabilityMismatch naming every flag it cannot honour."""
    declared = getattr(cls, "capabilities", None)
    if not isinstance(declared, Capabilities):
        raise CapabilityMismatch(f"connector {cls.__qualname__} declares no Capabilities")
    problems = []
    missing = [m for m in _methods(Connector) if not callable(getattr(cls, m, None))]
    # the attributes the engine reads before any instance says otherwise
    missing += [a for a in ("package", "warnings") if getattr(cls, a, None) is None]
    if missing:
        problems.append(f"it lacks {', '.join(missing)}, which every connector has")
    for flag in fields(Capabilities):
        protocol = PROTOCOLS.get(flag.name)
        if protocol is None or not getattr(declared, flag.name):
            continue
        missing = [m for m in _methods(protocol) if not callable(getattr(cls, m, None))]
        if missing:
            problems.append(f"it declares {flag.name} but has no {', '.join(missing)}")
    history = getattr(cls, "version_history", None)
    if not isinstance(history, VersionHistory):
        problems.append("it declares no version_history (what each version brought)")
    else:
        problems += history.problems()
    if declared.change_cursor and not declared.deletion_log:
        problems.append("it declares change_cursor without deletion_log (a simple sync "
                        "would not see deletions)")
    if problems:
        raise CapabilityMismatch(f"connector {cls.__module__}.{cls.__qualname__} does not do "
                                 f"what it declares: {'; '.join(problems)}")
    return declared


def sqlite_uri(path: Path | str) -> str:
    """A read-only SQLite URI for a file: '?', '#', '%' and spaces in its name escaped
    (a plain f"file:{path}" would cut a name like 'Klant #12.sqlite' short)."""
    return "file:" + quote(str(Path(path).resolve())) + "?mode=ro"
