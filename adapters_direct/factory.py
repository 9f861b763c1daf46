"""``ExchangeFactory.create``: one entry point for direct and ccxt adapters."""

from __future__ import annotations

import enum
from importlib import import_module
from typing import Any

from .base import ExchangeAdapter

__all__ = ["AdapterType", "ExchangeFactory"]


class AdapterType(str, enum.Enum):
    DIRECT = "direct"
    CCXT = "ccxt"


# (exchange, adapter type) -> "module:Class", imported lazily so that ccxt stays optional.
_REGISTRY: dict[tuple[str, AdapterType], str] = {
    ("upbit", AdapterType.DIRECT): "adapters_direct.upbit:UpbitSpot",
    ("binance", AdapterType.DIRECT): "adapters_direct.binance:BinanceUsdm",
    ("upbit", AdapterType.CCXT): "adapters_direct.ccxt_adapter:CcxtUpbit",
    ("binance", AdapterType.CCXT): "adapters_direct.ccxt_adapter:CcxtBinanceUsdm",
}


class ExchangeFactory:
    @staticmethod
    def create(
        exchange: str,
        adapter_type: AdapterType | str = AdapterType.DIRECT,
        *,
        api_key: str,
        secret_key: str,
        base_url: str | None = None,
        **options: Any,
    ) -> ExchangeAdapter:
        """Build an adapter; ``base_url=None`` means the exchange's production URL."""
        try:
            kind = AdapterType(adapter_type)
        except ValueError:
            raise ValueError(
                f"adapter_type: expected one of {[t.value for t in AdapterType]}, got {adapter_type!r}"
            ) from None
        key = (str(exchange).lower(), kind)
        target = _REGISTRY.get(key)
        if target is None:
            raise ValueError(f"exchange: expected 'upbit' or 'binance', got {exchange!r}")
        mod_name, cls_name = target.split(":")
        try:
            mod = import_module(mod_name)
        except ImportError as exc:
            if kind is AdapterType.CCXT:
                raise ImportError(
                    "the CCXT adapter needs the optional extra: pip install 'kimp-fast[ccxt]'"
                ) from exc
            raise
        cls = getattr(mod, cls_name)
        return cls(api_key=api_key, secret_key=secret_key, base_url=base_url, **options)
