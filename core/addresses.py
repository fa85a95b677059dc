"""Where a portal on a PostgreSQL server is, and how messages name it.

A portal address (`--portal`, DOSSYNC_PORTAL, `[portal] url`) is a libpq URL,
`postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options]`. It may hold a
password: everything dossync writes (messages, logs, JSON) names the address
through `redact_url`, which replaces it. Pure text handling: no database
library is loaded to name an address.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


class PortalUrl(str):
    """A PostgreSQL portal's address (where a DuckDB portal has the path of its file)."""

    @property
    def redacted(self) -> str:
        """The address with its password replaced: what messages and logs show."""
        return redact_url(self)


def is_portal_url(address: object) -> bool:
    return isinstance(address, str) and address.startswith(SCHEMES)


def redact_url(url: str) -> str:
    """A PostgreSQL address with its password replaced: what messages and logs show."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "postgresql://(an address that cannot be read)"
    if password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


_PASSWORD_IN_TEXT = re.compile(r"(postgres(?:ql)?://[^:/@\s]*):\S*@")  # up to the last @


def redact_text(text: str) -> str:
    """Any PostgreSQL address's password in a text (a command line) replaced."""
    return _PASSWORD_IN_TEXT.sub(r"\1:***@", text)


def portal_url_problem(url: str) -> str | None:
    """What is wrong with a portal address given on the command line or in DOSSYNC_PORTAL."""
    if is_portal_url(url):
        return None
    return ("is not a PostgreSQL address: use postgresql://USER@HOST:PORT/DATABASE "
            "(the password from PGPASSWORD or ~/.pgpass), or leave it out for HOME/portal.duckdb")
