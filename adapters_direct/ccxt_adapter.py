"""ccxt-based twins of the direct adapters: ``CcxtUpbit`` and ``CcxtBinanceUsdm``.

They implement the same interface (:mod:`adapters_direct.base`) with the same normalized
results and the same error classes as :class:`~adapters_direct.upbit.UpbitSpot` and
:class:`~adapters_direct.binance.BinanceUsdm`, on ``ccxt.async_support``, so an engine can
run on either and users can compare them (``ExchangeFactory.create(...,
AdapterType.CCXT, ...)``). ccxt is the optional extra ``kimp-fast[ccxt]``: this module
imports without it, and constructing an adapter raises a clear :class:`ImportError`.

What ccxt does here and what it does not
----------------------------------------
* **ccxt does:** the HTTP session (one ccxt exchange object per adapter, created in
  ``open()`` and closed in ``close()``), request building, signing (Upbit JWT with a fresh
  nonce, Binance HMAC with ccxt's ``timeDifference``), JSON parsing and its exception
  classes. Orders go through ccxt's unified ``create_order`` (``clientOrderId`` becomes
  Upbit ``identifier`` / Binance ``newClientOrderId``; ccxt 4.5.90 supports both), Binance
  look-ups and cancels through ``fetch_order`` / ``cancel_order`` with
  ``origClientOrderId``; Upbit look-ups and cancels by ``identifier`` need ccxt's implicit
  API (``privateGetOrder`` / ``privateDeleteOrder``): its unified calls only take a uuid.
* **Our code does:** rate limiting (``kimp_fast.ratelimit.RateLimiter``, same groups,
  weights and reserved lane as the direct adapters; ccxt's own limiter is off), rounding
  (ccxt's Upbit precision is hard-coded to 1e-8, so KRW ticks come from
  ``/v1/orderbook/instruments``, or from ``kimp_fast.orders.upbit_tick_size`` when that
  cannot be read, exactly as the direct adapter does) and the normalization of results.
* **Normalization reads ccxt's** ``info`` **(the exchange's raw object), not ccxt's unified
  fields.** Those are floats (``filled``, ``average``, ``cost``) and merge statuses that
  matter here (Binance ``PARTIALLY_FILLED`` → ``open``; an Upbit IOC that died → ``canceled``
  rather than ``expired``). ``info`` is converted to the direct adapter's Structs and
  normalized by the direct adapter's own functions, so both adapter types give equal
  ``OrderResult``/``SymbolRules`` for the same exchange state. Upbit's order book sends
  JSON numbers, which ccxt parses to floats; they are converted back through their
  shortest repr, which is exact for any price or size with at most 15 significant digits.

Error mapping (same classes as the direct adapters)
---------------------------------------------------
A ccxt exception's *class* alone is not safe to trade on: ccxt maps Binance -1000 and
-1006 to ``OperationFailed``, a 503 whose body carries an unlisted code to
``ExchangeError``, -1021 to ``InvalidNonce`` (a ``NetworkError``), an HTTP 400 without a
JSON body to ``ExchangeNotAvailable``, and a Binance -2015 after an earlier success to
``DDoSProtection``. So every ccxt call records the HTTP status, headers and body it got
(a hook on ccxt's ``on_rest_response``, per task), and :func:`classify_ccxt_error` decides:

* **a response arrived** — by HTTP status and the exchange's code/name first, with the
  same tables as the direct adapters (429/418 → ``RateLimited``; 5xx/408, Binance
  -1000/-1001/-1006/-1007 → ``OutcomeUnknown``; -1008 → ``Unavailable``; -1021/-5028 →
  ``Rejected`` after a clock re-sync; 403 without an exchange body → ``Unavailable``; other
  4xx → ``Rejected``), and ccxt's class only makes a 4xx more specific:
  ``InsufficientFunds`` → ``InsufficientFunds``, ``AuthenticationError``/``PermissionDenied``
  → ``AuthError``, ``OrderNotFound`` → ``OrderNotFound``. A 2xx that ccxt could not parse,
  or that does not decode into (or fails the validation of) the expected Struct, is
  ``InvalidResponse`` (an ``OutcomeUnknown``).
* **no response** — ccxt wraps the aiohttp exception (``raise X from e``), and the cause
  tells what happened: ``ClientConnectorError``/DNS/connect timeout → ``Unavailable``
  (nothing was written), a read timeout → ``OutcomeUnknown(code="timeout")``, a reset or
  disconnect after writing → ``OutcomeUnknown(code="connection_lost")``. ccxt's own
  classes would not tell these apart: both a refused connection and a reset after the
  order went out are ``ExchangeNotAvailable``. A ccxt error raised *before* sending
  (``BadSymbol``, ``InvalidOrder``, ``ArgumentsRequired``…) is ``Rejected``
  (``unknown_symbol`` / ``invalid_request``).

What ccxt cannot do like the direct adapter
-------------------------------------------
* Separate connect and read timeouts: ccxt uses ``timeout_s`` for both (``connect_timeout_s``
  is ignored), so a dead host costs the whole ``timeout_s`` before ``Unavailable``.
* Pool size, keep-alive and DNS cache tuning, ``trust_env``, the user agent and the HS512
  JWT: ccxt's session is stock (``connect_timeout_s``, ``limit_per_host``, ``keepalive_s``,
  ``dns_ttl_s``, ``trust_env``, ``user_agent`` and any other session option are accepted
  for option compatibility and ignored; ``jwt_alg`` must be HS256).
* A Binance clock offset corrected by RTT/2 from the best of several samples: ccxt's
  ``load_time_difference`` takes one sample, uncorrected.
* Cheap orders: ccxt's request building, signing and ``parse_order`` cost about 300 µs of
  client CPU per order on top of aiohttp, the direct adapter's about 70 µs
  (docs/PERFORMANCE.md, "Adapters: direct vs ccxt").

Signing still happens after our limiter has released a request (ccxt signs inside the call
we make once the throttle returns, and its own throttle is off), so a queued request never
carries a stale Upbit nonce or Binance timestamp.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import socket
from decimal import Decimal
from typing import Any, Awaitable, Callable, NamedTuple
from urllib.parse import urlsplit

import msgspec

from kimp_fast.models import (
    Balance,
    BookLevel,
    FundingRate,
    OrderBook,
    OrderRequest,
    OrderResult,
    Position,
    SymbolRules,
)
from kimp_fast.orders import format_decimal, quantize_down, quantize_price, upbit_tick_size

from . import binance as _bn
from . import schemas as S
from . import upbit as _up
from ._http import (
    CONNECTION_LOST,
    TIMEOUT,
    AdapterOptions,
    Transport,
    default_limiter,
    disable_silent_retry,
    parse_retry_after,
    periodic,
)
from .base import PerpAdapter, SpotAdapter
from .client_ids import is_valid_binance_client_id, is_valid_upbit_identifier
from .errors import (
    AdapterError,
    AuthError,
    InsufficientFunds,
    InvalidResponse,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)

__all__ = ["CcxtBinanceUsdm", "CcxtUpbit", "HttpSeen", "classify_ccxt_error", "import_ccxt"]

log = logging.getLogger("adapters_direct.ccxt")

_ZERO = Decimal(0)
_UPBIT_QTY_STEP = Decimal("0.00000001")
_KRW_STEP = Decimal(1)

_UPBIT_AUTH_NAMES = _up._AUTH_NAMES  # one list of Upbit auth error names for both adapters
_BN_INSUFFICIENT = frozenset({-2018, -2019})
_BN_AUTH = frozenset({-1022, -2014, -2015})
_BN_NOT_FOUND = frozenset({-2013, -2011})
_BN_UNKNOWN = frozenset({-1000, -1001, -1006, -1007})
_BN_THROTTLED = frozenset({-1003, -1015})
_BN_CLOCK = frozenset({-1021, -5028})


def import_ccxt() -> Any:
    """``ccxt.async_support``, or an ImportError that says how to install it."""
    try:
        import ccxt.async_support as ccxt_async
    except ImportError as exc:
        raise ImportError(
            "the CCXT adapter needs the optional extra: pip install 'kimp-fast[ccxt]'"
        ) from exc
    return ccxt_async


# --------------------------------------------------------------------------------------
# What the current ccxt call saw on the wire (per task: contextvars follow awaits, and
# asyncio.gather gives each concurrent call its own copy).
# --------------------------------------------------------------------------------------
class HttpSeen(NamedTuple):
    """The last HTTP response ccxt received during one adapter call."""

    status: int
    headers: dict[str, str]
    body: str


#: a JSON value (string or number) with a decimal exponent of three or more digits: no
#: amount is that large or small, and ccxt's ``Precise`` expands ``"1e999999999"`` into a
#: billion-digit integer (the event loop stalls for minutes), so such an answer is refused
#: before ccxt parses it
_HUGE_EXPONENT = re.compile(
    r'(?:"(?P<key>[A-Za-z_]\w*)"\s*:|[\[,])\s*"?\s*[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d{3,}\s*"?\s*[,}\]]'
)


#: prefilter (under a microsecond per order answer; the regex alone costs ~40 µs): digits
#: become "0", "E" becomes "e" and signs go, so every candidate reads "0e000"
_EXP_TABLE = bytes.maketrans(b"123456789E", b"000000000e")


def _refuse_huge_exponents(exchange: str, status: int, body: Any) -> None:
    if isinstance(body, str) and b"0e000" in body.encode("utf-8", "replace").translate(_EXP_TABLE, b"+-"):
        m = _HUGE_EXPONENT.search(body)
        if m is not None:
            field = m.group("key")
            raise InvalidResponse(
                f"invalid answer: {field or 'a value'} has an out-of-range exponent", exchange=exchange,
                status=status, code="invalid_response", field=field,
            )


_HTTP: contextvars.ContextVar[HttpSeen | None] = contextvars.ContextVar("kimp_ccxt_http", default=None)
_GROUP: contextvars.ContextVar[str | None] = contextvars.ContextVar("kimp_ccxt_group", default=None)


def _upbit_name(body: str) -> tuple[str | None, str]:
    try:
        err = S.decode_upbit_error(body.encode()).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, ""
    return (None if err.name is None else str(err.name)), err.message or ""


def _binance_code(body: str) -> tuple[int | None, str]:
    try:
        err = S.decode_bn_error(body.encode())
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, ""
    return err.code, err.msg


def _transport_cause(exc: BaseException) -> BaseException | None:
    """The aiohttp / socket / timeout exception ccxt wrapped, if any."""
    import aiohttp

    seen: set[int] = set()
    cur: BaseException | None = exc.__cause__
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (aiohttp.ClientError, socket.gaierror, asyncio.TimeoutError, OSError)):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _classify_transport(cause: BaseException, kw: dict[str, Any]) -> AdapterError:
    import aiohttp

    # Order matters: ClientConnectorError is a ClientOSError, ConnectionTimeoutError a
    # ServerTimeoutError, and both are connection errors.
    if isinstance(cause, (aiohttp.ClientConnectorError, socket.gaierror)):
        return Unavailable(f"cannot connect ({type(cause).__name__}); nothing was sent", **kw)
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return Unavailable("connect timed out; nothing was sent", **kw)
    if isinstance(cause, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return OutcomeUnknown("no response before the timeout", code=TIMEOUT, **kw)
    if isinstance(cause, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)):
        return OutcomeUnknown(
            f"connection lost before a complete response ({type(cause).__name__})", code=CONNECTION_LOST, **kw
        )
    return OutcomeUnknown(f"malformed response ({type(cause).__name__})", **kw)


def classify_ccxt_error(
    exchange: str,
    exc: BaseException,
    http: HttpSeen | None,
    *,
    client_id: str | None = None,
    limiter: Any = None,
) -> AdapterError | None:
    """Map an exception raised inside a ccxt call to the error taxonomy.

    Parameters
    ----------
    exchange
        "upbit" or "binance".
    exc
        What the ccxt call raised (a ccxt error, or e.g. a TypeError from parsing garbage).
    http
        The last response of that call (``None`` when none arrived).
    limiter
        When given, a 429/418 is fed into it (``on_rate_limited``) like the direct
        adapters do.

    Returns
    -------
    AdapterError or None
        ``None`` means "not an exchange or transport failure" (a bug): re-raise ``exc``.
    """
    if isinstance(exc, InvalidResponse):  # refused by our own check of the answer
        if exc.client_id is None:
            exc.client_id = client_id
        return exc
    ccxt = import_ccxt()
    kw: dict[str, Any] = {"exchange": exchange, "client_id": client_id}
    if isinstance(exc, ccxt.ExchangeClosedByUser):
        return Unavailable("adapter is not open (use 'async with adapter:')", **kw)
    if http is None:
        cause = _transport_cause(exc)
        if cause is not None:
            return _classify_transport(cause, kw)
        if isinstance(exc, ccxt.NetworkError):  # no response, no known cause: be careful
            return OutcomeUnknown(f"{type(exc).__name__} without a response", **kw)
        if isinstance(exc, ccxt.BadSymbol):
            return Rejected(f"unknown symbol ({exc})", code="unknown_symbol", **kw)
        if isinstance(exc, ccxt.BaseError):  # raised by ccxt before anything was sent
            return Rejected(f"invalid request ({type(exc).__name__}: {exc})", code="invalid_request", **kw)
        return None

    status = http.status
    kw["status"] = status
    if exchange == "upbit":
        code, text = _upbit_name(http.body)
    else:
        code, text = _binance_code(http.body)
    text = text or f"HTTP {status}"

    throttled = status in (429, 418) or (exchange == "binance" and code in _BN_THROTTLED)
    if throttled:
        st = status if status in (429, 418) else 429
        retry_after = parse_retry_after(http.headers)
        delay = limiter.on_rate_limited(st, retry_after) if limiter is not None else retry_after
        return RateLimited(
            text, retry_after=max(float(delay or 0.0), retry_after or 0.0), banned=st == 418, code=code, **kw
        )
    if exchange == "binance" and code == -1008:
        return Unavailable(f"overloaded, not executed: {text}", code=code, **kw)
    if status >= 500 or status == 408 or (exchange == "binance" and code in _BN_UNKNOWN):
        return OutcomeUnknown(f"execution status unknown: {text}", code=code, **kw)
    if 200 <= status < 300:
        # ccxt choked on a success body (garbage, truncated, a number it cannot parse):
        # the request was processed, the answer is not believed.
        return InvalidResponse(
            f"unparseable {status} response ({type(exc).__name__})", code="invalid_response", **kw
        )
    if exchange == "upbit":
        insufficient = isinstance(code, str) and code.startswith("insufficient_funds")
        auth = status == 401 or code in _UPBIT_AUTH_NAMES
        not_found = status == 404
    else:
        insufficient = code in _BN_INSUFFICIENT
        auth = code in _BN_AUTH or status == 401
        not_found = code in _BN_NOT_FOUND
    if insufficient or isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(text, code=code, **kw)
    if exchange == "binance" and code in _BN_CLOCK:
        return Rejected(text, code=code, **kw)
    if status == 403 and code is None:
        return Unavailable(f"request blocked (HTTP 403 without an {exchange} error body)", **kw)
    if auth or isinstance(exc, ccxt.AuthenticationError):  # PermissionDenied is one
        return AuthError(text, code=code if code is not None else "unauthorized", **kw)
    if not_found or isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text, code=code if code is not None else "order_not_found", **kw)
    if 400 <= status < 500:
        return Rejected(text, code=code if code is not None else f"http_{status}", **kw)
    return OutcomeUnknown(f"unexpected response: {text}", code=code, **kw)


# --------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------
def _point_at(ex: Any, base_url: str) -> None:
    """Replace the scheme and host of every ccxt API URL, keeping each one's path."""
    base = base_url.rstrip("/")
    for key, url in list(ex.urls["api"].items()):
        if isinstance(url, str):
            ex.urls["api"][key] = base + urlsplit(url.replace("{hostname}", "x")).path


def _linear_errors(ex: Any) -> None:
    """Make /fapi/ URLs use ccxt's USDT-M error table whatever the host (CCXT_NOTES):
    ccxt picks it by the production hostname only."""
    original = ex.get_exceptions_by_url

    def by_url(url: str, exact_or_broad: str) -> Any:
        if url and "/fapi/" in url:
            return ex.safe_dict(ex.safe_dict(ex.exceptions, "linear", {}), exact_or_broad, {})
        return original(url, exact_or_broad)

    ex.get_exceptions_by_url = by_url


def _plain(d: Decimal) -> str:
    return format_decimal(d)


def _convert(raw: Any, typ: type, exchange: str, client_id: str | None = None) -> Any:
    """ccxt's parsed JSON (``info``) → the direct adapter's Struct; floats (Upbit's JSON
    numbers) go through their shortest repr. A body that does not fit or fails the
    Structs' validation: ``InvalidResponse`` (an OutcomeUnknown)."""
    try:
        return msgspec.convert(raw, typ, strict=False)
    except (msgspec.ValidationError, TypeError) as exc:
        # The same Structs, so the same validation as the direct adapters (schemas.py).
        raise S.invalid_response(exc, exchange=exchange, client_id=client_id) from None


class _CcxtAdapter:
    """Lifecycle, throttling and error mapping shared by both ccxt adapters."""

    name = ""
    adapter_type = "ccxt"
    _ccxt_id = ""
    _default_url = ""

    def __init__(self, *, api_key: str, secret_key: str, base_url: str | None = None, **options: Any) -> None:
        self._ccxt = import_ccxt()
        opts = AdapterOptions.from_kwargs(options)
        if opts.jwt_alg != "HS256":
            raise ValueError("jwt_alg: ccxt signs Upbit requests with HS256 only")
        limiter = options.get("rate_limiter")
        if limiter is None:
            limiter = default_limiter(self.name, opts)
        self.options = opts
        self._base_url = (base_url or self._default_url).rstrip("/")
        self._custom_url = base_url is not None
        # Only Transport's throttle (FIFO per group and lane, reserved lane, bounded wait)
        # and its 429/418 bookkeeping are used; ccxt owns the HTTP session.
        self._t = Transport(self.name, self._base_url, opts, limiter)
        self._credentials = (api_key, secret_key)
        self.ex: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        state = "open" if self.ex is not None else "closed"
        return f"{type(self).__name__}(base_url={self._base_url!r}, {state})"

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def rate_limiter(self) -> Any:
        return self._t.limiter

    # -- lifecycle ---------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        api_key, secret = self._credentials
        return {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": False,  # our RateLimiter gates every call
            "timeout": int(self.options.timeout_s * 1000),
        }

    def _make_exchange(self) -> Any:
        ex = getattr(self._ccxt, self._ccxt_id)(self._config())
        if self._custom_url:
            _point_at(ex, self._base_url)
        if self._base_url.startswith("http://"):
            # ccxt sleeps 250 ms in close() so TLS transports can finish closing; plain
            # HTTP has none.
            ex.timeout_on_exit = 0
        limiter = self._t.limiter
        original = ex.on_rest_response

        def on_rest_response(code, reason, url, method, headers, body, request_headers, request_body):  # noqa: ANN001, ANN202
            _HTTP.set(HttpSeen(code, headers, body))
            group = _GROUP.get()
            if group is not None:
                limiter.update_from_headers(headers, group)
            else:
                limiter.update_from_headers(headers)
            if 200 <= code < 300:  # error bodies are classified by their code, not parsed by Precise
                _refuse_huge_exponents(self.name, code, body)
            return original(code, reason, url, method, headers, body, request_headers, request_body)

        ex.on_rest_response = on_rest_response
        ex.open()  # creates ccxt's session now (needs the running loop), so that:
        disable_silent_retry(ex.session)
        return ex

    async def open(self) -> None:
        """Create the ccxt exchange object, warm its session, load markets and rules."""
        if self.ex is not None:
            return
        self.ex = self._make_exchange()
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        if self.options.rules_refresh_s > 0:
            self._tasks.append(
                periodic(self.options.rules_refresh_s, self.refresh_rules, name=f"{self.name}-ccxt-rules", log=log)
            )
        if self.options.keepwarm_s > 0:
            self._tasks.append(
                periodic(self.options.keepwarm_s, self._keepwarm, name=f"{self.name}-ccxt-keepwarm", log=log)
            )

    async def close(self) -> None:
        """Stop the timers and close the ccxt exchange (and its session); idempotent."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        ex, self.ex = self.ex, None
        if ex is not None:
            await ex.close()

    async def _start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def _keepwarm(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- calls -------------------------------------------------------------------------
    def _exchange(self, client_id: str | None = None) -> Any:
        ex = self.ex
        if ex is None:
            raise Unavailable("adapter is not open (use 'async with adapter:')", exchange=self.name, client_id=client_id)
        return ex

    async def _call(
        self,
        group: str,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        weight: int = 1,
        reserved: bool = False,
        client_id: str | None = None,
        read: bool = False,
    ) -> Any:
        """Throttle, then run one ccxt call; map whatever it raises.

        ``read=True`` (idempotent): retried once after a dead pooled connection, and once
        after a Binance clock re-sync. Orders are never retried.
        """
        retries = 1 if read else 0
        clock_retry = read
        while True:
            await self._t.throttle(group, weight, reserved=reserved)
            _GROUP.set(group)
            _HTTP.set(None)
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below, bugs re-raised
                err = classify_ccxt_error(self.name, exc, _HTTP.get(), client_id=client_id, limiter=self._t.limiter)
                if err is None:
                    raise
            finally:
                _GROUP.set(None)
            if isinstance(err, OutcomeUnknown) and err.code == CONNECTION_LOST and retries > 0:
                retries -= 1
                continue
            if self.name == "binance" and err.code in _BN_CLOCK:
                await self._resync_clock(err)
                if clock_retry:
                    clock_retry = False
                    continue
            raise err

    async def _resync_clock(self, err: AdapterError) -> None:  # Binance only
        pass


def _result_or_unknown(order: Any, exchange: str, client_id: str) -> Any:
    if not isinstance(order, dict) or not isinstance(order.get("info"), dict):
        raise InvalidResponse(
            "unparseable order response", exchange=exchange, client_id=client_id, code="invalid_response"
        )
    return order["info"]


# --------------------------------------------------------------------------------------
# Upbit
# --------------------------------------------------------------------------------------
class CcxtUpbit(_CcxtAdapter, SpotAdapter):
    """Upbit KRW spot on ``ccxt.async_support.upbit``; same behaviour as
    :class:`~adapters_direct.upbit.UpbitSpot` (see that class for what a caller must know:
    ``identifier`` is single-use forever, market buys are sized in KRW, an immediate order
    is polled until final for at most ``final_state_timeout_s``).

    Parameters
    ----------
    api_key, secret_key
        Upbit access key and secret key.
    base_url
        None for ``https://api.upbit.com``; the simulator's URL in tests.
    **options
        The direct adapter's options (:class:`adapters_direct._http.AdapterOptions`); the
        transport-tuning ones ccxt cannot honour are ignored (see the module docstring).
    """

    name = "upbit"
    _ccxt_id = "upbit"
    _default_url = _up.UPBIT_URL

    def __init__(self, *, api_key: str, secret_key: str, base_url: str | None = None, **options: Any) -> None:
        super().__init__(api_key=api_key, secret_key=secret_key, base_url=base_url, **options)
        self._rules: dict[str, SymbolRules] = {}
        self._symbols: list[str] = list(dict.fromkeys(self.options.symbols))
        self._fallback_logged: set[str] = set()

    async def _start(self) -> None:
        ex = self.ex
        await self._call("market", ex.load_markets, read=True)
        await self._keepwarm()
        await self.refresh_rules()

    async def _keepwarm(self) -> None:
        ex = self._exchange()
        await asyncio.gather(
            *(
                self._call("market", ex.publicGetMarketAll, {"isDetails": "false"}, read=True)
                for _ in range(self.options.prewarm_connections)
            )
        )

    async def _unified(self, symbol: str) -> str:
        ex = self._exchange()
        markets = ex.markets_by_id.get(symbol) if ex.markets_by_id else None
        if not markets:
            await self._call("market", ex.load_markets, True, read=True)
            markets = ex.markets_by_id.get(symbol)
            if not markets:
                raise Rejected(f"unknown symbol {symbol!r}", exchange="upbit", code="unknown_symbol")
        return markets[0]["symbol"]

    # -- rules -----------------------------------------------------------------------------
    def rules(self, symbol: str) -> SymbolRules:
        try:
            return self._rules[symbol]
        except KeyError:
            raise KeyError(
                f"no Upbit rules loaded for {symbol!r}; pass symbols=[...] or await load_rules([...])"
            ) from None

    def tick_for(self, symbol: str, price: Decimal) -> Decimal:
        """``/v1/orderbook/instruments`` tick, or the KRW tick table (logged) when it could
        not be read; ccxt's own Upbit precision (1e-8 for every market) is not used."""
        r = self._rules.get(symbol)
        if r is not None and r.tick_size is not None:
            return r.tick_size
        if symbol not in self._fallback_logged:
            self._fallback_logged.add(symbol)
            log.warning("upbit %s: no instruments tick, using the KRW tick table", symbol)
        return upbit_tick_size(price)

    async def load_rules(self, symbols: list[str] | tuple[str, ...]) -> None:
        """Add ``symbols`` to the refreshed set and load their rules now."""
        for s in symbols:
            if s not in self._symbols:
                self._symbols.append(s)
        await self._load(list(symbols))

    async def refresh_rules(self) -> None:
        if self._symbols:
            await self._load(list(self._symbols))

    async def _load(self, symbols: list[str]) -> None:
        ex = self._exchange()
        ticks_task = asyncio.ensure_future(self._instrument_ticks(symbols))
        try:
            chances = await asyncio.gather(
                *(self._call("default", ex.privateGetOrdersChance, {"market": s}, read=True) for s in symbols)
            )
        finally:
            ticks = await ticks_task
        for symbol, raw in zip(symbols, chances):
            chance: S.UpbitChance = _convert(raw, S.UpbitChance, "upbit")
            quote, _, base = symbol.partition("-")
            prev = self._rules.get(symbol)
            m = chance.market
            mins = [x for x in (m.bid.min_total, m.ask.min_total) if x is not None]
            self._rules[symbol] = SymbolRules(
                exchange="upbit",
                symbol=symbol,
                base_asset=base,
                quote_asset=quote,
                qty_step=_UPBIT_QTY_STEP,
                tick_size=ticks.get(symbol, prev.tick_size if prev is not None else None),
                min_notional=max(mins) if mins else _ZERO,
                max_notional=m.max_total,
                maker_fee=max(
                    chance.maker_bid_fee if chance.maker_bid_fee is not None else chance.bid_fee,
                    chance.maker_ask_fee if chance.maker_ask_fee is not None else chance.ask_fee,
                ),
                taker_fee=max(chance.bid_fee, chance.ask_fee),
            )

    async def _instrument_ticks(self, symbols: list[str]) -> dict[str, Decimal]:
        ex = self._exchange()
        try:
            raw = await self._call(
                "orderbook", ex.publicGetOrderbookInstruments, {"markets": ",".join(symbols)}, read=True
            )
            rows = _convert(raw, list[S.UpbitInstrument], "upbit")
        except AdapterError as exc:
            log.warning("upbit instruments unavailable (%s): falling back to the KRW tick table", exc)
            return {}
        return {r.market: r.tick_size for r in rows}

    async def _rules_for(self, symbol: str) -> SymbolRules:
        r = self._rules.get(symbol)
        if r is None:
            await self.load_rules([symbol])
            r = self._rules[symbol]
        return r

    # -- orders ----------------------------------------------------------------------------
    def _ccxt_order(self, req: OrderRequest, rules: SymbolRules) -> tuple[str, str | None, str | None, dict[str, Any]]:
        """(ccxt type, amount, price, params) with our rounding already applied, so ccxt's
        1e-8 precision changes nothing."""
        cid = req.client_id
        params: dict[str, Any] = {"clientOrderId": cid}
        try:
            if req.type == "limit":
                assert req.price is not None and req.quantity is not None
                price = quantize_price(req.price, self.tick_for(req.symbol, req.price), "down" if req.side == "buy" else "up")
                qty = quantize_down(req.quantity, rules.qty_step)
                if price <= 0 or qty <= 0:
                    raise ValueError("price and volume must be positive after rounding")
                if req.time_in_force in ("ioc", "fok"):
                    params["timeInForce"] = req.time_in_force
                return "limit", _plain(qty), _plain(price), params
            if req.side == "buy":
                if req.quote_amount is None:
                    raise Rejected(
                        "an Upbit market buy is sized in KRW: pass quote_amount, not quantity",
                        exchange="upbit",
                        code="unsupported_order",
                        client_id=cid,
                    )
                cost = quantize_down(req.quote_amount, _KRW_STEP) if rules.quote_asset == "KRW" else req.quote_amount
                if cost <= 0:
                    raise ValueError("quote_amount must be positive after rounding")
                params["cost"] = _plain(cost)
                return "market", None, None, params
            assert req.quantity is not None
            qty = quantize_down(req.quantity, rules.qty_step)
            if qty <= 0:
                raise ValueError("volume must be positive after rounding")
            return "market", _plain(qty), None, params
        except (ValueError, TypeError) as exc:
            raise Rejected(f"invalid order: {exc}", exchange="upbit", code="invalid_request", client_id=cid) from None

    async def place_order(self, req: OrderRequest, *, reserved: bool = False) -> OrderResult:
        """``create_order`` (``POST /v1/orders``, group ``order``); never retried. Same
        mapping, rounding, local rejections and final-state poll as
        :meth:`adapters_direct.upbit.UpbitSpot.place_order`."""
        cid = req.client_id
        if not is_valid_upbit_identifier(cid):
            raise Rejected(
                f"client_id {cid!r} is not a valid Upbit identifier ([A-Za-z0-9_-], 1..64)",
                exchange="upbit",
                code="invalid_client_id",
                client_id=cid if isinstance(cid, str) else None,
            )
        ex = self._exchange(cid)
        rules = await self._rules_for(req.symbol)
        symbol = await self._unified(req.symbol)
        kind, amount, price, params = self._ccxt_order(req, rules)
        side = "buy" if req.side == "buy" else "sell"
        created = await self._call(
            "order", ex.create_order, symbol, kind, side, amount, price, params, reserved=reserved, client_id=cid
        )
        order: S.UpbitOrder = _convert(_result_or_unknown(created, "upbit", cid), S.UpbitOrder, "upbit", cid)
        if _up._needs_follow_up(order):
            order = await self._follow_up(order, reserved=reserved)
        return _up.order_result(order, cid)

    async def _get(self, key: str, value: str, *, reserved: bool, client_id: str | None) -> S.UpbitOrder:
        ex = self._exchange(client_id)
        raw = await self._call(
            "default", ex.privateGetOrder, {key: value}, reserved=reserved, client_id=client_id, read=True
        )
        return _convert(raw, S.UpbitOrder, "upbit", client_id)

    async def _poll(self, order: S.UpbitOrder, done: Callable[[S.UpbitOrder], bool], *, reserved: bool, client_id: str | None) -> S.UpbitOrder:
        """Re-read the order by uuid until ``done`` or ``final_state_timeout_s``; a failed
        read ends the poll quietly (the caller gets the last state seen)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.final_state_timeout_s
        for delay in (0.0,) + _up._POLL_DELAYS:
            if delay:
                if loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
            try:
                order = await self._get("uuid", order.uuid, reserved=reserved, client_id=client_id)
            except AdapterError as exc:
                log.info("upbit order %s: follow-up read failed (%s); returning last state", order.uuid, exc)
                break
            if done(order):
                break
        return order

    async def _follow_up(self, order: S.UpbitOrder, *, reserved: bool) -> S.UpbitOrder:
        return await self._poll(
            order, lambda o: not _up._needs_follow_up(o), reserved=reserved, client_id=order.identifier
        )

    def _check_lookup_id(self, client_id: str) -> None:
        if not is_valid_upbit_identifier(client_id):
            raise Rejected(
                f"client_id {client_id!r} is not a valid Upbit identifier", exchange="upbit", code="invalid_client_id"
            )

    async def get_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``privateGetOrder({'identifier': ...})`` (ccxt's ``fetch_order`` takes a uuid only)."""
        self._check_lookup_id(client_id)
        return _up.order_result(await self._get("identifier", client_id, reserved=reserved, client_id=client_id), client_id)

    async def cancel_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``privateDeleteOrder({'identifier': ...})``, then poll until ``cancel``/``done``;
        an already-final order returns its state (as the direct adapter)."""
        self._check_lookup_id(client_id)
        ex = self._exchange(client_id)
        try:
            raw = await self._call(
                "default", ex.privateDeleteOrder, {"identifier": client_id}, reserved=reserved, client_id=client_id
            )
        except Rejected as exc:
            if isinstance(exc, InsufficientFunds):
                raise
            try:
                current = await self._get("identifier", client_id, reserved=reserved, client_id=client_id)
            except OrderNotFound:
                raise exc from None
            if current.state in ("done", "cancel"):
                return _up.order_result(current, client_id)
            raise
        order: S.UpbitOrder = _convert(raw, S.UpbitOrder, "upbit", client_id)
        order = await self._poll(
            order, lambda o: o.state in ("done", "cancel"), reserved=reserved, client_id=client_id
        )
        return _up.order_result(order, client_id)

    # -- account and market --------------------------------------------------------------
    async def get_balances(self) -> dict[str, Balance]:
        """``fetch_balance`` (``GET /v1/accounts``), normalized from ``info``."""
        ex = self._exchange()
        bal = await self._call("default", ex.fetch_balance, read=True)
        rows = _convert(bal.get("info") if isinstance(bal, dict) else None, list[S.UpbitAccount], "upbit")
        return {r.currency: Balance(asset=r.currency, free=r.balance, locked=r.locked) for r in rows}

    async def get_order_book(self, symbol: str, depth: int = 15) -> OrderBook:
        """``publicGetOrderbook`` (group ``orderbook``), top ``depth`` (1..30)."""
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 30:
            raise ValueError(f"depth: expected an integer 1..30, got {depth!r}")
        ex = self._exchange()
        raw = await self._call("orderbook", ex.publicGetOrderbook, {"markets": symbol, "count": str(depth)}, read=True)
        books = _convert(raw, list[S.UpbitOrderbook], "upbit")
        book = next((b for b in books if b.market == symbol), None)
        if book is None:
            raise Rejected(f"no order book for {symbol!r}", exchange="upbit", code="unknown_symbol")
        units = book.orderbook_units[:depth]
        return OrderBook(
            symbol=symbol,
            bids=[BookLevel(u.bid_price, u.bid_size) for u in units if u.bid_size > 0],
            asks=[BookLevel(u.ask_price, u.ask_size) for u in units if u.ask_size > 0],
            ts_ms=book.timestamp,
        )


# --------------------------------------------------------------------------------------
# Binance USDT-M
# --------------------------------------------------------------------------------------
class CcxtBinanceUsdm(_CcxtAdapter, PerpAdapter):
    """Binance USDT-M perpetual (one-way mode) on ``ccxt.async_support.binanceusdm``; same
    behaviour as :class:`~adapters_direct.binance.BinanceUsdm` (``newClientOrderId`` is
    unique among open orders only; ``newOrderRespType=RESULT``; ``fee`` is the
    ``cumQuote × taker rate`` estimate).

    Parameters
    ----------
    api_key, secret_key
        Binance API key and secret.
    base_url
        None for ``https://fapi.binance.com``; the simulator's URL in tests.
    **options
        The direct adapter's options; see the module docstring for those ccxt ignores.
    """

    name = "binance"
    _ccxt_id = "binanceusdm"
    _default_url = _bn.BINANCE_USDM_URL

    def __init__(self, *, api_key: str, secret_key: str, base_url: str | None = None, **options: Any) -> None:
        super().__init__(api_key=api_key, secret_key=secret_key, base_url=base_url, **options)
        self._rules: dict[str, SymbolRules] = {}
        self._fees: dict[str, tuple[Decimal, Decimal]] = {}
        self._leverage: dict[str, int] = {}
        self._margin_type: dict[str, str] = {}

    def _config(self) -> dict[str, Any]:
        cfg = super()._config()
        # no /sapi/ currency calls on load_markets; our recvWindow (ccxt's default is 10 s)
        cfg["options"] = {"fetchCurrencies": False, "recvWindow": self.options.recv_window_ms}
        return cfg

    def _make_exchange(self) -> Any:
        ex = super()._make_exchange()
        _linear_errors(ex)
        return ex

    async def _start(self) -> None:
        await self._keepwarm()
        await self.refresh_rules()

    async def _keepwarm(self) -> None:
        """``prewarm_connections`` concurrent ``/fapi/v1/time`` calls (warm pooled
        connections), then ccxt's clock sync (one sample)."""
        ex = self._exchange()
        await asyncio.gather(
            *(self._call("default", ex.fapiPublicGetTime, read=True) for _ in range(self.options.prewarm_connections))
        )
        await self.sync_clock()

    async def sync_clock(self) -> int:
        """ccxt's ``load_time_difference``; returns server minus local time in ms."""
        ex = self._exchange()
        diff = await self._call("default", ex.load_time_difference, read=True)
        return -int(diff or 0)

    @property
    def clock_offset_ms(self) -> int:
        ex = self.ex
        return -int(ex.options.get("timeDifference", 0) or 0) if ex is not None else 0

    async def _resync_clock(self, err: AdapterError) -> None:
        log.warning("binance %s: re-syncing the clock", err)
        try:
            await self.sync_clock()
        except AdapterError as exc:
            log.warning("binance clock re-sync failed: %s", exc)

    def _unified(self, symbol: str) -> str:
        ex = self._exchange()
        markets = ex.markets_by_id.get(symbol) if ex.markets_by_id else None
        if not markets:
            raise Rejected(f"unknown symbol {symbol!r}", exchange="binance", code="unknown_symbol")
        return markets[0]["symbol"]

    # -- rules -------------------------------------------------------------------------------
    def rules(self, symbol: str) -> SymbolRules:
        try:
            return self._rules[symbol]
        except KeyError:
            raise KeyError(f"no Binance rules for {symbol!r} (not in exchangeInfo)") from None

    async def refresh_rules(self) -> None:
        """``load_markets(reload=True)`` (``/fapi/v1/exchangeInfo``) and the commission
        rates of the configured (and already traded) symbols; rules are built from each
        market's raw ``info`` with the direct adapter's function."""
        ex = self._exchange()
        await self._call("default", ex.load_markets, True, read=True)
        wanted = list(dict.fromkeys([*self.options.symbols, *self._fees]))
        if wanted:
            await asyncio.gather(*(self.get_commission_rate(s) for s in wanted))
        rules: dict[str, SymbolRules] = {}
        for market in ex.markets.values():
            info = market.get("info")
            try:
                sym = msgspec.convert(info, S.BnSymbol, strict=False)
            except (msgspec.ValidationError, TypeError) as exc:
                log.warning("binance: market %s refused (%s); no rules for it", market.get("id"), exc)
                continue
            rules[sym.symbol] = _bn._rules_from(sym, self._fees.get(sym.symbol))
        self._rules = rules

    async def _rules_for(self, symbol: str) -> SymbolRules:
        r = self._rules.get(symbol)
        if r is None:
            await self.refresh_rules()
            r = self._rules.get(symbol)
            if r is None:
                raise Rejected(f"unknown symbol {symbol!r}", exchange="binance", code="unknown_symbol")
        return r

    async def _taker_fee(self, symbol: str) -> Decimal | None:
        fees = self._fees.get(symbol)
        if fees is None:
            try:
                fees = await self.get_commission_rate(symbol)
            except AdapterError as exc:
                log.warning("binance %s: commission rate unavailable (%s); fee reported as 0", symbol, exc)
                return None
        return fees[1]

    async def _result(self, raw: Any, client_id: str, quote_asset: str | None = None) -> OrderResult:
        order: S.BnOrder = _convert(raw, S.BnOrder, "binance", client_id)
        fee = await self._taker_fee(order.symbol) if order.cum_quote > 0 else None
        if quote_asset is None:
            r = self._rules.get(order.symbol)
            quote_asset = r.quote_asset if r is not None else "USDT"
        return _bn.order_result(order, taker_fee=fee, quote_asset=quote_asset)

    # -- orders ----------------------------------------------------------------------------
    async def place_order(self, req: OrderRequest, *, reserved: bool = False) -> OrderResult:
        """``create_order`` (``POST /fapi/v1/order``, ``newOrderRespType=RESULT``); never
        retried. Same rounding, local rejections and errors as
        :meth:`adapters_direct.binance.BinanceUsdm.place_order`."""
        cid = req.client_id
        if not is_valid_binance_client_id(cid):
            raise Rejected(
                f"client_id {cid!r} does not match ^[.A-Z:/a-z0-9_-]{{1,36}}$",
                exchange="binance",
                code="invalid_client_id",
                client_id=cid if isinstance(cid, str) else None,
            )
        if req.quote_amount is not None:
            raise Rejected(
                "quote_amount is an Upbit market-buy field; Binance orders take quantity",
                exchange="binance",
                code="unsupported_order",
                client_id=cid,
            )
        ex = self._exchange(cid)
        rules = await self._rules_for(req.symbol)
        symbol = self._unified(req.symbol)
        params: dict[str, Any] = {"clientOrderId": cid, "newOrderRespType": "RESULT"}
        if req.reduce_only:
            params["reduceOnly"] = True
        try:
            assert req.quantity is not None
            qty = quantize_down(req.quantity, rules.qty_step)
            if qty <= 0:
                raise ValueError("quantity must be positive after rounding")
            price: str | None = None
            if req.type == "limit":
                assert req.price is not None
                p = req.price
                if rules.tick_size is not None:
                    p = quantize_price(p, rules.tick_size, "down" if req.side == "buy" else "up")
                if p <= 0:
                    raise ValueError("price must be positive after rounding")
                price = _plain(p)
                params["timeInForce"] = (req.time_in_force or "gtc").upper()
        except (ValueError, TypeError) as exc:
            raise Rejected(f"invalid order: {exc}", exchange="binance", code="invalid_request", client_id=cid) from None
        created = await self._call(
            "order", ex.create_order, symbol, req.type, req.side, _plain(qty), price, params,
            reserved=reserved, client_id=cid,
        )
        return await self._result(_result_or_unknown(created, "binance", cid), cid, rules.quote_asset)

    def _check_id(self, client_id: str) -> None:
        if not is_valid_binance_client_id(client_id):
            raise Rejected(
                f"client_id {client_id!r} does not match ^[.A-Z:/a-z0-9_-]{{1,36}}$",
                exchange="binance",
                code="invalid_client_id",
            )

    async def get_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``fetch_order(params={'origClientOrderId': ...})``; ``OrderNotFound`` on -2013."""
        self._check_id(client_id)
        ex = self._exchange(client_id)
        unified = self._unified(symbol)
        order = await self._call(
            "default", ex.fetch_order, None, unified, {"origClientOrderId": client_id},
            reserved=reserved, client_id=client_id, read=True,
        )
        return await self._result(_result_or_unknown(order, "binance", client_id), client_id)

    async def cancel_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``cancel_order(params={'origClientOrderId': ...})``; -2011 on an already-final
        order returns that order's state (as the direct adapter)."""
        self._check_id(client_id)
        ex = self._exchange(client_id)
        unified = self._unified(symbol)
        try:
            order = await self._call(
                "default", ex.cancel_order, None, unified, {"origClientOrderId": client_id},
                reserved=reserved, client_id=client_id,
            )
        except OrderNotFound as exc:
            try:
                return await self.get_order(symbol, client_id, reserved=reserved)
            except OrderNotFound:
                raise exc from None
        return await self._result(_result_or_unknown(order, "binance", client_id), client_id)

    # -- account -----------------------------------------------------------------------------
    async def get_balances(self) -> dict[str, Balance]:
        """``GET /fapi/v3/balance`` (ccxt implicit API, weight 5): ``free`` =
        ``availableBalance``, ``locked`` = balance − available (never negative)."""
        ex = self._exchange()
        raw = await self._call("default", ex.fapiPrivateV3GetBalance, weight=5, read=True)
        rows = _convert(raw, list[S.BnBalance], "binance")
        return {
            r.asset: Balance(asset=r.asset, free=r.available_balance, locked=max(r.balance - r.available_balance, _ZERO))
            for r in rows
        }

    async def _account(self) -> S.BnAccount:
        ex = self._exchange()
        raw = await self._call("default", ex.fapiPrivateV3GetAccount, weight=5, read=True)
        return _convert(raw, S.BnAccount, "binance")

    async def get_available_margin(self) -> Decimal:
        return (await self._account()).available_balance

    async def get_position(self, symbol: str) -> Position:
        """``/fapi/v3/positionRisk`` and ``/fapi/v3/account`` concurrently, plus
        ``/fapi/v1/symbolConfig`` the first time (implicit API: ccxt's ``fetch_positions``
        floats the amounts and loads leverage brackets first)."""
        ex = self._exchange()

        async def _risk() -> list[S.BnPositionRisk]:
            raw = await self._call("default", ex.fapiPrivateV3GetPositionRisk, {"symbol": symbol}, weight=5, read=True)
            return _convert(raw, list[S.BnPositionRisk], "binance")

        async def _config() -> None:
            # v3 rows carry no leverage / margin type: symbolConfig once, then cached
            # and kept current by set_leverage / set_margin_type (as the direct adapter)
            if symbol in self._leverage and symbol in self._margin_type:
                return
            try:
                raw = await self._call("default", ex.fapiPrivateGetSymbolConfig, {"symbol": symbol}, weight=5, read=True)
                configs = _convert(raw, list[S.BnSymbolConfig], "binance")
            except (Rejected, OutcomeUnknown) as exc:  # informational only
                log.info("binance %s: symbolConfig unavailable (%s)", symbol, exc)
                return
            for c in configs:
                if c.symbol == symbol:
                    self._leverage.setdefault(symbol, c.leverage)
                    self._margin_type.setdefault(symbol, c.margin_type.upper())

        rows, account, _ = await asyncio.gather(_risk(), self._account(), _config())
        return _bn.position_from(symbol, rows, account, self._leverage.get(symbol, 0), self._margin_type.get(symbol, ""))

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """``set_leverage`` (``POST /fapi/v1/leverage``); returns what Binance applied."""
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= 125:
            raise ValueError(f"leverage: expected an integer 1..125, got {leverage!r}")
        ex = self._exchange()
        raw = await self._call("default", ex.set_leverage, leverage, self._unified(symbol))
        applied = _convert(raw, S.BnLeverage, "binance").leverage
        self._leverage[symbol] = applied
        return applied

    async def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """``set_margin_mode`` (``POST /fapi/v1/marginType``); -4046 counts as success."""
        mt = margin_type.upper() if isinstance(margin_type, str) else margin_type
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("ISOLATED", "CROSSED"):
            raise ValueError(f"margin_type: expected 'ISOLATED' or 'CROSSED', got {margin_type!r}")
        ex = self._exchange()
        mode = "isolated" if mt == "ISOLATED" else "cross"
        try:
            await self._call("default", ex.set_margin_mode, mode, self._unified(symbol))
        except Rejected as exc:
            if exc.code != -4046:
                raise
        self._margin_type[symbol] = mt

    async def ensure_one_way_mode(self) -> None:
        """``fetch_position_mode`` (``GET /fapi/v1/positionSide/dual``, weight 30)."""
        ex = self._exchange()
        mode = await self._call("default", ex.fetch_position_mode, weight=30, read=True)
        raw = mode.get("info") if isinstance(mode, dict) else None
        if _convert(raw, S.BnPositionMode, "binance").dual_side_position:
            raise Rejected(
                "the account is in hedge (dual-side) position mode; switch it to one-way",
                exchange="binance",
                code="hedge_mode",
            )

    async def get_funding_rate(self, symbol: str) -> FundingRate:
        """``fetch_funding_rate`` (``GET /fapi/v1/premiumIndex``), normalized from ``info``."""
        ex = self._exchange()
        fr = await self._call("default", ex.fetch_funding_rate, self._unified(symbol), read=True)
        p = _convert(fr.get("info") if isinstance(fr, dict) else None, S.BnPremiumIndex, "binance")
        return FundingRate(
            symbol=p.symbol,
            rate=p.last_funding_rate,
            mark_price=p.mark_price,
            index_price=p.index_price,
            next_funding_time_ms=p.next_funding_time,
        )

    async def get_funding_income(self, symbol: str, start_ms: int, end_ms: int | None = None) -> Decimal:
        """Sum of ``FUNDING_FEE`` rows of ``GET /fapi/v1/income`` (implicit API, paged)."""
        for name, v in (("start_ms", start_ms), ("end_ms", end_ms)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name}: expected epoch milliseconds, got {v!r}")
        ex = self._exchange()
        total = _ZERO
        start = start_ms
        while True:
            params: dict[str, Any] = {"symbol": symbol, "incomeType": "FUNDING_FEE", "startTime": start}
            if end_ms is not None:
                params["endTime"] = end_ms
            params["limit"] = 1000
            raw = await self._call("default", ex.fapiPrivateGetIncome, params, weight=30, read=True)
            rows = _convert(raw, list[S.BnIncome], "binance")
            total += sum((r.income for r in rows if r.income_type == "FUNDING_FEE"), _ZERO)
            if len(rows) < 1000:
                return total
            start = max(r.time for r in rows) + 1

    async def get_commission_rate(self, symbol: str) -> tuple[Decimal, Decimal]:
        """``fetch_trading_fee`` (``GET /fapi/v1/commissionRate``, weight 20) → (maker, taker)."""
        ex = self._exchange()
        fee = await self._call("default", ex.fetch_trading_fee, self._unified(symbol), weight=20, read=True)
        c = _convert(fee.get("info") if isinstance(fee, dict) else None, S.BnCommissionRate, "binance")
        fees = (c.maker_commission_rate, c.taker_commission_rate)
        self._fees[symbol] = fees
        r = self._rules.get(symbol)
        if r is not None:
            self._rules[symbol] = msgspec.structs.replace(r, maker_fee=fees[0], taker_fee=fees[1])
        return fees

    # -- market --------------------------------------------------------------------------
    async def get_order_book(self, symbol: str, depth: int = 15) -> OrderBook:
        """``GET /fapi/v1/depth`` (implicit API: ccxt's ``fetch_order_book`` floats the
        levels) with the smallest allowed limit >= ``depth``."""
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 1000:
            raise ValueError(f"depth: expected an integer 1..1000, got {depth!r}")
        limit, weight = next((lim, w) for lim, w in _bn._DEPTH_LIMITS if lim >= depth)
        ex = self._exchange()
        raw = await self._call(
            "default", ex.fapiPublicGetDepth, {"symbol": symbol, "limit": limit}, weight=weight, read=True
        )
        d = _convert(raw, S.BnDepth, "binance")
        return OrderBook(symbol=symbol, bids=d.bids[:depth], asks=d.asks[:depth], ts_ms=d.T)

    async def best_bid_ask(self, symbol: str) -> tuple[Decimal, Decimal]:
        """``GET /fapi/v1/ticker/bookTicker`` (implicit API, weight 2)."""
        ex = self._exchange()
        raw = await self._call("default", ex.fapiPublicGetTickerBookTicker, {"symbol": symbol}, weight=2, read=True)
        t = _convert(raw, S.BnBookTicker, "binance")
        return t.bid_price, t.ask_price
