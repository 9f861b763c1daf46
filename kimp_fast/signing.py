"""Request signing for Upbit (JWT) and Binance (HMAC-SHA256): the public dispatcher.

Imports the compiled twin (``_speedups._signing_c``) unless ``KIMP_FAST_NO_EXTENSIONS``
is set or it is not built, else the pure twin (``_speedups._signing_py``, the typed
reference). Both behave identically; ``USE_EXTENSIONS`` says which one is in use.
``UpbitSignerPy``/``UpbitSignerC`` and ``BinanceSignerPy``/``BinanceSignerC`` name the
twins explicitly (the ``C`` names are None when the extension is not available).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._env import NO_EXTENSIONS
from ._speedups import _signing_py

__all__ = [
    "USE_EXTENSIONS",
    "BinanceSigner",
    "BinanceSignerC",
    "BinanceSignerPy",
    "UpbitSigner",
    "UpbitSignerC",
    "UpbitSignerPy",
    "binance_signature",
    "new_nonce",
    "upbit_jwt",
    "upbit_query_hash",
]

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._speedups._signing_py import (
        BinanceSigner,
        UpbitSigner,
        binance_signature,
        new_nonce,
        upbit_jwt,
        upbit_query_hash,
    )

    USE_EXTENSIONS = False
else:
    try:
        from ._speedups._signing_c import (
            BinanceSigner,
            UpbitSigner,
            binance_signature,
            new_nonce,
            upbit_jwt,
            upbit_query_hash,
        )

        USE_EXTENSIONS = True
    except ImportError:  # pragma: no cover
        from ._speedups._signing_py import (
            BinanceSigner,
            UpbitSigner,
            binance_signature,
            new_nonce,
            upbit_jwt,
            upbit_query_hash,
        )

        USE_EXTENSIONS = False

UpbitSignerPy = _signing_py.UpbitSigner
BinanceSignerPy = _signing_py.BinanceSigner
UpbitSignerC = UpbitSigner if USE_EXTENSIONS else None
BinanceSignerC = BinanceSigner if USE_EXTENSIONS else None
