"""Reconcile and targeted-repair benchmark (issue 4): `python bench/reconcile_bench.py [--quick]`.

1. Reconcile of a 1M-line dossier (--quick: 100k) against a bare scan of the
   same tables, in one process and one run, repeats interleaved, medians:
   - the bare scan: `count(*), sum(debit), sum(credit)` over the ledger's
     booking_lines (SQLite) plus the same over the portal's lines of that
     dossier (DuckDB); also reported with the bookings tables added.
   - target: reconcile <= 3x the bare scan.
2. `sync --repair` of one period edited in a closed fiscal year
   (`ledger edit-closed-period`) against a full sync of the same edited
   dossier: rows read and wall time. Targets: repair reads <= 5% of the rows
   a full sync reads and is >= 10x faster. The repair follows a reconcile,
   as it does in use (the analyst's `dossync reconcile`, the nightly's
   verify), and reuses its verdict; a repair with no verdict kept (it
   reconciles first) is timed too, for information.

The ledger comes from bench/run.py's cache (bench/results/cache/), the home
is activated once with `dossync dossier add` and copied for each repair or
full-sync round (the ledger is edited, so every round starts pristine).
Results: bench/results/reconcile-latest.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import run  # noqa: E402  (bench/run.py: cached ledgers, activation through the CLI)
from dossync.core import demo_package, portal  # noqa: E402
from dossync.core.home import Home  # noqa: E402
from dossync.core.model import UsageError  # noqa: E402
from dossync.core.reconcile import reconcile  # noqa: E402
from dossync.core.sync import sync_dossier  # noqa: E402

CODE = "PEETERS"
TARGETS = {"reconcile_vs_scan": 3.0, "repair_rows_share": 0.05, "repair_speedup": 10.0}


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def copy_home(source: Path, target: Path) -> Home:
    """A copy of the home whose dossier points at the copied ledger."""
    shutil.copytree(source, target)
    ledger = target / "ledgers" / f"{CODE}.sqlite"
    portal.update_dossier(target / "portal.duckdb", CODE, source=str(ledger))
    return Home.resolve(str(target))


def bare_scan(home: Home, with_bookings: bool) -> dict:
    """count/sum over the ledger's and the portal's line tables (and bookings)."""
    ledger = home.root / "ledgers" / f"{CODE}.sqlite"
    out = {}
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        out["ledger_lines"] = con.execute(
            "SELECT count(*), sum(debit), sum(credit) FROM booking_lines").fetchone()
        if with_bookings:
            out["ledger_bookings"] = con.execute(
                "SELECT count(*), sum(rv) FROM bookings").fetchone()
    finally:
        con.close()
    with portal.connect(home.portal, read_only=True) as duck:
        out["portal_lines"] = duck.execute(
            "SELECT count(*), sum(debit), sum(credit) FROM lines WHERE dossier = ?",
            [CODE]).fetchall()[0]
        if with_bookings:
            out["portal_bookings"] = duck.execute(
                "SELECT count(*), sum(rv) FROM bookings WHERE dossier = ?", [CODE]).fetchall()[0]
    return out


def reconcile_round(home: Home, edited: Home, repeats: int) -> dict:
    """In sync (the benchmark's case) and, for information, after edit-closed-period."""
    times: dict[str, list[float]] = {"reconcile": [], "scan_lines": [], "scan_lines_bookings": [],
                                     "reconcile_full_sync": []}
    verdicts = set()
    for _ in range(repeats):  # interleaved: the machine is shared, same-run ratios count
        t, scan = timed(lambda: bare_scan(home, with_bookings=False))
        times["scan_lines"].append(t)
        t, result = timed(lambda: reconcile(home, CODE))
        times["reconcile"].append(t)
        verdicts.add(result.verdict)
        t, flagged = timed(lambda: reconcile(edited, CODE))
        times["reconcile_full_sync"].append(t)
        assert flagged.verdict == "full_sync", flagged.reasons
        t, _ = timed(lambda: bare_scan(home, with_bookings=True))
        times["scan_lines_bookings"].append(t)
    assert scan["ledger_lines"][0] == scan["portal_lines"][0], scan
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"times": times, "median": med, "verdicts": sorted(verdicts),
            "lines": scan["ledger_lines"][0],
            "ratio_vs_lines_scan": med["reconcile"] / med["scan_lines"],
            "ratio_vs_lines_bookings_scan": med["reconcile"] / med["scan_lines_bookings"]}


def edited_copy(pristine: Path, target: Path) -> tuple[Home, list[dict]]:
    home = copy_home(pristine, target)
    demo_package.apply_event(home.root / "ledgers" / f"{CODE}.sqlite", "edit-closed-period", [])
    result = reconcile(home, CODE)
    assert result.verdict == "full_sync" and result.repairable, result.reasons
    return home, result.segments


def repair_round(pristine: Path, workdir: Path, repeats: int) -> dict:
    out: dict = {"repair": [], "full": [], "repair_cold": []}
    for n in range(repeats):
        for kind in ("repair", "full", "repair_cold"):
            target = workdir / f"{kind}-{n}"
            home, segments = edited_copy(pristine, target)
            if kind == "repair_cold":  # no verdict kept: the repair reconciles first
                shutil.rmtree(home.verdicts)
            try:
                t, result = timed(lambda: sync_dossier(home, CODE, kind.removesuffix("_cold")))
            except UsageError as exc:
                shutil.rmtree(target, ignore_errors=True)
                return {"available": False, "reason": str(exc)}
            assert result.status == "succeeded", result.error
            after = reconcile(home, CODE)
            out[kind].append({"seconds": t, "rows_read": result.rows.read,
                              "segments": segments, "verdict_after": after.verdict})
            shutil.rmtree(target, ignore_errors=True)
    cold_s = statistics.median(r["seconds"] for r in out["repair_cold"])
    repair_s = statistics.median(r["seconds"] for r in out["repair"])
    full_s = statistics.median(r["seconds"] for r in out["full"])
    repair_rows = statistics.median(r["rows_read"] for r in out["repair"])
    full_rows = statistics.median(r["rows_read"] for r in out["full"])
    return {"available": True, "runs": out, "repair_seconds": repair_s, "full_seconds": full_s,
            "repair_rows": repair_rows, "full_rows": full_rows,
            "rows_share": repair_rows / full_rows, "speedup": full_s / repair_s,
            "repair_cold_seconds": cold_s, "speedup_cold": full_s / cold_s,
            "in_sync_after": all(r["verdict_after"] == "in_sync"
                                 for r in out["repair"] + out["full"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100k lines instead of 1M")
    p.add_argument("--lines", type=int, help="booking lines of the dossier")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    lines = args.lines or (100_000 if args.quick else 1_000_000)

    run.RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="reconcile-", dir=run.RESULTS))
    report: dict = {"dossiers": {}, "lines": lines, "repeats": args.repeats,
                    "started": datetime.now().isoformat(timespec="seconds"), "git": run.git_info()}
    problems: list[str] = []
    try:
        dossier = run.prepare_dossier(CODE, lines, args.seed, workdir, report)
        pristine = dossier.home
        home = copy_home(pristine, workdir / "reconcile")
        edited, _ = edited_copy(pristine, workdir / "reconcile-edited")
        reconcile(home, CODE)  # warm the page cache and the imports
        log(f"reconcile vs bare scan, {args.repeats} interleaved repeats")
        rec = reconcile_round(home, edited, args.repeats)
        report["reconcile"] = rec
        log("repair vs full sync of one edited closed period")
        rep = repair_round(pristine, workdir, args.repeats)
        report["repair"] = rep
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    m = rec["median"]
    lines_out = [f"reconcile of a {rec['lines']:,}-line dossier (verdict {', '.join(rec['verdicts'])}), "
                 f"median of {args.repeats}:",
                 f"  reconcile                      {m['reconcile']:.3f} s",
                 f"  bare scan (lines, both sides)  {m['scan_lines']:.3f} s   ratio "
                 f"{rec['ratio_vs_lines_scan']:.1f}x (target <= {TARGETS['reconcile_vs_scan']:.0f}x)",
                 f"  bare scan (lines + bookings)   {m['scan_lines_bookings']:.3f} s   ratio "
                 f"{rec['ratio_vs_lines_bookings_scan']:.1f}x",
                 f"  reconcile after edit-closed-period (full_sync verdict, prices the repair) "
                 f"{m['reconcile_full_sync']:.3f} s"]
    if rec["ratio_vs_lines_scan"] > TARGETS["reconcile_vs_scan"]:
        problems.append(f"reconcile is {rec['ratio_vs_lines_scan']:.1f}x a bare scan "
                        f"(target {TARGETS['reconcile_vs_scan']:.0f}x)")
    if not rep["available"]:
        lines_out.append(f"repair not available: {rep['reason']}")
        problems.append("repair not available")
    else:
        lines_out += [
            "sync --repair of one edited closed period vs a full sync, median:",
            f"  repair  {rep['repair_seconds']:.3f} s, {rep['repair_rows']:,.0f} rows read",
            f"  full    {rep['full_seconds']:.3f} s, {rep['full_rows']:,.0f} rows read",
            f"  (for information: a repair with no verdict kept, which reconciles first: "
            f"{rep['repair_cold_seconds']:.3f} s, {rep['speedup_cold']:.1f}x faster than full)",
            f"  rows share {rep['rows_share']:.1%} (target <= {TARGETS['repair_rows_share']:.0%}), "
            f"speed-up {rep['speedup']:.1f}x (target >= {TARGETS['repair_speedup']:.0f}x), "
            f"in sync after: {rep['in_sync_after']}"]
        if rep["rows_share"] > TARGETS["repair_rows_share"]:
            problems.append(f"repair reads {rep['rows_share']:.1%} of a full sync's rows")
        if rep["speedup"] < TARGETS["repair_speedup"]:
            problems.append(f"repair is only {rep['speedup']:.1f}x faster than a full sync")
        if not rep["in_sync_after"]:
            problems.append("reconcile is not in_sync after a repair or full sync")
    report["summary"] = lines_out
    report["problems"] = problems
    out = run.RESULTS / "reconcile-latest.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print("\n".join(lines_out))
    print("targets: " + ("all met" if not problems else "; ".join(problems)))
    print(f"details: {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
