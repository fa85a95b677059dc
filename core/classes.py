"""Account classes: what an account is, in words every package can say.

Reports never look at account codes (a Belgian MAR prefix means nothing in
a GnuCash book or a Beancount ledger). Each connector gives every account a
class from the package's own account types:

| class | what | dashboard |
|---|---|---|
| revenue | income, sales | revenue (credit - debit) |
| cost | expenses, purchases | costs (debit - credit) |
| bank | bank and cash | bank |
| receivable | customers (accounts receivable) | receivables |
| payable | suppliers (accounts payable) | payables |
| vat | VAT due and recoverable | vat_position (credit - debit) |
| equity | capital, reserves, opening balances | |
| asset | every other asset | |
| liability | every other liability | |

The demo package keeps the Belgian chart (MAR/PCMN): its classes follow
from the account codes (`mar_sql`: a SQL CASE that SQLite, where the demo
connector reads them, and DuckDB, where the portal migrates, both run).
"""
from __future__ import annotations

from typing import Literal, get_args

AccountClass = Literal["revenue", "cost", "bank", "receivable", "payable", "vat", "equity",
                       "asset", "liability"]
CLASSES: tuple[str, ...] = get_args(AccountClass)

# MAR/PCMN: the first matching prefix decides (longest prefixes first).
_MAR: tuple[tuple[str, str], ...] = (
    ("411", "vat"), ("451", "vat"),
    ("40", "receivable"), ("41", "asset"),
    ("44", "payable"), ("42", "liability"), ("43", "liability"), ("45", "liability"),
    ("46", "liability"), ("47", "liability"), ("48", "liability"),
    ("490", "asset"), ("491", "asset"), ("49", "liability"),
    ("55", "bank"), ("56", "bank"), ("57", "bank"),
    ("16", "liability"), ("17", "liability"), ("1", "equity"),
    ("6", "cost"), ("7", "revenue"),
)


def mar_sql(column: str = "code") -> str:
    """The class of a MAR/PCMN account code, as a SQL CASE over a code column."""
    whens = " ".join(f"WHEN {column} LIKE '{prefix}%' THEN '{cls}'" for prefix, cls in _MAR)
    return f"(CASE {whens} ELSE 'asset' END)"
