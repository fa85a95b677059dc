"""What the reconcile report (`reconcile --html`, notebooks/reconcile_dossier.ipynb) draws.

The map of differences, period by account class, is for one question: where
must someone act? A difference a simple sync will bring (a ledger change not
synced yet) or a proposal the portal already shows is explained: nothing to
do. An unexplained one means the portal and the package disagree and only a
repair or a full sync mends it, however small its amount (a silent edit in a
closed period can move a few cents, or none: a checksum-only difference).
So a cell's colour says which of the two it holds, never how large the
amount is: unexplained cells are dark red, explained-only cells pale grey.
Account classes are the connector's (`portal.account_classes`), for any chart.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dossync.core.classes import CLASSES

UNEXPLAINED, EXPLAINED = "unexplained", "explained"
COLOURS = {None: "#ffffff", EXPLAINED: "#d9d9d9", UNEXPLAINED: "#b2182b"}


@dataclass(frozen=True)
class DifferenceMap:
    """Per period (rows) and account class (columns): segments that differ, unexplained
    and explained."""

    periods: list[str]
    classes: list[str]
    unexplained: list[list[int]]
    explained: list[list[int]]

    def state(self, i: int, j: int) -> str | None:
        """What the cell holds: UNEXPLAINED if any of its differences is, else EXPLAINED
        if it has some, else None."""
        if self.unexplained[i][j]:
            return UNEXPLAINED
        return EXPLAINED if self.explained[i][j] else None

    def label(self, i: int, j: int) -> str:
        """The cell's text: the unexplained count, with the explained ones in brackets."""
        u, e = self.unexplained[i][j], self.explained[i][j]
        if u and e:
            return f"{u} (+{e})"
        return str(u or e or "")


def difference_map(differences: pl.DataFrame, account_class: dict[str, str]) -> DifferenceMap:
    """The map of reconcile's differences (`ReconcileResult.frame()`), classes from the
    connector's account classes (an account it did not class is "unknown")."""
    if differences.height == 0:
        return DifferenceMap([], [], [], [])
    cells = (differences
             .with_columns(pl.col("account").replace_strict(account_class, default="unknown",
                                                            return_dtype=pl.String)
                           .fill_null("unknown").alias("class"),
                           pl.col("explained_by").is_null().alias("unexplained"))
             .group_by("period", "class")
             .agg(pl.col("unexplained").sum().alias("u"),
                  (~pl.col("unexplained")).sum().alias("e")))
    periods = sorted(cells["period"].unique().to_list())
    present = set(cells["class"].to_list())
    classes = [c for c in CLASSES if c in present] + sorted(present - set(CLASSES))
    unexplained = [[0] * len(classes) for _ in periods]
    explained = [[0] * len(classes) for _ in periods]
    for row in cells.iter_rows(named=True):
        i, j = periods.index(row["period"]), classes.index(row["class"])
        unexplained[i][j], explained[i][j] = int(row["u"]), int(row["e"])
    return DifferenceMap(periods, classes, unexplained, explained)
