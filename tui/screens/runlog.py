"""Sync runs across all dossiers, newest first (core.portal.runs, the last 200)."""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from dossync.core import i18n, portal
from dossync.core.i18n import _

LIMIT = 200


class RunLogScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", _("Back")),
        Binding("r", "reload", _("Refresh")),
        Binding("enter", "open", _("Open dossier")),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runlog", cursor_type="row")
        yield Static(id="runlog-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = _("run log")
        self.runs: dict[str, dict] = {}
        self.query_one(DataTable).add_columns(_("started"), _("finished"), _("dossier"),
                                              _("kind"), _("status"), _("read"), _("ins"),
                                              _("upd"), _("del"), _("quar"), _("error"))
        self.query_one(DataTable).focus()
        self.load()

    @work(thread=True, exclusive=True, group="runlog", exit_on_error=False)
    def load(self) -> None:
        try:
            runs = portal.runs(self.app.home.portal, None, limit=LIMIT)
        except Exception as exc:  # noqa: BLE001 - errors become notifications
            self.app.report(exc, _("reading the run log"))
            return
        self.app.call_from_thread(self._show, runs)

    def _show(self, runs: list[dict]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.runs = {r["run_id"]: r for r in runs}
        for run in runs:
            ok = run["status"] == "succeeded"
            table.add_row(self.app.when(run["started_at"]), self.app.when(run["finished_at"]),
                          run["dossier"], _(run["kind"]),
                          Text(_(run["status"]), style="green" if ok else "bold red"),
                          *(i18n.count(run[k] or 0) for k in ("read", "inserted", "updated",
                                                         "deleted", "quarantined")),
                          Text(run["error"] or "", style="red"), key=run["run_id"])
        self.query_one("#runlog-detail", Static).update(
            _("{n} runs (at most {limit})").format(n=len(runs), limit=LIMIT))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        run = self.runs.get(event.row_key.value) if event.row_key else None
        if run:
            self.query_one("#runlog-detail", Static).update(Text.assemble(
                (self.app.run_label(run["run_id"]), "dim"), " ",
                (run["error"] or "", "red"), (" ".join(run["warnings"]), "yellow")))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        run = self.runs.get(event.row_key.value) if event.row_key else None
        if run:
            self.app.open_dossier(run["dossier"])

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            self.app.open_dossier(self.runs[key]["dossier"])

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()
