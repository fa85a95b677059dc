"""The analyst's notebooks execute headless with nbconvert and show the verdicts the API gives."""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import nbformat

from conftest import ROOT, cli, codes
from dossync.core.home import Home
from dossync.core.reconcile import NOTEBOOKS, reconcile, render_html


def text_of(page: str) -> str:
    """The visible text of an nbconvert HTML page (tags dropped, entities decoded)."""
    body = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def test_notebooks_are_committed_without_outputs():
    for name in ("reconcile_dossier", "firm_overview"):
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        first = notebook.cells[1].source if notebook.cells[0].cell_type == "markdown" \
            else notebook.cells[0].source
        assert "DOSSYNC_HOME" in first and "DOSSIER" in first
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_reconcile_notebook_renders_the_verdict_of_an_edited_dossier(demo_home, tmp_path):
    home = Home(demo_home)
    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "edit-closed-period").returncode == 0
    result = reconcile(home, code)
    assert result.verdict == "full_sync"

    out = render_html(home, code, tmp_path / "report" / "reconcile.html")
    page = out.read_text(encoding="utf-8")
    text = text_of(page)
    assert "verdict: full_sync" in text
    assert result.segments[0]["period"] in text
    assert "data:image/png;base64," in page  # the heatmap travels inside the file


def test_firm_overview_executes_with_nbconvert_and_shows_every_verdict(demo_home, tmp_path):
    home = Home(demo_home)
    edited, *others = codes(demo_home)
    assert cli(demo_home, "ledger", edited, "edit-closed-period").returncode == 0
    expected = {code: reconcile(home, code).verdict for code in codes(demo_home)}
    assert expected[edited] == "full_sync"
    assert all(expected[code] == "in_sync" for code in others)

    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
         str(NOTEBOOKS / "firm_overview.ipynb"), "--output-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "DOSSYNC_HOME": str(demo_home)})
    assert done.returncode == 0, done.stderr[-2000:]
    text = text_of((tmp_path / "firm_overview.html").read_text(encoding="utf-8"))
    for code, verdict in expected.items():
        assert f"{code}: verdict {verdict}" in text
    assert f"{edited}: a targeted repair of" in text
