"""Booking proposals into a Beancount ledger: `!` transactions in the dossier's proposals file.

The Beancount connector's proposals capability (`beancount_connector`, asked
by `core.connectors.send_proposals`).

What `receive_proposals` writes, for each proposal, at the end of the
proposals file (`settings.proposals_file`, relative to the ledger's folder;
by default `proposals.beancount` beside the ledger):

    2024-05-03 ! "Brouwerij Peeters" "sales invoice WL-ACME-1A2B3C4D (Brouwerij Peeters)" ^WL-ACME-1A2B3C4D
      dossync-proposal: "sales"
      Assets:Receivable                  121.00 EUR
      Income:Sales                      -100.00 EUR
      Liabilities:VAT:Due                -21.00 EUR

- the flag `!` is beancount's "incomplete": the reader shows it as
  provisional (a draft). The accountant makes it definitive by changing `!`
  to `*` (and may edit it, or move it to another file of the ledger): the
  next sync reads it as booked, and it replaces the proposal.
- payee: the customer or supplier (omitted when the proposal has none);
  narration: the proposal's description; the reference as a link (the
  reader's `reference` is the proposal's link).
- `dossync-proposal: "sales"|"purchase"`: the reader files it as an invoice
  in BC-SALES / BC-PURCH with the payee as its relation.
- postings in the operating currency on the accounts the proposal names (the
  portal's account code is the beancount account name), debit positive.

The proposals file is created when missing, and then included from the
ledger (`include "proposals.beancount"` appended to it, unless the ledger
already includes it). It must lie inside the ledger's folder: a ledger is
data, and dossync writes nowhere else.

Idempotent by reference: a proposal whose reference the ledger already holds
(as a link of any transaction, in any of its files) or whose reference is
written in the proposals file (even one not included yet) is not written
again. Safe: the ledger must load without errors before (else nothing is
written); each file is written whole to a temporary file in the same folder,
fsynced and renamed over the old one; then the ledger is loaded with
beancount: if it has errors now (an account that is not open...), both
files are put back exactly as they were and TerminalError carries
beancount's messages. Writers of the same ledger folder take turns (an
exclusive lock on the folder itself: no lock file beside the ledger).
"""
from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from beancount.core import data

from dossync.core.connectors.beancount_book import (DRAFT_FLAG, PROPOSAL_KEY, operating_currency,
                                            read_ledger)
from dossync.core.files import fsync_folder, write_atomically
from dossync.core.model import ConnectorSettings, LedgerUnavailable, Proposal, TerminalError

DEFAULT_FILE = "proposals.beancount"
CENT = Decimal("0.01")
HEADER = ("; Booking proposals from dossync's worklist, one transaction each, flagged \"!\"\n"
          "; (not yet definitive). Check one, then change its \"!\" to \"*\" to book it.\n")
# what beancount takes as a link after "^"
_LINK = re.compile(r"^[A-Za-z0-9\-_/.]+$")


def proposals_path(ledger: Path, settings: ConnectorSettings) -> Path:
    """The dossier's proposals file, resolved; TerminalError when it lies outside the
    ledger's folder (or is the ledger's folder itself)."""
    folder = ledger.resolve().parent
    name = (settings.proposals_file or "").strip() or DEFAULT_FILE
    target = (folder / name).resolve()
    if target == folder or not target.is_relative_to(folder):
        raise TerminalError(
            f"the proposals file {name!r} resolves to {target}, outside the ledger's folder "
            f"{folder}: dossync writes proposals only inside the ledger's folder. Choose a file "
            f"there (dossync dossier set CODE --proposals-file {DEFAULT_FILE})")
    return target


def _quoted(text: str) -> str:
    """A beancount string literal: backslashes and quotes escaped, on one line."""
    flat = " ".join(str(text).split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: Decimal) -> str:
    """A posting amount as beancount reads it: plain digits, two decimals unless it has more."""
    value = Decimal(value)
    cents = value.quantize(CENT)
    return format(cents if cents == value else value.normalize(), "f")


def transaction_text(proposal: Proposal, currency: str) -> str:
    """One proposal as a `!` transaction (text ending in a newline)."""
    if not _LINK.match(proposal.ref):
        raise TerminalError(f"proposal reference {proposal.ref!r} cannot be a beancount link "
                            f"(letters, digits and - _ / . only)")
    if proposal.kind not in ("sales", "purchase"):
        raise TerminalError(f"proposal {proposal.ref} has kind {proposal.kind!r}: only sales "
                            f"and purchase invoices can be proposed")
    head = f"{proposal.date} {DRAFT_FLAG} "
    if proposal.relation_name:
        head += _quoted(proposal.relation_name) + " "
    head += f"{_quoted(proposal.description)} ^{proposal.ref}\n"
    out = [head, f'  {PROPOSAL_KEY}: "{proposal.kind}"\n']
    if proposal.note:
        out.insert(0, f"; {' '.join(proposal.note.split())}\n")
    width = max((len(line.account) for line in proposal.lines), default=0)
    for line in proposal.lines:
        amount = Decimal(line.debit) - Decimal(line.credit)
        out.append(f"  {line.account.ljust(width)}  {_number(amount):>14} {currency}\n")
    return "".join(out)


def _refs_in(entries: list) -> set[str]:
    refs: set[str] = set()
    for entry in entries:
        if isinstance(entry, data.Transaction) and entry.links:
            refs.update(entry.links)
    return refs


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on the ledger's folder (flock on the directory: no file is made)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing lets the lock go


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return None


def _include_line(ledger: Path, target: Path) -> str:
    relative = os.path.relpath(target, ledger.parent)
    return f'include {_quoted(relative)}\n'


def _appended(old: bytes, text: str) -> bytes:
    """`text` after `old`, a blank line between (and a newline ending old, if it lacks one)."""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    return old + (b"\n" if old else b"") + text.encode("utf-8")


def receive_proposals(path: Path, settings: ConnectorSettings | None,
                      proposals: list[Proposal]) -> None:
    """Append the proposals not yet in the ledger to its proposals file (see the module).

    Raises LedgerUnavailable when the ledger cannot be loaded as it is, TerminalError
    (LedgerRefused among them) when the ledger asks for what dossync will not run, the
    proposals file lies outside the ledger's folder or the proposals would break the
    ledger (then nothing changed).
    """
    settings = settings or ConnectorSettings()
    ledger = Path(path).resolve()
    target = proposals_path(ledger, settings)
    if not proposals:
        return
    with _folder_lock(ledger.parent):
        try:
            entries, options = read_ledger(ledger, settings.allowed_plugins)
        except LedgerUnavailable as exc:
            raise LedgerUnavailable(f"proposals not written: the ledger must load without "
                                    f"errors first. {exc}") from exc
        currency = operating_currency(entries, options, settings.currency)
        known = _refs_in(entries)
        ledger_old = ledger.read_bytes()
        target_old = target.read_bytes() if target.exists() else None
        if target_old is not None and target != ledger:
            known.update(re.findall(r"\^([A-Za-z0-9\-_/.]+)",
                                    target_old.decode("utf-8", errors="replace")))
        new: list[Proposal] = []
        for proposal in proposals:
            if proposal.ref not in known:
                known.add(proposal.ref)
                new.append(proposal)
        included = {str(Path(f).resolve()) for f in options.get("include") or []}
        # a proposals file that exists (or is about to) and that the ledger does not include yet
        needs_include = (target != ledger and str(target) not in included
                         and (bool(new) or target_old is not None))
        if not new and not needs_include:
            return
        written: list[tuple[Path, bytes | None, int | None]] = []
        try:
            if new:
                text = "\n".join(transaction_text(p, currency) for p in new)
                if target == ledger:
                    base, mode = ledger_old, _mode(ledger)
                elif target_old is not None:
                    base, mode = target_old, _mode(target)
                    if target.read_bytes() != target_old:
                        raise TerminalError(f"{target} changed while dossync was writing "
                                            f"proposals: nothing was written; try again")
                else:
                    base, mode = HEADER.encode(), _mode(ledger)
                    target.parent.mkdir(parents=True, exist_ok=True)
                written.append((target, target_old if target != ledger else ledger_old, mode))
                write_atomically(target, _appended(base, text), mode=mode, durable=True)
            if needs_include:
                if ledger.read_bytes() != ledger_old:
                    raise TerminalError(f"{ledger} changed while dossync was writing proposals: "
                                        f"nothing was written; try again")
                written.append((ledger, ledger_old, _mode(ledger)))
                write_atomically(ledger, _appended(ledger_old, _include_line(ledger, target)),
                                 mode=_mode(ledger), durable=True)
            try:
                after, _ = read_ledger(ledger, settings.allowed_plugins)
            except LedgerUnavailable as exc:
                raise TerminalError(
                    f"the booking proposals would break the beancount ledger, so they were not "
                    f"written ({target.name} and {ledger.name} are as they were). {exc}") from exc
            missing = sorted({p.ref for p in new} - _refs_in(after))
            if missing:
                raise TerminalError(
                    f"the ledger does not see the proposals written to {target} "
                    f"({', '.join(missing[:5])}): nothing was written")
        except BaseException:
            _put_back(written)
            raise


def _put_back(written: list[tuple[Path, bytes | None, int | None]]) -> None:
    """Every file written, back to exactly what it was (or gone, if it was not there)."""
    for file, old, mode in reversed(written):
        if old is None:
            file.unlink(missing_ok=True)
            fsync_folder(file.parent)
        else:
            write_atomically(file, old, mode=mode, durable=True)
