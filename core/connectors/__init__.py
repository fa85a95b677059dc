"""Connectors: one per accounting package (see `base` for the interface)."""
from __future__ import annotations

from pathlib import Path

from core.connectors.base import Capabilities, Connector, LedgerPosition
from core.model import ConnectorSettings, Proposal, UsageError


def open_connector(package: str, source: str | Path,
                   settings: ConnectorSettings | None = None) -> Connector:
    """Open the connector for `package` on `source` (raises LedgerUnavailable).

    settings: the dossier's settings a package may need (book currency, time
    zone, proposals file); the defaults when None."""
    settings = settings or ConnectorSettings()
    if package == "demo":
        from core.connectors.demo import DemoConnector

        return DemoConnector(Path(source))
    if package == "gnucash":
        from core.connectors.gnucash import GnuCashConnector

        return GnuCashConnector(Path(source), settings)
    if package == "beancount":
        from core.connectors.beancount_book import BeancountConnector

        return BeancountConnector(Path(source), settings)
    raise UsageError(f"unknown package {package!r}: this version reads 'demo', 'gnucash' "
                     f"and 'beancount' ledgers")


def send_proposals(package: str, source: str | Path, settings: ConnectorSettings | None,
                   proposals: list[Proposal]) -> None:
    """Hand booking proposals to the package, all of them or none.

    Idempotent by reference: a proposal the package already holds (a retry
    after a kill, a queue sent twice) is not written again. Raises
    PackageBusy when the package cannot take them now (they stay queued and
    the next sync sends them), LedgerUnavailable or TerminalError otherwise.
    """
    settings = settings or ConnectorSettings()
    if package == "demo":
        from core.connectors.demo import receive_proposals
    elif package == "gnucash":
        from core.connectors.gnucash_proposals import receive_proposals
    elif package == "beancount":
        from core.connectors.beancount_proposals import receive_proposals
    else:
        raise UsageError(f"unknown package {package!r}")
    receive_proposals(Path(source), settings, proposals)


__all__ = ["Capabilities", "Connector", "LedgerPosition", "open_connector", "send_proposals"]
