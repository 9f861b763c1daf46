"""Client-side rate limiting per exchange and endpoint group: the public dispatcher.

Imports the compiled twin (``_speedups._ratelimit_c``, the pure source compiled by Cython)
unless ``KIMP_FAST_NO_EXTENSIONS`` is set or it is not built, else the pure twin
(``_speedups._ratelimit_py``). ``RateLimiterPy``/``RateLimiterC`` name the twins
explicitly (``RateLimiterC`` is None when the extension is not available).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._env import NO_EXTENSIONS
from ._speedups import _ratelimit_py

__all__ = [
    "BINANCE_BUCKETS",
    "BINANCE_GROUPS",
    "UPBIT_BUCKETS",
    "USE_EXTENSIONS",
    "RateLimiter",
    "RateLimiterC",
    "RateLimiterPy",
]

# The preloaded limits (bucket -> (capacity, period_s); Binance group -> [(bucket, cost)]),
# shared by both twins: pass modified copies as ``buckets=`` / ``limits=``.
UPBIT_BUCKETS = _ratelimit_py.UPBIT_BUCKETS
BINANCE_BUCKETS = _ratelimit_py.BINANCE_BUCKETS
BINANCE_GROUPS = _ratelimit_py.BINANCE_GROUPS

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._speedups._ratelimit_py import RateLimiter

    USE_EXTENSIONS = False
else:
    try:
        from ._speedups._ratelimit_c import RateLimiter

        USE_EXTENSIONS = True
    except ImportError:  # pragma: no cover
        from ._speedups._ratelimit_py import RateLimiter

        USE_EXTENSIONS = False

RateLimiterPy = _ratelimit_py.RateLimiter
RateLimiterC = RateLimiter if USE_EXTENSIONS else None
