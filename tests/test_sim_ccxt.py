"""Fidelity: an independent client (ccxt) trades against the simulator unchanged, and
everything it reports agrees with the simulator's ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest

ccxt = pytest.importorskip("ccxt")
import ccxt.async_support as ccxt_async  # noqa: E402

pytestmark = pytest.mark.ccxt


def point_at(ex: Any, base: str) -> Any:
    """CCXT_NOTES: keep each API's path, replace scheme and host."""
    for key, value in list(ex.urls["api"].items()):
        ex.urls["api"][key] = base + urlsplit(value.replace("{hostname}", "x")).path
    return ex


def linear_errors(ex: Any) -> Any:
    """Make /fapi/ URLs on a local host use ccxt's USDT-M error table (CCXT_NOTES)."""
    orig = ex.get_exceptions_by_url

    def by_url(url: str, exact_or_broad: str) -> dict:
        if url and "/fapi/" in url:
            return ex.safe_dict(ex.safe_dict(ex.exceptions, "linear", {}), exact_or_broad, {})
        return orig(url, exact_or_broad)

    ex.get_exceptions_by_url = by_url
    return ex


def make_upbit(sim: Any, secret: str | None = None) -> Any:
    return point_at(ccxt_async.upbit({"apiKey": sim.upbit_keys.access_key,
                                      "secret": secret or sim.upbit_keys.secret_key,
                                      "enableRateLimit": False}), sim.url)


def make_usdm(sim: Any, secret: str | None = None) -> Any:
    return linear_errors(point_at(ccxt_async.binanceusdm({
        "apiKey": sim.binance_keys.api_key, "secret": secret or sim.binance_keys.secret_key,
        "enableRateLimit": False, "options": {"fetchCurrencies": False}}), sim.url))


def ledger_order(ledger: dict, exchange_order_id: str) -> dict:
    (row,) = [o for o in ledger["orders"] if o["exchange_order_id"] == str(exchange_order_id)]
    return row


def D(x: Any) -> Decimal:
    return Decimal(str(x))


async def test_ccxt_upbit_trades_against_the_simulator(sim) -> None:
    ex = make_upbit(sim)
    try:
        markets = await ex.load_markets()
        assert {"BTC/KRW", "USDT/KRW"} <= set(markets)

        bal = await ex.fetch_balance()
        led = sim.state.ledger()
        assert D(bal["KRW"]["free"]) == Decimal(led["balances"]["upbit"]["KRW"]["balance"])

        ob = await ex.fetch_order_book("BTC/KRW")
        bid, ask = sim.state.market.best("KRW-BTC")
        assert (D(ob["bids"][0][0]), D(ob["asks"][0][0])) == (bid, ask)

        # market buy by cost
        buy = await ex.create_order("BTC/KRW", "market", "buy", None, None, {"cost": 1_000_000})
        buy = await ex.fetch_order(buy["id"], "BTC/KRW")
        row = ledger_order(sim.state.ledger(), buy["id"])
        assert (row["side"], row["type"], row["status"]) == ("buy", "price", "canceled")
        assert D(buy["filled"]) == Decimal(row["filled"])
        assert D(buy["cost"]) == Decimal(row["funds"])
        assert D(buy["fee"]["cost"]) == Decimal(row["fee"]) and buy["fee"]["currency"] == "KRW"
        assert buy["average"] == pytest.approx(float(row["avg_price"]))

        # limit IOC buy, crossing
        ioc = await ex.create_order("BTC/KRW", "limit", "buy", 0.001, float(ask + 1_000_000), {"timeInForce": "IOC"})
        row = ledger_order(sim.state.ledger(), ioc["id"])
        assert ioc["status"] == "closed" and row["status"] == "filled" and row["time_in_force"] == "ioc"
        assert D(ioc["filled"]) == Decimal(row["filled"]) == Decimal("0.001")

        # market sell of part of what was bought
        sell = await ex.create_order("BTC/KRW", "market", "sell", 0.005)
        sell = await ex.fetch_order(sell["id"], "BTC/KRW")  # POST answers carry no trades: no cost yet
        row = ledger_order(sim.state.ledger(), sell["id"])
        assert row["status"] == "filled" and Decimal(row["filled"]) == Decimal("0.005")
        assert D(sell["cost"]) == Decimal(row["funds"])

        # resting limit order, then cancel: Upbit answers "wait", the cancel completes right after
        rest = await ex.create_order("BTC/KRW", "limit", "buy", 0.001, float(bid - 10_000_000))
        assert rest["status"] == "open"
        canceled = await ex.cancel_order(rest["id"], "BTC/KRW")
        assert canceled["id"] == rest["id"]
        after = await ex.fetch_order(rest["id"], "BTC/KRW")
        assert after["status"] == "canceled"
        assert ledger_order(sim.state.ledger(), rest["id"])["status"] == "canceled"

        bal = await ex.fetch_balance()
        led = sim.state.ledger()["balances"]["upbit"]
        for cur in ("KRW", "BTC"):
            assert D(bal[cur]["free"]) == Decimal(led[cur]["balance"])
            assert D(bal[cur]["used"]) == Decimal(led[cur]["locked"]) == 0
    finally:
        await ex.close()


async def test_ccxt_binanceusdm_trades_against_the_simulator(sim) -> None:
    ex = make_usdm(sim)
    symbol = "BTC/USDT:USDT"
    try:
        markets = await ex.load_markets()
        assert markets[symbol]["linear"] and markets[symbol]["precision"]["amount"] == 0.001

        bal = await ex.fetch_balance()
        assert D(bal["USDT"]["free"]) == Decimal(sim.state.ledger()["balances"]["binance"]["USDT"]["available"])

        ob = await ex.fetch_order_book(symbol, 5)
        bid, ask = sim.state.market.best("BTCUSDT")
        assert (D(ob["bids"][0][0]), D(ob["asks"][0][0])) == (bid, ask)

        lev = await ex.set_leverage(5, symbol)
        assert lev["leverage"] == 5

        sell = await ex.create_order(symbol, "market", "sell", 0.01)
        row = ledger_order(sim.state.ledger(), sell["id"])
        assert sell["status"] == "closed" and row["status"] == "filled"
        assert D(sell["filled"]) == Decimal(row["filled"]) == Decimal("0.01")
        assert D(sell["average"]) == Decimal(row["avg_price"]) == bid
        fetched = await ex.fetch_order(sell["id"], symbol)
        assert fetched["clientOrderId"] == row["client_id"] and D(fetched["cost"]) == Decimal(row["funds"])

        cover = await ex.create_order(symbol, "market", "buy", 0.004, None, {"reduceOnly": True})
        row = ledger_order(sim.state.ledger(), cover["id"])
        assert row["reduce_only"] is True and row["status"] == "filled" and cover["reduceOnly"] is True

        rest = await ex.create_order(symbol, "limit", "buy", 0.002, float(bid - 3000))
        assert rest["status"] == "open"
        canceled = await ex.cancel_order(rest["id"], symbol)
        assert canceled["status"] == "canceled"
        assert ledger_order(sim.state.ledger(), rest["id"])["status"] == "canceled"

        (pos,) = await ex.fetch_positions([symbol])
        led = sim.state.ledger()["positions"]["binance"]["BTCUSDT"]
        assert pos["side"] == "short" and D(pos["contracts"]) == -Decimal(led["qty"]) == Decimal("0.006")
        assert D(pos["entryPrice"]) == Decimal(led["entry_price"])
        assert D(pos["liquidationPrice"]) == Decimal(led["liquidation_price"])
        assert led["leverage"] == 5

        fr = await ex.fetch_funding_rate(symbol)
        assert fr["fundingRate"] == pytest.approx(0.0001)
        assert D(fr["markPrice"]) == Decimal(led["mark_price"])
        assert fr["fundingTimestamp"] > fr["timestamp"]
    finally:
        await ex.close()


async def test_ccxt_wrong_secret_is_an_authentication_error(sim) -> None:
    up = make_upbit(sim, secret="not-the-secret")
    usdm = make_usdm(sim, secret="0" * 64)
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await up.fetch_balance()
        await usdm.load_markets()  # public: fine
        with pytest.raises(ccxt.AuthenticationError):
            await usdm.fetch_balance()
    finally:
        await up.close()
        await usdm.close()
    assert sim.state.ledger()["orders"] == []


async def test_ccxt_sees_exchange_errors_as_the_real_ones(sim) -> None:
    ex = make_usdm(sim)
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.InvalidOrder):  # -4164 MIN_NOTIONAL
            await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.001)
        with pytest.raises(ccxt.InvalidOrder):  # -2022 reduce-only with no position
            await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01, None, {"reduceOnly": True})
    finally:
        await ex.close()
    up = make_upbit(sim)
    try:
        with pytest.raises(ccxt.InsufficientFunds):
            await up.create_order("BTC/KRW", "market", "sell", 1)
        with pytest.raises(ccxt.OrderNotFound):
            await up.fetch_order("00000000-0000-4000-8000-000000000000", "BTC/KRW")
    finally:
        await up.close()
