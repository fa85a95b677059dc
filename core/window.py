"""The quiet window for full syncs (`[full_sync] window = "01:00-05:00"`).

A full sync reads the whole ledger from the office server: heavy for it and
for the network, so a firm can keep it out of office hours. A full sync
asked outside the window is not run but queued as a job that no worker
claims before the window opens (`not_before`, core/portal/jobs.py), its
`error` saying why it waits; `--now` runs it at once whatever the time.
Within the window, or with no window, nothing changes. The nightly, when it
runs inside the window, runs the due ones itself (core/nightly.py); a worker
runs them as any job once they are due. Simple syncs and repairs never wait.

The clock. Every function takes `now`; the front ends (CLI, UI) pass
`current_time()`, the one place that reads DOSSYNC_NOW: for tests, a fixed
"2026-11-29T14:00:00" to move the clock of a whole command (and of the
processes it starts) without waiting for the night.
"""
from __future__ import annotations

import os
from datetime import datetime

from dossync.core import portal
from dossync.core.home import Home
from dossync.core.i18n import _
from dossync.core.model import ManualOptions, SyncKind, UsageError
from dossync.core.settings import QuietWindow

NOW_ENV = "DOSSYNC_NOW"  # for tests: the time dossync takes to be now
SCHEDULED = "scheduled for the quiet window"  # how a waiting scheduled job's reason begins


def current_time() -> datetime:
    """Now, or the time DOSSYNC_NOW names (for tests; ISO, e.g. 2026-11-29T14:00:00)."""
    text = os.environ.get(NOW_ENV, "").strip()
    if not text:
        return datetime.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{NOW_ENV}={text[:40]!r}: use YYYY-MM-DDTHH:MM:SS, e.g. "
                         f"2026-11-29T14:00:00 (it is for tests; unset it to use the "
                         f"clock)") from None
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def quiet_window(home: Home) -> QuietWindow | None:
    """The firm's window for full syncs, None when it has none (checked: a bad value is a
    UsageError naming the key and the file)."""
    return home.settings().full_sync.quiet_window


def waits_until(home: Home, kind: SyncKind, now: datetime | None = None) -> datetime | None:
    """When a sync of `kind` asked at `now` may start: the next window start for a full
    sync outside the window, else None (at once)."""
    if kind != "full":
        return None
    window = quiet_window(home)
    now = now or datetime.now()
    if window is None or window.contains(now):
        return None
    return window.next_start(now)


def waiting_reason(home: Home, at: datetime) -> str:
    """What `dossync jobs` shows in `error` while a scheduled full sync waits."""
    return (f"{SCHEDULED} at {at.isoformat(timespec='seconds')} "
            f"([full_sync] window = \"{quiet_window(home)}\")")


def queue_sync(home: Home, code: str, kind: SyncKind, options: ManualOptions | None = None,
               *, now: datetime | None = None,
               at_once: bool = False) -> tuple[portal.Job, datetime | None]:
    """Queue a sync for a worker: (the job, when it may start). A full sync asked outside
    the window waits for its next start, unless `at_once`; `sync --full` outside the
    window (scheduled), `sync --queue` and the UI's "schedule" all come here."""
    at = None if at_once else waits_until(home, kind, now)
    job = portal.enqueue_job(home.portal, code, kind, options, not_before=at,
                             reason=waiting_reason(home, at) if at else None)
    return job, at


def describe(home: Home, job: portal.Job, at: datetime) -> str:
    """The sentence a user reads when a full sync was scheduled instead of run (in the
    active language: the CLI prints it, the UI shows it)."""
    return _("full sync of {dossier} scheduled for the quiet window ({window}): job {job} "
             "runs at {at} (the nightly or 'dossync worker' runs it; 'dossync jobs' shows it). "
             "To run it at once instead: dossync jobs cancel {job}, then dossync sync "
             "{dossier} --full --now").format(dossier=job.dossier, window=quiet_window(home),
                                               job=job.job, at=f"{at:%Y-%m-%d %H:%M}")


__all__ = ["NOW_ENV", "current_time", "describe", "queue_sync", "quiet_window",
           "waiting_reason", "waits_until"]
