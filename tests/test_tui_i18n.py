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
            shown["monitor"] = texts(app)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DossierScreen)
                        and app.screen.dossier is not None, "the dossier")
            shown["dossier"] = texts(app)
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, SyncDialog), "the sync dialog")
            await pilot.press("down", "enter")  # full: the warning and its confirmation
            await until(pilot, lambda: app.screen.kind == "full", "a full sync chosen")
            app.screen.action_start()  # without the dossier code typed: refused, at once
            assert isinstance(app.screen, SyncDialog), "the full sync was not refused"
            shown["dialog"] = texts(app)
            await pilot.press("escape", "escape")
            await until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
            await pilot.press("j")
            await until(pilot, lambda: isinstance(app.screen, JobsScreen) and not str(
                app.screen.query_one("#jobs-title", Static).content).endswith("…"),
                "the job queue")  # read: no longer "… · reading …"
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


# What each screen shows in each language: phrases found in its texts, and in WHOLE the
# texts shown as they are (a column's label, a key's description in the footer).
EXPECTED = {
    "nl": {
        "monitor": ["monitor actieve klanten", "bijgewerkt tot", "laatste synchronisatie",
                    "dossiers getoond · gesorteerd op code", "Synchroniseren", "Postvak UIT",
                    "Taken", "filter: code, naam, pakket, toestand"],
        "dossier": ["instellingen", "synchronisatiegeschiedenis", "omzet per maand",
                    "rijen in quarantaine", "Opslaan", "nachtelijke synchronisatie", "Afstemmen",
                    "Terug", "afstemming: nog niet uitgevoerd in deze sessie"],
        "dialog": ["eenvoudig: wijzigingen sinds de laatste synchronisatie",
                   "volledig: de hele boekhouding opnieuw laden",
                   "Een volledige synchronisatie leest de hele boekhouding opnieuw",
                   "om de volledige synchronisatie te bevestigen", "Synchronisatie starten",
                   "Annuleren", "blauwe teller op 0 zetten", "JJJJ-MM (optioneel)"],
        "jobs": ["wachtrij", "'dossync worker' voert ze uit", "Taak annuleren"],
        "notes": ["de synchronisatie is niet gestart: zie de meldingen in het venster"],
    },
    "fr": {
        "monitor": ["moniteur des clients actifs", "à jour jusqu'au", "dernière synchronisation",
                    "dossiers affichés sur", "triés par code", "Synchroniser", "Boîte d'envoi",
                    "Tâches", "filtre : code, nom, logiciel, état"],
        "dossier": ["paramètres", "historique des synchronisations", "chiffre d'affaires mensuel",
                    "lignes en quarantaine", "Enregistrer", "synchronisation nocturne",
                    "Rapprocher", "Retour",
                    "rapprochement : pas encore effectué dans cette session"],
        "dialog": ["simple : changements depuis la dernière synchronisation",
                   "complète : recharger toute la comptabilité",
                   "Une synchronisation complète relit toute la comptabilité",
                   "pour confirmer la synchronisation complète", "Lancer la synchronisation",
                   "Annuler", "remettre le compteur bleu à 0", "AAAA-MM (facultatif)"],
        "jobs": ["file d'attente", "'dossync worker' les exécute", "Annuler la tâche"],
        "notes": ["la synchronisation n'a pas été lancée : voir les messages"],
    },
}
WHOLE = {
    "nl": {"monitor": ["palet"], "dossier": ["gestart", "soort"], "jobs": ["pogingen", "taak"]},
    "fr": {"monitor": ["palette"], "dossier": ["démarré", "type"], "jobs": ["essais", "tâche"]},
}


@pytest.mark.slow
@pytest.mark.parametrize("language", ["nl", "fr"])
def test_the_ui_speaks_the_language(home, language):
    shown = shown_in(language, home)
    for screen, phrases in EXPECTED[language].items():
        text = joined(shown[screen])
        for phrase in phrases:
            assert phrase in text, (screen, phrase, shown[screen])
    for screen, whole in WHOLE[language].items():
        for label in whole:
            assert label in shown[screen], (screen, label, shown[screen])
    # amounts as a Belgian firm writes them, in either language
    assert re.search(r"\b\d{1,3}(\.\d{3})+,\d\d\b", joined(shown["dossier"])), \
        "no amount written 1.234,56"
    everything = "\n".join(map(joined, shown.values()))
    for words in ("sync history", "Start sync", "job queue", "not started"):
        assert words not in everything, words
