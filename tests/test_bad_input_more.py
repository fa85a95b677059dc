"""Answers instead of crashes: every failure is a clear message, the right exit code and,
with --json, exactly one JSON document {"error", "exit", ...} on stdout.

Bad arguments, counts beyond their limits, codes that are paths, bad settings, bad
addresses and names (also ones already in the portal), periods a dossier lacks, a
damaged portal, --home at a file, a read-only HOME, a full disk. In-process through
the CLI's entry point (`dossync.core.cli.main`), except where a real file system is needed.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import codes, copy_home, ledger_path, portal_trial_balance, run_main
from dossync.core import cli, portal, reports
from dossync.core.cli import main
from dossync.core.home import Home
from dossync.core.logs import LogFile
from dossync.core.settings import Settings
from dossync.core.locks import DossierLock
from dossync.core.model import DossyncError, ExitCode, TerminalError, UsageError
from dossync.core.validate import address_problem


@dataclass
class Answer:
    exit: int
    out: str
    err: str

    def doc(self):
        """stdout as exactly one JSON document (json.loads refuses a second one)."""
        return json.loads(self.out)

    def error(self, exit_code: int) -> str:
        """The error document's message, after checking the document's shape."""
        assert self.exit == exit_code, (self.exit, self.out, self.err)
        doc = self.doc()
        assert doc["exit"] == doc["exit_code"] == exit_code, doc
        assert isinstance(doc["error"], str) and doc["error"], doc
        assert "Traceback" not in self.err and "Logging error" not in self.err, self.err
        return doc["error"]


@pytest.fixture
def dossync():
    def run(home: Path, *args: str) -> Answer:
        done = run_main(["--home", str(home), *args])
        return Answer(done.returncode, done.stdout, done.stderr)
    return run


@pytest.fixture(scope="module")
def shared_home(_demo_template, tmp_path_factory) -> Path:
    """One demo home for the tests that must change nothing in it (they check that)."""
    return copy_home(_demo_template.get("duckdb", None)[0],
                     tmp_path_factory.mktemp("shared") / "firm")


def _runs(home: Path, code: str) -> int:
    return len(portal.runs(home / "portal.duckdb", code, limit=10_000))


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


# --- the command line --------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["status", "--json", "--bogus"], "unrecognized arguments: --bogus"),
    (["status", "--js", "--bogus"], "unrecognized arguments: --bogus"),  # --json, abbreviated
    (["sync", "--json"], "CODE"),
    (["report", "ACME", "profit", "--json"], "invalid choice: 'profit'"),
    (["sync", "ACME", "--until", "yesterday", "--json"], "'yesterday' is not a date"),
    (["sync", "ACME", "--full", "--repair", "--json"], "not allowed with argument"),
    (["nosuchcommand", "--json"], "invalid choice: 'nosuchcommand'"),
])
def test_argument_errors_are_one_json_document(tmp_path, dossync, args, words):
    answer = dossync(tmp_path, *args)
    message = answer.error(ExitCode.USAGE)
    assert words in message
    assert answer.doc()["usage"].startswith("usage: dossync")
    assert "usage: dossync" in answer.err and words in answer.err  # argparse's own answer too


def test_argument_errors_without_json_answer_as_argparse_does(tmp_path, dossync):
    answer = dossync(tmp_path, "status", "--bogus")
    assert answer.exit == ExitCode.USAGE and answer.out == ""
    assert answer.err.startswith("usage: dossync") and "error: unrecognized arguments" in answer.err


@pytest.mark.parametrize("args, limit", [
    (["dossier", "show", "ACME", "--runs", "99999999999999999999999"], 10_000),
    (["propose", "ACME", "--count", "100000000"], 1_000),
    (["demo", "--dossiers", "100000"], 1_000),
    (["demo", "--lines", "1000000000"], 5_000_000),
    (["nightly", "--jobs", "1000"], 64),
])
def test_counts_have_a_limit_the_message_names(tmp_path, dossync, capsys, args, limit):
    message = dossync(tmp_path / "firm", *args, "--json").error(ExitCode.USAGE)
    assert f"at most {limit}" in message
    assert not (tmp_path / "firm").exists()  # refused before anything was made
    command = args[:2] if args[0] == "dossier" else args[:1]
    assert f"at most {limit}" in _help(capsys, *command)  # --help states it


@pytest.mark.parametrize("event", ["new-bookings", "delete-bookings"])
def test_ledger_event_counts_have_a_limit(shared_home, dossync, capsys, event):
    code = codes(shared_home)[0]
    ledger = ledger_path(shared_home, code)
    before = ledger.read_bytes()
    message = dossync(shared_home, "ledger", code, event, "99999999999999999999",
                      "--json").error(ExitCode.FAILED)  # as the package's own N checks
    assert "at most 10000" in message and event in message
    assert ledger.read_bytes() == before
    assert "from 1 to 10000" in _help(capsys, "ledger")


# --- dossier codes: never a path ---------------------------------------------------------
COMMANDS_WITH_A_CODE = [
    ["sync", "{code}"], ["sync", "{code}", "--full"], ["propose", "{code}"],
    ["report", "{code}", "pnl"], ["reconcile", "{code}"], ["ledger", "{code}", "new-bookings", "1"],
    ["dossier", "show", "{code}"], ["dossier", "set", "{code}", "--name", "X"],
    ["dossier", "add", "{code}", "--package", "demo", "--source", "{source}"],
]


@pytest.mark.parametrize("code", ["../victim", "../../victim", "/tmp/victim", "a/../../victim",
                                  ".hidden", "-", "A\x00B"])
def test_a_code_that_is_a_path_touches_nothing(shared_home, dossync, code):
    home = shared_home
    victims = [home.parent / "victim.lock", home / "victim.lock"]  # where ../ would lead
    for victim in victims:
        victim.write_text("precious")
    source = ledger_path(home, codes(home)[0])
    listing = {p: sorted(q.name for q in p.iterdir()) for p in (home.parent, home, home / "locks")}
    portal_before = (home / "portal.duckdb").read_bytes()
    try:
        for args in COMMANDS_WITH_A_CODE:
            argv = [a.format(code=code, source=source) for a in args]
            message = dossync(home, *argv, "--json").error(ExitCode.USAGE)
            assert "is not a dossier code" in message, args
            assert all(v.read_text() == "precious" for v in victims), args
        assert {p: sorted(q.name for q in p.iterdir()) for p in listing} == listing
        assert (home / "portal.duckdb").read_bytes() == portal_before
    finally:
        for victim in victims:
            victim.unlink()


def test_the_lock_refuses_a_path_whatever_the_caller(demo_home):
    """The last line behind the CLI's check: the engine called directly."""
    from dossync.core.sync import sync_dossier

    victim = demo_home.parent / "victim.lock"
    victim.write_text("precious")
    with pytest.raises(UsageError, match="is not a dossier code"):
        sync_dossier(Home(demo_home), "../victim", "simple")
    with pytest.raises(UsageError):
        DossierLock(demo_home / "locks", "../victim")
    # a lock file that is a link to somewhere else is not followed
    code = codes(demo_home)[0]
    link = demo_home / "locks" / f"{code}.lock"
    link.parent.mkdir(exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="leads outside"):
        DossierLock(demo_home / "locks", code).acquire()
    assert victim.read_text() == "precious"


# --- dossync.toml --------------------------------------------------------------------------
@pytest.mark.parametrize("toml, args, words", [
    ('[full_sync]\nmax_rows_per_second = "fast"\n', ["sync", "{code}", "--full"],
     '[full_sync] max_rows_per_second = "fast"'),
    ("[nightly]\njobs = 0\n", ["nightly"], "[nightly] jobs = 0"),
    ('[nightly]\ntime = "25:00"\n', ["nightly"], '[nightly] time = "25:00"'),
    ('[smtp]\nhost = "mail"\nport = "twenty-five"\n', ["outbox", "--flush"],
     '[smtp] port = "twenty-five"'),
    ("full_sync = 3\n", ["sync", "{code}", "--full"], "full_sync = 3"),
    ('[beancount]\nallowed_plugins = "firmplug"\n', ["sync", "{code}"], "allowed_plugins"),
])
def test_a_bad_setting_names_key_file_and_value(demo_home, dossync, toml, args, words):
    code = codes(demo_home)[0]
    (demo_home / "dossync.toml").write_text(toml)
    runs = _runs(demo_home, code)
    message = dossync(demo_home, *[a.format(code=code) for a in args],
                      "--json").error(ExitCode.USAGE)
    assert words in message and str(demo_home / "dossync.toml") in message
    assert _runs(demo_home, code) == runs  # refused before a sync started


def test_every_known_setting_is_checked(tmp_path):
    good = {"smtp": {"host": "mail", "port": 25, "sender": "a@b.example", "starttls": True,
                     "username": "", "timeout": 2.5, "allow_plain_auth": False},
            "nightly": {"time": "02:00", "jobs": 4, "verify": False},
            "full_sync": {"max_rows_per_second": 0, "window": ""}, "portal": {"url": ""},
            "sync": {"idle_days": 90}, "beancount": {"allowed_plugins": ["x"]},
            "ui": {"language": "fr"}, "future": {"anything": object()}}
    Settings.from_dict(good, tmp_path / "dossync.toml")
    for section, key, bad in [("smtp", "port", 0), ("smtp", "starttls", "yes"),
                              ("smtp", "sender", "jän@x.be"), ("smtp", "timeout", True),
                              ("nightly", "jobs", 65), ("nightly", "verify", 1),
                              ("full_sync", "max_rows_per_second", -5),
                              ("full_sync", "max_rows_per_second", 2.5),
                              ("full_sync", "max_rows_per_second", True),
                              ("sync", "idle_days", "90"), ("ui", "language", "de")]:
        config = {**good, section: {**good[section], key: bad}}
        with pytest.raises(UsageError, match=rf"\[{section}\] {key} = .* in .*dossync.toml: "):
            Settings.from_dict(config, tmp_path / "dossync.toml")


# --- addresses and names -----------------------------------------------------------------
ADDRESSES = [
    ("jan@acme.be", True), ("o'brien@acme.example", True), ("jan+books@sub.acme.be", True),
    ("jan@acme_bv.be", False), ("jän@acme.be", False), ("jan@äcme.be", False), ("a@b", False),
    ("a..b@acme.be", False), ("jan@-acme.be", False), ("x@y.example\r\nBcc: z@w.example", False),
    ("<a@b.example>", False), ("jan@acme.be\u2028", False), ("", True),  # '' clears it
]


def test_one_address_rule_for_dossier_set_and_notify(demo_home, dossync):
    from dossync.core.notify import valid_address

    code = codes(demo_home)[0]
    for address, valid in ADDRESSES:
        if address:
            assert valid_address(address) is valid, address  # what --notify will accept
            assert (address_problem(address) is None) is valid, address
        answer = dossync(demo_home, "dossier", "set", code, "--email", address, "--json")
        if valid:
            assert answer.exit == 0 and answer.doc()["email"] == (address or None), address
        else:
            assert repr(address) in answer.error(ExitCode.USAGE)
            assert portal.get_dossier(demo_home / "portal.duckdb", code).email != address


NAMES = [("Foo\u2028Bar", "U+2028"), ("Foo\u2029Bar", "U+2029"), ("Foo\x85Bar", "U+0085"),
         ("Foo\r\nBcc: x", "U+000D"), ("Foo\u202eRAB", "U+202E"), ("Foo\x00", "U+0000"),
         ("   ", "empty"), ("x" * 201, "longer than 200")]


def test_a_name_with_line_breaks_or_controls_is_refused(demo_home, dossync):
    code = codes(demo_home)[0]
    before = portal.get_dossier(demo_home / "portal.duckdb", code).name
    for name, words in NAMES:
        message = dossync(demo_home, "dossier", "set", code, "--name", name,
                          "--json").error(ExitCode.USAGE)
        assert "--name" in message and words in message, name
        assert portal.get_dossier(demo_home / "portal.duckdb", code).name == before
    assert dossync(demo_home, "dossier", "set", code, "--name", "Café Émile BV").exit == 0


def test_notify_with_a_bad_value_already_in_the_portal_fails_clearly(demo_home, dossync):
    """Values that came in before they were checked (an older version, another tool)."""
    code = codes(demo_home)[0]
    path = demo_home / "portal.duckdb"
    good = portal.get_dossier(path, code)
    for field, value, words in [("email", "jän@acme.be", "non-ASCII"),
                                ("email", "jan@acme_bv.be", "not a valid email")]:
        portal.update_dossier(path, code, **{field: value})
        runs = _runs(demo_home, code)
        message = dossync(demo_home, "sync", code, "--until", "2026-10-31", "--notify",
                          "--json").error(ExitCode.USAGE)
        assert code in message and words in message and "nothing was synced" in message
        assert "dossier set" in message and _runs(demo_home, code) == runs
        portal.update_dossier(path, code, **{field: getattr(good, field)})
    assert portal.outbox(path) == []
    # a name with a line separator: refused before the sync, or written on one line
    portal.update_dossier(path, code, name="Foo\u2028Bar")
    answer = dossync(demo_home, "sync", code, "--until", "2026-10-31", "--notify", "--json")
    if answer.exit == ExitCode.USAGE:
        message = answer.error(ExitCode.USAGE)
        assert "--name NAME" in message and "nothing was synced" in message
        assert portal.outbox(path) == []
    else:
        assert answer.exit == 0 and answer.doc()["email"] == "queued", answer.out
        assert all("\u2028" not in e["subject"] for e in portal.outbox(path))


# --- report periods ------------------------------------------------------------------------
@pytest.mark.parametrize("report", ["pnl", "trial-balance", "archive", "dashboard"])
def test_a_period_the_dossier_lacks_is_refused(shared_home, dossync, report):
    code = codes(shared_home)[0]
    known = [p["code"] for p in portal.periods(shared_home / "portal.duckdb", code)]
    for period in ("9999-12", "1999-01"):
        message = dossync(shared_home, "report", code, report, "--period", period,
                          "--json").error(ExitCode.USAGE)
        assert period in message and f"{known[0]}..{known[-1]}" in message


def test_a_period_the_dossier_has_reports_its_year(shared_home, dossync):
    code = codes(shared_home)[0]
    answer = dossync(shared_home, "report", code, "pnl", "--period", "2025-06", "--json")
    assert answer.exit == 0 and answer.doc()["fiscal_year"] == "2025"
    message = dossync(shared_home, "report", code, "dashboard", "--period", "2025-06",
                      "--json").error(ExitCode.USAGE)
    assert "dashboard" in message and "pnl --period 2025-06" in message
    with pytest.raises(UsageError, match="no such period"):  # the library refuses as well
        reports.pnl(shared_home / "portal.duckdb", code, "9999-12")


# --- a damaged portal, --home at a file ---------------------------------------------------------
def _garbage(path: Path) -> None:
    path.write_bytes(b"this was a portal once " * 200)


def _bad_blocks(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for at in range(12288, len(data), 262144):  # the header survives, blocks do not
        data[at:at + 4096] = b"\xab" * 4096
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _bad_blocks], ids=["garbage", "bad-blocks"])
def test_a_damaged_portal_names_the_file_and_what_to_do(demo_home, dossync, damage):
    code = codes(demo_home)[0]
    path = demo_home / "portal.duckdb"
    damage(path)
    before = path.read_bytes()
    for args in (["status"], ["sync", code], ["report", code, "trial-balance"],
                 ["dossier", "set", code, "--nightly"], ["reconcile", code]):
        message = dossync(demo_home, *args, "--json").error(ExitCode.FAILED)
        assert str(path) in message and "damaged" in message and "backup" in message, args
        assert path.read_bytes() == before, args  # nothing was changed


def test_home_at_a_file_is_a_usage_error(tmp_path, dossync, monkeypatch, capsys):
    firm = tmp_path / "firm"
    firm.mkdir()
    (firm / "portal.duckdb").write_bytes(b"")
    message = dossync(firm / "portal.duckdb", "status", "--json").error(ExitCode.USAGE)
    assert "is a file, not a folder" in message and f"--home {firm}?" in message
    other = tmp_path / "notes.txt"
    other.write_text("notes")
    for args in (["dossier", "add", "ACME", "--package", "demo", "--source", str(other)],
                 ["demo", "--dossiers", "1"]):
        assert "--home" in dossync(other, *args, "--json").error(ExitCode.USAGE)
    assert other.read_text() == "notes"
    monkeypatch.setenv("DOSSYNC_HOME", str(other))
    capsys.readouterr()
    assert main(["status", "--json"]) == ExitCode.USAGE
    assert "DOSSYNC_HOME" in json.loads(capsys.readouterr().out)["error"]


# --- failures after a handler printed, unexpected ones, unrecorded runs --------------------
def test_a_handler_that_fails_after_printing_leaves_one_document(tmp_path, dossync, monkeypatch):
    def late_failure(home, args):
        print("stray words from somewhere")  # in JSON mode these go to stderr
        cli._emit_json({"half": "done"})
        raise DossyncError("the last step failed")

    monkeypatch.setattr(cli, "cmd_status", late_failure)
    answer = dossync(tmp_path, "status", "--json")
    assert answer.error(ExitCode.FAILED) == "the last step failed"
    assert "stray words" in answer.err and "half" not in answer.out


def test_an_unexpected_error_is_one_document_and_no_traceback(demo_home, dossync, monkeypatch):
    def defect(*_args, **_kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(reports, "pnl", defect)
    message = dossync(demo_home, "report", codes(demo_home)[0], "pnl",
                      "--json").error(ExitCode.FAILED)
    assert "unexpected error (KeyError" in message and "dossync.log" in message
    assert "KeyError" in (demo_home / "logs" / "dossync.log").read_text()  # the traceback


def test_a_failed_run_that_cannot_be_recorded_is_shown(demo_home, dossync, monkeypatch):
    code = codes(demo_home)[0]
    ledger = ledger_path(demo_home, code)
    ledger.rename(ledger.with_suffix(".moved"))

    def full(*_args, **_kwargs):
        raise TerminalError("the disk holding the portal file is full")

    monkeypatch.setattr(portal, "record_run", full)
    answer = dossync(demo_home, "sync", code, "--json")
    assert answer.exit == ExitCode.FAILED and "Traceback" not in answer.err
    shown = json.dumps(answer.doc()) + answer.err
    assert "is full" in shown  # why it could not be recorded
    assert str(ledger) in shown and "does not exist" in shown  # why the sync failed
    assert str(ledger) in (demo_home / "logs" / "dossync.log").read_text()  # and logged


# --- the log file, a full disk, a read-only HOME ------------------------------------------
def test_an_unwritable_log_file_is_one_warning(demo_home, dossync):
    (demo_home / "logs" / "dossync.log").unlink(missing_ok=True)
    (demo_home / "logs" / "dossync.log").mkdir()  # cannot be opened, even by root
    answer = dossync(demo_home, "status", "--json")
    assert answer.exit == 0 and len(answer.doc()) == 3
    assert answer.err.count("warning") == 1 and "dossync.log" in answer.err


def test_a_log_file_on_a_full_disk_is_one_warning(tmp_path, capsys):
    class Full:
        def write(self, _text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    handler = LogFile(tmp_path / "dossync.log", delay=True)
    handler.stream = Full()
    logger = logging.getLogger("dossync.test.full")
    logger.addHandler(handler)
    try:
        for _ in range(3):
            logger.error("one more line")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.count("warning: the log file") == 1 and "No space left on device" in err
    assert "Traceback" not in err and "Logging error" not in err


def test_a_full_disk_when_taking_the_lock(demo_home, dossync, monkeypatch):
    from dossync.core import locks

    code = codes(demo_home)[0]
    before, runs = portal_trial_balance(demo_home, code), _runs(demo_home, code)

    def no_space(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(locks.os, "pwrite", no_space)
        message = dossync(demo_home, "sync", code, "--json").error(ExitCode.FAILED)
    assert f"{code}.lock" in message and "disk is full" in message
    assert portal_trial_balance(demo_home, code) == before and _runs(demo_home, code) == runs
    assert dossync(demo_home, "sync", code, "--json").exit == 0  # the lock was let go


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def full_disk(demo_home, tmp_path):
    """A copy of the demo home on a small tmpfs with (almost) no room left (root only)."""
    if not _can_mount():
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    size = sum(f.stat().st_size for f in demo_home.rglob("*") if f.is_file())
    if not _mount("-t", "tmpfs", "-o", f"size={size // 1024 + 4096}k", "tmpfs", str(mnt)):
        pytest.skip("this machine does not let us mount a tmpfs")
    try:
        home = mnt / "firm"
        shutil.copytree(demo_home, home)
        for dossier in portal.list_dossiers(home / "portal.duckdb"):  # ledgers stay outside
            portal.update_dossier(home / "portal.duckdb", dossier.code,
                                  source=str(demo_home / "ledgers" / Path(dossier.source).name))
        yield home, mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave: int = 0) -> None:
    """Take the disk's room but `leave` bytes (unbuffered: nothing is left to flush)."""
    stat = os.statvfs(mnt)
    with open(mnt / f"filler-{leave}", "wb", buffering=0) as f:
        try:
            f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
            while leave == 0:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_full_disk_fails_clearly_and_changes_nothing(full_disk, dossync):
    home, mnt = full_disk
    code = codes(home)[0]
    before, runs = portal_trial_balance(home, code), _runs(home, code)
    _fill(mnt, leave=64 * 1024)  # room for the lock, none for the portal's commit
    answer = dossync(home, "sync", code, "--full", "--json")
    assert answer.exit == ExitCode.FAILED and "Traceback" not in answer.err
    doc = answer.doc()
    error = doc["error"]  # the failed run (when it could be recorded) or the error document
    assert "No space left on device" in error or "is full" in error, error
    assert portal_trial_balance(home, code) == before
    assert _runs(home, code) in (runs, runs + 1)  # at most the failed run, recorded
    _fill(mnt)  # not a byte left: even the lock cannot be written
    message = dossync(home, "dossier", "set", code, "--name", "Another Name BV",
                      "--json").error(ExitCode.FAILED)
    assert "full" in message and str(home / "portal.duckdb") in message
    answer = dossync(home, "status", "--json")  # reading still works
    assert answer.exit == 0 and {r["code"] for r in answer.doc()} == set(codes(home))


@pytest.fixture
def read_only_home(demo_home, tmp_path):
    """The demo home seen through a read-only bind mount (root), or without write rights."""
    if os.geteuid() != 0:
        for path in [demo_home, *demo_home.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        yield demo_home
        for path in [demo_home, *demo_home.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        return
    view = tmp_path / "read-only"
    view.mkdir()
    if not (_mount("--bind", str(demo_home), str(view))
            and _mount("-o", "remount,bind,ro", str(view))):
        subprocess.run(["umount", str(view)], capture_output=True)
        pytest.skip("this machine does not let us bind-mount read-only")
    try:
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


def test_reading_commands_work_on_a_read_only_home(read_only_home, dossync):
    home = read_only_home
    code = codes(home)[0]
    for args in (["status"], ["dossier", "list"], ["dossier", "show", code], ["outbox"],
                 ["report", code, "pnl"], ["report", code, "trial-balance", "--period", "2025-12"],
                 ["reconcile", code]):
        answer = dossync(home, *args, "--json")
        assert answer.exit == 0, (args, answer.err)
        answer.doc()
        assert answer.err.count("warning: the log file") <= 1 and "Traceback" not in answer.err
    for args in (["sync", code], ["dossier", "set", code, "--name", "Another Name BV"]):
        message = dossync(home, *args, "--json").error(ExitCode.FAILED)
        assert "Read-only file system" in message or "Permission denied" in message
        assert "writable" in message or "user that owns" in message
