"""Connectors: one per accounting package (see `base` for the interface)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dossync.core.connectors.base import Capabilities, Connector, LedgerPosition
from dossync.core.model import ConnectorSettings, Proposal, UsageError


def connector_settings(home, dossier) -> ConnectorSettings:
    """The settings to open `dossier`'s package with: its own (`Dossier.settings()`) and
    what the firm sets for every dossier in HOME/dossync.toml (`home.config()`): for
    Beancount, the plugins it trusts beyond Beancount's own ([beancount] allowed_plugins;
    UsageError when that setting is malformed)."""
    settings = dossier.settings()
    if dossier.package != "beancount":
        return settings
    from dossync.core.connectors.beancount_guard import allowed_plugins

    return replace(settings, allowed_plugins=allowed_plugins(home.config()))


def open_connector(package: str, source: str | Path,
                   settings: ConnectorSettings | None = None) -> Connector:
    """Open the connector for `package` on `source` (raises LedgerUnavailable).

    settings: the dossier's settings a package may need (book currency, time
    zone, proposals file, the firm's trusted Beancount plugins: `connector_settings`);
    the defaults when None (Beancount: only Beancount's own plugins run)."""
    settings = settings or ConnectorSettings()
    if package == "demo":
        from dossync.core.connectors.demo import DemoConnector

        return DemoConnector(Path(source))
    if package == "gnucash":
        from dossync.core.connectors.gnucash import GnuCashConnector

        return GnuCashConnector(Path(source), settings)
    if package == "beancount":
        from dossync.core.connectors.beancount_book import BeancountConnector

        return BeancountConnector(Path(source), settings)
    raise UsageError(f"unknown package {package!r}: this version reads 'demo', 'gnucash' "
                     f"and 'beancount' ledgers")


def send_proposals(package: str, source: str | Path, settings: ConnectorSettings | None,
                   proposals: list[Proposal]) -> None:
    """Hand booking proposals to the package, all of them or none.

    Idempotent by reference: a proposal the package already holds (a retry
    after a kill, a queue sent twice) is not written again, nor refused (the
    worklist offers one it may hold alone, and takes it out of the portal only
    when the package refuses it alone). Raises
    PackageBusy when the package cannot take them now (they stay queued and
    the next sync sends them), LedgerUnavailable or TerminalError otherwise.
    """
    settings = settings or ConnectorSettings()
    if package == "demo":
        from dossync.core.connectors.demo import receive_proposals
    elif package == "gnucash":
        from dossync.core.connectors.gnucash_proposals import receive_proposals
    elif package == "beancount":
        from dossync.core.connectors.beancount_proposals import receive_proposals
    else:
        raise UsageError(f"unknown package {package!r}")
    receive_proposals(Path(source), settings, proposals)


__all__ = ["Capabilities", "Connector", "LedgerPosition", "connector_settings", "open_connector",
           "send_proposals"]
