"""The UI end to end, in a real terminal (tmux).

tmux runs `dossync tui` on a demo home; keys go in with `send-keys`, the
screen comes back with `capture-pane`. A sync started there is a detached
process: killing the tmux session mid-sync (a dropped SSH connection) must
not stop it. (How fast the UI answers beside a 1M-line full sync is measured
in `make bench`: bench/tui_responsiveness.py.)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dossync.core import portal
from dossync.core.locks import DossierLock

ROOT = Path(__file__).resolve().parent.parent
TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed: the real-terminal "
                                "test needs it (apt-get install tmux)")


class Terminal:
    """One tmux session running the UI."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        command = f"{sys.executable} -m dossync.core.cli --home {home} tui"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        subprocess.run([TMUX, "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command],
                       check=True, cwd=ROOT, env={**env, "TERM": "xterm-256color"})

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run([TMUX, "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        subprocess.run([TMUX, "send-keys", "-t", self.name, "-l", text], check=True)
        time.sleep(0.3)

    def screen(self) -> str:
        done = subprocess.run([TMUX, "capture-pane", "-t", self.name, "-p"], capture_output=True,
                              text=True)
        return done.stdout

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run([TMUX, "kill-session", "-t", self.name], capture_output=True)


def wait_portal(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def dossier_line(screen: str, code: str) -> str:
    return next((line for line in screen.splitlines() if f" {code} " in line), "")


@needs_tmux
def test_sync_from_a_real_terminal(home):
    code = "DUMONT"
    term = Terminal(f"dossync-e2e-{os.getpid()}", home)
    try:
        term.wait_for(lambda s: code in s and "ok" in dossier_line(s, code), 20, "the monitor")
        term.keys("s")  # the highlighted (first) dossier
        term.wait_for(lambda s: f"Sync dossier {code}" in s, 10, "the sync dialog")
        term.keys("Tab", "Enter")  # into the date field, Enter starts the simple sync
        screen = term.wait_for(lambda s: "simple ok" in dossier_line(s, code), 40,
                               "the finished simple sync on the monitor")
        assert "failed" not in dossier_line(screen, code)
    finally:
        term.kill()
    last = portal.runs(home / "portal.duckdb", code, 1)[0]
    assert (last["kind"], last["status"]) == ("simple", "succeeded")


@needs_tmux
def test_sync_survives_a_killed_terminal(home):
    code = "VAN-DEN-BOSSCHE"  # the largest; throttled so it is still running when we kill
    # ~3,200 rows at 300/s: about ten seconds, time enough on a loaded machine
    (home / "dossync.toml").write_text("[full_sync]\nmax_rows_per_second = 300\n")
    runs_before = len(portal.runs(home / "portal.duckdb", code, 100))
    term = Terminal(f"dossync-e2e-kill-{os.getpid()}", home)
    try:
        term.wait_for(lambda s: code in s, 20, "the monitor")
        term.keys("Down", "Down", "s")
        term.wait_for(lambda s: f"Sync dossier {code}" in s, 10, "the sync dialog")
        term.keys("Down", "Enter")  # full
        term.wait_for(lambda s: "Type the dossier code" in s, 10, "the full-sync warning")
        term.keys("Tab", "Tab", "Tab", "Tab", "Tab")  # date, counter, email, period, code
        term.type(code)
        term.keys("Enter")
        wait_portal(lambda: DossierLock(home / "locks", code).is_held(), 20, "the sync to start")
        term.wait_for(lambda s: "syncing" in dossier_line(s, code), 10, "the syncing state")
    finally:
        term.kill()  # the SSH connection drops mid-sync
    assert DossierLock(home / "locks", code).is_held(), "the sync died with its terminal"
    wait_portal(lambda: len(portal.runs(home / "portal.duckdb", code, 100)) > runs_before, 60,
                "the detached sync to finish")
    last = portal.runs(home / "portal.duckdb", code, 1)[0]
    assert (last["kind"], last["status"]) == ("full", "succeeded"), last
