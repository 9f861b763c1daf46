"""Fill accounting for one signal: what each exchange actually executed.

Exposure is measured in the coin, positive = net long:

    E = residual_before + (Upbit buys − Upbit sells) + (Binance buys − Binance sells)

A hedged pair keeps ``|E|`` below one Binance lot step. ENTER wants Upbit buys = Binance
sells = Q; EXIT wants Upbit sells = Binance buys = Q (plus any spot residual). Whatever
went wrong — a rejected leg, a partial fill, an order that turned out to exist after a
timeout — the repair only needs ``E`` and which legs may be used to move it.
"""

from __future__ import annotations

from decimal import Decimal

from .models import OrderResult

__all__ = ["LegBook", "repair_route"]

ZERO = Decimal(0)


class LegBook:
    """Executed quantities and quote amounts per exchange and side for one signal."""

    __slots__ = ("bought", "sold", "buy_quote", "sell_quote", "fees", "results")

    def __init__(self) -> None:
        self.bought: dict[str, Decimal] = {"upbit": ZERO, "binance": ZERO}
        self.sold: dict[str, Decimal] = {"upbit": ZERO, "binance": ZERO}
        self.buy_quote: dict[str, Decimal] = {"upbit": ZERO, "binance": ZERO}
        self.sell_quote: dict[str, Decimal] = {"upbit": ZERO, "binance": ZERO}
        self.fees: dict[str, Decimal] = {"upbit": ZERO, "binance": ZERO}
        self.results: list[OrderResult] = []

    def add(self, res: OrderResult, purpose: str = "") -> None:
        self.results.append(res)
        ex = res.exchange
        qty = res.filled_qty
        if qty <= 0:
            return
        quote = res.quote_filled
        if quote <= 0 and res.avg_price is not None:
            quote = res.avg_price * qty
        if res.side == "buy":
            self.bought[ex] += qty
            self.buy_quote[ex] += quote
        else:
            self.sold[ex] += qty
            self.sell_quote[ex] += quote
        self.fees[ex] += res.fee

    def net(self, exchange: str) -> Decimal:
        return self.bought[exchange] - self.sold[exchange]

    def exposure(self, residual_before: Decimal = ZERO) -> Decimal:
        return residual_before + self.net("upbit") + self.net("binance")

    def avg(self, exchange: str, side: str) -> Decimal | None:
        q = self.bought[exchange] if side == "buy" else self.sold[exchange]
        quote = self.buy_quote[exchange] if side == "buy" else self.sell_quote[exchange]
        return quote / q if q > 0 else None

    @property
    def anything_filled(self) -> bool:
        return any(v > 0 for v in self.bought.values()) or any(v > 0 for v in self.sold.values())


def repair_route(action: str, exposure: Decimal, phase: str) -> tuple[str, str]:
    """Which exchange and side move ``exposure`` back to zero.

    ``phase`` is ``"retry"`` (complete the leg that is missing) or ``"unwind"`` (undo the
    excess of the leg that went too far — the emergency hedge).
    """
    too_long = exposure > 0
    side = "sell" if too_long else "buy"
    if action == "ENTER":
        # ENTER buys spot and sells perp: too long => the short is missing / spot is excess.
        missing, excess = ("binance", "upbit") if too_long else ("upbit", "binance")
    else:
        # EXIT sells spot and buys perp: too long => the spot sale is missing / perp buy excess.
        missing, excess = ("upbit", "binance") if too_long else ("binance", "upbit")
    return (missing if phase == "retry" else excess), side
