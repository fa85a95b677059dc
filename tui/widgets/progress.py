"""Progress of one running sync: per stream rows done, rate, ETA, a bar.

Fed from the sync's progress file (core.progress.read_progress), which the
syncing process rewrites a few times a second; hidden when nothing syncs.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from dossync.core import i18n
from dossync.core.i18n import _


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _word(word: str) -> str:
    """A word of ours (a sync's kind) in the active language; '' stays '' (gettext's
    `_("")` would be the catalog's header)."""
    return _(word) if word else ""


class SyncProgress(Vertical):
    """The running sync of one dossier; `show(None, None)` hides it."""

    def compose(self) -> ComposeResult:
        yield Static(id="progress-title")
        yield ProgressBar(id="progress-bar", show_eta=False)
        yield Static(id="progress-streams")

    def on_mount(self) -> None:
        self.display = False
        self.code: str | None = None

    def show(self, code: str | None, progress: dict | None, cancelling: bool = False) -> None:
        self.code = code
        self.display = code is not None
        if code is None:
            return
        title = self.query_one("#progress-title", Static)
        bar = self.query_one("#progress-bar", ProgressBar)
        streams = self.query_one("#progress-streams", Static)
        if not progress:
            title.update(Text.assemble((code, "bold"), " " + _("syncing: starting …"),
                                       (" " + _("(cancelling)") if cancelling else "",
                                        "yellow"),
                                       ("   " + _("c cancels"), "dim")))
            bar.update(total=None)
            streams.update("")
            return
        done, total = progress["done"], progress["total"]
        title.update(Text.assemble(
            (code, "bold"),
            " " + _("{kind} sync · {phase}").format(kind=_word(progress.get("kind", "")),
                                                   phase=progress.get("phase", "")) + " · ",
            _("{done}/{total} rows · {rate} rows/s · ETA {eta}").format(
                done=i18n.count(done), total=i18n.count(total), rate=f"{progress['rate']:,.0f}",
                eta=_eta(progress["eta"])),
            (" " + _("(cancelling)") if cancelling else "", "bold yellow"),
            ("   " + _("c cancels"), "dim")))
        bar.update(total=max(total, done, 1) if total else None, progress=done)
        parts = []
        for name, stream in progress["streams"].items():
            finished = stream["total"] is not None and stream["done"] >= stream["total"]
            parts.append(Text.assemble(
                (name, "bold" if not finished else "dim"),
                f" {i18n.count(stream['done'])}/{i18n.count(stream['total'])}",
                (" ✓" if finished else "", "green")))
        streams.update(Text("  ").join(parts))
