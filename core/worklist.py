"""The worklist: processed invoices sent to the package as booking proposals.

Sending is the automatic sync: the proposals go to the dossier's package,
where they wait for the accountant, and appear in the portal at once as
provisional bookings so the dashboard and reports move immediately. The
definitive booking read by a later sync (matched on the reference)
replaces the provisional one (`portal.apply_sync`).
"""
from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from core import portal
from core.home import Home
from core.model import UsageError, cents_to_str

VAT_RATES = (21, 21, 21, 6)


@dataclass(frozen=True)
class Proposal:
    """One booking proposal: a processed purchase or sales invoice with VAT lines."""

    ref: str
    journal: str
    kind: str  # purchase | sales
    date: str
    relation_id: int | None
    amount: int  # gross, cents
    lines: tuple[dict, ...]
    note: str = ""

    def to_json(self) -> dict:
        doc = {"ref": self.ref, "journal": self.journal, "date": self.date,
               "amount": cents_to_str(self.amount)}
        if self.note:
            doc["note"] = self.note
        return doc


def _pick(accounts: list[str], preferred: tuple[str, ...], prefix: str) -> str:
    for code in preferred:
        if code in accounts:
            return code
    for code in accounts:
        if code.startswith(prefix):
            return code
    raise UsageError(f"the dossier's chart of accounts has no {prefix}… account for proposals")


def build_proposals(home: Home, code: str, count: int, *, today: date | None = None,
                    rng: random.Random | None = None) -> list[Proposal]:
    """Make `count` proposals, booked in the active period.

    An invoice dated in a closed period goes to the first day of the active
    period, and the proposal says so.
    """
    rng = rng or random.Random()
    dossier = portal.get_dossier(home.portal, code)
    refdata = portal.reference_data(home.portal, code)
    periods = portal.periods(home.portal, code)
    active = next((p for p in periods if p["code"] == dossier.active_period), None)
    if active is None:
        raise UsageError(f"dossier {code} has no active booking period in the portal yet: "
                         f"sync it first")
    journals = {kind: jc for jc, kind in reversed(refdata["journals"])}
    if "sales" not in journals or "purchase" not in journals:
        raise UsageError(f"dossier {code} has no sales and purchase journals for proposals")
    customers = [r[0] for r in refdata["relations"] if r[1] == "customer"]
    suppliers = [r[0] for r in refdata["relations"] if r[1] == "supplier"]
    accounts = refdata["accounts"]
    receivable = _pick(accounts, ("400000",), "40")
    payable = _pick(accounts, ("440000",), "44")
    vat_due = _pick(accounts, ("451000",), "451")
    vat_back = _pick(accounts, ("411000",), "411")
    revenue = [a for a in accounts if a.startswith("70")] or [_pick(accounts, (), "7")]
    costs = [a for a in accounts if a[:2] in ("60", "61")] or [_pick(accounts, (), "6")]

    start = date.fromisoformat(active["start_date"])
    end = min(date.fromisoformat(active["end_date"]), max(today or date.today(), start))
    closed = {p["code"] for p in periods if p["closed"]}
    proposals = []
    for number in range(count):
        sales = number % 2 == 0
        invoice_date = start + timedelta(days=rng.randint(-40, max(0, (end - start).days)))
        note = ""
        if invoice_date.strftime("%Y-%m") in closed or invoice_date < start:
            note = (f"dated {invoice_date.isoformat()} in a closed period: "
                    f"booked in the active period {active['code']}")
            invoice_date = start
        net = rng.randint(50_00, 5_000_00)
        rate = rng.choice(VAT_RATES)
        vat = (net * rate + 50) // 100
        gross = net + vat
        if sales:
            relation = rng.choice(customers) if customers else None
            lines = ({"account": receivable, "debit": gross, "credit": 0, "vat_code": None},
                     {"account": rng.choice(revenue), "debit": 0, "credit": net,
                      "vat_code": f"V{rate:02d}"},
                     {"account": vat_due, "debit": 0, "credit": vat, "vat_code": f"V{rate:02d}"})
        else:
            relation = rng.choice(suppliers) if suppliers else None
            lines = ({"account": payable, "debit": 0, "credit": gross, "vat_code": None},
                     {"account": rng.choice(costs), "debit": net, "credit": 0,
                      "vat_code": f"A{rate:02d}"},
                     {"account": vat_back, "debit": vat, "credit": 0, "vat_code": f"A{rate:02d}"})
        proposals.append(Proposal(
            ref=f"WL-{code}-{secrets.token_hex(4).upper()}",
            journal=journals["sales" if sales else "purchase"], kind="sales" if sales else "purchase",
            date=invoice_date.isoformat(), relation_id=relation, amount=gross, lines=lines,
            note=note))
    return proposals


def propose(home: Home, code: str, count: int) -> tuple[list[Proposal], int]:
    """Send `count` proposals to the package and show them in the portal at once.

    Returns the proposals and the new blue counter.
    """
    home.require()
    dossier = portal.require_dossier(home.portal, code)
    if dossier.package != "demo":
        raise UsageError(f"dossier {code} keeps its books in {dossier.package}, which takes no "
                         f"booking proposals from dossync")
    proposals = build_proposals(home, code, count)
    _send_to_package(Path(dossier.source), proposals)
    periods = {p["code"]: p for p in portal.periods(home.portal, code)}
    bookings, lines = _provisional_tables(proposals, periods)
    counter = portal.add_proposals(home.portal, code, bookings, lines)
    return proposals, counter


def _send_to_package(ledger: Path, proposals: list[Proposal]) -> None:
    from core import demo_package
    from core.model import LedgerUnavailable

    try:
        demo_package.receive_proposals(ledger, [
            {"ref": p.ref, "journal": p.journal, "date": p.date, "relation_id": p.relation_id,
             "amount": p.amount, "lines": list(p.lines)} for p in proposals])
    except demo_package.LedgerEventError as exc:
        raise LedgerUnavailable(f"the proposals could not be sent: {exc}") from exc


def _provisional_tables(proposals: list[Proposal], periods: dict[str, dict]
                        ) -> tuple[pa.Table, pa.Table]:
    bookings = {k: [] for k in ("ref", "journal", "doc_type", "date", "due_date", "relation_id",
                                "fiscal_year_id", "period_id", "amount")}
    lines = {k: [] for k in ("ref", "line_no", "account", "debit", "credit", "vat_code",
                             "relation_id")}
    for p in proposals:
        period = periods[p.date[:7]]
        due = (date.fromisoformat(p.date) + timedelta(days=30)).isoformat()
        for key, value in (("ref", p.ref), ("journal", p.journal), ("doc_type", "invoice"),
                           ("date", p.date), ("due_date", due), ("relation_id", p.relation_id),
                           ("fiscal_year_id", period["fiscal_year_id"]),
                           ("period_id", period["id"]), ("amount", p.amount)):
            bookings[key].append(value)
        for number, line in enumerate(p.lines, 1):
            open_item = line["account"].startswith(("40", "44"))
            for key, value in (("ref", p.ref), ("line_no", number), ("account", line["account"]),
                               ("debit", line["debit"]), ("credit", line["credit"]),
                               ("vat_code", line["vat_code"]),
                               ("relation_id", p.relation_id if open_item else None)):
                lines[key].append(value)
    int64 = pa.int64()
    return (pa.table(bookings, schema=pa.schema([
                ("ref", pa.string()), ("journal", pa.string()), ("doc_type", pa.string()),
                ("date", pa.string()), ("due_date", pa.string()), ("relation_id", int64),
                ("fiscal_year_id", int64), ("period_id", int64), ("amount", int64)])),
            pa.table(lines, schema=pa.schema([
                ("ref", pa.string()), ("line_no", int64), ("account", pa.string()),
                ("debit", int64), ("credit", int64), ("vat_code", pa.string()),
                ("relation_id", int64)])))
