"""The error tables of docs/ADAPTERS.md, checked row by row on the mapping functions.

The simulator tests (test_adapter_upbit.py / test_adapter_binance.py) drive the same
mappings end to end; these pin down every documented code, including ones the simulator
has no natural way to produce.
"""

from __future__ import annotations

import json

import pytest

from adapters_direct import AdapterType, ExchangeFactory
from adapters_direct._http import AdapterOptions, Response
from adapters_direct.binance import binance_error
from adapters_direct.errors import (
    AuthError,
    InsufficientFunds,
    OrderNotFound,
    OutcomeUnknown,
    Rejected,
    Unavailable,
)
from adapters_direct.upbit import upbit_error


def upbit_resp(status: int, name: object | None, message: str = "msg") -> Response:
    body = b"" if name is None else json.dumps({"error": {"name": name, "message": message}}).encode()
    return Response(status, {}, body)


def bn_resp(status: int, code: int | None, msg: str = "msg") -> Response:
    body = b"<html>blocked</html>" if code is None else json.dumps({"code": code, "msg": msg}).encode()
    return Response(status, {}, body)


@pytest.mark.parametrize(
    ("status", "name", "cls", "code"),
    [
        (400, "insufficient_funds_bid", InsufficientFunds, "insufficient_funds_bid"),
        (400, "insufficient_funds_ask", InsufficientFunds, "insufficient_funds_ask"),
        (400, "under_min_total_bid", Rejected, "under_min_total_bid"),
        (400, "under_min_total_ask", Rejected, "under_min_total_ask"),
        (400, "invalid_price_bid", Rejected, "invalid_price_bid"),
        (400, "invalid_volume_ask", Rejected, "invalid_volume_ask"),
        (400, "create_ask_error", Rejected, "create_ask_error"),
        (400, "create_bid_error", Rejected, "create_bid_error"),
        (400, "validation_error", Rejected, "validation_error"),
        (400, "market_offline", Rejected, "market_offline"),
        (400, "duplicate_identifier", Rejected, "duplicate_identifier"),
        (400, None, Rejected, "http_400"),
        (401, "jwt_verification", AuthError, "jwt_verification"),
        (401, "invalid_query_payload", AuthError, "invalid_query_payload"),
        (401, "nonce_used", AuthError, "nonce_used"),
        (401, "expired_access_key", AuthError, "expired_access_key"),
        (401, "no_authorization_ip", AuthError, "no_authorization_ip"),
        (401, None, AuthError, "unauthorized"),
        (403, "out_of_scope", AuthError, "out_of_scope"),
        (403, None, Unavailable, None),
        (404, "order_not_found", OrderNotFound, "order_not_found"),
        (404, 404, Rejected, "404"),  # quotation endpoints send an integer name (unknown market)
        (404, "market_does_not_exist", Rejected, "market_does_not_exist"),
        (404, None, OrderNotFound, "order_not_found"),
        (408, None, OutcomeUnknown, None),
        (500, "server_error", OutcomeUnknown, "server_error"),
        (502, None, OutcomeUnknown, None),
        (503, None, OutcomeUnknown, None),
    ],
)
def test_upbit_mapping(status: int, name: object, cls: type, code: object) -> None:
    err = upbit_error(upbit_resp(status, name), client_id="cid-1")
    assert type(err) is cls
    assert err.code == code
    assert err.status == status
    assert err.exchange == "upbit"
    assert err.client_id == "cid-1"
    assert err.executed == ("unknown" if cls is OutcomeUnknown else "no")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, -2018, InsufficientFunds),
        (400, -2019, InsufficientFunds),
        (400, -1022, AuthError),
        (401, -2014, AuthError),
        (401, -2015, AuthError),
        (400, -2013, OrderNotFound),
        (400, -2011, OrderNotFound),
        (400, -4116, Rejected),
        (400, -4003, Rejected),
        (400, -4014, Rejected),
        (400, -4023, Rejected),
        (400, -4164, Rejected),
        (400, -2022, Rejected),
        (400, -2021, Rejected),
        (400, -4131, Rejected),
        (400, -1102, Rejected),
        (400, -1021, Rejected),
        (400, -5028, Rejected),
        (400, -4046, Rejected),  # only set_margin_type treats it as success
        (503, -1008, Unavailable),
        (503, -1000, OutcomeUnknown),
        (400, -1006, OutcomeUnknown),
        (408, -1007, OutcomeUnknown),
        (503, -1001, OutcomeUnknown),
        (503, None, OutcomeUnknown),
        (500, None, OutcomeUnknown),
        (502, None, OutcomeUnknown),
        (408, None, OutcomeUnknown),
        (403, None, Unavailable),
        (400, None, Rejected),
    ],
)
def test_binance_mapping(status: int, code: int | None, cls: type) -> None:
    err = binance_error(bn_resp(status, code), client_id="cid-1")
    assert type(err) is cls
    if code is not None:
        assert err.code == code
    assert err.status == status
    assert err.exchange == "binance"
    assert err.client_id == "cid-1"


def test_unknown_503_message_is_outcome_unknown() -> None:
    body = json.dumps({"code": -1000, "msg": "Unknown error, please check your request or try again later."})
    err = binance_error(Response(503, {}, body.encode()))
    assert isinstance(err, OutcomeUnknown) and err.executed == "unknown"


def test_infrastructure_flags() -> None:
    assert not upbit_error(upbit_resp(400, "insufficient_funds_bid")).infrastructure
    assert upbit_error(upbit_resp(500, None)).infrastructure
    assert binance_error(bn_resp(503, -1008)).infrastructure


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"max_rate_wait_s": -1},
        {"limit_per_host": 0},
        {"recv_window_ms": 70000},
        {"jwt_alg": "RS256"},
        {"prewarm_connections": 100},
    ],
)
def test_bad_options_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AdapterOptions.from_kwargs(kwargs)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError, match="unknown adapter option"):
        AdapterOptions.from_kwargs({"timeout": 3})


def test_symbols_option_accepts_a_string() -> None:
    assert AdapterOptions.from_kwargs({"symbols": "KRW-BTC"}).symbols == ("KRW-BTC",)


@pytest.mark.parametrize("kind", [AdapterType.DIRECT, AdapterType.CCXT, "direct", "ccxt"])
def test_factory_refuses_an_unknown_exchange_by_name(kind: object) -> None:
    with pytest.raises(ValueError, match=r"exchange: expected 'upbit' or 'binance', got 'kraken'"):
        ExchangeFactory.create("kraken", kind, api_key="a", secret_key="s")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["websocket", "DIRECT", "", None])
def test_factory_refuses_an_unknown_adapter_type_by_name(bad: object) -> None:
    with pytest.raises(ValueError, match=r"adapter_type: expected one of \['direct', 'ccxt'\], got " + repr(bad)) as ei:
        ExchangeFactory.create("upbit", bad, api_key="a", secret_key="s")  # type: ignore[arg-type]
    assert ei.value.__cause__ is None and ei.value.__suppress_context__
