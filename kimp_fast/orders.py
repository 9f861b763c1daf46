"""Order encoding (typed values → exact wire strings) for Upbit and Binance: the dispatcher.

Imports the compiled twin (``_speedups._orders_c``) unless ``KIMP_FAST_NO_EXTENSIONS`` is
set or it is not built, else the pure twin (``_speedups._orders_py``, the typed reference).

Which string is which: :func:`encode_upbit_order` returns the JSON body and the un-encoded
``k=v&...`` string that Upbit's ``query_hash`` covers; for GET/DELETE, hash
:func:`raw_query` and put :func:`encode_query` in the URL. Binance signs the encoded
string it receives: :func:`encode_binance_order` / :func:`encode_query` output, then
``BinanceSigner.signed_query``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._env import NO_EXTENSIONS
from ._speedups import _orders_py

__all__ = [
    "MAX_DECIMAL_DIGITS",
    "USE_EXTENSIONS",
    "encode_binance_order",
    "encode_query",
    "encode_upbit_order",
    "format_decimal",
    "quantize_down",
    "quantize_price",
    "raw_query",
    "upbit_tick_size",
]

MAX_DECIMAL_DIGITS = _orders_py.MAX_DECIMAL_DIGITS

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._speedups._orders_py import (
        encode_binance_order,
        encode_query,
        encode_upbit_order,
        format_decimal,
        quantize_down,
        quantize_price,
        raw_query,
        upbit_tick_size,
    )

    USE_EXTENSIONS = False
else:
    try:
        from ._speedups._orders_c import (
            encode_binance_order,
            encode_query,
            encode_upbit_order,
            format_decimal,
            quantize_down,
            quantize_price,
            raw_query,
            upbit_tick_size,
        )

        USE_EXTENSIONS = True
    except ImportError:  # pragma: no cover
        from ._speedups._orders_py import (
            encode_binance_order,
            encode_query,
            encode_upbit_order,
            format_decimal,
            quantize_down,
            quantize_price,
            raw_query,
            upbit_tick_size,
        )

        USE_EXTENSIONS = False

orders_py = _orders_py
"""The pure twin module (explicit name for tests and benchmarks)."""
