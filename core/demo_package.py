"""The demo accounting package: an embedded stand-in for an on-premise Belgian
accounting package ("boekhoudpakket"), one SQLite ledger file per dossier.

dossync needs a package it can drive end to end without a real installation:
the demo firm (`dossync demo`), the accountant's direct edits
(`dossync ledger CODE EVENT`) and the tests all work on ledgers written here.
The schema is fixed in ``core/ledger_schema.sql`` and mimics a legacy package:
no unique keys, a global change counter copied into every tracked row's
``rv``, a deletion log with limited retention, and maintenance tools that
bypass change tracking. The sync engine and the demo connector are written
against that schema, not against this module.

Generated content is deterministic for a (company, seed) pair and never
depends on today's date: the demo "today" is :data:`DEMO_AS_OF`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

from dossync.core.ledger_events import LEDGER_EVENTS

__all__ = [
    "DEMO_AS_OF",
    "DemoCompany",
    "LEDGER_EVENTS",
    "LedgerEventError",
    "apply_event",
    "create_ledger",
    "demo_companies",
    "ledger_trial_balance",
    "snapshot_dir",
]

DEMO_AS_OF: date = date(2026, 10, 31)
"""The demo's "today": bookings are generated up to this date."""

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SCHEMA_FILE = Path(__file__).resolve().parent / "ledger_schema.sql"

FIRST_YEAR = 2024
LAST_YEAR = 2026
ACTIVE_PERIOD = "2026-10"
_LAST_CLOSED_PERIOD = "2026-09"

JOURNALS: tuple[tuple[str, str, str], ...] = (
    ("AANK", "Aankopen", "purchase"),
    ("VERK", "Verkopen", "sales"),
    ("FIN", "Bank — CODA", "financial"),
    ("DIV", "Diverse verrichtingen", "misc"),
)



class LedgerEventError(Exception):
    """A `dossync ledger` event could not be applied (bad arguments, unknown
    event, missing ledger or snapshot, nothing to do)."""


@dataclass(frozen=True)
class DemoCompany:
    """One demo dossier: a Belgian SME with its own ledger."""

    code: str
    name: str
    enterprise_number: str
    language: str  # nl | fr | en
    email: str
    lines: int
    nightly: bool


# ---------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VatCode:
    code: str
    rate: int
    kind: str  # sales | purchase


def _data_file(name: str) -> Path:
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"demo package data file missing: {path}")
    return path


@lru_cache(maxsize=1)
def chart_of_accounts() -> tuple[tuple[str, str], ...]:
    """The Belgian minimum chart of accounts (MAR/PCMN) from data/mar.csv."""
    with _data_file("mar.csv").open(encoding="utf-8", newline="") as fh:
        return tuple((row["code"], row["name"]) for row in csv.DictReader(fh))


@lru_cache(maxsize=1)
def vat_codes() -> dict[str, VatCode]:
    """VAT codes from data/vat_codes.csv, by code."""
    with _data_file("vat_codes.csv").open(encoding="utf-8", newline="") as fh:
        return {
            r["code"]: VatCode(r["code"], int(r["rate"]), r["kind"])
            for r in csv.DictReader(fh)
        }


def _schema_statements() -> tuple[list[str], list[str]]:
    """The schema's DDL split into (tables, indexes), in file order."""
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    stmts = [s.strip() for s in text.split(";") if s.strip()]
    tables = [s for s in stmts if not s.upper().startswith("CREATE INDEX")]
    indexes = [s for s in stmts if s.upper().startswith("CREATE INDEX")]
    return tables, indexes


# ---------------------------------------------------------------------------
# Names and numbers
# ---------------------------------------------------------------------------

_SURNAMES = {
    "nl": ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes",
           "Goossens", "Wouters", "De Smet", "Vermeulen", "Van den Bossche", "Hermans",
           "Aerts", "Verstraeten", "Desmet", "Coppens", "Lemmens", "Van Damme", "Stevens",
           "Dewitte", "Verhoeven", "De Backer", "Smets", "Michiels"],
    "fr": ["Dubois", "Lambert", "Dupont", "Martin", "Simon", "Laurent", "Leroy",
           "Lejeune", "Renard", "Lemaire", "Dumont", "Fontaine", "Denis", "Collard",
           "Gilson", "Marchal", "Hubert", "Leclercq", "Mathieu", "Delvaux"],
    "en": ["Northgate", "Brightline", "Atlas", "Greenwood", "Bluebridge", "Harbour",
           "Silverleaf", "Kingsley", "Redstone", "Oakfield"],
}

# sector: templates per language, revenue accounts, sales VAT mix, cost accounts
_SECTORS: dict[str, dict] = {
    "bakery": {
        "nl": "Bakkerij {n}", "fr": "Boulangerie {n}", "en": "{n} Bakery", "tag": "BAK",
        "revenue": ["700100", "700000"], "sales_vat": [("V06", 0.8), ("V21", 0.2)],
        "costs": ["600000", "601000", "604000", "612000", "611000"], "size": 80.0,
    },
    "construction": {
        "nl": "Bouwbedrijf {n}", "fr": "Construction {n}", "en": "{n} Construction", "tag": "BOUW",
        "revenue": ["705000", "700000"], "sales_vat": [("V21", 0.6), ("V06", 0.4)],
        "costs": ["600000", "603000", "614000", "617000", "611000"], "size": 4200.0,
    },
    "it": {
        "nl": "{n} IT Consultancy", "fr": "{n} Informatique", "en": "{n} IT Consulting", "tag": "IT",
        "revenue": ["705000"], "sales_vat": [("V21", 0.85), ("VIC", 0.15)],
        "costs": ["613200", "613100", "602000", "613700", "242000"], "size": 3800.0,
    },
    "pharmacy": {
        "nl": "Apotheek {n}", "fr": "Pharmacie {n}", "en": "{n} Pharmacy", "tag": "APO",
        "revenue": ["700000"], "sales_vat": [("V06", 0.85), ("V21", 0.15)],
        "costs": ["604000", "613200", "612000", "610000"], "size": 260.0,
    },
    "garage": {
        "nl": "Garage {n}", "fr": "Garage {n}", "en": "{n} Motors", "tag": "GAR",
        "revenue": ["700000", "705000"], "sales_vat": [("V21", 1.0)],
        "costs": ["604000", "611000", "612000", "613500"], "size": 650.0,
    },
    "architect": {
        "nl": "Architectenbureau {n}", "fr": "Bureau d'architecture {n}", "en": "{n} Architects",
        "tag": "ARCH", "revenue": ["705000"], "sales_vat": [("V21", 1.0)],
        "costs": ["602000", "613200", "613000", "610000", "613700"], "size": 2900.0,
    },
    "restaurant": {
        "nl": "Restaurant {n}", "fr": "Brasserie {n}", "en": "{n} Kitchen", "tag": "RESTO",
        "revenue": ["700100", "700000"], "sales_vat": [("V12", 0.7), ("V21", 0.3)],
        "costs": ["604000", "600000", "612000", "610000", "611000"], "size": 140.0,
    },
    "florist": {
        "nl": "Bloemen {n}", "fr": "Fleurs {n}", "en": "{n} Flowers", "tag": "FLOR",
        "revenue": ["700000"], "sales_vat": [("V06", 0.9), ("V21", 0.1)],
        "costs": ["604000", "613600", "612000", "610000"], "size": 90.0,
    },
    "transport": {
        "nl": "Transport {n}", "fr": "Transports {n}", "en": "{n} Logistics", "tag": "TRANS",
        "revenue": ["705000"], "sales_vat": [("V21", 0.8), ("VIC", 0.2)],
        "costs": ["614000", "614100", "613500", "611000", "617000"], "size": 1800.0,
    },
    "hairdresser": {
        "nl": "Kapsalon {n}", "fr": "Salon de coiffure {n}", "en": "{n} Hair Studio", "tag": "KAP",
        "revenue": ["705000", "700000"], "sales_vat": [("V21", 1.0)],
        "costs": ["604000", "610000", "612000", "613400"], "size": 70.0,
    },
}

_LEGAL_FORM = {"nl": ["BV", "BV", "NV", "CommV"], "fr": ["SRL", "SRL", "SA", "SComm"],
               "en": ["BV", "SRL"]}

_CUSTOMER_WORDS = {
    "nl": ["Bouw", "Interieur", "Immo", "Technics", "Catering", "Consult", "Logistiek",
           "Dakwerken", "Elektro", "Schrijnwerkerij", "Tuinaanleg", "Verhuur"],
    "fr": ["Immobilier", "Services", "Rénovation", "Traiteur", "Conseil", "Menuiserie",
           "Électricité", "Toitures", "Jardins", "Distribution"],
    "en": ["Solutions", "Partners", "Group", "Digital", "Trading", "Ventures"],
}

_SUPPLIER_NAMES = {
    "610000": ["Immo {n}", "Vastgoed {n}", "Gestion Immobilière {n}"],
    "611000": ["Onderhoud {n}", "Techniek {n}", "Dépannage {n}"],
    "612000": ["Energie {n}", "Luminus-{n} Energie", "Water & Gas {n}"],
    "613000": ["Accountantskantoor {n}", "Advocatenkantoor {n}", "Fiduciaire {n}"],
    "613100": ["Telecom {n}", "NetConnect {n}", "Mobiel {n}"],
    "613200": ["{n} Software", "Cloudwerk {n}", "Logiciels {n}"],
    "613300": ["Kantoorwereld {n}", "Papeterie {n}", "Bureau Direct {n}"],
    "613400": ["Reclamebureau {n}", "Drukkerij {n}", "Imprimerie {n}"],
    "613500": ["Verzekeringen {n}", "Assurances {n}", "Makelaar {n}"],
    "613600": ["Koerier {n}", "Transport {n}", "Express {n}"],
    "613700": ["Reisbureau {n}", "Hotel {n}", "Voyages {n}"],
    "614000": ["Tankstation {n}", "Brandstoffen {n}", "Carburants {n}"],
    "614100": ["Garage {n}", "Bandencentrale {n}", "Carrosserie {n}"],
    "617000": ["Interim {n}", "Uitzendbureau {n}", "Intérim {n}"],
    "600000": ["Groothandel {n}", "Grossiste {n}", "Materialen {n}"],
    "601000": ["Verpakkingen {n}", "Emballages {n}"],
    "602000": ["Studiebureau {n}", "{n} Engineering", "Freelance {n}"],
    "603000": ["Onderaannemer {n}", "Sous-traitance {n}"],
    "604000": ["Groothandel {n}", "Distributie {n}", "Import {n}", "Centrale {n}"],
    "242000": ["IT Hardware {n}", "Computershop {n}"],
}

_LINE_TEXT = {
    "700000": "Verkoop goederen", "700100": "Verkoop eigen producten",
    "705000": "Prestaties", "600000": "Grondstoffen", "601000": "Hulpstoffen",
    "602000": "Diensten", "603000": "Onderaanneming", "604000": "Handelsgoederen",
    "610000": "Huur", "611000": "Onderhoud", "612000": "Energie",
    "613000": "Erelonen", "613100": "Telefonie", "613200": "Licenties",
    "613300": "Kantoorbenodigdheden", "613400": "Publiciteit", "613500": "Verzekering",
    "613600": "Transport", "613700": "Reiskosten", "614000": "Brandstof",
    "614100": "Onderhoud voertuig", "617000": "Uitzendkrachten", "242000": "Informaticamaterieel",
}

# cost accounts that carry no VAT (insurance) or 6% are handled per account
_PURCHASE_VAT = {"613500": "A00", "610000": "A00", "613000": "A21"}

_OPEN_ITEM_ACCOUNTS = ("400000", "440000")
_ALT_COST_ACCOUNTS = ("611000", "613300", "613400", "613600", "613700", "643000", "612000")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]+", "-", ascii_text.upper()).strip("-")


def _mod97_number(rng: random.Random) -> str:
    """A Belgian enterprise number '0123.456.789' with a valid mod-97 check."""
    while True:
        base = rng.randint(2_000_000, 9_999_999)  # leading 0 + 7 digits
        check = 97 - (base % 97)
        digits = f"{base:08d}{check:02d}"
        if digits[0] == "0":
            return f"{digits[:4]}.{digits[4:7]}.{digits[7:]}"


def enterprise_number_valid(number: str) -> bool:
    """True if '0123.456.789' / 'BE0123.456.789' passes the mod-97 check."""
    digits = re.sub(r"\D", "", number)
    if len(digits) != 10:
        return False
    return 97 - int(digits[:8]) % 97 == int(digits[8:])


def demo_companies(count: int, largest_lines: int, seed: int) -> list[DemoCompany]:
    """`count` deterministic demo dossiers; the first has `largest_lines` lines,
    the others progressively fewer (factor 0.7 each, at least 500)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(f"dossync-demo-companies:{seed}")
    sector_keys = list(_SECTORS)
    rng.shuffle(sector_keys)
    used_codes: set[str] = set()
    used_surnames: set[str] = set()
    companies: list[DemoCompany] = []
    for i in range(count):
        r = rng.random()
        language = "nl" if r < 0.55 else ("fr" if r < 0.9 else "en")
        pool = [s for s in _SURNAMES[language] if s not in used_surnames] or _SURNAMES[language]
        surname = rng.choice(pool)
        used_surnames.add(surname)
        sector_key = sector_keys[i % len(sector_keys)]
        sector = _SECTORS[sector_key]
        name = f"{sector[language].format(n=surname)} {rng.choice(_LEGAL_FORM[language])}"
        base = _slug(surname)[:20]
        code = base
        if code in used_codes or len(code) < 2:
            code = f"{base}-{sector['tag']}"[:20].strip("-")
        n = 2
        while code in used_codes:
            suffix = str(n)
            code = f"{base[: 20 - len(suffix)]}{suffix}"
            n += 1
        used_codes.add(code)
        min_lines = min(500, largest_lines)
        lines = max(int(round(largest_lines * 0.7**i)), min_lines)
        domain = _slug(surname).lower() + "-" + sector["tag"].lower()
        email = f"{'info' if language != 'fr' else 'contact'}@{domain}.be"
        companies.append(DemoCompany(
            code=code, name=name, enterprise_number=_mod97_number(rng), language=language,
            email=email, lines=lines, nightly=(i % 2 == 0),
        ))
    return companies


def _sector_of(company: DemoCompany) -> dict:
    for sector in _SECTORS.values():
        for lang in ("nl", "fr", "en"):
            prefix, _, suffix = sector[lang].partition("{n}")
            body = company.name.rsplit(" ", 1)[0]
            if body.startswith(prefix) and body.endswith(suffix):
                return sector
    return _SECTORS["it"]


# ---------------------------------------------------------------------------
# Calendar helpers (day indexes from 2024-01-01; fast in the bulk path)
# ---------------------------------------------------------------------------

_BASE = date(FIRST_YEAR, 1, 1)
_END = date(LAST_YEAR, 12, 31)
_NDAYS = (_END - _BASE).days + 1
_DAYSTR = [(_BASE + timedelta(days=i)).isoformat() for i in range(_NDAYS + 400)]
_WEEKDAY = [(_BASE + timedelta(days=i)).weekday() for i in range(_NDAYS + 400)]
_PERIOD_OF_DAY = [((_BASE + timedelta(days=i)).year - FIRST_YEAR) * 12
                  + (_BASE + timedelta(days=i)).month for i in range(_NDAYS)]
_AS_OF_IDX = (DEMO_AS_OF - _BASE).days


def _day(d: date) -> int:
    return (d - _BASE).days


def _month_bounds(period_id: int) -> tuple[int, int]:
    year = FIRST_YEAR + (period_id - 1) // 12
    month = (period_id - 1) % 12 + 1
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return _day(first), _day(nxt) - 1


def _business_day(idx: int) -> int:
    while _WEEKDAY[idx] >= 5:
        idx += 1
    return idx


def _vat(net: int, rate: int) -> int:
    return (net * rate + 50) // 100


# ---------------------------------------------------------------------------
# Ledger generation
# ---------------------------------------------------------------------------


class _Builder:
    """Accumulates rows for the bulk insert, assigning ids, doc numbers and rvs."""

    def __init__(self) -> None:
        self.rv = 0
        self.bookings: list[tuple] = []
        self.lines: list[tuple] = []
        self.matchings: list[tuple] = []
        self.next_booking = 1
        self.next_matching = 1
        self.doc_seq: dict[tuple[str, int], int] = {}

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def booking(self, journal: str, doc_type: str, day: int, due: int | None,
                relation: int | None, description: str | None) -> int:
        bid = self.next_booking
        self.next_booking += 1
        dstr = _DAYSTR[day]
        year = int(dstr[:4])
        key = (journal, year)
        seq = self.doc_seq.get(key, 0) + 1
        self.doc_seq[key] = seq
        pid = _PERIOD_OF_DAY[day]
        self.rv += 1
        self.bookings.append((
            bid, journal, f"{journal}-{year}-{seq:05d}", doc_type, year - FIRST_YEAR + 1, pid,
            dstr, None if due is None else _DAYSTR[due], relation, description, None, self.rv,
        ))
        return bid

    def match(self, invoice_id: int, payment_id: int, amount: int) -> None:
        self.rv += 1
        self.matchings.append((self.next_matching, invoice_id, payment_id, amount, self.rv))
        self.next_matching += 1


def _relation_rows(rng: random.Random, n_customers: int, n_suppliers: int,
                   cost_accounts: list[str], start_rv: int) -> tuple[list[tuple], dict[int, str]]:
    """Relation rows and each supplier's usual cost account."""
    rows: list[tuple] = []
    supplier_cost: dict[int, str] = {}
    seen: set[str] = set()
    rv = start_rv

    def unique(name: str) -> str:
        base, n = name, 2
        while name in seen:
            name = f"{base} ({n})"
            n += 1
        seen.add(name)
        return name

    def pick_language() -> str:
        r = rng.random()
        return "nl" if r < 0.6 else ("fr" if r < 0.92 else "en")

    rid = 0
    for _ in range(n_customers):
        rid += 1
        lang = pick_language()
        surname = rng.choice(_SURNAMES[lang])
        if rng.random() < 0.25:
            first = rng.choice(["An", "Bart", "Els", "Koen", "Marie", "Luc", "Sofie", "Pierre",
                                "Julie", "Tom", "Nathalie", "Kevin"])
            name = unique(f"{first} {surname}")
            vat = None
        else:
            name = unique(f"{surname} {rng.choice(_CUSTOMER_WORDS[lang])} "
                          f"{rng.choice(_LEGAL_FORM[lang])}")
            vat = "BE" + _mod97_number(rng)
        email = f"{_slug(name).lower()[:30].strip('-')}@example.be"
        rv += 1
        rows.append((rid, "customer", name, vat, email, lang, rv))
    for i in range(n_suppliers):
        rid += 1
        lang = pick_language()
        account = cost_accounts[i % len(cost_accounts)] if i < 2 * len(cost_accounts) \
            else rng.choice(cost_accounts)
        templates = _SUPPLIER_NAMES.get(account, ["{n} Supplies"])
        name = unique(f"{rng.choice(templates).format(n=rng.choice(_SURNAMES[lang]))} "
                      f"{rng.choice(_LEGAL_FORM[lang])}")
        email = f"facturen@{_slug(name).lower()[:30].strip('-')}.be"
        rv += 1
        rows.append((rid, "supplier", name, "BE" + _mod97_number(rng), email, lang, rv))
        supplier_cost[rid] = account
    return rows, supplier_cost


class _Profile:
    """What a dossier books: revenue accounts, VAT mix, suppliers' cost accounts."""

    def __init__(self, sector: dict, customers: list[int], suppliers: list[int],
                 supplier_cost: dict[int, str], names: dict[int, str]) -> None:
        self.revenue: list[str] = sector["revenue"]
        self.sales_vat: list[tuple[str, float]] = sector["sales_vat"]
        self.size: float = sector["size"]
        self.customers = customers
        self.suppliers = suppliers
        self.supplier_cost = supplier_cost
        self.names = names
        rates = vat_codes()
        self.rate = {code: v.rate for code, v in rates.items()}

    def sales_vat_code(self, rng: random.Random) -> str:
        r = rng.random()
        acc = 0.0
        for code, share in self.sales_vat:
            acc += share
            if r < acc:
                return code
        return self.sales_vat[-1][0]


def _sales_lines(rng: random.Random, p: _Profile, bid: int, rel: int,
                 credit_note: bool, scale: float = 1.0) -> tuple[list[tuple], int]:
    """Lines of a sales invoice (or credit note): 400000 total, 70 net, 451000 VAT."""
    n_net = 1 if rng.random() < 0.7 else 2
    nets: list[tuple[str, int, str]] = []
    vat_by_code: dict[str, int] = {}
    for _ in range(n_net):
        net = max(500, int(rng.lognormvariate(0.0, 0.8) * p.size * 100 * scale))
        code = p.sales_vat_code(rng)
        account = p.revenue[0] if len(p.revenue) == 1 or rng.random() < 0.75 else p.revenue[1]
        nets.append((account, net, code))
        vat_by_code[code] = vat_by_code.get(code, 0) + _vat(net, p.rate[code])
    total = sum(n for _, n, _ in nets) + sum(vat_by_code.values())
    lines = [(bid, 1, "400000", rel, None, 0, total, None) if credit_note
             else (bid, 1, "400000", rel, None, total, 0, None)]
    no = 1
    for account, net, code in nets:
        no += 1
        text = _LINE_TEXT.get(account)
        lines.append((bid, no, account, None, text, net, 0, code) if credit_note
                     else (bid, no, account, None, text, 0, net, code))
    for code, vat in vat_by_code.items():
        if vat:
            no += 1
            lines.append((bid, no, "451000", None, None, vat, 0, code) if credit_note
                         else (bid, no, "451000", None, None, 0, vat, code))
    return lines, total


def _purchase_lines(rng: random.Random, p: _Profile, bid: int, rel: int,
                    credit_note: bool, scale: float = 1.0) -> tuple[list[tuple], int]:
    """Lines of a purchase invoice (or credit note): 440000 total, 60/61 net, 411000 VAT."""
    main = p.supplier_cost.get(rel, "604000")
    code = _PURCHASE_VAT.get(main, "A21")
    if main in ("600000", "604000") and p.sales_vat[0][0] == "V06":
        code = "A06"
    net1 = max(300, int(rng.lognormvariate(0.0, 0.9) * p.size * 40 * scale))
    nets = [(main, net1)]
    if rng.random() < 0.2:
        other = rng.choice(_ALT_COST_ACCOUNTS)
        nets.append((other, max(200, int(net1 * rng.random() * 0.5))))
    rate = p.rate[code]
    vat = sum(_vat(n, rate) for _, n in nets)
    total = sum(n for _, n in nets) + vat
    lines = [(bid, 1, "440000", rel, None, total, 0, None) if credit_note
             else (bid, 1, "440000", rel, None, 0, total, None)]
    no = 1
    for account, net in nets:
        no += 1
        text = _LINE_TEXT.get(account)
        lines.append((bid, no, account, None, text, 0, net, code) if credit_note
                     else (bid, no, account, None, text, net, 0, code))
    if vat:
        no += 1
        lines.append((bid, no, "411000", None, None, 0, vat, code) if credit_note
                     else (bid, no, "411000", None, None, vat, 0, code))
    return lines, total


def _generate(company: DemoCompany, seed: int) -> dict[str, list[tuple]]:
    rng = random.Random(f"dossync-demo-ledger:{seed}:{company.code}")
    sector = _sector_of(company)
    target = max(company.lines, 50)
    b = _Builder()

    meta_rows: list[tuple[str, str]] = [
        ("code", company.code), ("name", company.name),
        ("enterprise_number", company.enterprise_number), ("language", company.language),
        ("email", company.email), ("deletion_log_from", "1"), ("active_period", ACTIVE_PERIOD),
    ]
    accounts = [(code, name, b.next_rv()) for code, name in chart_of_accounts()]
    journals = [(code, name, kind, b.next_rv()) for code, name, kind in JOURNALS]
    fiscal_years = []
    periods = []
    for y in range(FIRST_YEAR, LAST_YEAR + 1):
        fy_id = y - FIRST_YEAR + 1
        fiscal_years.append((fy_id, str(y), f"{y}-01-01", f"{y}-12-31",
                             1 if y < LAST_YEAR else 0, b.next_rv()))
    for y in range(FIRST_YEAR, LAST_YEAR + 1):
        for m in range(1, 13):
            pid = (y - FIRST_YEAR) * 12 + m
            first, last = _month_bounds(pid)
            code = f"{y}-{m:02d}"
            periods.append((pid, y - FIRST_YEAR + 1, code, _DAYSTR[first], _DAYSTR[last],
                            1 if code <= _LAST_CLOSED_PERIOD else 0, b.next_rv()))

    est_bookings = target / 4.2
    n_rel = est_bookings * 0.05
    n_customers = int(min(300, max(5, n_rel * 0.6)))
    n_suppliers = int(min(200, max(5, n_rel * 0.4)))
    cost_accounts = list(sector["costs"]) + ["610000", "612000", "613000", "613100",
                                             "613500", "614000"]
    cost_accounts = list(dict.fromkeys(cost_accounts))
    relations, supplier_cost = _relation_rows(rng, n_customers, n_suppliers, cost_accounts, b.rv)
    b.rv += len(relations)
    names = {r[0]: r[2] for r in relations}
    customers = [r[0] for r in relations if r[1] == "customer"]
    suppliers = [r[0] for r in relations if r[1] == "supplier"]
    p = _Profile(sector, customers, suppliers, supplier_cost, names)

    # scale of the business: payroll and fixed assets grow with the ledger size
    employees = max(1, min(60, target // 25_000 + 1))
    gross_salary = 3_400_00 * employees
    assets = [("240900", 1_200_00 + 40 * target // 100), ("241900", 2_500_00 + 80 * target // 100)]
    n_cust, n_supp = len(customers), len(suppliers)

    payments: dict[int, list[tuple[int, int, int, int]]] = {}  # day -> (kind, inv, rel, amount)
    months = _PERIOD_OF_DAY[_AS_OF_IDX]
    invoices_made = 0
    invoice_lines = 0  # lines of invoices + their payments (for the adaptive estimate)
    misc_per_month = 12.0
    lines_out = b.lines
    bookings_out = b.bookings

    for pid in range(1, months + 1):
        first, last = _month_bounds(pid)
        last = min(last, _AS_OF_IDX)
        remaining = months - pid + 1
        per_invoice = invoice_lines / invoices_made if invoices_made > 30 else 5.2
        budget = (target - len(lines_out) - misc_per_month * remaining) / remaining
        season = 0.85 + 0.3 * rng.random()
        n_inv = max(1, int(round(budget / per_invoice * season)))
        span = last - first + 1
        before = len(lines_out)
        for _ in range(n_inv):
            day = first + int(rng.random() * span)
            sales = rng.random() < 0.58
            if sales:
                rel = customers[int(rng.random() ** 2 * n_cust)]
                bid = b.booking("VERK", "invoice", day, day + 30, rel,
                                f"Factuur {names[rel]}")
                lines, total = _sales_lines(rng, p, bid, rel, False)
            else:
                rel = suppliers[int(rng.random() ** 1.5 * n_supp)]
                bid = b.booking("AANK", "invoice", day, day + 30, rel,
                                f"Aankoopfactuur {names[rel]}")
                lines, total = _purchase_lines(rng, p, bid, rel, False)
            lines_out.extend(lines)
            invoices_made += 1
            due_left = total
            if rng.random() < 0.04:  # partial or full credit note, matched with the invoice
                cn_day = day + 3 + int(rng.random() * 20)
                if cn_day <= _AS_OF_IDX:
                    share = 1.0 if rng.random() < 0.4 else 0.1 + 0.5 * rng.random()
                    cn = b.booking("VERK" if sales else "AANK", "credit_note", cn_day, cn_day + 30,
                                   rel, f"Creditnota {names[rel]}")
                    cn_lines = _credit_note_lines(lines, cn, share)
                    lines_out.extend(cn_lines)
                    cn_total = cn_lines[0][5] + cn_lines[0][6]
                    b.match(bid, cn, min(cn_total, total))
                    due_left = total - min(cn_total, total)
            if due_left <= 0:
                continue
            r = rng.random()
            if r < 0.05:
                continue  # stays open: disputed or forgotten
            amount = due_left if r >= 0.11 else max(1, int(due_left * (0.3 + 0.5 * rng.random())))
            delay = (5 + int(rng.random() * 55)) if sales else (10 + int(rng.random() * 35))
            pay_day = _business_day(day + delay)
            if pay_day <= _AS_OF_IDX:
                payments.setdefault(pay_day, []).append((0 if sales else 1, bid, rel, amount))
        # bank statements of the month: CODA, up to 8 transactions per statement
        for day in range(first, last + 1):
            todays = payments.pop(day, None)
            if not todays:
                continue
            for start in range(0, len(todays), 8):
                chunk = todays[start:start + 8]
                sid = b.booking("FIN", "statement", day, None, None,
                                f"Rekeninguittreksel {_DAYSTR[day]}")
                no = 0
                for kind, inv, rel, amount in chunk:
                    if kind == 0:
                        lines_out.append((sid, no + 1, "550000", None, names[rel], amount, 0, None))
                        lines_out.append((sid, no + 2, "400000", rel, None, 0, amount, None))
                    else:
                        lines_out.append((sid, no + 1, "440000", rel, None, amount, 0, None))
                        lines_out.append((sid, no + 2, "550000", None, names[rel], 0, amount, None))
                    no += 2
                    b.match(inv, sid, amount)
        invoice_lines += len(lines_out) - before
        # month end: payroll (DIV), salaries and bank charges (FIN), quarterly depreciation
        pay_day = _month_bounds(pid)[1]
        if pay_day > _AS_OF_IDX:
            continue
        gross = int(gross_salary * (0.97 + 0.06 * rng.random()))
        employee_rsz = gross * 1307 // 10000
        employer_rsz = gross * 2500 // 10000
        withholding = (gross - employee_rsz) * 27 // 100
        net = gross - employee_rsz - withholding
        did = b.booking("DIV", "misc", pay_day, None, None, f"Lonen {_DAYSTR[pay_day][:7]}")
        lines_out.extend([
            (did, 1, "620200", None, "Brutolonen", gross, 0, None),
            (did, 2, "621000", None, "Werkgeversbijdragen RSZ", employer_rsz, 0, None),
            (did, 3, "453000", None, "Bedrijfsvoorheffing", 0, withholding, None),
            (did, 4, "454000", None, "RSZ", 0, employee_rsz + employer_rsz, None),
            (did, 5, "455000", None, "Nettolonen", 0, net, None),
        ])
        charges = 1_500 + int(rng.random() * 2_500)
        bank_day = _business_day(pay_day)
        if bank_day <= _AS_OF_IDX:
            fid = b.booking("FIN", "statement", bank_day, None, None,
                            f"Rekeninguittreksel {_DAYSTR[bank_day]}")
            lines_out.extend([
                (fid, 1, "455000", None, "Nettolonen", net, 0, None),
                (fid, 2, "656000", None, "Bankkosten", charges, 0, None),
                (fid, 3, "550000", None, None, 0, net + charges, None),
            ])
        if pid % 3 == 0:
            qid = b.booking("DIV", "misc", pay_day, None, None,
                            f"Afschrijvingen {_DAYSTR[pay_day][:4]}-Q{(pid - 1) % 12 // 3 + 1}")
            total = sum(a for _, a in assets)
            lines_out.append((qid, 1, "630200", None, "Afschrijvingen", total, 0, None))
            for i, (acct, amount) in enumerate(assets, start=2):
                lines_out.append((qid, i, acct, None, None, 0, amount, None))

    for key, value in (("change_counter", str(b.rv)),):
        meta_rows.append((key, value))
    return {
        "meta": meta_rows, "accounts": accounts, "journals": journals,
        "fiscal_years": fiscal_years, "periods": periods, "relations": relations,
        "bookings": bookings_out, "booking_lines": lines_out, "matchings": b.matchings,
    }


def _credit_note_lines(lines: list[tuple], bid: int, share: float) -> list[tuple]:
    """Reverse `lines` (an invoice) for `share` of each amount, keeping the balance exact."""
    out: list[tuple] = []
    for _, no, account, rel, text, debit, credit, vat in lines[1:]:
        out.append((bid, no, account, rel, text, int(credit * share), int(debit * share), vat))
    debit = sum(l[5] for l in out)
    credit = sum(l[6] for l in out)
    _, _, account, rel, text, _, _, vat = lines[0]
    # the open-item line (400000/440000) takes the balance
    out.insert(0, (bid, 1, account, rel, text, max(credit - debit, 0), max(debit - credit, 0), vat))
    return out


_INSERT = {
    "meta": "INSERT INTO meta VALUES (?,?)",
    "accounts": "INSERT INTO accounts VALUES (?,?,?)",
    "journals": "INSERT INTO journals VALUES (?,?,?,?)",
    "fiscal_years": "INSERT INTO fiscal_years VALUES (?,?,?,?,?,?)",
    "periods": "INSERT INTO periods VALUES (?,?,?,?,?,?,?)",
    "relations": "INSERT INTO relations VALUES (?,?,?,?,?,?,?)",
    "bookings": "INSERT INTO bookings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
    "booking_lines": "INSERT INTO booking_lines VALUES (?,?,?,?,?,?,?,?)",
    "matchings": "INSERT INTO matchings VALUES (?,?,?,?,?)",
}


def create_ledger(path: Path, company: DemoCompany, *, seed: int) -> None:
    """Create the demo ledger of `company` at `path` (FileExistsError if it exists).

    The file is built under a temporary name and renamed into place, so no
    reader ever sees a half-filled ledger."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"ledger already exists: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".creating")
    tmp.unlink(missing_ok=True)
    rows = _generate(company, seed)
    tables, indexes = _schema_statements()
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN")
        for stmt in tables:
            conn.execute(stmt)
        for table, sql in _INSERT.items():
            data = rows[table]
            for start in range(0, len(data), 200_000):
                conn.executemany(sql, data[start:start + 200_000])
        for stmt in indexes:
            conn.execute(stmt)
        record_history(conn, int(dict(rows["meta"])["change_counter"]))
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    if path.exists():
        tmp.unlink(missing_ok=True)
        raise FileExistsError(f"ledger already exists: {path}")
    os.replace(tmp, path)


def ledger_trial_balance(path: Path) -> dict[str, tuple[int, int]]:
    """Account -> (debit cents, credit cents), summed over all booking lines."""
    with _connect(Path(path)) as conn:
        rows = conn.execute(
            "SELECT account, SUM(debit), SUM(credit) FROM booking_lines "
            "GROUP BY account ORDER BY account").fetchall()
    return {a: (int(d or 0), int(c or 0)) for a, d, c in rows}


# ---------------------------------------------------------------------------
# Events (`dossync ledger CODE EVENT [ARGS]`)
# ---------------------------------------------------------------------------


HISTORY_DDL = "CREATE TABLE IF NOT EXISTS history (counter INTEGER PRIMARY KEY, id TEXT NOT NULL)"


def record_history(conn: sqlite3.Connection, counter: int) -> str:
    """Log a commit that brought the change counter to `counter`, in the caller's
    transaction: its history id is chained from the previous one with a fresh
    nonce (a ledger written before the log existed starts its chain here)."""
    conn.execute(HISTORY_DDL)
    row = conn.execute("SELECT id FROM history ORDER BY counter DESC LIMIT 1").fetchone()
    history_id = hashlib.sha256(
        f"{row[0] if row else ''}:{counter}:{secrets.token_hex(16)}".encode()).hexdigest()[:32]
    conn.execute("INSERT OR REPLACE INTO history VALUES (?, ?)", (counter, history_id))
    return history_id


class _Conn:
    """A short-lived connection; closes on exit (sqlite3's own context manager
    only ends the transaction)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self.conn.execute("PRAGMA foreign_keys=OFF")

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


def _connect(path: Path) -> _Conn:
    if not path.is_file():
        raise LedgerEventError(f"ledger not found: {path}")
    return _Conn(path)


def snapshot_dir(path: Path) -> Path:
    """Where `snapshot NAME` keeps its copies of the ledger at `path`."""
    path = Path(path)
    return path.with_name(path.name + ".snapshots")


class _Tx:
    """One event's write transaction: allocates change-counter values, ids, doc numbers."""

    def __init__(self, conn: sqlite3.Connection, path: Path, event: str) -> None:
        self.conn = conn
        self.path = path
        conn.execute("BEGIN IMMEDIATE")
        self.meta = dict(conn.execute("SELECT key, value FROM meta"))
        if "change_counter" not in self.meta:
            raise LedgerEventError(f"{path}: not a demo ledger (meta.change_counter missing)")
        self.counter_before = int(self.meta["change_counter"])
        self.counter = self.counter_before
        self.rng = random.Random(f"{self.meta.get('code', '')}:{self.counter_before}:{event}")
        self._next_booking: int | None = None
        self._next_matching: int | None = None
        self._doc_seq: dict[tuple[str, str], int] = {}

    def next_rv(self) -> int:
        self.counter += 1
        return self.counter

    def commit(self) -> None:
        if self.counter != self.counter_before:
            self.conn.execute("UPDATE meta SET value=? WHERE key='change_counter'",
                              (str(self.counter),))
            record_history(self.conn, self.counter)
        self.conn.execute("COMMIT")

    def period_of(self, day: str) -> tuple[int, int, int] | None:
        """(period id, fiscal year id, closed) of the period containing `day`."""
        row = self.conn.execute(
            "SELECT id, fiscal_year_id, closed FROM periods WHERE start_date<=? AND end_date>=? "
            "ORDER BY id LIMIT 1", (day, day)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def doc_no(self, journal: str, day: str) -> str:
        year = day[:4]
        key = (journal, year)
        if key not in self._doc_seq:
            prefix = f"{journal}-{year}-"
            best = 0
            for (doc,) in self.conn.execute(
                    "SELECT doc_no FROM bookings WHERE journal=? AND doc_no LIKE ?",
                    (journal, prefix + "%")):
                tail = doc[len(prefix):]
                if tail.isdigit():
                    best = max(best, int(tail))
            self._doc_seq[key] = best
        self._doc_seq[key] += 1
        return f"{journal}-{year}-{self._doc_seq[key]:05d}"

    def insert_booking(self, journal: str, doc_type: str, day: str, due: str | None,
                       relation: int | None, description: str | None, reference: str | None,
                       lines: list[tuple]) -> tuple[int, str]:
        """Insert a booking with `lines` = [(account, relation, text, debit, credit, vat)]."""
        debit = sum(l[3] for l in lines)
        credit = sum(l[4] for l in lines)
        if debit != credit:
            raise LedgerEventError(f"{self.path}: refusing unbalanced booking {debit} != {credit}")
        where = self.period_of(day)
        if where is None:
            raise LedgerEventError(f"{self.path}: no period contains {day}")
        pid, fy, _ = where
        if self._next_booking is None:
            self._next_booking = (self.conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM bookings").fetchone()[0]) + 1
        bid = self._next_booking
        self._next_booking += 1
        doc = self.doc_no(journal, day)
        self.conn.execute("INSERT INTO bookings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            bid, journal, doc, doc_type, fy, pid, day, due, relation, description, reference,
            self.next_rv()))
        self.conn.executemany("INSERT INTO booking_lines VALUES (?,?,?,?,?,?,?,?)", [
            (bid, no, *line) for no, line in enumerate(lines, start=1)])
        return bid, doc

    def insert_matching(self, invoice_id: int, payment_id: int, amount: int) -> None:
        if self._next_matching is None:
            self._next_matching = (self.conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM matchings").fetchone()[0]) + 1
        self.conn.execute("INSERT INTO matchings VALUES (?,?,?,?,?)", (
            self._next_matching, invoice_id, payment_id, amount, self.next_rv()))
        self._next_matching += 1

    def log_deletion(self, stream: str, key: str, when: str) -> None:
        self.conn.execute("INSERT INTO deletion_log VALUES (?,?,?,?)",
                          (self.next_rv(), stream, key, when))


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _int_arg(event: str, args: list[str], path: Path) -> int:
    if len(args) != 1:
        raise LedgerEventError(f"{path}: '{event}' takes exactly one argument N (got {args!r})")
    try:
        n = int(args[0])
    except ValueError:
        raise LedgerEventError(f"{path}: '{event}' N must be a whole number, not {args[0]!r}") \
            from None
    if n < 1:
        raise LedgerEventError(f"{path}: '{event}' N must be at least 1 (got {n})")
    return n


def _no_args(event: str, args: list[str], path: Path) -> None:
    if args:
        raise LedgerEventError(f"{path}: '{event}' takes no arguments (got {args!r})")


def _open_days(tx: _Tx) -> list[str]:
    """The days of open periods of open fiscal years, up to 2026-12-31."""
    rows = tx.conn.execute(
        "SELECT p.start_date, p.end_date FROM periods p JOIN fiscal_years f "
        "ON f.id = p.fiscal_year_id WHERE p.closed=0 AND f.closed=0 AND p.start_date<=? "
        "ORDER BY p.start_date", (_END.isoformat(),)).fetchall()
    days: list[str] = []
    for start, end in rows:
        d = date.fromisoformat(start)
        last = min(date.fromisoformat(end), _END)
        while d <= last:
            days.append(d.isoformat())
            d += timedelta(days=1)
    return days


def _event_profile(tx: _Tx) -> _Profile:
    """The dossier's booking habits, read back from its recent bookings."""
    conn = tx.conn
    max_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM bookings").fetchone()[0]
    recent = conn.execute(
        "SELECT b.journal, b.relation_id, l.account, l.vat_code, l.debit + l.credit "
        "FROM bookings b JOIN booking_lines l ON l.booking_id = b.id "
        "WHERE b.id > ? AND b.doc_type='invoice'", (max_id - 400,)).fetchall()
    revenue: dict[str, int] = {}
    sales_vat: dict[str, int] = {}
    supplier_cost: dict[int, str] = {}
    sizes: list[int] = []
    for journal, rel, account, vat, amount in recent:
        if journal == "VERK" and account.startswith("70"):
            revenue[account] = revenue.get(account, 0) + 1
            if vat:
                sales_vat[vat] = sales_vat.get(vat, 0) + 1
            sizes.append(amount)
        elif journal == "AANK" and account[:2] in ("60", "61", "24") and rel is not None:
            supplier_cost.setdefault(rel, account)
    for rel, account in conn.execute(
            "SELECT b.relation_id, l.account FROM bookings b JOIN booking_lines l "
            "ON l.booking_id=b.id AND l.line_no=2 WHERE b.journal='AANK' AND b.id > ?",
            (max_id - 2000,)):
        if rel is not None:
            supplier_cost.setdefault(rel, account)
    rel_rows = conn.execute("SELECT id, kind, name FROM relations ORDER BY id").fetchall()
    names = {r[0]: r[2] for r in rel_rows}
    customers = [r[0] for r in rel_rows if r[1] == "customer"]
    suppliers = [r[0] for r in rel_rows if r[1] == "supplier"]
    if not customers or not suppliers:
        raise LedgerEventError(f"{tx.path}: the ledger has no customers or suppliers")
    n_vat = sum(sales_vat.values()) or 1
    sector = {
        "revenue": sorted(revenue, key=lambda a: -revenue[a]) or ["700000"],
        "sales_vat": [(c, k / n_vat) for c, k in sorted(sales_vat.items(), key=lambda x: -x[1])]
        or [("V21", 1.0)],
        "size": (sorted(sizes)[len(sizes) // 2] / 100 if sizes else 500.0),
    }
    return _Profile(sector, customers, suppliers, supplier_cost, names)


def _as_line_tuples(lines: list[tuple]) -> list[tuple]:
    """Bulk-path lines (bid, no, account, rel, text, debit, credit, vat) -> event lines."""
    return [(l[2], l[3], l[4], l[5], l[6], l[7]) for l in lines]


def _open_invoices(tx: _Tx, limit_recent: int = 4000) -> list[tuple[int, str, int, int]]:
    """(invoice id, journal, relation, amount still due) of recent unpaid invoices."""
    max_id = tx.conn.execute("SELECT COALESCE(MAX(id), 0) FROM bookings").fetchone()[0]
    rows = tx.conn.execute(
        """
        WITH inv AS (
            SELECT b.id, b.journal, b.relation_id, SUM(l.debit + l.credit) AS total
            FROM bookings b JOIN booking_lines l ON l.booking_id = b.id
            WHERE b.doc_type = 'invoice' AND b.id > ? AND l.account IN ('400000', '440000')
            GROUP BY b.id, b.journal, b.relation_id),
        paid AS (SELECT invoice_id, SUM(amount) AS amount FROM matchings
                 WHERE invoice_id > ? GROUP BY invoice_id)
        SELECT inv.id, inv.journal, inv.relation_id, inv.total - COALESCE(paid.amount, 0)
        FROM inv LEFT JOIN paid ON paid.invoice_id = inv.id
        WHERE inv.total - COALESCE(paid.amount, 0) > 0 AND inv.relation_id IS NOT NULL
        ORDER BY inv.id
        """, (max_id - limit_recent, max_id - limit_recent)).fetchall()
    return [(int(a), str(j), int(r), int(d)) for a, j, r, d in rows]


def _ev_new_bookings(tx: _Tx, args: list[str]) -> str:
    n = _int_arg("new-bookings", args, tx.path)
    days = _open_days(tx)
    if not days:
        raise LedgerEventError(f"{tx.path}: no open period to book in")
    rng = tx.rng
    p = _event_profile(tx)
    open_inv = _open_invoices(tx)
    rng.shuffle(open_inv)
    used_days: list[str] = []
    kinds = {"sales": 0, "purchase": 0, "payment": 0}
    for _ in range(n):
        # dates cluster in the first open periods, as an accountant catches up
        day = days[min(len(days) - 1, int(rng.random() ** 2 * len(days)))]
        r = rng.random()
        if r >= 0.7 and open_inv:
            chunk = [open_inv.pop() for _ in range(min(len(open_inv), 1 + int(rng.random() * 3)))]
            lines: list[tuple] = []
            for _, journal, rel, due in chunk:
                if journal == "VERK":
                    lines += [("550000", None, p.names.get(rel), due, 0, None),
                              ("400000", rel, None, 0, due, None)]
                else:
                    lines += [("440000", rel, None, due, 0, None),
                              ("550000", None, p.names.get(rel), 0, due, None)]
            sid, _ = tx.insert_booking("FIN", "statement", day, None, None,
                                       f"Rekeninguittreksel {day}", None, lines)
            for inv, _, _, due in chunk:
                tx.insert_matching(inv, sid, due)
            kinds["payment"] += 1
        elif r < 0.4:
            rel = rng.choice(p.customers)
            due = (date.fromisoformat(day) + timedelta(days=30)).isoformat()
            lines_bulk, _ = _sales_lines(rng, p, 0, rel, False, scale=0.5)
            tx.insert_booking("VERK", "invoice", day, due, rel, f"Factuur {p.names[rel]}", None,
                              _as_line_tuples(lines_bulk))
            kinds["sales"] += 1
        else:
            rel = rng.choice(p.suppliers)
            due = (date.fromisoformat(day) + timedelta(days=30)).isoformat()
            lines_bulk, _ = _purchase_lines(rng, p, 0, rel, False)
            tx.insert_booking("AANK", "invoice", day, due, rel,
                              f"Aankoopfactuur {p.names[rel]}", None, _as_line_tuples(lines_bulk))
            kinds["purchase"] += 1
        used_days.append(day)
    tx.commit()
    return (f"booked {n} new documents in {min(used_days)[:7]}..{max(used_days)[:7]} "
            f"({kinds['sales']} sales, {kinds['purchase']} purchase invoices, "
            f"{kinds['payment']} bank statements)")


def _ev_validate_proposals(tx: _Tx, args: list[str]) -> str:
    change_first = False
    for a in args:
        if a == "--change-first":
            change_first = True
        else:
            raise LedgerEventError(
                f"{tx.path}: 'validate-proposals' takes only --change-first (got {a!r})")
    rows = tx.conn.execute(
        "SELECT ref, journal, date, relation_id, amount, lines FROM proposals "
        "WHERE status='received' ORDER BY received_at, ref").fetchall()
    if not rows:
        tx.conn.execute("ROLLBACK")
        return "no proposals waiting: nothing booked"
    active = tx.meta.get("active_period", ACTIVE_PERIOD)
    active_first = f"{active}-01"
    booked: list[str] = []
    skipped: list[str] = []
    changed = ""
    for i, (ref, journal, day, rel, _amount, lines_json) in enumerate(rows):
        try:
            raw = json.loads(lines_json)
            lines = [[str(l["account"]), None, None, int(l.get("debit") or 0),
                      int(l.get("credit") or 0), l.get("vat_code")] for l in raw]
        except (ValueError, KeyError, TypeError):
            skipped.append(f"{ref} (unreadable lines)")
            continue
        if not lines or sum(l[3] for l in lines) != sum(l[4] for l in lines):
            skipped.append(f"{ref} (unbalanced)")
            continue
        open_item = "400000" if journal == "VERK" else "440000"
        for line in lines:
            if line[0] == open_item:
                line[1] = rel
        where = tx.period_of(day)
        if where is None or where[2] == 1:
            day = active_first
        sales = journal == "VERK"
        first_line = lines[0]
        is_credit_note = (first_line[0] == open_item
                          and (first_line[4] > 0 if sales else first_line[3] > 0))
        if change_first and i == 0:
            idx = next((k for k, l in enumerate(lines) if l[0][:1] in ("6", "7")), None)
            ob = next((k for k, l in enumerate(lines) if l[0] == open_item), None)
            if idx is not None and ob is not None:
                delta = 100 * (1 + int(tx.rng.random() * 5)) + int(tx.rng.random() * 100)
                old = lines[idx][0]
                choices = (("700000", "700100", "705000") if old.startswith("7")
                           else _ALT_COST_ACCOUNTS)
                lines[idx][0] = next(a for a in choices if a != old)
                side = 3 if lines[idx][3] else 4
                lines[idx][side] += delta
                # the open-item line sits on the other side; growing it keeps the balance
                lines[ob][4 if side == 3 else 3] += delta
                changed = (f"; {ref} corrected: account {old}->{lines[idx][0]}, "
                           f"amount +{delta / 100:.2f} EUR")
        due = (date.fromisoformat(day) + timedelta(days=30)).isoformat()
        bid, doc = tx.insert_booking(
            journal, "credit_note" if is_credit_note else "invoice", day, due, rel,
            f"Boekingsvoorstel {ref}", ref, [tuple(l) for l in lines])
        tx.conn.execute("UPDATE proposals SET status='booked', booking_id=? WHERE ref=?",
                        (bid, ref))
        booked.append(doc)
    tx.commit()
    msg = f"validated {len(booked)} proposals as definitive bookings"
    if booked:
        msg += f" ({booked[0]}..{booked[-1]})"
    if skipped:
        msg += f"; skipped {len(skipped)}: {', '.join(skipped)}"
    return msg + changed


def _ev_book_vat_return(tx: _Tx, args: list[str]) -> str:
    _no_args("book-vat-return", args, tx.path)
    active = tx.meta.get("active_period", ACTIVE_PERIOD)
    year, month = int(active[:4]), int(active[5:7])
    q = (month - 1) // 3  # quarter index of the active period (0-based); settle the one before
    if q == 0:
        year, q = year - 1, 4
    qstart = date(year, 3 * (q - 1) + 1, 1)
    qend = date(year + (q == 4), (3 * q) % 12 + 1, 1) - timedelta(days=1)
    label = f"{year}-Q{q}"
    description = f"Btw-aangifte {label}"
    if tx.conn.execute("SELECT 1 FROM bookings WHERE journal='DIV' AND description=? LIMIT 1",
                       (description,)).fetchone():
        raise LedgerEventError(f"{tx.path}: the VAT return for {label} is already booked")
    (due_vat, deductible) = tx.conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN l.account='451000' THEN l.credit - l.debit END), 0), "
        "       COALESCE(SUM(CASE WHEN l.account='411000' THEN l.debit - l.credit END), 0) "
        "FROM booking_lines l JOIN bookings b ON b.id = l.booking_id "
        "WHERE l.account IN ('451000', '411000') AND b.date BETWEEN ? AND ?",
        (qstart.isoformat(), qend.isoformat())).fetchone()
    if not due_vat and not deductible:
        raise LedgerEventError(f"{tx.path}: no VAT booked in {label}: nothing to settle")
    lines: list[tuple] = []
    if due_vat:
        lines.append(("451000", None, "Verschuldigde btw", max(due_vat, 0), max(-due_vat, 0), None))
    if deductible:
        lines.append(("411000", None, "Aftrekbare btw", max(-deductible, 0), max(deductible, 0),
                      None))
    balance = due_vat - deductible  # > 0: payable
    if balance > 0:
        lines.append(("451200", None, "Te betalen aan de btw", 0, balance, None))
    elif balance < 0:
        lines.append(("411200", None, "Terug te vorderen van de btw", -balance, 0, None))
    day = f"{active}-01"
    _, doc = tx.insert_booking("DIV", "misc", day, None, None, description, None, lines)
    tx.commit()
    word = "payable" if balance >= 0 else "refundable"
    return (f"booked VAT return {label} as {doc} on {day}: {abs(balance) / 100:.2f} EUR {word}")


def _ev_year_end_closing(tx: _Tx, args: list[str]) -> str:
    _no_args("year-end-closing", args, tx.path)
    day = f"{LAST_YEAR}-12-31"
    where = tx.period_of(day)
    if where is None or where[2]:
        raise LedgerEventError(f"{tx.path}: period {day[:7]} is closed or missing")
    fy_closed = tx.conn.execute("SELECT closed FROM fiscal_years WHERE id=?",
                                (where[1],)).fetchone()
    if fy_closed and fy_closed[0]:
        raise LedgerEventError(f"{tx.path}: the fiscal year containing {day} is closed")
    rng = tx.rng
    size = tx.conn.execute(
        "SELECT COUNT(*) FROM booking_lines WHERE booking_id > "
        "(SELECT COALESCE(MAX(id), 0) - 1000 FROM bookings)").fetchone()[0] or 1
    scale = 1 + size // 500

    def amount(base: int) -> int:
        return int(base * scale * (0.8 + 0.4 * rng.random()))

    entries: list[tuple[str, list[tuple]]] = []
    dep_furniture, dep_vehicles, dep_it = amount(45_000), amount(120_000), amount(30_000)
    entries.append(("Jaarafsluiting: afschrijvingen", [
        ("630200", None, "Afschrijvingen boekjaar", dep_furniture + dep_vehicles + dep_it, 0, None),
        ("240900", None, "Meubilair", 0, dep_furniture, None),
        ("241900", None, "Rollend materieel", 0, dep_vehicles, None),
        ("242900", None, "Informaticamaterieel", 0, dep_it, None),
    ]))
    prepaid = amount(60_000)
    entries.append(("Jaarafsluiting: over te dragen kosten (verzekering)", [
        ("490000", None, "Verzekeringspremie volgend boekjaar", prepaid, 0, None),
        ("613500", None, "Verzekeringen", 0, prepaid, None),
    ]))
    deferred = amount(80_000)
    entries.append(("Jaarafsluiting: over te dragen opbrengsten", [
        ("705000", None, "Vooruitgefactureerde prestaties", deferred, 0, None),
        ("493000", None, "Over te dragen opbrengsten", 0, deferred, None),
    ]))
    holiday = amount(150_000)
    entries.append(("Jaarafsluiting: provisie vakantiegeld", [
        ("620200", None, "Vakantiegeld", holiday, 0, None),
        ("456000", None, "Vakantiegeld", 0, holiday, None),
    ]))
    docs = [tx.insert_booking("DIV", "misc", day, None, None, desc, None, lines)[1]
            for desc, lines in entries]
    tx.commit()
    return (f"booked {len(docs)} year-end closing entries on {day} ({docs[0]}..{docs[-1]}): "
            "depreciation, accruals, holiday pay provision")


def _ev_delete_bookings(tx: _Tx, args: list[str]) -> str:
    n = _int_arg("delete-bookings", args, tx.path)
    rows = tx.conn.execute(
        "SELECT DISTINCT b.id, b.doc_no FROM bookings b JOIN periods p ON p.id = b.period_id "
        "WHERE p.closed = 0 ORDER BY b.id").fetchall()
    if not rows:
        raise LedgerEventError(f"{tx.path}: no bookings in open periods to delete")
    first_open = rows[0][0]
    matched: set[int] = set()
    for inv, pay in tx.conn.execute(
            "SELECT invoice_id, payment_id FROM matchings WHERE invoice_id >= ? OR payment_id >= ?",
            (first_open, first_open)):
        matched.add(inv)
        matched.add(pay)
    free = [r for r in rows if r[0] not in matched]
    busy = [r for r in rows if r[0] in matched]
    tx.rng.shuffle(free)
    tx.rng.shuffle(busy)
    victims = sorted((free + busy)[:n])
    ids = [bid for bid, _ in victims]
    marks = ",".join("?" * len(ids))
    when = _now()
    match_ids = [mid for (mid,) in tx.conn.execute(
        f"SELECT DISTINCT id FROM matchings WHERE invoice_id IN ({marks}) "
        f"OR payment_id IN ({marks}) ORDER BY id", (*ids, *ids))]
    for mid in match_ids:
        tx.conn.execute("DELETE FROM matchings WHERE id=?", (mid,))
        tx.log_deletion("matchings", str(mid), when)
    n_match = len(match_ids)
    docs: list[str] = []
    for bid, doc in victims:
        tx.conn.execute("DELETE FROM booking_lines WHERE booking_id=?", (bid,))
        tx.conn.execute("DELETE FROM bookings WHERE id=?", (bid,))
        tx.log_deletion("bookings", str(bid), when)
        docs.append(doc)
    tx.commit()
    msg = f"deleted {len(docs)} bookings from open periods ({', '.join(docs[:5])}"
    msg += ", ...)" if len(docs) > 5 else ")"
    if n_match:
        msg += f" and {n_match} matchings"
    if len(docs) < n:
        msg += f"; only {len(docs)} were available"
    return msg


def _ev_purge_deletion_log(tx: _Tx, args: list[str]) -> str:
    _no_args("purge-deletion-log", args, tx.path)
    count, max_seq = tx.conn.execute("SELECT COUNT(*), MAX(seq) FROM deletion_log").fetchone()
    if not count:
        tx.conn.execute("ROLLBACK")
        return "deletion log already empty: nothing purged"
    tx.conn.execute("DELETE FROM deletion_log")
    tx.conn.execute("UPDATE meta SET value=? WHERE key='deletion_log_from'", (str(max_seq + 1),))
    tx.commit()
    return f"purged {count} deletion log entries; the log is now complete from seq {max_seq + 1}"


def _ev_edit_closed_period(tx: _Tx, args: list[str]) -> str:
    _no_args("edit-closed-period", args, tx.path)
    candidates = tx.conn.execute(
        "SELECT p.id, p.code FROM periods p JOIN fiscal_years f ON f.id = p.fiscal_year_id "
        "WHERE p.closed=1 AND f.closed=1 ORDER BY (p.code = '2025-06') DESC, p.code DESC"
    ).fetchall()
    for pid, pcode in candidates:
        rows = tx.conn.execute(
            "SELECT b.id, b.doc_no FROM bookings b WHERE b.period_id=? AND b.journal='AANK' "
            "AND b.doc_type='invoice' AND EXISTS (SELECT 1 FROM booking_lines l WHERE "
            "l.booking_id=b.id AND l.account='440000' AND l.credit>0) AND EXISTS (SELECT 1 FROM "
            "booking_lines l WHERE l.booking_id=b.id AND l.account LIKE '6%' AND l.debit>0) "
            "ORDER BY b.id", (pid,)).fetchall()
        if rows:
            break
    else:
        raise LedgerEventError(f"{tx.path}: no purchase invoice in a closed fiscal year to edit")
    bid, doc = rows[int(tx.rng.random() * len(rows))]
    line_no, old_account = tx.conn.execute(
        "SELECT line_no, account FROM booking_lines WHERE booking_id=? AND account LIKE '6%' "
        "AND debit>0 ORDER BY line_no LIMIT 1", (bid,)).fetchone()
    new_account = next(a for a in _ALT_COST_ACCOUNTS if a != old_account)
    delta = 100 * (1 + int(tx.rng.random() * 8)) + int(tx.rng.random() * 100)
    tx.conn.execute("UPDATE booking_lines SET account=?, debit=debit+? "
                    "WHERE booking_id=? AND line_no=?", (new_account, delta, bid, line_no))
    ap_no = tx.conn.execute("SELECT MIN(line_no) FROM booking_lines WHERE booking_id=? "
                            "AND account='440000' AND credit>0", (bid,)).fetchone()[0]
    tx.conn.execute("UPDATE booking_lines SET credit=credit+? WHERE booking_id=? AND line_no=?",
                    (delta, bid, ap_no))
    tx.conn.execute("COMMIT")  # untracked: no rv, no counter
    return (f"edited {doc} in closed period {pcode} (change tracking bypassed): line {line_no} "
            f"account {old_account}->{new_account}, amount +{delta / 100:.2f} EUR on the cost "
            f"and supplier lines")


def _ev_restructure_fiscal_year(tx: _Tx, args: list[str]) -> str:
    _no_args("restructure-fiscal-year", args, tx.path)
    fys = {code: (fid, start, end) for fid, code, start, end in tx.conn.execute(
        "SELECT id, code, start_date, end_date FROM fiscal_years")}
    if "2025" not in fys or "2026" not in fys:
        raise LedgerEventError(f"{tx.path}: fiscal years 2025 and 2026 are required")
    fy25, _, end25 = fys["2025"]
    fy26 = fys["2026"][0]
    if end25 == "2026-03-31":
        raise LedgerEventError(f"{tx.path}: fiscal year 2025 already ends on 2026-03-31")
    tx.conn.execute("UPDATE fiscal_years SET end_date='2026-03-31' WHERE id=?", (fy25,))
    tx.conn.execute("UPDATE fiscal_years SET start_date='2026-04-01' WHERE id=?", (fy26,))
    pids = [r[0] for r in tx.conn.execute(
        "SELECT id FROM periods WHERE code IN ('2026-01','2026-02','2026-03')")]
    marks = ",".join("?" * len(pids))
    tx.conn.execute(f"UPDATE periods SET fiscal_year_id=? WHERE id IN ({marks})", (fy25, *pids))
    moved = tx.conn.execute(f"UPDATE bookings SET fiscal_year_id=? WHERE period_id IN ({marks})",
                            (fy25, *pids)).rowcount
    tx.conn.execute("COMMIT")  # untracked
    return (f"restructured fiscal years (change tracking bypassed): FY 2025 now runs "
            f"2025-01-01..2026-03-31, FY 2026 2026-04-01..2026-12-31; periods 2026-01..2026-03 "
            f"and {moved} bookings moved to FY 2025")


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _snapshot_file(path: Path, event: str, args: list[str]) -> Path:
    if len(args) != 1 or not _NAME_RE.match(args[0]) or ".." in args[0]:
        raise LedgerEventError(
            f"{path}: '{event}' takes one NAME of letters, digits, '.', '_' or '-' (got {args!r})")
    return snapshot_dir(path) / f"{args[0]}.sqlite"


def _snapshot(path: Path, args: list[str]) -> str:
    target = _snapshot_file(path, "snapshot", args)
    if not path.is_file():
        raise LedgerEventError(f"ledger not found: {path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with _connect(path) as src:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    os.replace(tmp, target)
    return f"snapshot '{args[0]}' of {path.name} written to {target}"


def _restore(path: Path, args: list[str]) -> str:
    source = _snapshot_file(path, "restore-backup", args)
    if not source.is_file():
        raise LedgerEventError(f"{path}: no snapshot '{args[0]}' (looked for {source})")
    if not path.is_file():
        raise LedgerEventError(f"ledger not found: {path}")
    src = sqlite3.connect(source)
    try:
        counter = src.execute("SELECT value FROM meta WHERE key='change_counter'").fetchone()
        with _connect(path) as dst:
            src.backup(dst)  # page-level copy under the destination's lock: readers see old or new
    finally:
        src.close()
    return (f"restored snapshot '{args[0]}' over {path}: the ledger went back in time "
            f"(change counter now {counter[0] if counter else '?'})")


_EVENTS: dict[str, Callable[[_Tx, list[str]], str]] = {
    "new-bookings": _ev_new_bookings,
    "validate-proposals": _ev_validate_proposals,
    "book-vat-return": _ev_book_vat_return,
    "year-end-closing": _ev_year_end_closing,
    "delete-bookings": _ev_delete_bookings,
    "purge-deletion-log": _ev_purge_deletion_log,
    "edit-closed-period": _ev_edit_closed_period,
    "restructure-fiscal-year": _ev_restructure_fiscal_year,
}


def apply_event(path: Path, event: str, args: list[str]) -> str:
    """Run one `dossync ledger` event on the ledger at `path`; return a one-line message.

    Raises LedgerEventError for an unknown event, bad arguments, a missing
    ledger or snapshot, or when there is nothing the event could do."""
    path = Path(path)
    args = list(args)
    if event not in LEDGER_EVENTS:
        raise LedgerEventError(
            f"{path}: unknown ledger event {event!r}; known: {', '.join(LEDGER_EVENTS)}")
    if event == "snapshot":
        return _snapshot(path, args)
    if event == "restore-backup":
        return _restore(path, args)
    with _connect(path) as conn:
        try:
            tx = _Tx(conn, path, event)
            return _EVENTS[event](tx, args)
        except sqlite3.DatabaseError as exc:
            raise LedgerEventError(f"{path}: {event} failed: {exc}") from exc


def receive_proposals(path: Path, proposals: list[dict]) -> None:
    """The package receives booking proposals from the worklist (status 'received').

    Each proposal: ref, journal, date, relation_id, amount (cents), lines (list
    of {account, debit, credit, vat_code}). They wait until the accountant
    validates them (`validate-proposals`); receiving changes no booking.
    """
    if not path.is_file():
        raise LedgerEventError(f"ledger file {path} does not exist")
    received_at = _now()
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            conn.executemany(  # a proposal sent again (a retried queue) is taken once
                "INSERT OR IGNORE INTO proposals (ref, journal, date, relation_id, amount, lines, "
                "status, received_at) VALUES (?, ?, ?, ?, ?, ?, 'received', ?)",
                [(p["ref"], p["journal"], p["date"], p["relation_id"], p["amount"],
                  json.dumps(p["lines"]), received_at) for p in proposals])
    except sqlite3.Error as exc:
        raise LedgerEventError(f"ledger {path} refused the proposals: {exc}") from exc
    finally:
        conn.close()
