"""The CLI through its real entry point: usage errors, help, JSON, exit codes."""
from __future__ import annotations

import json

from conftest import cli, cli_json, codes, portal_sql
from dossync.core import portal
from dossync.core.model import ExitCode


def test_help_documents_exit_codes_and_examples(tmp_path):
    done = cli(tmp_path, "--help")
    assert done.returncode == 0
    for code in ExitCode:
        assert code.name in done.stdout
    for command in ("sync", "report", "demo", "ledger", "status"):
        sub = cli(tmp_path, command, "--help")
        assert sub.returncode == 0
        assert "example" in sub.stdout and "dossync " in sub.stdout


def test_missing_home_says_how_to_create_one(tmp_path):
    home = tmp_path / "nowhere"
    for args in (["status"], ["sync", "X"], ["report", "X", "dashboard"], ["dossier", "list"]):
        done = cli(home, *args)
        assert done.returncode == ExitCode.USAGE
        assert "dossync --home" in done.stderr and "demo" in done.stderr
        assert "Traceback" not in done.stderr
    assert not home.exists()


def test_unknown_dossier_is_a_usage_error(demo_home):
    done = cli(demo_home, "sync", "NOPE")
    assert done.returncode == ExitCode.USAGE
    assert "unknown dossier 'NOPE'" in done.stderr
    for code in codes(demo_home):
        assert code in done.stderr  # the message lists the known ones
    status, doc = cli_json(demo_home, "sync", "NOPE")
    assert status == ExitCode.USAGE and "unknown dossier" in doc["error"]


def test_bad_arguments_exit_2(demo_home):
    code = codes(demo_home)[0]
    assert cli(demo_home, "sync", code, "--until", "yesterday").returncode == 2
    assert cli(demo_home, "report", code, "trial-balance", "--period", "2026-13").returncode == 2
    assert cli(demo_home, "ledger", code, "new-bookings", "many").returncode == 1
    assert cli(demo_home, "ledger", code, "explode").returncode == 2
    assert cli(demo_home, "sync", code, "--full", "--repair").returncode == 2


def test_demo_refuses_to_overwrite_without_force(demo_home):
    done = cli(demo_home, "demo", "--dossiers", "1", "--lines", "600")
    assert done.returncode == ExitCode.USAGE and "--force" in done.stderr
    assert len(codes(demo_home)) == 3
    done = cli(demo_home, "demo", "--dossiers", "1", "--lines", "600", "--force")
    assert done.returncode == 0, done.stderr
    assert len(codes(demo_home)) == 1


def test_json_documents_follow_the_contract(demo_home):
    code = codes(demo_home)[0]
    status, rows = cli_json(demo_home, "status")
    assert set(rows[0]) == {"code", "name", "package", "updated_until", "active_period",
                            "pending_proposals", "state", "nightly", "last_sync", "quarantined",
                            "idle_days", "full_sync_advised"}
    assert rows[0]["idle_days"] == 0  # the demo firm was just activated
    assert set(rows[0]["last_sync"]) == {"run_id", "kind", "status", "finished_at"}
    status, run = cli_json(demo_home, "sync", code)
    assert set(run) == {"run_id", "dossier", "kind", "status", "rows", "updated_until",
                        "pending_proposals", "active_period", "email", "warnings", "error",
                        "started_at", "finished_at", "streams"}
    assert set(run["rows"]) == {"read", "inserted", "updated", "deleted", "quarantined"}
    for counts in run["streams"].values():  # the conservation proof, per stream
        assert counts["read"] == (counts["inserted"] + counts["updated"] + counts["unchanged"]
                                  + counts["quarantined"])
    status, dash = cli_json(demo_home, "report", code, "dashboard")
    for key in ("updated_until", "active_period", "revenue", "costs", "result", "bank",
                "receivables", "payables", "vat_position"):
        assert key in dash
    assert isinstance(dash["revenue"], str) and dash["revenue"].split(".")[1].isdigit()
    status, archive = cli_json(demo_home, "report", code, "archive")
    assert archive and set(archive[0]) == {"ref", "journal", "date", "due_date", "relation",
                                           "amount", "booking_status", "payment_status"}
    assert {d["payment_status"] for d in archive} == {"open", "partly_paid", "paid"}
    # --json prints exactly one document, nothing else on stdout
    done = cli(demo_home, "sync", code, "--json")
    json.loads(done.stdout)


def test_trial_balance_up_to_a_period(demo_home):
    code = codes(demo_home)[0]
    status, year_one = cli_json(demo_home, "report", code, "trial-balance", "--period", "2024-12")
    status, everything = cli_json(demo_home, "report", code, "trial-balance")
    bank = lambda rows: next(r for r in rows if r["account"] == "550000")  # noqa: E731
    assert bank(year_one)["debit"] != bank(everything)["debit"]
    from decimal import Decimal
    total = lambda rows, side: sum(Decimal(r[side]) for r in rows)  # noqa: E731
    assert total(year_one, "debit") == total(year_one, "credit")


def test_pnl_result_is_revenue_minus_costs(demo_home):
    code = codes(demo_home)[0]
    status, pnl = cli_json(demo_home, "report", code, "pnl")
    assert status == 0
    from decimal import Decimal
    assert Decimal(pnl["result"]) == Decimal(pnl["revenue"]) - Decimal(pnl["costs"])
    assert sum(Decimal(a["amount"]) for a in pnl["accounts"]) == \
        Decimal(pnl["revenue"]) + Decimal(pnl["costs"])


def test_ledger_event_with_json_and_options(demo_home):
    code = codes(demo_home)[0]
    status, doc = cli_json(demo_home, "ledger", code, "new-bookings", "2")
    assert status == 0 and doc["event"] == "new-bookings" and "booked 2" in doc["message"]
    cli_json(demo_home, "propose", code, "--count", "2")
    done = cli(demo_home, "ledger", code, "validate-proposals", "--change-first")
    assert done.returncode == 0 and "corrected" in done.stdout


def test_a_portal_from_an_older_version_is_brought_up_to_date(demo_home):
    portal_sql(demo_home, "DROP TABLE reconcile_runs")
    portal_sql(demo_home, "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    status, rows = cli_json(demo_home, "status")  # reads reconcile_runs: must exist again
    assert status == 0 and len(rows) == 3
    assert portal_sql(demo_home, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(portal.SCHEMA_VERSION),)]


def test_adding_a_dossier_twice_is_refused_and_keeps_the_first(demo_home):
    from conftest import ledger_path, portal_trial_balance

    code = codes(demo_home)[0]
    before = portal_trial_balance(demo_home, code)
    other = ledger_path(demo_home, codes(demo_home)[1])
    done = cli(demo_home, "dossier", "add", code.lower(), "--package", "demo", "--source", str(other))
    assert done.returncode == ExitCode.USAGE
    assert f"dossier {code} already exists" in done.stderr and "dossier set" in done.stderr
    assert "Traceback" not in done.stderr
    assert portal_trial_balance(demo_home, code) == before
    listed = {d["code"]: d for d in cli_json(demo_home, "dossier", "list")[1]}
    assert listed[code]["source"] == str(ledger_path(demo_home, code))


def test_a_ledger_whose_path_has_uri_characters_works(tmp_path):
    """'#', '?', '%' and spaces are ordinary in file names; SQLite URIs give them meaning."""
    from dossync.core import demo_package

    folder = tmp_path / "Klant #12? 100% zeker"
    folder.mkdir()
    ledger = folder / "boeken 2026 #1.sqlite"
    company = demo_package.demo_companies(1, 1500, seed=5)[0]
    demo_package.create_ledger(ledger, company, seed=5)
    home = tmp_path / "firm"
    status, run = cli_json(home, "dossier", "add", "ODD", "--package", "demo",
                           "--source", str(ledger))
    assert status == 0 and run["rows"]["read"] > 1500, run
    assert cli(home, "ledger", "ODD", "edit-closed-period").returncode == 0
    status, doc = cli_json(home, "reconcile", "ODD")
    assert (status, doc["verdict"]) == (ExitCode.DIFFERENCES, "full_sync"), doc
    status, run = cli_json(home, "sync", "ODD", "--repair")
    assert status == 0 and run["status"] == "succeeded", run
    assert cli_json(home, "reconcile", "ODD")[1]["verdict"] == "in_sync"
