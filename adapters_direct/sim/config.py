"""Configuration of the exchange simulator: keys, starting balances, fees, limits, market.

Everything a test, the paper mode or the latency probe may want to change lives here, as
plain dataclasses with defaults that resemble the real venues. Numbers that end up in
balances or on the wire are kept as strings/Decimals; market shape parameters (which only
drive the synthetic price process) are floats.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "DEFAULT_BALANCES",
    "BinanceKeys",
    "FeeConfig",
    "LimitConfig",
    "MarketParams",
    "SimConfig",
    "UpbitKeys",
    "load_keys_file",
]


@dataclass(frozen=True)
class UpbitKeys:
    """An Upbit key pair. The simulator's own keys are test keys, but the secret still
    stays out of reprs so it cannot leak into logs by accident."""

    access_key: str
    secret_key: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"access_key": self.access_key, "secret_key": self.secret_key}


@dataclass(frozen=True)
class BinanceKeys:
    """A Binance API key and its HMAC secret (secret hidden from repr)."""

    api_key: str
    secret_key: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"api_key": self.api_key, "secret_key": self.secret_key}


# Fixed, well-formed test keys (Binance keys are 64 alphanumerics, like real ones), built
# from parts so they cannot be mistaken for real credentials pasted into the source.
DEFAULT_UPBIT_KEYS = UpbitKeys(
    access_key="SimUpbitAccessKey" + "0" * 22 + "A",
    secret_key="SimUpbitSecretKey" + "0" * 22 + "S",
)
DEFAULT_BINANCE_KEYS = BinanceKeys(
    api_key="SimBinanceApiKey" + "0" * 47 + "A",
    secret_key="SimBinanceSecretKey" + "0" * 44 + "S",
)

DEFAULT_BALANCES: dict[str, dict[str, str]] = {
    "upbit": {"KRW": "100000000", "BTC": "0", "USDT": "10000"},
    "binance": {"USDT": "100000"},
}


@dataclass
class FeeConfig:
    """Trading fees as fractions (0.0005 = 0.05 %)."""

    upbit: Decimal = Decimal("0.0005")
    binance_taker: Decimal = Decimal("0.0005")
    binance_maker: Decimal = Decimal("0.0002")


@dataclass
class LimitConfig:
    """Rate limits. Upbit: per-second token buckets per group; Binance: fixed windows."""

    upbit_order_per_s: float = 8.0  # 12/s since 2026-08-21 on the real venue; 8 is the safe default
    upbit_order_test_per_s: float = 8.0
    upbit_default_per_s: float = 30.0
    upbit_quotation_per_s: float = 10.0
    upbit_origin_per_10s: float = 1.0
    #: 429s within one second before a scope is blocked with 418
    upbit_ban_after_429s: int = 10
    upbit_ban_seconds: float = 60.0
    binance_weight_per_min: int = 2400
    binance_orders_per_10s: int = 300
    binance_orders_per_min: int = 1200
    #: 429s inside one window before the IP is banned with 418
    binance_ban_after_429s: int = 10
    binance_ban_seconds: float = 120.0


@dataclass
class MarketParams:
    """Shape of the synthetic market (see ``market.py``).

    ``premium`` = Upbit KRW-BTC mid / (Binance mid × KRW-USDT mid) − 1.
    ``volatility`` is the annualised volatility of BTC (0 freezes the whole process);
    ``fx_volatility`` the same for USDT/KRW; ``premium_volatility`` the standard deviation of
    the premium's noise per √second (mean-reverting towards ``premium``).
    ``depth_btc`` is the BTC on each side across 30 levels (both BTC books);
    ``depth_usdt`` the USDT per side across 30 levels of KRW-USDT.
    ``replenish_s`` is the time constant with which consumed liquidity comes back
    (0 = instantly).
    """

    binance_mid: float = 96000.0
    usdt_krw: float = 1450.0
    premium: float = 0.012
    spread_bps: float = 2.0
    depth_btc: float = 5.0
    depth_usdt: float = 300000.0
    level_step_bps: float = 1.0
    volatility: float = 0.3
    fx_volatility: float = 0.03
    premium_volatility: float = 0.0
    premium_reversion_s: float = 60.0
    replenish_s: float = 1.0
    funding_rate: float = 0.0001
    step_ms: int = 100

    def update(self, changes: Mapping[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise KeyError(key)
            cur = getattr(self, key)
            setattr(self, key, type(cur)(value))


@dataclass
class SimConfig:
    """Everything the simulator is started with."""

    seed: int = 0
    upbit_keys: UpbitKeys = DEFAULT_UPBIT_KEYS
    binance_keys: BinanceKeys = DEFAULT_BINANCE_KEYS
    balances: dict[str, dict[str, str]] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_BALANCES)))
    market: MarketParams = field(default_factory=MarketParams)
    fees: FeeConfig = field(default_factory=FeeConfig)
    limits: LimitConfig = field(default_factory=LimitConfig)
    #: simulation clock speed (funding schedule only; wall-clock timestamps stay real)
    time_scale: float = 1.0
    #: added once per request, before its response is written (also settable at runtime)
    upbit_delay_ms: float = 0.0
    binance_delay_ms: float = 0.0
    #: answer ``POST /v1/orders`` with the order as accepted (``state`` "wait", nothing
    #: executed), as the real Upbit does; matching still happens at once, so the next
    #: ``GET /v1/order`` shows the final state (also settable at runtime)
    upbit_answer_pending: bool = False
    #: a file that keeps every Upbit ``identifier`` ever used, one per line, across resets
    #: and restarts: the real Upbit refuses a used identifier forever (None: in memory,
    #: forgotten by ``/_sim/reset`` and a restart)
    upbit_identifiers_path: str | None = None
    #: Binance default leverage per symbol (the real default is 20)
    binance_leverage: int = 20
    #: Binance recvWindow default when the client sends none
    recv_window_ms: int = 5000
    #: number of requests kept by ``GET /_sim/requests``
    request_log_size: int = 5000
    #: run the background tick (funding, resting orders, liquidation) every this many seconds
    tick_s: float = 0.05


def coerce_upbit_keys(value: Any) -> UpbitKeys:
    if value is None:
        return DEFAULT_UPBIT_KEYS
    if isinstance(value, UpbitKeys):
        return value
    if isinstance(value, Mapping):
        return UpbitKeys(str(value["access_key"]), str(value["secret_key"]))
    access, secret = value
    return UpbitKeys(str(access), str(secret))


def coerce_binance_keys(value: Any) -> BinanceKeys:
    if value is None:
        return DEFAULT_BINANCE_KEYS
    if isinstance(value, BinanceKeys):
        return value
    if isinstance(value, Mapping):
        return BinanceKeys(str(value["api_key"]), str(value["secret_key"]))
    key, secret = value
    return BinanceKeys(str(key), str(secret))


def merge_balances(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, str]]:
    """Default balances with ``overrides`` applied per exchange and currency."""
    out = json.loads(json.dumps(DEFAULT_BALANCES))
    for exchange, currencies in (overrides or {}).items():
        if exchange not in out:
            raise ValueError(f"balances: unknown exchange {exchange!r}")
        for currency, amount in currencies.items():
            if isinstance(amount, float):
                raise TypeError(f"balances: {exchange}.{currency} must be a string or Decimal, not float")
            Decimal(str(amount))  # validate
            out[exchange][currency.upper()] = str(amount)
    return out


def load_keys_file(path: str | Path) -> tuple[UpbitKeys, BinanceKeys]:
    """Read ``{"upbit": {"access_key", "secret_key"}, "binance": {"api_key", "secret_key"}}``."""
    data = json.loads(Path(path).read_text())
    return coerce_upbit_keys(data.get("upbit")), coerce_binance_keys(data.get("binance"))
