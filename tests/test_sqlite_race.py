"""A reader racing the package's writer keeps one snapshot (issue 10, item 3).

The demo connector's snapshot is SQLite's shared lock on the ledger, a POSIX
lock. POSIX drops every lock a process holds on a file when the process
closes any descriptor of that file, and SQLite only shields its own
connections from that within one copy of the library. The connector reads
through ADBC's bundled SQLite; a Python `sqlite3` connection (another copy)
or a plain open() of the ledger, closed mid-read, dropped the lock: the
package committed under the reader, which then read torn pages ("database
disk image is malformed") or figures of two ledgers at once.

Here a child process keeps booking (`new-bookings 5`, as `dossync ledger`
does) while the connector reads and reconcile runs, round after round; and a
reader holding its snapshot is checked directly: the shared lock is still
this process's (/proc/locks) after every read, nothing opens the ledger
through `sqlite3`, the package's commit waits until the reader closes, and
the figures read meanwhile do not move.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import ROOT, codes, ledger_path
from dossync.core import figures as fp
from dossync.core.connectors.demo import DemoConnector
from dossync.core.home import Home
from dossync.core.reconcile import reconcile
from dossync.core.streams import BY_NAME

ROUNDS = 80
SECONDS = 15  # per race; the rounds stop at whichever comes first
MIN_ROUNDS = 8  # fewer means the machine was too busy to say anything

# SQLite's shared lock: a POSIX read lock on the bytes after PENDING_BYTE + 1
SHARED_FIRST = 0x40000000 + 2

# The package, in a process of its own, booking until told to stop.
WRITER = """
import sys
from pathlib import Path
from dossync.core import demo_package
ledger, stop = Path(sys.argv[1]), Path(sys.argv[2])
commits = 0
while not stop.exists():
    demo_package.apply_event(ledger, "new-bookings", ["5"])
    commits += 1
print(commits)
"""

# One commit of the package (it waits while a reader holds the ledger).
ONE_COMMIT = """
import sys
from pathlib import Path
from dossync.core import demo_package
print(demo_package.apply_event(Path(sys.argv[1]), "new-bookings", ["5"]))
"""


def holds_shared_lock(path: Path) -> bool:
    """Does this process hold SQLite's shared lock on the file (Linux: /proc/locks)?"""
    inode, pid = str(os.stat(path).st_ino), str(os.getpid())
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields or "POSIX" not in fields:  # a waiting request, or no POSIX lock
            continue
        kind, owner, file, start = fields[fields.index("POSIX") + 2:][:4]
        if (kind == "READ" and owner == pid and file.rsplit(":", 1)[-1] == inode
                and int(start) == SHARED_FIRST):
            return True
    return False


needs_proc_locks = pytest.mark.skipif(not Path("/proc/locks").exists(),
                                      reason="the locks are checked in /proc/locks (Linux)")


def read_table(connector: DemoConnector, stream: str) -> pa.Table:
    return pa.Table.from_batches(list(connector.read(stream, None)), schema=BY_NAME[stream].schema)


def journal_list(path: Path) -> str:
    with DemoConnector(path) as connector:
        return fp.journal_list(read_table(connector, "journals").column("code").to_pylist())


def snapshot_figures(connector: DemoConnector, journals: str) -> dict:
    """What the connector says about its snapshot, through each of its ways of reading."""
    return {"high_water": connector.position().high_water,
            "lines": connector.count("lines", None),
            "fingerprint": connector.fingerprint(journals),
            "periods": connector.period_fingerprints((), journals).to_pylist(),
            "segments": connector.figures().to_pylist()}


@pytest.fixture
def writing(demo_home, tmp_path):
    """A dossier whose package keeps booking in another process: (home, code, ledger)."""
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    stop = tmp_path / "stop-writing"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ledger), str(stop)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield demo_home, code, ledger
    finally:
        stop.touch()
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err


def race(check) -> int:
    """Run check() round after round, within ROUNDS and SECONDS; the rounds run."""
    deadline = time.monotonic() + SECONDS
    rounds = 0
    while rounds < ROUNDS and time.monotonic() < deadline:
        check(rounds)
        rounds += 1
    assert rounds >= MIN_ROUNDS, f"only {rounds} rounds in {SECONDS}s"
    return rounds


@pytest.mark.slow
@needs_proc_locks
def test_reads_beside_a_writing_package_form_one_snapshot(writing):
    """Every way the connector reads stays on one snapshot while the package books."""
    _, _, ledger = writing
    journals = journal_list(ledger)
    counters = set()

    def check(round_no: int) -> None:
        with DemoConnector(ledger) as reader:
            high_water = reader.position().high_water
            counters.add(high_water)
            whole = reader.fingerprint(journals)  # connections of its own, side by side
            assert holds_shared_lock(ledger), f"round {round_no}: fingerprint dropped the lock"
            reader.stamp()
            assert holds_shared_lock(ledger), f"round {round_no}: stamp dropped the lock"
            second = reader.parallel_reader()
            assert second is not None  # the demo ledger keeps a rollback journal
            try:
                assert holds_shared_lock(ledger), f"round {round_no}: opening a second reader"
                lines = read_table(second, "lines")
                assert second.position().high_water == high_water
            finally:
                second.close()
            bookings = read_table(reader, "bookings")
            assert holds_shared_lock(ledger), f"round {round_no}: closing the second reader"
            # one ledger: the counts agree across readers and queries ...
            assert lines.num_rows == whole["line_count"] == reader.count("lines", None)
            assert bookings.num_rows == whole["bookings"] == reader.count("bookings", None)
            # ... nothing committed after the snapshot's change counter ...
            assert pc.max(bookings.column("rv")).as_py() <= high_water
            # ... and every booking whole: its lines there and balanced
            sums = lines.group_by("booking_id").aggregate([("debit", "sum"), ("credit", "sum")])
            assert sums.column("debit_sum").equals(sums.column("credit_sum"))
            assert set(sums.column("booking_id").to_pylist()) <= set(
                bookings.column("id").to_pylist())

    race(check)
    assert len(counters) >= 2, "the package committed nothing between the rounds"


@pytest.mark.slow
def test_reconcile_beside_a_writing_package_reads_no_torn_ledger(writing):
    """Reconcile next to a looping `ledger new-bookings` (it failed about 1 in 60 with
    'database disk image is malformed')."""
    home, code, _ = writing
    seen = set()

    def check(round_no: int) -> None:
        result = reconcile(Home(home), code)
        # the bookings the package made since the last sync, which a simple sync reads:
        # never a difference those do not explain
        assert result.verdict == ("simple_sync" if result.pending_changes else "in_sync"), (
            round_no, result.reasons)
        seen.add(result.pending_changes)

    race(check)
    assert len(seen) >= 2, "the package committed nothing between the rounds"


@needs_proc_locks
def test_an_open_snapshot_holds_while_the_package_commits(demo_home, monkeypatch):
    """The package's commit waits for the reader; inside the snapshot the figures do
    not move, the lock stays, and nothing opens the ledger through `sqlite3`."""
    ledger = ledger_path(demo_home, codes(demo_home)[0])
    journals = journal_list(ledger)
    connect = sqlite3.connect

    def guarded(database, *args, **kwargs):
        if ledger.name in str(database):
            raise AssertionError(f"the ledger was opened through sqlite3 in the reading "
                                 f"process: {database}")
        return connect(database, *args, **kwargs)

    reader = DemoConnector(ledger)
    writer = None
    try:
        monkeypatch.setattr(sqlite3, "connect", guarded)
        before = snapshot_figures(reader, journals)
        assert holds_shared_lock(ledger)
        writer = subprocess.Popen([sys.executable, "-c", ONE_COMMIT, str(ledger)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        journal = ledger.with_name(ledger.name + "-journal")
        deadline = time.monotonic() + 20
        while not journal.exists():  # its write transaction has begun
            assert writer.poll() is None, writer.communicate()
            assert time.monotonic() < deadline, "the package never started writing"
            time.sleep(0.01)
        time.sleep(0.3)  # and it is waiting to commit
        assert snapshot_figures(reader, journals) == before
        reader.stamp()
        second = reader.parallel_reader()
        try:
            assert second.position().high_water == before["high_water"]
            assert second.count("lines", None) == before["lines"]
        finally:
            second.close()
        assert snapshot_figures(reader, journals) == before
        assert holds_shared_lock(ledger)
        assert writer.poll() is None, "the package committed inside the reader's snapshot"
    finally:
        reader.close()
        monkeypatch.undo()
        if writer is not None:
            _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert not holds_shared_lock(ledger)
    with DemoConnector(ledger) as after:  # the commit went in once the reader let go
        assert after.position().high_water > before["high_water"]
        assert after.count("lines", None) > before["lines"]
