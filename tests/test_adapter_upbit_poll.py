"""UpbitSpot's bounded final-state poll, against a local receiver that answers like the
real exchange does.

The simulator matches before it answers, so ``POST /v1/orders`` there is already final.
Real Upbit answers first (``state: "wait"``, no trades) and matches after; this
receiver (a real aiohttp server on 127.0.0.1) plays that timing so the poll path runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import web

from adapters_direct import OrderRequest
from adapters_direct.upbit import UpbitSpot

D = Decimal
UUID = "9ca023a5-851b-4fec-9f0a-48cd83c2eaae"


def order(state: str, *, executed: str = "0", trades: list[dict[str, str]] | None = None, **extra: Any) -> dict:
    d = {
        "uuid": UUID, "side": "bid", "ord_type": "limit", "price": "140000000.0", "state": state,
        "market": "KRW-BTC", "created_at": "2026-11-23T21:00:00+09:00", "volume": "0.002",
        "remaining_volume": str(D("0.002") - D(executed)), "executed_volume": executed,
        "paid_fee": str(D("0.0005") * sum((D(t["funds"]) for t in trades or []), D(0))),
        "time_in_force": "ioc", "identifier": "poll-1", **extra,
    }
    if trades is not None:
        d["trades"] = trades
    return d


class UpbitLike:
    """Answers POST with ``wait``; ``GET /v1/order`` reads ``wait`` until ``final_after`` polls."""

    def __init__(self, final_after: int | None) -> None:
        self.final_after = final_after
        self.gets = 0
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path}")
        path = request.path
        if path == "/v1/market/all":
            body: Any = [{"market": "KRW-BTC"}]
        elif path == "/v1/orderbook/instruments":
            body = [{"market": "KRW-BTC", "quote_currency": "KRW", "tick_size": "1000"}]
        elif path == "/v1/orders/chance":
            body = {"bid_fee": "0.0005", "ask_fee": "0.0005", "market": {"id": "KRW-BTC",
                    "bid": {"currency": "KRW", "min_total": "5000"}, "ask": {"currency": "BTC", "min_total": "5000"},
                    "max_total": "1000000000", "state": "active"}}
        elif path == "/v1/orders" and request.method == "POST":
            return web.Response(status=201, body=orjson.dumps(order("wait")), content_type="application/json")
        elif path == "/v1/order":
            self.gets += 1
            if self.final_after is not None and self.gets >= self.final_after:
                trades = [
                    {"price": "140000000", "volume": "0.0015", "funds": "210000"},
                    {"price": "140001000", "volume": "0.0005", "funds": "70000.5"},
                ]
                body = order("done", executed="0.002", trades=trades)
            else:
                body = order("wait", trades=[])
        else:
            return web.Response(status=404)
        return web.Response(body=orjson.dumps(body), content_type="application/json")


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(receiver: UpbitLike) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for r in runners:
        await r.cleanup()


REQ = OrderRequest(
    symbol="KRW-BTC", side="buy", type="limit", time_in_force="ioc",
    quantity=D("0.002"), price=D("140001000"), client_id="poll-1",
)


async def test_a_non_final_ioc_is_polled_until_final(serve) -> None:
    receiver = UpbitLike(final_after=3)
    url = await serve(receiver)
    async with UpbitSpot(api_key="a", secret_key="s", base_url=url, keepwarm_s=0, rules_refresh_s=0) as upbit:
        res = await upbit.place_order(REQ)
    assert receiver.gets == 3
    assert res.status == "filled" and res.filled_qty == D("0.002")
    assert res.quote_filled == D("280000.5")
    assert res.avg_price == D("280000.5") / D("0.002")  # from the trades, not the limit price
    assert res.fee == D("0.0005") * D("280000.5")


async def test_the_poll_is_bounded_and_returns_the_last_state(serve) -> None:
    receiver = UpbitLike(final_after=None)  # never final
    url = await serve(receiver)
    async with UpbitSpot(
        api_key="a", secret_key="s", base_url=url, keepwarm_s=0, rules_refresh_s=0, final_state_timeout_s=0.2
    ) as upbit:
        res = await upbit.place_order(REQ)
    # not an error: the order exists; "open" tells the caller to ask again later
    assert res.status == "open" and not res.final and res.exchange_order_id == UUID
    assert 2 <= receiver.gets <= 8
