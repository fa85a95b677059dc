"""Dutch, French and English: what is written for people follows the language asked for
(--lang, DOSSYNC_LANG, [ui] language, the locale), JSON never does, and the catalogs
hold a translation of every message the code marks."""
from __future__ import annotations

import io
import json
import re
from datetime import date
from decimal import Decimal

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from conftest import ROOT, cli, codes
from dossync.core import i18n

KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def test_amounts_and_dates_follow_the_language():
    assert i18n.amount(Decimal("1234.56"), "nl") == "1.234,56"
    assert i18n.amount(Decimal("1234.56"), "fr") == "1.234,56"  # a Belgian firm's, in French
    assert i18n.amount(Decimal("-1234567.891"), "nl") == "-1.234.567,89"
    assert i18n.amount("1234.5", "en") == "1,234.50"
    assert i18n.amount("0.125", "nl") == "0,13"  # half up, as the contract's amounts
    assert i18n.count(1234567, "fr") == "1.234.567" and i18n.count(1234, "en") == "1,234"
    assert i18n.day(date(2026, 12, 31)) == i18n.day("2026-12-31") == "31/12/2026"
    assert i18n.day(None) == ""
    try:
        i18n.activate("fr")
        assert i18n.date_text("2026-12-31T14:05") == "31/12/2026 14:05"
        i18n.activate("en")
        assert i18n.date_text("2026-12-31T14:05") == "2026-12-31 14:05"  # English keeps ISO
    finally:
        i18n.activate("en")


def test_the_language_is_chosen_in_this_order(monkeypatch):
    monkeypatch.delenv("DOSSYNC_LANG")
    env = {"LANG": "fr_BE.UTF-8"}
    assert i18n.resolve(None, "", env) == "fr"  # the locale
    assert i18n.resolve(None, "nl", env) == "nl"  # [ui] language before it
    assert i18n.resolve(None, "nl", {**env, "DOSSYNC_LANG": "en"}) == "en"  # the variable
    assert i18n.resolve("fr", "nl", {**env, "DOSSYNC_LANG": "en"}) == "fr"  # --lang first
    assert i18n.resolve(None, "", {"LANG": "de_DE.UTF-8"}) == "en"  # one dossync lacks
    assert i18n.resolve(None, "", {"LC_ALL": "nl_BE", "LANG": "fr_BE"}) == "nl"


def test_status_in_dutch_and_french_with_json_unchanged(demo_home, monkeypatch):
    dutch = cli(demo_home, "--lang", "nl", "status")
    assert dutch.returncode == 0
    assert "monitor actieve klanten" in dutch.stdout and "bijgewerkt tot" in dutch.stdout
    monkeypatch.setenv("DOSSYNC_LANG", "fr")
    french = cli(demo_home, "status")
    assert "moniteur des clients actifs" in french.stdout and "période active" in french.stdout
    english = cli(demo_home, "--lang", "en", "status")
    assert "active clients monitor" in english.stdout
    docs = {lang: json.loads(cli(demo_home, "--lang", lang, "status", "--json").stdout)
            for lang in i18n.LANGUAGES}
    assert docs["nl"] == docs["fr"] == docs["en"]


def test_the_language_from_dossync_toml_and_from_the_locale(demo_home, monkeypatch):
    monkeypatch.delenv("DOSSYNC_LANG")
    monkeypatch.setenv("LANG", "fr_BE.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    assert "moniteur des clients actifs" in cli(demo_home, "status").stdout
    (demo_home / "dossync.toml").write_text('[ui]\nlanguage = "nl"\n')
    assert "monitor actieve klanten" in cli(demo_home, "status").stdout


def test_reports_show_amounts_and_dates_as_the_language_writes_them(demo_home):
    code = codes(demo_home)[0]
    rows = json.loads(cli(demo_home, "report", code, "trial-balance", "--json").stdout)
    big = next(r for r in rows if abs(Decimal(r["debit"])) >= 1000)
    dutch = cli(demo_home, "--lang", "nl", "report", code, "trial-balance")
    assert dutch.returncode == 0 and "proef- en saldibalans" in dutch.stdout
    assert i18n.amount(big["debit"], "nl") in dutch.stdout
    assert re.search(r"\d\.\d{3},\d\d", dutch.stdout)
    english = cli(demo_home, "report", code, "trial-balance")
    assert i18n.amount(big["debit"], "en") in english.stdout
    archive = json.loads(cli(demo_home, "report", code, "archive", "--json").stdout)
    first = archive[0]["date"]
    shown = cli(demo_home, "--lang", "fr", "report", code, "archive").stdout
    assert f"{first[8:10]}/{first[5:7]}/{first[:4]}" in shown and "échéance" in shown


def test_a_language_dossync_lacks_is_refused(demo_home, monkeypatch):
    assert cli(demo_home, "--lang", "de", "status").returncode == 2
    monkeypatch.setenv("DOSSYNC_LANG", "de")
    done = cli(demo_home, "status")
    assert done.returncode == 2 and "DOSSYNC_LANG" in done.stderr


def _extracted() -> set[str]:
    found = set()
    for folder in ("core", "tui"):
        for _, _, message, _, _ in extract_from_dir(ROOT / folder, keywords=KEYWORDS):
            found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_every_marked_message_has_a_translation(language):
    """The catalogs are kept up to date (make i18n): nothing the code marks is missing or
    untranslated, and a translation keeps the message's placeholders."""
    po = ROOT / "core" / "locale" / language / "LC_MESSAGES" / "dossync.po"
    catalog = read_po(io.BytesIO(po.read_bytes()))
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(_extracted() - set(translated))
    assert not missing, f"run 'make i18n' and translate: {missing}"
    empty = sorted(k for k, v in translated.items() if not v)
    assert not empty, f"untranslated in {po}: {empty}"
    for msgid, text in translated.items():
        assert set(re.findall(r"{\w+}", msgid)) == set(re.findall(r"{\w+}", text)), msgid


def test_the_template_is_what_the_code_marks():
    template = read_po(io.BytesIO((ROOT / "core" / "locale" / "dossync.pot").read_bytes()))
    assert {m.id for m in template if m.id} == _extracted(), "run 'make i18n'"


@pytest.mark.anyio
async def test_the_monitor_speaks_dutch(home):
    from textual.widgets import DataTable

    from dossync.core.home import Home
    from dossync.tui.app import DossyncApp
    from test_tui import loaded

    i18n.activate("nl")
    try:
        app = DossyncApp(Home(home), frozen=True, refresh_seconds=0.5)
        async with app.run_test(size=(120, 30)) as pilot:
            await loaded(pilot)
            table = app.screen.query_one(DataTable)
            labels = [str(c.label) for c in table.columns.values()]
            assert any("bijgewerkt tot" in label for label in labels), labels
            assert app.screen.sub_title == "monitor actieve klanten"
    finally:
        i18n.activate("en")


@pytest.mark.slow  # a notebook run / the nightly's worker processes
def test_the_reconcile_report_speaks_the_language_asked_for(demo_home, tmp_path):
    code = codes(demo_home)[0]
    assert cli(demo_home, "ledger", code, "edit-closed-period").returncode == 0
    out = tmp_path / "rapport.html"
    done = cli(demo_home, "--lang", "nl", "reconcile", code, "--html", str(out))
    assert done.returncode == 5, done.stderr
    html = out.read_text(encoding="utf-8")
    assert f"Afstemming van {code}" in html and "Samenvatting" in html
    assert "Donkerrood: onverklaard" in html and "Waar de verschillen zitten" in html
    assert "Reconciliation of" not in html


@pytest.fixture
def own_catalogs(tmp_path, monkeypatch):
    """A locale folder of the test's own: the Dutch catalog copied, for a translator's edit."""
    folder = tmp_path / "locale" / "nl" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = folder / "dossync.po"
    po.write_bytes((ROOT / "core" / "locale" / "nl" / "LC_MESSAGES" / "dossync.po").read_bytes())
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path / "locale")
    monkeypatch.setattr(i18n, "_translations", {})
    yield po
    i18n.activate("en")


def test_a_translation_with_other_placeholders_stays_english_not_a_crash(own_catalogs, caplog):
    """A translator's typo in a field name would raise KeyError in `.format()` mid-command:
    that one message stays English, the others are Dutch, and the log says which."""
    text = own_catalogs.read_text(encoding="utf-8")
    message = 'msgid "dossier {code} added and activated"\nmsgstr "'
    assert message in text
    own_catalogs.write_text(text.replace(message, message + "dossier {kode} toegevoegd; ", 1),
                            encoding="utf-8")
    with caplog.at_level("WARNING", logger="dossync.core.i18n"):
        i18n.activate("nl")
    said = i18n._("dossier {code} added and activated").format(code="PEETERS")
    assert said == "dossier PEETERS added and activated"
    assert i18n._("active clients monitor") == "monitor actieve klanten"
    assert "1 translation(s) with other placeholders" in caplog.text
    assert "dossier {code} added and activated" in caplog.text


def test_a_damaged_catalog_leaves_the_messages_english_and_says_so(own_catalogs, caplog):
    mo = own_catalogs.with_suffix(".mo")
    mo.write_bytes(b"\x00not a catalog at all" * 10)  # newer than the .po: it is read first
    with caplog.at_level("WARNING", logger="dossync.core.i18n"):
        assert i18n.activate("nl") == "nl"
    assert i18n._("active clients monitor") == "active clients monitor"
    assert "cannot be read" in caplog.text and "dossync.mo" in caplog.text


def test_a_damaged_catalog_does_not_stop_a_command(demo_home, tmp_path):
    """The CLI with a broken Dutch catalog: the command runs, in English, exit 0."""
    import shutil
    import subprocess
    import sys

    source = tmp_path / "src"
    shutil.copytree(ROOT / "core", source / "core", ignore=shutil.ignore_patterns("*.mo",
                                                                                  "__pycache__"))
    broken = source / "core" / "locale" / "nl" / "LC_MESSAGES" / "dossync.po"
    broken.write_bytes(b'msgid "x"\nmsgstr "unterminated\n\xff\xfe garbage')
    script = ("import sys; from pathlib import Path;"
              "import dossync.core.i18n as i;"
              f"i.LOCALE_DIR = Path({str(source / 'core' / 'locale')!r});"
              "from dossync.core.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, "--home", str(demo_home), "--lang", "nl",
                           "status"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "active clients monitor" in done.stdout
    assert "nl catalog" in done.stderr and "cannot be read" in done.stderr
    assert "Traceback" not in done.stderr
