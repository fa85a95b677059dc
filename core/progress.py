"""A running sync's progress, for other processes (and machines) to read.

The sync engine writes it (`ProgressFile`, a small JSON file next to the
dossier's lock, rewritten at most five times a second); the monitor and the
terminal UI read it (`read_progress`) to show rows done, rate and ETA. On a
PostgreSQL portal the same document goes into the portal, once a second,
beside the sync's hold on its dossier (core/portal/holders.py), so every
machine's monitor sees it; the answer says whether a monitor asked the sync
to stop (`cancelled`).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from dossync.core.files import write_atomically
from dossync.core.home import Home
from dossync.core.model import DossyncError, Progress

log = logging.getLogger(__name__)


def progress_path(home: Home, code: str) -> Path:
    return home.locks / f"{code}.progress.json"


class ProgressFile:
    """Writes a sync's progress for other processes to read (at most 5 times a second)."""

    def __init__(self, home: Home, code: str, kind: str, lock=None) -> None:
        self.path = progress_path(home, code)
        self.server = lock if home.on_server else None  # its ServerLock reports to the portal
        self.kind = kind
        self.started = time.time()
        self.streams: dict[str, dict] = {}
        self.cancelled = threading.Event()  # set when a monitor asked the sync to stop
        self._last = 0.0

    def __call__(self, event: Progress) -> None:
        if event.stream != "all":
            self.streams[event.stream] = {"done": event.done, "total": event.total}
        now = time.monotonic()
        every = 0.2 if self.server is None else 1.0
        if event.phase == "read" and now - self._last < every and event.done != event.total:
            return
        self._last = now
        doc = {"pid": os.getpid(), "kind": self.kind, "started": self.started,
               "phase": event.phase, "stream": event.stream, "streams": self.streams,
               "updated": time.time()}
        if self.server is not None:
            try:
                if self.server.report(doc):
                    self.cancelled.set()
            except DossyncError:  # the hold itself is lost: the sync must stop (it says why)
                raise
            except Exception as exc:  # noqa: BLE001 - a courtesy to onlookers; the sync goes on
                log.debug("progress of %s not reported to the portal: %s", self.path.stem, exc)
            return
        try:
            write_atomically(self.path, json.dumps(doc))
        except OSError as exc:  # progress is a courtesy to onlookers; the sync goes on
            log.debug("progress file %s not written: %s", self.path, exc)

    def close(self) -> None:
        if self.server is None:  # on a server, releasing the hold removes the report
            self.path.unlink(missing_ok=True)


def read_progress(home: Home, code: str) -> dict | None:
    """The running sync's progress with rows done, rate and ETA, or None."""
    return read_progresses(home, [code]).get(code)


def read_progresses(home: Home, codes: list[str]) -> dict[str, dict]:
    """{code: progress} of those of `codes` that a sync runs now (one look at the portal on
    a server: the monitor asks this for every syncing dossier every second)."""
    if not codes:
        return {}
    if home.on_server:
        from dossync.core.portal.holders import holders
        docs = {code: doc for code, (_, doc) in holders(home.portal, codes).items() if doc}
    else:
        docs = {}
        for code in codes:
            try:
                docs[code] = json.loads(progress_path(home, code).read_text())
            except (OSError, ValueError):
                continue
    return {code: _with_rates(doc) for code, doc in docs.items()}


def _with_rates(doc: dict) -> dict:
    """A progress document with rows done, total, rate and ETA added."""
    done = sum(s["done"] for s in doc["streams"].values())
    total = sum((s["total"] or 0) for s in doc["streams"].values())
    elapsed = max(1e-3, doc["updated"] - doc["started"])
    rate = done / elapsed
    doc.update(done=done, total=total, rate=rate,
               eta=(total - done) / rate if rate > 0 and total >= done else None)
    return doc
