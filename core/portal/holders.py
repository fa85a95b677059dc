"""One sync per dossier across machines, on a PostgreSQL portal.

A sync holds its dossier with a PostgreSQL advisory lock, taken on a
connection of its own that stays open while the sync runs: the server
grants it to one session at a time, whichever machine it runs on, and lets
go of it when that session ends, however it ends (a killed process's
connection closes; a lost machine's is ended by TCP keepalives). The
`sync_holders` row beside it names the holder for a second sync's message
and carries the sync's progress for every machine's monitor; a row whose
session is gone is not a holder (`pg_stat_activity` no longer lists its
server process).

(On a DuckDB portal, core/locks.py's file lock does this job on one machine.)
"""
from __future__ import annotations

import json
import logging

from dossync.core.model import TerminalError
from dossync.core.portal.pgstore import open_raw, session_lost

log = logging.getLogger(__name__)

_KEY = "hashtextextended('dossync sync ' || %s, 0)"
_LIVE = "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.backend_pid)"
# a lost machine's session is ended within about a minute and a half
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 6}


class ServerHold:
    """A dossier held on the portal's server while this object holds it."""

    def __init__(self, url: str, code: str) -> None:
        self.url = url
        self.code = code
        self._raw = None

    @property
    def held(self) -> bool:
        return self._raw is not None

    def acquire(self, holder: dict) -> bool:
        """Take the dossier for this process; False when another session holds it."""
        raw = open_raw(self.url, **_KEEPALIVE)
        try:
            if not raw.execute(f"SELECT pg_try_advisory_lock({_KEY})", [self.code]).fetchone()[0]:
                raw.close()
                return False
            raw.execute("INSERT INTO sync_holders (dossier, backend_pid, holder, since, progress) "
                        "VALUES (%s, pg_backend_pid(), %s, localtimestamp, NULL) "
                        "ON CONFLICT (dossier) DO UPDATE SET backend_pid = excluded.backend_pid, "
                        "holder = excluded.holder, since = excluded.since, progress = NULL",
                        [self.code, json.dumps(holder)])
        except BaseException:
            raw.close()
            raise
        self._raw = raw
        return True

    def report(self, progress: dict) -> bool:
        """The sync's progress, for the monitors of every machine; True when a monitor
        (on any machine) asked the sync to stop. Raises TerminalError when the hold's
        session is gone (the server restarted, the network dropped it): the server let go
        of the dossier, so another machine may start a sync of it; this one must stop
        before its commit, changing nothing."""
        if self._raw is None:
            return False
        try:
            row = self._raw.execute("UPDATE sync_holders SET progress = %s WHERE dossier = %s "
                                    "AND backend_pid = pg_backend_pid() RETURNING cancel",
                                    [json.dumps(progress), self.code]).fetchone()
        except Exception as exc:
            if not session_lost(self._raw):
                raise
            raise TerminalError(
                f"dossier {self.code}: the sync lost its hold on the portal's server "
                f"({str(exc).strip() or type(exc).__name__}); another sync may have begun, "
                f"so this one stopped and changed nothing: run it again") from None
        return bool(row and row[0])

    def release(self) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        try:
            if not session_lost(raw):  # a lost session's lock is gone already
                raw.execute("DELETE FROM sync_holders WHERE dossier = %s "
                            "AND backend_pid = pg_backend_pid()", [self.code])
        except Exception as exc:
            if not session_lost(raw):
                raise
            log.warning("dossier %s: its hold's session was lost before it was let go (%s)",
                        self.code, exc)
        finally:
            raw.close()  # ending the session lets go of the advisory lock


def request_cancel(url: str, code: str) -> bool:
    """Ask the sync holding `code` to stop (it sees it at its next progress report and
    changes nothing). False when no live session holds it."""
    raw = open_raw(url)
    try:
        row = raw.execute(f"UPDATE sync_holders h SET cancel = true WHERE dossier = %s "
                          f"AND {_LIVE} RETURNING dossier", [code]).fetchone()
    finally:
        raw.close()
    return row is not None


def holders(url: str, codes: list[str]) -> dict[str, tuple[dict, dict | None]]:
    """{dossier: (holder, progress)} for those of `codes` a live session holds now."""
    raw = open_raw(url)
    try:
        rows = raw.execute(f"SELECT dossier, holder, progress FROM sync_holders h "
                           f"WHERE {_LIVE} AND h.dossier = ANY(%s)", [list(codes)]).fetchall()
    finally:
        raw.close()
    return {code: (json.loads(holder), json.loads(progress) if progress else None)
            for code, holder, progress in rows}
