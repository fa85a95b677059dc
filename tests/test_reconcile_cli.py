"""`dossync reconcile` through the real CLI: the JSON contract, verdicts and exit codes."""
from __future__ import annotations

import json
import re
import subprocess

from conftest import DOSSYNC, ROOT, cli, cli_json, codes, ledger_path

DIFFERENCE_FIELDS = {"fiscal_year", "period", "journal", "account", "ledger_count",
                     "portal_count", "ledger_amount", "portal_amount", "explained_by"}
AMOUNT = re.compile(r"^-?\d+\.\d{2}$")


def _edit_closed_period(home, code: str) -> str:
    done = cli(home, "ledger", code, "edit-closed-period")
    assert done.returncode == 0, done.stderr
    return re.search(r"closed period (\d{4}-\d{2})", done.stdout).group(1)


def test_in_sync_dossier_json_contract_and_exit_0(demo_home):
    code = codes(demo_home)[0]
    status, doc = cli_json(demo_home, "reconcile", code.lower())
    assert status == 0
    assert {"dossier", "verdict", "reasons", "differences", "segments"} <= set(doc)
    assert doc["dossier"] == code and doc["verdict"] == "in_sync"
    assert doc["differences"] == [] and doc["segments"] == []
    assert doc["reasons"] and all(isinstance(r, str) for r in doc["reasons"])

    text = cli(demo_home, "reconcile", code)
    assert text.returncode == 0
    assert f"{code}: in_sync" in text.stdout and "agree in all" in text.stdout


def test_edit_in_closed_period_exits_5_naming_the_period(demo_home):
    code = codes(demo_home)[0]
    period = _edit_closed_period(demo_home, code)
    status, doc = cli_json(demo_home, "reconcile", code)
    assert status == 5  # DIFFERENCES
    assert doc["verdict"] == "full_sync"
    assert doc["segments"] == [{"fiscal_year": period[:4], "period": period}]
    assert doc["differences"]
    for d in doc["differences"]:
        assert set(d) >= DIFFERENCE_FIELDS
        assert d["period"] == period and d["explained_by"] is None
        assert AMOUNT.match(d["ledger_amount"]) and AMOUNT.match(d["portal_amount"])
    assert any(d["ledger_amount"] != d["portal_amount"] for d in doc["differences"])
    assert any(period in r and "--repair" in r for r in doc["reasons"])

    text = cli(demo_home, "reconcile", code)
    assert text.returncode == 5
    assert f"{code}: full_sync" in text.stdout
    assert "UNEXPLAINED" in text.stdout and period in text.stdout


def test_pending_changes_exit_5_with_a_simple_sync_verdict(demo_home):
    code = codes(demo_home)[1]
    assert cli(demo_home, "ledger", code, "new-bookings", "5").returncode == 0
    status, doc = cli_json(demo_home, "reconcile", code)
    assert status == 5 and doc["verdict"] == "simple_sync"
    assert doc["segments"] == []
    assert {d["explained_by"] for d in doc["differences"]} <= {"pending_changes", "provisional"}


def test_unreachable_ledger_exits_1_with_a_clear_message(demo_home):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    ledger.unlink()
    done = cli(demo_home, "reconcile", code)
    assert done.returncode == 1
    assert str(ledger) in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    status, doc = cli_json(demo_home, "reconcile", code)
    assert status == 1 and doc["exit_code"] == 1 and str(ledger) in doc["error"]


def test_unknown_dossier_and_bad_arguments_exit_2(demo_home):
    done = cli(demo_home, "reconcile", "NOSUCH")
    assert done.returncode == 2 and "unknown dossier" in done.stderr
    assert cli(demo_home, "reconcile").returncode == 2
    assert cli(demo_home, "reconcile", codes(demo_home)[0], "--all").returncode == 2
    assert cli(demo_home, "reconcile", "--all", "--html", "x.html").returncode == 2


def test_all_lists_every_dossier(demo_home):
    first, second, third = codes(demo_home)
    status, docs = cli_json(demo_home, "reconcile", "--all")
    assert status == 0
    assert [d["dossier"] for d in docs] == [first, second, third]
    assert all(d["verdict"] == "in_sync" and d["error"] is None for d in docs)

    _edit_closed_period(demo_home, second)
    status, docs = cli_json(demo_home, "reconcile", "--all")
    assert status == 5
    assert [d["verdict"] for d in docs] == ["in_sync", "full_sync", "in_sync"]

    ledger = ledger_path(demo_home, third)
    ledger.unlink()
    status, docs = cli_json(demo_home, "reconcile", "--all")
    assert status == 4  # PARTIAL: one dossier could not be reconciled, the others were
    by_code = {d["dossier"]: d for d in docs}
    assert set(by_code) == {first, second, third}
    assert by_code[third]["verdict"] is None and str(ledger) in by_code[third]["error"]
    assert by_code[first]["verdict"] == "in_sync" and by_code[second]["verdict"] == "full_sync"

    text = cli(demo_home, "reconcile", "--all")
    assert text.returncode == 4 and "Traceback" not in text.stderr
    assert f"{third}: FAILED" in text.stderr and "1 in sync, 1 with differences, 1 failed" \
        in text.stdout


def test_html_renders_the_notebook_with_the_verdict(demo_home, tmp_path):
    code = codes(demo_home)[0]
    _edit_closed_period(demo_home, code)
    out = tmp_path / "report" / f"{code}.html"
    status, doc = cli_json(demo_home, "reconcile", code, "--html", str(out))
    assert status == 5 and doc["verdict"] == "full_sync"
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "verdict: full_sync" in html and code in html  # the executed output, not the source
    # a report, not a notebook dump: no code cell reaches the HTML
    assert "import polars" not in html and "difference_map(" not in html
    assert "Dark red: unexplained" in html and "<img" in html  # the map, with its key
    json.dumps(doc)


def test_help_has_a_runnable_example():
    done = subprocess.run([*DOSSYNC, "reconcile", "--help"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0
    assert "dossync reconcile ACME" in done.stdout and "--all" in done.stdout
    assert "5" in done.stdout and "DIFFERENCES" in done.stdout
