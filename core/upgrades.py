"""Connector upgrades: which dossiers lack data their connector now brings, and what
reloading them costs.

Each connector class declares what each of its versions brought
(`base.VersionHistory`); the portal records, per dossier, the connector
version of its last full load (`dossiers.connector_version`, written by a
full sync and an activation). A dossier whose last full load came before a
version that brought data (the account classes and exact amounts of 0.4.0)
lacks that data until a full sync reads its whole ledger again: the monitor
shows it `action_required`, `status --json` says why in `full_sync_advised`,
reconcile says `full_sync`, and `dossync upgrade-plan` lists them with what
reloading them costs. A dossier loaded before versions were recorded (NULL)
is judged by what its connector declares of such dossiers
(`VersionHistory.unrecorded`).

The estimate of a reload: the rows of the dossier's last full load (or the
rows the portal holds for it now, if more: the ledger grew since), at the
rate that load itself ran (rows read / its seconds); without one, at
DOCUMENTED_ROWS_PER_SECOND; never faster than `[full_sync]
max_rows_per_second` lets it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime

from dossync.core import portal, window
from dossync.core.connectors import connector_class
from dossync.core.connectors.base import ConnectorVersion, VersionHistory
from dossync.core.home import Home
from dossync.core.model import Dossier, ManualOptions, UsageError

# What a full load runs at where no full sync of the dossier says better: the slowest
# reader `make bench` measures, Beancount's activation (bench/beancount_activation.py:
# 18,868 rows in about 1.5 s); a demo ledger loads at some 500,000 rows/s.
DOCUMENTED_ROWS_PER_SECOND = 10_000

_TITLES = {"demo": "demo package", "gnucash": "GnuCash", "beancount": "Beancount"}


def _history(package: str) -> VersionHistory | None:
    try:
        return connector_class(package).version_history
    except UsageError:  # a package this version does not read: nothing to say of it
        return None


def missing(dossier: Dossier) -> tuple[int, int, tuple[ConnectorVersion, ...]]:
    """(version of its last full load, the connector's version now, the versions since
    whose data it lacks); the last is empty when a full sync would bring nothing new."""
    history = _history(dossier.package)
    if history is None:
        return 0, 0, ()
    return (history.loaded(dossier.connector_version), history.current,
            history.missing(dossier.connector_version))


def new_data(versions: tuple[ConnectorVersion, ...]) -> str:
    """What those versions brought, in one phrase."""
    return "; ".join(f"{v.brought} (version {v.number}, dossync {v.release})" for v in versions)


def full_sync_advised(dossier: Dossier) -> str | None:
    """The sentence `status --json` and the monitor show when the dossier's connector now
    brings data it lacks; None otherwise."""
    loaded, current, lacking = missing(dossier)
    if not lacking:
        return None
    title = _TITLES.get(dossier.package, dossier.package)
    recorded = ("" if dossier.connector_version is not None
                else " (it was loaded before connector versions were recorded)")
    return (f"the {title} connector is at version {current} and {dossier.code}'s last full "
            f"load was by version {loaded}{recorded}: it lacks {new_data(lacking)}. A full "
            f"sync brings that: dossync sync {dossier.code} --full, or queue it with "
            f"dossync upgrade-plan --queue")


@dataclass(frozen=True)
class Reload:
    """One dossier to reload after a connector upgrade (`dossync upgrade-plan`).

    new: what the versions since its last full load brought. expected_rows,
    expected_seconds: what the reload reads and about how long it takes
    (see the module's docstring); measured: the rate is the dossier's own
    last full load's (False: the documented rate)."""

    dossier: str
    package: str
    from_version: int
    to_version: int
    new: str
    expected_rows: int
    expected_seconds: int
    measured: bool

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "measured"}


def _estimate(load: portal.FullLoad | None, throttle: int) -> tuple[int, int, bool]:
    """(rows, seconds, measured) of a full load, from the last one."""
    rows = max(load.last_rows or 0, load.portal_rows) if load else 0
    measured = bool(load and load.last_rows and load.last_seconds and load.last_seconds > 0)
    rate = (load.last_rows / load.last_seconds) if measured else DOCUMENTED_ROWS_PER_SECOND
    if throttle:
        rate = min(rate, throttle)
    return rows, max(1, math.ceil(rows / rate)) if rows else 0, measured


def plan(home: Home) -> list[Reload]:
    """The dossiers whose connector now brings data they lack, by code, with what reloading
    each costs."""
    dossiers = portal.list_dossiers(home.portal)
    todo = [(d, missing(d)) for d in dossiers]
    todo = [(d, m) for d, m in todo if m[2]]
    if not todo:
        return []
    loads = portal.full_loads(home.portal)
    throttle = home.settings().full_sync.max_rows_per_second
    out = []
    for dossier, (loaded, current, lacking) in todo:
        rows, seconds, measured = _estimate(loads.get(dossier.code), throttle)
        out.append(Reload(dossier=dossier.code, package=dossier.package, from_version=loaded,
                          to_version=current, new=new_data(lacking), expected_rows=rows,
                          expected_seconds=seconds, measured=measured))
    return out


def queue(home: Home, reloads: list[Reload], now: datetime | None = None) -> list[portal.Job]:
    """Queue a full sync job per dossier of the plan, in one commit (a worker runs them);
    outside the quiet window, where one is set, they wait for its next start, as any full
    sync asked then does (core/window.py)."""
    at = window.waits_until(home, "full", now or window.current_time())
    reason = window.waiting_reason(home, at) if at else None
    return portal.enqueue_jobs(home.portal, [(r.dossier, "full", ManualOptions())
                                             for r in reloads], not_before=at, reason=reason)
