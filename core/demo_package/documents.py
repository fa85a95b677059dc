"""What a dossier's documents look like: the postings of its invoices and credit notes.

Shared by the bulk generator (a whole ledger at once) and the `new-bookings`
event (a few documents in an existing ledger): both book a sales invoice the
same way, from the dossier's booking habits (its :class:`Profile`). Amounts
are integer cents; the same random draws give the same documents.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

from dossync.core.demo_package.reference import VatShare, vat_codes
from dossync.core.demo_package.rows import Posting, credit, debit

LINE_TEXT = {
    "700000": "Verkoop goederen", "700100": "Verkoop eigen producten",
    "705000": "Prestaties", "600000": "Grondstoffen", "601000": "Hulpstoffen",
    "602000": "Diensten", "603000": "Onderaanneming", "604000": "Handelsgoederen",
    "610000": "Huur", "611000": "Onderhoud", "612000": "Energie",
    "613000": "Erelonen", "613100": "Telefonie", "613200": "Licenties",
    "613300": "Kantoorbenodigdheden", "613400": "Publiciteit", "613500": "Verzekering",
    "613600": "Transport", "613700": "Reiskosten", "614000": "Brandstof",
    "614100": "Onderhoud voertuig", "617000": "Uitzendkrachten", "242000": "Informaticamaterieel",
}
"""The text on a document line booked on the account."""

# cost accounts that carry no VAT (insurance) or 6% are handled per account
_PURCHASE_VAT = {"613500": "A00", "610000": "A00", "613000": "A21"}

ALT_COST_ACCOUNTS = ("611000", "613300", "613400", "613600", "613700", "643000", "612000")
"""Cost accounts a purchase is sometimes (re)booked on besides the supplier's usual one."""


def _default_rates() -> dict[str, int]:
    return {code: v.rate for code, v in vat_codes().items()}


@dataclass(frozen=True)
class Profile:
    """What a dossier books: its revenue accounts (the first most used), the VAT mix
    of its sales, a typical sales invoice in euros, its customers and suppliers (relation
    ids), each supplier's usual cost account, every relation's name, and the VAT rates."""

    revenue: tuple[str, ...]
    sales_vat: tuple[VatShare, ...]
    size: float
    customers: list[int]
    suppliers: list[int]
    supplier_cost: dict[int, str]
    names: dict[int, str]
    rate: dict[str, int] = field(default_factory=_default_rates)

    def sales_vat_code(self, rng: random.Random) -> str:
        r = rng.random()
        acc = 0.0
        for code, share in self.sales_vat:
            acc += share
            if r < acc:
                return code
        return self.sales_vat[-1].code


class _Net(NamedTuple):
    account: str
    amount: int
    vat_code: str


def vat(net: int, rate: int) -> int:
    """The VAT on `net` cents at `rate` percent, rounded half up to the cent."""
    return (net * rate + 50) // 100


def sales_invoice(rng: random.Random, p: Profile, relation: int,
                  scale: float = 1.0) -> tuple[list[Posting], int]:
    """A sales invoice to `relation` and its total: 400000 debited with the total,
    one or two revenue lines (70) and a 451000 VAT line per VAT code credited."""
    n_net = 1 if rng.random() < 0.7 else 2
    nets: list[_Net] = []
    vat_by_code: dict[str, int] = {}
    for _ in range(n_net):
        net = max(500, int(rng.lognormvariate(0.0, 0.8) * p.size * 100 * scale))
        code = p.sales_vat_code(rng)
        account = p.revenue[0] if len(p.revenue) == 1 or rng.random() < 0.75 else p.revenue[1]
        nets.append(_Net(account, net, code))
        vat_by_code[code] = vat_by_code.get(code, 0) + vat(net, p.rate[code])
    total = sum(n.amount for n in nets) + sum(vat_by_code.values())
    postings = [debit("400000", total, relation_id=relation)]
    postings += [credit(n.account, n.amount, description=LINE_TEXT.get(n.account),
                        vat_code=n.vat_code) for n in nets]
    postings += [credit("451000", amount, vat_code=code)
                 for code, amount in vat_by_code.items() if amount]
    return postings, total


def purchase_invoice(rng: random.Random, p: Profile, relation: int,
                     scale: float = 1.0) -> tuple[list[Posting], int]:
    """A purchase invoice from `relation` and its total: 440000 credited with the
    total, the supplier's cost account (60/61, sometimes a second one) and a 411000
    VAT line debited."""
    main = p.supplier_cost.get(relation, "604000")
    code = _PURCHASE_VAT.get(main, "A21")
    if main in ("600000", "604000") and p.sales_vat[0].code == "V06":
        code = "A06"
    net1 = max(300, int(rng.lognormvariate(0.0, 0.9) * p.size * 40 * scale))
    nets = [_Net(main, net1, code)]
    if rng.random() < 0.2:
        other = rng.choice(ALT_COST_ACCOUNTS)
        nets.append(_Net(other, max(200, int(net1 * rng.random() * 0.5)), code))
    rate = p.rate[code]
    vat_amount = sum(vat(n.amount, rate) for n in nets)
    total = sum(n.amount for n in nets) + vat_amount
    postings = [credit("440000", total, relation_id=relation)]
    postings += [debit(n.account, n.amount, description=LINE_TEXT.get(n.account),
                       vat_code=code) for n in nets]
    if vat_amount:
        postings.append(debit("411000", vat_amount, vat_code=code))
    return postings, total


def credit_note(invoice: list[Posting], share: float) -> list[Posting]:
    """The credit note reversing `share` of each line of `invoice`; its first line
    (the open item, 400000 or 440000) takes the balance, so the note balances exactly."""
    lines = [p._replace(debit=int(p.credit * share), credit=int(p.debit * share))
             for p in invoice[1:]]
    debit_total = sum(p.debit for p in lines)
    credit_total = sum(p.credit for p in lines)
    open_item = invoice[0]._replace(debit=max(credit_total - debit_total, 0),
                                    credit=max(debit_total - credit_total, 0))
    return [open_item, *lines]
