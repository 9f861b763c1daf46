"""The order lane (``adapters_direct._wire``) against real local sockets.

A raw TCP server scripts the exact bytes of each answer: framing (length, chunked, close),
encodings, interim answers, split delivery, garbage, hang-ups, late answers; plus the
pool's life cycle (pre-open, reuse, limits, recycling, top-up) and TLS.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import logging
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters_direct._wire import ConnectFailed, ConnectionLost, MalformedResponse, WirePool
from tests.fixtures.raw_server import RawServer, http_response


@pytest.fixture
async def pool_factory() -> AsyncIterator[Callable[..., Awaitable[WirePool]]]:
    made: list[WirePool] = []

    async def make(url: str, **kw: object) -> WirePool:
        kw.setdefault("size", 1)
        kw.setdefault("timeout_s", 2.0)
        pool = WirePool(url, **kw)  # type: ignore[arg-type]
        await pool.open()
        made.append(pool)
        return pool

    yield make
    for p in made:
        await p.close()


def serve_forever(answer: Callable[[bytes, int], bytes | list[bytes]]) -> RawServer:
    """A server answering every request on every connection with ``answer(request, n)``
    (a list is written piece by piece, with a pause between pieces)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            req = await server.read_request(reader)
            out = answer(req, n)
            for piece in out if isinstance(out, list) else [out]:
                writer.write(piece)
                await writer.drain()
                if isinstance(out, list):
                    await asyncio.sleep(0.001)

    server = RawServer(handler)
    return server


# ------------------------------------------------------------------------------ framing
async def test_request_bytes_and_keep_alive_reuse(pool_factory) -> None:
    server = serve_forever(lambda req, n: http_response(b'{"ok":1}'))
    async with server:
        pool = await pool_factory(server.url, user_agent="kimp-fast/test")
        for i in range(3):
            status, headers, body = await pool.request(
                "POST", f"/fapi/v1/order?x={i}", {"X-MBX-APIKEY": "key"}, b"a=1&b=2"
            )
            assert (status, body) == (200, b'{"ok":1}')
            assert headers["content-type"] == "application/json"  # case-insensitive
        host_port = server.url.removeprefix("http://")
    assert server.connections == 1 and pool.opened == 1
    assert server.requests[0] == (
        f"POST /fapi/v1/order?x=0 HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: kimp-fast/test\r\n"
        "Accept: application/json\r\nX-MBX-APIKEY: key\r\nContent-Length: 7\r\n\r\na=1&b=2"
    ).encode()
    assert b"origin:" not in server.requests[0].lower()


async def test_get_without_body_has_no_content_length(pool_factory) -> None:
    server = serve_forever(lambda req, n: http_response(b"[]"))
    async with server:
        pool = await pool_factory(server.url)
        status, _, body = await pool.request("GET", "/v1/order?identifier=abc")
    assert (status, body) == (200, b"[]")
    assert server.requests[0].startswith(b"GET /v1/order?identifier=abc HTTP/1.1\r\n")
    assert b"content-length" not in server.requests[0].lower()


async def test_chunked_delivered_byte_by_byte(pool_factory) -> None:
    payload = b'{"orderId":1,"status":"FILLED"}'
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\n" + payload[:5] + b"\r\n"
        + f"{len(payload) - 5:x}".encode() + b"\r\n" + payload[5:] + b"\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    server = serve_forever(lambda req, n: [raw[i : i + 1] for i in range(len(raw))])
    async with server:
        pool = await pool_factory(server.url)
        status, _, body = await pool.request("POST", "/fapi/v1/order", body=b"a=1")
        assert (status, body) == (200, payload)
        # the connection stays usable after a chunked answer
        status, _, body = await pool.request("POST", "/fapi/v1/order", body=b"a=2")
        assert body == payload
    assert server.connections == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies(pool_factory, encoding: str) -> None:
    payload = b'{"uuid":"u-1","state":"done"}' * 20
    if encoding == "gzip":
        data = gzip.compress(payload)
    elif encoding == "deflate":
        data = zlib.compress(payload)
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = c.compress(payload) + c.flush()
    name = "deflate" if encoding == "raw-deflate" else encoding
    answer = f"HTTP/1.1 200 OK\r\nContent-Encoding: {name}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    server = serve_forever(lambda req, n: answer)
    async with server:
        pool = await pool_factory(server.url)
        _, _, body = await pool.request("GET", "/v1/order")
    assert body == payload


async def test_interim_answer_is_skipped(pool_factory) -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(b'{"a":1}', "201 Created")
    server = serve_forever(lambda req, n: answer)
    async with server:
        pool = await pool_factory(server.url)
        status, _, body = await pool.request("POST", "/v1/orders", body=b"{}")
    assert (status, body) == (201, b'{"a":1}')


async def test_no_content_answer(pool_factory) -> None:
    server = serve_forever(lambda req, n: b"HTTP/1.1 204 No Content\r\n\r\n")
    async with server:
        pool = await pool_factory(server.url)
        for _ in range(2):
            status, _, body = await pool.request("DELETE", "/x")
            assert (status, body) == (204, b"")
    assert server.connections == 1


async def test_close_delimited_body_completes_on_eof_and_is_not_reused(pool_factory) -> None:
    async def handler(reader, writer, n):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + f'{{"n":{n}}}'.encode())
        await writer.drain()
        writer.close()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url)
        assert (await pool.request("GET", "/a"))[2] == b'{"n":1}'
        assert (await pool.request("GET", "/b"))[2] == b'{"n":2}'
    assert server.connections >= 2


async def test_connection_close_header_is_honoured(pool_factory) -> None:
    server = serve_forever(
        lambda req, n: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    )
    async with server:
        pool = await pool_factory(server.url, size=0)
        for _ in range(3):
            assert (await pool.request("GET", "/"))[2] == b"ok"
    assert server.connections == 3


# ------------------------------------------------------------------------------ failures
@pytest.mark.parametrize(
    "answer",
    [
        b"this is not HTTP\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
    ],
    ids=["status-line", "status-code", "header-line", "negative-length", "float-length", "te-gzip",
         "encoding-br", "bad-gzip", "chunk-size", "chunk-crlf"],
)
async def test_malformed_answers(pool_factory, answer: bytes) -> None:
    server = serve_forever(lambda req, n: answer if n == 1 else http_response(b"fine"))
    async with server:
        pool = await pool_factory(server.url)
        with pytest.raises(MalformedResponse):
            await pool.request("POST", "/fapi/v1/order", body=b"a=1")
        # that connection is gone; the next request gets a clean one
        assert (await pool.request("GET", "/"))[2] == b"fine"
    assert server.connections == 2


async def test_truncated_answers_are_connection_lost(pool_factory) -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"orderId\":",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"",
    ]

    async def handler(reader, writer, n):
        await server.read_request(reader)
        writer.write(answers[n - 1])
        await writer.drain()
        writer.close()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url, size=0)
        for _ in answers:
            with pytest.raises(ConnectionLost):
                await pool.request("POST", "/fapi/v1/order", body=b"a=1")
    assert len(server.requests) == len(answers)


async def test_timeout_discards_the_connection_so_a_late_answer_is_never_misread(pool_factory) -> None:
    async def handler(reader, writer, n):
        while True:
            req = await server.read_request(reader)
            if b"/slow" in req:
                await asyncio.sleep(0.3)
                writer.write(http_response(b"late"))
            else:
                writer.write(http_response(b"fresh"))
            await writer.drain()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url, timeout_s=0.1)
        with pytest.raises(asyncio.TimeoutError):
            await pool.request("GET", "/slow")
        assert (await pool.request("GET", "/fast"))[2] == b"fresh"
    assert server.connections == 2


async def test_cancelled_caller_discards_the_connection(pool_factory) -> None:
    async def handler(reader, writer, n):
        while True:
            req = await server.read_request(reader)
            if b"/hang" in req:
                await asyncio.sleep(0.2)
                writer.write(http_response(b"late"))
            else:
                writer.write(http_response(b"ok"))
            await writer.drain()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url)
        task = asyncio.ensure_future(pool.request("GET", "/hang"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # the late answer would arrive now on the old connection
        assert (await pool.request("GET", "/next"))[2] == b"ok"
    assert server.connections == 2


async def test_unsolicited_bytes_kill_an_idle_connection(pool_factory) -> None:
    async def handler(reader, writer, n):
        if n == 1:
            writer.write(http_response(b"nobody asked"))
            await writer.drain()
        while True:
            await server.read_request(reader)
            writer.write(http_response(b"ok"))
            await writer.drain()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url)
        await asyncio.sleep(0.05)
        assert (await pool.request("GET", "/"))[2] == b"ok"
    assert server.connections == 2
    assert len(server.requests) == 1  # nothing was written to the talkative connection


async def test_idle_connection_closed_by_the_server_is_not_written_to(pool_factory) -> None:
    async def handler(reader, writer, n):
        if n == 1:
            return  # close at once, like a server's keep-alive timeout
        while True:
            await server.read_request(reader)
            writer.write(http_response(b"ok"))
            await writer.drain()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url)
        await asyncio.sleep(0.05)  # the FIN arrives; connection_lost runs
        assert (await pool.request("POST", "/fapi/v1/order", body=b"a=1"))[2] == b"ok"
    assert len(server.requests) == 1


async def test_header_injection_is_refused_before_writing(pool_factory) -> None:
    server = serve_forever(lambda req, n: http_response(b"ok"))
    async with server:
        pool = await pool_factory(server.url)
        with pytest.raises(ValueError, match="forbidden character") as ei:
            await pool.request("GET", "/", {"Authorization": "Bearer secret\r\nX-Evil: 1"})
        assert "secret" not in str(ei.value)
        with pytest.raises(ValueError):
            await pool.request("GET", "/", {"Bad:Name": "v"})
        assert (await pool.request("GET", "/"))[2] == b"ok"
    assert len(server.requests) == 1


def test_bad_origins_are_refused() -> None:
    for url in ("ftp://x", "http://", "http://host/path", "http://host?q=1"):
        with pytest.raises(ValueError):
            WirePool(url)
    with pytest.raises(ValueError):
        WirePool("http://host", size=3, limit=2)


# ------------------------------------------------------------------------------ the pool
async def test_open_pre_opens_size_connections_and_reuses_the_warmest(pool_factory) -> None:
    server = serve_forever(lambda req, n: http_response(str(n).encode()))
    async with server:
        pool = await pool_factory(server.url, size=2)
        await asyncio.sleep(0.02)
        assert server.connections == 2 and pool.connections == 2
        first = (await pool.request("GET", "/"))[2]
        # sequential requests keep using the connection used last
        for _ in range(3):
            assert (await pool.request("GET", "/"))[2] == first
        # two at once use both
        both = await asyncio.gather(pool.request("GET", "/"), pool.request("GET", "/"))
        assert {b[2] for b in both} == {b"1", b"2"}
    assert server.connections == 2


async def test_limit_makes_requests_wait_for_a_free_connection(pool_factory) -> None:
    async def handler(reader, writer, n):
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(http_response(b"ok"))
            await writer.drain()

    server = RawServer(handler)
    async with server:
        pool = await pool_factory(server.url, size=1, limit=1, connect_timeout_s=2.0)
        out = await asyncio.gather(*(pool.request("GET", "/") for _ in range(3)))
        assert [o[2] for o in out] == [b"ok"] * 3
        assert server.connections == 1
        pool2 = await pool_factory(server.url, size=1, limit=1, connect_timeout_s=0.02)
        slow = asyncio.ensure_future(pool2.request("GET", "/"))
        await asyncio.sleep(0.01)
        with pytest.raises(ConnectFailed, match="no free connection"):
            await pool2.request("GET", "/")
        assert (await slow)[2] == b"ok"


async def test_unreachable_server(pool_factory, caplog: pytest.LogCaptureFixture, unused_tcp_port: int) -> None:
    with caplog.at_level(logging.WARNING, logger="adapters_direct.wire"):
        pool = await pool_factory(f"http://127.0.0.1:{unused_tcp_port}", size=2, connect_timeout_s=0.5)
    assert "2 of 2 connections not opened" in caplog.text
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await pool.request("POST", "/fapi/v1/order", body=b"a=1")


async def test_closed_pool_refuses(pool_factory) -> None:
    server = serve_forever(lambda req, n: http_response(b"ok"))
    async with server:
        pool = await pool_factory(server.url)
        await pool.close()
        with pytest.raises(ConnectFailed, match="not open"):
            await pool.request("GET", "/")


async def test_idle_connections_are_recycled_and_lost_ones_topped_up(pool_factory) -> None:
    server = serve_forever(lambda req, n: http_response(str(n).encode()))
    async with server:
        pool = await pool_factory(server.url, size=2, keepalive_s=0.1)
        await asyncio.sleep(0.6)
        assert pool.opened > 2  # replaced after idling past keepalive_s
        assert pool.connections == 2
        assert (await pool.request("GET", "/"))[0] == 200
        # the server drops one: the pool opens a replacement in the background
        recycled = pool.opened
        for conn in list(pool._all)[:1]:
            conn.abort()
        await asyncio.sleep(0.05)
        assert pool.connections == 2 and pool.opened > recycled


# ------------------------------------------------------------------------------ TLS
def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_tls_verifies_the_server_and_keeps_the_session(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    requests: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                requests.append(head)
                writer.write(http_response(b'{"tls":true}'))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        pool = WirePool(f"https://127.0.0.1:{port}", size=1, ssl_context=trusting)
        await pool.open()
        try:
            for _ in range(2):
                status, _, body = await pool.request("GET", "/v1/order")
                assert (status, body) == (200, b'{"tls":true}')
        finally:
            await pool.close()
        assert connections == 1
        assert requests[0].startswith(b"GET /v1/order HTTP/1.1\r\nHost: 127.0.0.1:")

        # A client that does not trust the certificate never sends the request.
        before = len(requests)
        untrusting = WirePool(f"https://127.0.0.1:{port}", size=0)  # the default context: system CAs only
        await untrusting.open()
        try:
            with pytest.raises(ConnectFailed, match="SSL|certificate"):
                await untrusting.request("GET", "/v1/order")
        finally:
            await untrusting.close()
        assert len(requests) == before
    finally:
        server.close()
        await server.wait_closed()


# ------------------------------------------------------------------------------ uvloop
def test_on_uvloop() -> None:
    """The engine runs on uvloop in production: reuse, a chunked answer, a timeout and a
    connection the server closed, on uvloop's transports."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"

        async def handler(reader, writer, n):
            if n == 1:
                return  # the pre-opened connection is closed by the server
            while True:
                req = await server.read_request(reader)
                if b"/slow" in req:
                    await asyncio.sleep(0.3)
                writer.write(chunked)
                await writer.drain()

        server = RawServer(handler)
        async with server:
            pool = WirePool(server.url, size=1, timeout_s=0.1)
            await pool.open()
            try:
                await asyncio.sleep(0.05)
                for _ in range(3):
                    assert (await pool.request("POST", "/fapi/v1/order", body=b"a=1"))[2] == b"ok"
                with pytest.raises(asyncio.TimeoutError):
                    await pool.request("GET", "/slow")
                assert (await pool.request("GET", "/"))[2] == b"ok"
            finally:
                await pool.close()
        assert server.connections == 3  # closed one, the reused one, the one after the timeout
        assert len(server.requests) == 5

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_headers_are_case_insensitive_and_repeated_fields_join(pool_factory) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nX-MBX-USED-WEIGHT-1M: 7\r\nVary: a\r\nvary: b\r\nRetry-After: 3\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    server = serve_forever(lambda req, n: answer)
    async with server:
        pool = await pool_factory(server.url)
        _, headers, body = await pool.request("GET", "/")
    assert body == b"{}"
    assert headers["x-mbx-used-weight-1m"] == headers.get("X-Mbx-Used-Weight-1M") == "7"
    assert "RETRY-AFTER" in headers and headers.get("Retry-After") == "3"
    assert headers["Vary"] == "a, b"
    assert headers.get("Missing") is None and "Missing" not in headers


async def test_two_answers_in_one_segment_refuse_reuse(pool_factory) -> None:
    # Bytes beyond the answer mean the connection is out of step: never reuse it.
    server = serve_forever(lambda req, n: http_response(b"one") + http_response(b"two"))
    async with server:
        pool = await pool_factory(server.url)
        assert (await pool.request("GET", "/"))[2] == b"one"
        assert (await pool.request("GET", "/"))[2] == b"one"
    assert server.connections == 2


# ------------------------------------------------------------------------------ parser property
_ANSWERS = [
    http_response(b'{"orderId":1}'),
    b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(b'{"a":[1,2,3]}', "400 Bad Request"),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
    % (len(gzip.compress(b"zz", mtime=0)), gzip.compress(b"zz", mtime=0)),
]


def test_parser_result_does_not_depend_on_segmentation() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from adapters_direct._wire import _Response

    def parse(pieces: list[bytes]) -> tuple[int, dict, bytes, bool]:
        p = _Response(head_only=False)
        done = False
        for piece in pieces:
            assert not done
            done = p.feed(piece)
        assert done
        return p.status, dict(p.headers), p.body, p.must_close

    whole = [parse([a]) for a in _ANSWERS]
    assert [w[2] for w in whole] == [b'{"orderId":1}', b'{"a":[1,2,3]}', b"abcdefg", b"", b"zz"]

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, len(_ANSWERS) - 1), st.lists(st.integers(1, 40), min_size=1, max_size=60))
    def check(i: int, cuts: list[int]) -> None:
        raw, pieces, pos = _ANSWERS[i], [], 0
        for c in cuts:
            if pos >= len(raw):
                break
            pieces.append(raw[pos : pos + c])
            pos += c
        if pos < len(raw):
            pieces.append(raw[pos:])
        assert parse(pieces) == whole[i]

    check()


# ------------------------------------------------------------------------------ in the adapters
async def test_adapters_send_orders_over_the_lane_and_everything_else_over_aiohttp(sim) -> None:
    from decimal import Decimal

    from adapters_direct import AdapterType, ExchangeFactory, OrderRequest

    def lane_requests(ad: object) -> int:
        return sum(c.requests for c in ad._t.order_lane._all)  # type: ignore[attr-defined]

    up = ExchangeFactory.create(
        "upbit", AdapterType.DIRECT, api_key=sim.upbit_keys.access_key, secret_key=sim.upbit_keys.secret_key,
        base_url=sim.url, symbols=("KRW-BTC",), keepwarm_s=0, rules_refresh_s=0,
    )
    bn = ExchangeFactory.create(
        "binance", AdapterType.DIRECT, api_key=sim.binance_keys.api_key, secret_key=sim.binance_keys.secret_key,
        base_url=sim.url, symbols=("BTCUSDT",), keepwarm_s=0, rules_refresh_s=0,
    )
    async with up, bn:
        assert up._t.order_lane.connections == 2 and bn._t.order_lane.connections == 2  # pre-opened
        bid, ask = await up.best_bid_ask("KRW-BTC")  # aiohttp
        await bn.get_balances()  # aiohttp
        assert lane_requests(up) == lane_requests(bn) == 0
        tick = Decimal(1000)
        res_u = await up.place_order(OrderRequest(
            symbol="KRW-BTC", side="buy", type="limit", quantity=Decimal("0.0001"),
            price=(ask * Decimal("1.01") / tick).to_integral_value() * tick, time_in_force="ioc", client_id="lane-u-1",
        ))
        res_b = await bn.place_order(OrderRequest(
            symbol="BTCUSDT", side="sell", type="market", quantity=Decimal("0.002"), client_id="lane-b-1",
        ))
        assert res_u.status == res_b.status == "filled"
        assert (await up.get_order("KRW-BTC", "lane-u-1")).filled_qty == res_u.filled_qty
        assert (await bn.get_order("BTCUSDT", "lane-b-1")).filled_qty == res_b.filled_qty
        assert lane_requests(up) >= 2 and lane_requests(bn) == 2
        assert up._t.order_lane.opened == 2 and bn._t.order_lane.opened == 2  # no new connection needed


async def test_engine_config_selects_the_lane(tmp_path) -> None:
    from kimp_fast.config import ConfigError, EngineConfig
    from kimp_fast.engine import _adapter_options

    cfg = EngineConfig.from_dict({"upbit": {"order_lane": "aiohttp"}}, source="<test>")
    assert _adapter_options(cfg, "upbit")["order_lane"] == "aiohttp"
    assert _adapter_options(cfg, "binance")["order_lane"] == "wire"
    with pytest.raises(ConfigError, match="order_lane"):
        EngineConfig.from_dict({"binance": {"order_lane": "tcp"}}, source="<test>")
