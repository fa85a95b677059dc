"""Property: whatever tracked edits the accountant makes, a simple sync brings the portal in line.

Random sequences of the ledger events a simple sync must see (CONTRACT.md,
`dossync ledger`, column "seen by a simple sync? yes") interleaved with
simple syncs; after every sync the portal equals the ledger.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_portal_equals_ledger, build_demo, codes, copy_home, ledger_path
from dossync.core import demo_package
from dossync.core.demo_package import LedgerEventError
from dossync.core.home import Home
from dossync.core.sync import sync_dossier


@pytest.fixture(scope="module")
def small_template(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory, "small", 1, 1500, 5)



SYNC = ("sync",)
events = st.one_of(
    st.integers(1, 15).map(lambda n: ("new-bookings", str(n))),
    st.just(("validate-proposals",)),
    st.just(("book-vat-return",)),
    st.just(("year-end-closing",)),
    st.integers(1, 5).map(lambda n: ("delete-bookings", str(n))),
)
steps = st.lists(st.one_of(events, events, st.just(SYNC)), min_size=1, max_size=12)


@settings(max_examples=20, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=steps)
def test_simple_syncs_keep_the_portal_equal_to_the_ledger(small_template, steps):
    with tempfile.TemporaryDirectory(prefix="dossync-prop-") as tmp:
        home = copy_home(small_template, Path(tmp) / "firm")
        (code,) = codes(home)
        ledger = ledger_path(home, code)
        applied = []
        for step in [*steps, SYNC]:  # always end on a sync
            if step == SYNC:
                result = sync_dossier(Home(home), code, "simple")
                assert result.status == "succeeded", (applied, result.error, result.warnings)
                assert result.kind == "simple"
                assert_portal_equals_ledger(home, code)
                applied.append("sync")
                continue
            event, *args = step
            try:
                demo_package.apply_event(ledger, event, args)
            except LedgerEventError as exc:  # the package refused (e.g. VAT return already booked)
                applied.append(f"{' '.join(step)} (refused: {exc})")
            else:
                applied.append(" ".join(step))
