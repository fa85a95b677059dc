"""Copies of a ledger file taken and put back: `snapshot NAME`, `restore-backup NAME`.

Putting a backup back is how a real package's ledger goes back in time: the
change counter drops, and commits a sync has seen are gone. The copies live
next to the ledger, in ``<ledger>.snapshots/NAME.sqlite``; both directions
go through SQLite's backup API under the file's lock, so a reader sees the
old or the new ledger, never a mix.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from dossync.core.demo_package.events import LedgerEventError
from dossync.core.demo_package.ledger import connect

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def snapshot_dir(path: Path) -> Path:
    """Where `snapshot NAME` keeps its copies of the ledger at `path`."""
    path = Path(path)
    return path.with_name(path.name + ".snapshots")


def _snapshot_file(path: Path, event: str, args: list[str]) -> Path:
    if len(args) != 1 or not _NAME_RE.match(args[0]) or ".." in args[0]:
        raise LedgerEventError(
            f"{path}: '{event}' takes one NAME of letters, digits, '.', '_' or '-' (got {args!r})")
    return snapshot_dir(path) / f"{args[0]}.sqlite"


def take_snapshot(path: Path, event: str, args: list[str]) -> str:
    """Copy the ledger at `path` to its snapshot NAME (replacing an older one)."""
    target = _snapshot_file(path, event, args)
    if not path.is_file():
        raise LedgerEventError(f"ledger not found: {path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with connect(path) as src:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    os.replace(tmp, target)
    return f"snapshot '{args[0]}' of {path.name} written to {target}"


def restore_snapshot(path: Path, event: str, args: list[str]) -> str:
    """Put snapshot NAME back in place of the ledger at `path`."""
    source = _snapshot_file(path, event, args)
    if not source.is_file():
        raise LedgerEventError(f"{path}: no snapshot '{args[0]}' (looked for {source})")
    if not path.is_file():
        raise LedgerEventError(f"ledger not found: {path}")
    src = sqlite3.connect(source)
    try:
        counter = src.execute("SELECT value FROM meta WHERE key='change_counter'").fetchone()
        with connect(path) as dst:
            src.backup(dst)  # page-level copy under the destination's lock: readers see old or new
    finally:
        src.close()
    return (f"restored snapshot '{args[0]}' over {path}: the ledger went back in time "
            f"(change counter now {counter[0] if counter else '?'})")
