"""`dossync scheduler`: a foreground service that runs the nightly at its time.

For systemd or a container. It sleeps until `[nightly] time` in
HOME/dossync.toml (HH:MM, or HH:MM:SS), runs the nightly with `[nightly]
jobs` and `verify` (all three from `home.settings().nightly`), and waits for
the next day. SIGTERM (or SIGINT) lets the running commits finish, starts
nothing new, and exits 0.

The quiet window. A nightly at a time inside `[full_sync] window` also runs
the full syncs scheduled for the window (core/nightly.py). With the time
outside it the scheduler wakes at the window's start as well (and at once
when it starts inside an open window) and runs the due scheduled full syncs
then, one at a time, throttled as every full sync is: a firm needs no
worker running for them.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, time as clock, timedelta

from dossync.core.home import Home
from dossync.core.nightly import NightlyResult, run_nightly, run_scheduled_full_syncs

log = logging.getLogger("dossync.scheduler")


def next_run(at: clock, now: datetime) -> datetime:
    today = datetime.combine(now.date(), at)
    return today if today > now else today + timedelta(days=1)


def serve(home: Home, *, once: bool = False, stop: threading.Event | None = None,
          on_result=None, now: Callable[[], datetime] = datetime.now) -> int:
    """Run until stopped (or after one nightly when `once`); returns the exit code 0.
    `now` is the clock (tests move it)."""
    home.require()
    settings = home.settings().nightly  # checked: a bad time or jobs is a usage error here
    at, jobs, verify = settings.time, settings.jobs, settings.verify
    window = home.settings().full_sync.quiet_window
    # with the nightly outside the window, the window's own start runs its full syncs
    wake_for_window = (window is not None
                       and not window.contains(datetime.combine(now().date(), at)))
    if wake_for_window:
        log.warning("scheduler: [nightly] time %s is outside [full_sync] window %s: the full "
                    "syncs scheduled for the window run when it opens", at.strftime("%H:%M"),
                    window)
    stop = stop or threading.Event()

    def shutdown(signum, _frame) -> None:
        log.warning("scheduler: %s received, letting running commits finish",
                    signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
    handled: datetime | None = None  # the window opening whose full syncs were run
    while not stop.is_set():
        moment = now()
        due, event = next_run(at, moment), "nightly"
        if wake_for_window:
            opens = (moment if window.contains(moment) and window.last_start(moment) != handled
                     else window.next_start(moment))
            if opens < due:
                due, event = opens, "window"
        log.warning("scheduler: next %s at %s", "nightly" if event == "nightly"
                    else "run of the scheduled full syncs", due.isoformat(timespec="seconds"))
        while not stop.is_set() and now() < due:
            stop.wait(min(1.0, max(0.0, (due - now()).total_seconds())))
        if stop.is_set():
            break
        if event == "window":
            moment = now()
            handled = window.last_start(moment)
            done = run_scheduled_full_syncs(home, moment, stop)
            log.warning("scheduler: the quiet window %s opened: %d scheduled full sync(s) run, "
                        "%d failed", window, len(done),
                        sum(1 for _job, run in done if run.status != "succeeded"))
            continue
        result: NightlyResult = run_nightly(home, jobs=jobs, stop=stop, verify=verify,
                                            now=now())
        log.warning("scheduler: nightly done, %d succeeded, %d failed, %d skipped",
                    result.succeeded, result.failed, len(result.skipped))
        if on_result is not None:
            on_result(result)
        if once:
            break
    log.warning("scheduler: stopped")
    return 0
