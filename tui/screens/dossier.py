"""One dossier: dashboard figures, sync history, quarantine, reconcile, settings.

Everything is read in one thread worker (the portal is opened and closed by
each core call); the reconcile verdict is computed on demand (`r`) because
it reads the whole ledger from the package. Settings are edited in place
and written with `core.portal.update_dossier` after validation.
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (Button, DataTable, Footer, Header, Input, Label, Select, Sparkline,
                             Static, Checkbox)

from dossync.core import i18n, portal, reports
from dossync.core.i18n import N_, _
from dossync.core.model import LANGUAGES, DossyncError
from dossync.core.notify import valid_address
from dossync.tui.messages import DossierLoaded, ReconcileDone, SettingsSaved
from dossync.tui.widgets.progress import SyncProgress

FIGURES = [("revenue", N_("revenue")), ("costs", N_("costs")), ("result", N_("result")),
           ("bank", N_("bank")), ("receivables", N_("receivables")),
           ("payables", N_("payables")), ("vat_position", N_("VAT position"))]
VERDICT_STYLE = {"in_sync": "bold green", "simple_sync": "bold yellow", "full_sync": "bold red"}


def show_error(widget: Static, text: str) -> None:
    """An inline validation message under a field; takes no room when empty."""
    widget.update(text)
    widget.display = bool(text)


def money(text: str | None) -> str:
    """A contract decimal string ("1234.50") as the language writes an amount."""
    return "-" if text is None else i18n.amount(text)


class DossierScreen(Screen):
    """The dossier's figures and history; s syncs it, r reconciles it."""

    BINDINGS = [
        Binding("escape", "back", _("Back")),
        Binding("s", "sync", _("Sync")),
        Binding("c", "cancel", _("Cancel sync")),
        Binding("r", "reconcile", _("Reconcile")),
        Binding("f5", "reload", _("Reload"), show=False),
    ]

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self.dossier = None
        self.verdict: str | None = None
        self.figures: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="dossier-body"):
            yield Static(id="dossier-title")
            with Horizontal(id="dossier-top"):
                yield Static(id="figures")
                with Vertical(id="dossier-side"):
                    yield Label(_("monthly revenue"), classes="caption")
                    yield Sparkline([], id="revenue-sparkline")
                    yield Static(id="sparkline-range", classes="caption")
                    yield Static(_("reconcile: not run in this session · press r"),
                                 id="reconcile")
            yield SyncProgress(id="progress")
            yield Label(_("settings"), classes="section")
            with Horizontal(classes="field"):
                yield Label(_("client email"), classes="field-label")
                yield Input(id="email", placeholder="name@company.be", compact=True)
            yield Static(id="email-error", classes="error")
            with Horizontal(classes="field"):
                yield Label(_("language"), classes="field-label")
                yield Select([(lang, lang) for lang in LANGUAGES], id="language",
                             allow_blank=False, value="nl", compact=True)
                yield Checkbox(_("nightly sync"), id="nightly", compact=True)
                yield Button(_("Save"), id="save", compact=True)
            yield Label(_("sync history"), classes="section")
            yield DataTable(id="runs", cursor_type="row")
            yield Static(id="run-detail")
            yield Label(_("quarantined rows"), classes="section")
            yield Static(_("none"), id="quarantine-none", classes="caption")
            yield DataTable(id="quarantine", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = _("dossier {code}").format(code=self.code)
        runs = self.query_one("#runs", DataTable)
        runs.add_columns(_("started"), _("kind"), _("status"), _("read"), _("ins"), _("upd"),
                         _("del"), _("quar"), _("error / warnings"))
        quarantine = self.query_one("#quarantine", DataTable)
        quarantine.add_columns(_("stream"), _("key"), _("reason"), _("detail"))
        self.query_one("#email-error").display = False
        self.query_one("#dossier-title", Static).update(
            f"{self.code} · " + _("reading the portal …"))
        app = self.app
        app.subscribe(app.progress_signal, self, self.progress_read)
        app.subscribe(app.sync_started_signal, self, self.sync_started)
        app.subscribe(app.sync_finished_signal, self, self.sync_finished)
        self.load()
        self.progress_read(app.progress)

    # --- data -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="dossier", exit_on_error=False)
    def load(self) -> None:
        path = self.app.home.portal
        try:
            dossier = portal.get_dossier(path, self.code)
            if dossier is None:
                self.app.call_from_thread(
                    self.notify, _("there is no dossier {code}").format(code=self.code),
                    severity="error")
                return
            try:
                dashboard = reports.dashboard(path, self.code)
            except DossyncError as exc:
                self.app.report(exc, _("dashboard of {code}").format(code=self.code))
                dashboard = None
            loaded = DossierLoaded(self.code, dossier, dashboard,
                                   portal.runs(path, self.code, limit=50),
                                   portal.quarantined(path, self.code))
        except Exception as exc:  # noqa: BLE001 - errors become notifications
            self.app.report(exc, _("reading dossier {code}").format(code=self.code))
            return
        self.post_message(loaded)

    def on_dossier_loaded(self, message: DossierLoaded) -> None:
        first = self.dossier is None
        self.dossier = d = message.dossier
        self.query_one("#dossier-title", Static).update(Text.assemble(
            (d.code, "bold"), f" · {d.name} · {d.package} · " + _("active period") + " ",
            (d.active_period or "-", "bold"), " · " + _("updated until") + " ",
            (i18n.date_text(d.updated_until) or "-", "bold"), " · " + _("blue counter") + " ",
            (str(d.pending_proposals), "bold blue")))
        self._show_figures(message.dashboard)
        self._show_runs(message.runs)
        self._show_quarantine(message.quarantined)
        if first:  # settings: fill once, never overwrite what the user is typing
            self.query_one("#email", Input).value = d.email or ""
            self.query_one("#language", Select).value = d.language or "nl"
            self.query_one("#nightly", Checkbox).value = bool(d.nightly)

    def _show_figures(self, dash: dict | None) -> None:
        self.figures = dash
        table = Table.grid(padding=(0, 2))
        table.add_column()
        table.add_column(justify="right")
        if dash is None:
            self.query_one("#figures", Static).update(_("no figures"))
            return
        table.add_row(Text(_("fiscal year"), style="dim"), dash.get("fiscal_year") or "-")
        table.add_row(Text(_("currency"), style="dim"), dash.get("currency") or "-")
        for key, label in FIGURES:
            style = "bold" if key == "result" else ""
            table.add_row(_(label), Text(money(dash.get(key)), style=style))
        self.query_one("#figures", Static).update(table)
        monthly = dash.get("monthly_revenue") or []
        data = [float(m["revenue"] or 0) for m in monthly]
        self.query_one("#revenue-sparkline", Sparkline).data = data
        span = (f"{monthly[0]['period']} … {monthly[-1]['period']}" if monthly
                else _("no revenue"))
        self.query_one("#sparkline-range", Static).update(span)

    def _show_runs(self, runs: list[dict]) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        for run in runs:
            ok = run["status"] == "succeeded"
            note = run["error"] or "; ".join(run["warnings"])
            table.add_row(self.app.when(run["started_at"]), _(run["kind"]),
                          Text(_(run["status"]), style="green" if ok else "bold red"),
                          *(i18n.count(run[k] or 0) for k in ("read", "inserted", "updated",
                                                         "deleted", "quarantined")),
                          Text(note, style="red" if run["error"] else "yellow"),
                          key=run["run_id"])
        self._runs = {r["run_id"]: r for r in runs}
        if not runs:
            self.query_one("#run-detail", Static).update(_("no sync runs yet"))

    def _show_quarantine(self, rows: list[dict]) -> None:
        table = self.query_one("#quarantine", DataTable)
        table.clear()
        for row in rows:
            table.add_row(row["stream"], str(row["key"]), row["reason"], row["detail"] or "")
        table.display = bool(rows)
        self.query_one("#quarantine-none").display = not rows

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "runs" or event.row_key is None:
            return
        run = getattr(self, "_runs", {}).get(event.row_key.value)
        if run:
            text = Text.assemble((self.app.run_label(run["run_id"]), "dim"), " ",
                                 (run["error"] or "", "red"),
                                 (" ".join(run["warnings"]), "yellow"))
            self.query_one("#run-detail", Static).update(text)

    # --- live state from the app: its signals (subscribed in on_mount) ------------------
    def progress_read(self, progress: dict[str, dict]) -> None:
        if not self.query(SyncProgress):  # taken down as the app closes
            return
        syncing = self.app.is_syncing(self.code)
        self.query_one(SyncProgress).show(self.code if syncing else None,
                                          progress.get(self.code),
                                          cancelling=self.code in self.app.cancelling)

    def sync_started(self, message) -> None:
        if message.code == self.code:
            self.progress_read(self.app.progress)

    def sync_finished(self, message) -> None:
        if message.code == self.code:
            self.progress_read(self.app.progress)
            self.load()

    # --- reconcile ----------------------------------------------------------------------
    def action_reconcile(self) -> None:
        self.query_one("#reconcile", Static).update(
            Text(_("reconcile: comparing ledger and portal figures …"), style="italic"))
        self.reconcile()

    @work(thread=True, exclusive=True, group="reconcile", exit_on_error=False)
    def reconcile(self) -> None:
        from dossync.core.reconcile import reconcile

        try:
            result = reconcile(self.app.home, self.code)
        except Exception as exc:  # noqa: BLE001
            self.app.report(exc, _("reconcile {code}").format(code=self.code))
            self.post_message(ReconcileDone(self.code, None, [str(exc)]))
            return
        self.post_message(ReconcileDone(self.code, result.verdict, list(result.reasons)))

    def on_reconcile_done(self, message: ReconcileDone) -> None:
        self.verdict = message.verdict
        widget = self.query_one("#reconcile", Static)
        if message.verdict is None:
            widget.update(Text(_("reconcile failed: {reasons}").format(
                reasons="; ".join(message.reasons)), style="red"))
            return
        widget.update(Text.assemble(_("reconcile:") + " ", (message.verdict,
                                                    VERDICT_STYLE.get(message.verdict, "")),
                                    " · ", " ".join(message.reasons)))

    # --- settings -------------------------------------------------------------------------
    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Input.Submitted, "#email")
    def _email_submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        email = self.query_one("#email", Input).value.strip()
        error = self.query_one("#email-error", Static)
        if email and not valid_address(email):
            show_error(error, _("not a valid email address: {email}; nothing was saved").format(
                email=repr(email)))
            self.notify(_("{code}: {email} is not a valid email address").format(
                code=self.code, email=repr(email)), severity="error")
            return
        show_error(error, "")
        language = self.query_one("#language", Select).value
        self.save(email or None, str(language), self.query_one("#nightly", Checkbox).value)

    @work(thread=True, exclusive=True, group="settings", exit_on_error=False)
    def save(self, email: str | None, language: str, nightly: bool) -> None:
        try:
            portal.update_dossier(self.app.home.portal, self.code, email=email,
                                  language=language, nightly=nightly)
        except Exception as exc:  # noqa: BLE001
            self.app.report(exc, _("saving the settings of {code}").format(code=self.code))
            return
        self.post_message(SettingsSaved(self.code))

    def on_settings_saved(self, message: SettingsSaved) -> None:
        self.notify(_("{code}: settings saved").format(code=self.code), title=_("settings"))
        self.load()
        self.app.refresh_monitor()

    # --- actions ------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_sync(self) -> None:
        self.app.open_sync_dialog(self.code)

    def action_cancel(self) -> None:
        self.app.cancel(self.code)

    def action_reload(self) -> None:
        self.load()
