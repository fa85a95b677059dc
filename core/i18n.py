"""What dossync says to people, in their language: Dutch, French or English.

Messages are marked with `_()` (gettext) in English, the source language;
the catalogs are `core/locale/LANG/LC_MESSAGES/dossync.po`, kept with Babel's
standard tooling (`make i18n`: `pybabel extract` into `core/locale/dossync.pot`,
`pybabel update` of every `.po`, `pybabel compile`), so translators work on
`.po` files. A catalog is loaded when it is first needed: the `.mo` file the
build made (an installed wheel carries only those), or in a checkout the `.po`
compiled in memory (Babel's own compiler) when no `.mo` is newer.

The language: `--lang`, else DOSSYNC_LANG, else `[ui] language` in
dossync.toml, else the locale (LC_ALL, LC_MESSAGES, LANG), else English.
JSON output stays language-neutral: only what is written for people is
translated. Amounts and counts follow the language with Babel: Belgian
`1.234,56` in Dutch and French, `1,234.56` in English; dates read
`31/12/2026` in Dutch and French, while English keeps ISO `2026-12-31`.
"""
from __future__ import annotations

import functools
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
# Babel locales whose conventions each language's amounts follow: a Belgian firm's, in
# Dutch and in French alike (1.234,56), and British English (1,234.56).
_NUMBERS = {"nl": "nl_BE", "fr": "nl_BE", "en": "en_GB"}

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
    # the .mo the build (or make i18n) compiled, unless a translator edited the .po since
    read_mo = mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime)
    source = mo if read_mo else po
    try:
        if read_mo:
            with mo.open("rb") as handle:
                translations = gettext.GNUTranslations(handle)
        elif po.is_file():
            translations = _compiled(po, language)
    except Exception as exc:  # noqa: BLE001 - a damaged catalog must not stop a command
        log.warning("the %s catalog %s cannot be read (%s): messages stay in English",
                    language, source, str(exc) or type(exc).__name__)
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


def amount(value: Decimal | str | int, language: str | None = None) -> str:
    """An amount for people: rounded half up to cents as the contract's amounts are
    (core/money.py), then grouped as the language writes it: Belgian 1.234,56 in Dutch
    and French, 1,234.56 in English."""
    from dossync.core.money import to_str

    return _number_format(language or _language)(Decimal(to_str(value)), "#,##0.00")


def count(value: int | None, language: str | None = None) -> str:
    """A whole number for people (rows, jobs): 12.345 in Dutch and French, 12,345 in
    English; '?' for an unknown one."""
    if value is None:
        return "?"
    return _number_format(language or _language)(value, "#,##0")


@functools.lru_cache(maxsize=None)
def _number_format(language: str):
    """Babel's number formatting for a language's locale, parsed once (a table formats
    many cells)."""
    from babel import Locale
    from babel.numbers import format_decimal

    locale = Locale.parse(_NUMBERS[language])
    return lambda number, pattern: format_decimal(number, format=pattern, locale=locale)


def day(value: date | str | None) -> str:
    """A date for people: 31/12/2026 (an ISO text is read first), as Belgian Dutch,
    Belgian French and British English all write it; '' for none."""
    if value is None or value == "":
        return ""
    when = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return f"{when:%d/%m/%Y}"


def date_text(value: str | None) -> str | None:
    """A date or a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM...) in a sentence or a cell: as
    Dutch and French write it (31/12/2026 14:05); English keeps ISO (2026-12-31 14:05),
    as it always showed; None for none."""
    if not value:
        return value
    rest = value[10:].replace("T", " ")
    return (value[:10] if _language == DEFAULT else day(value)) + rest


__all__ = ["DEFAULT", "LANG_ENV", "LANGUAGES", "N_", "_", "activate", "amount", "count", "current",
           "date_text", "day", "language_from_locale", "placeholders", "problem", "resolve"]
