"""Order encoding, pure-Python twin (the typed reference for ``_orders_c``).

From typed values to the exact strings on the wire:

* decimals as plain strings (``0.0001``, never ``1E-4``; never a float artefact);
* quantities rounded *down* to the lot step, prices to the tick in the caller's direction;
* parameters in a fixed order (Upbit's ``query_hash`` must cover the body as sent).

Which string is which:

* :func:`encode_upbit_order` returns the JSON body **and** the same fields as an
  un-encoded ``k=v&...`` string: that string is what Upbit's ``query_hash`` covers.
* :func:`raw_query` joins GET/DELETE parameters without encoding: hash *this* for Upbit.
* :func:`encode_query` percent-encodes what needs it: put *this* in the URL (and, for
  Binance, sign this same string).

Every value check happens before anything is built; bad input raises ``ValueError`` or
``TypeError`` naming the field.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Context, Decimal, InvalidOperation
from typing import Sequence

__all__ = [
    "MAX_DECIMAL_DIGITS",
    "encode_binance_order",
    "encode_query",
    "encode_upbit_order",
    "format_decimal",
    "quantize_down",
    "quantize_price",
    "raw_query",
    "upbit_tick_size",
]

MAX_DECIMAL_DIGITS = 40
"""Decimals must lie in (1e-40 .. 1e40): anything beyond is a bug, and formatting a
value like ``1E+999999999`` as a plain string would allocate a gigabyte."""

# Exact arithmetic for quantizing: the range check above bounds quotients to < 1e81.
_CTX = Context(prec=100, Emax=200, Emin=-200, traps=[InvalidOperation])
_ZERO = Decimal(0)
_ONE = Decimal(1)
_ROUNDINGS = ("down", "up", "nearest")

_UPBIT_MARKET = re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{1,20}")
_UPBIT_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # ':' and '+' break Upbit (A1)
_BINANCE_SYMBOL = re.compile(r"[A-Z0-9_]{1,32}")
_BINANCE_CLIENT_ID = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")  # documented pattern (B2)
_UPBIT_SIDES = ("bid", "ask")
_UPBIT_TIFS = ("ioc", "fok", "post_only")
_BINANCE_SIDES = ("BUY", "SELL")
_BINANCE_TIFS = ("GTC", "IOC", "FOK", "GTX")
_BINANCE_RESP = ("ACK", "RESULT")

# Upbit KRW tick table (EXCHANGE_NOTES A6, policy of 2025-07-31), highest band first.
# Below 100 KRW the current rows were not captured; the pre-2025 bands are used.
_UPBIT_TICKS = (
    (Decimal(1_000_000), Decimal(1000)),
    (Decimal(500_000), Decimal(500)),
    (Decimal(100_000), Decimal(100)),
    (Decimal(50_000), Decimal(50)),
    (Decimal(10_000), Decimal(10)),
    (Decimal(5_000), Decimal(5)),
    (Decimal(100), Decimal(1)),
    (Decimal(10), Decimal("0.01")),
    (Decimal(1), Decimal("0.001")),
    (Decimal("0.1"), Decimal("0.0001")),
    (Decimal("0.01"), Decimal("0.00001")),
    (Decimal("0.001"), Decimal("0.000001")),
    (Decimal("0.0001"), Decimal("0.0000001")),
)
_UPBIT_MIN_TICK = Decimal("0.00000001")

# Characters kept as-is by encode_query (RFC 3986 unreserved). ':' is encoded on purpose:
# Upbit answers 400 to a raw ':' or '+' in the URL (EXCHANGE_NOTES A1).
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-")


def to_decimal(value: object, what: str = "value") -> Decimal:
    """Convert ``Decimal | str | int`` exactly; refuse floats, bools, NaN, Inf, absurd ranges."""
    if type(value) is Decimal:
        d = value
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: not a decimal number: {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        d = Decimal(value)
    elif isinstance(value, Decimal):  # subclass
        d = Decimal(value)
    else:
        raise TypeError(
            f"{what} must be a Decimal, str or int, not {type(value).__name__}"
            " (floats are refused: binary floats are not exact)"
        )
    if not d.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    if d:
        sign, digits, exp = d.as_tuple()
        if d.adjusted() >= MAX_DECIMAL_DIGITS:
            raise ValueError(f"{what} is out of range: {value!r}")
        if exp < -MAX_DECIMAL_DIGITS:  # type: ignore[operator]
            # Trailing zeros of the coefficient do not count: 1.000...0 is fine.
            last = len(digits)
            while digits[last - 1] == 0:
                last -= 1
            if exp + (len(digits) - last) < -MAX_DECIMAL_DIGITS:  # type: ignore[operator]
                raise ValueError(f"{what} has more than {MAX_DECIMAL_DIGITS} decimal places")
    return d


def format_decimal(value: Decimal | str | int) -> str:
    """Plain decimal string: no exponent, no trailing zeros after the point, ``"0"`` for zero.

    >>> format_decimal(Decimal("1E-5")), format_decimal(Decimal("2.50")), format_decimal(100)
    ('0.00001', '2.5', '100')

    Raises
    ------
    TypeError
        ``value`` is a float (or another unsupported type).
    ValueError
        ``value`` is NaN, infinite, unparsable or outside ``1e-40 .. 1e40``.
    """
    return _fmt(to_decimal(value))


def _fmt(d: Decimal) -> str:
    if not d:
        return "0"
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _positive(value: object, what: str) -> Decimal:
    d = to_decimal(value, what)
    if d <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return d


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is ``<= value`` (``value >= 0``, ``step > 0``)."""
    v = to_decimal(value, "value")
    if v < 0:
        raise ValueError(f"value must not be negative, got {value!r}")
    s = _positive(step, "step")
    return _CTX.multiply(_CTX.divide_int(v, s), s)


def quantize_price(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    """Round ``price`` to a multiple of ``tick``; ``rounding`` is ``down``, ``up`` or ``nearest``.

    ``nearest`` rounds a price exactly half-way between two ticks up.
    """
    if rounding not in _ROUNDINGS:
        raise ValueError(f"rounding must be 'down', 'up' or 'nearest', not {rounding!r}")
    p = to_decimal(price, "price")
    if p < 0:
        raise ValueError(f"price must not be negative, got {price!r}")
    t = _positive(tick, "tick")
    q, r = _CTX.divmod(p, t)
    if r and (rounding == "up" or (rounding == "nearest" and _CTX.multiply(r, 2) >= t)):
        q = _CTX.add(q, _ONE)
    return _CTX.multiply(q, t)


def upbit_tick_size(price: Decimal) -> Decimal:
    """Upbit KRW-market tick for ``price`` (fallback table; prefer /v1/orderbook/instruments)."""
    p = to_decimal(price, "price")
    for floor, tick in _UPBIT_TICKS:
        if p >= floor:
            return tick
    return _UPBIT_MIN_TICK


def _amount(value: object, step: object, what: str, rounding: str | None) -> str:
    d = to_decimal(value, what)
    if step is not None:
        d = quantize_down(d, step) if rounding is None else quantize_price(d, step, rounding)
    if d <= 0:
        raise ValueError(f"{what} must be positive after rounding, got {_fmt(d)} from {value!r}")
    return _fmt(d)


def encode_upbit_order(
    market: str,
    side: str,
    ord_type: str,
    *,
    volume: Decimal | None = None,
    price: Decimal | None = None,
    time_in_force: str | None = None,
    identifier: str | None = None,
    volume_step: Decimal | None = None,
    price_tick: Decimal | None = None,
    price_rounding: str = "down",
) -> tuple[bytes, str]:
    """Encode ``POST /v1/orders``: returns ``(json_body, query_string_for_hash)``.

    Fields in this order, omitted when None: ``market, side, volume, price, ord_type,
    time_in_force, identifier``; every value a JSON string. The second item is the same
    fields as ``k=v`` joined with ``&``, not percent-encoded: Upbit's ``query_hash`` input.

    Parameters
    ----------
    side : {"bid", "ask"}
    ord_type : {"limit", "price", "market", "best"}
        ``limit`` needs volume and price; ``price`` (market buy) a bid with price only
        (the KRW total); ``market`` (market sell) an ask with volume only; ``best`` a
        time_in_force of ioc/fok, with price (bid, KRW total) or volume (ask).
    volume_step, price_tick : Decimal, optional
        Volume is rounded down to ``volume_step``; price to ``price_tick`` with
        ``price_rounding``.

    Raises
    ------
    ValueError
        An invalid combination, market, identifier or amount (also after rounding).
    TypeError
        An amount is a float or another unsupported type.
    """
    if not isinstance(market, str) or not _UPBIT_MARKET.fullmatch(market):
        raise ValueError(f"market must look like 'KRW-BTC', got {market!r}")
    if side not in _UPBIT_SIDES:
        raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")
    if time_in_force is not None and time_in_force not in _UPBIT_TIFS:
        raise ValueError(f"time_in_force must be ioc, fok or post_only, not {time_in_force!r}")
    if ord_type == "limit":
        if volume is None or price is None:
            raise ValueError("a limit order needs both volume and price")
    elif ord_type == "price":
        if side != "bid" or price is None or volume is not None:
            raise ValueError("ord_type 'price' (market buy) needs side 'bid', price and no volume")
        if time_in_force is not None:
            raise ValueError("time_in_force is not allowed with ord_type 'price'")
    elif ord_type == "market":
        if side != "ask" or volume is None or price is not None:
            raise ValueError("ord_type 'market' (market sell) needs side 'ask', volume and no price")
        if time_in_force is not None:
            raise ValueError("time_in_force is not allowed with ord_type 'market'")
    elif ord_type == "best":
        if time_in_force not in ("ioc", "fok"):
            raise ValueError("ord_type 'best' needs time_in_force 'ioc' or 'fok'")
        if side == "bid" and (price is None or volume is not None):
            raise ValueError("a best bid needs price (the KRW total) and no volume")
        if side == "ask" and (volume is None or price is not None):
            raise ValueError("a best ask needs volume and no price")
    else:
        raise ValueError(f"ord_type must be limit, price, market or best, not {ord_type!r}")
    if time_in_force == "post_only" and ord_type != "limit":
        raise ValueError("time_in_force 'post_only' is only allowed for limit orders")
    if identifier is not None and (
        not isinstance(identifier, str) or not _UPBIT_IDENTIFIER.fullmatch(identifier)
    ):
        raise ValueError(f"identifier must match [A-Za-z0-9_-]{{1,64}}, got {identifier!r}")
    if price_rounding not in _ROUNDINGS:
        raise ValueError(f"price_rounding must be 'down', 'up' or 'nearest', not {price_rounding!r}")

    fields = [("market", market), ("side", side)]
    if volume is not None:
        fields.append(("volume", _amount(volume, volume_step, "volume", None)))
    if price is not None:
        fields.append(("price", _amount(price, price_tick, "price", price_rounding)))
    fields.append(("ord_type", ord_type))
    if time_in_force is not None:
        fields.append(("time_in_force", time_in_force))
    if identifier is not None:
        fields.append(("identifier", identifier))
    # Every value is from a checked, JSON- and URL-safe alphabet: no escaping needed.
    body = "{" + ",".join(f'"{k}":"{v}"' for k, v in fields) + "}"
    query = "&".join(f"{k}={v}" for k, v in fields)
    return body.encode("ascii"), query


def encode_binance_order(
    symbol: str,
    side: str,
    order_type: str,
    *,
    quantity: Decimal,
    price: Decimal | None = None,
    time_in_force: str | None = None,
    reduce_only: bool = False,
    client_id: str | None = None,
    resp_type: str | None = "RESULT",
    qty_step: Decimal | None = None,
    price_tick: Decimal | None = None,
    price_rounding: str = "down",
) -> str:
    """Encode ``POST /fapi/v1/order`` parameters (without timestamp/recvWindow/signature).

    Order: ``symbol, side, type, timeInForce, quantity, price, reduceOnly, newClientOrderId,
    newOrderRespType``. ``reduceOnly=true`` appears only when ``reduce_only`` is True.
    Append the timing and signature at send time with ``BinanceSigner.signed_query``.

    Parameters
    ----------
    side : {"BUY", "SELL"}
    order_type : {"MARKET", "LIMIT"}
        LIMIT needs price and time_in_force; MARKET takes neither.
    time_in_force : {"GTC", "IOC", "FOK", "GTX"}, optional
    client_id : str, optional
        Must match ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$`` (Binance's documented pattern).
    resp_type : {"ACK", "RESULT"} or None

    Raises
    ------
    ValueError
        An invalid combination, symbol, client id or amount (also after rounding).
    TypeError
        An amount is a float or another unsupported type.
    """
    if not isinstance(symbol, str) or not _BINANCE_SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol must look like 'BTCUSDT', got {symbol!r}")
    if side not in _BINANCE_SIDES:
        raise ValueError(f"side must be 'BUY' or 'SELL', not {side!r}")
    if time_in_force is not None and time_in_force not in _BINANCE_TIFS:
        raise ValueError(f"time_in_force must be GTC, IOC, FOK or GTX, not {time_in_force!r}")
    if order_type == "LIMIT":
        if price is None or time_in_force is None:
            raise ValueError("a LIMIT order needs price and time_in_force")
    elif order_type == "MARKET":
        if price is not None or time_in_force is not None:
            raise ValueError("a MARKET order takes neither price nor time_in_force")
    else:
        raise ValueError(f"order_type must be 'MARKET' or 'LIMIT', not {order_type!r}")
    if type(reduce_only) is not bool:
        raise TypeError(f"reduce_only must be a bool, not {type(reduce_only).__name__}")
    if client_id is not None and (
        not isinstance(client_id, str) or not _BINANCE_CLIENT_ID.fullmatch(client_id)
    ):
        raise ValueError(f"client_id must match ^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$, got {client_id!r}")
    if resp_type is not None and resp_type not in _BINANCE_RESP:
        raise ValueError(f"resp_type must be 'ACK', 'RESULT' or None, not {resp_type!r}")
    if quantity is None:
        raise ValueError("quantity is required")
    if price_rounding not in _ROUNDINGS:
        raise ValueError(f"price_rounding must be 'down', 'up' or 'nearest', not {price_rounding!r}")

    out = "symbol=" + symbol + "&side=" + side + "&type=" + order_type
    if time_in_force is not None:
        out += "&timeInForce=" + time_in_force
    out += "&quantity=" + _amount(quantity, qty_step, "quantity", None)
    if price is not None:
        out += "&price=" + _amount(price, price_tick, "price", price_rounding)
    if reduce_only:
        out += "&reduceOnly=true"
    if client_id is not None:
        # '.', ':' and '/' are legal here; encode them so the signed string is the sent one.
        out += "&newClientOrderId=" + _quote(client_id)
    if resp_type is not None:
        out += "&newOrderRespType=" + resp_type
    return out


def _quote(s: str) -> str:
    if all(c in _SAFE for c in s):
        return s
    return "".join(
        c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in s
    )


def _checked_pairs(params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = params if type(params) is list else list(params)  # iterators are read once
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"parameters must be (name, value) pairs, got {pair!r}")
        k, v = pair
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"parameter names and values must be str, got {pair!r}")
    return pairs


def encode_query(params: Sequence[tuple[str, str]]) -> str:
    """``k=v&...`` with names and values percent-encoded (UTF-8, ``%XX``) except ``[A-Za-z0-9._~-]``.

    Equivalent to joining ``quote(k, safe="") + "=" + quote(v, safe="")``. Use it for the
    URL (and for Binance, the string you sign). Upbit's ``query_hash`` covers
    :func:`raw_query` instead.
    """
    pairs = _checked_pairs(params)
    return "&".join(_quote(k) + "=" + _quote(v) for k, v in pairs)


def raw_query(params: Sequence[tuple[str, str]]) -> str:
    """``k=v&...`` with nothing encoded: the string Upbit's ``query_hash`` covers.

    Arrays repeat the key: ``[("uuids[]", a), ("uuids[]", b)]`` → ``uuids[]=a&uuids[]=b``.
    """
    pairs = _checked_pairs(params)
    return "&".join(k + "=" + v for k, v in pairs)
