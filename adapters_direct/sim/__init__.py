"""Exchange simulator: Upbit (KRW spot) and Binance USDⓈ-M on their real wire formats,
on one local port, with fault injection and a ledger (CONTRACT §4, docs/SIMULATOR.md).

In-process::

    from adapters_direct.sim import SimServer
    async with SimServer(seed=1, port=0) as sim:
        sim.url, sim.upbit_keys, sim.binance_keys, sim.state.ledger()

From synchronous code: ``with run_in_background(seed=1) as sim: ...``.
From a shell: ``kimp-fast sim --port 0``.
"""

from __future__ import annotations

from .config import (
    DEFAULT_BALANCES,
    DEFAULT_BINANCE_KEYS,
    DEFAULT_UPBIT_KEYS,
    BinanceKeys,
    FeeConfig,
    LimitConfig,
    MarketParams,
    SimConfig,
    UpbitKeys,
)
from .server import BackgroundSim, SimApp, SimServer, build_config, create_app, run_in_background
from .state import SimState

__all__ = [
    "DEFAULT_BALANCES",
    "DEFAULT_BINANCE_KEYS",
    "DEFAULT_UPBIT_KEYS",
    "BackgroundSim",
    "BinanceKeys",
    "FeeConfig",
    "LimitConfig",
    "MarketParams",
    "SimApp",
    "SimConfig",
    "SimServer",
    "SimState",
    "UpbitKeys",
    "build_config",
    "create_app",
    "run_in_background",
]
