"""A portal written by the previous release (0.3.0, schema 3) opens with the same figures.

The fixture is a DuckDB EXPORT of a small firm that dossync 0.3.0 built and
activated (two demo dossiers, one of them with provisional proposals, a
GnuCash book written by piecash and a Beancount ledger), with the reports
0.3.0 showed for each (`expected.json`). Amounts were integer cents then;
now they are exact decimals, the accounts have classes, the run records
per-stream counts.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb

from dossync.core import portal, reports, upgrades
from dossync.core.home import Home

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "portal-0.3.0"


def old_portal(target: Path) -> Path:
    """The 0.3.0 portal, re-created from its export."""
    path = target / "portal.duckdb"
    con = duckdb.connect(str(path))
    con.execute((FIXTURE / "schema.sql").read_text())
    con.execute((FIXTURE / "load.sql").read_text().replace("EXPORT_DIR", str(FIXTURE)))
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    con.close()
    assert version == [("3",)]
    return path


def test_a_portal_of_the_previous_release_opens_with_the_same_figures(tmp_path):
    path = old_portal(tmp_path)
    expected = json.loads((FIXTURE / "expected.json").read_text())
    assert sorted(d.code for d in portal.list_dossiers(path)) == sorted(expected)  # migrates
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [
        (str(portal.SCHEMA_VERSION),)]
    assert con.execute("SELECT data_type FROM duckdb_columns() WHERE table_name = 'lines' "
                       "AND column_name = 'debit'").fetchall() == [("DECIMAL(18,6)",)]
    con.close()
    for code, old in expected.items():
        trial = reports.trial_balance(path, code)
        assert [{k: row[k] for k in ("account", "name", "debit", "credit", "balance")}
                for row in trial] == old["trial_balance"], code
        assert reports.archive(path, code) == old["archive"], code
        assert portal.get_dossier(path, code).pending_proposals == old["pending_proposals"]
        if old["package"] == "demo":  # MAR classes for the demo package's accounts
            dash = reports.dashboard(path, code)
            for key in ("revenue", "costs", "result", "bank", "receivables", "payables",
                        "vat_position"):
                assert dash[key] == old["dashboard"][key], (code, key)
            pnl = reports.pnl(path, code)
            assert (pnl["revenue"], pnl["costs"], pnl["result"]) == (
                old["pnl"]["revenue"], old["pnl"]["costs"], old["pnl"]["result"])
            assert {a["account"]: a["amount"] for a in pnl["accounts"]} == {
                a["account"]: a["amount"] for a in old["pnl"]["accounts"]}


def test_a_migrated_portal_keeps_working(tmp_path):
    """Proposals, provisional figures and new runs on a migrated portal."""
    path = old_portal(tmp_path)
    home = Home(tmp_path)
    code = "FONTAINE"  # had 2 provisional proposals in 0.3.0
    before = reports.dashboard(path, code)
    provisional = [d for d in reports.archive(path, code) if d["booking_status"] == "provisional"]
    assert len(provisional) == 2
    validated = reports.dashboard(path, code, validated_only=True)
    gap = sum(Decimal(d["amount"]) for d in provisional if d["journal"] == "VERK")
    assert Decimal(before["receivables"]) - Decimal(validated["receivables"]) == gap
    assert portal.monitor(home.portal)  # the monitor reads the migrated tables
    assert portal.runs(path, code)[0]["streams"] is None  # 0.3.0 runs had no per-stream counts


def test_a_migrated_portal_knows_which_dossiers_a_full_sync_would_bring_more(tmp_path):
    """Schema 8: dossiers.connector_version, NULL for every dossier 0.3.0 loaded. The demo
    dossiers lack nothing (the migration to 4 gave them their classes); the GnuCash book
    and the Beancount ledger, loaded before classes and exact amounts, are advised a full
    sync, with the rows of their activation."""
    path = old_portal(tmp_path)
    home = Home(tmp_path)
    dossiers = {d.code: d for d in portal.list_dossiers(path)}
    assert {code: d.connector_version for code, d in dossiers.items()} == dict.fromkeys(
        ("BEAN", "FONTAINE", "GCBOOK", "LEMMENS"))
    advised = {code: upgrades.full_sync_advised(d) for code, d in dossiers.items()}
    assert advised["LEMMENS"] is advised["FONTAINE"] is None
    assert "the GnuCash connector is at version 2" in advised["GCBOOK"]
    assert "the Beancount connector is at version 2" in advised["BEAN"]
    plan = {r.dossier: r for r in upgrades.plan(home)}
    assert sorted(plan) == ["BEAN", "GCBOOK"]
    reads = {r["dossier"]: r["read"] for r in portal.runs(path, limit=100) if r["kind"] == "full"}
    assert {code: r.expected_rows for code, r in plan.items()} == {
        code: reads[code] for code in plan}
    assert all((r.from_version, r.to_version) == (1, 2) for r in plan.values())
