"""The words of the reports the notebooks make (`reconcile --html`, the firm overview).

Kept here, marked for the catalogs (core/i18n.py), because `pybabel extract`
reads Python modules, not notebooks: a notebook shows `_(NAME)` of these.
"""
from __future__ import annotations

from dossync.core.i18n import N_

RECONCILE_TITLE = N_("Reconciliation of {code}")
RECONCILE_INTRO = N_(
    "The ledger's figures (computed by the accounting package) against the portal's mirrored "
    "bookings, per fiscal year × period × journal × account: line count, debit, credit and a "
    "checksum over booking keys and versions. Periods whose fingerprints (a few sums both sides "
    "compute without grouping) agree are not compared segment by segment. Every difference is "
    "classified as explained (pending ledger changes a simple sync brings in, or proposals the "
    "portal already shows as provisional) or unexplained (a full sync, or a targeted reload of "
    "the affected periods, is justified).")
SUMMARY = N_("Summary")
FIGURE, VALUE = N_("figure"), N_("value")
SUMMARY_FIGURES = (
    N_("booking lines in the ledger"), N_("booking lines in the portal"),
    N_("periods compared (fingerprints)"), N_("periods compared segment by segment"),
    N_("segments compared"), N_("segments that differ"), N_("of which unexplained"),
    N_("ledger changes since the last sync"), N_("provisional proposals in the portal"),
    N_("rows a full sync reads"), N_("rows a targeted repair reads"))
DIFFERENCES = N_("Differences")
DIFFERENCES_NOTE = N_(
    "Amounts are net (debit − credit) per segment, in the dossier's currency. `explained_by` "
    "is empty for an unexplained difference.")
MAP = N_("Where the differences are")
MAP_NOTE = N_(
    "Period × account class (revenue, cost, bank, receivable, payable, VAT, equity, other "
    "assets and liabilities, as the package classes its accounts). **Dark red: unexplained** — "
    "the portal and the package disagree there and only a repair or a full sync mends it, "
    "whatever the amount (a silent edit of a closed period may move a few cents, or nothing but "
    "a checksum). Pale grey: explained only — a simple sync brings those changes, or they are "
    "proposals the portal already shows. The number is how many segments differ (explained "
    "ones in brackets).")
MAP_UNEXPLAINED = N_("unexplained: repair or full sync")
MAP_EXPLAINED = N_("explained: a simple sync brings it")
MAP_TITLE = N_("{code}: where the portal and the package differ")
VERDICT = N_("Verdict")

OVERVIEW_TITLE = N_("Firm overview: which dossiers justify a full sync?")
OVERVIEW_INTRO = N_(
    "Every dossier reconciled (ledger figures against portal figures), its verdict, and what "
    "putting it right would cost: the rows a full sync reads against the rows a targeted repair "
    "of just the flagged periods reads.")
VERDICTS = N_("Verdicts")
COST = N_("What it would cost")
COST_NOTE = N_(
    "Rows read from the office server: a full sync reads the whole ledger; a targeted repair "
    "reads only the bookings and lines of the flagged periods.")
