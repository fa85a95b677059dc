"""The keys, on `?`: everything the UI does is reachable from the keyboard."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from dossync.core.i18n import N_, _

HELP = N_("""\
# dossync: keys

| where | key | what |
|---|---|---|
| everywhere | `?` | this help |
| | `ctrl+p` | command palette: open dossier X, sync X, outbox, run log |
| | `e` / `l` | outbox (client emails) / run log (syncs of every dossier) |
| | `j` | job queue (syncs queued for `dossync worker`) |
| | `q` | quit (running syncs go on: they are separate processes) |
| monitor | `/` | filter as you type; `enter` opens the only match, `escape` clears |
| | `↑` `↓` `enter` | choose a dossier and open it |
| | `s` | sync the highlighted dossier (simple, full or repair, with options) |
| | `c` | cancel its running sync: nothing is changed |
| | `o` | sort by the next column (or click a column header) |
| | `r` | refresh now (it refreshes by itself every few seconds) |
| dossier | `s` / `c` | sync / cancel the sync of this dossier |
| | `r` | reconcile: compare ledger and portal figures, show the verdict |
| | `tab` | move to the settings; `Save` (or `enter` in the email) stores them |
| | `escape` | back to the monitor |
| sync dialog | `tab` `space` | choose kind and options; `enter` starts, `escape` closes |
| outbox | `f` | retry delivery of queued and failed emails |
| run log | `enter` | open the run's dossier |
| job queue | `c` | cancel the highlighted job while it is queued |

States: **✓ ok**, **! action** required (a full sync is needed, or rows were
quarantined), **✗ failed** (the last sync failed: its message is shown under
the table), **syncing**. The blue number is the counter of booking proposals
sent but not yet confirmed.
""")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", _("Close"))]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(_(HELP))

    def action_close(self) -> None:
        self.dismiss(None)
