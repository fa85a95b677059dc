"""The package's inbox: booking proposals it receives from dossync's worklist.

A received proposal waits, status 'received', until the accountant validates
it in the package (the `validate-proposals` event books it: status 'booked',
which stays even if that booking is deleted later); receiving one changes no
booking and moves no change counter. The demo connector
(core/connectors/demo.py) delivers them here, and reads the statuses back at
every sync (`settled_proposals`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from dossync.core.demo_package.events import LedgerEventError
from dossync.core.demo_package.ledger import utc_now


def receive_proposals(path: Path, proposals: list[dict]) -> None:
    """The package receives booking proposals from the worklist (status 'received').

    Each proposal: ref, journal, date, relation_id, amount (cents), lines (list
    of {account, debit, credit, vat_code}). They wait until the accountant
    validates them (`validate-proposals`); receiving changes no booking.
    """
    if not path.is_file():
        raise LedgerEventError(f"ledger file {path} does not exist")
    received_at = utc_now()
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            conn.executemany(  # a proposal sent again (a retried queue) is taken once
                "INSERT OR IGNORE INTO proposals (ref, journal, date, relation_id, amount, lines, "
                "status, received_at) VALUES (?, ?, ?, ?, ?, ?, 'received', ?)",
                [(p["ref"], p["journal"], p["date"], p["relation_id"], p["amount"],
                  json.dumps(p["lines"]), received_at) for p in proposals])
    except sqlite3.Error as exc:
        raise LedgerEventError(f"ledger {path} refused the proposals: {exc}") from exc
    finally:
        conn.close()
