"""The build's one step beyond pyproject.toml: the message catalogs are compiled.

Translators work on `core/locale/LANG/LC_MESSAGES/dossync.po` (make i18n); a
wheel carries the compiled `dossync.mo` beside each `.po`, made here with
Babel's own compiler, so an installed dossync reads its catalogs at once
(core/i18n.py falls back to compiling a `.po` in memory, for a checkout).
"""
from __future__ import annotations

import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE = Path(__file__).resolve().parent / "core" / "locale"


def _fields(text: str) -> set[str]:
    """The named fields `str.format` fills: {dossier}, {n} (not an escaped {{brace}})."""
    return set(re.findall(r"(?<!{){(\w+)}", text))


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(LOCALE.glob("*/LC_MESSAGES/dossync.po")):
            language = po.parent.parent.name
            with po.open("rb") as handle:
                catalog = read_po(handle, locale=language, domain="dossync")
            errors = [(m.id, e) for m, errs in catalog.check() for e in errs]
            # a translation must fill the fields its message fills (core/i18n.py drops one
            # that does not at run time; a build refuses it)
            errors += [(m.id, f"its translation's fields {sorted(_fields(m.string))} are not "
                              f"{sorted(_fields(m.id))}")
                       for m in catalog if isinstance(m.id, str) and m.id and m.string
                       and _fields(m.id) != _fields(m.string)]
            if errors:
                raise SystemExit(f"{po}: {errors[0][1]} (message {errors[0][0]!r})")
            target = (Path(self.build_lib) / "dossync" / "core" / "locale" / language
                      / "LC_MESSAGES" / "dossync.mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as handle:
                write_mo(handle, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
