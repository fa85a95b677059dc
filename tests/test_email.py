"""The client email through a real SMTP server on localhost (aiosmtpd)."""
from __future__ import annotations

import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller

from conftest import cli, cli_json, codes
from dossync.core import portal


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_port():
    return _free_port()


def _start(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


def _configure(home, port: int) -> None:
    (home / "dossync.toml").write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsender = "boekhouding@kantoor.example"\n')


def _sync_and_notify(home, port: int, code: str) -> tuple[int, dict, Inbox]:
    """`sync --until --notify` with a local SMTP server listening; what it received."""
    _configure(home, port)
    controller, inbox = _start(port)
    try:
        status, run = cli_json(home, "sync", code, "--until", "2026-10-31", "--notify")
    finally:
        controller.stop()
    return status, run, inbox


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


@pytest.mark.parametrize("language, words", [
    ("nl", ("bijgewerkt tot", "31 oktober 2026")),
    ("fr", ("mise à jour jusqu'au", "31 octobre 2026")),
    ("en", ("books updated until", "31 October 2026")),
])
def test_email_reaches_the_client_in_their_language(demo_home, smtp_port, language, words):
    code = codes(demo_home)[0]
    cli(demo_home, "dossier", "set", code, "--language", language, "--email", "baas@klant.example")
    status, run, inbox = _sync_and_notify(demo_home, smtp_port, code)
    assert status == 0 and run["email"] == "sent"
    assert inbox.recipients == [["baas@klant.example"]]
    message = _parse(inbox.messages[0])
    name = portal.get_dossier(demo_home / "portal.duckdb", code).name
    assert words[0] in message["Subject"] and name in message["Subject"]
    assert message["To"].addresses[0].addr_spec == "baas@klant.example"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for text in (plain, html):
        assert words[1] in text and name.split()[0] in text
    assert message["Content-Language"] == language


def test_server_down_then_flush_delivers_once(demo_home, smtp_port):
    code = codes(demo_home)[0]
    _configure(demo_home, smtp_port)  # nothing listens there yet
    status, run = cli_json(demo_home, "sync", code, "--until", "2026-10-31", "--notify")
    assert status == 0 and run["status"] == "succeeded"  # the sync does not depend on the mail
    assert run["email"] == "failed" and run["updated_until"] == "2026-10-31"
    assert any("outbox --flush" in w for w in run["warnings"])
    _, box = cli_json(demo_home, "outbox")
    assert [e["status"] for e in box["emails"]] == ["failed"]
    assert len(list((demo_home / "outbox").glob("*.eml"))) == 1

    controller, inbox = _start(smtp_port)
    try:
        status, flushed = cli_json(demo_home, "outbox", "--flush")
        assert status == 0 and [f["status"] for f in flushed["flushed"]] == ["sent"]
        status, again = cli_json(demo_home, "outbox", "--flush")
        assert again["flushed"] == []  # nothing left: delivered exactly once
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert not list((demo_home / "outbox").glob("*.eml"))
    assert [e["status"] for e in cli_json(demo_home, "outbox")[1]["emails"]] == ["sent"]


def test_a_name_with_cr_lf_cannot_add_a_header(demo_home, smtp_port):
    code = codes(demo_home)[0]
    # a name as it could come in from elsewhere: the CLI refuses it, so write it directly
    portal.update_dossier(demo_home / "portal.duckdb", code,
                          name="Evil BV\r\nBcc: everyone@attacker.example\r\nX-Injected: yes")
    status, run, inbox = _sync_and_notify(demo_home, smtp_port, code)
    assert status == 0 and run["email"] == "sent"
    assert inbox.recipients == [[portal.get_dossier(demo_home / "portal.duckdb", code).email]]
    message = _parse(inbox.messages[0])
    assert message["X-Injected"] is None and message["Bcc"] is None
    assert "Evil BV" in message["Subject"]


def test_bad_addresses_are_refused(demo_home):
    code = codes(demo_home)[0]
    for bad in ("no-at-sign", "a@b", "x@y.example\r\nBcc: z@w.example", "<a@b.example>"):
        done = cli(demo_home, "dossier", "set", code, "--email", bad)
        assert done.returncode == 2, bad
        assert "not a valid email" in done.stderr
