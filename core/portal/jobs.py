"""The job queue: syncs waiting in the portal for a worker (`dossync worker`).

A job is enqueued `queued`; a worker claims the oldest claimable one and
marks it `running` under its lease (`lease_until`), which it extends while
the sync runs (`heartbeat`); it ends `succeeded` or `failed` (`finish`). A
job whose dossier was busy goes back to `queued` (`requeue`) and waits a
little (`not_before`); that attempt does not count. A worker that died
stops extending its lease: once the lease has run out the job is claimable
again. A queued job is cancelled at once; a running one is asked to stop
(`cancel_requested`): its worker, on whatever machine, sees it at its next
heartbeat, stops the sync (which changes nothing) and records `cancelled`.

Claiming is one write transaction (one writer at a time on the portal): it
picks the oldest claimable job whose dossier has no other job running
under a live lease, and no older job waiting, and marks it running in the
same transaction, so two workers never hold one job, nor one dossier. On
PostgreSQL, where writers do not queue for a file, the claims of all
machines' workers take turns on a transaction-level advisory lock, and the
job picked is locked `FOR UPDATE SKIP LOCKED` (a cancel or a finish of the
same row waits for the claim, never the other way round).
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from dossync.core.model import ManualOptions, SyncKind, UsageError
from dossync.core.portal.dossiers import require_dossier
from dossync.core.portal.records import Job
from dossync.core.portal.schema import connect
from dossync.core.portal.store import DIALECT, _dicts, _one, _transaction, dialect_of

# A Job's columns (ordered by jobs.queued_at, the timestamp, not this text).
_JOB_COLS = ("job, dossier, kind, status, attempts, worker, run_id, "
             "strftime(queued_at, '%Y-%m-%dT%H:%M:%S') AS queued_at, "
             "strftime(started_at, '%Y-%m-%dT%H:%M:%S') AS started_at, "
             "strftime(finished_at, '%Y-%m-%dT%H:%M:%S') AS finished_at, error, options")

# Claimable: queued, or running under a lease that ran out (its worker died).
_CLAIMABLE = "(status = 'queued' OR (status = 'running' AND lease_until < $now))"


def _job(row: dict) -> Job:
    return Job(**{**row, "options": ManualOptions(**json.loads(row["options"] or "{}"))})


def _options_json(options: ManualOptions) -> str:
    return json.dumps({"until": options.until, "reset_counter": options.reset_counter,
                       "notify": options.notify, "new_period": options.new_period})


def new_job_id() -> str:
    return f"J{datetime.now():%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def enqueue_jobs(path: Path, specs: list[tuple[str, SyncKind, ManualOptions]], *,
                 not_before: datetime | None = None, reason: str | None = None) -> list[Job]:
    """Queue one sync per (dossier, kind, options), in this order, in one commit.

    `not_before`: no worker claims them before then (a full sync scheduled for the quiet
    window), `reason` saying so in their `error` while they wait. An unknown dossier is a
    UsageError and nothing is queued."""
    for code, _, _ in specs:
        require_dossier(path, code)
    ids = []
    with connect(path) as con, _transaction(con):
        for code, kind, options in specs:
            job = new_job_id()
            con.execute("INSERT INTO jobs (job, dossier, kind, options, status, attempts, "
                        "queued_at, not_before, error) VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?)",
                        [job, code, kind, _options_json(options), datetime.now(), not_before,
                         reason])
            ids.append(job)
    return [get_job(path, job) for job in ids]


def enqueue_job(path: Path, code: str, kind: SyncKind,
                options: ManualOptions | None = None, *, not_before: datetime | None = None,
                reason: str | None = None) -> Job:
    """Queue one sync of a dossier (UsageError for an unknown dossier); see enqueue_jobs."""
    return enqueue_jobs(path, [(code, kind, options or ManualOptions())],
                        not_before=not_before, reason=reason)[0]


def get_job(path: Path, job: str) -> Job | None:
    with connect(path, read_only=True) as con:
        rows = _dicts(con.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE job = ?", [job]))
    return _job(rows[0]) if rows else None


def require_job(path: Path, job: str) -> Job:
    """The job, or a usage error that says where to find the known ones."""
    found = get_job(path, job)
    if found is None:
        raise UsageError(f"unknown job {job[:80]!r}; 'dossync jobs' lists the jobs")
    return found


def list_jobs(path: Path, limit: int | None = None) -> list[Job]:
    """The jobs, newest first."""
    with connect(path, read_only=True) as con:
        rows = _dicts(con.execute(f"SELECT {_JOB_COLS} FROM jobs "
                                  f"ORDER BY jobs.queued_at DESC, job DESC"
                                  + (f" LIMIT {int(limit)}" if limit else "")))
    return [_job(r) for r in rows]


def claim_job(path: Path, worker: str, lease: float,
              exclude: list[str] | tuple[str, ...] = (), *, kind: SyncKind | None = None,
              due_by: datetime | None = None) -> Job | None:
    """Claim the oldest claimable job for `worker`, under a lease of `lease` seconds.

    Oldest first, and within a dossier strictly in order; never a job whose
    dossier has another job running under a live lease, nor one waiting
    (`not_before`) after its dossier was busy, nor one of the dossiers in
    `exclude` (those the worker runs already). Picked and marked running in
    one transaction: attempts + 1, the worker, the lease. `kind`: only a job of that
    kind (the nightly takes the due full syncs). `due_by`: the time a job's `not_before`
    must have passed (default now; the quiet window's clock, which tests move with
    DOSSYNC_NOW); the leases always keep this machine's own clock.
    """
    now = datetime.now()
    due = due_by or now
    with connect(path) as con, _transaction(con):
        postgres = dialect_of(con) != DIALECT
        if postgres:  # the claims of every machine take turns ('dossync jobs' lock)
            con.execute("SELECT pg_advisory_xact_lock(7368717)")
        row = _one(con.execute(f"""
            WITH pending AS (
                SELECT job, dossier, kind, queued_at, not_before, row_number() OVER (
                    PARTITION BY dossier ORDER BY queued_at, job) AS place
                FROM jobs WHERE {_CLAIMABLE})
            SELECT job FROM pending p
            WHERE place = 1 AND (not_before IS NULL OR not_before <= $due)
              AND coalesce(CAST($kind AS VARCHAR), kind) = kind
              AND NOT list_contains(CAST($exclude AS VARCHAR[]), dossier)
              AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.dossier = p.dossier
                              AND r.status = 'running' AND r.lease_until >= $now)
            ORDER BY queued_at, job LIMIT 1""",
            {"now": now, "due": due, "kind": kind, "exclude": list(exclude)}).fetchall())
        if row is not None and postgres:
            row = _one(con.execute(f"SELECT job FROM jobs WHERE job = $job AND {_CLAIMABLE} "
                                   f"FOR UPDATE SKIP LOCKED", {"job": row[0], "now": now}
                                   ).fetchall())
        if row is None:
            return None
        con.execute("UPDATE jobs SET status = 'running', worker = ?, lease_until = ?, "
                    "attempts = attempts + 1, started_at = ?, finished_at = NULL, "
                    "not_before = NULL, cancel_requested = false WHERE job = ?",
                    [worker, now + timedelta(seconds=lease), now, row[0]])
        claimed = _dicts(con.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE job = ?", [row[0]]))
    return _job(claimed[0])


def heartbeat(path: Path, worker: str, jobs: list[str], lease: float) -> dict[str, bool]:
    """Extend the lease of these running jobs of `worker`: {job it still holds: whether it
    was asked to stop}."""
    if not jobs:
        return {}
    with connect(path) as con, _transaction(con):
        con.execute("UPDATE jobs SET lease_until = ? WHERE worker = ? AND status = 'running' "
                    "AND list_contains(?, job)",
                    [datetime.now() + timedelta(seconds=lease), worker, list(jobs)])
        held = con.execute("SELECT job, coalesce(cancel_requested, false) FROM jobs "
                           "WHERE worker = ? AND status = 'running' AND list_contains(?, job)",
                           [worker, list(jobs)]).fetchall()
    return {job: bool(stop) for job, stop in held}


def _held(con, job: str, worker: str) -> bool:
    """Whether `worker` still holds `job` (its lease did not pass to another worker)."""
    return _one(con.execute("SELECT 1 FROM jobs WHERE job = ? AND worker = ? AND status = "
                            "'running'", [job, worker]).fetchall()) is not None


def finish_job(path: Path, job: str, worker: str, status: str, run_id: str | None,
               error: str | None) -> bool:
    """Record how a running job of `worker` ended (`succeeded` or `failed`).

    False, and nothing changed, when `worker` no longer holds it (its lease
    ran out and another worker took it over)."""
    with connect(path) as con, _transaction(con):
        if not _held(con, job, worker):
            return False
        con.execute("UPDATE jobs SET status = ?, run_id = ?, error = ?, finished_at = ?, "
                    "lease_until = NULL WHERE job = ?",
                    [status, run_id, error, datetime.now(), job])
    return True


def requeue_job(path: Path, job: str, worker: str, reason: str, wait: float,
                not_before: datetime | None = None) -> bool:
    """Put a job `worker` holds back in the queue (its dossier was busy, or its quiet window
    closed): the attempt does not count; it waits `wait` seconds (or until `not_before`);
    `reason` says why it waits."""
    with connect(path) as con, _transaction(con):
        if not _held(con, job, worker):
            return False
        con.execute("UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), "
                    "lease_until = NULL, started_at = NULL, error = ?, not_before = ? "
                    "WHERE job = ?",
                    [reason, not_before or datetime.now() + timedelta(seconds=wait), job])
    return True


def cancel_job(path: Path, job: str) -> Job:
    """Cancel a queued job (or one whose worker died); ask a running one to stop (its
    worker records it `cancelled` when the sync has stopped); refuse an ended one."""
    now = datetime.now()
    with connect(path) as con, _transaction(con):
        row = _one(con.execute("SELECT status, lease_until, worker FROM jobs WHERE job = ?",
                               [job]).fetchall())
        if row is None:
            raise UsageError(f"unknown job {job[:80]!r}; 'dossync jobs' lists the jobs")
        status, lease_until, worker = row
        if status == "running" and lease_until is not None and lease_until >= now:
            con.execute("UPDATE jobs SET cancel_requested = true, error = ? WHERE job = ?",
                        [f"stop requested: worker {worker} stops the sync at its next "
                         f"heartbeat (a stopped sync changes nothing)", job])
            return _job(_dicts(con.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE job = ?",
                                           [job]))[0])
        if status in ("succeeded", "failed", "cancelled"):
            done = "was already cancelled" if status == "cancelled" else f"has already {status}"
            raise UsageError(f"job {job} {done}; nothing to cancel")
        con.execute("UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_until = NULL "
                    "WHERE job = ?", [now, job])
    return require_job(path, job)


def jobs_waiting(path: Path, due_by: datetime | None = None) -> int:
    """Jobs still to do: queued, or running (under a live lease or a lapsed one). With
    `due_by`, a queued job that waits past it (a full sync scheduled for the quiet
    window) is not counted: `worker --until-idle` does not wait for the night."""
    with connect(path, read_only=True) as con:
        return con.execute("SELECT count(*) FROM jobs WHERE status = 'running' OR (status = "
                           "'queued' AND (CAST(? AS TIMESTAMP) IS NULL OR not_before IS NULL "
                           "OR not_before <= ?))", [due_by, due_by]).fetchall()[0][0]
