"""Binance USDⓈ-M futures on its real wire format: ``/fapi/...``, form/query parameters,
HMAC-SHA256 signatures, ``{"code", "msg"}`` errors.

Reference: EXCHANGE_NOTES part B. Behaviour worth knowing (and tested):

* ``newOrderRespType=ACK`` (the default) answers ``NEW`` / ``executedQty "0"`` even for a
  MARKET order that already filled; ``RESULT`` answers the final state.
* ``newClientOrderId`` is unique only among *open* orders (-4116); once an order is final
  its id can be sent again and becomes a second order.
* One-way mode only: the position carries entry price, leverage, margin type and a
  liquidation price; reduce-only orders that would increase or flip it are refused
  (-2022); margin is checked against leverage (-2019); funding is charged on the
  simulation clock's 8-hour schedule and shows up in ``/fapi/v1/income``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Callable
from urllib.parse import parse_qsl

import orjson

from .accounts import BTC_BRACKETS, SimOrder, Trade
from .auth import binance_payload_and_signature, verify_binance_signature
from .decimals import ZERO, dec_or_none, fixed, plain, q8
from .market import BINANCE_SYMBOLS
from .ratelimit import retry_after_header
from .state import FUNDING_INTERVAL_S, SimState
from .wire import BinanceError, Ctx, Reply

__all__ = ["BinanceExchange", "SymbolRules"]

_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_JSON = "application/json"
_MAX_OPEN_ORDERS = 200

Handler = Callable[[Ctx, dict[str, str]], Reply]


@dataclass
class SymbolRules:
    """Exchange filters of one symbol (BTCUSDT defaults from a live exchangeInfo)."""

    tick_size: Decimal = Decimal("0.10")
    min_price: Decimal = Decimal("556.80")
    max_price: Decimal = Decimal("4529764")
    step_size: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    max_qty: Decimal = Decimal("1000")
    market_max_qty: Decimal = Decimal("120")
    min_notional: Decimal = Decimal("100")
    multiplier_up: Decimal = Decimal("1.0500")
    multiplier_down: Decimal = Decimal("0.9500")
    price_precision: int = 2
    quantity_precision: int = 3

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"filterType": "PRICE_FILTER", "minPrice": plain(self.min_price), "maxPrice": plain(self.max_price),
             "tickSize": fixed(self.tick_size, 2)},
            {"filterType": "LOT_SIZE", "minQty": plain(self.min_qty), "maxQty": plain(self.max_qty),
             "stepSize": plain(self.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": plain(self.min_qty), "maxQty": plain(self.market_max_qty),
             "stepSize": plain(self.step_size)},
            {"filterType": "MAX_NUM_ORDERS", "limit": _MAX_OPEN_ORDERS},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": plain(self.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": fixed(self.multiplier_up, 4),
             "multiplierDown": fixed(self.multiplier_down, 4), "multiplierDecimal": "4"},
        ]


def _mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def _bool_param(params: dict[str, str], name: str) -> bool:
    v = params.get(name)
    if v is None or v == "":
        return False
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def _avg(o: SimOrder) -> str:
    return plain(o.avg_price) if o.filled else "0.00000"


class BinanceExchange:
    def __init__(self, state: SimState) -> None:
        self.s = state
        self.rules: dict[str, SymbolRules] = {sym: SymbolRules() for sym in BINANCE_SYMBOLS}
        self.funding_history: list[dict[str, Any]] = []
        state.on_tick.append(self._on_tick)
        w = lambda n: (lambda p: n)  # noqa: E731 - constant weight
        # (method, path) -> (handler, weight(params), signed, counts as an order)
        self.routes: dict[tuple[str, str], tuple[Handler, Callable[[dict[str, str]], int], bool, bool]] = {
            ("GET", "/fapi/v1/ping"): (self.ping, w(1), False, False),
            ("GET", "/fapi/v1/time"): (self.time, w(1), False, False),
            ("GET", "/fapi/v1/exchangeInfo"): (self.exchange_info, w(1), False, False),
            ("GET", "/fapi/v1/depth"): (self.depth, self._depth_weight, False, False),
            ("GET", "/fapi/v1/ticker/bookTicker"): (self.book_ticker, lambda p: 2 if p.get("symbol") else 5, False, False),
            ("GET", "/fapi/v1/premiumIndex"): (self.premium_index, lambda p: 1 if p.get("symbol") else 10, False, False),
            ("GET", "/fapi/v1/fundingRate"): (self.funding_rate_history, w(1), False, False),
            ("GET", "/fapi/v1/fundingInfo"): (self.funding_info, w(0), False, False),
            ("POST", "/fapi/v1/order"): (self.new_order, w(0), True, True),
            ("POST", "/fapi/v1/order/test"): (self.test_order, w(0), True, False),
            ("GET", "/fapi/v1/order"): (self.query_order, w(1), True, False),
            ("DELETE", "/fapi/v1/order"): (self.cancel_order, w(1), True, False),
            ("GET", "/fapi/v1/openOrders"): (self.open_orders, lambda p: 1 if p.get("symbol") else 40, True, False),
            ("GET", "/fapi/v1/openOrder"): (self.open_order, w(1), True, False),
            ("GET", "/fapi/v1/allOrders"): (self.all_orders, w(5), True, False),
            ("DELETE", "/fapi/v1/allOpenOrders"): (self.cancel_all, w(1), True, False),
            ("GET", "/fapi/v3/positionRisk"): (self.position_risk_v3, w(5), True, False),
            ("GET", "/fapi/v2/positionRisk"): (self.position_risk_v2, w(5), True, False),
            ("GET", "/fapi/v3/account"): (self.account_v3, w(5), True, False),
            ("GET", "/fapi/v2/account"): (self.account_v2, w(5), True, False),
            ("GET", "/fapi/v3/balance"): (self.balance, w(5), True, False),
            ("GET", "/fapi/v2/balance"): (self.balance, w(5), True, False),
            ("POST", "/fapi/v1/leverage"): (self.set_leverage, w(1), True, False),
            ("POST", "/fapi/v1/marginType"): (self.set_margin_type, w(1), True, False),
            ("GET", "/fapi/v1/positionSide/dual"): (self.get_dual, w(30), True, False),
            ("POST", "/fapi/v1/positionSide/dual"): (self.set_dual, w(1), True, False),
            ("GET", "/fapi/v1/multiAssetsMargin"): (self.multi_assets, w(30), True, False),
            ("GET", "/fapi/v1/leverageBracket"): (self.leverage_bracket, w(1), True, False),
            ("GET", "/fapi/v1/symbolConfig"): (self.symbol_config, w(5), True, False),
            ("GET", "/fapi/v1/income"): (self.income, w(30), True, False),
            ("GET", "/fapi/v1/commissionRate"): (self.commission_rate, w(20), True, False),
            ("GET", "/fapi/v1/rateLimit/order"): (self.rate_limit_order, w(1), True, False),
            ("GET", "/sapi/v1/capital/config/getall"): (self.empty_list, w(10), True, False),
            ("GET", "/sapi/v1/margin/allPairs"): (self.empty_list, w(1), True, False),
        }

    # ------------------------------------------------------------------ plumbing
    def handle(self, ctx: Ctx) -> Reply:
        route = self.routes.get((ctx.method, ctx.path))
        if route is None:
            return Reply(404, orjson.dumps({"code": -5000, "msg": f"Path {ctx.path}, Method {ctx.method} is invalid"}),
                         {"Content-Type": _JSON})
        handler, weight_of, signed, is_order = route
        body_text = ctx.body.decode("utf-8", "replace") if ctx.body else ""
        params: dict[str, str] = dict(parse_qsl(body_text, keep_blank_values=True)) if body_text else {}
        params.update(ctx.query)  # the query string wins over the body (Binance rule)
        key = ctx.headers.get("X-MBX-APIKEY")
        account = key if signed and key == self.s.config.binance_keys.api_key else None
        verdict, headers = self.s.binance_limiter.check(ctx.ip, account, weight_of(params), 1 if is_order else 0)
        if verdict.status == 429:
            if verdict.reason == "orders":
                err = BinanceError(-1015, "Too many new orders; current limit is "
                                   f"{self.s.config.limits.binance_orders_per_10s} orders per 10 SECOND.", 429)
            else:
                err = BinanceError(-1003, f"Too many requests; current limit of IP({ctx.ip}) request weight per minute "
                                   f"is {self.s.config.limits.binance_weight_per_min}. Please use WebSocket Streams "
                                   "for live updates to avoid polling the API.", 429)
            reply = err.reply()
            headers["Retry-After"] = retry_after_header(verdict.retry_after)
        elif verdict.status == 418:
            until = self.s.binance_limiter.banned_until_ms(ctx.ip)
            reply = BinanceError(-1003, f"Way too many requests; IP({ctx.ip}) banned until {until}. Please use "
                                 "WebSocket Streams for live updates to avoid bans.", 418).reply()
            headers["Retry-After"] = retry_after_header(verdict.retry_after)
        else:
            try:
                if signed:
                    self._authenticate(ctx, params, body_text)
                reply = handler(ctx, params)
            except BinanceError as e:
                reply = e.reply()
        headers["Content-Type"] = _JSON
        if reply.headers:
            headers.update(reply.headers)
        reply.headers = headers
        return reply

    def _authenticate(self, ctx: Ctx, params: dict[str, str], body_text: str) -> None:
        keys = self.s.config.binance_keys
        key = ctx.headers.get("X-MBX-APIKEY")
        if not key or not _KEY_RE.match(key):
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key != keys.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload, signature = binance_payload_and_signature(ctx.raw_query, body_text)
        if "timestamp" not in params:
            raise _mandatory("timestamp")
        if not signature:
            raise _mandatory("signature")
        if not verify_binance_signature(keys.secret_key, payload, signature):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
            recv = int(params.get("recvWindow") or self.s.config.recv_window_ms)
        except ValueError:
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
        if recv <= 0 or recv > 60000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = self.s.clock.wall_ms()
        if ts >= now + 1000:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > recv:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    @staticmethod
    def _json(obj: Any, status: int = 200) -> Reply:
        return Reply(status, orjson.dumps(obj))

    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        sym = params.get("symbol")
        if not sym:
            if required:
                raise _mandatory("symbol")
            return None
        if sym not in self.rules:
            raise BinanceError(-1121, "Invalid symbol.")
        return sym

    @staticmethod
    def _depth_weight(params: dict[str, str]) -> int:
        try:
            limit = int(params.get("limit", 500))
        except ValueError:
            return 2
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    # ------------------------------------------------------------------ market data
    def ping(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json({})

    def time(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json({"serverTime": self.s.clock.wall_ms()})

    def exchange_info(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        lim = self.s.config.limits
        symbols = []
        for sym, r in self.rules.items():
            symbols.append({
                "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000", "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": r.price_precision, "quantityPrecision": r.quantity_precision,
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
                "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500",
                "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000, "filters": r.filters(),
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                               "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSet": ["GRID", "COPY"],
            })
        return self._json({
            "timezone": "UTC", "serverTime": self.s.clock.wall_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": lim.binance_weight_per_min},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": lim.binance_orders_per_min},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": lim.binance_orders_per_10s},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        })

    def depth(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params)
        assert sym is not None
        try:
            limit = int(params.get("limit", 500))
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.") from None
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        r = self.rules[sym]
        bids, asks = self.s.market.book_strings(sym, limit, r.price_precision, r.quantity_precision)
        now = self.s.clock.wall_ms()
        return self._json({"lastUpdateId": self.s.market.version, "E": now, "T": now, "bids": bids, "asks": asks})

    def _book_ticker_row(self, sym: str) -> dict[str, Any]:
        r = self.rules[sym]
        (bid,), (ask,) = self.s.market.book_strings(sym, 1, r.price_precision, r.quantity_precision)
        return {"symbol": sym, "bidPrice": bid[0], "bidQty": bid[1], "askPrice": ask[0], "askQty": ask[1],
                "time": self.s.clock.wall_ms(), "lastUpdateId": self.s.market.version}

    def book_ticker(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        if sym:
            return self._json(self._book_ticker_row(sym))
        return self._json([self._book_ticker_row(s) for s in self.rules])

    def next_funding_ms(self) -> int:
        return round(self.s.clock.wall_at_sim(self.s.next_funding_sim) * 1000)

    def _premium_row(self, sym: str) -> dict[str, Any]:
        mark = self.s.market.mark_price(sym)
        return {"symbol": sym, "markPrice": fixed(mark, 8), "indexPrice": fixed(mark, 8),
                "estimatedSettlePrice": fixed(mark, 8),
                "lastFundingRate": fixed(Decimal(str(self.s.config.market.funding_rate)), 8),
                "interestRate": "0.00010000", "nextFundingTime": self.next_funding_ms(),
                "time": self.s.clock.wall_ms()}

    def premium_index(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        if sym:
            return self._json(self._premium_row(sym))
        return self._json([self._premium_row(s) for s in self.rules])

    def funding_rate_history(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        limit = min(int(params.get("limit", 100)), 1000)
        rows = [r for r in self.funding_history if sym is None or r["symbol"] == sym]
        return self._json(rows[-limit:])

    def funding_info(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json([])

    def empty_list(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json([])

    # ------------------------------------------------------------------ orders
    def order_json(self, o: SimOrder, *, ack: bool = False, query: bool = False) -> dict[str, Any]:
        executed = "0" if ack else plain(o.filled)
        d: dict[str, Any] = {
            "orderId": int(o.exchange_order_id),
            "symbol": o.symbol,
            "status": "NEW" if ack else o.state,
            "clientOrderId": o.client_id,
            "price": plain(o.price) if o.price is not None else "0",
            "avgPrice": "0.00000" if ack else _avg(o),
            "origQty": plain(o.qty or ZERO),
            "executedQty": executed,
            "cumQty": executed,
            "cumQuote": "0" if ack else plain(o.funds),
            "timeInForce": o.tif or "GTC",
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": "BUY" if o.side == "buy" else "SELL",
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": o.created_ms if ack else o.updated_ms,
        }
        if query:
            del d["cumQty"]
            d["time"] = o.created_ms
        return d

    def new_order(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        order = self._place(ctx, params, test=False)
        return self._json(self.order_json(order, ack=order.resp_type == "ACK"))

    def test_order(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        self._place(ctx, params, test=True)
        return self._json({})

    def _place(self, ctx: Ctx, params: dict[str, str], *, test: bool) -> SimOrder:
        s = self.s
        sym = self._symbol(params)
        assert sym is not None
        r = self.rules[sym]
        side_raw = params.get("side")
        if not side_raw:
            raise _mandatory("side")
        if side_raw not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        side = "buy" if side_raw == "BUY" else "sell"
        otype = params.get("type")
        if not otype:
            raise _mandatory("type")
        if otype in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise BinanceError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                               "endpoints instead.")
        if otype not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        position_side = params.get("positionSide", "BOTH")
        if position_side not in ("BOTH", "LONG", "SHORT"):
            raise BinanceError(-1130, "Data sent for parameter 'positionSide' is not valid.")
        acct = s.binance
        if acct.dual_side or position_side != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        reduce_only = _bool_param(params, "reduceOnly")
        if _bool_param(params, "closePosition"):
            raise _not_required("closePosition")
        resp_type = params.get("newOrderRespType", "ACK")
        if resp_type not in ("ACK", "RESULT"):
            raise BinanceError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        client_id = params.get("newClientOrderId")
        if client_id is not None:
            if not _CLIENT_ID_RE.match(client_id):
                raise BinanceError(-4015, "Client order id is not valid.")
        # quantity
        qty_raw = params.get("quantity")
        if not qty_raw:
            raise _mandatory("quantity")
        qty = dec_or_none(qty_raw)
        if qty is None:
            raise BinanceError(-1100, "Illegal characters found in parameter 'quantity'; legal range is "
                               "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        if qty.as_tuple().exponent < -r.quantity_precision and qty != qty.quantize(Decimal(1).scaleb(-r.quantity_precision)):
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if qty <= 0:
            raise BinanceError(-4003, "Quantity less than or equal to zero.")
        if qty < r.min_qty:
            raise BinanceError(-4004, "Quantity less than minimum quantity.")
        if qty > (r.market_max_qty if otype == "MARKET" else r.max_qty):
            raise BinanceError(-4005, "Quantity greater than max quantity.")
        if qty % r.step_size:
            raise BinanceError(-4023, "Quantity not increased by step size.")
        mark = s.market.mark_price(sym)
        price: Decimal | None = None
        tif: str | None = None
        if otype == "LIMIT":
            tif = params.get("timeInForce")
            if not tif:
                raise _mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
                raise BinanceError(-1130, "Data sent for parameter 'timeInForce' is not valid.")
            if tif == "GTD":
                raise BinanceError(-1130, "Data sent for parameter 'timeInForce' is not valid.")
            price_raw = params.get("price")
            if not price_raw:
                raise _mandatory("price")
            price = dec_or_none(price_raw)
            if price is None:
                raise BinanceError(-1100, "Illegal characters found in parameter 'price'; legal range is "
                                   "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
            if price.as_tuple().exponent < -r.price_precision and price != price.quantize(Decimal(1).scaleb(-r.price_precision)):
                raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
            if price <= 0 or price < r.min_price:
                raise BinanceError(-4013, "Price less than min price.")
            if price > r.max_price:
                raise BinanceError(-4016, f"Limit price can't be higher than {plain(r.max_price)}.")
            if (price - r.min_price) % r.tick_size:
                raise BinanceError(-4014, "Price not increased by tick size.")
            up, down = mark * r.multiplier_up, mark * r.multiplier_down
            if price > up:
                raise BinanceError(-4016, f"Limit price can't be higher than {fixed(up, r.price_precision)}.")
            if price < down:
                raise BinanceError(-4024, f"Limit price can't be lower than {fixed(down, r.price_precision)}.")
        else:
            if params.get("price"):
                raise _not_required("price")
        notional = qty * (price if price is not None else mark)
        if notional < r.min_notional and not reduce_only:
            raise BinanceError(-4164, f"Order's notional must be no smaller than {plain(r.min_notional)} "
                               "(unless you choose reduce only).")
        pos = acct.position(sym)
        signed = qty if side == "buy" else -qty
        if reduce_only:
            if pos.qty == 0 or (pos.qty > 0) == (signed > 0) or qty > abs(pos.qty):
                raise BinanceError(-2022, "ReduceOnly Order is rejected.")
            increase = ZERO
        elif pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            increase = qty
        else:
            increase = max(ZERO, qty - abs(pos.qty))
        ref = price if price is not None else mark
        required = increase * ref / pos.leverage + qty * ref * s.config.fees.binance_taker
        if required > 0 and required > acct.available(s.marks(), s.open_order_margin()):
            raise BinanceError(-2019, "Margin is insufficient.")
        if client_id is not None:
            for other in s.binance_by_client.get(client_id, ()):
                if other.is_open:  # only the orders that carried this id: a short list
                    raise BinanceError(-4116, "ClientOrderId is duplicated.")
        if sum(1 for o in s.binance_open.values() if o.symbol == sym) >= _MAX_OPEN_ORDERS:
            raise BinanceError(-2025, "Reach max open order limit.")
        # post-only / FOK decided before anything is recorded (Binance does not record them)
        book = s.market
        if tif == "GTX":
            best_bid, best_ask = book.best(sym)
            if (side == "buy" and price >= best_ask) or (side == "sell" and price <= best_bid):  # type: ignore[operator]
                raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order will be "
                                   "rejected. The order will not be recorded in the order history")
        fraction = ctx.fill_fraction
        if tif == "FOK":
            avail = book.take(sym, side, qty=qty, limit=price, dry_run=True)
            if (fraction is not None and fraction < 1) or sum((q for _, q in avail), ZERO) < qty:
                raise BinanceError(-5021, "Due to the order could not be filled immediately, the FOK order has been "
                                   "rejected. The order will not be recorded in the order history")
        now = s.clock.wall_ms()
        order = SimOrder(
            exchange="binance", symbol=sym, exchange_order_id=str(s.new_binance_order_id() if not test else 0),
            client_id=client_id or s.new_client_id(), side=side, type=otype, tif=tif, qty=qty, price=price,
            quote_amount=None, created_ms=now, state="NEW", fee_asset="USDT", updated_ms=now,
            reduce_only=reduce_only, resp_type=resp_type,
        )
        if test:
            return order
        if ctx.fault is not None:
            order.fault = ctx.fault.kind
        s.add_order(order)
        s.binance_by_id[int(order.exchange_order_id)] = order
        s.binance_by_client.setdefault(order.client_id, []).append(order)  # type: ignore[arg-type]
        target = qty if fraction is None else (qty * fraction).quantize(r.step_size, rounding=ROUND_DOWN)
        if otype == "MARKET":
            fills = book.take(sym, side, qty=target)
            self._apply_fills(order, fills, maker=False)
            order.state = "FILLED" if order.filled >= qty else "EXPIRED"
        else:
            best_bid, best_ask = book.best(sym)
            crosses = price >= best_ask if side == "buy" else price <= best_bid  # type: ignore[operator]
            if crosses and target > 0:
                fills = book.take(sym, side, qty=target, limit=price)
                self._apply_fills(order, fills, maker=False)
            if order.filled >= qty:
                order.state = "FILLED"
            elif tif in ("IOC", "FOK"):
                order.state = "EXPIRED"
            else:
                order.state = "PARTIALLY_FILLED" if order.filled else "NEW"
        order.updated_ms = s.clock.wall_ms()
        s.sync_open(order)
        return order

    def _apply_fills(self, o: SimOrder, fills: list[tuple[Decimal, Decimal]], *, maker: bool) -> None:
        s = self.s
        rate = s.config.fees.binance_maker if maker else s.config.fees.binance_taker
        now = s.clock.wall_ms()
        for price, qty in fills:
            funds = price * qty
            fee = q8(funds * rate)
            trade_id = s.new_trade_id()
            s.binance.apply_fill(o.symbol, qty if o.side == "buy" else -qty, price, fee, now, trade_id)
            o.filled += qty
            o.funds += funds
            o.fee += fee
            o.trades.append(Trade(trade_id, price, qty, funds, fee, now, maker))
        o.updated_ms = now

    def _find(self, params: dict[str, str], *, code: int, msg: str) -> SimOrder:
        sym = self._symbol(params)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(-1102, "Either orderId or origClientOrderId must be sent.")
        order: SimOrder | None = None
        if order_id:
            try:
                order = self.s.binance_by_id.get(int(order_id))
            except ValueError:
                raise BinanceError(-1100, "Illegal characters found in parameter 'orderId'.") from None
        else:
            same = self.s.binance_by_client.get(client_id or "")
            if same:
                order = same[-1]  # the most recent order that carried this client id
        if order is None or order.symbol != sym:
            raise BinanceError(code, msg)
        return order

    def query_order(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        order = self._find(params, code=-2013, msg="Order does not exist.")
        return self._json(self.order_json(order, query=True))

    def open_order(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        order = self._find(params, code=-2013, msg="Order does not exist.")
        if not order.is_open:
            raise BinanceError(-2013, "Order does not exist.")
        return self._json(self.order_json(order, query=True))

    def cancel_order(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        order = self._find(params, code=-2011, msg="Unknown order sent.")
        if not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        order.state = "CANCELED"
        order.updated_ms = self.s.clock.wall_ms()
        self.s.sync_open(order)
        return self._json(self.order_json(order))

    def cancel_all(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params)
        now = self.s.clock.wall_ms()
        for o in list(self.s.binance_open.values()):
            if o.symbol == sym:
                o.state = "CANCELED"
                o.updated_ms = now
                self.s.sync_open(o)
        return self._json({"code": 200, "msg": "The operation of cancel all open order is done."})

    def open_orders(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        rows = [self.order_json(o, query=True) for o in self.s.binance_open.values()
                if sym is None or o.symbol == sym]
        return self._json(rows)

    def all_orders(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params)
        limit = min(int(params.get("limit", 500)), 1000)
        rows = [self.order_json(o, query=True) for o in self.s.binance_by_id.values() if o.symbol == sym]
        return self._json(rows[-limit:])

    # ------------------------------------------------------------------ background
    def _on_tick(self, moved: bool) -> None:
        s = self.s
        if s.clock.sim() >= s.next_funding_sim:
            self._charge_funding()
        if not moved:
            return
        # resting LIMIT orders fill as makers, at their price, when the market reaches them
        for o in list(s.binance_open.values()):
            if o.type != "LIMIT":
                continue
            best_bid, best_ask = s.market.best(o.symbol)
            if (o.side == "buy" and best_ask <= o.price) or (o.side == "sell" and best_bid >= o.price):  # type: ignore[operator]
                remaining = o.qty - o.filled  # type: ignore[operator]
                if o.reduce_only:
                    pos = s.binance.position(o.symbol).qty
                    if pos == 0 or (pos > 0) == (o.side == "buy"):
                        o.state = "EXPIRED"
                        s.sync_open(o)
                        continue
                    remaining = min(remaining, abs(pos))
                got = s.market.take(o.symbol, o.side, qty=remaining, limit=o.price)
                if got:
                    qty = sum((q for _, q in got), ZERO)
                    self._apply_fills(o, [(o.price, qty)], maker=True)  # type: ignore[list-item]
                    o.state = "FILLED" if o.filled >= o.qty else "PARTIALLY_FILLED"  # type: ignore[operator]
                    s.sync_open(o)
        self._check_liquidation()

    def _charge_funding(self) -> None:
        s = self.s
        rate = Decimal(str(s.config.market.funding_rate))
        while s.clock.sim() >= s.next_funding_sim:
            now = s.clock.wall_ms()
            funding_time = int(s.next_funding_sim * 1000)
            for sym in self.rules:
                mark = s.market.mark_price(sym)
                self.funding_history.append({"symbol": sym, "fundingRate": fixed(rate, 8), "fundingTime": funding_time,
                                             "markPrice": fixed(mark, 8)})
                pos = s.binance.positions.get(sym)
                if pos is not None and pos.qty:
                    # longs pay shorts when the rate is positive
                    payment = q8(-pos.qty * mark * rate)
                    s.binance.wallet["USDT"] += payment
                    s.binance.add_income(sym, "FUNDING_FEE", payment, now)
            s.next_funding_sim += FUNDING_INTERVAL_S
            s.funding_events += 1

    def _check_liquidation(self) -> None:
        s = self.s
        for sym, pos in s.binance.positions.items():
            if not pos.qty:
                continue
            mark = s.market.mark_price(sym)
            lp = s.binance.liquidation_price(sym, mark)
            if lp <= 0 or (pos.qty < 0 and mark < lp) or (pos.qty > 0 and mark > lp):
                continue
            now = s.clock.wall_ms()
            close_qty = abs(pos.qty)
            order = SimOrder(
                exchange="binance", symbol=sym, exchange_order_id=str(s.new_binance_order_id()),
                client_id=f"autoclose-{now}", side="buy" if pos.qty < 0 else "sell", type="MARKET", tif="IOC",
                qty=close_qty, price=None, quote_amount=None, created_ms=now, state="NEW", fee_asset="USDT",
                updated_ms=now, reduce_only=True,
            )
            s.add_order(order)
            s.binance_by_id[int(order.exchange_order_id)] = order
            s.binance_by_client.setdefault(order.client_id, []).append(order)  # type: ignore[arg-type]
            self._apply_fills(order, [(lp, close_qty)], maker=False)
            order.state = "FILLED"
            if s.binance.wallet["USDT"] < 0:  # the insurance fund absorbs the deficit
                s.binance.wallet["USDT"] = ZERO

    # ------------------------------------------------------------------ account
    def _position_rows(self, *, v2: bool) -> list[dict[str, Any]]:
        s = self.s
        rows = []
        open_syms = {o.symbol for o in s.binance_open.values()}
        for sym in self.rules:
            pos = s.binance.position(sym)
            if not v2 and not pos.qty and sym not in open_syms:
                continue  # v3 lists only symbols with a position or open orders
            mark = s.market.mark_price(sym)
            unreal = q8(pos.unrealized(mark))
            lp = s.binance.liquidation_price(sym, mark)
            im = q8(pos.initial_margin(mark))
            row: dict[str, Any] = {
                "symbol": sym, "positionSide": "BOTH", "positionAmt": plain(pos.qty),
                "entryPrice": plain(pos.entry), "breakEvenPrice": plain(pos.entry), "markPrice": fixed(mark, 8),
                "unRealizedProfit": plain(unreal), "liquidationPrice": plain(lp),
                "isolatedMargin": plain(q8(pos.isolated_wallet + unreal) if pos.margin_type == "ISOLATED" and pos.qty else ZERO),
                "notional": plain(q8(pos.qty * mark)), "marginAsset": "USDT",
                "isolatedWallet": plain(pos.isolated_wallet),
                "updateTime": pos.updated_ms,
            }
            if v2:
                row.update({"leverage": str(pos.leverage), "marginType": "isolated" if pos.margin_type == "ISOLATED" else "cross",
                            "isAutoAddMargin": "false", "maxNotionalValue": plain(self._max_notional(pos.leverage))})
            else:
                row.update({"initialMargin": plain(im), "maintMargin": plain(q8(pos.maint_margin(mark))),
                            "positionInitialMargin": plain(im), "openOrderInitialMargin": "0", "adl": 0,
                            "bidNotional": "0", "askNotional": "0"})
            rows.append(row)
        return rows

    def position_risk_v3(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        return self._json([r for r in self._position_rows(v2=False) if sym is None or r["symbol"] == sym])

    def position_risk_v2(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        return self._json([r for r in self._position_rows(v2=True) if sym is None or r["symbol"] == sym])

    def _totals(self) -> dict[str, Decimal]:
        s = self.s
        marks = s.marks()
        wallet = s.binance.wallet["USDT"]
        unreal = s.binance.unrealized_total(marks)
        pos_im = s.binance.position_margin(marks)
        oo_im = s.open_order_margin()
        maint = sum((p.maint_margin(marks[sym]) for sym, p in s.binance.positions.items() if p.qty), ZERO)
        avail = s.binance.available(marks, oo_im)
        return {"wallet": wallet, "unreal": unreal, "margin": wallet + unreal, "pos_im": pos_im, "oo_im": oo_im,
                "im": pos_im + oo_im, "maint": maint, "avail": avail, "max_withdraw": max(ZERO, min(wallet, avail))}

    def _asset_row(self, t: dict[str, Decimal], now: int) -> dict[str, Any]:
        return {
            "asset": "USDT", "walletBalance": plain(q8(t["wallet"])), "unrealizedProfit": plain(q8(t["unreal"])),
            "marginBalance": plain(q8(t["margin"])), "maintMargin": plain(q8(t["maint"])),
            "initialMargin": plain(q8(t["im"])), "positionInitialMargin": plain(q8(t["pos_im"])),
            "openOrderInitialMargin": plain(q8(t["oo_im"])), "crossWalletBalance": plain(q8(t["wallet"])),
            "crossUnPnl": plain(q8(t["unreal"])), "availableBalance": plain(q8(t["avail"])),
            "maxWithdrawAmount": plain(q8(t["max_withdraw"])), "updateTime": now,
        }

    def _account(self, *, v2: bool) -> dict[str, Any]:
        t = self._totals()
        now = self.s.clock.wall_ms()
        out: dict[str, Any] = {
            "totalInitialMargin": plain(q8(t["im"])), "totalMaintMargin": plain(q8(t["maint"])),
            "totalWalletBalance": plain(q8(t["wallet"])), "totalUnrealizedProfit": plain(q8(t["unreal"])),
            "totalMarginBalance": plain(q8(t["margin"])), "totalPositionInitialMargin": plain(q8(t["pos_im"])),
            "totalOpenOrderInitialMargin": plain(q8(t["oo_im"])), "totalCrossWalletBalance": plain(q8(t["wallet"])),
            "totalCrossUnPnl": plain(q8(t["unreal"])), "availableBalance": plain(q8(t["avail"])),
            "maxWithdrawAmount": plain(q8(t["max_withdraw"])),
            "assets": [self._asset_row(t, now)],
        }
        positions = []
        for row in self._position_rows(v2=True):
            if not v2 and row["positionAmt"] == "0":
                continue
            pos = self.s.binance.position(row["symbol"])
            mark = self.s.market.mark_price(row["symbol"])
            prow = {"symbol": row["symbol"], "positionSide": "BOTH", "positionAmt": row["positionAmt"],
                    "unrealizedProfit": row["unRealizedProfit"], "isolatedMargin": row["isolatedMargin"],
                    "notional": row["notional"], "isolatedWallet": row["isolatedWallet"],
                    "initialMargin": plain(q8(pos.initial_margin(mark))), "maintMargin": plain(q8(pos.maint_margin(mark))),
                    "updateTime": row["updateTime"]}
            if v2:
                prow.update({"leverage": row["leverage"], "entryPrice": row["entryPrice"],
                             "breakEvenPrice": row["breakEvenPrice"], "maxNotional": row["maxNotionalValue"],
                             "isolated": pos.margin_type == "ISOLATED", "positionInitialMargin": prow["initialMargin"],
                             "openOrderInitialMargin": "0", "bidNotional": "0", "askNotional": "0"})
            positions.append(prow)
        out["positions"] = positions
        if v2:
            out.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                        "feeBurn": False, "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1})
        return out

    def account_v3(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json(self._account(v2=False))

    def account_v2(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json(self._account(v2=True))

    def balance(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        t = self._totals()
        now = self.s.clock.wall_ms()
        return self._json([{
            "accountAlias": "SimFuturesAccount", "asset": "USDT", "balance": plain(q8(t["wallet"])),
            "crossWalletBalance": plain(q8(t["wallet"])), "crossUnPnl": plain(q8(t["unreal"])),
            "availableBalance": plain(q8(t["avail"])), "maxWithdrawAmount": plain(q8(t["max_withdraw"])),
            "marginAvailable": True, "updateTime": now,
        }])

    @staticmethod
    def _max_notional(leverage: int) -> Decimal:
        best = BTC_BRACKETS[0][0]
        for cap, _, _, max_lev in BTC_BRACKETS:
            if max_lev >= leverage:
                best = cap
        return best

    def set_leverage(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params)
        assert sym is not None
        raw = params.get("leverage")
        if not raw:
            raise _mandatory("leverage")
        try:
            lev = int(raw)
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'leverage'.") from None
        if not 1 <= lev <= 125:
            raise BinanceError(-4028, f"Leverage {raw} is not valid")
        pos = self.s.binance.position(sym)
        mark = self.s.market.mark_price(sym)
        if pos.qty and abs(pos.qty) * mark > self._max_notional(lev):
            raise BinanceError(-2027, "Exceeded the maximum allowable position at current leverage.")
        pos.leverage = lev
        return self._json({"leverage": lev, "maxNotionalValue": plain(self._max_notional(lev)), "symbol": sym})

    def set_margin_type(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params)
        assert sym is not None
        mt = (params.get("marginType") or "").upper()
        if not mt:
            raise _mandatory("marginType")
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("ISOLATED", "CROSSED"):
            raise BinanceError(-1130, "Data sent for parameter 'marginType' is not valid.")
        pos = self.s.binance.position(sym)
        if pos.margin_type == mt:
            raise BinanceError(-4046, "No need to change margin type.")
        if any(o.symbol == sym for o in self.s.binance_open.values()):
            raise BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")
        if pos.qty:
            raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
        pos.margin_type = mt
        return self._json({"code": 200, "msg": "success"})

    def get_dual(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json({"dualSidePosition": self.s.binance.dual_side})

    def set_dual(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        raw = params.get("dualSidePosition")
        if raw is None:
            raise _mandatory("dualSidePosition")
        want = _bool_param(params, "dualSidePosition")
        acct = self.s.binance
        if want == acct.dual_side:
            raise BinanceError(-4059, "No need to change position side.")
        if self.s.binance_open:
            raise BinanceError(-4067, "Position side cannot be changed if there exists open orders.")
        if any(p.qty for p in acct.positions.values()):
            raise BinanceError(-4068, "Position side cannot be changed if there exists position.")
        acct.dual_side = want
        return self._json({"code": 200, "msg": "success"})

    def multi_assets(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        return self._json({"multiAssetsMargin": False})

    def leverage_bracket(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        out = []
        for s in self.rules:
            if sym is not None and s != sym:
                continue
            brackets, floor = [], 0
            for i, (cap, mmr, cum, lev) in enumerate(BTC_BRACKETS, 1):
                brackets.append({"bracket": i, "initialLeverage": lev, "notionalCap": int(cap), "notionalFloor": floor,
                                 "maintMarginRatio": float(mmr), "cum": float(cum)})
                floor = int(cap)
            out.append({"symbol": s, "notionalCoef": 1.0, "brackets": brackets})
        return self._json(out)

    def symbol_config(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        rows = []
        for s in self.rules:
            if sym is not None and s != sym:
                continue
            pos = self.s.binance.position(s)
            rows.append({"symbol": s, "marginType": pos.margin_type, "isAutoAddMargin": False,
                         "leverage": pos.leverage, "maxNotionalValue": plain(self._max_notional(pos.leverage))})
        return self._json(rows)

    def income(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params, required=False)
        kind = params.get("incomeType")
        try:
            limit = int(params.get("limit", 100))
            start = int(params["startTime"]) if params.get("startTime") else None
            end = int(params["endTime"]) if params.get("endTime") else None
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= 1000:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        rows = [r for r in self.s.binance.income
                if (sym is None or r["symbol"] == sym) and (kind is None or r["incomeType"] == kind)
                and (start is None or r["time"] >= start) and (end is None or r["time"] <= end)]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return self._json(rows)

    def commission_rate(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        sym = self._symbol(params)
        fees = self.s.config.fees
        return self._json({"symbol": sym, "makerCommissionRate": plain(fees.binance_maker),
                           "takerCommissionRate": plain(fees.binance_taker), "rpiCommissionRate": "0"})

    def rate_limit_order(self, ctx: Ctx, params: dict[str, str]) -> Reply:
        lim = self.s.config.limits
        return self._json([
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": lim.binance_orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": lim.binance_orders_per_min},
        ])
