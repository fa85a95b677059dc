"""The sync engine: simple (incremental) and full syncs of one dossier.

Both kinds run the same pipeline, so there is one path to get right:

1. take the dossier's lock (one sync per dossier, across processes);
2. read what the portal remembers (cursor, newest row versions) — short;
3. read the package, outside any portal lock: all streams (full) or the
   rows changed since the cursor minus a small lookback (simple), staged as
   Parquet files under HOME/staging — memory stays flat whatever the size;
4. validate the staged rows (Polars) and set bad ones aside with a reason;
5. commit everything in one portal transaction (`portal.apply_sync`).

A simple sync first checks that the ledger did not go back in time and
that its deletion log still reaches back to the last sync; if either
fails it changes nothing and says that a full sync is needed.

A repair runs the same pipeline on what `core.repair` plans to reload (the
bookings reconcile found different); the engine never consults reconcile
itself. What a package can do is asked of the connector's checked
`capabilities` (core.connectors.base), never probed.
"""
from __future__ import annotations

import logging
import re
import threading
import secrets
import shutil
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dossync.core import failpoints, money, portal
from dossync.core.connectors import connector_settings, open_connector
from dossync.core.connectors.base import Connector
from dossync.core.history import LOOKBACK, ledger_history_problem
from dossync.core.home import Home
from dossync.core.locks import dossier_lock
from dossync.core.progress import ProgressFile
from dossync.core.model import (DossyncError, ManualOptions, Progress, QuarantinedRow, RowCounts,
                                RunContext, SyncCancelled, SyncKind, SyncResult, UsageError)
from dossync.core.streams import BY_NAME, STREAMS

log = logging.getLogger(__name__)

# Arrow buffers go back to the system when freed (see core/__init__.py).
pa.set_memory_pool(pa.system_memory_pool())

CONTROL_CHARS = r"[\x00-\x1f\x7f]"


def new_run_id(code: str) -> str:
    return f"{datetime.now():%Y%m%dT%H%M%S}-{code}-{secrets.token_hex(2)}"


def _now() -> str:
    # milliseconds: runs of one dossier follow each other within a second
    return datetime.now().isoformat(timespec="milliseconds")


def sync_dossier(home: Home, code: str, kind: SyncKind = "simple",
                 ctx: RunContext | None = None,
                 options: ManualOptions | None = None, *,
                 known: portal.SyncState | None = None,
                 record: Callable[[SyncResult], None] | None = None,
                 notes: tuple[str, ...] = ()) -> SyncResult:
    """Run one sync of one dossier and return its result (also recorded in the portal).

    The manual options take effect only if the sync succeeds, in its own
    commit; the client email is delivered after that commit.
    Raises UsageError for an unknown dossier or refused options, and
    DossierBusy when another process holds the dossier; every other failure
    is a failed result.

    A batch (the nightly) may pass `known`, the dossier's state read with
    others in one look, and `record`, which collects runs that changed no
    data to write them in one commit. `known` may be a moment old: it only
    decides that nothing changed (a counter still at the cursor it saw);
    any real work reads the state afresh under the lock.

    `notes` open the run's warnings, recorded with it: what was done for this
    sync before it started (core/idle.py's check of a long-idle dossier).
    """
    ctx = ctx or RunContext()
    home.require()
    if ctx.max_rows_per_second is None:
        ctx = replace(ctx, max_rows_per_second=full_sync_rate(home))
    lock = dossier_lock(home, code).acquire(purpose=f"{kind} sync")
    try:
        # under the lock: nobody moves it now (a full sync needs no rewind probe)
        # a repair trusts reconcile's look at the ledger's history: no rewind probe
        state = known or portal.sync_state(home.portal, code,
                                           probe=0 if kind in ("full", "repair") else 20,
                                           codes=kind != "full", last_run=kind == "repair")
    except BaseException:
        lock.release()
        raise
    dossier = state.dossier
    if dossier is None:
        lock.release()
        lock.forget()
        raise portal.unknown_dossier(home.portal, code)
    progress_file = ProgressFile(home, code, kind, lock)
    ctx = replace(ctx, on_progress=_both(ctx.on_progress, progress_file),
                  cancel_requested=_either(ctx.cancel_requested, progress_file.cancelled))
    try:
        planned = plan_options(home, dossier, options) if options and options.any() else None
    except BaseException:
        progress_file.close()
        lock.release()
        raise
    run_id = new_run_id(code)
    started = _now()
    staging = home.staging / run_id
    base = SyncResult(run_id=run_id, dossier=code, kind=kind, status="failed", rows=RowCounts(),
                      started_at=started, finished_at=started, updated_until=dossier.updated_until,
                      warnings=tuple(notes),
                      pending_proposals=dossier.pending_proposals,
                      active_period=dossier.active_period)
    try:
        for leftover in home.staging.glob(f"*-{code}-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a killed run of this dossier
        staging.mkdir(parents=True, exist_ok=True)
        result = _run(home, dossier, kind, base, staging, ctx, planned, state,
                      record or (lambda run: portal.record_run(home.portal, run)),
                      fresh=known is None)
    except SyncCancelled as exc:
        result = _record_failure(home, replace(
            base, finished_at=_now(), error=str(exc) or "cancelled: nothing was changed"))
    except DossyncError as exc:
        result = _record_failure(home, replace(base, finished_at=_now(), error=str(exc)))
    except Exception as exc:  # a bug or an unforeseen failure: recorded, logged, never silent
        log.exception("sync %s of %s failed unexpectedly", run_id, code)
        result = _record_failure(home, replace(
            base, finished_at=_now(),
            error=f"unexpected error ({type(exc).__name__}: {exc}); see the log in {home.logs}"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        progress_file.close()
        lock.release()
    if planned is not None and planned.email is not None and result.status == "succeeded":
        email_id, recipient, _, message = planned.email
        from dossync.core import notify  # email and TLS modules load only when there is mail

        status, error = notify.deliver(home, email_id, message, recipient,
                                       cancel=ctx.cancel_requested)
        result = replace(result, email=status,
                         warnings=result.warnings + ((f"client email not delivered yet: {error}; "
                                                      f"'dossync outbox --flush' retries it",)
                                                     if error else ()))
    return result


def _record_failure(home: Home, result: SyncResult) -> SyncResult:
    """Record a failed run in the portal; when the portal cannot take even that
    (a full disk, a damaged file), the run is logged and its result says so."""
    try:
        portal.record_run(home.portal, result)
    except Exception as exc:  # the failure itself is what the user must see: keep it
        log.error("sync %s of %s failed (%s) and could not be recorded in the portal: %s",
                  result.run_id, result.dossier, result.error, exc)
        return replace(result, warnings=result.warnings + (
            f"this failed run could not be recorded in the portal ({exc}); it is in the log "
            f"in {home.logs}",))
    return result


def plan_options(home: Home, dossier, options: ManualOptions) -> portal.SyncOptions:
    """Check the manual options against the portal; refuse clearly, or plan them."""
    periods = portal.periods(home.portal, dossier.code)
    codes = [p["code"] for p in periods]
    active = options.new_period or dossier.active_period
    if options.new_period:
        if not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", options.new_period):
            raise UsageError(f"--new-period {options.new_period!r}: use YYYY-MM")
        if options.new_period not in codes:
            raise UsageError(f"--new-period {options.new_period}: the ledger of {dossier.code} has no "
                             f"such period (its periods run {codes[0]}..{codes[-1]})"
                             if codes else f"--new-period: {dossier.code} has no periods yet")
        if dossier.active_period and options.new_period < dossier.active_period:
            raise UsageError(f"--new-period {options.new_period} is earlier than the active period "
                             f"{dossier.active_period}; a closed period cannot be reopened here")
    until = options.until
    if until:
        if date.fromisoformat(until) > date.today():
            raise UsageError(f"--until {until} is in the future: the books cannot be complete "
                             f"up to a date that has not come yet")
        closed = [p for p in periods if p["closed"] or (active and p["code"] < active)]
        if closed and until < closed[-1]["start_date"]:
            raise UsageError(f"--until {until} lies before the last closed period "
                             f"{closed[-1]['code']}: the books are complete at least until "
                             f"{closed[-1]['end_date']}")
    email = None
    if options.notify:
        until_for_mail = until or dossier.updated_until
        if not until_for_mail:
            raise UsageError(f"--notify tells the client until when the books are complete: "
                             f"give --until DATE (dossier {dossier.code} has no updated-until date yet)")
        from dossync.core import notify

        message = notify.compose(dossier, until_for_mail, notify.sender_of(home))
        email = (notify.new_email_id(), dossier.email, str(message["Subject"]),
                 notify.wire_bytes(message))
    return portal.SyncOptions(until=until, reset_counter=options.reset_counter,
                              new_period=options.new_period, email=email)


def _run(home: Home, dossier, kind: SyncKind, base: SyncResult, staging: Path,
         ctx: RunContext, options: portal.SyncOptions | None,
         state: portal.SyncState, record: Callable[[SyncResult], None],
         fresh: bool = True) -> SyncResult:
    if kind == "repair" and state.cursor is not None:
        return _repair(home, dossier, base, staging, ctx, options, state)
    full = kind in ("full", "repair") or state.cursor is None
    warnings: list[str] = list(base.warnings)
    if kind == "simple" and state.cursor is None:
        warnings.append("first sync of this dossier: the whole ledger was loaded (activation)")
    if state.queued:  # proposals the package could not take before: first, so they are read
        warnings.extend(_deliver_queued(home, dossier))
    connector = open_connector(dossier.package, dossier.source,
                               connector_settings(home, dossier))
    # Without a change cursor a simple sync reads everything and writes only
    # what changed (rows carry a content hash as their version).
    diff = not full and not connector.capabilities.change_cursor
    try:
        position = connector.position()
        if not full and not diff:
            problem = ledger_history_problem(connector, position, state, dossier.code)
            if problem and not fresh:  # judge on the state as it is now, not as the batch saw it
                state, fresh = portal.sync_state(home.portal, dossier.code), True
                problem = ledger_history_problem(connector, position, state, dossier.code)
            if problem:
                result = replace(
                    base, finished_at=_now(), warnings=base.warnings + (problem,),
                    needs_full_sync=True,
                    error=f"simple sync refused, nothing changed: {problem}")
                portal.record_run(home.portal, result)
                return result
        if (not full and not diff and options is None and connector.capabilities.ordered_commits
                and position.high_water == state.cursor):
            # The counter did not move: nothing was written to the ledger since
            # the last sync. The common nightly case, so it stays cheap.
            result = replace(base, status="succeeded", finished_at=_now(), warnings=tuple(warnings))
            record(result)
            return result
        if not fresh:  # real work ahead: the state as it is now, not as the batch saw it
            state = portal.sync_state(home.portal, dossier.code)
        since = None if full or diff else max(0, state.cursor - LOOKBACK)
        # a whole-ledger read (a full sync, an activation) is throttled as configured
        rate = (ctx.max_rows_per_second or 0) if full else 0
        files, reads = _stage(connector, since, staging, replace(ctx, max_rows_per_second=rate))
        if since is not None and state.quarantined:
            _rejudge(connector, state.quarantined, files, reads)
        rows_read = sum(reads.values())
        deletions = None if since is None else connector.deletions(since)
        if deletions is not None:
            rows_read += deletions.num_rows
        # on the snapshot the streams came from
        settled = (tuple(connector.settled_proposals())
                   if connector.capabilities.proposal_status else ())
        warnings.extend(connector.warnings)
        currency = connector.currency
        version = connector.version_history.current
    finally:
        connector.close()
    if diff:
        warnings.append(f"the {dossier.package} book has no change cursor: the simple sync read "
                        f"the whole book ({rows_read} rows) and wrote only what changed")
    _report(ctx, Progress("all", rows_read, rows_read, "validate"))
    bad, quarantine = validate(files, None if since is None else state)
    failpoints.hit("validate")
    staged = portal.StagedSync(
        mode="full" if full else "diff" if diff else "incremental", files=files, bad=bad,
        deletions=deletions, quarantine=quarantine, high_water=position.high_water,
        deletion_log_from=position.deletion_log_from, rows_read=rows_read,
        active_period=position.active_period, options=options, stream_reads=reads,
        currency=currency, history=position.history, settled_proposals=settled,
        connector_version=version if full else None)
    if quarantine:
        warnings.append(f"{len(quarantine)} ledger row(s) quarantined: see "
                        f"'dossync dossier show {dossier.code}' for the reasons")
    result = replace(base, kind="full" if full else kind, status="succeeded",
                     finished_at=_now(), warnings=tuple(warnings))
    _check_cancel(ctx)
    _report(ctx, Progress("all", rows_read, rows_read, "commit"))
    counts, after = portal.apply_sync(home.portal, dossier.code, staged, result)
    return replace(result, rows=counts, active_period=after.active_period,
                   updated_until=after.updated_until, pending_proposals=after.pending_proposals)


def _deliver_queued(home: Home, dossier) -> list[str]:
    """Hand the proposals still queued for the package to it (we hold the dossier's
    lock); what could not be sent is a warning, never a reason to skip the sync."""
    from dossync.core.worklist import deliver

    try:
        delivery = deliver(home, dossier)
    except DossyncError as exc:
        return [f"booking proposals still queued for the package, not sent: {exc}"]
    message = delivery.message(dossier.code)
    return [message] if message else []


def _repair(home: Home, dossier, base: SyncResult, staging: Path, ctx: RunContext,
            options: portal.SyncOptions | None, state: portal.SyncState) -> SyncResult:
    """Run `core.repair`'s plan through the pipeline: stage what it reloads, validate,
    swap it in atomically. The cursor stays where it is."""
    from dossync.core import repair  # it reconciles: loaded only for a repair

    connector = open_connector(dossier.package, dossier.source,
                               connector_settings(home, dossier))
    try:
        plan = repair.plan(home, dossier, state, connector)
        if not plan.reloads:
            return _no_repair(home, base, plan)
        files: dict[str, Path] = {}
        reads: dict[str, int] = {}
        for name, batches in repair.reload(connector, plan):
            files[name] = staging / f"{name}.parquet"
            reads[name] = _write(files[name], BY_NAME[name], batches, ctx)
        rows_read = sum(reads.values())
    finally:
        connector.close()
    bad, quarantine = validate(files, state)
    staged = portal.StagedSync(
        mode="repair", files=files, bad=bad, deletions=None, quarantine=quarantine,
        high_water=state.cursor, deletion_log_from=state.deletion_log_from or 1,
        rows_read=rows_read, options=options, repair_bookings=plan.bookings,
        stream_reads=reads, history=state.history)
    result = replace(base, status="succeeded", finished_at=_now(), warnings=(plan.summary,))
    _check_cancel(ctx)
    counts, after = portal.apply_sync(home.portal, dossier.code, staged, result)
    return replace(result, rows=counts, active_period=after.active_period,
                   updated_until=after.updated_until, pending_proposals=after.pending_proposals)


def _no_repair(home: Home, base: SyncResult, plan) -> SyncResult:
    """A repair with nothing to do, or that only a full sync can do: recorded, nothing changed."""
    if plan.blocked is not None:
        result = replace(base, finished_at=_now(), needs_full_sync=True, warnings=(plan.blocked,),
                         error=f"a targeted repair cannot fix this, nothing changed: "
                               f"{plan.blocked}")
    else:
        result = replace(base, status="succeeded", finished_at=_now(), warnings=(plan.summary,))
    portal.record_run(home.portal, result)
    return result


def _write(path: Path, stream, batches, ctx: RunContext, *, total: int | None = None,
           throttle: tuple[float, list[int], threading.Lock] | None = None) -> int:
    """Stage one stream's batches in a Parquet file; report progress; obey cancel and throttle.

    (Parquet rather than memory-mapped Arrow files: mapped pages would count
    against the sync's memory while DuckDB and Polars read them.)
    """
    rows = 0
    # Dictionaries only for text (account codes, journals repeat): numbers and amounts
    # are nearly all distinct, and building a dictionary for them first costs time.
    text = [c.name for c in stream.columns if c.arrow == pa.string()]
    with pq.ParquetWriter(path, stream.schema, compression="none", use_dictionary=text) as writer:
        for batch in batches:
            writer.write_batch(batch)
            failpoints.hit("read")
            rows += batch.num_rows
            _report(ctx, Progress(stream.name, rows, total))
            _check_cancel(ctx)
            if throttle is not None:
                started, read, guard = throttle
                with guard:
                    read[0] += batch.num_rows
                ahead = (read[0] / ctx.max_rows_per_second - (time.monotonic() - started)
                         if ctx.max_rows_per_second else 0)
                if ahead > 0:
                    _pause(ctx, ahead, Progress(stream.name, rows, total))
    if rows == 0:  # an empty file still needs its schema
        pq.write_table(stream.schema.empty_table(), path)
    return rows


def _rejudge(connector: Connector, quarantined: dict[str, list[str]], files: dict[str, Path],
             reads: dict[str, int]) -> None:
    """Add the ledger's rows now in quarantine to a simple sync's staged changes.

    They are judged afresh with the changes: a booking kept out for an
    account the ledger lacked comes in once the account exists, although the
    booking itself did not change. Rows this sync read already are not read twice.
    """
    for name, keys in quarantined.items():
        stream = BY_NAME.get(name)
        if stream is None or stream.follows is not None or name not in files:
            continue
        parts = [(name, stream.key[0])] + ([("lines", "booking_id")] if name == "bookings" else [])
        staged_keys = pq.read_table(files[name], columns=[stream.key[0]]).column(0)
        for part, key in parts:
            extra = connector.read_keys(part, keys)
            extra = extra.filter(pc.invert(pc.is_in(extra[key], value_set=staged_keys)))
            if not extra.num_rows:
                continue
            staged = pq.read_table(files[part])
            pq.write_table(pa.concat_tables([staged, extra.cast(staged.schema)]), files[part])
            reads[part] = reads.get(part, 0) + extra.num_rows


def full_sync_rate(home: Home) -> int:
    """[full_sync] max_rows_per_second (checked with the rest of dossync.toml): 0 = unthrottled."""
    return home.settings().full_sync.max_rows_per_second


def _both(first, second):
    if first is None:
        return second

    def report(event: Progress) -> None:
        first(event)
        second(event)
    return report


class _either:
    """Set when either event is (a signal here, or a monitor's request through the portal)."""

    def __init__(self, first, second) -> None:
        self.events = [e for e in (first, second) if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _report(ctx: RunContext, progress: Progress) -> None:
    if ctx.on_progress is not None:
        ctx.on_progress(progress)


def _pause(ctx: RunContext, seconds: float, progress: Progress) -> None:
    """The throttle's wait, in short steps: a cancel (a signal, or a monitor's request that
    comes with a progress report) still stops the sync within a fraction of a second."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))
        _report(ctx, progress)
        _check_cancel(ctx)


def _check_cancel(ctx: RunContext) -> None:
    if ctx.cancel_requested is not None and ctx.cancel_requested.is_set():
        raise SyncCancelled("sync cancelled by the user: nothing was changed")


# A full read of the biggest stream runs beside the others on a second reader.
PARALLEL_FROM_ROWS = 50_000


def _stage(connector: Connector, since: int | None, staging: Path,
           ctx: RunContext) -> tuple[dict[str, Path], dict[str, int]]:
    """Read every stream to a staging file; return the files and the rows read of each."""
    files = {stream.name: staging / f"{stream.name}.parquet" for stream in STREAMS}
    totals = {stream.name: connector.count(stream.name, since) for stream in STREAMS}
    guard = threading.Lock()
    throttle = (time.monotonic(), [0], guard)
    report = ctx.on_progress
    if report is not None:  # two readers report: one at a time
        def locked(event: Progress) -> None:
            with guard:
                report(event)
        ctx = replace(ctx, on_progress=locked)
    for name, total in totals.items():
        _report(ctx, Progress(name, 0, total))
    second = (connector.parallel_reader()
              if since is None and totals["lines"] >= PARALLEL_FROM_ROWS
              and connector.capabilities.parallel_reads else None)
    reads: dict[str, int] = {}
    if second is None:
        for stream in STREAMS:
            reads[stream.name] = _write(files[stream.name], stream,
                                        connector.read(stream.name, since), ctx,
                                        total=totals[stream.name], throttle=throttle)
        return files, reads
    # Both readers sit on the same snapshot (see parallel_reader); the driver
    # releases the GIL while it reads, so on two cores they overlap.
    stop = threading.Event()
    failure: list[BaseException] = []

    def read_lines() -> None:
        try:
            lines = BY_NAME["lines"]
            reads["lines"] = _write(files["lines"], lines,
                                    _until(stop, second.read("lines", None)), ctx,
                                    total=totals["lines"], throttle=throttle)
        except BaseException as exc:  # raised in the caller's thread below
            failure.append(exc)
            stop.set()

    reader = threading.Thread(target=read_lines, name="read-lines")
    reader.start()
    try:
        for stream in STREAMS:
            if stream.name != "lines":
                reads[stream.name] = _write(files[stream.name], stream,
                                            _until(stop, connector.read(stream.name, None)),
                                            ctx, total=totals[stream.name], throttle=throttle)
    except BaseException:
        stop.set()
        raise
    finally:
        reader.join()
        second.close()
    if failure:
        raise failure[0]
    return files, reads


def _until(stop: threading.Event, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches, until the other reader failed (then this one stops too)."""
    for batch in batches:
        if stop.is_set():
            return
        yield batch


# --- validation ----------------------------------------------------------------
def _keys_table(frame: pl.DataFrame, stream: str) -> pa.Table:
    definition = BY_NAME[stream]
    schema = pa.schema([definition.schema.field(k) for k in definition.key])
    if not frame.height:
        return schema.empty_table()
    return frame.select(list(definition.key)).unique().to_arrow().cast(schema)


def validate(files: dict[str, Path], state: portal.SyncState | None
             ) -> tuple[dict[str, pa.Table], list[QuarantinedRow]]:
    """Find the staged rows that must not reach the portal, with reasons.

    Rules: duplicate keys, names with control characters, impossible dates,
    bookings in an unknown journal or period, lines on an unknown account,
    negative amounts, unbalanced bookings (per commodity, beyond
    money.BALANCE_TOLERANCE), lines without their booking.
    A booking is kept out whole, lines and all. `state` (simple sync) adds
    what the portal already holds to the known accounts/journals/periods.
    """
    # a repair stages only some streams: the others are empty here
    scan = {stream.name: pl.scan_parquet(files[stream.name], glob=False) if stream.name in files
            else pl.from_arrow(stream.schema.empty_table()).lazy() for stream in STREAMS}
    quarantine: list[QuarantinedRow] = []
    bad: dict[str, pl.DataFrame] = {}

    def flag(stream: str, frame: pl.DataFrame, reason_col: str = "reason",
             detail_col: str | None = None) -> None:
        if not frame.height:
            return
        key = BY_NAME[stream].key
        for row in frame.iter_rows(named=True):
            quarantine.append(QuarantinedRow(
                stream=stream, key="/".join(str(row[k]) for k in key), reason=row[reason_col],
                detail=str(row[detail_col]) if detail_col and row.get(detail_col) is not None else ""))
        previous = bad.get(stream)
        keys = frame.select(list(key))
        bad[stream] = keys if previous is None else pl.concat([previous, keys]).unique()

    def duplicates(stream: str, key: str) -> pl.LazyFrame:
        return (scan[stream].group_by(key).agg(pl.len().alias("n")).filter(pl.col("n") > 1)
                .select(key, pl.format("duplicate {} {} ({} rows in the ledger)",
                                       pl.lit(key), pl.col(key), pl.col("n")).alias("reason")))

    # Reference streams: duplicates, control characters, impossible dates (one pass).
    checks: list[tuple[str, pl.LazyFrame, str | None]] = []
    for stream, key in (("accounts", "code"), ("journals", "code"), ("relations", "id"),
                        ("fiscal_years", "id"), ("periods", "id"), ("matchings", "id")):
        checks.append((stream, duplicates(stream, key), None))
    for stream, key in (("accounts", "code"), ("relations", "id")):
        checks.append((stream, scan[stream].filter(pl.col("name").str.contains(CONTROL_CHARS))
                       .select(key, pl.lit("name contains control characters").alias("reason"),
                               pl.col("name").alias("detail")), "detail"))
    for stream in ("fiscal_years", "periods"):
        checks.append((stream, scan[stream].filter(
            _bad_date("start_date") | _bad_date("end_date"))
            .select("id", pl.lit("impossible start or end date").alias("reason"),
                    pl.format("{} .. {}", "start_date", "end_date").alias("detail")), "detail"))
    for (stream, _, detail), frame in zip(checks, pl.collect_all([c[1] for c in checks])):
        flag(stream, frame, detail_col=detail)

    def good_keys(stream: str, key: str, known: frozenset) -> pl.LazyFrame:
        staged = scan[stream].select(key)
        if stream in bad:
            staged = staged.join(bad[stream].lazy(), on=key, how="anti")
        if known:
            staged = pl.concat([staged, pl.LazyFrame({key: list(known)},
                                                     schema={key: staged.collect_schema()[key]})])
        return staged.unique()

    accounts = good_keys("accounts", "code", state.accounts if state else frozenset())
    journals = good_keys("journals", "code", state.journals if state else frozenset())
    periods = good_keys("periods", "id", state.periods if state else frozenset())

    bookings, lines = scan["bookings"], scan["lines"]
    reasons = [
        duplicates("bookings", "id"),
        bookings.filter(_bad_date("date")).select(
            "id", pl.format("impossible date {}", pl.col("date").fill_null("(empty)")).alias("reason")),
        bookings.filter(pl.col("due_date").is_not_null() & _bad_date("due_date")).select(
            "id", pl.format("impossible due date {}", "due_date").alias("reason")),
        bookings.join(journals, left_on="journal", right_on="code", how="anti").select(
            "id", pl.format("unknown journal {}", "journal").alias("reason")),
        bookings.join(periods, left_on="period_id", right_on="id", how="anti").select(
            "id", pl.format("unknown period id {}", "period_id").alias("reason")),
        lines.join(accounts, left_on="account", right_on="code", how="anti").group_by("booking_id")
        .agg(pl.col("account").unique().sort().str.join(", ").alias("accounts"))
        .select(pl.col("booking_id").alias("id"),
                pl.format("unknown account {}", "accounts").alias("reason")),
        lines.filter((pl.col("debit") < 0) | (pl.col("credit") < 0)).select(
            pl.col("booking_id").alias("id"), pl.lit("negative amount on a line").alias("reason")),
        lines.group_by("booking_id", "line_no").agg(pl.len().alias("n")).filter(pl.col("n") > 1)
        .select(pl.col("booking_id").alias("id"),
                pl.format("duplicate line number {}", "line_no").alias("reason")),
        # each commodity balances on its own (the money, and e.g. Beancount's hours)
        lines.group_by("booking_id", "commodity").agg(pl.col("debit").sum(), pl.col("credit").sum())
        .filter((pl.col("debit") - pl.col("credit")).abs() > pl.lit(money.BALANCE_TOLERANCE)
                .cast(pl.Decimal(money.PRECISION, money.SCALE)))
        .select(pl.col("booking_id").alias("id"),
                pl.format("unbalanced{}: debit {}, credit {}",
                          pl.when(pl.col("commodity").is_null()).then(pl.lit(""))
                          .otherwise(pl.format(" in {}", "commodity")),
                          pl.col("debit").map_elements(money.exact_str, return_dtype=pl.String),
                          pl.col("credit").map_elements(money.exact_str, return_dtype=pl.String))
                .alias("reason")),
    ]
    # One pass over the staged bookings and lines for every rule (a simple
    # sync reads lines only with their booking, so it has no orphans to find).
    orphans = lines.join(bookings.select("id"), left_on="booking_id", right_on="id", how="anti") \
        .select("booking_id", "line_no",
                pl.lit("line of a booking that does not exist").alias("reason"))
    found, orphaned = pl.collect_all(
        [pl.concat(reasons, how="vertical_relaxed"), orphans if state is None else orphans.head(0)])
    if found.height:
        per_booking = (found.group_by("id", maintain_order=True)
                       .agg(pl.col("reason").unique(maintain_order=True).str.join("; ")))
        detail = bookings.select("id", pl.format("{} {} {}", "journal", "doc_no", "date")
                                 .alias("detail")).unique("id").collect()
        flag("bookings", per_booking.join(detail, on="id", how="left"), detail_col="detail")
    flag("lines", orphaned)
    if "bookings" in bad:  # lines of bad bookings stay out with them
        bad_lines = lines.join(bad["bookings"].lazy(), left_on="booking_id", right_on="id",
                               how="semi").select("booking_id", "line_no").collect()
        bad["lines"] = pl.concat([bad.get("lines", bad_lines.clear()), bad_lines]).unique()

    return {name: _keys_table(frame, name) for name, frame in bad.items()}, quarantine


def _bad_date(column: str) -> pl.Expr:
    return pl.col(column).str.to_date("%Y-%m-%d", strict=False).is_null()
