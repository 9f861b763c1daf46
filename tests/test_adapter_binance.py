"""BinanceUsdm against the exchange simulator over real sockets.

Every operation, the exact parameter strings and HMAC signatures on the wire, the clock
offset and -1021 handling, every fault kind of CONTRACT §4 mapped to its error class,
decimal round trips, local refusals that send nothing, and a 50-order burst.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest
from adapters_direct._http import CLIENT_THROTTLE, CONNECTION_LOST, TIMEOUT
from adapters_direct.binance import BinanceUsdm
from adapters_direct.client_ids import make_client_id
from adapters_direct.errors import (
    AuthError,
    InsufficientFunds,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)
from kimp_fast.ratelimit import RateLimiter
from tests.fixtures.sim import SimClient

D = Decimal
SYMBOL = "BTCUSDT"
TAKER = D("0.0005")

MakeBinance = Callable[..., Awaitable[BinanceUsdm]]


@pytest.fixture(params=["wire", "aiohttp"])
async def make_binance(sim, request: pytest.FixtureRequest) -> AsyncIterator[MakeBinance]:
    opened: list[BinanceUsdm] = []

    async def make(**options: Any) -> BinanceUsdm:
        options.setdefault("symbols", (SYMBOL,))
        options.setdefault("keepwarm_s", 0)
        options.setdefault("rules_refresh_s", 0)
        options.setdefault("order_lane", request.param)  # every test runs on both order paths
        secret = options.pop("secret_key", sim.binance_keys.secret_key)
        ad = ExchangeFactory.create(
            "binance", AdapterType.DIRECT, api_key=sim.binance_keys.api_key, secret_key=secret,
            base_url=sim.url, **options,
        )
        assert isinstance(ad, BinanceUsdm)
        await ad.open()
        opened.append(ad)
        return ad

    yield make
    for ad in opened:
        await ad.close()


@pytest.fixture
async def binance(make_binance: MakeBinance) -> BinanceUsdm:
    return await make_binance()


async def log(c: SimClient, **filters: Any) -> list[dict[str, Any]]:
    return await c.requests(exchange="binance", limit=5000, **filters)


async def ledger_order(c: SimClient, client_id: str) -> dict[str, Any] | None:
    rows = [o for o in await c.orders("binance") if o["client_id"] == client_id]
    return rows[-1] if rows else None


def cid(name: str, attempt: int = 0) -> str:
    return make_client_id(f"test-{name}", "binance-entry", attempt)


def market(side: str, qty: str, client_id: str, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(symbol=SYMBOL, side=side, type="market", quantity=D(qty), client_id=client_id, reduce_only=reduce_only)


def limit(side: str, qty: str, price: Decimal | str, client_id: str, tif: str | None = None, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(
        symbol=SYMBOL, side=side, type="limit", quantity=D(qty), price=D(price), time_in_force=tif,
        client_id=client_id, reduce_only=reduce_only,
    )


def check_signature(secret: str, signed: str) -> dict[str, str]:
    """Verify ``...&signature=hex`` over everything before it; return the parameters."""
    payload, _, signature = signed.rpartition("&signature=")
    assert signature == hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return dict(p.split("=", 1) for p in payload.split("&"))


# ------------------------------------------------------------------------- lifecycle
async def test_open_syncs_clock_prewarms_and_loads_rules(sim_client, binance: BinanceUsdm) -> None:
    rows = await log(sim_client)
    paths = [(r["method"], r["path"]) for r in rows]
    assert paths.count(("GET", "/fapi/v1/time")) == 3  # 2 concurrent (pre-warm) + 1 on a warm connection
    assert ("GET", "/fapi/v1/exchangeInfo") in paths and ("GET", "/fapi/v1/commissionRate") in paths
    for r in rows:
        assert "Origin" not in r["headers"]
        signed = "signature=" in r["query"] or "signature=" in r["body"]
        assert ("X-MBX-APIKEY" in r["headers"]) is signed  # the key goes only where it is needed
    assert abs(binance.clock_offset_ms) < 1000
    rules = binance.rules(SYMBOL)
    assert (rules.base_asset, rules.quote_asset) == ("BTC", "USDT")
    assert rules.qty_step == D("0.001") and rules.min_qty == D("0.001")
    assert rules.tick_size == D("0.10") and rules.min_price == D("556.80")
    assert rules.min_notional == D(100) and rules.market_max_qty == D(120) and rules.max_qty == D(1000)
    assert (rules.maker_fee, rules.taker_fee) == (D("0.0002"), TAKER)
    assert binance.tick_for(SYMBOL, D(96000)) == D("0.10")


async def test_wrong_secret_is_auth_error_at_open(make_binance: MakeBinance) -> None:
    with pytest.raises(AuthError) as ei:
        await make_binance(secret_key="not-the-secret")
    assert ei.value.code == -1022
    assert "not-the-secret" not in str(ei.value) + repr(ei.value)


async def test_wrong_api_key_is_auth_error(sim) -> None:
    ad = BinanceUsdm(api_key="A" * 64, secret_key=sim.binance_keys.secret_key, base_url=sim.url, keepwarm_s=0)
    async with ad:  # public calls only: opens fine
        with pytest.raises(AuthError) as ei:
            await ad.get_balances()
    assert ei.value.code == -2015 and ei.value.status == 401


# ------------------------------------------------------------------------- orders
async def test_market_short_is_signed_and_normalized(sim, sim_client, binance: BinanceUsdm) -> None:
    bid, ask = await binance.best_bid_ask(SYMBOL)
    res = await binance.place_order(market("sell", "0.002", cid("short")))
    assert res.status == "filled" and res.exchange == "binance" and res.side == "sell"
    assert res.client_id == cid("short") and res.quantity == D("0.002") and res.filled_qty == D("0.002")
    assert res.avg_price == bid
    assert res.quote_filled == bid * D("0.002")
    assert res.fee == res.quote_filled * TAKER and res.fee_asset == "USDT"  # the documented estimate

    row = await ledger_order(sim_client, cid("short"))
    assert row is not None and row["exchange_order_id"] == res.exchange_order_id
    assert D(row["filled"]) == res.filled_qty and D(row["avg_price"]) == res.avg_price
    assert abs(D(row["fee"]) - res.fee) <= D("1e-8")

    (req,) = await log(sim_client, method="POST", path="/fapi/v1/order")
    assert req["query"] == ""
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert req["headers"]["X-MBX-APIKEY"] == sim.binance_keys.api_key
    params = check_signature(sim.binance_keys.secret_key, req["body"])
    assert req["body"].startswith(
        f"symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.002&newClientOrderId={cid('short')}"
        "&newOrderRespType=RESULT&recvWindow=5000&timestamp="
    )
    assert abs(int(params["timestamp"]) - req["ts_ms"]) < 1000

    pos = await binance.get_position(SYMBOL)
    assert pos.qty == D("-0.002") and pos.entry_price == bid
    assert pos.leverage == 20 and pos.margin_type == "CROSSED"
    assert pos.margin_balance > 0 and pos.maint_margin > 0 and pos.liquidation_price > bid


async def test_reduce_only_limit_ioc_closes_the_short(sim_client, binance: BinanceUsdm) -> None:
    await binance.place_order(market("sell", "0.003", cid("open")))
    _, ask = await binance.best_bid_ask(SYMBOL)
    res = await binance.place_order(limit("buy", "0.003", ask + D("50.05"), cid("close"), "ioc", reduce_only=True))
    assert res.status == "filled" and res.filled_qty == D("0.003")
    req = (await log(sim_client, method="POST", path="/fapi/v1/order"))[-1]
    price = ask + D("50.0")  # rounded down to the 0.10 tick, never above the caller's limit
    assert req["body"].startswith(
        f"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=IOC&quantity=0.003&price={price.normalize():f}"
        f"&reduceOnly=true&newClientOrderId={cid('close')}&newOrderRespType=RESULT&"
    )
    assert (await binance.get_position(SYMBOL)).qty == 0
    with pytest.raises(Rejected) as ei:  # flat now: a reduce-only order has nothing to reduce
        await binance.place_order(market("buy", "0.003", cid("close", 1), reduce_only=True))
    assert ei.value.code == -2022 and type(ei.value) is Rejected


async def test_resting_order_get_duplicate_and_cancel(sim, sim_client, binance: BinanceUsdm) -> None:
    price = D("92000.0")
    opened = await binance.place_order(limit("buy", "0.002", price, cid("rest")))
    assert opened.status == "open" and opened.filled_qty == 0 and opened.avg_price is None
    assert opened.fee == 0

    got = await binance.get_order(SYMBOL, cid("rest"))
    assert got.status == "open" and got.exchange_order_id == opened.exchange_order_id
    req = (await log(sim_client, method="GET", path="/fapi/v1/order"))[-1]
    assert req["body"] == ""
    params = check_signature(sim.binance_keys.secret_key, req["query"])
    assert req["query"].startswith(f"symbol=BTCUSDT&origClientOrderId={cid('rest')}&recvWindow=5000&timestamp=")
    assert set(params) == {"symbol", "origClientOrderId", "recvWindow", "timestamp"}

    with pytest.raises(Rejected) as ei:  # unique among OPEN orders
        await binance.place_order(limit("buy", "0.002", price, cid("rest")))
    assert ei.value.code == -4116

    canceled = await binance.cancel_order(SYMBOL, cid("rest"))
    assert canceled.status == "canceled" and canceled.filled_qty == 0
    req = (await log(sim_client, method="DELETE", path="/fapi/v1/order"))[-1]
    check_signature(sim.binance_keys.secret_key, req["query"])
    again = await binance.cancel_order(SYMBOL, cid("rest"))  # -2011 → looked up → its final state
    assert again.status == "canceled"
    with pytest.raises(OrderNotFound) as ei:
        await binance.get_order(SYMBOL, cid("never"))
    assert ei.value.code == -2013
    with pytest.raises(OrderNotFound):
        await binance.cancel_order(SYMBOL, cid("never"))


async def test_exchange_rejections(binance: BinanceUsdm) -> None:
    with pytest.raises(InsufficientFunds) as ei:
        await binance.place_order(market("sell", "100", cid("huge")))
    assert ei.value.code == -2019
    with pytest.raises(Rejected) as ei:
        await binance.place_order(market("sell", "0.001", cid("small")))  # 96 USDT < 100 notional
    assert ei.value.code == -4164
    with pytest.raises(Rejected) as ei:
        await binance.place_order(limit("buy", "0.002", "50000", cid("far")))  # PERCENT_PRICE
    assert ei.value.code == -4024


# ------------------------------------------------------------------------- account
async def test_balances_and_margin(binance: BinanceUsdm) -> None:
    b = await binance.get_balances()
    assert b["USDT"].free == D(100_000) and b["USDT"].locked == 0
    assert await binance.get_available_margin() == D(100_000)
    await binance.place_order(market("sell", "0.002", cid("m")))
    after = await binance.get_balances()
    assert after["USDT"].locked > 0 and after["USDT"].free < D(100_000)
    assert await binance.get_available_margin() == after["USDT"].free


async def test_leverage_margin_type_and_position_mode(sim_client, binance: BinanceUsdm) -> None:
    assert await binance.set_leverage(SYMBOL, 3) == 3
    await binance.set_margin_type(SYMBOL, "ISOLATED")
    await binance.set_margin_type(SYMBOL, "ISOLATED")  # -4046 "no need to change": success
    rows = await log(sim_client, path="/fapi/v1/marginType")
    assert [r["status"] for r in rows] == [200, 400]
    pos = await binance.get_position(SYMBOL)
    assert pos.qty == 0 and pos.leverage == 3 and pos.margin_type == "ISOLATED"
    with pytest.raises(ValueError):
        await binance.set_leverage(SYMBOL, 0)
    with pytest.raises(ValueError):
        await binance.set_margin_type(SYMBOL, "PORTFOLIO")

    await binance.ensure_one_way_mode()
    # switch the account to hedge mode (the engine never does this), then check again
    await binance._signed("POST", "/fapi/v1/positionSide/dual", "dualSidePosition=true")
    with pytest.raises(Rejected) as ei:
        await binance.ensure_one_way_mode()
    assert ei.value.code == "hedge_mode"


async def test_funding_rate_income_and_commission(sim_client, binance: BinanceUsdm) -> None:
    fr = await binance.get_funding_rate(SYMBOL)
    assert fr.symbol == SYMBOL and fr.rate == D("0.0001") and fr.mark_price > 0
    assert fr.next_funding_time_ms > 0

    assert await binance.get_funding_income(SYMBOL, 0) == 0
    await binance.place_order(market("sell", "0.01", cid("f")))
    await sim_client.control("POST", "clock", {"advance_s": 8 * 3600})  # one funding time
    await binance.get_position(SYMBOL)  # any request lets the simulator settle funding
    income = await binance.get_funding_income(SYMBOL, 0)
    ledger = await sim_client.ledger()
    paid = [D(r["income"]) for r in ledger["income"]["binance"] if r["incomeType"] == "FUNDING_FEE"]
    assert paid and income == sum(paid) and income > 0  # positive rate: the short receives
    req = (await log(sim_client, path="/fapi/v1/income"))[-1]
    assert req["query"].startswith("symbol=BTCUSDT&incomeType=FUNDING_FEE&startTime=0&limit=1000&")

    assert await binance.get_commission_rate(SYMBOL) == (D("0.0002"), D("0.0005"))


async def test_order_book_and_best_prices(sim_client, binance: BinanceUsdm) -> None:
    book = await binance.get_order_book(SYMBOL, depth=7)
    assert len(book.bids) == len(book.asks) == 7
    req = (await log(sim_client, path="/fapi/v1/depth"))[-1]
    assert req["query"] == "symbol=BTCUSDT&limit=10"  # the smallest allowed limit >= 7
    raw = await sim_client.binance("GET", "/fapi/v1/depth", {"symbol": SYMBOL, "limit": 10}, signed=False)
    assert [[str(lv.price), str(lv.qty)] for lv in book.bids] == raw.data["bids"][:7]  # strings, untouched
    assert [[str(lv.price), str(lv.qty)] for lv in book.asks] == raw.data["asks"][:7]
    bid, ask = await binance.best_bid_ask(SYMBOL)
    assert (bid, ask) == (book.bids[0].price, book.asks[0].price)
    with pytest.raises(ValueError):
        await binance.get_order_book(SYMBOL, depth=0)


# ------------------------------------------------------------------------- clock
async def test_clock_skew_resyncs_and_retries_reads_once(sim_client, binance: BinanceUsdm) -> None:
    await binance.place_order(limit("buy", "0.002", "92000", cid("skew")))
    binance._offset_ms -= 20_000  # the local clock jumped 20 s behind
    got = await binance.get_order(SYMBOL, cid("skew"))
    assert got.status == "open"
    assert abs(binance.clock_offset_ms) < 1000
    statuses = [r["status"] for r in await log(sim_client, path="/fapi/v1/order", method="GET")]
    assert statuses[-2:] == [400, 200]

    binance._offset_ms += 20_000  # now 20 s ahead
    with pytest.raises(Rejected) as ei:  # an order is never retried, even on -1021
        await binance.place_order(market("sell", "0.002", cid("skew2")))
    assert ei.value.code == -1021 and ei.value.executed == "no"
    assert abs(binance.clock_offset_ms) < 1000  # re-synced: the next attempt goes through
    res = await binance.place_order(market("sell", "0.002", cid("skew2", 1)))
    assert res.status == "filled"
    assert await ledger_order(sim_client, cid("skew2")) is None


# ------------------------------------------------------------------------- faults (CONTRACT §4)
@pytest.mark.parametrize(
    ("kind", "executed"),
    [
        ("drop_after", True),
        ("drop_before", False),
        ("http_500", True),
        ("http_500", False),
        ("unknown_503", True),  # "Unknown error": it may have executed
        ("unknown_503", False),
        ("garbage", True),
        ("garbage", False),
        ("delay", True),
    ],
)
async def test_order_faults_give_outcome_unknown_and_the_lookup_tells(
    sim_client, make_binance: MakeBinance, kind: str, executed: bool
) -> None:
    binance = await make_binance(timeout_s=0.3)
    spec: dict[str, Any] = {"exchange": "binance", "method": "POST", "path": "/fapi/v1/order", "kind": kind}
    if kind in ("http_500", "unknown_503", "garbage"):
        spec["executed"] = executed
    if kind == "delay":
        spec.update(ms=1000, phase="after")
    await sim_client.fault(**spec)
    client_id = cid(f"{kind}-{executed}")
    with pytest.raises(OutcomeUnknown) as ei:
        await binance.place_order(market("sell", "0.002", client_id))
    err = ei.value
    assert err.client_id == client_id and err.executed == "unknown"
    if kind in ("drop_after", "drop_before"):
        assert err.code == CONNECTION_LOST
    if kind == "delay":
        assert err.code == TIMEOUT
    if kind == "unknown_503":
        assert err.status == 503 and "Unknown error" in err.message
    if executed:
        found = await binance.get_order(SYMBOL, client_id)
        assert found.status == "filled" and found.filled_qty == D("0.002")
    else:
        with pytest.raises(OrderNotFound):
            await binance.get_order(SYMBOL, client_id)
        assert await ledger_order(sim_client, client_id) is None


async def test_rate_limit_429_and_ban_418(sim_client, make_binance: MakeBinance) -> None:
    binance = await make_binance(max_rate_wait_s=0.2)
    await sim_client.fault(exchange="binance", method="GET", path="/fapi/v3/balance", kind="rate_limit_429", seconds=2)
    with pytest.raises(RateLimited) as ei:
        await binance.get_balances()
    assert ei.value.status == 429 and ei.value.code == -1003 and ei.value.retry_after >= 2
    before = len(await log(sim_client))
    with pytest.raises(RateLimited) as ei:
        await binance.place_order(market("sell", "0.002", cid("blocked")))
    assert ei.value.code == CLIENT_THROTTLE and len(await log(sim_client)) == before


async def test_rate_limit_429_on_the_order_post_places_nothing(sim_client, make_binance: MakeBinance) -> None:
    binance = await make_binance(max_rate_wait_s=0.2)
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="rate_limit_429", seconds=2)
    with pytest.raises(RateLimited) as ei:
        await binance.place_order(market("sell", "0.002", cid("post-429")))
    err = ei.value
    assert err.status == 429 and err.code == -1003 and not err.banned
    assert err.retry_after >= 2 and err.client_id == cid("post-429") and err.executed == "no"
    (post,) = await log(sim_client, method="POST", path="/fapi/v1/order")
    assert post["status"] == 429 and post["fault"] == "rate_limit_429"
    assert await ledger_order(sim_client, cid("post-429")) is None


async def test_short_delay_before_processing_still_fills(sim_client, make_binance: MakeBinance) -> None:
    binance = await make_binance(timeout_s=1.0)
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="delay", ms=200)  # phase "before"
    t0 = asyncio.get_running_loop().time()
    res = await binance.place_order(market("sell", "0.002", cid("short-delay")))
    assert asyncio.get_running_loop().time() - t0 >= 0.2
    assert res.status == "filled" and res.filled_qty == D("0.002")
    (post,) = await log(sim_client, method="POST", path="/fapi/v1/order")
    assert post["fault"] == "delay" and post["status"] == 200


async def test_delay_before_processing_past_the_timeout_executes_late(sim_client, make_binance: MakeBinance) -> None:
    """phase "before": the simulator sleeps, then processes the order even though the
    client has given up, as a slow exchange would: OutcomeUnknown, then the order exists."""
    binance = await make_binance(timeout_s=0.3)
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="delay", ms=1000)
    with pytest.raises(OutcomeUnknown) as ei:
        await binance.place_order(market("sell", "0.002", cid("late")))
    assert ei.value.code == TIMEOUT and ei.value.executed == "unknown" and ei.value.client_id == cid("late")
    assert await ledger_order(sim_client, cid("late")) is None  # still asleep: not processed yet
    await asyncio.sleep(1.0)
    row = await ledger_order(sim_client, cid("late"))
    assert row is not None and row["status"] == "filled"
    found = await binance.get_order(SYMBOL, cid("late"))
    assert found.status == "filled" and found.exchange_order_id == row["exchange_order_id"]


async def test_ban_418(sim_client, binance: BinanceUsdm) -> None:
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="ban_418", seconds=9)
    with pytest.raises(RateLimited) as ei:
        await binance.place_order(market("sell", "0.002", cid("ban")))
    assert ei.value.banned and ei.value.status == 418 and ei.value.retry_after >= 9
    assert ei.value.client_id == cid("ban")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, -2019, InsufficientFunds),
        (400, -2018, InsufficientFunds),
        (400, -1022, AuthError),
        (401, -2014, AuthError),
        (401, -2015, AuthError),
        (400, -4116, Rejected),
        (400, -4003, Rejected),
        (400, -4014, Rejected),
        (400, -4023, Rejected),
        (400, -4164, Rejected),
        (400, -2022, Rejected),
        (400, -2021, Rejected),
        (400, -4131, Rejected),
        (400, -2010, Rejected),
        (503, -1008, Unavailable),
        (400, -1006, OutcomeUnknown),
        (408, -1007, OutcomeUnknown),
        (429, -1015, RateLimited),
        (400, -1003, RateLimited),
    ],
)
async def test_injected_rejections(sim_client, binance: BinanceUsdm, status: int, code: int, cls: type) -> None:
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject", status=status, code=code)
    with pytest.raises(cls) as ei:
        await binance.place_order(market("sell", "0.002", cid(f"rej{code}")))
    assert type(ei.value) is cls and ei.value.code == code and ei.value.status == status
    assert ei.value.client_id == cid(f"rej{code}")
    assert await ledger_order(sim_client, cid(f"rej{code}")) is None


async def test_partial_fill_of_a_market_order(sim_client, binance: BinanceUsdm) -> None:
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="partial_fill", fraction=0.5)
    res = await binance.place_order(market("sell", "0.004", cid("partial")))
    assert res.status == "expired" and res.final
    assert res.filled_qty == D("0.002") and res.quantity == D("0.004")


async def test_exchange_down(sim_client, binance: BinanceUsdm) -> None:
    await sim_client.fault(exchange="binance", kind="down")
    with pytest.raises(OutcomeUnknown) as ei:
        await binance.place_order(market("sell", "0.002", cid("down")))
    assert ei.value.code == CONNECTION_LOST
    with pytest.raises(OutcomeUnknown):
        await binance.get_funding_rate(SYMBOL)
    await sim_client.clear_faults()
    with pytest.raises(OrderNotFound):
        await binance.get_order(SYMBOL, cid("down"))


# ------------------------------------------------------------------------- decimals
@pytest.mark.parametrize(
    ("qty", "sent"),
    [("0.002", "0.002"), ("0.0029999", "0.002"), ("1.000", "1"), ("0.12345678", "0.123")],
)
async def test_quantity_is_rounded_down_to_the_step(sim_client, binance: BinanceUsdm, qty: str, sent: str) -> None:
    res = await binance.place_order(market("sell", qty, cid(f"q{qty}")))
    assert res.filled_qty == D(sent) and res.quantity == D(sent)
    req = (await log(sim_client, method="POST", path="/fapi/v1/order"))[-1]
    assert f"&quantity={sent}&" in req["body"]


@pytest.mark.parametrize(
    ("side", "price", "sent"),
    [
        ("buy", "92000.0", "92000"),  # on the tick
        ("buy", "92000.19", "92000.1"),  # a buy rounds down
        ("sell", "99000.01", "99000.1"),  # a sell rounds up
        ("sell", "99999.9", "99999.9"),
    ],
)
async def test_prices_at_tick_boundaries(sim_client, binance: BinanceUsdm, side: str, price: str, sent: str) -> None:
    res = await binance.place_order(limit(side, "0.002", price, cid(f"p{price}")))
    assert res.status == "open"
    req = (await log(sim_client, method="POST", path="/fapi/v1/order"))[-1]
    assert f"&price={sent}&" in req["body"]
    row = await ledger_order(sim_client, cid(f"p{price}"))
    assert row is not None and D(row["qty"]) == D("0.002")


# ------------------------------------------------------------------------- bad input
async def test_bad_input_sends_nothing(sim_client, binance: BinanceUsdm) -> None:
    before = len(await log(sim_client))
    for bad_id in ("has space", "x" * 37, "ünï", "new\nline"):
        with pytest.raises(Rejected) as ei:
            await binance.place_order(market("sell", "0.002", bad_id))
        assert ei.value.code == "invalid_client_id"
        with pytest.raises(Rejected):
            await binance.get_order(SYMBOL, bad_id)
        with pytest.raises(Rejected):
            await binance.cancel_order(SYMBOL, bad_id)
    with pytest.raises(Rejected) as ei:
        await binance.place_order(
            OrderRequest(symbol=SYMBOL, side="buy", type="market", quote_amount=D(100), client_id=cid("qa"))
        )
    assert ei.value.code == "unsupported_order"
    with pytest.raises(Rejected) as ei:  # 0.0001 rounds down to zero at step 0.001
        await binance.place_order(market("sell", "0.0001", cid("dust")))
    assert ei.value.code == "invalid_request"
    req = market("sell", "0.002", cid("nan"))
    msgspec.structs.force_setattr(req, "quantity", D("NaN"))
    with pytest.raises(Rejected) as ei:
        await binance.place_order(req)
    assert ei.value.code == "invalid_request"
    with pytest.raises(Rejected) as ei:
        await binance.place_order(
            OrderRequest(symbol="ETHUSDT", side="sell", type="market", quantity=D("0.002"), client_id=cid("sym"))
        )
    assert ei.value.code == "unknown_symbol"
    rows = await log(sim_client)
    # only the rules reload for the unknown symbol went out; no order, no lookup
    assert [(r["method"], r["path"]) for r in rows[before:]] == [("GET", "/fapi/v1/exchangeInfo"), ("GET", "/fapi/v1/commissionRate")]


# ------------------------------------------------------------------------- rate limiting
async def test_burst_of_50_orders_never_draws_a_429(sim_client, make_binance: MakeBinance) -> None:
    binance = await make_binance(max_rate_wait_s=30)
    results = await asyncio.gather(
        *(binance.place_order(limit("buy", "0.002", "92000", cid(f"burst{i}"))) for i in range(50))
    )
    assert all(r.status == "open" for r in results)
    posts = await log(sim_client, method="POST", path="/fapi/v1/order")
    assert len(posts) == 50 and all(r["status"] == 200 for r in posts)
    assert not [r for r in await log(sim_client) if r["status"] in (429, 418)]
    times = sorted(r["ts_ms"] for r in posts)
    # the seed's 10 orders/s (well inside 300/10 s and 1,200/min), seen at the server
    assert max(sum(1 for t in times if s <= t < s + 1000) for s in times) <= 10


async def test_reserved_lane_passes_when_the_normal_lane_is_full(sim_client, make_binance: MakeBinance) -> None:
    frozen = RateLimiter("binance", clock=lambda: 1000.0)
    binance = await make_binance(rate_limiter=frozen, max_rate_wait_s=0)
    for i in range(8):  # 10/s minus the reserved share (2)
        await binance.place_order(limit("buy", "0.002", "92000", cid(f"n{i}")))
    with pytest.raises(RateLimited) as ei:
        await binance.place_order(limit("buy", "0.002", "92000", cid("n8")))
    assert ei.value.code == CLIENT_THROTTLE
    res = await binance.place_order(market("buy", "0.002", cid("unwind")), reserved=True)
    assert res.status == "filled"
    assert await ledger_order(sim_client, cid("n8")) is None


def test_signature_helper_rejects_a_tampered_string() -> None:
    good = "a=1&signature=" + hmac.new(b"secret", b"a=1", hashlib.sha256).hexdigest()
    assert check_signature("secret", good) == {"a": "1"}
    with pytest.raises(AssertionError):
        check_signature("secret", good.replace("a=1", "a=2"))


async def test_timers_keep_warm_resync_and_refresh_until_closed(sim_client, make_binance: MakeBinance) -> None:
    binance = await make_binance(keepwarm_s=0.05, rules_refresh_s=0.05)
    await asyncio.sleep(0.3)
    times = len(await log(sim_client, path="/fapi/v1/time"))
    infos = len(await log(sim_client, path="/fapi/v1/exchangeInfo"))
    assert times > 3 and infos > 1  # beyond what open() sent
    await binance.close()
    count = len(await log(sim_client))
    await asyncio.sleep(0.15)
    assert len(await log(sim_client)) == count  # close() stopped every timer


async def test_an_order_count_429_never_blocks_the_look_up(sim_client, make_binance: MakeBinance) -> None:
    """-1015 (too many new orders) stops new orders only: the look-up that resolves a hedge
    and the cancel go on (before: every call was blocked for the Retry-After)."""
    binance = await make_binance(max_rate_wait_s=0.2)
    placed = await binance.place_order(market("sell", "0.002", cid("before-1015")))
    await sim_client.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject", code=-1015,
                           msg="Too many new orders; current limit is 300 orders per TEN_SECONDS.", status=429,
                           count=1)
    with pytest.raises(RateLimited) as ei:
        await binance.place_order(market("sell", "0.002", cid("refused-1015")))
    assert ei.value.code == -1015
    got = await binance.get_order(SYMBOL, placed.client_id, reserved=True)  # at once, not after the block
    assert got.status == "filled"
    with pytest.raises(RateLimited) as ei:  # new orders wait out the block
        await binance.place_order(market("sell", "0.002", cid("still-blocked")))
    assert ei.value.code == CLIENT_THROTTLE
