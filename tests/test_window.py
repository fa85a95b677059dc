"""The quiet window for full syncs: `[full_sync] window = "01:00-05:00"`.

Outside the window a full sync is scheduled (a queued job that waits for the
window) instead of run, unless `--now`; the nightly inside the window and a
worker once the window opened run it. The clock is moved with DOSSYNC_NOW,
read by the CLI (and handed on to the processes it starts).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, RadioButton

from conftest import (assert_portal_equals_ledger, cli, cli_json, codes, event, jobs, portal_of,
                      portal_sql, wait_for)
from dossync.core import portal
from dossync.core.window import NOW_ENV
from test_tui import RecordingApp, finished, loaded, open_dialog, press_start, until

AFTERNOON = "2026-11-29T14:00:00"  # outside 01:00-05:00
NIGHT = "2026-11-30T01:30:00"  # inside it, after the window's next start
OPENS = "2026-11-30T01:00:00"


def set_window(home: Path, window: str, more: str = "") -> None:
    """HOME/dossync.toml: the quiet window, and `more` settings after it."""
    (home / "dossync.toml").write_text(f'[full_sync]\nwindow = "{window}"\n{more}')


def runs(home: Path, code: str) -> list[dict]:
    return portal.runs(portal_of(home), code, 1000)


def changed_ledger(home: Path, code: str) -> None:
    """Bookings the portal does not have yet: a full sync that ran brings them."""
    event(home, code, "new-bookings", "7")


def scheduled_full_sync(home: Path, monkeypatch, code: str,
                        more: str = "") -> tuple[str, list[dict]]:
    """The window 01:00-05:00 (and `more` settings), the ledger changed, and in the afternoon
    `sync CODE --full`: scheduled, not run. Its job, and the dossier's runs before it."""
    set_window(home, "01:00-05:00", more)
    changed_ledger(home, code)
    monkeypatch.setenv(NOW_ENV, AFTERNOON)
    exit_code, doc = cli_json(home, "sync", code, "--full")
    assert (exit_code, doc["status"]) == (0, "scheduled"), doc
    return doc["job"], runs(home, code)


@pytest.fixture
def afternoon(monkeypatch):
    monkeypatch.setenv(NOW_ENV, AFTERNOON)


def test_outside_the_window_a_full_sync_is_scheduled_not_run(demo_home, afternoon):
    code = codes(demo_home)[0]
    set_window(demo_home, "01:00-05:00")
    changed_ledger(demo_home, code)
    before = runs(demo_home, code)
    figures = portal.report_trial_balance(portal_of(demo_home), code)

    exit_code, doc = cli_json(demo_home, "sync", code, "--full")
    assert exit_code == 0, doc
    assert doc == {"job": doc["job"], "dossier": code, "kind": "full", "status": "scheduled",
                   "scheduled_for": OPENS}
    assert runs(demo_home, code) == before  # nothing ran
    assert portal.report_trial_balance(portal_of(demo_home), code) == figures
    job = jobs(demo_home)[doc["job"]]
    assert job["status"] == "queued" and job["attempts"] == 0
    assert f"scheduled for the quiet window at {OPENS}" in job["error"]

    words = cli(demo_home, "sync", code, "--full")
    assert words.returncode == 0, words.stderr
    assert "runs at 2026-11-30 01:00" in words.stdout and "--now" in words.stdout

    exit_code, queued = cli_json(demo_home, "sync", code, "--full", "--queue")
    assert exit_code == 0 and queued["status"] == "queued"
    assert queued["scheduled_for"] == OPENS
    assert runs(demo_home, code) == before


def test_a_window_may_wrap_past_midnight(demo_home, monkeypatch):
    code = codes(demo_home)[0]
    set_window(demo_home, "22:00-04:00")
    monkeypatch.setenv(NOW_ENV, AFTERNOON)
    exit_code, doc = cli_json(demo_home, "sync", code, "--full")
    assert (exit_code, doc["status"], doc["scheduled_for"]) == (0, "scheduled",
                                                                "2026-11-29T22:00:00")
    monkeypatch.setenv(NOW_ENV, "2026-11-29T23:15:00")
    exit_code, doc = cli_json(demo_home, "sync", code, "--full")
    assert (exit_code, doc["kind"], doc["status"]) == (0, "full", "succeeded")


def test_now_runs_it_at_once(demo_home, afternoon):
    code = codes(demo_home)[1]
    set_window(demo_home, "01:00-05:00")
    changed_ledger(demo_home, code)
    exit_code, doc = cli_json(demo_home, "sync", code, "--full", "--now")
    assert exit_code == 0, doc
    assert (doc["kind"], doc["status"]) == ("full", "succeeded")
    assert runs(demo_home, code)[0]["run_id"] == doc["run_id"]
    assert_portal_equals_ledger(demo_home, code)
    assert jobs(demo_home) == {}
    # --now is for full syncs only
    assert cli(demo_home, "sync", code, "--now").returncode == 2


def test_inside_the_window_or_without_one_nothing_changes(demo_home, monkeypatch):
    first, second = codes(demo_home)[:2]
    set_window(demo_home, "01:00-05:00")
    monkeypatch.setenv(NOW_ENV, NIGHT)
    changed_ledger(demo_home, first)
    exit_code, doc = cli_json(demo_home, "sync", first, "--full")
    assert (exit_code, doc["kind"], doc["status"]) == (0, "full", "succeeded")
    assert_portal_equals_ledger(demo_home, first)

    monkeypatch.setenv(NOW_ENV, AFTERNOON)
    changed_ledger(demo_home, second)
    exit_code, doc = cli_json(demo_home, "sync", second)  # a simple sync never waits
    assert (exit_code, doc["kind"], doc["status"]) == (0, "simple", "succeeded")
    exit_code, doc = cli_json(demo_home, "sync", second, "--repair")
    assert exit_code == 0 and doc["kind"] == "repair"
    set_window(demo_home, "")
    changed_ledger(demo_home, second)
    exit_code, doc = cli_json(demo_home, "sync", second, "--full")
    assert (exit_code, doc["kind"], doc["status"]) == (0, "full", "succeeded")
    assert_portal_equals_ledger(demo_home, second)
    assert jobs(demo_home) == {}


def test_a_worker_runs_the_scheduled_job_only_once_the_window_opened(demo_home, monkeypatch):
    code = codes(demo_home)[0]
    job_id, before = scheduled_full_sync(demo_home, monkeypatch, code)

    exit_code, worked = cli_json(demo_home, "worker", "--until-idle")  # not due: idle at once
    assert exit_code == 0 and worked["run"] == 0, worked
    assert jobs(demo_home)[job_id]["status"] == "queued"
    assert runs(demo_home, code) == before

    monkeypatch.setenv(NOW_ENV, NIGHT)  # the window opened
    exit_code, worked = cli_json(demo_home, "worker", "--until-idle")
    assert exit_code == 0 and (worked["run"], worked["succeeded"]) == (1, 1), worked
    job = jobs(demo_home)[job_id]
    assert (job["status"], job["error"]) == ("succeeded", None)
    assert runs(demo_home, code)[0]["run_id"] == job["run_id"]
    assert runs(demo_home, code)[0]["kind"] == "full"
    assert_portal_equals_ledger(demo_home, code)


def test_the_nightly_in_the_window_runs_the_due_scheduled_full_syncs(demo_home, monkeypatch):
    code = codes(demo_home)[2]
    job_id, _ = scheduled_full_sync(demo_home, monkeypatch, code,
                                    "max_rows_per_second = 100000\n")

    # the nightly outside the window leaves it waiting (the nightly runs in a process
    # of its own: DOSSYNC_NOW travels in its environment)
    exit_code, night = cli_json(demo_home, "nightly")
    assert exit_code == 0 and night["scheduled"] == [], night
    assert jobs(demo_home)[job_id]["status"] == "queued"

    monkeypatch.setenv(NOW_ENV, NIGHT)
    exit_code, night = cli_json(demo_home, "nightly")
    assert exit_code == 0, night
    assert [(j["job"], j["status"]) for j in night["scheduled"]] == [(job_id, "succeeded")]
    full = [r for r in night["runs"] if r["kind"] == "full"]
    assert [(r["dossier"], r["status"]) for r in full] == [(code, "succeeded")]
    job = jobs(demo_home)[job_id]
    assert (job["status"], job["run_id"]) == ("succeeded", full[0]["run_id"])
    assert_portal_equals_ledger(demo_home, code)

    exit_code, night = cli_json(demo_home, "nightly")  # done: not run twice
    assert exit_code == 0 and night["scheduled"] == []


@pytest.mark.parametrize("window", ["1-5", "01:00", "25:00-04:00", "01:00-01:00", "0100-0500"])
def test_a_bad_window_is_refused(demo_home, window):
    code = codes(demo_home)[0]
    set_window(demo_home, window)
    exit_code, doc = cli_json(demo_home, "sync", code, "--full")
    assert exit_code == 2
    assert "[full_sync] window" in doc["error"] and "dossync.toml" in doc["error"]
    assert '"01:00-05:00"' in doc["error"]  # what to write instead


# --- the UI's sync dialog --------------------------------------------------------------
async def _full_sync_dialog(pilot, code: str):
    dialog = await open_dialog(pilot, code)
    dialog.query_one("#until", Input).value = ""
    dialog.query_one("#full", RadioButton).value = True
    dialog.query_one("#confirm", Input).value = code
    await pilot.pause()
    return dialog


@pytest.mark.anyio
async def test_the_dialog_schedules_a_full_sync_outside_the_window(demo_home, afternoon):
    code = codes(demo_home)[0]
    set_window(demo_home, "01:00-05:00")
    before = runs(demo_home, code)
    app = RecordingApp(demo_home)
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot)
        dialog = await _full_sync_dialog(pilot, code)
        await until(pilot, lambda: dialog.query_one("#full-when").display, 5, "the choice")
        assert "2026-11-30 01:00" in str(dialog.query_one("#window-note").render())
        assert dialog.query_one("#schedule", RadioButton).value  # the default
        await press_start(pilot)
        await until(pilot, lambda: any("scheduled" in n for n in app.notes), 10,
                    "the scheduled notification")
    [job] = jobs(demo_home).values()
    assert (job["dossier"], job["kind"], job["status"]) == (code, "full", "queued")
    assert OPENS in job["error"]
    assert runs(demo_home, code) == before


@pytest.mark.anyio
async def test_the_dialog_runs_a_full_sync_now_when_asked(demo_home, afternoon):
    code = codes(demo_home)[1]
    set_window(demo_home, "01:00-05:00")
    changed_ledger(demo_home, code)
    app = RecordingApp(demo_home)
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot)
        dialog = await _full_sync_dialog(pilot, code)
        await until(pilot, lambda: dialog.query_one("#full-when").display, 5, "the choice")
        dialog.query_one("#now", RadioButton).value = True
        await press_start(pilot)
        await until(pilot, lambda: code in app.started or app.is_syncing(code), 10, "the start")
        await finished(pilot, code)
    assert jobs(demo_home) == {}
    last = runs(demo_home, code)[0]
    assert (last["kind"], last["status"]) == ("full", "succeeded")
    assert_portal_equals_ledger(demo_home, code)


@pytest.mark.anyio
async def test_the_dialog_offers_no_choice_inside_the_window(demo_home, monkeypatch):
    monkeypatch.setenv(NOW_ENV, NIGHT)
    code = codes(demo_home)[0]
    set_window(demo_home, "01:00-05:00")
    app = RecordingApp(demo_home)
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot)
        dialog = await _full_sync_dialog(pilot, code)  # its window read with its default date
        assert dialog._window_start is None  # inside the window: nothing to wait for
        assert not [n for n in app.notes if "window" in n], app.notes  # and no error reading it
        assert dialog.query_one("#full-confirm").display
        assert not dialog.query_one("#full-when").display


def test_a_worker_after_the_window_closed_leaves_the_job_to_the_next_window(demo_home,
                                                                          monkeypatch):
    """No worker ran that night: the next afternoon a worker claims the scheduled full sync,
    sees the window closed again and puts it back for the next night, running nothing."""
    code = codes(demo_home)[0]
    job_id, before = scheduled_full_sync(demo_home, monkeypatch, code)
    monkeypatch.setenv(NOW_ENV, "2026-11-30T14:00:00")  # the night went by without a worker
    exit_code, worked = cli_json(demo_home, "worker", "--until-idle")
    assert exit_code == 0 and worked["run"] == 0, worked
    job = jobs(demo_home)[job_id]
    assert (job["status"], job["attempts"]) == ("queued", 0), job
    assert "2026-12-01T01:00:00" in job["error"]
    assert runs(demo_home, code) == before
    monkeypatch.setenv(NOW_ENV, "2026-12-01T01:10:00")  # the next night
    exit_code, worked = cli_json(demo_home, "worker", "--until-idle")
    assert exit_code == 0 and (worked["run"], worked["succeeded"]) == (1, 1), worked
    assert_portal_equals_ledger(demo_home, code)


def test_upgrade_plan_queues_its_full_syncs_for_the_window(demo_home, monkeypatch):
    """The reloads `upgrade-plan --queue` asks for are full syncs like any other: outside
    the window they wait for it."""
    code = codes(demo_home)[0]
    set_window(demo_home, "01:00-05:00")
    # a dossier as a GnuCash book loaded by version 1 of its connector would be
    portal_sql(demo_home, f"UPDATE dossiers SET connector_version = 1, package = 'gnucash' "
                          f"WHERE code = '{code}'")
    from datetime import datetime

    from dossync.core import upgrades
    from dossync.core.home import Home

    reloads = upgrades.plan(Home(demo_home))
    assert [r.dossier for r in reloads] == [code]
    (job,) = upgrades.queue(Home(demo_home), reloads, now=datetime.fromisoformat(AFTERNOON))
    listed = jobs(demo_home)[job.job]
    assert listed["status"] == "queued" and "2026-11-30T01:00:00" in listed["error"], listed
    monkeypatch.setenv(NOW_ENV, AFTERNOON)
    exit_code, worked = cli_json(demo_home, "worker", "--until-idle")
    assert exit_code == 0 and worked["run"] == 0, worked


def scheduled_then_served(home: Path, monkeypatch, clock_at: str, waits: bool) -> None:
    """A full sync scheduled in the afternoon; then `dossync scheduler` (nightly at 12:00,
    outside the window) served with its clock standing at `clock_at`: when it `waits`, the
    job stays queued while the clock stands before the window, then the clock is moved to
    the window's opening and the scheduler runs it; no nightly runs."""
    import threading
    import time
    from datetime import datetime

    from dossync.core.home import Home
    from dossync.core.scheduler import serve

    code = codes(home)[0]
    job_id, before = scheduled_full_sync(home, monkeypatch, code, '[nightly]\ntime = "12:00"\n')
    clock = [datetime.fromisoformat(clock_at)]  # the scheduler's clock: it reads it every second
    stop, nightlies = threading.Event(), []
    service = threading.Thread(target=serve, args=(Home(home),), daemon=True, kwargs=dict(
        stop=stop, on_result=nightlies.append, now=lambda: clock[0]))
    service.start()
    try:
        if waits:
            time.sleep(1)  # the scheduler looked at its clock again meanwhile
            assert jobs(home)[job_id]["status"] == "queued"  # not open yet
            assert runs(home, code) == before
            clock[0] = datetime.fromisoformat(OPENS)
        wait_for(lambda: jobs(home)[job_id]["status"] == "succeeded", "the scheduled job run")
    finally:
        stop.set()
        service.join(timeout=30)
    assert not service.is_alive()
    assert nightlies == []  # the nightly's time (12:00) did not come
    full = [r for r in runs(home, code) if r not in before]
    assert [r["kind"] for r in full] == ["full"]  # once
    assert_portal_equals_ledger(home, code)


def test_the_scheduler_wakes_when_the_window_opens(demo_home, monkeypatch):
    """With the nightly's time outside the window, the scheduler runs the scheduled full
    syncs when the window opens, not at the nightly; it waits for the opening first."""
    scheduled_then_served(demo_home, monkeypatch, "2026-11-30T00:59:00", waits=True)


def test_a_scheduler_started_inside_the_window_runs_them_at_once(demo_home, monkeypatch):
    scheduled_then_served(demo_home, monkeypatch, NIGHT, waits=False)
