"""``start_order``: two legs started one after the other are both on the wire before the
caller awaits anything; when something would make a request wait, nothing is written
until the result is awaited — and the result is the same either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal as D
from typing import Any

import pytest

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest
from adapters_direct.errors import RateLimited, Rejected
from kimp_fast.ratelimit import RateLimiter


class Written:
    """An order-lane trace (``wire_trace``): the requests handed to their sockets."""

    def __init__(self, log: list[str], exchange: str) -> None:
        self.log = log
        self.exchange = exchange

    def request_start(self, method: str, path: str) -> None:
        pass

    def request_written(self, method: str, path: str) -> None:
        self.log.append(f"{self.exchange} {method} {path}")

    def response_end(self, method: str, path: str, status: int) -> None:
        self.log.append(f"{self.exchange} answered {status}")


Make = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make(sim) -> AsyncIterator[Make]:
    opened: list[Any] = []

    async def _make(exchange: str, log: list[str], **options: Any) -> Any:
        keys = sim.upbit_keys if exchange == "upbit" else sim.binance_keys
        key = keys.access_key if exchange == "upbit" else keys.api_key
        options.setdefault("symbols", ("KRW-BTC",) if exchange == "upbit" else ("BTCUSDT",))
        options.setdefault("keepwarm_s", 0)
        options.setdefault("rules_refresh_s", 0)
        ad = ExchangeFactory.create(exchange, AdapterType.DIRECT, api_key=key, secret_key=keys.secret_key,
                                    base_url=sim.url, wire_trace=Written(log, exchange), **options)
        await ad.open()
        opened.append(ad)
        return ad

    yield _make
    for ad in opened:
        await ad.close()


def upbit_buy(cid: str) -> OrderRequest:
    return OrderRequest(symbol="KRW-BTC", side="buy", type="limit", time_in_force="ioc", quantity=D("0.001"),
                        price=D("200000000"), client_id=cid)


def binance_sell(cid: str) -> OrderRequest:
    return OrderRequest(symbol="BTCUSDT", side="sell", type="market", quantity=D("0.002"), client_id=cid)


async def test_both_legs_are_written_before_the_caller_yields(make) -> None:
    log: list[str] = []
    upbit, binance = await make("upbit", log), await make("binance", log)
    log.clear()
    sent_b = binance.start_order(binance_sell("so-b-1"))
    sent_u = upbit.start_order(upbit_buy("so-u-1"))
    # no await yet: both requests are already on their sockets, nothing has answered
    assert log == ["binance POST /fapi/v1/order", "upbit POST /v1/orders"]
    res_b, res_u = await asyncio.gather(sent_b, sent_u)
    assert res_b.status == "filled" and res_b.filled_qty == D("0.002")
    assert res_u.status == "filled" and res_u.filled_qty == D("0.001") and res_u.client_id == "so-u-1"


async def test_a_request_that_would_wait_leaves_only_when_awaited(make) -> None:
    log: list[str] = []
    frozen = RateLimiter("binance", clock=lambda: 1000.0)
    binance = await make("binance", log, rate_limiter=frozen, max_rate_wait_s=0)
    for i in range(8):  # the normal lane's share of 10 orders/s
        await binance.place_order(binance_sell(f"so-fill-{i}"))
    log.clear()
    pending = binance.start_order(binance_sell("so-wait"))
    assert log == []  # no slot: nothing consumed, nothing written
    with pytest.raises(RateLimited):
        await pending
    assert not any("POST" in x for x in log)


async def test_without_an_idle_lane_connection_it_is_sent_on_await(make) -> None:
    log: list[str] = []
    upbit = await make("upbit", log, prewarm_connections=1)
    log.clear()
    first = upbit.start_order(upbit_buy("so-u-a"))
    second = upbit.start_order(upbit_buy("so-u-b"))  # the only connection is busy
    assert log == ["upbit POST /v1/orders"]
    a, b = await asyncio.gather(first, second)
    assert (a.client_id, b.client_id) == ("so-u-a", "so-u-b") and a.status == b.status == "filled"
    assert log.count("upbit POST /v1/orders") == 2


async def test_bad_input_is_raised_by_the_await_and_nothing_is_sent(make) -> None:
    log: list[str] = []
    upbit = await make("upbit", log)
    log.clear()
    bad = OrderRequest(symbol="KRW-BTC", side="buy", type="market", quantity=D("0.001"), client_id="so-bad")
    pending = upbit.start_order(bad)  # a market buy by quantity: refused locally
    assert log == []
    with pytest.raises(Rejected) as ei:
        await pending
    assert ei.value.code == "unsupported_order"
    assert log == []
