"""Exchange adapters: direct Upbit / Binance USDT-M REST clients, a ccxt-based twin,
and the exchange simulator (:mod:`adapters_direct.sim`). See CONTRACT §2."""

from __future__ import annotations

from kimp_fast.models import OrderRequest, OrderResult

from . import errors
from .base import ExchangeAdapter, PerpAdapter, SpotAdapter
from .factory import AdapterType, ExchangeFactory

__all__ = [
    "AdapterType",
    "ExchangeAdapter",
    "ExchangeFactory",
    "OrderRequest",
    "OrderResult",
    "PerpAdapter",
    "SpotAdapter",
    "errors",
]
