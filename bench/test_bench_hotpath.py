"""Hot-path benchmarks: compiled vs pure vs a reference, one group per function.

Inputs are built at module level, outside the timed body; every benchmark times one call
(pytest-benchmark calibrates the iterations). References are what a straightforward
implementation would call: ``pyjwt.encode`` for the Upbit token, ``urlencode`` plus
``hmac.new(...).hexdigest()`` for Binance, ``urlencode`` for query encoding.
Results and machine details: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
import warnings
from decimal import Decimal
from urllib.parse import unquote, urlencode

import jwt
import pytest

from kimp_fast.models import OrderRequest, SymbolRules

ACCESS_KEY = "xTnDkmWq4wTrLw8cHXyzMq6DfPz9BxAqyNjNZvXm"  # 40 chars, like Upbit's
SECRET = "dW2s7xJbQ3yTfK9pLm4NvR8cZa1EhG6uYi5oBn0XqCwVtSjDkFeMgHrUlPzAyWbI"  # 64 chars
UPBIT_QUERY = (
    "market=KRW-BTC&side=bid&volume=0.01234567&price=145000000&ord_type=limit"
    "&time_in_force=ioc&identifier=kf-7d1c0b9e4a2f4e21"
)
# The Binance order as key/value strings, the same for our encoder and the reference.
BINANCE_PAIRS = [
    ("symbol", "BTCUSDT"),
    ("side", "SELL"),
    ("type", "LIMIT"),
    ("timeInForce", "IOC"),
    ("quantity", "0.012"),
    ("price", "98765.4"),
    ("newClientOrderId", "kf-7d1c0b9e4a2f4e21"),
    ("newOrderRespType", "RESULT"),
]
TIMESTAMP = 1767225600000
SECRET_BYTES = SECRET.encode()

UPBIT_ORDER = OrderRequest(
    symbol="KRW-BTC", side="buy", type="limit", client_id="kf-7d1c0b9e4a2f4e21",
    quantity=Decimal("0.0123456789"), price=Decimal("145000123"), time_in_force="ioc",
)
UPBIT_RULES = SymbolRules(
    exchange="upbit", symbol="KRW-BTC", base_asset="BTC", quote_asset="KRW",
    qty_step=Decimal("0.00000001"), tick_size=Decimal("1000"),
)
BINANCE_ORDER = OrderRequest(
    symbol="BTCUSDT", side="sell", type="limit", client_id="kf-7d1c0b9e4a2f4e21",
    quantity=Decimal("0.0123456789"), price=Decimal("98765.43"), time_in_force="ioc",
)
BINANCE_RULES = SymbolRules(
    exchange="binance", symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT",
    qty_step=Decimal("0.001"), tick_size=Decimal("0.10"),
)
UPBIT_SIDE = {"buy": "bid", "sell": "ask"}


def _pyjwt(claims: dict, alg: str = "HS256") -> str:
    return jwt.encode(claims, SECRET, algorithm=alg)


# ---- Upbit token --------------------------------------------------------------------------


@pytest.mark.benchmark(group="upbit token (query hash + claims + signature, fresh nonce)")
def test_upbit_token(benchmark, impl):
    """UpbitSigner.token: keys prepared once, fresh nonce per call."""
    signer = impl.module("signing").UpbitSigner(ACCESS_KEY, SECRET)
    benchmark(signer.token, UPBIT_QUERY)


@pytest.mark.benchmark(group="upbit token (query hash + claims + signature, fresh nonce)")
def test_upbit_token_reference_pyjwt(benchmark):
    """Reference: claims dict with str(uuid4()) and hashlib sha512, then pyjwt.encode."""

    def reference():
        claims = {
            "access_key": ACCESS_KEY,
            "nonce": str(uuid.uuid4()),
            "query_hash": hashlib.sha512(UPBIT_QUERY.encode()).hexdigest(),
            "query_hash_alg": "SHA512",
        }
        return _pyjwt(claims)

    benchmark(reference)


@pytest.mark.benchmark(group="upbit_jwt (one-shot, keys not prepared)")
def test_upbit_jwt_oneshot(benchmark, impl):
    """upbit_jwt: keys prepared per call (what the signer object avoids)."""
    benchmark(impl.module("signing").upbit_jwt, ACCESS_KEY, SECRET, UPBIT_QUERY)


@pytest.mark.benchmark(group="new_nonce")
def test_new_nonce(benchmark, impl):
    """new_nonce: random version-4 UUID string."""
    benchmark(impl.module("signing").new_nonce)


@pytest.mark.benchmark(group="new_nonce")
def test_new_nonce_reference_uuid4(benchmark):
    """Reference: str(uuid.uuid4())."""
    benchmark(lambda: str(uuid.uuid4()))


# ---- Binance signing ------------------------------------------------------------------------


@pytest.mark.benchmark(group="binance params -> signed query")
def test_binance_signed_query(benchmark, impl):
    """encode_query + BinanceSigner.signed_query (recvWindow, timestamp, signature)."""
    signer = impl.module("signing").BinanceSigner("api-key", SECRET)
    encode_query = impl.module("orders").encode_query
    benchmark(lambda: signer.signed_query(encode_query(BINANCE_PAIRS), TIMESTAMP, 5000))


@pytest.mark.benchmark(group="binance params -> signed query")
def test_binance_signed_query_reference(benchmark):
    """Reference: urlencode(params) + '&signature=' + hmac.new(...).hexdigest()."""
    params = dict(BINANCE_PAIRS)

    def reference():
        query = urlencode({**params, "recvWindow": 5000, "timestamp": TIMESTAMP})
        return query + "&signature=" + hmac.new(SECRET_BYTES, query.encode(), hashlib.sha256).hexdigest()

    benchmark(reference)


SIGNED_PAYLOAD = urlencode(dict(BINANCE_PAIRS)) + f"&recvWindow=5000&timestamp={TIMESTAMP}"


@pytest.mark.benchmark(group="binance_signature (string -> hex HMAC-SHA256)")
def test_binance_sign(benchmark, impl):
    """BinanceSigner.sign: pre-keyed HMAC context copied per call."""
    signer = impl.module("signing").BinanceSigner("api-key", SECRET)
    benchmark(signer.sign, SIGNED_PAYLOAD)


@pytest.mark.benchmark(group="binance_signature (string -> hex HMAC-SHA256)")
def test_binance_sign_reference_hmac(benchmark):
    """Reference: a bare hmac.new(key, msg, sha256).hexdigest()."""
    benchmark(lambda: hmac.new(SECRET_BYTES, SIGNED_PAYLOAD.encode(), hashlib.sha256).hexdigest())


# ---- encoding -----------------------------------------------------------------------------


@pytest.mark.benchmark(group="encode_query")
def test_encode_query(benchmark, impl):
    """encode_query over 8 string pairs."""
    benchmark(impl.module("orders").encode_query, BINANCE_PAIRS)


@pytest.mark.benchmark(group="encode_query")
def test_encode_query_reference_urlencode(benchmark):
    """Reference: urllib.parse.urlencode over the same pairs."""
    benchmark(urlencode, BINANCE_PAIRS)


@pytest.mark.benchmark(group="format_decimal")
def test_format_decimal(benchmark, impl):
    """format_decimal(Decimal('98765.4300'))."""
    benchmark(impl.module("orders").format_decimal, Decimal("98765.4300"))


@pytest.mark.benchmark(group="format_decimal")
def test_format_decimal_reference(benchmark):
    """Reference: format(d, 'f') then strip trailing zeros (no range or type checks)."""
    d = Decimal("98765.4300")
    benchmark(lambda: format(d, "f").rstrip("0").rstrip("."))


@pytest.mark.benchmark(group="encode_upbit_order")
def test_encode_upbit_order(benchmark, impl):
    """encode_upbit_order: limit bid with volume step and price tick rounding."""
    encode = impl.module("orders").encode_upbit_order
    benchmark(
        lambda: encode(
            "KRW-BTC", "bid", "limit", volume=UPBIT_ORDER.quantity, price=UPBIT_ORDER.price,
            time_in_force="ioc", identifier=UPBIT_ORDER.client_id,
            volume_step=UPBIT_RULES.qty_step, price_tick=UPBIT_RULES.tick_size,
        )
    )


@pytest.mark.benchmark(group="encode_binance_order")
def test_encode_binance_order(benchmark, impl):
    """encode_binance_order: limit sell with quantity step and price tick rounding."""
    encode = impl.module("orders").encode_binance_order
    benchmark(
        lambda: encode(
            "BTCUSDT", "SELL", "LIMIT", quantity=BINANCE_ORDER.quantity, price=BINANCE_ORDER.price,
            time_in_force="IOC", client_id=BINANCE_ORDER.client_id,
            qty_step=BINANCE_RULES.qty_step, price_tick=BINANCE_RULES.tick_size,
        )
    )


# ---- typed order -> signed request bytes ------------------------------------------------------


def _upbit_request(orders, signer):
    def build(o: OrderRequest = UPBIT_ORDER, rules: SymbolRules = UPBIT_RULES):
        body, query = orders.encode_upbit_order(
            o.symbol, UPBIT_SIDE[o.side], o.type, volume=o.quantity, price=o.price,
            time_in_force=o.time_in_force, identifier=o.client_id,
            volume_step=rules.qty_step, price_tick=rules.tick_size,
        )
        return body, signer.authorization(query).encode()

    return build


@pytest.mark.benchmark(group="typed order -> signed request bytes: upbit")
def test_upbit_typed_order_to_request(benchmark, impl):
    """OrderRequest -> JSON body bytes + Authorization header bytes (fresh nonce)."""
    build = _upbit_request(impl.module("orders"), impl.module("signing").UpbitSigner(ACCESS_KEY, SECRET))
    body, auth = build()
    assert json.loads(body)["volume"] == "0.01234567" and auth.startswith(b"Bearer ")
    benchmark(build)


@pytest.mark.benchmark(group="typed order -> signed request bytes: upbit")
def test_upbit_typed_order_to_request_reference(benchmark):
    """Reference: quantize, dict, json.dumps, unquote(urlencode), sha512, uuid4, pyjwt.encode."""

    def reference(o: OrderRequest = UPBIT_ORDER, rules: SymbolRules = UPBIT_RULES):
        volume = o.quantity.quantize(rules.qty_step, rounding="ROUND_DOWN")
        price = (o.price / rules.tick_size).to_integral_value("ROUND_FLOOR") * rules.tick_size
        fields = {
            "market": o.symbol, "side": UPBIT_SIDE[o.side], "volume": format(volume, "f"),
            "price": format(price, "f"), "ord_type": o.type, "time_in_force": o.time_in_force,
            "identifier": o.client_id,
        }
        body = json.dumps(fields, separators=(",", ":")).encode()
        claims = {
            "access_key": ACCESS_KEY,
            "nonce": str(uuid.uuid4()),
            "query_hash": hashlib.sha512(unquote(urlencode(fields)).encode()).hexdigest(),
            "query_hash_alg": "SHA512",
        }
        return body, ("Bearer " + _pyjwt(claims)).encode()

    benchmark(reference)


def _binance_request(orders, signer):
    def build(o: OrderRequest = BINANCE_ORDER, rules: SymbolRules = BINANCE_RULES):
        params = orders.encode_binance_order(
            o.symbol, o.side.upper(), o.type.upper(), quantity=o.quantity, price=o.price,
            time_in_force=o.time_in_force.upper(), reduce_only=o.reduce_only,
            client_id=o.client_id, qty_step=rules.qty_step, price_tick=rules.tick_size,
        )
        return signer.signed_query(params, time.time_ns() // 1_000_000).encode()

    return build


@pytest.mark.benchmark(group="typed order -> signed request bytes: binance")
def test_binance_typed_order_to_request(benchmark, impl):
    """OrderRequest -> signed form body bytes (timestamp taken at call time)."""
    build = _binance_request(impl.module("orders"), impl.module("signing").BinanceSigner("k", SECRET))
    assert b"&quantity=0.012&price=98765.4&" in build()
    benchmark(build)


@pytest.mark.benchmark(group="typed order -> signed request bytes: binance")
def test_binance_typed_order_to_request_reference(benchmark):
    """Reference: quantize, dict, urlencode, hmac.new(...).hexdigest()."""

    def reference(o: OrderRequest = BINANCE_ORDER, rules: SymbolRules = BINANCE_RULES):
        params = {
            "symbol": o.symbol, "side": o.side.upper(), "type": o.type.upper(),
            "timeInForce": o.time_in_force.upper(),
            "quantity": format(o.quantity.quantize(rules.qty_step, rounding="ROUND_DOWN"), "f"),
            "price": format(o.price.quantize(rules.tick_size, rounding="ROUND_DOWN"), "f"),
            "newClientOrderId": o.client_id, "newOrderRespType": "RESULT",
            "recvWindow": 5000, "timestamp": time.time_ns() // 1_000_000,
        }
        query = urlencode(params)
        sig = hmac.new(SECRET_BYTES, query.encode(), hashlib.sha256).hexdigest()
        return (query + "&signature=" + sig).encode()

    benchmark(reference)


# ---- rate limiter -------------------------------------------------------------------------


@pytest.mark.benchmark(group="RateLimiter.acquire (binance order: 3 buckets)")
def test_ratelimit_acquire(benchmark, impl):
    """acquire('order') on the three Binance order buckets, never refused."""
    huge = {"orders_1s": (10**12, 1.0), "orders_10s": (10**12, 10.0), "orders_1m": (10**12, 60.0)}
    clock = iter(range(10**9)).__next__  # advancing clock: entries expire as in real use
    rl = impl.module("ratelimit").RateLimiter("binance", clock=lambda: clock() * 1e-3, buckets=huge)
    benchmark(rl.acquire, "order")


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _pyjwt({"warm": "up"})  # import-time costs out of the first round
