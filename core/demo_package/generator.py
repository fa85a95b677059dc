"""The bulk generator: a whole demo ledger's rows, from a company and a seed.

Three years of a Belgian SME's books up to :data:`DEMO_AS_OF`: sales and
purchase invoices, some credit notes, bank statements that pay most invoices
(matched with them), monthly payroll and quarterly depreciation, until the
company's target number of booking lines is reached. Every row version comes
from one running change counter, as the package itself would have written
them. The same (company, seed) gives the same rows, whatever today's date.

This is the demo's bulk path (the benchmarks generate ledgers of millions of
lines): days are indexes from 2024-01-01 into tables computed once, and the
booking lines stay plain tuples (:func:`~dossync.core.demo_package.rows.booked`).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

from dossync.core.demo_package.documents import (Profile, credit_note, purchase_invoice,
                                                 sales_invoice)
from dossync.core.demo_package.identities import DemoCompany, fake_relations, sector_of
from dossync.core.demo_package.ledger import write_ledger
from dossync.core.demo_package.reference import (ACTIVE_PERIOD, DEMO_AS_OF, FIRST_YEAR,
                                                 JOURNALS, LAST_CLOSED_PERIOD, LAST_DAY,
                                                 LAST_YEAR, chart_of_accounts)
from dossync.core.demo_package.rows import (AccountRow, BookingRow, FiscalYearRow, JournalRow,
                                            LedgerRows, MatchingRow, MetaRow, PeriodRow, Posting,
                                            booked, credit, debit)

# --- the calendar, as day indexes from 2024-01-01 ---------------------------------------

_BASE = date(FIRST_YEAR, 1, 1)
_NDAYS = (LAST_DAY - _BASE).days + 1
_DAYSTR = [(_BASE + timedelta(days=i)).isoformat() for i in range(_NDAYS + 400)]
_WEEKDAY = [(_BASE + timedelta(days=i)).weekday() for i in range(_NDAYS + 400)]
_PERIOD_OF_DAY = [((_BASE + timedelta(days=i)).year - FIRST_YEAR) * 12
                  + (_BASE + timedelta(days=i)).month for i in range(_NDAYS)]
_AS_OF_IDX = (DEMO_AS_OF - _BASE).days


def _day(d: date) -> int:
    return (d - _BASE).days


def _month_bounds(period_id: int) -> tuple[int, int]:
    """First and last day of the period (month) `period_id`, 1 being 2024-01."""
    year = FIRST_YEAR + (period_id - 1) // 12
    month = (period_id - 1) % 12 + 1
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return _day(first), _day(nxt) - 1


def _business_day(idx: int) -> int:
    """`idx`, or the Monday after it if it falls in a weekend."""
    while _WEEKDAY[idx] >= 5:
        idx += 1
    return idx


# --- the rows ---------------------------------------------------------------------------


class _Builder:
    """Accumulates rows for the bulk insert, assigning ids, doc numbers and rvs."""

    def __init__(self) -> None:
        self.rv = 0
        self.bookings: list[BookingRow] = []
        self.lines: list[tuple] = []  # BookingLineRow's fields (booked())
        self.matchings: list[MatchingRow] = []
        self.next_booking = 1
        self.next_matching = 1
        self.doc_seq: dict[tuple[str, int], int] = {}  # (journal, year) -> last number

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def booking(self, journal: str, doc_type: str, day: int, due: int | None,
                relation: int | None, description: str | None) -> int:
        """A new booking on day index `day`, due on day index `due`; its id."""
        bid = self.next_booking
        self.next_booking += 1
        dstr = _DAYSTR[day]
        year = int(dstr[:4])
        key = (journal, year)
        seq = self.doc_seq.get(key, 0) + 1
        self.doc_seq[key] = seq
        self.bookings.append(BookingRow(
            id=bid, journal=journal, doc_no=f"{journal}-{year}-{seq:05d}", doc_type=doc_type,
            fiscal_year_id=year - FIRST_YEAR + 1, period_id=_PERIOD_OF_DAY[day], date=dstr,
            due_date=None if due is None else _DAYSTR[due], relation_id=relation,
            description=description, reference=None, rv=self.next_rv()))
        return bid

    def post(self, booking_id: int, postings: list[Posting]) -> None:
        """Book `postings` as the lines of `booking_id`."""
        self.lines += booked(booking_id, postings)

    def match(self, invoice_id: int, payment_id: int, amount: int) -> None:
        self.matchings.append(MatchingRow(id=self.next_matching, invoice_id=invoice_id,
                                          payment_id=payment_id, amount=amount,
                                          rv=self.next_rv()))
        self.next_matching += 1


class _Payment(NamedTuple):
    """An invoice paid on a bank statement still to come."""

    sales: bool
    invoice_id: int
    relation_id: int
    amount: int


def generate(company: DemoCompany, seed: int) -> LedgerRows:
    """Every row of `company`'s demo ledger; the same (company, seed), the same rows."""
    rng = random.Random(f"dossync-demo-ledger:{seed}:{company.code}")
    sector = sector_of(company)
    target = max(company.lines, 50)
    b = _Builder()

    meta = {
        "code": company.code, "name": company.name,
        "enterprise_number": company.enterprise_number, "language": company.language,
        "email": company.email, "deletion_log_from": "1", "active_period": ACTIVE_PERIOD,
    }
    accounts = [AccountRow(code=a.code, name=a.name, rv=b.next_rv()) for a in chart_of_accounts()]
    journals = [JournalRow(code=j.code, name=j.name, kind=j.kind, rv=b.next_rv())
                for j in JOURNALS]
    fiscal_years = [
        FiscalYearRow(id=y - FIRST_YEAR + 1, code=str(y), start_date=f"{y}-01-01",
                      end_date=f"{y}-12-31", closed=1 if y < LAST_YEAR else 0, rv=b.next_rv())
        for y in range(FIRST_YEAR, LAST_YEAR + 1)]
    periods = []
    for y in range(FIRST_YEAR, LAST_YEAR + 1):
        for m in range(1, 13):
            pid = (y - FIRST_YEAR) * 12 + m
            first, last = _month_bounds(pid)
            code = f"{y}-{m:02d}"
            periods.append(PeriodRow(
                id=pid, fiscal_year_id=y - FIRST_YEAR + 1, code=code, start_date=_DAYSTR[first],
                end_date=_DAYSTR[last], closed=1 if code <= LAST_CLOSED_PERIOD else 0,
                rv=b.next_rv()))

    est_bookings = target / 4.2
    n_rel = est_bookings * 0.05
    n_customers = int(min(300, max(5, n_rel * 0.6)))
    n_suppliers = int(min(200, max(5, n_rel * 0.4)))
    cost_accounts = list(sector.costs) + ["610000", "612000", "613000", "613100",
                                          "613500", "614000"]
    cost_accounts = list(dict.fromkeys(cost_accounts))
    relations, supplier_cost = fake_relations(rng, n_customers, n_suppliers, cost_accounts, b.rv)
    b.rv += len(relations)
    names = {r.id: r.name for r in relations}
    customers = [r.id for r in relations if r.kind == "customer"]
    suppliers = [r.id for r in relations if r.kind == "supplier"]
    p = Profile(revenue=sector.revenue, sales_vat=sector.sales_vat, size=sector.size,
                customers=customers, suppliers=suppliers, supplier_cost=supplier_cost,
                names=names)

    # scale of the business: payroll and fixed assets grow with the ledger size
    employees = max(1, min(60, target // 25_000 + 1))
    gross_salary = 3_400_00 * employees
    assets = {"240900": 1_200_00 + 40 * target // 100, "241900": 2_500_00 + 80 * target // 100}
    n_cust, n_supp = len(customers), len(suppliers)

    payments: dict[int, list[_Payment]] = {}  # by the day of their bank statement
    months = _PERIOD_OF_DAY[_AS_OF_IDX]
    invoices_made = 0
    invoice_lines = 0  # lines of invoices + their payments (for the adaptive estimate)
    misc_per_month = 12.0
    lines_out = b.lines

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
                bid = b.booking("VERK", "invoice", day, day + 30, rel, f"Factuur {names[rel]}")
                invoice, total = sales_invoice(rng, p, rel)
            else:
                rel = suppliers[int(rng.random() ** 1.5 * n_supp)]
                bid = b.booking("AANK", "invoice", day, day + 30, rel,
                                f"Aankoopfactuur {names[rel]}")
                invoice, total = purchase_invoice(rng, p, rel)
            b.post(bid, invoice)
            invoices_made += 1
            due_left = total
            if rng.random() < 0.04:  # partial or full credit note, matched with the invoice
                cn_day = day + 3 + int(rng.random() * 20)
                if cn_day <= _AS_OF_IDX:
                    share = 1.0 if rng.random() < 0.4 else 0.1 + 0.5 * rng.random()
                    cn = b.booking("VERK" if sales else "AANK", "credit_note", cn_day, cn_day + 30,
                                   rel, f"Creditnota {names[rel]}")
                    note = credit_note(invoice, share)
                    b.post(cn, note)
                    cn_total = note[0].debit + note[0].credit
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
                payments.setdefault(pay_day, []).append(_Payment(sales, bid, rel, amount))
        # bank statements of the month: CODA, up to 8 transactions per statement
        for day in range(first, last + 1):
            todays = payments.pop(day, None)
            if not todays:
                continue
            for start in range(0, len(todays), 8):
                chunk = todays[start:start + 8]
                sid = b.booking("FIN", "statement", day, None, None,
                                f"Rekeninguittreksel {_DAYSTR[day]}")
                statement: list[Posting] = []
                for pay in chunk:
                    name = names[pay.relation_id]
                    if pay.sales:
                        statement += [debit("550000", pay.amount, description=name),
                                      credit("400000", pay.amount, relation_id=pay.relation_id)]
                    else:
                        statement += [debit("440000", pay.amount, relation_id=pay.relation_id),
                                      credit("550000", pay.amount, description=name)]
                    b.match(pay.invoice_id, sid, pay.amount)
                b.post(sid, statement)
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
        b.post(did, [
            debit("620200", gross, description="Brutolonen"),
            debit("621000", employer_rsz, description="Werkgeversbijdragen RSZ"),
            credit("453000", withholding, description="Bedrijfsvoorheffing"),
            credit("454000", employee_rsz + employer_rsz, description="RSZ"),
            credit("455000", net, description="Nettolonen"),
        ])
        charges = 1_500 + int(rng.random() * 2_500)
        bank_day = _business_day(pay_day)
        if bank_day <= _AS_OF_IDX:
            fid = b.booking("FIN", "statement", bank_day, None, None,
                            f"Rekeninguittreksel {_DAYSTR[bank_day]}")
            b.post(fid, [
                debit("455000", net, description="Nettolonen"),
                debit("656000", charges, description="Bankkosten"),
                credit("550000", net + charges),
            ])
        if pid % 3 == 0:
            qid = b.booking("DIV", "misc", pay_day, None, None,
                            f"Afschrijvingen {_DAYSTR[pay_day][:4]}-Q{(pid - 1) % 12 // 3 + 1}")
            b.post(qid, [debit("630200", sum(assets.values()), description="Afschrijvingen"),
                         *(credit(account, amount) for account, amount in assets.items())])

    meta["change_counter"] = str(b.rv)
    return LedgerRows(
        meta=[MetaRow(key=k, value=v) for k, v in meta.items()], accounts=accounts,
        journals=journals, fiscal_years=fiscal_years, periods=periods, relations=relations,
        bookings=b.bookings, booking_lines=b.lines, matchings=b.matchings)


def create_ledger(path: Path, company: DemoCompany, *, seed: int) -> None:
    """Create the demo ledger of `company` at `path` (FileExistsError if it exists);
    no reader ever sees it half-filled (:func:`write_ledger`)."""
    path = Path(path)
    if path.exists():  # before the generator's work, not after it
        raise FileExistsError(f"ledger already exists: {path}")
    write_ledger(path, generate(company, seed))

