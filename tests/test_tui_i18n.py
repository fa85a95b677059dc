"""The terminal UI speaks Dutch and French: every screen, its keys and its notifications.

The UI's modules bake their key bindings' descriptions in when they are imported
(as the CLI activates the language before it imports the tui package), so each
language runs the UI in a process of its own: the script below activates the
language, then imports and drives the app with Textual's Pilot through the
monitor, a dossier, the sync dialog (a full sync started without its
confirmation: the warning and a notification) and the job queue, and prints
what each screen shows as JSON.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import asyncio, json, sys, time
    from pathlib import Path

    from dossync.core import i18n

    i18n.activate(sys.argv[2])

    import io

    from rich.console import Console
    from rich.table import Table
    from textual.widgets import (Button, DataTable, Input, Label, RadioButton, Checkbox,
                                 Static)

    from dossync.core.home import Home
    from dossync.tui.app import DossyncApp
    from dossync.tui.screens.dossier import DossierScreen
    from dossync.tui.screens.jobs import JobsScreen
    from dossync.tui.screens.monitor import MonitorScreen
    from dossync.tui.screens.sync_dialog import SyncDialog


    class Recording(DossyncApp):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.notes = []

        def notify(self, message, *, title="", **kwargs):
            self.notes.append(f"{title} | {message}")
            super().notify(message, title=title, **kwargs)


    def texts(app):
        """What the screen shows: its sub-title, labels, placeholders, columns, keys."""
        screen, found = app.screen, [app.screen.sub_title or app.sub_title]
        for widget in screen.query("*"):
            if isinstance(widget, (Checkbox, RadioButton)):
                found.append(str(widget.label))
            elif isinstance(widget, Button):
                found.append(str(widget.label))
            elif isinstance(widget, (Static, Label)):
                if isinstance(widget.content, Table):  # the figures: as they are drawn
                    console = Console(width=200, record=True, file=io.StringIO())
                    console.print(widget.content)
                    found.append(console.export_text())
                else:
                    found.append(str(widget.content))
            elif isinstance(widget, Input):
                found.append(widget.placeholder)
            elif isinstance(widget, DataTable):
                found.extend(str(c.label) for c in widget.columns.values())
        found.extend(b.binding.description for b in app.active_bindings.values())
        return [t for t in found if t]


    async def until(pilot, condition, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}: {pilot.app.notes}")
            await pilot.pause(0.05)


    async def main():
        app = Recording(Home(Path(sys.argv[1])), frozen=True, refresh_seconds=0.5)
        shown = {}
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.loaded and isinstance(app.screen, MonitorScreen)
                        and app.screen.query_one("#monitor", DataTable).row_count > 0,
                        "the monitor")
            await pilot.pause(0.1)
            shown["monitor"] = texts(app)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DossierScreen)
                        and app.screen.dossier is not None, "the dossier")
            shown["dossier"] = texts(app)
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, SyncDialog), "the sync dialog")
            await pilot.press("down", "enter")  # full: the warning and its confirmation
            await until(pilot, lambda: app.screen.kind == "full", "a full sync chosen")
            app.screen.action_start()  # without the dossier code typed: refused
            await pilot.pause(0.1)
            assert isinstance(app.screen, SyncDialog), "the full sync was not refused"
            shown["dialog"] = texts(app)
            await pilot.press("escape", "escape")
            await until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
            await pilot.press("j")
            await until(pilot, lambda: isinstance(app.screen, JobsScreen) and not str(
                app.screen.query_one("#jobs-title", Static).content).endswith("…"),
                "the job queue")  # read: no longer "… · reading …"
            await pilot.pause(0.2)
            shown["jobs"] = texts(app)
            shown["notes"] = list(app.notes)
        print(json.dumps(shown))


    asyncio.run(main())
''')


def shown_in(language: str, home: Path) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(home), language],
                          env={**os.environ, "DOSSYNC_LANG": language},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def joined(texts: list[str]) -> str:
    return "\n".join(texts)


@pytest.mark.slow
def test_the_ui_speaks_dutch(home):
    shown = shown_in("nl", home)
    monitor = joined(shown["monitor"])
    assert "monitor actieve klanten" in monitor
    assert "bijgewerkt tot" in monitor and "laatste synchronisatie" in monitor
    assert "dossiers getoond · gesorteerd op code" in monitor
    assert "Synchroniseren" in monitor and "Postvak UIT" in monitor and "Taken" in monitor
    assert "filter: code, naam, pakket, toestand" in monitor
    assert "palet" in shown["monitor"]  # the command palette's key in the footer

    dossier = joined(shown["dossier"])
    assert "instellingen" in dossier and "synchronisatiegeschiedenis" in dossier
    assert "omzet per maand" in dossier and "rijen in quarantaine" in dossier
    assert "Opslaan" in dossier and "nachtelijke synchronisatie" in dossier
    assert "Afstemmen" in dossier and "Terug" in dossier
    assert "gestart" in shown["dossier"] and "soort" in shown["dossier"]
    assert "afstemming: nog niet uitgevoerd in deze sessie" in dossier
    assert re.search(r"\b\d{1,3}(\.\d{3})+,\d\d\b", dossier), "no amount written 1.234,56"

    dialog = joined(shown["dialog"])
    assert "eenvoudig: wijzigingen sinds de laatste synchronisatie" in dialog
    assert "volledig: de hele boekhouding opnieuw laden" in dialog
    assert "Een volledige synchronisatie leest de hele boekhouding opnieuw" in dialog
    assert "om de volledige synchronisatie te bevestigen" in dialog
    assert "Synchronisatie starten" in dialog and "Annuleren" in dialog
    assert "blauwe teller op 0 zetten" in dialog and "JJJJ-MM (optioneel)" in dialog

    jobs = joined(shown["jobs"])
    assert "wachtrij" in jobs and "'dossync worker' voert ze uit" in jobs
    assert "pogingen" in shown["jobs"] and "taak" in shown["jobs"]
    assert "Taak annuleren" in jobs

    notes = joined(shown["notes"])
    assert "de synchronisatie is niet gestart: zie de meldingen in het venster" in notes
    for words in ("sync history", "Start sync", "job queue", "not started"):
        assert words not in "\n".join(map(joined, shown.values())), words


@pytest.mark.slow
def test_the_ui_speaks_french(home):
    shown = shown_in("fr", home)
    monitor = joined(shown["monitor"])
    assert "moniteur des clients actifs" in monitor
    assert "à jour jusqu'au" in monitor and "dernière synchronisation" in monitor
    assert "dossiers affichés sur" in monitor and "triés par code" in monitor
    assert "Synchroniser" in monitor and "Boîte d'envoi" in monitor and "Tâches" in monitor

    dossier = joined(shown["dossier"])
    assert "paramètres" in dossier and "historique des synchronisations" in dossier
    assert "chiffre d'affaires mensuel" in dossier and "lignes en quarantaine" in dossier
    assert re.search(r"\b\d{1,3}(\.\d{3})+,\d\d\b", dossier), "no amount written 1.234,56"
    assert "Enregistrer" in dossier and "Rapprocher" in dossier and "Retour" in dossier

    dialog = joined(shown["dialog"])
    assert "simple : changements depuis la dernière synchronisation" in dialog
    assert "complète : recharger toute la comptabilité" in dialog
    assert "Une synchronisation complète relit toute la comptabilité" in dialog
    assert "pour confirmer la synchronisation complète" in dialog
    assert "Lancer la synchronisation" in dialog and "remettre le compteur bleu à 0" in dialog

    jobs = joined(shown["jobs"])
    assert "file d'attente" in jobs and "'dossync worker' les exécute" in jobs
    assert "essais" in shown["jobs"] and "Annuler la tâche" in jobs

    notes = joined(shown["notes"])
    assert "la synchronisation n'a pas été lancée" in notes
    for words in ("sync history", "Start sync", "job queue", "not started"):
        assert words not in "\n".join(map(joined, shown.values())), words
