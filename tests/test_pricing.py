"""The engine's money arithmetic: VWAP, premium sign, ENTER sizing, the exit rule."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from kimp_fast.legs import LegBook, repair_route
from kimp_fast.models import BookLevel, HedgedPosition, OrderBook, OrderResult, SymbolRules
from kimp_fast.pricing import estimate_exit, premium, size_enter, vwap


def book(symbol, bids, asks):
    return OrderBook(
        symbol=symbol,
        bids=[BookLevel(D(p), D(q)) for p, q in bids],
        asks=[BookLevel(D(p), D(q)) for p, q in asks],
    )


UPBIT_RULES = SymbolRules(
    exchange="upbit", symbol="KRW-BTC", base_asset="BTC", quote_asset="KRW",
    qty_step=D("0.00000001"), min_notional=D(5000), maker_fee=D("0.0005"), taker_fee=D("0.0005"),
)
BINANCE_RULES = SymbolRules(
    exchange="binance", symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT",
    qty_step=D("0.001"), min_qty=D("0.001"), max_qty=D(1000), market_max_qty=D(120),
    tick_size=D("0.1"), min_notional=D(100), maker_fee=D("0.0002"), taker_fee=D("0.0005"),
)
UB = book("KRW-BTC", [("140000000", "1"), ("139999000", "2")], [("140001000", "0.5"), ("140002000", "2")])
BB = book("BTCUSDT", [("96000.0", "3"), ("95999.9", "5")], [("96000.1", "3"), ("96000.2", "5")])


def test_vwap_walks_levels_and_refuses_thin_books():
    levels = [BookLevel(D(100), D(1)), BookLevel(D(110), D(1))]
    assert vwap(levels, D("1.5")) == D("103.3333333333333333333333333")
    assert vwap(levels, D(1)) == D(100)
    assert vwap(levels, D("2.01")) is None
    assert vwap(levels, D(0)) is None


def test_premium_formula():
    # 140,000,000 / (96,000 × 1,450) − 1 ≈ +0.57 %
    p = premium(D("140000000"), D("96000"), D("1450"))
    assert D("0.0057") < p < D("0.0058")


def _size(qty, krw=D("100000000"), usdt=D("100000"), **kw):
    return size_enter(
        requested_qty=D(qty), upbit_book=UB, binance_book=BB, upbit_rules=UPBIT_RULES,
        binance_rules=BINANCE_RULES, upbit_tick=D(1000), krw_free=krw, usdt_available=usdt, **kw,
    )


def test_size_enter_rounds_down_to_the_binance_step_and_caps_slippage():
    s = _size("0.0129")
    assert s.ok and s.qty == D("0.012")
    # best ask 140,001,000 × 1.003 = 140,421,003 → on the 1,000 tick, rounded down
    assert s.spot_limit_price == D("140421000")
    assert s.spot_cost_krw == D("0.012") * D("140421000") * D("1.0005")


def test_size_enter_caps_to_usable_capital_and_keeps_the_reserve():
    # 2,000,000 KRW × 0.95 buys ~0.0135 BTC at the capped price; the short fits easily.
    s = _size("1", krw=D("2000000"))
    assert s.ok and s.capped
    assert s.qty == D("0.013")
    assert s.spot_cost_krw <= D("2000000") * D("0.95")


def test_size_enter_counts_reservations_of_signals_in_flight():
    free = _size("0.05", krw=D("10000000"))
    held = _size("0.05", krw=D("10000000"), krw_reserved=D("9000000"))
    assert free.qty == D("0.05")
    assert held.qty == D("0.003")


def test_size_enter_checks_binance_margin_before_anything_is_sent():
    # 100 USDT at 2x leverage cannot margin 0.01 BTC (≈ 480 USDT + buffer).
    s = _size("0.01", usdt=D("100"))
    assert not s.ok
    assert "below" in s.reason or "rounds to 0" in s.reason


def test_size_enter_refuses_below_both_minimums():
    s = _size("0.0005")
    assert not s.ok and "rounds to 0" in s.reason
    s = _size("0.001")  # 96 USDT < MIN_NOTIONAL 100
    assert not s.ok and "Binance notional" in s.reason


def _position(qty="0.01", spot="140000000", perp="96000", fx="1450"):
    return HedgedPosition(
        coin="BTC", qty=D(qty), entry_spot_price=D(spot), entry_perp_price=D(perp), entry_fx=D(fx),
        entry_fees_krw=D(qty) * D(spot) * D("0.0005"), entry_fees_usdt=D(qty) * D(perp) * D("0.0005"),
    )


def test_exit_gains_when_the_premium_rises():
    pos = _position()
    # Premium up: Upbit +2 % while Binance and FX are unchanged.
    up = book("KRW-BTC", [("142800000", "5")], [("142801000", "5")])
    flat_b = book("BTCUSDT", [("95999.9", "5")], [("96000.0", "5")])
    est = estimate_exit(position=pos, qty=D("0.01"), upbit_book=up, binance_book=flat_b, fx=D("1450"),
                        upbit_fee=D("0.0005"), binance_fee=D("0.0005"))
    assert est.net_krw > 0
    assert est.premium_now > est.premium_entry


def test_exit_loses_when_the_premium_falls_even_if_the_seed_formula_says_profit():
    pos = _position()
    down = book("KRW-BTC", [("137200000", "5")], [("137201000", "5")])  # premium −2 %
    flat_b = book("BTCUSDT", [("95999.9", "5")], [("96000.0", "5")])
    est = estimate_exit(position=pos, qty=D("0.01"), upbit_book=down, binance_book=flat_b, fx=D("1450"),
                        upbit_fee=D("0.0005"), binance_fee=D("0.0005"))
    # The seed's "entry_kimp − current_kimp" is positive here; the real P&L is negative.
    assert est.premium_entry - est.premium_now > 0
    assert est.net_krw < 0


def test_exit_counts_fees_and_funding():
    pos = _position()
    same_u = book("KRW-BTC", [("140000000", "5")], [("140001000", "5")])
    same_b = book("BTCUSDT", [("96000.0", "5")], [("96000.0", "5")])
    no_funding = estimate_exit(position=pos, qty=D("0.01"), upbit_book=same_u, binance_book=same_b,
                               fx=D("1450"), upbit_fee=D("0.0005"), binance_fee=D("0.0005"))
    assert no_funding.net_krw < 0  # flat prices: fees make it a loss
    funded = estimate_exit(position=pos, qty=D("0.01"), upbit_book=same_u, binance_book=same_b,
                           fx=D("1450"), upbit_fee=D("0.0005"), binance_fee=D("0.0005"),
                           funding_usdt=D("10"))
    assert funded.net_krw - no_funding.net_krw == D("10") * D("1450")


def _res(ex, side, qty, price):
    return OrderResult(exchange=ex, symbol="X", client_id="c", exchange_order_id="1", status="filled",
                       side=side, filled_qty=D(qty), avg_price=D(price), quote_filled=D(qty) * D(price))


def test_exposure_and_repair_routes():
    legs = LegBook()
    legs.add(_res("upbit", "buy", "0.01", "140000000"))
    assert legs.exposure() == D("0.01")
    # ENTER, too long: retry the missing short; unwind sells the spot.
    assert repair_route("ENTER", legs.exposure(), "retry") == ("binance", "sell")
    assert repair_route("ENTER", legs.exposure(), "unwind") == ("upbit", "sell")
    legs.add(_res("binance", "sell", "0.01", "96000"))
    assert legs.exposure() == 0
    # EXIT where only the perp buy-back filled: too long → sell spot, or re-short.
    assert repair_route("EXIT", D("0.01"), "retry") == ("upbit", "sell")
    assert repair_route("EXIT", D("0.01"), "unwind") == ("binance", "sell")
    # EXIT where only the spot sold: too short → buy back perp, or re-buy spot.
    assert repair_route("EXIT", D("-0.01"), "retry") == ("binance", "buy")
    assert repair_route("EXIT", D("-0.01"), "unwind") == ("upbit", "buy")


@pytest.mark.parametrize("residual", [D(0), D("0.0004"), D("-0.0004")])
def test_exposure_includes_the_residual_carried_in(residual):
    legs = LegBook()
    assert legs.exposure(residual) == residual
