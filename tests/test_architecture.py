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
                          if n.split(".")[0] in ("textual", "tui")
                          or n.startswith(("dossync.tui", "tui"))]
    assert offenders == []


def _importers(*packages: str) -> list[str]:
    """The modules of core/ and tui/ that import any of these top-level packages."""
    root = CORE.parent
    users = []
    for path in [*CORE.rglob("*.py"), *(root / "tui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in packages for n in names):
                users.append(path.relative_to(root).as_posix())
    return sorted(set(users))


def test_only_the_portal_store_speaks_duckdb():
    """The store seam: the SQL dialect and connections live in core/portal/store.py; the
    engine, the other portal modules and the UI never reach DuckDB themselves."""
    assert _importers("duckdb", "_duckdb") == ["core/portal/store.py"]


def test_only_the_postgresql_backend_speaks_postgresql():
    """The second backend: PostgreSQL's connections in core/portal/pgstore.py (and the
    dossier holds of holders.py, over pgstore's connections); nothing else imports a
    driver, and store.py reaches pgstore only when a portal there is opened."""
    assert _importers("psycopg", "psycopg_binary", "psycopg2", "adbc_driver_postgresql") == [
        "core/portal/pgstore.py"]


def _core_imports() -> dict[str, set[str]]:
    """Each core module and the core modules it imports: at the top, inside
    functions, and by name through importlib."""
    modules = {}
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        name = ".".join(("dossync",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                targets = [str(node.args[0].value)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_core_has_no_import_cycle():
    graph = _core_imports()
    assert "dossync.core.history" in graph["dossync.core.reconcile"]  # the graph sees imports
    cycles = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for target in sorted(graph[node]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                visit(target, path + [target], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], done)
    assert cycles == [], cycles


def test_the_engine_never_imports_the_monitor():
    """The monitor starts CLI processes; the engine only writes its progress file."""
    graph = _core_imports()
    assert "dossync.core.monitor" in graph["dossync.core.cli"]  # the graph sees imports
    for engine in ("sync", "nightly", "reconcile", "worklist"):
        assert "dossync.core.monitor" not in graph[f"dossync.core.{engine}"], engine


def test_connectors_do_what_they_declare():
    """A connector class is held to its declared capabilities before it is used; the
    engine then asks them and never probes a connector for a method."""
    import pytest

    from dossync.core.connectors import connector_class
    from dossync.core.connectors.base import Capabilities, CapabilityMismatch, checked
    from dossync.core.connectors.snapshot import SnapshotConnector
    from dossync.core.model import PACKAGES

    for package in PACKAGES:
        assert connector_class(package).capabilities.proposals, package

    class Boasting(SnapshotConnector):
        capabilities = Capabilities(figures=True, proposals=True)

    with pytest.raises(CapabilityMismatch, match="declares figures but has no figures, "
                       "fingerprint, period_fingerprints; it declares proposals but has no "
                       "receive_proposals"):
        checked(Boasting)

    probes = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and node.args
                    and getattr(node.func, "id", None) in ("hasattr", "getattr")
                    and "connector" in ast.unparse(node.args[0])):
                probes.append(f"{path.name}: {ast.unparse(node)}")
    assert probes == []
