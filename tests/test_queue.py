"""The job queue: `sync --queue`, `nightly --queue`, `dossync worker` and `dossync jobs`.

Workers run as real processes (signals, kill -9, leases); every job's sync
runs in the worker's child process, as in production.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (DOSSYNC, ROOT, assert_portal_equals_ledger, cli, cli_json, cli_process,
                      codes, event, jobs, portal_of, portal_sql, throttle, wait_for)
from dossync.core import portal
from dossync.core.home import Home
from dossync.core.jobqueue import BUSY_WAIT, _outcome, job_command
from dossync.core.locks import dossier_lock
from dossync.core.model import ManualOptions

CONTRACT_KEYS = ["job", "dossier", "kind", "status", "attempts", "worker", "run_id", "queued_at",
                 "started_at", "finished_at", "error"]


def queue(home: Path, *args: str) -> str:
    code, doc = cli_json(home, "sync", *args, "--queue")
    assert code == 0, doc
    assert doc["status"] == "queued" and set(doc) == {"job", "dossier", "kind", "status"}
    return doc["job"]


def start_worker(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*DOSSYNC, "--home", str(home), "worker", *args], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def running_under_lock(home: Path, job: str, code: str):
    return lambda: (jobs(home)[job]["status"] == "running"
                    and dossier_lock(Home(home), code).is_held())


def runs_by_id(home: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in portal.runs(portal_of(home), limit=1000)}


# --- the whole queue -------------------------------------------------------------------
def test_queued_jobs_each_run_once_and_the_portal_equals_the_ledger(demo_home):
    path = portal_of(demo_home)
    queued: dict[str, tuple[str, str]] = {}
    for i, code in enumerate(codes(demo_home)):
        event(demo_home, code, "new-bookings", "8")
        queued[queue(demo_home, code)] = (code, "simple")
        event(demo_home, code, "new-bookings", "5")
        assert cli(demo_home, "propose", code, "--count", "2").returncode == 0
        assert portal.get_dossier(path, code).pending_proposals == 2
        event(demo_home, code, "validate-proposals")  # booked: the ledger has them
        extra = ["--full"] if i == 0 else []
        queued[queue(demo_home, code, *extra, "--reset-counter")] = (
            code, "full" if extra else "simple")
    assert len(queued) == 6

    done = cli_process(demo_home, "worker", "--until-idle", "--concurrency", "2", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["run"], summary["succeeded"], summary["failed"]) == (6, 6, 0)
    assert sorted(j["job"] for j in summary["jobs"]) == sorted(queued)

    listed, runs = jobs(demo_home), runs_by_id(demo_home)
    assert set(listed) == set(queued)
    assert len({j["run_id"] for j in listed.values()}) == 6  # each ran exactly once
    for job, (code, kind) in queued.items():
        j = listed[job]
        assert (j["dossier"], j["kind"], j["status"], j["attempts"], j["error"]) == (
            code, kind, "succeeded", 1, None), j
        run = runs[j["run_id"]]
        assert (run["dossier"], run["kind"], run["status"]) == (code, kind, "succeeded")
    for code in codes(demo_home):
        assert_portal_equals_ledger(demo_home, code)
        assert portal.get_dossier(path, code).pending_proposals == 0  # --reset-counter travelled


def test_the_options_travel_with_the_job(demo_home):
    home = Home(demo_home)
    code = codes(demo_home)[0]
    job = portal.enqueue_job(home.portal, code, "repair",
                             ManualOptions(until="2026-12-31", reset_counter=True, notify=True,
                                           new_period="2026-12"))
    command = job_command(home, portal.require_job(home.portal, job.job))
    assert command[command.index("sync"):] == [
        "sync", code, "--json", "--repair", "--until", "2026-12-31", "--reset-counter",
        "--notify", "--new-period", "2026-12"]


def test_a_busy_dossier_waits_in_the_queue_and_never_fails(demo_home):
    code = codes(demo_home)[0]
    lock = dossier_lock(Home(demo_home), code).acquire("test")
    job = queue(demo_home, code)
    worker = start_worker(demo_home, "--until-idle", "--json")
    try:
        wait_for(lambda: "busy" in (jobs(demo_home)[job]["error"] or ""), "the job found the "
                 "dossier busy", process=worker)
        time.sleep(BUSY_WAIT + 1)  # it has been claimed and put back again meanwhile
        waiting = jobs(demo_home)[job]
        assert waiting["status"] in ("queued", "running") and waiting["attempts"] == 0, waiting
        assert worker.poll() is None
    finally:
        lock.release()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert json.loads(out)["succeeded"] == 1
    done = jobs(demo_home)[job]
    assert (done["status"], done["attempts"], done["error"]) == ("succeeded", 1, None), done
    assert done["run_id"] in runs_by_id(demo_home)


def test_a_job_of_a_killed_worker_runs_again_once_its_lease_ran_out(demo_home):
    code = codes(demo_home)[0]
    event(demo_home, code, "new-bookings", "10")
    throttle(demo_home, code, seconds=3.0)
    job = queue(demo_home, code, "--full")
    first = start_worker(demo_home, "--lease", "2")
    try:
        wait_for(running_under_lock(demo_home, job, code), "the job running", process=first)
        first_worker = jobs(demo_home)[job]["worker"]
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL

    second = cli_process(demo_home, "worker", "--until-idle", "--lease", "2", "--json")
    assert second.returncode == 0, second.stderr
    done = jobs(demo_home)[job]
    assert (done["status"], done["attempts"]) == ("succeeded", 2), done
    assert done["worker"] != first_worker
    assert runs_by_id(demo_home)[done["run_id"]]["kind"] == "full"
    assert_portal_equals_ledger(demo_home, code)


def test_sigterm_lets_the_running_job_finish_and_leaves_the_queue(demo_home):
    first, other = codes(demo_home)[:2]
    throttle(demo_home, first, seconds=3.0)
    running = queue(demo_home, first, "--full")
    waiting = queue(demo_home, other)
    worker = start_worker(demo_home, "--json")
    try:
        wait_for(running_under_lock(demo_home, running, first), "the job running", process=worker)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    summary = json.loads(out)
    assert (summary["stopped"], summary["run"], summary["succeeded"]) == ("SIGTERM", 1, 1)
    listed = jobs(demo_home)
    assert (listed[running]["status"], listed[running]["attempts"]) == ("succeeded", 1)
    assert (listed[waiting]["status"], listed[waiting]["attempts"]) == ("queued", 0)
    assert_portal_equals_ledger(demo_home, first)


def test_cancel_a_queued_job_and_what_jobs_lists(demo_home):
    first, other = codes(demo_home)[:2]
    cancelled, kept = queue(demo_home, first), queue(demo_home, other)
    code, doc = cli_json(demo_home, "jobs", "cancel", cancelled)
    assert code == 0 and doc["status"] == "cancelled"
    again = cli(demo_home, "jobs", "cancel", cancelled)
    assert again.returncode == 2 and "already cancelled" in again.stderr
    code, doc = cli_json(demo_home, "jobs", "cancel", "J20000101000000-000000")
    assert code == 2 and "unknown job" in doc["error"] and "dossync jobs" in doc["error"]
    assert cli(demo_home, "jobs", "cancel").returncode == 2

    done = cli_process(demo_home, "worker", "--until-idle", "--json")
    assert done.returncode == 0, done.stderr
    assert [j["job"] for j in json.loads(done.stdout)["jobs"]] == [kept]

    code, listed = cli_json(demo_home, "jobs")
    assert code == 0 and [j["job"] for j in listed] == [kept, cancelled]  # newest first
    for j in listed:
        assert list(j) == CONTRACT_KEYS
    assert (listed[1]["status"], listed[1]["attempts"], listed[1]["run_id"]) == (
        "cancelled", 0, None)
    assert listed[0]["status"] == "succeeded"
    table = cli(demo_home, "jobs")
    assert table.returncode == 0 and kept in table.stdout


def test_bad_input_is_refused_with_exit_2(demo_home):
    code, doc = cli_json(demo_home, "sync", "NOSUCH", "--queue")
    assert code == 2 and "unknown dossier" in doc["error"]
    code, doc = cli_json(demo_home, "sync", codes(demo_home)[0], "--queue", "--new-period", "12")
    assert code == 2 and "YYYY-MM" in doc["error"]
    assert cli(demo_home, "worker", "--concurrency", "0").returncode == 2
    assert cli(demo_home, "worker", "--lease", "x").returncode == 2
    assert jobs(demo_home) == {}


def test_nightly_queue_queues_one_job_per_nightly_dossier(demo_home):
    nightly = sorted(d.code for d in portal.list_dossiers(portal_of(demo_home))
                     if d.nightly)
    done = cli(demo_home, "nightly", "--queue", "--json")
    assert done.returncode == 0, done.stderr
    queued = json.loads(done.stdout)["jobs"]
    assert sorted(j["dossier"] for j in queued) == nightly
    assert {(j["kind"], j["status"]) for j in queued} <= {("simple", "queued")}
    assert set(jobs(demo_home)) == {j["job"] for j in queued}
    assert cli(demo_home, "nightly", "--queue", "--verify").returncode == 2


@pytest.mark.parametrize("returncode, out, status", [
    (0, {"run_id": "R1", "status": "succeeded"}, "succeeded"),
    (1, {"run_id": "R2", "status": "failed", "error": "ledger gone"}, "failed"),
    (3, {"error": "dossier X is busy", "exit": 3}, "busy"),
    (2, {"error": "unknown dossier 'X'", "exit": 2}, "failed"),
    (-9, None, "failed"),
])
def test_how_a_jobs_child_ended(returncode, out, status):
    outcome = _outcome(returncode, json.dumps(out).encode() if out else b"", b"boom", False)
    assert outcome.status == status
    if status == "failed":
        assert outcome.error
    if out and status == "succeeded":
        assert outcome.run_id == "R1"


def test_a_running_job_is_stopped_by_cancel_and_ends_cancelled(demo_home):
    """`jobs cancel` of a running job: its worker sees the request at its heartbeat, stops
    the sync (which changes nothing) and records the job cancelled; the worker goes on
    with the next job."""
    first, other = codes(demo_home)[:2]
    event(demo_home, first, "new-bookings", "10")
    before = portal.runs(portal_of(demo_home), first, limit=1000)
    throttle(demo_home, first, seconds=60.0)
    running = queue(demo_home, first, "--full")
    after = queue(demo_home, other)
    worker = start_worker(demo_home, "--until-idle", "--json")
    try:
        wait_for(running_under_lock(demo_home, running, first), "the job running", process=worker)
        code, doc = cli_json(demo_home, "jobs", "cancel", running)
        assert code == 0 and doc["status"] == "running" and "stop requested" in doc["error"]
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    listed = jobs(demo_home)
    assert listed[running]["status"] == "cancelled", listed[running]
    assert "changed nothing" in listed[running]["error"]
    assert listed[after]["status"] == "succeeded"
    runs = portal.runs(portal_of(demo_home), first, limit=1000)
    assert runs[0]["status"] == "failed" and "cancel" in runs[0]["error"]
    assert [r["run_id"] for r in runs[1:]] == [r["run_id"] for r in before]
    refused = cli(demo_home, "jobs", "cancel", running)
    assert refused.returncode == 2 and "already cancelled" in refused.stderr


def test_a_schema_5_portal_gets_the_jobs_table(demo_home):
    portal_sql(demo_home, "DROP TABLE jobs")
    portal_sql(demo_home, "UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    assert portal.list_jobs(portal_of(demo_home)) == []
    assert portal_sql(demo_home, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(portal.SCHEMA_VERSION),)]
    assert queue(demo_home, codes(demo_home)[0])


def test_a_schema_6_portal_gets_the_stop_request_column(demo_home):
    job = queue(demo_home, codes(demo_home)[0])
    portal_sql(demo_home, "ALTER TABLE jobs DROP COLUMN cancel_requested")
    portal_sql(demo_home, "UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    assert jobs(demo_home)[job]["status"] == "queued"  # kept through the migration
    assert portal_sql(demo_home, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(portal.SCHEMA_VERSION),)]
    code, doc = cli_json(demo_home, "jobs", "cancel", job)
    assert code == 0 and doc["status"] == "cancelled"


def test_three_workers_share_dozens_of_jobs_and_survive_a_killed_one(demo_home):
    """Three workers, 24 jobs over three dossiers, one worker killed with kill -9 while it
    runs a job: every job ends succeeded exactly once, each run is a real run, no dossier
    ever ran two syncs at once, and the portal equals every ledger."""
    all_codes = codes(demo_home)
    for code in all_codes:
        event(demo_home, code, "new-bookings", "6")
    queued = [queue(demo_home, code) for _ in range(8) for code in all_codes]
    workers = [start_worker(demo_home, "--lease", "2", "--until-idle", "--json")
               for _ in range(3)]
    try:
        victim = workers[0]
        victim_id = None

        def victim_runs_a_job() -> bool:
            nonlocal victim_id
            mine = [j for j in jobs(demo_home).values() if j["status"] == "running"
                    and j["worker"] and j["worker"].endswith(f":{victim.pid}")]
            victim_id = mine[0]["worker"] if mine else None
            return bool(mine)

        wait_for(victim_runs_a_job, "the first worker running a job", process=victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=30)
        for worker in workers[1:]:
            out, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err
            assert json.loads(out)["worker"] != victim_id
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    listed = jobs(demo_home)
    assert sorted(listed) == sorted(queued)
    assert {j["status"] for j in listed.values()} == {"succeeded"}, listed
    runs = runs_by_id(demo_home)
    assert len({j["run_id"] for j in listed.values()}) == len(queued)  # a run each
    for job in listed.values():
        assert runs[job["run_id"]]["dossier"] == job["dossier"]
        assert runs[job["run_id"]]["status"] == "succeeded"
    taken_over = [j for j in listed.values() if j["attempts"] > 1]
    assert taken_over and all(j["worker"] != victim_id for j in taken_over), taken_over
    for code in all_codes:  # one sync of a dossier at a time, whichever worker ran it
        spans = sorted((r["started_at"], r["finished_at"]) for r in runs.values()
                       if r["dossier"] == code and r["status"] == "succeeded")
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end <= start, (code, spans)
        assert_portal_equals_ledger(demo_home, code)
