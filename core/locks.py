"""One sync per dossier at a time, across processes.

An advisory `flock` on `HOME/locks/CODE.lock`: the kernel drops it when the
holding process dies, however it dies, so a lock left by a killed sync is
simply free again. The file's content names the holder for the message a
second process prints.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from core.model import DossierBusy


class DossierLock:
    def __init__(self, locks_dir: Path, code: str) -> None:
        self.path = locks_dir / f"{code}.lock"
        self._fd: int | None = None

    def acquire(self, purpose: str = "sync") -> "DossierLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DossierBusy(f"dossier {self.path.stem} is busy: {self.holder() or 'another process'}"
                              f"; wait for it to finish (dossync status shows it as syncing)") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                  "command": " ".join(os.path.basename(a) if i == 0 else a
                                      for i, a in enumerate(sys.argv)),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str | None:
        """Who holds the lock, in words, as its holder wrote it."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return None
        if not info:
            return None
        return (f"{info.get('purpose', 'sync')} by pid {info.get('pid')} on {info.get('host')} "
                f"({info.get('command', '?')}), running since {info.get('since')}")

    def is_held(self) -> bool:
        """True when a live process holds the lock now.

        Only reads the holder's note: looking must never make a sync busy
        (taking even a shared lock here would, for an instant).
        """
        if self._fd is not None:
            return True
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return False
        pid = info.get("pid")
        if not isinstance(pid, int) or info.get("host") != socket.gethostname():
            return bool(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False  # its holder died: the kernel already released the lock
        except PermissionError:
            return True
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "DossierLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()
