"""The order lane: a minimal HTTP/1.1 client on pre-opened keep-alive connections.

Why it exists: through aiohttp one request costs 120–170 µs of client CPU on our
reference machine before and after the network (request object, trace and timer
bookkeeping, a writer task, the response object), more than everything else an order
does. An order is two small requests to two fixed hosts; this lane writes each one with a
single ``transport.write`` from the caller's coroutine, on a connection opened and
TLS-negotiated in advance, and parses the answer incrementally in ``data_received``.
Everything else an adapter does (rules, balances, books, clock) stays on its aiohttp
session.

Scope, deliberately small: one request at a time per connection (no pipelining);
responses framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or connection
close; identity, gzip or deflate bodies; interim 1xx answers skipped; TLS through the
event loop; no proxies, no redirects, no cookies. Bodies are bounded (``max_body``,
default :data:`MAX_RESPONSE_BYTES`) on the wire *and* after decompression: a declared
length or chunk beyond it is refused before it is buffered, and inflation stops at it.

Failure classes match :class:`adapters_direct._http.Transport` (which maps them onto
the error taxonomy): :class:`ConnectFailed` — nothing was written; :class:`ConnectionLost`
and :class:`MalformedResponse` — the request may have reached the server; a timeout
raises ``asyncio.TimeoutError``. A connection with a request outstanding is never reused
after any of these: a late answer would otherwise be read as the next request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as _ssl
import time
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

from yarl import URL

__all__ = [
    "MAX_RESPONSE_BYTES",
    "BodyDecoder",
    "BodyTooLarge",
    "ConnectFailed",
    "ConnectionLost",
    "Headers",
    "MalformedResponse",
    "WireError",
    "WirePool",
    "WireTrace",
]

log = logging.getLogger("adapters_direct.wire")

#: a status line plus headers larger than this is not an exchange's answer
_MAX_HEAD = 64 * 1024
#: nor is a body larger than this, counted *after* decompression (and on the wire):
#: Binance's exchangeInfo, the largest answer used, is ~1 MB; an order answer < 2 KB.
#: ``AdapterOptions.max_response_bytes`` sets it per adapter, for both transports.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"


class Headers(dict):  # type: ignore[type-arg]
    """Response headers: names stored lower-case, looked up case-insensitively; a field
    sent twice is one comma-separated value. (A dict, not a multidict: building it is
    the larger part of parsing a small answer.)"""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


class WireError(Exception):
    """Base of the order lane's failures (mapped by the transport, never seen by users)."""


class ConnectFailed(WireError):
    """No connection could be opened or taken from the pool: nothing was written."""


class ConnectionLost(WireError):
    """The connection ended after the request was written, before a complete answer."""


class MalformedResponse(WireError):
    """The server answered something that is not a well-formed HTTP/1.x response."""


class BodyTooLarge(MalformedResponse):
    """The body is larger than the cap, on the wire or once decompressed: reading and
    inflating stopped at the cap."""


class BodyDecoder:
    """Bounded, incremental body decoding: identity, gzip or deflate (zlib-wrapped or
    raw), fed in pieces, never producing more than ``limit`` bytes.

    A decompression bomb stops at ``limit + 1`` bytes of output: ``zlib``'s
    ``max_length`` bounds each step, so memory stays at the cap whatever the ratio.
    Shared by the order lane and the aiohttp transport (which reads with
    ``auto_decompress=False`` for this). Raises :class:`BodyTooLarge` beyond the cap and
    :class:`MalformedResponse` for an unknown encoding or a corrupt/truncated stream.
    """

    __slots__ = ("_z", "_raw_deflate", "_fed", "_parts", "size", "limit", "encoding")

    def __init__(self, encoding: str | None, limit: int = MAX_RESPONSE_BYTES) -> None:
        enc = (encoding or "identity").strip().lower()
        self.encoding = enc
        self.limit = limit
        self.size = 0
        self._parts: list[bytes] = []
        self._raw_deflate = False
        self._fed = False
        if enc == "identity":
            self._z: Any = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise MalformedResponse(f"unsupported Content-Encoding {encoding!r}")

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._fed = True
        z = self._z
        if z is None:
            out = data
        else:
            try:
                out = z.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                if self.encoding == "deflate" and not self._raw_deflate and not self._parts:
                    # raw deflate without the zlib wrapper: the header check fails on the
                    # first two bytes (the order lane feeds a whole body at once, aiohttp's
                    # first chunk holds far more)
                    self._raw_deflate = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    return self.feed(data)
                raise MalformedResponse(f"undecodable {self.encoding} body: {exc}") from None
            if z.unconsumed_tail:
                raise BodyTooLarge(f"response body larger than {self.limit} bytes once decompressed")
        self.size += len(out)
        if self.size > self.limit:
            raise BodyTooLarge(f"response body larger than {self.limit} bytes")
        if out:
            self._parts.append(out)

    def finish(self) -> bytes:
        """The decoded body; an empty body stays empty whatever its declared encoding."""
        z = self._z
        if z is not None and self._fed and not z.eof:
            raise MalformedResponse(f"truncated {self.encoding} body")
        parts = self._parts
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)


class WireTrace(Protocol):
    """Optional instrumentation (the latency probe): called synchronously, must be cheap."""

    def request_start(self, method: str, path: str) -> None: ...  # a connection is about to be taken

    def request_written(self, method: str, path: str) -> None: ...  # right after transport.write

    def response_end(self, method: str, path: str, status: int) -> None: ...  # answer parsed


class _Response:
    """Incremental parser of one HTTP/1.x response; ``feed`` returns True when complete."""

    __slots__ = ("_buf", "_mode", "_remaining", "_chunks", "_chunked_size", "_head_only", "_limit", "status", "headers",
                 "body", "must_close")

    def __init__(self, head_only: bool, limit: int = MAX_RESPONSE_BYTES) -> None:
        self._buf = bytearray()
        self._mode = 0  # 0 head, 1 length, 2 chunk size, 3 chunk data, 4 trailers, 5 until EOF
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._chunked_size = 0
        self._head_only = head_only
        self._limit = limit
        self.status = 0
        self.headers = Headers()
        self.body = b""
        self.must_close = False

    def feed(self, data: bytes) -> bool:
        buf = self._buf
        if self._mode == 0 and not buf:
            # The usual case: a small answer in one segment, parsed without copying.
            end = data.find(_HEAD_END)
            if end > _MAX_HEAD:
                raise MalformedResponse("response head too large")
            if end >= 0:
                start = end + 4
                if self._head(data[:end]):
                    buf += data[start:]  # bytes after a body-less answer: _done() refuses reuse
                    return self._done()
                if self._mode == 1 and len(data) - start == self._remaining:
                    self.body = data[start:]
                    return self._done()
                data = data[start:]  # interim answer, chunked or partial body: the general path
        buf += data
        while True:
            mode = self._mode
            if mode == 0:
                end = buf.find(_HEAD_END)
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise MalformedResponse("response head too large")
                    return False
                head = bytes(buf[:end])
                del buf[: end + 4]
                if self._head(head):
                    return self._done()
            elif mode == 1:
                if len(buf) < self._remaining:
                    return False
                self.body = bytes(buf[: self._remaining])
                del buf[: self._remaining]
                return self._done()
            elif mode == 2:
                end = buf.find(_CRLF)
                if end < 0:
                    if len(buf) > 1024:
                        raise MalformedResponse("chunk size line too long")
                    return False
                line = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise MalformedResponse(f"bad chunk size {line[:20]!r}") from None
                if size < 0:
                    raise MalformedResponse("negative chunk size")
                if self._chunked_size + size > self._limit:
                    # refused on the announcement, before buffering any of it
                    raise BodyTooLarge(f"response body larger than {self._limit} bytes")
                if size == 0:
                    self._mode = 4
                else:
                    self._remaining = size
                    self._mode = 3
            elif mode == 3:
                n = self._remaining
                if len(buf) < n + 2:
                    return False
                if buf[n : n + 2] != _CRLF:
                    raise MalformedResponse("chunk not followed by CRLF")
                self._chunks.append(bytes(buf[:n]))
                del buf[: n + 2]
                self._chunked_size += n
                self._mode = 2
            elif mode == 4:
                # Trailer fields (rare) end with an empty line, as the head does.
                if buf[:2] == _CRLF:
                    del buf[:2]
                else:
                    end = buf.find(_HEAD_END)
                    if end < 0:
                        if len(buf) > _MAX_HEAD:
                            raise MalformedResponse("trailers too large")
                        return False
                    del buf[: end + 4]
                self.body = b"".join(self._chunks)
                return self._done()
            else:  # until EOF: eof() completes it
                if len(buf) > self._limit:
                    raise BodyTooLarge(f"response body larger than {self._limit} bytes")
                return False

    def eof(self) -> bool:
        """The peer closed: complete for a close-delimited body, else truncated."""
        if self._mode != 5:
            return False
        self.body = bytes(self._buf)
        self._done()
        return True

    def _head(self, head: bytes) -> bool:
        """Parse status line and headers; set the framing. True when there is no body."""
        status_line, _, rest = head.decode("latin-1").partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
            raise MalformedResponse(f"bad status line {status_line[:40]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            return False
        headers = Headers()
        if rest:
            for line in rest.split("\r\n"):
                name, sep, value = line.partition(":")
                # no name, or whitespace around it (RFC 9112 forbids it; obs-fold included)
                if not sep or not name or name[0] in " \t" or name[-1] in " \t":
                    raise MalformedResponse(f"bad header line {line[:40]!r}")
                key = name.lower()
                value = value.strip()
                prev = dict.get(headers, key)
                # a repeated field is one comma-separated list (RFC 9110 5.3)
                dict.__setitem__(headers, key, value if prev is None else f"{prev}, {value}")
        self.status = status
        self.headers = headers
        conn = dict.get(headers, "connection", "").lower()
        self.must_close = "close" in conn or (parts[0] == "HTTP/1.0" and "keep-alive" not in conn)
        if self._head_only or status in (204, 304):
            return True
        te = dict.get(headers, "transfer-encoding")
        if te is not None:
            if te.lower().rsplit(",", 1)[-1].strip() != "chunked":
                raise MalformedResponse(f"unsupported Transfer-Encoding {te!r}")
            self._mode = 2
            return False
        cl = dict.get(headers, "content-length")
        if cl is not None:
            if not (cl.isdigit() and cl.isascii()) or len(cl) > 12:
                raise MalformedResponse(f"bad Content-Length {cl[:20]!r}")
            n = int(cl)
            if n > self._limit:
                raise BodyTooLarge(f"response body larger than {self._limit} bytes (Content-Length {n})")
            if n == 0:
                return True
            self._remaining = n
            self._mode = 1
            return False
        self._mode = 5
        self.must_close = True
        return False

    def _done(self) -> bool:
        if self._buf:
            # Bytes beyond the answer: something else is on this connection. Do not reuse it.
            self.must_close = True
        enc = dict.get(self.headers, "content-encoding")
        if enc is not None and self.body:
            # The compressed body is within the cap; its inflation stops at the cap too.
            dec = BodyDecoder(enc, self._limit)
            dec.feed(self.body)
            self.body = dec.finish()
        return True


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request outstanding."""

    def __init__(self, pool: WirePool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.requests = 0
        self._parser: _Response | None = None
        self._waiter: asyncio.Future[_Response] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            # Nothing was asked: a server talking out of turn (or closing with a message).
            self.abort()
            return
        try:
            done = parser.feed(data)
        except MalformedResponse as exc:
            self._fail(exc)
            return
        if done:
            self._parser = None
            waiter, self._waiter = self._waiter, None
            if parser.must_close:
                self.abort()
            if waiter is not None and not waiter.done():
                waiter.set_result(parser)

    def eof_received(self) -> bool:
        parser = self._parser
        try:
            complete = parser is not None and parser.eof()
        except MalformedResponse as exc:  # a close-delimited body that does not decode
            self._fail(exc)
            return False
        if complete:
            self._parser = None
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(parser)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionLost(f"connection closed ({type(exc).__name__})" if exc else "connection closed by peer"))
        self._pool._discard(self)

    # -- pool side -------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        t = self.transport
        return not self.closed and t is not None and not t.is_closing() and self._parser is None

    def send(self, data: bytes, head_only: bool, loop: asyncio.AbstractEventLoop) -> asyncio.Future[_Response]:
        self._parser = _Response(head_only, self._pool.max_body)
        waiter = self._waiter = loop.create_future()
        self.requests += 1
        self.transport.write(data)  # type: ignore[union-attr]
        return waiter

    def _fail(self, exc: WireError) -> None:
        self._parser = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if not self.closed:
            self.abort()

    def abort(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.abort()


class WirePool:
    """Keep-alive connections to one origin for the order lane.

    Parameters
    ----------
    base_url
        ``http://`` or ``https://`` origin (a path is not allowed).
    size
        Connections opened by :meth:`open` and kept open (topped up in the background
        after the server closes one, recycled after ``keepalive_s`` idle).
    limit
        Most connections at once; a request beyond it waits for a free one, up to
        ``connect_timeout_s``.
    timeout_s
        From the write to the complete answer.
    user_agent, trace
        Sent on every request; optional :class:`WireTrace`.
    max_body
        Largest answer body accepted, on the wire and after decompression
        (:data:`MAX_RESPONSE_BYTES`); a larger one is :class:`BodyTooLarge` and its
        connection is dropped.
    ssl_context
        For ``https``; default ``ssl.create_default_context()`` (system CAs, hostname check)
        offering ALPN ``http/1.1``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        size: int = 2,
        limit: int = 16,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        keepalive_s: float = 30.0,
        user_agent: str = "kimp-fast",
        trace: WireTrace | None = None,
        ssl_context: _ssl.SSLContext | None = None,
        max_body: int = MAX_RESPONSE_BYTES,
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"order lane: expected an http(s) origin, got {base_url!r}")
        if url.path not in ("", "/") or url.query_string:
            raise ValueError(f"order lane: base URL must be an origin without a path, got {base_url!r}")
        if not (isinstance(size, int) and isinstance(limit, int) and 0 <= size <= limit and limit > 0):
            raise ValueError(f"order lane: need 0 <= size <= limit and limit > 0, got size={size!r} limit={limit!r}")
        self.host: str = url.host
        self.port: int = url.port or (443 if url.scheme == "https" else 80)
        self._tls = url.scheme == "https"
        self._ssl = (ssl_context or _default_tls()) if self._tls else None
        default_port = self.port == (443 if self._tls else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not default_port:  # IPv6 literal
            host_header = f"[{self.host}]:{self.port}"
        _check_header("User-Agent", user_agent)
        # Everything but the request line and the per-request headers, encoded once.
        self._common = f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: application/json\r\n"
        if not (isinstance(max_body, int) and max_body > 0):
            raise ValueError(f"order lane: max_body must be a positive integer, got {max_body!r}")
        self.size = size
        self.limit = limit
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.trace = trace
        self._idle: list[_Connection] = []  # most recently used last: the warmest is popped
        self._all: set[_Connection] = set()
        self._connecting = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._open = False
        self._maint: asyncio.Task[None] | None = None
        self._topping_up: asyncio.Task[None] | None = None
        self.opened = 0  # connections ever opened (tests, diagnostics)

    def __repr__(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"WirePool({scheme}://{self.host}:{self.port}, open={len(self._all)}, idle={len(self._idle)})"

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def connections(self) -> int:
        return len(self._all)

    async def open(self) -> None:
        """Open ``size`` connections (TCP + TLS) and start the maintenance task.

        A connection that cannot be opened now is logged and retried in the background
        (and on demand by the next request, which raises :class:`ConnectFailed` if the
        server is still unreachable): like an HTTP session, the lane itself opens
        without the network.
        """
        if self._open:
            return
        self._open = True
        try:
            results = await asyncio.gather(*(self._new_idle() for _ in range(self.size)), return_exceptions=True)
        except BaseException:
            await self.close()
            raise
        failed = [r for r in results if isinstance(r, BaseException)]
        other = [r for r in failed if not isinstance(r, ConnectFailed)]
        if other:
            await self.close()
            raise other[0]
        if failed:
            log.warning(
                "order lane %s:%d: %d of %d connections not opened (%s); retrying in the background",
                self.host, self.port, len(failed), self.size, failed[0],
            )
        interval = min(1.0, max(0.05, self.keepalive_s / 4))
        self._maint = asyncio.get_running_loop().create_task(self._maintain(interval), name="wire-pool")

    async def close(self) -> None:
        self._open = False
        for task in (self._maint, self._topping_up):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._maint = self._topping_up = None
        for w in self._waiters:
            if not w.done():
                w.set_exception(ConnectFailed("order lane closed"))
        self._waiters.clear()
        conns = list(self._all)
        self._idle.clear()
        for c in conns:
            t = c.transport
            if t is not None and not t.is_closing():
                t.close()
        if conns:
            await asyncio.sleep(0)  # let the transports call connection_lost

    # -- requests --------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Headers, bytes]:
        """Send one request; return ``(status, headers, body)`` whatever the status.

        ``target`` is the already-encoded path and query (what was signed).
        """
        data = self._encode(method, target, headers, body)
        conn = self._take()
        if conn is None:
            conn = await self._acquire()
        return await self.finish(self._start(conn, method, target, data))

    def ready(self) -> bool:
        """True when :meth:`begin` would write at once (an idle, usable connection)."""
        for c in self._idle:
            if c.usable:
                return True
        return False

    def begin(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> "_InFlight | None":
        """Write one request *now*, before returning, if an idle connection is at hand
        (None otherwise: nothing was written). :meth:`finish` awaits the answer. This is
        how two orders to two exchanges both reach their sockets before the caller's
        coroutine yields even once."""
        data = self._encode(method, target, headers, body)
        conn = self._take()
        if conn is None:
            return None
        return self._start(conn, method, target, data)

    async def finish(self, flight: "_InFlight") -> tuple[int, Headers, bytes]:
        """The answer to a request that :meth:`begin` (or :meth:`request`) wrote."""
        conn, waiter, handle, method, target = flight
        try:
            resp = await waiter
        except BaseException:
            # Timeout, loss, garbage or a cancelled caller: the answer may still come, so
            # this connection can never carry another request.
            conn.abort()
            raise
        finally:
            handle.cancel()
        if conn.usable:
            self._release(conn)
        trace = self.trace
        if trace is not None:
            trace.response_end(method, target.split("?", 1)[0], resp.status)
        return resp.status, resp.headers, resp.body

    def rehearse(self, method: str, target: str, headers: Mapping[str, str] | None, body: bytes | None) -> bytes:
        """The bytes :meth:`begin` would write, built and returned: nothing is sent, no
        connection is taken, the trace sees nothing."""
        return self._encode(method, target, headers, body, traced=False)

    def _encode(
        self, method: str, target: str, headers: Mapping[str, str] | None, body: bytes | None, traced: bool = True
    ) -> bytes:
        trace = self.trace
        if trace is not None and traced:
            trace.request_start(method, target.split("?", 1)[0])
        parts = [method, " ", target, " HTTP/1.1\r\n", self._common]
        if headers:
            for name, value in headers.items():
                _check_header(name, value)
                parts += (name, ": ", value, "\r\n")
        if body is not None:
            parts += ("Content-Length: ", str(len(body)), "\r\n\r\n")
            return "".join(parts).encode("latin-1") + body
        parts.append("\r\n")
        return "".join(parts).encode("latin-1")

    def _start(self, conn: _Connection, method: str, target: str, data: bytes) -> "_InFlight":
        loop = asyncio.get_running_loop()
        waiter = conn.send(data, method == "HEAD", loop)
        trace = self.trace
        if trace is not None:
            trace.request_written(method, target.split("?", 1)[0])
        handle = loop.call_later(self.timeout_s, _expire, waiter)
        return conn, waiter, handle, method, target

    def _take(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
        return None

    async def _acquire(self) -> _Connection:
        if not self._open:
            raise ConnectFailed("order lane is not open")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout_s
        while True:
            conn = self._take()
            if conn is not None:
                return conn
            if len(self._all) + self._connecting < self.limit:
                return await self._connect(max(deadline - loop.time(), 0.001))
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConnectFailed(f"no free connection within {self.connect_timeout_s}s ({self.limit} busy)")
            w = loop.create_future()
            self._waiters.append(w)
            try:
                await asyncio.wait_for(w, remaining)
            except asyncio.TimeoutError:
                raise ConnectFailed(
                    f"no free connection within {self.connect_timeout_s}s ({self.limit} busy)"
                ) from None
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(w)

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._tls else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectFailed(f"connect to {self.host}:{self.port} timed out after {timeout:.3f}s") from None
        except (OSError, _ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port} ({type(exc).__name__}: {exc})") from None
        finally:
            self._connecting -= 1
        if not self._open:
            conn.abort()
            raise ConnectFailed("order lane closed")
        self.opened += 1
        self._all.add(conn)
        return conn

    async def _new_idle(self) -> None:
        conn = await self._connect(self.connect_timeout_s)
        self._release(conn)

    def _release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        waiters = self._waiters
        self._idle.append(conn)
        while waiters:
            w = waiters.pop(0)
            if not w.done():
                w.set_result(None)
                break

    def _discard(self, conn: _Connection) -> None:
        self._all.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        # A slot is free: a request waiting at the limit may now open a connection.
        while self._waiters:
            w = self._waiters.pop(0)
            if not w.done():
                w.set_result(None)
                break
        if self._open and self._topping_up is None and len(self._all) + self._connecting < self.size:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # pragma: no cover - loop already gone
                return
            self._topping_up = loop.create_task(self._top_up(), name="wire-pool-top-up")

    async def _top_up(self) -> None:
        try:
            while self._open and len(self._all) + self._connecting < self.size:
                await self._new_idle()
        except ConnectFailed as exc:
            log.debug("order lane %s: top-up failed: %s", self.host, exc)
        finally:
            self._topping_up = None

    async def _maintain(self, interval: float) -> None:
        """Recycle connections idle longer than ``keepalive_s`` (servers close idle
        connections on their own schedule; one of ours must never be the one written to
        as it closes) and keep ``size`` open."""
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            stale = [c for c in self._idle if now - c.idle_since > self.keepalive_s]
            for c in stale:
                if len(self._all) + self._connecting < self.limit:
                    # Open the replacement first, so the pool never runs empty.
                    with contextlib.suppress(ConnectFailed):
                        await self._new_idle()
                # A request may have taken it (and given it back) while we connected.
                if c in self._idle and time.monotonic() - c.idle_since > self.keepalive_s:
                    self._idle.remove(c)
                    t = c.transport
                    if t is not None and not t.is_closing():
                        t.close()
            if self._topping_up is None and len(self._all) + self._connecting < self.size:
                await self._top_up()


def _default_tls() -> _ssl.SSLContext:
    """System CAs and hostname check; ALPN says HTTP/1.1 so a server never picks h2."""
    ctx = _ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


#: a written request: connection, answer future, timeout handle, method, target
_InFlight = tuple[_Connection, "asyncio.Future[_Response]", asyncio.TimerHandle, str, str]


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


def _check_header(name: str, value: str) -> None:
    # Header injection: a CR or LF would end the header and start another.
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"order lane: header {name.split(chr(10))[0][:40]!r} contains a forbidden character")
