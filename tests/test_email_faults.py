"""The client email when things go wrong around it (issue 10: items 5, 6, 11a).

Two senders at once (two flushes, a flush beside `sync --notify`) deliver
each email once; a server that trickles its answer cannot hold a sync or a
flush past `[smtp] timeout`, nor past SIGTERM; a password never goes out
without TLS unless `[smtp] allow_plain_auth = true`.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import DOSSYNC, ROOT, cli_json, codes
from dossync.core import notify, portal
from dossync.core import settings as settings_module
from dossync.core.settings import Settings
from dossync.core.home import Home
from dossync.core.model import UsageError

UNTIL = "2026-10-31"


# --- servers ------------------------------------------------------------------
class Inbox:
    """An aiosmtpd handler that keeps what it receives, taking `pause` seconds per message
    (`first_pause` for the first one)."""

    def __init__(self, pause: float = 0.0, first_pause: float | None = None) -> None:
        self.pauses = itertools.chain([pause if first_pause is None else first_pause],
                                      itertools.repeat(pause))
        self.messages: list[bytes] = []
        self.receiving = threading.Event()  # a message is on its way in

    async def handle_DATA(self, server, session, envelope):
        self.receiving.set()
        pause = next(self.pauses)
        if pause:
            await asyncio.sleep(pause)  # senders overlap for as long as they run
        self.messages.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def message_ids(self) -> list[str]:
        return [email.message_from_bytes(m, policy=email.policy.default)["Message-ID"]
                for m in self.messages]


class Logins:
    """An aiosmtpd authenticator that accepts anyone and remembers who logged in."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(inbox: Inbox, **smtp_options) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), **smtp_options)
    controller.start()
    return controller


class TricklingServer:
    """Answers every connection with an SMTP greeting that never ends, one byte every `pause` s.

    The greeting is an endless run of continuation lines ("220-..."), so a
    client that waits for it waits for ever; each byte comes well within
    any per-read timeout. Records when each connection opened and closed.
    """

    def __init__(self, pause: float = 2.0) -> None:
        self.pause = pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[dict] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            record = {"opened": time.monotonic(), "closed": None}
            self.connections.append(record)
            self.connected.set()
            threading.Thread(target=self._trickle, args=(conn, record), daemon=True).start()

    def _trickle(self, conn: socket.socket, record: dict) -> None:
        with conn:
            for byte in itertools.cycle(b"220-slow.example still saying hello\r\n"):
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                    readable, _, _ = select.select([conn], [], [], self.pause)
                    if readable and not conn.recv(1024):
                        break  # the client hung up
                except OSError:
                    break
            record["closed"] = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def trickling():
    server = TricklingServer()
    yield server
    server.close()


# --- helpers ------------------------------------------------------------------
def _configure(home, port: int, **extra) -> None:
    lines = ["[smtp]", 'host = "127.0.0.1"', f"port = {port}",
             'sender = "boekhouding@kantoor.example"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    (home / "dossync.toml").write_text("\n".join(lines) + "\n")


def _queue(home, count: int) -> list[str]:
    """`count` emails waiting in the outbox, as `sync --notify` leaves them while SMTP is down.

    Written straight into the portal (a sync per email would take long);
    returns their Message-IDs.
    """
    path = home / "portal.duckdb"
    dossiers = portal.list_dossiers(path)
    message_ids = []
    with portal.connect(path) as con:
        for n in range(count):
            dossier = dossiers[n % len(dossiers)]
            message = notify.compose(dossier, UNTIL, "boekhouding@kantoor.example")
            con.execute("INSERT INTO outbox (id, dossier, run_id, recipient, subject, message, "
                        "status, created_at) VALUES (?, ?, NULL, ?, ?, ?, 'queued', now())",
                        [notify.new_email_id(), dossier.code, dossier.email,
                         str(message["Subject"]), notify.wire_bytes(message)])
            message_ids.append(message["Message-ID"])
    return message_ids


def _claims(home) -> dict[str, tuple]:
    """{email id: (status, claimed_by, last_error)} straight from the portal."""
    with portal.connect(home / "portal.duckdb", read_only=True) as con:
        rows = con.execute("SELECT id, status, claimed_by, last_error FROM outbox").fetchall()
    return {r[0]: r[1:] for r in rows}


def _spawn(home, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*DOSSYNC, "--home", str(home), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def _finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, dict]:
    out, err = process.communicate(timeout=timeout)
    assert out, err
    return process.returncode, json.loads(out)


def _sync_notify(home, code: str, env: dict | None = None) -> tuple[int, dict]:
    return _finish(_spawn(home, "sync", code, "--until", UNTIL, "--notify", "--json", env=env))


# --- item 5: each email once, however many senders --------------------------------
def test_two_flushes_at_once_send_each_email_once(demo_home):
    queued = _queue(demo_home, 12)
    inbox = Inbox(pause=0.1)
    controller = _start(inbox)
    _configure(demo_home, controller.port)
    try:
        first = _spawn(demo_home, "outbox", "--flush", "--json")
        second = _spawn(demo_home, "outbox", "--flush", "--json")
        (status_a, a), (status_b, b) = _finish(first), _finish(second)
    finally:
        controller.stop()
    assert status_a == status_b == 0
    assert sorted(inbox.message_ids()) == sorted(queued)  # every one, each exactly once
    sent_a = {f["id"] for f in a["flushed"] if f["status"] == "sent"}
    sent_b = {f["id"] for f in b["flushed"] if f["status"] == "sent"}
    assert not sent_a & sent_b and len(sent_a | sent_b) == 12
    assert all(f["status"] == "sent" for f in a["flushed"] + b["flushed"])
    assert {v[:2] for v in _claims(demo_home).values()} == {("sent", None)}


def test_a_flush_beside_sync_notify_sends_each_email_once(demo_home):
    code = codes(demo_home)[0]
    queued = _queue(demo_home, 3)
    inbox = Inbox(first_pause=6)  # the sync's own email: long enough for a flush to start
    controller = _start(inbox)
    _configure(demo_home, controller.port, timeout=60)
    try:
        sync = _spawn(demo_home, "sync", code, "--until", UNTIL, "--notify", "--json")
        # the sync has committed and is handing its email over: a flush starts now
        assert inbox.receiving.wait(120), "the sync never delivered"
        flush = _spawn(demo_home, "outbox", "--flush", "--json")
        (sync_status, run), (flush_status, flushed) = _finish(sync), _finish(flush)
        status, again = cli_json(demo_home, "outbox", "--flush")
    finally:
        controller.stop()
    assert sync_status == 0 and run["status"] == "succeeded" and run["email"] == "sent"
    assert flush_status == 0 and len(flushed["flushed"]) == 3  # it left the sync's email alone
    assert again["flushed"] == []
    ids = inbox.message_ids()
    assert len(ids) == len(set(ids)) == 4 and set(queued) < set(ids)
    assert {v[:2] for v in _claims(demo_home).values()} == {("sent", None)}


def test_a_claim_is_left_to_its_sender_until_it_is_stale(demo_home):
    path = demo_home / "portal.duckdb"
    _queue(demo_home, 2)
    live, dead = sorted(_claims(demo_home))
    assert portal.claim_email(path, live, "busy-sender", 600) is not None
    assert portal.claim_email(path, live, "second-sender", 600) is None  # the first one has it
    assert portal.claim_email(path, dead, "killed-sender", 600) is not None
    with portal.connect(path) as con:  # that sender was killed an hour ago
        con.execute("UPDATE outbox SET claimed_at = ? WHERE id = ?",
                    [datetime.now() - timedelta(hours=1), dead])
    inbox = Inbox()
    controller = _start(inbox)
    _configure(demo_home, controller.port)
    try:
        status, flushed = cli_json(demo_home, "outbox", "--flush")
    finally:
        controller.stop()
    assert status == 0 and [(f["id"], f["status"]) for f in flushed["flushed"]] == [(dead, "sent")]
    claims = _claims(demo_home)
    assert claims[dead][:2] == ("sent", None)
    assert claims[live][:2] == ("queued", "busy-sender")  # not lost: it lapses in 10 minutes
    assert len(inbox.messages) == 1
    # a sent email is never claimed again, whatever its claim says
    assert portal.claim_email(path, dead, "late-sender", 0) is None


# --- item 6: a deadline for delivery, SIGTERM ends it ------------------------------
def test_a_trickling_server_cannot_hold_up_a_sync(demo_home, trickling):
    code = codes(demo_home)[0]
    _configure(demo_home, trickling.port, timeout=3)
    status, run = _sync_notify(demo_home, code)
    assert status == 0 and run["status"] == "succeeded"
    assert run["email"] == "queued"
    assert any("within 3s" in w and "outbox --flush" in w for w in run["warnings"])
    assert portal.get_dossier(demo_home / "portal.duckdb", code).updated_until == UNTIL
    # the connection was cut at the deadline, not when the server was done
    [connection] = trickling.connections
    assert connection["closed"] is not None
    assert connection["closed"] - connection["opened"] < 3 + 5
    [(state, claimed_by, error)] = _claims(demo_home).values()
    assert state == "queued" and claimed_by is None and "[smtp] timeout" in error
    assert len(list((demo_home / "outbox").glob("*.eml"))) == 1


def test_sigterm_during_delivery_ends_the_sync_at_once(demo_home, trickling):
    code = codes(demo_home)[0]
    _configure(demo_home, trickling.port, timeout=300)
    sync = _spawn(demo_home, "sync", code, "--until", UNTIL, "--notify", "--json")
    try:
        assert trickling.connected.wait(120), "the sync never started delivering"
        time.sleep(0.5)
        sync.send_signal(signal.SIGTERM)
        status, run = _finish(sync, timeout=15)  # far less than the 300 s deadline
    finally:
        sync.kill()
    assert status == 0 and run["status"] == "succeeded"  # the data was committed before
    assert run["email"] == "queued" and any("SIGTERM" in w for w in run["warnings"])
    assert portal.get_dossier(demo_home / "portal.duckdb", code).updated_until == UNTIL
    [(state, claimed_by, error)] = _claims(demo_home).values()
    assert state == "queued" and claimed_by is None and "interrupted" in error


def test_sigterm_ends_a_flush_and_keeps_the_email(demo_home, trickling):
    _queue(demo_home, 2)
    _configure(demo_home, trickling.port, timeout=300)
    flush = _spawn(demo_home, "outbox", "--flush", "--json")
    try:
        assert trickling.connected.wait(60), "the flush never started delivering"
        time.sleep(0.5)
        flush.send_signal(signal.SIGTERM)
        flush.wait(timeout=15)
    finally:
        flush.kill()
    assert flush.returncode == -signal.SIGTERM  # ended as SIGTERM ends it, claim let go first
    assert len(trickling.connections) == 1  # the second email was not tried
    claims = sorted(_claims(demo_home).values(), key=lambda c: c[2] or "")
    assert [c[:2] for c in claims] == [("queued", None), ("queued", None)]
    assert "interrupted" in claims[1][2]


def test_a_cancelled_run_does_not_start_delivering(demo_home, trickling):
    [message_id] = _queue(demo_home, 1)
    [email_id] = _claims(demo_home)
    _configure(demo_home, trickling.port, timeout=300)
    cancel = threading.Event()
    cancel.set()  # SIGTERM reached the sync before its email was tried
    home = Home(demo_home)
    status, error = notify.deliver(home, email_id, portal.outbox_message(home.portal, email_id),
                                   "client@klant.example", cancel=cancel)
    assert status == "queued" and "interrupted" in error
    assert trickling.connections == []
    assert _claims(demo_home)[email_id][:2] == ("queued", None)


def test_a_flush_in_a_worker_thread_keeps_its_deadline(demo_home, trickling):
    _queue(demo_home, 1)
    _configure(demo_home, trickling.port, timeout=1)
    results: list[list[dict]] = []
    worker = threading.Thread(target=lambda: results.append(notify.flush(Home(demo_home))))
    worker.start()  # as the UI's outbox screen runs it: no signal handler there
    worker.join(30)
    assert not worker.is_alive()
    [tried] = results[0]
    assert tried["status"] == "queued" and "within 1s" in tried["last_error"]
    [connection] = trickling.connections
    assert connection["closed"] is not None and connection["closed"] - connection["opened"] < 1 + 5


def test_the_smtp_timeout_must_be_a_number_of_seconds():
    for bad in (0, -1, "soon"):
        with pytest.raises(UsageError, match="timeout"):
            Settings.from_dict({"smtp": {"host": "mail", "timeout": bad}}, "dossync.toml")
    settings = Settings.from_dict({"smtp": {"host": "mail"}}, "dossync.toml").smtp
    assert settings.timeout == settings_module.DEFAULT_TIMEOUT
    assert settings.stale_after > settings.timeout  # a live sender's claim never lapses


# --- item 11a: no password without TLS ----------------------------------------------
PASSWORD = {"DOSSYNC_SMTP_PASSWORD": "geheim-wachtwoord"}


def test_no_password_is_sent_without_tls(demo_home):
    code = codes(demo_home)[0]
    inbox, logins = Inbox(), Logins()
    controller = _start(inbox, authenticator=logins, auth_require_tls=False)
    _configure(demo_home, controller.port, username="kantoor", starttls=False)
    try:
        status, run = _sync_notify(demo_home, code, env=PASSWORD)
    finally:
        controller.stop()
    assert status == 0 and run["status"] == "succeeded"  # the data is in all the same
    assert run["email"] == "failed"
    [warning] = [w for w in run["warnings"] if "client email" in w]
    assert "without TLS" in warning and "allow_plain_auth = true" in warning
    assert logins.seen == [] and inbox.messages == []
    [(state, claimed_by, error)] = _claims(demo_home).values()
    assert state == "failed" and claimed_by is None and "starttls = true" in error


def test_allow_plain_auth_logs_in_without_tls(demo_home):
    code = codes(demo_home)[0]
    inbox, logins = Inbox(), Logins()
    controller = _start(inbox, authenticator=logins, auth_require_tls=False)
    _configure(demo_home, controller.port, username="kantoor", starttls=False,
               allow_plain_auth=True)
    try:
        status, run = _sync_notify(demo_home, code, env=PASSWORD)
    finally:
        controller.stop()
    assert status == 0 and run["email"] == "sent"
    assert logins.seen == [("kantoor", "geheim-wachtwoord")]
    assert len(inbox.messages) == 1
