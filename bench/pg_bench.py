"""The portal on PostgreSQL against the portal in DuckDB, side by side in one run.

`python bench/pg_bench.py [--lines N] [--repeats R]` takes the cached demo
ledger of N lines (default 1,000,000; bench/run.py's cache), activates it in
a DuckDB portal and in a PostgreSQL portal (a server this script starts with
pgserver, or the one DOSSYNC_BENCH_PG_URL names), then, alternating the two
portals R times (default 2):

- a full sync (`dossync sync CODE --full`, a child process each, wall time);
- the trial balance and the dashboard of that dossier (in this process,
  the portal functions the CLI and the UI call; the median of 5 calls).

Every run must succeed and both portals must give the same trial balance.
Reported: the medians and the ratios PostgreSQL / DuckDB (no goal is set:
DuckDB is the embedded default; the number says what a shared server
costs). Writes bench/results/pg.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pg_server(workdir: Path) -> tuple[str, object]:
    """An admin address of a PostgreSQL server, and what keeps it running."""
    given = os.environ.get("DOSSYNC_BENCH_PG_URL")
    if given:
        return given, None
    import pgserver

    server = pgserver.get_server(f"/tmp/dossync-bench-pg-{os.getpid()}", cleanup_mode="delete")
    return server.get_uri(), server


def new_database(admin: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


def dossync(home: Path, env: dict, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([*DOSSYNC, "--home", str(home), *args, "--json"], capture_output=True,
                          text=True, cwd=BENCH.parent, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dossync {' '.join(args)} failed ({done.returncode}): "
                         f"{done.stderr[-2000:]}{done.stdout[-2000:]}")
    return wall, json.loads(done.stdout)


def timed(call, repeats: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    from run import cached_ledger  # bench/run.py's ledger cache

    from dossync.core import reports
    from dossync.core.home import PORTAL_ENV, Home

    with tempfile.TemporaryDirectory(prefix="dossync-pg-bench-") as tmp:
        workdir = Path(tmp)
        source, _ = cached_ledger(args.lines, 1, workdir)
        admin, server = pg_server(workdir)
        url = new_database(admin, "dossync_bench")
        base = {k: v for k, v in os.environ.items() if k != PORTAL_ENV}
        portals = {"duckdb": (workdir / "duck", base),
                   "postgres": (workdir / "pg", {**base, PORTAL_ENV: url})}
        code = "BIG"
        for name, (home, env) in portals.items():
            ledger = home / "ledgers" / f"{code}.sqlite"
            ledger.parent.mkdir(parents=True)
            shutil.copyfile(source, ledger)
            log(f"{name}: activating the {args.lines:,}-line dossier")
            wall, run = dossync(home, env, "dossier", "add", code, "--package", "demo",
                                "--source", str(ledger))
            log(f"{name}: activated in {wall:.1f} s")
        full: dict[str, list[float]] = {name: [] for name in portals}
        for round_ in range(args.repeats):
            for name, (home, env) in portals.items():
                wall, run = dossync(home, env, "sync", code, "--full")
                assert run["status"] == "succeeded", run
                full[name].append(wall)
                log(f"round {round_ + 1}: {name} full sync {wall:.1f} s "
                    f"({run['rows']['read']:,} rows)")
        reads: dict[str, dict[str, float]] = {}
        balances = {}
        for name, (home, env) in portals.items():
            os.environ.pop(PORTAL_ENV, None)
            if PORTAL_ENV in env:
                os.environ[PORTAL_ENV] = env[PORTAL_ENV]
            path = Home(home).portal
            tb, balances[name] = timed(lambda: reports.trial_balance(path, code))
            dash, _ = timed(lambda: reports.dashboard(path, code))
            reads[name] = {"trial_balance": tb, "dashboard": dash}
            log(f"{name}: trial balance {tb * 1000:.0f} ms, dashboard {dash * 1000:.0f} ms")
        os.environ.pop(PORTAL_ENV, None)
        if balances["duckdb"] != balances["postgres"]:
            raise SystemExit("the two portals give different trial balances")
        del server
    med = {name: statistics.median(times) for name, times in full.items()}
    report = {
        "lines": args.lines, "repeats": args.repeats,
        "full_sync_seconds": full,
        "full_sync_median": {k: round(v, 2) for k, v in med.items()},
        "full_sync_ratio_pg_over_duckdb": round(med["postgres"] / med["duckdb"], 2),
        "reads_seconds": {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in reads.items()},
        "trial_balance_ratio_pg_over_duckdb":
            round(reads["postgres"]["trial_balance"] / reads["duckdb"]["trial_balance"], 2),
        "dashboard_ratio_pg_over_duckdb":
            round(reads["postgres"]["dashboard"] / reads["duckdb"]["dashboard"], 2),
        "same_trial_balance": True,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pg.json").write_text(json.dumps(report, indent=2))
    print(f"{args.lines:,}-line dossier, PostgreSQL / DuckDB: full sync "
          f"{med['postgres']:.1f} s / {med['duckdb']:.1f} s = "
          f"{report['full_sync_ratio_pg_over_duckdb']}x; trial balance "
          f"{reads['postgres']['trial_balance'] * 1000:.0f} / "
          f"{reads['duckdb']['trial_balance'] * 1000:.0f} ms = "
          f"{report['trial_balance_ratio_pg_over_duckdb']}x; dashboard "
          f"{reads['postgres']['dashboard'] * 1000:.0f} / "
          f"{reads['duckdb']['dashboard'] * 1000:.0f} ms = "
          f"{report['dashboard_ratio_pg_over_duckdb']}x; the same trial balance on both")
    return 0


if __name__ == "__main__":
    sys.exit(main())
