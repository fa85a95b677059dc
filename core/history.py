"""Has the ledger kept its history since the portal last saw it?

A simple sync trusts the package's change cursor: it reads only what
changed after the last sync. That holds while the ledger's history goes on
from where the portal left it. A ledger put back from a backup (however far
it has moved on since), or a deletion log that no longer reaches back, breaks
that trust: then only a full sync can be trusted. The sync engine asks before
a simple sync; reconcile asks before it explains differences.
"""
from __future__ import annotations

import pyarrow as pa

from dossync.core import portal
from dossync.core.connectors.base import Connector, LedgerPosition

# Row versions read again on every simple sync, in case a package hands out
# versions a little out of commit order (long transactions).
LOOKBACK = 8


def ledger_history_problem(connector: Connector, position: LedgerPosition,
                           state: portal.SyncState, code: str) -> str | None:
    """Why a simple sync cannot be trusted now, or None.

    The ledger must not have gone back in time (a restored backup) and its
    deletion log must still reach back to the last sync.
    """
    cursor = state.cursor or 0
    restored = ("the ledger went back in time ({}): was a backup restored? "
                "A simple sync would miss changes; run a full sync (dossync sync {} --full)")
    if position.high_water < cursor:
        return restored.format(f"its change counter is at {position.high_water}, "
                               f"the portal already saw {cursor}", code)
    if position.deletion_log_from > cursor + 1:
        return ("the package's deletion log no longer reaches back to the last sync "
                f"(it starts at change {position.deletion_log_from}, the last sync was at {cursor}): "
                f"deletions in between cannot be seen; run a full sync (dossync sync {code} --full)")
    if state.history and connector.capabilities.history:
        # The package names each point of its history: the one the portal saw
        # must still be in it, however far the ledger has moved on since.
        if connector.history_at(cursor) != state.history:
            return restored.format(f"the package no longer knows the point of its history "
                                   f"the portal last saw (change {cursor})", code)
    # In one history, a record the portal saw at version rv is still at rv, or
    # was changed (or deleted) after the last sync: past the cursor.
    deleted = connector.deletions(cursor)
    gone = set(zip(deleted.column("stream").to_pylist(), deleted.column("key").to_pylist()))
    for stream, recent in state.recent.items():
        if not recent:
            continue
        now = connector.versions(stream, [k for k, _ in recent])
        for key, rv in recent:
            if key in now and (now[key] == rv or now[key] > cursor):
                continue
            if key not in now and (stream, key) in gone:
                continue
            seen = f"version {now[key]}" if key in now else "missing"
            return restored.format(f"{stream} {key} is at version {rv} in the portal but "
                                   f"{seen} in the ledger", code)
    # A restored ledger that has moved on hands out the same versions again,
    # to other content: a booking at the same version must be the same booking.
    same = _rewritten_bookings(connector, state)
    if same:
        return restored.format(f"booking {same} has the version the portal saw, "
                               f"with other content", code)
    return None


def _rewritten_bookings(connector: Connector, state: portal.SyncState) -> str | None:
    keys = [k for k, _ in state.recent.get("bookings", [])]
    if not keys:
        return None
    def by_key(table: pa.Table, key: str) -> dict[str, list]:
        rows: dict[str, list] = {}
        for row in table.to_pylist():
            rows.setdefault(str(row[key]), []).append(tuple(row.values()))
        return {k: sorted(v, key=repr) for k, v in rows.items()}

    ledger_b = by_key(connector.read_keys("bookings", keys), "id")
    ledger_l = by_key(connector.read_keys("lines", keys), "booking_id")
    portal_b = by_key(state.probe["bookings"], "id")
    portal_l = by_key(state.probe["lines"], "booking_id")
    versions = dict(state.recent["bookings"])
    for key in keys:
        mine, theirs = portal_b.get(key), ledger_b.get(key)
        if not mine or not theirs or len(theirs) != 1:
            continue
        if theirs[0][-1] != versions[key]:  # rv is the last column: changed since, fine
            continue
        if mine != theirs or portal_l.get(key, []) != ledger_l.get(key, []):
            return key
    return None
