"""The simulator's whole state in one object, shared by both exchanges and the control API.

All mutation happens on the server's event loop in synchronous code, so every request
is atomic with respect to every other one (no locks needed).
"""

from __future__ import annotations

import math
import os
import random
import string
import uuid
from collections import deque
from decimal import Decimal
from typing import Any

from .accounts import BinanceAccount, SimOrder, UpbitAccount
from .auth import NonceStore
from .clock import SimClock
from .config import SimConfig
from .decimals import ZERO, plain
from .faults import FaultRegistry
from .market import Market
from .ratelimit import BinanceLimiter, UpbitLimiter

__all__ = ["SimState", "FUNDING_INTERVAL_S"]

FUNDING_INTERVAL_S = 8 * 3600
_ID_CHARS = string.ascii_letters + string.digits


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = SimClock(config.time_scale)
        self._rng = random.Random(config.seed * 1_000_003 + 1)
        self.market = Market(config.market, config.seed, self.clock)
        self.faults = FaultRegistry()
        self.nonces = NonceStore()
        self.upbit_limiter = UpbitLimiter(config.limits)
        self.binance_limiter = BinanceLimiter(config.limits)
        self.requests: deque[dict[str, Any]] = deque(maxlen=config.request_log_size)
        self.request_seq = 0
        # (route key, nanoseconds) of the simulator's own time per exchange request
        self.service_ns: deque[tuple[str, int]] = deque(maxlen=200_000)
        self.upbit_delay_ms = float(config.upbit_delay_ms)
        self.binance_delay_ms = float(config.binance_delay_ms)
        self.upbit_answer_pending = bool(config.upbit_answer_pending)
        self._reset_accounts()
        # hooks the exchanges install: called on every tick with the market moved or not
        self.on_tick: list[Any] = []

    def _reset_accounts(self) -> None:
        cfg = self.config
        self.upbit = UpbitAccount(cfg.balances["upbit"])
        self.binance = BinanceAccount(cfg.balances["binance"], cfg.binance_leverage)
        self.orders: list[SimOrder] = []
        self.upbit_by_uuid: dict[str, SimOrder] = {}
        self.upbit_by_identifier: dict[str, SimOrder] = {}
        self.upbit_used_identifiers: set[str] = self._remembered_identifiers()
        self.binance_by_id: dict[int, SimOrder] = {}
        # open orders only, so per-request work never grows with the order history
        self.upbit_open: dict[str, SimOrder] = {}
        self.binance_open: dict[int, SimOrder] = {}
        self.binance_by_client: dict[str, list[SimOrder]] = {}
        self.binance_next_id = 4_000_000_000 + self._rng.randrange(1_000_000)
        self.trade_seq = 0
        self.next_funding_sim = math.floor(self.clock.sim() / FUNDING_INTERVAL_S + 1) * FUNDING_INTERVAL_S
        self.funding_events = 0
        self._last_market_version = -1

    def _remembered_identifiers(self) -> set[str]:
        path = self.config.upbit_identifiers_path
        if not path or not os.path.exists(path):
            return set()
        with open(path, encoding="ascii") as f:
            return {line.strip() for line in f if line.strip()}

    def use_upbit_identifier(self, identifier: str) -> None:
        """Mark an Upbit identifier used (forever: in the identifiers file when there is one)."""
        self.upbit_used_identifiers.add(identifier)
        path = self.config.upbit_identifiers_path
        if path:
            with open(path, "a", encoding="ascii") as f:
                f.write(identifier + "\n")

    def reset(self, *, market: bool = False) -> None:
        """Back to the starting balances: orders, positions, income, faults, limits and
        logs cleared. ``market=True`` also restarts the price process."""
        self._reset_accounts()
        self.faults.clear()
        self.nonces.clear()
        self.upbit_limiter.reset()
        self.binance_limiter.reset()
        self.requests.clear()
        self.service_ns.clear()
        if market:
            from .config import MarketParams

            self.config.market = MarketParams()
            self.market = Market(self.config.market, self.config.seed, self.clock)

    # ------------------------------------------------------------------ ids
    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_binance_order_id(self) -> int:
        self.binance_next_id += 1
        return self.binance_next_id

    def new_client_id(self) -> str:
        return "sim" + "".join(self._rng.choice(_ID_CHARS) for _ in range(19))

    def new_trade_id(self) -> str:
        self.trade_seq += 1
        return str(self.trade_seq)

    def add_order(self, order: SimOrder) -> None:
        self.orders.append(order)

    def sync_open(self, order: SimOrder) -> None:
        """Keep the open-order index in step with ``order.state``."""
        if order.exchange == "upbit":
            index: dict = self.upbit_open
            key: object = order.exchange_order_id
        else:
            index = self.binance_open
            key = int(order.exchange_order_id)
        if order.is_open:
            index[key] = order
        else:
            index.pop(key, None)

    # ------------------------------------------------------------------ time
    def tick(self) -> None:
        """Advance the market, then let the exchanges react (resting fills, funding,
        liquidation). Called before every request and by the background task."""
        moved = self.market.advance() or self.market.version != self._last_market_version
        self._last_market_version = self.market.version
        for hook in self.on_tick:
            hook(moved)

    def marks(self) -> dict[str, Decimal]:
        return {"BTCUSDT": self.market.mark_price("BTCUSDT")}

    # ------------------------------------------------------------------ views
    def open_order_margin(self) -> Decimal:
        total = ZERO
        for o in self.binance_open.values():
            if not o.reduce_only and o.price is not None and o.qty is not None:
                total += (o.qty - o.filled) * o.price / self.binance.position(o.symbol).leverage
        return total

    def ledger(self, since: int = 0) -> dict[str, Any]:
        """Orders (from index ``since`` on: long runs read only what is new), balances,
        positions, income. ``orders_total`` is the number of orders ever accepted."""
        marks = self.marks()
        positions = {}
        for sym, p in self.binance.positions.items():
            mark = marks[sym]
            positions[sym] = {
                "qty": plain(p.qty),
                "entry_price": plain(p.entry),
                "liquidation_price": plain(self.binance.liquidation_price(sym, mark)),
                "mark_price": plain(mark),
                "unrealized_pnl": plain(p.unrealized(mark).quantize(Decimal("1e-8"))),
                "leverage": p.leverage,
                "margin_type": p.margin_type,
            }
        return {
            "orders": [o.ledger_row() for o in self.orders[max(0, since):]],
            "orders_total": len(self.orders),
            "balances": {
                "upbit": self.upbit.ledger(),
                "binance": self.binance.ledger(marks, self.open_order_margin()),
            },
            "positions": {"binance": positions},
            "income": {"binance": list(self.binance.income)},
            "funding_events": self.funding_events,
        }
