"""A propose killed at any instant, or kept waiting by a lock, leaves the portal showing
exactly the proposals the package received, once the next propose or sync has run.

What the package received is read straight from the demo ledger's proposals table
(the test's own SQL, nothing shared with the connector); what the portal shows is the
CLI's archive report (provisional, or booked from a proposal) and its blue counter.
"""
from __future__ import annotations

import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from contextlib import closing, redirect_stdout
from pathlib import Path

import pytest

from conftest import DOSSYNC, ROOT, cli, codes, ledger_path
from dossync.core import portal, worklist
from dossync.core.cli import main
from dossync.core.home import Home
from dossync.core.locks import DossierLock
from dossync.core.model import LedgerUnavailable, PortalBusy, TerminalError

KILLED = -signal.SIGKILL
COUNT = 40  # proposals per propose


def run(home: Path, *args: str) -> tuple[int, object]:
    """The CLI's own entry point, in this process, with --json: (exit code, document)."""
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["--home", str(home), *args, "--json"])
    return status, json.loads(out.getvalue())


def package_refs(home: Path, code: str) -> set[str]:
    with closing(sqlite3.connect(ledger_path(home, code))) as con:
        return {ref for (ref,) in con.execute("SELECT ref FROM proposals")}


def portal_refs(home: Path, code: str) -> list[str]:
    status, archive = run(home, "report", code, "archive")
    assert status == 0
    return [d["ref"] for d in archive if d["ref"].startswith(f"WL-{code}-")]


def pending(home: Path, code: str) -> int:
    return {r["code"]: r["pending_proposals"] for r in run(home, "status")[1]}[code]


def assert_portal_shows_what_the_package_received(home: Path, code: str) -> set[str]:
    shown = portal_refs(home, code)
    assert len(shown) == len(set(shown)), "a proposal shown twice"
    held = package_refs(home, code)
    assert set(shown) == held, (f"the package holds {len(held)}, the portal shows {len(shown)}: "
                                f"{len(held - set(shown))} only in the package, "
                                f"{len(set(shown) - held)} only in the portal")
    assert pending(home, code) == len(held)
    return held


def sync(home: Path, code: str) -> dict:
    status, run_ = run(home, "sync", code)
    assert status == 0 and run_["status"] == "succeeded", run_
    assert not [w for w in run_["warnings"] if "queue" in w], run_["warnings"]
    assert portal.queued_proposals(home / "portal.duckdb", code) == []
    return run_


class Killed(BaseException):
    """The process dies here: nothing after this point runs (not even an except clause)."""


def killed_when_recorded(monkeypatch) -> None:
    """The next delivery dies after the package took the proposals, before the portal
    recorded it (the window SIGKILL hits at `DOSSYNC_FAILPOINT=proposals-sent`)."""
    def die(*args, **kwargs):
        monkeypatch.setattr(portal, "proposals_delivered", real)
        raise Killed

    real = portal.proposals_delivered
    monkeypatch.setattr(portal, "proposals_delivered", die)


@pytest.mark.slow
def test_propose_killed_at_random_moments_then_one_sync(demo_home):
    code = codes(demo_home)[0]
    seed = int(os.environ.get("DOSSYNC_TEST_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    started = time.monotonic()
    done = cli(demo_home, "propose", code, "--count", str(COUNT), "--json")
    assert done.returncode == 0, done.stderr
    typical = time.monotonic() - started  # how long one propose takes on this machine now
    # killed just after the package took them: the next propose or the sync sends them again
    died = cli(demo_home, "propose", code, "--count", str(COUNT),
               env={"DOSSYNC_FAILPOINT": "proposals-sent"})
    assert died.returncode == KILLED, (died.returncode, died.stderr)
    assert len(package_refs(demo_home, code)) == 2 * COUNT
    assert len(portal.queued_proposals(demo_home / "portal.duckdb", code)) == COUNT

    kills, deadline = 0, time.monotonic() + 40
    while kills < 25 and time.monotonic() < deadline:
        # two at a time: one may be waiting for the dossier while the other delivers
        children = [subprocess.Popen([*DOSSYNC, "--home", str(demo_home), "propose", code,
                                      "--count", str(COUNT), "--json"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for _ in range(2)]
        moments = sorted(rng.uniform(0, typical) for _ in children)
        begin = time.monotonic()
        for child, moment in zip(children, moments):
            time.sleep(max(0.0, begin + moment - time.monotonic()))
            child.send_signal(signal.SIGKILL)
        for child in children:
            out, err = child.communicate(timeout=120)
            if child.returncode == KILLED:
                kills += 1
            else:  # it finished first: a whole answer
                assert child.returncode == 0, err
                assert len(json.loads(out)["proposals"]) == COUNT
    assert kills >= 10, f"only {kills} kills in the time allowed (seed {seed})"

    sync(demo_home, code)
    held = assert_portal_shows_what_the_package_received(demo_home, code)
    assert len(held) >= 2 * COUNT and len(held) % COUNT == 0, (len(held), seed)
    sync(demo_home, code)  # and only once
    assert package_refs(demo_home, code) == held


def test_proposals_wait_while_the_dossier_is_locked_then_go_with_the_sync(demo_home, monkeypatch):
    code = codes(demo_home)[0]
    monkeypatch.setattr(worklist, "LOCK_WAIT_SECONDS", 0.5)
    lock = DossierLock(Home(demo_home).locks, code).acquire(purpose="sync")
    try:
        status, answer = run(demo_home, "propose", code, "--count", "3")
        # the answer: sent to nobody yet, queued, shown, and why
        assert status == 0 and answer["delivered"] == [] and answer["queued"] == 3
        assert answer["pending_proposals"] == 3
        assert [w for w in answer["warnings"] if "busy" in w and "next" in w], answer["warnings"]
        assert package_refs(demo_home, code) == set()
        assert sorted(portal_refs(demo_home, code)) == sorted(p["ref"] for p in answer["proposals"])
    finally:
        lock.release()
    sync(demo_home, code)
    held = assert_portal_shows_what_the_package_received(demo_home, code)
    assert held == {p["ref"] for p in answer["proposals"]}


def test_a_portal_locked_after_the_package_took_them_takes_nothing_back(demo_home, monkeypatch):
    """The portal file stays locked past the wait just when the delivery is recorded: the
    package has the proposals, so the portal keeps showing them."""
    code = codes(demo_home)[0]

    def locked(*args, **kwargs):
        monkeypatch.undo()
        raise PortalBusy("the portal file stayed locked for 10s by another process (test)")

    monkeypatch.setattr(portal, "proposals_delivered", locked)
    try:
        answer = worklist.propose(Home(demo_home), code, 3)
    except LedgerUnavailable as exc:
        answer = exc
    assert len(package_refs(demo_home, code)) == 3
    assert_portal_shows_what_the_package_received(demo_home, code)
    assert not isinstance(answer, Exception), answer  # it was sent: no error...
    proposals, counter, delivery = answer
    assert counter == 3 and "reached" in delivery.message(code)  # ...but a word about it
    sync(demo_home, code)  # sent again, taken once, and out of the queue
    assert assert_portal_shows_what_the_package_received(demo_home, code) == {
        p.ref for p in proposals}


def test_a_refusal_takes_back_only_what_the_package_does_not_hold(demo_home, monkeypatch):
    """A delivery killed after the package took it, then a delivery the package refuses
    (a proposal on an account it no longer has): what it took before stays shown."""
    code = codes(demo_home)[0]
    home = Home(demo_home)
    killed_when_recorded(monkeypatch)
    with pytest.raises(Killed):
        worklist.propose(home, code, 2)
    first = package_refs(demo_home, code)
    assert len(first) == 2 and len(portal.queued_proposals(home.portal, code)) == 2

    real = worklist.send_proposals

    def refusing(package, source, settings, proposals):
        if any(p.ref not in first for p in proposals):
            raise TerminalError("account 6999 is not in the ledger (test)")
        real(package, source, settings, proposals)

    monkeypatch.setattr(worklist, "send_proposals", refusing)
    with pytest.raises(TerminalError) as refused:
        worklist.propose(home, code, 1)
    monkeypatch.undo()
    assert package_refs(demo_home, code) == first
    assert_portal_shows_what_the_package_received(demo_home, code)
    assert "refused 1 proposal" in str(refused.value)
    sync(demo_home, code)
    assert assert_portal_shows_what_the_package_received(demo_home, code) == first


def test_unreachable_package_keeps_what_a_killed_sync_had_sent(demo_home, monkeypatch):
    """A sync takes the dossier between a propose's portal commit and its delivery, sends
    the queue and is killed before recording it; the propose then finds the ledger
    gone: the proposals the package already has stay shown, and queued for the sync."""
    code = codes(demo_home)[0]
    home = Home(demo_home)
    ledger = ledger_path(demo_home, code)
    away = ledger.with_suffix(".away")
    real_add = portal.add_proposals

    def add_then_a_killed_sync(*args, **kwargs):
        counter = real_add(*args, **kwargs)
        killed_when_recorded(monkeypatch)
        with pytest.raises(Killed):
            worklist.deliver(home, portal.require_dossier(home.portal, code))
        ledger.rename(away)  # and the package cannot be reached any more
        return counter

    monkeypatch.setattr(portal, "add_proposals", add_then_a_killed_sync)
    with pytest.raises(LedgerUnavailable) as unreachable:
        worklist.propose(home, code, 3)
    monkeypatch.undo()
    away.rename(ledger)
    assert len(package_refs(demo_home, code)) == 3
    assert_portal_shows_what_the_package_received(demo_home, code)
    assert "stay shown and queued" in str(unreachable.value)
    sync(demo_home, code)
    assert len(assert_portal_shows_what_the_package_received(demo_home, code)) == 3


def test_unreachable_package_takes_back_what_it_never_got(demo_home):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    ledger.rename(ledger.with_suffix(".away"))
    status, answer = run(demo_home, "propose", code, "--count", "3")
    ledger.with_suffix(".away").rename(ledger)
    assert status == 1 and "not shown in the portal" in answer["error"]
    assert portal_refs(demo_home, code) == [] and package_refs(demo_home, code) == set()
    assert pending(demo_home, code) == 0
    sync(demo_home, code)
    assert_portal_shows_what_the_package_received(demo_home, code)
