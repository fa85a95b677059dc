"""dossync core: everything that is not a screen.

Memory: a full sync streams a whole ledger through pyarrow, Polars and
DuckDB in turn, each with its own allocator. Left alone, each keeps the
memory of its phase for itself and the peaks add up; returning freed memory
at once keeps the sync's peak near the largest single phase instead. Polars'
allocator reads its settings when it loads, hence the environment here,
before anything imports it (a caller's own setting wins).
"""
import os

os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
