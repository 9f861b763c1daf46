"""Binance USDⓈ-M on the simulator: orders, position, margin, funding, errors and limits."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
import pytest

from tests.fixtures.sim import SimClient

TAKER = Decimal("0.0005")


async def book(c: SimClient) -> tuple[Decimal, Decimal]:
    r = await c.binance("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}, signed=False)
    return Decimal(r.data["bidPrice"]), Decimal(r.data["askPrice"])


async def mark(c: SimClient) -> Decimal:
    r = await c.binance("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)
    return Decimal(r.data["markPrice"])


async def place(c: SimClient, **p: object):
    params = {"symbol": "BTCUSDT", **{k: str(v) for k, v in p.items()}}
    return await c.binance("POST", "/fapi/v1/order", params)


async def position(c: SimClient) -> dict:
    rows = (await c.binance("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})).data
    return rows[0]


async def wait_for_window(seconds: int, margin: float = 1.5) -> None:
    """Rate-limit windows are calendar-aligned; start a burst well inside one."""
    left = seconds - (time.time() % seconds)
    if left < margin:
        await asyncio.sleep(left + 0.05)


# ---------------------------------------------------------------------------- market data
async def test_exchange_info_has_what_clients_need(sim_client) -> None:
    r = await sim_client.binance("GET", "/fapi/v1/exchangeInfo", signed=False)
    (sym,) = r.data["symbols"]
    assert (sym["symbol"], sym["contractType"], sym["marginAsset"], sym["status"]) == (
        "BTCUSDT", "PERPETUAL", "USDT", "TRADING")
    assert {"LIMIT", "MARKET"} <= set(sym["orderTypes"])
    filters = {f["filterType"]: f for f in sym["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10" and filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert filters["MARKET_LOT_SIZE"]["maxQty"] == "120" and filters["MIN_NOTIONAL"]["notional"] == "100"
    assert filters["PERCENT_PRICE"]["multiplierUp"] == "1.0500"
    assert {x["rateLimitType"] for x in r.data["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 1


async def test_depth_book_ticker_premium_index_time(sim_client) -> None:
    c = sim_client
    r = await c.binance("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5}, signed=False)
    assert len(r.data["bids"]) == len(r.data["asks"]) == 5
    assert all(isinstance(x, str) for lvl in r.data["bids"] for x in lvl)
    assert Decimal(r.data["bids"][0][0]) < Decimal(r.data["asks"][0][0])
    r = await c.binance("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 7}, signed=False)
    assert r.data["code"] == -1130
    bid, ask = await book(c)
    assert bid < await mark(c) < ask
    p = (await c.binance("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)).data
    assert p["lastFundingRate"] == "0.00010000" and p["nextFundingTime"] > p["time"]
    t = (await c.binance("GET", "/fapi/v1/time", signed=False)).data["serverTime"]
    assert abs(t - time.time() * 1000) < 5000
    r = await c.binance("GET", "/fapi/v1/depth", {"symbol": "ETHUSDT"}, signed=False)
    assert r.data == {"code": -1121, "msg": "Invalid symbol."}
    r = await c.binance("GET", "/fapi/v1/nothing", signed=False)
    assert r.status == 404 and r.data["code"] == -5000


# ---------------------------------------------------------------------------- orders
async def test_market_ack_hides_the_fill_result_shows_it(sim_client) -> None:
    c = sim_client
    bid, _ = await book(c)
    r = await place(c, side="SELL", type="MARKET", quantity="0.01", newClientOrderId="ack-1")
    assert r.status == 200
    assert (r.data["status"], r.data["executedQty"], r.data["avgPrice"]) == ("NEW", "0", "0.00000")
    g = (await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "ack-1"})).data
    assert (g["status"], Decimal(g["executedQty"]), Decimal(g["avgPrice"])) == ("FILLED", Decimal("0.01"), bid)
    assert "time" in g
    r = await place(c, side="SELL", type="MARKET", quantity="0.01", newOrderRespType="RESULT")
    assert r.data["status"] == "FILLED" and Decimal(r.data["cumQuote"]) == Decimal(r.data["executedQty"]) * bid
    assert r.headers["X-MBX-ORDER-COUNT-10S"] == "2" and r.headers["X-MBX-ORDER-COUNT-1M"] == "2"
    led = [o for o in await c.orders("binance") if o["client_id"] == "ack-1"][0]
    assert (led["status"], Decimal(led["filled"]), Decimal(led["avg_price"])) == ("filled", Decimal("0.01"), bid)
    assert Decimal(led["fee"]) == Decimal("0.01") * bid * TAKER


async def test_client_id_unique_only_among_open_orders(sim_client) -> None:
    c = sim_client
    bid, _ = await book(c)
    r = await place(c, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002", price=str(bid - 1000),
                    newClientOrderId="dup")
    assert r.data["status"] == "NEW"
    r2 = await place(c, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002", price=str(bid - 1000),
                     newClientOrderId="dup")
    assert r2.data == {"code": -4116, "msg": "ClientOrderId is duplicated."}
    await c.binance("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "dup"})
    # a final order's id can be sent again, and it becomes a second order (the double-hedge trap)
    a = await place(c, side="SELL", type="MARKET", quantity="0.002", newClientOrderId="reuse", newOrderRespType="RESULT")
    b = await place(c, side="SELL", type="MARKET", quantity="0.002", newClientOrderId="reuse", newOrderRespType="RESULT")
    assert a.data["status"] == b.data["status"] == "FILLED" and a.data["orderId"] != b.data["orderId"]
    g = (await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "reuse"})).data
    assert g["orderId"] == b.data["orderId"]
    assert len([o for o in await c.orders("binance") if o["client_id"] == "reuse"]) == 2
    assert Decimal((await position(c))["positionAmt"]) == Decimal("-0.004")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"side": "SELL", "type": "MARKET", "quantity": "0"}, -4003),
        ({"side": "SELL", "type": "MARKET", "quantity": "0.0015"}, -1111),
        ({"side": "SELL", "type": "MARKET", "quantity": "121"}, -4005),
        ({"side": "SELL", "type": "MARKET", "quantity": "1001"}, -4005),
        ({"side": "SELL", "type": "MARKET", "quantity": "0.001"}, -4164),
        ({"side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "96000.05"}, -4014),
        ({"side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "96000.123"}, -1111),
        ({"side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "101000"}, -4016),
        ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "91000"}, -4024),
        ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "500"}, -4013),
        ({"side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "95000"}, -1102),
        ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}, -1102),
        ({"side": "BUY", "type": "MARKET"}, -1102),
        ({"side": "BUY", "type": "MARKET", "quantity": "0.01", "price": "95000"}, -1106),
        ({"side": "BUY", "type": "STOP_MARKET", "quantity": "0.01"}, -4120),
        ({"side": "BUY", "type": "ICEBERG", "quantity": "0.01"}, -1116),
        ({"side": "LONG", "type": "MARKET", "quantity": "0.01"}, -1117),
        ({"side": "BUY", "type": "MARKET", "quantity": "0.01", "newClientOrderId": "has space"}, -4015),
        ({"side": "BUY", "type": "MARKET", "quantity": "0.01", "positionSide": "LONG"}, -4061),
        ({"side": "BUY", "type": "MARKET", "quantity": "0.01", "reduceOnly": "maybe"}, -1130),
        ({"side": "BUY", "type": "MARKET", "quantity": "0.01", "reduceOnly": "true"}, -2022),
    ],
)
async def test_order_rejections(sim_client, params: dict[str, str], code: int) -> None:
    r = await place(sim_client, **params)
    assert r.status == 400 and r.data["code"] == code, r.text
    assert set(r.data) == {"code", "msg"}
    assert await sim_client.orders() == []


async def test_step_and_min_qty_filters(sim_client) -> None:
    c = sim_client
    await c.config(binance_rules={"BTCUSDT": {"step_size": "0.002", "min_qty": "0.002"}})
    assert (await place(c, side="SELL", type="MARKET", quantity="0.003")).data["code"] == -4023
    assert (await place(c, side="SELL", type="MARKET", quantity="0.001")).data["code"] == -4004
    info = (await c.binance("GET", "/fapi/v1/exchangeInfo", signed=False)).data
    lot = [f for f in info["symbols"][0]["filters"] if f["filterType"] == "LOT_SIZE"][0]
    assert lot["stepSize"] == "0.002"


async def test_test_order_validates_only(sim_client) -> None:
    c = sim_client
    r = await c.binance("POST", "/fapi/v1/order/test", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                         "quantity": "0.01"})
    assert (r.status, r.data) == (200, {})
    r = await c.binance("POST", "/fapi/v1/order/test", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                         "quantity": "0.001"})
    assert r.data["code"] == -4164
    assert await c.orders() == []


async def test_reduce_only(sim_client) -> None:
    c = sim_client
    await place(c, side="SELL", type="MARKET", quantity="0.01")
    # same direction as the position: would increase it
    assert (await place(c, side="SELL", type="MARKET", quantity="0.005", reduceOnly="true")).data["code"] == -2022
    # larger than the position: would flip it
    assert (await place(c, side="BUY", type="MARKET", quantity="0.02", reduceOnly="true")).data["code"] == -2022
    # below MIN_NOTIONAL is fine when reduce-only
    r = await place(c, side="BUY", type="MARKET", quantity="0.001", reduceOnly="true", newOrderRespType="RESULT")
    assert r.data["status"] == "FILLED" and r.data["reduceOnly"] is True
    r = await place(c, side="BUY", type="MARKET", quantity="0.009", reduceOnly="true", newOrderRespType="RESULT")
    assert r.data["status"] == "FILLED"
    assert (await position(c))["positionAmt"] == "0"


async def test_margin_is_checked_against_leverage(sim_client) -> None:
    c = sim_client
    await c.control("POST", "balances", {"binance": {"USDT": "60"}})
    m = await mark(c)
    # 0.01 BTC at 20x needs ~48 USDT + fee: fits; 0.02 needs ~96: does not
    assert (await place(c, side="SELL", type="MARKET", quantity="0.02")).data == {"code": -2019,
                                                                                 "msg": "Margin is insufficient."}
    assert (await place(c, side="SELL", type="MARKET", quantity="0.01")).status == 200
    acct = (await c.binance("GET", "/fapi/v3/account")).data
    assert Decimal(acct["totalPositionInitialMargin"]) == Decimal("0.01") * m / 20
    # more leverage frees margin
    await c.binance("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 50})
    assert (await place(c, side="SELL", type="MARKET", quantity="0.01")).status == 200


async def test_gtx_fok_ioc(sim_client) -> None:
    c = sim_client
    bid, ask = await book(c)
    r = await place(c, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.01", price=str(ask))
    assert r.data["code"] == -5022
    r = await place(c, side="BUY", type="LIMIT", timeInForce="FOK", quantity="5", price=str(ask))
    assert r.data["code"] == -5021
    assert await c.orders() == []  # neither is recorded
    r = await place(c, side="BUY", type="LIMIT", timeInForce="IOC", quantity="5", price=str(ask),
                    newOrderRespType="RESULT")
    assert r.data["status"] == "EXPIRED" and Decimal("0") < Decimal(r.data["executedQty"]) < 5
    assert Decimal(r.data["avgPrice"]) == ask
    r = await place(c, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.01", price=str(bid))
    assert r.data["status"] == "NEW"
    opened = (await c.binance("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})).data
    assert [o["orderId"] for o in opened] == [r.data["orderId"]]


async def test_query_and_cancel_errors(sim_client) -> None:
    c = sim_client
    r = await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 1})
    assert r.data == {"code": -2013, "msg": "Order does not exist."}
    r = await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT"})
    assert r.data["code"] == -1102
    r = await c.binance("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
    assert r.data == {"code": -2011, "msg": "Unknown order sent."}
    f = await place(c, side="SELL", type="MARKET", quantity="0.01", newClientOrderId="done-1")
    r = await c.binance("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": f.data["orderId"]})
    assert r.data["code"] == -2011  # already filled


async def test_position_entry_realized_pnl_and_income(sim_client) -> None:
    c = sim_client
    bid0, _ = await book(c)
    await place(c, side="SELL", type="MARKET", quantity="0.01")
    await c.market(binance_mid=97000)
    bid1, ask1 = await book(c)
    await place(c, side="SELL", type="MARKET", quantity="0.01")
    pos = await position(c)
    entry = (bid0 + bid1) / 2
    assert Decimal(pos["positionAmt"]) == Decimal("-0.02") and Decimal(pos["entryPrice"]) == entry
    assert pos["leverage"] == "20" and pos["marginType"] == "cross"
    assert Decimal(pos["liquidationPrice"]) > Decimal(pos["markPrice"])
    await place(c, side="BUY", type="MARKET", quantity="0.01", reduceOnly="true")
    realized = Decimal("0.01") * (ask1 - entry) * -1
    rows = (await c.binance("GET", "/fapi/v1/income", {"incomeType": "REALIZED_PNL"})).data
    assert [Decimal(r["income"]) for r in rows] == [realized]
    fees = (await c.binance("GET", "/fapi/v1/income", {"incomeType": "COMMISSION"})).data
    assert len(fees) == 3
    total_fees = sum(Decimal(r["income"]) for r in fees)
    bal = (await c.binance("GET", "/fapi/v3/balance")).data[0]
    assert Decimal(bal["balance"]) == Decimal(100000) + realized + total_fees
    led = await c.ledger()
    assert Decimal(led["balances"]["binance"]["USDT"]["balance"]) == Decimal(bal["balance"])
    assert Decimal(led["positions"]["binance"]["BTCUSDT"]["qty"]) == Decimal("-0.01")


async def test_resting_limit_fills_as_maker_when_the_market_moves(sim_client) -> None:
    c = sim_client
    _, ask = await book(c)
    r = await place(c, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(ask + 500))
    await c.market(binance_mid=97000)
    g = (await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": r.data["orderId"]})).data
    assert g["status"] == "FILLED" and Decimal(g["avgPrice"]) == ask + 500
    led = [o for o in await c.orders("binance")][0]
    assert Decimal(led["fee"]) == Decimal("0.01") * (ask + 500) * Decimal("0.0002")


async def test_leverage_margin_type_and_position_mode(sim_client) -> None:
    c = sim_client
    r = await c.binance("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 126})
    assert r.data["code"] == -4028
    r = await c.binance("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 3})
    assert r.data["leverage"] == 3 and r.data["symbol"] == "BTCUSDT" and "maxNotionalValue" in r.data
    r = await c.binance("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "CROSSED"})
    assert r.data == {"code": -4046, "msg": "No need to change margin type."}
    r = await c.binance("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "ISOLATED"})
    assert r.data == {"code": 200, "msg": "success"}
    await place(c, side="SELL", type="MARKET", quantity="0.01")
    r = await c.binance("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "CROSSED"})
    assert r.data["code"] == -4048
    pos = await position(c)
    assert pos["marginType"] == "isolated" and Decimal(pos["isolatedWallet"]) > 0
    r = await c.binance("GET", "/fapi/v1/positionSide/dual")
    assert r.data == {"dualSidePosition": False}
    r = await c.binance("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})
    assert r.data["code"] == -4059
    r = await c.binance("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
    assert r.data["code"] == -4068  # a position exists


async def test_hedge_mode_orders_are_refused(sim_client) -> None:
    c = sim_client
    assert (await c.binance("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})).data["code"] == 200
    assert (await place(c, side="SELL", type="MARKET", quantity="0.01")).data["code"] == -4061


async def test_account_endpoints(sim_client) -> None:
    c = sim_client
    for path in ("/fapi/v3/account", "/fapi/v2/account"):
        a = (await c.binance("GET", path)).data
        assert a["availableBalance"] == "100000" and a["assets"][0]["asset"] == "USDT"
    for path in ("/fapi/v3/balance", "/fapi/v2/balance"):
        assert (await c.binance("GET", path)).data[0]["availableBalance"] == "100000"
    assert (await c.binance("GET", "/fapi/v3/positionRisk")).data == []  # v3: only non-empty symbols
    assert len((await c.binance("GET", "/fapi/v2/positionRisk")).data) == 1
    br = (await c.binance("GET", "/fapi/v1/leverageBracket", {"symbol": "BTCUSDT"})).data
    assert br[0]["symbol"] == "BTCUSDT" and br[0]["brackets"][0]["maintMarginRatio"] == 0.004
    cr = (await c.binance("GET", "/fapi/v1/commissionRate", {"symbol": "BTCUSDT"})).data
    assert (cr["makerCommissionRate"], cr["takerCommissionRate"]) == ("0.0002", "0.0005")
    assert (await c.binance("GET", "/sapi/v1/capital/config/getall")).data == []
    assert (await c.binance("GET", "/sapi/v1/margin/allPairs")).data == []


# ---------------------------------------------------------------------------- funding / liquidation
async def test_funding_is_charged_on_the_simulation_clock(sim_client) -> None:
    c = sim_client
    await place(c, side="SELL", type="MARKET", quantity="0.01")
    m = await mark(c)
    wallet0 = Decimal((await c.binance("GET", "/fapi/v3/balance")).data[0]["balance"])
    next0 = (await c.binance("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)).data["nextFundingTime"]
    clock = await c.control("POST", "clock", {"advance_s": 8 * 3600})
    assert clock["funding_events"] == 1
    rows = (await c.binance("GET", "/fapi/v1/income", {"incomeType": "FUNDING_FEE"})).data
    assert [Decimal(r["income"]) for r in rows] == [Decimal("0.01") * m * Decimal("0.0001")]  # shorts receive
    assert rows[0]["asset"] == "USDT" and rows[0]["symbol"] == "BTCUSDT"
    wallet1 = Decimal((await c.binance("GET", "/fapi/v3/balance")).data[0]["balance"])
    assert wallet1 == wallet0 + Decimal(rows[0]["income"])
    next1 = (await c.binance("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)).data["nextFundingTime"]
    assert next1 <= next0  # the clock jumped, the next funding is (at most) 8 h away again
    hist = (await c.binance("GET", "/fapi/v1/fundingRate", {"symbol": "BTCUSDT"}, signed=False)).data
    assert hist[-1]["fundingRate"] == "0.00010000"


async def test_time_scale_makes_funding_fast(sim_factory) -> None:
    sim = await sim_factory(time_scale=8 * 3600 * 10)  # an 8-hour cycle every 0.1 s
    async with aiohttp.ClientSession() as s:
        c = SimClient(sim, s)
        await place(c, side="BUY", type="MARKET", quantity="0.01")
        await asyncio.sleep(0.35)
        rows = (await c.binance("GET", "/fapi/v1/income", {"incomeType": "FUNDING_FEE"})).data
        assert len(rows) >= 2 and all(Decimal(r["income"]) < 0 for r in rows)  # longs pay


async def test_liquidation(sim_client) -> None:
    c = sim_client
    await c.control("POST", "balances", {"binance": {"USDT": "100"}})
    await place(c, side="SELL", type="MARKET", quantity="0.02")
    lp = Decimal((await position(c))["liquidationPrice"])
    assert Decimal(96000) < lp < Decimal(102000)
    await c.market(binance_mid=float(lp) + 200)
    assert (await position(c))["positionAmt"] == "0"
    auto = [o for o in await c.orders("binance") if o["client_id"].startswith("autoclose-")]
    assert len(auto) == 1 and auto[0]["status"] == "filled" and auto[0]["side"] == "buy"
    assert Decimal((await c.ledger())["balances"]["binance"]["USDT"]["balance"]) >= 0


# ---------------------------------------------------------------------------- limits
async def test_weight_limit_429_then_418(sim_factory) -> None:
    sim = await sim_factory(limits={"binance_weight_per_min": 10, "binance_ban_after_429s": 2,
                                    "binance_ban_seconds": 90})
    async with aiohttp.ClientSession() as s:
        c = SimClient(sim, s)
        await wait_for_window(60)
        used = []
        for _ in range(5):
            r = await c.binance("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5}, signed=False)
            assert r.status == 200
            used.append(int(r.headers["X-MBX-USED-WEIGHT-1M"]))
        assert used == [2, 4, 6, 8, 10]
        r = await c.binance("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5}, signed=False)
        assert r.status == 429 and r.data["code"] == -1003 and int(r.headers["Retry-After"]) >= 1
        r = await c.binance("GET", "/fapi/v1/time", signed=False)
        assert r.status == 429
        r = await c.binance("GET", "/fapi/v1/time", signed=False)
        assert r.status == 418 and r.data["code"] == -1003 and "banned until" in r.data["msg"]
        assert 80 <= int(r.headers["Retry-After"]) <= 90


async def test_order_count_limit(sim_factory) -> None:
    sim = await sim_factory(limits={"binance_orders_per_10s": 2})
    async with aiohttp.ClientSession() as s:
        c = SimClient(sim, s)
        await wait_for_window(10)
        counts = []
        for _ in range(2):
            r = await place(c, side="SELL", type="MARKET", quantity="0.01")
            counts.append(r.headers["X-MBX-ORDER-COUNT-10S"])
        assert counts == ["1", "2"]
        r = await place(c, side="SELL", type="MARKET", quantity="0.01")
        assert r.status == 429 and r.data["code"] == -1015 and "Retry-After" in r.headers
        assert len(await c.orders()) == 2
