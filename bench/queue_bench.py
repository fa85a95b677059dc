"""The job queue over many small dossiers: one worker slot against two, side by side.

`python bench/queue_bench.py [--dossiers N]` builds a demo firm of N small
dossiers (default 200; the issue's figure is 1,000), then, interleaved and
`--repeats` times: queues one simple sync per dossier (`nightly --queue`) and
times `dossync worker --until-idle` with `--concurrency 1` and with
`--concurrency 2` until the queue is empty. Reported: the medians and the
ratio concurrency 1 / concurrency 2 (goal >= 1.7 on two cores), and every
job's end (all must succeed). With `--postgres` the portal is a PostgreSQL
database (a server started with pgserver, or DOSSYNC_BENCH_PG_URL's), as
when workers run on several machines. Writes bench/results/queue.json (or
queue-postgres.json).
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
RESULTS = BENCH / "results"
DOSSYNC = [sys.executable, "-m", "dossync.core.cli"]
GOAL = 1.7


def dossync(home: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*DOSSYNC, "--home", str(home), *args], capture_output=True, text=True,
                          cwd=BENCH.parent)
    if done.returncode != 0:
        raise SystemExit(f"dossync {' '.join(args)} failed ({done.returncode}): "
                         f"{done.stderr[-2000:]}")
    return done


def drain(home: Path, concurrency: int) -> tuple[float, dict]:
    queued = json.loads(dossync(home, "nightly", "--queue", "--json").stdout)["jobs"]
    started = time.perf_counter()
    done = json.loads(dossync(home, "worker", "--until-idle", "--concurrency", str(concurrency),
                              "--json").stdout)
    elapsed = time.perf_counter() - started
    if done["run"] != len(queued) or done["failed"]:
        raise SystemExit(f"concurrency {concurrency}: {done['run']} run of {len(queued)} "
                         f"queued, {done['failed']} failed")
    return elapsed, {"jobs": len(queued), "succeeded": done["succeeded"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dossiers", type=int, default=200)
    p.add_argument("--lines", type=int, default=600)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--postgres", action="store_true",
                   help="the portal on a PostgreSQL server instead of HOME/portal.duckdb")
    args = p.parse_args(argv)
    server = None
    if args.postgres:
        from pg_bench import new_database, pg_server

        from dossync.core.home import PORTAL_ENV
        admin, server = pg_server(Path(tempfile.gettempdir()))
        os.environ[PORTAL_ENV] = new_database(admin, "dossync_queue_bench")
    with tempfile.TemporaryDirectory(prefix="dossync-queue-") as tmp:
        home = Path(tmp) / "firm"
        print(f"building {args.dossiers} dossiers of ~{args.lines} lines ...", flush=True)
        dossync(home, "demo", "--dossiers", str(args.dossiers), "--lines", str(args.lines))
        from dossync.core import portal
        from dossync.core.home import Home

        path = Home(home).portal
        for dossier in portal.list_dossiers(path):
            portal.update_dossier(path, dossier.code, nightly=True)
        times: dict[int, list[float]] = {1: [], 2: []}
        counts = {}
        for _ in range(args.repeats):
            for concurrency in (1, 2):
                elapsed, counts[concurrency] = drain(home, concurrency)
                times[concurrency].append(elapsed)
                print(f"  concurrency {concurrency}: {elapsed:.1f} s for "
                      f"{counts[concurrency]['jobs']} jobs", flush=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    del server
    report = {"portal": "postgres" if args.postgres else "duckdb",
              "dossiers": args.dossiers, "lines": args.lines, "seconds": times,
              "median_concurrency_1": round(one, 2), "median_concurrency_2": round(two, 2),
              "ratio": round(one / two, 2), "goal": GOAL, "goal_met": one / two >= GOAL,
              "per_job_ms_concurrency_1": round(one / args.dossiers * 1000, 1)}
    RESULTS.mkdir(exist_ok=True)
    name = "queue-postgres.json" if args.postgres else "queue.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(f"queue of {args.dossiers} simple syncs on {report['portal']}: concurrency 1 {one:.1f} s "
          f"({report['per_job_ms_concurrency_1']} ms a job), concurrency 2 {two:.1f} s; "
          f"ratio {report['ratio']}x (goal >= {GOAL}x): "
          f"{'PASS' if report['goal_met'] else 'MISSED'}")
    return 0 if report["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
