"""Reading Beancount ledgers (`--package beancount`, `beancount_connector`).

(Named `beancount_book` so that it does not shadow the `beancount` package.)
Booking proposals go in through `beancount_proposals`, which uses this
module's rules; `beancount_connector.BeancountConnector` joins the two.

The ledger is loaded as `bean-check` loads it (includes, plugins, pads,
balance assertions), but only through `beancount_guard.load_ledger`: the
files are parsed and checked before beancount runs anything, and a ledger
that asks to run a plugin the firm does not trust, to import code from its
folder or to include a file outside its folder is refused (LedgerRefused,
exit 1) with nothing of it run. A ledger with any error (syntax, failing
balance, unknown account...) is refused as a whole, with beancount's
messages, file and line; so is a ledger or included file that is not valid
UTF-8 (beancount reads such a file without a word, and what it makes of the
bad bytes is not what the accountant wrote), naming the file and the line.
No pickle cache: a sync must see what is on disk now, and must leave no
files beside the accountant's ledger.

What the portal gets from a Beancount ledger:
- accounts: every opened account; code = name = the account name; class
  (core.classes) by the rule below; commodity = the first currency of its
  `open` when that does not admit the operating currency (vacation hours).
- journals: BC (kind misc) for the transactions, BC-SALES (sales) and
  BC-PURCH (purchase) for the invoices dossync proposed (see documents).
- fiscal years and periods: calendar years and months over the transactions.
- bookings: every transaction (pads included, as beancount generates them);
  id = a stable hash of the transaction's content (beancount's own
  `hash_entry` without source metadata), so the same transaction keeps its
  id wherever it sits in the files; identical transactions are told apart by
  their order of appearance. `draft` = the transaction's flag is `!`
  (beancount's "incomplete": a proposal the accountant has not confirmed
  yet); `*` and the flags beancount itself writes (pads...) are definitive.
  reference = the smallest link (`^...`).
- lines: one per posting: its weight (`convert.get_weight`: units, or units
  times cost, or units times price), exactly as beancount computes it, at
  6 decimals (`core.money`; the weights of real ledgers have fewer; only
  the odd one, such as an `@@` total divided per unit, 28 significant
  digits, rounds there), positive = debit. No rounding line is added:
  beancount balances every transaction within its tolerance, and the portal
  accepts what beancount accepts (`money.BALANCE_TOLERANCE`). A ledger with
  beancount's own `account_rounding` option has rounding postings beancount
  wrote itself: they are ordinary postings. A posting weighing in another
  commodity than the operating currency (the first `operating_currency`
  option; else the dossier's currency setting; else the currency most
  weights are in) keeps it in `commodity` (vacation hours, IRA contribution
  units...), in that commodity: nothing read is left out.
- documents: a transaction with the metadata `dossync-proposal: "sales"` or
  `"purchase"` (what dossync writes with a booking proposal,
  `beancount_proposals`) is an invoice in BC-SALES or BC-PURCH: doc_type
  invoice, doc_no = its proposal reference (its smallest `WL-` link, else its
  smallest link); its payee is its customer or supplier.
- relations: the payees of those invoices; id = a stable hash of (kind,
  payee), kind customer or supplier, name = the payee. The invoice's booking
  and its lines on receivable and payable accounts carry the relation (the
  portal takes a document's amount from the lines with a relation).
- matchings: none (beancount has no notion of paying an invoice).

Account classes. The root of the account name decides, by beancount's own
root names (the `name_assets`, `name_liabilities`, `name_equity`,
`name_income`, `name_expenses` options, "Assets"... by default): Income →
revenue, Expenses → cost, Equity → equity, Assets → asset, Liabilities →
liability. Under Assets and Liabilities a component of the name refines it
(compared case-insensitively, the last matching component wins; the
users' Dutch and French words too): Cash, Bank, Checking, Savings, Kas,
Caisse, Banque (under Assets only) → bank; Receivable, Receivables,
AccountsReceivable, Klanten, Debiteuren, Clients → receivable; Payable,
Payables, AccountsPayable, Leveranciers, Crediteuren, Fournisseurs →
payable; VAT, BTW, TVA, GST, SalesTax → vat. Income and Expenses accounts
are never refined ("Expenses:Bank:Fees" is a cost). The `Open` directive's
metadata `class: "bank"` (any class of core.classes) overrides the rule; an
unknown class is refused with the file and line of that `open`.
"""
from __future__ import annotations

import collections
import datetime
import hashlib
from decimal import Context, Decimal, getcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from beancount.core import compare, data
from beancount.core.number import MISSING
from beancount.core.amount import Amount
from beancount.core.display_context import DEFAULT_FORMATTER
from beancount.core.position import Cost, CostSpec
from beancount.parser import printer

from dossync.core import money
from dossync.core.classes import CLASSES
from dossync.core.connectors.beancount_guard import load_ledger
from dossync.core.connectors.snapshot import (calendar, period_columns, stable_id, stable_ids,
                                              table)
from dossync.core.model import DossyncError, LedgerUnavailable, TerminalError

JOURNAL, SALES, PURCHASES = "BC", "BC-SALES", "BC-PURCH"
JOURNALS = ((JOURNAL, "Beancount transactions", "misc"),
            (SALES, "Beancount sales invoices (dossync proposals)", "sales"),
            (PURCHASES, "Beancount purchase invoices (dossync proposals)", "purchase"))
PROPOSAL_KEY = "dossync-proposal"  # the metadata that marks a proposed invoice, and its kind
DOCUMENTS = {"sales": (SALES, "customer"), "purchase": (PURCHASES, "supplier")}
PROPOSAL_PREFIX = "WL-"  # the worklist's references
DRAFT_FLAG = "!"
CLASS_KEY = "class"  # an Open directive's metadata that overrides the account class
MAX_ERRORS_SHOWN = 20
# the field types whose str() stable_hash_namedtuple takes as is (not lists or sets)
_PLAIN = frozenset({str, type(None), Amount, Cost, CostSpec})
_SETS = (frozenset, set)
# quantizing a weight to money.SCALE decimals must never fail for want of digits
_EXACT = Context(prec=80)
_QUANTUM = money.QUANTUM
try:  # CPython's own md5: the same digests as hashlib's, with less overhead per small input
    from _md5 import md5 as _MD5
except ImportError:  # pragma: no cover - a Python built without it
    _MD5 = hashlib.md5

# Account classes by beancount root (option names) and by name component.
_ROOTS = (("name_income", "Income", "revenue"), ("name_expenses", "Expenses", "cost"),
          ("name_equity", "Equity", "equity"), ("name_assets", "Assets", "asset"),
          ("name_liabilities", "Liabilities", "liability"))
_COMPONENTS = {**dict.fromkeys(("cash", "bank", "checking", "savings", "kas", "caisse",
                                 "banque"), "bank"),
               **dict.fromkeys(("receivable", "receivables", "accountsreceivable", "klanten",
                                "debiteuren", "clients"), "receivable"),
               **dict.fromkeys(("payable", "payables", "accountspayable", "leveranciers",
                                "crediteuren", "fournisseurs"), "payable"),
               **dict.fromkeys(("vat", "btw", "tva", "gst", "salestax"), "vat")}


def load(path: Path, allowed_plugins: tuple[str, ...] = ()) -> tuple[list, list, dict]:
    """beancount.loader.load_file, checked first and without the pickle cache beside the
    ledger (`beancount_guard.load_ledger`: the only way dossync loads a Beancount ledger)."""
    return load_ledger(path, allowed_plugins)


def error_text(error) -> str:
    """One beancount error as bean-check prints its first line: 'file:line: message'."""
    source = getattr(error, "source", None)
    where = printer.render_source(source) if source and "filename" in source else "(no source)"
    return f"{where} {error.message}"


def read_ledger(path: Path, allowed_plugins: tuple[str, ...] = ()) -> tuple[list, dict]:
    """Entries and options of a ledger without errors; raises LedgerRefused (it asks for
    what dossync will not do: `beancount_guard`) or LedgerUnavailable.

    allowed_plugins: the firm's plugins beyond Beancount's own ([beancount] allowed_plugins).
    """
    if not path.is_file():
        raise LedgerUnavailable(f"beancount ledger {path} does not exist: check the dossier's "
                                f"--source")
    try:
        entries, errors, options = load(path, allowed_plugins)
    except DossyncError:  # refused, unreadable, not UTF-8: the message says which file
        raise
    except Exception as exc:  # the loader reports problems as errors; anything else is one too
        raise LedgerUnavailable(f"beancount could not load {path}: {exc}") from exc
    if errors:
        shown = "\n".join(f"  {error_text(e)}" for e in errors[:MAX_ERRORS_SHOWN])
        more = (f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more (run bean-check {path})"
                if len(errors) > MAX_ERRORS_SHOWN else "")
        raise LedgerUnavailable(
            f"beancount ledger {path.name} has {len(errors)} error(s); nothing was loaded. "
            f"Fix them in the ledger (bean-check {path} shows them too):\n{shown}{more}")
    return entries, options


def operating_currency(entries: list, options: dict, fallback: str | None = None) -> str:
    """The ledger's first `operating_currency`; else `fallback` (the dossier's currency
    setting); else the currency most posting weights are in; else EUR."""
    declared = (options.get("operating_currency") or [None])[0]
    if declared or fallback:
        return declared or fallback
    weights = collections.Counter(_posting_parts(p)[1] for e in entries
                                  if isinstance(e, data.Transaction) for p in e.postings)
    return weights.most_common(1)[0][0] if weights else "EUR"


def account_class(account: str, roots: dict[str, str]) -> str:
    """The class of an account name by its root and components (the module's rule)."""
    parts = account.split(":")
    cls = roots.get(parts[0], "asset")
    if cls in ("asset", "liability"):
        for part in reversed(parts[1:]):
            refined = _COMPONENTS.get(part.lower())
            if refined and not (refined == "bank" and cls != "asset"):
                return refined
    return cls


def account_classes(entries: list, options: dict) -> dict[str, str]:
    """Every opened account and its class; an Open's `class:` metadata overrides the rule,
    an unknown one is refused with its file and line (TerminalError)."""
    roots = {options.get(option) or default: cls for option, default, cls in _ROOTS}
    classes: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, data.Open):
            continue
        meta = entry.meta or {}
        given = meta.get(CLASS_KEY)
        if given is None:
            classes[entry.account] = account_class(entry.account, roots)
            continue
        cls = given.strip().lower() if isinstance(given, str) else None
        if cls not in CLASSES:
            where = f"{meta.get('filename', '<ledger>')}:{meta.get('lineno', '?')}"
            raise TerminalError(
                f"{where}: account {entry.account} has class {given!r}, which dossync does not "
                f"know; use one of {', '.join(CLASSES)} (or remove the class: line to let the "
                f"account's name decide)")
        classes[entry.account] = cls
    return classes


_TRANSACTION_FIELDS = ("meta", "date", "flag", "payee", "narration", "tags", "links", "postings")


def _md5_hex(text: str) -> str:
    return _MD5(text.encode()).hexdigest()


def _transaction_hash(txn: data.Transaction) -> str:
    """`compare.hash_entry(txn, exclude_meta=True)`, the same value, computed faster.

    beancount's stable_hash_namedtuple feeds md5 with str() of each field but
    meta, in field order, lists and sets as the sorted md5 hex digests of their
    elements (tuples hashed the same way, recursively); feeding md5 the
    concatenation in one update gives the same digest. Anything else than a
    plain Transaction of plain Postings with string tags and links goes to
    beancount's own function.
    """
    if (type(txn) is not data.Transaction or txn._fields != _TRANSACTION_FIELDS
            or not isinstance(txn.tags, (set, frozenset)) or not isinstance(txn.links, (set, frozenset))
            or not isinstance(txn.postings, list)
            or not all(type(x) is str for x in txn.tags) or not all(type(x) is str for x in txn.links)):
        return compare.hash_entry(txn, exclude_meta=True)
    postings = []
    md5 = hashlib.md5
    formats = DEFAULT_FORMATTER.fmtfuncs
    for p in txn.postings:
        account, units, cost, price, flag, _ = p
        if (type(p) is not data.Posting or type(account) is not str or type(units) not in _PLAIN
                or type(cost) not in _PLAIN or type(price) not in _PLAIN
                or type(flag) not in _PLAIN):
            return compare.hash_entry(txn, exclude_meta=True)
        if type(units) is Amount and type(units.number) is Decimal:
            # Amount.__str__ inlined: its default formatter's function for the currency
            units_text = (formats.get(units.currency) or formats["__default__"])(units.number)
            units_text = f"{units_text} {units.currency}"
        else:
            units_text = str(units)
        postings.append(md5(f"{account}{units_text}{str(cost)}{str(price)}{str(flag)}"
                            .encode()).hexdigest())
    postings.sort()
    return _md5_hex("".join((str(txn.date), str(txn.flag), str(txn.payee), str(txn.narration),
                             *sorted(map(_md5_hex, txn.tags)), *sorted(map(_md5_hex, txn.links)),
                             *postings)))


def _posting_parts(posting: data.Posting) -> tuple:
    """(number, currency) of `convert.get_weight(posting)`, without building the Amount."""
    units, cost = posting.units, posting.cost
    if isinstance(cost, Cost) and isinstance(cost.number, Decimal):
        return cost.number * units.number, cost.currency
    price = posting.price
    if price is not None:
        if price.number is MISSING or units.number is MISSING:
            return MISSING, price.currency
        return price.number * units.number, price.currency
    return units.number, units.currency


def _plain_default_format() -> bool:
    """Whether beancount's default formatter writes every number as `'{:f}'.format`.

    It does unless something rebuilt it; then `str(number)` is the same text
    for every Decimal whose str() has no exponent.
    """
    return (DEFAULT_FORMATTER.fmtstrings == {"__default__": "{:f}"}
            and DEFAULT_FORMATTER.fmtfuncs.keys() == {"__default__"})


def exact_weight(number) -> Decimal:
    """A weight as the portal keeps it: `money.exact` (money.SCALE decimals, half even
    beyond), for any size of number (the quantizing context has the digits it needs)."""
    if type(number) is not Decimal:
        raise LedgerUnavailable(f"a posting weight beancount did not compute: {number!r}")
    return number.quantize(_QUANTUM, context=_EXACT)


def _proposal_reference(links) -> str | None:
    """A proposed invoice's reference: its smallest worklist link, else its smallest link."""
    ours = [x for x in links if x.startswith(PROPOSAL_PREFIX)]
    return min(ours) if ours else (min(links) if links else None)


class _Walk:
    """The columns one pass over the entries gathers (plain lists, no row objects)."""

    __slots__ = ("digests", "dates", "descriptions", "references", "line_counts", "drafts",
                 "documents", "accounts", "amounts", "commodities", "unknown_kinds")

    def __init__(self) -> None:
        self.digests: list[bytes] = []  # per booking: the 8-byte digest of its stable id
        self.dates: list[str] = []
        self.descriptions: list[str | None] = []
        self.references: list[str | None] = []
        self.line_counts: list[int] = []
        self.drafts: list[bool] = []
        self.documents: list[tuple[int, str, str | None]] = []  # (booking index, kind, payee)
        self.accounts: list[str] = []  # per line, bookings one after the other
        self.amounts: list[Decimal] = []  # the weight, exact (positive = debit)
        self.commodities: list[str | None] = []  # None: the operating currency
        self.unknown_kinds = 0  # dossync-proposal values that are neither sales nor purchase


def _walk(entries: list, operating: str) -> _Walk:
    """One pass over the transactions: exact weights, content hashes, booking fields.

    Everything is gathered into flat column lists, no object per row. A plain
    Transaction of plain Postings (units an Amount of a Decimal) is handled
    inline: each posting's part of the content hash is written here the way
    `compare.hash_entry` writes it, and a posting without cost or price weighs
    its units. Postings repeat (rent, salary...), so a posting's md5 and a
    number's exact weight are remembered by their text. Any other transaction
    takes `_transaction_hash` and `_posting_parts`, the reference this fast
    path must equal (tests/test_beancount.py holds them side by side).
    """
    walk = _Walk()
    digests, dates, descriptions, references = (walk.digests, walk.dates, walk.descriptions,
                                                 walk.references)
    line_counts, drafts, documents = walk.line_counts, walk.drafts, walk.documents
    accounts, amounts, commodities = walk.accounts, walk.amounts, walk.commodities
    transaction_type, posting_type, amount_type, decimal_type, date_type = (
        data.Transaction, data.Posting, Amount, Decimal, datetime.date)
    fast_fields = data.Transaction._fields == _TRANSACTION_FIELDS and data.Posting._fields == (
        "account", "units", "cost", "price", "flag", "meta")
    plain = _plain_default_format()
    exponent = "E" if getcontext().capitals else "e"  # how str() writes a Decimal's exponent
    formats = DEFAULT_FORMATTER.fmtfuncs
    default_format = formats["__default__"]
    md5, blake = _MD5, hashlib.blake2b(digest_size=8).copy  # copies: no parameters to parse
    quantum, context = _QUANTUM, _EXACT
    proposal_key, draft_flag = PROPOSAL_KEY, DRAFT_FLAG
    seen: dict[str, int] = {}
    parts: dict[str, str] = {}  # a posting's text → its md5 (postings repeat: rent, salary...)
    exact_of: dict[str, Decimal] = {}  # a number's text → its exact weight
    unknown_kinds = 0
    for txn in entries:
        if type(txn) is not transaction_type:
            if not isinstance(txn, transaction_type):
                continue
            fast = False
        else:
            fast = fast_fields
        start = len(amounts)
        digest = None
        if fast:
            meta, day, flag, payee, narration, tags, links, postings = txn
            hexes = []
            if (type(postings) is not list or type(tags) not in _SETS
                    or type(links) not in _SETS):
                fast = False
            else:
                for posting in postings:
                    if type(posting) is not posting_type:
                        fast = False
                        break
                    account, units, cost, price, pflag, _ = posting
                    if (type(account) is not str or type(units) is not amount_type
                            or not (pflag is None or type(pflag) is str)):
                        fast = False
                        break
                    number, currency = units
                    if type(number) is not decimal_type:
                        fast = False
                        break
                    if plain:
                        text = str(number)
                        if exponent in text:
                            text = default_format(number)
                    else:
                        text = (formats.get(currency) or default_format)(number)
                    if cost is None and price is None:  # weight = units
                        key = f"{account}{text} {currency}NoneNone{pflag}"
                        part = parts.get(key)
                        if part is None:
                            part = parts[key] = md5(key.encode()).hexdigest()
                        hexes.append(part)
                        amount = exact_of.get(text)
                        if amount is None:
                            amount = number.quantize(quantum, context=context)
                            if plain:  # then text is the exact number: a safe key
                                exact_of[text] = amount
                    else:
                        if type(cost) not in _PLAIN or type(price) not in _PLAIN:
                            fast = False
                            break
                        hexes.append(md5(f"{account}{text} {currency}{str(cost)}{str(price)}"
                                         f"{pflag}".encode()).hexdigest())
                        number, currency = _posting_parts(posting)
                        amount = exact_weight(number)
                    accounts.append(account)
                    amounts.append(amount)
                    commodities.append(None if currency == operating else currency)
            if fast and (tags or links):
                if all(type(x) is str for x in tags) and all(type(x) is str for x in links):
                    hexes.sort()
                    hexes[:0] = [*sorted(_md5_hex(x) for x in tags),
                                 *sorted(_md5_hex(x) for x in links)]
                else:
                    fast = False
            elif fast:
                hexes.sort()
            if fast:
                iso = day.isoformat() if type(day) is date_type else str(day)
                head = f"{iso}{str(flag)}{str(payee)}{str(narration)}"
                digest = md5((head + "".join(hexes)).encode()).hexdigest()
        if not fast:  # the reference path, for anything out of the ordinary
            del accounts[start:], amounts[start:], commodities[start:]
            for posting in txn.postings:
                number, currency = _posting_parts(posting)
                accounts.append(posting.account)
                amounts.append(exact_weight(number))
                commodities.append(None if currency == operating else currency)
            digest = _transaction_hash(txn)
            meta, iso, flag, payee, narration, links = (txn.meta, txn.date.isoformat(), txn.flag,
                                                        txn.payee, txn.narration, txn.links)
        count = seen.get(digest, 0) + 1
        seen[digest] = count
        # stable_id(digest, count), its digest only: the int64s are made in one go
        h = blake()
        h.update(f"{digest}\x1f{count}".encode())
        digests.append(h.digest())
        line_counts.append(len(amounts) - start)
        dates.append(iso)
        drafts.append(flag == draft_flag)
        if payee:
            descriptions.append(f"{payee} | {narration}" if narration else payee)
        else:
            descriptions.append(narration or None)
        kind = meta.get(proposal_key) if meta else None
        if kind is None:
            references.append(min(links) if links else None)
        elif kind in DOCUMENTS:
            documents.append((len(dates) - 1, kind, payee or None))
            references.append(_proposal_reference(links))
        else:
            unknown_kinds += 1
            references.append(min(links) if links else None)
    walk.unknown_kinds = unknown_kinds
    return walk


def _money_columns(amounts: list[Decimal]) -> tuple[pa.Array, pa.Array]:
    """debit and credit (exact money, non-negative) of signed weights."""
    try:
        signed = pa.array(amounts, money.ARROW)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TerminalError(f"a posting weight does not fit the portal's money (less than a "
                            f"trillion, {money.SCALE} decimals): {exc}") from exc
    zero = pa.scalar(money.ZERO, money.ARROW)
    debit = pc.if_else(pc.greater(signed, zero), signed, zero)
    credit = pc.if_else(pc.less(signed, zero), pc.negate(signed), zero)
    return debit, credit


def convert_ledger(entries: list, options: dict, currency: str | None = None
                   ) -> tuple[dict[str, pa.Table], list[str]]:
    """The canonical streams of a loaded ledger, and warnings for the user.

    currency: the dossier's currency setting, used when the ledger declares no
    operating currency.
    """
    operating = operating_currency(entries, options, currency)
    classes = account_classes(entries, options)
    accounts = sorted(classes)
    # an account opened for other commodities only (vacation hours): not the money's
    commodity = {e.account: e.currencies[0] for e in entries
                 if isinstance(e, data.Open) and e.currencies and operating not in e.currencies}
    walk = _walk(entries, operating)

    n = len(walk.digests)
    booking_ids = stable_ids(walk.digests)
    # the lines come booking after booking: their booking id and number from the line counts
    counts = np.array(walk.line_counts, dtype=np.int64)
    lines_total = len(walk.amounts)
    firsts = np.cumsum(counts) - counts  # each booking's first line
    line_no = np.arange(lines_total, dtype=np.int64) - np.repeat(firsts, counts) + 1
    line_bookings = np.repeat(booking_ids.to_numpy(), counts)
    debit, credit = _money_columns(walk.amounts)
    ln = {"booking_id": line_bookings, "line_no": line_no,
          "account": walk.accounts, "description": pa.nulls(lines_total, pa.string()),
          "debit": debit, "credit": credit,
          "commodity": pa.array(walk.commodities, pa.string())}

    journal = [JOURNAL] * n
    doc_type = ["transaction"] * n
    doc_no: list[str | None] = [None] * n
    relation_of: list[int | None] = [None] * n
    relations: dict[int, tuple[str, str]] = {}
    for index, kind, payee in walk.documents:
        journal[index], relation_kind = DOCUMENTS[kind]
        doc_type[index] = "invoice"
        doc_no[index] = walk.references[index]
        if payee:
            rid = stable_id(relation_kind, payee)
            relations.setdefault(rid, (relation_kind, payee))
            relation_of[index] = rid
    if relations:  # the invoice's receivable and payable lines name its relation
        open_items = {a for a, c in classes.items() if c in ("receivable", "payable")}
        line_relation = [None] * lines_total
        first_lines = firsts.tolist()
        for index, rid in enumerate(relation_of):
            if rid is None:
                continue
            first = first_lines[index]
            for at in range(first, first + walk.line_counts[index]):
                if walk.accounts[at] in open_items:
                    line_relation[at] = rid
        ln["relation_id"] = pa.array(line_relation, pa.int64())

    dates = pa.array(walk.dates, pa.string())
    year, period = period_columns(dates)
    tables = {
        "accounts": table("accounts", {"code": accounts, "name": accounts,
                                       "class": [classes[a] for a in accounts],
                                       "commodity": [commodity.get(a) for a in accounts]}),
        "journals": table("journals", {"code": [j[0] for j in JOURNALS],
                                       "name": [j[1] for j in JOURNALS],
                                       "kind": [j[2] for j in JOURNALS]}),
        "relations": table("relations", {"id": list(relations),
                                         "kind": [k for k, _ in relations.values()],
                                         "name": [p for _, p in relations.values()]}),
        "bookings": table("bookings", {
            "id": booking_ids, "journal": journal, "doc_no": doc_no, "doc_type": doc_type,
            "fiscal_year_id": year, "period_id": period, "date": dates,
            "relation_id": pa.array(relation_of, pa.int64()),
            "description": walk.descriptions, "reference": walk.references,
            "draft": pa.array(walk.drafts, pa.bool_())}),
        "lines": table("lines", ln),
        "matchings": table("matchings", {}),
    }
    if n:
        tables["fiscal_years"], tables["periods"] = calendar(min(walk.dates), max(walk.dates))
    else:
        tables["fiscal_years"], tables["periods"] = table("fiscal_years", {}), table("periods", {})

    warnings = []
    if walk.unknown_kinds:
        warnings.append(
            f"{walk.unknown_kinds} transaction(s) have {PROPOSAL_KEY} metadata that is neither "
            f"\"sales\" nor \"purchase\": they are read as ordinary transactions (journal "
            f"{JOURNAL})")
    return tables, warnings
