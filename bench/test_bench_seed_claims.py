"""The seed's "orjson 10-20x" claim, measured on what the engine really parses and sends.

Inputs are an Upbit ``POST /v1/orders`` answer, a Binance ``POST /fapi/v1/order``
(``newOrderRespType=RESULT``) answer and an Upbit order body, shaped like the exchanges'
documented responses. Three ways to read each response: stdlib ``json.loads``,
``orjson.loads`` (both give dicts of str/float that still need converting), and the
adapters' actual path, ``msgspec`` decoding straight into the typed Struct with exact
``Decimal`` fields. docs/PERFORMANCE.md, "The seed's claims, checked", has the numbers.
"""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest

from adapters_direct import schemas as S
from kimp_fast.orders import encode_upbit_order

UPBIT_ORDER = (
    b'{"uuid":"9ca023a5-851b-4fec-9f0a-48cd83c2eaae","side":"bid","ord_type":"limit","price":"140835000",'
    b'"state":"done","market":"KRW-BTC","created_at":"2026-01-05T12:00:00+09:00","volume":"0.01",'
    b'"remaining_volume":"0","reserved_fee":"704.175","remaining_fee":"0","paid_fee":"704.175","locked":"0",'
    b'"prevented_volume":"0","prevented_locked":"0","executed_volume":"0.01","executed_funds":"1408350",'
    b'"trades_count":1,"time_in_force":"ioc","identifier":"kf-UE-7d1c0b9e4a2f4e21-1"}'
)
BINANCE_ORDER = (
    b'{"orderId":4079281736,"symbol":"BTCUSDT","status":"FILLED","clientOrderId":"kf-BE-7d1c0b9e4a2f4e21-1",'
    b'"price":"0.00","avgPrice":"97012.30000","origQty":"0.010","executedQty":"0.010","cumQty":"0.010",'
    b'"cumQuote":"970.12300","timeInForce":"GTC","type":"MARKET","reduceOnly":false,"closePosition":false,'
    b'"side":"SELL","positionSide":"BOTH","stopPrice":"0.00","workingType":"CONTRACT_PRICE","priceProtect":false,'
    b'"origType":"MARKET","priceMatch":"NONE","selfTradePreventionMode":"EXPIRE_MAKER","goodTillDate":0,'
    b'"updateTime":1767585600123}'
)
UPBIT_BODY = {
    "market": "KRW-BTC", "side": "bid", "volume": "0.01", "price": "141258000", "ord_type": "limit",
    "time_in_force": "ioc", "identifier": "kf-UE-7d1c0b9e4a2f4e21-1",
}


@pytest.mark.benchmark(group="JSON: decode Upbit order answer")
@pytest.mark.parametrize("how", ["json.loads", "orjson.loads", "msgspec typed (adapters)"])
def test_decode_upbit_order(benchmark, how: str) -> None:
    """Decode one Upbit order answer."""
    fn = {"json.loads": json.loads, "orjson.loads": orjson.loads,
          "msgspec typed (adapters)": S.decode_upbit_order}[how]
    out = benchmark(fn, UPBIT_ORDER)
    assert (out.executed_volume if how.startswith("msgspec") else Decimal(out["executed_volume"])) == Decimal("0.01")


@pytest.mark.benchmark(group="JSON: decode Binance order answer")
@pytest.mark.parametrize("how", ["json.loads", "orjson.loads", "msgspec typed (adapters)"])
def test_decode_binance_order(benchmark, how: str) -> None:
    """Decode one Binance USDT-M order answer."""
    fn = {"json.loads": json.loads, "orjson.loads": orjson.loads,
          "msgspec typed (adapters)": S.decode_bn_order}[how]
    out = benchmark(fn, BINANCE_ORDER)
    assert (out.cum_quote if how.startswith("msgspec") else Decimal(out["cumQuote"])) == Decimal("970.12300")


@pytest.mark.benchmark(group="JSON: encode Upbit order body")
@pytest.mark.parametrize("how", ["json.dumps", "orjson.dumps", "encode_upbit_order (adapters, + hash input)"])
def test_encode_upbit_body(benchmark, how: str) -> None:
    """Produce the Upbit order body (the adapters also build the query_hash input)."""
    if how == "json.dumps":
        out = benchmark(lambda: json.dumps(UPBIT_BODY, separators=(",", ":")).encode())
    elif how == "orjson.dumps":
        out = benchmark(orjson.dumps, UPBIT_BODY)
    else:
        vol, price, step, tick = Decimal("0.01"), Decimal("141258000"), Decimal("0.00000001"), Decimal("1000")
        out, _hash_input = benchmark(lambda: encode_upbit_order(
            "KRW-BTC", "bid", "limit", volume=vol, price=price, time_in_force="ioc",
            identifier="kf-UE-7d1c0b9e4a2f4e21-1", volume_step=step, price_tick=tick))
    assert orjson.loads(out) == UPBIT_BODY
