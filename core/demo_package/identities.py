"""Who the demo dossiers are: fake Belgian companies and their relations.

Names, enterprise numbers (with a valid mod-97 check), e-mail addresses and
the sector each company works in, drawn from a seeded random generator: the
same seed gives the same firm. The sector also says what a company books
(revenue and cost accounts, VAT mix, the size of its invoices).
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from dossync.core.demo_package.reference import VatShare
from dossync.core.demo_package.rows import RelationRow

Language = Literal["nl", "fr", "en"]
LANGUAGES: tuple[Language, ...] = ("nl", "fr", "en")


@dataclass(frozen=True)
class DemoCompany:
    """One demo dossier: a Belgian SME with its own ledger."""

    code: str
    name: str
    enterprise_number: str
    language: Language
    email: str
    lines: int
    nightly: bool


@dataclass(frozen=True)
class Sector:
    """A kind of business: how a company in it is named and what it books.

    `names` holds a name template per language ("{n}" is the surname), `tag`
    tells two companies with one surname apart, `size` is a typical sales
    invoice in euros."""

    names: dict[Language, str]
    tag: str
    revenue: tuple[str, ...]
    sales_vat: tuple[VatShare, ...]
    costs: tuple[str, ...]
    size: float


SECTORS: dict[str, Sector] = {
    "bakery": Sector(
        names={"nl": "Bakkerij {n}", "fr": "Boulangerie {n}", "en": "{n} Bakery"}, tag="BAK",
        revenue=("700100", "700000"), sales_vat=(VatShare("V06", 0.8), VatShare("V21", 0.2)),
        costs=("600000", "601000", "604000", "612000", "611000"), size=80.0),
    "construction": Sector(
        names={"nl": "Bouwbedrijf {n}", "fr": "Construction {n}", "en": "{n} Construction"},
        tag="BOUW", revenue=("705000", "700000"),
        sales_vat=(VatShare("V21", 0.6), VatShare("V06", 0.4)),
        costs=("600000", "603000", "614000", "617000", "611000"), size=4200.0),
    "it": Sector(
        names={"nl": "{n} IT Consultancy", "fr": "{n} Informatique", "en": "{n} IT Consulting"},
        tag="IT", revenue=("705000",), sales_vat=(VatShare("V21", 0.85), VatShare("VIC", 0.15)),
        costs=("613200", "613100", "602000", "613700", "242000"), size=3800.0),
    "pharmacy": Sector(
        names={"nl": "Apotheek {n}", "fr": "Pharmacie {n}", "en": "{n} Pharmacy"}, tag="APO",
        revenue=("700000",), sales_vat=(VatShare("V06", 0.85), VatShare("V21", 0.15)),
        costs=("604000", "613200", "612000", "610000"), size=260.0),
    "garage": Sector(
        names={"nl": "Garage {n}", "fr": "Garage {n}", "en": "{n} Motors"}, tag="GAR",
        revenue=("700000", "705000"), sales_vat=(VatShare("V21", 1.0),),
        costs=("604000", "611000", "612000", "613500"), size=650.0),
    "architect": Sector(
        names={"nl": "Architectenbureau {n}", "fr": "Bureau d'architecture {n}",
               "en": "{n} Architects"}, tag="ARCH",
        revenue=("705000",), sales_vat=(VatShare("V21", 1.0),),
        costs=("602000", "613200", "613000", "610000", "613700"), size=2900.0),
    "restaurant": Sector(
        names={"nl": "Restaurant {n}", "fr": "Brasserie {n}", "en": "{n} Kitchen"}, tag="RESTO",
        revenue=("700100", "700000"), sales_vat=(VatShare("V12", 0.7), VatShare("V21", 0.3)),
        costs=("604000", "600000", "612000", "610000", "611000"), size=140.0),
    "florist": Sector(
        names={"nl": "Bloemen {n}", "fr": "Fleurs {n}", "en": "{n} Flowers"}, tag="FLOR",
        revenue=("700000",), sales_vat=(VatShare("V06", 0.9), VatShare("V21", 0.1)),
        costs=("604000", "613600", "612000", "610000"), size=90.0),
    "transport": Sector(
        names={"nl": "Transport {n}", "fr": "Transports {n}", "en": "{n} Logistics"},
        tag="TRANS", revenue=("705000",), sales_vat=(VatShare("V21", 0.8), VatShare("VIC", 0.2)),
        costs=("614000", "614100", "613500", "611000", "617000"), size=1800.0),
    "hairdresser": Sector(
        names={"nl": "Kapsalon {n}", "fr": "Salon de coiffure {n}", "en": "{n} Hair Studio"},
        tag="KAP", revenue=("705000", "700000"), sales_vat=(VatShare("V21", 1.0),),
        costs=("604000", "610000", "612000", "613400"), size=70.0),
}

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

_FIRST_NAMES = ["An", "Bart", "Els", "Koen", "Marie", "Luc", "Sofie", "Pierre", "Julie", "Tom",
                "Nathalie", "Kevin"]


def slug(text: str) -> str:
    """`text` in capitals, ASCII letters and digits joined by '-': 'Van den Bossche' ->
    'VAN-DEN-BOSSCHE'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]+", "-", ascii_text.upper()).strip("-")


def mod97_number(rng: random.Random) -> str:
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
    sector_keys = list(SECTORS)
    rng.shuffle(sector_keys)
    used_codes: set[str] = set()
    used_surnames: set[str] = set()
    companies: list[DemoCompany] = []
    for i in range(count):
        r = rng.random()
        language: Language = "nl" if r < 0.55 else ("fr" if r < 0.9 else "en")
        pool = [s for s in _SURNAMES[language] if s not in used_surnames] or _SURNAMES[language]
        surname = rng.choice(pool)
        used_surnames.add(surname)
        sector = SECTORS[sector_keys[i % len(sector_keys)]]
        name = f"{sector.names[language].format(n=surname)} {rng.choice(_LEGAL_FORM[language])}"
        base = slug(surname)[:20]
        code = base
        if code in used_codes or len(code) < 2:
            code = f"{base}-{sector.tag}"[:20].strip("-")
        n = 2
        while code in used_codes:
            suffix = str(n)
            code = f"{base[: 20 - len(suffix)]}{suffix}"
            n += 1
        used_codes.add(code)
        min_lines = min(500, largest_lines)
        lines = max(int(round(largest_lines * 0.7**i)), min_lines)
        domain = slug(surname).lower() + "-" + sector.tag.lower()
        email = f"{'info' if language != 'fr' else 'contact'}@{domain}.be"
        companies.append(DemoCompany(
            code=code, name=name, enterprise_number=mod97_number(rng), language=language,
            email=email, lines=lines, nightly=(i % 2 == 0),
        ))
    return companies


def sector_of(company: DemoCompany) -> Sector:
    """The sector `company`'s name was made from (IT when none fits)."""
    body = company.name.rsplit(" ", 1)[0]  # without the legal form
    for sector in SECTORS.values():
        for language in LANGUAGES:
            prefix, _, suffix = sector.names[language].partition("{n}")
            if body.startswith(prefix) and body.endswith(suffix):
                return sector
    return SECTORS["it"]


def fake_relations(rng: random.Random, n_customers: int, n_suppliers: int,
                   cost_accounts: list[str], start_rv: int
                   ) -> tuple[list[RelationRow], dict[int, str]]:
    """A dossier's customers then suppliers, ids from 1 and row versions after
    `start_rv`; and each supplier's usual cost account, by relation id."""
    rows: list[RelationRow] = []
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

    def pick_language() -> Language:
        r = rng.random()
        return "nl" if r < 0.6 else ("fr" if r < 0.92 else "en")

    rid = 0
    for _ in range(n_customers):
        rid += 1
        lang = pick_language()
        surname = rng.choice(_SURNAMES[lang])
        if rng.random() < 0.25:  # a private person
            name = unique(f"{rng.choice(_FIRST_NAMES)} {surname}")
            vat = None
        else:
            name = unique(f"{surname} {rng.choice(_CUSTOMER_WORDS[lang])} "
                          f"{rng.choice(_LEGAL_FORM[lang])}")
            vat = "BE" + mod97_number(rng)
        email = f"{slug(name).lower()[:30].strip('-')}@example.be"
        rv += 1
        rows.append(RelationRow(id=rid, kind="customer", name=name, vat_number=vat,
                                email=email, language=lang, rv=rv))
    for i in range(n_suppliers):
        rid += 1
        lang = pick_language()
        account = cost_accounts[i % len(cost_accounts)] if i < 2 * len(cost_accounts) \
            else rng.choice(cost_accounts)
        templates = _SUPPLIER_NAMES.get(account, ["{n} Supplies"])
        name = unique(f"{rng.choice(templates).format(n=rng.choice(_SURNAMES[lang]))} "
                      f"{rng.choice(_LEGAL_FORM[lang])}")
        email = f"facturen@{slug(name).lower()[:30].strip('-')}.be"
        rv += 1
        rows.append(RelationRow(id=rid, kind="supplier", name=name,
                                vat_number="BE" + mod97_number(rng), email=email, language=lang,
                                rv=rv))
        supplier_cost[rid] = account
    return rows, supplier_cost
