"""One sync per dossier at a time, across processes (and machines).

On a DuckDB portal: an advisory `flock` on `HOME/locks/CODE.lock`: the
kernel drops it when the holding process dies, however it dies, so a lock
left by a killed sync is simply free again. The file's content names the
holder for the message a second process prints.

On a PostgreSQL portal the server holds it (`ServerLock`, over
core/portal/holders.py): an advisory lock of the session, so a sync on
another machine is refused too. `dossier_lock(home, code)` gives the one the
portal calls for; both answer the same calls.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from dossync.core.addresses import redact_text
from dossync.core.model import DossierBusy, UsageError
from dossync.core.validate import code_problem


def _holder_note(purpose: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
            # shown to whoever finds the dossier busy: never a password given in --portal
            "command": redact_text(" ".join(os.path.basename(a) if i == 0 else a
                                            for i, a in enumerate(sys.argv))),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _busy(code: str, holder: str | None) -> DossierBusy:
    return DossierBusy(f"dossier {code} is busy: {holder or 'another process'}; wait for it "
                       f"to finish (dossync status shows it as syncing)")


def _in_words(info: dict) -> str:
    return (f"{info.get('purpose', 'sync')} by pid {info.get('pid')} on {info.get('host')} "
            f"({info.get('command', '?')}), running since {info.get('since')}")


def dossier_lock(home, code: str):
    """The lock that keeps a dossier to one sync: on the portal's server when it has one."""
    if home.on_server:
        return ServerLock(home.portal, code)
    return DossierLock(home.locks, code)


def syncing(home, codes: list[str]) -> set[str]:
    """The dossiers among `codes` that a sync holds now (one look on a server)."""
    if home.on_server:
        from dossync.core.portal.holders import holders
        return set(holders(home.portal, codes))
    return {code for code in codes if DossierLock(home.locks, code).is_held()}


class ServerLock:
    """A dossier held on the PostgreSQL portal's server (core/portal/holders.py)."""

    def __init__(self, url: str, code: str) -> None:
        problem = code_problem(code) if isinstance(code, str) else "is not text"
        if problem:
            raise UsageError(f"dossier code {code!r} {problem}; nothing was changed")
        from dossync.core.portal.holders import ServerHold
        self.code = code
        self.url = url
        self._hold = ServerHold(url, code)

    def acquire(self, purpose: str = "sync") -> "ServerLock":
        if not self._hold.acquire(_holder_note(purpose)):
            raise _busy(self.code, self.holder())
        return self

    def holder(self) -> str | None:
        from dossync.core.portal.holders import holders
        found = holders(self.url, [self.code]).get(self.code)
        return _in_words(found[0]) if found else None

    def is_held(self) -> bool:
        return self._hold.held or self.holder() is not None

    def report(self, progress: dict) -> bool:
        """The sync's progress, in the portal for every machine's monitor; True when a
        monitor asked the sync to stop."""
        return self._hold.report(progress)

    def release(self) -> None:
        self._hold.release()

    def forget(self) -> None:
        """Nothing to clear up after an unknown dossier: the server keeps no file."""

    def __enter__(self) -> "ServerLock":
        return self.acquire() if not self._hold.held else self

    def __exit__(self, *exc) -> None:
        self.release()


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
            raise _busy(self.path.stem, self.holder()) from None
        holder = _holder_note(purpose)
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
        return _in_words(info)

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

    def forget(self) -> None:
        """Remove the lock file (a dossier that turned out unknown)."""
        self.path.unlink(missing_ok=True)

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
