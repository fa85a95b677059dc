"""The GnuCash connector (`--package gnucash`): the book's reader and its proposals writer.

A connector sits above the two halves of a package: `gnucash` reads a book
(whole, read-only, into the canonical streams) and `gnucash_proposals`
writes booking proposals into one, using the reader's rules (the chart, the
book currency). The writer imports the reader, so neither can be the
connector: this class joins them and declares what the pair can do
(core.connectors.base): taking proposals, and reading whole books.
"""
from __future__ import annotations

from pathlib import Path

import dossync.core.connectors.gnucash as gnucash
import dossync.core.connectors.gnucash_proposals as gnucash_proposals
from dossync.core.connectors.base import Capabilities, ConnectorVersion, VersionHistory
from dossync.core.connectors.snapshot import SnapshotConnector
from dossync.core.model import ConnectorSettings, Proposal


class GnuCashConnector(SnapshotConnector):
    """Reads one GnuCash SQLite book, whole and read-only; takes booking proposals."""

    package = "gnucash"
    capabilities = Capabilities(proposals=True)
    # A book loaded before versions were recorded is taken to be loaded before
    # 0.4.0: the migration could not give its accounts their GnuCash classes nor
    # its amounts the book's own fractions (they were cents). A full sync reads
    # no more of the book than its simple sync does (it has no change cursor).
    version_history = VersionHistory((
        ConnectorVersion(1, "0.2.0", "the book's accounts, transactions and splits"),
        # 0.4.0 also read a book GnuCash itself saves (a root account without a commodity):
        # earlier, all of such a book's transactions were kept out of the money figures
        ConnectorVersion(2, "0.4.0", "account classes, exact amounts and the figures of "
                                     "books whose root account has no commodity"),
    ), unrecorded=1)

    def __init__(self, path: Path, settings: ConnectorSettings | None = None) -> None:
        path = Path(path)
        tables, warnings, currency = gnucash.convert(gnucash.read_book(path), str(path),
                                                     settings)
        super().__init__(str(path), tables, warnings, currency=currency)

    @classmethod
    def receive_proposals(cls, source: Path, settings: ConnectorSettings,
                          proposals: list[Proposal]) -> None:
        """Write the proposals into the book as transactions, all or none, while GnuCash
        does not have it open (`gnucash_proposals`); no read of the book first."""
        gnucash_proposals.receive_proposals(Path(source), settings, proposals)
