"""The Sync Dossier dialog: kind and manual options of one sync.

Returns a `SyncRequest` (or None when dismissed); the app starts it as a
detached process. The updated-until date defaults to the end of the last
closed period, read from the portal in a worker when the dialog opens. A
full sync reloads the whole ledger from the office server, so it asks for
the dossier's code to be typed first; outside `[full_sync] window` it
offers to schedule it for the window (the default, as `dossync sync --full`
does) or to run it now (`--now`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from dossync.core import portal, window
from dossync.core.i18n import _
from dossync.core.model import ManualOptions
from dossync.tui.screens.dossier import show_error


@dataclass(frozen=True)
class SyncRequest:
    """What to start. `schedule`: queue the full sync for the quiet window instead of
    running it (as `dossync sync --full` outside the window); `now`: the dialog's clock."""

    kind: str
    options: ManualOptions
    schedule: bool = False
    now: datetime | None = None


def default_until(periods: list[dict]) -> str | None:
    """End of the last closed period (the books are complete up to there)."""
    closed = [p for p in periods if p["closed"] and p["end_date"]]
    return closed[-1]["end_date"] if closed else None


def end_of_month_before(period: str) -> str:
    """The last day before a period (YYYY-MM) starts: what a new active period closes."""
    first = date.fromisoformat(period + "-01")
    return date.fromordinal(first.toordinal() - 1).isoformat()


def _valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _valid_period(text: str) -> bool:
    if len(text) != 7 or text[4] != "-":
        return False
    try:
        date.fromisoformat(text + "-01")
    except ValueError:
        return False
    return True


class SyncDialog(ModalScreen[SyncRequest | None]):
    """Simple, full or repair; updated-until, reset counter, email, new period."""

    BINDINGS = [
        Binding("escape", "dismiss_dialog", _("Close")),
        Binding("ctrl+enter", "start", _("Start"), show=False),
    ]

    def __init__(self, code: str, now: datetime | None = None) -> None:
        super().__init__()
        self.code = code
        self.now = now or window.current_time()
        self._window_start: datetime | None = None  # outside the window: when it opens
        self._default_loaded = False
        self._auto_until: str | None = None
        self._closed_until: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="sync-dialog"):
            yield Static(_("Sync dossier {code}").format(code=f"[b]{self.code}[/b]"),
                         id="sync-title")
            with RadioSet(id="kind", compact=True):
                yield RadioButton(_("simple: changes since the last sync"), value=True,
                                  id="simple")
                yield RadioButton(_("full: reload the whole ledger"), id="full")
                yield RadioButton(_("repair: reload what reconcile flags"), id="repair")
            with Horizontal(classes="field"):
                yield Label(_("updated until"), classes="field-label")
                yield Input(placeholder=_("YYYY-MM-DD (empty: unchanged)"), id="until",
                            compact=True)
            yield Static(id="until-error", classes="error")
            yield Checkbox(_("reset the blue counter to 0"), id="reset", compact=True)
            yield Checkbox(_("email the client that the books were updated"), id="notify",
                           compact=True)
            with Horizontal(classes="field"):
                yield Label(_("new active period"), classes="field-label")
                yield Input(placeholder=_("YYYY-MM (optional)"), id="period", compact=True)
            yield Static(id="period-error", classes="error")
            with Vertical(id="full-confirm"):
                yield Static("⚠ " + _("A full sync reads the whole ledger again: heavy for the "
                                      "office server and the network. Type the dossier code "
                                      "to confirm."),
                             id="full-warning")
                with Horizontal(classes="field"):
                    yield Label(_("dossier code"), classes="field-label")
                    yield Input(placeholder=self.code, id="confirm", compact=True)
                yield Static(id="confirm-error", classes="error")
                with Vertical(id="full-when"):
                    yield Static(id="window-note")
                    with RadioSet(id="when", compact=True):
                        yield RadioButton(_("schedule it for the quiet window"), value=True,
                                          id="schedule")
                        yield RadioButton(_("run it now (--now)"), id="now")
            with Horizontal(id="sync-buttons"):
                yield Button(_("Start sync"), id="start", variant="primary", compact=True)
                yield Button(_("Cancel"), id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#full-confirm").display = False
        self.query_one("#full-when").display = False
        for error in self.query(".error"):
            error.display = False
        self.query_one("#kind", RadioSet).focus()
        self.load_default()

    @work(thread=True, exclusive=True, group="sync-dialog", exit_on_error=False)
    def load_default(self) -> None:
        try:
            until = default_until(portal.periods(self.app.home.portal, self.code))
        except Exception as exc:  # noqa: BLE001 - a missing default is no reason to fail
            self.app.report(exc, _("reading the periods of {code}").format(code=self.code))
            return
        try:
            opens = window.waits_until(self.app.home, "full", self.now)
            quiet = window.quiet_window(self.app.home) if opens else None
        except Exception as exc:  # noqa: BLE001 - a bad dossync.toml: said, full runs now
            self.app.report(exc, _("reading [full_sync] window"))
            opens = quiet = None
        if opens is not None:
            self.app.call_from_thread(self._set_window, opens, str(quiet))
        self.app.call_from_thread(self._set_default, until)

    def _set_window(self, opens: datetime, quiet: str) -> None:
        """Outside the quiet window: a full sync is scheduled for it unless run now."""
        self._window_start = opens
        self.query_one("#window-note", Static).update(
            _("Outside the quiet window ({quiet}): scheduled, it runs at {at}.").format(
                quiet=quiet, at=f"{opens:%Y-%m-%d %H:%M}"))
        self._kind_changed()

    def _set_default(self, until: str | None) -> None:
        self._closed_until = until
        box = self.query_one("#until", Input)
        if until and not box.value:
            box.value = self._auto_until = until
        self._default_loaded = True

    @on(Input.Changed, "#period")
    def _period_changed(self, event: Input.Changed) -> None:
        # A new active period closes every earlier one: the default date follows it,
        # unless the user typed a date of their own.
        box = self.query_one("#until", Input)
        if box.value and box.value != self._auto_until:
            return
        period = event.value.strip()
        auto = end_of_month_before(period) if _valid_period(period) else self._closed_until
        if auto:
            box.value = self._auto_until = auto

    @property
    def kind(self) -> str:
        pressed = self.query_one("#kind", RadioSet).pressed_button
        return pressed.id if pressed is not None and pressed.id else "simple"

    @property
    def schedule(self) -> bool:
        """Whether a full sync asked now waits for the quiet window (the default there)."""
        if self.kind != "full" or self._window_start is None:
            return False
        pressed = self.query_one("#when", RadioSet).pressed_button
        return pressed is None or pressed.id != "now"

    @on(RadioSet.Changed, "#kind")
    def _kind_changed(self) -> None:
        self.query_one("#full-confirm").display = self.kind == "full"
        self.query_one("#full-when").display = (self.kind == "full"
                                                and self._window_start is not None)

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)

    def validate(self) -> SyncRequest | None:
        """The request, or None with the reasons shown under the fields."""
        until = self.query_one("#until", Input).value.strip()
        period = self.query_one("#period", Input).value.strip()
        confirm = self.query_one("#confirm", Input).value.strip()
        errors = {
            "until-error": "" if not until or _valid_date(until)
            else _("not a date: write it as YYYY-MM-DD, e.g. 2026-09-30"),
            "period-error": "" if not period or _valid_period(period)
            else _("not a period: write it as YYYY-MM, e.g. 2026-11"),
            "confirm-error": "" if self.kind != "full" or confirm.upper() == self.code
            else _("type {code} to confirm the full sync").format(code=self.code),
        }
        for widget_id, text in errors.items():
            show_error(self.query_one(f"#{widget_id}", Static), text)
        if any(errors.values()):
            return None
        return SyncRequest(self.kind, ManualOptions(
            until=until or None,
            reset_counter=self.query_one("#reset", Checkbox).value,
            notify=self.query_one("#notify", Checkbox).value,
            new_period=period or None), schedule=self.schedule, now=self.now)

    def action_start(self) -> None:
        request = self.validate()
        if request is None:
            self.notify(_("the sync was not started: see the messages in the dialog"),
                        severity="warning")
            return
        self.dismiss(request)
