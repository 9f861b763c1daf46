"""Fault injection (CONTRACT §4): every kind, its matching rules, and what really executed."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest


UPBIT_BUY = {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "1000000"}


def binance_sell(**extra: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01", **extra}


async def test_drop_before_disconnects_and_places_nothing(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="drop_before")
    with pytest.raises(aiohttp.ClientConnectionError):
        await c.binance("POST", "/fapi/v1/order", binance_sell(newClientOrderId="db-1"))
    assert await c.orders() == []
    r = await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "db-1"})
    assert r.data["code"] == -2013
    logged = (await c.requests(path="/fapi/v1/order", method="POST"))[-1]
    assert (logged["status"], logged["fault"]) == ("dropped", "drop_before")


async def test_drop_after_executes_then_disconnects(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="drop_after")
    with pytest.raises(aiohttp.ClientConnectionError):
        await c.upbit("POST", "/v1/orders", {**UPBIT_BUY, "identifier": "da-1"})
    (led,) = await c.orders("upbit")
    assert led["client_id"] == "da-1" and led["fault"] == "drop_after" and float(led["filled"]) > 0
    g = await c.upbit("GET", "/v1/order", {"identifier": "da-1"})
    assert g.status == 200 and g.data["state"] == "cancel" and g.data["executed_volume"] == led["filled"]
    # the fault was used up: the next order goes through normally
    assert (await c.upbit("POST", "/v1/orders", UPBIT_BUY)).status == 201


@pytest.mark.parametrize("executed", [True, False])
async def test_unknown_503(sim_client, executed: bool) -> None:
    c = sim_client
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="unknown_503", executed=executed)
    r = await c.binance("POST", "/fapi/v1/order", binance_sell(newClientOrderId="u503"))
    assert r.status == 503
    assert r.data == {"code": -1000, "msg": "Unknown error, please check your request or try again later."}
    orders = await c.orders("binance")
    assert len(orders) == (1 if executed else 0)
    g = await c.binance("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "u503"})
    assert (g.data.get("status") == "FILLED") is executed


async def test_http_500_does_not_execute_unless_asked(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="http_500")
    r = await c.upbit("POST", "/v1/orders", UPBIT_BUY)
    assert r.status == 500 and r.data["error"]["name"] == "server_error"
    assert await c.orders() == []
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="http_500", executed=True)
    assert (await c.upbit("POST", "/v1/orders", UPBIT_BUY)).status == 500
    assert len(await c.orders()) == 1


async def test_rate_limit_429_and_reject(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="rate_limit_429")
    r = await c.upbit("POST", "/v1/orders", UPBIT_BUY)
    assert r.status == 429 and r.headers["Remaining-Req"].endswith("sec=0") and r.headers["Retry-After"] == "1"
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="rate_limit_429", seconds=3)
    r = await c.binance("POST", "/fapi/v1/order", binance_sell())
    assert r.status == 429 and r.data["code"] == -1003 and r.headers["Retry-After"] == "3"
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject", code=-2019,
                  msg="Margin is insufficient.")
    r = await c.binance("POST", "/fapi/v1/order", binance_sell())
    assert (r.status, r.data) == (400, {"code": -2019, "msg": "Margin is insufficient."})
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="reject", name="insufficient_funds_bid")
    r = await c.upbit("POST", "/v1/orders", UPBIT_BUY)
    assert (r.status, r.data["error"]["name"]) == (400, "insufficient_funds_bid")
    assert await c.orders() == []


async def test_ban_418_blocks_that_exchange_for_the_duration(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="binance", kind="ban_418", seconds=30)
    r = await c.binance("GET", "/fapi/v1/time", signed=False)
    assert r.status == 418 and r.headers["Retry-After"] == "30" and r.data["code"] == -1003
    r = await c.binance("POST", "/fapi/v1/order", binance_sell())  # still banned, no fault left
    assert r.status == 418
    assert (await c.upbit("GET", "/v1/accounts")).status == 200  # the other exchange is fine
    await c.fault(exchange="upbit", kind="ban_418", seconds=5)
    assert (await c.upbit("GET", "/v1/market/all", auth=False)).status == 418
    assert (await c.upbit("GET", "/v1/accounts")).status == 418
    assert await c.orders() == []


async def test_partial_fill(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="partial_fill", fraction=0.5)
    r = await c.binance("POST", "/fapi/v1/order", binance_sell(newOrderRespType="RESULT"))
    assert (r.data["status"], r.data["executedQty"], r.data["origQty"]) == ("EXPIRED", "0.005", "0.01")
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="partial_fill", fraction=0.25)
    r = await c.upbit("POST", "/v1/orders", UPBIT_BUY)
    assert r.data["state"] == "cancel" and 240000 < float(r.data["executed_funds"]) <= 250000
    assert r.data["locked"] == "0.0"
    # a resting limit order keeps its unfilled part on the book
    bid = (await c.binance("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}, signed=False)).data["bidPrice"]
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="partial_fill", fraction=0.4)
    r = await c.binance("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                                    "timeInForce": "GTC", "quantity": "0.01", "price": bid,
                                                    "newOrderRespType": "RESULT"})
    assert (r.data["status"], r.data["executedQty"]) == ("PARTIALLY_FILLED", "0.004")
    ledger = {o["exchange_order_id"]: o for o in await c.orders()}
    assert ledger[str(r.data["orderId"])]["status"] == "partially_filled"


async def test_down_fails_every_request_until_cleared(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="upbit", kind="down")
    for _ in range(3):
        with pytest.raises(aiohttp.ClientConnectionError):
            await c.upbit("GET", "/v1/market/all", auth=False)
    with pytest.raises(aiohttp.ClientConnectionError):
        await c.upbit("POST", "/v1/orders", UPBIT_BUY)
    assert (await c.binance("GET", "/fapi/v1/time", signed=False)).status == 200
    await c.clear_faults()
    assert (await c.upbit("GET", "/v1/market/all", auth=False)).status == 200
    assert await c.orders() == []


@pytest.mark.parametrize("executed", [True, False])
async def test_garbage_body(sim_client, executed: bool) -> None:
    c = sim_client
    await c.fault(exchange="upbit", method="POST", path="/v1/orders", kind="garbage", executed=executed)
    r = await c.upbit("POST", "/v1/orders", UPBIT_BUY)
    assert r.status == 200 and r.data is None
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.text)
    assert len(await c.orders()) == (1 if executed else 0)


async def test_delay_fault_and_per_exchange_network_delay(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="binance", path="/fapi/v1/time", kind="delay", ms=150)
    t = time.perf_counter()
    assert (await c.binance("GET", "/fapi/v1/time", signed=False)).status == 200
    assert time.perf_counter() - t >= 0.15
    t = time.perf_counter()
    await c.binance("GET", "/fapi/v1/time", signed=False)
    assert time.perf_counter() - t < 0.15  # count 1: used up
    await c.config(upbit_delay_ms=120)
    t = time.perf_counter()
    await c.upbit("GET", "/v1/market/all", auth=False)
    assert time.perf_counter() - t >= 0.12
    t = time.perf_counter()
    await c.binance("GET", "/fapi/v1/time", signed=False)
    assert time.perf_counter() - t < 0.12
    stats = await c.control("GET", "stats")
    assert stats["service_us"]["max"] < 120_000  # injected delays are not the simulator's own latency


async def test_delay_before_processing_executes_late(sim_client) -> None:
    """A client that gives up during a 'before' delay still gets its order executed."""
    c = sim_client
    await c.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="delay", ms=250,
                  phase="before")
    with pytest.raises(asyncio.TimeoutError):  # builtin TimeoutError only from 3.11
        await c.binance("POST", "/fapi/v1/order", binance_sell(newClientOrderId="late"), recv_window=60000,
                        timeout=0.05)
    assert await c.orders() == []
    await asyncio.sleep(0.35)
    (led,) = await c.orders()
    assert led["client_id"] == "late" and led["status"] == "filled"


async def test_count_method_and_path_matching(sim_client) -> None:
    c = sim_client
    await c.fault(exchange="binance", method="GET", path="/fapi/v1/*", kind="http_500", count=2)
    assert (await c.binance("POST", "/fapi/v1/order", binance_sell())).status == 200  # method differs
    assert (await c.binance("GET", "/fapi/v3/balance")).status == 200  # path differs
    assert (await c.binance("GET", "/fapi/v1/time", signed=False)).status == 500
    assert (await c.binance("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT"}, signed=False)).status == 500
    assert (await c.binance("GET", "/fapi/v1/time", signed=False)).status == 200
    listed = await c.control("GET", "faults")
    assert listed["faults"] == [] and [h["kind"] for h in listed["history"]] == ["http_500", "http_500"]


async def test_fault_validation(sim_client) -> None:
    c = sim_client
    for spec in ({"exchange": "kraken", "kind": "down"}, {"exchange": "upbit", "kind": "explode"},
                 {"exchange": "upbit", "kind": "delay"}, {"exchange": "upbit", "kind": "partial_fill", "fraction": 2},
                 {"exchange": "upbit", "kind": "http_500", "count": -1}, {"exchange": "upbit", "kind": "garbage",
                                                                          "executed": "yes"}):
        async with c.session.post(f"{c.url}/_sim/faults", json=spec) as r:
            assert r.status == 400, spec
            assert "error" in await r.json()
