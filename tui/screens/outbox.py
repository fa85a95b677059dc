"""The client emails: queued, sent and failed (core.portal.outbox); f retries delivery."""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from dossync.core import notify, portal
from dossync.core.i18n import N_, _

STATUS_STYLE = {"sent": "green", "queued": "bold yellow", "failed": "bold red"}
# The statuses, marked for the catalogs: shown translated (`_(status)`).
STATUSES = [N_("sent"), N_("queued"), N_("failed")]


class OutboxScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", _("Back")),
        Binding("f", "flush", _("Retry delivery")),
        Binding("r", "reload", _("Refresh")),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("client emails · reading …"), id="outbox-title")
        yield DataTable(id="outbox", cursor_type="row")
        yield Static(id="outbox-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = _("outbox")
        self.query_one(DataTable).add_columns(_("created"), _("dossier"), _("status"),
                                              _("recipient"), _("subject"), _("tries"),
                                              _("last error"))
        self.query_one(DataTable).focus()
        self.load()

    @work(thread=True, exclusive=True, group="outbox", exit_on_error=False)
    def load(self, flush: bool = False) -> None:
        try:
            if flush:
                results = notify.flush(self.app.home)
                self.app.call_from_thread(
                    self.notify, _("delivery retried for {n} email(s)").format(n=len(results)),
                    title=_("outbox"))
            rows = portal.outbox(self.app.home.portal)
        except Exception as exc:  # noqa: BLE001 - errors become notifications
            self.app.report(exc, _("reading the outbox"))
            return
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[dict]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in reversed(rows):  # newest first
            table.add_row(self.app.when(row["created_at"]), row["dossier"],
                          Text(_(row["status"]), style=STATUS_STYLE.get(row["status"], "")),
                          row["recipient"] or "-", row["subject"] or "", str(row["attempts"]),
                          Text(row["last_error"] or "", style="red"), key=row["id"])
        counts = {s: sum(r["status"] == s for r in rows) for s in ("queued", "failed", "sent")}
        self.query_one("#outbox-title", Static).update(
            _("client emails · {queued} queued · {failed} failed · {sent} sent").format(
                **counts))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_flush(self) -> None:
        self.load(flush=True)

    def action_reload(self) -> None:
        self.load()
