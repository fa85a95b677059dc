"""The headless CLI: thin commands over the core's library calls.

Its names, options, JSON and exit codes are an API (see CONTRACT.md): cron
jobs and scripts depend on them. `--json` prints exactly one JSON document
on stdout; logs and progress go to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Callable

from dossync.core import i18n, idle, logs, money, portal, reports, window
from dossync.core.addresses import portal_url_problem, redact_url
from dossync.core.home import MAX_JOBS, PORTAL_ENV, Home
from dossync.core.i18n import N_, _
from dossync.core.demo_package.events import LEDGER_EVENTS
from dossync.core.model import (DEFAULT_TIMEZONE, LANGUAGES, PACKAGES, Dossier, DossyncError,
                                ExitCode, ManualOptions, Progress, RunContext, SyncResult,
                                UsageError)
from dossync.core.jobqueue import DEFAULT_LEASE, run_worker
from dossync.core.monitor import monitor_rows
from dossync.core.sync import sync_dossier
from dossync.core import upgrades
from dossync.core.validate import (CODE_RULE, address_problem, code_problem, name_problem,
                                   new_code_problem)

log = logging.getLogger("dossync")

EXIT_CODES_HELP = "exit codes:\n" + "\n".join(
    f"  {c.value}  {c.name:<12}" + {
        0: "done, nothing to report",
        1: "the operation failed; the message says why and what to do",
        2: "bad arguments, unknown dossier, missing HOME",
        3: "another process is syncing that dossier; the message names it",
        4: "a batch where some dossiers failed",
        5: "reconcile found differences",
    }[c.value] for c in ExitCode)

# --- output helpers ---------------------------------------------------------------
class _Output:
    """What one command prints on stdout: with --json, exactly one document.

    A handler's document is held until the handler is done; if it fails after
    all, the error document takes its place (never two documents). While a
    JSON command runs, anything else printed goes to stderr.
    """

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.document: object = None
        self.stdout = sys.stdout

    @contextlib.contextmanager
    def capture(self):
        with contextlib.redirect_stdout(sys.stderr) if self.json else contextlib.nullcontext():
            yield self

    def write(self, doc) -> None:
        self.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")
        self.stdout.flush()

    def done(self) -> None:
        if self.document is not None:
            document, self.document = self.document, None
            self.write(document)

    def fail(self, message: str, exit_code: int, *, stderr: bool = True,
             said: str | None = None, **extra) -> int:
        """Say what failed on stderr and, with --json, as the one document on stdout
        (`said`: the words for people, in their language, when they differ from the
        language-neutral `message` of the JSON)."""
        if stderr:
            print(f"dossync: {message if said is None else said}", file=sys.stderr)
        if self.json:
            self.document = None
            with contextlib.suppress(BrokenPipeError):
                self.write({"error": message, "exit": int(exit_code), "exit_code": int(exit_code),
                            **extra})
        return int(exit_code)


_OUTPUT: _Output | None = None  # the running command's (main sets it)


def _emit_json(doc) -> None:
    if _OUTPUT is None:  # a handler called outside main()
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    else:
        _OUTPUT.document = doc


# The headers of the human tables, in the source language (JSON keeps the keys).
_HEADERS = {
    "code": N_("code"), "name": N_("name"), "package": N_("package"),
    "updated_until": N_("updated until"), "active_period": N_("active period"),
    "pending_proposals": N_("pending proposals"), "state": N_("state"),
    "quarantined": N_("quarantined"), "nightly": N_("nightly"), "last_sync": N_("last sync"),
    "account": N_("account"), "class": N_("class"), "commodity": N_("commodity"),
    "debit": N_("debit"), "credit": N_("credit"), "balance": N_("balance"),
    "amount": N_("amount"), "ref": N_("ref"), "journal": N_("journal"), "date": N_("date"),
    "due_date": N_("due date"), "relation": N_("relation"), "booking_status": N_("booking"),
    "payment_status": N_("payment"),
    # the other tables' columns: the English header is the JSON key, as before
    "language": N_("language"), "email": N_("email"), "source": N_("source"),
    "job": N_("job"), "dossier": N_("dossier"), "kind": N_("kind"), "status": N_("status"),
    "attempts": N_("attempts"), "queued_at": N_("queued_at"), "finished_at": N_("finished_at"),
    "error": N_("error"), "run_id": N_("run_id"), "read": N_("read"),
    "inserted": N_("inserted"), "updated": N_("updated"), "deleted": N_("deleted"),
    "stream": N_("stream"), "key": N_("key"), "reason": N_("reason"), "detail": N_("detail"),
    "recipient": N_("recipient"), "subject": N_("subject"), "created_at": N_("created_at"),
    "sent_at": N_("sent_at"), "last_error": N_("last_error"), "fiscal_year": N_("fiscal_year"),
    "period": N_("period"), "ledger_count": N_("ledger_count"),
    "portal_count": N_("portal_count"), "ledger_amount": N_("ledger_amount"),
    "portal_amount": N_("portal_amount"), "explained_by": N_("explained_by"),
    "idle": N_("idle"), "id": N_("id"), "from_version": N_("from_version"),
    "to_version": N_("to_version"), "expected_rows": N_("expected_rows"),
    "expected_seconds": N_("expected_seconds"), "new": N_("new")}
# Values that are words of ours (a state, a kind), shown translated; JSON keeps them.
_WORDS = {
    "ok": N_("ok"), "syncing": N_("syncing"), "failed": N_("failed"),
    "action_required": N_("action required"), "on": N_("on"), "off": N_("off"),
    "never": N_("never"), "succeeded": N_("succeeded"), "simple": N_("simple"),
    "full": N_("full"), "repair": N_("repair"), "paid": N_("paid"), "open": N_("open"),
    "partly_paid": N_("partly paid"), "provisional": N_("provisional"),
    "definitive": N_("definitive"), "booked": N_("booked"), "queued": N_("queued"),
    "running": N_("running"), "cancelled": N_("cancelled"), "sent": N_("sent"),
    "skipped": N_("skipped")}
_MONEY_COLUMNS = {"debit", "credit", "balance", "amount", "ledger_amount", "portal_amount"}
_DATE_COLUMNS = {"date", "due_date", "updated_until"}
# the columns whose values are words of ours; elsewhere a value is data, shown as it is
_WORD_COLUMNS = {"state", "kind", "status", "nightly", "last_sync", "booking_status",
                 "payment_status"}


def _cell(column: str, value) -> str:
    """A value as people read it in the active language (amounts, dates, known words)."""
    if value is None:
        return ""
    if column in _MONEY_COLUMNS:
        return i18n.amount(value)
    if column in _DATE_COLUMNS and isinstance(value, str) and len(value) == 10:
        return i18n.date_text(value)
    if isinstance(value, bool):
        return _("True") if value else _("False")
    return _word(value) if column in _WORD_COLUMNS and isinstance(value, str) else str(value)


def _word(value: str) -> str:
    """A word of ours (a kind, a status) in the active language; any other text as it is."""
    return _(_WORDS[value]) if value in _WORDS else value


def _table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(_(_HEADERS.get(column, column)),
                         justify="right" if column in _RIGHT else "left")
    for row in rows:  # values are text, never markup: a path may hold [brackets]
        table.add_row(*(Text(_cell(c, row.get(c))) for c in columns))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


_RIGHT = {"debit", "credit", "balance", "amount", "pending_proposals", "read", "inserted",
          "updated", "deleted", "quarantined"}


class _ProgressBar:
    """A progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "_ProgressBar":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeRemainingColumn)

            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self._progress.__enter__()
        return self

    def __call__(self, event: Progress) -> None:
        if self._progress is None or event.stream == "all":
            return
        if event.stream not in self._tasks:
            self._tasks[event.stream] = self._progress.add_task(
                f"{self.label} {event.stream}", total=event.total or None)
        self._progress.update(self._tasks[event.stream], completed=event.done)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _print_sync(result: SyncResult) -> None:
    rows = result.rows
    kind = _word(result.kind)
    line = (_("{kind} sync of {dossier} succeeded (run {run})") if result.status == "succeeded"
            else _("{kind} sync of {dossier} FAILED (run {run})"))
    print(line.format(kind=kind, dossier=result.dossier, run=result.run_id) + ": "
          + _("read {read}, inserted {inserted}, updated {updated}, deleted {deleted}, "
              "quarantined {quarantined}").format(
              read=rows.read, inserted=rows.inserted, updated=rows.updated,
              deleted=rows.deleted, quarantined=rows.quarantined))
    for warning in result.warnings:
        print("  " + _("warning: {text}").format(text=warning), file=sys.stderr)
    if result.error:
        print("  " + _("error: {text}").format(text=result.error), file=sys.stderr)


def _sync_exit(result: SyncResult) -> int:
    return ExitCode.OK if result.status == "succeeded" else ExitCode.FAILED


# --- commands ---------------------------------------------------------------------
def cmd_demo(home: Home, args) -> int:
    from dossync.core import demo_package

    if (home.exists() or home.ledgers.exists() and any(home.ledgers.iterdir())) \
            and not args.force:
        raise UsageError(f"{home.root} already holds a dossync home; use --force to replace "
                         f"its portal and ledgers with a new demo firm (dossync.toml is kept)")
    portal.erase_portal(home.portal)
    for folder in (home.ledgers, home.staging, home.locks, home.outbox, home.verdicts):
        shutil.rmtree(folder, ignore_errors=True)
    home.create()
    companies = demo_package.demo_companies(args.dossiers, args.lines, args.seed)
    results = []
    for number, company in enumerate(companies, 1):
        ledger = home.ledgers / f"{company.code}.sqlite"
        _info(args, _("[{number}/{total}] {code}: writing ledger ({lines} lines) and "
                      "activating").format(number=number, total=len(companies),
                                           code=company.code, lines=company.lines))
        demo_package.create_ledger(ledger, company, seed=args.seed)
        portal.add_dossier(home.portal, Dossier(
            code=company.code, name=company.name, package="demo", source=str(ledger),
            email=company.email, language=company.language, nightly=company.nightly))
        result = sync_dossier(home, company.code, "full")
        if result.status != "succeeded":
            raise DossyncError(f"activation of demo dossier {company.code} failed: {result.error}")
        results.append(result)
    if args.json:
        _emit_json({"home": str(home.root), "dossiers": [r.to_json() for r in results]})
    else:
        print(_("demo firm with {n} dossiers in {home}").format(n=len(results), home=home.root))
        cmd_status(home, argparse.Namespace(json=False))
    return ExitCode.OK


def _validate_settings(args) -> dict:
    changes = {}
    if getattr(args, "name", None) is not None:
        problem = name_problem(args.name)
        if problem:
            raise UsageError(f"--name {args.name!r} {problem}")
        changes["name"] = args.name.strip()
    if getattr(args, "email", None) is not None:
        # the rule `--notify` applies when it writes the email (core/validate.py): an
        # address accepted here is one the client email can go to
        problem = address_problem(args.email) if args.email else None
        if problem:
            raise UsageError(f"--email {args.email!r} {problem}")
        changes["email"] = args.email or None
    if getattr(args, "language", None) is not None:
        changes["language"] = args.language
    if getattr(args, "nightly", None) is not None:
        changes["nightly"] = args.nightly
    if getattr(args, "source", None) is not None:
        source = Path(args.source).expanduser().resolve()
        if not source.is_file():
            raise UsageError(f"--source {source} does not exist or is not a file")
        changes["source"] = str(source)
    if getattr(args, "package", None) is not None:
        changes["package"] = args.package
    if getattr(args, "currency", None) is not None:
        currency = args.currency.strip().upper()
        if currency and not re.fullmatch(r"[A-Z]{3}", currency):
            raise UsageError(f"--currency {args.currency!r}: give an ISO 4217 code such as EUR, "
                             f"USD or GBP (or '' to let dossync read it from the book)")
        changes["currency"] = currency or None
    if getattr(args, "timezone", None) is not None:
        changes["timezone"] = _timezone(args.timezone)
    if getattr(args, "proposals_file", None) is not None:
        changes["proposals_file"] = args.proposals_file.strip() or None
    return changes


def _timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {name!r} is not a time zone: give an IANA name such as "
                         f"Europe/Brussels, Europe/Paris or UTC") from None
    return name


def _check_proposals_file(package: str, source: str, proposals_file: str | None) -> None:
    """A Beancount proposals file must lie in the ledger's folder: refused before anything
    changes (the writer's own rule, `proposals_path`)."""
    if package == "beancount" and proposals_file:
        from dossync.core.connectors.beancount_proposals import proposals_path
        from dossync.core.model import ConnectorSettings, TerminalError

        try:
            proposals_path(Path(source), ConnectorSettings(proposals_file=proposals_file))
        except TerminalError as exc:
            raise UsageError(f"--proposals-file: {exc}") from None


def cmd_dossier_add(home: Home, args) -> int:
    code = args.code.upper()
    problem = new_code_problem(code)
    if problem:  # the parser checked it (`_new_code`); a caller passing args directly
        raise UsageError(f"dossier code {args.code!r} {problem}")
    settings = _validate_settings(args)
    _check_proposals_file(settings["package"], settings["source"],
                          settings.get("proposals_file"))
    home.create()
    portal.add_dossier(home.portal, Dossier(
        code=code, name=settings.get("name") or code, package=settings["package"],
        source=settings["source"], email=settings.get("email"),
        language=settings.get("language") or "nl", nightly=bool(settings.get("nightly")),
        currency=settings.get("currency"),
        timezone=settings.get("timezone") or DEFAULT_TIMEZONE,
        proposals_file=settings.get("proposals_file")))
    with _ProgressBar(not args.json, _("activating {code}").format(code=code)) as bar:
        result = sync_dossier(home, code, "full", RunContext(on_progress=bar))
    if result.status != "succeeded":
        portal.remove_dossier(home.portal, code)
        raise DossyncError(f"dossier {code} not added: its activation failed: {result.error}")
    if args.json:
        _emit_json(result.to_json())
    else:
        print(_("dossier {code} added and activated").format(code=code))
        _print_sync(result)
    return ExitCode.OK


def cmd_dossier_set(home: Home, args) -> int:
    home.require()
    code = args.code.upper()
    current = portal.require_dossier(home.portal, code)
    changes = _validate_settings(args)
    _check_proposals_file(changes.get("package", current.package),
                          changes.get("source", current.source),
                          changes.get("proposals_file", current.proposals_file))
    if not changes:
        raise UsageError("nothing to change: give at least one of --name, --email, --language, "
                         "--nightly/--no-nightly, --source, --package, --currency, --timezone, "
                         "--proposals-file")
    portal.update_dossier(home.portal, code, **changes)
    dossier = portal.get_dossier(home.portal, code)
    if args.json:
        _emit_json(_dossier_json(dossier))
    else:
        print(_("dossier {code} updated: {changes}").format(
            code=code, changes=", ".join(f"{k}={v}" for k, v in changes.items())))
    return ExitCode.OK


def _dossier_json(d: Dossier) -> dict:
    return {"code": d.code, "name": d.name, "package": d.package, "source": d.source,
            "email": d.email, "language": d.language, "nightly": d.nightly,
            "updated_until": d.updated_until, "active_period": d.active_period,
            "pending_proposals": d.pending_proposals, "currency": d.currency,
            "book_currency": d.book_currency, "timezone": d.timezone,
            "proposals_file": d.proposals_file, "connector_version": d.connector_version}


def cmd_dossier_list(home: Home, args) -> int:
    home.require()
    dossiers = [_dossier_json(d) for d in portal.list_dossiers(home.portal)]
    if args.json:
        _emit_json(dossiers)
    else:
        _table(dossiers, ["code", "name", "package", "language", "email", "nightly", "source"])
    return ExitCode.OK


def cmd_dossier_show(home: Home, args) -> int:
    home.require()
    code = args.code.upper()
    dossier = portal.require_dossier(home.portal, code)
    doc = {**_dossier_json(dossier), "runs": portal.runs(home.portal, code, limit=args.runs),
           "quarantine": portal.quarantined(home.portal, code)}
    if args.json:
        _emit_json(doc)
        return ExitCode.OK
    print(json.dumps(_dossier_json(dossier), indent=2, ensure_ascii=False))
    _table(doc["runs"], ["run_id", "kind", "status", "finished_at", "read", "inserted", "updated",
                         "deleted", "quarantined", "error"], title=_("sync history"))
    if doc["quarantine"]:
        _table(doc["quarantine"], ["stream", "key", "reason", "detail"],
               title=_("quarantined rows"))
    return ExitCode.OK


def cmd_status(home: Home, args) -> int:
    home.require()
    rows = monitor_rows(home, now=window.current_time())
    if args.json:
        _emit_json([{k: v for k, v in r.items() if k != "reason"} for r in rows])
    else:
        flat = [{**r, "last_sync": _("{kind} {status} {at}").format(
                     kind=_word(r["last_sync"]["kind"]), status=_word(r["last_sync"]["status"]),
                     at=i18n.date_text(r["last_sync"]["finished_at"]))
                 if r["last_sync"] else "never",
                 "nightly": "on" if r["nightly"] else "off",
                 "idle": "-" if r["idle_days"] is None else r["idle_days"]} for r in rows]
        _table(flat, ["code", "name", "package", "updated_until", "active_period",
                      "pending_proposals", "state", "quarantined", "nightly", "last_sync", "idle"],
               title=_("active clients monitor"))
    return ExitCode.OK


def cmd_sync(home: Home, args) -> int:
    home.require()
    kind = "full" if args.full else "repair" if args.repair else "simple"
    code = args.code.upper()
    options = ManualOptions(until=args.until, reset_counter=args.reset_counter,
                            notify=args.notify, new_period=args.new_period)
    if args.notify:
        _check_client_email(home, code)
    if args.now and kind != "full":
        raise UsageError("--now goes with --full (a full sync outside the quiet window); "
                         "simple syncs and repairs never wait")
    if args.queue:
        return _queue_sync(home, code, kind, options, args)
    if kind == "full" and not args.now and window.waits_until(home, kind, window.current_time()):
        return _queue_sync(home, code, kind, options, args)  # scheduled for the quiet window
    if kind == "full" and not args.json:
        print(_("full sync of {code}: the whole ledger is read again (load on the office "
                "server)").format(code=code), file=sys.stderr)
    cancel = threading.Event()
    # SIGTERM (the UI's cancel, systemd's stop) cancels between batches: nothing changes
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    with _ProgressBar(not args.json,
                      _("{kind} sync {code}").format(kind=_word(kind), code=code)) as bar:
        # a whole-ledger read obeys [full_sync] max_rows_per_second (the engine reads it)
        # a simple sync of a long-idle dossier is checked first ([sync] idle_days, core/idle.py)
        result = idle.sync(home, code, kind, RunContext(on_progress=bar, cancel_requested=cancel),
                           options=options, now=window.current_time())
    if args.json:
        _emit_json(result.to_json())
    else:
        _print_sync(result)
        if result.status == "succeeded" and options.any():
            print("  " + _("updated until {until}, active period {period}, pending proposals "
                           "{pending}, email {email}").format(
                until=i18n.date_text(result.updated_until) or "-", period=result.active_period or "-",
                pending=result.pending_proposals, email=_word(result.email)))
    return _sync_exit(result)


def _queue_sync(home: Home, code: str, kind: str, options: ManualOptions, args) -> int:
    """sync --queue: the job, at once; a worker runs it (dossync worker). A full sync
    outside the quiet window waits for it (`scheduled_for`); without --queue it answers
    `status: "scheduled"` (core/window.py)."""
    if options.new_period and not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", options.new_period):
        raise UsageError(f"--new-period {options.new_period!r}: use YYYY-MM; nothing was queued")
    job, at = window.queue_sync(home, code, kind, options, now=window.current_time(),
                                at_once=args.now)
    doc = {"job": job.job, "dossier": job.dossier, "kind": job.kind, "status": job.status}
    if at is not None:
        doc.update(status=job.status if args.queue else "scheduled",
                   scheduled_for=at.isoformat(timespec="seconds"))
    if args.json:
        _emit_json(doc)
    elif at is not None:
        print(window.describe(home, job, at))
    else:
        print(_("queued job {job}: {kind} sync of {dossier} ('dossync worker' runs it, "
                "'dossync jobs' shows it)").format(job=job.job, kind=_word(job.kind),
                                                    dossier=job.dossier))
    return ExitCode.OK


def cmd_worker(home: Home, args) -> int:
    home.require()

    def finished(job: portal.Job) -> None:
        if not args.json:
            line = (_("job {job}: {kind} sync of {dossier} succeeded")
                    if job.status == "succeeded"
                    else _("job {job}: {kind} sync of {dossier} FAILED"))
            print(line.format(job=job.job, kind=_word(job.kind), dossier=job.dossier)
                  + (" " + _("(run {run})").format(run=job.run_id) if job.run_id else "")
                  + (f": {job.error}" if job.error else ""), flush=True)

    result = run_worker(home, concurrency=args.concurrency, lease=float(args.lease),
                        until_idle=args.until_idle, on_finished=finished,
                        clock=window.current_time)
    if args.json:
        _emit_json(result.to_json())
    else:
        print(_("worker {worker}: {n} job(s) run, {succeeded} succeeded, {failed} failed").format(
            worker=result.worker, n=len(result.jobs), succeeded=result.succeeded,
            failed=result.failed)
              + ("; " + _("stopped by {signal}").format(signal=result.stopped)
                 if result.stopped else ""))
    return ExitCode.OK


def cmd_jobs(home: Home, args) -> int:
    home.require()
    if args.action == "cancel":
        if not args.job:
            raise UsageError("jobs cancel needs the job's id: dossync jobs cancel JOB "
                             "('dossync jobs' lists them)")
        job = portal.cancel_job(home.portal, args.job)
        if args.json:
            _emit_json(job.to_json())
        else:
            line = (_("job {job} ({kind} sync of {dossier}) cancelled")
                    if job.status == "cancelled" else
                    _("job {job} ({kind} sync of {dossier}) is running: {error}; 'dossync jobs' "
                      "shows it cancelled once stopped"))
            print(line.format(job=job.job, kind=_word(job.kind), dossier=job.dossier,
                              error=job.error))
        return ExitCode.OK
    jobs = [j.to_json() for j in portal.list_jobs(home.portal)]
    if args.json:
        _emit_json(jobs)
    else:
        _table([{**j, "queued_at": (j["queued_at"] or "").replace("T", " "),
                 "finished_at": (j["finished_at"] or "").replace("T", " ")} for j in jobs],
               ["job", "dossier", "kind", "status", "attempts", "queued_at", "finished_at",
                "error"], title=_("job queue, newest first"))
    return ExitCode.OK


def cmd_upgrade_plan(home: Home, args) -> int:
    """The dossiers whose connector now brings data they lack (core/upgrades.py), what
    reloading each costs, and with --queue a full sync job for each."""
    home.require()
    plan = upgrades.plan(home)
    jobs = upgrades.queue(home, plan) if args.queue and plan else []
    docs = [r.to_json() for r in plan]
    for doc, job in zip(docs, jobs):
        doc["job"] = job.job
    if args.json:
        _emit_json(docs)
        return ExitCode.OK
    if not plan:
        print(_("no dossier lacks data its connector brings now: nothing to reload"))
        return ExitCode.OK
    _table(docs, ["dossier", "package", "from_version", "to_version", "expected_rows",
                  "expected_seconds", "new"], title=_("dossiers to reload (full sync)"))
    print(_("{n} dossier(s), about {rows} rows and {seconds} s in all: the rows of each one's "
            "last full load (or what the portal holds now, if more) at the rate that load ran, "
            "within [full_sync] max_rows_per_second").format(
        n=len(plan), rows=sum(r.expected_rows for r in plan),
        seconds=sum(r.expected_seconds for r in plan)))
    guessed = [r.dossier for r in plan if not r.measured]
    if guessed:
        print(_("no full load of {codes} was measured: estimated at {rate} rows/s").format(
            codes=", ".join(guessed), rate=upgrades.DOCUMENTED_ROWS_PER_SECOND))
    for job in jobs:
        print(_("queued job {job}: full sync of {dossier}").format(job=job.job,
                                                                   dossier=job.dossier))
    if jobs:
        print(_("'dossync worker' runs them (full syncs wait for [full_sync] window where one "
                "is set); 'dossync jobs' shows them"))
    else:
        print(_("queue them for 'dossync worker' with: dossync upgrade-plan --queue; or one "
                "by one: dossync sync CODE --full"))
    return ExitCode.OK


def _check_client_email(home: Home, code: str) -> None:
    """--notify: refuse, before anything is synced, a client email that cannot be written
    from what the portal holds (an address or a name that came in before it was checked)."""
    from dossync.core import notify

    dossier = portal.get_dossier(home.portal, code)
    if dossier is None or not dossier.email:
        return  # the sync names it unknown, or says there is no address, in its own words
    problem = address_problem(dossier.email)
    if problem:
        raise UsageError(f"dossier {code}: its client email {dossier.email!r} {problem}; set a "
                         f"valid one with 'dossync dossier set {code} --email ADDRESS'; "
                         f"nothing was synced")
    try:  # a refusal of notify's own (a bad sender in dossync.toml) passes as it is
        notify.compose(dossier, date.today().isoformat(), notify.sender_of(home))
    except (ValueError, TypeError, LookupError) as exc:  # email's header rules
        raise UsageError(f"dossier {code}: the client email cannot be written with the name "
                         f"{dossier.name!r} ({exc}); correct it with 'dossync dossier set {code} "
                         f"--name NAME'; nothing was synced") from exc


def cmd_propose(home: Home, args) -> int:
    from dossync.core.worklist import propose

    code = args.code.upper()
    proposals, counter, delivery = propose(home, code, args.count)
    waiting = delivery.message(code)
    if args.json:
        _emit_json({"proposals": [p.to_json() for p in proposals], "pending_proposals": counter,
                    "delivered": list(delivery.sent), "queued": delivery.waiting,
                    "warnings": [waiting] if waiting else []})
    else:
        for p in proposals:
            print(f"{p.ref}  {p.journal}  {p.date}  {money.to_str(p.amount):>10}"
                  + (f"  ({p.note})" if p.note else ""))
        print(_("{n} proposal(s) sent to {code}; pending proposals: {pending}").format(
            n=len(proposals), code=code, pending=counter))
        if waiting:
            print("  " + _("warning: {text}").format(text=waiting), file=sys.stderr)
    return ExitCode.OK


def cmd_outbox(home: Home, args) -> int:
    from dossync.core import notify

    home.require()
    tried = notify.flush(home) if args.flush else []
    entries = portal.outbox(home.portal)
    if args.json:
        _emit_json({"emails": entries, "flushed": [
            {"id": t["id"], "dossier": t["dossier"], "status": t["status"],
             "error": t["last_error"]} for t in tried]})
    else:
        if args.flush:
            sent = sum(1 for t in tried if t["status"] == "sent")
            print(_("flushed the outbox: {sent} sent, {waiting} still waiting").format(
                sent=sent, waiting=len(tried) - sent))
        _table(entries, ["id", "dossier", "recipient", "subject", "status", "attempts",
                         "created_at", "sent_at", "last_error"], title=_("client emails"))
    # a delivery that failed again is worth a non-zero exit for cron
    return ExitCode.FAILED if any(t["status"] == "failed" for t in tried) else ExitCode.OK


def cmd_nightly(home: Home, args) -> int:
    from dossync.core.nightly import run_nightly

    home.require()
    if args.queue:
        return _queue_nightly(home, args)
    settings = home.settings().nightly
    jobs = args.jobs or settings.jobs
    verify = args.verify or settings.verify
    result = run_nightly(home, jobs=jobs, verify=verify, now=window.current_time())
    if args.json:
        _emit_json(result.to_json())
    else:
        for run in result.runs:
            _print_sync(run)
        for skip in result.skipped:
            print(_("{dossier} skipped: {reason}").format(dossier=skip["dossier"],
                                                           reason=skip["reason"]))
        for job in result.scheduled:
            print(_("job {job}: scheduled full sync of {dossier} {status}").format(
                job=job.job, dossier=job.dossier, status=_word(job.status))
                  + (f": {job.error}" if job.error else ""))
        for check in result.verified:
            outcome = (_("repaired, now in sync") if check.repaired
                       else _("needs a full sync (action required)") if check.action_required
                       else _("verify failed: {error}").format(error=check.error) if check.error
                       else check.verdict)
            print(_("{dossier} verified: {outcome}").format(dossier=check.dossier,
                                                             outcome=outcome)
                  + (f" - {check.reasons[0]}" if check.action_required and check.reasons else ""))
        print(_("nightly: {succeeded} succeeded, {failed} failed, {skipped} skipped").format(
            succeeded=result.succeeded, failed=result.failed, skipped=len(result.skipped)))
    return result.exit_code


def _queue_nightly(home: Home, args) -> int:
    """nightly --queue: one simple-sync job per nightly dossier; workers run them."""
    from dossync.core.nightly import queue_nightly

    if args.verify:
        raise UsageError("--verify does not go with --queue: queued jobs are syncs only; run "
                         "'dossync nightly --verify' itself, or leave --verify out")
    jobs = queue_nightly(home)
    if args.json:
        _emit_json({"jobs": [j.to_json() for j in jobs]})
    else:
        for job in jobs:
            print(_("queued job {job}: {kind} sync of {dossier}").format(
                job=job.job, kind=_word(job.kind), dossier=job.dossier))
        print(_("nightly: {n} job(s) queued ('dossync worker' runs them)").format(n=len(jobs)))
    return ExitCode.OK


def _reconcile_text(result) -> None:
    print(f"{result.dossier}: {result.verdict}")
    for reason in result.reasons:
        print(f"  - {reason}")
    if result.segments:
        print("  " + _("periods to reload: {periods}").format(periods=", ".join(
            _("{period} (fiscal year {year})").format(period=s["period"], year=s["fiscal_year"])
            for s in result.segments)))
    if result.differences:
        shown = RECONCILE_TABLE_ROWS
        rows = [{**d, "explained_by": d["explained_by"] or _("UNEXPLAINED")}
                for d in result.differences[:shown]]
        _table(rows, ["fiscal_year", "period", "journal", "account", "ledger_count",
                      "portal_count", "ledger_amount", "portal_amount", "explained_by"],
               title=_("{dossier}: segments that differ").format(dossier=result.dossier))
        if len(result.differences) > shown:
            print("  " + _("... and {n} more (--json lists them all)").format(
                n=len(result.differences) - shown))


RECONCILE_TABLE_ROWS = 40


def cmd_reconcile(home: Home, args) -> int:
    from dossync.core.reconcile import reconcile, render_html

    home.require()
    if args.all and args.code:
        raise UsageError("give a dossier CODE or --all, not both")
    if not args.all and not args.code:
        raise UsageError("give a dossier CODE, or --all for every dossier")
    if args.all and args.html:
        raise UsageError("--html renders the notebook of one dossier: give its CODE, not --all")
    if not args.all:
        result = reconcile(home, args.code.upper())
        if args.html:
            out = render_html(home, result.dossier, Path(args.html))
            _info(args, _("reconciliation notebook for {dossier} written to {path}").format(
                dossier=result.dossier, path=out))
        if args.json:
            _emit_json(result.to_json())
        else:
            _reconcile_text(result)
        return ExitCode.OK if result.verdict == "in_sync" else ExitCode.DIFFERENCES
    docs, failed, differ = [], 0, 0
    for dossier in portal.list_dossiers(home.portal):
        try:
            result = reconcile(home, dossier.code)
        except DossyncError as exc:  # one unreachable package must not hide the others
            failed += 1
            docs.append({"dossier": dossier.code, "verdict": None, "reasons": [str(exc)],
                         "differences": [], "segments": [], "error": str(exc)})
            if not args.json:
                print(_("{dossier}: FAILED: {error}").format(dossier=dossier.code, error=exc),
                      file=sys.stderr)
            continue
        differ += result.verdict != "in_sync"
        docs.append({**result.to_json(), "error": None})
        if not args.json:
            _reconcile_text(result)
            print()
    if args.json:
        _emit_json(docs)
    else:
        print(_("reconcile: {in_sync} in sync, {differ} with differences, {failed} "
                "failed").format(in_sync=len(docs) - failed - differ, differ=differ,
                                 failed=failed))
    return ExitCode.PARTIAL if failed else ExitCode.DIFFERENCES if differ else ExitCode.OK


def cmd_scheduler(home: Home, args) -> int:
    from dossync.core.scheduler import serve

    return serve(home)


def cmd_report(home: Home, args) -> int:
    home.require()
    code = args.code.upper()
    portal.require_dossier(home.portal, code)
    if args.period and not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", args.period):
        raise UsageError(f"--period {args.period!r}: use YYYY-MM")
    if args.report == "dashboard" and args.period:  # the other reports check it themselves
        reports.check_period(home.portal, code, args.period)  # a period it lacks: named so
        raise UsageError(f"--period {args.period}: the dashboard always shows the current fiscal "
                         f"year; for figures up to a period use 'dossync report {code} pnl "
                         f"--period {args.period}' or trial-balance")
    if args.report == "trial-balance":
        doc = reports.trial_balance(home.portal, code, args.period, args.validated_only)
        if not args.json:
            columns = ["account", "name", "class", "debit", "credit", "balance"]
            if any(row["commodity"] for row in doc):  # lines in other commodities: say which
                columns.insert(3, "commodity")
            _table(doc, columns, title=_("{code} trial balance").format(code=code))
    elif args.report == "pnl":
        doc = reports.pnl(home.portal, code, args.period, args.validated_only)
        if not args.json:
            _table(doc["accounts"], ["account", "name", "amount"],
                   title=_("{code} profit and loss {year}").format(code=code,
                                                                   year=doc["fiscal_year"]))
            print(_("revenue {revenue}  costs {costs}  result {result}").format(
                revenue=i18n.amount(doc["revenue"]), costs=i18n.amount(doc["costs"]),
                result=i18n.amount(doc["result"])))
    elif args.report == "dashboard":
        doc = reports.dashboard(home.portal, code, args.validated_only)
        if not args.json:
            for key, label in _DASHBOARD:
                value = doc[key]
                shown = ("-" if value is None else i18n.amount(value) if key in _DASHBOARD_MONEY
                         else _cell(key, value))
                print(f"{_(label):<22} {shown:>16}")
    else:
        doc = reports.archive(home.portal, code, args.period, args.validated_only)
        if not args.json:
            _table(doc, ["ref", "journal", "date", "due_date", "relation", "amount",
                         "booking_status", "payment_status"],
                   title=_("{code} archive").format(code=code))
    if args.json:
        _emit_json(doc)
    return ExitCode.OK


_DASHBOARD = [
    ("updated_until", N_("updated until")), ("active_period", N_("active period")),
    ("fiscal_year", N_("fiscal year")), ("currency", N_("currency")),
    ("revenue", N_("revenue")), ("costs", N_("costs")), ("result", N_("result")),
    ("bank", N_("bank")), ("receivables", N_("receivables")), ("payables", N_("payables")),
    ("vat_position", N_("VAT position"))]
_DASHBOARD_MONEY = {"revenue", "costs", "result", "bank", "receivables", "payables",
                    "vat_position"}


def cmd_ledger(home: Home, args) -> int:
    from dossync.core import demo_package

    home.require()
    code = args.code.upper()
    dossier = portal.require_dossier(home.portal, code)
    if dossier.package != "demo":
        raise UsageError(f"dossier {code} keeps its books in {dossier.package}: ledger events "
                         f"simulate the demo package only")
    if args.event not in demo_package.LEDGER_EVENTS:
        raise UsageError(f"unknown ledger event {args.event!r}; one of: "
                         + ", ".join(demo_package.LEDGER_EVENTS))
    if demo_package.LEDGER_EVENTS[args.event].takes_count and len(args.args) == 1:
        # the package's own checks take N from 1 up (and answer exit 1, as here); the top is ours
        try:
            _whole(args.args[0], MAX_LEDGER_EVENT_N, "documents")
        except argparse.ArgumentTypeError as exc:
            raise DossyncError(f"{code}: '{args.event}' N: {exc}") from None
    try:
        extra = ["--change-first"] if args.change_first else []
        message = demo_package.apply_event(Path(dossier.source), args.event, args.args + extra)
    except demo_package.LedgerEventError as exc:
        raise DossyncError(f"{code}: {exc}") from exc
    if args.json:
        _emit_json({"dossier": code, "event": args.event, "message": message})
    else:
        print(f"{code}: {message}")
    return ExitCode.OK


def cmd_tui(home: Home, args) -> int:
    home.require()
    # core/ has no dependency on the UI: `dossync tui` hands over to the tui
    # package by name, at run time, the way a plugin would be loaded.
    try:
        app = importlib.import_module("dossync.tui.app")
    except ModuleNotFoundError as exc:
        raise UsageError(f"the terminal UI is not part of this version yet ({exc}); "
                         f"use 'dossync status' for the monitor") from exc
    return app.run(home)


# --- parser -------------------------------------------------------------------------
def _info(args, message: str) -> None:
    if not getattr(args, "json", False):
        print(message, file=sys.stderr)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dossync", formatter_class=_Formatter,
        description="Keep the client portal in step with the accounting packages.",
        epilog=EXIT_CODES_HELP + "\n\nexamples:\n  dossync demo\n  dossync status\n"
               "  dossync sync PEETERS\n  dossync report PEETERS trial-balance --json")
    parser.add_argument("--home", help="the firm's home (portal, ledgers, logs, outbox); "
                                       "default $DOSSYNC_HOME or ./data")
    parser.add_argument("--portal", metavar="URL",
                        help="the portal on a PostgreSQL server (postgresql://USER@HOST:PORT/DB; "
                             "password from PGPASSWORD or ~/.pgpass); default $DOSSYNC_PORTAL, "
                             "else [portal] url in dossync.toml, else HOME/portal.duckdb")
    parser.add_argument("--lang", choices=list(i18n.LANGUAGES),
                        help="the language of what is written for people (JSON stays the "
                             "same): default $DOSSYNC_LANG, else [ui] language in dossync.toml, "
                             "else the locale, else en")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable, help: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=_Formatter,
                           epilog=f"example:\n  {example}\n\n{EXIT_CODES_HELP}")
        p.set_defaults(handler=handler)
        return p

    p = command("demo", cmd_demo, "create a demo firm: ledgers in the demo package, all activated",
                "dossync --home /tmp/firm demo --dossiers 4 --lines 50000")
    p.add_argument("--dossiers", type=_count(MAX_DEMO_DOSSIERS, "dossiers"), default=8,
                   help=f"number of dossiers (default 8, at most {MAX_DEMO_DOSSIERS})")
    p.add_argument("--lines", type=_count(MAX_DEMO_LINES, "booking lines"), default=20_000,
                   help=f"booking lines of the largest dossier (default 20000, "
                        f"at most {MAX_DEMO_LINES})")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same firm)")
    p.add_argument("--force", action="store_true", help="replace an existing home's portal and ledgers")
    p.add_argument("--json", action="store_true", help="print the activation runs as JSON")

    p = command("tui", cmd_tui, "the support engineer's terminal UI", "dossync tui")

    dossier = sub.add_parser("dossier", help="register and configure dossiers",
                             description="register and configure dossiers")
    dsub = dossier.add_subparsers(dest="dossier_command", metavar="ACTION", required=True)

    def settings(p: argparse.ArgumentParser, adding: bool) -> None:
        p.add_argument("code", metavar="CODE", type=_new_code if adding else _code,
                       help="the dossier's code, e.g. PEETERS"
                            + (f" ({CODE_RULE})" if adding else ""))
        p.add_argument("--package", choices=PACKAGES, required=adding, help="accounting package")
        p.add_argument("--source", required=adding, help="the package's ledger file")
        p.add_argument("--name", help="company name")
        p.add_argument("--email", help="the client entrepreneur's email address")
        p.add_argument("--language", choices=LANGUAGES, help="language of client emails")
        p.add_argument("--nightly", dest="nightly", action="store_true", default=None,
                       help="sync every night (simple sync, headless)")
        p.add_argument("--no-nightly", dest="nightly", action="store_false")
        p.add_argument("--currency", metavar="ISO",
                       help="GnuCash: the book currency (overrides what the book says; must "
                            "be one of its commodities; default: its root account's, else "
                            "its transactions' or accounts' currency; '' clears it)")
        p.add_argument("--timezone", metavar="ZONE",
                       help="GnuCash: the time zone its dates are read in, as GnuCash shows "
                            "them (default Europe/Brussels)")
        p.add_argument("--proposals-file", metavar="PATH",
                       help="Beancount: the include file that receives booking proposals "
                            "(relative to the ledger's folder; default proposals.beancount, "
                            "created and included when missing)")
        p.add_argument("--json", action="store_true", help="print JSON")

    p = dsub.add_parser("add", help="register a dossier and activate it (full sync)",
                        formatter_class=_Formatter,
                        epilog="examples:\n  dossync dossier add ACME --package demo "
                               "--source ledgers/acme.sqlite --email boss@acme.example --nightly\n"
                               "  dossync dossier add BOOKS --package gnucash --source books.gnucash "
                               "--currency EUR --timezone Europe/Brussels\n"
                               "  dossync dossier add PLAIN --package beancount --source main.beancount "
                               "--proposals-file proposals.beancount")
    settings(p, adding=True)
    p.set_defaults(handler=cmd_dossier_add)
    p = dsub.add_parser("set", help="change a dossier's settings", formatter_class=_Formatter,
                        epilog="example:\n  dossync dossier set ACME --language fr --no-nightly")
    settings(p, adding=False)
    p.set_defaults(handler=cmd_dossier_set)
    p = dsub.add_parser("list", help="list the dossiers", epilog="example:\n  dossync dossier list --json",
                        formatter_class=_Formatter)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_dossier_list)
    p = dsub.add_parser("show", help="a dossier's settings, sync history and quarantined rows",
                        epilog="example:\n  dossync dossier show ACME", formatter_class=_Formatter)
    p.add_argument("code", metavar="CODE", type=_code)
    p.add_argument("--runs", type=_count(MAX_RUNS, "runs"), default=10,
                   help=f"how many runs to show (default 10, at most {MAX_RUNS})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_dossier_show)

    p = command("status", cmd_status, "the active clients monitor", "dossync status --json")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("sync", cmd_sync, "sync a dossier: simple (changes since the last sync) or --full",
                "dossync sync ACME        # simple\n  dossync sync ACME --full # reload everything"
                "\n  dossync sync ACME --full --now  # at once, also outside [full_sync] window"
                "\n\nOutside [full_sync] window a full sync is not run but scheduled for the "
                "window's next\nstart (a job the nightly or 'dossync worker' runs then); --now "
                "runs it at once")
    p.add_argument("code", metavar="CODE", type=_code)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--full", action="store_true", help="reload the whole ledger (heavy)")
    kind.add_argument("--repair", action="store_true", help="reload only the segments reconcile flags")
    p.add_argument("--until", type=_iso_date, help="set the updated-until date (YYYY-MM-DD)")
    p.add_argument("--reset-counter", action="store_true", help="reset the blue counter to 0")
    p.add_argument("--notify", action="store_true", help="email the client that the books were updated")
    p.add_argument("--new-period", help="set the active booking period (YYYY-MM)")
    p.add_argument("--queue", action="store_true",
                   help="queue the sync (with its options) for 'dossync worker' and return at "
                        "once; JSON: {job, dossier, kind, status}")
    p.add_argument("--now", action="store_true",
                   help="with --full: run it at once, also outside [full_sync] window (there "
                        "a full sync is otherwise scheduled for the window; JSON: {job, "
                        "dossier, kind, status: scheduled, scheduled_for})")
    p.add_argument("--json", action="store_true", help="print the run as JSON")

    p = command("propose", cmd_propose, "send booking proposals from the worklist (automatic sync)",
                "dossync propose ACME --count 5 --json")
    p.add_argument("code", metavar="CODE", type=_code)
    p.add_argument("--count", type=_count(MAX_PROPOSALS, "proposals"), default=1,
                   help=f"number of proposals (default 1, at most {MAX_PROPOSALS})")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("nightly", cmd_nightly,
                "simple-sync every dossier with nightly on (never changes dates, never emails)",
                "dossync nightly --jobs 4 --json   # crontab: 0 2 * * * dossync --home /srv/firm nightly")
    p.add_argument("--jobs", type=_count(MAX_JOBS, "dossiers at a time"),
                   help=f"dossiers at a time (default [nightly] jobs, or 4; at most {MAX_JOBS})")
    p.add_argument("--verify", action="store_true", help="reconcile each dossier after its sync")
    p.add_argument("--queue", action="store_true",
                   help="queue one sync job per nightly dossier for 'dossync worker' instead of "
                        "running them; JSON: {jobs: [...]}")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("worker", cmd_worker,
                "run queued sync jobs (dossync sync CODE --queue, nightly --queue)",
                "dossync worker --concurrency 2            # a service: SIGTERM lets running jobs "
                "finish\n  dossync worker --until-idle --json        # run what is queued, then "
                "exit\n\n"
                "Claims the oldest queued job and runs it as 'dossync sync' in a child process;\n"
                "never two jobs of one dossier at once. A job whose dossier is busy goes back\n"
                "in the queue and waits (it never fails for that). The worker extends its lease\n"
                "on a running job every third of --lease; a job whose worker died is run again\n"
                "once its lease ran out. On the DuckDB portal all workers run on one machine.\n"
                "SIGTERM or Ctrl-C: claim nothing new, let the running jobs finish, exit 0; a\n"
                "second one cancels the running syncs (they change nothing; their jobs wait).\n"
                "Failed jobs are listed by 'dossync jobs'; the worker itself exits 0")
    p.add_argument("--concurrency", metavar="N", type=_count(MAX_JOBS, "jobs at a time"),
                   default=1,
                   help=f"jobs at a time (default 1, at most {MAX_JOBS})")
    p.add_argument("--lease", metavar="SECONDS", type=_count(MAX_LEASE, "seconds"),
                   default=int(DEFAULT_LEASE),
                   help=f"seconds a running job stays this worker's without a heartbeat "
                        f"(default {int(DEFAULT_LEASE)}); a job of a worker that died is "
                        f"claimable again after it")
    p.add_argument("--until-idle", action="store_true",
                   help="exit 0 once no job is queued or running (a full sync scheduled "
                        "for a later quiet window does not count)")
    p.add_argument("--json", action="store_true",
                   help="print a summary as JSON: {worker, jobs, run, succeeded, failed, stopped}")

    p = command("jobs", cmd_jobs,
                "the job queue: list the jobs, or cancel one (a running one is stopped)",
                "dossync jobs --json\n  dossync jobs cancel J20250101020000-1a2b3c\n\n"
                "JSON: a list of {job, dossier, kind, status, attempts, worker, run_id, queued_at,\n"
                "started_at, finished_at, error}, newest first; status queued, running,\n"
                "succeeded, failed or cancelled. 'cancel' cancels a queued job (or one whose\n"
                "worker died) at once; a running job is asked to stop: its worker, on any\n"
                "machine, stops the sync within seconds (it changes nothing) and records it\n"
                "cancelled. An ended job is refused (exit 2)")
    p.add_argument("action", nargs="?", choices=["cancel"], help="cancel JOB")
    p.add_argument("job", nargs="?", metavar="JOB", help="the job to cancel")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("upgrade-plan", cmd_upgrade_plan,
                "dossiers whose connector now brings data they lack: reload them (full sync)",
                "dossync upgrade-plan --json\n  dossync upgrade-plan --queue   # a full sync job "
                "each, for 'dossync worker'\n\n"
                "After an upgrade of dossync a connector may bring data that dossiers loaded by\n"
                "its earlier versions lack (0.4.0: account classes and exact amounts); only a\n"
                "full sync reads it. The monitor shows them action_required (full_sync_advised\n"
                "in 'status --json'). Expected time: the rows of each dossier's last full load\n"
                "at the rate that load ran (else %d rows/s), within [full_sync]\n"
                "max_rows_per_second. JSON: a list of {dossier, package, from_version,\n"
                "to_version, new, expected_rows, expected_seconds} (and job, with --queue)"
                % upgrades.DOCUMENTED_ROWS_PER_SECOND)
    p.add_argument("--queue", action="store_true",
                   help="queue a full sync job for each dossier listed ('dossync worker' runs "
                        "them; full syncs wait for [full_sync] window where one is set)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("scheduler", cmd_scheduler,
                "foreground service: runs the nightly at [nightly] time in dossync.toml",
                "dossync --home /srv/firm scheduler   # SIGTERM: finish running commits, exit 0")

    p = command("reconcile", cmd_reconcile,
                "ledger figures against portal figures: is a (full) sync justified?",
                "dossync reconcile ACME            # verdict, reasons, differing segments\n"
                "  dossync reconcile ACME --json --html acme.html\n"
                "  dossync reconcile --all --json    # every dossier\n\n"
                "verdicts: in_sync, simple_sync (pending changes: 'dossync sync CODE' fixes them),\n"
                "full_sync (edits the ledger did not report: 'dossync sync CODE --repair' or --full).\n"
                "exit 0 when in sync, 5 otherwise; 1 when the package cannot be read; with --all,\n"
                "4 if any dossier could not be reconciled (it is listed with its error), else 5\n"
                "if any differs")
    p.add_argument("code", metavar="CODE", nargs="?", type=_code, help="the dossier (or --all)")
    p.add_argument("--all", action="store_true", help="every dossier; JSON: a list of documents")
    p.add_argument("--html", metavar="FILE",
                   help="also render the reconciliation notebook for the dossier to FILE")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("outbox", cmd_outbox, "the client emails: queued, sent, failed",
                "dossync outbox --flush")
    p.add_argument("--flush", action="store_true", help="retry delivering queued and failed emails")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("report", cmd_report, "what the client sees in the portal",
                "dossync report ACME trial-balance --period 2025-12 --json")
    p.add_argument("code", metavar="CODE", type=_code)
    p.add_argument("report", choices=reports.REPORTS)
    p.add_argument("--period", help="up to the end of this period (YYYY-MM)")
    p.add_argument("--validated-only", action="store_true", help="leave provisional bookings out")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("ledger", cmd_ledger, "simulate an accountant's work in a demo package ledger",
                "dossync ledger ACME new-bookings 25\n\nevents:\n" + "\n".join(
                    f"  {name:<24}{event.summary}" for name, event in LEDGER_EVENTS.items()))
    p.add_argument("code", metavar="CODE", type=_code)
    p.add_argument("event", metavar="EVENT")
    p.add_argument("args", nargs="*", metavar="ARGS",
                   help=f"the event's arguments (N: from 1 to {MAX_LEDGER_EVENT_N})")
    p.add_argument("--change-first", action="store_true",
                   help="validate-proposals: the accountant corrects the first proposal")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


# Upper limits on counts: each is far beyond real use and still finishes in minutes
# (a count of 10**20 would otherwise run until memory or patience ran out).
MAX_DEMO_DOSSIERS = 1_000
MAX_DEMO_LINES = 5_000_000
MAX_RUNS = 10_000
MAX_PROPOSALS = 1_000
MAX_LEDGER_EVENT_N = 10_000
MAX_LEASE = 86_400


def _count(maximum: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to `maximum`."""
    def count(text: str) -> int:
        return _whole(text, maximum, what)
    count.__name__ = "count"  # argparse names the type in some messages
    return count


def _whole(text: str, maximum: int, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    if value > maximum:
        shown = text.strip() if len(text.strip()) <= 30 else text.strip()[:27] + "..."
        raise argparse.ArgumentTypeError(f"{shown} is more than {maximum} {what}, the most one "
                                         f"command takes; give at most {maximum}")
    return value


def _code(text: str) -> str:
    """An argparse type: a dossier code to look up (never a path), upper-cased."""
    problem = code_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} {problem}; 'dossync dossier list' "
                                         f"shows them")
    return text.upper()


def _new_code(text: str) -> str:
    """An argparse type: the code of a new dossier (`dossier add`), upper-cased."""
    problem = new_code_problem(text.upper())
    if problem:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} {problem}")
    return text.upper()


class _ArgumentError(Exception):
    """argparse refused the command line (raised instead of exiting, so that main can answer
    with the one JSON document --json promises)."""

    def __init__(self, message: str, prog: str, usage: str) -> None:
        super().__init__(message)
        self.prog, self.usage = prog, usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and exit 2 itself
        raise _ArgumentError(message, self.prog, self.format_usage())


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None




def _log_file() -> Path | None:
    """The log file this command writes, if it can."""
    return logs.log_file()


def _setup_logging(home: Home, verbose: bool) -> None:
    logs.configure_logging(home, verbose=verbose)


def _wants_json(argv: list[str]) -> bool:
    """--json (or an abbreviation argparse would take) before any '--'."""
    for token in argv:
        if token == "--":
            return False
        if len(token) >= 4 and "--json".startswith(token):
            return True
    return False


def _message(exc: BaseException) -> str:
    """The error's words, and those of earlier failures it interrupted that it does not
    repeat: a failed run that could not be recorded still says why it failed."""
    text = str(exc) or type(exc).__name__
    earlier, depth = exc, 0
    while depth < 5:
        earlier = earlier.__cause__ or (None if earlier.__suppress_context__
                                        else earlier.__context__)
        if earlier is None:
            break
        depth += 1
        first = (str(earlier).strip().splitlines() or [type(earlier).__name__])[0]
        if first not in text:
            text += f" (while handling an earlier failure: {first})"
    return text


_DISK_FULL = ("No space left on device", "database or disk is full", "Disk quota exceeded")
_READ_ONLY = ("Read-only file system", "attempt to write a readonly database")


def _english(message: str) -> str:
    return message


def _environment_message(exc: BaseException,
                         tr: Callable[[str], str] = _english) -> str | None:
    """The machine said no (a full disk, a read-only HOME, permissions): what to do, or None.
    In English (the JSON's), or with `tr=_` in the language of the people reading stderr."""
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return where + tr(N_("{reason}: the disk is full; free some space there, then run "
                                 "the command again")).format(reason=reason)
        if exc.errno == errno.EROFS:
            return where + tr(N_("{reason}: run this command where HOME is writable (status, "
                                 "report, reconcile and dossier list only read, and work on a "
                                 "read-only HOME)")).format(reason=reason)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return where + tr(N_("{reason}: run dossync as the user that owns HOME, or fix the "
                                 "rights")).format(reason=reason)
        return f"{where}{reason}"
    text = str(exc)
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    if any(s in text for s in _DISK_FULL):
        return tr(N_("the disk is full ({error}); free some space there, then run the command "
                     "again")).format(error=first)
    if any(s in text for s in _READ_ONLY):
        return tr(N_("a file cannot be written ({error}); run this command where HOME and the "
                     "ledgers are writable")).format(error=first)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code. With --json, stdout gets exactly one JSON
    document whatever happens: the command's, or {"error", "exit", ...}."""
    global _OUTPUT
    argv = list(sys.argv[1:] if argv is None else argv)
    output, outer = _Output(_wants_json(argv)), _OUTPUT
    _OUTPUT = output
    portal_before, language_before = os.environ.get(PORTAL_ENV), i18n.current()
    try:
        return _main(argv, output)
    finally:
        _OUTPUT = outer
        i18n.activate(language_before)
        if portal_before is None:
            os.environ.pop(PORTAL_ENV, None)
        else:
            os.environ[PORTAL_ENV] = portal_before


def _set_language(option: str | None, home: Home) -> None:
    """Speak the language asked for (core/i18n.py) in what is written for people."""
    env = os.environ.get(i18n.LANG_ENV)
    if not option and env and i18n.problem(env):
        raise UsageError(f"{i18n.LANG_ENV}={env!r}: {i18n.problem(env)}")
    configured = ""
    if not option and not env:  # only then does dossync.toml have a say
        try:
            configured = home.settings().ui.language
        except UsageError:  # a bad dossync.toml: the commands that read it say so
            pass
    i18n.activate(i18n.resolve(option, configured))


def _portal_option(url: str | None) -> None:
    """`--portal URL`: handed on as DOSSYNC_PORTAL, so the processes this command starts
    (workers, detached syncs) use the same portal, and no command line shows a password.
    `main` puts the variable back as it was when the command is done."""
    if url is None:
        return
    problem = portal_url_problem(url)
    if problem:
        raise UsageError(f"--portal {redact_url(url)[:80]!r} {problem}")
    os.environ[PORTAL_ENV] = url


def _main(argv: list[str], output: _Output) -> int:
    args = None
    try:
        with output.capture():
            args = build_parser().parse_args(argv)
            output.json = bool(getattr(args, "json", False))
            _portal_option(args.portal)
            home = Home.resolve(args.home)
            _set_language(args.lang, home)
            _setup_logging(home, args.verbose)
            code = int(args.handler(home, args))
        output.done()
        return code
    except _ArgumentError as exc:  # argparse's usage error: exit 2, as argparse would
        print(exc.usage, end="", file=sys.stderr)
        print(f"{exc.prog}: error: {exc}", file=sys.stderr)
        return output.fail(f"{exc.prog}: {exc}", ExitCode.USAGE, usage=exc.usage.strip(),
                           stderr=False)
    except DossyncError as exc:
        if _message(exc) != str(exc):  # the earlier failure's whole story goes to the log
            log.info("%s failed", getattr(args, "command", "dossync"), exc_info=exc)
        return output.fail(_message(exc), exc.exit_code)
    except BrokenPipeError:  # `dossync ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return int(ExitCode.OK)
    except KeyboardInterrupt:  # JSON in English, stderr in the reader's language
        return output.fail(_INTERRUPTED, ExitCode.FAILED, said=_(_INTERRUPTED))
    except MemoryError:
        return output.fail(_OUT_OF_MEMORY, ExitCode.FAILED, said=_(_OUT_OF_MEMORY))
    except Exception as exc:
        known = _environment_message(exc)
        if known is not None:  # not a defect: the message says what to do
            log.info("%s failed", getattr(args, "command", "dossync"), exc_info=exc)
            return output.fail(_message_with(known, exc), ExitCode.FAILED,
                               said=_message_with(_environment_message(exc, _) or known, exc))
        # a defect: say so plainly, keep the traceback in the log
        log.exception("unexpected error in %s", getattr(args, "command", "dossync"))
        where = _log_file()
        error = f"{type(exc).__name__}: {_message(exc)}"

        def unexpected(tr: Callable[[str], str]) -> str:
            return (tr(_UNEXPECTED).format(error=error)
                    + ("; " + tr(_DETAILS).format(path=where) if where else ""))
        return output.fail(unexpected(_english), ExitCode.FAILED, said=unexpected(_))


# What main says when a command ends abnormally: in English in the JSON, translated on stderr.
_INTERRUPTED = N_("interrupted; a sync in progress changed nothing")
_OUT_OF_MEMORY = N_("out of memory: close other programs, or give smaller numbers (see the "
                    "command's --help)")
_UNEXPECTED = N_("unexpected error ({error})")
_DETAILS = N_("details in {path}")


def _message_with(text: str, exc: BaseException) -> str:
    """`text` (the explanation of `exc`) followed by the earlier failures `exc` interrupted."""
    whole, own = _message(exc), str(exc) or type(exc).__name__
    return text + whole[len(own):] if whole.startswith(own) else text


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
