"""The folders tell the architecture: core/ never reaches for a screen."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "core"


def test_core_never_imports_textual_or_tui():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("textual", "tui")]
    assert offenders == []


def test_only_portal_speaks_duckdb():
    users = sorted(p.name for p in CORE.rglob("*.py") if "import duckdb" in p.read_text())
    assert users == ["portal.py"]
