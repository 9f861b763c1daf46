"""The CCXT adapters (``CcxtUpbit``, ``CcxtBinanceUsdm``) against the exchange simulator.

Every operation on both exchanges through ccxt; results agree with the simulator's ledger
and with what the direct adapter reports for the same order; what ccxt puts on the wire
(client ids, time in force, reduce-only, response type) is checked in the request log.
The fault and rejection tables are written once and run over **both** adapter types, so
the two can never drift apart on which error class a failure becomes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest

pytest.importorskip("ccxt")

import aiohttp  # noqa: E402
import ccxt.async_support as ccxt_async  # noqa: E402

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest  # noqa: E402
from adapters_direct._http import CLIENT_THROTTLE, CONNECTION_LOST, TIMEOUT  # noqa: E402
from adapters_direct.base import ExchangeAdapter  # noqa: E402
from adapters_direct.ccxt_adapter import CcxtBinanceUsdm, CcxtUpbit, HttpSeen, classify_ccxt_error  # noqa: E402
from adapters_direct.client_ids import make_client_id  # noqa: E402
from adapters_direct.errors import (  # noqa: E402
    AuthError,
    InsufficientFunds,
    InvalidResponse,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)
from kimp_fast.orders import format_decimal as fmt  # noqa: E402
from tests.fixtures.sim import SimClient  # noqa: E402

pytestmark = pytest.mark.ccxt

D = Decimal
UPBIT = "KRW-BTC"
BINANCE = "BTCUSDT"
SYMBOL = {"upbit": UPBIT, "binance": BINANCE}
UPBIT_FEE = D("0.0005")
# The shared tables run on the direct adapter's two order paths and on ccxt.
VARIANTS = [
    pytest.param((AdapterType.DIRECT, "wire"), id="direct-wire"),
    pytest.param((AdapterType.DIRECT, "aiohttp"), id="direct-aiohttp"),
    pytest.param((AdapterType.CCXT, None), id="ccxt"),
]

Make = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make(sim) -> AsyncIterator[Make]:
    """``await make(exchange, kind=CCXT, **options)``: an opened adapter on the simulator
    (through the factory), closed after the test."""
    opened: list[ExchangeAdapter] = []

    async def _make(exchange: str, kind: AdapterType = AdapterType.CCXT, **options: Any) -> Any:
        options.setdefault("symbols", (SYMBOL[exchange],))
        options.setdefault("keepwarm_s", 0)
        options.setdefault("rules_refresh_s", 0)
        keys = sim.upbit_keys if exchange == "upbit" else sim.binance_keys
        api_key = keys.access_key if exchange == "upbit" else keys.api_key
        secret = options.pop("secret_key", keys.secret_key)
        ad = ExchangeFactory.create(exchange, kind, api_key=api_key, secret_key=secret, base_url=sim.url, **options)
        assert ad.adapter_type == kind.value and ad.name == exchange
        await ad.open()
        opened.append(ad)
        return ad

    yield _make
    for ad in opened:
        await ad.close()


@pytest.fixture
async def upbit(make: Make) -> CcxtUpbit:
    return await make("upbit")


@pytest.fixture
async def binance(make: Make) -> CcxtBinanceUsdm:
    return await make("binance")


async def log(c: SimClient, exchange: str, **filters: Any) -> list[dict[str, Any]]:
    return await c.requests(exchange=exchange, limit=5000, **filters)


async def ledger_order(c: SimClient, exchange: str, client_id: str) -> dict[str, Any] | None:
    return next((o for o in await c.orders(exchange) if o["client_id"] == client_id), None)


def on_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_DOWN) * tick


def cid(name: str, exchange: str = "upbit") -> str:
    return make_client_id(f"ccxt-{name}", f"{exchange}-entry", 0)


def limit(symbol: str, side: str, qty: str, price: Decimal, client_id: str, tif: str | None = None, **kw: Any) -> OrderRequest:
    return OrderRequest(
        symbol=symbol, side=side, type="limit", quantity=D(qty), price=price, time_in_force=tif, client_id=client_id, **kw
    )


def form(query: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in query.split("&") if p)


async def open_variant(make: Make, exchange: str, variant: tuple[AdapterType, str | None], **options: Any) -> Any:
    """An adapter of one VARIANTS entry; returns it and a short tag for client ids."""
    kind, lane = variant
    if lane is not None:
        options["order_lane"] = lane
    ad = await make(exchange, kind, **options)
    assert lane is None or ad.options.order_lane == lane
    return ad


def tag(variant: tuple[AdapterType, str | None]) -> str:
    kind, lane = variant
    return kind.value if lane is None else f"{kind.value}-{lane}"


# ============================================================================ packaging
def test_adapters_import_without_ccxt_and_the_factory_says_how_to_install() -> None:
    """``import adapters_direct`` (and the ccxt module) work without ccxt; building a ccxt
    adapter then raises an ImportError naming the extra."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ccxt' or name.startswith('ccxt.'):\n"
        "            raise ImportError('ccxt blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import adapters_direct, adapters_direct.ccxt_adapter\n"
        "from adapters_direct import ExchangeFactory\n"
        "try:\n"
        "    ExchangeFactory.create('upbit', 'ccxt', api_key='a', secret_key='s')\n"
        "except ImportError as e:\n"
        "    print('IMPORT-ERROR:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR:" in out.stdout and "kimp-fast[ccxt]" in out.stdout


# ============================================================================ lifecycle
async def test_rules_equal_the_direct_adapters(make: Make) -> None:
    for exchange in ("upbit", "binance"):
        direct = await make(exchange, AdapterType.DIRECT)
        via_ccxt = await make(exchange)
        sym = SYMBOL[exchange]
        assert via_ccxt.rules(sym) == direct.rules(sym)
    up = await make("upbit")
    # the tick is /v1/orderbook/instruments' 1,000 KRW, not ccxt's hard-coded 1e-8
    assert up.rules(UPBIT).tick_size == D(1000) and up.tick_for(UPBIT, D(140_000_000)) == D(1000)
    assert up.ex.markets["BTC/KRW"]["precision"]["price"] == 1e-8
    with pytest.raises(KeyError):
        up.rules("KRW-ETH")


async def test_one_ccxt_object_per_adapter_closed_on_close(sim_client, make: Make) -> None:
    ad = await make("binance")
    ex = ad.ex
    assert isinstance(ex, ccxt_async.binanceusdm) and ex.enableRateLimit is False
    assert ex.options["fetchCurrencies"] is False and ex.options["recvWindow"] == 5000
    assert ex.session is not None and not ex.session.closed
    await ad.close()
    await ad.close()  # idempotent
    assert ad.ex is None and ex.session is None
    before = len(await log(sim_client, "binance"))
    with pytest.raises(Unavailable):
        await ad.get_balances()
    assert len(await log(sim_client, "binance")) == before


@pytest.mark.parametrize("exchange", ["upbit", "binance"])
async def test_wrong_secret_is_auth_error(sim, make: Make, exchange: str) -> None:
    with pytest.raises(AuthError) as ei:
        await make(exchange, secret_key="not-the-secret")  # rules load signed calls in open()
    assert ei.value.code == ("jwt_verification" if exchange == "upbit" else -1022)
    assert "not-the-secret" not in str(ei.value) + repr(ei.value)
    ad = await make(exchange, secret_key="not-the-secret-either", symbols=())
    with pytest.raises(AuthError):
        await ad.get_balances()


@pytest.mark.parametrize("cls", [CcxtUpbit, CcxtBinanceUsdm])
async def test_unreachable_exchange_is_unavailable(cls: type) -> None:
    """A refused connection is Unavailable (nothing was sent): ccxt only says
    ExchangeNotAvailable, the aiohttp cause it chains tells the difference."""
    ad = cls(api_key="acc", secret_key="top-secret-value", base_url="http://127.0.0.1:9", symbols=("X",))
    with pytest.raises(Unavailable) as ei:
        await ad.open()
    assert "top-secret-value" not in repr(ad) + str(ei.value) + repr(ei.value)
    assert ad.ex is None


# ============================================================================ Upbit
async def test_upbit_limit_ioc_buy(sim_client, make: Make, upbit: CcxtUpbit) -> None:
    _, ask = await upbit.best_bid_ask(UPBIT)
    client_id = cid("ioc")
    res = await upbit.place_order(limit(UPBIT, "buy", "0.001", ask + 500, client_id, "ioc"))  # off-tick: rounded down
    assert res.status == "filled" and res.client_id == client_id and res.side == "buy"
    assert res.filled_qty == D("0.001") == res.quantity
    assert res.avg_price == ask and res.quote_filled == ask * D("0.001")
    assert res.fee == res.quote_filled * UPBIT_FEE and res.fee_asset == "KRW" and res.ts_ms > 0
    row = await ledger_order(sim_client, "upbit", client_id)
    assert row is not None and row["exchange_order_id"] == res.exchange_order_id
    assert D(row["filled"]) == res.filled_qty and D(row["fee"]) == res.fee and D(row["avg_price"]) == res.avg_price
    (req,) = await log(sim_client, "upbit", method="POST", path="/v1/orders")
    assert req["status"] == 201 and req["headers"]["Authorization"] == "Bearer"
    assert req["body"] == (
        f'{{"market":"KRW-BTC","side":"bid","ord_type":"limit","price":"{fmt(ask)}","volume":"0.001",'
        f'"identifier":"{client_id}","time_in_force":"ioc"}}'
    )
    assert set(req["jwt"]["claims"]) == {"access_key", "nonce", "query_hash", "query_hash_alg"}
    # the same order read by the direct adapter normalizes to the same result
    direct = await make("upbit", AdapterType.DIRECT)
    assert await direct.get_order(UPBIT, client_id) == await upbit.get_order(UPBIT, client_id) == res


async def test_upbit_market_buy_by_krw_then_market_sell(sim_client, upbit: CcxtUpbit) -> None:
    buy = await upbit.place_order(
        OrderRequest(symbol=UPBIT, side="buy", type="market", quote_amount=D("100000.7"), client_id=cid("mb"))
    )
    assert buy.status == "expired" and buy.final and buy.quantity is None
    assert D("0.0007") < buy.filled_qty < D("0.00072") and buy.quote_filled <= D(100000)
    assert buy.fee == buy.quote_filled * UPBIT_FEE
    (req,) = await log(sim_client, "upbit", method="POST", path="/v1/orders")
    # ccxt's `cost` param becomes the KRW total and does not leak into the body
    assert req["body"] == f'{{"market":"KRW-BTC","side":"bid","ord_type":"price","price":"100000","identifier":"{cid("mb")}"}}'
    sell = await upbit.place_order(
        OrderRequest(symbol=UPBIT, side="sell", type="market", quantity=buy.filled_qty, client_id=cid("ms"))
    )
    assert sell.status == "filled" and sell.filled_qty == buy.filled_qty and sell.side == "sell"
    req = (await log(sim_client, "upbit", method="POST", path="/v1/orders"))[-1]
    assert req["body"] == (
        f'{{"market":"KRW-BTC","side":"ask","ord_type":"market","volume":"{buy.filled_qty}","identifier":"{cid("ms")}"}}'
    )
    for r in (buy, sell):
        row = await ledger_order(sim_client, "upbit", r.client_id)
        assert row is not None and D(row["filled"]) == r.filled_qty and D(row["fee"]) == r.fee


async def test_upbit_get_cancel_balances_book(sim_client, upbit: CcxtUpbit) -> None:
    bid, _ = await upbit.best_bid_ask(UPBIT)
    price = on_tick(bid * D("0.9"), D(1000))
    opened = await upbit.place_order(limit(UPBIT, "buy", "0.001", price, cid("rest")))
    assert opened.status == "open" and opened.filled_qty == 0 and opened.avg_price is None
    assert await upbit.get_order(UPBIT, cid("rest")) == opened
    req = (await log(sim_client, "upbit", method="GET", path="/v1/order"))[-1]
    assert req["query"] == f"identifier={cid('rest')}"
    balances = await upbit.get_balances()
    assert balances["KRW"].locked == price * D("0.001") * (1 + UPBIT_FEE)
    ledger = await sim_client.ledger()
    assert D(ledger["balances"]["upbit"]["KRW"]["balance"]) == balances["KRW"].free

    canceled = await upbit.cancel_order(UPBIT, cid("rest"))
    assert canceled.status == "canceled" and canceled.exchange_order_id == opened.exchange_order_id
    req = (await log(sim_client, "upbit", method="DELETE", path="/v1/order"))[-1]
    assert req["query"] == f"identifier={cid('rest')}"
    assert (await upbit.get_balances())["KRW"].locked == 0
    assert (await upbit.cancel_order(UPBIT, cid("rest"))).status == "canceled"  # final: its state
    with pytest.raises(OrderNotFound) as ei:
        await upbit.get_order(UPBIT, cid("never"))
    assert ei.value.code == "order_not_found" and ei.value.status == 404
    with pytest.raises(OrderNotFound):
        await upbit.cancel_order(UPBIT, cid("never"))

    book = await upbit.get_order_book(UPBIT, depth=5)
    raw = await sim_client.upbit("GET", "/v1/orderbook", {"markets": UPBIT, "count": 5}, auth=False)
    (wire,) = raw.data
    # JSON numbers come back through ccxt as floats; the adapter restores the exact text
    assert [lv.price for lv in book.asks] == [D(str(u["ask_price"])) for u in wire["orderbook_units"]]
    assert [lv.qty for lv in book.bids] == [D(str(u["bid_size"])) for u in wire["orderbook_units"]]
    with pytest.raises(ValueError):
        await upbit.get_order_book(UPBIT, depth=31)


@pytest.mark.parametrize("qty", ["0.001", "0.00012345", "0.12345678"])
async def test_upbit_quantity_round_trip(sim_client, upbit: CcxtUpbit, qty: str) -> None:
    _, ask = await upbit.best_bid_ask(UPBIT)
    res = await upbit.place_order(limit(UPBIT, "buy", qty, ask * 2, cid(f"q{qty}"), "ioc"))
    assert res.filled_qty == D(qty) and str(res.quantity) == qty
    req = (await log(sim_client, "upbit", method="POST", path="/v1/orders"))[-1]
    assert f'"volume":"{qty}"' in req["body"]


async def test_upbit_prices_at_tick_boundaries_and_huge_krw(sim_client, upbit: CcxtUpbit) -> None:
    bid, _ = await upbit.best_bid_ask(UPBIT)
    base = on_tick(bid * D("0.8"), D(1000))
    await upbit.place_order(limit(UPBIT, "buy", "0.001", bid * 2, cid("inv"), "ioc"))  # something to sell
    for i, (side, price, sent) in enumerate(
        [("buy", base, base), ("buy", base + 999, base), ("sell", base * 2 + 1, base * 2 + 1000)]
    ):
        res = await upbit.place_order(limit(UPBIT, side, "0.0001", price, cid(f"tick{i}")))
        assert res.status == "open"
        req = (await log(sim_client, "upbit", method="POST", path="/v1/orders"))[-1]
        assert f'"price":"{fmt(sent)}"' in req["body"]
        await upbit.cancel_order(UPBIT, cid(f"tick{i}"))
    res = await upbit.place_order(
        OrderRequest(symbol=UPBIT, side="buy", type="market", quote_amount=D("99000000"), client_id=cid("huge"))
    )
    req = (await log(sim_client, "upbit", method="POST", path="/v1/orders"))[-1]
    assert '"price":"99000000"' in req["body"]
    row = await ledger_order(sim_client, "upbit", cid("huge"))
    assert row is not None and D(row["filled"]) == res.filled_qty > D("0.5")


async def test_upbit_bad_input_sends_nothing(sim_client, upbit: CcxtUpbit) -> None:
    _, ask = await upbit.best_bid_ask(UPBIT)
    before = len(await log(sim_client, "upbit"))
    for req, code in [
        (OrderRequest(symbol=UPBIT, side="buy", type="market", quantity=D("0.001"), client_id=cid("mq")), "unsupported_order"),
        (limit(UPBIT, "buy", "0.000000001", ask, cid("zero"), "ioc"), "invalid_request"),
        (limit(UPBIT, "buy", "0.001", ask, "has space", "ioc"), "invalid_client_id"),
    ]:
        with pytest.raises(Rejected) as ei:
            await upbit.place_order(req)
        assert ei.value.code == code and ei.value.status is None
    assert len(await log(sim_client, "upbit")) == before


async def test_upbit_exchange_errors(upbit: CcxtUpbit) -> None:
    bid, _ = await upbit.best_bid_ask(UPBIT)
    with pytest.raises(InsufficientFunds) as ei:
        await upbit.place_order(limit(UPBIT, "buy", "5", on_tick(bid / 2, D(1000)), cid("poor")))
    assert ei.value.code == "insufficient_funds_bid" and ei.value.client_id == cid("poor")
    with pytest.raises(Rejected) as ei:
        await upbit.place_order(limit(UPBIT, "buy", "0.00001", on_tick(bid / 2, D(1000)), cid("tiny")))
    assert ei.value.code == "under_min_total_bid" and type(ei.value) is Rejected
    with pytest.raises(Rejected) as ei:  # single-use identifier, even after a rejection
        await upbit.place_order(limit(UPBIT, "buy", "0.001", on_tick(bid / 2, D(1000)), cid("tiny")))
    assert ei.value.code == "identifier_already_used"


@pytest.mark.parametrize(("exchange", "per_second"), [("upbit", 8), ("binance", 10)])
async def test_burst_of_50_orders_never_draws_a_429(sim_client, make: Make, exchange: str, per_second: int) -> None:
    """Mirrors the direct adapters' burst test: our limiter paces ccxt to the exchange's
    order rate (Upbit 8/s, the seed's Binance 10/s), so the simulator never answers 429."""
    ad = await make(exchange, max_rate_wait_s=30)
    bid, _ = await ad.best_bid_ask(SYMBOL[exchange])
    price = on_tick(bid * D("0.5"), D(1000)) if exchange == "upbit" else on_tick(bid * D("0.97"), D("0.1"))
    qty = "0.0001" if exchange == "upbit" else "0.002"
    path = "/v1/orders" if exchange == "upbit" else "/fapi/v1/order"
    t0 = asyncio.get_running_loop().time()
    results = await asyncio.gather(
        *(ad.place_order(limit(SYMBOL[exchange], "buy", qty, price, cid(f"burst{i}", exchange))) for i in range(50))
    )
    assert asyncio.get_running_loop().time() - t0 < 20
    assert all(r.status == "open" for r in results)
    posts = await log(sim_client, exchange, method="POST", path=path)
    assert len(posts) == 50 and all(r["status"] in (200, 201) for r in posts)
    assert not [r for r in await log(sim_client, exchange) if r["status"] in (429, 418)]
    times = sorted(r["ts_ms"] for r in posts)
    assert max(sum(1 for t in times if s <= t < s + 1000) for s in times) <= per_second


async def test_no_request_carries_an_origin_header(sim_client, make: Make) -> None:
    """Upbit throttles requests with an Origin header to 1 per 10 s; ccxt must not send one."""
    for exchange in ("upbit", "binance"):
        ad = await make(exchange)
        await ad.get_balances()
        await ad.get_order_book(SYMBOL[exchange], 5)
        placed = await place_fillable(ad, exchange, cid("origin", exchange))
        await ad.get_order(SYMBOL[exchange], placed.client_id)
        rows = await log(sim_client, exchange)
        assert len(rows) >= 6 and any(r["method"] == "POST" for r in rows)
        assert [r["headers"] for r in rows if "Origin" in r["headers"]] == []
    # the log does record the header when one is sent
    await sim_client.upbit("GET", "/v1/market/all", auth=False, headers={"Origin": "https://example.com"})
    assert (await log(sim_client, "upbit"))[-1]["headers"]["Origin"] == "https://example.com"


# ============================================================================ Binance
async def test_binance_orders_on_the_wire(sim_client, make: Make, binance: CcxtBinanceUsdm) -> None:
    bid, ask = await binance.best_bid_ask(BINANCE)
    short = await binance.place_order(OrderRequest(symbol=BINANCE, side="sell", type="market", quantity=D("0.0025"), client_id=cid("short", "binance")))
    assert short.status == "filled" and short.filled_qty == D("0.002") == short.quantity  # rounded down to the step
    assert short.avg_price == bid and short.quote_filled == bid * D("0.002")
    assert short.fee == short.quote_filled * D("0.0005") and short.fee_asset == "USDT"
    req = (await log(sim_client, "binance", method="POST", path="/fapi/v1/order"))[-1]
    sent = form(req["body"])
    assert req["status"] == 200 and req["headers"]["X-MBX-APIKEY"]
    assert sent["newClientOrderId"] == cid("short", "binance") and sent["newOrderRespType"] == "RESULT"
    assert sent["type"] == "MARKET" and sent["quantity"] == "0.002" and "reduceOnly" not in sent
    assert sent["recvWindow"] == "5000" and "signature" in sent

    ioc = await binance.place_order(limit(BINANCE, "buy", "0.001", ask + D("0.07"), cid("ioc", "binance"), "ioc", reduce_only=True))
    assert ioc.status == "filled" and ioc.filled_qty == D("0.001") and ioc.avg_price == ask
    sent = form((await log(sim_client, "binance", method="POST", path="/fapi/v1/order"))[-1]["body"])
    assert sent["timeInForce"] == "IOC" and sent["reduceOnly"] == "true" and sent["price"] == fmt(ask)

    for r in (short, ioc):
        row = await ledger_order(sim_client, "binance", r.client_id)
        assert row is not None and row["exchange_order_id"] == r.exchange_order_id
        assert D(row["filled"]) == r.filled_qty and D(row["avg_price"]) == r.avg_price
    direct = await make("binance", AdapterType.DIRECT)
    assert await direct.get_order(BINANCE, short.client_id) == await binance.get_order(BINANCE, short.client_id) == short
    req = (await log(sim_client, "binance", method="GET", path="/fapi/v1/order"))[-1]
    assert form(req["query"])["origClientOrderId"] == short.client_id

    position = await binance.get_position(BINANCE)
    assert position == await direct.get_position(BINANCE)
    assert position.qty == D("-0.001") and position.leverage > 0 and position.margin_type == "CROSSED"
    ledger = await sim_client.ledger()
    assert D(ledger["positions"]["binance"][BINANCE]["qty"]) == position.qty
    with pytest.raises(Rejected) as ei:  # reduce-only that would increase... nothing left to reduce
        await binance.place_order(limit(BINANCE, "sell", "0.005", bid, cid("ro", "binance"), "ioc", reduce_only=True))
    assert ei.value.code == -2022


async def test_binance_resting_order_cancel_and_lookups(sim_client, binance: CcxtBinanceUsdm) -> None:
    bid, _ = await binance.best_bid_ask(BINANCE)
    price = on_tick(bid * D("0.97"), D("0.1"))
    opened = await binance.place_order(limit(BINANCE, "buy", "0.002", price, cid("rest", "binance")))
    assert opened.status == "open" and opened.filled_qty == 0 and opened.avg_price is None
    sent = form((await log(sim_client, "binance", method="POST", path="/fapi/v1/order"))[-1]["body"])
    assert sent["timeInForce"] == "GTC"
    canceled = await binance.cancel_order(BINANCE, cid("rest", "binance"))
    assert canceled.status == "canceled" and canceled.exchange_order_id == opened.exchange_order_id
    req = (await log(sim_client, "binance", method="DELETE", path="/fapi/v1/order"))[-1]
    assert form(req["query"])["origClientOrderId"] == cid("rest", "binance")
    again = await binance.cancel_order(BINANCE, cid("rest", "binance"))  # -2011, then the lookup
    assert again.status == "canceled"
    with pytest.raises(OrderNotFound) as ei:
        await binance.get_order(BINANCE, cid("never", "binance"))
    assert ei.value.code == -2013
    with pytest.raises(OrderNotFound):
        await binance.cancel_order(BINANCE, cid("never", "binance"))


async def test_binance_account_and_market(sim_client, make: Make, binance: CcxtBinanceUsdm) -> None:
    direct = await make("binance", AdapterType.DIRECT)
    balances = await binance.get_balances()
    assert balances == await direct.get_balances()
    ledger = await sim_client.ledger()
    assert balances["USDT"].free == D(ledger["balances"]["binance"]["USDT"]["available"])
    assert await binance.get_available_margin() == balances["USDT"].free
    assert await binance.get_commission_rate(BINANCE) == (D("0.0002"), D("0.0005"))
    assert await binance.get_funding_rate(BINANCE) == await direct.get_funding_rate(BINANCE)
    assert await binance.get_funding_income(BINANCE, 1) == await direct.get_funding_income(BINANCE, 1)
    req = (await log(sim_client, "binance", path="/fapi/v1/income"))[-2]  # ours, before the direct one
    assert form(req["query"])["incomeType"] == "FUNDING_FEE"
    book = await binance.get_order_book(BINANCE, depth=7)
    assert len(book.bids) == len(book.asks) == 7 and book.bids[0].price < book.asks[0].price
    assert form((await log(sim_client, "binance", path="/fapi/v1/depth"))[-1]["query"])["limit"] == "10"
    assert (book.bids[0].price, book.asks[0].price) == await binance.best_bid_ask(BINANCE)

    assert await binance.set_leverage(BINANCE, 7) == 7
    await binance.set_margin_type(BINANCE, "ISOLATED")
    await binance.set_margin_type(BINANCE, "ISOLATED")  # -4046 "no need to change": success
    position = await binance.get_position(BINANCE)
    assert position.qty == 0 and position.leverage == 7 and position.margin_type == "ISOLATED"
    with pytest.raises(ValueError):
        await binance.set_leverage(BINANCE, 0)

    await binance.ensure_one_way_mode()
    r = await sim_client.binance("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
    assert r.status == 200, r.text
    with pytest.raises(Rejected) as ei:
        await binance.ensure_one_way_mode()
    assert ei.value.code == "hedge_mode"


async def test_binance_bad_input_sends_nothing(sim_client, binance: CcxtBinanceUsdm) -> None:
    before = len(await log(sim_client, "binance"))
    for req, code in [
        (OrderRequest(symbol=BINANCE, side="buy", type="market", quote_amount=D("100"), client_id=cid("q", "binance")), "unsupported_order"),
        (OrderRequest(symbol=BINANCE, side="sell", type="market", quantity=D("0.0009"), client_id=cid("z", "binance")), "invalid_request"),
        (OrderRequest(symbol=BINANCE, side="sell", type="market", quantity=D("0.001"), client_id="x" * 37), "invalid_client_id"),
    ]:
        with pytest.raises(Rejected) as ei:
            await binance.place_order(req)
        assert ei.value.code == code and ei.value.status is None
    assert len(await log(sim_client, "binance")) == before


# ============================================================================ shared expectations
# (exchange, fault spec on order placement) -> what every adapter type must raise.
# executed=True: the simulator placed and filled the order, so get_order must find it.
FAULTS: list[tuple[str, dict[str, Any], type, Any, bool]] = [
    # exchange, fault,                                     class,          code,            executed
    ("upbit", {"kind": "drop_before"}, OutcomeUnknown, CONNECTION_LOST, False),
    ("upbit", {"kind": "drop_after"}, OutcomeUnknown, CONNECTION_LOST, True),
    ("upbit", {"kind": "http_500", "executed": True}, OutcomeUnknown, "server_error", True),
    ("upbit", {"kind": "http_500"}, OutcomeUnknown, "server_error", False),
    ("upbit", {"kind": "unknown_503", "executed": True}, OutcomeUnknown, "server_error", True),
    ("upbit", {"kind": "unknown_503"}, OutcomeUnknown, "server_error", False),
    ("upbit", {"kind": "garbage", "executed": True}, InvalidResponse, "invalid_response", True),
    ("upbit", {"kind": "garbage"}, InvalidResponse, "invalid_response", False),
    ("upbit", {"kind": "delay", "ms": 1000, "phase": "after"}, OutcomeUnknown, TIMEOUT, True),
    ("upbit", {"kind": "down"}, OutcomeUnknown, CONNECTION_LOST, False),
    ("upbit", {"kind": "rate_limit_429", "seconds": 2}, RateLimited, "too_many_requests", False),
    ("upbit", {"kind": "ban_418", "seconds": 3}, RateLimited, "too_many_requests", False),
    ("binance", {"kind": "drop_before"}, OutcomeUnknown, CONNECTION_LOST, False),
    ("binance", {"kind": "drop_after"}, OutcomeUnknown, CONNECTION_LOST, True),
    ("binance", {"kind": "http_500", "executed": True}, OutcomeUnknown, -1000, True),
    ("binance", {"kind": "http_500"}, OutcomeUnknown, -1000, False),
    ("binance", {"kind": "unknown_503", "executed": True}, OutcomeUnknown, -1000, True),
    ("binance", {"kind": "unknown_503"}, OutcomeUnknown, -1000, False),
    ("binance", {"kind": "garbage", "executed": True}, InvalidResponse, "invalid_response", True),
    ("binance", {"kind": "garbage"}, InvalidResponse, "invalid_response", False),
    ("binance", {"kind": "delay", "ms": 1000, "phase": "after"}, OutcomeUnknown, TIMEOUT, True),
    ("binance", {"kind": "down"}, OutcomeUnknown, CONNECTION_LOST, False),
    ("binance", {"kind": "rate_limit_429", "seconds": 2}, RateLimited, -1003, False),
    ("binance", {"kind": "ban_418", "seconds": 3}, RateLimited, -1003, False),
]

# Injected rejections of an order: (exchange, status, code or name) -> class.
REJECTIONS: list[tuple[str, int, Any, type]] = [
    ("upbit", 400, "invalid_price_bid", Rejected),
    ("upbit", 400, "create_bid_error", Rejected),
    ("upbit", 400, "under_min_total_bid", Rejected),
    ("upbit", 400, "insufficient_funds_bid", InsufficientFunds),
    ("upbit", 401, "jwt_verification", AuthError),
    ("upbit", 401, "nonce_used", AuthError),
    ("upbit", 403, "out_of_scope", AuthError),
    ("upbit", 404, "order_not_found", OrderNotFound),
    ("upbit", 500, "server_error", OutcomeUnknown),
    ("binance", 400, -2019, InsufficientFunds),
    ("binance", 400, -2018, InsufficientFunds),
    ("binance", 400, -4164, Rejected),
    ("binance", 400, -2022, Rejected),
    ("binance", 400, -4116, Rejected),
    ("binance", 400, -1021, Rejected),  # the clock is re-synced, the order is not retried
    ("binance", 400, -1022, AuthError),
    ("binance", 401, -2015, AuthError),
    ("binance", 400, -1003, RateLimited),
    ("binance", 503, -1008, Unavailable),
    ("binance", 400, -1006, OutcomeUnknown),
    ("binance", 408, -1007, OutcomeUnknown),
    ("binance", 500, -1001, OutcomeUnknown),
]


# Fills at once (a crossing IOC buy), above both exchanges' minimum order value.
FILL_QTY = {"upbit": D("0.001"), "binance": D("0.002")}


async def place_fillable(ad: Any, exchange: str, client_id: str) -> Any:
    _, ask = await ad.best_bid_ask(SYMBOL[exchange])
    price = ask * 2 if exchange == "upbit" else ask * D("1.01")
    tick = D(1000) if exchange == "upbit" else D("0.1")
    qty = str(FILL_QTY[exchange])
    return await ad.place_order(limit(SYMBOL[exchange], "buy", qty, on_tick(price, tick), client_id, "ioc"))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("exchange", "fault", "cls", "code", "executed"), FAULTS, ids=[f"{e}-{f['kind']}-{x}" for e, f, _, _, x in FAULTS]
)
async def test_order_faults_map_to_the_same_class(
    sim_client, make: Make, variant: Any, exchange: str, fault: dict, cls: type, code: Any, executed: bool
) -> None:
    ad = await open_variant(make, exchange, variant, timeout_s=0.4, max_rate_wait_s=0.1)
    await ad.best_bid_ask(SYMBOL[exchange])  # warm before the fault
    path = "/v1/orders" if exchange == "upbit" else "/fapi/v1/order"
    await sim_client.fault(exchange=exchange, method="POST", path=path, **fault)
    client_id = cid(f"{tag(variant)}-{fault['kind']}-{executed}", exchange)
    with pytest.raises(cls) as ei:
        await place_fillable(ad, exchange, client_id)
    err = ei.value
    assert type(err) is cls and err.code == code and err.exchange == exchange
    assert err.client_id == client_id
    if fault["kind"] == "ban_418":
        assert err.banned and err.status == 418 and err.retry_after >= 3
    if fault["kind"] == "rate_limit_429":
        assert err.status == 429 and not err.banned and err.retry_after >= 2
    if cls is RateLimited:  # the 429/418 now blocks the next order locally: nothing is sent
        before = len(await log(sim_client, exchange))
        # (a 429 on the order POST limits the order group on either exchange; other groups
        # may go on, see test_a_quotation_429_never_blocks_order_look_ups)
        price = D("100000000") if exchange == "upbit" else D("90000.0")
        with pytest.raises(RateLimited) as ei2:
            await ad.place_order(limit(SYMBOL[exchange], "buy", str(FILL_QTY[exchange]), price,
                                       cid(f"{tag(variant)}-{fault['kind']}-next", exchange), "ioc"))
        assert ei2.value.code == CLIENT_THROTTLE
        assert len(await log(sim_client, exchange)) == before
        return
    await sim_client.clear_faults()
    if executed:
        found = await ad.get_order(SYMBOL[exchange], client_id)
        assert found.status == "filled" and found.filled_qty == FILL_QTY[exchange]
    else:
        with pytest.raises(OrderNotFound):
            await ad.get_order(SYMBOL[exchange], client_id)
        assert await ledger_order(sim_client, exchange, client_id) is None


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("exchange", "status", "code", "cls"), REJECTIONS, ids=[f"{e}-{s}-{c}" for e, s, c, _ in REJECTIONS])
async def test_injected_rejections_map_to_the_same_class(
    sim_client, make: Make, variant: Any, exchange: str, status: int, code: Any, cls: type
) -> None:
    ad = await open_variant(make, exchange, variant, max_rate_wait_s=0.1)
    path = "/v1/orders" if exchange == "upbit" else "/fapi/v1/order"
    spec = {"name": code} if exchange == "upbit" else {"code": code}
    await sim_client.fault(exchange=exchange, method="POST", path=path, kind="reject", status=status, **spec)
    client_id = cid(f"{tag(variant)}-rej-{status}-{code}", exchange)
    with pytest.raises(cls) as ei:
        await place_fillable(ad, exchange, client_id)
    assert type(ei.value) is cls and ei.value.code == code and ei.value.client_id == client_id
    assert ei.value.status == status
    assert await ledger_order(sim_client, exchange, client_id) is None


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("exchange", ["upbit", "binance"])
async def test_partial_fill_is_the_same_result(sim_client, make: Make, variant: Any, exchange: str) -> None:
    ad = await open_variant(make, exchange, variant)
    path = "/v1/orders" if exchange == "upbit" else "/fapi/v1/order"
    await sim_client.fault(exchange=exchange, method="POST", path=path, kind="partial_fill", fraction=0.5)
    res = await place_fillable(ad, exchange, cid(f"{tag(variant)}-partial", exchange))
    assert res.status == "expired" and res.final  # "partially_filled" is only for open orders
    assert res.filled_qty == FILL_QTY[exchange] / 2 and res.quantity == FILL_QTY[exchange]
    row = await ledger_order(sim_client, exchange, res.client_id)
    assert row is not None and D(row["filled"]) == res.filled_qty and D(row["fee"]) == res.fee


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("drop", ["drop_before", "drop_after"])
@pytest.mark.parametrize("exchange", ["upbit", "binance"])
async def test_reads_survive_one_dropped_connection(sim_client, make: Make, variant: Any, exchange: str, drop: str) -> None:
    """drop_after: the exchange processed the read (an Upbit nonce is spent), so only a
    re-signed retry can succeed; a resend of the same request would be ``nonce_used``."""
    ad = await open_variant(make, exchange, variant)
    path = "/v1/accounts" if exchange == "upbit" else "/fapi/v3/balance"
    await sim_client.fault(exchange=exchange, method="GET", path=path, kind=drop)
    balances = await ad.get_balances()  # retried once, re-signed
    assert balances
    rows = await log(sim_client, exchange, path=path)
    assert [r["status"] for r in rows[-2:]] == ["dropped", 200]
    if exchange == "upbit" and drop == "drop_after":
        assert rows[-2]["jwt"]["claims"]["nonce"] != rows[-1]["jwt"]["claims"]["nonce"]


async def test_concurrent_calls_keep_their_own_responses(sim_client, upbit: CcxtUpbit) -> None:
    """The per-call response record is per task: a failing order and a concurrent read on
    the same ccxt object are classified from their own responses."""
    await upbit.best_bid_ask(UPBIT)
    await sim_client.fault(exchange="upbit", method="POST", path="/v1/orders", kind="reject", status=400, name="invalid_price_bid")
    results = await asyncio.gather(
        place_fillable(upbit, "upbit", cid("conc")), upbit.get_balances(), upbit.get_order_book(UPBIT, 3),
        return_exceptions=True,
    )
    assert isinstance(results[0], Rejected) and results[0].code == "invalid_price_bid"
    assert isinstance(results[1], dict) and "KRW" in results[1]
    assert len(results[2].bids) == 3


# ============================================================================ classification edge cases
def test_classification_of_what_the_simulator_cannot_send() -> None:
    import ccxt

    def http(status: int, body: str) -> HttpSeen:
        return HttpSeen(status, {}, body)

    # ccxt calls a bodyless 400 ExchangeNotAvailable and a 503 with an unlisted code
    # ExchangeError; neither is what happened
    err = classify_ccxt_error("binance", ccxt.ExchangeNotAvailable("x"), http(400, "<html>bad</html>"))
    assert type(err) is Rejected and err.code == "http_400"
    err = classify_ccxt_error("binance", ccxt.ExchangeError("x"), http(503, '{"code":-9999,"msg":"?"}'))
    assert type(err) is OutcomeUnknown and err.code == -9999
    err = classify_ccxt_error("binance", ccxt.OperationFailed("x"), http(400, '{"code":-1000,"msg":"unknown"}'))
    assert type(err) is OutcomeUnknown
    err = classify_ccxt_error("binance", ccxt.ExchangeNotAvailable("x"), http(403, "<html>waf</html>"))
    assert type(err) is Unavailable
    err = classify_ccxt_error("binance", ccxt.DDoSProtection("x"), http(401, '{"code":-2015,"msg":"perm"}'))
    assert type(err) is AuthError  # ccxt's "-2015 after a success is a ban" guess is not followed
    err = classify_ccxt_error("upbit", ccxt.ExchangeError("x"), http(500, '{"error":{"name":"server_error"}}'))
    assert type(err) is OutcomeUnknown
    err = classify_ccxt_error("upbit", ccxt.ExchangeNotAvailable("x"), http(403, ""))
    assert type(err) is Unavailable
    err = classify_ccxt_error("upbit", ccxt.PermissionDenied("x"), http(400, '{"error":{"name":"thirdparty_agreement_required"}}'))
    assert type(err) is AuthError  # ccxt's class makes a 4xx more specific
    err = classify_ccxt_error("upbit", TypeError("str has no get"), http(201, "<html>"))
    # ccxt choked on a success body: it was processed, the answer is not believed
    assert type(err) is InvalidResponse and isinstance(err, OutcomeUnknown)
    # nothing received: the chained cause decides
    for cause, cls, code in [
        (aiohttp.ClientConnectorError(_ConnKey(), OSError(111, "refused")), Unavailable, None),
        (aiohttp.ConnectionTimeoutError("connect"), Unavailable, None),
        (aiohttp.ServerDisconnectedError(), OutcomeUnknown, CONNECTION_LOST),
        (asyncio.TimeoutError(), OutcomeUnknown, TIMEOUT),
        (aiohttp.ClientPayloadError("truncated"), OutcomeUnknown, CONNECTION_LOST),
    ]:
        try:
            try:
                raise cause
            except Exception as e:  # noqa: BLE001
                raise ccxt.ExchangeNotAvailable("upbit POST http://x/v1/orders") from e
        except ccxt.BaseError as wrapped:
            err = classify_ccxt_error("upbit", wrapped, None, client_id="c1")
        assert type(err) is cls and err.code == code and err.client_id == "c1", cause
    assert type(classify_ccxt_error("upbit", ccxt.BadSymbol("x"), None)) is Rejected
    assert classify_ccxt_error("upbit", ccxt.InvalidOrder("x"), None).code == "invalid_request"
    assert classify_ccxt_error("upbit", KeyError("bug"), None) is None  # bugs are not disguised


class _ConnKey:
    """The connection key aiohttp's ClientConnectorError reads host/port/ssl from."""

    host = "127.0.0.1"
    port = 9
    ssl = False
