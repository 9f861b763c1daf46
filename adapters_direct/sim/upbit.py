"""Upbit (KRW spot) on its real wire format: ``/v1/...``, JSON bodies, JWT auth.

Reference: EXCHANGE_NOTES part A. Behaviour worth knowing (and tested):

* ``POST /v1/orders`` answers 201; an ``identifier`` can be used once, ever — even by a
  request that was then rejected (``identifier_already_used`` afterwards; Upbit does not
  document the name, the simulator's choice is listed in docs/SIMULATOR.md).
* A market buy (``ord_type=price``) spends KRW walking the asks; the volume is truncated to
  8 decimals, so a few KRW are usually left and the order ends ``cancel`` (not ``done``)
  with the remainder returned — exactly what Upbit's FAQ describes.
* Market orders larger than the best 30 levels are refused (``volume_too_large``).
* ``upbit_answer_pending`` (off by default): ``POST /v1/orders`` answers with the order as
  accepted (``state: "wait"``, nothing executed, ``locked`` as reserved) while the match
  still happens at once, so only the next ``GET /v1/order`` shows the final state — the
  real venue's behaviour, which makes clients exercise their follow-up read.
* ``DELETE /v1/order`` returns the order as it was (``state: "wait"``); the cancel
  completes right after, so the next ``GET /v1/order`` shows ``cancel``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any, Callable

import orjson

from .accounts import SimOrder, Trade
from .auth import AuthFailure, upbit_body_query_string, upbit_query_for_hash, verify_upbit_jwt
from .decimals import ZERO, dec_or_none, krw_tick, plain, upbit_str
from .market import SPECS, UPBIT_LEVELS, UPBIT_MARKETS
from .ratelimit import retry_after_header
from .state import SimState
from .wire import Ctx, Reply, UpbitError, parse_upbit_json

__all__ = ["UpbitExchange"]

KST = timezone(timedelta(hours=9))
MIN_TOTAL = Decimal(5000)
MAX_TOTAL = Decimal(1_000_000_000)
_Q8 = Decimal("1e-8")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
_NAMES = {"KRW-BTC": ("비트코인", "Bitcoin"), "KRW-USDT": ("테더", "Tether")}
_JSON_HEADERS = "application/json; charset=utf-8"

Handler = Callable[[Ctx, dict[str, Any]], Reply]


def _kst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, KST).isoformat(timespec="seconds")


def _missing(name: str) -> UpbitError:
    return UpbitError(400, "validation_error", f"{name} is missing")


def _invalid(name: str) -> UpbitError:
    return UpbitError(400, "validation_error", f"{name} does not have a valid value")


class UpbitExchange:
    def __init__(self, state: SimState) -> None:
        self.s = state
        state.on_tick.append(self._on_tick)
        # (method, path) -> (handler, rate-limit group, private)
        self.routes: dict[tuple[str, str], tuple[Handler, str, bool]] = {
            ("GET", "/v1/market/all"): (self.market_all, "market", False),
            ("GET", "/v1/ticker"): (self.ticker, "ticker", False),
            ("GET", "/v1/orderbook"): (self.orderbook, "orderbook", False),
            ("GET", "/v1/orderbook/instruments"): (self.instruments, "orderbook", False),
            ("GET", "/v1/accounts"): (self.accounts, "default", True),
            ("GET", "/v1/orders/chance"): (self.chance, "default", True),
            ("POST", "/v1/orders"): (self.create_order, "order", True),
            ("POST", "/v1/orders/test"): (self.test_order, "order-test", True),
            ("GET", "/v1/order"): (self.get_order, "default", True),
            ("DELETE", "/v1/order"): (self.cancel_order, "default", True),
            ("GET", "/v1/orders/open"): (self.open_orders, "default", True),
            ("GET", "/v1/orders/closed"): (self.closed_orders, "default", True),
            ("GET", "/v1/orders/uuids"): (self.orders_by_ids, "default", True),
        }
        self._secrets = {state.config.upbit_keys.access_key: state.config.upbit_keys.secret_key}

    # ------------------------------------------------------------------ plumbing
    def handle(self, ctx: Ctx) -> Reply:
        route = self.routes.get((ctx.method, ctx.path))
        if route is None:
            return Reply(404, orjson.dumps({"error": {"name": 404, "message": "Not Found"}}),
                         {"Content-Type": _JSON_HEADERS, "Remaining-Req": self.s.upbit_limiter.remaining_header("default", 0)})
        handler, group, private = route
        origin = "Origin" in ctx.headers
        scope = "ip:" + ctx.ip
        remaining: str | None = None
        try:
            params, hashed = self._params(ctx)
            if private:
                access_key, header, claims = verify_upbit_jwt(
                    ctx.headers.get("Authorization"), self._secrets, hashed, self.s.nonces
                )
                ctx.log["jwt"] = {"header": header, "claims": claims}
                scope = "key:" + access_key
            verdict, remaining = self.s.upbit_limiter.check(group, scope, origin)
            if verdict.status != 200:
                reply = self._limited(verdict.status, verdict.retry_after)
                reply.headers = {"Retry-After": retry_after_header(verdict.retry_after)}
            else:
                reply = handler(ctx, params)
        except AuthFailure as e:
            reply = UpbitError(e.status, e.name, e.message).reply()
        except UpbitError as e:
            reply = e.reply()
        if remaining is None:  # refused before the limiter ran: it still counts
            _, remaining = self.s.upbit_limiter.check(group, scope, origin)
        if reply.headers is None:
            reply.headers = {}
        reply.headers["Remaining-Req"] = remaining
        reply.headers["Content-Type"] = _JSON_HEADERS
        return reply

    @staticmethod
    def _limited(status: int, retry_after: float) -> Reply:
        if status == 418:
            msg = f"Blocked for {retry_after_header(retry_after)} seconds: requests continued after 429 responses."
        else:
            msg = "Too many API requests."
        return UpbitError(status, "too_many_requests", msg).reply()

    @staticmethod
    def _params(ctx: Ctx) -> tuple[dict[str, Any], str]:
        """Request parameters and the string Upbit hashes for ``query_hash``."""
        if ctx.method == "POST":
            if not ctx.body:
                return {}, ""
            ctype = ctx.headers.get("Content-Type", "")
            if "json" not in ctype:
                raise UpbitError(400, "validation_error", "Content-Type must be application/json")
            try:
                data = parse_upbit_json(ctx.body)
            except (orjson.JSONDecodeError, ValueError):
                raise UpbitError(400, "validation_error", "request body is not valid JSON") from None
            if not isinstance(data, dict):
                raise UpbitError(400, "validation_error", "request body must be a JSON object")
            return data, upbit_body_query_string(data)
        params: dict[str, Any] = {}
        for key, value in ctx.query.items():
            if key.endswith("[]"):
                params.setdefault(key, []).append(value)
            else:
                params[key] = value
        return params, upbit_query_for_hash(ctx.raw_query)

    @staticmethod
    def _json(obj: Any, status: int = 200) -> Reply:
        return Reply(status, orjson.dumps(obj))

    def _markets_param(self, params: dict[str, Any]) -> list[str]:
        raw = params.get("markets")
        if not raw:
            raise UpbitError(400, 400, "Missing request parameter error. Check the required parameters!")
        markets = [m.strip().upper() for m in str(raw).split(",") if m.strip()]
        for m in markets:
            if m not in UPBIT_MARKETS:
                raise UpbitError(404, 404, "Code not found")
        return markets

    # ------------------------------------------------------------------ quotation
    def market_all(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        details = str(params.get("isDetails", "false")).lower() == "true"
        out = []
        for m in UPBIT_MARKETS:
            ko, en = _NAMES[m]
            row: dict[str, Any] = {"market": m, "korean_name": ko, "english_name": en}
            if details:
                row["market_event"] = {"warning": False, "caution": {
                    "PRICE_FLUCTUATIONS": False, "TRADING_VOLUME_SOARING": False, "DEPOSIT_AMOUNT_SOARING": False,
                    "GLOBAL_PRICE_DIFFERENCES": False, "CONCENTRATION_OF_SMALL_ACCOUNTS": False}}
            out.append(row)
        return self._json(out)

    def ticker(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        now = self.s.clock.wall_ms()
        dt = datetime.fromtimestamp(now / 1000, timezone.utc)
        out = []
        for m in self._markets_param(params):
            bid, _ = self.s.market.best(m)
            price = float(bid)
            out.append({
                "market": m,
                "trade_date": dt.strftime("%Y%m%d"), "trade_time": dt.strftime("%H%M%S"),
                "trade_date_kst": dt.astimezone(KST).strftime("%Y%m%d"),
                "trade_time_kst": dt.astimezone(KST).strftime("%H%M%S"),
                "trade_timestamp": now, "opening_price": price, "high_price": price, "low_price": price,
                "trade_price": price, "prev_closing_price": price, "change": "EVEN", "change_price": 0.0,
                "change_rate": 0.0, "signed_change_price": 0.0, "signed_change_rate": 0.0,
                "trade_volume": 0.001, "acc_trade_price": 0.0, "acc_trade_price_24h": 0.0,
                "acc_trade_volume": 0.0, "acc_trade_volume_24h": 0.0,
                "highest_52_week_price": price, "highest_52_week_date": dt.strftime("%Y-%m-%d"),
                "lowest_52_week_price": price, "lowest_52_week_date": dt.strftime("%Y-%m-%d"),
                "timestamp": now,
            })
        return self._json(out)

    def orderbook(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        count = UPBIT_LEVELS
        if "count" in params:
            try:
                count = int(params["count"])
            except ValueError:
                count = UPBIT_LEVELS
            if not 1 <= count <= UPBIT_LEVELS:  # out of range → default, as Upbit documents
                count = UPBIT_LEVELS
        now = self.s.clock.wall_ms()
        out = []
        for m in self._markets_param(params):
            spec = SPECS[m]
            bids, asks = self.s.market.levels(m, count)
            pu, su = float(spec.price_unit), float(spec.size_unit)
            # JSON numbers here, as the real orderbook endpoint sends them
            units = [
                {"ask_price": asks[i][0] * pu, "bid_price": bids[i][0] * pu,
                 "ask_size": round(asks[i][1] * su, 8), "bid_size": round(bids[i][1] * su, 8)}
                for i in range(min(count, len(asks), len(bids)))
            ]
            out.append({
                "market": m, "timestamp": now,
                "total_ask_size": round(sum(a[1] for a in asks[:count]) * su, 8),
                "total_bid_size": round(sum(b[1] for b in bids[:count]) * su, 8),
                "orderbook_units": units, "level": 0,
            })
        return self._json(out)

    def instruments(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        out = []
        for m in self._markets_param(params):
            bid, _ = self.s.market.best(m)
            out.append({"market": m, "quote_currency": "KRW", "tick_size": plain(krw_tick(bid))})
        return self._json(out)

    # ------------------------------------------------------------------ account
    def accounts(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        return self._json(self.s.upbit.rows())

    def _account_row(self, currency: str) -> dict[str, Any]:
        h = self.s.upbit.holding(currency)
        return {"currency": currency, "balance": upbit_str(h.balance), "locked": upbit_str(h.locked),
                "avg_buy_price": upbit_str(h.avg_buy_price), "avg_buy_price_modified": False,
                "unit_currency": "KRW"}

    def chance(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        market = params.get("market")
        if not market:
            raise _missing("market")
        if market not in UPBIT_MARKETS:
            raise UpbitError(404, "market_does_not_exist", "Market does not exist.")
        fee = plain(self.s.config.fees.upbit)
        base = SPECS[market].base
        return self._json({
            "bid_fee": fee, "ask_fee": fee, "maker_bid_fee": fee, "maker_ask_fee": fee,
            "market": {
                "id": market, "name": f"{base}/KRW", "order_types": ["limit"], "order_sides": ["ask", "bid"],
                "bid_types": ["best_fok", "best_ioc", "limit", "limit_fok", "limit_ioc", "price"],
                "ask_types": ["best_fok", "best_ioc", "limit", "limit_fok", "limit_ioc", "market"],
                "bid": {"currency": "KRW", "min_total": plain(MIN_TOTAL)},
                "ask": {"currency": base, "min_total": plain(MIN_TOTAL)},
                "max_total": plain(MAX_TOTAL), "state": "active",
            },
            "bid_account": self._account_row("KRW"),
            "ask_account": self._account_row(base),
        })

    # ------------------------------------------------------------------ orders
    def order_json(self, o: SimOrder, *, trades: bool = False, state: str | None = None) -> dict[str, Any]:
        remaining_fee = o.extra.get("remaining_fee", ZERO)
        by_funds = o.quote_amount is not None
        d: dict[str, Any] = {
            "uuid": o.exchange_order_id,
            "side": "bid" if o.side == "buy" else "ask",
            "ord_type": o.type,
            "price": upbit_str(o.quote_amount if by_funds else o.price),
            "state": state or o.state,
            "market": o.symbol,
            "created_at": _kst(o.created_ms),
            "volume": upbit_str(o.qty),
            "remaining_volume": upbit_str(None if o.qty is None else o.qty - o.filled),
            "reserved_fee": upbit_str(o.reserved_fee),
            "remaining_fee": upbit_str(remaining_fee),
            "paid_fee": upbit_str(o.fee),
            "locked": upbit_str(o.locked),
            "prevented_volume": "0.0",
            "prevented_locked": "0.0",
            "executed_volume": upbit_str(o.filled),
            "executed_funds": upbit_str(o.funds),
            "trades_count": len(o.trades),
        }
        if o.tif:
            d["time_in_force"] = o.tif
        if o.client_id is not None:
            d["identifier"] = o.client_id
        if o.extra.get("smp_type"):
            d["smp_type"] = o.extra["smp_type"]
        if trades:
            d["trades"] = [
                {"market": o.symbol, "uuid": t.trade_id, "price": upbit_str(t.price), "volume": upbit_str(t.qty),
                 "funds": upbit_str(t.funds), "trend": "up" if o.side == "buy" else "down",
                 "created_at": _kst(t.ts_ms), "side": "bid" if o.side == "buy" else "ask"}
                for t in o.trades
            ]
        return d

    def create_order(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        order = self._accept(ctx, params, test=False)
        # The real Upbit answers before its matching engine has seen the order; in that
        # mode the answer is the order as accepted, the match below is what GET shows.
        accepted = self.order_json(order) if self.s.upbit_answer_pending else None
        self._execute(order, ctx.fill_fraction)
        self.s.sync_open(order)
        return self._json(accepted if accepted is not None else self.order_json(order), 201)

    def test_order(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        order = self._accept(ctx, params, test=True)
        return self._json(self.order_json(order), 201)

    def _accept(self, ctx: Ctx, params: dict[str, Any], *, test: bool) -> SimOrder:
        """Validate, build the order in state ``wait`` and (unless ``test``) reserve its
        funds and index it; matching is the caller's next step."""
        s = self.s
        market = params.get("market")
        if not market:
            raise _missing("market")
        if market not in UPBIT_MARKETS:
            raise _invalid("market")
        side_raw = params.get("side")
        if side_raw not in ("bid", "ask"):
            raise UpbitError(400, "validation_error", "side is missing, side does not have a valid value")
        side = "buy" if side_raw == "bid" else "sell"
        sfx = "bid" if side == "buy" else "ask"
        ord_type = params.get("ord_type") or "limit"
        if ord_type not in ("limit", "price", "market", "best"):
            raise _invalid("ord_type")
        identifier = params.get("identifier")
        if identifier is not None:
            if not isinstance(identifier, str) or not _IDENTIFIER_RE.match(identifier):
                raise _invalid("identifier")
            if not test:
                if identifier in s.upbit_used_identifiers:
                    raise UpbitError(400, "identifier_already_used",
                                     "The identifier has already been used; identifiers are single-use.")
                # single-use forever, whether or not this order then gets created
                s.use_upbit_identifier(identifier)
        tif = params.get("time_in_force")
        if tif is not None and tif not in ("ioc", "fok", "post_only"):
            raise _invalid("time_in_force")
        if tif == "post_only" and ord_type != "limit":
            raise UpbitError(400, f"create_{sfx}_error", "post_only is only available for limit orders.")
        if ord_type == "best" and tif not in ("ioc", "fok"):
            raise UpbitError(400, "validation_error", "time_in_force is required (ioc or fok) for best orders")
        if ord_type in ("price", "market") and tif is not None:
            raise UpbitError(400, f"create_{sfx}_error", "time_in_force is not available for market orders.")
        smp = params.get("smp_type")
        if smp is not None and smp not in ("cancel_maker", "cancel_taker", "reduce", "none"):
            raise _invalid("smp_type")

        price_raw, volume_raw = params.get("price"), params.get("volume")
        price = volume = None
        if price_raw is not None:
            price = dec_or_none(price_raw)
            if price is None:
                raise _invalid("price")
        if volume_raw is not None:
            volume = dec_or_none(volume_raw)
            if volume is None:
                raise _invalid("volume")

        # parameter combinations per ord_type (wrong combination → create_*_error)
        if ord_type == "limit":
            if price is None:
                raise _missing("price")
            if volume is None:
                raise _missing("volume")
        elif ord_type == "price":
            if side != "buy" or volume is not None:
                raise UpbitError(400, f"create_{sfx}_error", "ord_type price is a market buy: send price (KRW) only.")
            if price is None:
                raise _missing("price")
        elif ord_type == "market":
            if side != "sell" or price is not None:
                raise UpbitError(400, f"create_{sfx}_error", "ord_type market is a market sell: send volume only.")
            if volume is None:
                raise _missing("volume")
        else:  # best
            if side == "buy" and (volume is not None or price is None):
                raise UpbitError(400, "create_bid_error", "A best buy takes price (KRW total) only.")
            if side == "sell" and (price is not None or volume is None):
                raise UpbitError(400, "create_ask_error", "A best sell takes volume only.")

        if volume is not None and (volume <= 0 or volume.as_tuple().exponent < -8):
            raise UpbitError(400, f"invalid_volume_{sfx}", "Invalid order volume.")
        if price is not None and price <= 0:
            raise UpbitError(400, f"invalid_price_{sfx}", "Invalid order price.")
        if ord_type == "limit":
            assert price is not None
            if price % krw_tick(price):
                raise UpbitError(400, f"invalid_price_{sfx}", "주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.")

        best_bid, best_ask = s.market.best(market)
        by_funds = ord_type == "price" or (ord_type == "best" and side == "buy")
        if ord_type == "limit":
            total = price * volume  # type: ignore[operator]
        elif by_funds:
            total = price  # type: ignore[assignment]
        else:
            total = volume * best_bid  # type: ignore[operator]
        if total < MIN_TOTAL:
            raise UpbitError(400, f"under_min_total_{sfx}", f"최소주문금액 이상으로 주문해주세요 ({plain(MIN_TOTAL)} KRW).")
        if total > MAX_TOTAL:
            raise UpbitError(400, f"over_max_total_{sfx}", f"최대주문금액 이하로 주문해주세요 ({plain(MAX_TOTAL)} KRW).")

        fee_rate = s.config.fees.upbit
        base = SPECS[market].base
        if side == "buy":
            reserved_fee = total * fee_rate
            lock_amount = total + reserved_fee
            if s.upbit.available("KRW") < lock_amount:
                raise UpbitError(400, "insufficient_funds_bid", "주문가능한 금액(KRW)이 부족합니다.")
        else:
            reserved_fee = ZERO
            lock_amount = volume  # type: ignore[assignment]
            if s.upbit.available(base) < lock_amount:
                raise UpbitError(400, "insufficient_funds_ask", f"주문가능한 금액({base})이 부족합니다.")
        if ord_type in ("price", "market"):
            depth_qty, depth_funds = s.market.visible_totals(market, side)
            if (by_funds and total > depth_funds) or (not by_funds and volume > depth_qty):  # type: ignore[operator]
                raise UpbitError(400, "volume_too_large",
                                 "Market orders larger than the best 30 levels of the order book are not accepted.")

        now = s.clock.wall_ms()
        order = SimOrder(
            exchange="upbit", symbol=market, exchange_order_id=s.new_uuid(), client_id=identifier, side=side,
            type=ord_type, tif=tif, qty=volume, price=None if by_funds else price,
            quote_amount=total if by_funds else None, created_ms=now, state="wait", fee_asset="KRW",
            updated_ms=now, locked=lock_amount, reserved_fee=reserved_fee,
        )
        order.extra["remaining_fee"] = reserved_fee
        if smp is not None:
            order.extra["smp_type"] = smp
        if test:
            return order
        if ctx.fault is not None:
            order.fault = ctx.fault.kind
        s.upbit.lock("KRW" if side == "buy" else base, lock_amount)
        s.add_order(order)
        s.upbit_by_uuid[order.exchange_order_id] = order
        if identifier is not None:
            s.upbit_by_identifier[identifier] = order
        return order

    # ------------------------------------------------------------------ matching
    def _execute(self, o: SimOrder, fraction: Decimal | None) -> None:
        m = self.s.market
        frac = Decimal(1) if fraction is None else fraction
        if o.quote_amount is not None:  # market buy by KRW, or best buy
            budget = (o.quote_amount * frac)
            if o.type == "best" and o.tif == "fok":
                avail = m.take(o.symbol, "buy", funds=budget, top_only=True, dry_run=True)
                spend = sum((p * q for p, q in avail), ZERO)
                # all-or-nothing: the whole budget (to within one volume unit) at the best price
                if frac < 1 or not avail or budget - spend >= avail[0][0] * _Q8:
                    return self._finish(o)
            fills = m.take(o.symbol, "buy", funds=budget, top_only=o.type == "best")
            self._apply_fills(o, fills, maker=False)
            return self._finish(o)
        assert o.qty is not None
        target = (o.qty * frac).quantize(_Q8, rounding=ROUND_DOWN)
        if o.type in ("market", "best"):
            if o.type == "best" and o.tif == "fok":
                avail = m.take(o.symbol, o.side, qty=o.qty, top_only=True, dry_run=True)
                if frac < 1 or sum((q for _, q in avail), ZERO) < o.qty:
                    return self._finish(o)
            fills = m.take(o.symbol, o.side, qty=target, top_only=o.type == "best")
            self._apply_fills(o, fills, maker=False)
            return self._finish(o)
        # limit
        best_bid, best_ask = m.best(o.symbol)
        crosses = o.price >= best_ask if o.side == "buy" else o.price <= best_bid  # type: ignore[operator]
        if o.tif == "post_only":
            if crosses:
                return self._finish(o)  # would take: cancelled without trading
            return None  # rests
        if o.tif == "fok":
            avail = m.take(o.symbol, o.side, qty=o.qty, limit=o.price, dry_run=True)
            if frac < 1 or sum((q for _, q in avail), ZERO) < o.qty:
                return self._finish(o)
        if crosses:
            fills = m.take(o.symbol, o.side, qty=target, limit=o.price)
            self._apply_fills(o, fills, maker=False)
        if o.tif in ("ioc", "fok") or o.filled >= o.qty:
            return self._finish(o)
        return None  # GTC remainder rests ("wait")

    def _apply_fills(self, o: SimOrder, fills: list[tuple[Decimal, Decimal]], *, maker: bool) -> None:
        if not fills:
            return
        acct = self.s.upbit
        base = SPECS[o.symbol].base
        fee_rate = self.s.config.fees.upbit
        now = self.s.clock.wall_ms()
        for price, qty in fills:
            funds = price * qty
            fee = funds * fee_rate
            if o.side == "buy":
                # release what this quantity had reserved, then spend what it actually cost
                if o.quote_amount is not None:
                    reserved = funds + fee
                else:
                    reserved = qty * o.price * (1 + fee_rate)  # type: ignore[operator]
                o.locked -= reserved
                o.extra["remaining_fee"] -= fee if o.quote_amount is not None else qty * o.price * fee_rate  # type: ignore[operator]
                acct.spend_locked("KRW", reserved)
                acct.credit("KRW", reserved - funds - fee)
                acct.record_buy(base, qty, funds)
                acct.credit(base, qty)
            else:
                o.locked -= qty
                acct.spend_locked(base, qty)
                acct.credit("KRW", funds - fee)
            o.filled += qty
            o.funds += funds
            o.fee += fee
            o.trades.append(Trade(self.s.new_uuid(), price, qty, funds, fee, now, maker))
        o.updated_ms = now

    def _finish(self, o: SimOrder, state: str | None = None) -> None:
        """Close the order: release whatever is still locked, decide done/cancel."""
        acct = self.s.upbit
        base = SPECS[o.symbol].base
        if o.locked:
            acct.unlock("KRW" if o.side == "buy" else base, o.locked)
            o.locked = ZERO
        o.extra["remaining_fee"] = ZERO
        if state is None:
            if o.quote_amount is not None:
                # the volume is truncated to 8 decimals, so a few KRW usually remain: "cancel"
                state = "done" if o.funds >= o.quote_amount else "cancel"
            else:
                state = "done" if o.filled >= o.qty else "cancel"  # type: ignore[operator]
        o.state = state
        o.updated_ms = self.s.clock.wall_ms()
        self.s.sync_open(o)

    def _on_tick(self, moved: bool) -> None:
        """Resting limit orders fill (as makers, at their price) when the market reaches them."""
        if not moved:
            return
        m = self.s.market
        for o in list(self.s.upbit_open.values()):
            if o.state != "wait" or o.type != "limit":
                continue
            best_bid, best_ask = m.best(o.symbol)
            if (o.side == "buy" and best_ask <= o.price) or (o.side == "sell" and best_bid >= o.price):  # type: ignore[operator]
                got = m.take(o.symbol, o.side, qty=o.qty - o.filled, limit=o.price)  # type: ignore[operator]
                if got:
                    qty = sum((q for _, q in got), ZERO)
                    self._apply_fills(o, [(o.price, qty)], maker=True)  # type: ignore[list-item]
                    if o.filled >= o.qty:  # type: ignore[operator]
                        self._finish(o)

    # ------------------------------------------------------------------ queries
    def _find(self, params: dict[str, Any]) -> SimOrder:
        uuid_ = params.get("uuid")
        ident = params.get("identifier")
        if not uuid_ and not ident:
            raise UpbitError(400, "validation_error", "uuid or identifier is required")
        order = self.s.upbit_by_uuid.get(uuid_) if uuid_ else self.s.upbit_by_identifier.get(ident)
        if order is None:
            raise UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")
        return order

    def get_order(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        return self._json(self.order_json(self._find(params), trades=True))

    def cancel_order(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        order = self._find(params)
        if order.state not in ("wait", "watch"):
            raise UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")
        # Upbit answers with the order as it stands ("wait"); the cancel completes right after.
        snapshot = self.order_json(order)
        self._finish(order, "cancel")
        return self._json(snapshot)

    def _states(self, params: dict[str, Any], allowed: tuple[str, ...], default: tuple[str, ...]) -> set[str]:
        states = params.get("states[]") or ([params["state"]] if params.get("state") else list(default))
        for st in states:
            if st not in allowed:
                raise _invalid("state")
        return set(states)

    def _limit(self, params: dict[str, Any], default: int, maximum: int) -> int:
        try:
            limit = int(params.get("limit", default))
        except ValueError:
            raise _invalid("limit") from None
        if not 1 <= limit <= maximum:
            raise _invalid("limit")
        return limit

    def _listing(self, params: dict[str, Any], states: set[str]) -> list[SimOrder]:
        market = params.get("market")
        if market is not None and market not in UPBIT_MARKETS:
            raise _invalid("market")
        source = self.s.upbit_open if states <= {"wait", "watch"} else self.s.upbit_by_uuid
        rows = [o for o in source.values() if o.state in states and (market is None or o.symbol == market)]
        rows.sort(key=lambda o: o.created_ms)
        if params.get("order_by", "desc") == "desc":
            rows.reverse()
        return rows

    def open_orders(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        states = self._states(params, ("wait", "watch"), ("wait", "watch"))
        limit = self._limit(params, 100, 100)
        page = max(1, int(params.get("page", 1) or 1))
        rows = self._listing(params, states)[(page - 1) * limit: page * limit]
        return self._json([self.order_json(o) for o in rows])

    def closed_orders(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        states = self._states(params, ("done", "cancel"), ("done", "cancel"))
        limit = self._limit(params, 100, 1000)
        rows = self._listing(params, states)
        start, end = _time_param(params.get("start_time")), _time_param(params.get("end_time"))
        if start is not None:
            rows = [o for o in rows if o.created_ms >= start]
        if end is not None:
            rows = [o for o in rows if o.created_ms <= end]
        return self._json([self.order_json(o) for o in rows[:limit]])

    def orders_by_ids(self, ctx: Ctx, params: dict[str, Any]) -> Reply:
        uuids, idents = params.get("uuids[]"), params.get("identifiers[]")
        if not uuids and not idents:
            raise UpbitError(400, "validation_error", "uuids[] or identifiers[] is required")
        index = self.s.upbit_by_uuid if uuids else self.s.upbit_by_identifier
        rows = [index[k] for k in (uuids or idents) if k in index]
        rows.sort(key=lambda o: o.created_ms, reverse=params.get("order_by", "desc") == "desc")
        return self._json([self.order_json(o) for o in rows])


def _time_param(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise _invalid("start_time/end_time") from None
