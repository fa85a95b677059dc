"""The active clients monitor: the start screen, one row per dossier.

The rows come from `core.monitor.monitor_rows` (one portal query), read by
the app every few seconds in a thread worker. Filtering and sorting work on
that in-memory list; the table is rebuilt only when the visible set or its
order changes, otherwise just the cells that changed are updated.
"""
from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from dossync.core import i18n
from dossync.core.i18n import N_, _
from dossync.tui.widgets.progress import SyncProgress

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
FIRST_CHUNK = 100  # rows in the table before the first paint (more than a screenful)
CHUNK = 500

# (key, label, sort key); the order on screen: what the engineer scans first.
COLUMNS: list[tuple[str, str]] = [
    ("code", N_("code")), ("state", N_("state")), ("pending", N_("blue")), ("until", N_("updated until")),
    ("period", N_("period")), ("last", N_("last sync")), ("idle", N_("idle")), ("nightly", N_("nightly")),
    ("package", N_("package")), ("name", N_("name")), ("reason", N_("message")),
]
STATE_ORDER = {"failed": 0, "action_required": 1, "syncing": 2, "ok": 3}
# (sign, word, style): the word is translated where it is shown (`_state_label`).
STATE_STYLE = {"failed": ("✗", N_("failed"), "bold red"),
               "action_required": ("!", N_("action"), "bold yellow"),
               "ok": ("✓", N_("ok"), "green"), "syncing": ("", N_("syncing"), "bold cyan")}


def _state_label(state: str) -> tuple[str, str]:
    """A state as the monitor shows it, in the active language: ("✗ failed", style)."""
    if state not in STATE_STYLE:
        return state, ""
    sign, word, style = STATE_STYLE[state]
    return (f"{sign} {_(word)}" if sign else _(word)), style


def _state_width() -> int:
    """Room for the widest state label (a spinner before `syncing`) in the active language."""
    return max([cell_len("⠋ " + _("syncing"))]
               + [cell_len(_state_label(state)[0]) for state in STATE_STYLE])


def sort_key(column: str, row: dict):
    last = row["last_sync"] or {}
    return {
        "code": row["code"],
        "state": (STATE_ORDER.get(row["state"], 9), row["code"]),
        "pending": (-(row["pending_proposals"] or 0), row["code"]),
        "until": (row["updated_until"] or "", row["code"]),
        "period": (row["active_period"] or "", row["code"]),
        "last": (last.get("finished_at") or "", row["code"]),
        # days since the last successful sync; never synced sorts as the longest idle
        "idle": (float("inf") if row.get("idle_days") is None else row["idle_days"], row["code"]),
        "nightly": (not row["nightly"], row["code"]),
        "package": (row["package"], row["code"]),
        "name": (row["name"].lower(), row["code"]),
        "reason": (row["reason"] or "", row["code"]),
    }[column]


def matches(row: dict, needle: str) -> bool:
    if not needle:
        return True
    hay = " ".join(str(v) for v in (row["code"], row["name"], row["package"], row["state"],
                                     row["reason"] or "", "nightly" if row["nightly"] else ""))
    return all(word in hay.lower() for word in needle.lower().split())


class MonitorScreen(Screen):
    """Every dossier at a glance; Enter opens one, s syncs the highlighted one."""

    BINDINGS = [
        Binding("enter", "open", _("Open"), show=True, priority=False),
        Binding("s", "sync", _("Sync")),
        Binding("c", "cancel", _("Cancel sync")),
        Binding("o", "sort", _("Sort")),
        Binding("slash", "filter", _("Filter"), key_display="/"),
        Binding("r", "reload", _("Refresh")),
        Binding("escape", "clear_filter", _("Clear filter"), show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_column = "code"
        self.sort_reverse = False
        self.shown: list[str] = []  # codes, in table order
        self.filled = 0  # how many of them are in the table yet (see _fill)
        self.cells: dict[str, tuple] = {}
        self.widths: dict[str, int] = {}  # each column's width, measured here (see _widths)
        self.by_code: dict[str, dict] = {}
        self._spin = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ " + _("filter: code, name, package, state …"), id="filter",
                    compact=True)
        yield DataTable(id="monitor", cursor_type="row", zebra_stripes=False)
        yield Static(id="detail")
        yield SyncProgress(id="progress")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = _("active clients monitor")
        self.table.focus()
        self._build_columns()
        app = self.app
        app.subscribe(app.monitor_signal, self, self.monitor_loaded)
        app.subscribe(app.progress_signal, self, self.progress_read)
        app.subscribe(app.sync_started_signal, self, self.sync_started)
        app.subscribe(app.sync_finished_signal, self, self.sync_finished)
        if app.loaded:
            self.monitor_loaded(app.rows)
        self.set_interval(0.25, self._animate)

    @property
    def table(self) -> DataTable:
        return self.query_one("#monitor", DataTable)

    # --- data in: the app's signals (subscribed in on_mount) --------------------------
    # A broadcast may reach this screen as the app closes and takes it down: then
    # there is no table to show it in, and it only keeps the rows.
    def _ready(self) -> bool:
        return bool(self.query("#monitor"))

    def monitor_loaded(self, rows: list[dict]) -> None:
        self.by_code = {r["code"]: r for r in rows}
        if self._ready():
            self._render_view()

    def progress_read(self, progress: dict[str, dict]) -> None:
        if self._ready():
            self._show_progress()

    def sync_started(self, message) -> None:
        if self._ready():
            self._render_view()

    def sync_finished(self, message) -> None:
        if self._ready():
            self._render_view()

    # --- rendering ------------------------------------------------------------------
    def _state(self, row: dict) -> str:
        return "syncing" if self.app.is_syncing(row["code"]) else row["state"]

    def _cells(self, row: dict) -> tuple:
        state = self._state(row)
        label, style = _state_label(state)
        if state == "syncing":
            label = f"{SPINNER[self._spin % len(SPINNER)]} {_('syncing')}"
        last = row["last_sync"]
        if last:
            ok = last["status"] == "succeeded"
            last_text = Text.assemble(_(last["kind"]) + " ", (_("ok") if ok else _("failed"),
                                                               "green" if ok else "red"),
                                      f" {self.app.when(last['finished_at'])}")
        else:
            last_text = Text(_("never"), style="dim")
        reason = row["reason"] or ""
        return (
            Text(row["code"], style="bold"),
            Text(label, style=style),
            Text(str(row["pending_proposals"] or 0), style="bold blue", justify="right"),
            i18n.date_text(row["updated_until"]) or "-",
            row["active_period"] or "-",
            last_text,
            Text("-" if row.get("idle_days") is None else str(row["idle_days"]), justify="right"),
            Text(_("on"), style="green") if row["nightly"] else Text(_("off"), style="dim"),
            row["package"],
            row["name"],
            Text(reason, style="red" if state == "failed" else "yellow"),
        )

    def _label(self, key: str, label: str) -> str:
        label = _(label)  # in the language the UI speaks (core/i18n.py)
        if key == self.sort_column:
            return f"{label} {'▼' if self.sort_reverse else '▲'}"
        return label

    def _widths(self, cells: dict[str, tuple]) -> dict[str, int]:
        """The width each column needs for these rows, measured now.

        DataTable's own auto width is measured later, when the table is idle;
        a table filled as it starts can be painted (and stay) at its labels'
        widths, cutting every code to six letters. So the monitor measures its
        cells itself and gives each column its width. The state column has
        room for its widest label from the start: a spinner appearing
        mid-sync must not wait for a re-measure to show.
        """
        widths = {key: cell_len(self._label(key, label)) for key, label in COLUMNS}
        widths["state"] = max(widths["state"], _state_width())
        for row in cells.values():
            for (key, _column), cell in zip(COLUMNS, row):
                width = cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))
                if width > widths[key]:
                    widths[key] = width
        return widths

    def _build_columns(self, widths: dict[str, int] | None = None) -> None:
        table = self.table
        table.clear(columns=True)
        self.widths = widths or self._widths({})
        for key, label in COLUMNS:
            table.add_column(self._label(key, label), key=key, width=self.widths[key])
        self.shown, self.cells, self.filled = [], {}, 0

    def _wanted(self) -> list[str]:
        needle = self.query_one("#filter", Input).value.strip()
        rows = [r for r in self.by_code.values() if matches(r, needle)]
        rows.sort(key=lambda r: sort_key(self.sort_column, r), reverse=self.sort_reverse)
        return [r["code"] for r in rows]

    def _render_view(self) -> None:
        table = self.table
        wanted = self._wanted()
        cells = {code: self._cells(self.by_code[code]) for code in wanted}
        widths = self._widths(cells)
        if wanted != self.shown or any(widths[k] > self.widths.get(k, 0) for k in widths):
            # A new set or order of rows, or a cell wider than its column:
            # the table is rebuilt, its columns as wide as these rows need.
            current = self.highlighted
            self._build_columns(widths)
            self.shown, self.cells, self.filled = wanted, cells, 0
            self._fill(current)
        else:
            for code in wanted[:self.filled]:
                old = self.cells.get(code)
                for (key, _column), new_cell, old_cell in zip(COLUMNS, cells[code], old or ()):
                    if new_cell != old_cell:
                        table.update_cell(code, key, new_cell)
            self.cells = cells
        self._show_detail()
        self._show_progress()

    def _fill(self, keep: str | None = None) -> None:
        """Add the next chunk of rows; the first chunk fills the screen at once.

        DataTable measures every new cell before its next paint, so 2,000
        dossiers go in chunk by chunk after each paint: the monitor shows
        its first screenful without waiting for the last row.
        """
        table, start = self.table, self.filled
        chunk = self.shown[start:start + (FIRST_CHUNK if start == 0 else CHUNK)]
        # Keyed by dossier code (DataTable.add_rows is this same loop, without keys).
        for code in chunk:
            table.add_row(*self.cells[code], key=code)
        self.filled = start + len(chunk)
        if keep in self.shown[:self.filled]:
            table.move_cursor(row=self.shown.index(keep), animate=False)
        if self.filled < len(self.shown):
            shown = self.shown
            self.call_after_refresh(lambda: self.shown is shown and self._fill(keep))

    def _animate(self) -> None:
        syncing = [c for c in self.shown[:self.filled] if self.app.is_syncing(c)]
        if not syncing:
            return
        self._spin += 1
        for code in syncing:
            cells = self._cells(self.by_code[code])
            self.table.update_cell(code, "state", cells[1])
            self.cells[code] = cells

    @property
    def highlighted(self) -> str | None:
        table = self.table
        if not self.shown or table.cursor_row is None or table.cursor_row >= len(self.shown):
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - an empty table has no cursor cell
            return None

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        code = self.highlighted
        row = self.by_code.get(code) if code else None
        if not self.by_code:
            detail.update(_("reading the portal …") if not self.app.loaded
                          else _("no dossiers yet"))
            return
        if row is None:
            detail.update(Text(_("no dossier matches the filter ({n} in all)").format(
                n=len(self.by_code)), style="dim"))
            return
        state = self._state(row)
        text = Text.assemble((row["code"], "bold"), f" {row['name']} · ")
        if row["reason"] and state in ("failed", "action_required"):
            text.append(_("{what}: {text}").format(what=_(state.replace("_", " ")),
                                                   text=row["reason"]),
                        style="bold red" if state == "failed" else "bold yellow")
        else:
            text.append(_("{shown} of {total} dossiers shown · sorted by {column}").format(
                shown=len(self.shown), total=len(self.by_code),
                column=_(dict(COLUMNS)[self.sort_column])), style="dim")
        detail.update(text)

    def _show_progress(self) -> None:
        panel = self.query_one(SyncProgress)
        code = self.highlighted
        if code is None or not self.app.is_syncing(code):
            running = [c for c in self.shown if self.app.is_syncing(c)]
            code = running[0] if running else None
        panel.show(code, self.app.progress.get(code) if code else None,
                   cancelling=code in self.app.cancelling if code else False)

    # --- events -----------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()
        self._show_progress()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_dossier(event.row_key.value)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = key, False
        self._resort()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._render_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if len(self.shown) == 1:
            self.app.open_dossier(self.shown[0])
        self.table.focus()

    # --- actions ------------------------------------------------------------------------
    def _resort(self) -> None:
        self._build_columns()
        self._render_view()

    def action_sort(self) -> None:
        keys = [k for k, _column in COLUMNS]
        self.sort_column = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self.sort_reverse = False
        self._resort()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        self.table.focus()

    def action_open(self) -> None:
        if self.highlighted:
            self.app.open_dossier(self.highlighted)

    def action_sync(self) -> None:
        if self.highlighted:
            self.app.open_sync_dialog(self.highlighted)

    def action_cancel(self) -> None:
        code = self.highlighted
        if code and not self.app.is_syncing(code):
            running = [c for c in self.shown if self.app.is_syncing(c)]
            code = running[0] if len(running) == 1 else code
        if code:
            self.app.cancel(code)

    def action_reload(self) -> None:
        self.app.refresh_monitor()
