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

from dossync.core.model import DossierBusy, UsageError
from dossync.core.validate import code_problem


class DossierLock:
    def __init__(self, locks_dir: Path, code: str) -> None:
        self.path = lock_path(locks_dir, code)
        self._fd: int | None = None

    def acquire(self, purpose: str = "sync") -> "DossierLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # never through a link: the file truncated below is this lock, nothing else
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError as exc:  # a full disk: let go at once (this process may live on)
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
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
        return not _dead(pid)

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


def _dead(pid: int) -> bool:
    """A process that has ended but is not reaped yet (a zombie) holds no files, so no
    lock: the orphaned worker of a killed nightly waits for init to reap it, which
    can take seconds, or for ever under a container's init that does not reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return Path("/proc/self/stat").exists()  # gone since we looked (where /proc exists)
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def lock_path(locks_dir: Path, code: str) -> Path:
    """HOME/locks/CODE.lock, refused when `code` would lead anywhere else.

    The CLI checks codes where they come in; this is the last line: a lock is
    truncated and written, so a code such as '../x' must never reach a path.
    """
    problem = code_problem(code) if isinstance(code, str) else "is not text"
    path = locks_dir / f"{code}.lock"
    # a valid code is one file name in locks_dir; what is left is a link put in its
    # place (one lstat: the monitor asks this for every dossier on every refresh)
    if problem is None and os.path.islink(path):
        problem = f"leads outside {locks_dir}: {path} is a link"
    if problem:
        raise UsageError(f"dossier code {code!r} {problem}; nothing was changed")
    return path
