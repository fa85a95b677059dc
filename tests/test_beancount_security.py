"""A Beancount ledger cannot run code as dossync, nor read another client's folder.

beancount's loader imports and runs the module of every `plugin` line, and
`option "insert_pythonpath" "TRUE"` lets that module be a file beside the
ledger; `include` reads any file. dossync parses and checks first
(core.connectors.beancount_guard): Beancount's own plugins and the firm's
list in HOME/dossync.toml run, nothing else; includes stay in the ledger's
folder. The evil plugin here writes a marker file when it is imported and
when it runs: beancount's own loader makes it appear (so the test can
fail), dossync never does, on `dossier add`, sync, reconcile or propose.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import ROOT, cli
from dossync.core.model import ConnectorSettings, ExitCode, TerminalError, UsageError

import beancount  # noqa: E402,F401  (a dependency: missing, the suite must fail, not skip)
from dossync.core.connectors.beancount_guard import LedgerRefused  # noqa: E402
from dossync.core.settings import Settings  # noqa: E402

BOOKS = '''option "operating_currency" "EUR"
2024-01-01 open Assets:Bank:KBC
2024-01-01 open Assets:Receivable
2024-01-01 open Liabilities:Payable
2024-01-01 open Liabilities:VAT:Due
2024-01-01 open Income:Sales
2024-01-01 open Expenses:Office
2024-01-01 open Equity:Opening

2024-01-02 * "Opening balance"
  Assets:Bank:KBC   10000.00 EUR
  Equity:Opening

2024-01-10 * "Brouwerij Peeters" "sales invoice"
  Assets:Receivable    121.00 EUR
  Income:Sales        -100.00 EUR
  Liabilities:VAT:Due  -21.00 EUR
'''
EVIL = '''"""Runs as whoever loads the ledger."""
from pathlib import Path

MARKER = Path({marker!r})
MARKER.write_text("imported")

__plugins__ = ("run",)


def run(entries, options_map, config=None):
    MARKER.write_text("ran")
    return entries, []
'''
FIRM = '''"""A plugin the firm trusts: it notes that it ran, and adds nothing."""
from pathlib import Path

__plugins__ = ("run",)


def run(entries, options_map, config=None):
    Path({marker!r}).write_text(f"ran with {{config}}")
    return entries, []
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under a folder and its bytes (a __pycache__ would show an import)."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def evil(tmp_path):
    """A client folder whose ledger brings its own plugin (insert_pythonpath) and the marker
    that plugin writes; beancount's own loader runs it (checked here, in a child process)."""
    marker = tmp_path / "PWNED"
    folder = tmp_path / "clients" / "evil"
    _write(folder / "evilplug.py", EVIL.format(marker=str(marker)))
    ledger = _write(folder / "main.beancount",
                    'option "insert_pythonpath" "TRUE"\nplugin "evilplug"\n' + BOOKS)
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom beancount import loader\n"
                           "loader._uncached_load_file(sys.argv[1], None, None, None)",
                           str(ledger)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran"  # the fixture is evil indeed: beancount runs it
    marker.unlink()
    for cache in folder.glob("__pycache__"):
        for f in cache.iterdir():
            f.unlink()
        cache.rmdir()
    return ledger, marker


def _one_json(done: subprocess.CompletedProcess):
    """The one JSON document on stdout (json.loads refuses anything after it)."""
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def _exit_of(doc: dict) -> int:
    return doc.get("exit", doc.get("exit_code"))


# --- through the CLI: add, sync, reconcile, propose ---------------------------------------

def test_dossier_add_refuses_a_ledger_that_brings_its_own_plugin(tmp_path, evil):
    ledger, marker = evil
    home = tmp_path / "firm"
    good = _write(tmp_path / "clients" / "good" / "main.beancount", BOOKS)
    assert cli(home, "dossier", "add", "GOOD", "--package", "beancount",
               "--source", str(good)).returncode == 0
    dossiers = _one_json(cli(home, "dossier", "list", "--json"))
    status = _one_json(cli(home, "status", "--json"))
    folder = _files(ledger.parent)

    done = cli(home, "dossier", "add", "EVIL", "--package", "beancount", "--source", str(ledger),
               "--json")
    assert done.returncode == ExitCode.FAILED, done.stderr
    doc = _one_json(done)
    assert _exit_of(doc) == ExitCode.FAILED
    message = doc["error"]
    assert f"{ledger}:1: option \"insert_pythonpath\"" in message
    assert f'{ledger}:2: plugin "evilplug" is not allowed' in message
    assert "[beancount] allowed_plugins in HOME/dossync.toml" in message
    assert "nothing was loaded and none of its plugins ran" in message
    assert not marker.exists()
    assert _files(ledger.parent) == folder  # not even a __pycache__: nothing was imported
    # the portal is as it was: no EVIL dossier, half-registered or otherwise
    assert _one_json(cli(home, "dossier", "list", "--json")) == dossiers
    assert _one_json(cli(home, "status", "--json")) == status

    # without --json: the same refusal on stderr, the same exit code
    done = cli(home, "dossier", "add", "EVIL", "--package", "beancount", "--source", str(ledger))
    assert done.returncode == ExitCode.FAILED and 'plugin "evilplug"' in done.stderr
    assert not marker.exists()


def test_a_plugin_written_into_a_synced_ledger_never_runs(tmp_path, evil):
    """The accountant's ledger was fine when added; then someone writes a plugin line into
    it. The module is importable by dossync (on its PYTHONPATH here): still refused."""
    _, marker = evil
    evil_folder = marker.parent / "clients" / "evil"
    ledger = _write(tmp_path / "clients" / "acme" / "main.beancount", BOOKS)
    home = tmp_path / "firm"
    env = {"PYTHONPATH": str(evil_folder)}
    assert cli(home, "dossier", "add", "ACME", "--package", "beancount", "--source",
               str(ledger), env=env).returncode == 0
    balance = _one_json(cli(home, "report", "ACME", "trial-balance", "--json"))
    pending = _one_json(cli(home, "status", "--json"))[0]["pending_proposals"]
    ledger.write_text('plugin "evilplug" "config"\n' + BOOKS + '''
2024-01-20 * "more"
  Assets:Bank:KBC   5.00 EUR
  Income:Sales
''')
    folder = _files(ledger.parent)
    refusal = f'{ledger}:1: plugin "evilplug" is not allowed'

    done = cli(home, "sync", "ACME", "--json", env=env)
    assert done.returncode == ExitCode.FAILED
    doc = _one_json(done)
    assert doc["status"] == "failed" and refusal in doc["error"], doc
    done = cli(home, "sync", "ACME", "--full", "--json", env=env)
    assert done.returncode == ExitCode.FAILED and refusal in _one_json(done)["error"]

    done = cli(home, "reconcile", "ACME", "--json", env=env)
    assert done.returncode == ExitCode.FAILED
    doc = _one_json(done)
    assert refusal in doc["error"] and _exit_of(doc) == ExitCode.FAILED

    done = cli(home, "propose", "ACME", "--count", "2", "--json", env=env)
    assert done.returncode == ExitCode.FAILED
    doc = _one_json(done)
    assert refusal in doc["error"] and _exit_of(doc) == ExitCode.FAILED

    assert not marker.exists()
    assert _files(ledger.parent) == folder  # no proposals file, no include line
    # the portal still shows the books as they were synced
    assert _one_json(cli(home, "report", "ACME", "trial-balance", "--json")) == balance
    assert _one_json(cli(home, "status", "--json"))[0]["pending_proposals"] == pending

    # the line gone, everything works again
    ledger.write_text(ledger.read_text().replace('plugin "evilplug" "config"\n', ""))
    assert cli(home, "sync", "ACME", env=env).returncode == 0
    assert not marker.exists()


def test_a_plugin_the_firm_lists_in_dossync_toml_runs(tmp_path):
    """[beancount] allowed_plugins reaches every load through the CLI (add and sync)."""
    marker = tmp_path / "RAN"
    plugins = tmp_path / "site"
    _write(plugins / "firmplug.py", FIRM.format(marker=str(marker)))
    ledger = _write(tmp_path / "clients" / "acme" / "main.beancount",
                    'plugin "firmplug" "checks"\n' + BOOKS)
    home = tmp_path / "firm"
    env = {"PYTHONPATH": str(plugins)}
    done = cli(home, "dossier", "add", "ACME", "--package", "beancount", "--source",
               str(ledger), "--json", env=env)
    assert done.returncode == ExitCode.FAILED and "firmplug" in _one_json(done)["error"]
    assert not marker.exists()

    _write(home / "dossync.toml", '[beancount]\nallowed_plugins = ["firmplug"]\n')
    done = cli(home, "dossier", "add", "ACME", "--package", "beancount", "--source",
               str(ledger), "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.read_text() == "ran with checks"
    marker.unlink()
    assert cli(home, "sync", "ACME", env=env).returncode == 0
    assert marker.exists()

    # a malformed list is the firm's configuration error, said as such
    _write(home / "dossync.toml", '[beancount]\nallowed_plugins = "firmplug"\n')
    done = cli(home, "sync", "ACME", "--json", env=env)
    assert done.returncode != 0 and "allowed_plugins" in done.stdout + done.stderr


# --- the connector and the proposals writer ------------------------------------------------

def _open(ledger: Path, allowed: tuple[str, ...] = ()):
    from dossync.core.connectors import open_connector

    return open_connector("beancount", ledger, ConnectorSettings(allowed_plugins=allowed))


def _descriptions(ledger: Path, allowed: tuple[str, ...] = ()) -> list:
    return _open(ledger, allowed).tables["bookings"].column("description").to_pylist()


def test_the_proposals_writer_refuses_before_writing_anything(evil):
    from dossync.core.connectors.beancount_proposals import receive_proposals
    from dossync.core.model import Proposal, ProposalLine

    ledger, marker = evil
    folder = _files(ledger.parent)
    proposal = Proposal(ref="WL-EVIL-00000001", journal="BC-SALES", kind="sales",
                        date="2024-01-20", relation_id=None, amount=Decimal("121.00"),
                        lines=(ProposalLine("Assets:Receivable", Decimal("121"), Decimal(0)),
                               ProposalLine("Income:Sales", Decimal(0), Decimal("121"))))
    with pytest.raises(LedgerRefused, match='plugin "evilplug" is not allowed'):
        receive_proposals(ledger, ConnectorSettings(), [proposal])
    assert not marker.exists() and _files(ledger.parent) == folder


def test_insert_pythonpath_is_refused_whatever_the_plugins(tmp_path):
    ledger = _write(tmp_path / "books" / "main.beancount",
                    'option "insert_pythonpath" "TRUE"\n'
                    'plugin "beancount.plugins.auto_accounts"\n' + BOOKS)
    with pytest.raises(LedgerRefused, match=rf'{ledger}:1: option "insert_pythonpath"') as refused:
        _open(ledger, ("beancount.*", "evilplug"))
    assert isinstance(refused.value, TerminalError)
    assert refused.value.exit_code == ExitCode.FAILED
    # in an included file too (beancount would put that file's folder on the path)
    ledger.write_text(BOOKS + 'include "sub/more.beancount"\n')
    more = _write(tmp_path / "books" / "sub" / "more.beancount",
                  'option "insert_pythonpath" "true"\n')
    with pytest.raises(LedgerRefused, match=rf'{more}:1: option "insert_pythonpath"'):
        _open(ledger)
    more.write_text('option "insert_pythonpath" "FALSE"\n')  # off: nothing to refuse
    assert len(_descriptions(ledger)) == 2


def test_beancounts_own_plugins_run(tmp_path):
    # auto_accounts opens the accounts: without it running, these books have errors
    ledger = _write(tmp_path / "books" / "main.beancount",
                    'option "operating_currency" "EUR"\n'
                    'plugin "beancount.plugins.auto_accounts"\n'
                    'plugin "beancount.plugins.check_commodity" "{\'.*\': \'EUR\'}"\n'
                    '2024-01-02 * "Opening balance"\n'
                    '  Assets:Bank:KBC   100.00 EUR\n  Equity:Opening\n')
    accounts = _open(ledger).tables["accounts"].column("code").to_pylist()
    assert accounts == ["Assets:Bank:KBC", "Equity:Opening"]


def test_a_beancount_plugin_configuration_that_is_code_is_refused(tmp_path):
    """check_commodity, commodity_attr and check_average_cost eval() their configuration:
    only a plain Python value is let through."""
    marker = tmp_path / "PWNED"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    ledger = _write(tmp_path / "books" / "main.beancount",
                    f'plugin "beancount.plugins.commodity_attr" "{code}"\n' + BOOKS)
    from beancount import loader

    loader._uncached_load_file(str(ledger), None, None, None)
    assert marker.exists()  # beancount runs it
    marker.unlink()
    with pytest.raises(LedgerRefused, match=rf'{ledger}:1: plugin "beancount.plugins.'
                                            r'commodity_attr" evaluates its configuration'):
        _open(ledger)
    assert not marker.exists()
    # a plain value is fine; plugins that do not evaluate theirs take any text
    ledger.write_text('plugin "beancount.plugins.commodity_attr" "{\'EUR\': []}"\n' + BOOKS)
    assert len(_descriptions(ledger)) == 2
    ledger.write_text('plugin "beancount.plugins.currency_accounts" "Equity:Currency"\n' + BOOKS)
    assert len(_descriptions(ledger)) == 2


def test_an_allowed_plugin_runs_and_others_beside_it_do_not(tmp_path, monkeypatch):
    marker = tmp_path / "RAN"
    site = tmp_path / "site"
    _write(site / "firmplug.py", FIRM.format(marker=str(marker)))
    _write(site / "firm_plugins" / "__init__.py", "")
    _write(site / "firm_plugins" / "vat.py", FIRM.format(marker=str(marker) + ".vat"))
    monkeypatch.syspath_prepend(str(site))
    ledger = _write(tmp_path / "books" / "main.beancount",
                    'plugin "firmplug" "x"\nplugin "firm_plugins.vat"\n' + BOOKS)
    with pytest.raises(LedgerRefused) as refused:
        _open(ledger, ("firmplug",))
    assert 'main.beancount:2: plugin "firm_plugins.vat" is not allowed' in str(refused.value)
    assert 'plugin "firmplug"' not in str(refused.value)
    assert not marker.exists()
    assert len(_descriptions(ledger, ("firmplug", "firm_plugins.*"))) == 2
    assert marker.read_text() == "ran with x"
    assert Path(str(marker) + ".vat").read_text() == "ran with None"
    # a name that merely starts like an allowed one is not it
    ledger.write_text('plugin "firmplugx"\n' + BOOKS)
    with pytest.raises(LedgerRefused, match='plugin "firmplugx"'):
        _open(ledger, ("firmplug", "firm_plugins.*"))


def test_the_firms_list_comes_from_dossync_toml(tmp_path):
    from dossync.core.connectors import connector_settings
    from dossync.core.home import Home
    from dossync.core.model import Dossier

    home = Home(tmp_path)
    dossier = Dossier(code="ACME", name="Acme", package="beancount", source="x.beancount")
    assert connector_settings(home, dossier).allowed_plugins == ()
    _write(home.config_file, '[beancount]\nallowed_plugins = ["firmplug", "firm_plugins.*"]\n')
    assert connector_settings(home, dossier).allowed_plugins == ("firmplug", "firm_plugins.*")
    other = Dossier(code="GC", name="GC", package="gnucash", source="x.gnucash")
    assert connector_settings(home, other).allowed_plugins == ()
    for bad in ('"firmplug"', '[1]', '["firm plug"]', '["*"]', '["../evil"]'):
        with pytest.raises(UsageError, match="allowed_plugins"):
            Settings.from_dict({"beancount": {"allowed_plugins": json.loads(bad)}}, "dossync.toml")


# --- includes: the ledger's folder, and nothing outside it ----------------------------------

OTHER = '''2024-01-15 * "Other client's secret"
  Assets:Bank:KBC   999.00 EUR
  Income:Sales
'''


@pytest.fixture
def two_clients(tmp_path):
    ledger = _write(tmp_path / "clients" / "acme" / "main.beancount", BOOKS)
    other = _write(tmp_path / "clients" / "other" / "x.beancount", OTHER)
    return ledger, other


@pytest.mark.parametrize("include, reads", [
    ("../other/x.beancount", "{other}"),
    ("../other/*.beancount", "{other.parent}/*.beancount"),  # refused before it is globbed
    ("sub/../../other/x.beancount", "{other}"),
    ("{other}", "{other}"),
])
def test_an_include_outside_the_folder_is_refused_naming_it(two_clients, include, reads):
    ledger, other = two_clients
    include, reads = include.format(other=other), reads.format(other=other)
    ledger.write_text(BOOKS + f'include "{include}"\n')
    line = BOOKS.count("\n") + 1
    with pytest.raises(LedgerRefused) as refused:
        _open(ledger)
    message = str(refused.value)
    assert f'{ledger}:{line}: include "{include}" reads {reads}' in message
    assert f"outside the ledger's folder {ledger.parent}" in message
    assert "Move the file into it, or remove the line" in message


def test_an_include_that_escapes_through_a_symlink_is_refused(two_clients):
    ledger, other = two_clients
    (ledger.parent / "link.beancount").symlink_to(other)
    (ledger.parent / "shared").symlink_to(other.parent, target_is_directory=True)
    for include in ("link.beancount", "shared/x.beancount", "*.beancount", "**/*.beancount"):
        ledger.write_text(BOOKS + f'include "{include}"\n')
        with pytest.raises(LedgerRefused, match=rf"reads {other}, outside the ledger's folder"):
            _open(ledger)


def test_an_included_file_cannot_reach_out_either(two_clients):
    ledger, other = two_clients
    ledger.write_text(BOOKS + 'include "2024/q1.beancount"\n')
    q1 = _write(ledger.parent / "2024" / "q1.beancount", 'include "../../other/x.beancount"\n'
                'plugin "evilplug"\n')
    with pytest.raises(LedgerRefused) as refused:
        _open(ledger)
    assert f'{q1}:1: include "../../other/x.beancount" reads {other}' in str(refused.value)
    assert f'{q1}:2: plugin "evilplug" is not allowed' in str(refused.value)


def test_includes_inside_the_folder_work(two_clients):
    ledger, _ = two_clients
    ledger.write_text(BOOKS + 'include "2024/*.beancount"\ninclude "extra.beancount"\n')
    _write(ledger.parent / "2024" / "q1.beancount",
           '2024-02-01 * "Q1"\n  Assets:Bank:KBC   1.00 EUR\n  Income:Sales\n'
           'include "../shared/q2.beancount"\n')
    _write(ledger.parent / "shared" / "q2.beancount",
           '2024-04-01 * "Q2"\n  Assets:Bank:KBC   2.00 EUR\n  Income:Sales\n')
    _write(ledger.parent / "extra.beancount",
           '2024-05-01 * "Extra"\n  Assets:Bank:KBC   3.00 EUR\n  Income:Sales\n')
    (ledger.parent / "alias.beancount").symlink_to(ledger.parent / "extra.beancount")
    assert _descriptions(ledger) == ["Opening balance", "Brouwerij Peeters | sales invoice",
                                     "Q1", "Q2", "Extra"]
    ledger.write_text(BOOKS + 'include "alias.beancount"\n')  # a symlink that stays inside
    assert _descriptions(ledger)[-1] == "Extra"


def test_an_encrypted_include_is_refused(tmp_path):
    ledger = _write(tmp_path / "books" / "main.beancount", BOOKS + 'include "secret.gpg"\n')
    (tmp_path / "books" / "secret.gpg").write_bytes(b"\x85\x01\x0c\x03binary")
    with pytest.raises(LedgerRefused, match=r"secret.gpg: an encrypted file: dossync does not "
                                            r"decrypt ledgers"):
        _open(ledger)


# --- the guarded loader is beancount's loader, checked first --------------------------------

CORPUS = ROOT / "tests" / "corpus" / "beancount"


@pytest.mark.parametrize("name", ["budgets-example", "edit-example", "fava-example",
                                  "off-by-one", "query-example", "errors"])
def test_the_guarded_load_equals_beancounts_own(name):
    """Real ledgers (one with beancount.plugins.auto_accounts, one with errors): the same
    entries, in the same order, with the same metadata, errors and options."""
    from beancount import loader
    from beancount.core import compare

    from dossync.core.connectors.beancount_guard import load_ledger

    path = str(CORPUS / f"{name}.beancount")
    expected = loader._uncached_load_file(path, None, None, None)
    got = load_ledger(path)
    assert len(got[0]) == len(expected[0])
    for a, b in zip(got[0], expected[0]):
        assert compare.hash_entry(a) == compare.hash_entry(b) and a.meta == b.meta
    assert [(e.source, e.message) for e in got[1]] == [(e.source, e.message) for e in expected[1]]
    assert ({k: v for k, v in got[2].items() if k != "dcontext"}
            == {k: v for k, v in expected[2].items() if k != "dcontext"})


def test_missing_and_duplicate_includes_are_beancounts_errors(tmp_path):
    ledger = _write(tmp_path / "books" / "main.beancount",
                    BOOKS + 'include "nope/*.beancount"\ninclude "main.beancount"\n')
    with pytest.raises(Exception, match='File glob "nope/\\*.beancount" does not match any '
                                        'files') as raised:
        _open(ledger)
    assert "Duplicate filename parsed" in str(raised.value)
    assert not isinstance(raised.value, LedgerRefused)
    assert os.listdir(ledger.parent) == ["main.beancount"]
