"""The CLI's human output in Dutch and French: syncs, the job queue, reconcile, the nightly,
the dossier list, proposals and the words around an error; `--json` stays the same
document whatever the language (the core's own error texts stay English: JSON shares them)."""
from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import pytest

from conftest import cli, codes, copy_home, event, ledger_path
from dossync.core import cli as cli_module
from dossync.core import i18n

# What differs between two runs of one command on twin homes whatever the language: the
# ids of runs and jobs and every *_at time (masked), and the proposals `propose` draws at
# random (compared by what is not drawn: `drawn`). Everything else must be equal.
VOLATILE = {"run_id", "job"}


def drawn(proposal: dict) -> dict:
    """What is not random in a drawn proposal: its keys (but the note, which only a date
    drawn in a closed period gets) and its journal (sales and purchase take turns)."""
    return {"keys": sorted(set(proposal) - {"note"}), "journal": proposal["journal"]}


def masked(doc):
    if isinstance(doc, dict):
        return {k: "*" if k in VOLATILE or k.endswith("_at")
                else [drawn(p) for p in v] if k == "proposals"
                else ["*"] * len(v) if k == "delivered"  # the drawn proposals' refs
                else masked(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [masked(v) for v in doc]
    return doc


def same_json(*args: str, home: Path) -> dict:
    """`ARGS --json` in each language on one home (a command that changes nothing): the
    documents, checked identical."""
    docs = {lang: json.loads(cli(home, "--lang", lang, *args, "--json").stdout)
            for lang in i18n.LANGUAGES}
    assert docs["nl"] == docs["fr"] == docs["en"]
    return docs["en"]


def twins(home: Path, tmp_path: Path) -> dict[str, Path]:
    """A home per language, each a copy of `home` as it is now (for commands that change
    the portal: each language runs the same command on the same state)."""
    return {lang: copy_home(home, tmp_path / f"twin-{lang}") for lang in i18n.LANGUAGES}


def json_in_every_language(homes: dict[str, Path], *args: str) -> list[dict]:
    """`ARGS --json` in each language, each on its twin home: the same document but for
    what differs from run to run anyway."""
    docs = {lang: json.loads(cli(homes[lang], "--lang", lang, *args, "--json").stdout)
            for lang in i18n.LANGUAGES}
    assert masked(docs["nl"]) == masked(docs["fr"]) == masked(docs["en"]), args
    return list(docs.values())


@pytest.mark.slow
def test_a_sync_in_dutch_and_french(demo_home, tmp_path):
    code = codes(demo_home)[0]
    dutch = cli(demo_home, "--lang", "nl", "sync", code, "--until", "2026-10-31")
    assert dutch.returncode == 0, dutch.stderr
    assert f"eenvoudige synchronisatie van {code} geslaagd (run " in dutch.stdout
    assert "gelezen" in dutch.stdout and "in quarantaine 0" in dutch.stdout
    assert "bijgewerkt tot 31/10/2026, actieve periode" in dutch.stdout
    assert "e-mail overgeslagen" in dutch.stdout
    french = cli(demo_home, "--lang", "fr", "sync", code, "--full")
    assert french.returncode == 0, french.stderr
    assert f"synchronisation complète de {code} réussie (run " in french.stdout
    assert "toute la comptabilité est relue" in french.stderr
    english = cli(demo_home, "--lang", "en", "sync", code, "--until", "2026-10-31")
    assert f"simple sync of {code} succeeded (run " in english.stdout
    assert "  updated until 2026-10-31, active period" in english.stdout  # ISO, as before
    json_in_every_language(twins(demo_home, tmp_path), "sync", code, "--until", "2026-10-31")


def test_the_job_queue_in_dutch_and_french(demo_home):
    code = codes(demo_home)[0]
    queued = cli(demo_home, "--lang", "nl", "sync", code, "--queue")
    assert queued.returncode == 0, queued.stderr
    assert re.search(rf"taak J\S+ in de wachtrij: eenvoudige synchronisatie van {code} "
                     r"\('dossync worker' voert ze uit", queued.stdout)
    dutch = cli(demo_home, "--lang", "nl", "jobs")
    assert "wachtrij van taken, nieuwste eerst" in dutch.stdout
    assert "pogingen" in dutch.stdout and "in wachtrij" in dutch.stdout
    assert "eenvoudige" in dutch.stdout
    french = cli(demo_home, "--lang", "fr", "jobs")
    assert "file des tâches, les plus récentes d'abord" in french.stdout
    assert "tentatives" in french.stdout and "en file" in french.stdout
    jobs = same_json("jobs", home=demo_home)
    assert jobs[0]["status"] == "queued" and jobs[0]["kind"] == "simple"
    cancelled = cli(demo_home, "--lang", "fr", "jobs", "cancel", jobs[0]["job"])
    assert f"(synchronisation simple de {code}) annulée" in cancelled.stdout


def test_a_full_sync_scheduled_for_the_quiet_window(demo_home, monkeypatch):
    code = codes(demo_home)[0]
    (demo_home / "dossync.toml").write_text('[full_sync]\nwindow = "01:00-05:00"\n')
    monkeypatch.setenv("DOSSYNC_NOW", "2026-11-29T14:00:00")
    dutch = cli(demo_home, "--lang", "nl", "sync", code, "--full")
    assert dutch.returncode == 0, dutch.stderr
    assert f"volledige synchronisatie van {code} gepland in het rustige tijdvenster" in dutch.stdout
    assert "start om 2026-11-30 01:00" in dutch.stdout
    french = cli(demo_home, "--lang", "fr", "sync", code, "--full")
    assert "planifiée dans la plage horaire calme (01:00-05:00)" in french.stdout
    docs = [masked(json.loads(cli(demo_home, "--lang", lang, "sync", code, "--full",
                                  "--json").stdout)) for lang in i18n.LANGUAGES]
    assert docs[0] == docs[1] == docs[2] and docs[0]["status"] == "scheduled"


@pytest.mark.slow
def test_reconcile_in_dutch_and_french(demo_home):
    code = codes(demo_home)[0]
    event(demo_home, code, "edit-closed-period")
    dutch = cli(demo_home, "--lang", "nl", "reconcile", code)
    assert dutch.returncode == 5
    assert re.search(r"  opnieuw te laden periodes: \d{4}-\d\d \(boekjaar \d{4}\)", dutch.stdout)
    assert f"{code}: segmenten die verschillen" in dutch.stdout and "ONVERKLAARD" in dutch.stdout
    french = cli(demo_home, "--lang", "fr", "reconcile", code)
    assert re.search(r"  périodes à recharger : \d{4}-\d\d \(exercice \d{4}\)", french.stdout)
    assert "INEXPLIQUÉ" in french.stdout
    summary = cli(demo_home, "--lang", "nl", "reconcile", "--all")
    assert "afstemming: 2 in overeenstemming, 1 met verschillen, 0 mislukt" in summary.stdout
    summary = cli(demo_home, "--lang", "fr", "reconcile", "--all")
    assert "rapprochement : 2 concordant(s), 1 avec différences, 0 en échec" in summary.stdout
    assert "reconcile: 2 in sync, 1 with differences, 0 failed" in cli(
        demo_home, "--lang", "en", "reconcile", "--all").stdout
    same_json("reconcile", code, home=demo_home)
    same_json("reconcile", "--all", home=demo_home)


@pytest.mark.slow
def test_an_error_is_told_in_the_language_around_the_core_s_english(demo_home):
    broken = codes(demo_home)[-1]
    ledger_path(demo_home, broken).unlink()
    dutch = cli(demo_home, "--lang", "nl", "reconcile", "--all")
    assert dutch.returncode == 4
    assert re.search(rf"^{broken}: MISLUKT: \S", dutch.stderr, re.M)
    assert "afstemming: 2 in overeenstemming, 0 met verschillen, 1 mislukt" in dutch.stdout
    french = cli(demo_home, "--lang", "fr", "reconcile", "--all")
    assert re.search(rf"^{broken} : ÉCHEC : \S", french.stderr, re.M)
    english = cli(demo_home, "--lang", "en", "reconcile", "--all")
    # the core's error text itself is the same, English, in every language
    error = re.search(rf"^{broken}: FAILED: (.*)$", english.stderr, re.M).group(1)
    assert error in dutch.stderr and error in french.stderr
    docs = same_json("reconcile", "--all", home=demo_home)
    assert [d["error"] for d in docs if d["error"]] == [error]


def test_an_interrupted_command_is_told_in_the_language_json_stays_english(demo_home,
                                                                           monkeypatch):
    def interrupted(home, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "cmd_status", interrupted)
    dutch = cli(demo_home, "--lang", "nl", "status")
    assert dutch.returncode == 1
    assert "onderbroken; een lopende synchronisatie heeft niets gewijzigd" in dutch.stderr
    french = cli(demo_home, "--lang", "fr", "status", "--json")
    assert "interrompu ; une synchronisation en cours n'a rien modifié" in french.stderr
    assert json.loads(french.stdout)["error"] == "interrupted; a sync in progress changed nothing"

    def full(home, args):
        raise OSError(errno.ENOSPC, "No space left on device", str(home.root / "portal"))

    monkeypatch.setattr(cli_module, "cmd_status", full)
    dutch = cli(demo_home, "--lang", "nl", "status", "--json")
    assert "de schijf is vol; maak daar ruimte vrij" in dutch.stderr
    assert "the disk is full; free some space there" in json.loads(dutch.stdout)["error"]


def test_the_dossier_list_in_dutch_and_french(demo_home):
    dutch = cli(demo_home, "--lang", "nl", "dossier", "list").stdout
    assert all(word in dutch for word in ("naam", "pakket", "taal", "nachtelijk", "bron"))
    assert re.search(r"│ (ja|nee) ", dutch)
    french = cli(demo_home, "--lang", "fr", "dossier", "list").stdout
    assert all(word in french for word in ("nom", "logiciel", "langue", "nocturne"))
    assert re.search(r"│ (oui|non) ", french)
    assert re.search(r"│ (True|False) ", cli(demo_home, "--lang", "en", "dossier", "list").stdout)
    same_json("dossier", "list", home=demo_home)
    code = codes(demo_home)[0]
    changed = cli(demo_home, "--lang", "fr", "dossier", "set", code, "--name", "Nouveau nom")
    assert f"dossier {code} mis à jour : name=Nouveau nom" in changed.stdout


def test_proposals_in_dutch_and_french(demo_home, tmp_path):
    code = codes(demo_home)[0]
    dutch = cli(demo_home, "--lang", "nl", "propose", code, "--count", "2")
    assert dutch.returncode == 0, dutch.stderr
    assert re.search(rf"2 voorstel\(len\) verzonden naar {code}; openstaande voorstellen: \d+",
                     dutch.stdout)
    french = cli(demo_home, "--lang", "fr", "propose", code)
    assert re.search(rf"1 proposition\(s\) envoyée\(s\) à {code} ; propositions en attente : \d+",
                     french.stdout)
    # the proposals are drawn at random: the rest of the document, and what of them is not
    # drawn, compared
    docs = json_in_every_language(twins(demo_home, tmp_path), "propose", code, "--count", "2")
    assert all(len(doc["proposals"]) == len(doc["delivered"]) == 2 and doc["warnings"] == []
               for doc in docs)


@pytest.mark.slow
def test_the_nightly_in_dutch_and_french(demo_home, tmp_path):
    homes = twins(demo_home, tmp_path)
    json_in_every_language(homes, "nightly")
    dutch = cli(demo_home, "--lang", "nl", "nightly")
    assert dutch.returncode == 0, dutch.stderr
    assert re.search(r"^nachtelijke synchronisatie: \d+ geslaagd, 0 mislukt, 0 overgeslagen$",
                     dutch.stdout, re.M)
    french = cli(demo_home, "--lang", "fr", "nightly")
    assert re.search(r"^synchronisation nocturne : \d+ réussie\(s\), 0 échouée\(s\), 0 "
                     r"ignorée\(s\)$", french.stdout, re.M)
    assert "synchronisation simple de " in french.stdout
    queued = cli(demo_home, "--lang", "nl", "nightly", "--queue")
    assert re.search(r"^nachtelijke synchronisatie: \d+ taak/taken in de wachtrij "
                     r"\('dossync worker' voert ze uit\)$", queued.stdout, re.M)
    worker = cli(demo_home, "--lang", "fr", "worker", "--until-idle")
    assert worker.returncode == 0, worker.stderr
    assert re.search(r"^tâche J\S+ : synchronisation simple de \S+ réussie \(run ",
                     worker.stdout, re.M)
    assert re.search(r"^worker \S+ : \d+ tâche\(s\) exécutée\(s\), \d+ réussie\(s\), 0 "
                     r"échouée\(s\)$", worker.stdout, re.M)
