"""Real Beancount ledgers (fava's examples and test files), synced through the CLI.

The ledgers in tests/corpus/beancount are copies of /work/shared/corpus/beancount
(fava, MIT: LICENSE-fava beside them), none of them written by dossync. The
oracle shares nothing with the connector: beancount's own loader and
`convert.get_weight`, summed per (account, currency) and rounded to the cent
only at the end. Every ledger beancount loads without errors must reach the
portal whole (every transaction a booking, every posting a line, other
commodities than the operating currency included) and give the same trial
balance, after activation and after a change the accountant makes in the file;
the broken ones are refused with the file and line, leaving no dossier behind.
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from conftest import cli, cli_json
from dossync.core.cli import main

from beancount import loader  # noqa: E402
from beancount.core import convert, data  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus" / "beancount"
GOOD = ["budgets-example", "edit-example", "fava-example", "off-by-one", "query-example"]
BROKEN = {
    # ledger: (line, what the message says)
    "errors": (11, 'Not enough lots to reduce "-1.0 ACME {}"'),
    "invalid-unicode": (11, "line 11 is not valid UTF-8; save the file as UTF-8"),
}
CENT = Decimal("0.01")
SIX = Decimal(1).scaleb(-6)


SHARED = Path("/work/shared/corpus/beancount")  # where the copies come from, when it is there


def test_every_corpus_ledger_is_tested():
    assert sorted(p.stem for p in CORPUS.glob("*.beancount")) == sorted([*GOOD, *BROKEN])
    assert (CORPUS / "LICENSE-fava").is_file()
    if SHARED.is_dir():  # the copies are faithful, byte for byte (the broken bytes included)
        for source in SHARED.iterdir():
            assert (CORPUS / source.name).read_bytes() == source.read_bytes(), source.name


# --- the oracle: beancount itself ---------------------------------------------------------
def beancount_balances(path: Path) -> tuple[dict[tuple[str, str | None], Decimal], int, int]:
    """Per (account, commodity; None for the operating currency): the exact sum of the
    posting weights; and how many transactions and postings beancount holds."""
    entries, errors, options = loader.load_file(str(path))
    assert not errors, errors
    operating = options["operating_currency"][0]
    sums: dict = collections.defaultdict(Decimal)
    transactions = postings = 0
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        transactions += 1
        for posting in entry.postings:
            postings += 1
            weight = convert.get_weight(posting)
            key = (posting.account, None if weight.currency == operating else weight.currency)
            sums[key] += weight.number
    return dict(sums), transactions, postings


def cli_here(home: Path, *args: str):
    """The CLI's entry point in this process (reports: no child process to start), with --json:
    (exit code, the JSON document)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["--home", str(home), *args, "--json"])
    return status, json.loads(out.getvalue())


def portal_balances(home: Path, code: str) -> dict[tuple[str, str | None], tuple[str, str]]:
    """(balance rounded to the cent, balance_exact) per (account, commodity), from the CLI's
    `report CODE trial-balance --json`."""
    status, rows = cli_here(home, "report", code, "trial-balance")
    assert status == 0, rows
    balances = {(r["account"], r["commodity"]): (r["balance"], r["balance_exact"]) for r in rows}
    assert len(balances) == len(rows), "one row per account and commodity"
    return balances


def assert_portal_equals_beancount(home: Path, code: str, expected: dict) -> None:
    """The trial balance equals beancount's figures: rounded, and exactly."""
    got = portal_balances(home, code)
    assert set(got) == set(expected)
    rounded = {k: str(v.quantize(CENT, rounding=ROUND_HALF_UP)) for k, v in expected.items()}
    assert {k: b for k, (b, _) in got.items()} == rounded
    for key, value in expected.items():
        portal_exact = Decimal(got[key][1])
        if value == value.quantize(SIX):  # as exact as the portal's 6 decimals
            assert portal_exact == value, key
        else:  # only weights of @@ totals carry more: rounded at the 6th decimal each
            assert abs(portal_exact - value) < Decimal("1E-4"), key


def assert_conserved(result: dict, transactions: int, postings: int) -> None:
    """Every stream: read = inserted + updated + unchanged + quarantined, nothing
    quarantined; every transaction a booking, every posting a line."""
    assert result["status"] == "succeeded", result
    for name, s in result["streams"].items():
        assert s["read"] == s["inserted"] + s["updated"] + s["unchanged"] + s["quarantined"], name
        assert s["quarantined"] == 0, (name, s)
    assert result["streams"]["bookings"]["read"] == transactions
    assert result["streams"]["lines"]["read"] == postings
    assert not any("kept out" in w for w in result["warnings"]), result["warnings"]


def accountant_appends(ledger: Path) -> None:
    """What an accountant adds with their editor: shares bought at a cost basis finer than a
    cent, paid from an account the ledger has, and hours in a commodity of their own."""
    entries, _, options = loader.load_file(str(ledger))
    operating = options["operating_currency"][0]
    closed = {e.account for e in entries if isinstance(e, data.Close)}
    payer = next(e.account for e in entries if isinstance(e, data.Open)
                 and e.account.split(":")[0] in ("Assets", "Liabilities")
                 and e.account not in closed and (not e.currencies or operating in e.currencies))
    day = max(e.date for e in entries)
    with ledger.open("a") as fh:
        fh.write(f"\n{day} open Assets:Dossync:Broker\n"
                 f"{day} open Assets:Dossync:Hours\n"
                 f"{day} open Income:Dossync:Hours\n\n"
                 f'{day} * "Makelaar Peeters" "shares at a cost basis"\n'
                 f"  Assets:Dossync:Broker       3 DSYNC {{33.3333 {operating}}}\n"
                 f"  {payer}   -100.00 {operating}\n\n"
                 f'{day} * "hours worked"\n'
                 f"  Assets:Dossync:Hours     7.5 HRS\n"
                 f"  Income:Dossync:Hours    -7.5 HRS\n")


@pytest.fixture
def corpus_copy(tmp_path):
    def copy(name: str) -> Path:
        target = tmp_path / "books" / f"{name}.beancount"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(CORPUS / f"{name}.beancount", target)
        return target
    return copy


@pytest.mark.parametrize("name", GOOD)
def test_good_ledger_equals_beancount_after_activation_and_a_change(name, corpus_copy, tmp_path):
    ledger = corpus_copy(name)
    home = tmp_path / "firm"
    status, result = cli_json(home, "dossier", "add", "BC", "--package", "beancount",
                              "--source", str(ledger))
    assert status == 0, result
    expected, transactions, postings = beancount_balances(ledger)
    assert_conserved(result, transactions, postings)
    assert_portal_equals_beancount(home, "BC", expected)
    if name in ("fava-example", "budgets-example", "query-example"):  # fava's generated books
        assert len({a for a, _ in expected}) >= (50 if name != "query-example" else 40)
        assert {c for _, c in expected} >= {None, "IRAUSD", "VACHR"}

    accountant_appends(ledger)
    status, result = cli_json(home, "sync", "BC")
    assert status == 0 and result["kind"] == "simple", result
    after, transactions, postings = beancount_balances(ledger)
    assert_conserved(result, transactions, postings)
    # the two new bookings and their lines, the three new accounts; nothing else rewritten
    assert result["streams"]["bookings"]["inserted"] == 2
    assert result["streams"]["lines"]["inserted"] == 4
    assert result["streams"]["accounts"]["inserted"] == 3
    assert result["rows"]["updated"] == result["rows"]["deleted"] == 0
    assert_portal_equals_beancount(home, "BC", after)
    assert after[("Assets:Dossync:Broker", None)] == Decimal("99.9999")
    assert after[("Assets:Dossync:Hours", "HRS")] == Decimal("7.5")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_ledger_is_refused_with_file_and_line(name, corpus_copy, tmp_path):
    ledger = corpus_copy(name)
    line, message = BROKEN[name]
    home = tmp_path / "firm"
    done = cli(home, "dossier", "add", "BAD", "--package", "beancount", "--source", str(ledger))
    assert done.returncode == 1, done.stderr
    assert f"{ledger}:{line}:" in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    status, listed = cli_json(home, "dossier", "list")
    assert status == 0 and listed == []
    assert sorted(os.listdir(ledger.parent)) == [ledger.name]  # nothing left beside it
