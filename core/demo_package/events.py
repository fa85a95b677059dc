"""The ledger events: what `dossync ledger CODE EVENT [ARGS]` can do to a demo ledger.

One registry, :data:`LEDGER_EVENTS`, says for each event its help text,
whether the package tracks its changes, whether it takes a count N, and
which function runs it. The CLI reads it on every start (for `--help` and to
check the event's name), so this module stays light: an event's function,
with SQLite and the generator's tables behind it, is imported only when the
event runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class LedgerEventError(Exception):
    """A `dossync ledger` event could not be applied (bad arguments, unknown
    event, missing ledger or snapshot, nothing to do)."""


class LedgerEvent(NamedTuple):
    """One `dossync ledger` event.

    `help` is one line, starting with the event's arguments if it takes any;
    `tracked` says whether the package records the changes (change counter,
    row versions, deletion log) the way a sync can follow them; `takes_count`
    marks the events whose one argument is a count N (the CLI caps it);
    `handler` names the function that runs the event, as "module:function" in
    this package, called with (ledger path, event name, arguments)."""

    name: str
    help: str
    tracked: bool
    handler: str
    takes_count: bool = False

    @property
    def summary(self) -> str:
        """The help line, with whether the event is tracked."""
        return f"{self.help} [{'tracked' if self.tracked else 'untracked'}]"

    def load(self) -> Callable[[Path, str, list[str]], str]:
        """The function that runs the event (importing its module)."""
        module, _, function = self.handler.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)


LEDGER_EVENTS: dict[str, LedgerEvent] = {event.name: event for event in (
    LedgerEvent("new-bookings", "N: book N new documents (invoices, bank payments) in open "
                "periods", tracked=True, takes_count=True, handler="bookkeeping:new_bookings"),
    LedgerEvent("validate-proposals", "[--change-first]: book every received proposal "
                "definitively", tracked=True, handler="bookkeeping:validate_proposals"),
    LedgerEvent("book-vat-return", "VAT settlement of the last closed quarter, in the active "
                "period", tracked=True, handler="bookkeeping:book_vat_return"),
    LedgerEvent("year-end-closing", "depreciation, accruals and payroll corrections on "
                "2026-12-31", tracked=True, handler="bookkeeping:year_end_closing"),
    LedgerEvent("delete-bookings", "N: delete N bookings from open periods, logged in the "
                "deletion log", tracked=True, takes_count=True,
                handler="bookkeeping:delete_bookings"),
    LedgerEvent("purge-deletion-log", "empty the deletion log (retention passed)",
                tracked=False, handler="maintenance:purge_deletion_log"),
    LedgerEvent("edit-closed-period", "correct a purchase booking in a closed fiscal year, "
                "bypassing tracking", tracked=False, handler="maintenance:edit_closed_period"),
    LedgerEvent("restructure-fiscal-year", "FY 2025 ends 2026-03-31, FY 2026 starts "
                "2026-04-01, bypassing tracking", tracked=False,
                handler="maintenance:restructure_fiscal_year"),
    LedgerEvent("snapshot", "NAME: copy the ledger to <ledger>.snapshots/NAME.sqlite",
                tracked=False, handler="snapshots:take_snapshot"),
    LedgerEvent("restore-backup", "NAME: put snapshot NAME back in place of the ledger (goes "
                "back in time)", tracked=False, handler="snapshots:restore_snapshot"),
)}


def apply_event(path: Path, event: str, args: list[str]) -> str:
    """Run one `dossync ledger` event on the ledger at `path`; return a one-line message.

    Raises LedgerEventError for an unknown event, bad arguments, a missing
    ledger or snapshot, or when there is nothing the event could do."""
    path = Path(path)
    spec = LEDGER_EVENTS.get(event)
    if spec is None:
        raise LedgerEventError(
            f"{path}: unknown ledger event {event!r}; known: {', '.join(LEDGER_EVENTS)}")
    return spec.load()(path, event, list(args))


def count_arg(path: Path, event: str, args: list[str]) -> int:
    """The count N, the only argument of `event`."""
    if len(args) != 1:
        raise LedgerEventError(f"{path}: '{event}' takes exactly one argument N (got {args!r})")
    try:
        n = int(args[0])
    except ValueError:
        raise LedgerEventError(f"{path}: '{event}' N must be a whole number, not {args[0]!r}") \
            from None
    if n < 1:
        raise LedgerEventError(f"{path}: '{event}' N must be at least 1 (got {n})")
    return n


def no_args(path: Path, event: str, args: list[str]) -> None:
    if args:
        raise LedgerEventError(f"{path}: '{event}' takes no arguments (got {args!r})")
