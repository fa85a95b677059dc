"""Benchmark: start-up of the terminal UI to the first painted monitor.

`python bench/tui_startup.py` builds two homes, one with 10 dossiers and
one with 2,000, and starts the UI on each in a fresh process (headless
Textual, the same app and screens), interleaved, 3 times each. A run ends
when the monitor's table holds every dossier and the screen has been
painted with it. Reported: wall time from spawning the process to that
moment (median of 3), the ratio 2,000 / 10 (target <= 1.5), and inside the
child the time to read the monitor (one portal query) and to fill the table.

The homes are built cheaply: one small demo dossier is synced for real,
the others are registered with core.portal.add_dossier on hard links of its
ledger and given a recorded sync run (core.portal.record_run), so every
monitor row is a real row with a last sync. Building the 2,000-dossier home
takes a minute and a half (two short portal commits per dossier), so the
homes are cached in bench/results/cache/tui-homes/ (the UI only reads
them). Results go to bench/results/tui_startup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

SIZES = (10, 2000)
REPEATS = 3
TARGET = 1.5
VISIBLE = 34  # table rows visible at 120x40: the first painted monitor shows them all


CACHE = BENCH / "results" / "cache" / "tui-homes"
HOME_VERSION = 1  # bump when build_home changes


def cached_home(count: int) -> Path:
    home = CACHE / f"v{HOME_VERSION}-{count}"
    done = home / "complete"
    if not done.is_file():
        if home.exists():
            import shutil

            shutil.rmtree(home)
        t = time.perf_counter()
        build_home(home, count)
        done.write_text("ok")
        print(f"built a home with {count} dossiers in {time.perf_counter() - t:.1f}s",
              file=sys.stderr)
    return home


def build_home(home: Path, count: int) -> Path:
    from dossync.core import portal
    from dossync.core.cli import main

    assert main(["--home", str(home), "demo", "--dossiers", "1", "--lines", "300",
                 "--seed", "3"]) == 0
    path = home / "portal.duckdb"
    first = portal.list_dossiers(path)[0]
    run = portal.runs(path, first.code, 1)[0]
    from dossync.core.model import RowCounts, SyncResult

    template = SyncResult(run_id="", dossier="", kind="full", status="succeeded",
                          rows=RowCounts(read=run["read"], inserted=run["inserted"]),
                          started_at=run["started_at"], finished_at=run["finished_at"])
    for i in range(1, count):
        code = f"D{i:05d}"
        ledger = home / "ledgers" / f"{code}.sqlite"
        os.link(first.source, ledger)
        portal.add_dossier(path, replace(first, code=code, name=f"Dossier {i:05d} BV",
                                         source=str(ledger), nightly=i % 3 == 0))
        status = "failed" if i % 17 == 0 else "succeeded"
        portal.record_run(path, replace(template, run_id=f"bench-{code}", dossier=code,
                                        status=status,
                                        error="ledger unreachable" if status == "failed" else None))
    return home


# --- the child: one start-up ----------------------------------------------------------------
def child(home: str, expected: int) -> None:
    t_start = time.perf_counter()
    from dossync.core.home import Home
    from textual.widgets import DataTable
    from dossync.tui.app import DossyncApp
    from dossync.tui.screens.monitor import MonitorScreen

    t_imported = time.perf_counter()
    marks: dict[str, float] = {}

    render_view = MonitorScreen._render_view

    def timed_render_view(screen) -> None:
        started = time.perf_counter()
        render_view(screen)
        marks["fill_table"] = marks.get("fill_table", 0.0) + time.perf_counter() - started

    MonitorScreen._render_view = timed_render_view

    class Timed(DossyncApp):
        # Textual calls the base class's handler too (after this one): no super() here.
        def on_monitor_loaded(self, message) -> None:
            marks.setdefault("rows_read", time.perf_counter())
            self.call_after_refresh(self._check_painted)

        def _check_painted(self) -> None:
            screen = self.screen
            if not isinstance(screen, MonitorScreen):
                return
            rows = screen.query_one("#monitor", DataTable).row_count
            if rows >= min(expected, VISIBLE) and "painted" not in marks:
                marks["painted"] = time.perf_counter()  # after the refresh that showed them
                # Told now, on the first paint: tearing the app down is not start-up.
                print(json.dumps({"import": t_imported - t_start,
                                  "to_rows_read": marks["rows_read"] - t_start,
                                  "fill_table": marks["fill_table"],
                                  "to_painted": marks["painted"] - t_start}), flush=True)
            if rows == expected:
                marks["all_rows"] = time.perf_counter()
                print(json.dumps({"to_all_rows": marks["all_rows"] - t_start}), flush=True)
                self.exit()
            else:
                self.call_after_refresh(self._check_painted)

    app = Timed(Home(Path(home)), frozen=True)
    app.run(headless=True, size=(120, 40))


def one_run(home: Path, count: int) -> dict:
    """Wall time from spawning the UI's process to its first painted monitor."""
    # a cached home written by an older version: let the CLI bring it up to date first
    subprocess.run([sys.executable, "-m", "dossync.core.cli", "--home", str(home), "dossier",
                    "list", "--json"], capture_output=True, cwd=REPO)
    started = time.perf_counter()
    errors = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen([sys.executable, __file__, "--child", str(home), str(count)],
                               stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
    line = process.stdout.readline()
    wall = time.perf_counter() - started
    out = process.stdout.read()
    process.wait(timeout=120)
    errors.seek(0)
    err = errors.read()
    if process.returncode != 0 or not line.strip() or not out.strip():
        raise RuntimeError(f"the UI did not start on {count} dossiers: {err[-2000:]}")
    return {"wall": wall, **json.loads(line), **json.loads(out.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("HOME", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    homes = {count: cached_home(count) for count in SIZES}
    results: dict[int, list[dict]] = {c: [] for c in SIZES}
    for _ in range(args.repeats):  # interleaved: the machine is shared
        for count in SIZES:
            results[count].append(one_run(homes[count], count))
    summary = {}
    for count, runs in results.items():
        summary[count] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    small, large = summary[SIZES[0]], summary[SIZES[1]]
    ratio = large["wall"] / small["wall"]
    print(f"{'dossiers':>9} {'wall':>8} {'import':>8} {'rows read':>10} {'fill table':>11} "
          f"{'painted':>8} {'all rows':>9}   (seconds, median of {args.repeats}, fresh process each)")
    for count in SIZES:
        s = summary[count]
        print(f"{count:>9} {s['wall']:>8.3f} {s['import']:>8.3f} {s['to_rows_read']:>10.3f} "
              f"{s['fill_table']:>11.3f} {s['to_painted']:>8.3f} {s['to_all_rows']:>9.3f}")
    print("wall: spawn to first painted monitor, seen from outside; painted/all rows: inside "
          "the child, from its start to the paint showing the first screenful / every row")
    verdict = "OK" if ratio <= TARGET else "MISSED"
    print(f"start-up ratio {SIZES[1]} / {SIZES[0]} dossiers: {ratio:.2f} "
          f"(target <= {TARGET}): {verdict}")
    out = BENCH / "results" / "tui_startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": SIZES, "repeats": args.repeats, "runs": results,
                               "median": summary, "ratio": ratio, "target": TARGET,
                               "ok": ratio <= TARGET}, indent=2))
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
