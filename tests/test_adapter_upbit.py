"""UpbitSpot against the exchange simulator over real sockets.

Every operation, the exact bytes on the wire (body, query, JWT claims), every fault kind
of CONTRACT §4 mapped to its error class, decimal round trips, local refusals that send
nothing, and a 50-order burst that never draws a 429.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

import msgspec
import pytest

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest
from adapters_direct._http import CLIENT_THROTTLE, CONNECTION_LOST, TIMEOUT
from adapters_direct.client_ids import make_client_id
from adapters_direct.errors import (
    AuthError,
    InsufficientFunds,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)
from adapters_direct.upbit import UpbitSpot
from kimp_fast.orders import format_decimal as fmt
from kimp_fast.ratelimit import RateLimiter
from tests.fixtures.sim import SimClient

D = Decimal
FEE = D("0.0005")
SYMBOL = "KRW-BTC"

MakeUpbit = Callable[..., Awaitable[UpbitSpot]]


@pytest.fixture(params=["wire", "aiohttp"])
async def make_upbit(sim, request: pytest.FixtureRequest) -> AsyncIterator[MakeUpbit]:
    """Open an UpbitSpot on the simulator (through the factory); closed after the test."""
    opened: list[UpbitSpot] = []

    async def make(**options: Any) -> UpbitSpot:
        options.setdefault("symbols", (SYMBOL,))
        options.setdefault("keepwarm_s", 0)
        options.setdefault("rules_refresh_s", 0)
        options.setdefault("order_lane", request.param)  # every test runs on both order paths
        secret = options.pop("secret_key", sim.upbit_keys.secret_key)
        ad = ExchangeFactory.create(
            "upbit", AdapterType.DIRECT, api_key=sim.upbit_keys.access_key, secret_key=secret,
            base_url=sim.url, **options,
        )
        assert isinstance(ad, UpbitSpot)
        await ad.open()
        opened.append(ad)
        return ad

    yield make
    for ad in opened:
        await ad.close()


@pytest.fixture
async def upbit(make_upbit: MakeUpbit) -> UpbitSpot:
    return await make_upbit()


async def log(c: SimClient, **filters: Any) -> list[dict[str, Any]]:
    return await c.requests(exchange="upbit", limit=5000, **filters)


async def ledger_order(c: SimClient, client_id: str) -> dict[str, Any] | None:
    return next((o for o in await c.orders("upbit") if o["client_id"] == client_id), None)


def on_tick(price: Decimal, tick: Decimal = D(1000)) -> Decimal:
    """``price`` rounded down to a multiple of ``tick`` (Upbit's KRW-BTC tick is 1,000)."""
    return (price / tick).to_integral_value(ROUND_DOWN) * tick


def cid(name: str, attempt: int = 0) -> str:
    return make_client_id(f"test-{name}", "upbit-entry", attempt)


def limit(side: str, qty: str, price: Decimal, client_id: str, tif: str | None = None) -> OrderRequest:
    return OrderRequest(
        symbol=SYMBOL, side=side, type="limit", quantity=D(qty), price=price, time_in_force=tif, client_id=client_id
    )


# ------------------------------------------------------------------------- lifecycle
async def test_open_prewarms_and_loads_rules(sim_client, upbit: UpbitSpot) -> None:
    rows = await log(sim_client)
    paths = [(r["method"], r["path"]) for r in rows]
    assert paths.count(("GET", "/v1/market/all")) == 2  # prewarm_connections
    assert ("GET", "/v1/orderbook/instruments") in paths
    assert ("GET", "/v1/orders/chance") in paths
    for r in rows:
        assert "Origin" not in r["headers"]
        assert r["headers"]["User-Agent"].startswith("kimp-fast/")
    rules = upbit.rules(SYMBOL)
    assert (rules.base_asset, rules.quote_asset) == ("BTC", "KRW")
    assert rules.tick_size == D(1000)
    assert rules.min_notional == D(5000) and rules.max_notional == D(1_000_000_000)
    assert rules.taker_fee == FEE and rules.maker_fee == FEE
    assert rules.qty_step == D("0.00000001")
    assert upbit.tick_for(SYMBOL, D(140_000_000)) == D(1000)
    with pytest.raises(KeyError):
        upbit.rules("KRW-ETH")


async def test_close_is_idempotent_and_closed_adapter_sends_nothing(sim_client, make_upbit: MakeUpbit) -> None:
    ad = await make_upbit()
    await ad.close()
    await ad.close()
    before = len(await log(sim_client))
    with pytest.raises(Unavailable):
        await ad.get_balances()
    assert len(await log(sim_client)) == before


async def test_wrong_secret_is_auth_error_at_open(sim, make_upbit: MakeUpbit) -> None:
    with pytest.raises(AuthError) as ei:
        await make_upbit(secret_key="not-the-secret")
    assert ei.value.code == "jwt_verification"
    assert "not-the-secret" not in str(ei.value) and "not-the-secret" not in repr(ei.value)


async def test_unreachable_exchange_is_unavailable() -> None:
    ad = UpbitSpot(api_key="acc", secret_key="top-secret-value", base_url="http://127.0.0.1:9", symbols=(SYMBOL,))
    with pytest.raises(Unavailable) as ei:
        await ad.open()
    assert "top-secret-value" not in repr(ad) + str(ei.value) + repr(ei.value)


# ------------------------------------------------------------------------- orders
async def test_limit_ioc_buy_fills_and_is_signed_as_documented(sim, sim_client, upbit: UpbitSpot) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    client_id = cid("ioc")
    res = await upbit.place_order(limit("buy", "0.001", ask + 500, client_id, "ioc"))  # off-tick: rounded down
    assert res.status == "filled"
    assert res.client_id == client_id and res.exchange == "upbit" and res.side == "buy"
    assert res.filled_qty == D("0.001") and res.quantity == D("0.001")
    assert res.avg_price == ask
    assert res.quote_filled == ask * D("0.001")
    assert res.fee == res.quote_filled * FEE and res.fee_asset == "KRW"
    assert res.ts_ms > 0

    row = await ledger_order(sim_client, client_id)
    assert row is not None
    assert row["exchange_order_id"] == res.exchange_order_id
    assert D(row["filled"]) == res.filled_qty and D(row["fee"]) == res.fee and D(row["avg_price"]) == res.avg_price

    (req,) = await log(sim_client, method="POST", path="/v1/orders")
    fields = f"market=KRW-BTC&side=bid&volume=0.001&price={fmt(ask)}&ord_type=limit&time_in_force=ioc&identifier={client_id}"
    assert req["body"] == (
        f'{{"market":"KRW-BTC","side":"bid","volume":"0.001","price":"{fmt(ask)}","ord_type":"limit",'
        f'"time_in_force":"ioc","identifier":"{client_id}"}}'
    )
    assert req["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert req["headers"]["Authorization"] == "Bearer"
    assert "Origin" not in req["headers"]
    claims = req["jwt"]["claims"]
    assert list(claims) == ["access_key", "nonce", "query_hash", "query_hash_alg"]
    assert claims["access_key"] == sim.upbit_keys.access_key
    assert uuid.UUID(claims["nonce"]).version == 4
    assert claims["query_hash"] == hashlib.sha512(fields.encode()).hexdigest()
    assert claims["query_hash_alg"] == "SHA512"
    assert req["jwt"]["header"]["alg"] == "HS256"
    assert req["status"] == 201


async def test_hs512_tokens(sim_client, make_upbit: MakeUpbit) -> None:
    ad = await make_upbit(jwt_alg="HS512")
    assert (await ad.get_balances())["KRW"].free == D(100_000_000)
    rows = [r for r in await log(sim_client) if "jwt" in r]
    assert rows and all(r["jwt"]["header"]["alg"] == "HS512" for r in rows)


async def test_market_buy_by_krw_then_market_sell(sim_client, upbit: UpbitSpot) -> None:
    buy = await upbit.place_order(
        OrderRequest(symbol=SYMBOL, side="buy", type="market", quote_amount=D("100000.7"), client_id=cid("mb"))
    )
    # Upbit ends a KRW market buy "cancel" (a few KRW cannot buy 1e-8 BTC): final, filled.
    assert buy.status == "expired" and buy.final
    assert buy.quantity is None
    assert D("0.0007") < buy.filled_qty < D("0.00072")
    assert buy.quote_filled <= D(100000)  # the amount went out rounded down to 1 KRW
    assert buy.avg_price == buy.quote_filled / buy.filled_qty
    assert buy.fee == buy.quote_filled * FEE
    (req,) = await log(sim_client, method="POST", path="/v1/orders")
    assert req["body"] == f'{{"market":"KRW-BTC","side":"bid","price":"100000","ord_type":"price","identifier":"{cid("mb")}"}}'

    sell = await upbit.place_order(
        OrderRequest(symbol=SYMBOL, side="sell", type="market", quantity=buy.filled_qty, client_id=cid("ms"))
    )
    assert sell.status == "filled" and sell.filled_qty == buy.filled_qty
    assert sell.side == "sell" and sell.fee == sell.quote_filled * FEE
    req = (await log(sim_client, method="POST", path="/v1/orders"))[-1]
    assert req["body"] == f'{{"market":"KRW-BTC","side":"ask","volume":"{buy.filled_qty}","ord_type":"market","identifier":"{cid("ms")}"}}'
    btc = (await upbit.get_balances()).get("BTC")  # Upbit lists no row for an empty asset
    assert btc is None or btc.total == 0


async def test_market_buy_by_quantity_is_refused_locally(sim_client, upbit: UpbitSpot) -> None:
    before = len(await log(sim_client))
    with pytest.raises(Rejected) as ei:
        await upbit.place_order(OrderRequest(symbol=SYMBOL, side="buy", type="market", quantity=D("0.001"), client_id=cid("mq")))
    assert ei.value.code == "unsupported_order" and ei.value.status is None
    assert len(await log(sim_client)) == before


async def test_get_order_by_identifier(sim_client, upbit: UpbitSpot) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    placed = await upbit.place_order(limit("buy", "0.002", ask, cid("get"), "ioc"))
    got = await upbit.get_order(SYMBOL, cid("get"))
    assert got == placed
    req = (await log(sim_client, method="GET", path="/v1/order"))[-1]
    assert req["query"] == f"identifier={cid('get')}"
    assert req["jwt"]["claims"]["query_hash"] == hashlib.sha512(f"identifier={cid('get')}".encode()).hexdigest()
    with pytest.raises(OrderNotFound) as ei:
        await upbit.get_order(SYMBOL, cid("never-placed"))
    assert ei.value.code == "order_not_found" and ei.value.status == 404


async def test_cancel_resting_order(sim_client, upbit: UpbitSpot) -> None:
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    price = on_tick(bid * D("0.9"))
    opened = await upbit.place_order(limit("buy", "0.001", price, cid("rest")))
    assert opened.status == "open" and opened.filled_qty == 0 and opened.avg_price is None
    balances = await upbit.get_balances()
    assert balances["KRW"].locked == price * D("0.001") * (1 + FEE)

    canceled = await upbit.cancel_order(SYMBOL, cid("rest"))
    assert canceled.status == "canceled" and canceled.filled_qty == 0
    assert canceled.exchange_order_id == opened.exchange_order_id
    req = (await log(sim_client, method="DELETE", path="/v1/order"))[-1]
    assert req["query"] == f"identifier={cid('rest')}"
    assert (await upbit.get_balances())["KRW"].locked == 0

    # cancelling a final order returns its state instead of failing
    again = await upbit.cancel_order(SYMBOL, cid("rest"))
    assert again.status == "canceled"
    with pytest.raises(OrderNotFound):
        await upbit.cancel_order(SYMBOL, cid("no-such-order"))


async def test_cancel_cut_after_processing_is_outcome_unknown_not_a_nonce_error(
    sim_client, upbit: UpbitSpot
) -> None:
    """The DELETE was processed (its nonce spent), then the connection died: nothing may
    resend it with the same JWT (Upbit would answer 401 nonce_used, an AuthError)."""
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    await upbit.place_order(limit("buy", "0.001", on_tick(bid * D("0.9")), cid("cut")))
    await sim_client.fault(exchange="upbit", method="DELETE", path="/v1/order", kind="drop_after")
    with pytest.raises(OutcomeUnknown) as ei:
        await upbit.cancel_order(SYMBOL, cid("cut"))
    assert ei.value.code == CONNECTION_LOST
    assert [r["status"] for r in await log(sim_client, method="DELETE", path="/v1/order")] == ["dropped"]
    assert (await upbit.get_order(SYMBOL, cid("cut"))).status == "canceled"


async def test_cancel_of_a_filled_order_returns_it(upbit: UpbitSpot) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    await upbit.place_order(limit("buy", "0.001", ask, cid("filled"), "ioc"))
    res = await upbit.cancel_order(SYMBOL, cid("filled"))
    assert res.status == "filled" and res.filled_qty == D("0.001")


async def test_balances(sim_client, upbit: UpbitSpot) -> None:
    b = await upbit.get_balances()
    assert b["KRW"].free == D(100_000_000) and b["KRW"].locked == 0
    assert b["USDT"].free == D(10_000)
    ledger = await sim_client.ledger()
    assert D(ledger["balances"]["upbit"]["KRW"]["balance"]) == b["KRW"].free


async def test_order_book_decimals_are_the_json_text(sim_client, upbit: UpbitSpot) -> None:
    book = await upbit.get_order_book(SYMBOL, depth=5)
    raw = await sim_client.upbit("GET", "/v1/orderbook", {"markets": SYMBOL, "count": 5}, auth=False)
    # the numbers exactly as written on the wire, no float round trip
    numbers = re.findall(r'"(ask_price|bid_price|ask_size|bid_size)":([0-9.eE+-]+)', raw.text)
    texts: dict[str, list[Decimal]] = {}
    for key, text in numbers:
        texts.setdefault(key, []).append(D(text))  # Decimal(text) is exact; a float is not
    assert [lv.price for lv in book.asks] == texts["ask_price"]
    assert [lv.qty for lv in book.asks] == texts["ask_size"]
    assert [lv.price for lv in book.bids] == texts["bid_price"]
    assert [lv.qty for lv in book.bids] == texts["bid_size"]
    assert len(book.bids) == len(book.asks) == 5
    assert book.bids[0].price < book.asks[0].price
    assert all(isinstance(lv.price, Decimal) for lv in book.bids + book.asks)
    req = (await log(sim_client, path="/v1/orderbook"))[-2]  # the adapter's request
    assert req["query"] == "markets=KRW-BTC&count=5" and "jwt" not in req
    with pytest.raises(ValueError):
        await upbit.get_order_book(SYMBOL, depth=31)


async def test_every_request_carries_a_fresh_nonce(sim_client, upbit: UpbitSpot) -> None:
    for _ in range(3):
        await upbit.get_balances()
    # a read retried after a dropped connection is re-signed with a new nonce
    await sim_client.fault(exchange="upbit", method="GET", path="/v1/accounts", kind="drop_before")
    await upbit.get_balances()
    rows = await log(sim_client, path="/v1/accounts")
    assert [r["status"] for r in rows[-2:]] == ["dropped", 200]
    nonces = [r["jwt"]["claims"]["nonce"] for r in await log(sim_client) if "jwt" in r]
    assert len(nonces) == len(set(nonces)) >= 5  # chance, 3 + 1 accounts (a dropped request logs no claims)


async def test_polled_and_retried_order_lane_reads_carry_fresh_nonces(sim_client, make_upbit: MakeUpbit) -> None:
    await sim_client.config(upbit_answer_pending=True)  # POST answers "wait": the IOC is polled
    upbit = await make_upbit()
    # the first follow-up read is processed (its JWT checked and logged), then its
    # connection is cut: the read is retried on the order lane and must be re-signed
    await sim_client.fault(exchange="upbit", method="GET", path="/v1/order", kind="drop_after")
    res = await place_ioc(upbit, cid("poll-nonce"))
    assert res.status == "filled" and res.filled_qty == D("0.001")
    for _ in range(2):
        assert await upbit.get_order(SYMBOL, cid("poll-nonce")) == res
    gets = await log(sim_client, method="GET", path="/v1/order")
    assert [r["status"] for r in gets] == ["dropped", 200, 200, 200]
    assert gets[0]["query"] == gets[1]["query"] == f"uuid={res.exchange_order_id}"
    nonces = [r["jwt"]["claims"]["nonce"] for r in gets]
    assert len(set(nonces)) == 4


# ------------------------------------------------------------------------- exchange errors
async def test_insufficient_funds(sim_client, upbit: UpbitSpot) -> None:
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    with pytest.raises(InsufficientFunds) as ei:
        await upbit.place_order(limit("buy", "5", on_tick(bid / 2), cid("poor")))
    assert ei.value.code == "insufficient_funds_bid" and ei.value.client_id == cid("poor")
    with pytest.raises(InsufficientFunds) as ei:
        await upbit.place_order(OrderRequest(symbol=SYMBOL, side="sell", type="market", quantity=D("1"), client_id=cid("poor2")))
    assert ei.value.code == "insufficient_funds_ask"


async def test_under_min_total_and_identifier_reuse(upbit: UpbitSpot) -> None:
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    with pytest.raises(Rejected) as ei:
        await upbit.place_order(limit("buy", "0.00001", on_tick(bid / 2), cid("tiny")))
    assert ei.value.code == "under_min_total_bid" and not isinstance(ei.value, InsufficientFunds)
    # an identifier is single-use forever, even after the first attempt was rejected
    with pytest.raises(Rejected) as ei:
        await upbit.place_order(limit("buy", "0.001", on_tick(bid / 2), cid("tiny")))
    assert ei.value.code == "identifier_already_used"


# ------------------------------------------------------------------------- faults (CONTRACT §4)
async def place_ioc(upbit: UpbitSpot, client_id: str, qty: str = "0.001", ask: Decimal | None = None) -> Any:
    if ask is None:
        _, ask = await upbit.best_bid_ask(SYMBOL)
    return await upbit.place_order(limit("buy", qty, ask + 5000, client_id, "ioc"))


@pytest.mark.parametrize(
    ("kind", "executed"),
    [
        ("drop_after", True),  # placed and filled, the answer never sent
        ("drop_before", False),  # connection cut before processing
        ("http_500", True),
        ("http_500", False),
        ("unknown_503", True),
        ("unknown_503", False),
        ("garbage", True),  # 200 with a truncated body
        ("garbage", False),
        ("delay", True),  # processed, answered after the client's timeout
    ],
)
async def test_order_faults_give_outcome_unknown_and_the_lookup_tells(
    sim_client, make_upbit: MakeUpbit, kind: str, executed: bool
) -> None:
    upbit = await make_upbit(timeout_s=0.3)
    spec: dict[str, Any] = {"exchange": "upbit", "method": "POST", "path": "/v1/orders", "kind": kind}
    if kind in ("http_500", "unknown_503", "garbage"):
        spec["executed"] = executed
    if kind == "delay":
        spec.update(ms=1000, phase="after")
    await sim_client.fault(**spec)
    client_id = cid(f"{kind}-{executed}")
    with pytest.raises(OutcomeUnknown) as ei:
        await place_ioc(upbit, client_id)
    err = ei.value
    assert err.client_id == client_id and err.executed == "unknown" and err.infrastructure
    if kind in ("drop_after", "drop_before"):
        assert err.code == CONNECTION_LOST
    if kind == "delay":
        assert err.code == TIMEOUT
    if kind in ("http_500", "unknown_503"):
        assert err.status in (500, 503)
    if executed:
        found = await upbit.get_order(SYMBOL, client_id)
        assert found.status == "filled" and found.filled_qty == D("0.001")
    else:
        with pytest.raises(OrderNotFound):
            await upbit.get_order(SYMBOL, client_id)
        assert await ledger_order(sim_client, client_id) is None


async def test_rate_limit_429_blocks_the_adapter(sim_client, make_upbit: MakeUpbit) -> None:
    upbit = await make_upbit(max_rate_wait_s=0.2)
    await sim_client.fault(exchange="upbit", method="GET", path="/v1/accounts", kind="rate_limit_429", seconds=3)
    with pytest.raises(RateLimited) as ei:
        await upbit.get_balances()
    assert ei.value.status == 429 and not ei.value.banned and ei.value.retry_after >= 3
    assert ei.value.code == "too_many_requests"
    before = len(await log(sim_client))
    with pytest.raises(RateLimited) as ei:  # the block holds the limited group locally: nothing sent
        await upbit.get_balances()
    assert ei.value.code == CLIENT_THROTTLE and ei.value.status is None
    assert len(await log(sim_client)) == before
    # Upbit limits each group on its own: the order group was not limited
    assert (await place_ioc(upbit, cid("after-429"))).client_id == cid("after-429")


async def test_rate_limit_429_on_the_order_post_places_nothing(sim_client, make_upbit: MakeUpbit) -> None:
    upbit = await make_upbit(max_rate_wait_s=0.2)
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="rate_limit_429", seconds=2)
    with pytest.raises(RateLimited) as ei:
        await place_ioc(upbit, cid("post-429"))
    err = ei.value
    assert err.status == 429 and err.code == "too_many_requests" and not err.banned
    assert err.retry_after >= 2 and err.client_id == cid("post-429") and err.executed == "no"
    (post,) = await log(sim_client, method="POST", path="/v1/orders")
    assert post["status"] == 429 and post["fault"] == "rate_limit_429"
    assert await ledger_order(sim_client, cid("post-429")) is None


async def test_short_delay_before_processing_still_fills(sim_client, make_upbit: MakeUpbit) -> None:
    upbit = await make_upbit(timeout_s=1.0)
    _, ask = await upbit.best_bid_ask(SYMBOL)
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="delay", ms=200)  # phase "before"
    t0 = asyncio.get_running_loop().time()
    res = await place_ioc(upbit, cid("short-delay"), ask=ask)
    assert asyncio.get_running_loop().time() - t0 >= 0.2
    assert res.status == "filled" and res.filled_qty == D("0.001")
    (post,) = await log(sim_client, method="POST", path="/v1/orders")
    assert post["fault"] == "delay" and post["status"] == 201


async def test_delay_before_processing_past_the_timeout_executes_late(sim_client, make_upbit: MakeUpbit) -> None:
    """phase "before": the simulator sleeps, then processes the order even though the
    client has given up, as a slow exchange would: OutcomeUnknown, then the order exists."""
    upbit = await make_upbit(timeout_s=0.3)
    _, ask = await upbit.best_bid_ask(SYMBOL)
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="delay", ms=1000)
    with pytest.raises(OutcomeUnknown) as ei:
        await place_ioc(upbit, cid("late"), ask=ask)
    assert ei.value.code == TIMEOUT and ei.value.executed == "unknown" and ei.value.client_id == cid("late")
    assert await ledger_order(sim_client, cid("late")) is None  # still asleep: not processed yet
    await asyncio.sleep(1.0)
    row = await ledger_order(sim_client, cid("late"))
    assert row is not None and row["status"] == "filled"
    found = await upbit.get_order(SYMBOL, cid("late"))
    assert found.status == "filled" and found.exchange_order_id == row["exchange_order_id"]


async def test_ban_418(sim_client, make_upbit: MakeUpbit) -> None:
    upbit = await make_upbit()
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="ban_418", seconds=7)
    with pytest.raises(RateLimited) as ei:
        await place_ioc(upbit, cid("banned"))
    assert ei.value.banned and ei.value.status == 418 and ei.value.retry_after >= 7
    assert ei.value.client_id == cid("banned")
    assert upbit.rate_limiter.blocked()


@pytest.mark.parametrize(
    ("status", "name", "cls"),
    [
        (400, "invalid_price_bid", Rejected),
        (400, "invalid_volume_bid", Rejected),
        (400, "create_bid_error", Rejected),
        (400, "validation_error", Rejected),
        (400, "market_offline", Rejected),
        (400, "insufficient_funds_bid", InsufficientFunds),
        (401, "jwt_verification", AuthError),
        (401, "nonce_used", AuthError),
        (403, "out_of_scope", AuthError),
    ],
)
async def test_injected_rejections(sim_client, upbit: UpbitSpot, status: int, name: str, cls: type) -> None:
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="reject", status=status, name=name)
    with pytest.raises(cls) as ei:
        await place_ioc(upbit, cid(name))
    assert type(ei.value) is cls and ei.value.code == name and ei.value.status == status
    assert ei.value.executed == "no"


async def test_partial_fill_of_an_ioc(sim_client, upbit: UpbitSpot) -> None:
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="partial_fill", fraction=0.4)
    res = await place_ioc(upbit, cid("partial"), qty="0.001")
    assert res.status == "expired" and res.final  # final: "partially_filled" is only for open orders
    assert res.filled_qty == D("0.0004") and res.quantity == D("0.001")
    assert res.fee == res.quote_filled * FEE


async def test_exchange_down(sim_client, upbit: UpbitSpot) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    await sim_client.fault(exchange="upbit", kind="down")
    with pytest.raises(OutcomeUnknown) as ei:  # the connection was accepted, then cut
        await place_ioc(upbit, cid("down"), ask=ask)
    assert ei.value.code == CONNECTION_LOST
    with pytest.raises(OutcomeUnknown):
        await upbit.get_balances()
    await sim_client.clear_faults()
    with pytest.raises(OrderNotFound):
        await upbit.get_order(SYMBOL, cid("down"))


# ------------------------------------------------------------------------- decimals
@pytest.mark.parametrize("qty", ["0.001", "0.00012345", "0.1", "0.12345678"])
async def test_quantity_round_trip(sim_client, upbit: UpbitSpot, qty: str) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    res = await upbit.place_order(limit("buy", qty, ask * 2, cid(f"q{qty}"), "ioc"))
    assert res.filled_qty == D(qty) and str(res.quantity) == qty
    req = (await log(sim_client, method="POST", path="/v1/orders"))[-1]
    assert f'"volume":"{qty}"' in req["body"]
    row = await ledger_order(sim_client, cid(f"q{qty}"))
    assert row is not None and D(row["qty"]) == D(qty) and D(row["filled"]) == D(qty)


async def test_quantity_beyond_8_decimals_is_rounded_down(sim_client, upbit: UpbitSpot) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    res = await upbit.place_order(limit("buy", "0.001234567891", ask * 2, cid("q12"), "ioc"))
    assert res.filled_qty == D("0.00123456")
    req = (await log(sim_client, method="POST", path="/v1/orders"))[-1]
    assert '"volume":"0.00123456"' in req["body"]


async def test_prices_at_tick_boundaries(sim_client, upbit: UpbitSpot) -> None:
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    base = on_tick(bid * D("0.8"))
    cases = [
        ("buy", base, base),  # on the grid: unchanged
        ("buy", base + 999, base),  # a buy rounds down, never above the caller's limit
        ("sell", base * 2 + 1, base * 2 + 1000),  # a sell rounds up, never below it
    ]
    await upbit.place_order(limit("buy", "0.001", bid * 2, cid("inv"), "ioc"))  # something to sell
    for i, (side, price, sent) in enumerate(cases):
        res = await upbit.place_order(limit(side, "0.0001", price, cid(f"tick{i}")))
        assert res.status == "open"
        req = (await log(sim_client, method="POST", path="/v1/orders"))[-1]
        assert f'"price":"{fmt(sent)}"' in req["body"]
        await upbit.cancel_order(SYMBOL, cid(f"tick{i}"))


async def test_huge_krw_amount(sim_client, upbit: UpbitSpot) -> None:
    res = await upbit.place_order(
        OrderRequest(symbol=SYMBOL, side="buy", type="market", quote_amount=D("99000000"), client_id=cid("huge"))
    )
    req = (await log(sim_client, method="POST", path="/v1/orders"))[-1]
    assert req["body"] == f'{{"market":"KRW-BTC","side":"bid","price":"99000000","ord_type":"price","identifier":"{cid("huge")}"}}'
    assert res.quote_filled <= D(99_000_000) and res.filled_qty > D("0.5")
    row = await ledger_order(sim_client, cid("huge"))
    assert row is not None and D(row["filled"]) == res.filled_qty and D(row["fee"]) == res.fee


# ------------------------------------------------------------------------- bad input
async def test_bad_input_sends_nothing(sim_client, upbit: UpbitSpot) -> None:
    _, ask = await upbit.best_bid_ask(SYMBOL)
    before = len(await log(sim_client))
    with pytest.raises(ValueError):  # the model refuses NaN before an adapter sees it
        OrderRequest(symbol=SYMBOL, side="buy", type="limit", quantity=D("NaN"), price=ask, client_id=cid("nan"))
    with pytest.raises(TypeError):
        OrderRequest(symbol=SYMBOL, side="buy", type="limit", quantity=0.001, price=ask, client_id=cid("flt"))  # type: ignore[arg-type]
    # a request that slipped past the model (NaN forced in) is still refused locally
    req = limit("buy", "0.001", ask, cid("nan2"), "ioc")
    msgspec.structs.force_setattr(req, "quantity", D("NaN"))
    with pytest.raises(Rejected) as ei:
        await upbit.place_order(req)
    assert ei.value.code == "invalid_request"
    for bad_id in ("has space", "colon:id", "x" * 65, "ünï"):
        with pytest.raises(Rejected) as ei:
            await upbit.place_order(limit("buy", "0.001", ask, bad_id, "ioc"))
        assert ei.value.code == "invalid_client_id"
        with pytest.raises(Rejected):
            await upbit.get_order(SYMBOL, bad_id)
    with pytest.raises(Rejected) as ei:  # rounds to zero at 8 decimals
        await upbit.place_order(limit("buy", "0.000000001", ask, cid("zero"), "ioc"))
    assert ei.value.code == "invalid_request"
    assert len(await log(sim_client)) == before


async def test_unknown_market_is_rejected_before_any_order(sim_client, upbit: UpbitSpot) -> None:
    with pytest.raises(Rejected) as ei:
        await upbit.place_order(
            OrderRequest(symbol="KRW-NOPE", side="buy", type="limit", quantity=D(1), price=D(10000), client_id=cid("nope"))
        )
    assert type(ei.value) is Rejected and ei.value.code == "market_does_not_exist"
    assert not await log(sim_client, method="POST", path="/v1/orders")
    with pytest.raises(Rejected) as ei:
        await upbit.get_order_book("KRW-NOPE", depth=1)
    assert type(ei.value) is Rejected


# ------------------------------------------------------------------------- rate limiting
async def test_burst_of_50_orders_never_draws_a_429(sim_client, make_upbit: MakeUpbit) -> None:
    upbit = await make_upbit(max_rate_wait_s=30)
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    price = on_tick(bid * D("0.5"))
    results = await asyncio.gather(
        *(upbit.place_order(limit("buy", "0.0001", price, cid(f"burst{i}"))) for i in range(50))
    )
    assert all(r.status == "open" for r in results)
    posts = await log(sim_client, method="POST", path="/v1/orders")
    assert len(posts) == 50 and all(r["status"] == 201 for r in posts)
    assert not [r for r in await log(sim_client) if r["status"] in (429, 418)]
    times = sorted(r["ts_ms"] for r in posts)
    # Upbit's order group: 8 per second; no 1-second window on the server saw more
    assert max(sum(1 for t in times if s <= t < s + 1000) for s in times) <= 8


async def test_reserved_lane_passes_when_the_normal_lane_is_full(sim_client, make_upbit: MakeUpbit) -> None:
    frozen = RateLimiter("upbit", clock=lambda: 1000.0)  # a stopped clock: windows never roll
    upbit = await make_upbit(rate_limiter=frozen, max_rate_wait_s=0)
    bid, _ = await upbit.best_bid_ask(SYMBOL)
    price = on_tick(bid * D("0.5"))
    for i in range(7):  # 8/s minus the reserved share (int(8 * 0.2) = 1)
        await upbit.place_order(limit("buy", "0.0001", price, cid(f"n{i}")))
    with pytest.raises(RateLimited) as ei:
        await upbit.place_order(limit("buy", "0.0001", price, cid("n7")))
    assert ei.value.code == CLIENT_THROTTLE
    res = await upbit.place_order(limit("buy", "0.0001", price, cid("unwind"), None), reserved=True)
    assert res.status == "open"
    assert await ledger_order(sim_client, cid("n7")) is None


async def test_timers_keep_warm_and_refresh_until_closed(sim_client, make_upbit: MakeUpbit) -> None:
    upbit = await make_upbit(keepwarm_s=0.05, rules_refresh_s=0.05)
    await asyncio.sleep(0.3)
    assert len(await log(sim_client, path="/v1/market/all")) > 2
    assert len(await log(sim_client, path="/v1/orders/chance")) > 1
    await upbit.close()
    count = len(await log(sim_client))
    await asyncio.sleep(0.15)
    assert len(await log(sim_client)) == count


async def test_a_quotation_429_never_blocks_order_look_ups(sim_client, make_upbit: MakeUpbit) -> None:
    """Upbit limits each group on its own: a 429 on the order book (perhaps another
    process on the same IP) must not stop the order look-up that resolves a hedge."""
    upbit = await make_upbit(max_rate_wait_s=0.2)
    placed = await upbit.place_order(OrderRequest(symbol="KRW-BTC", side="buy", type="market", quote_amount=D("10000"),
                                                  client_id=cid("before-429")))
    await sim_client.fault(exchange="upbit", method="GET", path="/v1/orderbook", kind="rate_limit_429", seconds=2)
    with pytest.raises(RateLimited):
        await upbit.get_order_book("KRW-BTC")
    got = await upbit.get_order("KRW-BTC", placed.client_id, reserved=True)  # at once, not after 2 s
    assert got.client_id == placed.client_id
    with pytest.raises(RateLimited) as ei:  # the order book itself waits out its block
        await upbit.get_order_book("KRW-BTC")
    assert ei.value.code == CLIENT_THROTTLE
