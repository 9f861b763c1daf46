"""Balances, orders and the Binance position: the simulator's books of record.

Everything here is plain, synchronous state. The exchange modules decide *what* happens
(validation, matching); this module keeps the money consistent (locking, fees, realised
PnL, funding, liquidation maths) and renders the ledger of ``GET /_sim/ledger``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .decimals import ONE, ZERO, plain, q8

__all__ = [
    "BinanceAccount",
    "BinancePosition",
    "SimOrder",
    "Trade",
    "UpbitAccount",
    "UpbitHolding",
    "normalized_status",
]

# Binance USDT-M BTCUSDT leverage brackets (notional cap, maintenance margin rate,
# maintenance amount, max leverage) — the shape of /fapi/v1/leverageBracket.
BTC_BRACKETS: tuple[tuple[Decimal, Decimal, Decimal, int], ...] = (
    (Decimal(300_000), Decimal("0.004"), Decimal(0), 125),
    (Decimal(800_000), Decimal("0.005"), Decimal(300), 100),
    (Decimal(3_000_000), Decimal("0.0065"), Decimal(1500), 75),
    (Decimal(12_000_000), Decimal("0.01"), Decimal(12000), 50),
    (Decimal(70_000_000), Decimal("0.02"), Decimal(132000), 25),
    (Decimal(100_000_000), Decimal("0.025"), Decimal(482000), 20),
    (Decimal(230_000_000), Decimal("0.05"), Decimal(2982000), 10),
    (Decimal(480_000_000), Decimal("0.1"), Decimal(14482000), 5),
    (Decimal(600_000_000), Decimal("0.125"), Decimal(26482000), 4),
    (Decimal(800_000_000), Decimal("0.15"), Decimal(41482000), 3),
    (Decimal(1_200_000_000), Decimal("0.25"), Decimal(121482000), 2),
    (Decimal(1_800_000_000), Decimal("0.5"), Decimal(421482000), 1),
)


def bracket_for(notional: Decimal) -> tuple[Decimal, Decimal, Decimal, int]:
    for row in BTC_BRACKETS:
        if notional <= row[0]:
            return row
    return BTC_BRACKETS[-1]


@dataclass(slots=True)
class Trade:
    trade_id: str
    price: Decimal
    qty: Decimal
    funds: Decimal
    fee: Decimal
    ts_ms: int
    maker: bool = False


@dataclass(slots=True)
class SimOrder:
    """One accepted order, on either exchange.

    ``state`` is the exchange's own vocabulary (Upbit ``wait/watch/done/cancel``; Binance
    ``NEW/PARTIALLY_FILLED/FILLED/CANCELED/EXPIRED``); :func:`normalized_status` maps it
    to the CONTRACT vocabulary for the ledger.
    """

    exchange: str
    symbol: str
    exchange_order_id: str
    client_id: str | None
    side: str  # "buy" | "sell"
    type: str  # native: Upbit ord_type, Binance type
    tif: str | None
    qty: Decimal | None  # base quantity asked for (None for an Upbit market buy by KRW)
    price: Decimal | None  # limit price (Upbit "price"/"best" bid: the KRW amount, see quote_amount)
    quote_amount: Decimal | None
    created_ms: int
    state: str
    filled: Decimal = ZERO
    funds: Decimal = ZERO  # quote traded
    fee: Decimal = ZERO
    fee_asset: str = ""
    updated_ms: int = 0
    reduce_only: bool = False
    locked: Decimal = ZERO  # Upbit: funds still reserved by this order (incl. reserved fee)
    reserved_fee: Decimal = ZERO  # Upbit: fee reserved at creation
    trades: list[Trade] = field(default_factory=list)
    resp_type: str = "ACK"
    fault: str | None = None  # fault kind applied when it was placed, for the ledger
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled

    @property
    def avg_price(self) -> Decimal:
        if not self.filled:
            return ZERO
        return (self.funds / self.filled).quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP).normalize()

    @property
    def is_open(self) -> bool:
        return self.state in ("wait", "watch", "NEW", "PARTIALLY_FILLED")

    def ledger_row(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "client_id": self.client_id,
            "exchange_order_id": self.exchange_order_id,
            "side": self.side,
            "type": self.type,
            "time_in_force": self.tif,
            "qty": None if self.qty is None else plain(self.qty),
            "price": None if self.price is None else plain(self.price),
            "quote_amount": None if self.quote_amount is None else plain(self.quote_amount),
            "filled": plain(self.filled),
            "funds": plain(self.funds),
            "avg_price": plain(self.avg_price),
            "fee": plain(self.fee),
            "fee_asset": self.fee_asset,
            "status": normalized_status(self),
            "state": self.state,
            "reduce_only": self.reduce_only,
            "trades": len(self.trades),
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "fault": self.fault,
        }


def normalized_status(order: SimOrder) -> str:
    s = order.state
    if s in ("wait", "watch", "NEW"):
        return "partially_filled" if order.filled else "open"
    if s == "PARTIALLY_FILLED":
        return "partially_filled"
    if s in ("done", "FILLED"):
        return "filled"
    if s in ("cancel", "CANCELED"):
        return "canceled"
    if s in ("EXPIRED", "EXPIRED_IN_MATCH"):
        return "expired"
    return "rejected"


# ---------------------------------------------------------------------------- Upbit
@dataclass(slots=True)
class UpbitHolding:
    balance: Decimal = ZERO  # available (excludes locked), as Upbit reports it
    locked: Decimal = ZERO
    avg_buy_price: Decimal = ZERO


class UpbitAccount:
    def __init__(self, balances: dict[str, str]) -> None:
        self.holdings: dict[str, UpbitHolding] = {}
        for cur, amount in balances.items():
            self.holdings[cur] = UpbitHolding(balance=Decimal(amount))
        self.holdings.setdefault("KRW", UpbitHolding())

    def holding(self, currency: str) -> UpbitHolding:
        h = self.holdings.get(currency)
        if h is None:
            h = self.holdings[currency] = UpbitHolding()
        return h

    def available(self, currency: str) -> Decimal:
        h = self.holdings.get(currency)
        return h.balance if h else ZERO

    def lock(self, currency: str, amount: Decimal) -> None:
        h = self.holding(currency)
        h.balance -= amount
        h.locked += amount

    def unlock(self, currency: str, amount: Decimal) -> None:
        if amount <= 0:
            return
        h = self.holding(currency)
        h.locked -= amount
        h.balance += amount

    def spend_locked(self, currency: str, amount: Decimal) -> None:
        self.holding(currency).locked -= amount

    def credit(self, currency: str, amount: Decimal) -> None:
        self.holding(currency).balance += amount

    def record_buy(self, currency: str, qty: Decimal, funds: Decimal) -> None:
        """Update ``avg_buy_price`` the way Upbit shows it (cost-weighted, coin side)."""
        h = self.holding(currency)
        held = h.balance + h.locked
        if held + qty > 0:
            h.avg_buy_price = ((h.avg_buy_price * held + funds) / (held + qty)).quantize(
                Decimal("1e-8"), rounding=ROUND_HALF_UP
            )

    def rows(self) -> list[dict[str, Any]]:
        from .decimals import upbit_str

        out = []
        for cur, h in self.holdings.items():
            if cur != "KRW" and not h.balance and not h.locked:
                continue
            out.append(
                {
                    "currency": cur,
                    "balance": upbit_str(h.balance),
                    "locked": upbit_str(h.locked),
                    "avg_buy_price": upbit_str(h.avg_buy_price) if cur != "KRW" else "0",
                    "avg_buy_price_modified": False,
                    "unit_currency": "KRW",
                }
            )
        return out

    def ledger(self) -> dict[str, dict[str, str]]:
        return {cur: {"balance": plain(h.balance), "locked": plain(h.locked)} for cur, h in self.holdings.items()}


# ---------------------------------------------------------------------------- Binance
@dataclass(slots=True)
class BinancePosition:
    symbol: str
    qty: Decimal = ZERO  # signed, one-way mode
    entry: Decimal = ZERO
    leverage: int = 20
    margin_type: str = "CROSSED"
    isolated_wallet: Decimal = ZERO
    updated_ms: int = 0

    def notional(self, mark: Decimal) -> Decimal:
        return self.qty * mark

    def unrealized(self, mark: Decimal) -> Decimal:
        return self.qty * (mark - self.entry) if self.qty else ZERO

    def initial_margin(self, mark: Decimal) -> Decimal:
        return abs(self.qty) * mark / self.leverage

    def maint_margin(self, mark: Decimal) -> Decimal:
        notional = abs(self.qty) * mark
        _, rate, amount, _ = bracket_for(notional)
        return notional * rate - amount if notional else ZERO


class BinanceAccount:
    def __init__(self, balances: dict[str, str], leverage: int) -> None:
        self.wallet: dict[str, Decimal] = {a: Decimal(v) for a, v in balances.items()}
        self.wallet.setdefault("USDT", ZERO)
        self.default_leverage = leverage
        self.positions: dict[str, BinancePosition] = {}
        self.dual_side = False
        self.income: list[dict[str, Any]] = []
        self._tran_id = 9_000_000_000

    def position(self, symbol: str) -> BinancePosition:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = BinancePosition(symbol=symbol, leverage=self.default_leverage)
        return p

    def add_income(self, symbol: str, kind: str, amount: Decimal, ts_ms: int, info: str = "", trade_id: str = "") -> None:
        if not amount:
            return
        self._tran_id += 1
        self.income.append(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": plain(q8(amount)),
                "asset": "USDT",
                "info": info or kind,
                "time": ts_ms,
                "tranId": self._tran_id,
                "tradeId": trade_id,
            }
        )

    def apply_fill(self, symbol: str, signed_qty: Decimal, price: Decimal, fee: Decimal, ts_ms: int,
                   trade_id: str) -> Decimal:
        """Book one fill into the one-way position; returns the realised PnL."""
        pos = self.position(symbol)
        realized = ZERO
        q = pos.qty
        if q == 0 or (q > 0) == (signed_qty > 0):
            new_q = q + signed_qty
            pos.entry = (abs(q) * pos.entry + abs(signed_qty) * price) / abs(new_q)
            pos.qty = new_q
        else:
            closing = min(abs(signed_qty), abs(q))
            realized = closing * (price - pos.entry) * (1 if q > 0 else -1)
            new_q = q + signed_qty
            if new_q == 0:
                pos.entry = ZERO
            elif (new_q > 0) != (q > 0):  # flipped: the rest opens at this price
                pos.entry = price
            pos.qty = new_q
        pos.entry = pos.entry.quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP) if pos.qty else ZERO
        pos.updated_ms = ts_ms
        self.wallet["USDT"] += realized - fee
        if pos.margin_type == "ISOLATED":
            pos.isolated_wallet = abs(pos.qty) * pos.entry / pos.leverage if pos.qty else ZERO
        self.add_income(symbol, "REALIZED_PNL", realized, ts_ms, trade_id=trade_id)
        self.add_income(symbol, "COMMISSION", -fee, ts_ms, trade_id=trade_id)
        return realized

    # margin arithmetic (single-asset USDT, cross by default)
    def unrealized_total(self, marks: dict[str, Decimal]) -> Decimal:
        return sum((p.unrealized(marks[s]) for s, p in self.positions.items() if p.qty), ZERO)

    def position_margin(self, marks: dict[str, Decimal]) -> Decimal:
        return sum((p.initial_margin(marks[s]) for s, p in self.positions.items() if p.qty), ZERO)

    def available(self, marks: dict[str, Decimal], open_order_margin: Decimal) -> Decimal:
        bal = self.wallet["USDT"] + self.unrealized_total(marks)
        return bal - self.position_margin(marks) - open_order_margin

    def liquidation_price(self, symbol: str, mark: Decimal) -> Decimal:
        """Binance's one-position formula: the mark at which margin balance = maintenance."""
        pos = self.positions.get(symbol)
        if pos is None or not pos.qty:
            return ZERO
        size = abs(pos.qty)
        side = ONE if pos.qty > 0 else -ONE
        _, mmr, cum, _ = bracket_for(size * mark)
        wallet = pos.isolated_wallet if pos.margin_type == "ISOLATED" else self.wallet["USDT"]
        others = ZERO
        if pos.margin_type != "ISOLATED":
            # other cross positions' unrealised PnL minus their maintenance margin
            for s, p in self.positions.items():
                if s != symbol and p.qty:
                    others += p.unrealized(mark) - p.maint_margin(mark)
        denom = size * mmr - side * size
        if not denom:
            return ZERO
        lp = (wallet + others + cum - side * size * pos.entry) / denom
        return max(lp, ZERO).quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP)

    def ledger(self, marks: dict[str, Decimal], open_order_margin: Decimal) -> dict[str, dict[str, str]]:
        out = {}
        for asset, bal in self.wallet.items():
            avail = self.available(marks, open_order_margin) if asset == "USDT" else bal
            out[asset] = {"balance": plain(bal), "available": plain(q8(avail))}
        return out
