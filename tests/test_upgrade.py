"""Connector upgrades: a dossier whose connector now brings data it lacks is told so, and
reloaded.

Each connector declares what each of its versions brought; the portal records the
connector version of every dossier's last full load (schema 8). A portal written by an
earlier release migrates in place with the same figures, its dossiers at "loaded before
versions were recorded": a demo dossier lacks nothing (0.4.0's migration gave it its
classes), a GnuCash book loaded then lacks the account classes and exact amounts of 0.4.0.
"""
from __future__ import annotations

import math
import shutil
from datetime import datetime
from pathlib import Path

from conftest import cli, cli_json, codes, portal_sql, status_of

from dossync.core import portal
from dossync.core.home import Home
from dossync.core.monitor import monitor_rows
from dossync.core.upgrades import DOCUMENTED_ROWS_PER_SECOND

BOOK = Path(__file__).resolve().parent / "corpus" / "gnucash" / "simple_sample.gnucash"


def add_gnucash(home: Path, code: str = "BOOKS") -> dict:
    book = home / "books" / "simple_sample.gnucash"
    book.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BOOK, book)
    book.chmod(0o644)
    status, run = cli_json(home, "dossier", "add", code, "--package", "gnucash", "--source",
                           str(book))
    assert status == 0 and run["status"] == "succeeded", run
    return run


def figures(home: Path) -> dict:
    """What the client sees of every dossier: trial balance and dashboard."""
    out = {}
    for code in codes(home):
        status, trial = cli_json(home, "report", code, "trial-balance")
        assert status == 0
        status, dash = cli_json(home, "report", code, "dashboard")
        assert status == 0
        out[code] = (trial, dash)
    return out


def reload_seconds(load: dict) -> int:
    """How long upgrade-plan expects a reload to take, from the run of the dossier's last
    full load (`dossier add`'s or `sync --full`'s JSON; its times are the portal's, to the
    millisecond): its rows read again at the rate that load ran (rows read / its seconds),
    rounded up, at least 1 (core/upgrades.py; no throttle set)."""
    rows = load["rows"]["read"]
    seconds = (datetime.fromisoformat(load["finished_at"])
               - datetime.fromisoformat(load["started_at"])).total_seconds()
    rate = rows / seconds if rows and seconds > 0 else DOCUMENTED_ROWS_PER_SECOND
    return max(1, math.ceil(rows / rate))


def schema_version(home: Path) -> str:
    return portal_sql(home, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0]


def as_written_by(home: Path, schema: int) -> None:
    """Make the portal what an earlier release left: without the connector versions
    (schema 7, 0.7.0 before them), and without a running job's stop request too (6, 0.6.0)."""
    portal_sql(home, "ALTER TABLE dossiers DROP COLUMN connector_version")
    if schema <= 6:
        portal_sql(home, "ALTER TABLE jobs DROP COLUMN cancel_requested")
    portal_sql(home, f"UPDATE meta SET value = '{schema}' WHERE key = 'schema_version'")


def test_a_schema_7_portal_opens_with_the_same_figures_and_gets_the_column(demo_home):
    before = figures(demo_home)
    as_written_by(demo_home, 7)
    assert figures(demo_home) == before  # migrated on first open, losing nothing
    assert schema_version(demo_home) == str(portal.SCHEMA_VERSION) == "8"
    # loaded by this release's full loads (they keep per-stream counts, as 0.4.0 and later
    # do): recorded at version 2
    assert portal_sql(demo_home, "SELECT DISTINCT connector_version FROM dossiers") == [(2,)]
    # and a demo dossier lacks nothing: no full sync advised
    for row in status_of(demo_home).values():
        assert (row["state"], row["full_sync_advised"]) == ("ok", None), row
    assert cli_json(demo_home, "upgrade-plan") == (0, [])
    done = cli(demo_home, "upgrade-plan")
    assert done.returncode == 0 and "nothing to reload" in done.stdout


def test_an_activation_records_the_connector_version(demo_home):
    add_gnucash(demo_home)
    status, dossiers = cli_json(demo_home, "dossier", "list")
    assert {d["code"]: d["connector_version"] for d in dossiers} == {
        **{code: 2 for code in codes(demo_home)}, "BOOKS": 2}
    assert status_of(demo_home)["BOOKS"]["full_sync_advised"] is None
    assert cli_json(demo_home, "upgrade-plan") == (0, [])


def test_a_dossier_loaded_by_an_older_connector_version_is_advised_a_full_sync(demo_home):
    demo = codes(demo_home)[0]
    add_gnucash(demo_home)
    portal_sql(demo_home, "UPDATE dossiers SET connector_version = 1")
    advised = status_of(demo_home)["BOOKS"]["full_sync_advised"]
    assert advised.startswith("the GnuCash connector is at version 2 and BOOKS's last full "
                              "load was by version 1: it lacks account classes, exact amounts "
                              "and the figures of books whose root account has no commodity "
                              "(version 2, dossync 0.4.0)"), advised
    assert "dossync sync BOOKS --full" in advised
    assert status_of(demo_home)[demo]["full_sync_advised"] is None  # demo 2 needed no reload
    row = next(r for r in monitor_rows(Home(demo_home)) if r["code"] == "BOOKS")
    assert (row["state"], row["reason"]) == ("action_required", advised)
    status, verdict = cli_json(demo_home, "reconcile", "BOOKS")
    assert status == 5 and verdict["verdict"] == "full_sync" and advised in verdict["reasons"]
    assert verdict["repairable"] is False  # a reload of periods would not bring it


def test_the_upgrade_of_a_firm_activated_by_the_previous_release(demo_home):
    """A firm that 0.6.0 left (schema 6: three demo dossiers, and a GnuCash book it has
    synced since before 0.4.0: its last full load has no per-stream counts) opens in this
    release with the same figures; the dossiers 0.4.0 and later loaded are recorded at
    version 2 and advised nothing; the book is advised a full sync everywhere an engineer
    looks; upgrade-plan lists it with its cost and queues it; once a worker ran that full
    sync, nothing is advised."""
    activation = add_gnucash(demo_home)
    demos = codes(demo_home)
    demos.remove("BOOKS")
    before = figures(demo_home)
    portal_sql(demo_home, "UPDATE sync_runs SET stream_counts = NULL WHERE dossier = 'BOOKS'")
    as_written_by(demo_home, 6)

    # the same figures, the portal at schema 8
    assert figures(demo_home) == before
    assert schema_version(demo_home) == "8"
    status, dossiers = cli_json(demo_home, "dossier", "list")
    assert {d["code"]: d["connector_version"] for d in dossiers} == {
        **{code: 2 for code in demos}, "BOOKS": None}

    # status, the monitor, reconcile
    rows = status_of(demo_home)
    advised = rows["BOOKS"]["full_sync_advised"]
    assert rows["BOOKS"]["state"] == "action_required"
    assert advised.startswith("the GnuCash connector is at version 2 and BOOKS's last full "
                              "load was by version 1 (it was loaded before connector versions "
                              "were recorded): it lacks account classes, exact amounts and the "
                              "figures of books whose root account has no commodity "
                              "(version 2, dossync 0.4.0)"), advised
    for code in demos:
        assert (rows[code]["state"], rows[code]["full_sync_advised"]) == ("ok", None)
    status, verdict = cli_json(demo_home, "reconcile", "BOOKS")
    assert (status, verdict["verdict"], verdict["reasons"][0]) == (5, "full_sync", advised)
    status, verdict = cli_json(demo_home, "reconcile", demos[0])
    assert (status, verdict["verdict"]) == (0, "in_sync")

    # the plan: the rows of its last full load (the activation), at that load's rate
    status, plan = cli_json(demo_home, "upgrade-plan")
    assert status == 0
    assert plan == [{"dossier": "BOOKS", "package": "gnucash", "from_version": 1,
                     "to_version": 2,
                     "new": "account classes, exact amounts and the figures of books whose "
                            "root account has no commodity (version 2, dossync 0.4.0)",
                     "expected_rows": activation["rows"]["read"],
                     "expected_seconds": reload_seconds(activation)}]
    assert plan[0]["expected_rows"] > 0
    shown = cli(demo_home, "upgrade-plan")
    assert shown.returncode == 0 and "BOOKS" in shown.stdout and "upgrade-plan --queue" in shown.stdout

    # queued, then run by a worker
    status, queued = cli_json(demo_home, "upgrade-plan", "--queue")
    assert status == 0 and [q["dossier"] for q in queued] == ["BOOKS"]
    job = queued[0]["job"]
    status, jobs = cli_json(demo_home, "jobs")
    assert {(j["job"], j["dossier"], j["kind"], j["status"]) for j in jobs} == {
        (job, "BOOKS", "full", "queued")}
    status, worker = cli_json(demo_home, "worker", "--until-idle")
    assert status == 0 and (worker["succeeded"], worker["failed"]) == (1, 0), worker
    status, jobs = cli_json(demo_home, "jobs")
    assert [(j["job"], j["status"]) for j in jobs] == [(job, "succeeded")]

    # all of it gone, the figures as they were
    rows = status_of(demo_home)
    assert (rows["BOOKS"]["state"], rows["BOOKS"]["full_sync_advised"]) == ("ok", None)
    assert rows["BOOKS"]["last_sync"]["kind"] == "full"
    status, verdict = cli_json(demo_home, "reconcile", "BOOKS")
    assert (status, verdict["verdict"]) == (0, "in_sync")
    assert cli_json(demo_home, "upgrade-plan") == (0, [])
    status, dossiers = cli_json(demo_home, "dossier", "list")
    assert {d["code"]: d["connector_version"] for d in dossiers}["BOOKS"] == 2
    assert figures(demo_home) == before


def test_a_full_sync_clears_the_advice(demo_home):
    add_gnucash(demo_home)
    portal_sql(demo_home, "UPDATE dossiers SET connector_version = NULL WHERE code = 'BOOKS'")
    assert status_of(demo_home)["BOOKS"]["full_sync_advised"]
    status, run = cli_json(demo_home, "sync", "BOOKS")  # a simple sync does not clear it
    assert status == 0 and run["kind"] == "simple"
    assert status_of(demo_home)["BOOKS"]["full_sync_advised"]
    status, run = cli_json(demo_home, "sync", "BOOKS", "--full")
    assert status == 0 and (run["kind"], run["status"]) == ("full", "succeeded"), run
    assert status_of(demo_home)["BOOKS"]["full_sync_advised"] is None
    assert status_of(demo_home)["BOOKS"]["state"] == "ok"
