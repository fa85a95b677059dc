"""Benchmark: activation of a Beancount dossier from a bean-example ledger of 10+ years.

    python bench/beancount_activation.py [--years 12] [--repeats 3] [--seed 1]

Generates a ledger with beancount's own `bean-example` (cached under
bench/results/cache/), then activates it `--repeats` times in fresh homes,
each in a fresh process (`dossync dossier add ... --package beancount`),
and reports where the time goes:

- loader: beancount's loader (`beancount.loader`: parse, plugins, booking,
  balance checks), which the connector calls and cannot make faster;
- outside the loader, split into the connector's own conversion to Arrow
  (exact weights, content hashes) and the engine (staging, validation,
  the portal commit), plus process start and imports.

The question the issue asks: what share of an activation is spent outside
`beancount.loader`. Results go to bench/results/beancount-activation.json.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# Runs in the child: wraps the stages with timers, then runs the real CLI entry point.
CHILD = r"""
import json, sys, time
T0 = time.perf_counter()
timings = {}

def timed(module, name, label):
    original = getattr(module, name)
    def wrapper(*args, **kw):
        t = time.perf_counter()
        try:
            return original(*args, **kw)
        finally:
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - t
    setattr(module, name, wrapper)

from dossync.core import portal, sync
from dossync.core.cli import main
from dossync.core.connectors import beancount_book, snapshot
timings["imports"] = time.perf_counter() - T0
timed(beancount_book, "load", "loader")
timed(beancount_book, "convert_ledger", "connector_convert")
timed(snapshot, "with_versions", "connector_hashes")
timed(sync, "_stage", "engine_stage")
timed(sync, "validate", "engine_validate")
timed(portal, "apply_sync", "engine_commit")
t = time.perf_counter()
code = main(["--home", sys.argv[1], "dossier", "add", "BENCH", "--package", "beancount",
             "--source", sys.argv[2], "--json"])
timings["activation"] = time.perf_counter() - t
timings["process"] = time.perf_counter() - T0
print(json.dumps({"exit": int(code), "timings": timings}), file=sys.stderr)
"""


def ledger(years: int, seed: int) -> Path:
    cache = RESULTS / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bean-example-{years}y-s{seed}.beancount"
    if not path.exists():
        begin = 2025 - years
        script = Path(sys.executable).parent / "bean-example"
        subprocess.run([str(script), "--date-begin", f"{begin}-01-01",
                        "--date-end", "2025-01-01", "--seed", str(seed), "-o", str(path)],
                       check=True, capture_output=True)
    return path


def run_once(source: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-bc-") as tmp:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / "firm"), str(source)],
                              cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"activation failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    timings = json.loads(done.stderr.strip().splitlines()[-1])["timings"]
    timings["wall"] = wall
    return {"timings": timings, "rows": result["rows"], "warnings": result["warnings"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    source = ledger(args.years, args.seed)
    lines = sum(1 for _ in source.open())
    runs = [run_once(source) for _ in range(args.repeats)]
    keys = runs[0]["timings"].keys()
    median = {k: statistics.median(r["timings"][k] for r in runs) for k in keys}
    activation, loader = median["activation"], median["loader"]
    connector = median["connector_convert"] + median["connector_hashes"]
    engine = median["engine_stage"] + median["engine_validate"] + median["engine_commit"]
    report = {
        "ledger": {"years": args.years, "seed": args.seed, "file_lines": lines,
                   "rows": runs[0]["rows"], "warnings": runs[0]["warnings"]},
        "repeats": args.repeats,
        "median_seconds": {k: round(v, 4) for k, v in median.items()},
        "share_outside_loader_of_activation": round(1 - loader / activation, 3),
        "share_outside_loader_of_process_wall": round(1 - loader / median["wall"], 3),
        "outside_loader_seconds": {
            "connector (exact weights, hashes)": round(connector, 4),
            "engine (stage, validate, commit)": round(engine, 4),
            "rest of activation (portal setup, run bookkeeping)": round(
                activation - loader - connector - engine, 4),
            "process start and imports": round(median["wall"] - activation, 4),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "beancount-activation.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
