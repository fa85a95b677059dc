"""`dossync scheduler`: a foreground service that runs the nightly at its time.

For systemd or a container. It sleeps until `[nightly] time` in
HOME/dossync.toml (HH:MM, or HH:MM:SS), runs the nightly with `[nightly]
jobs` and `verify` (all three from `home.settings().nightly`), and waits for
the next day. SIGTERM (or SIGINT) lets the running commits finish, starts
nothing new, and exits 0. A nightly at a time inside `[full_sync] window`
also runs the full syncs scheduled for the window (core/nightly.py); with
the time outside it, the scheduler says so at start: those wait for a
worker.
"""
from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, time as clock, timedelta

from dossync.core.home import Home
from dossync.core.nightly import NightlyResult, run_nightly

log = logging.getLogger("dossync.scheduler")


def next_run(at: clock, now: datetime) -> datetime:
    today = datetime.combine(now.date(), at)
    return today if today > now else today + timedelta(days=1)


def serve(home: Home, *, once: bool = False, stop: threading.Event | None = None,
          on_result=None) -> int:
    """Run until stopped (or after one nightly when `once`); returns the exit code 0."""
    home.require()
    settings = home.settings().nightly  # checked: a bad time or jobs is a usage error here
    at, jobs, verify = settings.time, settings.jobs, settings.verify
    window = home.settings().full_sync.quiet_window
    if window is not None and not window.contains(datetime.combine(datetime.now().date(), at)):
        log.warning("scheduler: [nightly] time %s is outside [full_sync] window %s: the "
                    "nightly will not run the full syncs scheduled for the window; set the "
                    "time inside it, or run 'dossync worker'", at.strftime("%H:%M"), window)
    stop = stop or threading.Event()

    def shutdown(signum, _frame) -> None:
        log.warning("scheduler: %s received, letting running commits finish",
                    signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
    while not stop.is_set():
        due = next_run(at, datetime.now())
        log.warning("scheduler: next nightly at %s", due.isoformat(timespec="seconds"))
        while not stop.is_set() and datetime.now() < due:
            stop.wait(min(1.0, max(0.0, (due - datetime.now()).total_seconds())))
        if stop.is_set():
            break
        result: NightlyResult = run_nightly(home, jobs=jobs, stop=stop, verify=verify)
        log.warning("scheduler: nightly done, %d succeeded, %d failed, %d skipped",
                    result.succeeded, result.failed, len(result.skipped))
        if on_result is not None:
            on_result(result)
        if once:
            break
    log.warning("scheduler: stopped")
    return 0
