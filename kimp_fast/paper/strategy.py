"""The DEMO strategy of paper mode — an illustration, not a trading strategy.

In production, signals come from the research side (your own code calling
``engine.submit`` or feeding ``kimp-fast run``). Paper mode needs *something* to produce
signals, so this module does the simplest thing that exercises the whole engine:

* flat and the **executable** ENTER premium (Upbit ask / (Binance bid × USDT/KRW) − 1) is
  below ``enter_below`` → ENTER ``qty``;
* holding and the executable EXIT premium (Upbit bid / (Binance ask × USDT/KRW) − 1) is
  above ``exit_above`` → EXIT the whole position.

The engine — not this module — decides whether an EXIT may execute: it refuses any exit
whose expected net profit (VWAP prices, both legs' fees, funding, FX) is not positive, so
an EXIT signal from this strategy can come back ``refused``; the strategy then waits
``cooldown_s`` before asking again.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from ..models import Signal
from .simctl import Quote

__all__ = ["DemoStrategy"]


class DemoStrategy:
    """Threshold strategy on the executable premium (DEMO ONLY — see the module docstring)."""

    label = "demo threshold strategy (not a trading strategy)"

    def __init__(self, *, coin: str = "BTC", qty: Decimal = Decimal("0.01"), enter_below: Decimal,
                 exit_above: Decimal, ttl_ms: int = 5000, cooldown_s: float = 1.0,
                 id_prefix: str = "paper") -> None:
        if exit_above <= enter_below:
            raise ValueError("exit_above must be above enter_below")
        self.coin = coin
        self.qty = qty
        self.enter_below = enter_below
        self.exit_above = exit_above
        self.ttl_ms = ttl_ms
        self.cooldown_s = cooldown_s
        self.id_prefix = id_prefix
        self._seq = itertools.count(1)
        self._quiet_until = 0.0

    def decide(self, quote: Quote, *, holding: bool, now_ms: int, now_s: float) -> Signal | None:
        """The signal to send now, or None."""
        if now_s < self._quiet_until:
            return None
        if not holding:
            p = quote.enter_premium
            if p < self.enter_below:
                return self._signal("ENTER", self.qty, p, now_ms)
        else:
            p = quote.exit_premium
            if p > self.exit_above:
                return self._signal("EXIT", None, p, now_ms)
        return None

    def cool_down(self, now_s: float) -> None:
        """Stay quiet for ``cooldown_s`` (after a signal that did not change the position)."""
        self._quiet_until = now_s + self.cooldown_s

    def _signal(self, action: str, qty: Decimal | None, kimp: Decimal, now_ms: int) -> Signal:
        n = next(self._seq)
        return Signal(
            id=f"{self.id_prefix}-{n:04d}-{action.lower()}", action=action, coin=self.coin, qty=qty,  # type: ignore[arg-type]
            ts_ms=now_ms, ttl_ms=self.ttl_ms, kimp=kimp.quantize(Decimal("0.000001")),
        )
