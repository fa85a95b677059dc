"""Manual sync options: alone and combined, only when the sync succeeds."""
from __future__ import annotations

import pytest

from conftest import cli, cli_json, codes, ledger_path


def _dossier(home, code):
    return {r["code"]: r for r in cli_json(home, "status")[1]}[code]


@pytest.mark.parametrize("kind", [[], ["--full"]], ids=["simple", "full"])
def test_each_option_alone(demo_home, kind):
    code = codes(demo_home)[0]
    cli_json(demo_home, "propose", code, "--count", "3")

    status, run = cli_json(demo_home, "sync", code, *kind, "--until", "2026-10-15")
    assert status == 0 and run["updated_until"] == "2026-10-15"
    assert run["pending_proposals"] == 3 and run["email"] == "skipped"

    status, run = cli_json(demo_home, "sync", code, *kind, "--reset-counter")
    assert status == 0 and run["pending_proposals"] == 0
    assert run["updated_until"] == "2026-10-15"

    status, run = cli_json(demo_home, "sync", code, *kind, "--new-period", "2026-11")
    assert status == 0 and run["active_period"] == "2026-11"
    row = _dossier(demo_home, code)
    assert row["active_period"] == "2026-11" and row["pending_proposals"] == 0

    status, run = cli_json(demo_home, "sync", code, *kind, "--notify")
    assert status == 0 and run["email"] == "queued"  # no [smtp]: an .eml in the outbox
    assert len(list((demo_home / "outbox").glob("*.eml"))) == 1


@pytest.mark.parametrize("kind", [[], ["--full"]], ids=["simple", "full"])
def test_all_options_together(demo_home, kind):
    code = codes(demo_home)[1]
    cli_json(demo_home, "propose", code, "--count", "2")
    status, run = cli_json(demo_home, "sync", code, *kind, "--until", "2026-10-31",
                           "--reset-counter", "--notify", "--new-period", "2026-11")
    assert status == 0, run
    assert (run["updated_until"], run["pending_proposals"], run["active_period"], run["email"]) == \
        ("2026-10-31", 0, "2026-11", "queued")
    _, emails = cli_json(demo_home, "outbox")
    assert [e["dossier"] for e in emails["emails"]] == [code]


def test_a_failed_sync_applies_none_of_the_options(demo_home):
    code = codes(demo_home)[0]
    cli_json(demo_home, "propose", code, "--count", "2")
    before = _dossier(demo_home, code)
    ledger = ledger_path(demo_home, code)
    ledger.rename(ledger.with_suffix(".gone"))
    status, run = cli_json(demo_home, "sync", code, "--until", "2026-10-31", "--reset-counter",
                           "--notify", "--new-period", "2026-11")
    assert status == 1 and run["status"] == "failed"
    after = _dossier(demo_home, code)
    for key in ("updated_until", "pending_proposals", "active_period"):
        assert after[key] == before[key]
    assert cli_json(demo_home, "outbox")[1]["emails"] == []
    assert not list((demo_home / "outbox").glob("*.eml"))


def test_a_refused_simple_sync_applies_none_of_the_options(demo_home):
    code = codes(demo_home)[0]
    cli(demo_home, "ledger", code, "delete-bookings", "2")
    cli(demo_home, "ledger", code, "purge-deletion-log")
    status, run = cli_json(demo_home, "sync", code, "--until", "2026-10-31", "--new-period", "2026-11")
    assert status == 1
    row = _dossier(demo_home, code)
    assert row["updated_until"] is None and row["active_period"] == "2026-10"


@pytest.mark.parametrize("args, message", [
    (["--until", "2099-01-01"], "in the future"),
    (["--until", "2026-08-15"], "before the last closed period 2026-09"),
    (["--new-period", "2026-08"], "earlier than the active period 2026-10"),
    (["--new-period", "2031-01"], "no such period"),
    (["--notify"], "--until"),  # no updated-until date yet: the email would have none to give
])
def test_sensible_refusals(demo_home, args, message):
    code = codes(demo_home)[0]
    done = cli(demo_home, "sync", code, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_notify_without_client_email_is_refused(demo_home):
    code = codes(demo_home)[0]
    assert cli(demo_home, "dossier", "set", code, "--email", "").returncode == 0
    done = cli(demo_home, "sync", code, "--until", "2026-10-31", "--notify")
    assert done.returncode == 2
    assert "no valid client email" in done.stderr and f"dossier set {code} --email" in done.stderr
    assert _dossier(demo_home, code)["updated_until"] is None
