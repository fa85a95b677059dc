"""The nightly run: a headless simple sync of every dossier with nightly on.

It never changes the updated-until date and never emails. Dossiers run a few
at a time (threads of one process: they share the portal's open database,
so the only waiting is for each other's short commits); one dossier's
failure never stops the others, and a dossier another process is already
syncing is skipped and reported.
"""
from __future__ import annotations

import logging
import logging.handlers
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from core import portal
from core.home import Home
from core.model import DossierBusy, ExitCode, RunContext, SyncResult, UsageError
from core.sync import sync_dossier

log = logging.getLogger("dossync.nightly")


@dataclass
class NightlyResult:
    runs: list[SyncResult] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.runs if r.status == "succeeded")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.runs if r.status != "succeeded")

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failed else ExitCode.OK

    def to_json(self) -> dict:
        return {"runs": [r.to_json() for r in self.runs], "succeeded": self.succeeded,
                "failed": self.failed, "skipped": self.skipped,
                "started_at": self.started_at, "finished_at": self.finished_at}


def _file_log(home: Home) -> logging.Handler:
    home.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(home.logs / "nightly.log", maxBytes=2_000_000,
                                                   backupCount=7, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def run_nightly(home: Home, jobs: int = 4, stop: threading.Event | None = None,
                verify: bool = False) -> NightlyResult:
    """Simple-sync every nightly dossier, `jobs` at a time.

    `stop` (set on SIGTERM by the scheduler) lets running commits finish
    and starts nothing new. `verify` reconciles each dossier after its sync
    (available once reconciliation is part of this version).
    """
    home.require()
    if verify:
        raise UsageError("--verify needs reconciliation, which this version does not have yet")
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    stop = stop or threading.Event()
    handler = _file_log(home)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    result = NightlyResult(started_at=datetime.now().isoformat(timespec="seconds"))
    try:
        dossiers = [d for d in portal.list_dossiers(home.portal) if d.nightly]
        log.info("nightly: %d dossier(s) with nightly on, %d at a time", len(dossiers), jobs)

        def one(code: str) -> SyncResult | dict:
            if stop.is_set():
                return {"dossier": code, "reason": "stopped before it started (shutdown)"}
            try:
                run = sync_dossier(home, code, "simple", RunContext(cancel_requested=stop))
            except DossierBusy as exc:
                log.warning("%s skipped: %s", code, exc)
                return {"dossier": code, "reason": str(exc)}
            if run.status == "succeeded":
                log.info("%s ok: read %d, inserted %d, updated %d, deleted %d, quarantined %d",
                         code, run.rows.read, run.rows.inserted, run.rows.updated,
                         run.rows.deleted, run.rows.quarantined)
            else:
                log.error("%s failed: %s", code, run.error)
            return run

        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nightly") as pool:
            for outcome in pool.map(one, [d.code for d in dossiers]):
                if isinstance(outcome, SyncResult):
                    result.runs.append(outcome)
                else:
                    result.skipped.append(outcome)
        result.finished_at = datetime.now().isoformat(timespec="seconds")
        log.info("nightly done: %d succeeded, %d failed, %d skipped", result.succeeded,
                 result.failed, len(result.skipped))
    finally:
        log.removeHandler(handler)
        handler.close()
    return result
