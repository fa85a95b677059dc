"""Connectors: one per accounting package (see `base` for the interface and capabilities).

`connector_class` is the one place that knows which class serves which
package. Everything else asks the class: `open_connector` opens one on a
ledger, `send_proposals` hands it booking proposals when it declares that
capability (no connector is opened for that: see `base.Proposals`). A
class's capabilities are checked against its methods once
(`base.checked`), before the first connector of it is opened or sent
anything.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dossync.core.connectors.base import (Capabilities, CapabilityMismatch, Connector,
                                          LedgerPosition, checked)
from dossync.core.model import PACKAGES, ConnectorSettings, Proposal, UsageError


def connector_settings(home, dossier) -> ConnectorSettings:
    """The settings to open `dossier`'s package with: its own (`Dossier.settings()`) and
    what the firm sets for every dossier in HOME/dossync.toml (`home.settings()`): for
    Beancount, the plugins it trusts beyond Beancount's own ([beancount] allowed_plugins;
    UsageError when that setting is malformed)."""
    settings = dossier.settings()
    if dossier.package != "beancount":
        return settings
    return replace(settings, allowed_plugins=home.settings().beancount.allowed_plugins)


def connector_class(package: str) -> type:
    """The connector class of `package` (one of model.PACKAGES), its capabilities checked
    (`base.checked`). Imported only when asked for: Beancount's loads the beancount
    library. UsageError for a package this version does not know."""
    if package == "demo":
        from dossync.core.connectors.demo import DemoConnector as cls
    elif package == "gnucash":
        from dossync.core.connectors.gnucash_connector import GnuCashConnector as cls
    elif package == "beancount":
        from dossync.core.connectors.beancount_connector import BeancountConnector as cls
    else:
        raise UsageError(f"unknown package {package!r}: this version reads "
                         f"{', '.join(repr(p) for p in PACKAGES[:-1])} and {PACKAGES[-1]!r} "
                         f"ledgers")
    checked(cls)
    return cls


def open_connector(package: str, source: str | Path,
                   settings: ConnectorSettings | None = None) -> Connector:
    """Open the connector for `package` on `source` (raises LedgerUnavailable).

    settings: the dossier's settings a package may need (book currency, time
    zone, proposals file, the firm's trusted Beancount plugins: `connector_settings`);
    the defaults when None (Beancount: only Beancount's own plugins run).
    The connector's `capabilities` are checked (CapabilityMismatch otherwise):
    ask them, not whether a method exists."""
    return connector_class(package)(Path(source), settings or ConnectorSettings())


def send_proposals(package: str, source: str | Path, settings: ConnectorSettings | None,
                   proposals: list[Proposal]) -> None:
    """Hand booking proposals to the package, all of them or none.

    Idempotent by reference: a proposal the package already holds (a retry
    after a kill, a queue sent twice) is not written again, nor refused (the
    worklist offers one it may hold alone, and takes it out of the portal only
    when the package refuses it alone). Raises
    PackageBusy when the package cannot take them now (they stay queued and
    the next sync sends them), LedgerUnavailable or TerminalError otherwise;
    UsageError when the package takes no proposals.

    The connector class takes them itself (`base.Proposals`), without opening
    a connector: `settings` are those `connector_settings` gives (the
    proposals file, time zone, currency, the firm's trusted Beancount plugins).
    """
    cls = connector_class(package)
    if not cls.capabilities.proposals:
        raise UsageError(f"the {package} package takes no booking proposals")
    cls.receive_proposals(Path(source), settings or ConnectorSettings(), proposals)


__all__ = ["Capabilities", "CapabilityMismatch", "Connector", "LedgerPosition", "connector_class",
           "connector_settings", "open_connector", "send_proposals"]
