"""Worklist proposals: provisional at once, replaced by the definitive booking, never twice."""
from __future__ import annotations

from decimal import Decimal

from conftest import (assert_portal_equals_ledger, cents, cli, cli_json, codes,
                      ledger_trial_balance, portal_trial_balance)


def test_propose_moves_the_dashboard_at_once(demo_home):
    code = codes(demo_home)[0]
    _, before = cli_json(demo_home, "report", code, "dashboard")
    status, sent = cli_json(demo_home, "propose", code, "--count", "6")
    assert status == 0
    assert sent["pending_proposals"] == 6 and len(sent["proposals"]) == 6
    assert len({p["ref"] for p in sent["proposals"]}) == 6
    _, after = cli_json(demo_home, "report", code, "dashboard")
    sales = sum(Decimal(p["amount"]) for p in sent["proposals"] if p["journal"] == "VERK")
    assert Decimal(after["receivables"]) - Decimal(before["receivables"]) == sales
    assert after["revenue"] != before["revenue"] and after["costs"] != before["costs"]
    # the client sees them in the archive, marked provisional; --validated-only leaves them out
    _, archive = cli_json(demo_home, "report", code, "archive")
    provisional = {d["ref"] for d in archive if d["booking_status"] == "provisional"}
    assert provisional == {p["ref"] for p in sent["proposals"]}
    _, validated = cli_json(demo_home, "report", code, "dashboard", "--validated-only")
    assert validated["revenue"] == before["revenue"]
    status, rows = cli_json(demo_home, "status")
    assert {r["code"]: r["pending_proposals"] for r in rows}[code] == 6


def test_validated_proposals_replace_the_provisional_ones(demo_home):
    code = codes(demo_home)[0]
    cli_json(demo_home, "propose", code, "--count", "5")
    assert portal_trial_balance(demo_home, code) != ledger_trial_balance(demo_home, code)
    assert cli(demo_home, "ledger", code, "validate-proposals").returncode == 0
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0
    assert run["pending_proposals"] == 0
    assert_portal_equals_ledger(demo_home, code)  # no double counting
    _, archive = cli_json(demo_home, "report", code, "archive")
    assert not [d for d in archive if d["booking_status"] == "provisional"]


def test_accountant_changed_a_proposal_before_validating(demo_home):
    code = codes(demo_home)[0]
    cli_json(demo_home, "propose", code, "--count", "4")
    done = cli(demo_home, "ledger", code, "validate-proposals", "--change-first")
    assert done.returncode == 0 and "corrected" in done.stdout
    status, run = cli_json(demo_home, "sync", code, "--full")
    assert status == 0 and run["pending_proposals"] == 0
    assert_portal_equals_ledger(demo_home, code)


def test_proposals_waiting_in_the_package_stay_provisional(demo_home):
    code = codes(demo_home)[1]
    _, sent = cli_json(demo_home, "propose", code, "--count", "3")
    assert cli_json(demo_home, "sync", code)[0] == 0  # not validated yet: still provisional
    _, rows = cli_json(demo_home, "status")
    assert {r["code"]: r["pending_proposals"] for r in rows}[code] == 3
    _, archive = cli_json(demo_home, "report", code, "archive")
    assert len([d for d in archive if d["booking_status"] == "provisional"]) == 3


def test_proposal_in_a_closed_period_goes_to_the_active_period(demo_home):
    code = codes(demo_home)[0]
    _, sent = cli_json(demo_home, "propose", code, "--count", "40")
    active = cli_json(demo_home, "status")[1][0]["active_period"]
    assert all(p["date"] >= f"{active}-01" for p in sent["proposals"])
    moved = [p for p in sent["proposals"] if "closed period" in p.get("note", "")]
    assert moved and all(p["date"] == f"{active}-01" for p in moved)


def _package_refs(home, code) -> list[str]:
    import sqlite3

    from conftest import ledger_path

    with sqlite3.connect(ledger_path(home, code)) as con:
        return [r[0] for r in con.execute("SELECT ref FROM proposals ORDER BY ref")]


def test_proposals_the_package_did_not_get_go_with_the_next_sync(demo_home, monkeypatch):
    """Killed (or refused) between the portal's commit and the package: nothing is lost,
    nothing is sent twice; the portal ends up with exactly what the package received."""
    from dossync.core import worklist
    from dossync.core.home import Home
    from dossync.core.model import PackageBusy

    code = codes(demo_home)[0]
    home = Home(demo_home)

    def refused(*args, **kwargs):
        raise PackageBusy("the package is busy (test)")

    monkeypatch.setattr(worklist, "send_proposals", refused)
    proposals, counter, delivery = worklist.propose(home, code, 3)
    assert counter == 3 and delivery.waiting == 3 and "busy (test)" in delivery.message(code)
    assert _package_refs(demo_home, code) == []  # the package has none yet...
    _, archive = cli_json(demo_home, "report", code, "archive")  # ...the portal shows them
    assert len([d for d in archive if d["booking_status"] == "provisional"]) == 3
    monkeypatch.undo()
    status, run = cli_json(demo_home, "sync", code)  # the next sync sends them first
    assert status == 0 and not [w for w in run["warnings"] if "queue" in w]
    assert _package_refs(demo_home, code) == sorted(p.ref for p in proposals)
    status, run = cli_json(demo_home, "sync", code)  # and only once
    assert _package_refs(demo_home, code) == sorted(p.ref for p in proposals)
    assert cli(demo_home, "ledger", code, "validate-proposals").returncode == 0
    status, run = cli_json(demo_home, "sync", code)
    assert run["pending_proposals"] == 0
    assert_portal_equals_ledger(demo_home, code)


def test_a_queue_sent_twice_reaches_the_package_once(demo_home):
    from dossync.core import portal, worklist
    from dossync.core.connectors import send_proposals
    from dossync.core.home import Home

    code = codes(demo_home)[1]
    home = Home(demo_home)
    status, sent = cli_json(demo_home, "propose", code, "--count", "4")
    assert status == 0 and sent["queued"] == 0 and len(sent["delivered"]) == 4
    assert portal.queued_proposals(home.portal, code) == []
    dossier = portal.get_dossier(home.portal, code)
    again = worklist.build_proposals(home, code, 2)
    send_proposals("demo", dossier.source, dossier.settings(), again)
    send_proposals("demo", dossier.source, dossier.settings(), again)  # e.g. a retry after a kill
    assert len(_package_refs(demo_home, code)) == 6


def test_proposals_wait_while_a_sync_holds_the_dossier(demo_home, monkeypatch):
    from dossync.core import worklist
    from dossync.core.home import Home
    from dossync.core.locks import DossierLock

    code = codes(demo_home)[0]
    home = Home(demo_home)
    monkeypatch.setattr(worklist, "LOCK_WAIT_SECONDS", 0.3)
    lock = DossierLock(home.locks, code).acquire(purpose="sync")
    try:
        proposals, counter, delivery = worklist.propose(home, code, 2)
    finally:
        lock.release()
    assert delivery.waiting == 2 and "busy" in delivery.reason
    assert _package_refs(demo_home, code) == []
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0 and _package_refs(demo_home, code) == sorted(p.ref for p in proposals)


def test_proposals_the_package_refuses_are_not_shown(demo_home):
    from dossync.core import portal
    from conftest import ledger_path

    code = codes(demo_home)[0]
    _, before = cli_json(demo_home, "report", code, "dashboard")
    ledger = ledger_path(demo_home, code)
    ledger.rename(ledger.with_suffix(".away"))
    done = cli(demo_home, "propose", code, "--count", "3")
    assert done.returncode == 1, done.stderr
    assert "not sent" in done.stderr and "not shown in the portal" in done.stderr
    assert str(ledger) in done.stderr and "Traceback" not in done.stderr
    ledger.with_suffix(".away").rename(ledger)
    _, after = cli_json(demo_home, "report", code, "dashboard")
    assert after == before
    assert portal.queued_proposals(demo_home / "portal.duckdb", code) == []
    assert portal.get_dossier(demo_home / "portal.duckdb", code).pending_proposals == 0


def _proposal_bookings(home, code) -> dict[str, int | None]:
    """The package's own view: each proposal it booked -> its booking, None once deleted."""
    import sqlite3

    from conftest import ledger_path

    with sqlite3.connect(ledger_path(home, code)) as con:
        return dict(con.execute("SELECT p.ref, b.id FROM proposals p LEFT JOIN bookings b "
                                "ON b.id = p.booking_id WHERE p.status = 'booked'"))


def _provisional_rows(home, code) -> tuple[int, int]:
    from dossync.core import portal

    with portal.connect(home / "portal.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM provisional_bookings WHERE dossier = ?), "
            "(SELECT count(*) FROM provisional_lines WHERE dossier = ?)", [code, code]).fetchall()[0]


def test_a_proposal_booked_and_deleted_before_any_sync_leaves_the_portal(demo_home):
    """The accountant validates proposals and deletes a booking made from one before any
    sync saw it: the portal never sees that booking, yet the sync reads the package's own
    proposal statuses and retires the proposal, once; the proposals still waiting in the
    package stay pending (the README's "Reliability")."""
    from dossync.core import portal, reports

    code = codes(demo_home)[0]
    _, sent = cli_json(demo_home, "propose", code, "--count", "3")
    assert cli(demo_home, "ledger", code, "validate-proposals").returncode == 0
    assert sorted(_proposal_bookings(demo_home, code)) == sorted(p["ref"]
                                                                 for p in sent["proposals"])
    _, waiting = cli_json(demo_home, "propose", code, "--count", "2")  # not validated: they stay
    # the package's own event deletes a booking of an open period (its choice), one at a
    # time, until it is one of the proposals': that one the portal never sees, the other
    # two it sees booked (both their booking and their status retire them, once)
    for _ in range(200):
        if None in _proposal_bookings(demo_home, code).values():
            break
        assert cli(demo_home, "ledger", code, "delete-bookings", "1").returncode == 0
    assert sorted(map(bool, _proposal_bookings(demo_home, code).values())) == [False, True, True]

    status, run = cli_json(demo_home, "sync", code)
    assert status == 0, run
    assert run["pending_proposals"] == 2  # the two still waiting; none counted twice
    assert portal.get_dossier(demo_home / "portal.duckdb", code).pending_proposals == 2
    _, archive = cli_json(demo_home, "report", code, "archive")
    assert {d["ref"] for d in archive if d["booking_status"] == "provisional"} \
        == {p["ref"] for p in waiting["proposals"]}
    assert _provisional_rows(demo_home, code)[0] == 2
    validated = {r["account"]: (cents(r["debit"]), cents(r["credit"]))
                 for r in reports.trial_balance(demo_home / "portal.duckdb", code,
                                                validated_only=True)
                 if r["commodity"] is None}
    assert validated == ledger_trial_balance(demo_home, code)

    # the rest booked too: nothing is left pending, and the portal equals the ledger
    assert cli(demo_home, "ledger", code, "validate-proposals").returncode == 0
    status, run = cli_json(demo_home, "sync", code)
    assert status == 0 and run["pending_proposals"] == 0
    assert _provisional_rows(demo_home, code) == (0, 0)
    assert portal_trial_balance(demo_home, code) == ledger_trial_balance(demo_home, code)
    assert_portal_equals_ledger(demo_home, code)
    status, run = cli_json(demo_home, "sync", code, "--full")  # the statuses again: nothing moves
    assert status == 0 and run["pending_proposals"] == 0
    assert_portal_equals_ledger(demo_home, code)
