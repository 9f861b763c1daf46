"""Shared transport of the direct adapters: one keep-alive session, rate limiting, and
the mapping of transport failures onto the error taxonomy.

The one rule that shapes this module: a failure is ``Unavailable`` only when we *know*
nothing reached the exchange (the connection could not be opened, the local rate limiter
refused, the adapter is closed). Anything that may have happened after the first byte was
written — a read timeout, a reset, a truncated or garbled body — is ``OutcomeUnknown``,
because for an order that is the honest answer: look it up by client id.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from ._wire import (
    MAX_RESPONSE_BYTES,
    BodyDecoder,
    BodyTooLarge,
    ConnectFailed,
    ConnectionLost,
    Headers,
    MalformedResponse,
    WirePool,
)
from .errors import OutcomeUnknown, RateLimited, Rejected, ResponseTooLarge, Unavailable

__all__ = [
    "CLIENT_THROTTLE",
    "CONNECTION_LOST",
    "MAX_RESPONSE_BYTES",
    "RESPONSE_TOO_LARGE",
    "TIMEOUT",
    "AdapterOptions",
    "Response",
    "Transport",
    "default_limiter",
    "disable_silent_retry",
    "parse_retry_after",
    "periodic",
]

_VERSION = "0.1.0"
# aiohttp >= 3.10 tells a connect timeout (nothing written) from a read timeout; older
# versions raise ServerTimeoutError for both, which then reads as OutcomeUnknown (safe).
_CONNECT_TIMEOUT: Any = getattr(aiohttp, "ConnectionTimeoutError", ())

#: ``code`` of a ``RateLimited`` raised by our own limiter (nothing was sent)
CLIENT_THROTTLE = "client_throttle"
#: ``code`` of an ``OutcomeUnknown`` after a read timeout (the server may still be working)
TIMEOUT = "timeout"
#: ``code`` of an ``OutcomeUnknown`` after the connection died mid-request; idempotent
#: reads retry this once (a pooled keep-alive connection the server had just closed)
CONNECTION_LOST = "connection_lost"
#: ``code`` of a ``ResponseTooLarge``: the body passed ``max_response_bytes`` (after
#: decompression); reading stopped there and the connection was dropped
RESPONSE_TOO_LARGE = "response_too_large"
#: what the aiohttp session asks for: exactly the encodings :class:`BodyDecoder` bounds
_ACCEPT_ENCODING = "gzip, deflate"
# aiohttp warns when asked to clean up closed TLS transports on Pythons that fixed the leak
# (3.12.8+, 3.13.1+); ask only where it is still needed.
_NEEDS_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)


class AdapterOptions(msgspec.Struct, kw_only=True, frozen=True):
    """Tunables of a direct adapter (the ``**options`` of ``ExchangeFactory.create``).

    Every field has a production-sensible default; unknown names raise ``TypeError``.
    """

    #: whole request, connect to last byte (seconds)
    timeout_s: float = 10.0
    #: TCP/TLS connect, including the wait for a free pooled connection
    connect_timeout_s: float = 3.0
    #: keep-alive connections per host (orders of both legs plus reads run concurrently)
    limit_per_host: int = 16
    #: close pooled connections idle this long (below the exchanges' own idle timeouts,
    #: so we rarely write into a connection the server is closing)
    keepalive_s: float = 30.0
    #: DNS answers are cached this long
    dns_ttl_s: int = 300
    #: the local limiter may delay a request at most this long; beyond it the call raises
    #: ``RateLimited`` without sending anything
    max_rate_wait_s: float = 2.0
    #: reload exchange rules (and Upbit fees / Binance commission) this often; 0 = never
    rules_refresh_s: float = 900.0
    #: every ``keepwarm_s`` send ``prewarm_connections`` concurrent cheap requests so the
    #: pooled connections never idle out (Binance: ``GET /fapi/v1/time``, which also
    #: re-syncs the clock offset; Upbit: ``GET /v1/market/all``); 0 = never (Binance then
    #: syncs its clock only in ``open()`` and on -1021)
    keepwarm_s: float = 20.0
    #: Binance ``recvWindow`` in ms (the exchange recommends <= 5000)
    recv_window_ms: int = 5000
    #: pooled connections opened by ``open()`` (and kept warm by the periodic tasks), so
    #: concurrent calls never pay a TCP/TLS handshake
    prewarm_connections: int = 2
    #: symbols whose rules (and fees) are loaded in ``open()``; others load on first use
    symbols: tuple[str, ...] = ()
    #: Upbit: how long ``place_order``/``cancel_order`` poll for a final state of an
    #: IOC/FOK/market order or a cancel before returning what they have
    final_state_timeout_s: float = 1.0
    #: Upbit JWT algorithm: "HS256" or "HS512"
    jwt_alg: str = "HS256"
    #: share of each bucket kept for ``reserved=True`` (hedge repair / unwind); None = limiter default
    reserved_share: float | None = None
    #: added to every window of the default limiter: the exchange counts by *arrival*,
    #: and a request delayed on its way can land in the next window's first moments
    rate_period_guard_s: float = 0.05
    #: honour HTTP(S)_PROXY environment variables
    trust_env: bool = False
    user_agent: str = f"kimp-fast/{_VERSION}"
    #: ``aiohttp.TraceConfig`` objects for the session (opt-in instrumentation, e.g. the
    #: latency probe's write-to-socket and first-byte marks); none by default
    trace_configs: tuple[Any, ...] = ()
    #: how order placement, order look-ups and cancels travel: "wire" — the order lane, a
    #: minimal HTTP/1.1 client on ``prewarm_connections`` pre-opened keep-alive
    #: connections (``adapters_direct._wire``; a fraction of aiohttp's CPU per request) —
    #: or "aiohttp" — the adapter's session, like every other request
    order_lane: str = "wire"
    #: an ``adapters_direct._wire.WireTrace`` for the order lane (opt-in instrumentation,
    #: the latency probe's marks); none by default
    wire_trace: Any = None
    #: largest response body accepted, counted after decompression, on both transports;
    #: a larger answer is ``ResponseTooLarge`` (an ``OutcomeUnknown``: for an order, look
    #: it up), read and inflated no further than this
    max_response_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s", "keepalive_s", "final_state_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a positive number of seconds, got {v!r}")
        for name in ("max_rate_wait_s", "rules_refresh_s", "keepwarm_s", "rate_period_guard_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a number of seconds >= 0, got {v!r}")
        if not (isinstance(self.limit_per_host, int) and self.limit_per_host > 0):
            raise ValueError(f"limit_per_host: expected a positive integer, got {self.limit_per_host!r}")
        if not (isinstance(self.prewarm_connections, int) and 0 <= self.prewarm_connections <= self.limit_per_host):
            raise ValueError(f"prewarm_connections: expected 0..limit_per_host, got {self.prewarm_connections!r}")
        if not (isinstance(self.recv_window_ms, int) and 0 < self.recv_window_ms <= 60000):
            raise ValueError(f"recv_window_ms: expected 1..60000, got {self.recv_window_ms!r}")
        mrb = self.max_response_bytes
        if isinstance(mrb, bool) or not isinstance(mrb, int) or mrb <= 0:
            raise ValueError(f"max_response_bytes: expected a positive integer, got {mrb!r}")
        if self.jwt_alg not in ("HS256", "HS512"):
            raise ValueError(f"jwt_alg: expected 'HS256' or 'HS512', got {self.jwt_alg!r}")
        if self.order_lane not in ("wire", "aiohttp"):
            raise ValueError(f"order_lane: expected 'wire' or 'aiohttp', got {self.order_lane!r}")
        if self.order_lane == "wire" and self.trust_env:
            # The order lane connects directly; a proxy would be bypassed for orders only.
            raise ValueError("trust_env=True (HTTP proxies) needs order_lane='aiohttp': the order lane connects directly")

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> "AdapterOptions":
        known = set(cls.__struct_fields__)
        unknown = sorted(set(options) - known - {"rate_limiter"})
        if unknown:
            raise TypeError(f"unknown adapter option(s): {', '.join(unknown)}; known: {sorted(known)}")
        kw = {k: v for k, v in options.items() if k != "rate_limiter"}
        if "trace_configs" in kw:
            kw["trace_configs"] = tuple(kw["trace_configs"])
        if "symbols" in kw:
            syms = kw["symbols"]
            kw["symbols"] = (syms,) if isinstance(syms, str) else tuple(syms)
        return cls(**kw)


def default_limiter(exchange: str, options: AdapterOptions) -> Any:
    """The exchange's documented budgets (``kimp_fast.ratelimit``), each window widened by
    ``rate_period_guard_s``."""
    from kimp_fast.ratelimit import BINANCE_BUCKETS, UPBIT_BUCKETS, RateLimiter

    preset = UPBIT_BUCKETS if exchange == "upbit" else BINANCE_BUCKETS
    guard = options.rate_period_guard_s
    kw: dict[str, Any] = {"buckets": {name: (cap, period + guard) for name, (cap, period) in preset.items()}}
    if options.reserved_share is not None:
        kw["reserved_share"] = options.reserved_share
    return RateLimiter(exchange, **kw)


class Response:
    """A completed HTTP exchange: status, headers and the raw body bytes."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def disable_silent_retry(session: aiohttp.ClientSession) -> None:
    """Stop aiohttp (>= 3.10) from resending an idempotent request (GET, DELETE) once, with
    the same headers, when a pooled connection dies under it. The resend carries the same
    Upbit JWT: if the first copy was processed, Upbit answers 401 ``nonce_used``. Retries
    are the adapter's own (re-signed, GETs only). aiohttp has no public switch for this;
    its own test client sets the same attribute."""
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (delta form only), or None when absent/unparseable."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        v = float(raw)
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def periodic(
    interval_s: float,
    fn: Callable[[], Awaitable[None]],
    *,
    name: str,
    log: logging.Logger,
) -> asyncio.Task[None]:
    """Run ``fn`` every ``interval_s`` on the running loop until cancelled.

    A failing run is logged and the loop carries on: stale rules or a stale clock
    offset are better than a dead refresher.
    """

    async def _loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged, retried next period
                log.warning("%s failed: %s", name, exc)

    return asyncio.get_running_loop().create_task(_loop(), name=name)


class Transport:
    """One exchange's HTTP session, throttle and failure classification.

    Parameters
    ----------
    exchange
        "upbit" or "binance" (used in errors and for the limiter's preset).
    base_url
        Scheme and host, no trailing slash: ``https://api.upbit.com``.
    options
        The adapter's :class:`AdapterOptions`.
    limiter
        A ``kimp_fast.ratelimit.RateLimiter`` (shared between adapters if the caller
        passes the same one).
    """

    def __init__(self, exchange: str, base_url: str, options: AdapterOptions, limiter: Any) -> None:
        self.exchange = exchange
        self.base_url = base_url.rstrip("/")
        self.options = options
        self.limiter = limiter
        self._session: aiohttp.ClientSession | None = None
        self._wire: WirePool | None = None
        self._sleep = asyncio.sleep
        self._locks: dict[tuple[str, bool], asyncio.Lock] = {}

    @property
    def is_open(self) -> bool:
        return self._session is not None and not self._session.closed

    async def open(self) -> None:
        if self.is_open:
            return
        o = self.options
        connector = aiohttp.TCPConnector(
            limit=max(o.limit_per_host * 2, 32),
            limit_per_host=o.limit_per_host,
            ttl_dns_cache=o.dns_ttl_s,
            use_dns_cache=True,
            keepalive_timeout=o.keepalive_s,
            enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=o.timeout_s,
                connect=o.connect_timeout_s,
                sock_read=o.timeout_s,
            ),
            # Never an ``Origin`` header: Upbit throttles such requests to 1 per 10 s.
            headers={"User-Agent": o.user_agent, "Accept": "application/json", "Accept-Encoding": _ACCEPT_ENCODING},
            raise_for_status=False,
            # exchangeInfo is large and comes gzip'ed: _read_body inflates it, bounded
            # (aiohttp's own decompression has no output cap)
            auto_decompress=False,
            trust_env=o.trust_env,
            trace_configs=list(o.trace_configs) or None,
        )
        disable_silent_retry(self._session)
        if o.order_lane == "wire":
            pool = WirePool(
                self.base_url,
                size=o.prewarm_connections,
                limit=o.limit_per_host,
                timeout_s=o.timeout_s,
                connect_timeout_s=o.connect_timeout_s,
                keepalive_s=o.keepalive_s,
                user_agent=o.user_agent,
                trace=o.wire_trace,
                max_body=o.max_response_bytes,
            )
            try:
                await pool.open()
            except BaseException:
                await self.close()
                raise
            self._wire = pool

    @property
    def order_lane(self) -> WirePool | None:
        """The open order lane (None with ``order_lane="aiohttp"`` or when closed)."""
        return self._wire

    async def close(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.close()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # -- rate limiting --------------------------------------------------------------------
    async def throttle(self, group: str, weight: int = 1, *, reserved: bool = False) -> None:
        """Wait for the limiter's permission to send one request of ``group``.

        Waiters of one (group, lane) queue first-come first-served, so a burst drains in
        order instead of racing at every window boundary; the reserved lane has its own
        queue and never waits behind normal traffic. ``RateLimited`` (nothing sent) when
        the wait would exceed ``max_rate_wait_s``, e.g. during a 429/418 block.
        """
        limiter = self.limiter
        lock = self._locks.get((group, reserved))
        if lock is None:
            lock = self._locks[(group, reserved)] = asyncio.Lock()
        if not lock.locked():
            delay = limiter.acquire(group, weight, reserved=reserved)
            if delay <= 0:
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_rate_wait_s
        try:
            await _wait_lock(lock, self.options.max_rate_wait_s)
        except asyncio.TimeoutError:
            raise self._throttled(group, deadline - loop.time()) from None
        try:
            while True:
                delay = limiter.acquire(group, weight, reserved=reserved)
                if delay <= 0:
                    return
                if loop.time() + delay > deadline:
                    raise self._throttled(group, delay)
                await self._sleep(delay)
        finally:
            lock.release()

    def _throttled(self, group: str, delay: float) -> RateLimited:
        return RateLimited(
            f"local rate limit for group {group!r}: no slot within "
            f"{self.options.max_rate_wait_s:.3f}s; nothing was sent",
            exchange=self.exchange,
            code=CLIENT_THROTTLE,
            retry_after=max(delay, 0.0),
        )

    def rate_limited(
        self, resp: Response, code: int | str | None, message: str, *, client_id: str | None = None,
        group: str | None = None,
    ) -> RateLimited:
        """Feed a 429/418 into the limiter and build the error to raise.

        A throttling code under another HTTP status (Binance -1003/-1015 with a 400)
        counts as a 429 for the limiter; the error keeps the real status. ``group``: the
        limiter group the exchange scoped the 429 to (a 418 blocks everything).
        """
        retry_after = parse_retry_after(resp.headers)
        banned = resp.status == 418
        delay = self.limiter.on_rate_limited(418 if banned else 429, retry_after, None if banned else group)
        return RateLimited(
            message or ("banned" if banned else "too many requests"),
            exchange=self.exchange,
            code=code,
            status=resp.status,
            retry_after=max(float(delay or 0.0), retry_after or 0.0),
            banned=banned,
            client_id=client_id,
        )

    # -- sending ---------------------------------------------------------------------------
    def url(self, path: str, query: str = "") -> URL:
        """An already-encoded URL: yarl must not re-quote what was signed."""
        return URL(f"{self.base_url}{path}?{query}" if query else f"{self.base_url}{path}", encoded=True)

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        group: str | None = None,
        client_id: str | None = None,
        order: bool = False,
    ) -> Response:
        """Send one request; return the response whatever its status.

        ``order=True`` (placement, look-up and cancel of an order) takes the order lane
        when it is configured. Raises ``Unavailable`` when nothing was written and
        ``OutcomeUnknown`` (with ``client_id``) when the request may have reached the
        exchange but no complete response came back. Rate-limit headers of every
        response feed the limiter.
        """
        if order and self._wire is not None:
            return await self._send_wire(method, path, query, body, headers, group, client_id)
        session = self._session
        if session is None or session.closed:
            raise Unavailable(
                "adapter is not open (use 'async with adapter:')",
                exchange=self.exchange,
                client_id=client_id,
            )
        what = f"{method} {path}"
        try:
            async with session.request(
                method,
                self.url(path, query),
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                status, resp_headers = resp.status, resp.headers
                try:
                    data = await _read_body(resp, self.options.max_response_bytes)
                except MalformedResponse as exc:
                    resp.close()  # drop the connection: the rest of the body is never read
                    raise self._bad_body(what, exc, status, client_id) from None
        except aiohttp.ClientConnectorError as exc:
            # DNS failure, refused, unreachable, TLS handshake: the request was never written.
            raise Unavailable(
                f"{what}: cannot connect ({type(exc).__name__}: {exc.os_error})",
                exchange=self.exchange,
                client_id=client_id,
            ) from None
        except _CONNECT_TIMEOUT:
            raise Unavailable(
                f"{what}: connect timed out after {self.options.connect_timeout_s}s",
                exchange=self.exchange,
                client_id=client_id,
            ) from None
        except aiohttp.InvalidURL as exc:
            raise Unavailable(
                f"{what}: invalid URL ({exc})", exchange=self.exchange, client_id=client_id
            ) from None
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            raise OutcomeUnknown(
                f"{what}: no response within {self.options.timeout_s}s",
                exchange=self.exchange,
                code=TIMEOUT,
                client_id=client_id,
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            # Disconnected / reset / truncated after the request went out.
            raise OutcomeUnknown(
                f"{what}: connection lost before a complete response ({type(exc).__name__})",
                exchange=self.exchange,
                code=CONNECTION_LOST,
                client_id=client_id,
            ) from None
        except aiohttp.ClientError as exc:
            # The server answered something that is not HTTP (bad status line, headers).
            raise OutcomeUnknown(
                f"{what}: malformed response ({type(exc).__name__})",
                exchange=self.exchange,
                client_id=client_id,
            ) from None
        if group is not None:
            self.limiter.update_from_headers(resp_headers, group)
        else:
            self.limiter.update_from_headers(resp_headers)
        return Response(status, resp_headers, data)

    def send_now(
        self,
        method: str,
        path: str,
        build: Callable[[], tuple[str, bytes | None, Mapping[str, str]]],
        *,
        group: str,
        weight: int = 1,
        reserved: bool = False,
        client_id: str | None = None,
    ) -> Awaitable[Response] | None:
        """Send an order-lane request before returning, or do nothing and return None.

        It goes out at once only when nothing would make :meth:`throttle` wait (no queue,
        a slot free) and the lane has an idle connection; then the slot is taken,
        ``build()`` makes ``(query, body, headers)`` — signing happens here, after the
        limiter let the request through — and the request is written. The result is
        awaited for the :meth:`send` response, with the same failure classification.
        None means nothing was consumed or written: use the awaited path instead.
        """
        wire = self._wire
        if wire is None or not wire.ready():
            return None
        lock = self._locks.get((group, reserved))
        if lock is not None and lock.locked():
            return None  # others are queued for this group: no overtaking
        if self.limiter.acquire(group, weight, reserved=reserved) > 0:
            return None
        query, body, headers = build()
        target = f"{path}?{query}" if query else path
        try:
            flight = wire.begin(method, target, headers, body)
        except ValueError as exc:
            return _raise(self._unsendable(method, path, exc, client_id))
        if flight is None:  # pragma: no cover - ready() said otherwise in this same turn
            return self._send_wire(method, path, query, body, headers, group, client_id)
        return self._wire_answer(wire.finish(flight), method, path, group, client_id)

    def rehearse(
        self, method: str, path: str, build: Callable[[], tuple[str, bytes | None, Mapping[str, str]]], *, group: str
    ) -> bytes:
        """:meth:`send_now`'s steps for ``build()`` with nothing taken or sent: the limiter
        is asked for a weight-0 request (which costs nothing), no connection is taken, and
        the bytes are returned instead of written. Empty without an order lane."""
        wire = self._wire
        if wire is not None:
            wire.ready()
        self._locks.get((group, False))
        self.limiter.acquire(group, 0)
        query, body, headers = build()
        if wire is None:
            return b""
        return wire.rehearse(method, f"{path}?{query}" if query else path, headers, body)

    def _bad_body(self, what: str, exc: MalformedResponse, status: int | None, client_id: str | None) -> OutcomeUnknown:
        """An answer whose body is over the cap (``ResponseTooLarge``) or does not decode:
        the request may have been processed, the answer is not believed."""
        if isinstance(exc, BodyTooLarge):
            return ResponseTooLarge(
                f"{what}: {exc} (max_response_bytes)", exchange=self.exchange, status=status,
                code=RESPONSE_TOO_LARGE, client_id=client_id,
            )
        return OutcomeUnknown(f"{what}: malformed response ({exc})", exchange=self.exchange, client_id=client_id)

    def _unsendable(self, method: str, path: str, exc: ValueError, client_id: str | None) -> Rejected:
        # A header or target that cannot go on the wire (CR/LF, non-Latin-1): refused
        # before anything was written.
        return Rejected(
            f"{method} {path}: {exc}; nothing was sent", exchange=self.exchange, code="invalid_request",
            client_id=client_id,
        )

    async def _send_wire(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        group: str | None,
        client_id: str | None,
    ) -> Response:
        """:meth:`send` over the order lane, with the same failure classification."""
        wire = self._wire
        return await self._wire_answer(
            wire.request(method, f"{path}?{query}" if query else path, headers, body),  # type: ignore[union-attr]
            method, path, group, client_id,
        )

    async def _wire_answer(
        self,
        answer: Awaitable[tuple[int, Headers, bytes]],
        method: str,
        path: str,
        group: str | None,
        client_id: str | None,
    ) -> Response:
        try:
            status, resp_headers, data = await answer
        except ConnectFailed as exc:
            raise Unavailable(f"{method} {path}: {exc}", exchange=self.exchange, client_id=client_id) from None
        except ValueError as exc:
            raise self._unsendable(method, path, exc, client_id) from None
        except asyncio.TimeoutError:
            raise OutcomeUnknown(
                f"{method} {path}: no response within {self.options.timeout_s}s",
                exchange=self.exchange, code=TIMEOUT, client_id=client_id,
            ) from None
        except ConnectionLost:
            raise OutcomeUnknown(
                f"{method} {path}: connection lost before a complete response",
                exchange=self.exchange, code=CONNECTION_LOST, client_id=client_id,
            ) from None
        except MalformedResponse as exc:
            raise self._bad_body(f"{method} {path}", exc, None, client_id) from None
        if group is not None:
            self.limiter.update_from_headers(resp_headers, group)
        else:
            self.limiter.update_from_headers(resp_headers)
        return Response(status, resp_headers, data)


async def _read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of an aiohttp response (read with ``auto_decompress=False``), decoded by
    :class:`BodyDecoder`: a ``Content-Length`` beyond ``limit`` is refused unread, the rest
    is read and inflated piece by piece, stopping at ``limit``."""
    length = resp.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"response body larger than {limit} bytes (Content-Length {length})")
    dec = BodyDecoder(resp.headers.get("Content-Encoding"), limit)
    content = resp.content
    while True:
        chunk = await content.readany()
        if not chunk:
            return dec.finish()
        dec.feed(chunk)


async def _raise(exc: BaseException) -> Any:
    """An awaitable that raises ``exc``: a synchronous start reports failure the way the
    awaited path would, when the caller awaits."""
    raise exc


async def _wait_lock(lock: asyncio.Lock, timeout: float) -> None:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            await lock.acquire()
    else:  # pragma: no cover - 3.10
        await asyncio.wait_for(lock.acquire(), timeout)


def now_ms() -> int:
    """Local wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000
