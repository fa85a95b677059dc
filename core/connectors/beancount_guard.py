"""The one way dossync loads a Beancount ledger: checked first, so that it runs no code of its own.

A Beancount ledger is not only data. `plugin "x"` makes beancount's loader
import the Python module x and call it; `option "insert_pythonpath" "TRUE"`
puts the ledger's folder first on Python's import path, so that x can be a
file lying beside the ledger; `include` reads any file the process can read,
another client's ledger too. dossync loads ledgers as the firm's service
user on `dossier add`, every sync, reconcile and propose: whoever can write
in one client's ledger folder could run code as that user, or pull another
client's books into this client's portal.

So `load_ledger` reads and parses every file first (beancount's parser
builds data and runs nothing), and checks what the files ask for before
beancount executes anything:

- plugins: Beancount's own (`beancount.plugins.*`, `beancount.ops.*`) and
  the modules the firm lists in HOME/dossync.toml
  (`[beancount] allowed_plugins = ["firm_checks", "firm_plugins.*"]`: a name,
  or a package and everything in it) run; any other is refused. Three of
  Beancount's own plugins (check_commodity, commodity_attr,
  check_average_cost) evaluate their configuration string as Python: theirs
  must be a plain Python value (a dict, list, string, number...). Plugin
  lines of included files are checked too, though beancount runs only the
  top file's.
- `option "insert_pythonpath"` set to true is refused in any file, always:
  code a ledger brings along is never imported. A firm that trusts a plugin
  installs it in dossync's environment and lists it.
- includes, globs too, must stay inside the ledger's folder (the folder of
  the ledger file, symlinks resolved, and its subfolders): the pattern
  itself, then every file it matches, by its real path.
- an encrypted file (.gpg, or .asc with a PGP message) is refused: reading
  it means running gpg.

A refused ledger raises LedgerRefused (a TerminalError: exit 1), listing
every problem by file and line with what to do; nothing was loaded and no
plugin ran. Otherwise beancount's own pipeline (booking, plugins, validation:
what `beancount.loader` does after parsing) runs on exactly the entries
parsed here: no file is read twice, so what runs is what was checked.
"""
from __future__ import annotations

import ast
import functools
import glob
import importlib.util
import io
import os
import re
import stat
from os import path as osp
from pathlib import Path

from beancount import loader
from beancount.core import data
from beancount.ops import validation
from beancount.parser import _parser, booking, grammar, options

from dossync.core.model import LedgerUnavailable, TerminalError
from dossync.core.settings import MODULE_NAME

OWN_PLUGINS = ("beancount.plugins.", "beancount.ops.")
CONFIG_KEY = "[beancount] allowed_plugins in HOME/dossync.toml"
_MODULE = MODULE_NAME  # the rule [beancount] allowed_plugins is checked with
# a plugin whose source calls eval() on something (its configuration string)
_EVAL = re.compile(r"(?<![\w.])eval\s*\(")


class LedgerRefused(TerminalError):
    """A Beancount ledger asks for what dossync will not do: run a plugin the firm does not
    trust, import code from its folder, read a file outside its folder. Nothing was loaded
    and nothing of it ran; the message lists every problem by file and line."""


# --- the firm's list ------------------------------------------------------------------------
def plugin_allowed(name: str, allowed: tuple[str, ...] = ()) -> bool:
    """Whether dossync lets a ledger run plugin `name`: Beancount's own, or one the firm lists."""
    name = loader.RENAMED_MODULES.get(name, name)  # what beancount would really import
    if not _MODULE.match(name):
        return False
    if name.startswith(OWN_PLUGINS):
        return True
    return any(name == a or (a.endswith(".*") and name.startswith(a[:-1])) for a in allowed)


@functools.cache
def _evaluates_config(name: str) -> bool:
    """Whether Beancount's own plugin `name` evaluates its configuration string as Python
    (check_commodity, commodity_attr and check_average_cost do: `eval(config)`), read from
    its source without running it; True when the source cannot be read (the strict side)."""
    try:
        spec = importlib.util.find_spec(loader.RENAMED_MODULES.get(name, name))
    except (ImportError, ValueError):  # no such module: beancount says so, nothing runs
        return False
    if spec is None:
        return False
    if not (spec.origin or "").endswith(".py"):
        return True
    try:
        return bool(_EVAL.search(Path(spec.origin).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return True


def _is_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


# --- parsing, with the lines of what a file asks for ----------------------------------------
class _Directives(grammar.Builder):
    """beancount's own parse builder, noting the line of each include, plugin and
    insert_pythonpath option (the options map keeps the values only)."""

    def __init__(self) -> None:
        super().__init__()
        self.includes: list[tuple[int, str]] = []
        self.plugins: list[tuple[int, str, str | None]] = []
        self.pythonpath: list[int] = []

    def include(self, filename, lineno, include_filename):
        self.includes.append((lineno, include_filename))
        return super().include(filename, lineno, include_filename)

    def plugin(self, filename, lineno, plugin_name, plugin_config):
        self.plugins.append((lineno, plugin_name, plugin_config))
        return super().plugin(filename, lineno, plugin_name, plugin_config)

    def option(self, filename, lineno, key, value):
        descriptor = options.OPTIONS.get(key)
        real = (descriptor.alias or key) if descriptor else key
        if real == "insert_pythonpath" and isinstance(value, str) \
                and options.options_validate_boolean(value):
            self.pythonpath.append(lineno)
        return super().option(filename, lineno, key, value)


def _parse(raw: bytes, name: str) -> tuple[list, list, dict, _Directives]:
    """`beancount.parser.parser.parse_file(name)` on bytes already read, and the directives'
    lines. Parsing builds data only: nothing is imported or run."""
    builder = _Directives()
    _parser.Parser(builder).parse(io.BytesIO(raw), filename=name, lineno=1)
    entries, errors, options_map = builder.finalize()
    return entries, errors, options_map, builder


def _utf8(raw: bytes, name: str) -> None:
    """Refuse a file that is not valid UTF-8, naming it and the line (LedgerUnavailable):
    beancount reads one without complaint, the bad bytes turned into something the
    accountant did not write, and dossync will not mirror that."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LedgerUnavailable(f"{name}:{line}: line {line} is not valid UTF-8; save the file "
                                f"as UTF-8 (nothing was loaded)") from None


def _read(name: str, real: str) -> bytes:
    """A ledger file's bytes, read from its real path; only a regular file (a FIFO or a
    device put in the folder would hang or flood the read)."""
    try:
        with open(real, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise LedgerUnavailable(f"{name} is not a regular file: a Beancount ledger and "
                                        f"the files it includes must be plain files")
            return fh.read()
    except OSError as exc:
        raise LedgerUnavailable(f"beancount ledger file {name} cannot be read: "
                                f"{exc.strerror or exc}") from exc


def _encrypted(name: str, raw: bytes) -> bool:
    """`beancount.utils.encryption.is_encrypted_file`, on the bytes already read."""
    extension = osp.splitext(name)[1]
    return extension == ".gpg" or (extension == ".asc" and b"--BEGIN PGP MESSAGE--" in raw[:1024])


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _load_error(message: str):
    return loader.LoadError(data.new_metadata("<load>", 0), message)


def _plugin_problems(name: str, found: _Directives, allowed: tuple[str, ...]) -> list[str]:
    problems = []
    for lineno in found.pythonpath:
        problems.append(
            f'{name}:{lineno}: option "insert_pythonpath" would let Python code lying beside '
            f"the ledger be imported: dossync never allows it. Remove the line; a plugin the "
            f"firm trusts is installed in dossync's environment and listed under {CONFIG_KEY}")
    for lineno, plugin, config in found.plugins:
        if not plugin_allowed(plugin, allowed):
            problems.append(
                f'{name}:{lineno}: plugin "{plugin}" is not allowed: dossync runs Beancount\'s '
                f"own plugins (beancount.plugins.*, beancount.ops.*) and those listed under "
                f"{CONFIG_KEY}. Add it there if the firm trusts its code, or remove the line")
        elif (config is not None and plugin.startswith(OWN_PLUGINS)
              and _evaluates_config(plugin) and not _is_literal(config)):
            problems.append(
                f'{name}:{lineno}: plugin "{plugin}" evaluates its configuration as Python, '
                f"and this one is not a plain value: dossync does not run it. Write the "
                f"configuration as a Python literal (a dict, list, string or number)")
    return problems


def parse_ledger(top: str | Path, allowed: tuple[str, ...] = ()
                 ) -> tuple[list, list, dict]:
    """Parse a ledger and its includes as `beancount.loader` does, checking each file before
    the files it includes are read (see the module); raises LedgerRefused with every problem,
    LedgerUnavailable for a file that cannot be read or is not UTF-8.

    Returns beancount's (entries, parse errors, options map), entries in parse order:
    the same files in the same order, the same names, the same load errors for a duplicate,
    a missing file or a glob that matches nothing.
    """
    top = osp.expandvars(osp.expanduser(str(top)))
    if not osp.isabs(top):
        top = osp.normpath(osp.join(os.getcwd(), top))
    top = osp.normpath(top)
    folder = osp.dirname(osp.realpath(top))  # the ledger's own folder, symlinks resolved
    entries: list = []
    errors: list = []
    problems: list[str] = []
    top_options = None
    other_options: list[dict] = []
    seen: set[str] = set()
    # (file name as beancount names it, and the include that asked for it: file, line, pattern)
    queue: list[tuple[str, tuple[str, int, str] | None]] = [(top, None)]
    while queue:
        name, asked_by = queue.pop(0)
        if name in seen:
            errors.append(_load_error(f'Duplicate filename parsed: "{name}"'))
            continue
        real = osp.realpath(name)
        if asked_by and not _inside(real, folder):  # judged where it is read, symlinks resolved
            problems.append(_include_problem(*asked_by, real, folder))
            continue
        if not osp.exists(name):
            errors.append(_load_error(f'File "{name}" does not exist'))
            continue
        seen.add(name)
        raw = _read(name, real)
        if _encrypted(name, raw):
            problems.append(f"{name}: an encrypted file: dossync does not decrypt ledgers (that "
                            f"would run gpg). Keep the client's books unencrypted in its folder")
            continue
        _utf8(raw, name)
        file_entries, file_errors, file_options, found = _parse(raw, name)
        entries.extend(file_entries)
        errors.extend(file_errors)
        if top_options is None:
            top_options = file_options
        else:
            other_options.append(file_options)
        problems.extend(_plugin_problems(name, found, allowed))
        here = osp.dirname(name)
        for lineno, pattern in found.includes:
            # the pattern as written first: a glob that leaves the folder is not even run
            written = osp.normpath(osp.join(osp.realpath(here), pattern))
            if not _inside(written, folder):
                problems.append(_include_problem(name, lineno, pattern, written, folder))
                continue
            matches = glob.glob(pattern if osp.isabs(pattern) else osp.join(here, pattern),
                                recursive=True)
            if not matches:
                errors.append(_load_error(f'File glob "{pattern}" does not match any files'))
            for match in matches:
                match = osp.normpath(match if osp.isabs(match) else osp.join(here, match))
                queue.append((match, (name, lineno, pattern)))
    if problems:
        raise LedgerRefused(
            f"beancount ledger {top} refused: nothing was loaded and none of its plugins ran. "
            f"Fix the ledger (or the firm's list), then try again:\n"
            + "\n".join(f"  {p}" for p in problems))
    options_map = top_options if top_options is not None else options.OPTIONS_DEFAULTS.copy()
    options_map["include"] = sorted(seen)
    return entries, errors, loader.aggregate_options_map(options_map, other_options)


def _include_problem(name: str, lineno: int, pattern: str, target: str, folder: str) -> str:
    return (f'{name}:{lineno}: include "{pattern}" reads {target}, outside the ledger\'s folder '
            f"{folder}: dossync reads only the files in that folder and its subfolders. Move "
            f"the file into it, or remove the line")


def load_ledger(top: str | Path, allowed: tuple[str, ...] = ()) -> tuple[list, list, dict]:
    """`beancount.loader.load_file(top)`, checked first, without the pickle cache: the same
    (entries, errors, options map), or LedgerRefused before anything of the ledger ran.

    allowed: the firm's plugins beyond Beancount's own
    (`home.settings().beancount.allowed_plugins`).
    """
    entries, errors, options_map = parse_ledger(top, allowed)
    # What beancount's loader does after parsing (loader._load), on the entries checked above.
    plugins = list(options_map["plugin"])
    if options_map["plugin_processing_mode"] == "default":
        plugins = [*loader.PLUGINS_PRE, *plugins, *loader.PLUGINS_AUTO, *loader.PLUGINS_POST]
    refused = sorted({name for name, _ in plugins if not plugin_allowed(name, allowed)})
    if refused or options_map.get("pythonpath"):  # the checks above make this impossible
        raise LedgerRefused(f"beancount ledger {top} refused: it would run plugins {refused} "
                            f"with {options_map.get('pythonpath')} on the import path")
    entries.sort(key=data.entry_sortkey)
    entries, booking_errors = booking.book(entries, options_map)
    errors.extend(booking_errors)
    entries, errors = loader.run_transformations(entries, errors, options_map, None)
    errors.extend(validation.validate(entries, options_map, None, None))
    options_map["input_hash"] = loader.compute_input_hash(options_map["include"])
    return entries, errors, options_map
