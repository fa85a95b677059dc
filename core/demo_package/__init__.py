"""The demo accounting package: an embedded stand-in for an on-premise Belgian
accounting package ("boekhoudpakket"), one SQLite ledger file per dossier.

dossync needs a package it can drive end to end without a real installation:
the demo firm (`dossync demo`), the accountant's direct edits
(`dossync ledger CODE EVENT`) and the tests all work on ledgers written here.
The schema is fixed in ``core/ledger_schema.sql`` and mimics a legacy package:
no unique keys, a global change counter copied into every tracked row's
``rv``, a deletion log with limited retention, and maintenance tools that
bypass change tracking. The sync engine and the demo connector are written
against that schema, not against this package.

One module per job:

- ``reference``: the chart of accounts, VAT codes, journals and the demo's dates;
- ``identities``: the fake companies and their customers and suppliers;
- ``rows``: the ledger's rows as named records, one type per table;
- ``documents``: the postings of invoices and credit notes;
- ``generator``: a whole ledger from a company and a seed (:func:`create_ledger`);
- ``ledger``: the ledger files and the package's write transactions;
- ``events``: the registry of ledger events, and :func:`apply_event`;
- ``bookkeeping``, ``maintenance``, ``snapshots``: the events themselves;
- ``inbox``: the booking proposals the package receives.

Generated content is deterministic for a (company, seed) pair and never
depends on today's date: the demo "today" is :data:`DEMO_AS_OF`.

The names below are loaded from their module on first use, so that reading
the event registry (the CLI does on every start) costs no more than the
registry itself.
"""

from __future__ import annotations

import importlib

_EXPORTS: dict[str, tuple[str, ...]] = {
    "reference": ("DEMO_AS_OF", "DATA_DIR", "FIRST_YEAR", "LAST_YEAR", "ACTIVE_PERIOD",
                  "JOURNALS", "VatCode", "chart_of_accounts", "vat_codes"),
    "identities": ("DemoCompany", "demo_companies", "enterprise_number_valid"),
    "generator": ("create_ledger",),
    "ledger": ("SCHEMA_FILE", "HISTORY_DDL", "ledger_trial_balance", "record_history"),
    "events": ("LEDGER_EVENTS", "LedgerEvent", "LedgerEventError", "apply_event"),
    "snapshots": ("snapshot_dir",),
    "inbox": ("receive_proposals",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "DEMO_AS_OF",
    "DemoCompany",
    "LEDGER_EVENTS",
    "LedgerEvent",
    "LedgerEventError",
    "apply_event",
    "chart_of_accounts",
    "create_ledger",
    "demo_companies",
    "enterprise_number_valid",
    "ledger_trial_balance",
    "receive_proposals",
    "snapshot_dir",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
