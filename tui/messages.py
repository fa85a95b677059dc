"""Messages the UI's workers and screens post to each other.

Small dataclasses named as the events they report. Thread workers never
touch widgets: they post one of these, and the handler (on the UI's event
loop) updates the screen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message


@dataclass
class MonitorLoaded(Message):
    """A fresh read of the active clients monitor (core.monitor.monitor_rows)."""

    rows: list[dict]
    progress: dict[str, dict] = field(default_factory=dict)


@dataclass
class ProgressRead(Message):
    """Live progress of the dossiers that are syncing now, by dossier code."""

    progress: dict[str, dict]


@dataclass
class SyncStarted(Message):
    """A detached `dossync sync` process was started from this UI."""

    code: str
    kind: str
    pid: int


@dataclass
class SyncFinished(Message):
    """A sync this UI started or watched is over: its last run as the portal has it."""

    code: str
    status: str
    error: str | None = None
    cancelled: bool = False


@dataclass
class DossierLoaded(Message):
    """Everything the dossier screen shows, read from the portal in one worker."""

    code: str
    dossier: object
    dashboard: dict | None
    runs: list[dict]
    quarantined: list[dict]


@dataclass
class ReconcileDone(Message):
    """The verdict of core.reconcile.reconcile for one dossier (None when it failed)."""

    code: str
    verdict: str | None
    reasons: list[str]


@dataclass
class SettingsSaved(Message):
    """A dossier's settings were written to the portal."""

    code: str
