"""The support engineer's terminal UI: `dossync tui`.

A Textual app over `core/`: it calls the functions the CLI calls. It never
holds the portal file: every read or write goes through a `core.portal`
function that opens DuckDB, does its work and closes it, always in a thread
worker, so a nightly run or a CLI sync beside the UI only ever makes it
wait a moment. Syncs started here run as detached `dossync sync` processes
(their own session), so a dropped SSH connection never stops them;
reopening the UI finds them through the monitor (state `syncing`, progress
file) or, once over, in the last sync of the dossier.

The app owns the two clocks of the screen: the monitor refresh (every few
seconds) and, while something syncs, the progress refresh. It broadcasts what
they read, and the syncs it sees start and end, through Textual signals
(`textual.signal.Signal`): `monitor_signal` (the monitor's rows),
`progress_signal` (progress by dossier code), `sync_started_signal` and
`sync_finished_signal` (the SyncStarted / SyncFinished messages). A screen
subscribes in its `on_mount` to the ones it shows; a screen that is removed
(popped) is dropped from them by Textual, so a broadcast reaches exactly the
screens alive at that moment. Screens subscribe with `immediate=True`: the
callback runs inside the app's handler, so a screen shows the news in the
same refresh as the app's own state (rows, progress, what is syncing).
"""
from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.signal import Signal

from dossync.core import i18n, monitor, window
from dossync.core.progress import read_progresses
from dossync.core.home import Home
from dossync.core.i18n import _
from dossync.core.model import DossyncError, ExitCode, ManualOptions
from dossync.tui.messages import MonitorLoaded, ProgressRead, SyncFinished, SyncStarted

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3.0
PROGRESS_SECONDS = 0.5
FROZEN_ENV = "DOSSYNC_TUI_FROZEN"
MASKED_TIME = "····-··-·· ··:··"


class DossierCommands(Provider):
    """Command palette: open dossier X, sync X, outbox, run log, job queue."""

    def _commands(self) -> list[tuple[str, object, str]]:
        app: DossyncApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, object, str]] = [
            (_("Outbox: client emails"), app.action_outbox, _("queued, sent and failed emails")),
            (_("Run log: syncs of every dossier"), app.action_run_log,
             _("the last 200 sync runs")),
            (_("Job queue: queued and running syncs"), app.action_jobs,
             _("what 'dossync worker' runs; cancel a queued job")),
            (_("Help: keys"), app.action_help, _("every key binding")),
        ]
        for row in app.rows:
            code, name = row["code"], row["name"]
            commands.append((_("Open dossier {code}").format(code=code),
                             _partial(app.open_dossier, code),
                             _("{name}: figures, history, settings").format(name=name)))
            commands.append((_("Sync {code}").format(code=code),
                             _partial(app.open_sync_dialog, code),
                             _("simple, full or repair sync of {name}").format(name=name)))
        return commands

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)


def _partial(fn, *args):
    def call() -> None:
        fn(*args)
    return call


class DossyncApp(App[int]):
    """dossync's terminal UI over one home.

    home: where the portal lives. frozen: mask clock-dependent values (run
    times, run ids, the home path) so snapshots are deterministic; also set
    by the environment variable DOSSYNC_TUI_FROZEN=1.
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "dossync"
    SUB_TITLE = _("active clients monitor")
    COMMANDS = App.COMMANDS | {DossierCommands}
    BINDINGS = [
        Binding("question_mark", "help", _("Help"), key_display="?"),
        Binding("e", "outbox", _("Outbox")),
        Binding("l", "run_log", _("Run log")),
        Binding("j", "jobs", _("Jobs")),
        Binding("q", "quit", _("Quit")),
        # Textual's own command palette key (what it adds when an app has none), with
        # the footer's word for it in the UI's language.
        Binding(App.COMMAND_PALETTE_BINDING, "command_palette", _("palette"), show=False,
                priority=True, tooltip=_("Open the command palette")),
    ]

    def __init__(self, home: Home, *, frozen: bool | None = None,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        super().__init__()
        self.home = home
        self.frozen = bool(os.environ.get(FROZEN_ENV)) if frozen is None else frozen
        self.refresh_seconds = refresh_seconds
        self.rows: list[dict] = []
        self.progress: dict[str, dict] = {}
        self.started: dict[str, subprocess.Popen] = {}
        self.cancelling: set[str] = set()
        self._syncing: set[str] = set()
        self.loaded = False
        # Broadcasts to the screens that subscribe (see the module's docstring).
        self.monitor_signal: Signal[list[dict]] = Signal(self, "monitor")
        self.progress_signal: Signal[dict[str, dict]] = Signal(self, "progress")
        self.sync_started_signal: Signal[SyncStarted] = Signal(self, "sync-started")
        self.sync_finished_signal: Signal[SyncFinished] = Signal(self, "sync-finished")

    # --- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        from dossync.tui.screens.monitor import MonitorScreen

        self.push_screen(MonitorScreen())
        self.refresh_monitor()
        self.set_interval(self.refresh_seconds, self.refresh_monitor)
        self.set_interval(PROGRESS_SECONDS, self._tick_progress)

    def when(self, stamp: str | None) -> str:
        """A timestamp as the screen shows it: minutes, or masked when frozen."""
        if not stamp:
            return "-"
        return MASKED_TIME if self.frozen else i18n.date_text(stamp[:16])

    def run_label(self, run_id: str | None) -> str:
        if not run_id:
            return "-"
        return "········" if self.frozen else run_id

    def subscribe(self, signal: Signal, screen, callback) -> None:
        """Have `screen` hear `signal` as it is published (so a first paint waits for
        nothing). Textual would only log an error raised in the callback: here it is
        shown as a notification and its traceback goes to the log."""
        def heard(data) -> None:
            try:
                callback(data)
            except Exception as exc:  # noqa: BLE001 - shown, logged, the UI goes on
                log.exception("%s.%s failed", type(screen).__name__,
                              getattr(callback, "__name__", "callback"))
                self.notify(_("{screen}: could not show an update: {error}").format(
                    screen=type(screen).__name__, error=str(exc) or type(exc).__name__),
                    severity="error", timeout=10)

        signal.subscribe(screen, heard, immediate=True)

    def report(self, exc: BaseException, what: str = "") -> None:
        """An error as a notification (from any thread): never a traceback on screen."""
        text = str(exc) or exc.__class__.__name__
        message = _("{what}: {text}").format(what=what, text=text) if what else text
        self.call_from_thread(self.notify, message, severity="error", timeout=10)

    # --- monitor refresh ---------------------------------------------------------------
    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False)
    def refresh_monitor(self) -> None:
        try:
            rows = monitor.monitor_rows(self.home, now=window.current_time())
            progress = read_progresses(self.home,
                                       [r["code"] for r in rows if r["state"] == "syncing"])
        except DossyncError as exc:
            self.report(exc, _("reading the monitor"))
            return
        except Exception as exc:  # noqa: BLE001 - the UI must survive anything core raises
            self.report(exc, _("reading the monitor"))
            return
        self.post_message(MonitorLoaded(rows, progress))

    def on_monitor_loaded(self, message: MonitorLoaded) -> None:
        self.rows = message.rows
        self.loaded = True
        self.progress = message.progress
        now_syncing = {r["code"] for r in message.rows if r["state"] == "syncing"}
        by_code = {r["code"]: r for r in message.rows}
        # Syncs someone else started (CLI, nightly, an earlier UI session).
        for code in self._syncing - now_syncing - set(self.started):
            self._finished(code, by_code.get(code), None, started_here=False)
        # Syncs we started: over when the process has exited (portal read after that).
        for code, process in list(self.started.items()):
            if process.poll() is not None and code not in now_syncing:
                del self.started[code]
                self._finished(code, by_code.get(code), process.returncode, started_here=True)
        self._syncing = now_syncing | set(self.started)
        self.monitor_signal.publish(message.rows)
        self.progress_signal.publish(self.progress)

    def _finished(self, code: str, row: dict | None, returncode: int | None,
                  started_here: bool) -> None:
        last = (row or {}).get("last_sync") or {}
        result = monitor.last_detached_result(self.home, code) if started_here else None
        status = (result or last).get("status") or "failed"
        error = (result or {}).get("error") or (row or {}).get("reason")
        if started_here and result is None:
            name = ExitCode(returncode).name if returncode in set(ExitCode) else str(returncode)
            status, error = "failed", _("the sync process ended with exit code {code} ({name}) "
                                        "before reporting a result").format(code=returncode,
                                                                            name=name)
            if returncode == ExitCode.BUSY:
                error = _("another process is syncing this dossier: try again when it is done")
        cancelled = code in self.cancelling
        self.cancelling.discard(code)
        self.post_message(SyncFinished(code, status, error, cancelled))

    def on_sync_finished(self, message: SyncFinished) -> None:
        code = message.code
        if message.cancelled and message.status != "succeeded":
            self.notify(_("{code}: cancelled: nothing changed").format(code=code),
                        title=_("sync cancelled"))
        elif message.status == "succeeded":
            self.notify(_("{code}: sync finished").format(code=code), title=_("sync succeeded"))
        else:
            self.notify(_("{what}: {text}").format(what=code,
                                                   text=message.error or _("the sync failed")),
                        title=_("sync failed"), severity="error", timeout=15)
        self.sync_finished_signal.publish(message)

    # --- progress ------------------------------------------------------------------------
    def _tick_progress(self) -> None:
        if self._syncing:
            self.read_progress(sorted(self._syncing))

    @work(thread=True, exclusive=True, group="progress", exit_on_error=False)
    def read_progress(self, codes: list[str]) -> None:
        try:
            progress = read_progresses(self.home, codes)
        except Exception as exc:  # noqa: BLE001 - a progress file is a courtesy, never fatal
            self.report(exc, _("reading progress"))
            return
        self.post_message(ProgressRead(progress))
        # A sync we started that is over: read the monitor now, not in 3 seconds.
        if any(p.poll() is not None for p in list(self.started.values())):
            self.call_from_thread(self.refresh_monitor)

    def on_progress_read(self, message: ProgressRead) -> None:
        self.progress = message.progress
        self.progress_signal.publish(message.progress)

    def is_syncing(self, code: str) -> bool:
        return code in self._syncing

    # --- syncs ---------------------------------------------------------------------------
    def start_sync(self, code: str, kind: str, options: ManualOptions) -> None:
        self._start_sync(code, kind, options)

    @work(thread=True, exclusive=False, group="start", exit_on_error=False)
    def _start_sync(self, code: str, kind: str, options: ManualOptions) -> None:
        try:
            from dossync.core.locks import dossier_lock

            lock = dossier_lock(self.home, code)
            if code in self.started or lock.is_held():
                holder = lock.holder() or _("this UI")
                self.call_from_thread(self.notify, _("{code} is already syncing ({holder})").format(
                    code=code, holder=holder), severity="warning")
                return
            process = monitor.start_detached_sync(self.home, code, kind, options)
        except Exception as exc:  # noqa: BLE001
            self.report(exc, _("starting a sync of {code}").format(code=code))
            return
        self.post_message(SyncStarted(code, kind, process.pid))
        self.call_from_thread(self._track_started, code, process)

    @work(thread=True, exclusive=False, group="start", exit_on_error=False)
    def schedule_full_sync(self, code: str, options: ManualOptions, now=None) -> None:
        """A full sync outside the quiet window, scheduled for it: the job `dossync sync
        CODE --full` queues there (core/window.py), which the nightly or a worker runs."""
        from dossync.core import window

        try:
            job, at = window.queue_sync(self.home, code, "full", options, now=now)
        except Exception as exc:  # noqa: BLE001
            self.report(exc, _("scheduling a full sync of {code}").format(code=code))
            return
        message = (window.describe(self.home, job, at) if at is not None else
                   _("queued job {job}: full sync of {dossier} ('dossync worker' runs it)").format(
                       job=job.job, dossier=code))
        self.call_from_thread(self.notify, message, title=_("full sync scheduled"))

    def _track_started(self, code: str, process: subprocess.Popen) -> None:
        self.started[code] = process
        self._syncing.add(code)

    def on_sync_started(self, message: SyncStarted) -> None:
        self.notify(_("{code}: {kind} sync started (pid {pid}); it keeps running if this "
                      "terminal closes").format(code=message.code, kind=_(message.kind),
                                                pid=message.pid), title=_("sync started"))
        self.sync_started_signal.publish(message)

    def cancel(self, code: str) -> None:
        self._cancel(code)

    @work(thread=True, exclusive=False, group="cancel", exit_on_error=False)
    def _cancel(self, code: str) -> None:
        try:
            asked = monitor.cancel_sync(self.home, code)
            process = self.started.get(code)
            if not asked and process is not None and process.poll() is None:
                process.terminate()  # not holding the lock yet: it has changed nothing
                asked = True
        except Exception as exc:  # noqa: BLE001
            self.report(exc, _("cancelling the sync of {code}").format(code=code))
            return
        if asked:
            self.cancelling.add(code)
            self.call_from_thread(self.notify, _("{code}: cancelling…").format(code=code),
                                  title=_("cancel"))
        else:
            self.call_from_thread(self.notify,
                                  _("no sync of {code} is running").format(code=code),
                                  severity="warning")

    # --- navigation ------------------------------------------------------------------------
    def open_dossier(self, code: str) -> None:
        from dossync.tui.screens.dossier import DossierScreen

        self.push_screen(DossierScreen(code))

    def open_sync_dialog(self, code: str) -> None:
        from dossync.tui.screens.sync_dialog import SyncDialog, SyncRequest

        if self.is_syncing(code):
            self.notify(_("{code} is syncing now: wait for it, or press c to cancel it").format(
                code=code), severity="warning")
            return

        def chosen(request: SyncRequest | None) -> None:
            if request is not None and request.schedule:
                self.schedule_full_sync(code, request.options, request.now)
            elif request is not None:
                self.start_sync(code, request.kind, request.options)

        self.push_screen(SyncDialog(code), chosen)

    def action_outbox(self) -> None:
        from dossync.tui.screens.outbox import OutboxScreen

        if not isinstance(self.screen, OutboxScreen):
            self.push_screen(OutboxScreen())

    def action_run_log(self) -> None:
        from dossync.tui.screens.runlog import RunLogScreen

        if not isinstance(self.screen, RunLogScreen):
            self.push_screen(RunLogScreen())

    def action_jobs(self) -> None:
        from dossync.tui.screens.jobs import JobsScreen

        if not isinstance(self.screen, JobsScreen):
            self.push_screen(JobsScreen())

    def action_help(self) -> None:
        from dossync.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def run(home: Home) -> int:
    """`dossync tui`: run the UI until the user quits; the exit code for the CLI."""
    app = DossyncApp(home)
    app.run()
    return int(app.return_code or 0)

