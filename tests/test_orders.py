"""Order encoding: decimal formatting, rounding, exact wire strings, compiled == pure."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

D = Decimal
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Decimals inside the accepted range (|x| < 1e40, at most 40 decimal places).
in_range = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: d == 0 or (d.adjusted() < 40 and -d.as_tuple().exponent <= 40)
)
non_negative = st.builds(
    lambda coef, exp: D(coef).scaleb(exp), st.integers(0, 10**25), st.integers(-20, 10)
)
positive_steps = st.builds(
    lambda coef, exp: D(coef).scaleb(exp), st.integers(1, 10**6), st.integers(-12, 4)
)


# ---- format_decimal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1E-5"), "0.00001"),
        (D("0.00010000"), "0.0001"),
        (D("2.50"), "2.5"),
        (D("100"), "100"),
        (D("1E+3"), "1000"),
        (D("-1.25E+4"), "-12500"),
        (D("0"), "0"),
        (D("-0"), "0"),
        (D("0E-12"), "0"),
        (D("0E+99"), "0"),
        (D("0.1") + D("0.2"), "0.3"),
        ("0.30000", "0.3"),
        (" 7.50 ", "7.5"),
        (12, "12"),
        (10**20, "100000000000000000000"),
        (D("123456789012345678901234567890.123"), "123456789012345678901234567890.123"),
        (D("1E-40"), "0." + "0" * 39 + "1"),
        (D("1." + "0" * 60), "1"),
    ],
)
def test_format_decimal_examples(orders_impl, value, expected):
    assert orders_impl.format_decimal(value) == expected


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        (0.1, TypeError),
        (1.0, TypeError),
        (True, TypeError),
        (None, TypeError),
        (b"1", TypeError),
        (D("NaN"), ValueError),
        (D("sNaN"), ValueError),
        (D("-Infinity"), ValueError),
        ("inf", ValueError),
        ("abc", ValueError),
        ("", ValueError),
        (D("1E+40"), ValueError),
        (D("1E-41"), ValueError),
        (D("1E+999999999"), ValueError),
    ],
)
def test_format_decimal_refuses(orders_impl, value, exc):
    with pytest.raises(exc):
        orders_impl.format_decimal(value)


@FAST
@given(in_range)
def test_format_decimal_properties(orders_impl, d):
    s = orders_impl.format_decimal(d)
    assert D(s) == d  # exact, no rounding
    assert "e" not in s.lower()
    if "." in s:
        assert not s.endswith("0") and not s.endswith(".")
    digits = s.lstrip("-")
    assert digits == "0" or not digits.startswith("0") or digits.startswith("0.")
    assert s != "-0"


# ---- rounding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("0.0129", "0.001", "0.012"),
        ("0.012", "0.001", "0.012"),
        ("7", "5", "5"),
        ("123456", "1000", "123000"),
        ("0.00099", "0.001", "0"),
        ("1.23456789", "0.00000001", "1.23456789"),
    ],
)
def test_quantize_down_examples(orders_impl, value, step, expected):
    assert orders_impl.quantize_down(D(value), D(step)) == D(expected)


@FAST
@given(non_negative, positive_steps)
def test_quantize_down_properties(orders_impl, value, step):
    q = orders_impl.quantize_down(value, step)
    with localcontext(prec=100):  # exact checks for long coefficients
        assert q <= value < q + step
        assert q % step == 0


@pytest.mark.parametrize(
    ("price", "tick", "rounding", "expected"),
    [
        ("65000.17", "0.1", "down", "65000.1"),
        ("65000.17", "0.1", "up", "65000.2"),
        ("65000.17", "0.1", "nearest", "65000.2"),
        ("65000.15", "0.1", "nearest", "65000.2"),
        ("65000.14", "0.1", "nearest", "65000.1"),
        ("65000.1", "0.1", "up", "65000.1"),
        ("1234", "5", "up", "1235"),
        ("1232", "5", "nearest", "1230"),
        ("100000123", "1000", "down", "100000000"),
    ],
)
def test_quantize_price_examples(orders_impl, price, tick, rounding, expected):
    assert orders_impl.quantize_price(D(price), D(tick), rounding) == D(expected)


@FAST
@given(non_negative, positive_steps, st.sampled_from(["down", "up", "nearest"]))
def test_quantize_price_properties(orders_impl, price, tick, rounding):
    q = orders_impl.quantize_price(price, tick, rounding)
    with localcontext(prec=100):  # exact checks for long coefficients
        assert q % tick == 0
        assert abs(q - price) < tick
        if rounding == "down":
            assert q <= price
        elif rounding == "up":
            assert q >= price
        else:
            assert abs(q - price) * 2 <= tick


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.quantize_down(D("-1"), D("1")),
        lambda m: m.quantize_down(D("1"), D("0")),
        lambda m: m.quantize_down(D("1"), D("-0.1")),
        lambda m: m.quantize_price(D("1"), D("0.1"), "half"),
        lambda m: m.quantize_price(D("-1"), D("0.1"), "down"),
        lambda m: m.quantize_price(D("1"), D("0"), "up"),
    ],
)
def test_quantize_refuses(orders_impl, call):
    with pytest.raises(ValueError):
        call(orders_impl)


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("150000000", "1000"),
        ("2000000", "1000"),
        ("1999999", "1000"),
        ("1000000", "1000"),
        ("999999", "500"),
        ("500000", "500"),
        ("100000", "100"),
        ("99999", "50"),
        ("50000", "50"),
        ("10000", "10"),
        ("9999", "5"),
        ("5000", "5"),
        ("4999", "1"),
        ("100", "1"),
        ("99.5", "0.01"),
        ("10", "0.01"),
        ("5", "0.001"),
        ("0.5", "0.0001"),
        ("0.05", "0.00001"),
        ("0.005", "0.000001"),
        ("0.0005", "0.0000001"),
        ("0.00005", "0.00000001"),
    ],
)
def test_upbit_tick_table(orders_impl, price, tick):
    assert orders_impl.upbit_tick_size(D(price)) == D(tick)


# ---- Upbit orders -----------------------------------------------------------------------


def test_upbit_limit_order_exact_bytes(orders_impl):
    body, query = orders_impl.encode_upbit_order(
        "KRW-BTC", "bid", "limit", volume=D("0.0123456789"), price=D("100000123"),
        volume_step=D("0.00000001"), price_tick=D("1000"), identifier="kf-abc_1",
        time_in_force="ioc",
    )
    assert body == (
        b'{"market":"KRW-BTC","side":"bid","volume":"0.01234567","price":"100000000",'
        b'"ord_type":"limit","time_in_force":"ioc","identifier":"kf-abc_1"}'
    )
    assert query == (
        "market=KRW-BTC&side=bid&volume=0.01234567&price=100000000&ord_type=limit"
        "&time_in_force=ioc&identifier=kf-abc_1"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("KRW-BTC", "bid", "price"), {"price": D("10000")},
         "market=KRW-BTC&side=bid&price=10000&ord_type=price"),
        (("KRW-BTC", "ask", "market"), {"volume": D("0.01000")},
         "market=KRW-BTC&side=ask&volume=0.01&ord_type=market"),
        (("KRW-ETH", "bid", "best"), {"price": D("5000"), "time_in_force": "ioc"},
         "market=KRW-ETH&side=bid&price=5000&ord_type=best&time_in_force=ioc"),
        (("KRW-ETH", "ask", "best"), {"volume": "1.5", "time_in_force": "fok"},
         "market=KRW-ETH&side=ask&volume=1.5&ord_type=best&time_in_force=fok"),
        (("KRW-XRP", "ask", "limit"), {"volume": 10, "price": D("812.0"), "time_in_force": "post_only"},
         "market=KRW-XRP&side=ask&volume=10&price=812&ord_type=limit&time_in_force=post_only"),
    ],
)
def test_upbit_order_types(orders_impl, args, kwargs, expected):
    body, query = orders_impl.encode_upbit_order(*args, **kwargs)
    assert query == expected
    # The body carries the same fields, in the same order, all as JSON strings.
    assert list(json.loads(body).items()) == parse_qsl(query)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("KRW-BTC", "bid", "limit"), {"volume": D("1")}),  # no price
        (("KRW-BTC", "bid", "limit"), {"price": D("1")}),  # no volume
        (("KRW-BTC", "ask", "price"), {"price": D("1")}),  # market buy must be bid
        (("KRW-BTC", "bid", "price"), {"price": D("1"), "volume": D("1")}),
        (("KRW-BTC", "bid", "price"), {"price": D("1"), "time_in_force": "ioc"}),
        (("KRW-BTC", "bid", "market"), {"volume": D("1")}),  # market sell must be ask
        (("KRW-BTC", "ask", "market"), {"volume": D("1"), "price": D("1")}),
        (("KRW-BTC", "ask", "best"), {"volume": D("1")}),  # best needs ioc/fok
        (("KRW-BTC", "ask", "best"), {"volume": D("1"), "time_in_force": "post_only"}),
        (("KRW-BTC", "bid", "best"), {"volume": D("1"), "time_in_force": "ioc"}),
        (("KRW-BTC", "bid", "stop"), {"volume": D("1"), "price": D("1")}),
        (("KRW-BTC", "buy", "limit"), {"volume": D("1"), "price": D("1")}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("1"), "price": D("1"), "time_in_force": "gtc"}),
        (("krw-btc", "bid", "limit"), {"volume": D("1"), "price": D("1")}),
        (("KRWBTC", "bid", "limit"), {"volume": D("1"), "price": D("1")}),
        (("KRW-BTC&x=1", "bid", "limit"), {"volume": D("1"), "price": D("1")}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("1"), "price": D("1"), "identifier": "a:b"}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("1"), "price": D("1"), "identifier": "x" * 65}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("1"), "price": D("1"), "identifier": ""}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("0.000000001"), "price": D("1"),
                                        "volume_step": D("0.00000001")}),  # rounds to 0
        (("KRW-BTC", "bid", "limit"), {"volume": D("-1"), "price": D("1")}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("1"), "price": D("0")}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("1"), "price": D("1"), "price_rounding": "x"}),
        (("KRW-BTC", "bid", "limit"), {"volume": D("NaN"), "price": D("1")}),
    ],
)
def test_upbit_order_refused(orders_impl, args, kwargs):
    with pytest.raises(ValueError):
        orders_impl.encode_upbit_order(*args, **kwargs)


def test_upbit_order_refuses_float(orders_impl):
    with pytest.raises(TypeError):
        orders_impl.encode_upbit_order("KRW-BTC", "bid", "limit", volume=0.1, price=D("1"))


# ---- Binance orders ---------------------------------------------------------------------


def test_binance_limit_order_exact_string(orders_impl):
    out = orders_impl.encode_binance_order(
        "BTCUSDT", "SELL", "LIMIT", quantity=D("0.0129"), price=D("65000.17"),
        time_in_force="IOC", reduce_only=True, client_id="kf:1/a.b_c-d",
        qty_step=D("0.001"), price_tick=D("0.10"), price_rounding="up",
    )
    assert out == (
        "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=IOC&quantity=0.012&price=65000.2"
        "&reduceOnly=true&newClientOrderId=kf%3A1%2Fa.b_c-d&newOrderRespType=RESULT"
    )


def test_binance_market_order_minimal(orders_impl):
    out = orders_impl.encode_binance_order("ETHUSDT", "BUY", "MARKET", quantity="1.50", resp_type=None)
    assert out == "symbol=ETHUSDT&side=BUY&type=MARKET&quantity=1.5"
    assert "reduceOnly" not in orders_impl.encode_binance_order(
        "ETHUSDT", "BUY", "MARKET", quantity=D(1), reduce_only=False
    )


def test_binance_order_signs_like_the_docs(orders_impl, signing_impl):
    # Binance doc example 1, parameters in our fixed order: the signature covers exactly
    # the string that is sent.
    params = orders_impl.encode_binance_order(
        "BTCUSDT", "BUY", "LIMIT", quantity=D(1), price=D(9000), time_in_force="GTC",
        resp_type=None,
    )
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    signed = signing_impl.BinanceSigner("k", secret).signed_query(params, 1591702613943)
    payload, _, sig = signed.partition("&signature=")
    assert payload == (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=9000"
        "&recvWindow=5000&timestamp=1591702613943"
    )
    assert sig == signing_impl.binance_signature(secret, payload)


@pytest.mark.parametrize(
    ("args", "kwargs", "exc"),
    [
        (("BTCUSDT", "BUY", "LIMIT"), {"quantity": D(1), "price": D(1)}, ValueError),  # no tif
        (("BTCUSDT", "BUY", "LIMIT"), {"quantity": D(1), "time_in_force": "GTC"}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "price": D(1)}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "time_in_force": "IOC"}, ValueError),
        (("BTCUSDT", "BUY", "STOP"), {"quantity": D(1)}, ValueError),
        (("BTCUSDT", "buy", "MARKET"), {"quantity": D(1)}, ValueError),
        (("btcusdt", "BUY", "MARKET"), {"quantity": D(1)}, ValueError),
        (("BTC-USDT", "BUY", "MARKET"), {"quantity": D(1)}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "client_id": "a b"}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "client_id": "x" * 37}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "client_id": ""}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "resp_type": "FULL"}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D(1), "reduce_only": 1}, TypeError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": 1.0}, TypeError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": None}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D("0.0004"), "qty_step": D("0.001")}, ValueError),
        (("BTCUSDT", "BUY", "MARKET"), {"quantity": D("-1")}, ValueError),
    ],
)
def test_binance_order_refused(orders_impl, args, kwargs, exc):
    with pytest.raises(exc):
        orders_impl.encode_binance_order(*args, **kwargs)


# ---- query strings ----------------------------------------------------------------------


def test_encode_and_raw_query(orders_impl):
    params = [("uuids[]", "9ca0-1"), ("uuids[]", "4bd6-2"), ("state", "wait watch"), ("t", "12:00+09:00")]
    assert orders_impl.raw_query(params) == "uuids[]=9ca0-1&uuids[]=4bd6-2&state=wait watch&t=12:00+09:00"
    assert orders_impl.encode_query(params) == (
        "uuids%5B%5D=9ca0-1&uuids%5B%5D=4bd6-2&state=wait%20watch&t=12%3A00%2B09%3A00"
    )
    assert orders_impl.encode_query([]) == "" == orders_impl.raw_query(())
    assert orders_impl.encode_query(iter([("a", "1"), ("b", "2")])) == "a=1&b=2"


@pytest.mark.parametrize("params", [[("a", 1)], [(b"a", "1")], [("a",)], [("a", "b", "c")], [5]])
def test_query_refuses_bad_pairs(orders_impl, params):
    with pytest.raises((TypeError, ValueError)):
        orders_impl.encode_query(params)
    with pytest.raises((TypeError, ValueError)):
        orders_impl.raw_query(params)


pairs = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=24)), max_size=8)


@FAST
@given(pairs)
def test_encode_query_matches_urllib_quote(orders_impl, params):
    expected = "&".join(quote(k, safe="") + "=" + quote(v, safe="") for k, v in params)
    assert orders_impl.encode_query(params) == expected
    assert orders_impl.raw_query(params) == "&".join(k + "=" + v for k, v in params)


# ---- compiled == pure -------------------------------------------------------------------


@pytest.fixture(scope="module")
def twins(hot_path_twins):
    return hot_path_twins[0].orders, hot_path_twins[1].orders


def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - compare the failure type across twins
        return ("error", type(exc))


amounts = st.one_of(
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    non_negative,
    st.integers(-10, 10**45),
    st.floats(allow_nan=False, max_value=1e6, min_value=-1e6),
    st.sampled_from(["0.1", "1e-5", "abc", " 2.50 ", "-0", "1E+40"]),
)
steps = st.one_of(st.none(), positive_steps, st.sampled_from([D(0), D("-1"), D("1E-45"), D("0.5")]))


@pytest.mark.c_extension
@FAST
@given(value=amounts, step=steps, rounding=st.sampled_from(["down", "up", "nearest", "sideways"]))
def test_compiled_equals_pure_decimals(twins, value, step, rounding):
    c, py = twins
    assert _outcome(c.format_decimal, value) == _outcome(py.format_decimal, value)
    assert _outcome(c.quantize_down, value, step) == _outcome(py.quantize_down, value, step)
    assert _outcome(c.quantize_price, value, step, rounding) == _outcome(
        py.quantize_price, value, step, rounding
    )
    assert _outcome(c.upbit_tick_size, value) == _outcome(py.upbit_tick_size, value)


@pytest.mark.c_extension
@FAST
@given(
    market=st.one_of(st.sampled_from(["KRW-BTC", "KRW-1INCH", "BTC-ETH", "KRW-", "K-BTC"]), st.text(max_size=12)),
    side=st.sampled_from(["bid", "ask", "BUY", None]),
    ord_type=st.sampled_from(["limit", "price", "market", "best", "stop"]),
    volume=amounts,
    price=amounts,
    tif=st.sampled_from([None, "ioc", "fok", "post_only", "gtc"]),
    identifier=st.one_of(st.none(), st.text(max_size=70), st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
    volume_step=steps,
    price_tick=steps,
    rounding=st.sampled_from(["down", "up", "nearest", "x"]),
)
def test_compiled_equals_pure_upbit_order(
    twins, market, side, ord_type, volume, price, tif, identifier, volume_step, price_tick, rounding
):
    c, py = twins
    kwargs = dict(
        volume=volume, price=price, time_in_force=tif, identifier=identifier,
        volume_step=volume_step, price_tick=price_tick, price_rounding=rounding,
    )
    assert _outcome(c.encode_upbit_order, market, side, ord_type, **kwargs) == _outcome(
        py.encode_upbit_order, market, side, ord_type, **kwargs
    )


@pytest.mark.c_extension
@FAST
@given(
    symbol=st.one_of(st.sampled_from(["BTCUSDT", "1000PEPEUSDT", "BTCUSDT_260327"]), st.text(max_size=34)),
    side=st.sampled_from(["BUY", "SELL", "bid"]),
    order_type=st.sampled_from(["LIMIT", "MARKET", "STOP"]),
    quantity=amounts,
    price=amounts,
    tif=st.sampled_from([None, "GTC", "IOC", "FOK", "GTX", "ioc"]),
    reduce_only=st.sampled_from([False, True, 0]),
    client_id=st.one_of(st.none(), st.text(max_size=40), st.from_regex(r"[\.A-Z\:/a-z0-9_-]{1,36}", fullmatch=True)),
    resp_type=st.sampled_from([None, "ACK", "RESULT", "FULL"]),
    qty_step=steps,
    price_tick=steps,
    rounding=st.sampled_from(["down", "up", "nearest", "x"]),
)
def test_compiled_equals_pure_binance_order(
    twins, symbol, side, order_type, quantity, price, tif, reduce_only, client_id, resp_type,
    qty_step, price_tick, rounding,
):
    c, py = twins
    kwargs = dict(
        quantity=quantity, price=price, time_in_force=tif, reduce_only=reduce_only,
        client_id=client_id, resp_type=resp_type, qty_step=qty_step, price_tick=price_tick,
        price_rounding=rounding,
    )
    assert _outcome(c.encode_binance_order, symbol, side, order_type, **kwargs) == _outcome(
        py.encode_binance_order, symbol, side, order_type, **kwargs
    )


@pytest.mark.c_extension
@FAST
@given(st.one_of(pairs, st.lists(st.tuples(st.text(max_size=3), st.one_of(st.integers(), st.none())), max_size=3)))
def test_compiled_equals_pure_queries(twins, params):
    c, py = twins
    assert _outcome(c.encode_query, params) == _outcome(py.encode_query, params)
    assert _outcome(c.raw_query, params) == _outcome(py.raw_query, params)
