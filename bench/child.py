"""The measured side of the benchmark: every measurement runs in a fresh process.

`bench/run.py` (the orchestrator, standard library only, so that its own
memory never leaks into a child's peak RSS) starts this module as

    python bench/child.py MODE ARGS...  --timing FILE

and reads back a small JSON document of in-process timings from FILE.
Modes:

    gen LINES SEED OUT          write a demo ledger (core.demo_package)
    dossync HOME ARGV...        the real CLI (dossync.core.cli.main) with phase timers;
                                ARGV is the CLI's own argument list
    dlt LEDGER WORKDIR          dlt sql_database(pyarrow) -> duckdb, replace
    bare LEDGER OUTDB           ADBC SQLite record batches -> DuckDB CTAS
    portal-counts HOME CODE     rows per stream held by the portal for CODE

This module never changes anything under core/: the dossync mode only wraps
a few core functions with timers, in its own process.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

REPO = Path(__file__).resolve().parent.parent
# The orchestrator points every child at one snapshot of dossync/core taken when the
# run started (others edit core/ while a run is in progress); PathFinder comes
# before the editable-install finder, so this copy is the one imported.
CORE_ROOT = os.environ.get("BENCH_CORE_ROOT") or str(REPO)
if CORE_ROOT not in sys.path:
    sys.path.insert(0, CORE_ROOT)


def peak_rss_mb() -> float | None:
    """This process's peak RSS so far (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

# The ledger tables every contender copies (the demo package's data tables).
LEDGER_TABLES = ["accounts", "journals", "fiscal_years", "periods", "relations", "bookings",
                 "booking_lines", "matchings"]

# Nullable text columns: the ADBC SQLite driver infers a column's type from its
# first batch, so an all-NULL first batch would be taken for integers and a
# later text value would fail. Same trick as core/connectors/demo.py.
NULLABLE_TEXT = {
    "relations": ["vat_number", "email", "language"],
    "bookings": ["due_date", "description", "reference"],
    "booking_lines": ["description", "vat_code"],
}


def _write_timing(path: str | None, doc: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(doc), encoding="utf-8")


# --- gen / counts ---------------------------------------------------------------
def mode_gen(lines: int, seed: int, out: str) -> dict:
    from dossync.core import demo_package

    company = demo_package.demo_companies(1, lines, seed)[0]
    t0 = time.perf_counter()
    demo_package.create_ledger(Path(out), company, seed=seed)
    return {"seconds": time.perf_counter() - t0, "company": company.code, "lines": company.lines}


# --- dossync --------------------------------------------------------------------
def mode_dossync(argv: list[str], profile: str | None) -> tuple[dict, int]:
    """Run the real CLI in-process with timers around the sync's phases."""
    import functools

    t_import0 = time.perf_counter()
    import dossync.core.cli as cli
    import dossync.core.portal as portal
    import dossync.core.sync as sync

    t_import = time.perf_counter() - t_import0
    phases: dict[str, float] = {}
    calls: dict[str, int] = {}
    hwm: dict[str, float | None] = {"after_import": peak_rss_mb()}

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0
                calls[name] = calls.get(name, 0) + 1
                hwm[name] = peak_rss_mb()
        return wrapper

    # Only what exists is wrapped: core/ is being edited concurrently.
    for module, attr, name in ((sync, "open_connector", "open_connector"),
                               (sync, "ledger_history_problem", "history_check"),
                               (sync, "_stage", "read_and_stage"),
                               (sync, "validate", "validate"),
                               (portal, "apply_sync", "portal_commit")):
        if callable(getattr(module, attr, None)):
            setattr(module, attr, timed(name, getattr(module, attr)))
    if callable(getattr(cli, "sync_dossier", None)):
        cli.sync_dossier = timed("sync_dossier", cli.sync_dossier)

    t0 = time.perf_counter()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        code = profiler.runcall(cli.main, argv)
        profiler.dump_stats(profile)
    else:
        code = cli.main(argv)
    t_main = time.perf_counter() - t0
    sys.stdout.flush()
    return {"import_seconds": t_import, "main_seconds": t_main,
            "in_process_seconds": phases.get("sync_dossier"),
            "phases": phases, "calls": calls, "peak_rss_mb_after": hwm,
            "core_file": cli.__file__, "exit_code": code}, code


def mode_portal_counts(home: str, code: str) -> dict:
    import duckdb

    from dossync.core.streams import STREAMS

    con = duckdb.connect(str(Path(home) / "portal.duckdb"), read_only=True)
    try:
        return {s.name: con.execute(f"SELECT count(*) FROM {s.name} WHERE dossier = ?",
                                    [code]).fetchone()[0] for s in STREAMS}
    finally:
        con.close()


# --- dlt --------------------------------------------------------------------------
def mode_dlt(ledger: str, workdir: str) -> dict:
    work = Path(workdir)
    t0 = time.perf_counter()
    import dlt
    from dlt.sources.sql_database import sql_database

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    source = sql_database(credentials=f"sqlite:///{ledger}", backend="pyarrow",
                          table_names=list(LEDGER_TABLES))
    pipeline = dlt.pipeline(pipeline_name="bench_ledger", pipelines_dir=str(work / "pipelines"),
                            destination=dlt.destinations.duckdb(str(work / "dlt.duckdb")),
                            dataset_name="ledger")
    info = pipeline.run(source, write_disposition="replace")
    t_load = time.perf_counter() - t1
    info.raise_on_failed_jobs()
    counts: dict[str, int] = {}
    try:
        row_counts = pipeline.last_trace.last_normalize_info.row_counts
        counts = {t: int(row_counts.get(t, 0)) for t in LEDGER_TABLES}
    except Exception as exc:  # the count is a sanity check, not the measurement
        counts = {"error": repr(exc)}
    return {"import_seconds": t_import, "in_process_seconds": t_load, "rows": counts,
            "dlt_version": dlt.__version__}


# --- bare copy ----------------------------------------------------------------------
def _select_list(con, table: str) -> str:
    cur = con.cursor()
    try:
        cur.execute(f"SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
        names = [r[0] for r in cur.fetchall()]
    finally:
        cur.close()
    text = set(NULLABLE_TEXT.get(table, ()))
    return ", ".join(f"COALESCE({n}, '') AS {n}" if n in text else n for n in names)


def mode_bare(ledger: str, outdb: str) -> dict:
    t0 = time.perf_counter()
    import adbc_driver_sqlite.dbapi as adbc
    import duckdb

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    src = adbc.connect(f"file:{ledger}?mode=ro")
    duck = duckdb.connect(outdb)
    rows: dict[str, int] = {}
    try:
        for table in LEDGER_TABLES:
            select = _select_list(src, table)
            cur = src.cursor()
            try:
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
                cur.execute(f"SELECT {select} FROM {table}")
                reader = cur.fetch_record_batch()
                duck.register("reader", reader)
                duck.execute(f"CREATE TABLE {table} AS SELECT * FROM reader")
                duck.unregister("reader")
            finally:
                cur.close()
        duck.execute("CHECKPOINT")
        t_load = time.perf_counter() - t1
        for table in LEDGER_TABLES:
            rows[table] = duck.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        duck.close()
        src.close()
    return {"import_seconds": t_import, "in_process_seconds": t_load, "rows": rows}


# --- main ---------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    timing = None
    profile = None
    if "--timing" in argv:
        i = argv.index("--timing")
        timing = argv[i + 1]
        del argv[i:i + 2]
    if "--profile" in argv:
        i = argv.index("--profile")
        profile = argv[i + 1]
        del argv[i:i + 2]
    mode, args = argv[0], argv[1:]
    code = 0
    if mode == "gen":
        doc = mode_gen(int(args[0]), int(args[1]), args[2])
    elif mode == "dossync":
        doc, code = mode_dossync(args, profile)
    elif mode == "dlt":
        doc = mode_dlt(args[0], args[1])
    elif mode == "bare":
        doc = mode_bare(args[0], args[1])
    elif mode == "portal-counts":
        doc = mode_portal_counts(args[0], args[1])
        print(json.dumps(doc))
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    doc["process_seconds"] = time.perf_counter() - T_START
    _write_timing(timing, doc)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
