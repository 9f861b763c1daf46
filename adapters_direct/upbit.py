"""Direct Upbit KRW-spot adapter (REST, JWT-signed) — ``UpbitSpot``.

Wire format (EXCHANGE_NOTES part A): JSON POST bodies whose ``query_hash`` covers the
same fields rendered as ``k=v&...``; GET/DELETE parameters hashed un-encoded; a fresh
nonce (a fresh JWT) on every request, a retried read included. Responses decode into the
Structs of :mod:`adapters_direct.schemas`, decimals exact.

What a caller must know:

* ``identifier`` (our ``client_id``) is **single-use forever**: once sent, it can never be
  used again, even if that order was rejected or never created. After any failure, the
  next order of that leg needs a new id (``attempt + 1``), and after ``OutcomeUnknown``
  look the old id up with :meth:`UpbitSpot.get_order` before sending anything.
* A market buy is sized in KRW: ``OrderRequest(type="market", side="buy",
  quote_amount=KRW)``; a market buy by quantity is refused locally.
* ``POST /v1/orders`` answers before matching: an IOC/FOK/market order may come back as
  ``wait``. ``place_order`` then polls ``GET /v1/order`` for up to
  ``final_state_timeout_s`` (default 1 s) and returns the last state it saw; a
  non-final result means "ask again later", never "not executed".
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from collections.abc import Awaitable
from typing import Any, Callable

import msgspec

from kimp_fast.models import Balance, BookLevel, OrderBook, OrderRequest, OrderResult, SymbolRules
from kimp_fast.orders import encode_query, encode_upbit_order, raw_query, upbit_tick_size
from kimp_fast.signing import UpbitSigner

from . import schemas as S
from ._http import CONNECTION_LOST, AdapterOptions, Response, Transport, _raise, default_limiter, periodic
from .base import SpotAdapter
from .client_ids import is_valid_upbit_identifier
from .errors import (
    AdapterError,
    AuthError,
    InsufficientFunds,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)

__all__ = ["UPBIT_URL", "UpbitSpot", "upbit_error"]

UPBIT_URL = "https://api.upbit.com"
log = logging.getLogger("adapters_direct.upbit")

_QTY_STEP = Decimal("0.00000001")  # coin volumes carry at most 8 decimals
_KRW_STEP = Decimal(1)
_ZERO = Decimal(0)
_JSON = "application/json; charset=utf-8"
# Back-off of the final-state poll (seconds); the sum of the first few is ~1 s.
_POLL_DELAYS = (0.01, 0.02, 0.04, 0.08, 0.15, 0.25, 0.25, 0.25, 0.25)

_AUTH_NAMES = frozenset(
    {
        "invalid_query_payload",
        "jwt_verification",
        "expired_access_key",
        "nonce_used",
        "no_authorization_ip",
        "no_authorization_i_p",
        "no_authorization_token",
        "invalid_access_key",
        "out_of_scope",
    }
)
_IMMEDIATE_TYPES = frozenset({"price", "market", "best"})


# --------------------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------------------
def upbit_error(resp: Response, *, client_id: str | None = None) -> AdapterError:
    """Map a non-2xx Upbit response (not 429/418) to the error taxonomy.

    ======================================  ============================================
    HTTP / ``error.name``                   class (``code``)
    ======================================  ============================================
    ``insufficient_funds_*``                InsufficientFunds (name)
    401 any, 403 ``out_of_scope``,          AuthError (name)
    ``jwt_verification``, ``nonce_used``…
    404 ``order_not_found`` / no body       OrderNotFound (name or ``order_not_found``)
    other 4xx (``under_min_total_*``,       Rejected (name; ``http_<status>`` if no body)
    ``invalid_price_*``, ``invalid_volume_*``,
    ``create_*_error``, ``validation_error``,
    ``market_offline``, identifier reuse,
    other 404s such as an unknown market)
    403 without an Upbit error body         Unavailable (a firewall answered, not Upbit)
    408, 5xx, anything else                 OutcomeUnknown
    ======================================  ============================================
    """
    status = resp.status
    name: str | None = None
    message = ""
    try:
        err = S.decode_upbit_error(resp.body).error
        name = None if err.name is None else str(err.name)
        message = err.message or ""
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    kw: dict[str, Any] = {"exchange": "upbit", "status": status, "client_id": client_id}
    text = message or (name or f"HTTP {status}")
    if status >= 500 or status == 408:
        return OutcomeUnknown(f"server error: {text}", code=name, **kw)
    if name is not None and name.startswith("insufficient_funds"):
        return InsufficientFunds(text, code=name, **kw)
    if status == 401 or name in _AUTH_NAMES:
        return AuthError(text, code=name or "unauthorized", **kw)
    if status == 404 and (name is None or "order" in name):
        return OrderNotFound(text, code=name or "order_not_found", **kw)
    if status == 403 and name is None:
        return Unavailable("request blocked (HTTP 403 without an Upbit error body)", **kw)
    if 400 <= status < 500:
        return Rejected(text, code=name or f"http_{status}", **kw)
    return OutcomeUnknown(f"unexpected response: {text}", code=name, **kw)


# --------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------
def _parse_ts_ms(created_at: str | None) -> int:
    if not created_at:
        return 0
    try:
        return int(datetime.fromisoformat(created_at).timestamp() * 1000)
    except ValueError:
        return 0


def _plain(d: Decimal) -> Decimal:
    """A whole-number quotient as an integer Decimal (``140835000``, not ``1.40835E+8``)."""
    return d.to_integral_value() if d == d.to_integral_value() else d


def _status(o: S.UpbitOrder) -> str:
    """Upbit state -> OrderResult.status.

    ``wait``/``watch`` are open (``partially_filled`` once something executed); ``done`` is
    filled; ``cancel`` is ``expired`` when the remainder died by the order's own terms
    (IOC/FOK, market/price/best orders) and ``canceled`` when someone cancelled a
    resting order. Either may carry ``filled_qty > 0``: "partially_filled" is only ever an
    open order.
    """
    state = o.state
    if state in ("wait", "watch"):
        return "partially_filled" if o.executed_volume > 0 else "open"
    if state == "done":
        return "filled"
    if state == "cancel":
        if o.ord_type in _IMMEDIATE_TYPES or o.time_in_force in ("ioc", "fok"):
            return "expired"
        return "canceled"
    return "rejected"


def order_result(o: S.UpbitOrder, client_id: str = "") -> OrderResult:
    """Normalize an Upbit order object.

    ``avg_price`` = sum(trades.funds) / sum(trades.volume) when trades are present (they
    are on ``GET /v1/order``), else ``executed_funds / executed_volume``, else None.
    ``fee`` is ``paid_fee`` in the quote currency (KRW).
    """
    filled = o.executed_volume
    avg: Decimal | None = None
    quote = _ZERO
    if o.trades:
        vol = sum((t.volume for t in o.trades), _ZERO)
        quote = sum((t.funds for t in o.trades), _ZERO)
        if vol > 0:
            avg = _plain(quote / vol)
    elif o.executed_funds is not None:
        quote = o.executed_funds
        if filled > 0:
            avg = _plain(quote / filled)
    quote_ccy, _, _ = o.market.partition("-")
    return OrderResult(
        exchange="upbit",
        symbol=o.market,
        client_id=o.identifier or client_id,
        exchange_order_id=o.uuid,
        status=_status(o),  # type: ignore[arg-type]
        side="buy" if o.side == "bid" else "sell",
        quantity=o.volume,
        filled_qty=filled,
        avg_price=avg,
        quote_filled=quote,
        fee=o.paid_fee,
        fee_asset=quote_ccy,
        ts_ms=_parse_ts_ms(o.created_at),
    )


def _needs_follow_up(o: S.UpbitOrder) -> bool:
    """A just-placed order whose final state or fill price we do not know yet."""
    immediate = o.ord_type in _IMMEDIATE_TYPES or o.time_in_force in ("ioc", "fok")
    if o.state in ("wait", "watch"):
        return immediate
    return o.executed_volume > 0 and not o.trades and o.executed_funds is None


# --------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------
class UpbitSpot(SpotAdapter):
    """Upbit KRW spot over one keep-alive ``aiohttp`` session.

    Parameters
    ----------
    api_key, secret_key
        Upbit access key and secret key (kept inside the signer, never in reprs or logs).
    base_url
        None for ``https://api.upbit.com``; the simulator's URL in tests and paper mode.
    **options
        :class:`adapters_direct._http.AdapterOptions` fields (``symbols=("KRW-BTC",)``
        to preload rules, ``jwt_alg``, timeouts, ...) and ``rate_limiter=`` to share a
        :class:`kimp_fast.ratelimit.RateLimiter` between adapters using the same key.
    """

    name = "upbit"
    adapter_type = "direct"

    def __init__(self, *, api_key: str, secret_key: str, base_url: str | None = None, **options: Any) -> None:
        opts = AdapterOptions.from_kwargs(options)
        limiter = options.get("rate_limiter")
        if limiter is None:
            limiter = default_limiter("upbit", opts)
        self.options = opts
        self._signer = UpbitSigner(api_key, secret_key, opts.jwt_alg)
        self._t = Transport("upbit", base_url or UPBIT_URL, opts, limiter)
        self._rules: dict[str, SymbolRules] = {}
        self._symbols: list[str] = list(dict.fromkeys(opts.symbols))
        self._fallback_logged: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        state = "open" if self._t.is_open else "closed"
        return f"UpbitSpot(base_url={self._t.base_url!r}, {state})"

    @property
    def base_url(self) -> str:
        return self._t.base_url

    @property
    def rate_limiter(self) -> Any:
        return self._t.limiter

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> None:
        """Open the session, pre-warm connections and load the rules of ``symbols``."""
        if self._t.is_open:
            return
        await self._t.open()
        try:
            # Concurrent public calls open ``prewarm_connections`` pooled connections, so
            # an order and a concurrent read both find a warm one.
            await self._prewarm()
            await self.refresh_rules()
        except BaseException:
            await self.close()
            raise
        if self.options.rules_refresh_s > 0:
            self._tasks.append(
                periodic(self.options.rules_refresh_s, self.refresh_rules, name="upbit-rules", log=log)
            )
        if self.options.keepwarm_s > 0:
            self._tasks.append(periodic(self.options.keepwarm_s, self._prewarm, name="upbit-keepwarm", log=log))

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

    async def _prewarm(self) -> None:
        await asyncio.gather(*(self._ping() for _ in range(self.options.prewarm_connections)))

    async def _ping(self) -> None:
        resp = await self._request("GET", "/v1/market/all", params=(("isDetails", "false"),), group="market", private=False)
        self._decode(S.decode_upbit_markets, resp)

    # -- transport ---------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
        body_hash_input: str = "",
        group: str,
        reserved: bool = False,
        private: bool = True,
        client_id: str | None = None,
        order_lane: bool = False,
    ) -> Response:
        """Throttle, sign (fresh nonce), send; return a 2xx response or raise the mapped error.

        GETs are retried once, re-signed, when a pooled connection died under them
        (``CONNECTION_LOST``); nothing else is retried here. Order placement, look-ups and
        cancels (``order_lane``) take the transport's order lane.
        """
        query = encode_query(params) if params else ""
        hash_input = body_hash_input if body is not None else (raw_query(params) if params else "")
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            await self._t.throttle(group, reserved=reserved)
            headers: dict[str, str] = {}
            if private:
                headers["Authorization"] = self._signer.authorization(hash_input or None)
            if body is not None:
                headers["Content-Type"] = _JSON
            try:
                resp = await self._t.send(
                    method, path, query=query, body=body, headers=headers, group=group, client_id=client_id,
                    order=order_lane,
                )
            except OutcomeUnknown as exc:
                if exc.code == CONNECTION_LOST and attempt + 1 < attempts:
                    continue
                raise
            return self._checked(resp, client_id, group)
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(self, resp: Response, client_id: str | None, group: str = "order") -> Response:
        """A 2xx response, or the mapped error raised. Upbit limits each group on its own:
        a 429 blocks the request's ``group`` only (a quotation 429, perhaps caused by
        another process on the same IP, never stops order look-ups)."""
        if 200 <= resp.status < 300:
            return resp
        if resp.status in (429, 418):
            name, message = _error_name_message(resp)
            raise self._t.rate_limited(resp, name, message or "Upbit rate limit", client_id=client_id, group=group)
        raise upbit_error(resp, client_id=client_id)

    def _decode(self, fn: Callable[[bytes], Any], resp: Response, client_id: str | None = None) -> Any:
        """Decode and validate (``schemas``); a refused answer is ``InvalidResponse``, an
        ``OutcomeUnknown``: for an order it is looked up, for a read it is refused."""
        try:
            return fn(resp.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise S.invalid_response(exc, exchange="upbit", status=resp.status, client_id=client_id) from None

    # -- rules ---------------------------------------------------------------------------
    def rules(self, symbol: str) -> SymbolRules:
        try:
            return self._rules[symbol]
        except KeyError:
            raise KeyError(
                f"no Upbit rules loaded for {symbol!r}; pass symbols=[...] or await load_rules([...])"
            ) from None

    def tick_for(self, symbol: str, price: Decimal) -> Decimal:
        """Tick valid at ``price``: ``/v1/orderbook/instruments`` (refreshed on the rules
        timer), or the KRW tick table only when instruments was unavailable (logged)."""
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
        ticks_task = asyncio.ensure_future(self._instrument_ticks(symbols))
        try:
            chances = await asyncio.gather(*(self._chance(s) for s in symbols))
        finally:
            ticks = await ticks_task
        for symbol, chance in zip(symbols, chances):
            quote, _, base = symbol.partition("-")
            prev = self._rules.get(symbol)
            m = chance.market
            mins = [x for x in (m.bid.min_total, m.ask.min_total) if x is not None]
            self._rules[symbol] = SymbolRules(
                exchange="upbit",
                symbol=symbol,
                base_asset=base,
                quote_asset=quote,
                qty_step=_QTY_STEP,
                # keep the last known tick when this refresh could not read instruments
                tick_size=ticks.get(symbol, prev.tick_size if prev is not None else None),
                min_notional=max(mins) if mins else _ZERO,
                max_notional=m.max_total,
                maker_fee=max(
                    chance.maker_bid_fee if chance.maker_bid_fee is not None else chance.bid_fee,
                    chance.maker_ask_fee if chance.maker_ask_fee is not None else chance.ask_fee,
                ),
                taker_fee=max(chance.bid_fee, chance.ask_fee),
            )

    async def _chance(self, symbol: str) -> S.UpbitChance:
        resp = await self._request("GET", "/v1/orders/chance", params=(("market", symbol),), group="default")
        return self._decode(S.decode_upbit_chance, resp)

    async def _instrument_ticks(self, symbols: list[str]) -> dict[str, Decimal]:
        try:
            resp = await self._request(
                "GET", "/v1/orderbook/instruments", params=(("markets", ",".join(symbols)),), group="orderbook", private=False
            )
            rows = self._decode(S.decode_upbit_instruments, resp)
        except (AuthError, Rejected, OutcomeUnknown, Unavailable, RateLimited) as exc:
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
    async def place_order(self, req: OrderRequest, *, reserved: bool = False) -> OrderResult:
        """Place one order (``POST /v1/orders``, group ``order``). Never retried.

        Mapping: limit → ``ord_type=limit`` (``time_in_force`` ioc/fok; gtc is the default
        and not sent); market buy → ``ord_type=price`` with ``quote_amount`` as the KRW
        total (rounded down to 1 KRW); market sell → ``ord_type=market`` with ``volume``.
        Volumes are rounded down to 8 decimals; a limit price off the tick grid is rounded
        toward the caller's favour (a buy down, a sell up), never past its limit.
        ``reduce_only`` and a market order's ``time_in_force`` mean nothing on spot and are
        ignored.

        Raises
        ------
        Rejected
            Locally (code ``invalid_client_id`` / ``invalid_request`` /
            ``unsupported_order``; nothing sent) or by Upbit (code = ``error.name``).
        InsufficientFunds, AuthError, RateLimited, Unavailable
            Not executed.
        OutcomeUnknown
            Timeout, dropped connection, 5xx or an undecodable 2xx: look the order up.
        """
        return await self.start_order(req, reserved=reserved)

    def start_order(self, req: OrderRequest, *, reserved: bool = False) -> Awaitable[OrderResult]:
        """:meth:`place_order`, with the request written before this returns when the
        symbol's rules are loaded, an order-lane connection is idle and the limiter has a
        slot free; otherwise it is sent when the result is awaited, exactly as
        ``place_order`` sends it. Errors come from the await, never from this call."""
        cid = req.client_id
        rules = self._rules.get(req.symbol)
        if rules is None or not is_valid_upbit_identifier(cid):
            return self._place(req, reserved)
        try:
            body, hash_input = self._encode(req, rules)
        except AdapterError as exc:
            return _raise(exc)
        sent = self._t.send_now(
            "POST", "/v1/orders", self._order_build(body, hash_input), group="order", reserved=reserved, client_id=cid,
        )
        if sent is None:
            return self._place(req, reserved, (body, hash_input))
        return self._placed(sent, cid, reserved)

    def rehearse_order(self, req: OrderRequest) -> bytes:
        """The bytes :meth:`start_order` would write for ``req`` now (fresh nonce), returned
        instead of sent. Raises like ``place_order`` would for bad input."""
        body, hash_input = self._encode(req, self.rules(req.symbol))
        return self._t.rehearse("POST", "/v1/orders", self._order_build(body, hash_input), group="order")

    def _order_build(self, body: bytes, hash_input: str) -> Callable[[], tuple[str, bytes, dict[str, str]]]:
        """The order request's last step: signed (fresh nonce) once the limiter let it go."""
        signer = self._signer
        return lambda: ("", body, {"Authorization": signer.authorization(hash_input or None), "Content-Type": _JSON})

    async def _place(self, req: OrderRequest, reserved: bool, encoded: tuple[bytes, str] | None = None) -> OrderResult:
        cid = req.client_id
        if not is_valid_upbit_identifier(cid):
            raise Rejected(
                f"client_id {cid!r} is not a valid Upbit identifier ([A-Za-z0-9_-], 1..64)",
                exchange="upbit",
                code="invalid_client_id",
                client_id=cid if isinstance(cid, str) else None,
            )
        rules = await self._rules_for(req.symbol)
        body, hash_input = encoded or self._encode(req, rules)
        sent = self._request(
            "POST", "/v1/orders", body=body, body_hash_input=hash_input, group="order", reserved=reserved, client_id=cid,
            order_lane=True,
        )
        return await self._placed(sent, cid, reserved)

    async def _placed(self, sent: Awaitable[Response], cid: str, reserved: bool) -> OrderResult:
        """The answer to an order, however it was sent (``_request`` has checked its own;
        a 2xx passes the check again unchanged)."""
        resp = self._checked(await sent, cid)
        order = self._decode(S.decode_upbit_order, resp, cid)
        if _needs_follow_up(order):
            order = await self._follow_up(order, reserved=reserved)
        return order_result(order, cid)

    def _encode(self, req: OrderRequest, rules: SymbolRules) -> tuple[bytes, str]:
        side = "bid" if req.side == "buy" else "ask"
        try:
            if req.type == "limit":
                assert req.price is not None
                tif = req.time_in_force if req.time_in_force in ("ioc", "fok") else None
                return encode_upbit_order(
                    req.symbol,
                    side,
                    "limit",
                    volume=req.quantity,
                    price=req.price,
                    time_in_force=tif,
                    identifier=req.client_id,
                    volume_step=rules.qty_step,
                    price_tick=self.tick_for(req.symbol, req.price),
                    price_rounding="down" if side == "bid" else "up",
                )
            if side == "bid":
                if req.quote_amount is None:
                    raise Rejected(
                        "an Upbit market buy is sized in KRW: pass quote_amount, not quantity",
                        exchange="upbit",
                        code="unsupported_order",
                        client_id=req.client_id,
                    )
                return encode_upbit_order(
                    req.symbol,
                    "bid",
                    "price",
                    price=req.quote_amount,
                    identifier=req.client_id,
                    price_tick=_KRW_STEP if rules.quote_asset == "KRW" else None,
                    price_rounding="down",
                )
            return encode_upbit_order(
                req.symbol, "ask", "market", volume=req.quantity, identifier=req.client_id, volume_step=rules.qty_step
            )
        except (ValueError, TypeError) as exc:
            raise Rejected(
                f"invalid order: {exc}", exchange="upbit", code="invalid_request", client_id=req.client_id
            ) from None

    async def _follow_up(self, order: S.UpbitOrder, *, reserved: bool) -> S.UpbitOrder:
        """Poll ``GET /v1/order?uuid=`` until the order is final and its trades are known,
        for at most ``final_state_timeout_s``. Failures end the poll quietly: the order
        exists, the caller gets the last state seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.final_state_timeout_s
        for delay in (0.0,) + _POLL_DELAYS:
            if delay:
                if loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
            try:
                order = await self._get(("uuid", order.uuid), reserved=reserved, client_id=order.identifier)
            except AdapterError as exc:
                log.info("upbit order %s: follow-up read failed (%s); returning last state", order.uuid, exc)
                break
            if not _needs_follow_up(order):
                break
        return order

    async def _get(self, key: tuple[str, str], *, reserved: bool, client_id: str | None) -> S.UpbitOrder:
        resp = await self._request(
            "GET", "/v1/order", params=(key,), group="default", reserved=reserved, client_id=client_id, order_lane=True
        )
        return self._decode(S.decode_upbit_order, resp, client_id)

    async def get_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``GET /v1/order?identifier=`` (with trades). ``OrderNotFound`` on 404."""
        self._check_lookup_id(client_id)
        return order_result(await self._get(("identifier", client_id), reserved=reserved, client_id=client_id), client_id)

    async def cancel_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """``DELETE /v1/order?identifier=``, then poll until the cancel is final.

        Upbit cancels asynchronously: the DELETE answer may still read ``wait``, and a
        fill can land in between, so the returned state (with ``filled_qty``) comes from
        ``GET /v1/order`` once it reads ``cancel``/``done`` (bounded by
        ``final_state_timeout_s``). If Upbit refuses the cancel because the order is
        already final, the order's current state is returned instead of an error.
        """
        self._check_lookup_id(client_id)
        try:
            resp = await self._request(
                "DELETE", "/v1/order", params=(("identifier", client_id),), group="default", reserved=reserved,
                client_id=client_id, order_lane=True,
            )
        except Rejected as exc:
            if isinstance(exc, InsufficientFunds):
                raise
            try:
                current = await self._get(("identifier", client_id), reserved=reserved, client_id=client_id)
            except OrderNotFound:
                raise exc from None
            if current.state in ("done", "cancel"):
                return order_result(current, client_id)
            raise
        order = self._decode(S.decode_upbit_order, resp, client_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.final_state_timeout_s
        for delay in (0.0,) + _POLL_DELAYS:
            if delay:
                if loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
            try:
                order = await self._get(("uuid", order.uuid), reserved=reserved, client_id=client_id)
            except AdapterError as exc:
                log.info("upbit cancel %s: follow-up read failed (%s)", client_id, exc)
                break
            if order.state in ("done", "cancel"):
                break
        return order_result(order, client_id)

    def _check_lookup_id(self, client_id: str) -> None:
        if not is_valid_upbit_identifier(client_id):
            raise Rejected(
                f"client_id {client_id!r} is not a valid Upbit identifier",
                exchange="upbit",
                code="invalid_client_id",
            )

    # -- account and market --------------------------------------------------------------
    async def get_balances(self) -> dict[str, Balance]:
        """``GET /v1/accounts``: ``free`` = balance (Upbit excludes locked), ``locked``."""
        resp = await self._request("GET", "/v1/accounts", group="default")
        rows = self._decode(S.decode_upbit_accounts, resp)
        return {r.currency: Balance(asset=r.currency, free=r.balance, locked=r.locked) for r in rows}

    async def get_order_book(self, symbol: str, depth: int = 15) -> OrderBook:
        """``GET /v1/orderbook?markets=`` (public, group ``orderbook``), top ``depth`` (1..30)."""
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 30:
            raise ValueError(f"depth: expected an integer 1..30, got {depth!r}")
        resp = await self._request(
            "GET", "/v1/orderbook", params=(("markets", symbol), ("count", str(depth))), group="orderbook", private=False
        )
        books = self._decode(S.decode_upbit_orderbooks, resp)
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


def _error_name_message(resp: Response) -> tuple[str | None, str]:
    try:
        err = S.decode_upbit_error(resp.body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, ""
    return (None if err.name is None else str(err.name)), err.message or ""
