"""Long-idle dossiers: a simple sync of a dossier not synced for more than
`[sync] idle_days` checks it first, as reconcile does (core/idle.py).

The clock is moved by ageing the dossier's runs in the portal (`portal_sql`),
or for a CLI process with DOSSYNC_NOW (core/window.py's `current_time`).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from conftest import (assert_portal_equals_ledger, cli, cli_json, cli_process, codes, event,
                      portal_sql)
from dossync.core.home import Home
from dossync.core.model import ExitCode
from dossync.core.monitor import monitor_rows


def age(home, code: str, days: int) -> None:
    """Move every run of `code` `days` back in time: it was last synced that long ago."""
    portal_sql(home, f"UPDATE sync_runs SET started_at = started_at - INTERVAL '{days} days', "
                     f"finished_at = finished_at - INTERVAL '{days} days' WHERE dossier = ?",
               [code])


def status_of(home, code: str) -> dict:
    status, rows = cli_json(home, "status")
    assert status == ExitCode.OK
    return {r["code"]: r for r in rows}[code]


def cells(line: str) -> list[str]:
    """The cells of a row of a table the CLI draws (rich: cells between │)."""
    return [cell.strip() for cell in line.strip("│┃ ").split("│" if "│" in line else "┃")]


def idle_warnings(run: dict) -> list[str]:
    return [w for w in run["warnings"] if "not synced for" in w]


def test_an_idle_dossier_with_a_silent_edit_is_mended_by_a_simple_sync(demo_home):
    code = codes(demo_home)[0]
    event(demo_home, code, "edit-closed-period")  # unseen
    event(demo_home, code, "new-bookings", "6")  # seen
    age(demo_home, code, 120)
    assert status_of(demo_home, code)["idle_days"] == 120

    status, run = cli_json(demo_home, "sync", code)
    assert status == ExitCode.OK, run
    assert run["kind"] == "simple" and run["status"] == "succeeded"
    assert run["rows"]["inserted"] > 0  # the new bookings came with it
    [note] = idle_warnings(run)
    assert f"{code} was not synced for 120 days" in note
    assert "repaired 1 period(s)" in note and "repair run" in note
    assert_portal_equals_ledger(demo_home, code)
    assert cli_json(demo_home, "reconcile", code)[1]["verdict"] == "in_sync"
    row = status_of(demo_home, code)
    assert row["state"] == "ok" and row["idle_days"] == 0
    kinds = [r["kind"] for r in cli_json(demo_home, "dossier", "show", code)[1]["runs"][:2]]
    assert kinds == ["simple", "repair"]  # the repair ran first, in the same command


def test_an_idle_dossier_that_needs_a_full_sync_is_marked_until_one_runs(demo_home):
    code = codes(demo_home)[0]
    event(demo_home, code, "snapshot", "monday")
    event(demo_home, code, "new-bookings", "8")
    assert cli_json(demo_home, "sync", code)[0] == ExitCode.OK
    event(demo_home, code, "restore-backup", "monday")
    age(demo_home, code, 120)

    for _ in range(2):  # a second simple sync checks again and is refused again
        status, run = cli_json(demo_home, "sync", code)
        assert status == ExitCode.FAILED, run
        assert run["status"] == "failed" and run["rows"]["read"] == 0
        [note] = idle_warnings(run)
        assert f"{code} was not synced for 120 days" in note
        assert "back in time" in note and f"dossync sync {code} --full" in note
        row = status_of(demo_home, code)
        assert row["state"] == "action_required" and row["idle_days"] == 120
        reason = {r["code"]: r for r in monitor_rows(Home(demo_home))}[code]["reason"]
        assert "not synced for 120 days" in reason and "--full" in reason

    status, run = cli_json(demo_home, "sync", code, "--full")
    assert status == ExitCode.OK and run["kind"] == "full"
    assert_portal_equals_ledger(demo_home, code)
    row = status_of(demo_home, code)
    assert row["state"] == "ok" and row["idle_days"] == 0


def test_an_idle_dossier_in_sync_gets_the_simple_sync_with_a_note(demo_home):
    code = codes(demo_home)[1]
    event(demo_home, code, "new-bookings", "4")
    age(demo_home, code, 200)
    status, run = cli_json(demo_home, "sync", code)
    assert status == ExitCode.OK and run["status"] == "succeeded" and run["kind"] == "simple"
    [note] = idle_warnings(run)
    assert "not synced for 200 days" in note and "reconcile says simple_sync" in note
    assert_portal_equals_ledger(demo_home, code)
    assert [r["kind"] for r in cli_json(demo_home, "dossier", "show", code)[1]["runs"][:2]] == [
        "simple", "full"]  # no repair: nothing to mend


@pytest.mark.parametrize("toml, days, checked", [
    ("", 89, False),  # not more than idle_days (90 by default): a recent dossier
    ("[sync]\nidle_days = 0\n", 400, False),  # 0 switches the check off
    ("[sync]\nidle_days = 10\n", 11, True),  # a setting of its own
], ids=["recent", "switched-off", "own-setting"])
def test_idle_days_says_which_dossiers_are_checked(demo_home, toml, days, checked):
    if toml:
        (demo_home / "dossync.toml").write_text(toml)
    code = codes(demo_home)[0]
    event(demo_home, code, "edit-closed-period")  # what only the check finds
    age(demo_home, code, days)
    status, run = cli_json(demo_home, "sync", code)
    assert status == ExitCode.OK and run["status"] == "succeeded", run
    if checked:
        [note] = idle_warnings(run)
        assert f"not synced for {days} days" in note and "repaired 1 period(s)" in note
        assert_portal_equals_ledger(demo_home, code)
    else:
        assert idle_warnings(run) == []
        assert cli_json(demo_home, "reconcile", code)[1]["verdict"] == "full_sync"  # not mended


def test_a_bad_idle_days_is_refused(demo_home):
    code = codes(demo_home)[0]
    for bad in ('"90"', "-1", "2.5", "true"):
        (demo_home / "dossync.toml").write_text(f"[sync]\nidle_days = {bad}\n")
        runs = len(cli_json(demo_home, "dossier", "show", code)[1]["runs"])
        done = cli(demo_home, "sync", code, "--json")
        assert done.returncode == ExitCode.USAGE, (bad, done.stdout, done.stderr)
        assert "[sync] idle_days" in done.stdout and "dossync.toml" in done.stdout
        assert len(cli_json(demo_home, "dossier", "show", code)[1]["runs"]) == runs


def test_status_shows_idle_days(demo_home):
    first, second, third = codes(demo_home)
    age(demo_home, second, 45)
    rows = {r["code"]: r for r in cli_json(demo_home, "status")[1]}
    assert rows[first]["idle_days"] == 0 and rows[second]["idle_days"] == 45
    last = datetime.fromisoformat(rows[third]["last_sync"]["finished_at"])
    later = {r["code"]: r for r in monitor_rows(Home(demo_home), now=last + timedelta(days=7))}
    assert later[third]["idle_days"] == 7
    table = cli(demo_home, "status").stdout
    [header] = [line for line in table.splitlines() if cells(line)[0] == "code"]
    [row] = [line for line in table.splitlines() if cells(line)[0] == second]
    assert cells(row)[cells(header).index("idle")] == "45", table


def test_the_cli_clock_moves_with_dossync_now(demo_home):
    """A CLI process takes DOSSYNC_NOW as now: for status and for the sync's check."""
    code = codes(demo_home)[0]
    last = datetime.fromisoformat(status_of(demo_home, code)["last_sync"]["finished_at"])
    later = (last + timedelta(days=150, hours=1)).isoformat(timespec="seconds")
    env = {"DOSSYNC_NOW": later}
    rows = {r["code"]: r for r in
            json.loads(cli_process(demo_home, "status", "--json", env=env).stdout)}
    assert rows[code]["idle_days"] == 150
    event(demo_home, code, "edit-closed-period")
    done = cli_process(demo_home, "sync", code, "--json", env=env)
    assert done.returncode == ExitCode.OK, done.stderr
    assert "not synced for 150 days" in done.stdout and "repaired 1 period(s)" in done.stdout
    assert_portal_equals_ledger(demo_home, code)


@pytest.mark.slow  # a notebook run / the nightly's worker processes
def test_the_nightly_checks_an_idle_dossier_as_a_sync_does(demo_home):
    """The nightly's simple syncs come through the same check: an idle dossier with a silent
    edit is mended, one whose ledger went back in time is refused and marked, a recent one
    runs as always (no check, no note)."""
    mended, rewound, recent = codes(demo_home)
    for code in (mended, rewound, recent):
        assert cli(demo_home, "dossier", "set", code, "--nightly").returncode == 0
    event(demo_home, mended, "edit-closed-period")
    event(demo_home, rewound, "snapshot", "monday")
    event(demo_home, rewound, "new-bookings", "8")
    assert cli_json(demo_home, "sync", rewound)[0] == ExitCode.OK
    event(demo_home, rewound, "restore-backup", "monday")
    event(demo_home, recent, "edit-closed-period")
    age(demo_home, mended, 100)
    age(demo_home, rewound, 130)

    status, doc = cli_json(demo_home, "nightly", "--jobs", "2")
    assert status == ExitCode.PARTIAL, doc  # the refused one failed; the others did not
    runs = {r["dossier"]: r for r in doc["runs"]}
    assert runs[mended]["status"] == "succeeded"
    [note] = idle_warnings(runs[mended])
    assert f"{mended} was not synced for 100 days" in note and "repaired 1 period(s)" in note
    assert_portal_equals_ledger(demo_home, mended)
    assert runs[rewound]["status"] == "failed" and runs[rewound]["rows"]["read"] == 0
    assert "not synced for 130 days" in runs[rewound]["error"]
    assert f"dossync sync {rewound} --full" in runs[rewound]["error"]
    assert status_of(demo_home, rewound)["state"] == "action_required"
    assert runs[recent]["status"] == "succeeded" and idle_warnings(runs[recent]) == []
    # the recent one's silent edit is not looked for: that is what idle_days is for
    assert cli_json(demo_home, "reconcile", recent)[1]["verdict"] == "full_sync"


def test_a_sync_that_finishes_during_the_check_makes_its_verdict_stale(demo_home, monkeypatch):
    """The refusal is kept under the dossier's lock; when another sync finished while the
    check ran, the refusal would be stale: the simple sync runs from what that sync left."""
    from dossync.core import idle
    from dossync.core.sync import sync_dossier

    code = codes(demo_home)[0]
    event(demo_home, code, "snapshot", "monday")
    event(demo_home, code, "new-bookings", "8")
    assert cli_json(demo_home, "sync", code)[0] == ExitCode.OK
    event(demo_home, code, "restore-backup", "monday")
    age(demo_home, code, 120)
    home = Home(demo_home)
    real = idle.reconcile

    def check_while_someone_runs_a_full_sync(*args, **kwargs):
        verdict = real(*args, **kwargs)
        assert sync_dossier(home, code, "full").status == "succeeded"
        return verdict

    monkeypatch.setattr(idle, "reconcile", check_while_someone_runs_a_full_sync)
    run = idle.sync(home, code, "simple")
    assert run.status == "succeeded" and not run.needs_full_sync, run
    assert any("finished while it was checked" in w for w in run.warnings)
    assert status_of(demo_home, code)["state"] == "ok"
    assert_portal_equals_ledger(demo_home, code)
