"""What a value from outside (an argument, a setting, a portal row) must look like.

One rule per kind of value, shared by every door it comes in through: the
CLI's arguments, the terminal UI's inputs and the code that uses the value
later (a dossier code that becomes a file name, an address that goes into
an email header). A value is checked where it enters, and checked again
where a bad one would do harm, with the same rule and the same words.

Each `*_problem` function returns None for a good value, else a short
sentence saying what is wrong, fit to follow the value's name in a message.
"""
from __future__ import annotations

import re
import unicodedata

# --- dossier codes --------------------------------------------------------------
# What `dossier add` accepts: the code names files under HOME (locks, verdicts).
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
CODE_RULE = "2-32 letters, digits, '-' or '_', starting with a letter or digit"
# What a command that looks a dossier up accepts: never a path, never a hidden
# name; short codes pass here so that an unknown one is named as unknown.
_LOOKUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_code_problem(code: str) -> str | None:
    """Why `code` (already upper-cased) cannot name a new dossier, or None."""
    return None if CODE_RE.match(code) else f"is not a dossier code: use {CODE_RULE}"


def code_problem(code: str) -> str | None:
    """Why `code` cannot even be looked up (a path, a control character...), or None."""
    return None if _LOOKUP_RE.match(code) else f"is not a dossier code: codes are {CODE_RULE}"


# --- email addresses ------------------------------------------------------------
# Plain ASCII addresses only: what every SMTP server takes without SMTPUTF8
# and what an email header holds without encoding. The local part is
# RFC 5322's dot-atom; the domain is host names (letters, digits, hyphens).
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$")


def address_problem(address: str | None) -> str | None:
    """Why `address` cannot receive a client email, or None."""
    if not address:
        return "is empty"
    if not address.isascii():
        return ("contains non-ASCII characters: give the address in plain ASCII "
                "(an internationalised domain in its xn-- form)")
    if len(address) > 254 or len(address.partition("@")[0]) > 64:
        return "is too long for an email address"
    if not EMAIL_RE.match(address):
        return "is not a valid email address (name@company.be)"
    return None


def valid_address(address: str | None) -> bool:
    return address_problem(address) is None


# --- names ----------------------------------------------------------------------
NAME_MAX = 200
# Characters that break a line or hide text wherever a name is shown: control
# characters (C0, DEL, C1 such as NEL), line and paragraph separators
# (U+2028/U+2029), surrogates, and the bidirectional overrides and isolates.
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def name_problem(name: str | None) -> str | None:
    """Why `name` cannot be a company name (it goes into email headers, tables), or None."""
    if name is None or not name.strip():
        return "is empty"
    if len(name) > NAME_MAX:
        return f"is longer than {NAME_MAX} characters"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI:
            return (f"contains the invisible character U+{ord(char):04X} "
                    f"({unicodedata.name(char, 'control character')}): give the name "
                    f"on one line, without control characters")
    return None
