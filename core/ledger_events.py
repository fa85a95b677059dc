"""The demo package's ledger events, for `dossync ledger` and its help.

Kept apart from `core.demo_package` so the CLI can list them without loading
the package's generator.
"""

LEDGER_EVENTS: dict[str, str] = {
    "new-bookings": "N: book N new documents (invoices, bank payments) in open periods [tracked]",
    "validate-proposals": "[--change-first]: book every received proposal definitively [tracked]",
    "book-vat-return": "VAT settlement of the last closed quarter, in the active period [tracked]",
    "year-end-closing": "depreciation, accruals and payroll corrections on 2026-12-31 [tracked]",
    "delete-bookings": "N: delete N bookings from open periods, logged in the deletion log [tracked]",
    "purge-deletion-log": "empty the deletion log (retention passed) [untracked]",
    "edit-closed-period": "correct a purchase booking in a closed fiscal year, bypassing tracking [untracked]",
    "restructure-fiscal-year": "FY 2025 ends 2026-03-31, FY 2026 starts 2026-04-01, bypassing tracking [untracked]",
    "snapshot": "NAME: copy the ledger to <ledger>.snapshots/NAME.sqlite [untracked]",
    "restore-backup": "NAME: put snapshot NAME back in place of the ledger (goes back in time) [untracked]",
}
