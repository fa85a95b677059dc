"""Shared fixtures: demo homes built once per session and copied per test."""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader as beancount_loader

from dossync.core import demo_package, portal, reports
from dossync.core.cli import main
from dossync.core.home import PORTAL_ENV, Home

# The tests' own Beancount loads (the package's figures) leave no pickle cache
# beside the ledgers: a second test reading the same folder would find it there.
beancount_loader.initialize(use_cache=False)

ROOT = Path(__file__).resolve().parent.parent
DOSSYNC = [sys.executable, "-m", "dossync.core.cli"]
# The suite reads what dossync writes for people in English, whatever the machine's
# locale (tests/test_i18n.py asks for the other languages itself).
os.environ["DOSSYNC_LANG"] = "en"

# The slow tier (`make test` runs everything; `make test-fast` leaves these out):
# real processes killed at random, real terminals, servers, notebooks, property runs,
# the wheel, and the engine's and the UI's longer scenarios.
SLOW_FILES = {"test_kill.py", "test_tui_e2e.py", "test_property.py", "test_nightly_verify.py",
              "test_notebooks.py", "test_concurrency.py", "test_nightly.py", "test_email.py",
              "test_tui_snapshots.py", "test_reconcile_cli.py", "test_sync.py", "test_tui.py",
              "test_email_faults.py", "test_nightly_kill.py", "test_propose_kill.py",
              "test_beancount_security.py", "test_bad_input_more.py", "test_wheel.py",
              "test_sqlite_race.py", "test_queue.py", "test_postgres.py", "test_window.py",
              "test_upgrade.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        # the [postgres] twins of the fast files run in the whole suite (make test)
        twin = getattr(item, "callspec", None) and item.callspec.params.get("portal_kind")
        if item.path.name in SLOW_FILES or twin == "postgres":
            item.add_marker(pytest.mark.slow)


# --- the portal on PostgreSQL ---------------------------------------------------------------
# The engine's, the CLI's and reconcile's tests run on both portals: each test of
# these files twice, [duckdb] and [postgres]. The server is started once for the
# whole run (pgserver ships PostgreSQL's binaries; the xdist workers share it), or
# is the one DOSSYNC_TEST_PG_URL names (an address whose user may create databases).
# Every test gets a database of its own, copied from a template where it starts
# from a demo firm.
PORTALS = ("duckdb", "postgres")
BOTH_PORTALS = {"test_sync.py", "test_cli.py", "test_reconcile.py", "test_reconcile_cli.py",
                "test_options.py", "test_repair.py", "test_queue.py"}
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_DATABASES = iter(range(1, 10**9))


def pytest_generate_tests(metafunc):
    if metafunc.definition.path.name in BOTH_PORTALS and "portal_kind" in metafunc.fixturenames:
        metafunc.parametrize("portal_kind", PORTALS, indirect=True)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The address of a PostgreSQL server's `postgres` database, for creating others."""
    url = os.environ.get("DOSSYNC_TEST_PG_URL")
    if url:
        return url
    import pgserver

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))[:12]
    # a short path: the server's socket lives in it
    return pgserver.get_server(f"/tmp/dossync-pg-{run}", cleanup_mode="delete").get_uri()


def database_url(server: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def _admin(server: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as con:
        for statement in statements:
            con.execute(statement)


def new_database(server: str, name: str | None = None, template: str | None = None) -> str:
    """A new, empty database (or a copy of `template`), its address."""
    name = name or f"t_{_WORKER}_{os.getpid()}_{next(_DATABASES)}"
    _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
           f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return database_url(server, name)


def database_name(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/")


def drop_database(server: str, url: str) -> None:
    _admin(server, f"DROP DATABASE IF EXISTS {database_name(url)} WITH (FORCE)")


@pytest.fixture(autouse=True)
def portal_kind(request, monkeypatch) -> str:
    """Which portal this test runs on: "duckdb" (HOME/portal.duckdb), or "postgres" (a
    database of its own on the test server, named by DOSSYNC_PORTAL)."""
    kind = getattr(request, "param", "duckdb")
    monkeypatch.delenv(PORTAL_ENV, raising=False)
    if kind != "postgres":
        yield kind
        return
    server = request.getfixturevalue("pg_server")
    url = new_database(server)
    monkeypatch.setenv(PORTAL_ENV, url)
    yield kind
    drop_database(server, url)


def on_postgres() -> bool:
    return bool(os.environ.get(PORTAL_ENV))


def portal_of(home: Path):
    """The portal of this test's HOME: its portal.duckdb, or the test's database."""
    return Home(Path(home)).portal


def portal_sql(home: Path, sql: str, params=None) -> list[tuple]:
    """One statement on the portal, whichever it is (DuckDB's SQL; core/portal/pgstore.py
    translates it for PostgreSQL)."""
    with portal.connect(portal_of(home)) as con:
        return con.execute(sql, params or []).fetchall()




def build_demo(tmp_path_factory, name: str, dossiers: int, lines: int, seed: int) -> Path:
    """A demo firm built through the CLI's own entry point, in a fresh folder."""
    home = tmp_path_factory.mktemp(name) / "firm"
    assert main(["--home", str(home), "demo", "--dossiers", str(dossiers), "--lines", str(lines),
                 "--seed", str(seed)]) == 0
    return home


class Template:
    """A demo firm built once per run: its HOME folder, and on PostgreSQL its database
    (a template the tests' databases are copied from)."""

    def __init__(self, tmp_path_factory, name: str, dossiers: int, lines: int, seed: int):
        self.factory, self.name, self.args = tmp_path_factory, name, (dossiers, lines, seed)
        self.built: dict[str, tuple[Path, str | None]] = {}

    def get(self, kind: str, server: str | None) -> tuple[Path, str | None]:
        if kind not in self.built:
            url = None
            saved = os.environ.pop(PORTAL_ENV, None)
            try:
                if kind == "postgres":
                    url = new_database(server, f"tmpl_{self.name}_{_WORKER}_{os.getpid()}")
                    os.environ[PORTAL_ENV] = url
                home = build_demo(self.factory, f"{self.name}-{kind}", *self.args)
            finally:
                os.environ.pop(PORTAL_ENV, None)
                if saved is not None:
                    os.environ[PORTAL_ENV] = saved
            self.built[kind] = (home, url)
        return self.built[kind]

    def copy(self, request, target: Path) -> Path:
        """A fresh copy for this test, on the test's portal kind."""
        kind = request.getfixturevalue("portal_kind")
        server = request.getfixturevalue("pg_server") if kind == "postgres" else None
        home, url = self.get(kind, server)
        if url is not None:  # the test's database becomes a copy of the template's
            mine = os.environ[PORTAL_ENV]
            drop_database(server, mine)
            new_database(server, database_name(mine), template=database_name(url))
        return copy_home(home, target)


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory) -> Template:
    return Template(tmp_path_factory, "template", 3, 3000, 7)


def copy_home(template: Path, target: Path) -> Path:
    """A copy of a home whose dossiers point at the copied ledgers."""
    shutil.copytree(template, target)
    for dossier in portal.list_dossiers(portal_of(target)):
        portal.update_dossier(portal_of(target), dossier.code,
                              source=str(target / "ledgers" / Path(dossier.source).name))
    return target


@pytest.fixture
def demo_home(_demo_template, tmp_path, request) -> Path:
    """A fresh copy of a 3-dossier demo firm (activated), safe to change."""
    return _demo_template.copy(request, tmp_path / "firm")


@pytest.fixture(scope="session")
def tui_template(tmp_path_factory) -> Template:
    """The demo firm the UI tests start from (built once; tests use copies)."""
    return Template(tmp_path_factory, "tui", 3, 2000, 3)


@pytest.fixture
def home(tui_template, tmp_path, request) -> Path:
    """A fresh copy of the UI tests' demo firm, safe to change."""
    return tui_template.copy(request, tmp_path / "firm")


@pytest.fixture
def bad_ledger(tmp_path) -> tuple[Path, dict[str, int]]:
    """A demo ledger with one of each kind of bad row; returns the booking ids spoiled."""
    company = demo_package.demo_companies(1, 2500, seed=11)[0]
    path = tmp_path / "bad.sqlite"
    demo_package.create_ledger(path, company, seed=11)
    with sqlite3.connect(path) as con:
        ids = [r[0] for r in con.execute(
            "SELECT id FROM bookings WHERE doc_type = 'invoice' ORDER BY id LIMIT 4")]
        unbalanced, unknown_account, bad_date, duplicate = ids
        con.execute("UPDATE booking_lines SET debit = debit + 100 WHERE booking_id = ? "
                    "AND debit > 0 AND line_no = (SELECT min(line_no) FROM booking_lines "
                    "WHERE booking_id = ? AND debit > 0)", (unbalanced, unbalanced))
        con.execute("UPDATE booking_lines SET account = '999999' WHERE booking_id = ? AND line_no = "
                    "(SELECT min(line_no) FROM booking_lines WHERE booking_id = ?)",
                    (unknown_account, unknown_account))
        con.execute("UPDATE bookings SET date = '2025-02-30' WHERE id = ?", (bad_date,))
        con.execute("INSERT INTO bookings SELECT id, journal, doc_no || '-BIS', doc_type, "
                    "fiscal_year_id, period_id, date, due_date, relation_id, description, reference, "
                    "rv FROM bookings WHERE id = ?", (duplicate,))
        relation = con.execute("SELECT id FROM relations ORDER BY id LIMIT 1").fetchone()[0]
        con.execute("UPDATE relations SET name = 'Evil Corp\r\nBcc: all@example.com' WHERE id = ?",
                    (relation,))
    return path, {"unbalanced": unbalanced, "unknown account": unknown_account,
                  "impossible date": bad_date, "duplicate": duplicate, "relation": relation}


# The ledger events a simple sync sees (CONTRACT.md: "seen by a simple sync? yes").
YES_EVENTS = [
    ["new-bookings", "12"],
    ["validate-proposals"],
    ["book-vat-return"],
    ["year-end-closing"],
    ["delete-bookings", "4"],
]


def codes(home: Path) -> list[str]:
    return [d.code for d in portal.list_dossiers(portal_of(home))]


def ledger_path(home: Path, code: str) -> Path:
    return Path(portal.get_dossier(portal_of(home), code).source)


# Commands that fork workers or take over the terminal run in a child process always.
PROCESS_COMMANDS = {"nightly", "tui"}


def cli(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`dossync --home HOME ARGS...`: the CLI's own entry point, its output and exit code.

    It runs in this process (the same parser, handlers, output and exit codes; a child
    process would spend a second importing), unless `env` is given (a failpoint, a
    plugin path: what a process reads at start-up) or the command forks workers: then
    in a child process, as `cli_process` always does."""
    if env or (args and args[0] in PROCESS_COMMANDS):
        return cli_process(home, *args, env=env)
    return run_main(["--home", str(home), *args])


def cli_process(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process (for what the process boundary is about)."""
    return subprocess.run([*DOSSYNC, "--home", str(home), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)


def run_main(argv: list[str]) -> subprocess.CompletedProcess:
    """`main(argv)` with stdin empty and stdout/stderr captured, as a child would see them;
    what the command changes in this process (log handlers, the SIGTERM handler a sync
    installs) is put back afterwards."""
    streams = sys.stdin, sys.stdout, sys.stderr
    sigterm = signal.getsignal(signal.SIGTERM)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out, err = io.StringIO(), io.StringIO()
    try:
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's --help
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        signal.signal(signal.SIGTERM, sigterm)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    return subprocess.CompletedProcess(["dossync", *argv], code, out.getvalue(), err.getvalue())


def cli_json(home: Path, *args: str):
    done = cli(home, *args, "--json")
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def event(home: Path, code: str, *args: str) -> str:
    """`dossync ledger CODE ARGS...` (a change to the demo ledger), checked to succeed."""
    done = cli(home, "ledger", code, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def status_of(home: Path) -> dict[str, dict]:
    """`status --json`, checked to succeed, by dossier code."""
    status, rows = cli_json(home, "status")
    assert status == 0, rows
    return {row["code"]: row for row in rows}


def jobs(home: Path) -> dict[str, dict]:
    """`jobs --json`, checked to succeed, by job id."""
    code, doc = cli_json(home, "jobs")
    assert code == 0, doc
    return {j["job"]: j for j in doc}


def throttle(home: Path, code: str, seconds: float = 3.0) -> None:
    """Slow full syncs down (HOME/dossync.toml) so that one of `code` lasts about `seconds`."""
    rows = max(r["read"] for r in portal.runs(portal_of(home), code) if r["kind"] == "full")
    (home / "dossync.toml").write_text(
        f"[full_sync]\nmax_rows_per_second = {max(1, int(rows / seconds))}\n")


def wait_for(check, what: str, timeout: float = 60, process: subprocess.Popen | None = None):
    """Poll `check` until it holds; fail after `timeout` seconds, or at once when `process`
    (the one expected to bring it about) ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout}s")


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (Textual's Pilot) run on asyncio, through anyio's pytest plugin."""
    return "asyncio"


def cents(text: str) -> int:
    return int(Decimal(text) * 100)


def portal_trial_balance(home: Path, code: str) -> dict[str, tuple[int, int]]:
    """{account: (debit, credit)} in cents, the money in the dossier's currency."""
    return {r["account"]: (cents(r["debit"]), cents(r["credit"]))
            for r in reports.trial_balance(portal_of(home), code)
            if r["commodity"] is None}


def ledger_trial_balance(home: Path, code: str) -> dict[str, tuple[int, int]]:
    return {k: v for k, v in demo_package.ledger_trial_balance(ledger_path(home, code)).items()
            if v != (0, 0)}


def ledger_payment_statuses(home: Path, code: str) -> dict[str, str]:
    """Payment status of every invoice and credit note, straight from the SQLite ledger."""
    with sqlite3.connect(ledger_path(home, code)) as con:
        rows = con.execute("""
            SELECT b.doc_no,
                   (SELECT sum(CASE WHEN l.account LIKE '40%' THEN l.debit - l.credit
                                    ELSE l.credit - l.debit END)
                    FROM booking_lines l WHERE l.booking_id = b.id
                      AND (l.account LIKE '40%' OR l.account LIKE '44%')),
                   (SELECT coalesce(sum(m.amount), 0) FROM matchings m WHERE m.invoice_id = b.id)
            FROM bookings b JOIN journals j ON j.code = b.journal
            WHERE j.kind IN ('purchase', 'sales') AND b.doc_type IN ('invoice', 'credit_note')
        """).fetchall()
    return {doc: reports.payment_status(amount or 0, paid) for doc, amount, paid in rows}


def portal_payment_statuses(home: Path, code: str) -> dict[str, str]:
    return {d["ref"]: d["payment_status"] for d in reports.archive(portal_of(home), code)}


def assert_portal_equals_ledger(home: Path, code: str) -> None:
    assert portal_trial_balance(home, code) == ledger_trial_balance(home, code)
    assert portal_payment_statuses(home, code) == ledger_payment_statuses(home, code)
