"""The outbox: client emails queued by syncs, claimed by one sender at a time,
and marked sent or failed."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from dossync.core.portal.records import OutboxEmail
from dossync.core.portal.schema import connect
from dossync.core.portal.store import _one, _records


# An OutboxEmail's columns (ordered by outbox.created_at, the timestamp, not this text).
_OUTBOX_COLS = ("id, dossier, run_id, recipient, subject, status, attempts, last_error, "
                "strftime(created_at, '%Y-%m-%dT%H:%M:%S') AS created_at, "
                "strftime(sent_at, '%Y-%m-%dT%H:%M:%S') AS sent_at")


def outbox(path: Path, statuses: tuple[str, ...] = ("queued", "failed", "sent")) -> list[dict]:
    """The emails with these statuses, oldest first, as JSON (OutboxEmail)."""
    with connect(path, read_only=True) as con:
        rows = _records(con.execute(f"SELECT {_OUTBOX_COLS} FROM outbox "
                                    f"WHERE list_contains(?, status) "
                                    f"ORDER BY outbox.created_at, id", [list(statuses)]),
                        OutboxEmail)
    return [r.to_json() for r in rows]


def outbox_message(path: Path, email_id: str) -> bytes:
    with connect(path, read_only=True) as con:
        return bytes(con.execute("SELECT message FROM outbox WHERE id = ?", [email_id]).fetchall()[0][0])


def claim_email(path: Path, email_id: str, claimer: str, stale_after: float) -> bytes | None:
    """Claim a queued or failed email for one sender: its message if `claimer` holds it now.

    One UPDATE decides (one writer at a time, a row lock on a server
    database): only an email nobody holds, or whose claim is older than
    `stale_after` seconds (its sender was killed), changes hands; reading
    the claim back in the same visit tells who won. A sent email is never
    claimed again.
    """
    now = datetime.now()
    with connect(path) as con:
        con.execute("UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id = ? "
                    "AND status IN ('queued', 'failed') "
                    "AND (claimed_by IS NULL OR claimed_at IS NULL OR claimed_at < ?)",
                    [claimer, now, email_id, now - timedelta(seconds=stale_after)])
        row = _one(con.execute("SELECT claimed_by, message FROM outbox WHERE id = ? "
                               "AND status IN ('queued', 'failed')", [email_id]).fetchall())
    return bytes(row[1]) if row and row[0] == claimer else None


def mark_email(path: Path, email_id: str, status: str, error: str | None = None,
               claim: str | None = None) -> None:
    """Record a delivery attempt and let go of the claim.

    A sent email is recorded sent whatever happened meanwhile. Any other
    outcome is recorded only while `claim` still holds the email (or nobody
    does): a sender whose stale claim was taken over never overwrites the
    newer attempt, nor a sent email.
    """
    with connect(path) as con:
        con.execute("UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, "
                    "sent_at = CASE WHEN ? = 'sent' THEN now() ELSE sent_at END, "
                    "claimed_by = NULL, claimed_at = NULL WHERE id = ? AND (? = 'sent' OR "
                    "(status <> 'sent' AND (claimed_by IS NULL OR claimed_by = ?)))",
                    [status, error, status, email_id, status, claim])
