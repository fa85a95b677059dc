"""The terminal UI through Textual's Pilot, on a copy of a small demo firm.

Syncs started from the UI are real detached `dossync sync` processes: the
tests wait for them by polling the portal (with a timeout), as the UI does.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Button, Checkbox, DataTable, Input, RadioButton, Select, Static

from dossync.core import monitor, portal
from dossync.core.cli import main
from dossync.core.home import Home
from dossync.core.locks import DossierLock
from dossync.core.model import ManualOptions
from dossync.tui.app import DossyncApp
from dossync.tui.screens.dossier import DossierScreen
from dossync.tui.screens.monitor import MonitorScreen
from dossync.tui.screens.sync_dialog import SyncDialog, default_until

pytestmark = pytest.mark.anyio  # async tests through anyio's pytest plugin (on asyncio)

SIZE = (100, 30)
WAIT = 60.0


class RecordingApp(DossyncApp):
    """The app, remembering every notification it showed."""

    def __init__(self, home: Path, **kwargs) -> None:
        super().__init__(Home(home), frozen=True, refresh_seconds=0.5, **kwargs)
        self.notes: list[str] = []

    def notify(self, message, **kwargs) -> None:  # type: ignore[override]
        self.notes.append(str(message))
        super().notify(message, **kwargs)


async def until(pilot, condition, timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            notes = getattr(pilot.app, "notes", [])
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                 f"notifications: {notes}")
        await pilot.pause(0.1)


async def loaded(pilot) -> None:
    await until(pilot, lambda: pilot.app.loaded and isinstance(pilot.app.screen, MonitorScreen)
                and pilot.app.screen.query_one("#monitor", DataTable).row_count > 0,
                10, "the monitor")


def monitor_table(app) -> DataTable:
    return app.screen.query_one("#monitor", DataTable)


def row_of(app, code: str) -> dict:
    return next(r for r in app.rows if r["code"] == code)


async def open_dialog(pilot, code: str) -> SyncDialog:
    app = pilot.app
    app.open_sync_dialog(code)
    await until(pilot, lambda: isinstance(app.screen, SyncDialog), 5, "the sync dialog")
    dialog = app.screen
    await until(pilot, lambda: dialog._default_loaded, 10, "the dialog's default date")
    return dialog


async def press(pilot, selector: str) -> None:
    """Press a button (Button.press: what a click or Enter on it does). A click would land
    on a toast that covers the button, and a key goes wherever the focus went meanwhile."""
    await pilot.pause()  # let the screen take in the values the test set
    pilot.app.screen.query_one(selector, Button).press()
    await pilot.pause()


async def press_start(pilot) -> None:
    await press(pilot, "#start")


async def finished(pilot, code: str) -> None:
    app = pilot.app
    await until(pilot, lambda: code not in app.started and not app.is_syncing(code)
                and not DossierLock(app.home.locks, code).is_held(), WAIT, f"the sync of {code}")


# --- the monitor's columns --------------------------------------------------------------
async def test_monitor_columns_fit_their_cells_as_soon_as_rows_arrive(home):
    """Rows handed to the monitor are never drawn cut to the labels' widths.

    DataTable measures auto-width columns only when it is idle; a monitor
    painted before that showed (and kept) "VAN-DE" for VAN-DEN-BOSSCHE. The
    widths must be right the moment the rows are in, without waiting.
    """
    app = RecordingApp(home)
    async with app.run_test(size=(160, 30)) as pilot:
        await loaded(pilot)
        screen, table = app.screen, monitor_table(app)
        longer = dict(row_of(app, "SMETS"), code="SMETS-AND-SONS-ARCHITECTS",
                      name="Architectenbureau Smets & Zonen, a rather long name")
        screen.monitor_loaded([*app.rows, longer])  # no pause: nothing idle in between
        widths = {key: table.columns[key].get_render_width(table) - 2 * table.cell_padding
                  for key in ("code", "name", "period")}
        assert widths["code"] >= len("SMETS-AND-SONS-ARCHITECTS")
        assert widths["name"] >= len(longer["name"])
        assert widths["period"] >= len(longer["active_period"])
        # (checked before any pause: the app's next portal read would replace the made-up row)
        assert table.get_row("SMETS-AND-SONS-ARCHITECTS")[0].plain == "SMETS-AND-SONS-ARCHITECTS"


# --- flows ---------------------------------------------------------------------------
async def test_filter_and_open_a_dossier(home):
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert monitor_table(app).row_count == 3
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"smets")
        await until(pilot, lambda: monitor_table(app).row_count == 1, 1, "the filter")
        assert app.screen.shown == ["SMETS"]
        await pilot.press("escape")  # clears the filter, back to the table
        assert monitor_table(app).row_count == 3
        await pilot.press("slash", *"bossche", "enter")  # the only match opens
        await until(pilot, lambda: isinstance(app.screen, DossierScreen), 5, "the dossier")
        screen = app.screen
        assert screen.code == "VAN-DEN-BOSSCHE"
        await until(pilot, lambda: screen.dossier is not None, 10, "the dossier's data")
        title = str(screen.query_one("#dossier-title", Static).render())
        assert "Garage Van den Bossche BV" in title and "2026-10" in title
        assert screen.query_one("#runs", DataTable).row_count >= 1
        assert screen.figures["revenue"] and screen.figures["monthly_revenue"]
        await pilot.press("escape")
        assert isinstance(app.screen, MonitorScreen)
        # sort: o cycles the column, the state column puts the worst first
        await pilot.press("o")
        assert app.screen.sort_column == "state"


async def test_simple_sync_with_every_option(home):
    code = "SMETS"
    assert main(["--home", str(home), "propose", code, "--count", "3"]) == 0
    expected_until = default_until(portal.periods(home / "portal.duckdb", code))
    assert expected_until
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert row_of(app, code)["pending_proposals"] == 3
        dialog = await open_dialog(pilot, code)
        assert dialog.query_one("#until", Input).value == expected_until
        dialog.query_one("#reset", Checkbox).value = True
        dialog.query_one("#notify", Checkbox).value = True
        dialog.query_one("#period", Input).value = "2026-11"
        await pilot.pause()
        # closing 2026-10 moves the default updated-until date along
        assert dialog.query_one("#until", Input).value == "2026-10-31"
        await press_start(pilot)
        await until(pilot, lambda: not isinstance(app.screen, SyncDialog), 5, "the dialog closing")
        await until(pilot, lambda: code in app.started or app.is_syncing(code), 10, "the start")
        await finished(pilot, code)
        await until(pilot, lambda: any("sync finished" in n for n in app.notes), 10,
                    "the finish notification")
    dossier = portal.get_dossier(home / "portal.duckdb", code)
    assert dossier.updated_until == "2026-10-31"
    assert dossier.pending_proposals == 0
    assert dossier.active_period == "2026-11"
    emails = [e for e in portal.outbox(home / "portal.duckdb") if e["dossier"] == code]
    assert [e["status"] for e in emails] == ["queued"]
    assert emails[0]["recipient"] == dossier.email
    assert portal.runs(home / "portal.duckdb", code, 1)[0]["kind"] == "simple"


async def test_full_sync_needs_the_dossier_code(home):
    code = "DUMONT"
    before = len(portal.runs(home / "portal.duckdb", code, 100))
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        dialog = await open_dialog(pilot, code)
        dialog.query_one("#until", Input).value = ""
        dialog.query_one("#full", RadioButton).value = True
        await pilot.pause()
        assert dialog.query_one("#full-confirm").display
        assert "office server" in str(dialog.query_one("#full-warning", Static).render())
        dialog.query_one("#confirm", Input).value = "SMETS"  # the wrong code
        await press_start(pilot)
        await pilot.pause(0.5)
        assert app.screen is dialog  # refused: still open, with the reason
        assert "type DUMONT" in str(dialog.query_one("#confirm-error", Static).render())
        assert not app.started and not DossierLock(app.home.locks, code).is_held()
        assert len(portal.runs(home / "portal.duckdb", code, 100)) == before
        dialog.query_one("#confirm", Input).value = "dumont"  # case does not matter
        await press_start(pilot)
        await until(pilot, lambda: code in app.started or app.is_syncing(code), 10, "the start")
        await finished(pilot, code)
    runs = portal.runs(home / "portal.duckdb", code, 100)
    assert len(runs) == before + 1
    assert (runs[0]["kind"], runs[0]["status"]) == ("full", "succeeded")


async def test_cancel_changes_nothing(home):
    code = "VAN-DEN-BOSSCHE"
    (home / "dossync.toml").write_text("[full_sync]\nmax_rows_per_second = 1000\n")
    path = home / "portal.duckdb"
    before = portal.get_dossier(path, code)
    runs_before = len(portal.runs(path, code, 100))
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        dialog = await open_dialog(pilot, code)
        dialog.query_one("#full", RadioButton).value = True
        dialog.query_one("#confirm", Input).value = code
        await press_start(pilot)
        # running: the monitor shows it syncing, with the progress panel
        await until(pilot, lambda: row_of(app, code)["state"] == "syncing"
                    and code in app.progress, 15, "progress of the running sync")
        panel = app.screen.query_one("#progress")
        assert panel.display and "rows/s" in str(panel.query_one("#progress-title").render())
        table = monitor_table(app)
        table.move_cursor(row=app.screen.shown.index(code))
        await pilot.press("c")
        await finished(pilot, code)
        await until(pilot, lambda: any("cancelled: nothing changed" in n for n in app.notes), 10,
                    "the cancel notification")
    runs = portal.runs(path, code, 100)
    assert len(runs) == runs_before + 1
    assert runs[0]["status"] == "failed" and "cancelled" in runs[0]["error"]
    assert portal.get_dossier(path, code) == before


async def test_settings_edit(home):
    code = "DUMONT"
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.open_dossier(code)
        await until(pilot, lambda: isinstance(app.screen, DossierScreen)
                    and app.screen.dossier is not None, 10, "the dossier")
        screen = app.screen
        email = screen.query_one("#email", Input)
        email.value = "not an address"
        await press(pilot, "#save")
        error = screen.query_one("#email-error", Static)
        await until(pilot, lambda: error.display, 10, "the email error")
        assert "not a valid email address" in str(error.render())
        assert any("not a valid email address" in n for n in app.notes)
        assert portal.get_dossier(home / "portal.duckdb", code).email == "contact@dumont-bouw.be"
        email.value = "boekhouding@dumont.be"
        screen.query_one("#language", Select).value = "en"
        screen.query_one("#nightly", Checkbox).value = False
        await press(pilot, "#save")
        await until(pilot, lambda: any("settings saved" in n for n in app.notes), 10, "saving")
        assert not error.display
    dossier = portal.get_dossier(home / "portal.duckdb", code)
    assert (dossier.email, dossier.language, dossier.nightly) == ("boekhouding@dumont.be", "en",
                                                                  False)


async def test_failed_sync_shows_red_with_its_message(home):
    code = "SMETS"
    ledger = Path(portal.get_dossier(home / "portal.duckdb", code).source)
    ledger.rename(ledger.with_suffix(".moved"))
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        dialog = await open_dialog(pilot, code)
        dialog.query_one("#until", Input).value = ""
        await press_start(pilot)
        await until(pilot, lambda: code in app.started or app.is_syncing(code), 10, "the start")
        await finished(pilot, code)
        await until(pilot, lambda: row_of(app, code)["state"] == "failed", 10, "the failed state")
        reason = row_of(app, code)["reason"]
        assert reason
        screen = app.screen
        table = monitor_table(app)
        table.move_cursor(row=screen.shown.index(code))
        await pilot.pause()
        state = table.get_cell(code, "state")
        assert "failed" in state.plain and "red" in str(state.style)
        assert reason in table.get_cell(code, "reason").plain
        detail = str(screen.query_one("#detail", Static).render())
        assert "failed" in detail and reason[:40] in detail
        assert any("sync failed" in n or reason[:30] in n for n in app.notes)


async def test_views_help_and_palette(home):
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("l")
        await until(pilot, lambda: app.screen.query_one(DataTable).row_count >= 3, 10, "run log")
        await pilot.press("escape", "e")
        await until(pilot, lambda: "client emails ·" in str(
            app.screen.query_one("#outbox-title", Static).render()), 10, "outbox")
        await pilot.press("escape", "question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert isinstance(app.screen, MonitorScreen)
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"open dossier smets")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DossierScreen), 5, "palette command")
        assert app.screen.code == "SMETS"
        await pilot.press("r")  # reconcile on demand, in a worker
        await until(pilot, lambda: app.screen.verdict is not None, 30, "the reconcile verdict")
        assert app.screen.verdict == "in_sync"
        assert not [n for n in app.notes if "Traceback" in n]


async def test_the_monitor_answers_while_a_full_sync_runs(home):
    """Filter edits reach the table while a detached full sync runs, the monitor shows the
    sync and its progress, and picks up the finished run by itself. (How fast: the
    timings are measured in `make bench`, bench/tui_responsiveness.py.)"""
    code = "VAN-DEN-BOSSCHE"  # the largest; throttled so edits happen while it runs
    (home / "dossync.toml").write_text("[full_sync]\nmax_rows_per_second = 1000\n")
    runs_before = len(portal.runs(home / "portal.duckdb", code, 100))
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = monitor_table(app)
        shown = table.row_count
        process = monitor.start_detached_sync(app.home, code, "full")
        await until(pilot, lambda: app.is_syncing(code), 20, "the monitor to show the sync")
        await pilot.press("slash")
        edits = saw_progress = 0
        while process.poll() is None or edits == 0:
            for key, rows in (("z", 0), ("backspace", shown)):  # "z" matches no dossier
                await pilot.press(key)
                await until(pilot, lambda: table.row_count == rows, 10, f"the filter {key!r}")
            edits += 1
            saw_progress = saw_progress or code in app.progress
        await until(pilot, lambda: not app.is_syncing(code)
                    and not DossierLock(app.home.locks, code).is_held(), WAIT, "the sync's end")
        await until(pilot, lambda: row_of(app, code)["state"] == "ok"
                    and row_of(app, code)["last_sync"]["kind"] == "full", 20,
                    "the finished run on the monitor")
    runs = portal.runs(home / "portal.duckdb", code, 100)
    assert len(runs) == runs_before + 1 and runs[0]["status"] == "succeeded", runs[0]
    assert saw_progress, "the monitor never showed the sync's progress"
    assert edits >= 2, "the sync ended before the filter could be tried beside it"
    assert not [n for n in app.notes if "error" in n.lower() or "locked" in n.lower()], app.notes


async def test_an_error_in_a_screen_update_is_shown_not_swallowed(home, monkeypatch):
    """Textual only logs an error raised by a signal's subscriber: the app shows it."""
    def broken(self, progress) -> None:
        raise ValueError("the progress could not be drawn (test)")

    monkeypatch.setattr(MonitorScreen, "progress_read", broken)
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.progress_signal.publish({"DUMONT": {"phase": "read"}})
        await until(pilot, lambda: any("the progress could not be drawn (test)" in n
                                       for n in app.notes), 10, "the error notification")
        assert any("could not show an update" in n for n in app.notes), app.notes
        assert isinstance(app.screen, MonitorScreen) and app.is_running


async def test_the_job_queue_shows_jobs_and_cancels_a_queued_one(home):
    from dossync.tui.screens.jobs import JobsScreen

    path = home / "portal.duckdb"
    first = portal.enqueue_job(path, "DUMONT", "simple", ManualOptions())
    second = portal.enqueue_job(path, "SMETS", "full", ManualOptions())
    app = RecordingApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen)
                    and app.screen.query_one(DataTable).row_count == 2, 10, "the job queue")
        screen = app.screen
        table = screen.query_one(DataTable)
        assert "2 queued" in str(screen.query_one("#jobs-title", Static).render())
        assert table.get_cell(second.job, "dossier") == "SMETS"  # newest first
        table.move_cursor(row=table.get_row_index(first.job))
        await pilot.press("c")
        await until(pilot, lambda: portal.get_job(path, first.job).status == "cancelled", 10,
                    "the cancelled job")
        await until(pilot, lambda: any(f"job {first.job}" in n and "cancelled" in n
                                       for n in app.notes), 10, "the notification")
        await until(pilot, lambda: "cancelled" in str(table.get_cell(first.job, "status")), 10,
                    "the table showing it")
        assert portal.get_job(path, second.job).status == "queued"  # the other one stays
        # a job that ended cannot be cancelled: said, and nothing changes
        await pilot.press("c")
        await until(pilot, lambda: any("cannot" in n.lower() or "already" in n.lower()
                                       or "not queued" in n.lower() for n in app.notes[-1:]),
                    10, "the refusal")
        assert portal.get_job(path, first.job).status == "cancelled"
