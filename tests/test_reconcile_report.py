"""The reconcile report's map of differences (core/reconcile_report.py): the colour says
what to do, not how much."""
from __future__ import annotations


def test_the_map_makes_unexplained_differences_stand_out_whatever_their_amount():
    """A silent edit that moved a few cents (or only a checksum) is dark red; a large
    change a simple sync will bring is pale: the colour says what to do, not how much."""
    import polars as pl

    from dossync.core.reconcile_report import COLOURS, EXPLAINED, UNEXPLAINED, difference_map

    rows = [  # period, account, ledger, portal, explained_by
        ("2025-06", "613300", "3.69", "0.00", None),              # silent edit: cents
        ("2025-06", "440000", "100.00", "100.00", None),          # checksum only
        ("2026-10", "700000", "-25000.00", "0.00", "pending ledger changes"),
        ("2026-10", "400000", "25000.00", "0.00", "pending ledger changes"),
        ("2026-10", "700100", "-10.00", "0.00", None),            # beside explained ones
    ]
    frame = pl.DataFrame(
        [{"fiscal_year": p[:4], "period": p, "journal": "AANK", "account": a, "ledger_count": 1,
          "portal_count": 1, "ledger_amount": lg, "portal_amount": pt, "explained_by": why}
         for p, a, lg, pt, why in rows]).with_columns(
        pl.col("ledger_amount", "portal_amount").cast(pl.Decimal(18, 2)))
    classes = {"613300": "cost", "440000": "payable", "700000": "revenue", "700100": "revenue",
               "400000": "receivable"}
    grid = difference_map(frame, classes)
    assert grid.periods == ["2025-06", "2026-10"]
    cell = {(p, c): grid.state(i, j) for i, p in enumerate(grid.periods)
            for j, c in enumerate(grid.classes)}
    assert cell[("2025-06", "cost")] == cell[("2025-06", "payable")] == UNEXPLAINED
    assert cell[("2026-10", "receivable")] == EXPLAINED
    assert cell[("2026-10", "revenue")] == UNEXPLAINED  # one unexplained among explained
    assert grid.label(grid.periods.index("2026-10"), grid.classes.index("revenue")) == "1 (+1)"
    assert cell[("2025-06", "revenue")] is None
    assert COLOURS[UNEXPLAINED] != COLOURS[EXPLAINED]
    assert difference_map(frame.clear(), classes).periods == []
