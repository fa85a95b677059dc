"""The Beancount connector (`--package beancount`): the ledger's reader and its proposals writer.

A connector sits above the two halves of a package: `beancount_book` loads a
ledger (through the guarded loader) into the canonical streams, and
`beancount_proposals` appends booking proposals to the dossier's proposals
file, using the reader's rules (the guarded load, the operating currency).
The writer imports the reader, so neither can be the connector: this class
joins them and declares what the pair can do (core.connectors.base): taking
proposals, and reading whole ledgers.
"""
from __future__ import annotations

from pathlib import Path

import dossync.core.connectors.beancount_book as beancount_book
import dossync.core.connectors.beancount_proposals as beancount_proposals
from dossync.core.connectors.base import Capabilities, ConnectorVersion, VersionHistory
from dossync.core.connectors.snapshot import SnapshotConnector
from dossync.core.model import ConnectorSettings, Proposal


class BeancountConnector(SnapshotConnector):
    """Reads one Beancount ledger (with its includes) through the guarded loader; takes
    booking proposals."""

    package = "beancount"
    capabilities = Capabilities(proposals=True)
    # As GnuCash's: a ledger loaded before versions were recorded is taken to be
    # loaded before 0.4.0 (no account classes, weights rounded to cents).
    version_history = VersionHistory((
        ConnectorVersion(1, "0.2.0", "the ledger's accounts and transactions"),
        ConnectorVersion(2, "0.4.0", "account classes and exact amounts (postings in other "
                                     "commodities kept)"),
    ), unrecorded=1)

    def __init__(self, path: Path, settings: ConnectorSettings | None = None) -> None:
        path = Path(path)
        settings = settings or ConnectorSettings()
        entries, options = beancount_book.read_ledger(path, settings.allowed_plugins)
        currency = beancount_book.operating_currency(entries, options, settings.currency)
        tables, warnings = beancount_book.convert_ledger(entries, options, currency)
        super().__init__(str(path), tables, warnings, currency=currency)

    @classmethod
    def receive_proposals(cls, source: Path, settings: ConnectorSettings,
                          proposals: list[Proposal]) -> None:
        """Append the proposals the ledger does not hold yet to its proposals file, all or
        none (`beancount_proposals`)."""
        beancount_proposals.receive_proposals(Path(source), settings, proposals)
