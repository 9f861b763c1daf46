"""kimp-fast: a Cython-accelerated, direct-API execution engine for kimchi-premium arbitrage.

Public API (CONTRACT §3)::

    from kimp_fast import KimpEngine, EngineConfig, Signal

``USE_EXTENSIONS`` is True when the compiled hot path (signing, order encoding, rate
limiting) is in use; ``KIMP_FAST_NO_EXTENSIONS=1`` forces the pure-Python twins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import ExecutionReport, OrderRequest, OrderResult, Signal

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    USE_EXTENSIONS: bool
    from .config import EngineConfig
    from .engine import KimpEngine

__all__ = [
    "USE_EXTENSIONS",
    "EngineConfig",
    "ExecutionReport",
    "KimpEngine",
    "OrderRequest",
    "OrderResult",
    "Signal",
    "__version__",
]

# The engine pulls in aiohttp and the adapters; import it only when asked for, so that
# ``import kimp_fast`` stays cheap for code that only needs the hot path or the models.
_LAZY = {"KimpEngine": ".engine", "EngineConfig": ".config"}


def _use_extensions() -> bool:
    """True when every hot-path module runs its compiled twin."""
    from . import orders, ratelimit, signing

    return bool(signing.USE_EXTENSIONS and orders.USE_EXTENSIONS and ratelimit.USE_EXTENSIONS)


def __getattr__(name: str) -> Any:
    if name == "USE_EXTENSIONS":
        value = _use_extensions()
        globals()[name] = value
        return value
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'kimp_fast' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(mod, __name__), name)
    globals()[name] = value
    return value
