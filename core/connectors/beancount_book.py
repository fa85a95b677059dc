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
import datetime
import hashlib
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
from beancount import loader
from beancount.core import compare, data
from beancount.core.number import MISSING
from beancount.core.amount import Amount
from beancount.core.display_context import DEFAULT_FORMATTER
from beancount.core.position import Cost, CostSpec
from beancount.parser import printer

from core.connectors.snapshot import SnapshotConnector, calendar, period_columns, stable_ids, table
from core.model import LedgerUnavailable, cents_to_str

JOURNAL = "BC"
ROUNDING_ACCOUNT = "Equity:Rounding"
MAX_ERRORS_SHOWN = 20
HUNDRED = Decimal(100)
# the field types whose str() stable_hash_namedtuple takes as is (not lists or sets)
_PLAIN = frozenset({str, type(None), Amount, Cost, CostSpec})
_SETS = (frozenset, set)
try:  # CPython's own md5: the same digests as hashlib's, with less overhead per small input
    from _md5 import md5 as _MD5
except ImportError:  # pragma: no cover - a Python built without it
    _MD5 = hashlib.md5


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


def _cents(number) -> int:
    """A weight in integer cents, rounded half-even (round() of a Decimal is half-even)."""
    return round(number * HUNDRED)


class _Walk:
    """The columns one pass over the entries gathers (plain lists, no row objects)."""

    __slots__ = ("digests", "dates", "descriptions", "references", "line_counts",
                 "accounts", "cents", "other", "left_out", "rounded", "rounding_total")

    def __init__(self) -> None:
        self.digests: list[bytes] = []  # per booking: the 8-byte digest of its stable id
        self.dates: list[str] = []
        self.descriptions: list[str | None] = []
        self.references: list[str | None] = []
        self.line_counts: list[int] = []
        self.accounts: list[str] = []  # per line, bookings one after the other
        self.cents: list[int] = []
        self.other: list[str] = []  # the commodity of each posting kept out
        self.left_out = 0  # transactions without any operating-currency posting
        self.rounded = 0  # bookings that got a rounding line, and what those lines add up to
        self.rounding_total = 0


def _walk(entries: list, operating: str, rounding_account: str) -> _Walk:
    """One pass over the transactions: weights in cents, content hashes, booking fields.

    Everything is gathered into flat column lists, no object per row. A plain
    Transaction of plain Postings (units an Amount of a Decimal) is handled
    inline: each posting's part of the content hash is written here the way
    `compare.hash_entry` writes it, and a posting without cost or price weighs
    its units. Postings repeat (rent, salary...), so a posting's md5 and a
    number's cents are remembered by their text. Any other transaction takes
    `_transaction_hash` and `_posting_parts`, the reference this fast path
    must equal (tests/test_beancount.py holds them side by side).
    """
    walk = _Walk()
    digests, dates, descriptions, references = (walk.digests, walk.dates, walk.descriptions,
                                                 walk.references)
    line_counts, accounts, cents, other = walk.line_counts, walk.accounts, walk.cents, walk.other
    transaction_type, posting_type, amount_type, decimal_type, date_type = (
        data.Transaction, data.Posting, Amount, Decimal, datetime.date)
    fast_fields = data.Transaction._fields == _TRANSACTION_FIELDS and data.Posting._fields == (
        "account", "units", "cost", "price", "flag", "meta")
    plain = _plain_default_format()
    exponent = "E" if getcontext().capitals else "e"  # how str() writes a Decimal's exponent
    formats = DEFAULT_FORMATTER.fmtfuncs
    default_format = formats["__default__"]
    md5, blake = _MD5, hashlib.blake2b(digest_size=8).copy  # copies: no parameters to parse
    hundred = HUNDRED
    seen: dict[str, int] = {}
    parts: dict[str, str] = {}  # a posting's text → its md5 (postings repeat: rent, salary...)
    cents_of: dict[str, int] = {}  # a number's text → its cents
    left_out = rounded = rounding_total = 0
    for txn in entries:
        if type(txn) is not transaction_type:
            if not isinstance(txn, transaction_type):
                continue
            fast = False
        else:
            fast = fast_fields
        start = len(cents)
        other_start = len(other)
        digest = None
        if fast:
            _, day, flag, payee, narration, tags, links, postings = txn
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
                        if currency == operating:
                            accounts.append(account)
                            amount = cents_of.get(text)
                            if amount is None:
                                amount = round(number * hundred)
                                if plain:  # then text is the exact number: a safe key
                                    cents_of[text] = amount
                            cents.append(amount)
                        else:
                            other.append(currency)
                    else:
                        if type(cost) not in _PLAIN or type(price) not in _PLAIN:
                            fast = False
                            break
                        hexes.append(md5(f"{account}{text} {currency}{str(cost)}{str(price)}"
                                         f"{pflag}".encode()).hexdigest())
                        number, currency = _posting_parts(posting)
                        if currency == operating:
                            accounts.append(account)
                            cents.append(round(number * hundred))
                        else:
                            other.append(currency)
            if fast and (tags or links):
                if all(type(x) is str for x in tags) and all(type(x) is str for x in links):
                    hexes.sort()
                    hexes[:0] = [*sorted(_md5_hex(x) for x in tags),
                                 *sorted(_md5_hex(x) for x in links)]
                else:
                    fast = False
            elif fast:
                hexes.sort()
            if fast and len(cents) > start:
                iso = day.isoformat()
                head = (f"{iso if type(day) is date_type else str(day)}{str(flag)}{str(payee)}"
                        f"{str(narration)}")
                digest = md5((head + "".join(hexes)).encode()).hexdigest()
        if not fast:  # the reference path, for anything out of the ordinary
            del accounts[start:], cents[start:], other[other_start:]
            for posting in txn.postings:
                number, currency = _posting_parts(posting)
                if currency == operating:
                    accounts.append(posting.account)
                    cents.append(_cents(number))
                else:
                    other.append(currency)
            if len(cents) > start:
                digest = _transaction_hash(txn)
            iso, payee, narration, links = txn.date.isoformat(), txn.payee, txn.narration, txn.links
        if digest is None:
            left_out += 1
            continue
        count = seen.get(digest, 0) + 1
        seen[digest] = count
        # stable_id(digest, count), its digest only: the int64s are made in one go
        h = blake()
        h.update(f"{digest}\x1f{count}".encode())
        digests.append(h.digest())
        residue = -sum(cents[start:])
        if residue:
            accounts.append(rounding_account)
            cents.append(residue)
            rounded += 1
            rounding_total += residue
        line_counts.append(len(cents) - start)
        dates.append(iso)
        if payee:
            descriptions.append(f"{payee} | {narration}" if narration else payee)
        else:
            descriptions.append(narration or None)
        references.append(min(links) if links else None)
    walk.left_out, walk.rounded, walk.rounding_total = left_out, rounded, rounding_total
    return walk


def convert_ledger(entries: list, options: dict) -> tuple[dict[str, pa.Table], list[str]]:
    """The canonical streams of a loaded ledger, and warnings about what was kept out."""
    operating = (options.get("operating_currency") or [None])[0]
    if operating is None:
        weights = collections.Counter(_posting_parts(p)[1] for e in entries
                                      if isinstance(e, data.Transaction) for p in e.postings)
        operating = weights.most_common(1)[0][0] if weights else "EUR"
    rounding_account = options.get("account_rounding") or ROUNDING_ACCOUNT

    accounts = sorted({e.account for e in entries if isinstance(e, data.Open)})
    walk = _walk(entries, operating, rounding_account)

    n = len(walk.digests)
    booking_ids = stable_ids(walk.digests)
    # the lines come booking after booking: their booking id and number from the line counts
    counts = np.array(walk.line_counts, dtype=np.int64)
    cents = np.array(walk.cents, dtype=np.int64)
    firsts = np.cumsum(counts) - counts  # each booking's first line
    line_no = np.arange(len(cents), dtype=np.int64) - np.repeat(firsts, counts) + 1
    ln = {"booking_id": np.repeat(booking_ids.to_numpy(), counts), "line_no": line_no,
          "account": walk.accounts, "description": pa.nulls(len(cents), pa.string()),
          "debit": np.maximum(cents, 0), "credit": np.maximum(-cents, 0)}
    rounded = walk.rounded

    if rounded and rounding_account not in accounts:
        accounts.append(rounding_account)
    dates = pa.array(walk.dates, pa.string())
    year, period = period_columns(dates)
    tables = {
        "accounts": table("accounts", {"code": accounts, "name": accounts}),
        "journals": table("journals", {"code": [JOURNAL], "name": ["Beancount transactions"],
                                       "kind": ["misc"]}),
        "relations": table("relations", {}),
        "bookings": table("bookings", {
            "id": booking_ids, "journal": [JOURNAL] * n, "doc_type": ["transaction"] * n,
            "fiscal_year_id": year, "period_id": period, "date": dates,
            "description": walk.descriptions, "reference": walk.references}),
        "lines": table("lines", ln),
        "matchings": table("matchings", {}),
    }
    if n:
        tables["fiscal_years"], tables["periods"] = calendar(min(walk.dates), max(walk.dates))
    else:
        tables["fiscal_years"], tables["periods"] = table("fiscal_years", {}), table("periods", {})

    warnings = []
    other = collections.Counter(walk.other)
    left_out = walk.left_out
    if other:
        counts_text = ", ".join(f"{c} {k}" for k, c in other.most_common())
        warnings.append(
            f"{sum(other.values())} posting(s) weigh in another commodity than the operating "
            f"currency {operating} and are kept out of the money figures: {counts_text}"
            + (f"; {left_out} transaction(s) without any {operating} posting were left out"
               if left_out else ""))
    if rounded:
        warnings.append(
            f"{rounded} transaction(s) have weights finer than a cent: the rounding difference "
            f"({cents_to_str(walk.rounding_total)} {operating} in all) is booked on "
            f"{rounding_account}")
    return tables, warnings


class BeancountConnector(SnapshotConnector):
    """Reads one Beancount ledger (with its includes) through beancount's loader."""

    package = "beancount"

    def __init__(self, path: Path) -> None:
        path = Path(path)
        entries, options = read_ledger(path)
        tables, warnings = convert_ledger(entries, options)
        super().__init__(str(path), tables, warnings)
