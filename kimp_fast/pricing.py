"""Pure money arithmetic of the engine: VWAP, premium, ENTER sizing, the exit rule.

No I/O here: every function takes the books, rules and balances it needs, so each rule
can be tested exactly and reused by the paper-mode signal generator and the reports.

Sign convention (SPEC's correction of the seed): the position is *long spot on Upbit,
short perp on Binance*. It gains when the premium rises; the exit rule is decided from
actual prices and P&L, and the premium change is reported only as information.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal

import msgspec

from .models import BookLevel, HedgedPosition, OrderBook, SymbolRules

__all__ = [
    "EnterSize",
    "ExitEstimate",
    "estimate_exit",
    "mid",
    "premium",
    "size_enter",
    "vwap",
]

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal("0.0001")


def vwap(levels: Sequence[BookLevel], qty: Decimal) -> Decimal | None:
    """Average price of taking ``qty`` from ``levels`` (best first); None if too thin."""
    if qty <= 0:
        return None
    left = qty
    cost = ZERO
    for lvl in levels:
        take = lvl.qty if lvl.qty < left else left
        cost += take * lvl.price
        left -= take
        if left <= 0:
            return cost / qty
    return None


def mid(book: OrderBook) -> Decimal | None:
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None:
        return None
    return (bid + ask) / 2


def premium(spot_krw: Decimal, perp_usdt: Decimal, fx_krw_per_usdt: Decimal) -> Decimal:
    """Kimchi premium = Upbit KRW price / (Binance USDT price × USDT/KRW) − 1."""
    return spot_krw / (perp_usdt * fx_krw_per_usdt) - ONE


def _round_down(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


class EnterSize(msgspec.Struct, kw_only=True):
    """The outcome of sizing an ENTER: either ``qty`` > 0 or a ``reason``."""

    qty: Decimal = ZERO
    spot_limit_price: Decimal = ZERO  # Upbit limit IOC cap (KRW)
    spot_cost_krw: Decimal = ZERO  # reserved KRW (price cap × qty × (1 + fee))
    perp_margin_usdt: Decimal = ZERO  # reserved USDT (notional / leverage × buffer + fee)
    perp_price: Decimal = ZERO  # expected Binance fill (VWAP of bids)
    spot_price: Decimal = ZERO  # expected Upbit fill (VWAP of asks)
    reason: str = ""
    capped: bool = False

    @property
    def ok(self) -> bool:
        return self.qty > 0 and not self.reason


def size_enter(
    *,
    requested_qty: Decimal,
    upbit_book: OrderBook,
    binance_book: OrderBook,
    upbit_rules: SymbolRules,
    binance_rules: SymbolRules,
    upbit_tick: Decimal,
    krw_free: Decimal,
    usdt_available: Decimal,
    krw_reserved: Decimal = ZERO,
    usdt_reserved: Decimal = ZERO,
    trading_ratio: Decimal = Decimal("0.95"),
    reserve_ratio: Decimal = Decimal("0.05"),
    leverage: int = 2,
    max_slippage_bps: Decimal = Decimal("30"),
    margin_buffer: Decimal = Decimal("0.10"),
    max_order_krw: Decimal | None = None,
) -> EnterSize:
    """Size both legs of an ENTER to the *same* quantity.

    * quantity rounded down to the coarser of the two lot steps (Binance's in practice);
    * at most ``min(trading_ratio, 1 − reserve_ratio)`` of each exchange's free balance,
      net of reservations held by signals in flight; the quantity is capped to fit
      (``capped``) rather than refused, then checked against both exchanges' minimums;
    * the Upbit leg is a limit IOC at best ask × (1 + slippage) rounded down to the
      tick (never below the best ask), and its KRW, fee included, must fit;
    * the Binance short's margin at ``leverage`` (plus a buffer) must fit *before* the
      Upbit leg is sent — the seed's naked-long failure (-2019 after the spot filled).
    """
    ask = upbit_book.best_ask()
    bid_b = binance_book.best_bid()
    if ask is None or bid_b is None:
        return EnterSize(reason="empty order book")
    step = max(binance_rules.qty_step, upbit_rules.qty_step)
    usable = min(trading_ratio, ONE - reserve_ratio)
    krw_budget = krw_free * usable - krw_reserved
    usdt_budget = usdt_available * usable - usdt_reserved
    if max_order_krw is not None:
        krw_budget = min(krw_budget, max_order_krw)

    cap = ask * (ONE + max_slippage_bps * BPS)
    limit_price = _round_down(cap, upbit_tick)
    if limit_price < ask:
        limit_price = ask
    spot_fee = upbit_rules.taker_fee
    perp_fee = binance_rules.taker_fee
    krw_per_unit = limit_price * (ONE + spot_fee)
    usdt_per_unit = bid_b / Decimal(leverage) * (ONE + margin_buffer) + bid_b * perp_fee

    qty = _round_down(requested_qty, step)
    capped = False
    if krw_budget <= 0 or usdt_budget <= 0:
        return EnterSize(
            reason=f"no capital: usable KRW {krw_budget:.0f}, usable USDT {usdt_budget:.2f}"
        )
    fit = min(_round_down(krw_budget / krw_per_unit, step), _round_down(usdt_budget / usdt_per_unit, step))
    if fit < qty:
        qty, capped = fit, True
    if binance_rules.max_qty is not None and qty > binance_rules.max_qty:
        qty, capped = _round_down(binance_rules.max_qty, step), True
    if binance_rules.market_max_qty is not None and qty > binance_rules.market_max_qty:
        qty, capped = _round_down(binance_rules.market_max_qty, step), True

    spot_vwap = vwap(upbit_book.asks, qty) if qty > 0 else None
    perp_vwap = vwap(binance_book.bids, qty) if qty > 0 else None
    base = EnterSize(
        qty=qty,
        spot_limit_price=limit_price,
        spot_cost_krw=qty * krw_per_unit,
        perp_margin_usdt=qty * usdt_per_unit,
        perp_price=perp_vwap or bid_b,
        spot_price=spot_vwap or ask,
        capped=capped,
    )
    why = []
    if qty <= 0:
        why.append(f"quantity {requested_qty} rounds to 0 at step {step} or does not fit the capital")
    else:
        if qty < binance_rules.min_qty:
            why.append(f"quantity {qty} below Binance minimum {binance_rules.min_qty}")
        if qty * bid_b < binance_rules.min_notional:
            why.append(f"Binance notional {qty * bid_b:.2f} USDT below minimum {binance_rules.min_notional}")
        if qty * limit_price < upbit_rules.min_notional:
            why.append(f"Upbit total {qty * limit_price:.0f} KRW below minimum {upbit_rules.min_notional}")
        if spot_vwap is None:
            why.append("Upbit book too thin for the quantity")
        if perp_vwap is None:
            why.append("Binance book too thin for the quantity")
    if why:
        if capped:
            why.append(
                f"(capped by capital: usable {krw_budget:.0f} KRW / {usdt_budget:.2f} USDT)"
            )
        base.reason = "; ".join(why)
        base.qty = ZERO
    return base


class ExitEstimate(msgspec.Struct, kw_only=True):
    """Expected result of closing ``qty`` of a position now, in KRW."""

    qty: Decimal
    spot_exit_price: Decimal | None  # VWAP of Upbit bids for qty
    perp_exit_price: Decimal | None  # VWAP of Binance asks for qty
    fx: Decimal
    spot_pnl_krw: Decimal = ZERO
    perp_pnl_usdt: Decimal = ZERO
    fees_krw: Decimal = ZERO  # entry share + exit, both legs, in KRW
    funding_usdt: Decimal = ZERO
    net_krw: Decimal = ZERO
    premium_entry: Decimal | None = None
    premium_now: Decimal | None = None
    reason: str = ""

    def describe(self) -> str:
        def f(x: Decimal | None, q: str = "0.01") -> str:
            return "n/a" if x is None else str(x.quantize(Decimal(q)))

        return (
            f"expected net {f(self.net_krw, '1')} KRW for {self.qty} "
            f"(spot {f(self.spot_pnl_krw, '1')} KRW, perp {f(self.perp_pnl_usdt)} USDT, "
            f"funding {f(self.funding_usdt)} USDT, fees {f(self.fees_krw, '1')} KRW, "
            f"fx {f(self.fx)}; premium entry {f(self.premium_entry, '0.0001')} -> "
            f"now {f(self.premium_now, '0.0001')})"
        )


def estimate_exit(
    *,
    position: HedgedPosition,
    qty: Decimal,
    upbit_book: OrderBook,
    binance_book: OrderBook,
    fx: Decimal,
    upbit_fee: Decimal,
    binance_fee: Decimal,
    funding_usdt: Decimal = ZERO,
    spot_qty: Decimal | None = None,
) -> ExitEstimate:
    """Net KRW of closing ``qty`` now: sell spot into Upbit bids, buy back the short from
    Binance asks, both at the VWAP for the size; entry fees (pro rata), exit fees and
    funding received (pro rata) included; the USDT leg converted at ``fx``.

    ``spot_qty`` is what the EXIT sells on Upbit when it differs from the short it buys
    back (a full EXIT also sells the spot residual a KRW market buy left): the estimate
    prices exactly the orders the EXIT sends, each leg at its own entry price.
    """
    if spot_qty is None:
        spot_qty = qty
    sv = vwap(upbit_book.bids, spot_qty)
    pv = vwap(binance_book.asks, qty)
    est = ExitEstimate(qty=qty, spot_exit_price=sv, perp_exit_price=pv, fx=fx)
    try:
        est.premium_entry = premium(position.entry_spot_price, position.entry_perp_price, position.entry_fx)
    except ArithmeticError:  # zero price in a malformed journal row
        est.premium_entry = None
    if sv is None or pv is None:
        est.reason = "order book too thin to close the quantity"
        est.net_krw = Decimal("-Infinity")
        return est
    share = min(qty / position.qty, ONE) if position.qty > 0 else ONE
    entry_fee_krw = position.entry_fees_krw * share
    entry_fee_usdt = position.entry_fees_usdt * share
    exit_fee_krw = sv * spot_qty * upbit_fee
    exit_fee_usdt = pv * qty * binance_fee
    est.spot_pnl_krw = (sv - position.entry_spot_price) * spot_qty - entry_fee_krw - exit_fee_krw
    est.funding_usdt = funding_usdt * share
    est.perp_pnl_usdt = (position.entry_perp_price - pv) * qty - entry_fee_usdt - exit_fee_usdt + est.funding_usdt
    est.fees_krw = entry_fee_krw + exit_fee_krw + (entry_fee_usdt + exit_fee_usdt) * fx
    est.net_krw = est.spot_pnl_krw + est.perp_pnl_usdt * fx
    um, bm = mid(upbit_book), mid(binance_book)
    if um is not None and bm is not None and fx > 0:
        est.premium_now = premium(um, bm, fx)
    return est
