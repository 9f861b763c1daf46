"""Upbit on the simulator: orders, balances, errors and limits, checked on the wire."""

from __future__ import annotations

import asyncio
from decimal import ROUND_DOWN, Decimal

import aiohttp
import pytest

from tests.fixtures.sim import SimClient

FEE = Decimal("0.0005")
Q8 = Decimal("1e-8")


async def top(c: SimClient, market: str = "KRW-BTC") -> tuple[Decimal, Decimal]:
    r = await c.upbit("GET", "/v1/orderbook", {"markets": market, "count": 1}, auth=False)
    unit = r.data[0]["orderbook_units"][0]
    return Decimal(str(unit["bid_price"])), Decimal(str(unit["ask_price"]))


async def account(c: SimClient, currency: str) -> tuple[Decimal, Decimal]:
    rows = (await c.upbit("GET", "/v1/accounts")).data
    for row in rows:
        if row["currency"] == currency:
            return Decimal(row["balance"]), Decimal(row["locked"])
    return Decimal(0), Decimal(0)


def order(market: str = "KRW-BTC", **fields: str) -> dict[str, str]:
    return {"market": market, **fields}


# ---------------------------------------------------------------------------- market data
async def test_orderbook_numbers_count_and_instruments(sim_client) -> None:
    c = sim_client
    r = await c.upbit("GET", "/v1/orderbook", {"markets": "KRW-BTC,KRW-USDT", "count": 5}, auth=False)
    assert r.status == 200 and [b["market"] for b in r.data] == ["KRW-BTC", "KRW-USDT"]
    units = r.data[0]["orderbook_units"]
    assert len(units) == 5 and isinstance(units[0]["ask_price"], float)  # JSON numbers, as Upbit sends
    assert units[0]["bid_price"] < units[0]["ask_price"]
    assert all(a["ask_price"] < b["ask_price"] for a, b in zip(units, units[1:]))
    r = await c.upbit("GET", "/v1/orderbook", {"markets": "KRW-BTC", "count": 100}, auth=False)
    assert len(r.data[0]["orderbook_units"]) == 30  # out of range → the default, 30
    r = await c.upbit("GET", "/v1/orderbook/instruments", {"markets": "KRW-BTC,KRW-USDT"}, auth=False)
    assert r.data == [{"market": "KRW-BTC", "quote_currency": "KRW", "tick_size": "1000"},
                      {"market": "KRW-USDT", "quote_currency": "KRW", "tick_size": "1"}]
    assert r.headers["Remaining-Req"].startswith("group=orderbook;")


async def test_quotation_errors_use_integer_names(sim_client) -> None:
    r = await sim_client.upbit("GET", "/v1/orderbook", {"markets": "KRW-DOGE"}, auth=False)
    assert r.status == 404 and r.data["error"]["name"] == 404
    r = await sim_client.upbit("GET", "/v1/ticker", auth=False)
    assert r.status == 400 and r.data["error"] == {
        "name": 400, "message": "Missing request parameter error. Check the required parameters!"}


async def test_market_all_ticker_and_chance(sim_client) -> None:
    c = sim_client
    r = await c.upbit("GET", "/v1/market/all", {"isDetails": "true"}, auth=False)
    assert [m["market"] for m in r.data] == ["KRW-BTC", "KRW-USDT"] and "market_event" in r.data[0]
    r = await c.upbit("GET", "/v1/ticker", {"markets": "KRW-BTC"}, auth=False)
    assert r.data[0]["market"] == "KRW-BTC" and r.data[0]["trade_price"] > 0
    r = await c.upbit("GET", "/v1/orders/chance", {"market": "KRW-BTC"})
    assert r.data["bid_fee"] == "0.0005" and r.data["market"]["bid"]["min_total"] == "5000"
    assert r.data["bid_account"]["currency"] == "KRW" and r.data["ask_account"]["currency"] == "BTC"
    assert "price" in r.data["market"]["bid_types"] and "market" in r.data["market"]["ask_types"]


# ---------------------------------------------------------------------------- market orders
async def test_market_buy_by_krw_truncates_volume_and_ends_cancel(sim_client) -> None:
    c = sim_client
    _, ask = await top(c)
    krw0, _ = await account(c, "KRW")
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="price", price="1000000", identifier="mb-1"))
    assert r.status == 201, r.text
    o = r.data
    expected_volume = (Decimal(1000000) / ask).quantize(Q8, rounding=ROUND_DOWN)
    assert Decimal(o["executed_volume"]) == expected_volume
    assert Decimal(o["executed_funds"]) == expected_volume * ask
    assert o["state"] == "cancel"  # a few KRW could not buy a whole 1e-8 BTC (Upbit FAQ)
    assert o["volume"] is None and o["price"] == "1000000.0" and o["identifier"] == "mb-1"
    paid = Decimal(o["paid_fee"])
    assert paid == Decimal(o["executed_funds"]) * FEE
    krw1, locked = await account(c, "KRW")
    assert locked == 0 and krw1 == krw0 - Decimal(o["executed_funds"]) - paid
    btc, _ = await account(c, "BTC")
    assert btc == expected_volume
    g = await c.upbit("GET", "/v1/order", {"identifier": "mb-1"})
    assert sum(Decimal(t["funds"]) for t in g.data["trades"]) == Decimal(o["executed_funds"])
    led = [x for x in await c.orders("upbit") if x["client_id"] == "mb-1"][0]
    assert (led["status"], led["state"], Decimal(led["filled"]), Decimal(led["fee"])) == (
        "canceled", "cancel", expected_volume, paid)


async def test_large_market_buy_walks_the_book(sim_client) -> None:
    c = sim_client
    _, ask = await top(c)
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="price", price="60000000"))
    o = (await c.upbit("GET", "/v1/order", {"uuid": r.data["uuid"]})).data
    prices = [Decimal(t["price"]) for t in o["trades"]]
    assert len(prices) > 1 and prices[0] == ask and prices == sorted(prices)
    vwap = Decimal(o["executed_funds"]) / Decimal(o["executed_volume"])
    assert vwap > ask
    # the liquidity taken is gone for a moment: the best ask is now worse
    _, ask_after = await top(c)
    assert ask_after > ask


async def test_market_sell_needs_coins_and_credits_krw(sim_client) -> None:
    c = sim_client
    r = await c.upbit("POST", "/v1/orders", order(side="ask", ord_type="market", volume="0.001"))
    assert r.status == 400 and r.data["error"]["name"] == "insufficient_funds_ask"
    await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="price", price="2000000"))
    btc, _ = await account(c, "BTC")
    krw0, _ = await account(c, "KRW")
    bid, _ = await top(c)
    r = await c.upbit("POST", "/v1/orders", order(side="ask", ord_type="market", volume=str(btc)))
    assert r.status == 201 and r.data["state"] == "done" and r.data["price"] is None
    funds = Decimal(r.data["executed_funds"])
    assert funds == btc * bid
    krw1, _ = await account(c, "KRW")
    assert krw1 == krw0 + funds - Decimal(r.data["paid_fee"])
    assert (await account(c, "BTC")) == (0, 0)


async def test_market_orders_beyond_30_levels_are_refused(sim_factory) -> None:
    sim = await sim_factory(market={"depth_btc": 1.0}, balances={"upbit": {"KRW": "900000000", "BTC": "5"}})
    async with aiohttp.ClientSession() as s:
        c = SimClient(sim, s)
        r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="price", price="300000000"))
        assert (r.status, r.data["error"]["name"]) == (400, "volume_too_large")
        r = await c.upbit("POST", "/v1/orders", order(side="ask", ord_type="market", volume="2"))
        assert (r.status, r.data["error"]["name"]) == (400, "volume_too_large")
        assert await c.orders() == []


# ---------------------------------------------------------------------------- limit orders
async def test_limit_ioc_fills_at_book_price_and_releases_the_rest(sim_client) -> None:
    c = sim_client
    _, ask = await top(c)
    limit = ask + 1_000_000
    krw0, _ = await account(c, "KRW")
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(limit), volume="0.001",
                                                   time_in_force="ioc"))
    o = r.data
    assert r.status == 201 and o["state"] == "done" and o["time_in_force"] == "ioc"
    assert Decimal(o["executed_funds"]) == ask * Decimal("0.001")  # price improvement
    assert Decimal(o["reserved_fee"]) == limit * Decimal("0.001") * FEE
    krw1, locked = await account(c, "KRW")
    assert locked == 0 and krw1 == krw0 - ask * Decimal("0.001") * (1 + FEE)


async def test_limit_ioc_below_the_market_cancels_without_fill(sim_client) -> None:
    c = sim_client
    bid, _ = await top(c)
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(bid), volume="0.001",
                                                   time_in_force="ioc"))
    assert r.data["state"] == "cancel" and r.data["executed_volume"] == "0.0"
    assert (await account(c, "KRW"))[1] == 0


async def test_fok_all_or_nothing(sim_client) -> None:
    c = sim_client
    _, ask = await top(c)
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(ask), volume="0.5",
                                                   time_in_force="fok"))
    assert r.data["state"] == "cancel" and r.data["executed_volume"] == "0.0"
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(ask), volume="0.01",
                                                   time_in_force="fok"))
    assert r.data["state"] == "done" and r.data["executed_volume"] == "0.01"


async def test_best_orders_take_only_the_top_level(sim_client) -> None:
    c = sim_client
    _, ask = await top(c)
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="best", price="50000000", time_in_force="ioc"))
    assert r.status == 201, r.text
    o = (await c.upbit("GET", "/v1/order", {"uuid": r.data["uuid"]})).data
    assert {Decimal(t["price"]) for t in o["trades"]} == {ask} and o["state"] == "cancel"
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="best", price="10000"))
    assert r.data["error"]["name"] == "validation_error"


async def test_resting_limit_order_cancel_returns_wait_then_cancel(sim_client) -> None:
    c = sim_client
    bid, _ = await top(c)
    price = bid - 5_000_000
    krw0, _ = await account(c, "KRW")
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(price), volume="0.01",
                                                   identifier="rest-1"))
    assert r.data["state"] == "wait"
    lock = price * Decimal("0.01") * (1 + FEE)
    assert Decimal(r.data["locked"]) == lock
    assert await account(c, "KRW") == (krw0 - lock, lock)
    opened = (await c.upbit("GET", "/v1/orders/open", {"market": "KRW-BTC"})).data
    assert [o["identifier"] for o in opened] == ["rest-1"]
    d = await c.upbit("DELETE", "/v1/order", {"identifier": "rest-1"})
    assert d.status == 200 and d.data["state"] == "wait"  # as Upbit answers; completes right after
    g = await c.upbit("GET", "/v1/order", {"identifier": "rest-1"})
    assert g.data["state"] == "cancel"
    assert await account(c, "KRW") == (krw0, 0)
    assert (await c.upbit("GET", "/v1/orders/open")).data == []
    closed = (await c.upbit("GET", "/v1/orders/closed", {"market": "KRW-BTC", "states[]": ["cancel"]})).data
    assert [o["identifier"] for o in closed] == ["rest-1"]
    again = await c.upbit("DELETE", "/v1/order", {"identifier": "rest-1"})
    assert (again.status, again.data["error"]["name"]) == (404, "order_not_found")


async def test_resting_order_fills_when_the_market_comes_to_it(sim_client) -> None:
    c = sim_client
    bid, _ = await top(c)
    price = bid - 1_000_000
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(price), volume="0.01"))
    assert r.data["state"] == "wait"
    await c.market(premium=0.0)  # KRW-BTC drops ~1.2 % (≈1.7M KRW): the ask crosses our bid
    g = (await c.upbit("GET", "/v1/order", {"uuid": r.data["uuid"]})).data
    assert g["state"] == "done" and Decimal(g["executed_funds"]) == price * Decimal("0.01")
    assert (await account(c, "KRW"))[1] == 0


async def test_post_only(sim_client) -> None:
    c = sim_client
    bid, ask = await top(c)
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(ask), volume="0.001",
                                                   time_in_force="post_only"))
    assert r.data["state"] == "cancel" and r.data["executed_volume"] == "0.0"
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="limit", price=str(bid), volume="0.001",
                                                   time_in_force="post_only"))
    assert r.data["state"] == "wait"


# ---------------------------------------------------------------------------- identifiers
async def test_identifier_is_single_use_forever(sim_client) -> None:
    c = sim_client
    body = order(side="bid", ord_type="price", price="10000", identifier="once")
    assert (await c.upbit("POST", "/v1/orders", body)).status == 201
    r = await c.upbit("POST", "/v1/orders", body)
    assert (r.status, r.data["error"]["name"]) == (400, "identifier_already_used")
    # burned even by a request that was then refused
    r = await c.upbit("POST", "/v1/orders", order(side="ask", ord_type="market", volume="5", identifier="failed"))
    assert r.data["error"]["name"] == "insufficient_funds_ask"
    r = await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="price", price="10000", identifier="failed"))
    assert r.data["error"]["name"] == "identifier_already_used"
    r = await c.upbit("GET", "/v1/order", {"identifier": "failed"})
    assert (r.status, r.data["error"]["name"]) == (404, "order_not_found")
    assert len(await c.orders("upbit")) == 1


async def test_identifiers_file_remembers_them_across_resets_and_restarts(sim_factory, tmp_path) -> None:
    """The real Upbit never forgets an identifier; with ``upbit_identifiers_path`` neither
    does the simulator (a reset journal or a second deployment meets the refusal)."""
    path = str(tmp_path / "identifiers")
    body = order(side="bid", ord_type="price", price="10000", identifier="kept-1")
    sim = await sim_factory(upbit_identifiers_path=path)
    async with aiohttp.ClientSession() as session:
        c = SimClient(sim, session)
        assert (await c.upbit("POST", "/v1/orders", body)).status == 201
        await c.control("POST", "reset", {})
        r = await c.upbit("POST", "/v1/orders", body)
        assert (r.status, r.data["error"]["name"]) == (400, "identifier_already_used")
    await sim.stop()
    again = await sim_factory(upbit_identifiers_path=path)
    async with aiohttp.ClientSession() as session:
        c = SimClient(again, session)
        r = await c.upbit("POST", "/v1/orders", body)
        assert (r.status, r.data["error"]["name"]) == (400, "identifier_already_used")
        assert (await c.upbit("POST", "/v1/orders", order(side="bid", ord_type="price", price="10000",
                                                           identifier="new-1"))).status == 201
    # without the file a reset forgets (the in-memory default)
    plain_sim = await sim_factory()
    async with aiohttp.ClientSession() as session:
        c = SimClient(plain_sim, session)
        assert (await c.upbit("POST", "/v1/orders", body)).status == 201
        await c.control("POST", "reset", {})
        assert (await c.upbit("POST", "/v1/orders", body)).status == 201


async def test_test_orders_validate_without_placing(sim_client) -> None:
    c = sim_client
    body = order(side="bid", ord_type="price", price="10000", identifier="t-1")
    r = await c.upbit("POST", "/v1/orders/test", body)
    assert r.status == 201 and r.data["state"] == "wait" and r.data["identifier"] == "t-1"
    assert (await c.upbit("GET", "/v1/order", {"uuid": r.data["uuid"]})).status == 404
    assert await c.orders() == []
    assert (await c.upbit("POST", "/v1/orders", body)).status == 201  # the identifier was not spent
    r = await c.upbit("POST", "/v1/orders/test", order(side="bid", ord_type="price", price="100"))
    assert r.data["error"]["name"] == "under_min_total_bid"
    assert r.headers["Remaining-Req"].startswith("group=order-test;")


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("fields", "status", "name"),
    [
        ({"side": "bid", "ord_type": "limit", "price": "1000", "volume": "4.999"}, 400, "under_min_total_bid"),
        ({"side": "bid", "ord_type": "price", "price": "4999"}, 400, "under_min_total_bid"),
        ({"side": "ask", "ord_type": "limit", "price": "100000000", "volume": "0.00001"}, 400, "under_min_total_ask"),
        ({"side": "bid", "ord_type": "limit", "price": "140000500", "volume": "0.001"}, 400, "invalid_price_bid"),
        ({"side": "ask", "ord_type": "limit", "price": "140000001", "volume": "0.001"}, 400, "invalid_price_ask"),
        ({"side": "bid", "ord_type": "limit", "price": "140000000", "volume": "0.000000001"}, 400, "invalid_volume_bid"),
        ({"side": "bid", "ord_type": "price", "price": "10000", "volume": "0.1"}, 400, "create_bid_error"),
        ({"side": "bid", "ord_type": "market", "volume": "0.1"}, 400, "create_bid_error"),
        ({"side": "ask", "ord_type": "market", "volume": "0.1", "price": "10"}, 400, "create_ask_error"),
        ({"side": "ask", "ord_type": "price", "price": "10000"}, 400, "create_ask_error"),
        ({"side": "bid", "ord_type": "price", "price": "10000", "time_in_force": "ioc"}, 400, "create_bid_error"),
        ({"side": "bid", "ord_type": "price", "price": "1e10"}, 400, "over_max_total_bid"),
        ({"side": "bid", "ord_type": "limit", "volume": "0.1"}, 400, "validation_error"),
        ({"side": "bid", "ord_type": "stop"}, 400, "validation_error"),
        ({"side": "bid", "ord_type": "price", "price": "lots"}, 400, "validation_error"),
        ({"side": "bid", "ord_type": "limit", "price": "140000000", "volume": "1"}, 400, "insufficient_funds_bid"),
    ],
)
async def test_order_rejections(sim_client, fields: dict[str, str], status: int, name: str) -> None:
    r = await sim_client.upbit("POST", "/v1/orders", order(**fields))
    assert (r.status, r.data["error"]["name"]) == (status, name), r.text
    assert set(r.data) == {"error"} and set(r.data["error"]) == {"name", "message"}
    assert r.headers["Remaining-Req"].startswith("group=order;")
    assert await sim_client.orders() == []


async def test_side_validation_message_is_upbits(sim_client) -> None:
    r = await sim_client.upbit("POST", "/v1/orders", {"market": "KRW-BTC", "side": "buy", "ord_type": "price",
                                                      "price": "10000"})
    assert r.data == {"error": {"name": "validation_error",
                                "message": "side is missing, side does not have a valid value"}}


async def test_lookups(sim_client) -> None:
    c = sim_client
    r = await c.upbit("GET", "/v1/order", {"uuid": "00000000-0000-4000-8000-000000000000"})
    assert (r.status, r.data["error"]["name"]) == (404, "order_not_found")
    r = await c.upbit("GET", "/v1/order")
    assert (r.status, r.data["error"]["name"]) == (400, "validation_error")
    r = await c.upbit("GET", "/v1/orders/chance", {"market": "KRW-DOGE"})
    assert r.status == 404


async def test_usdt_market_trades_too(sim_client) -> None:
    c = sim_client
    _, ask = await top(c, "KRW-USDT")
    usdt0, _ = await account(c, "USDT")
    r = await c.upbit("POST", "/v1/orders", order("KRW-USDT", side="bid", ord_type="limit", price=str(ask),
                                                   volume="100", time_in_force="ioc"))
    assert r.data["state"] == "done"
    assert (await account(c, "USDT"))[0] == usdt0 + 100


# ---------------------------------------------------------------------------- limits
async def test_remaining_req_on_every_response(sim_client) -> None:
    c = sim_client
    for r in [await c.upbit("GET", "/v1/accounts"), await c.upbit("GET", "/v1/accounts", auth=False),
              await c.upbit("GET", "/v1/order", {"uuid": "x"}), await c.upbit("GET", "/v1/market/all", auth=False),
              await c.upbit("POST", "/v1/orders", {"market": "KRW-BTC"}),
              await c.upbit("GET", "/v1/no/such/path", auth=False)]:
        assert "Remaining-Req" in r.headers, r.text
    r = await c.upbit("GET", "/v1/accounts")
    group, minute, sec = (part.strip() for part in r.headers["Remaining-Req"].split(";"))
    assert group == "group=default" and minute == "min=1800" and 0 <= int(sec.split("=")[1]) < 30


async def test_order_group_429_then_418_when_ignored(sim_factory) -> None:
    sim = await sim_factory(limits={"upbit_order_per_s": 3, "upbit_ban_after_429s": 3, "upbit_ban_seconds": 30})
    async with aiohttp.ClientSession() as s:
        c = SimClient(sim, s)
        body = order(side="bid", ord_type="price", price="10000")
        statuses = []
        for _ in range(4):
            r = await c.upbit("POST", "/v1/orders", body)
            statuses.append(r.status)
        assert statuses == [201, 201, 201, 429]
        assert r.headers["Remaining-Req"] == "group=order; min=1800; sec=0" and "Retry-After" in r.headers
        assert len(await c.orders()) == 3
        # the default group has its own budget
        assert (await c.upbit("GET", "/v1/accounts")).status == 200
        # keep hammering after 429s: blocked with 418, for every group, with the duration
        for _ in range(3):
            r = await c.upbit("POST", "/v1/orders", body)
        assert r.status == 418 and int(r.headers["Retry-After"]) == 30
        r = await c.upbit("GET", "/v1/accounts")
        assert r.status == 418
        assert len(await c.orders()) == 3


async def test_origin_header_is_held_to_one_per_ten_seconds(sim_client) -> None:
    c = sim_client
    hdr = {"Origin": "https://example.com"}
    r1 = await c.upbit("GET", "/v1/ticker", {"markets": "KRW-BTC"}, auth=False, headers=hdr)
    r2 = await c.upbit("GET", "/v1/ticker", {"markets": "KRW-BTC"}, auth=False, headers=hdr)
    assert (r1.status, r2.status) == (200, 429)
    assert r2.headers["Remaining-Req"].startswith("group=origin;")
    assert (await c.upbit("GET", "/v1/ticker", {"markets": "KRW-BTC"}, auth=False)).status == 200


async def test_quotation_limit_is_ten_per_second(sim_client) -> None:
    rs = await asyncio.gather(*(sim_client.upbit("GET", "/v1/market/all", auth=False) for _ in range(12)))
    assert sorted(r.status for r in rs).count(429) >= 1
