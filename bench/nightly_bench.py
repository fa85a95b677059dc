"""Nightly over many small dossiers with no changes (issue: fixed per-dossier costs).

Measures, side by side in one run, with the real CLI (what cron runs):
- one small dossier's simple sync (`dossync sync CODE`), median of 5;
- `dossync nightly --jobs 1` and `--jobs 2` over N dossiers (default 200),
  interleaved, median of 3.
Targets: nightly(N) within 20x one dossier's simple sync; --jobs 2 faster
than --jobs 1. Writes bench/results/nightly.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DOSSYNC = [sys.executable, "-m", "dossync.core.cli"]


def run(home: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([*DOSSYNC, "--home", str(home), *args], capture_output=True, text=True,
                          cwd=BENCH.parent)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 4):
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dossiers", type=int, default=200)
    p.add_argument("--lines", type=int, default=600)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dossync-nightly-") as tmp:
        home = Path(tmp) / "firm"
        print(f"building {args.dossiers} dossiers of ~{args.lines} lines ...", flush=True)
        started = time.perf_counter()
        subprocess.run([*DOSSYNC, "--home", str(home), "demo", "--dossiers", str(args.dossiers),
                        "--lines", str(args.lines)], check=True, capture_output=True,
                       cwd=BENCH.parent)
        build = time.perf_counter() - started
        sys.path.insert(0, str(BENCH.parent))
        # after the build: the child processes made it
        from dossync.core import portal  # noqa: E402

        path = home / "portal.duckdb"
        codes = [d.code for d in portal.list_dossiers(path)]
        for code in codes:
            portal.update_dossier(path, code, nightly=True)
        one, jobs1, jobs2 = [], [], []
        run(home, "nightly", "--jobs", "1")  # warm the file cache
        for _ in range(max(5, args.repeats)):
            one.append(run(home, "sync", codes[-1]))
        for _ in range(args.repeats):
            jobs1.append(run(home, "nightly", "--jobs", "1"))
            jobs2.append(run(home, "nightly", "--jobs", "2"))
    m1, n1, n2 = (statistics.median(v) for v in (one, jobs1, jobs2))
    report = {
        "dossiers": args.dossiers, "lines_per_dossier": args.lines, "build_seconds": build,
        "one_simple_sync": m1, "nightly_jobs1": n1, "nightly_jobs2": n2,
        "nightly_over_one": n1 / m1, "jobs2_over_jobs1": n2 / n1,
        "samples": {"one": one, "jobs1": jobs1, "jobs2": jobs2},
        "targets": {"nightly_within_20x": n1 / m1 <= 20, "jobs2_faster": n2 < n1},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nightly.json").write_text(json.dumps(report, indent=2))
    print(f"one simple sync (CLI)        {m1:7.2f} s")
    print(f"nightly --jobs 1 ({args.dossiers:>4})      {n1:7.2f} s   = {n1 / m1:5.1f}x one sync "
          f"(target <= 20x: {'PASS' if n1 / m1 <= 20 else 'FAIL'})")
    print(f"nightly --jobs 2 ({args.dossiers:>4})      {n2:7.2f} s   = {n2 / n1:5.2f}x jobs 1 "
          f"(target < 1: {'PASS' if n2 < n1 else 'FAIL'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
