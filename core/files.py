"""Files replaced whole: a reader sees the old content or the new, never half.

One helper for every file dossync rewrites in place: a Beancount proposals
file (durable: fsynced, with its folder), the progress file and the kept
reconcile verdicts (a courtesy to other processes: atomic, not fsynced),
and the outbox's .eml copies.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, content: bytes | str, *, mode: int | None = None,
                     durable: bool = False) -> None:
    """Write `content` to `path` through a temporary file in the same folder,
    renamed over it. durable: fsync the file and its folder (the write
    survives a power cut); mode: the new file's permissions."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a removal in `folder` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
