"""dossync benchmark: `make bench` (or `python bench/run.py [--quick]`).

Measures, side by side in one run, and checks against the targets:

1. Full sync of a large dossier (1M booking lines; --quick: 100k), i.e. the
   `dossync sync CODE --full` re-sync of an already-active dossier, against
   (a) dlt (sql_database, pyarrow backend -> duckdb, replace) and
   (b) a bare ADBC SQLite -> DuckDB CREATE TABLE AS copy of the same tables.
   Targets: dossync >= 3x faster than dlt, <= 2x the bare copy;
   peak RSS <= dlt's; peak RSS at the large size <= 1.5x at a 10x smaller size.
2. Simple sync of 100 new documents on the large dossier vs a 10k-line one.
   Target: large within 1.5x of small.
3. A cProfile of one full sync of the large dossier (top entries).

Every measurement runs in a fresh process (bench/child.py); wall time and
peak RSS come from os.wait4 on that very child. This orchestrator imports
only the standard library, so its own memory does not show up in a child's
peak RSS. Repeats are interleaved and medians reported: the machine is
shared, ratios from the same run are what count.

Generated ledgers are cached under bench/results/cache/ keyed by (lines,
seed, generator hash); every run works on copies. Results go to
bench/results/latest.json (and a time-stamped copy).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
CACHE = RESULTS / "cache"
CHILD = BENCH / "child.py"
PYTHON = sys.executable

LEDGER_TABLES = ["accounts", "journals", "fiscal_years", "periods", "relations", "bookings",
                 "booking_lines", "matchings"]

TARGETS = {
    "full_vs_dlt": 3.0,        # dlt time / dossync time >= 3
    "full_vs_bare": 2.0,       # dossync time / bare time <= 2
    "rss_vs_dlt": 1.0,         # dossync peak RSS / dlt peak RSS <= 1
    "rss_scaling": 1.5,        # dossync peak RSS large / peak RSS 10x smaller <= 1.5
    "simple_scaling": 1.5,     # simple sync large / small <= 1.5
}


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- running children ---------------------------------------------------------------
class ChildFailed(RuntimeError):
    pass


def run_child(args: list[str], *, label: str, workdir: Path, env: dict | None = None,
              cwd: Path | None = None, check: bool = True) -> dict:
    """Run `python bench/child.py ARGS --timing FILE`; wall time and peak RSS via wait4."""
    fd, timing_path = tempfile.mkstemp(prefix="timing-", suffix=".json", dir=workdir)
    os.close(fd)
    out_path, err_path = Path(timing_path + ".out"), Path(timing_path + ".err")
    cmd = [PYTHON, str(CHILD), *args, "--timing", timing_path]
    full_env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", **(env or {})}
    if SNAPSHOT is not None:
        full_env["BENCH_CORE_ROOT"] = str(SNAPSHOT.parent)  # holds the package dossync/
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=str(cwd or workdir))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    try:
        timing = json.loads(Path(timing_path).read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        timing = {}
    for p in (Path(timing_path), out_path, err_path):
        p.unlink(missing_ok=True)
    result = {"label": label, "wall": wall, "maxrss_kb": usage.ru_maxrss,
              "user": usage.ru_utime, "sys": usage.ru_stime, "rc": proc.returncode,
              "timing": timing, "stdout": stdout, "stderr": stderr}
    if check and proc.returncode != 0:
        raise ChildFailed(f"{label} exited with {proc.returncode}:\n{stderr[-3000:]}\n{stdout[-2000:]}")
    return result


def baseline(workdir: Path) -> dict:
    """Python start-up alone: wall and peak RSS of an empty child."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-c", "pass"], cwd=str(workdir))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": time.perf_counter() - t0, "maxrss_kb": usage.ru_maxrss}


# --- ledgers and homes --------------------------------------------------------------------
# One copy of core/ (and the demo package's data/*.csv) taken when the run
# starts: other engineers edit core/ while a run is in progress, and a run must
# measure one version of the code throughout. Children import it first.
SNAPSHOT: Path | None = None


def code_files(root: Path) -> list[Path]:
    files = [f for f in (root / "core").rglob("*") if f.is_file() and f.suffix in (".py", ".sql")
             and "__pycache__" not in f.parts]
    return sorted(files) + sorted((root / "data").glob("*.csv"))


def fingerprint(root: Path, only: tuple[str, ...] | None = None) -> str:
    h = hashlib.sha256()
    for f in code_files(root):
        rel = f.relative_to(root).as_posix()
        if only and rel not in only:
            continue
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def take_snapshot(workdir: Path) -> Path:
    """src/dossync/{core,data}: the folders as the import package dossync lays them out."""
    root = workdir / "src" / "dossync"
    for f in code_files(REPO):
        target = root / f.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return root


def generator_hash() -> str:
    """The demo package's generator (the whole core/demo_package/), its schema and data."""
    root = SNAPSHOT or REPO
    package = tuple(rel for f in code_files(root)
                    if (rel := f.relative_to(root).as_posix()).startswith("core/demo_package/"))
    return fingerprint(root, package + ("core/ledger_schema.sql", "data/mar.csv",
                                        "data/vat_codes.csv"))[:10]


def cached_ledger(lines: int, seed: int, workdir: Path) -> tuple[Path, dict]:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"ledger-{lines}-s{seed}-{generator_hash()}.sqlite"
    for stale in CACHE.glob(f"ledger-{lines}-s{seed}-*.sqlite"):
        if stale != path:
            stale.unlink(missing_ok=True)  # made by another version of the generator
    if path.exists():
        return path, {"cached": True}
    log(f"generating a {lines:,}-line ledger (seed {seed}) into the cache")
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    r = run_child(["gen", str(lines), str(seed), str(tmp)], label=f"gen {lines}", workdir=workdir)
    os.replace(tmp, path)
    return path, {"cached": False, "wall": r["wall"], **r["timing"]}


def ledger_counts(ledger: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in LEDGER_TABLES}
    finally:
        con.close()


def dossync(home: Path, *cli_args: str, label: str, workdir: Path, profile: Path | None = None,
            check: bool = True) -> dict:
    args = ["dossync", "--home", str(home), *cli_args]
    if profile is not None:
        args += ["--profile", str(profile)]
    r = run_child(args, label=label, workdir=workdir, check=check)
    try:
        r["json"] = json.loads(r["stdout"]) if r["stdout"].strip() else None
    except json.JSONDecodeError:
        r["json"] = None
    return r


class Dossier:
    def __init__(self, code: str, lines: int, home: Path, ledger: Path) -> None:
        self.code, self.lines, self.home, self.ledger = code, lines, home, ledger


def prepare_dossier(code: str, lines: int, seed: int, workdir: Path, report: dict) -> Dossier:
    source, gen = cached_ledger(lines, seed, workdir)
    home = workdir / f"home-{code.lower()}"
    ledger = home / "ledgers" / f"{code}.sqlite"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, ledger)
    log(f"{code}: activating {lines:,}-line dossier (dossier add)")
    r = dossync(home, "dossier", "add", code, "--package", "demo", "--source", str(ledger),
                "--json", label=f"activate {code}", workdir=workdir)
    report["dossiers"][code] = {
        "lines_requested": lines, "ledger_counts": ledger_counts(ledger),
        "ledger_bytes": ledger.stat().st_size, "generation": gen,
        "activation": summarise(r)}
    return Dossier(code, lines, home, ledger)


def summarise(r: dict) -> dict:
    doc = r.get("json") or {}
    t = r.get("timing", {})
    return {"wall": r["wall"], "maxrss_mb": r["maxrss_kb"] / 1024, "cpu": r["user"] + r["sys"],
            "rc": r["rc"], "in_process": t.get("in_process_seconds"),
            "phases": t.get("phases"), "import_seconds": t.get("import_seconds"),
            "status": doc.get("status"), "rows": doc.get("rows"),
            "warnings": doc.get("warnings"), "error": doc.get("error"),
            "extra_rows": t.get("rows"), "peak_rss_mb_after": t.get("peak_rss_mb_after"),
            "core_file": t.get("core_file")}


def all_timings(report: dict):
    for d in report["dossiers"].values():
        yield d["activation"]
    for section in ("full", "simple"):
        for runs in report[section]["runs"].values():
            yield from runs
    if report["simple"].get("no_change"):
        yield report["simple"]["no_change"]


# --- the measurements ---------------------------------------------------------------------
def full_sync_round(big: Dossier, ref: Dossier, workdir: Path, n: int, report: dict,
                    problems: list[str]) -> None:
    runs = report["full"]["runs"]
    # dossync: the full re-sync of an already-active dossier
    r = dossync(big.home, "sync", big.code, "--full", "--json", label=f"dossync full {big.code}",
                workdir=workdir, check=False)
    runs["dossync"].append(summarise(r))
    check_sync(r, f"full sync {big.code} #{n}", problems)
    log(f"  dossync full {big.lines:,}: {r['wall']:.2f}s wall, {r['maxrss_kb'] / 1024:.0f} MB")

    # dlt into a fresh duckdb file, its working dir inside a temp dir
    dlt_dir = Path(tempfile.mkdtemp(prefix="dlt-", dir=workdir))
    env = {"DLT_DATA_DIR": str(dlt_dir / "data"), "DLT_PROJECT_DIR": str(dlt_dir),
           "RUNTIME__DLTHUB_TELEMETRY": "false"}
    r = run_child(["dlt", str(big.ledger), str(dlt_dir)], label="dlt", workdir=workdir, env=env,
                  cwd=dlt_dir, check=False)
    runs["dlt"].append(summarise(r))
    if r["rc"] != 0:
        problems.append(f"dlt run #{n} failed: {r['stderr'][-500:]}")
    shutil.rmtree(dlt_dir, ignore_errors=True)
    log(f"  dlt {big.lines:,}: {r['wall']:.2f}s wall, {r['maxrss_kb'] / 1024:.0f} MB")

    # bare ADBC -> DuckDB copy into a fresh file
    out = workdir / f"bare-{n}.duckdb"
    r = run_child(["bare", str(big.ledger), str(out)], label="bare", workdir=workdir, check=False)
    runs["bare"].append(summarise(r))
    if r["rc"] != 0:
        problems.append(f"bare copy #{n} failed: {r['stderr'][-500:]}")
    for p in (out, out.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    log(f"  bare {big.lines:,}: {r['wall']:.2f}s wall, {r['maxrss_kb'] / 1024:.0f} MB")

    # dossync on the 10x smaller dossier (memory scaling)
    r = dossync(ref.home, "sync", ref.code, "--full", "--json", label=f"dossync full {ref.code}",
                workdir=workdir, check=False)
    runs["dossync_ref"].append(summarise(r))
    check_sync(r, f"full sync {ref.code} #{n}", problems)
    log(f"  dossync full {ref.lines:,}: {r['wall']:.2f}s wall, {r['maxrss_kb'] / 1024:.0f} MB")


def check_sync(r: dict, what: str, problems: list[str]) -> None:
    doc = r.get("json") or {}
    if r["rc"] != 0 or doc.get("status") != "succeeded":
        problems.append(f"{what}: exit {r['rc']}, status {doc.get('status')}, "
                        f"error {doc.get('error')!r}, stderr {r['stderr'][-300:]!r}")
    elif doc.get("warnings"):
        problems.append(f"{what}: warnings {doc['warnings']}")


def simple_sync_round(dossiers: list[Dossier], workdir: Path, n: int, report: dict,
                      problems: list[str]) -> None:
    order = dossiers if n % 2 == 0 else list(reversed(dossiers))
    for d in order:
        before = ledger_counts(d.ledger)
        ev = dossync(d.home, "ledger", d.code, "new-bookings", "100", "--json",
                     label=f"new-bookings {d.code}", workdir=workdir, check=False)
        if ev["rc"] != 0:
            problems.append(f"ledger new-bookings on {d.code} failed: {ev['stderr'][-300:]}")
        after = ledger_counts(d.ledger)
        delta = {t: after[t] - before[t] for t in LEDGER_TABLES if after[t] != before[t]}
        r = dossync(d.home, "sync", d.code, "--json", label=f"simple sync {d.code}",
                    workdir=workdir, check=False)
        s = summarise(r)
        s["ledger_delta"] = delta
        s["event"] = (ev.get("json") or {}).get("message")
        report["simple"]["runs"][d.code].append(s)
        check_sync(r, f"simple sync {d.code} #{n}", problems)
        rows = s.get("rows") or {}
        new_rows = sum(delta.values())
        if rows and rows.get("inserted") != new_rows:
            problems.append(f"simple sync {d.code} #{n}: inserted {rows.get('inserted')} rows but "
                            f"the ledger gained {new_rows} ({delta})")
        log(f"  simple {d.code} ({d.lines:,}): {r['wall']:.2f}s wall, "
            f"{(s['in_process'] or 0):.2f}s in sync_dossier, rows {rows}")


def check_portal(d: Dossier, workdir: Path, report: dict, problems: list[str]) -> None:
    r = run_child(["portal-counts", str(d.home), d.code], label="portal counts", workdir=workdir,
                  check=False)
    if r["rc"] != 0:
        problems.append(f"portal counts for {d.code} failed: {r['stderr'][-300:]}")
        return
    portal = json.loads(r["stdout"])
    ledger = ledger_counts(d.ledger)
    mapping = {"lines": "booking_lines"}
    diff = {}
    for stream, n in portal.items():
        table = mapping.get(stream, stream)
        if table in ledger and ledger[table] != n:
            diff[stream] = {"ledger": ledger[table], "portal": n}
    report["dossiers"][d.code]["portal_counts"] = portal
    report["dossiers"][d.code]["portal_vs_ledger_diff"] = diff
    if diff:
        problems.append(f"{d.code}: portal row counts differ from the ledger (quarantine "
                        f"or duplicates?): {diff}")


def profile_full(big: Dossier, workdir: Path, report: dict, top: int = 15) -> str:
    prof = RESULTS / "full_sync.pstats"
    r = dossync(big.home, "sync", big.code, "--full", "--json", label="profile full",
                workdir=workdir, profile=prof, check=False)
    report["profile"] = {"wall": r["wall"], "rc": r["rc"], "file": str(prof.relative_to(REPO)),
                         "phases": r["timing"].get("phases")}
    if r["rc"] != 0 or not prof.exists():
        return f"profile run failed: {r['stderr'][-500:]}"
    import io

    text = io.StringIO()
    stats = pstats.Stats(str(prof), stream=text)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(10)
    report["profile"]["text"] = text.getvalue()
    return text.getvalue()


# --- reporting --------------------------------------------------------------------------
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (None, None)


def fmt(v, unit="s", nd=2):
    return "-" if v is None else f"{v:.{nd}f}{unit}"


def verdict(ok) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def build_summary(report: dict, big: Dossier, ref: Dossier, small: Dossier) -> tuple[str, list]:
    full = report["full"]["runs"]
    rows = []
    lines_out = []
    w = lines_out.append
    w("")
    w(f"== 1. full sync of {big.lines:,} booking lines "
      f"(median of {len(full['dossync'])}; min..max in brackets) ==")
    w(f"{'contender':<28}{'wall':>10}{'range':>18}{'in-process':>12}{'peak RSS':>11}{'cpu':>9}")
    med_ = {}
    for key, name in (("dossync", f"dossync sync --full ({big.lines // 1000}k)"),
                      ("dlt", "dlt sql_database->duckdb"), ("bare", "bare ADBC->DuckDB copy"),
                      ("dossync_ref", f"dossync sync --full ({ref.lines // 1000}k)")):
        runs = [r for r in full[key] if r["rc"] == 0]
        m = {"wall": med([r["wall"] for r in runs]), "inproc": med([r["in_process"] for r in runs]),
             "rss": med([r["maxrss_mb"] for r in runs]), "cpu": med([r["cpu"] for r in runs]),
             "n": len(runs), "failed": len(full[key]) - len(runs)}
        lo, hi = spread([r["wall"] for r in runs])
        med_[key] = m
        w(f"{name:<28}{fmt(m['wall']):>10}{'[' + fmt(lo) + '..' + fmt(hi) + ']':>18}"
          f"{fmt(m['inproc']):>12}{fmt(m['rss'], ' MB', 0):>11}{fmt(m['cpu']):>9}"
          + (f"  ({m['failed']} FAILED)" if m["failed"] else ""))
    act = report["dossiers"][big.code]["activation"]
    w(f"{'(activation, dossier add)':<28}{fmt(act['wall']):>10}{'(once)':>18}"
      f"{fmt(act['in_process']):>12}{fmt(act['maxrss_mb'], ' MB', 0):>11}{fmt(act['cpu']):>9}")
    phases = {}
    for r in full["dossync"]:
        for k, v in (r.get("phases") or {}).items():
            phases.setdefault(k, []).append(v)
    if phases:
        w("dossync full sync phases (median s): " + ", ".join(
            f"{k} {med(v):.2f}" for k, v in phases.items() if k != "sync_dossier"))
    hwm = {}
    for r in full["dossync"]:
        for k, v in (r.get("peak_rss_mb_after") or {}).items():
            if v is not None:
                hwm.setdefault(k, []).append(v)
    if hwm:
        w("dossync full sync peak RSS after each phase (median MB; the jump shows the phase "
          "that sets the peak): " + ", ".join(
              f"{k} {med(v):.0f}" for k, v in hwm.items() if k != "sync_dossier"))
    d, dl, b, rf = med_["dossync"], med_["dlt"], med_["bare"], med_["dossync_ref"]
    report["full"]["median"] = med_

    w("")
    w("== targets ==")
    def target(name, value, limit, ok, detail):
        rows.append({"target": name, "value": value, "limit": limit, "pass": ok, "detail": detail})
        w(f"  {verdict(ok)}  {name:<48} {detail}")

    r1 = ratio(dl["wall"], d["wall"])
    r1i = ratio(dl["inproc"], d["inproc"])
    target("full: dossync >= 3x faster than dlt (wall)", r1, TARGETS["full_vs_dlt"],
           None if r1 is None else r1 >= TARGETS["full_vs_dlt"],
           f"dlt/dossync = {fmt(r1, 'x')} (in-process {fmt(r1i, 'x')})")
    r2 = ratio(d["wall"], b["wall"])
    r2i = ratio(d["inproc"], b["inproc"])
    target("full: dossync <= 2x bare copy (wall)", r2, TARGETS["full_vs_bare"],
           None if r2 is None else r2 <= TARGETS["full_vs_bare"],
           f"dossync/bare = {fmt(r2, 'x')} (in-process {fmt(r2i, 'x')})")
    r3 = ratio(d["rss"], dl["rss"])
    target("full: dossync peak RSS <= dlt's", r3, TARGETS["rss_vs_dlt"],
           None if r3 is None else r3 <= TARGETS["rss_vs_dlt"],
           f"{fmt(d['rss'], ' MB', 0)} vs {fmt(dl['rss'], ' MB', 0)} = {fmt(r3, 'x')}")
    r4 = ratio(d["rss"], rf["rss"])
    target(f"full: RSS {big.lines // 1000}k <= 1.5x RSS {ref.lines // 1000}k", r4,
           TARGETS["rss_scaling"], None if r4 is None else r4 <= TARGETS["rss_scaling"],
           f"{fmt(d['rss'], ' MB', 0)} vs {fmt(rf['rss'], ' MB', 0)} = {fmt(r4, 'x')}")

    simple = report["simple"]["runs"]
    sb = [r for r in simple[big.code] if r["rc"] == 0]
    ss = [r for r in simple[small.code] if r["rc"] == 0]
    m_big = {"wall": med([r["wall"] for r in sb]), "inproc": med([r["in_process"] for r in sb]),
             "rss": med([r["maxrss_mb"] for r in sb])}
    m_small = {"wall": med([r["wall"] for r in ss]), "inproc": med([r["in_process"] for r in ss]),
               "rss": med([r["maxrss_mb"] for r in ss])}
    report["simple"]["median"] = {big.code: m_big, small.code: m_small}
    r5 = ratio(m_big["wall"], m_small["wall"])
    r5i = ratio(m_big["inproc"], m_small["inproc"])
    target(f"simple: {big.lines // 1000}k within 1.5x of {small.lines // 1000}k (wall)", r5,
           TARGETS["simple_scaling"], None if r5 is None else r5 <= TARGETS["simple_scaling"],
           f"{fmt(m_big['wall'])} vs {fmt(m_small['wall'])} = {fmt(r5, 'x')}")
    target(f"simple: {big.lines // 1000}k within 1.5x of {small.lines // 1000}k (in-process)", r5i,
           TARGETS["simple_scaling"], None if r5i is None else r5i <= TARGETS["simple_scaling"],
           f"{fmt(m_big['inproc'])} vs {fmt(m_small['inproc'])} = {fmt(r5i, 'x')}")

    w("")
    w(f"== 2. simple sync after 'ledger new-bookings 100' (median of {len(sb)}/{len(ss)}) ==")
    w(f"{'dossier':<28}{'wall':>10}{'range':>18}{'in-process':>12}{'peak RSS':>11}  rows (last run)")
    for code, lines, runs, m in ((big.code, big.lines, sb, m_big),
                                 (small.code, small.lines, ss, m_small)):
        lo, hi = spread([r["wall"] for r in runs])
        last = runs[-1]["rows"] if runs else None
        w(f"{code + f' ({lines // 1000}k lines)':<28}{fmt(m['wall']):>10}"
          f"{'[' + fmt(lo) + '..' + fmt(hi) + ']':>18}{fmt(m['inproc']):>12}"
          f"{fmt(m['rss'], ' MB', 0):>11}  {last}")
    for code, runs in ((big.code, sb), (small.code, ss)):
        ph = {}
        for r in runs:
            for k, v in (r.get("phases") or {}).items():
                ph.setdefault(k, []).append(v)
        if ph:
            w(f"  {code} phases (median s): " + ", ".join(
                f"{k} {med(v):.3f}" for k, v in ph.items() if k != "sync_dossier"))
    nc = report["simple"].get("no_change")
    if nc:
        w(f"no-change simple sync of {small.code}: {fmt(nc['wall'])} wall, "
          f"{fmt(nc['in_process'])} in-process, rows {nc['rows']}")
    w(f"python start-up alone: {fmt(report['baseline']['wall'])}, "
      f"{fmt(report['baseline']['maxrss_kb'] / 1024, ' MB', 0)}")
    return "\n".join(lines_out), rows


def git_info() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except Exception:
            return None
    return {"head": git("rev-parse", "--short", "HEAD"),
            "core_uncommitted": git("status", "--porcelain", "--", "core")}


# --- main -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 100k lines instead of 1M, fewer repeats")
    p.add_argument("--lines", type=int, help="lines of the large dossier (default 1M, quick 100k)")
    p.add_argument("--repeats", type=int, help="full-sync repeats (default 3, quick 2)")
    p.add_argument("--simple-repeats", type=int, help="simple-sync repeats (default 5, quick 3)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)

    big_lines = args.lines or (100_000 if args.quick else 1_000_000)
    ref_lines = max(big_lines // 10, 1_000)
    small_lines = 10_000
    repeats = args.repeats or (2 if args.quick else 3)
    simple_repeats = args.simple_repeats or (3 if args.quick else 5)

    global SNAPSHOT
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=RESULTS))
    SNAPSHOT = take_snapshot(workdir)
    core_at_start = fingerprint(SNAPSHOT)
    started = time.perf_counter()
    problems: list[str] = []
    report: dict = {
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "config": {"quick": args.quick, "big_lines": big_lines, "ref_lines": ref_lines,
                   "small_lines": small_lines, "repeats": repeats,
                   "simple_repeats": simple_repeats, "seed": args.seed},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "git": {**git_info(), "core_fingerprint": core_at_start}, "targets": TARGETS,
        "dossiers": {},
        "full": {"runs": {"dossync": [], "dlt": [], "bare": [], "dossync_ref": []}},
        "simple": {"runs": {}}, "problems": problems,
    }
    home_dlt = Path.home() / ".dlt"
    dlt_home_existed = home_dlt.exists()
    try:
        report["baseline"] = baseline(workdir)
        big = prepare_dossier("BIG", big_lines, args.seed, workdir, report)
        ref = prepare_dossier("REF", ref_lines, args.seed, workdir, report)
        small = big if small_lines == big_lines else \
            prepare_dossier("SMALL", small_lines, args.seed, workdir, report)
        if small is big:
            raise SystemExit("--lines must differ from 10000 (the simple-sync comparison)")
        for d in (big, ref, small):
            act = report["dossiers"][d.code]["activation"]
            if act["status"] != "succeeded":
                problems.append(f"activation of {d.code}: {act}")
            q = (act.get("rows") or {}).get("quarantined")
            if q:
                problems.append(f"activation of {d.code} quarantined {q} row(s)")

        log(f"full sync: {repeats} interleaved rounds (dossync, dlt, bare, dossync {ref_lines:,})")
        for n in range(repeats):
            log(f" round {n + 1}/{repeats}")
            full_sync_round(big, ref, workdir, n, report, problems)
        ledger_total = sum(report["dossiers"][big.code]["ledger_counts"].values())
        for r in report["full"]["runs"]["dossync"]:
            if r["rows"] and r["rows"].get("read") != ledger_total:
                problems.append(f"full sync of BIG read {r['rows'].get('read')} rows, the ledger "
                                f"tables hold {ledger_total}")
                break
        for r in report["full"]["runs"]["dlt"] + report["full"]["runs"]["bare"]:
            got = r.get("extra_rows") or {}
            want = report["dossiers"][big.code]["ledger_counts"]
            if r["rc"] == 0 and got != want:
                problems.append(f"a comparison copy loaded {got}, the ledger holds {want}")
                break
        check_portal(big, workdir, report, problems)

        log(f"simple sync: {simple_repeats} interleaved rounds (100 new documents each)")
        report["simple"]["runs"] = {big.code: [], small.code: []}
        for n in range(simple_repeats):
            log(f" round {n + 1}/{simple_repeats}")
            simple_sync_round([big, small], workdir, n, report, problems)

        # A simple sync with nothing changed in the ledger: should read and apply
        # (almost) nothing; its counts show what the LOOKBACK re-read reports.
        r = dossync(small.home, "sync", small.code, "--json", label="no-change simple sync",
                    workdir=workdir, check=False)
        report["simple"]["no_change"] = summarise(r)
        check_sync(r, "no-change simple sync", problems)
        nc = report["simple"]["no_change"].get("rows") or {}
        if nc.get("inserted") or nc.get("updated") or nc.get("deleted"):
            problems.append(f"a simple sync with no ledger change reports {nc} on {small.code}: "
                            f"unchanged rows re-read through the LOOKBACK window are reported as changes")

        profile_text = None
        if not args.no_profile:
            log("profiling one full sync of BIG (cProfile)")
            profile_text = profile_full(big, workdir, report)

        table, target_rows = build_summary(report, big, ref, small)
        report["target_results"] = target_rows
        if fingerprint(REPO) != core_at_start:
            problems.append(f"note: core/ in the working tree changed during the run; every "
                            f"measurement used the snapshot taken at the start "
                            f"(fingerprint {core_at_start})")
        used = {r.get("core_file") for r in all_timings(report)} - {None}
        stray = [f for f in used if not f.startswith(str(SNAPSHOT))]
        if stray:
            problems.append(f"some children imported core from outside the snapshot: {stray}")
        if not dlt_home_existed and home_dlt.exists():
            problems.append(f"dlt created {home_dlt} despite DLT_DATA_DIR")
        report["total_seconds"] = time.perf_counter() - started
        print(table)
        if profile_text:
            print(f"\n== 3. where a full sync of {big.lines:,} lines spends its time "
                  f"(cProfile, one run, {report['profile']['wall']:.1f}s wall with profiler) ==")
            print(profile_text.strip())
        print("\n== things that looked wrong ==")
        for problem in problems or ["nothing"]:
            print(f"  - {problem}")
        passed = sum(1 for t in target_rows if t["pass"])
        print(f"\n{passed}/{len(target_rows)} targets pass; total bench time "
              f"{report['total_seconds'] / 60:.1f} min; details in "
              f"{(RESULTS / 'latest.json').relative_to(REPO)}")
    finally:
        report.setdefault("total_seconds", time.perf_counter() - started)
        for section in (report["full"]["runs"].values(), report["simple"]["runs"].values()):
            for runs in section:
                for r in runs:
                    r.pop("stdout", None)
        text = json.dumps(report, indent=2, default=str)
        (RESULTS / "latest.json").write_text(text, encoding="utf-8")
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        (RESULTS / f"run-{stamp}{'-quick' if args.quick else ''}.json").write_text(
            text, encoding="utf-8")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
