"""The "books updated" email to the client entrepreneur.

Written in the dossier's language, naming the company and the updated-until
date in the local date format, as plain text with an HTML alternative.
Delivered through SMTP as configured in HOME/dossync.toml (`[smtp]`); with
no SMTP configured, or while the server is down, the message waits in the
outbox (the portal's `outbox` table, and an .eml file in HOME/outbox) until
`dossync outbox --flush` delivers it.
"""
from __future__ import annotations

import email.policy
import html
import os
import re
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from datetime import date
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from core import portal
from core.home import Home
from core.model import Dossier, UsageError

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

EMAIL_RE = re.compile(r"^[^@\s<>,;\"'()\[\]\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def valid_address(address: str | None) -> bool:
    return bool(address) and EMAIL_RE.match(address) is not None


def local_date(day: str, language: str) -> str:
    """30 september 2026 / 30 septembre 2026 / 30 September 2026."""
    d = date.fromisoformat(day)
    months = _MONTHS.get(language, _MONTHS["en"])
    day_text = "1er" if language == "fr" and d.day == 1 else str(d.day)
    return f"{day_text} {months[d.month - 1]} {d.year}"


def _one_line(text: str) -> str:
    """Names go into headers: no CR, LF or other control characters, ever."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "boekhouding@kantoor.example"
    starttls: bool = False
    username: str = ""

    @classmethod
    def from_config(cls, config: dict) -> "SmtpSettings | None":
        smtp = config.get("smtp")
        if not smtp:
            return None
        if not smtp.get("host"):
            raise UsageError("[smtp] in dossync.toml needs a host")
        return cls(host=str(smtp["host"]), port=int(smtp.get("port", 25)),
                   sender=str(smtp.get("sender", cls.sender)),
                   starttls=bool(smtp.get("starttls", False)),
                   username=str(smtp.get("username", "")))


def sender_of(home: Home) -> str:
    settings = SmtpSettings.from_config(home.config())
    return settings.sender if settings else SmtpSettings.sender


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


def deliver(home: Home, email_id: str, message: bytes, recipient: str) -> tuple[EmailStatus, str | None]:
    """Try to deliver one queued email; record the outcome in the outbox."""
    settings = SmtpSettings.from_config(home.config())
    eml = home.outbox / f"{email_id}.eml"
    if settings is None:
        home.outbox.mkdir(parents=True, exist_ok=True)
        eml.write_bytes(message)
        portal.mark_email(home.portal, email_id, "queued", "no [smtp] in dossync.toml: kept in the outbox")
        return "queued", None
    try:
        _send(settings, message, recipient)
    except (OSError, smtplib.SMTPException) as exc:
        home.outbox.mkdir(parents=True, exist_ok=True)
        eml.write_bytes(message)
        error = f"SMTP {settings.host}:{settings.port}: {exc}"
        portal.mark_email(home.portal, email_id, "failed", error)
        return "failed", error
    eml.unlink(missing_ok=True)
    portal.mark_email(home.portal, email_id, "sent")
    return "sent", None


def _send(settings: SmtpSettings, message: bytes, recipient: str) -> None:
    with smtplib.SMTP(settings.host, settings.port, timeout=15) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            password = os.environ.get("DOSSYNC_SMTP_PASSWORD")
            if password is None:
                raise smtplib.SMTPException("username set in dossync.toml but DOSSYNC_SMTP_PASSWORD "
                                            "is not in the environment")
            smtp.login(settings.username, password)
        smtp.sendmail(settings.sender, [recipient], message)


def flush(home: Home) -> list[dict]:
    """Retry every queued or failed email; returns the outbox entries tried, with outcome."""
    tried = []
    for entry in portal.outbox(home.portal, ("queued", "failed")):
        message = portal.outbox_message(home.portal, entry["id"])
        status, error = deliver(home, entry["id"], message, entry["recipient"])
        tried.append({**entry, "status": status, "last_error": error})
    return tried


def eml_path(home: Home, email_id: str) -> Path:
    return home.outbox / f"{email_id}.eml"
