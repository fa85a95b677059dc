"""The job queue (core.portal.list_jobs): queued, running and finished syncs; c cancels
a queued job, or asks a running one to stop (its worker, on any machine, stops it).

The screen reads the queue from the portal, so it shows jobs whichever worker
runs them, and refreshes itself while it is open.
"""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from dossync.core import i18n, portal
from dossync.core.i18n import N_, _
from dossync.core.model import DossyncError
from dossync.core.progress import read_progresses
from dossync.core.portal import Job

STATUS_STYLE = {"queued": "bold yellow", "running": "bold cyan", "succeeded": "green",
                "failed": "bold red", "cancelled": "dim"}
REFRESH_SECONDS = 2.0
COLUMNS = [("queued", N_("queued")), ("job", N_("job")), ("dossier", N_("dossier")),
           ("kind", N_("kind")), ("status", N_("status")), ("progress", N_("progress")),
           ("attempts", N_("tries")), ("worker", N_("worker")), ("run", N_("run")),
           ("error", N_("error / why it waits"))]
# The statuses, marked for the catalogs: shown translated (`_(job.status)`).
STATUSES = [N_("queued"), N_("running"), N_("succeeded"), N_("failed"), N_("cancelled")]
SHOWN = 500  # the newest jobs; `dossync jobs --json` lists them all


class JobsScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", _("Back")),
        Binding("c", "cancel_job", _("Cancel job")),
        Binding("r", "reload", _("Refresh")),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Job] = []
        self.progress: dict[str, dict] = {}  # dossier -> its running sync's progress

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("job queue · reading …"), id="jobs-title")
        yield DataTable(id="jobs", cursor_type="row")
        yield Static(id="jobs-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = _("job queue")
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(_(label), key=key)
        table.focus()
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    @work(thread=True, exclusive=True, group="jobs", exit_on_error=False)
    def load(self) -> None:
        try:
            jobs = portal.list_jobs(self.app.home.portal, limit=SHOWN)
            # the running syncs' progress, from the portal on a server: whichever
            # machine's worker runs them
            progress = read_progresses(self.app.home, sorted(
                {j.dossier for j in jobs if j.status == "running"}))
        except Exception as exc:  # noqa: BLE001 - errors become notifications
            self.app.report(exc, _("reading the job queue"))
            return
        self.app.call_from_thread(self._show, jobs, progress)

    def _show(self, jobs: list[Job], progress: dict[str, dict] | None = None) -> None:
        self.jobs = jobs
        self.progress = progress or {}
        table = self.query_one(DataTable)
        chosen = self._chosen()
        table.clear()
        for job in jobs:
            table.add_row(self.app.when(job.queued_at), job.job, job.dossier, _(job.kind),
                          Text(_(job.status), style=STATUS_STYLE.get(job.status, "")),
                          self._progress_of(job), str(job.attempts), job.worker or "-", self.app.run_label(job.run_id),
                          Text(job.error or "", style="red" if job.status == "failed" else ""),
                          key=job.job)
        if chosen is not None and chosen in {j.job for j in jobs}:
            table.move_cursor(row=table.get_row_index(chosen))
        counts = {s: sum(j.status == s for j in jobs) for s in ("queued", "running", "failed")}
        self.query_one("#jobs-title", Static).update(
            _("job queue · {queued} queued · {running} running · {failed} failed · "
              "'dossync worker' runs them").format(**counts))

    def _progress_of(self, job: Job) -> str:
        doc = self.progress.get(job.dossier) if job.status == "running" else None
        if not doc:
            return ""
        done, total = doc.get("done", 0), doc.get("total", 0)
        if doc.get("phase") != "read" or not total:
            return str(doc.get("phase") or "")
        return f"{i18n.count(done)}/{i18n.count(total)} ({100 * done // total}%)"

    def _chosen(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.jobs or table.row_count == 0:
            return None
        row = min(table.cursor_row, table.row_count - 1)
        return str(table.coordinate_to_cell_key((row, 0)).row_key.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        job = next((j for j in self.jobs if j.job == event.row_key.value), None)
        detail = self.query_one("#jobs-detail", Static)
        if job is None:
            detail.update("")
            return
        detail.update(_("{job}: {kind} sync of {dossier}, {status}").format(
            job=job.job, kind=_(job.kind), dossier=job.dossier, status=_(job.status))
                      + (f" · {job.error}" if job.error else ""))

    def action_cancel_job(self) -> None:
        job = self._chosen()
        if job is not None:
            self.cancel(job)

    @work(thread=True, exclusive=True, group="jobs-cancel", exit_on_error=False)
    def cancel(self, job: str) -> None:
        try:
            cancelled = portal.cancel_job(self.app.home.portal, job)
        except DossyncError as exc:  # a finished job: the message says why
            self.app.report(exc)
            return
        except Exception as exc:  # noqa: BLE001 - errors become notifications
            self.app.report(exc, _("cancelling job {job}").format(job=job))
            return
        said = (_("job {job} ({kind} sync of {dossier}) cancelled")
                if cancelled.status == "cancelled"
                else _("job {job} ({kind} sync of {dossier}) is running: {error}"))
        self.app.call_from_thread(self.notify, said.format(
            job=cancelled.job, kind=_(cancelled.kind), dossier=cancelled.dossier,
            error=cancelled.error), title=_("job queue"))
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()
