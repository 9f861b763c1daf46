"""Direct Binance USDT-M perpetual adapter (REST, HMAC-SHA256) — ``BinanceUsdm``.

Wire format (EXCHANGE_NOTES part B): parameters encoded once, signed over exactly the
bytes sent (POST in the form body, GET/DELETE in the query string), ``timestamp`` taken
*at send time* from the local clock plus an offset synced with ``GET /fapi/v1/time``
(RTT/2 corrected: in ``open()``, every ``keepwarm_s``, and after any -1021).

What a caller must know:

* ``newClientOrderId`` (our ``client_id``) is unique only among **open** orders. Resending
  the id of an order that already filled can create a *second* order, so after an
  ``OutcomeUnknown`` always :meth:`BinanceUsdm.get_order` first, and give every new order
  its own id.
* Orders use ``newOrderRespType=RESULT``: a MARKET or IOC/FOK order comes back in its
  final state (FILLED / EXPIRED with ``executedQty``).
* ``fee`` on an order is an **estimate**: order responses carry no commission, so it is
  ``cumQuote × taker rate`` from ``GET /fapi/v1/commissionRate`` (an upper bound when a
  resting order filled as maker). Exact commissions are in the user-data stream
  (``ORDER_TRADE_UPDATE.n``) or ``/fapi/v1/userTrades``.
* -1021 (timestamp outside recvWindow) re-syncs the clock; a read is then retried once,
  an order never: it raises ``Rejected(code=-1021)`` (definitely not executed) and the
  caller's next attempt carries a corrected timestamp.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from collections.abc import Awaitable
from typing import Any, Callable

import msgspec

from kimp_fast.models import (
    Balance,
    FundingRate,
    OrderBook,
    OrderRequest,
    OrderResult,
    Position,
    SymbolRules,
)
from kimp_fast.orders import encode_binance_order, encode_query
from kimp_fast.signing import BinanceSigner

from . import schemas as S
from ._http import CONNECTION_LOST, AdapterOptions, Response, Transport, _raise, default_limiter, periodic
from .base import PerpAdapter
from .client_ids import is_valid_binance_client_id
from .errors import (
    AdapterError,
    AuthError,
    InsufficientFunds,
    OrderNotFound,
    OutcomeUnknown,
    Rejected,
    Unavailable,
)

__all__ = ["BINANCE_USDM_URL", "BinanceUsdm", "binance_error"]

BINANCE_USDM_URL = "https://fapi.binance.com"
log = logging.getLogger("adapters_direct.binance")

_ZERO = Decimal(0)
_FORM = "application/x-www-form-urlencoded"
_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}
# /fapi/v1/depth: allowed limits and their request weight
_DEPTH_LIMITS = ((5, 2), (10, 2), (20, 2), (50, 2), (100, 5), (500, 10), (1000, 20))

_INSUFFICIENT = frozenset({-2018, -2019})
_AUTH = frozenset({-1022, -2014, -2015})
_NOT_FOUND = frozenset({-2013, -2011})
_UNKNOWN = frozenset({-1000, -1001, -1006, -1007})
_THROTTLED = frozenset({-1003, -1015})
_CLOCK = frozenset({-1021, -5028})


# --------------------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------------------
def _code_msg(resp: Response) -> tuple[int | None, str]:
    try:
        err = S.decode_bn_error(resp.body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, ""
    return err.code, err.msg


def binance_error(resp: Response, *, client_id: str | None = None) -> AdapterError:
    """Map a non-2xx Binance response (not 429/418, not -1003/-1015) to the taxonomy.

    ==============================================  ======================================
    HTTP / ``code``                                  class (``code``)
    ==============================================  ======================================
    -2018, -2019                                     InsufficientFunds
    -1022, -2014, -2015, HTTP 401                    AuthError
    -2013, -2011                                     OrderNotFound
    -1021, -5028 (after a clock re-sync)             Rejected
    -1008 (503 "system-level protection")            Unavailable (certain failure, overload)
    -1000, -1001, -1006, -1007, 408, any other 5xx   OutcomeUnknown (503 "Unknown error"…)
    HTTP 403 without a Binance body (WAF)            Unavailable
    any other 4xx (-4116 duplicate id, -2022,        Rejected (Binance code, or ``http_<n>``)
    -2021, -4003/-4014/-4023/-4164, -4131, -1102…)
    ==============================================  ======================================
    """
    status = resp.status
    code, msg = _code_msg(resp)
    kw: dict[str, Any] = {"exchange": "binance", "status": status, "client_id": client_id}
    text = msg or f"HTTP {status}"
    if code == -1008:
        return Unavailable(f"overloaded, not executed: {text}", code=code, **kw)
    if code in _UNKNOWN or status >= 500 or status == 408:
        return OutcomeUnknown(f"execution status unknown: {text}", code=code, **kw)
    if code in _INSUFFICIENT:
        return InsufficientFunds(text, code=code, **kw)
    if code in _AUTH or status == 401:
        return AuthError(text, code=code if code is not None else "unauthorized", **kw)
    if code in _NOT_FOUND:
        return OrderNotFound(text, code=code, **kw)
    if status == 403 and code is None:
        return Unavailable("request blocked (HTTP 403 without a Binance error body: WAF)", **kw)
    if 400 <= status < 500:
        return Rejected(text, code=code if code is not None else f"http_{status}", **kw)
    return OutcomeUnknown(f"unexpected response: {text}", code=code, **kw)


# --------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------
def order_result(o: S.BnOrder, *, taker_fee: Decimal | None, quote_asset: str = "USDT") -> OrderResult:
    """Normalize a Binance order. ``fee`` = ``cumQuote × taker_fee`` (an estimate, see
    the module docstring); 0 when the rate is unknown."""
    filled = o.executed_qty
    return OrderResult(
        exchange="binance",
        symbol=o.symbol,
        client_id=o.client_order_id,
        exchange_order_id=str(o.order_id),
        status=_STATUS.get(o.status, "rejected"),  # type: ignore[arg-type]
        side="buy" if o.side == "BUY" else "sell",
        quantity=o.orig_qty,
        filled_qty=filled,
        avg_price=o.avg_price if filled > 0 and o.avg_price > 0 else None,
        quote_filled=o.cum_quote,
        fee=o.cum_quote * taker_fee if taker_fee is not None else _ZERO,
        fee_asset=quote_asset,
        ts_ms=o.update_time,
    )


def _rules_from(sym: S.BnSymbol, fees: tuple[Decimal, Decimal] | None) -> SymbolRules:
    f = {x.filter_type: x for x in sym.filters}
    price = f.get("PRICE_FILTER")
    lot = f.get("LOT_SIZE")
    mlot = f.get("MARKET_LOT_SIZE")
    notional = f.get("MIN_NOTIONAL")
    return SymbolRules(
        exchange="binance",
        symbol=sym.symbol,
        base_asset=sym.base_asset,
        quote_asset=sym.quote_asset,
        qty_step=(lot.step_size if lot and lot.step_size else Decimal("0.001")),
        min_qty=(lot.min_qty if lot and lot.min_qty is not None else _ZERO),
        max_qty=lot.max_qty if lot else None,
        market_max_qty=mlot.max_qty if mlot else None,
        tick_size=price.tick_size if price else None,
        min_price=(price.min_price if price and price.min_price is not None else _ZERO),
        min_notional=(notional.notional if notional and notional.notional is not None else _ZERO),
        maker_fee=fees[0] if fees else _ZERO,
        taker_fee=fees[1] if fees else _ZERO,
    )


# --------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------
class BinanceUsdm(PerpAdapter):
    """Binance USDT-M perpetual (one-way mode) over one keep-alive ``aiohttp`` session.

    Parameters
    ----------
    api_key, secret_key
        Binance API key (sent as ``X-MBX-APIKEY``) and secret (kept inside the signer).
    base_url
        None for ``https://fapi.binance.com``; the simulator's URL in tests/paper mode.
    **options
        :class:`adapters_direct._http.AdapterOptions` fields (``symbols=("BTCUSDT",)`` to
        preload commission rates, ``recv_window_ms``, timeouts, ...) and
        ``rate_limiter=`` to share a :class:`kimp_fast.ratelimit.RateLimiter`.
    """

    name = "binance"
    adapter_type = "direct"

    def __init__(self, *, api_key: str, secret_key: str, base_url: str | None = None, **options: Any) -> None:
        opts = AdapterOptions.from_kwargs(options)
        limiter = options.get("rate_limiter")
        if limiter is None:
            limiter = default_limiter("binance", opts)
        self.options = opts
        self._signer = BinanceSigner(api_key, secret_key)
        self._key_header = {"X-MBX-APIKEY": api_key}
        self._form_headers = {"X-MBX-APIKEY": api_key, "Content-Type": _FORM}
        self._t = Transport("binance", base_url or BINANCE_USDM_URL, opts, limiter)
        self._offset_ms = 0
        self._rtt_ms: float | None = None
        self._rules: dict[str, SymbolRules] = {}
        self._fees: dict[str, tuple[Decimal, Decimal]] = {}
        self._leverage: dict[str, int] = {}
        self._margin_type: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._sync_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        state = "open" if self._t.is_open else "closed"
        return f"BinanceUsdm(base_url={self._t.base_url!r}, {state})"

    @property
    def base_url(self) -> str:
        return self._t.base_url

    @property
    def rate_limiter(self) -> Any:
        return self._t.limiter

    @property
    def clock_offset_ms(self) -> int:
        """Server time minus local time, as last measured (ms)."""
        return self._offset_ms

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> None:
        """Open the session, pre-warm connections, sync the clock, load rules and the
        commission rates of ``symbols``."""
        if self._t.is_open:
            return
        await self._t.open()
        try:
            await self.sync_clock()
            await self.refresh_rules()
        except BaseException:
            await self.close()
            raise
        if self.options.rules_refresh_s > 0:
            self._tasks.append(
                periodic(self.options.rules_refresh_s, self.refresh_rules, name="binance-rules", log=log)
            )
        if self.options.keepwarm_s > 0:
            self._tasks.append(periodic(self.options.keepwarm_s, self.sync_clock, name="binance-clock", log=log))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        await self._t.close()

    # -- clock -------------------------------------------------------------------------
    async def _time_sample(self) -> tuple[float, float]:
        t0 = time.time_ns()
        resp = await self._public("/fapi/v1/time", "", weight=1)
        t1 = time.time_ns()
        server = self._decode(S.decode_bn_time, resp).server_time
        rtt_ms = (t1 - t0) / 1e6
        return rtt_ms, server - (t0 + t1) / 2e6

    async def sync_clock(self) -> int:
        """Measure the server-minus-local clock offset; keep the lowest-RTT sample.

        ``prewarm_connections`` samples go out concurrently (which also opens / keeps
        warm that many pooled connections), then one more on a warm connection.
        Returns the offset in ms.
        """
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        async with self._sync_lock:
            n = max(self.options.prewarm_connections, 1)
            samples = list(await asyncio.gather(*(self._time_sample() for _ in range(n))))
            samples.append(await self._time_sample())
            rtt, offset = min(samples)
            self._offset_ms = round(offset)
            self._rtt_ms = rtt
            return self._offset_ms

    def _timestamp(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms  # now_ms(), one call fewer on the order path

    # -- transport ---------------------------------------------------------------------
    async def _public(self, path: str, query: str, *, weight: int) -> Response:
        for attempt in range(2):
            await self._t.throttle("default", weight)
            try:
                resp = await self._t.send("GET", path, query=query, group="default")
            except OutcomeUnknown as exc:
                if exc.code == CONNECTION_LOST and attempt == 0:
                    continue
                raise
            if 200 <= resp.status < 300:
                return resp
            raise self._error(resp, None)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _signed(
        self,
        method: str,
        path: str,
        params: str,
        *,
        weight: int = 1,
        group: str = "default",
        reserved: bool = False,
        client_id: str | None = None,
        is_order: bool = False,
        order_lane: bool = False,
    ) -> Response:
        """Throttle, timestamp and sign *now*, send; return 2xx or raise the mapped error.

        Reads (GET) are retried once after a dead pooled connection and once after a
        -1021 clock re-sync; order placement (``is_order``) is never retried. Placement,
        look-up and cancel (``order_lane``) take the transport's order lane.
        """
        lane = is_order or order_lane
        retries_left = 0 if is_order or method != "GET" else 1
        clock_retry = not is_order
        while True:
            await self._t.throttle(group, weight, reserved=reserved)
            signed = self._signer.signed_query(params, self._timestamp(), self.options.recv_window_ms)
            try:
                if method == "POST":
                    resp = await self._t.send(
                        method, path, body=signed.encode(), headers=self._form_headers, group=group,
                        client_id=client_id, order=lane,
                    )
                else:
                    resp = await self._t.send(
                        method, path, query=signed, headers=self._key_header, group=group, client_id=client_id,
                        order=lane,
                    )
            except OutcomeUnknown as exc:
                if exc.code == CONNECTION_LOST and retries_left > 0:
                    retries_left -= 1
                    continue
                raise
            if 200 <= resp.status < 300:
                return resp
            err = self._error(resp, client_id)
            if err.code in _CLOCK:
                await self._resync_after_skew(err)
                if clock_retry:
                    clock_retry = False
                    continue
            raise err

    def _error(self, resp: Response, client_id: str | None) -> AdapterError:
        code, msg = _code_msg(resp)
        if resp.status in (429, 418) or code in _THROTTLED:
            # The order-count limit (-1015) stops new orders only, never the look-ups and
            # cancels that resolve one. The request-weight limit (-1003, a plain 429) stops
            # every call: look-ups bear weight, and new orders sent into a 429 are how an
            # IP earns a ban. A 418 (a ban) stops everything.
            group = "order" if code == -1015 else None
            return self._t.rate_limited(resp, code, msg or "Binance rate limit", client_id=client_id, group=group)
        return binance_error(resp, client_id=client_id)

    async def _resync_after_skew(self, err: AdapterError) -> None:
        log.warning("binance %s: re-syncing the clock (offset was %d ms)", err, self._offset_ms)
        try:
            await self.sync_clock()
        except AdapterError as exc:
            log.warning("binance clock re-sync failed: %s", exc)

    def _decode(self, fn: Callable[[bytes], Any], resp: Response, client_id: str | None = None) -> Any:
        """Decode and validate (``schemas``); a refused answer is ``InvalidResponse``, an
        ``OutcomeUnknown``: for an order it is looked up, for a read it is refused."""
        try:
            return fn(resp.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise S.invalid_response(exc, exchange="binance", status=resp.status, client_id=client_id) from None

    # -- rules ---------------------------------------------------------------------------
    def rules(self, symbol: str) -> SymbolRules:
        try:
            return self._rules[symbol]
        except KeyError:
            raise KeyError(f"no Binance rules for {symbol!r} (not in exchangeInfo)") from None

    async def refresh_rules(self) -> None:
        """Reload ``/fapi/v1/exchangeInfo`` (all symbols) and the commission rates of the
        configured symbols (and of every symbol already traded)."""
        resp = await self._public("/fapi/v1/exchangeInfo", "", weight=1)
        info = self._decode(S.decode_bn_exchange_info, resp)
        wanted = list(dict.fromkeys([*self.options.symbols, *self._fees]))
        if wanted:
            await asyncio.gather(*(self.get_commission_rate(s) for s in wanted))
        self._rules = {s.symbol: _rules_from(s, self._fees.get(s.symbol)) for s in info.symbols}

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

    # -- orders ----------------------------------------------------------------------------
    async def place_order(self, req: OrderRequest, *, reserved: bool = False) -> OrderResult:
        """Place one order (``POST /fapi/v1/order``, ``newOrderRespType=RESULT``). Never retried.

        Quantity is rounded down to ``LOT_SIZE.stepSize``; a limit price off the tick is
        rounded toward the caller's favour (buy down, sell up). LIMIT without a
        ``time_in_force`` is GTC. ``quote_amount`` is not supported (Rejected locally).

        Raises
        ------
        Rejected
            Locally (``invalid_client_id`` / ``invalid_request`` / ``unsupported_order`` /
            ``unknown_symbol``; nothing sent) or by Binance (its code, e.g. -4116, -2022,
            -4164, -1021 after a clock re-sync).
        InsufficientFunds, AuthError, RateLimited, Unavailable
            Not executed.
        OutcomeUnknown
            Timeout, dropped connection, 5xx / 503 "Unknown error" / -1006 / -1007, or an
            undecodable 2xx: look the order up with :meth:`get_order`.
        """
        return await self.start_order(req, reserved=reserved)

    def start_order(self, req: OrderRequest, *, reserved: bool = False) -> Awaitable[OrderResult]:
        """:meth:`place_order`, with the request written before this returns when the
        symbol's rules are loaded, an order-lane connection is idle and the limiter has a
        slot free (timestamped and signed right then); otherwise it is sent when the
        result is awaited, exactly as ``place_order`` sends it. Errors come from the
        await, never from this call."""
        cid = req.client_id
        rules = self._rules.get(req.symbol)
        if rules is None or req.quote_amount is not None or not is_valid_binance_client_id(cid):
            return self._place(req, reserved)
        try:
            params = self._order_query(req, rules)
        except AdapterError as exc:
            return _raise(exc)
        sent = self._t.send_now(
            "POST", "/fapi/v1/order", self._order_build(params), group="order", reserved=reserved, client_id=cid,
        )
        if sent is None:
            return self._place(req, reserved, params)
        return self._placed(sent, cid, rules)

    def rehearse_order(self, req: OrderRequest) -> bytes:
        """The bytes :meth:`start_order` would write for ``req`` now (timestamped and
        signed), returned instead of sent. Raises like ``place_order`` would for bad input."""
        params = self._order_query(req, self.rules(req.symbol))
        return self._t.rehearse("POST", "/fapi/v1/order", self._order_build(params), group="order")

    def _order_build(self, params: str) -> Callable[[], tuple[str, bytes, dict[str, str]]]:
        """The order request's last step: timestamped and signed once the limiter let it go."""
        signer, recv_window, headers = self._signer, self.options.recv_window_ms, self._form_headers
        return lambda: ("", signer.signed_query(params, self._timestamp(), recv_window).encode(), headers)

    async def _place(self, req: OrderRequest, reserved: bool, params: str | None = None) -> OrderResult:
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
        rules = await self._rules_for(req.symbol)
        if params is None:
            params = self._order_query(req, rules)
        sent = self._signed(
            "POST", "/fapi/v1/order", params, group="order", reserved=reserved, client_id=cid, is_order=True
        )
        return await self._placed(sent, cid, rules)

    async def _placed(self, sent: Awaitable[Response], cid: str, rules: SymbolRules) -> OrderResult:
        """The answer to an order, however it was sent. A non-2xx is what ``_signed``
        checks for an order (no retry; a -1021 re-syncs the clock for the next request);
        from ``_signed`` itself only 2xx answers arrive here."""
        resp = await sent
        if not 200 <= resp.status < 300:
            err = self._error(resp, cid)
            if err.code in _CLOCK:
                await self._resync_after_skew(err)
            raise err
        order = self._decode(S.decode_bn_order, resp, cid)
        return await self._result(order, rules.quote_asset)

    def _order_query(self, req: OrderRequest, rules: SymbolRules) -> str:
        cid = req.client_id
        side = "BUY" if req.side == "buy" else "SELL"
        try:
            if req.type == "limit":
                return encode_binance_order(
                    req.symbol,
                    side,
                    "LIMIT",
                    quantity=req.quantity,  # type: ignore[arg-type]
                    price=req.price,
                    time_in_force=(req.time_in_force or "gtc").upper(),
                    reduce_only=bool(req.reduce_only),
                    client_id=cid,
                    resp_type="RESULT",
                    qty_step=rules.qty_step,
                    price_tick=rules.tick_size,
                    price_rounding="down" if side == "BUY" else "up",
                )
            return encode_binance_order(
                req.symbol,
                side,
                "MARKET",
                quantity=req.quantity,  # type: ignore[arg-type]
                reduce_only=bool(req.reduce_only),
                client_id=cid,
                resp_type="RESULT",
                qty_step=rules.qty_step,
            )
        except (ValueError, TypeError) as exc:
            raise Rejected(f"invalid order: {exc}", exchange="binance", code="invalid_request", client_id=cid) from None

    async def _result(self, order: S.BnOrder, quote_asset: str | None = None) -> OrderResult:
        fee = await self._taker_fee(order.symbol) if order.cum_quote > 0 else None
        if quote_asset is None:
            r = self._rules.get(order.symbol)
            quote_asset = r.quote_asset if r is not None else "USDT"
        return order_result(order, taker_fee=fee, quote_asset=quote_asset)

    def _order_params(self, symbol: str, client_id: str) -> str:
        if not is_valid_binance_client_id(client_id):
            raise Rejected(
                f"client_id {client_id!r} does not match ^[.A-Z:/a-z0-9_-]{{1,36}}$",
                exchange="binance",
                code="invalid_client_id",
            )
        try:
            return encode_query((("symbol", symbol), ("origClientOrderId", client_id)))
        except (ValueError, TypeError) as exc:
            raise Rejected(f"invalid request: {exc}", exchange="binance", code="invalid_request") from None

    async def get_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``GET /fapi/v1/order?origClientOrderId=`` (weight 1). ``OrderNotFound`` on -2013.

        Right after an ``OutcomeUnknown`` placement the exchange may briefly not know the
        order: one ``OrderNotFound`` is evidence, not proof.
        """
        params = self._order_params(symbol, client_id)
        resp = await self._signed(
            "GET", "/fapi/v1/order", params, reserved=reserved, client_id=client_id, order_lane=True
        )
        return await self._result(self._decode(S.decode_bn_order, resp, client_id))

    async def cancel_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``DELETE /fapi/v1/order?origClientOrderId=`` (weight 1); returns the canceled order.

        Binance answers -2011 when the order is unknown *or already final*; the order is
        then looked up, and its current (final) state returned if it exists.
        """
        params = self._order_params(symbol, client_id)
        try:
            resp = await self._signed(
                "DELETE", "/fapi/v1/order", params, reserved=reserved, client_id=client_id, order_lane=True
            )
        except OrderNotFound as exc:
            try:
                return await self.get_order(symbol, client_id, reserved=reserved)
            except OrderNotFound:
                raise exc from None
        return await self._result(self._decode(S.decode_bn_order, resp, client_id))

    # -- account -----------------------------------------------------------------------------
    async def get_balances(self) -> dict[str, Balance]:
        """``GET /fapi/v3/balance`` (weight 5): ``free`` = ``availableBalance``, ``locked`` =
        wallet balance minus available (margin in use; never negative)."""
        resp = await self._signed("GET", "/fapi/v3/balance", "", weight=5)
        rows = self._decode(S.decode_bn_balances, resp)
        return {
            r.asset: Balance(asset=r.asset, free=r.available_balance, locked=max(r.balance - r.available_balance, _ZERO))
            for r in rows
        }

    async def _account(self) -> S.BnAccount:
        resp = await self._signed("GET", "/fapi/v3/account", "", weight=5)
        return self._decode(S.decode_bn_account, resp)

    async def get_available_margin(self) -> Decimal:
        """``availableBalance`` of ``GET /fapi/v3/account`` (weight 5)."""
        return (await self._account()).available_balance

    async def get_position(self, symbol: str) -> Position:
        """``GET /fapi/v3/positionRisk?symbol=`` and ``/fapi/v3/account`` (margin balance),
        concurrently (weight 10). Leverage and margin type are not in v3 rows: they come
        from ``GET /fapi/v1/symbolConfig`` the first time (weight 5, then cached and kept
        current by :meth:`set_leverage` / :meth:`set_margin_type`)."""
        params = encode_query((("symbol", symbol),))

        async def _risk() -> list[S.BnPositionRisk]:
            resp = await self._signed("GET", "/fapi/v3/positionRisk", params, weight=5)
            return self._decode(S.decode_bn_position_risk, resp)

        async def _config() -> None:
            if symbol in self._leverage and symbol in self._margin_type:
                return
            try:
                resp = await self._signed("GET", "/fapi/v1/symbolConfig", params, weight=5)
                rows = self._decode(S.decode_bn_symbol_config, resp)
            except (Rejected, OutcomeUnknown) as exc:  # informational only
                log.info("binance %s: symbolConfig unavailable (%s)", symbol, exc)
                return
            for c in rows:
                if c.symbol == symbol:
                    self._leverage.setdefault(symbol, c.leverage)
                    self._margin_type.setdefault(symbol, c.margin_type.upper())

        rows, account, _ = await asyncio.gather(_risk(), self._account(), _config())
        return position_from(symbol, rows, account, self._leverage.get(symbol, 0), self._margin_type.get(symbol, ""))

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """``POST /fapi/v1/leverage`` (1..125); returns the leverage Binance applied."""
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= 125:
            raise ValueError(f"leverage: expected an integer 1..125, got {leverage!r}")
        params = encode_query((("symbol", symbol), ("leverage", str(leverage))))
        resp = await self._signed("POST", "/fapi/v1/leverage", params)
        applied = self._decode(S.decode_bn_leverage, resp).leverage
        self._leverage[symbol] = applied
        return applied

    async def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """``POST /fapi/v1/marginType`` ISOLATED | CROSSED; -4046 ("no need to change")
        counts as success. -4047/-4048 (open orders / position) raise ``Rejected``."""
        mt = margin_type.upper() if isinstance(margin_type, str) else margin_type
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("ISOLATED", "CROSSED"):
            raise ValueError(f"margin_type: expected 'ISOLATED' or 'CROSSED', got {margin_type!r}")
        params = encode_query((("symbol", symbol), ("marginType", mt)))
        try:
            await self._signed("POST", "/fapi/v1/marginType", params)
        except Rejected as exc:
            if exc.code != -4046:
                raise
        self._margin_type[symbol] = mt

    async def ensure_one_way_mode(self) -> None:
        """``GET /fapi/v1/positionSide/dual`` (weight 30); ``Rejected(code="hedge_mode")``
        when the account is in hedge (dual-side) mode, which this engine does not trade."""
        resp = await self._signed("GET", "/fapi/v1/positionSide/dual", "", weight=30)
        if self._decode(S.decode_bn_position_mode, resp).dual_side_position:
            raise Rejected(
                "the account is in hedge (dual-side) position mode; switch it to one-way",
                exchange="binance",
                code="hedge_mode",
            )

    async def get_funding_rate(self, symbol: str) -> FundingRate:
        """``GET /fapi/v1/premiumIndex?symbol=`` (public, weight 1)."""
        resp = await self._public("/fapi/v1/premiumIndex", encode_query((("symbol", symbol),)), weight=1)
        p = self._decode(S.decode_bn_premium_index, resp)
        return FundingRate(
            symbol=p.symbol,
            rate=p.last_funding_rate,
            mark_price=p.mark_price,
            index_price=p.index_price,
            next_funding_time_ms=p.next_funding_time,
        )

    async def get_funding_income(self, symbol: str, start_ms: int, end_ms: int | None = None) -> Decimal:
        """Sum of ``FUNDING_FEE`` rows of ``GET /fapi/v1/income`` (weight 30 per page of
        1000, paged by time) in ``[start_ms, end_ms]``; positive = received."""
        for name, v in (("start_ms", start_ms), ("end_ms", end_ms)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name}: expected epoch milliseconds, got {v!r}")
        total = _ZERO
        start = start_ms
        while True:
            pairs = [("symbol", symbol), ("incomeType", "FUNDING_FEE"), ("startTime", str(start))]
            if end_ms is not None:
                pairs.append(("endTime", str(end_ms)))
            pairs.append(("limit", "1000"))
            resp = await self._signed("GET", "/fapi/v1/income", encode_query(pairs), weight=30)
            rows = self._decode(S.decode_bn_income, resp)
            total += sum((r.income for r in rows if r.income_type == "FUNDING_FEE"), _ZERO)
            if len(rows) < 1000:
                return total
            start = max(r.time for r in rows) + 1

    async def get_commission_rate(self, symbol: str) -> tuple[Decimal, Decimal]:
        """``GET /fapi/v1/commissionRate?symbol=`` (weight 20) → (maker, taker); cached
        for fee estimates and copied into :meth:`rules`."""
        resp = await self._signed("GET", "/fapi/v1/commissionRate", encode_query((("symbol", symbol),)), weight=20)
        c = self._decode(S.decode_bn_commission, resp)
        fees = (c.maker_commission_rate, c.taker_commission_rate)
        self._fees[symbol] = fees
        r = self._rules.get(symbol)
        if r is not None:
            self._rules[symbol] = msgspec.structs.replace(r, maker_fee=fees[0], taker_fee=fees[1])
        return fees

    # -- market --------------------------------------------------------------------------
    async def get_order_book(self, symbol: str, depth: int = 15) -> OrderBook:
        """``GET /fapi/v1/depth`` with the smallest allowed limit >= ``depth`` (1..1000)."""
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 1000:
            raise ValueError(f"depth: expected an integer 1..1000, got {depth!r}")
        limit, weight = next((lim, w) for lim, w in _DEPTH_LIMITS if lim >= depth)
        resp = await self._public(
            "/fapi/v1/depth", encode_query((("symbol", symbol), ("limit", str(limit)))), weight=weight
        )
        d = self._decode(S.decode_bn_depth, resp)
        return OrderBook(symbol=symbol, bids=d.bids[:depth], asks=d.asks[:depth], ts_ms=d.T)

    async def best_bid_ask(self, symbol: str) -> tuple[Decimal, Decimal]:
        """``GET /fapi/v1/ticker/bookTicker?symbol=`` (weight 2)."""
        resp = await self._public("/fapi/v1/ticker/bookTicker", encode_query((("symbol", symbol),)), weight=2)
        t = self._decode(S.decode_bn_book_ticker, resp)
        return t.bid_price, t.ask_price


def position_from(symbol: str, rows: Any, account: Any, leverage: int, margin_type: str) -> Position:
    """A :class:`Position` from ``positionRisk`` rows and the account (one-way mode row
    first); shared by the direct and the ccxt adapter so both report the same."""
    row = next((r for r in rows if r.symbol == symbol and r.position_side in ("BOTH", "")), None)
    if row is None:
        row = next((r for r in rows if r.symbol == symbol), None)
    if row is None:
        return Position(
            symbol=symbol, qty=_ZERO, leverage=leverage, margin_type=margin_type,
            margin_balance=account.total_margin_balance,
        )
    return Position(
        symbol=symbol,
        qty=row.position_amt,
        entry_price=row.entry_price,
        mark_price=row.mark_price,
        liquidation_price=row.liquidation_price,
        unrealized_pnl=row.un_realized_profit,
        leverage=row.leverage if row.leverage is not None else leverage,
        margin_type=(row.margin_type or margin_type).upper(),
        maint_margin=row.maint_margin,
        margin_balance=account.total_margin_balance,
    )
