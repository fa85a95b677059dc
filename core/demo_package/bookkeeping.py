"""The accountant's work in the package: the tracked ledger events.

Each event runs in one :class:`~dossync.core.demo_package.ledger.Transaction`:
every row it writes takes the next change-counter value and every deletion is
logged, so a sync can follow all of it. New documents follow the dossier's
own habits, read back from its recent bookings (:func:`_event_profile`).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import NamedTuple

from dossync.core.demo_package.documents import (ALT_COST_ACCOUNTS, Profile, purchase_invoice,
                                                 sales_invoice)
from dossync.core.demo_package.events import LedgerEventError, count_arg, no_args
from dossync.core.demo_package.ledger import Transaction, in_transaction, utc_now
from dossync.core.demo_package.reference import ACTIVE_PERIOD, LAST_DAY, LAST_YEAR, VatShare
from dossync.core.demo_package.rows import Posting, credit, debit


def _open_days(tx: Transaction) -> list[str]:
    """The days of open periods of open fiscal years, up to the last day of the demo."""
    rows = tx.conn.execute(
        "SELECT p.start_date, p.end_date FROM periods p JOIN fiscal_years f "
        "ON f.id = p.fiscal_year_id WHERE p.closed=0 AND f.closed=0 AND p.start_date<=? "
        "ORDER BY p.start_date", (LAST_DAY.isoformat(),)).fetchall()
    days: list[str] = []
    for start, end in rows:
        d = date.fromisoformat(start)
        last = min(date.fromisoformat(end), LAST_DAY)
        while d <= last:
            days.append(d.isoformat())
            d += timedelta(days=1)
    return days


def _event_profile(tx: Transaction) -> Profile:
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
    for journal, rel, account, vat_code, amount in recent:
        if journal == "VERK" and account.startswith("70"):
            revenue[account] = revenue.get(account, 0) + 1
            if vat_code:
                sales_vat[vat_code] = sales_vat.get(vat_code, 0) + 1
            sizes.append(amount)
        elif journal == "AANK" and account[:2] in ("60", "61", "24") and rel is not None:
            supplier_cost.setdefault(rel, account)
    for rel, account in conn.execute(
            "SELECT b.relation_id, l.account FROM bookings b JOIN booking_lines l "
            "ON l.booking_id=b.id AND l.line_no=2 WHERE b.journal='AANK' AND b.id > ?",
            (max_id - 2000,)):
        if rel is not None:
            supplier_cost.setdefault(rel, account)
    names: dict[int, str] = {}
    customers: list[int] = []
    suppliers: list[int] = []
    for rid, kind, name in conn.execute("SELECT id, kind, name FROM relations ORDER BY id"):
        names[rid] = name
        if kind == "customer":
            customers.append(rid)
        elif kind == "supplier":
            suppliers.append(rid)
    if not customers or not suppliers:
        raise LedgerEventError(f"{tx.path}: the ledger has no customers or suppliers")
    n_vat = sum(sales_vat.values()) or 1
    return Profile(
        revenue=tuple(sorted(revenue, key=lambda a: -revenue[a])) or ("700000",),
        sales_vat=tuple(VatShare(code, k / n_vat)
                        for code, k in sorted(sales_vat.items(), key=lambda x: -x[1]))
        or (VatShare("V21", 1.0),),
        size=(sorted(sizes)[len(sizes) // 2] / 100 if sizes else 500.0),
        customers=customers, suppliers=suppliers, supplier_cost=supplier_cost, names=names)


class _OpenInvoice(NamedTuple):
    booking_id: int
    journal: str
    relation_id: int
    due: int  # cents still to pay


def _open_invoices(tx: Transaction, limit_recent: int = 4000) -> list[_OpenInvoice]:
    """Recent unpaid invoices, oldest first."""
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
    return [_OpenInvoice(booking_id=int(bid), journal=str(journal), relation_id=int(rel),
                         due=int(due)) for bid, journal, rel, due in rows]


@in_transaction
def new_bookings(tx: Transaction, args: list[str]) -> str:
    n = count_arg(tx.path, tx.event, args)
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
            paid = [open_inv.pop() for _ in range(min(len(open_inv), 1 + int(rng.random() * 3)))]
            statement: list[Posting] = []
            for inv in paid:
                name = p.names.get(inv.relation_id)
                if inv.journal == "VERK":
                    statement += [debit("550000", inv.due, description=name),
                                  credit("400000", inv.due, relation_id=inv.relation_id)]
                else:
                    statement += [debit("440000", inv.due, relation_id=inv.relation_id),
                                  credit("550000", inv.due, description=name)]
            sid, _ = tx.insert_booking("FIN", "statement", day, None, None,
                                       f"Rekeninguittreksel {day}", None, statement)
            for inv in paid:
                tx.insert_matching(inv.booking_id, sid, inv.due)
            kinds["payment"] += 1
        elif r < 0.4:
            rel = rng.choice(p.customers)
            due = (date.fromisoformat(day) + timedelta(days=30)).isoformat()
            invoice, _ = sales_invoice(rng, p, rel, scale=0.5)
            tx.insert_booking("VERK", "invoice", day, due, rel, f"Factuur {p.names[rel]}", None,
                              invoice)
            kinds["sales"] += 1
        else:
            rel = rng.choice(p.suppliers)
            due = (date.fromisoformat(day) + timedelta(days=30)).isoformat()
            invoice, _ = purchase_invoice(rng, p, rel)
            tx.insert_booking("AANK", "invoice", day, due, rel,
                              f"Aankoopfactuur {p.names[rel]}", None, invoice)
            kinds["purchase"] += 1
        used_days.append(day)
    tx.commit()
    return (f"booked {n} new documents in {min(used_days)[:7]}..{max(used_days)[:7]} "
            f"({kinds['sales']} sales, {kinds['purchase']} purchase invoices, "
            f"{kinds['payment']} bank statements)")


def _proposal_postings(lines_json: str) -> list[Posting]:
    """A proposal's lines (JSON: [{account, debit, credit, vat_code}]) as postings;
    ValueError, KeyError or TypeError when they cannot be read."""
    return [Posting(account=str(line["account"]), debit=int(line.get("debit") or 0),
                    credit=int(line.get("credit") or 0), vat_code=line.get("vat_code"))
            for line in json.loads(lines_json)]


@in_transaction
def validate_proposals(tx: Transaction, args: list[str]) -> str:
    change_first = False
    for a in args:
        if a == "--change-first":
            change_first = True
        else:
            raise LedgerEventError(
                f"{tx.path}: '{tx.event}' takes only --change-first (got {a!r})")
    rows = tx.conn.execute(
        "SELECT ref, journal, date, relation_id, lines FROM proposals "
        "WHERE status='received' ORDER BY received_at, ref").fetchall()
    if not rows:
        tx.conn.execute("ROLLBACK")
        return "no proposals waiting: nothing booked"
    active = tx.meta.get("active_period", ACTIVE_PERIOD)
    active_first = f"{active}-01"
    booked: list[str] = []
    skipped: list[str] = []
    changed = ""
    for i, (ref, journal, day, rel, lines_json) in enumerate(rows):
        try:
            postings = _proposal_postings(lines_json)
        except (ValueError, KeyError, TypeError):
            skipped.append(f"{ref} (unreadable lines)")
            continue
        if not postings or sum(p.debit for p in postings) != sum(p.credit for p in postings):
            skipped.append(f"{ref} (unbalanced)")
            continue
        sales = journal == "VERK"
        open_item = "400000" if sales else "440000"
        postings = [p._replace(relation_id=rel) if p.account == open_item else p
                    for p in postings]
        where = tx.period_of(day)
        if where is None or where.closed:
            day = active_first
        first = postings[0]
        is_credit_note = first.account == open_item and (first.credit > 0 if sales
                                                         else first.debit > 0)
        if change_first and i == 0:
            changed = _correct(tx, postings, open_item, ref)
        due = (date.fromisoformat(day) + timedelta(days=30)).isoformat()
        bid, doc = tx.insert_booking(
            journal, "credit_note" if is_credit_note else "invoice", day, due, rel,
            f"Boekingsvoorstel {ref}", ref, postings)
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


def _correct(tx: Transaction, postings: list[Posting], open_item: str, ref: str) -> str:
    """The accountant corrects a proposal before booking it, in place: its first
    revenue or cost line moves to another account and grows, and so does the
    open-item line on the other side. What changed, for the message ('' if nothing)."""
    idx = next((k for k, p in enumerate(postings) if p.account[:1] in ("6", "7")), None)
    ob = next((k for k, p in enumerate(postings) if p.account == open_item), None)
    if idx is None or ob is None:
        return ""
    delta = 100 * (1 + int(tx.rng.random() * 5)) + int(tx.rng.random() * 100)
    line, other = postings[idx], postings[ob]
    choices = ("700000", "700100", "705000") if line.account.startswith("7") \
        else ALT_COST_ACCOUNTS
    account = next(a for a in choices if a != line.account)
    if line.debit:
        postings[idx] = line._replace(account=account, debit=line.debit + delta)
        postings[ob] = other._replace(credit=other.credit + delta)
    else:
        postings[idx] = line._replace(account=account, credit=line.credit + delta)
        postings[ob] = other._replace(debit=other.debit + delta)
    return f"; {ref} corrected: account {line.account}->{account}, amount +{delta / 100:.2f} EUR"


@in_transaction
def book_vat_return(tx: Transaction, args: list[str]) -> str:
    no_args(tx.path, tx.event, args)
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
    due_vat, deductible = tx.conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN l.account='451000' THEN l.credit - l.debit END), 0), "
        "       COALESCE(SUM(CASE WHEN l.account='411000' THEN l.debit - l.credit END), 0) "
        "FROM booking_lines l JOIN bookings b ON b.id = l.booking_id "
        "WHERE l.account IN ('451000', '411000') AND b.date BETWEEN ? AND ?",
        (qstart.isoformat(), qend.isoformat())).fetchone()
    if not due_vat and not deductible:
        raise LedgerEventError(f"{tx.path}: no VAT booked in {label}: nothing to settle")
    postings: list[Posting] = []
    if due_vat:
        postings.append(Posting("451000", description="Verschuldigde btw",
                                debit=max(due_vat, 0), credit=max(-due_vat, 0)))
    if deductible:
        postings.append(Posting("411000", description="Aftrekbare btw",
                                debit=max(-deductible, 0), credit=max(deductible, 0)))
    balance = due_vat - deductible  # > 0: payable
    if balance > 0:
        postings.append(credit("451200", balance, description="Te betalen aan de btw"))
    elif balance < 0:
        postings.append(debit("411200", -balance, description="Terug te vorderen van de btw"))
    day = f"{active}-01"
    _, doc = tx.insert_booking("DIV", "misc", day, None, None, description, None, postings)
    tx.commit()
    word = "payable" if balance >= 0 else "refundable"
    return (f"booked VAT return {label} as {doc} on {day}: {abs(balance) / 100:.2f} EUR {word}")


@in_transaction
def year_end_closing(tx: Transaction, args: list[str]) -> str:
    no_args(tx.path, tx.event, args)
    day = f"{LAST_YEAR}-12-31"
    where = tx.period_of(day)
    if where is None or where.closed:
        raise LedgerEventError(f"{tx.path}: period {day[:7]} is closed or missing")
    fy_closed = tx.conn.execute("SELECT closed FROM fiscal_years WHERE id=?",
                                (where.fiscal_year_id,)).fetchone()
    if fy_closed and fy_closed[0]:
        raise LedgerEventError(f"{tx.path}: the fiscal year containing {day} is closed")
    rng = tx.rng
    size = tx.conn.execute(
        "SELECT COUNT(*) FROM booking_lines WHERE booking_id > "
        "(SELECT COALESCE(MAX(id), 0) - 1000 FROM bookings)").fetchone()[0] or 1
    scale = 1 + size // 500

    def amount(base: int) -> int:
        return int(base * scale * (0.8 + 0.4 * rng.random()))

    dep_furniture, dep_vehicles, dep_it = amount(45_000), amount(120_000), amount(30_000)
    prepaid = amount(60_000)
    deferred = amount(80_000)
    holiday = amount(150_000)
    entries: dict[str, list[Posting]] = {  # description -> postings, booked in this order
        "Jaarafsluiting: afschrijvingen": [
            debit("630200", dep_furniture + dep_vehicles + dep_it,
                  description="Afschrijvingen boekjaar"),
            credit("240900", dep_furniture, description="Meubilair"),
            credit("241900", dep_vehicles, description="Rollend materieel"),
            credit("242900", dep_it, description="Informaticamaterieel"),
        ],
        "Jaarafsluiting: over te dragen kosten (verzekering)": [
            debit("490000", prepaid, description="Verzekeringspremie volgend boekjaar"),
            credit("613500", prepaid, description="Verzekeringen"),
        ],
        "Jaarafsluiting: over te dragen opbrengsten": [
            debit("705000", deferred, description="Vooruitgefactureerde prestaties"),
            credit("493000", deferred, description="Over te dragen opbrengsten"),
        ],
        "Jaarafsluiting: provisie vakantiegeld": [
            debit("620200", holiday, description="Vakantiegeld"),
            credit("456000", holiday, description="Vakantiegeld"),
        ],
    }
    docs = [tx.insert_booking("DIV", "misc", day, None, None, description, None, postings)[1]
            for description, postings in entries.items()]
    tx.commit()
    return (f"booked {len(docs)} year-end closing entries on {day} ({docs[0]}..{docs[-1]}): "
            "depreciation, accruals, holiday pay provision")


class _Document(NamedTuple):
    booking_id: int
    doc_no: str


@in_transaction
def delete_bookings(tx: Transaction, args: list[str]) -> str:
    n = count_arg(tx.path, tx.event, args)
    documents = [_Document(bid, doc) for bid, doc in tx.conn.execute(
        "SELECT DISTINCT b.id, b.doc_no FROM bookings b JOIN periods p ON p.id = b.period_id "
        "WHERE p.closed = 0 ORDER BY b.id")]
    if not documents:
        raise LedgerEventError(f"{tx.path}: no bookings in open periods to delete")
    first_open = documents[0].booking_id
    matched: set[int] = set()
    for inv, pay in tx.conn.execute(
            "SELECT invoice_id, payment_id FROM matchings WHERE invoice_id >= ? OR payment_id >= ?",
            (first_open, first_open)):
        matched.add(inv)
        matched.add(pay)
    # unmatched documents go first: deleting a matched one also deletes its matchings
    free = [d for d in documents if d.booking_id not in matched]
    busy = [d for d in documents if d.booking_id in matched]
    tx.rng.shuffle(free)
    tx.rng.shuffle(busy)
    victims = sorted((free + busy)[:n])
    ids = [d.booking_id for d in victims]
    marks = ",".join("?" * len(ids))
    when = utc_now()
    match_ids = [mid for (mid,) in tx.conn.execute(
        f"SELECT DISTINCT id FROM matchings WHERE invoice_id IN ({marks}) "
        f"OR payment_id IN ({marks}) ORDER BY id", (*ids, *ids))]
    for mid in match_ids:
        tx.conn.execute("DELETE FROM matchings WHERE id=?", (mid,))
        tx.log_deletion("matchings", str(mid), when)
    docs: list[str] = []
    for victim in victims:
        tx.conn.execute("DELETE FROM booking_lines WHERE booking_id=?", (victim.booking_id,))
        tx.conn.execute("DELETE FROM bookings WHERE id=?", (victim.booking_id,))
        tx.log_deletion("bookings", str(victim.booking_id), when)
        docs.append(victim.doc_no)
    tx.commit()
    msg = f"deleted {len(docs)} bookings from open periods ({', '.join(docs[:5])}"
    msg += ", ...)" if len(docs) > 5 else ")"
    if match_ids:
        msg += f" and {len(match_ids)} matchings"
    if len(docs) < n:
        msg += f"; only {len(docs)} were available"
    return msg
