"""The active clients monitor, live progress, and syncs that outlive the UI.

Shared by `dossync status` and the terminal UI. A sync started from the UI
runs as a detached process (`dossync sync ...` in its own session), so a
dropped SSH connection never stops it; its progress is a small JSON file
next to the dossier's lock, rewritten a few times a second, and its
holder's pid is in the lock file (SIGTERM cancels: nothing is changed).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from datetime import datetime

from dossync.core import portal
from dossync.core.home import Home
from dossync.core.idle import days_since
from dossync.core.locks import DossierLock, syncing
from dossync.core.model import Dossier, ManualOptions, SyncKind
from dossync.core.upgrades import full_sync_advised

log = logging.getLogger(__name__)


def monitor_rows(home: Home, now: datetime | None = None) -> list[dict]:
    """One row per dossier: the contract's status fields plus `reason` in words.

    `idle_days` counts whole days from the last successful sync to `now` (the
    front ends pass core/window.py's `current_time()`): the engineer sees which
    dossiers were left alone long enough that their next simple sync checks
    them first (core/idle.py)."""
    now = now or datetime.now()
    rows = []
    entries = portal.monitor(home.portal)
    held = syncing(home, [entry.dossier.code for entry in entries])
    for entry in entries:
        d: Dossier = entry.dossier
        last = entry.last_sync
        reason = None
        # the connector now brings data this dossier lacks (core/upgrades.py)
        advised = full_sync_advised(d)
        if d.code in held:
            state = "syncing"
        elif entry.needs_full_sync:
            state, reason = "action_required", entry.error
        elif entry.quarantined:
            state = "action_required"
            reason = (f"{entry.quarantined} ledger row(s) quarantined: "
                      f"'dossync dossier show {d.code}' gives the reasons")
        elif last and last.status == "failed":
            state, reason = "failed", entry.error
        elif advised:
            state, reason = "action_required", advised
        else:
            state = "ok"
        rows.append({"code": d.code, "name": d.name, "package": d.package,
                     "updated_until": d.updated_until, "active_period": d.active_period,
                     "pending_proposals": d.pending_proposals, "state": state,
                     "nightly": d.nightly, "last_sync": last.to_json() if last else None,
                     "quarantined": entry.quarantined,
                     "idle_days": days_since(entry.last_succeeded, now),
                     "full_sync_advised": advised, "reason": reason})
    return rows


# --- detached syncs -------------------------------------------------------------------
def sync_command(home: Home, code: str, kind: SyncKind = "simple",
                 options: ManualOptions | None = None) -> list[str]:
    """The command line of `dossync sync CODE --json` with this kind and these options: what
    the UI starts detached and what a queue worker runs for a job. A full sync gets `--now`:
    the quiet window was minded before (the UI asked, the worker's job is due)."""
    options = options or ManualOptions()
    args = [sys.executable, "-m", "dossync.core.cli", "--home", str(home.root), "sync", code,
            "--json"]
    if kind in ("full", "repair"):
        args.append(f"--{kind}")
    if kind == "full":
        args.append("--now")
    if options.until:
        args += ["--until", options.until]
    if options.reset_counter:
        args.append("--reset-counter")
    if options.notify:
        args.append("--notify")
    if options.new_period:
        args += ["--new-period", options.new_period]
    return args


def start_detached_sync(home: Home, code: str, kind: SyncKind = "simple",
                        options: ManualOptions | None = None) -> subprocess.Popen:
    """Start `dossync sync` in its own session: it survives the UI and its terminal."""
    args = sync_command(home, code, kind, options)
    home.logs.mkdir(parents=True, exist_ok=True)
    out = open(home.logs / f"ui-sync-{code}.json", "wb")
    try:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                cwd=str(home.root))
    finally:
        out.close()


def last_detached_result(home: Home, code: str) -> dict | None:
    """What the last UI-started sync of a dossier printed (its JSON), if it finished."""
    try:
        return json.loads((home.logs / f"ui-sync-{code}.json").read_text())
    except (OSError, ValueError):
        return None


def cancel_sync(home: Home, code: str) -> bool:
    """Ask the process syncing `code` to stop; it changes nothing. False if none runs."""
    if home.on_server:  # the sync may run on another machine: it is asked through the portal
        from dossync.core.portal.holders import request_cancel
        return request_cancel(home.portal, code)
    lock = DossierLock(home.locks, code)
    try:
        info = json.loads(lock.path.read_text() or "{}")
    except (OSError, ValueError):
        return False
    pid = info.get("pid")
    if not isinstance(pid, int) or not lock.is_held():
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
