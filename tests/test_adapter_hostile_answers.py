"""Exchange answers are validated before they are believed (issue 19 §1).

A real proxy (``tests.fixtures.hostile``) sits between each adapter and the simulator: the
request reaches the simulator unchanged (an order really executes there), and the answer
the adapter reads is rewritten — a negative fill, ``NaN``, ``1e999999999``, a fill larger
than the order, a price of 0. Every adapter (direct over the order lane, direct over
aiohttp, ccxt) must refuse such a number where it decodes it:

* an order answer (place, look-up, cancel) is ``InvalidResponse``, an ``OutcomeUnknown``:
  the order is looked up, and the unarmed look-up shows what really happened;
* any other answer (balances, positions, funding income, order books, fees) is
  ``InvalidResponse``, never a bare ``decimal`` error, never a silent zero;
* the error names the exchange and the field, never a key.

Signed values that are legitimate (a short position, funding paid) are accepted.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest
from adapters_direct.errors import InvalidResponse, OutcomeUnknown
from kimp_fast.models import Signal
from tests.fixtures.hostile import HostileProxy, hostile  # noqa: F401  (fixture)

D = Decimal
SYMBOL = {"upbit": "KRW-BTC", "binance": "BTCUSDT"}
VARIANTS = [
    pytest.param((AdapterType.DIRECT, "wire"), id="direct-wire"),
    pytest.param((AdapterType.DIRECT, "aiohttp"), id="direct-aiohttp"),
    pytest.param((AdapterType.CCXT, None), id="ccxt", marks=pytest.mark.ccxt),
]
_n = itertools.count(1)
Make = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make(sim, hostile: HostileProxy) -> AsyncIterator[Make]:
    """``await make(exchange, variant)``: an adapter opened through the hostile proxy."""
    opened: list[Any] = []

    async def _make(exchange: str, variant: tuple[AdapterType, str | None], **options: Any) -> Any:
        kind, lane = variant
        options.setdefault("symbols", (SYMBOL[exchange],))
        options.setdefault("keepwarm_s", 0)
        options.setdefault("rules_refresh_s", 0)
        options.setdefault("final_state_timeout_s", 0.3)
        if lane is not None:
            options["order_lane"] = lane
        keys = sim.upbit_keys if exchange == "upbit" else sim.binance_keys
        api_key = keys.access_key if exchange == "upbit" else keys.api_key
        ad = ExchangeFactory.create(exchange, kind, api_key=api_key, secret_key=keys.secret_key,
                                    base_url=hostile.url, **options)
        await ad.open()
        opened.append(ad)
        return ad

    yield _make
    for ad in opened:
        await ad.close()


def secrets_of(sim) -> list[str]:
    return [sim.upbit_keys.access_key, sim.upbit_keys.secret_key, sim.binance_keys.api_key,
            sim.binance_keys.secret_key]


def assert_refused(err: BaseException, sim, exchange: str, field: str, variant: Any) -> None:
    assert isinstance(err, InvalidResponse) and isinstance(err, OutcomeUnknown), repr(err)
    assert err.exchange == exchange
    text = f"{err} {err!r}"
    assert exchange in text
    if variant[0] is AdapterType.DIRECT:
        assert err.field == field, text
        assert field in text
    else:  # ccxt may choke on the number itself before our Structs see it
        assert err.field in (field, None), text
    for secret in secrets_of(sim):
        assert secret not in text


def setter(field: str, value: Any, index: int | None = None) -> Callable[[Any], Any]:
    def edit(obj: Any) -> Any:
        target = obj[index] if index is not None else obj
        target[field] = value
        return obj

    return edit


async def fill_binance(ad: Any, client_id: str) -> Any:
    return await ad.place_order(OrderRequest(symbol="BTCUSDT", side="sell", type="market",
                                             quantity=D("0.002"), client_id=client_id))


async def fill_upbit(ad: Any, client_id: str) -> Any:
    _, ask = await ad.best_bid_ask("KRW-BTC")
    price = (ask * D("1.01")).quantize(D(1000))
    return await ad.place_order(OrderRequest(symbol="KRW-BTC", side="buy", type="limit", quantity=D("0.001"),
                                             price=price, time_in_force="ioc", client_id=client_id))


BN_BAD_ORDER = [
    ("executedQty", "-5"),  # the incident: read as "filled -5"
    ("executedQty", "NaN"),
    ("executedQty", "1e999999999"),
    ("executedQty", "0.5"),  # more than origQty 0.002
    ("avgPrice", "-1"),
    ("cumQuote", "Infinity"),
    ("status", "MAYBE"),  # an unknown status used to read as "rejected"
]
UP_BAD_ORDER = [
    ("executed_volume", "-1"),
    ("executed_volume", "NaN"),
    ("executed_volume", "1e999999999"),
    ("executed_volume", "5"),  # more than volume 0.001
    ("paid_fee", "-1"),
    ("state", "maybe"),
]


# ============================================================================ order answers
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("field", "value"), BN_BAD_ORDER)
async def test_binance_order_answer_is_looked_up_not_believed(sim, sim_client, make, hostile, variant, field,
                                                              value) -> None:
    ad = await make("binance", variant)
    cid = f"hx-b-{next(_n)}"
    hostile.arm("POST", "/fapi/v1/order", edit=setter(field, value))
    with pytest.raises(OutcomeUnknown) as ei:
        await fill_binance(ad, cid)
    assert hostile.hits == [("POST", "/fapi/v1/order")]
    assert_refused(ei.value, sim, "binance", field, variant)
    assert ei.value.client_id == cid
    # It executed once, and the honest answer (the look-up) says so.
    orders = [o for o in await sim_client.orders("binance") if o["client_id"] == cid]
    assert len(orders) == 1 and D(orders[0]["filled"]) == D("0.002")
    res = await ad.get_order("BTCUSDT", cid)
    assert res.status == "filled" and res.filled_qty == D("0.002")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("field", "value"), UP_BAD_ORDER)
async def test_upbit_order_answer_is_looked_up_not_believed(sim, sim_client, make, hostile, variant, field,
                                                            value) -> None:
    ad = await make("upbit", variant)
    cid = f"hx-u-{next(_n)}"
    hostile.arm("POST", "/v1/orders", edit=setter(field, value))
    with pytest.raises(OutcomeUnknown) as ei:
        await fill_upbit(ad, cid)
    assert hostile.hits == [("POST", "/v1/orders")]
    assert_refused(ei.value, sim, "upbit", field, variant)
    orders = [o for o in await sim_client.orders("upbit") if o["client_id"] == cid]
    assert len(orders) == 1
    res = await ad.get_order("KRW-BTC", cid)
    assert res.filled_qty == D(orders[0]["filled"]) and res.filled_qty > 0


@pytest.mark.parametrize("variant", VARIANTS)
async def test_upbit_trade_price_zero_is_refused_on_lookup(sim, make, hostile, variant) -> None:
    ad = await make("upbit", variant)
    cid = f"hx-ut-{next(_n)}"
    await fill_upbit(ad, cid)

    def zero_trade_price(obj: Any) -> Any:
        assert obj["trades"], "a filled Upbit order lists its trades"
        obj["trades"][0]["price"] = "0"
        return obj

    hostile.arm("GET", "/v1/order", edit=zero_trade_price)
    with pytest.raises(OutcomeUnknown) as ei:
        await ad.get_order("KRW-BTC", cid)
    assert_refused(ei.value, sim, "upbit", "trades.price", variant)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("exchange", ["upbit", "binance"])
async def test_lookup_and_cancel_answers_are_validated(sim, make, hostile, variant, exchange) -> None:
    ad = await make(exchange, variant)
    cid = f"hx-l-{exchange[0]}-{next(_n)}"
    await (fill_upbit(ad, cid) if exchange == "upbit" else fill_binance(ad, cid))
    path, field = ("/v1/order", "executed_volume") if exchange == "upbit" else ("/fapi/v1/order", "executedQty")
    hostile.arm("GET", path, edit=setter(field, "-5"))
    with pytest.raises(OutcomeUnknown) as ei:
        await ad.get_order(SYMBOL[exchange], cid)
    assert_refused(ei.value, sim, exchange, field, variant)
    hostile.disarm()
    # cancel: Binance answers -2011 for a filled order, then the order is looked up;
    # Upbit refuses the cancel and the order is looked up too: the look-up is rewritten
    hostile.arm("GET", path, edit=setter(field, "NaN"), count=-1)
    with pytest.raises(OutcomeUnknown) as ei:
        await ad.cancel_order(SYMBOL[exchange], cid)
    assert_refused(ei.value, sim, exchange, field, variant)


# ============================================================================ everything else
def _first_row(default: dict[str, Any], field: str, value: Any) -> Callable[[Any], Any]:
    """Set ``field`` on the first row of a list answer (adding ``default`` when empty)."""

    def edit(rows: Any) -> Any:
        if not rows:
            rows = [dict(default)]
        rows[0][field] = value
        return rows

    return edit


_INCOME = {"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "0", "asset": "USDT", "time": 1}
_RISK = {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "0", "entryPrice": "0", "markPrice": "96000",
         "unRealizedProfit": "0", "liquidationPrice": "0", "maintMargin": "0", "isolatedMargin": "0"}


def _book_level(side: str, value: str) -> Callable[[Any], Any]:
    def edit(obj: Any) -> Any:
        obj[side][0][0] = value
        return obj

    return edit


def _upbit_unit(field: str, value: Any) -> Callable[[Any], Any]:
    def edit(books: Any) -> Any:
        books[0]["orderbook_units"][0][field] = value
        return books

    return edit


READS = [
    # (exchange, call, method, path, edit, field)
    ("upbit", "balances", "GET", "/v1/accounts", _first_row({}, "balance", "-1"), "balance"),
    ("upbit", "balances", "GET", "/v1/accounts", _first_row({}, "locked", "NaN"), "locked"),
    ("upbit", "book", "GET", "/v1/orderbook", _upbit_unit("ask_price", 0), "orderbook_units.ask_price"),
    ("upbit", "book", "GET", "/v1/orderbook", _upbit_unit("bid_size", -1), "orderbook_units.bid_size"),
    ("binance", "balances", "GET", "/fapi/v3/balance", _first_row({}, "balance", "NaN"), "balance"),
    ("binance", "margin", "GET", "/fapi/v3/account", setter("availableBalance", "1e999999999"),
     "availableBalance"),
    ("binance", "position", "GET", "/fapi/v3/positionRisk", _first_row(_RISK, "entryPrice", "-1"), "entryPrice"),
    ("binance", "position", "GET", "/fapi/v3/positionRisk", _first_row(_RISK, "positionAmt", "NaN"),
     "positionAmt"),
    ("binance", "income", "GET", "/fapi/v1/income", _first_row(_INCOME, "income", "Infinity"), "income"),
    ("binance", "book", "GET", "/fapi/v1/depth", _book_level("bids", "-1"), "bids.price"),
    ("binance", "book", "GET", "/fapi/v1/depth", _book_level("asks", "0"), "asks.price"),
    ("binance", "funding", "GET", "/fapi/v1/premiumIndex", setter("markPrice", "NaN"), "markPrice"),
    ("binance", "fees", "GET", "/fapi/v1/commissionRate", setter("takerCommissionRate", "-0.1"),
     "takerCommissionRate"),
]


async def _read(ad: Any, exchange: str, call: str) -> Any:
    symbol = SYMBOL[exchange]
    if call == "balances":
        return await ad.get_balances()
    if call == "book":
        return await ad.get_order_book(symbol, 5)
    if call == "margin":
        return await ad.get_available_margin()
    if call == "position":
        return await ad.get_position(symbol)
    if call == "income":
        return await ad.get_funding_income(symbol, 0)
    if call == "funding":
        return await ad.get_funding_rate(symbol)
    if call == "fees":
        return await ad.get_commission_rate(symbol)
    raise AssertionError(call)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("exchange", "call", "method", "path", "edit", "field"), READS,
                         ids=[f"{r[0]}-{r[1]}-{r[5]}" for r in READS])
async def test_read_answers_are_refused_with_a_typed_error(sim, make, hostile, variant, exchange, call, method,
                                                           path, edit, field) -> None:
    ad = await make(exchange, variant)
    hostile.arm(method, path, edit=edit, count=-1)
    with pytest.raises(InvalidResponse) as ei:
        await _read(ad, exchange, call)
    assert hostile.hits, "the armed answer was read"
    assert_refused(ei.value, sim, exchange, field, variant)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_signed_values_that_are_legitimate_are_accepted(make, hostile, variant) -> None:
    """A short position and funding paid are negative by nature: believed as sent."""
    ad = await make("binance", variant)
    hostile.arm("GET", "/fapi/v3/positionRisk", edit=_first_row(_RISK, "positionAmt", "-0.5"), count=-1)
    hostile.arm("GET", "/fapi/v1/income", edit=_first_row(_INCOME, "income", "-0.25"), count=-1)
    pos = await ad.get_position("BTCUSDT")
    assert pos.qty == D("-0.5")
    assert await ad.get_funding_income("BTCUSDT", 0) == D("-0.25")


# ============================================================================ the incident, end to end
async def test_engine_looks_up_a_negative_fill_instead_of_retrying(sim, hostile, engine_factory, control) -> None:
    """The seen failure: Binance's answer read "filled -5", the engine retried the short
    three times (each really filled) and reported "unwound" while the exchange held
    -0.04. Now the answer is an OutcomeUnknown, the order is looked up and found filled,
    exactly one short exists and the pair is hedged."""
    hostile.arm("POST", "/fapi/v1/order", edit=setter("executedQty", "-5"))
    engine = engine_factory(upbit={"base_url": hostile.url}, binance={"base_url": hostile.url})
    async with engine:
        report = await engine.submit(Signal(id="hx-neg-1", action="ENTER", coin="BTC", qty=D("0.002"),
                                            ts_ms=time.time_ns() // 1_000_000, ttl_ms=60_000, kimp=D("0.02")))
    assert hostile.hits == [("POST", "/fapi/v1/order")]
    assert report.status == "filled", (report.status, report.reason)
    shorts = await control.orders("binance")
    assert len(shorts) == 1 and D(shorts[0]["filled"]) == D("0.002")
    spot, perp = await control.exposure()
    assert perp == D("-0.002") and spot + perp == 0
