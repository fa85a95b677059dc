"""The worklist: processed invoices sent to the package as booking proposals.

Sending is the automatic sync: the proposals go to the dossier's package,
where they wait for the accountant, and appear in the portal at once as
provisional bookings so the dashboard and reports move immediately. The
definitive booking read by a later sync (matched on the reference)
replaces the provisional one (`portal.apply_sync`).

Every package takes proposals: its connector class declares the capability
and writes them (core.connectors.send_proposals asks it, without opening the
ledger for reading): the demo package in its inbox, Beancount as `!`
transactions in the dossier's proposals file, GnuCash as ordinary
transactions in the book. The portal records them first, as provisional
bookings and in its proposal queue, in one transaction; then the queue is
delivered to the package, which takes all of a delivery or none of it, and
a reference once however often it is sent. So the portal shows exactly what
the package received, whenever a process is killed:
- before the portal's commit: neither has them;
- after it: they wait in the queue, shown, and the next propose or sync
  delivers them; a delivery killed after the package took them is sent
  again, and the package skips what it holds;
- each delivery is marked in the queue before the package is called: a
  proposal never marked was certainly never handed over, and only such a
  one is taken back out of the portal when the package cannot be reached
  (propose) or refuses the delivery (one marked before is offered again on
  its own, and taken back only if the package refuses it alone);
- a delivery the portal cannot record (its file locked too long) is sent
  again by the next sync: never taken back, the package has it.
The package busy (GnuCash has the book open, a sync holds the dossier)
leaves them queued, shown, for the next sync.

Accounts are chosen by class (core.classes), never by a country's codes.
"""
from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa

from dossync.core import failpoints, money, portal
from dossync.core.connectors import connector_settings, send_proposals
from dossync.core.home import Home
from dossync.core.locks import dossier_lock
from dossync.core.model import (Dossier, DossierBusy, DossyncError, LedgerUnavailable, PackageBusy,
                        PortalBusy, Proposal, ProposalLine, TerminalError, UsageError)

VAT_RATES = (21, 21, 21, 6)
LOCK_WAIT_SECONDS = 10.0  # how long sending waits for a sync of the dossier to finish


@dataclass(frozen=True)
class Delivery:
    """What became of a dossier's queued proposals: sent (refs), or still waiting and why."""

    sent: tuple[str, ...] = ()
    waiting: int = 0
    reason: str | None = None
    note: str | None = None  # sent, but the portal could not record it yet

    def message(self, code: str) -> str | None:
        if self.note:
            return self.note
        if not self.waiting:
            return None
        return (f"{self.waiting} proposal(s) wait in the portal's queue for {code}'s package: "
                f"{self.reason}; the next 'dossync propose' or sync sends them")


def _by_class(accounts: list[portal.ProposalAccount]) -> dict[str, list[str]]:
    """The proposal accounts (portal.reference_data) by class, in their order."""
    by_class: dict[str, list[str]] = {}
    for account in accounts:
        by_class.setdefault(account.account_class or "", []).append(account.code)
    return by_class


def _one_of(chart: dict[str, list[str]], cls: str, code: str, package: str, what: str) -> list[str]:
    accounts = chart.get(cls) or []
    if not accounts:
        hint = {"gnucash": "an account of type A/Receivable, A/Payable, Income or Expense",
                "beancount": "e.g. 'open Assets:Receivable', 'open Liabilities:Payable' "
                             "(class by name), Income:… and Expenses:… accounts",
                "demo": "MAR accounts 40, 44, 6 and 7"}.get(package, "one")
        raise UsageError(f"dossier {code} has no {cls} account for {what}: its chart needs "
                         f"{hint}; sync it after adding one")
    return accounts


def build_proposals(home: Home, code: str, count: int, *, today: date | None = None,
                    rng: random.Random | None = None) -> list[Proposal]:
    """Make `count` proposals, booked in the active period (or, for a package
    without one, in the current month of its books).

    An invoice dated in a closed period goes to the first day of the active
    period, and the proposal says so.
    """
    rng = rng or random.Random()
    dossier = portal.require_dossier(home.portal, code)
    refdata = portal.reference_data(home.portal, code)
    periods = portal.periods(home.portal, code)
    today = today or date.today()
    active = _active_period(dossier, periods, today)
    if active is None:
        raise UsageError(f"dossier {code} has no booking periods in the portal yet: sync it "
                         f"first")
    journals = {j.kind: j.code for j in reversed(refdata.journals)}
    if "sales" not in journals or "purchase" not in journals:
        raise UsageError(f"dossier {code} has no sales and purchase journals for proposals")
    customers = [(r.id, r.name) for r in refdata.relations if r.kind == "customer"]
    suppliers = [(r.id, r.name) for r in refdata.relations if r.kind == "supplier"]
    chart = _by_class(refdata.accounts)
    receivable = _one_of(chart, "receivable", code, dossier.package, "sales invoices")[0]
    payable = _one_of(chart, "payable", code, dossier.package, "purchase invoices")[0]
    revenue = _one_of(chart, "revenue", code, dossier.package, "sales invoices")
    costs = _one_of(chart, "cost", code, dossier.package, "purchase invoices")
    vat = chart.get("vat") or []  # a book without VAT accounts gets proposals without VAT
    vat_due, vat_back = (vat[0], vat[-1]) if vat else (None, None)

    start = date.fromisoformat(active["start_date"])
    end = min(date.fromisoformat(active["end_date"]), max(today, start))
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
        rate = rng.choice(VAT_RATES) if vat else 0
        tax = (net * rate + 50) // 100
        gross = net + tax

        def line(account: str, debit: int, credit: int, vat_code: str | None = None,
                 open_item: bool = False) -> ProposalLine:
            return ProposalLine(account, Decimal(debit).scaleb(-2), Decimal(credit).scaleb(-2),
                                vat_code, open_item)

        if sales:
            relation = rng.choice(customers) if customers else (None, None)
            lines = [line(receivable, gross, 0, None, True),
                     line(rng.choice(revenue), 0, net, f"V{rate:02d}" if vat else None)]
            if tax:
                lines.append(line(vat_due, 0, tax, f"V{rate:02d}"))
        else:
            relation = rng.choice(suppliers) if suppliers else (None, None)
            lines = [line(payable, 0, gross, None, True),
                     line(rng.choice(costs), net, 0, f"A{rate:02d}" if vat else None)]
            if tax:
                lines.append(line(vat_back, tax, 0, f"A{rate:02d}"))
        proposals.append(Proposal(
            ref=f"WL-{code}-{secrets.token_hex(4).upper()}",
            journal=journals["sales" if sales else "purchase"], kind="sales" if sales else "purchase",
            date=invoice_date.isoformat(), relation_id=relation[0], relation_name=relation[1],
            amount=Decimal(gross).scaleb(-2), lines=tuple(lines), note=note))
    return proposals


def _active_period(dossier: Dossier, periods: list[dict], today: date) -> dict | None:
    """The period proposals are booked in: the dossier's active period; for a package that
    has none (GnuCash, Beancount: calendar months over their transactions), today's month
    if the books reach it, else their last month."""
    by_code = {p["code"]: p for p in periods}
    if dossier.active_period in by_code:
        return by_code[dossier.active_period]
    if dossier.active_period is None and periods:
        return by_code.get(today.strftime("%Y-%m")) or periods[-1]
    return None


def propose(home: Home, code: str, count: int) -> tuple[list[Proposal], int, Delivery]:
    """Send `count` proposals to the package and show them in the portal at once.

    Returns the proposals, the new blue counter and what became of the
    delivery (sent now, or queued for the next sync with the reason).
    Raises TerminalError when the package refused them and LedgerUnavailable
    when it could not be reached; the message says which were taken back out
    of the portal and which wait for the next sync.
    """
    home.require()
    dossier = portal.require_dossier(home.portal, code)
    proposals = build_proposals(home, code, count)
    periods = {p["code"]: p for p in portal.periods(home.portal, code)}
    bookings, lines = _provisional_tables(proposals, periods)
    counter = portal.add_proposals(home.portal, code, bookings, lines,
                                   queue=[(p.ref, json.dumps(p.to_record())) for p in proposals])
    # One writer to the package at a time: the dossier's lock (a sync holding it sends the
    # queue itself when it starts, or the next one does).
    lock = dossier_lock(home, code)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            lock.acquire(purpose="sending proposals")
            break
        except DossierBusy as exc:
            if time.monotonic() > deadline:
                return proposals, counter, Delivery(waiting=len(proposals), reason=str(exc))
            time.sleep(0.2)
    try:
        delivery = deliver(home, dossier, take_back={p.ref for p in proposals})
    except PortalBusy as exc:  # the portal stayed locked: what it did not record as sent
        # or taken back stays queued and shown, and the next sync sends it
        return proposals, counter, Delivery(waiting=len(proposals), reason=str(exc))
    finally:
        lock.release()
    try:
        counter = portal.require_dossier(home.portal, code).pending_proposals
    except PortalBusy:
        pass  # the counter add_proposals returned stands: delivering does not change it
    return proposals, counter, delivery


def deliver(home: Home, dossier: Dossier, take_back: Collection[str] = ()) -> Delivery:
    """Send the dossier's queued proposals to its package (oldest first); what stays queued.

    The caller holds the dossier's lock. The package takes all of them or
    none. PackageBusy leaves them queued (with the reason, for the next
    try). A TerminalError (the package refuses them: an account it no
    longer has...) takes them out of the portal again and is raised. When
    the package cannot be reached, the proposals among `take_back` that
    were never handed to it before are taken out of the portal (the caller
    reports them as not sent), the others stay queued, and LedgerUnavailable
    is raised; any other failure leaves them all queued and is raised.
    """
    code = dossier.code
    queued = portal.claim_proposals(home.portal, code)  # marked as handed over from here on
    if not queued:
        return Delivery()
    proposals = [Proposal.from_record(json.loads(q.proposal)) for q in queued]
    refs = [p.ref for p in proposals]
    handed_before = {q.ref for q in queued if q.handed_before}
    try:
        send_proposals(dossier.package, dossier.source, connector_settings(home, dossier), proposals)
    except PackageBusy as exc:
        portal.proposals_attempted(home.portal, code, refs, str(exc))
        return Delivery(waiting=len(refs), reason=str(exc))
    except TerminalError as exc:
        return _refused(home, dossier, proposals, handed_before, exc)
    except DossyncError as exc:  # not reached: it took none of them (all or none)
        back = [r for r in refs if r in take_back and r not in handed_before]
        shown = [r for r in refs if r not in back]
        portal.proposals_attempted(home.portal, code, shown, str(exc))
        if back:
            portal.withdraw_proposals(home.portal, code, back)
        if back and not shown:
            message = (f"the proposals were not sent to {code}'s package and are not shown in "
                       f"the portal: {exc}")
        else:
            message = (f"{code}'s package could not be reached ({exc}): "
                       + (f"{len(back)} proposal(s) not sent, taken back out of the portal; "
                          if back else "")
                       + f"{len(shown)} stay shown and queued, and the next sync sends them")
        raise LedgerUnavailable(message) from exc
    except Exception as exc:  # anything else: it may have them; they go again, taken once
        portal.proposals_attempted(home.portal, code, refs, str(exc))
        raise
    failpoints.hit("proposals-sent")
    return _delivered(home, code, refs)


def _delivered(home: Home, code: str, refs: list[str]) -> Delivery:
    """The package has them: out of the queue. A portal that stays locked keeps them
    queued: the next sync sends them again and the package skips them."""
    try:
        portal.proposals_delivered(home.portal, code, refs)
    except PortalBusy as exc:
        return Delivery(sent=tuple(refs), note=(
            f"{len(refs)} proposal(s) reached {code}'s package but the portal could not "
            f"record it ({exc}); they stay shown, and the next sync confirms them"))
    return Delivery(sent=tuple(refs))


def _refused(home: Home, dossier: Dossier, proposals: list[Proposal], handed_before: set[str],
             exc: TerminalError) -> Delivery:
    """The package refused the delivery whole: it took none of it, so it holds none of the
    proposals it was never handed before. One handed before may be there already (a
    delivery killed before the portal recorded it; a package refuses none it holds):
    each such one is offered alone, delivered or refused on its own. The refused ones
    leave the portal, and TerminalError says so."""
    code = dossier.code
    refused, sent = [p.ref for p in proposals], []
    if len(proposals) > 1 and handed_before:
        refused = [p.ref for p in proposals if p.ref not in handed_before]
        for proposal in proposals:
            if proposal.ref not in handed_before:
                continue
            try:
                send_proposals(dossier.package, dossier.source,
                               connector_settings(home, dossier), [proposal])
            except TerminalError:
                refused.append(proposal.ref)
            else:
                _delivered(home, code, [proposal.ref])
                sent.append(proposal.ref)
    if not refused:  # each one alone went through
        return Delivery(sent=tuple(sent))
    withdrawn = portal.withdraw_proposals(home.portal, code, refused)
    raise TerminalError(f"the package refused {len(refused)} proposal(s) ({exc}); "
                        f"{withdrawn} taken back out of the portal"
                        + (f"; {len(sent)} sent on their own" if sent else "")) from exc


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
                           ("period_id", period["id"]), ("amount", money.exact(p.amount))):
            bookings[key].append(value)
        for number, line in enumerate(p.lines, 1):
            for key, value in (("ref", p.ref), ("line_no", number), ("account", line.account),
                               ("debit", money.exact(line.debit)),
                               ("credit", money.exact(line.credit)),
                               ("vat_code", line.vat_code),
                               ("relation_id", p.relation_id if line.open_item else None)):
                lines[key].append(value)
    int64 = pa.int64()
    return (pa.table(bookings, schema=pa.schema([
                ("ref", pa.string()), ("journal", pa.string()), ("doc_type", pa.string()),
                ("date", pa.string()), ("due_date", pa.string()), ("relation_id", int64),
                ("fiscal_year_id", int64), ("period_id", int64), ("amount", money.ARROW)])),
            pa.table(lines, schema=pa.schema([
                ("ref", pa.string()), ("line_no", int64), ("account", pa.string()),
                ("debit", money.ARROW), ("credit", money.ARROW), ("vat_code", pa.string()),
                ("relation_id", int64)])))
