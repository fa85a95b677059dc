"""The wheel a user installs: one import package `dossync`, its data inside it.

The wheel is built from a copy of the project's files, installed (without its
dependencies, which the test venv lends it) into a fresh venv, and run from a
folder far from the project: nothing of the source tree can help it there.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _project_copy(target: Path) -> Path:
    """The files a clean clone has (no portal, no ledgers, no caches)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for folder in ("core", "tui", "notebooks"):
        shutil.copytree(ROOT / folder, target / folder, ignore=ignore)
    (target / "data").mkdir()
    for csv in (ROOT / "data").glob("*.csv"):
        shutil.copy2(csv, target / "data" / csv.name)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = _project_copy(work / "source")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--quiet", "-w", str(work / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wheels = list((work / "dist").glob("dossync-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_one_package_named_after_the_project(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"dossync"}, top  # no top-level `core` or `tui` to clash with other packages
    for needed in ("dossync/core/cli.py", "dossync/core/connectors/demo.py",
                   "dossync/core/ledger_schema.sql", "dossync/data/mar.csv",
                   "dossync/data/vat_codes.csv", "dossync/tui/app.py", "dossync/tui/app.tcss",
                   "dossync/notebooks/reconcile_dossier.ipynb",
                   # the catalogs, compiled in the build (setup.py), beside their sources
                   "dossync/core/locale/nl/LC_MESSAGES/dossync.mo",
                   "dossync/core/locale/fr/LC_MESSAGES/dossync.mo"):
        assert needed in names, needed
    assert not [n for n in names if n.endswith((".po", ".pot"))]  # the sources stay home
    # every package folder of the source made it into the wheel
    for folder in ("core", "tui"):
        for init in (ROOT / folder).rglob("__init__.py"):
            inside = "dossync/" + init.relative_to(ROOT).as_posix()
            assert inside in names, f"{inside}: add the package to pyproject.toml"


def test_the_installed_wheel_builds_and_lists_a_demo_firm(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], capture_output=True, text=True,
                               check=True).stdout.strip())
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The dependencies come from the test venv: its folder is a plain path entry, so its
    # .pth files (the editable install of this very project) are not run.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = subprocess.run([str(python), "-c", "import dossync.core, dossync.tui.app; "
                            "print(dossync.core.__file__)"], cwd=away, capture_output=True,
                           text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(site)), where.stdout
    home = tmp_path / "firm"
    dossync = venv / "bin" / "dossync"
    assert dossync.exists(), "the console script is missing"
    built = subprocess.run([str(dossync), "--home", str(home), "demo", "--dossiers", "2",
                            "--lines", "300", "--seed", "5"], cwd=away, capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    listed = subprocess.run([str(dossync), "--home", str(home), "dossier", "list", "--json"],
                            cwd=away, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    dossiers = json.loads(listed.stdout)
    assert len(dossiers) == 2
    # activated: the portal equals the ledger the installed package wrote
    verdict = subprocess.run([str(dossync), "--home", str(home), "reconcile", dossiers[0]["code"],
                              "--json"], cwd=away, capture_output=True, text=True, timeout=300)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert json.loads(verdict.stdout)["verdict"] == "in_sync"
    # it speaks Dutch from the compiled catalog the wheel carries
    dutch = subprocess.run([str(dossync), "--home", str(home), "--lang", "nl", "status"],
                           cwd=away, capture_output=True, text=True, timeout=120)
    assert dutch.returncode == 0 and "monitor actieve klanten" in dutch.stdout, dutch.stderr
    # the compiled catalog is read as it is: Babel's catalog compiler is not even loaded
    loaded = subprocess.run([str(python), "-c", "import sys; from dossync.core import i18n; "
                             "i18n.activate('nl'); print(i18n._('active clients monitor'), "
                             "'babel.messages' in sys.modules)"], cwd=away, capture_output=True,
                            text=True, timeout=120)
    assert loaded.stdout.split("\n")[0] == "monitor actieve klanten False", loaded
