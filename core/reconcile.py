"""Reconciliation: the ledger's figures against the portal's, and a verdict.

A full sync is heavy for the office server, so it must be justified. This
module computes the same figures on both sides for every segment (fiscal
year x period x journal x account): line count, debit, credit and a
checksum over booking keys and versions. A package with the figures
capability computes its side itself (the connector's `figures`, an aggregate
query, not a full read); for the others Polars computes it from the streams.
The portal's side is one DuckDB query (`portal.reconciliation_figures`).
Polars joins the two and classifies every segment that differs:

- explained by **pending changes**: take out of both sides the bookings the
  ledger changed or deleted since the portal's cursor (as a simple sync
  would read them: the cursor minus the engine's lookback) and the rest
  agrees; a simple sync fixes it. When the ledger's changed bookings are
  exactly proposals the portal already shows as provisional, the
  explanation is **provisional** (the sync swaps provisional for definitive).
- **unexplained**: anything else, notably segments the ledger never reported
  as changed (an edit that bypassed change tracking, moved fiscal years). A
  reload of those segments, or a full sync, is justified.

Before any of that, fingerprints (core.figures) say where to look: a few
sums over all lines and bookings that both sides compute without grouping.
When they agree, no segment differs and nothing more is read; when they do
not, the same sums per period pick the periods to compare segment by
segment. Grouping a million lines by segment is what made reconcile cost
several scans of the ledger; now an in-sync dossier costs about one.

Provisional proposals never enter the comparison: it is ledger against the
portal's mirrored (definitive) bookings. A ledger that went back in time or
whose deletion log no longer reaches back to the last sync
(`history.ledger_history_problem`) makes every difference unexplained: the
cursor cannot be trusted, only a full sync is safe.

The checksum of a segment is the sum over its lines of one formula
(`core.figures.checksum_sql` / `checksum_expr`): integer arithmetic that
SQLite, DuckDB and Polars compute identically and without overflow, and
additive, so the pending bookings' share can be subtracted from a segment's
figures.

What the package can do is asked of the connector's checked capabilities
(core.connectors.base): figures, segment figures, reload by keys, stamp.
A verdict that calls for a reload of some periods is what `core.repair`
plans a targeted repair from; this module knows nothing of the engine.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa

from dossync.core import figures as fp
from dossync.core import i18n
from dossync.core import money, portal, upgrades
from dossync.core.connectors import connector_settings, open_connector
from dossync.core.connectors.base import Connector
from dossync.core.home import Home
from dossync.core.model import DossyncError, TerminalError
from dossync.core.streams import BY_NAME, STREAMS
from dossync.core.files import write_atomically
from dossync.core.history import LOOKBACK, ledger_history_problem

Verdict = Literal["in_sync", "simple_sync", "full_sync"]
Explanation = Literal["pending_changes", "provisional"]

log = logging.getLogger(__name__)

VERDICTS: tuple[str, ...] = ("in_sync", "simple_sync", "full_sync")
KEY = ["fiscal_year", "period", "journal", "account"]
FIGURES = ["line_count", "debit", "credit", "checksum"]
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_TIMEOUT = 600

_SEGMENT_SCHEMA = {"fiscal_year": pl.String, "period": pl.String, "journal": pl.String,
                   "account": pl.String, "line_count": pl.Int64,
                   "debit": pl.Decimal(money.PRECISION, money.SCALE),
                   "credit": pl.Decimal(money.PRECISION, money.SCALE), "checksum": pl.Int64}


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of reconciling one dossier.

    dossier: its code. verdict: in_sync | simple_sync | full_sync.
    reasons: plain sentences saying why. differences: one dict per segment
    whose figures differ ({fiscal_year, period, journal, account,
    ledger_count, portal_count, ledger_amount, portal_amount, explained_by};
    amounts are net debit - credit as decimal strings; explained_by is
    "pending_changes", "provisional" or None). segments: the
    {fiscal_year, period} pairs to reload, fiscal year as the ledger has it
    now (empty unless full_sync). repairable: a full_sync that a reload of
    just `segments` can fix (False when the ledger's history is broken:
    rewound, or a deletion-log gap; then only a full sync is safe).
    history_problem: that message, or None.
    Counts: periods_compared (every period, by fingerprint), periods_detailed
    (those whose fingerprints differ, or all of them for a package without
    fingerprints), segments_compared (the segments of the detailed periods),
    ledger_lines, portal_lines, pending_changes
    (ledger change counter minus the portal's cursor), provisional (the
    portal's provisional proposals), full_sync_rows (ledger rows a full sync
    reads, all streams) and repair_rows (what a targeted repair reads: the
    differing bookings with their lines and matchings and the fiscal-year
    and period tables, or where the package cannot name the bookings, every
    booking and line of `segments`). bookings: the ids of the bookings
    in `segments` whose figures differ (None: the package cannot say); a
    targeted repair reads just those. stamp: the ledger file and portal
    state the verdict was computed on (a repair reuses it while they hold).
    """

    dossier: str
    verdict: Verdict
    reasons: tuple[str, ...]
    differences: list[dict] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    repairable: bool = False
    history_problem: str | None = None
    segments_compared: int = 0
    periods_compared: int = 0
    periods_detailed: int = 0
    ledger_lines: int = 0
    portal_lines: int = 0
    pending_changes: int = 0
    provisional: int = 0
    full_sync_rows: int = 0
    repair_rows: int = 0
    stamp: dict | None = None  # the ledger and portal states it was computed on
    bookings: tuple[int, ...] | None = None  # in `segments`, the bookings that differ

    def to_json(self) -> dict:
        """CONTRACT.md's reconcile document (plus repairable and the two costs)."""
        return {
            "dossier": self.dossier,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "differences": [dict(d) for d in self.differences],
            "segments": [dict(s) for s in self.segments],
            "repairable": self.repairable,
            "full_sync_rows": self.full_sync_rows,
            "repair_rows": self.repair_rows,
            "bookings": None if self.bookings is None else list(self.bookings),
        }

    def frame(self) -> pl.DataFrame:
        """The differences as a Polars frame; amounts as exact decimals."""
        schema = {"fiscal_year": pl.String, "period": pl.String, "journal": pl.String,
                  "account": pl.String, "ledger_count": pl.Int64, "portal_count": pl.Int64,
                  "ledger_amount": pl.String, "portal_amount": pl.String,
                  "explained_by": pl.String}
        frame = pl.DataFrame(self.differences, schema=schema)
        return frame.with_columns(pl.col("ledger_amount", "portal_amount")
                                  .cast(pl.Decimal(18, 2)))


# --- figures on both sides ------------------------------------------------------
def _segments(table: pa.Table | None) -> pl.DataFrame:
    if table is None or table.num_rows == 0:
        return pl.DataFrame(schema=_SEGMENT_SCHEMA)
    frame = pl.from_arrow(table)
    return frame.select(pl.col(c).cast(t) for c, t in _SEGMENT_SCHEMA.items())


def _by_segment(frame: pl.DataFrame, columns: list[str], prefix: str) -> pl.DataFrame:
    return frame.group_by(KEY).agg(pl.col(c).sum().alias(prefix + c) for c in columns)


def _figures_from_streams(connector: Connector, exclude: list[int]) -> pa.Table:
    """For a package without a figures capability: the same aggregate from a full read."""
    def stream(name: str) -> pl.DataFrame:
        batches = list(connector.read(name, None))
        return pl.from_arrow(pa.Table.from_batches(batches, schema=BY_NAME[name].schema))

    bookings, lines = stream("bookings"), stream("lines")
    years = stream("fiscal_years").group_by("id").agg(pl.col("code").min().alias("fiscal_year"))
    periods = stream("periods").group_by("id").agg(pl.col("code").min().alias("period"))
    joined = (lines.join(bookings.filter(~pl.col("id").is_in(exclude)), left_on="booking_id",
                         right_on="id")
              .join(years, left_on="fiscal_year_id", right_on="id", how="left")
              .join(periods, left_on="period_id", right_on="id", how="left")
              .with_columns(pl.col("fiscal_year", "period").fill_null(""),
                            fp.checksum_expr("booking_id", "rv", "line_no").alias("ck")))
    return joined.group_by(KEY).agg(pl.len().cast(pl.Int64).alias("line_count"),
                                    pl.col("debit").sum(), pl.col("credit").sum(),
                                    pl.col("ck").sum().alias("checksum")).to_arrow()


def ledger_figures(connector: Connector, exclude: list[int] | None = None,
                   periods: list[str] | None = None) -> pl.DataFrame:
    """The ledger's segment figures as a Polars frame (see the module docstring).

    periods: only the segments of these period codes (None: all).
    """
    exclude = exclude or []
    if connector.capabilities.figures:
        return _segments(connector.figures(exclude, periods=periods))
    frame = _segments(_figures_from_streams(connector, exclude))
    return frame if periods is None else frame.filter(pl.col("period").is_in(periods))


def portal_figures(home: Home, code: str, periods: list[str] | None = None) -> pl.DataFrame:
    """The portal's segment figures (mirrored bookings only) as a Polars frame."""
    return _segments(portal.reconciliation_figures(home.portal, code, periods=periods)["figures"])


# --- fingerprints: which periods need comparing segment by segment ----------------
@dataclass(frozen=True)
class _Narrowed:
    periods: list[str] | None  # period codes to compare per segment; None: all of them
    compared: int = 0  # periods whose fingerprints were compared
    ledger_lines: int = 0
    portal_lines: int = 0


@dataclass(frozen=True)
class _Chart:
    """The ledger's small tables, for fingerprints (usable: a canonical chart)."""

    accounts: frozenset[str]
    journals: str
    periods: dict
    years: dict

    @classmethod
    def read(cls, connector: Connector) -> "_Chart | None":
        if not connector.capabilities.figures:
            return None

        def codes(stream: str, key: str, value: str) -> dict:
            table = pa.Table.from_batches(list(connector.read(stream, None)),
                                          schema=BY_NAME[stream].schema)
            return dict(zip(table.column(key).to_pylist(),
                            (v or "" for v in table.column(value).to_pylist())))

        accounts = frozenset(codes("accounts", "code", "code"))
        if not fp.canonical_chart(accounts):
            return None
        return cls(accounts, fp.journal_list(codes("journals", "code", "code")),
                   codes("periods", "id", "code"), codes("fiscal_years", "id", "code"))


def _without(whole: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    return {k: v - part[k] for k, v in whole.items()}


def _narrow(home: Home, code: str, connector: Connector, chart: _Chart | None,
            view: portal.ReconcileView, whole) -> _Narrowed:
    """Compare fingerprints (core.figures) and keep only the periods that differ.

    `whole`: the future of the ledger's whole fingerprint, started beside the
    portal visit that brought `view` (with the mirror's). When the two
    differ, per period: the ledger's in SQLite threads, the portal's in
    DuckDB beside them.
    """
    if chart is None or view.fingerprint is None or not fp.canonical_chart(view.accounts):
        return _Narrowed(None)
    ledger = whole.result()
    if view.quarantined:  # the portal never saw those: take them off the ledger's sums
        ledger = _without(ledger, connector.fingerprint(chart.journals, view.quarantined))
    mirror = view.fingerprint
    if ledger == mirror and chart.periods == view.periods and chart.years == view.fiscal_years:
        return _Narrowed([], len(chart.periods), ledger["line_count"], mirror["line_count"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        mirrored = pool.submit(portal.period_fingerprints, home.portal, code, chart.journals)
        by_ledger = pl.from_arrow(connector.period_fingerprints(view.quarantined, chart.journals))
        by_portal = pl.from_arrow(mirrored.result())

    def keyed(frame: pl.DataFrame, periods: dict, years: dict) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("period_id").replace_strict(periods, default="", return_dtype=pl.String)
            .alias("period"),
            pl.col("fy_min").replace_strict(years, default="", return_dtype=pl.String).alias("fy"),
            (pl.col("fy_min") != pl.col("fy_max")).alias("mixed")).drop("fy_min", "fy_max")

    joined = keyed(by_ledger, chart.periods, chart.years).join(
        keyed(by_portal, view.periods, view.fiscal_years), on="period_id", how="full",
        coalesce=True, suffix="_p")
    fields = ["period", "fy", *fp.LINE_FIELDS, *fp.BOOKING_FIELDS]
    differs = (pl.any_horizontal(pl.col(f).ne_missing(pl.col(f"{f}_p")) for f in fields)
               | pl.col("mixed").fill_null(False) | pl.col("mixed_p").fill_null(False))
    changed = joined.filter(differs)
    # a period whose id or code changed on one side is compared under both codes
    wanted = {c for c in changed["period"].to_list() + changed["period_p"].to_list()
              if c is not None}
    return _Narrowed(sorted(wanted), joined.height,
                     int(by_ledger["line_count"].sum() or 0),
                     int(by_portal["line_count"].sum() or 0))


# --- the comparison --------------------------------------------------------------
def compare(ledger: pl.DataFrame, mirrored: pl.DataFrame,
            ledger_pending: pl.DataFrame | None = None,
            portal_pending: pl.DataFrame | None = None,
            provisional_booked: pl.DataFrame | None = None,
            explain: bool = True) -> pl.DataFrame:
    """Join both sides per segment and classify the segments that differ.

    ledger_pending / portal_pending: per-segment figures of the bookings the
    ledger changed or deleted since the cursor (ledger's and portal's copy).
    provisional_booked: per-segment count/debit/credit of the portal's
    provisional bookings whose proposal the ledger has now booked.
    Returns one row per differing segment with l_*/p_* figures and
    explained_by (null: unexplained). explain=False: nothing is explained.
    """
    empty = pl.DataFrame(schema=_SEGMENT_SCHEMA)
    frame = (_by_segment(ledger, FIGURES, "l_")
             .join(_by_segment(mirrored, FIGURES, "p_"), on=KEY, how="full", coalesce=True)
             .join(_by_segment(empty if ledger_pending is None else ledger_pending, FIGURES,
                               "lp_"), on=KEY, how="left")
             .join(_by_segment(empty if portal_pending is None else portal_pending, FIGURES,
                               "pp_"), on=KEY, how="left")
             .join(_by_segment(empty if provisional_booked is None else provisional_booked,
                               FIGURES[:3], "pv_"), on=KEY, how="left"))
    numbers = [c for c in frame.columns if c not in KEY]
    frame = frame.with_columns(pl.col(numbers).fill_null(0))
    differs = pl.any_horizontal(pl.col(f"l_{c}") != pl.col(f"p_{c}") for c in FIGURES)
    rest_agrees = pl.all_horizontal(
        (pl.col(f"l_{c}") - pl.col(f"lp_{c}")) == (pl.col(f"p_{c}") - pl.col(f"pp_{c}"))
        for c in FIGURES)
    provisional_accounts = (pl.col("pv_line_count") > 0) & pl.all_horizontal(
        (pl.col(f"l_{c}") - pl.col(f"p_{c}")) == pl.col(f"pv_{c}") for c in FIGURES[:3])
    explained = (pl.when(pl.lit(not explain)).then(pl.lit(None, pl.String))
                 .when(rest_agrees & provisional_accounts).then(pl.lit("provisional"))
                 .when(rest_agrees).then(pl.lit("pending_changes"))
                 .otherwise(pl.lit(None, pl.String)))
    return (frame.filter(differs).with_columns(explained.alias("explained_by"))
            .sort(["period", "fiscal_year", "journal", "account"]))


def _difference_dicts(frame: pl.DataFrame) -> list[dict]:
    return [{"fiscal_year": r["fiscal_year"], "period": r["period"], "journal": r["journal"],
             "account": r["account"], "ledger_count": r["l_line_count"],
             "portal_count": r["p_line_count"],
             "ledger_amount": money.to_str(r["l_debit"] - r["l_credit"]),
             "portal_amount": money.to_str(r["p_debit"] - r["p_credit"]),
             "explained_by": r["explained_by"]}
            for r in frame.iter_rows(named=True)]


def _segments_to_reload(frame: pl.DataFrame) -> list[dict]:
    """{fiscal_year, period} per period, the fiscal year as the ledger has it now."""
    if frame.height == 0:
        return []
    per_period = (frame.with_columns((pl.col("l_line_count") > 0).alias("in_ledger"))
                  .sort(["in_ledger", "fiscal_year"], descending=[True, False])
                  .group_by("period", maintain_order=True).agg(pl.col("fiscal_year").first())
                  .sort("period"))
    return [{"fiscal_year": fy, "period": period}
            for period, fy in per_period.select("period", "fiscal_year").iter_rows()]


def _period_rows(connector: Connector, segments: list[dict]) -> int:
    if not segments:
        return 0
    wanted = {s["period"] for s in segments}
    if connector.capabilities.figures:
        # only the wanted periods: pricing a repair must not cost a pass over the ledger
        frame = pl.from_arrow(connector.figures(grain="period", periods=sorted(wanted)))
        if frame.height == 0:
            return 0
        chosen = frame.filter(pl.col("period").is_in(list(wanted)))
        return int(chosen["bookings"].sum() + chosen["line_count"].sum())
    # no figures: count what a reload of those periods would read from the streams
    periods = pl.from_arrow(pa.Table.from_batches(list(connector.read("periods", None)),
                                                  schema=BY_NAME["periods"].schema))
    ids = periods.filter(pl.col("code").is_in(list(wanted)))["id"].to_list()
    bookings = pl.from_arrow(pa.Table.from_batches(list(connector.read("bookings", None)),
                                                   schema=BY_NAME["bookings"].schema))
    chosen = bookings.filter(pl.col("period_id").is_in(ids))["id"]
    lines = pl.from_arrow(pa.Table.from_batches(list(connector.read("lines", None)),
                                                schema=BY_NAME["lines"].schema))
    return chosen.len() + lines.filter(pl.col("booking_id").is_in(chosen.to_list())).height


def differing_bookings(home: Home, code: str, connector: Connector, periods: list[str],
                       period_codes: dict[int, str] | None = None) -> list[int] | None:
    """Ids of the bookings in these periods whose figures differ between ledger and portal.

    Both sides print each booking of those periods (core.figures: its fields
    that enter the figures and its lines' sums); a booking one side lacks
    differs too. None when the package cannot print its bookings (no segment figures).
    period_codes: the ledger's period id -> code, when already read.
    """
    if not connector.capabilities.segment_figures:
        return None
    if period_codes is None:
        table = pa.Table.from_batches(list(connector.read("periods", None)),
                                      schema=BY_NAME["periods"].schema)
        period_codes = dict(zip(table.column("id").to_pylist(), table.column("code").to_pylist()))
    ids = [i for i, c in period_codes.items() if c in set(periods)]
    mirrored, portal_ids = portal.booking_fingerprints(home.portal, code, periods, ids)
    ledger = pl.from_arrow(connector.booking_fingerprints(sorted(set(ids) | set(portal_ids))))
    joined = ledger.join(pl.from_arrow(mirrored), on="id", how="full", coalesce=True, suffix="_p")
    fields = [c for c in ledger.columns if c != "id"]
    differ = joined.filter(pl.any_horizontal(pl.col(f).ne_missing(pl.col(f"{f}_p"))
                                             for f in fields))
    return sorted(differ["id"].to_list())


def _dossier(home: Home, code: str):
    home.require()
    return portal.require_dossier(home.portal, code)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


# --- reconcile ---------------------------------------------------------------------
def reconcile(home: Home, code: str) -> Reconciliation:
    """Compare the dossier's ledger with its portal copy and say what would fix it.

    Raises UsageError for an unknown dossier and LedgerUnavailable (naming
    the file) when the package cannot be read. Reads only: takes no dossier
    lock, changes nothing.
    """
    home.require()
    pool = ThreadPoolExecutor(max_workers=1)
    opened: dict = {}

    def start(dossier) -> str | None:
        """Open the ledger and start its whole fingerprint beside the portal visit."""
        opened["connector"] = connector = open_connector(dossier.package, dossier.source,
                                                         connector_settings(home, dossier))
        # before any figure is read: a ledger written meanwhile no longer matches it
        opened["stamp"] = connector.stamp() if connector.capabilities.stamp else None
        opened["chart"] = chart = _Chart.read(connector)
        if chart is None:
            return None
        opened["whole"] = pool.submit(connector.fingerprint, chart.journals)
        return chart.journals

    try:
        view = portal.reconcile_view(home.portal, code, start)
    except BaseException:
        pool.shutdown(wait=True)
        if "connector" in opened:
            opened["connector"].close()
        raise
    dossier, state, quarantined = view.state.dossier, view.state, view.quarantined
    connector, chart = opened["connector"], opened["chart"]
    try:
        caps = connector.capabilities
        position = connector.position()
        cursor = state.cursor
        tracked = cursor is not None and caps.change_cursor
        problem = (ledger_history_problem(connector, position, state, code)
                   if tracked else None)
        narrowed = _narrow(home, code, connector, chart, view, opened.get("whole"))
        ledger = ledger_figures(connector, quarantined, narrowed.periods)
        changed, deleted = _pending_changes(connector, cursor if tracked else None, quarantined)
        pending_ids = sorted(set(changed["booking_id"].to_list()) | set(deleted))
        if narrowed.periods == []:  # the fingerprints agree: no segment differs, no visit
            mirrored, portal_pending = _segments(None), None
        else:
            mirror = portal.reconciliation_figures(home.portal, code, pending_ids,
                                                   narrowed.periods)
            mirrored = _segments(mirror["figures"])
            portal_pending = (pl.from_arrow(mirror["bookings"]).select(KEY + FIGURES)
                              if mirror["bookings"].num_rows else None)
        provisional = pl.from_arrow(view.provisional)
        booked_refs = {r for r in changed["reference"].to_list() if r}
        provisional_booked = provisional.filter(pl.col("ref").is_in(list(booked_refs)))
        differences = compare(ledger, mirrored, changed.select(KEY + FIGURES), portal_pending,
                              provisional_booked, explain=tracked and problem is None)
        if not tracked:  # never synced, or no change cursor: a simple sync reads everything
            differences = differences.with_columns(pl.lit("pending_changes").alias("explained_by"))
        unexplained = differences.filter(pl.col("explained_by").is_null())
        segments = _segments_to_reload(unexplained)
        full_rows = sum(connector.count(s.name, None) for s in STREAMS)
        differing = (differing_bookings(home, code, connector, [s["period"] for s in segments],
                                        chart.periods if chart else None)
                     if segments and problem is None else None)
        names = _booking_names(connector, differing or [])
        if differing is not None and caps.targeted_repair:
            # what the repair reads: those bookings, and the small period tables
            repair_rows = (connector.booking_rows(differing) + connector.count("periods", None)
                           + connector.count("fiscal_years", None))
        else:
            repair_rows = _period_rows(connector, segments)
    finally:
        pool.shutdown(wait=True)
        connector.close()

    pending = (position.high_water - cursor) if cursor is not None else position.high_water
    n_provisional = provisional["ref"].n_unique() if provisional.height else 0
    n_booked = provisional_booked["ref"].n_unique() if provisional_booked.height else 0
    reasons: list[str] = []
    if problem:
        verdict: Verdict = "full_sync"
        reasons.append(problem)
        if segments:
            reasons.append(f"{_plural(differences.height, 'segment')} differ, in "
                           f"{_plural(len(segments), 'period')}: "
                           f"{', '.join(s['period'] for s in segments)}")
    elif unexplained.height:
        verdict = "full_sync"
        reasons.append(_unexplained_reason(code, unexplained, segments))
        if differing is not None:
            reasons.append(_differing_reason(differing, segments, names))
    elif cursor is None:
        verdict = "simple_sync"
        reasons.append("the portal has never synced this dossier: a first sync loads the "
                       "whole ledger (activation)")
    elif pending > 0 or differences.height:
        verdict = "simple_sync"
    else:
        verdict = "in_sync"
    if not problem and cursor is not None and caps.change_cursor and pending > 0:
        text = (f"the ledger has {_plural(pending, 'change')} since the last sync "
                f"(change counter {position.high_water}, the portal saw {cursor})")
        if deleted:
            text += f", {_plural(len(deleted), 'booking')} deleted among them or just before"
        reasons.append(text)
    if not caps.change_cursor and differences.height:
        reasons.append(f"the {dossier.package} package has no change cursor: a simple sync "
                       f"reads the whole book and writes what changed")
    explained = differences.filter(pl.col("explained_by").is_not_null())
    if explained.height:
        reasons.append(f"{_plural(explained.height, 'segment')} differ only by those changes: "
                       f"a simple sync (dossync sync {code}) brings them in line")
    if n_booked:
        reasons.append(f"{_plural(n_booked, 'proposal')} now booked in the ledger: a simple "
                       f"sync replaces the provisional booking{'s' if n_booked > 1 else ''} "
                       f"by the definitive one{'s' if n_booked > 1 else ''}")
    if n_provisional - n_booked > 0:
        reasons.append(f"{_plural(n_provisional - n_booked, 'provisional proposal')} not yet "
                       f"booked: shown in the portal as provisional, never a difference")
    if quarantined:
        reasons.append(f"{_plural(len(quarantined), 'ledger booking')} in quarantine left out "
                       f"of the comparison (see 'dossync dossier show {code}')")
    detailed = ledger.join(mirrored, on=KEY, how="full")
    if narrowed.periods is None:
        ledger_lines = int(ledger["line_count"].sum() or 0)
        portal_lines = int(mirrored["line_count"].sum() or 0)
        n_periods = detailed.select(pl.col("period").n_unique()).item() if detailed.height else 0
        compared = detailed_periods = n_periods
    else:
        ledger_lines, portal_lines = narrowed.ledger_lines, narrowed.portal_lines
        compared, detailed_periods = narrowed.compared, len(narrowed.periods)
    # The connector now brings data the portal lacks for this dossier (account classes,
    # exact amounts): the figures may agree, but only a full sync reads that data.
    advised = upgrades.full_sync_advised(dossier)
    if advised:
        reasons.insert(len(reasons) if verdict == "full_sync" else 0, advised)
        verdict = "full_sync"
    if verdict == "in_sync":
        reasons.insert(0, f"ledger and portal agree in all {_plural(compared, 'period')} "
                          f"({portal_lines} booking lines)")
    result = Reconciliation(
        dossier=code, verdict=verdict, reasons=tuple(reasons),
        differences=_difference_dicts(differences),
        segments=segments if verdict == "full_sync" else [],
        # (a reload of some periods does not bring what a connector upgrade brings)
        repairable=verdict == "full_sync" and problem is None and (not advised or bool(segments)),
        history_problem=problem,
        segments_compared=detailed.height, periods_compared=compared,
        periods_detailed=detailed_periods, ledger_lines=ledger_lines, portal_lines=portal_lines,
        pending_changes=max(pending, 0), provisional=n_provisional,
        full_sync_rows=full_rows, repair_rows=repair_rows if verdict == "full_sync" else 0,
        stamp=(_stamp(dossier, opened["stamp"], state) if opened["stamp"] else None),
        bookings=tuple(differing) if differing is not None and verdict == "full_sync" else None)
    _remember(home, result)
    return result


# --- verdicts kept for the repair that follows --------------------------------------
def _stamp(dossier, ledger_stamp: str, state: portal.SyncState) -> dict:
    return {"source": dossier.source, "ledger": ledger_stamp, "cursor": state.cursor,
            "last_run": state.last_run}


def _verdict_file(home: Home, code: str) -> Path:
    return home.verdicts / f"{code}.json"


def _remember(home: Home, result: Reconciliation) -> None:
    """Keep the verdict beside the portal: `sync --repair` reuses it while both
    the ledger file and the dossier's portal state are as they were."""
    if result.stamp is None:
        return
    path = _verdict_file(home, result.dossier)
    doc = {"stamp": result.stamp, "verdict": result.verdict, "reasons": list(result.reasons),
           "segments": result.segments, "repairable": result.repairable,
           "history_problem": result.history_problem, "full_sync_rows": result.full_sync_rows,
           "repair_rows": result.repair_rows,
           "bookings": None if result.bookings is None else list(result.bookings)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(doc))
    except OSError as exc:  # a read-only home: the repair just reconciles again
        log.warning("could not keep the reconcile verdict of %s in %s: %s",
                    result.dossier, path, exc)


def remembered(home: Home, code: str, dossier, ledger_stamp: str | None,
               state: portal.SyncState) -> Reconciliation | None:
    """The last verdict of `code`, if the ledger and the portal are still as it saw them."""
    path = _verdict_file(home, code)
    if ledger_stamp is None or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("stamp") != _stamp(dossier, ledger_stamp, state):
            return None
        if doc["repairable"] and doc.get("bookings") is None:  # kept by an older version
            return None
        return Reconciliation(
            dossier=code, verdict=doc["verdict"], reasons=tuple(doc["reasons"]),
            segments=[{"fiscal_year": s["fiscal_year"], "period": s["period"]}
                      for s in doc["segments"]],
            repairable=bool(doc["repairable"]), history_problem=doc["history_problem"],
            full_sync_rows=int(doc["full_sync_rows"]), repair_rows=int(doc["repair_rows"]),
            stamp=doc["stamp"],
            bookings=None if doc.get("bookings") is None else tuple(int(i) for i in doc["bookings"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # a damaged file only costs a fresh look at the ledger
        log.warning("ignoring the kept verdict %s (%s: %s): reconciling again",
                    path, type(exc).__name__, exc)
        return None


def _pending_changes(connector: Connector, cursor: int | None,
                     quarantined: list[int]) -> tuple[pl.DataFrame, list[int]]:
    """What the next simple sync reads again (the cursor minus the lookback): the
    changed bookings' segment figures and the deleted bookings' ids (none
    without a cursor)."""
    changed = pl.DataFrame(schema={"booking_id": pl.Int64, "reference": pl.String,
                                   **_SEGMENT_SCHEMA})
    if cursor is None:
        return changed, []
    since = max(0, cursor - LOOKBACK)
    caps = connector.capabilities
    if caps.segment_figures:
        table = connector.changed_segments(since, quarantined)
        if table.num_rows:
            changed = pl.from_arrow(table).select(
                pl.col(c).cast(t) for c, t in changed.schema.items())
    deleted: list[int] = []
    if caps.deletion_log:
        gone = pl.from_arrow(connector.deletions(since))
        deleted = sorted({int(k) for k in gone.filter(pl.col("stream") == "bookings")["key"]
                          .to_list() if str(k).lstrip("-").isdigit()})
    return changed, deleted


SHOWN_BOOKINGS = 5


def _booking_names(connector: Connector, ids: list[int]) -> list[str]:
    """How the accountant knows the first few of these bookings: journal, number, date."""
    if not ids or not connector.capabilities.reload_by_keys:
        return []
    shown = ids[:SHOWN_BOOKINGS]
    table = pa.Table.from_batches(list(connector.read_bookings("bookings", shown)),
                                  schema=BY_NAME["bookings"].schema)
    known = {i: f"{n if n.startswith(j) else f'{j} {n}'} of {d}" for i, j, n, d in zip(
        *(table.column(c).to_pylist() for c in ("id", "journal", "doc_no", "date")))}
    return [known.get(i, f"booking {i}, no longer in the ledger") for i in shown]


def _differing_reason(differing: list[int], segments: list[dict], names: list[str]) -> str:
    where = "that period" if len(segments) == 1 else "those periods"
    if not differing:
        return (f"no booking in {where} differs from the portal's copy, the fiscal-year and "
                f"period tables do: a targeted repair reloads just those")
    more = len(differing) - len(names)
    named = f" ({'; '.join(names)}{f' and {more} more' if more > 0 else ''})" if names else ""
    return (f"{_plural(len(differing), 'booking')} in {where} "
            f"differ{'s' if len(differing) == 1 else ''} from the portal's copy{named}: a "
            f"targeted repair reloads just {'that one' if len(differing) == 1 else 'those'}")


def _unexplained_reason(code: str, unexplained: pl.DataFrame, segments: list[dict]) -> str:
    parts = []
    for segment in segments:
        rows = unexplained.filter(pl.col("period") == segment["period"])
        accounts = sorted({f"{j} {a}" for j, a in rows.select("journal", "account").iter_rows()})
        shown = ", ".join(accounts[:4]) + (f" and {len(accounts) - 4} more" if len(accounts) > 4
                                           else "")
        text = f"{segment['period']} (fiscal year {segment['fiscal_year']}: {shown})"
        in_portal = set(rows.filter(pl.col("p_line_count") > 0)["fiscal_year"].to_list())
        if in_portal and in_portal != {segment["fiscal_year"]}:
            text = (f"{segment['period']} (now in fiscal year {segment['fiscal_year']}, in the "
                    f"portal still in {', '.join(sorted(in_portal))}: fiscal years rearranged)")
        parts.append(text)
    return (f"unexplained differences in {_plural(unexplained.height, 'segment')} of "
            f"{_plural(len(segments), 'period')} the ledger did not report as changed: "
            f"{'; '.join(parts)}. A simple sync cannot see these edits: reload those periods "
            f"(dossync sync {code} --repair) or run a full sync (dossync sync {code} --full)")


# --- the firm at a glance -----------------------------------------------------
def overview(home: Home) -> pl.DataFrame:
    """One row per dossier: verdict, what a full sync and a targeted repair would read.

    repair_rows is null where a targeted repair cannot help (in sync, only a
    simple sync needed, or a broken ledger history). A dossier whose ledger
    cannot be read gets verdict null and the error as its reason.
    """
    home.require()
    rows = []
    for dossier in portal.list_dossiers(home.portal):
        row = {"dossier": dossier.code, "name": dossier.name, "verdict": None,
               "repairable": None, "differences": 0, "unexplained": 0, "periods": "",
               "full_sync_rows": None, "repair_rows": None, "reason": None}
        try:
            result = reconcile(home, dossier.code)
        except DossyncError as exc:  # one unreadable ledger must not hide the others
            row["reason"] = str(exc)
        else:
            row.update(verdict=result.verdict, repairable=result.repairable,
                       differences=len(result.differences),
                       unexplained=sum(d["explained_by"] is None for d in result.differences),
                       periods=", ".join(s["period"] for s in result.segments),
                       full_sync_rows=result.full_sync_rows,
                       repair_rows=result.repair_rows if result.repairable else None,
                       reason=result.reasons[0] if result.reasons else None)
        rows.append(row)
    return pl.DataFrame(rows, schema={
        "dossier": pl.String, "name": pl.String, "verdict": pl.String, "repairable": pl.Boolean,
        "differences": pl.Int64, "unexplained": pl.Int64, "periods": pl.String,
        "full_sync_rows": pl.Int64, "repair_rows": pl.Int64, "reason": pl.String})


# --- the reconciliation notebook as HTML --------------------------------------------
def render_notebook(home: Home, name: str, out: Path, code: str | None = None) -> Path:
    """Execute notebooks/NAME.ipynb headless with nbconvert and write its HTML to `out`."""
    notebook = NOTEBOOKS / f"{name}.ipynb"
    if not notebook.is_file():
        raise TerminalError(f"notebook {notebook} is missing: is dossync installed completely?")
    out = Path(out).expanduser().resolve()
    # the report speaks the command's language (--lang included): core/i18n.py
    env = {**os.environ, "DOSSYNC_HOME": str(home.root), "DOSSYNC_LANG": i18n.current()}
    if code:
        env["DOSSIER"] = code
    with tempfile.TemporaryDirectory(prefix="dossync-nb-") as tmp:
        done = subprocess.run(
            # a report, not a notebook dump: the code cells stay out of the HTML
            # (and the opening note for whoever opens the notebook itself: `report-hidden`)
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
             "--no-input", "--TagRemovePreprocessor.enabled=True",
             "--TagRemovePreprocessor.remove_cell_tags=report-hidden",
             f"--ExecutePreprocessor.timeout={NOTEBOOK_TIMEOUT}",
             "--output-dir", tmp,
             "--output", name, str(notebook)],
            capture_output=True, text=True, env=env, cwd=NOTEBOOKS, timeout=NOTEBOOK_TIMEOUT + 60)
        produced = Path(tmp) / f"{name}.html"
        if done.returncode != 0 or not produced.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise TerminalError(f"rendering {notebook.name} failed (nbconvert exit "
                                f"{done.returncode}):\n{tail}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(produced), out)
    return out


def render_html(home: Home, code: str, out: Path) -> Path:
    """The reconciliation notebook for one dossier, executed, as an HTML file at `out`."""
    _dossier(home, code)
    return render_notebook(home, "reconcile_dossier", out, code)
