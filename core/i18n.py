"""What dossync says to people, in their language: Dutch, French or English.

Messages are marked with `_()` (gettext) in English, the source language;
the catalogs are `core/locale/LANG/LC_MESSAGES/dossync.po`, kept with Babel's
standard tooling (`make i18n`: `pybabel extract` into `core/locale/dossync.pot`,
`pybabel update` of every `.po`, `pybabel compile`), so translators work on
`.po` files. A catalog is compiled when it is first needed: from the `.mo`
file the build made when it is there and current, else from the `.po` in
memory (Babel's own compiler), so a checkout works as it is.

The language: `--lang`, else DOSSYNC_LANG, else `[ui] language` in
dossync.toml, else the locale (LC_ALL, LC_MESSAGES, LANG), else English.
JSON output stays language-neutral: only what is written for people is
translated. Dates and amounts follow the language with Babel: Belgian
`1.234,56` and `31/12/2026` in Dutch and French, `1,234.56` and
`31/12/2026` in English.
"""
from __future__ import annotations

import gettext
import io
import logging
import os
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from dossync.core.model import LANGUAGES

DOMAIN = "dossync"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANG_ENV = "DOSSYNC_LANG"
DEFAULT = "en"
# Babel locales whose conventions each language's dates and amounts follow: a Belgian
# firm's, in Dutch and in French alike (1.234,56), and British English (1,234.56).
_NUMBERS = {"nl": "nl_BE", "fr": "nl_BE", "en": "en_GB"}
_DATES = {"nl": "nl_BE", "fr": "fr_BE", "en": "en_GB"}

log = logging.getLogger(__name__)
_translations: dict[str, gettext.NullTranslations] = {}
_active: gettext.NullTranslations = gettext.NullTranslations()
_language = DEFAULT


def language_from_locale(environ: dict | None = None) -> str | None:
    """The language of the process's locale (LC_ALL, LC_MESSAGES, LANG), if dossync has it."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            code = value.split(".")[0].split("_")[0].lower()
            return code if code in LANGUAGES else None
    return None


def resolve(option: str | None, configured: str = "", environ: dict | None = None) -> str:
    """The language to speak: --lang, DOSSYNC_LANG, [ui] language, the locale, English."""
    environ = os.environ if environ is None else environ
    for candidate in (option, environ.get(LANG_ENV), configured):
        if candidate:
            return candidate
    return language_from_locale(environ) or DEFAULT


def problem(language: str) -> str | None:
    """What is wrong with a language asked for (--lang, DOSSYNC_LANG), or None."""
    if language in LANGUAGES:
        return None
    return f"use one of {', '.join(LANGUAGES)}"


def _load(language: str) -> gettext.NullTranslations:
    found = _translations.get(language)
    if found is not None:
        return found
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    translations: gettext.NullTranslations = gettext.NullTranslations()
    try:
        if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
            with mo.open("rb") as handle:
                translations = gettext.GNUTranslations(handle)
        elif po.is_file():
            translations = _compiled(po, language)
    except Exception as exc:  # noqa: BLE001 - a damaged catalog must not stop a command
        log.warning("the %s catalog %s cannot be read (%s): messages stay in English; run "
                    "'make i18n' to see what is wrong", language, mo if mo.is_file() else po,
                    str(exc) or type(exc).__name__)
        translations = gettext.NullTranslations()
    _drop_broken(translations, language)
    _translations[language] = translations
    return translations


def _compiled(po: Path, language: str) -> gettext.GNUTranslations:
    """A .po compiled in memory with Babel's own compiler (a checkout has no .mo)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def placeholders(text: str) -> set[str]:
    """The named fields `str.format` fills in a message: {dossier}, {n}."""
    return set(re.findall(r"(?<!{){(\w+)}", text))


def _drop_broken(translations: gettext.NullTranslations, language: str) -> None:
    """A translation whose placeholders are not its message's would raise in `.format()`
    in the middle of a command: it is dropped (the message stays English) and said once.
    tests/test_i18n.py keeps the shipped catalogs free of them; a translator's edit may not."""
    catalog = getattr(translations, "_catalog", None)
    if not catalog:
        return
    broken = [key for key, text in catalog.items() if isinstance(key, str) and key
              and placeholders(key) != placeholders(text)]
    for key in broken:
        del catalog[key]
    if broken:
        log.warning("the %s catalog: %d translation(s) with other placeholders than their "
                    "message are left out (they stay English), e.g. %r", language, len(broken),
                    broken[0][:80])


def activate(language: str) -> str:
    """Speak `language` from now on in this process (English for one dossync lacks)."""
    global _active, _language
    _language = language if language in LANGUAGES else DEFAULT
    _active = _load(_language) if _language != DEFAULT else gettext.NullTranslations()
    return _language


def current() -> str:
    return _language


def _(message: str) -> str:
    """`message` (English, the source) in the active language."""
    return _active.gettext(message)


def N_(message: str) -> str:
    """Marks a message for the catalogs where it is translated later (a table's header
    kept in a module-level constant): `_(constant)` when it is shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    return _active.ngettext(singular, plural, n)


def amount(value: Decimal | str | int, language: str | None = None) -> str:
    """An amount for people: two decimals, grouped (Belgian 1.234,56 in nl and fr)."""
    from babel.numbers import format_decimal

    return format_decimal(Decimal(value), format="#,##0.00",
                          locale=_NUMBERS[language or _language])


def day(value: date | str | None, language: str | None = None) -> str:
    """A date for people: 31/12/2026 (an ISO text is read first); '' for none."""
    if value is None or value == "":
        return ""
    from babel.dates import format_date

    when = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return format_date(when, "dd/MM/yyyy", locale=_DATES[language or _language])


def date_text(value: str | None) -> str | None:
    """A date (YYYY-MM-DD, or a time whose date leads) in a sentence or a cell: as Dutch
    and French write it (31/12/2026); English keeps ISO, as it always showed; None for
    none."""
    if not value or _language == DEFAULT:
        return value
    rest = value[10:] if len(value) > 10 else ""
    return day(value) + rest.replace("T", " ")


def money_text(value: Decimal | str | None, english: str) -> str:
    """An amount on a screen: Belgian 1.234,56 in Dutch and French, `english` (the
    screen's own English form) in English; '-' for none."""
    if value is None:
        return "-"
    return english if _language == DEFAULT else amount(value)


__all__ = ["DEFAULT", "LANG_ENV", "LANGUAGES", "N_", "_", "activate", "amount", "current", "date_text", "day",
           "language_from_locale", "money_text", "ngettext", "placeholders", "problem", "resolve"]
