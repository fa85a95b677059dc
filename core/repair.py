"""A targeted repair: reload only what reconcile flags, not the whole ledger.

A silent edit in a closed period (one the package's change tracking never
reported) would cost a full sync. Reconcile finds the periods whose figures
differ and, in them, the bookings that differ; a repair reloads just those
bookings (with their lines and matchings) and the small fiscal-year and
period tables. The cursor stays where it is: changes elsewhere are left to
the next simple sync.

This module turns reconcile's verdict into a `RepairPlan` (reusing the
verdict a reconcile kept while the ledger file and the portal are still as
it saw them) and reads what a plan names (`reload`). The sync engine runs
the plan through its one pipeline: it stages what `reload` hands out,
validates it and swaps it in atomically (`sync_dossier(kind="repair")`).
So the engine never imports reconcile, and reconcile never imports the
engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from dossync.core import portal
from dossync.core import reconcile as reconciliation
from dossync.core.connectors.base import Connector
from dossync.core.home import Home
from dossync.core.model import UsageError

# read whole: small, and a period may have moved to another fiscal year
WHOLE = ("fiscal_years", "periods")
# read for the plan's bookings only
BY_BOOKING = ("bookings", "lines", "matchings")


@dataclass(frozen=True)
class RepairPlan:
    """What a repair reloads, from reconcile's verdict.

    verdict: reconcile's (in_sync, simple_sync or full_sync). periods: the
    period codes whose segments differ and that a reload fixes (empty:
    nothing to reload). bookings: the ids of the bookings in them that
    differ from the portal's copy, reloaded with their lines and matchings
    (empty: only the fiscal-year and period tables differ). blocked: why
    only a full sync can fix what reconcile found (a rewound ledger, a
    deletion-log gap), else None.
    """

    verdict: str
    periods: tuple[str, ...] = ()
    bookings: tuple[int, ...] = ()
    blocked: str | None = None

    @classmethod
    def from_verdict(cls, verdict: reconciliation.Reconciliation) -> "RepairPlan":
        if verdict.verdict != "full_sync" or not verdict.segments:
            return cls(verdict.verdict)
        if not verdict.repairable:
            return cls(verdict.verdict,
                       blocked=verdict.history_problem or "; ".join(verdict.reasons))
        return cls(verdict.verdict, tuple(sorted({s["period"] for s in verdict.segments})),
                   tuple(verdict.bookings or ()))

    @property
    def reloads(self) -> bool:
        """Whether the plan reloads anything."""
        return bool(self.periods)

    @property
    def summary(self) -> str:
        """What the repair did (or why it did nothing), as its run reports it."""
        if self.reloads:
            return (f"repaired {len(self.periods)} period(s): {', '.join(self.periods)} "
                    f"({len(self.bookings)} booking(s) differed and were reloaded)")
        if self.blocked is not None:
            return self.blocked
        hint = ("a simple sync will bring the pending changes" if self.verdict == "simple_sync"
                else "the portal matches the ledger")
        return f"nothing to repair: reconcile says {self.verdict} ({hint})"


def plan(home: Home, dossier, state: portal.SyncState, connector: Connector) -> RepairPlan:
    """The repair plan of `dossier`, whose ledger `connector` has open.

    The verdict of a reconcile that saw this very ledger file and portal
    state (the analyst's, or the nightly's a moment ago) needs no second
    look; else reconcile looks now. UsageError when the package cannot
    reload single bookings (capabilities.targeted_repair).
    """
    caps = connector.capabilities
    if not caps.targeted_repair:
        raise UsageError(f"the {dossier.package} connector cannot reload single bookings: "
                         f"run a simple sync (it compares the whole book) or a full sync")
    stamp = connector.stamp() if caps.stamp else None
    verdict = (reconciliation.remembered(home, dossier.code, dossier, stamp, state)
               or reconciliation.reconcile(home, dossier.code))
    return RepairPlan.from_verdict(verdict)


def reload(connector: Connector, repair: RepairPlan
           ) -> Iterator[tuple[str, Iterator[pa.RecordBatch]]]:
    """The streams `repair` reloads, one after the other, each with its batches: read
    each stream's batches before asking for the next (one snapshot, one reader)."""
    for name in WHOLE:
        yield name, connector.read(name, None)
    for name in BY_BOOKING:
        yield name, connector.read_bookings(name, list(repair.bookings))
