"""Connectors: one per accounting package (see `base` for the interface)."""
from __future__ import annotations

from pathlib import Path

from core.connectors.base import Capabilities, Connector, LedgerPosition
from core.model import UsageError


def open_connector(package: str, source: str | Path) -> Connector:
    """Open the connector for `package` on `source` (raises LedgerUnavailable)."""
    if package == "demo":
        from core.connectors.demo import DemoConnector

        return DemoConnector(Path(source))
    if package == "gnucash":
        from core.connectors.gnucash import GnuCashConnector

        return GnuCashConnector(Path(source))
    if package == "beancount":
        from core.connectors.beancount_book import BeancountConnector

        return BeancountConnector(Path(source))
    raise UsageError(f"unknown package {package!r}: this version reads 'demo', 'gnucash' "
                     f"and 'beancount' ledgers")


__all__ = ["Capabilities", "Connector", "LedgerPosition", "open_connector"]
