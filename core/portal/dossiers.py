"""The dossier registry: the firm's dossiers and their settings."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from dossync.core.model import DEFAULT_TIMEZONE, Dossier, UsageError
from dossync.core.portal.schema import _connect_creating, connect
from dossync.core.portal.store import _records, _transaction
from dossync.core.streams import STREAMS


def _dossier_cols(alias: str = "") -> str:
    """The SELECT list of a Dossier, a column per field, named as it (alias: a table alias)."""
    a = f"{alias}." if alias else ""
    return (f"{a}code, {a}name, {a}package, {a}source, {a}email, {a}language, {a}nightly, "
            f"strftime({a}updated_until, '%Y-%m-%d') AS updated_until, {a}active_period, "
            f"{a}pending_proposals, {a}currency, "
            f"coalesce({a}timezone, '{DEFAULT_TIMEZONE}') AS timezone, {a}proposals_file, "
            f"{a}book_currency, {a}connector_version")


_DOSSIER_COLS = _dossier_cols()
_DOSSIER_FIELDS = tuple(f.name for f in fields(Dossier))


def _dossier_of(row: dict) -> Dossier:
    """The Dossier among a row's columns (a row that has other columns too)."""
    return Dossier(**{name: row[name] for name in _DOSSIER_FIELDS})


def _read_dossier(con, code: str) -> Dossier | None:
    found = _records(con.execute(f"SELECT {_DOSSIER_COLS} FROM dossiers WHERE code = ?", [code]),
                     Dossier)
    return found[0] if found else None


def list_dossiers(path: Path) -> list[Dossier]:
    with connect(path, read_only=True) as con:
        return _records(con.execute(f"SELECT {_DOSSIER_COLS} FROM dossiers ORDER BY code"),
                        Dossier)


def get_dossier(path: Path, code: str) -> Dossier | None:
    with connect(path, read_only=True) as con:
        return _read_dossier(con, code)


def unknown_dossier(path: Path, code: str) -> UsageError:
    """The error for a dossier code the portal does not know, listing the ones it does."""
    known = ", ".join(d.code for d in list_dossiers(path)) or "none yet"
    return UsageError(f"unknown dossier {code!r} (known: {known})")


def require_dossier(path: Path, code: str) -> Dossier:
    """The dossier, or a usage error that lists the known ones."""
    dossier = get_dossier(path, code)
    if dossier is None:
        raise unknown_dossier(path, code)
    return dossier


def add_dossier(path: Path, dossier: Dossier) -> None:
    """Add a dossier (creating the portal first if there is none): one visit.

    Raises UsageError when the code is taken."""
    with _connect_creating(path) as con:
        if con.execute("SELECT count(*) FROM dossiers WHERE code = ?", [dossier.code]).fetchall()[0][0]:
            raise UsageError(f"dossier {dossier.code} already exists; change it with "
                             f"'dossync dossier set {dossier.code}'")
        con.execute(
            "INSERT INTO dossiers (code, name, package, source, email, language, nightly, "
            "updated_until, active_period, pending_proposals, created_at, currency, timezone, "
            "proposals_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?)",
            [dossier.code, dossier.name, dossier.package, dossier.source, dossier.email,
             dossier.language, dossier.nightly, dossier.updated_until, dossier.active_period,
             dossier.pending_proposals, dossier.currency, dossier.timezone,
             dossier.proposals_file])


def update_dossier(path: Path, code: str, **changes) -> None:
    allowed = {"name", "source", "email", "language", "nightly", "package", "currency",
               "timezone", "proposals_file"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)} on a dossier")
    if not changes:
        return
    sets = ", ".join(f"{k} = ?" for k in changes)
    with connect(path) as con:
        con.execute(f"UPDATE dossiers SET {sets} WHERE code = ?", [*changes.values(), code])


def remove_dossier(path: Path, code: str) -> None:
    """Forget a dossier entirely (used when its activation failed)."""
    with connect(path) as con, _transaction(con):
        for table in ["dossiers"]:
            con.execute(f"DELETE FROM {table} WHERE code = ?", [code])
        for table in ["sync_state", "ledger_position", "sync_runs", "quarantine",
                      "reconcile_runs", "provisional_bookings", "provisional_lines",
                      "proposal_queue", *(s.name for s in STREAMS)]:
            con.execute(f"DELETE FROM {table} WHERE dossier = ?", [code])
