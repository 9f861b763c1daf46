"""Responses are bounded (issue 19 §3), on both transports, after decompression.

A raw server on 127.0.0.1 answers what an exchange (or whoever sits in its path) could:
a gzip bomb (~64 KB inflating to 64 MiB), a declared length beyond the cap, a chunk that
announces a gigabyte, a body that never ends. Through the order lane (``_wire``) and the
aiohttp session alike the answer is refused at the cap (``max_response_bytes``, default
4 MiB) with ``ResponseTooLarge`` — an ``OutcomeUnknown``, so an order is looked up — and
memory stays near the cap. Then the same through the adapters and a proxy in front of the
simulator, where the order really executed.
"""

from __future__ import annotations

import asyncio
import functools
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest
from adapters_direct._http import MAX_RESPONSE_BYTES, RESPONSE_TOO_LARGE, AdapterOptions, Transport
from adapters_direct._wire import BodyDecoder, BodyTooLarge, MalformedResponse
from adapters_direct.errors import InvalidResponse, OutcomeUnknown, ResponseTooLarge
from kimp_fast.ratelimit import RateLimiter
from tests.fixtures.hostile import HostileProxy, hostile  # noqa: F401  (fixture)
from tests.fixtures.raw_server import RawServer

MiB = 1024 * 1024


@functools.lru_cache(maxsize=None)
def gzip_bomb(inflated: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MiB
    return b"".join(c.compress(block) for _ in range(inflated // MiB)) + c.flush()


def deflate(data: bytes) -> bytes:
    return zlib.compress(data)


def gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def answer(body: bytes, *, encoding: str | None = None, framing: str = "length") -> bytes:
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    if encoding:
        head += f"Content-Encoding: {encoding}\r\n"
    if framing == "length":
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if framing == "chunked":
        out = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
        for i in range(0, len(body), 4096):
            piece = body[i : i + 4096]
            out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        return out + b"0\r\n\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body  # close-delimited


def serve_once(payload: bytes, *, close: bool = False) -> RawServer:
    async def handler(reader, writer, n):
        await server.read_request(reader)
        writer.write(payload)
        await writer.drain()
        if close:
            writer.close()
            return
        await asyncio.sleep(5)

    server = RawServer(handler)
    return server


@pytest.fixture(params=["aiohttp", "wire"])
async def transport_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Awaitable[Transport]]]:
    made: list[Transport] = []

    async def make(url: str, **opts: object) -> Transport:
        opts = {"order_lane": request.param, "prewarm_connections": 0, "timeout_s": 5.0, **opts}
        t = Transport("binance", url, AdapterOptions.from_kwargs(opts), RateLimiter("binance"))
        await t.open()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.close()


# ============================================================================ transports
async def test_gzip_bomb_on_an_order_stops_at_the_cap(transport_factory) -> None:
    """The incident: ~300 KB of gzip inflated to 300 MB on the order lane (its 16 MB cap
    was checked before decompression), and aiohttp read a 400 MB body in full."""
    bomb = gzip_bomb(64 * MiB)
    assert len(bomb) < 256 * 1024
    server = serve_once(answer(bomb, encoding="gzip"))
    async with server:
        t = await transport_factory(server.url)
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge) as ei:
                await t.send("POST", "/fapi/v1/order", body=b"symbol=BTCUSDT", client_id="cid-bomb", order=True)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    err = ei.value
    assert isinstance(err, OutcomeUnknown) and isinstance(err, InvalidResponse)
    assert err.executed == "unknown" and err.infrastructure
    assert err.code == RESPONSE_TOO_LARGE and err.client_id == "cid-bomb" and err.exchange == "binance"
    assert peak < 4 * MAX_RESPONSE_BYTES, f"peak traced memory {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
async def test_the_cap_is_exact_after_decoding(transport_factory, encoding: str | None, framing: str) -> None:
    """``max_response_bytes`` bytes pass, one more is refused, however the body is framed
    and encoded (the cap counts decoded bytes)."""
    cap = 2000
    for size, ok in ((cap, True), (cap + 1, False)):
        plain = b"x" * size
        raw = {None: plain, "gzip": gzip(plain), "deflate": deflate(plain)}[encoding]
        server = serve_once(answer(raw, encoding=encoding, framing=framing), close=framing == "close")
        async with server:
            t = await transport_factory(server.url, max_response_bytes=cap)
            if ok:
                resp = await t.send("GET", "/fapi/v1/order", order=True)
                assert resp.status == 200 and resp.body == plain
            else:
                with pytest.raises(ResponseTooLarge):
                    await t.send("GET", "/fapi/v1/order", order=True)


async def test_reads_are_bounded_too(transport_factory) -> None:
    """A non-order request (always the aiohttp session) is bounded the same way."""
    server = serve_once(answer(b"[" + b"0," * (3 * MiB) + b"0]"))
    async with server:
        t = await transport_factory(server.url)
        with pytest.raises(ResponseTooLarge) as ei:
            await t.send("GET", "/fapi/v3/balance")
    assert ei.value.code == RESPONSE_TOO_LARGE and "max_response_bytes" in str(ei.value)


async def test_an_endless_body_is_cut_at_the_cap(transport_factory) -> None:
    """A close-delimited body that never ends: reading stops at the cap (not at the
    timeout), and the connection is dropped."""
    dropped = asyncio.Event()

    async def handler(reader, writer, n):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        try:
            while True:
                writer.write(b"7" * 65536)
                await writer.drain()
        except (ConnectionError, OSError):
            dropped.set()

    server = RawServer(handler)
    async with server:
        t = await transport_factory(server.url, timeout_s=30.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ResponseTooLarge):
            await t.send("POST", "/fapi/v1/order", body=b"a=1", order=True)
        assert loop.time() - started < 10
        await asyncio.wait_for(dropped.wait(), 5)


async def test_a_huge_declared_length_or_chunk_is_refused_unread(transport_factory, request) -> None:
    """Refused on the announcement, not after a timeout. (aiohttp does not expose chunk
    sizes: a huge chunk there is cut at the cap as it arrives, see the endless body.)"""
    heads = [b"HTTP/1.1 200 OK\r\nContent-Length: 400000000\r\n\r\n{"]
    if "wire" in request.node.callspec.id:
        heads.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n{")
    for head in heads:
        server = serve_once(head)
        async with server:
            t = await transport_factory(server.url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(ResponseTooLarge):
                await t.send("POST", "/fapi/v1/order", body=b"a=1", order=True)
            assert loop.time() - started < 2  # not the 5 s timeout


def test_max_response_bytes_is_an_option_with_a_named_default() -> None:
    assert MAX_RESPONSE_BYTES == 4 * MiB
    assert AdapterOptions().max_response_bytes == MAX_RESPONSE_BYTES
    assert AdapterOptions.from_kwargs({"max_response_bytes": 123}).max_response_bytes == 123
    for bad in (0, -1, 1.5, True, "4"):
        with pytest.raises(ValueError, match="max_response_bytes"):
            AdapterOptions(max_response_bytes=bad)  # type: ignore[arg-type]


def test_body_decoder_stops_a_bomb_fed_in_pieces() -> None:
    """The decoder inflates at most cap + 1 bytes whatever the ratio, fed piece by piece
    as aiohttp delivers it; a truncated or corrupt stream is malformed, not too large."""
    bomb = gzip_bomb(64 * MiB)
    dec = BodyDecoder("gzip", 1 * MiB)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            for i in range(0, len(bomb), 16384):
                dec.feed(bomb[i : i + 16384])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB
    assert dec.size <= 1 * MiB
    small = gzip(b'{"a":1}')
    dec = BodyDecoder("gzip", 100)
    dec.feed(small[:-4])
    with pytest.raises(MalformedResponse, match="truncated"):
        dec.finish()
    with pytest.raises(MalformedResponse, match="undecodable"):
        BodyDecoder("gzip", 100).feed(b"not gzip at all")
    with pytest.raises(MalformedResponse, match="unsupported"):
        BodyDecoder("br", 100)
    dec = BodyDecoder("deflate", 100)  # raw deflate, no zlib wrapper
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    dec.feed(raw.compress(b"hello") + raw.flush())
    assert dec.finish() == b"hello"


# ============================================================================ adapters
VARIANTS = ["wire", "aiohttp"]


@pytest.mark.parametrize("lane", VARIANTS)
async def test_an_oversized_order_answer_is_looked_up(sim, sim_client, hostile: HostileProxy, lane: str) -> None:
    """The order really filled at the simulator; its answer arrives as a gzip bomb. The
    adapter raises OutcomeUnknown (ResponseTooLarge) and the look-up finds the fill."""
    ad = ExchangeFactory.create("binance", AdapterType.DIRECT, api_key=sim.binance_keys.api_key,
                                secret_key=sim.binance_keys.secret_key, base_url=hostile.url,
                                symbols=("BTCUSDT",), keepwarm_s=0, rules_refresh_s=0, order_lane=lane)
    async with ad:
        bomb = gzip_bomb(64 * MiB)
        hostile.arm("POST", "/fapi/v1/order",
                    raw=lambda: (200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb))
        with pytest.raises(OutcomeUnknown) as ei:
            await ad.place_order(OrderRequest(symbol="BTCUSDT", side="sell", type="market",
                                              quantity=Decimal("0.002"), client_id=f"big-{lane}"))
        assert isinstance(ei.value, ResponseTooLarge) and ei.value.client_id == f"big-{lane}"
        res = await ad.get_order("BTCUSDT", f"big-{lane}")
        assert res.status == "filled" and res.filled_qty == Decimal("0.002")
        orders = [o for o in await sim_client.orders("binance") if o["client_id"] == f"big-{lane}"]
        assert len(orders) == 1


@pytest.mark.parametrize("exchange,path", [("upbit", "/v1/accounts"), ("binance", "/fapi/v3/balance")])
async def test_an_oversized_read_is_a_typed_error(sim, hostile: HostileProxy, exchange: str, path: str) -> None:
    keys = sim.upbit_keys if exchange == "upbit" else sim.binance_keys
    api_key = keys.access_key if exchange == "upbit" else keys.api_key
    ad = ExchangeFactory.create(exchange, AdapterType.DIRECT, api_key=api_key, secret_key=keys.secret_key,
                                base_url=hostile.url, keepwarm_s=0, rules_refresh_s=0,
                                symbols=("KRW-BTC",) if exchange == "upbit" else ("BTCUSDT",))
    async with ad:
        huge = b"[" + b" " * (5 * MiB) + b"]"
        hostile.arm("GET", path, raw=lambda: (200, {"Content-Type": "application/json"}, huge))
        with pytest.raises(ResponseTooLarge) as ei:
            await ad.get_balances()
    assert ei.value.exchange == exchange and ei.value.code == RESPONSE_TOO_LARGE
