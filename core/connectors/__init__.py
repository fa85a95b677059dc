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
    raise UsageError(f"unknown package {package!r}: this version reads 'demo' ledgers")


__all__ = ["Capabilities", "Connector", "LedgerPosition", "open_connector"]
