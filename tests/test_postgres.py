"""The portal on a PostgreSQL server: what only a shared server brings.

The engine's, the CLI's, reconcile's and the queue's own tests run on both
portals (conftest.BOTH_PORTALS). These are about what a server shared by
several machines must add: one sync per dossier enforced by the database
(two HOME folders stand for two machines: no lock file is shared), progress
and cancelling through the portal, a killed sync, the password kept out of
every log, a server that cannot be reached, and the same figures as on
DuckDB for the same ledgers, real books included.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import (DOSSYNC, ROOT, assert_portal_equals_ledger, cli, cli_json, codes,
                      drop_database, event, new_database, portal_of, portal_sql, throttle,
                      wait_for)
from dossync.core import portal, reports
from dossync.core.home import PORTAL_ENV, Home
from dossync.core.monitor import cancel_sync, monitor_rows
from dossync.core.progress import read_progress

CORPUS = ROOT / "tests" / "corpus"  # the corpus files, as the corpus tests use them


@pytest.fixture(params=["postgres"])
def portal_kind(request, monkeypatch, pg_server):
    """This file's tests run on PostgreSQL (a database of their own)."""
    url = new_database(pg_server)
    monkeypatch.setenv(PORTAL_ENV, url)
    yield "postgres"
    drop_database(pg_server, url)


def second_machine(home: Path, tmp_path: Path) -> Path:
    """Another HOME on the same portal: its own locks, logs and staging, as on another
    machine; the ledgers are where the dossiers say (a share both machines reach)."""
    other = tmp_path / "machine-b"
    other.mkdir()
    return other


@contextmanager
def running(home: Path, *args: str):
    """`dossync --home HOME ARGS...` in a process of its own, its output piped; on leaving,
    killed if it still runs (a check failed before it ended) and reaped."""
    process = subprocess.Popen([*DOSSYNC, "--home", str(home), *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


@contextmanager
def slow_full_sync(home: Path, code: str, seconds: float, *options: str):
    """A full sync of `code` (`sync CODE --full --json`, `options` before it: --portal)
    slowed down to last about `seconds` (HOME/dossync.toml); on leaving, killed if it still
    runs, reaped, and the throttle removed."""
    throttle(home, code, seconds)
    try:
        with running(home, *options, "sync", code, "--full", "--json") as process:
            yield process
    finally:
        (home / "dossync.toml").unlink(missing_ok=True)


def synced_again(home: Path, code: str, ledger_home: Path | None = None) -> None:
    """The dossier is free: a simple sync from `home`'s machine runs, and the portal equals
    the ledger."""
    status, run = cli_json(home, "sync", code)
    assert status == 0, run
    assert_portal_equals_ledger(ledger_home or home, code)


def reading(home: Path, code: str):
    """Whether a sync of `code` has reported rows read, as seen from `home`'s machine."""
    return lambda: (read_progress(Home(home), code) or {}).get("done", 0) > 0


def test_a_sync_on_another_machine_is_refused_busy_naming_its_holder(demo_home, tmp_path):
    code = codes(demo_home)[0]
    other = second_machine(demo_home, tmp_path)
    with slow_full_sync(demo_home, code, 30) as first:
        wait_for(lambda: code in {r["code"] for r in monitor_rows(Home(other))
                                  if r["state"] == "syncing"}, "the sync running",
                 process=first)
        status, doc = cli_json(other, "sync", code)
        assert status == 3, doc
        assert f"dossier {code} is busy" in doc["error"] and f"pid {first.pid}" in doc["error"]
        assert "full sync" in doc["error"]
        # the other machine's monitor reads the sync's progress from the portal
        wait_for(reading(other, code), "progress in the portal", process=first)
        progress = read_progress(Home(other), code)
        assert progress["kind"] == "full" and progress["total"] > 0
        # and stops it from there: the sync changes nothing
        assert cancel_sync(Home(other), code)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 1, err
    run = json.loads(out)
    assert run["status"] == "failed" and "cancelled" in run["error"], run
    assert not cancel_sync(Home(other), code)  # nothing runs any more
    synced_again(other, code, demo_home)  # the dossier is free again, from either


def test_a_killed_sync_leaves_the_portal_as_it_was_and_the_dossier_free(demo_home):
    code = codes(demo_home)[0]
    event(demo_home, code, "new-bookings", "40")
    before = reports.trial_balance(portal_of(demo_home), code)
    runs_before = len(portal.runs(portal_of(demo_home), code, limit=1000))
    with slow_full_sync(demo_home, code, 30) as first:
        wait_for(reading(demo_home, code), "the sync reading", process=first)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert reports.trial_balance(portal_of(demo_home), code) == before
    assert len(portal.runs(portal_of(demo_home), code, limit=1000)) == runs_before
    # the server ended the killed session: its hold is gone, the next sync runs
    wait_for(lambda: code not in {r["code"] for r in monitor_rows(Home(demo_home))
                                  if r["state"] == "syncing"}, "the hold released", 30)
    synced_again(demo_home, code)


def test_a_killed_commit_shows_before_or_after_never_half(demo_home):
    """Killed inside the commit (a failpoint just before COMMIT): the server rolls back."""
    code = codes(demo_home)[0]
    event(demo_home, code, "new-bookings", "25")
    before = reports.trial_balance(portal_of(demo_home), code)
    done = cli(demo_home, "sync", code, "--json", env={"DOSSYNC_FAILPOINT": "commit"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert reports.trial_balance(portal_of(demo_home), code) == before
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0 and run["rows"]["inserted"] > 0, run
    assert_portal_equals_ledger(demo_home, code)


def test_the_password_is_never_written(demo_home, pg_server, monkeypatch):
    """A role with a password, given in --portal: not in any output, log or error. (The
    test server trusts local connections, so a wrong password is not refused here; a
    server that cannot be reached shows its error with the password replaced.)"""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    password = "S3cret-pw-do-not-log"
    role = f"dossync_secret_{os.getpid()}"
    mine = os.environ[PORTAL_ENV]
    parts = urlsplit(mine)
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        with psycopg.connect(mine, autocommit=True) as con:
            con.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
            con.execute(f"GRANT ALL ON SCHEMA public TO {role}")
            con.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        secret = urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))
        code = codes(demo_home)[0]
        monkeypatch.delenv(PORTAL_ENV)
        outputs = []
        for args in (["status"], ["sync", code, "--json"], ["-v", "dossier", "list"]):
            done = subprocess.run([*DOSSYNC, "--home", str(demo_home), "--portal", secret,
                                   *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            outputs += [done.stdout, done.stderr]
        # a sync started with the password on its command line: who finds the dossier
        # busy is told its holder's command, with the password replaced
        monkeypatch.setenv(PORTAL_ENV, mine)
        try:
            with slow_full_sync(demo_home, code, 30, "--portal", secret) as holder:
                wait_for(reading(demo_home, code), "the sync holding the dossier",
                         process=holder)
                busy = cli(demo_home, "sync", code, "--json")
                assert busy.returncode == 3 and "--portal postgresql://" in busy.stdout
                assert f"{role}:***@" in busy.stdout
                outputs.append(busy.stdout)
                assert cancel_sync(Home(demo_home), code)
                outputs += holder.communicate(timeout=60)
        finally:
            monkeypatch.delenv(PORTAL_ENV)
        gone = f"postgresql://{role}:{password}@127.0.0.1:9/nothing"
        done = subprocess.run([*DOSSYNC, "--home", str(demo_home), "--portal", gone, "status",
                               "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        error = json.loads(done.stdout)["error"]
        assert done.returncode == 1 and "cannot be reached" in error, error
        assert f"{role}:***@127.0.0.1:9" in error
        outputs += [done.stdout, done.stderr]
        logs = [p.read_text(errors="replace") for p in (demo_home / "logs").rglob("*")
                if p.is_file()]
        assert logs
        for text in outputs + logs:
            assert password not in text
    finally:
        with psycopg.connect(mine, autocommit=True) as con:
            con.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(pg_server, autocommit=True) as con:
            con.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_server_that_cannot_be_reached_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv(PORTAL_ENV, "postgresql://nobody@127.0.0.1:9/nothing")
    home = tmp_path / "firm"
    status, doc = cli_json(home, "status")
    assert status == 1 and "cannot be reached" in doc["error"], doc
    assert "127.0.0.1:9" in doc["error"] and "Traceback" not in doc["error"]


def test_a_portal_option_that_is_no_postgresql_address_is_refused(demo_home, monkeypatch):
    done = cli(demo_home, "--portal", "mysql://x@y/z", "status")
    assert done.returncode == 2 and "not a PostgreSQL address" in done.stderr
    (demo_home / "dossync.toml").write_text('[portal]\nurl = "sqlite:///x"\n')
    monkeypatch.delenv(PORTAL_ENV)
    done = cli(demo_home, "status")
    assert done.returncode == 2 and "[portal] url" in done.stderr, done.stderr


def test_the_portal_can_be_named_in_dossync_toml(demo_home, monkeypatch):
    url = os.environ[PORTAL_ENV]
    monkeypatch.delenv(PORTAL_ENV)
    (demo_home / "dossync.toml").write_text(f'[portal]\nurl = "{url}"\n')
    status, rows = cli_json(demo_home, "status")
    assert status == 0 and len(rows) == 3
    assert not (demo_home / "portal.duckdb").exists()


def _figures(home: Path, code: str) -> dict:
    path = portal_of(home)
    return {"trial_balance": reports.trial_balance(path, code),
            "pnl": reports.pnl(path, code, None),
            "dashboard": reports.dashboard(path, code),
            "archive": reports.archive(path, code)}


def test_the_same_ledgers_give_the_same_figures_on_both_portals(demo_home, tmp_path,
                                                                monkeypatch):
    """One firm's ledgers synced into PostgreSQL and into DuckDB: every report equal."""
    for code in codes(demo_home):
        for change in (["new-bookings", "15"], ["delete-bookings", "3"], ["book-vat-return"]):
            event(demo_home, code, *change)
        assert cli_json(demo_home, "sync", code)[0] == 0
    on_server = {code: _figures(demo_home, code) for code in codes(demo_home)}
    dossiers = portal.list_dossiers(portal_of(demo_home))
    monkeypatch.delenv(PORTAL_ENV)
    duck = tmp_path / "duck"
    for d in dossiers:
        status, doc = cli_json(duck, "dossier", "add", d.code, "--package", d.package,
                               "--source", d.source, "--name", d.name)
        assert status == 0, doc
    assert {code: _figures(duck, code) for code in on_server} == on_server


@pytest.mark.parametrize("book", ["gnucash/simple_sample.gnucash", "gnucash/investment.gnucash",
                                  "beancount/fava-example.beancount"])
def test_real_books_give_the_same_figures_on_both_portals(book, tmp_path, monkeypatch):
    source = tmp_path / "books" / Path(book).name
    source.parent.mkdir()
    shutil.copy(CORPUS / book, source)
    package = book.split("/")[0]
    home = tmp_path / "pg"
    status, doc = cli_json(home, "dossier", "add", "BOOK", "--package", package,
                           "--source", str(source))
    assert status == 0, doc
    on_server = _figures(home, "BOOK")
    assert on_server["trial_balance"], "an empty trial balance proves nothing"
    status, verdict = cli_json(home, "reconcile", "BOOK")
    assert status == 0 and verdict["verdict"] == "in_sync", verdict
    monkeypatch.delenv(PORTAL_ENV)
    duck = tmp_path / "duck"
    assert cli_json(duck, "dossier", "add", "BOOK", "--package", package,
                    "--source", str(source))[0] == 0
    assert _figures(duck, "BOOK") == on_server


def test_demo_force_replaces_the_portal_in_the_database(demo_home):
    assert portal_sql(demo_home, "SELECT count(*) FROM dossiers") == [(3,)]
    status, doc = cli_json(demo_home, "demo", "--force", "--dossiers", "1", "--lines", "800")
    assert status == 0, doc
    assert portal_sql(demo_home, "SELECT count(*) FROM dossiers") == [(1,)]
    assert not (demo_home / "portal.duckdb").exists()


def test_a_new_database_is_no_dossync_home_until_something_is_added(tmp_path, pg_server):
    url = new_database(pg_server)
    try:
        done = cli(tmp_path / "firm", "--portal", url, "status")
        assert done.returncode == 2 and "no dossync portal in the database" in done.stderr
    finally:
        drop_database(pg_server, url)


# --- the terminal UI on a PostgreSQL portal ----------------------------------------------
@pytest.mark.anyio
async def test_the_ui_sees_and_stops_a_sync_running_on_another_machine(demo_home, tmp_path):
    """The UI on machine B shows machine A's sync as syncing with its progress (read from
    the portal), and its job queue; cancelling the running job from B's queue screen
    stops A's sync, which changes nothing."""
    from textual.widgets import DataTable

    from dossync.core.model import ManualOptions
    from dossync.tui.app import DossyncApp
    from dossync.tui.screens.jobs import JobsScreen

    code = codes(demo_home)[0]
    other = second_machine(demo_home, tmp_path)
    throttle(demo_home, code, seconds=60)
    job = portal.enqueue_job(portal_of(demo_home), code, "full", ManualOptions())
    notes: list[str] = []

    class App(DossyncApp):
        def notify(self, message, **kwargs):  # type: ignore[override]
            notes.append(str(message))
            super().notify(message, **kwargs)

    async def until(pilot, check, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert worker.poll() is None or what == "the job cancelled", worker.communicate()
            assert time.monotonic() < deadline, f"{what}: not within {timeout}s; {notes}"
            await pilot.pause(0.2)

    app = App(Home(other), frozen=True, refresh_seconds=0.5)
    with running(demo_home, "worker", "--until-idle", "--json") as worker:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.loaded and len(app.rows) == 3, "the monitor")
            await until(pilot, lambda: app.progress.get(code, {}).get("done", 0) > 0,
                        "machine A's sync with its progress")
            assert {r["code"]: r["state"] for r in app.rows}[code] == "syncing"
            await pilot.press("j")
            await until(pilot, lambda: isinstance(app.screen, JobsScreen)
                        and app.screen.query_one(DataTable).row_count == 1, "the job queue")
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: "%" in str(table.get_cell(job.job, "progress")),
                        "the running job's progress, read from the portal")
            await pilot.press("c")
            await until(pilot, lambda: any("stop requested" in n for n in notes),
                        "the stop request said")
            await until(pilot, lambda: portal.get_job(portal_of(demo_home), job.job).status
                        == "cancelled", "the job cancelled")
        out, err = worker.communicate(timeout=60)  # --until-idle: it ends, the queue empty
    assert worker.returncode == 0, err
    runs = portal.runs(portal_of(demo_home), code, limit=1)
    assert runs[0]["status"] == "failed" and "cancel" in runs[0]["error"]
    assert not app.return_code


def test_the_nightly_runs_on_the_server_with_worker_processes(demo_home):
    """`nightly --jobs 2` forks its workers; each reaches the server on its own."""
    for code in codes(demo_home):
        event(demo_home, code, "new-bookings", "9")
        portal.update_dossier(portal_of(demo_home), code, nightly=True)
    done = cli(demo_home, "nightly", "--jobs", "2", "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert sorted(r["dossier"] for r in runs) == sorted(codes(demo_home))
    assert all(r["status"] == "succeeded" and r["rows"]["inserted"] > 0 for r in runs), runs
    for code in codes(demo_home):
        assert_portal_equals_ledger(demo_home, code)


def test_idle_check_quiet_window_and_upgrade_plan_on_the_server(demo_home, monkeypatch):
    """Issue 13's pieces on a PostgreSQL portal: the nightly's idle check mends a long-idle
    dossier, a full sync outside the window is scheduled and run by a worker once it
    opens, and a dossier loaded before versions were recorded is advised a full sync."""
    from test_idle import age, idle_warnings
    from test_window import AFTERNOON, NIGHT, OPENS, set_window

    idle_code, window_code, old_code = codes(demo_home)
    for code in (idle_code, window_code, old_code):
        portal.update_dossier(portal_of(demo_home), code, nightly=True)
    event(demo_home, idle_code, "edit-closed-period")  # only the idle check sees it
    age(demo_home, idle_code, 100)
    status, night = cli_json(demo_home, "nightly", "--jobs", "2")
    assert status == 0, night
    run = {r["dossier"]: r for r in night["runs"]}[idle_code]
    assert "repaired 1 period(s)" in idle_warnings(run)[0]
    assert cli_json(demo_home, "reconcile", idle_code)[1]["verdict"] == "in_sync"

    set_window(demo_home, "01:00-05:00")
    event(demo_home, window_code, "new-bookings", "5")
    monkeypatch.setenv("DOSSYNC_NOW", AFTERNOON)
    status, scheduled = cli_json(demo_home, "sync", window_code, "--full")
    assert (status, scheduled["status"], scheduled["scheduled_for"]) == (0, "scheduled", OPENS)
    assert cli_json(demo_home, "worker", "--until-idle")[1]["run"] == 0  # not open yet
    monkeypatch.setenv("DOSSYNC_NOW", NIGHT)
    status, worked = cli_json(demo_home, "worker", "--until-idle")
    assert status == 0 and (worked["run"], worked["succeeded"]) == (1, 1), worked
    assert_portal_equals_ledger(demo_home, window_code)

    # a demo dossier loaded before versions were recorded lacks nothing; pretend its
    # connector's history says otherwise by recording it at version 0
    portal_sql(demo_home, "UPDATE dossiers SET connector_version = 0 WHERE code = ?", [old_code])
    rows = {r["code"]: r for r in cli_json(demo_home, "status")[1]}
    assert rows[old_code]["full_sync_advised"] and rows[old_code]["state"] == "action_required"
    status, plan = cli_json(demo_home, "upgrade-plan")
    assert status == 0 and [p["dossier"] for p in plan] == [old_code]
    monkeypatch.delenv("DOSSYNC_NOW")
    assert cli_json(demo_home, "sync", old_code, "--full", "--now")[0] == 0
    rows = {r["code"]: r for r in cli_json(demo_home, "status")[1]}
    assert rows[old_code]["full_sync_advised"] is None and rows[old_code]["state"] == "ok"
