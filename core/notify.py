"""The "books updated" email to the client entrepreneur.

Written in the dossier's language, naming the company and the updated-until
date in the local date format, as plain text with an HTML alternative.
Delivered through SMTP as configured in HOME/dossync.toml (`[smtp]`, read as
`home.settings().smtp`: `SmtpSettings` in core/settings.py); with
no SMTP configured, or while the server is down, the message waits in the
outbox (the portal's `outbox` table, and an .eml file in HOME/outbox) until
`dossync outbox --flush` delivers it.

Each email goes out once however many processes deliver at the same time:
a sender claims it in the portal first (a claim left by a killed sender
lapses after CLAIM_STALE_SECONDS). One attempt ends within `[smtp] timeout`
seconds overall, or at SIGTERM; the email then stays queued. A password
never crosses the network without TLS unless `[smtp] allow_plain_auth`.
"""
from __future__ import annotations

import email.policy
import html
import logging
import os
import re
import secrets
import signal
import smtplib
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from datetime import date
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Iterator, Literal

from dossync.core import portal
from dossync.core.files import write_atomically
from dossync.core.home import Home
from dossync.core.model import Dossier, PortalBusy, UsageError
from dossync.core.settings import CLAIM_STALE_SECONDS, DEFAULT_SENDER, SmtpSettings

log = logging.getLogger(__name__)

EmailStatus = Literal["sent", "queued", "skipped", "failed"]

_MONTHS = {
    "nl": ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
}

_TEXT = {
    "nl": ("{company}: boekhouding bijgewerkt tot {until}",
           "Beste klant,\n\nDe boekhouding van {company} is bijgewerkt tot {until}. "
           "U vindt de cijfers, rapporten en het archief in uw klantenportaal.\n\n"
           "Met vriendelijke groeten,\nUw boekhoudkantoor\n"),
    "fr": ("{company} : comptabilité mise à jour jusqu'au {until}",
           "Cher client,\n\nLa comptabilité de {company} est mise à jour jusqu'au {until}. "
           "Vous trouverez les chiffres, les rapports et les archives dans votre portail client.\n\n"
           "Bien cordialement,\nVotre bureau comptable\n"),
    "en": ("{company}: books updated until {until}",
           "Dear client,\n\nThe books of {company} are up to date until {until}. "
           "You will find the figures, reports and archive in your client portal.\n\n"
           "Kind regards,\nYour accounting firm\n"),
}



def valid_address(address: str | None) -> bool:
    """The one address rule, shared with `dossier add/set` and the UI (core/validate.py)."""
    from dossync.core.validate import valid_address as shared_rule

    return shared_rule(address)


def local_date(day: str, language: str) -> str:
    """30 september 2026 / 30 septembre 2026 / 30 September 2026."""
    d = date.fromisoformat(day)
    months = _MONTHS.get(language, _MONTHS["en"])
    day_text = "1er" if language == "fr" and d.day == 1 else str(d.day)
    return f"{day_text} {months[d.month - 1]} {d.year}"


def _one_line(text: str) -> str:
    """Names go into headers: no CR, LF or other control characters, ever."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).strip()


# One delivery attempt (connect, greeting, TLS, login, message) ends within
# `[smtp] timeout` seconds (default DEFAULT_TIMEOUT); a single read or write waits at
# most SOCKET_TIMEOUT. The [smtp] settings, their defaults and checks: core/settings.py.
SOCKET_TIMEOUT = 10.0


def sender_of(home: Home) -> str:
    settings = home.settings().smtp
    return settings.sender if settings else DEFAULT_SENDER


def compose(dossier: Dossier, until: str, sender: str) -> EmailMessage:
    """The message for the client entrepreneur (refuses a missing or bad address)."""
    if not valid_address(dossier.email):
        raise UsageError(f"dossier {dossier.code} has no valid client email on file "
                         f"({dossier.email or 'none'}): set one with "
                         f"'dossync dossier set {dossier.code} --email ADDRESS'")
    if not valid_address(sender):
        raise UsageError(f"the sender address {sender!r} in dossync.toml is not valid")
    language = dossier.language if dossier.language in _TEXT else "nl"
    company = _one_line(dossier.name)
    when = local_date(until, language)
    subject, body = _TEXT[language]
    message = EmailMessage()
    message["Subject"] = subject.format(company=company, until=when)
    message["From"] = Address(display_name=_one_line("dossync"), addr_spec=sender)
    message["To"] = Address(display_name=company, addr_spec=dossier.email)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    text = body.format(company=company, until=when)
    message.set_content(text)
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                         for p in text.strip().split("\n\n"))
    message.add_alternative(f"<!doctype html><html lang=\"{language}\"><body>{paragraphs}"
                            f"</body></html>", subtype="html")
    message["Content-Language"] = language  # after the parts: Content-* headers move into them
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as SMTP carries it (CRLF line ends), also what an .eml file holds."""
    return message.as_bytes(policy=email.policy.SMTP)


def new_email_id() -> str:
    return secrets.token_hex(8)


class DeliveryInterrupted(Exception):
    """A delivery given up before the server answered: past its deadline, or SIGTERM."""


def deliver(home: Home, email_id: str, message: bytes, recipient: str, *,
            cancel: object = None) -> tuple[EmailStatus, str | None]:
    """Try to deliver one outbox email; record the outcome in the outbox.

    The email is claimed first: while another dossync process (a flush) is
    sending it, this one leaves it alone and answers "queued". `cancel`
    (threading.Event-like) gives the attempt up, as SIGTERM does.
    """
    settings = home.settings().smtp
    claim = _new_claim()
    stale_after = settings.stale_after if settings else CLAIM_STALE_SECONDS
    try:
        if portal.claim_email(home.portal, email_id, claim, stale_after) is None:
            return "queued", "another dossync process is delivering it right now"
    except PortalBusy as exc:  # it stays queued, as committed; the run does not fail over mail
        return "queued", str(exc)
    with _sigterm_gives_up(cancel) as stop:
        return _deliver_claimed(home, settings, email_id, message, recipient, claim, stop)


def flush(home: Home) -> list[dict]:
    """Retry every queued or failed email; returns the outbox entries tried, with outcome.

    An email another process holds (a flush beside this one, a sync
    delivering its own) is left to it. SIGTERM gives the current attempt
    up, keeps that email queued and ends the flush.
    """
    settings = home.settings().smtp
    stale_after = settings.stale_after if settings else CLAIM_STALE_SECONDS
    tried = []
    with _sigterm_gives_up() as stop:
        for entry in portal.outbox(home.portal, ("queued", "failed")):
            if stop.is_set():
                break
            claim = _new_claim()
            message = portal.claim_email(home.portal, entry["id"], claim, stale_after)
            if message is None:
                continue  # sent meanwhile, or being sent by another process
            status, error = _deliver_claimed(home, settings, entry["id"], message,
                                             entry["recipient"], claim, stop)
            tried.append({**entry, "status": status, "last_error": error})
    return tried


def _new_claim() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


def _deliver_claimed(home: Home, settings: SmtpSettings | None, email_id: str, message: bytes,
                     recipient: str, claim: str,
                     stop: _Stop) -> tuple[EmailStatus, str | None]:
    """Send an email this process has claimed; record the outcome, which lets the claim go."""
    eml = eml_path(home, email_id)
    sent = False
    try:
        if settings is None:
            _keep(home, eml, message)
            portal.mark_email(home.portal, email_id, "queued",
                              "no [smtp] in dossync.toml: kept in the outbox", claim)
            return "queued", None
        where = f"SMTP {settings.host}:{settings.port}"
        status: EmailStatus
        refused = settings.plain_auth_refused()
        if refused:
            status, error = "failed", f"{where}: {refused}"
        else:
            try:
                _send(settings, message, recipient, stop)
            except DeliveryInterrupted as exc:
                status, error = "queued", f"{where}: {exc}"
            except (OSError, smtplib.SMTPException) as exc:
                status, error = "failed", f"{where}: {exc}"
            else:
                sent = True
                eml.unlink(missing_ok=True)
                portal.mark_email(home.portal, email_id, "sent", None, claim)
                return "sent", None
        _keep(home, eml, message)
        portal.mark_email(home.portal, email_id, status, error, claim)
        return status, error
    except BaseException as exc:
        # An unforeseen failure: an unsent email goes back to the outbox at
        # once, not when its claim grows stale; a sent one keeps its claim
        # (never sent twice). The failure goes on up.
        if not sent:
            _release(home, email_id, claim, f"delivery stopped: {type(exc).__name__}: {exc}")
        raise


def _keep(home: Home, eml: Path, message: bytes) -> None:
    home.outbox.mkdir(parents=True, exist_ok=True)
    write_atomically(eml, message)  # a reader of the outbox never finds half a message


def _release(home: Home, email_id: str, claim: str, error: str) -> None:
    try:
        portal.mark_email(home.portal, email_id, "queued", error, claim)
    except Exception:  # the portal is out of reach too: the claim goes stale in time
        log.exception("could not put email %s back in the outbox", email_id)


class _Stop:
    """Set by SIGTERM, or by the caller's own cancel event, while mail is being delivered."""

    def __init__(self, cancel: object = None) -> None:
        self._event = threading.Event()
        self._cancel = cancel

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set() or (self._cancel is not None and self._cancel.is_set())


@contextmanager
def _sigterm_gives_up(cancel: object = None) -> Iterator[_Stop]:
    """A stop that SIGTERM (or `cancel`) sets while mail is being delivered.

    The attempt in progress is given up and its email stays queued; then
    SIGTERM takes its usual course: the handler that was there runs (the
    sync's cancel), or a process that SIGTERM would have ended ends.
    Off the main thread (the UI's workers) no handler can be set: only
    `cancel` counts there.
    """
    stop = _Stop(cancel)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    received: list[tuple[int, object]] = []

    def on_sigterm(signum, frame) -> None:
        received.append((signum, frame))
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            if callable(previous):
                previous(*received[0])
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGTERM)


class _Attempt:
    """One delivery attempt's connection, which another thread can cut.

    smtplib's timeout is per read or write: a server that trickles a byte
    every few seconds never trips it. Giving the attempt up shuts the
    connection down (a duplicate of its socket, so TLS swapping the socket
    object changes nothing), which wakes a blocked read at once, and no
    further command is sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.reason: str | None = None

    def adopt(self, sock: socket.socket) -> None:
        with self._lock:
            if self.reason is None:
                self._socket = sock.dup()
                return
        sock.close()
        raise DeliveryInterrupted(self.reason)

    def check(self) -> None:
        if self.reason is not None:
            raise DeliveryInterrupted(self.reason)

    def give_up(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            if self._socket is not None:
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the other side: nothing left to cut
                self._socket.close()
                self._socket = None

    def done(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP whose connection belongs to an _Attempt."""

    def __init__(self, attempt: _Attempt, host: str, port: int, timeout: float) -> None:
        self._attempt = attempt
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        self._attempt.adopt(sock)
        return sock

    def send(self, s) -> None:
        self._attempt.check()
        super().send(s)


def _send(settings: SmtpSettings, message: bytes, recipient: str, stop: _Stop | None = None) -> None:
    """Deliver within settings.timeout seconds overall, or raise DeliveryInterrupted.

    The SMTP conversation runs in a helper thread; this one waits for it,
    watching the deadline and `stop` (signal handlers run in this thread).
    """
    if stop is not None and stop.is_set():
        raise DeliveryInterrupted("delivery interrupted (SIGTERM or cancelled); kept in the outbox")
    attempt = _Attempt()
    outcome: dict[str, object] = {}

    def talk() -> None:
        try:
            _talk(settings, message, recipient, attempt, outcome)
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc
        finally:
            attempt.done()

    worker = threading.Thread(target=talk, name="dossync-smtp", daemon=True)
    deadline = time.monotonic() + settings.timeout
    worker.start()
    try:
        while worker.is_alive() and not outcome.get("sent"):
            left = deadline - time.monotonic()
            if stop is not None and stop.is_set():
                attempt.give_up("delivery interrupted (SIGTERM or cancelled); kept in the outbox")
            elif left <= 0:
                attempt.give_up(f"no complete answer within {settings.timeout:g}s ([smtp] timeout): "
                                f"the server is too slow or stuck; kept in the outbox")
            else:
                worker.join(min(0.05, left))
                continue
            worker.join(1.0)  # cut off, it ends at once (one stuck in DNS is left, a daemon)
            break
    except BaseException:  # Ctrl-C: nothing more goes out once the email is back in the outbox
        attempt.give_up("delivery interrupted; kept in the outbox")
        raise
    if outcome.get("sent"):
        return  # the server took it, even if that came as the deadline passed
    if attempt.reason is not None:
        raise DeliveryInterrupted(attempt.reason)
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    raise smtplib.SMTPException("the SMTP conversation ended without an answer")


def _talk(settings: SmtpSettings, message: bytes, recipient: str, attempt: _Attempt,
          outcome: dict[str, object]) -> None:
    smtp = _SMTP(attempt, settings.host, settings.port, timeout=min(SOCKET_TIMEOUT, settings.timeout))
    try:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            refused = settings.plain_auth_refused()
            if refused:  # deliver checks before connecting; never log in without TLS
                raise smtplib.SMTPException(refused)
            password = os.environ.get("DOSSYNC_SMTP_PASSWORD")
            if password is None:
                raise smtplib.SMTPException("username set in dossync.toml but DOSSYNC_SMTP_PASSWORD "
                                            "is not in the environment")
            smtp.login(settings.username, password)
        smtp.sendmail(settings.sender, [recipient], message)
    except BaseException:
        smtp.close()
        raise
    outcome["sent"] = True
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException, DeliveryInterrupted):
        smtp.close()  # the server has the message: a goodbye that fails changes nothing


def eml_path(home: Home, email_id: str) -> Path:
    return home.outbox / f"{email_id}.eml"
