"""The reference data every demo ledger shares, and the demo's fixed calendar.

The Belgian minimum chart of accounts (MAR/PCMN) and the VAT codes come from
the ``data/*.csv`` files that travel with dossync; the journals and the dates
the demo lives in are fixed here. Nothing depends on today's date: the demo
"today" is :data:`DEMO_AS_OF`, so a seed gives the same ledger on any day.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal, NamedTuple

DEMO_AS_OF: date = date(2026, 10, 31)
"""The demo's "today": bookings are generated up to this date."""

FIRST_YEAR = 2024
LAST_YEAR = 2026
LAST_DAY = date(LAST_YEAR, 12, 31)
"""The last day a demo ledger has a period for."""
ACTIVE_PERIOD = "2026-10"
LAST_CLOSED_PERIOD = "2026-09"

# core/demo_package/ -> core/ -> its parent, which holds data/: the project's root in
# the source tree, the `dossync` package in an installed wheel (dossync/data/).
DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"

JournalKind = Literal["purchase", "sales", "financial", "misc"]
VatKind = Literal["sales", "purchase"]


class Account(NamedTuple):
    """One account of the chart: a six-digit MAR code and its (Dutch) name."""

    code: str
    name: str


class Journal(NamedTuple):
    """One of the package's journals."""

    code: str
    name: str
    kind: JournalKind


JOURNALS: tuple[Journal, ...] = (
    Journal(code="AANK", name="Aankopen", kind="purchase"),
    Journal(code="VERK", name="Verkopen", kind="sales"),
    Journal(code="FIN", name="Bank — CODA", kind="financial"),
    Journal(code="DIV", name="Diverse verrichtingen", kind="misc"),
)


@dataclass(frozen=True)
class VatCode:
    """A VAT code of the package: its rate in percent and the side it is used on."""

    code: str
    rate: int
    kind: VatKind


class VatShare(NamedTuple):
    """The share (0..1) of a dossier's sales booked with one VAT code."""

    code: str
    share: float


def _data_file(name: str) -> Path:
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"demo package data file missing: {path}")
    return path


@lru_cache(maxsize=1)
def chart_of_accounts() -> tuple[Account, ...]:
    """The Belgian minimum chart of accounts (MAR/PCMN) from data/mar.csv, in file order."""
    with _data_file("mar.csv").open(encoding="utf-8", newline="") as fh:
        return tuple(Account(code=row["code"], name=row["name"]) for row in csv.DictReader(fh))


@lru_cache(maxsize=1)
def vat_codes() -> dict[str, VatCode]:
    """VAT codes from data/vat_codes.csv, by code."""
    with _data_file("vat_codes.csv").open(encoding="utf-8", newline="") as fh:
        return {
            r["code"]: VatCode(code=r["code"], rate=int(r["rate"]), kind=r["kind"])
            for r in csv.DictReader(fh)
        }
