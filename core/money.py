"""Money, exactly: the one representation every stream, table and report uses.

The portal keeps amounts at the precision the package computes them:
DECIMAL(38, 12) in the portal, Arrow decimal128(38, 12) on the bulk path,
Python `Decimal` at the edges. Twelve decimals hold every amount the
packages write (cents, GnuCash's rational values in a currency's fraction,
Beancount weights of units times cost); only Beancount's `@@` totals divided
per unit carry more (28 significant digits), and those round at the 12th
decimal, where no total of any book can feel it. Nothing is rounded to the
cent until a report shows it (`to_str`, half up, the accountant's rounding).

Bookings balance within `BALANCE_TOLERANCE`: half a cent, the tolerance
Beancount itself applies to amounts in cents (it accepts a transaction whose
weights leave up to 0.005 over; GnuCash and the demo package balance exactly).
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCALE = 12
PRECISION = 38
ARROW = pa.decimal128(PRECISION, SCALE)
SQL = f"DECIMAL({PRECISION},{SCALE})"
QUANTUM = Decimal(1).scaleb(-SCALE)
CENT = Decimal("0.01")
ZERO = Decimal(0)
BALANCE_TOLERANCE = Decimal("0.005")

_CENTS = pa.decimal128(PRECISION, 2)
_CENT_UNITS = 10 ** (SCALE - 2)
_FITS = (2 ** 63 - 1) // _CENT_UNITS


def exact(value) -> Decimal:
    """A number as the portal keeps it: a Decimal at SCALE decimals (half even beyond)."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return number.quantize(QUANTUM)


def from_cents(cents) -> pa.Array:
    """Integer cents (an int64 Arrow or numpy array) as exact money, without Python objects.

    The cents times 10**(SCALE-2) are the unscaled 128-bit values (built in
    their buffer, sign-extended); cents beyond what 64 bits hold at that scale
    are rescaled by Arrow instead.
    """
    if isinstance(cents, (pa.Array, pa.ChunkedArray)):
        cents = cents.combine_chunks() if isinstance(cents, pa.ChunkedArray) else cents
        if cents.null_count:
            return _from_cents_with_nulls(cents)
        values = cents.to_numpy(zero_copy_only=False)
    else:
        values = np.asarray(cents)
    values = np.ascontiguousarray(values, dtype=np.int64)
    wide = np.empty(2 * len(values), dtype=np.int64)
    if len(values) and np.abs(values).max() >= _FITS:  # beyond 92 million: let Arrow rescale
        wide[0::2] = values
        wide[1::2] = values >> 63
        array = pa.Array.from_buffers(_CENTS, len(values), [None, pa.py_buffer(wide)])
        return array.cast(ARROW)
    wide[0::2] = values * _CENT_UNITS  # the unscaled value at SCALE, within 64 bits
    wide[1::2] = values >> 63
    return pa.Array.from_buffers(ARROW, len(values), [None, pa.py_buffer(wide)])


def _from_cents_with_nulls(cents: pa.Array) -> pa.Array:
    filled = pc.fill_null(cents, 0)
    values = from_cents(filled)
    return pc.if_else(pc.is_null(cents), pa.scalar(None, ARROW), values)


def to_str(amount) -> str | None:
    """The contract's amount: a decimal string with two decimals, rounded half up ("1234.50")."""
    if amount is None:
        return None
    number = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return str(number.quantize(CENT, rounding=ROUND_HALF_UP))


def exact_str(amount) -> str | None:
    """The amount with every decimal it has and no trailing zeros ("27779.92083")."""
    if amount is None:
        return None
    number = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    if number == 0:
        return "0"
    text = format(number.normalize(), "f")
    return text


def cents(amount) -> int:
    """An amount in whole cents (half up): for what is kept in cents (proposals' inputs)."""
    return int((amount if isinstance(amount, Decimal) else Decimal(str(amount)))
               .scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_UP))
