"""A firm activated by an earlier release of dossync, upgraded in place by this one.

The earlier releases are the real code of this repository's history, not a portal made to
look old: each is taken out of git (`git archive`) once per module and run as it shipped.

- 0.6.0 (commit 6258851, portal schema 5): built as a wheel and installed into a fresh venv
  whose dependencies come from the test venv (a deps.pth, as tests/test_wheel.py does); its
  console script `dossync` builds a demo firm and activates a GnuCash book and two
  Beancount ledgers. Its dossiers were all loaded by 0.4.0 or later connectors: the current
  release opens the firm with the same reports, records them at connector version 2,
  advises nothing, and syncs and reconciles them.
- 0.3.0 (commit f1c2684, portal schema 3, before 0.4.0's real books): top-level packages
  `core` and `tui`, run as `python -m core.cli` from its source folder. It activates a demo
  dossier and two GnuCash books saved by GnuCash: book_prices (GnuCash 2.6.19, which 0.3.0
  reads right: its figures equal the book's) and simple_sample (GnuCash 3.x; its root
  account has no commodity, so 0.3.0 finds no book currency and keeps all its transactions
  out of the figures, with a warning). The current release opens the firm with the same
  reports and advises a full sync of both books everywhere (status, monitor state,
  reconcile, upgrade-plan), nothing for the demo dossier; the queued full syncs clear the
  advice and bring each book's figures to the package's own, per account and exactly
  (tests/test_corpus_gnucash.py's oracle: piecash).

The old releases' commands run through their own `main` in one process per step (a small
driver, DRIVER below): one interpreter start instead of one per command.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import duckdb
import pytest

from conftest import cli, cli_json, status_of
from test_corpus_gnucash import package_figures, portal_figures
from test_upgrade import reload_seconds

from dossync.core.portal.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
RELEASE_0_6_0 = "6258851"
RELEASE_0_3_0 = "f1c2684"

# Runs the old release's CLI entry point `main` once per command line read from stdin
# (a JSON list of argv lists) and prints [[exit code, stdout, stderr], ...] as JSON.
DRIVER = r'''
import contextlib, importlib, io, json, sys
main = importlib.import_module(sys.argv[1]).main
done = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    done.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(done))
'''


# --- the old releases, from git -------------------------------------------------------------
def checkout(commit: str, target: Path) -> Path:
    """The release's files as git holds them (`git archive COMMIT | tar -x`)."""
    if shutil.which("git") is None:
        pytest.fail("git is not installed: this test builds earlier releases of dossync "
                    "from the repository's history")
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, text=True)
    if known.returncode != 0:
        pytest.fail(f"commit {commit} (an earlier release of dossync) is not in the repository "
                    f"at {ROOT}: run the suite from a full git clone (git fetch --unshallow); "
                    f"git said: {known.stderr.strip()}")
    target.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit],
                               stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout,
                           capture_output=True, timeout=120)
    archive.stdout.close()
    assert archive.wait(timeout=120) == 0 and untar.returncode == 0, untar.stderr
    return target


class OldRelease:
    """How to run one earlier release: `command` starts its CLI (its own entry point),
    `module` is the module whose `main` the driver calls, with `env` and `cwd`."""

    def __init__(self, version: str, command: list[str], python: str, module: str,
                 cwd: Path, env: dict[str, str] | None = None):
        self.version, self.command, self.python, self.module = version, command, python, module
        self.cwd, self.env = cwd, env

    def _env(self) -> dict[str, str]:
        # the firm is the --home given, its portal file there (a DOSSYNC_PORTAL of the
        # caller's would be a server the old releases do not know)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "DOSSYNC_PORTAL", "DOSSYNC_HOME")}
        return {**env, "DOSSYNC_LANG": "en", **(self.env or {})}

    def run(self, home: Path, *args: str) -> subprocess.CompletedProcess:
        """One command, as a user types it."""
        done = subprocess.run([*self.command, "--home", str(home), *args], cwd=self.cwd,
                              env=self._env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{self.version} {args}: {done.stdout}{done.stderr}"
        return done

    def json_each(self, home: Path, *commands: list[str]) -> list:
        """Several commands with --json in one process: their JSON documents."""
        argvs = [["--home", str(home), *c, "--json"] for c in commands]
        done = subprocess.run([self.python, "-c", DRIVER, self.module], input=json.dumps(argvs),
                              cwd=self.cwd, env=self._env(), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        out = []
        for argv, (code, stdout, stderr) in zip(argvs, json.loads(done.stdout.splitlines()[-1])):
            assert code == 0, f"{self.version} {argv}: exit {code}: {stdout}{stderr}"
            out.append(json.loads(stdout))
        return out


@pytest.fixture(scope="module")
def release_0_6_0(tmp_path_factory) -> OldRelease:
    """0.6.0 as a user installs it: its wheel in a venv of its own (no pip in it: the test
    venv's pip installs into it), the dependencies lent by the test venv."""
    work = tmp_path_factory.mktemp("release-0.6.0")
    source = checkout(RELEASE_0_6_0, work / "source")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--quiet", "-w", str(work / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("dossync-0.6.0-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                                "--quiet", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # a plain path entry: the test venv's .pth files (this project, editable) are not run
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    away = work / "elsewhere"
    away.mkdir()
    release = OldRelease("0.6.0", [str(venv / "bin" / "dossync")], str(python),
                         "dossync.core.cli", cwd=away)
    where = subprocess.run([str(python), "-c", "import dossync.core; print(dossync.core.__file__)"],
                           cwd=away, capture_output=True, text=True, timeout=120)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # not this tree's
    return release


@pytest.fixture(scope="module")
def release_0_3_0(tmp_path_factory) -> OldRelease:
    """0.3.0 as its README runs it: `python -m core.cli` in its source folder (its top-level
    packages `core` and `tui`), with the test venv's interpreter and libraries."""
    source = checkout(RELEASE_0_3_0, tmp_path_factory.mktemp("release-0.3.0") / "source")
    env = {"PYTHONPATH": str(source)}
    release = OldRelease("0.3.0", [sys.executable, "-m", "core.cli"], sys.executable, "core.cli",
                         cwd=source, env=env)
    where = subprocess.run([sys.executable, "-c", "import core; print(core.__file__)"],
                           cwd=source, env=release._env(), capture_output=True, text=True)
    assert where.stdout.startswith(str(source)), where.stdout + where.stderr
    return release


# --- firms the old releases activated --------------------------------------------------------
class OldFirm:
    """A firm's home as an old release left it, with what that release reported."""

    def __init__(self, home: Path, activations: dict, reports: dict, status: list):
        self.home, self.activations, self.reports, self.status = home, activations, reports, status


def place(source: Path, books: Path, name: str | None = None) -> Path:
    books.mkdir(parents=True, exist_ok=True)
    target = books / (name or source.name)
    shutil.copyfile(source, target)
    target.chmod(0o644)
    return target


def record(release: OldRelease, home: Path, adds: dict[str, tuple[str, Path]]) -> OldFirm:
    """Activate `adds` ({code: (package, source)}) with the old release, then record every
    dossier's trial balance and dashboard and the status, as it reports them."""
    activations = dict(zip(adds, release.json_each(
        home, *(["dossier", "add", code, "--package", package, "--source", str(source)]
                for code, (package, source) in adds.items()))))
    for code, run in activations.items():
        assert run["status"] == "succeeded", (code, run)
    (dossiers,) = release.json_each(home, ["dossier", "list"])
    codes = [d["code"] for d in dossiers]
    answers = release.json_each(home, *(["report", code, report] for code in codes
                                        for report in ("trial-balance", "dashboard")),
                                ["status"])
    reports = {code: {"trial-balance": answers[2 * i], "dashboard": answers[2 * i + 1]}
               for i, code in enumerate(codes)}
    return OldFirm(home, activations, reports, answers[-1])


@pytest.fixture(scope="module")
def firm_0_6_0(release_0_6_0, tmp_path_factory) -> OldFirm:
    """0.6.0's demo firm (2 dossiers), a GnuCash book GnuCash saved, and two Beancount
    ledgers: one with a plugin, one holding a commodity at cost."""
    home = tmp_path_factory.mktemp("firm-0.6.0") / "firm"
    release_0_6_0.run(home, "demo", "--dossiers", "2", "--lines", "300", "--seed", "5")
    books = home / "books"
    firm = record(release_0_6_0, home, {
        "BOOKS": ("gnucash", place(CORPUS / "gnucash" / "simple_sample.gnucash", books)),
        "LEDGER": ("beancount", place(CORPUS / "beancount" / "edit-example.beancount", books)),
        "SHARES": ("beancount", place(CORPUS / "beancount" / "off-by-one.beancount", books)),
    })
    assert len(firm.reports) == 5 and raw_schema_version(home) == "5"
    return firm


@pytest.fixture(scope="module")
def firm_0_3_0(release_0_3_0, tmp_path_factory) -> OldFirm:
    """0.3.0's demo firm (1 dossier) and two GnuCash books GnuCash saved.

    simple_sample is the book tests/test_upgrade.py uses, but 0.3.0 cannot read it (its root
    account has no commodity: no book currency, so every transaction is kept out of the
    figures); book_prices (GnuCash 2.6.19) it reads right. Both are kept: the first shows
    the upgrade's full sync bringing what the old release left out, the second that it
    changes nothing of figures that were right."""
    home = tmp_path_factory.mktemp("firm-0.3.0") / "firm"
    release_0_3_0.run(home, "demo", "--dossiers", "1", "--lines", "300", "--seed", "5")
    books = home / "books"
    firm = record(release_0_3_0, home, {
        "PRICES": ("gnucash", place(CORPUS / "gnucash" / "book_prices.gnucash", books)),
        "SAMPLE": ("gnucash", place(CORPUS / "gnucash" / "simple_sample.gnucash", books)),
    })
    assert raw_schema_version(home) == "3"
    # what 0.3.0 made of the books: book_prices right, simple_sample's money kept out
    assert old_trial_balance(firm, "PRICES") == oracle_debit_credit(
        "book_prices", home / "books" / "book_prices.gnucash")
    assert firm.reports["SAMPLE"]["trial-balance"] == []
    assert any("kept out of the money figures" in w
               for w in firm.activations["SAMPLE"]["warnings"]), firm.activations["SAMPLE"]
    return firm


def copy_firm(firm: OldFirm, target: Path) -> Path:
    """A copy of the old firm for one test, its dossiers pointing at the copied books and
    ledgers; the portal is changed with plain DuckDB SQL, which migrates nothing."""
    shutil.copytree(firm.home, target)
    con = duckdb.connect(str(target / "portal.duckdb"))
    try:
        con.execute("UPDATE dossiers SET source = replace(source, ?, ?)",
                    [str(firm.home), str(target)])
    finally:
        con.close()
    return target


def raw_schema_version(home: Path) -> str:
    """The portal's schema version, read without dossync (which would migrate it)."""
    con = duckdb.connect(str(home / "portal.duckdb"), read_only=True)
    try:
        return con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        con.close()


# --- comparing -------------------------------------------------------------------------------
MISSING = "<missing in the current release>"


def as_old(old, new):
    """`new` cut down to the shape `old` had: keys later releases added are left out (a key
    the old release had and the current one lacks shows as MISSING)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: as_old(v, new[k]) if k in new else MISSING for k, v in old.items()}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [as_old(o, n) for o, n in zip(old, new)]
    return new


def assert_same_reports(firm: OldFirm, home: Path) -> None:
    """Every dossier's trial balance and dashboard as the current CLI reports them equal
    what the old release reported (the keys it had)."""
    for code, old in firm.reports.items():
        for report, before in old.items():
            status, now = cli_json(home, "report", code, report)
            assert status == 0, now
            assert as_old(before, now) == before, (code, report)


def old_trial_balance(firm: OldFirm, code: str) -> dict[str, tuple[str, str]]:
    return {r["name"]: (r["debit"], r["credit"]) for r in firm.reports[code]["trial-balance"]}


def oracle_debit_credit(name: str, book: Path) -> dict[str, tuple[str, str]]:
    return {account: (debit, credit)
            for account, (debit, credit, _) in package_figures(name, book).items()}


def connector_versions(home: Path) -> dict[str, int | None]:
    status, dossiers = cli_json(home, "dossier", "list")
    assert status == 0, dossiers
    return {d["code"]: d["connector_version"] for d in dossiers}


# --- 0.6.0, the previous release -------------------------------------------------------------
@pytest.mark.slow
def test_a_firm_of_0_6_0_opens_with_the_same_figures_and_nothing_to_reload(firm_0_6_0, tmp_path):
    home = copy_firm(firm_0_6_0, tmp_path / "firm")
    assert raw_schema_version(home) == "5"

    status, rows = cli_json(home, "status")
    assert status == 0, rows
    assert raw_schema_version(home) == str(SCHEMA_VERSION)  # migrated on first open
    # the status 0.6.0 showed, with what later releases added
    assert [as_old(old, new) for old, new in zip(firm_0_6_0.status, rows)] == firm_0_6_0.status
    assert len(rows) == len(firm_0_6_0.status)
    for row in rows:  # loaded by 0.4.0 or later connectors: nothing lacking
        assert (row["state"], row["full_sync_advised"]) == ("ok", None), row
    assert_same_reports(firm_0_6_0, home)
    assert connector_versions(home) == {code: 2 for code in firm_0_6_0.reports}
    assert cli_json(home, "upgrade-plan") == (0, [])
    assert cli_json(home, "jobs") == (0, [])  # the job queue's table came with the migration
    shown = cli(home, "status")
    assert shown.returncode == 0 and "BOOKS" in shown.stdout, shown.stderr


@pytest.mark.slow
def test_the_dossiers_of_0_6_0_sync_and_reconcile_in_the_current_release(firm_0_6_0, tmp_path):
    home = copy_firm(firm_0_6_0, tmp_path / "firm")
    for code in firm_0_6_0.reports:
        status, run = cli_json(home, "sync", code)
        assert status == 0 and (run["kind"], run["status"]) == ("simple", "succeeded"), run
        assert run["rows"]["quarantined"] == 0, run
        status, verdict = cli_json(home, "reconcile", code)
        assert (status, verdict["verdict"]) == (0, "in_sync"), verdict
    assert_same_reports(firm_0_6_0, home)  # the syncs found nothing to change
    status, jobs = cli_json(home, "jobs")
    assert (status, jobs) == (0, [])
    assert all(row["state"] == "ok" for row in status_of(home).values())


# --- 0.3.0, before 0.4.0's real books ---------------------------------------------------------
GNUCASH_BOOKS = {"PRICES": "book_prices", "SAMPLE": "simple_sample"}


@pytest.mark.slow
def test_a_firm_of_0_3_0_is_advised_a_full_sync_of_its_gnucash_books(firm_0_3_0, tmp_path):
    home = copy_firm(firm_0_3_0, tmp_path / "firm")
    assert raw_schema_version(home) == "3"
    rows = status_of(home)
    assert raw_schema_version(home) == str(SCHEMA_VERSION)
    assert_same_reports(firm_0_3_0, home)  # migrated, losing nothing
    (demo,) = set(rows) - set(GNUCASH_BOOKS)
    assert connector_versions(home) == dict.fromkeys(rows)  # loaded before versions were kept

    # the demo dossier lacks nothing (0.4.0's migration gave it its classes)
    assert (rows[demo]["state"], rows[demo]["full_sync_advised"]) == ("ok", None)
    status, verdict = cli_json(home, "reconcile", demo)
    assert (status, verdict["verdict"]) == (0, "in_sync"), verdict

    # the books are advised a full sync: status, the monitor's state, reconcile
    for code in GNUCASH_BOOKS:
        advised = rows[code]["full_sync_advised"]
        assert rows[code]["state"] == "action_required", rows[code]
        assert advised == (
            f"the GnuCash connector is at version 2 and {code}'s last full load was by "
            f"version 1 (it was loaded before connector versions were recorded): it lacks "
            f"account classes, exact amounts and the figures of books whose root account "
            f"has no commodity (version 2, dossync 0.4.0). A full sync "
            f"brings that: dossync sync {code} --full, or queue it with dossync "
            f"upgrade-plan --queue"), advised
        status, verdict = cli_json(home, "reconcile", code)
        assert (status, verdict["verdict"]) == (5, "full_sync"), verdict
        assert verdict["reasons"][0] == advised and verdict["repairable"] is False

    # the plan: both books, the rows of their 0.3.0 activation
    status, plan = cli_json(home, "upgrade-plan")
    assert status == 0
    assert [(p["dossier"], p["package"], p["from_version"], p["to_version"], p["new"])
            for p in plan] == [
        (code, "gnucash", 1, 2, "account classes, exact amounts and the figures of books "
                                "whose root account has no commodity (version 2, dossync 0.4.0)")
        for code in sorted(GNUCASH_BOOKS)]
    for entry in plan:
        activation = firm_0_3_0.activations[entry["dossier"]]
        assert entry["expected_rows"] == activation["rows"]["read"] > 0, entry
        assert entry["expected_seconds"] == reload_seconds(activation), entry
    shown = cli(home, "upgrade-plan")
    assert shown.returncode == 0 and "upgrade-plan --queue" in shown.stdout, shown.stderr
    assert cli_json(home, "jobs") == (0, [])


@pytest.mark.slow
def test_the_upgrade_plan_reloads_the_books_of_0_3_0_to_their_own_figures(firm_0_3_0, tmp_path):
    home = copy_firm(firm_0_3_0, tmp_path / "firm")
    (demo,) = set(firm_0_3_0.reports) - set(GNUCASH_BOOKS)

    status, queued = cli_json(home, "upgrade-plan", "--queue")
    assert status == 0 and [q["dossier"] for q in queued] == sorted(GNUCASH_BOOKS), queued
    status, worker = cli_json(home, "worker", "--until-idle")
    assert status == 0 and (worker["succeeded"], worker["failed"]) == (2, 0), worker
    status, jobs = cli_json(home, "jobs")
    assert sorted((j["dossier"], j["kind"], j["status"]) for j in jobs) == [
        (code, "full", "succeeded") for code in sorted(GNUCASH_BOOKS)]

    # the advice is gone everywhere
    rows = status_of(home)
    for code in GNUCASH_BOOKS:
        assert (rows[code]["state"], rows[code]["full_sync_advised"]) == ("ok", None), rows[code]
        assert rows[code]["last_sync"]["kind"] == "full"
        status, verdict = cli_json(home, "reconcile", code)
        assert (status, verdict["verdict"]) == (0, "in_sync"), verdict
    versions = connector_versions(home)
    assert {code: versions[code] for code in GNUCASH_BOOKS} == {"PRICES": 2, "SAMPLE": 2}
    assert cli_json(home, "upgrade-plan") == (0, [])

    # each book's trial balance is the package's own, per account and exactly; for
    # book_prices that is what 0.3.0 showed, for simple_sample what it had left out
    for code, name in GNUCASH_BOOKS.items():
        book = home / "books" / f"{name}.gnucash"
        expected = package_figures(name, book)
        assert expected and portal_figures(home, code) == expected, code
    assert oracle_debit_credit("book_prices", home / "books" / "book_prices.gnucash") == \
        old_trial_balance(firm_0_3_0, "PRICES")
    # the demo dossier was not touched
    status, trial = cli_json(home, "report", demo, "trial-balance")
    assert as_old(firm_0_3_0.reports[demo]["trial-balance"], trial) == \
        firm_0_3_0.reports[demo]["trial-balance"]
