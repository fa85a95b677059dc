"""Faults of the PostgreSQL portal's server under a running sync.

The sync holds its dossier with an advisory lock on a session of its own
(core/portal/holders.py). When that session is ended under it (the server
restarted, the network dropped it) the server lets go of the dossier, and
another machine may start syncing it: the running sync must stop before
its commit, change nothing, and say why, never finish as if it still held
the dossier.
"""
from __future__ import annotations

import json
import subprocess
import time

import psycopg
import pytest

from conftest import (DOSSYNC, ROOT, assert_portal_equals_ledger, cli_json, codes, event, portal_of,
                      portal_trial_balance, throttle)
from test_postgres import portal_kind  # noqa: F401 - these tests run on PostgreSQL too

pytestmark = pytest.mark.slow


def test_a_sync_whose_hold_is_lost_stops_and_changes_nothing(demo_home):
    code = codes(demo_home)[0]
    event(demo_home, code, "new-bookings", "40")
    before = portal_trial_balance(demo_home, code)
    throttle(demo_home, code, 20)  # a full sync of about 20 s
    sync = subprocess.Popen([*DOSSYNC, "--home", str(demo_home), "sync", code, "--full",
                             "--now", "--json"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        with psycopg.connect(portal_of(demo_home), autocommit=True) as admin:
            deadline = time.monotonic() + 60
            pid = None
            while pid is None:
                assert time.monotonic() < deadline and sync.poll() is None, sync.stderr.read()
                row = admin.execute("SELECT backend_pid FROM sync_holders WHERE dossier = %s "
                                    "AND progress IS NOT NULL", [code]).fetchone()
                pid = row[0] if row else None
                time.sleep(0.1)
            # the server ends the hold's session, as a restart or a dropped link would
            assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        out, err = sync.communicate(timeout=60)
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.communicate()
    assert sync.returncode == 1, (out, err)
    run = json.loads(out)
    assert run["status"] == "failed"
    assert "lost its hold on the portal's server" in run["error"] and "run it again" in run["error"]
    assert "Traceback" not in err
    assert portal_trial_balance(demo_home, code) == before  # nothing of the sync was kept
    (demo_home / "dossync.toml").unlink()
    status, again = cli_json(demo_home, "sync", code)
    assert status == 0, again  # the dossier is free: the lost session holds nothing
    assert_portal_equals_ledger(demo_home, code)


def test_a_server_that_does_not_answer_is_worth_another_try_a_refusal_is_not(pg_server):
    """A worker retries what is transient (its heartbeat, its next claim): a server that is
    down or restarting; a login the server refuses stays terminal until someone fixes it."""
    import socket
    from urllib.parse import urlsplit, urlunsplit

    from dossync.core.model import PortalUnreachable, TerminalError
    from dossync.core.portal.pgstore import open_raw

    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(PortalUnreachable, match="cannot be reached"):
        open_raw(f"postgresql://nobody@127.0.0.1:{port}/none")
    parts = urlsplit(pg_server)
    unknown = urlunsplit(parts._replace(path="/no_such_database_here"))
    with pytest.raises(TerminalError, match="cannot be reached") as refused:
        open_raw(unknown)
    assert not isinstance(refused.value, PortalUnreachable)
