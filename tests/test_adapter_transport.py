"""Transport failure classification against real local sockets.

A raw asyncio TCP server plays a misbehaving exchange (refuses, hangs, hangs up after
reading the request, answers garbage), so each row of the "Transport" table of
docs/ADAPTERS.md is checked on a real connection — through both ways an order request
can travel: the aiohttp session and the order lane (``order_lane="wire"``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters_direct._http import CLIENT_THROTTLE, CONNECTION_LOST, TIMEOUT, AdapterOptions, Transport
from adapters_direct.errors import OutcomeUnknown, RateLimited, Unavailable
from adapters_direct.upbit import UpbitSpot
from kimp_fast.ratelimit import RateLimiter
from tests.fixtures.raw_server import RawServer, http_response

@pytest.fixture(params=["aiohttp", "wire"])
async def transport_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Awaitable[Transport]]]:
    """Transports whose order requests (``send(..., order=True)``) go through aiohttp or
    the order lane; no pre-opened connections, so servers count only what requests open."""
    made: list[Transport] = []

    async def make(url: str, **opts: object) -> Transport:
        opts = {"order_lane": request.param, "prewarm_connections": 0, **opts}
        t = Transport("binance", url, AdapterOptions.from_kwargs(opts), RateLimiter("binance"))
        await t.open()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_refused_is_unavailable(transport_factory) -> None:
    t = await transport_factory(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable) as ei:
        await t.send("POST", "/fapi/v1/order", body=b"x=1", client_id="cid-1", order=True)
    assert ei.value.client_id == "cid-1"
    assert ei.value.executed == "no"


async def test_dns_failure_is_unavailable(transport_factory) -> None:
    t = await transport_factory("http://no-such-host.invalid")
    with pytest.raises(Unavailable):
        await t.send("GET", "/fapi/v1/time", order=True)


async def test_closed_transport_is_unavailable() -> None:
    t = Transport("upbit", "http://127.0.0.1:9", AdapterOptions(), RateLimiter("upbit"))
    with pytest.raises(Unavailable, match="not open"):
        await t.send("GET", "/v1/market/all")


async def test_hang_up_after_request_is_outcome_unknown(transport_factory) -> None:
    async def handler(reader, writer, n):
        await RawServer.read_request(server, reader)  # read it all, answer nothing

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url)
        with pytest.raises(OutcomeUnknown) as ei:
            await t.send("POST", "/fapi/v1/order", body=b"symbol=BTCUSDT", client_id="cid-2", order=True)
    assert ei.value.code == CONNECTION_LOST
    assert ei.value.client_id == "cid-2"
    assert server.requests and server.requests[0].endswith(b"symbol=BTCUSDT")


async def test_no_answer_is_outcome_unknown_timeout(transport_factory) -> None:
    release = asyncio.Event()

    async def handler(reader, writer, n):
        await server.read_request(reader)
        await release.wait()

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url, timeout_s=0.2)
        with pytest.raises(OutcomeUnknown) as ei:
            await t.send("POST", "/fapi/v1/order", body=b"a=1", client_id="cid-3", order=True)
        release.set()
    assert ei.value.code == TIMEOUT


async def test_truncated_body_is_outcome_unknown(transport_factory) -> None:
    async def handler(reader, writer, n):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"orderId\":")
        await writer.drain()

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url)
        with pytest.raises(OutcomeUnknown):
            await t.send("POST", "/fapi/v1/order", body=b"a=1", order=True)


async def test_garbage_status_line_is_outcome_unknown(transport_factory) -> None:
    async def handler(reader, writer, n):
        await server.read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url)
        with pytest.raises(OutcomeUnknown):
            await t.send("POST", "/fapi/v1/order", body=b"a=1", order=True)


async def test_no_origin_header_and_one_keep_alive_connection(transport_factory) -> None:
    async def handler(reader, writer, n):
        while True:
            await server.read_request(reader)
            writer.write(http_response(b'{"serverTime": 1}'))
            await writer.drain()

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url)
        for _ in range(3):
            resp = await t.send("GET", "/fapi/v1/time", order=True)
            assert resp.status == 200
    assert server.connections == 1  # keep-alive: one connection for three requests
    for raw in server.requests:
        head = raw.split(b"\r\n\r\n")[0].lower()
        assert b"\r\norigin:" not in head
        assert b"user-agent: kimp-fast/" in head


async def test_local_throttle_sends_nothing(transport_factory) -> None:
    async def handler(reader, writer, n):  # pragma: no cover - must not be reached
        await server.read_request(reader)

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url, max_rate_wait_s=0.05)
        t.limiter.on_rate_limited(418, 30.0)  # a ban in force
        with pytest.raises(RateLimited) as ei:
            await t.throttle("order")
        assert ei.value.code == CLIENT_THROTTLE
        assert ei.value.status is None
        assert 29 < ei.value.retry_after <= 30
    assert server.connections == 0


async def test_throttle_waits_in_arrival_order(transport_factory) -> None:
    t = await transport_factory("http://127.0.0.1:9", max_rate_wait_s=5)
    # orders_1s holds 10 per second, 8 outside the reserved lane
    done: list[int] = []

    async def one(i: int) -> None:
        await t.throttle("order")
        done.append(i)

    await asyncio.gather(*(one(i) for i in range(12)))
    assert done == list(range(12))


async def test_read_is_retried_once_on_a_dead_connection() -> None:
    book = json.dumps(
        [
            {
                "market": "KRW-BTC",
                "timestamp": 1,
                "orderbook_units": [
                    {"ask_price": 140001000.0, "bid_price": 140000000, "ask_size": 0.00012345, "bid_size": 1.5}
                ],
            }
        ]
    ).encode()

    async def handler(reader, writer, n):
        await server.read_request(reader)
        if n == 1:
            return  # hang up on the first connection, like a stale keep-alive socket
        writer.write(http_response(book))
        await writer.drain()

    server = RawServer(handler)
    async with server:
        upbit = UpbitSpot(
            api_key="k", secret_key="s", base_url=server.url, keepwarm_s=0, rules_refresh_s=0, prewarm_connections=0
        )
        await upbit._t.open()  # session only: this receiver speaks nothing but the order book
        try:
            ob = await upbit.get_order_book("KRW-BTC", depth=1)
        finally:
            await upbit.close()
    assert len(server.requests) == 2
    assert str(ob.asks[0].price) == "140001000.0"
    assert str(ob.asks[0].qty) == "0.00012345"
    assert str(ob.bids[0].price) == "140000000"
