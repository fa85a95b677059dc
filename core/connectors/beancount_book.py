"""Connector for Beancount ledgers (`--package beancount`).

(Named `beancount_book` so that it does not shadow the `beancount` package.)

The ledger is loaded by beancount's own loader, exactly as `bean-check`
loads it: includes, plugins, pads, balance assertions. A ledger with any
error (syntax, failing balance, unknown account...) is refused as a whole,
with beancount's messages, file and line. The loader runs without its pickle
cache: a sync must see what is on disk now, and must leave no files beside
the accountant's ledger.

What the portal gets from a Beancount ledger:
- accounts: every opened account; code = name = the account name.
- one journal, BC (kind misc); no relations, no matchings.
- fiscal years and periods: calendar years and months over the transactions.
- bookings: the transactions (pads included, as beancount generates them);
  id = a stable hash of the transaction's content (beancount's own
  `hash_entry` without source metadata), so the same transaction keeps its
  id wherever it sits in the files; identical transactions are told apart by
  their order of appearance.
- lines: each posting's weight (`convert.get_weight`) in the operating
  currency (the first `operating_currency` option; else the currency most
  weights are in), in integer cents, positive = debit. Postings weighing in
  another commodity (vacation hours, IRA contribution units...) are kept out
  of the money figures and counted in `warnings`; beancount balances every
  currency on its own, so the operating-currency postings still balance. A
  transaction without any operating-currency posting is left out whole (and
  counted). Weights finer than a cent are rounded half-even; what rounding
  leaves over in a booking goes to a line on ROUNDING_ACCOUNT (or the
  ledger's `account_rounding` option), so every booking balances to the cent.
"""
from __future__ import annotations

import collections
import hashlib
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pyarrow as pa
from beancount import loader
from beancount.core import compare, data
from beancount.core.number import MISSING
from beancount.core.amount import Amount
from beancount.core.display_context import DEFAULT_FORMATTER
from beancount.core.position import Cost, CostSpec
from beancount.parser import printer

from core.connectors.snapshot import SnapshotConnector, calendar, period_columns, stable_id, table
from core.model import LedgerUnavailable, cents_to_str

JOURNAL = "BC"
ROUNDING_ACCOUNT = "Equity:Rounding"
MAX_ERRORS_SHOWN = 20
HUNDRED = Decimal(100)
# the field types whose str() stable_hash_namedtuple takes as is (not lists or sets)
_PLAIN = frozenset({str, type(None), Amount, Cost, CostSpec})


def load(path: Path) -> tuple[list, list, dict]:
    """beancount.loader.load_file without the pickle cache beside the ledger."""
    uncached = getattr(loader, "_uncached_load_file", None)
    if uncached is None:  # a beancount without the private hook: the public loader
        return loader.load_file(str(path))
    return uncached(str(path), None, None, None)


def error_text(error) -> str:
    """One beancount error as bean-check prints its first line: 'file:line: message'."""
    source = getattr(error, "source", None)
    where = printer.render_source(source) if source and "filename" in source else "(no source)"
    return f"{where} {error.message}"


def read_ledger(path: Path) -> tuple[list, dict]:
    """Entries and options of a ledger without errors; raises LedgerUnavailable."""
    if not path.is_file():
        raise LedgerUnavailable(f"beancount ledger {path} does not exist: check the dossier's "
                                f"--source")
    try:
        entries, errors, options = load(path)
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


_TRANSACTION_FIELDS = ("meta", "date", "flag", "payee", "narration", "tags", "links", "postings")


def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


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


def convert_ledger(entries: list, options: dict) -> tuple[dict[str, pa.Table], list[str]]:
    """The canonical streams of a loaded ledger, and warnings about what was kept out."""
    transactions = [e for e in entries if isinstance(e, data.Transaction)]
    operating = (options.get("operating_currency") or [None])[0]
    if operating is None:
        weights = collections.Counter(_posting_parts(p)[1]
                                      for t in transactions for p in t.postings)
        operating = weights.most_common(1)[0][0] if weights else "EUR"
    rounding_account = options.get("account_rounding") or ROUNDING_ACCOUNT

    accounts = sorted({e.account for e in entries if isinstance(e, data.Open)})
    b_id, b_date, b_description, b_reference = [], [], [], []
    ln_rows = []
    other = collections.Counter()
    left_out = 0
    rounded = 0
    rounding_total = 0
    seen = collections.Counter()
    txn_hash = _transaction_hash
    posting_parts = _posting_parts
    for txn in transactions:
        lines = []
        for posting in txn.postings:
            number, currency = posting_parts(posting)
            if currency != operating:
                other[currency] += 1
                continue
            lines.append((posting.account,
                          int((number * HUNDRED).to_integral_value(ROUND_HALF_EVEN))))
        if not lines:
            left_out += 1
            continue
        digest = txn_hash(txn)
        seen[digest] += 1
        booking_id = stable_id(digest, seen[digest])
        residue = -sum(c for _, c in lines)
        if residue:
            lines.append((rounding_account, residue))
            rounded += 1
            rounding_total += residue
        b_id.append(booking_id)
        b_date.append(txn.date.isoformat())
        b_description.append(" | ".join(x for x in (txn.payee, txn.narration) if x) or None)
        b_reference.append(min(txn.links) if txn.links else None)
        line_no = 0
        for account, cents in lines:
            line_no += 1
            ln_rows.append((booking_id, line_no, account, cents))

    if ln_rows:
        l_booking, l_no, l_account, l_cents = (list(c) for c in zip(*ln_rows))
    else:
        l_booking, l_no, l_account, l_cents = [], [], [], []
    ln = {"booking_id": l_booking, "line_no": l_no, "account": l_account,
          "description": pa.nulls(len(l_cents), pa.string()),
          "debit": [c if c > 0 else 0 for c in l_cents],
          "credit": [-c if c < 0 else 0 for c in l_cents]}
    b = {"id": b_id, "date": b_date, "description": b_description, "reference": b_reference}

    if rounded and rounding_account not in accounts:
        accounts.append(rounding_account)
    dates = pa.array(b["date"], pa.string())
    year, period = period_columns(dates)
    n = len(b["id"])
    tables = {
        "accounts": table("accounts", {"code": accounts, "name": accounts}),
        "journals": table("journals", {"code": [JOURNAL], "name": ["Beancount transactions"],
                                       "kind": ["misc"]}),
        "relations": table("relations", {}),
        "bookings": table("bookings", {
            "id": b["id"], "journal": [JOURNAL] * n, "doc_type": ["transaction"] * n,
            "fiscal_year_id": year, "period_id": period, "date": dates,
            "description": b["description"], "reference": b["reference"]}),
        "lines": table("lines", ln),
        "matchings": table("matchings", {}),
    }
    if n:
        tables["fiscal_years"], tables["periods"] = calendar(min(b["date"]), max(b["date"]))
    else:
        tables["fiscal_years"], tables["periods"] = table("fiscal_years", {}), table("periods", {})

    warnings = []
    if other:
        counts = ", ".join(f"{c} {k}" for k, c in other.most_common())
        warnings.append(
            f"{sum(other.values())} posting(s) weigh in another commodity than the operating "
            f"currency {operating} and are kept out of the money figures: {counts}"
            + (f"; {left_out} transaction(s) without any {operating} posting were left out"
               if left_out else ""))
    if rounded:
        warnings.append(
            f"{rounded} transaction(s) have weights finer than a cent: the rounding difference "
            f"({cents_to_str(rounding_total)} {operating} in all) is booked on {rounding_account}")
    return tables, warnings


class BeancountConnector(SnapshotConnector):
    """Reads one Beancount ledger (with its includes) through beancount's loader."""

    package = "beancount"

    def __init__(self, path: Path) -> None:
        path = Path(path)
        entries, options = read_ledger(path)
        tables, warnings = convert_ledger(entries, options)
        super().__init__(str(path), tables, warnings)
