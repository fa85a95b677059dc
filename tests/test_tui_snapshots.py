"""Snapshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot).

The demo firm is deterministic for a seed; what depends on the clock (run
times and ids) is masked by the app's `frozen` mode. Update after an
intended change of the screens with `pytest tests/test_tui_snapshots.py
--snapshot-update`, and look at the SVGs before committing them.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from conftest import copy_home
from dossync.core.home import Home
from dossync.tui.app import DossyncApp
from dossync.tui.screens.dossier import DossierScreen
from dossync.tui.screens.monitor import MonitorScreen
from dossync.tui.screens.sync_dialog import SyncDialog

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def firm(tui_template, tmp_path_factory) -> Path:
    return copy_home(tui_template.get("duckdb", None)[0], tmp_path_factory.mktemp("snap") / "firm")


def make_app(firm: Path) -> DossyncApp:
    return DossyncApp(Home(firm), frozen=True, refresh_seconds=3600)


async def wait(pilot, condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the screen did not load in time"
        await pilot.pause(0.05)


async def monitor_ready(pilot) -> None:
    app = pilot.app
    await wait(pilot, lambda: app.loaded and isinstance(app.screen, MonitorScreen)
               and app.screen.query_one("#monitor", DataTable).row_count == 3)
    await pilot.pause()


async def dossier_ready(pilot) -> None:
    await monitor_ready(pilot)
    await pilot.press("down", "enter")  # SMETS
    await wait(pilot, lambda: isinstance(pilot.app.screen, DossierScreen)
               and pilot.app.screen.figures is not None)
    await pilot.pause()


async def dialog_ready(pilot) -> None:
    await monitor_ready(pilot)
    await pilot.press("s")  # sync the highlighted dossier (DUMONT)
    await wait(pilot, lambda: isinstance(pilot.app.screen, SyncDialog)
               and pilot.app.screen._default_loaded)
    await pilot.press("down")  # full: shows the warning and the confirmation
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_monitor(snap_compare, firm, size):
    assert snap_compare(make_app(firm), terminal_size=size, run_before=monitor_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dossier(snap_compare, firm, size):
    assert snap_compare(make_app(firm), terminal_size=size, run_before=dossier_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sync_dialog(snap_compare, firm, size):
    assert snap_compare(make_app(firm), terminal_size=size, run_before=dialog_ready)
