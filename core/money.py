"""Money, exactly: the one representation every stream, table and report uses.

The portal keeps amounts at the precision the packages compute them:
DECIMAL(18, 6) in the portal, Arrow decimal128(18, 6) on the bulk path,
Python `Decimal` at the edges. Six decimals hold every amount the packages
write in practice (cents, GnuCash's values in a currency's fraction,
Beancount weights of units times cost: the real ledgers of the corpus have
at most five); a weight with more (Beancount's `@@` totals divided per unit
carry 28 significant digits) rounds at the sixth, where no total of a book
can feel it. Eighteen digits in all: amounts up to a trillion per line.
Sums are DECIMAL(38, 6), never overflowing. DECIMAL(18, 6) is a 64-bit
integer inside DuckDB, so sums and fingerprints cost what integer cents cost
(a wider DECIMAL(38, x) makes every per-line conversion a 128-bit one, many
times slower). Nothing is rounded to the cent until a report shows it
(`to_str`, half up, the accountant's rounding).

Bookings balance within `BALANCE_TOLERANCE`: half a cent, the tolerance
Beancount itself applies to amounts in cents (it accepts a transaction whose
weights leave up to 0.005 over; GnuCash and the demo package balance exactly).
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dossync.core.model import TerminalError

SCALE = 6
PRECISION = 18
ARROW = pa.decimal128(PRECISION, SCALE)
SQL = f"DECIMAL({PRECISION},{SCALE})"
QUANTUM = Decimal(1).scaleb(-SCALE)
LIMIT = Decimal(10) ** (PRECISION - SCALE)
_WIDE = Context(prec=60)  # quantizing never fails for want of digits
CENT = Decimal("0.01")
ZERO = Decimal(0)
BALANCE_TOLERANCE = Decimal("0.005")

_CENT_UNITS = 10 ** (SCALE - 2)
MAX_CENTS = 10 ** (PRECISION - SCALE + 2)  # the first amount in cents the portal cannot keep


class OutOfRange(TerminalError):
    """An amount beyond what the portal keeps (a trillion): the sync fails, naming it."""


def exact(value) -> Decimal:
    """A number as the portal keeps it: a Decimal at SCALE decimals (half even beyond);
    OutOfRange beyond a trillion."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if abs(number) >= LIMIT:
        raise OutOfRange(f"an amount of {number} is beyond what the portal keeps "
                         f"(less than a trillion per line)")
    return number.quantize(QUANTUM, context=_WIDE)


def from_cents(cents) -> pa.Array:
    """Integer cents (an int64 Arrow or numpy array) as exact money, without Python objects:
    the cents times 10**(SCALE-2) are the unscaled values, written into the decimals'
    buffer (sign-extended to 128 bits). Raises OutOfRange beyond a trillion."""
    if isinstance(cents, (pa.Array, pa.ChunkedArray)):
        cents = cents.combine_chunks() if isinstance(cents, pa.ChunkedArray) else cents
        if cents.null_count:
            return _from_cents_with_nulls(cents)
        values = cents.to_numpy(zero_copy_only=False)
    else:
        values = np.asarray(cents)
    values = np.ascontiguousarray(values, dtype=np.int64)
    if len(values) and np.abs(values).max() >= MAX_CENTS:
        raise OutOfRange(f"an amount of {to_str(Decimal(int(np.abs(values).max())).scaleb(-2))} "
                         f"is beyond what the portal keeps (less than a trillion per line)")
    wide = np.empty(2 * len(values), dtype=np.int64)
    wide[0::2] = values * _CENT_UNITS
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
    return format(number.normalize(), "f")


def cents(amount) -> int:
    """An amount in whole cents (half up): for what is kept in cents (proposals' inputs)."""
    return int((amount if isinstance(amount, Decimal) else Decimal(str(amount)))
               .scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_UP))
