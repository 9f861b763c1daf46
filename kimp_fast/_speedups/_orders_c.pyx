# cython: language_level=3, embedsignature=True, emit_code_comments=True
"""Order encoding, compiled twin of ``_orders_py`` (keep them behaviourally identical).

Where the time goes in the pure twin is ``Decimal`` bookkeeping (``as_tuple``, context
arithmetic, ``format``), regular expressions and string joins. Here a ``Decimal`` is read
once from its ``str()`` into a small C record (sign, significant digits, exponent), checked,
rounded to the step/tick with 64-bit integer arithmetic when the aligned numbers fit
(falling back to exact ``Decimal`` arithmetic when they do not), and written straight into
the output buffer. Field checks are table look-ups over ASCII.
"""

from decimal import Context, Decimal, InvalidOperation

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy, memset


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object u)
    bint PyUnicode_IS_ASCII(object u)
    const char* PyUnicode_AsUTF8AndSize(object u, Py_ssize_t* size) except NULL


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

cdef enum:
    _MAX_PLACES = 40     # == MAX_DECIMAL_DIGITS
    _MAX_DIGITS = 96     # significant digits that can pass the range checks: < 81
    _FAST_DIGITS = 18    # aligned integers below 10**18 fit an unsigned 64-bit product
    _BUF = 512           # every encoded order fits (fields are length-checked)

cdef object _Decimal = Decimal
cdef object _CTX = Context(prec=100, Emax=200, Emin=-200, traps=[InvalidOperation])
cdef object _ZERO = Decimal(0)
cdef object _ONE = Decimal(1)
cdef tuple _ROUNDINGS = ("down", "up", "nearest")

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

# Character classes over ASCII (bit flags): one table, one look-up per character.
cdef enum:
    _UPPER_DIGIT = 1   # [A-Z0-9]
    _IDENT = 2         # [A-Za-z0-9_-]        Upbit identifier
    _SYMBOL = 4        # [A-Z0-9_]            Binance symbol
    _CLIENT_ID = 8     # [.A-Z:/a-z0-9_-]     Binance newClientOrderId
    _SAFE = 16         # [A-Za-z0-9._~-]      kept as-is by encode_query

cdef unsigned char _CLASS[128]


cdef void _init_classes() noexcept:
    cdef int ch
    for ch in range(128):
        _CLASS[ch] = 0
    for ch in range(48, 58):  # 0-9
        _CLASS[ch] = _UPPER_DIGIT | _IDENT | _SYMBOL | _CLIENT_ID | _SAFE
    for ch in range(65, 91):  # A-Z
        _CLASS[ch] = _UPPER_DIGIT | _IDENT | _SYMBOL | _CLIENT_ID | _SAFE
    for ch in range(97, 123):  # a-z
        _CLASS[ch] = _IDENT | _CLIENT_ID | _SAFE
    _CLASS[95] = _IDENT | _SYMBOL | _CLIENT_ID | _SAFE  # _
    _CLASS[45] = _IDENT | _CLIENT_ID | _SAFE            # -
    _CLASS[46] = _CLIENT_ID | _SAFE                     # .
    _CLASS[58] = _CLIENT_ID                             # :
    _CLASS[47] = _CLIENT_ID                             # /
    _CLASS[126] = _SAFE                                 # ~


_init_classes()

cdef const char* _HEXU = b"0123456789ABCDEF"


cdef bint _all_in(object s, Py_ssize_t lo, Py_ssize_t hi, unsigned char cls):
    """``re.fullmatch(f"[cls]{{lo,hi}}", s)`` for a str ``s`` (False for anything else)."""
    cdef Py_ssize_t n = 0, i
    cdef const char* c
    if not isinstance(s, str) or not PyUnicode_IS_ASCII(s):
        return False
    c = PyUnicode_AsUTF8AndSize(s, &n)
    if n < lo or n > hi:
        return False
    for i in range(n):
        if not (_CLASS[<unsigned char>c[i]] & cls):
            return False
    return True


cdef bint _upbit_market_ok(object s):
    """``re.fullmatch(r"[A-Z0-9]{2,10}-[A-Z0-9]{1,20}", s)``."""
    cdef Py_ssize_t n = 0, i, dash = -1
    cdef const char* c
    if not isinstance(s, str) or not PyUnicode_IS_ASCII(s):
        return False
    c = PyUnicode_AsUTF8AndSize(s, &n)
    for i in range(n):
        if c[i] == 45:
            if dash >= 0:
                return False
            dash = i
        elif not (_CLASS[<unsigned char>c[i]] & _UPPER_DIGIT):
            return False
    return 2 <= dash <= 10 and 1 <= n - dash - 1 <= 20


# ---- decimals ---------------------------------------------------------------------------

cdef struct Dec:
    bint neg
    int ndig                 # significant digits; 0 means zero
    long long exp            # value = digits * 10**exp, trailing zeros stripped
    char digits[_MAX_DIGITS]


cdef object _to_decimal(object value, str what):
    """Exact conversion of ``Decimal | str | int``; floats, bools and others refused."""
    if type(value) is _Decimal:
        return value
    if isinstance(value, str):
        try:
            return _Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: not a decimal number: {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return _Decimal(value)
    if isinstance(value, _Decimal):  # subclass
        return _Decimal(value)
    raise TypeError(
        f"{what} must be a Decimal, str or int, not {type(value).__name__}"
        " (floats are refused: binary floats are not exact)"
    )


cdef int _parse(object d, Dec* out, str what, object shown) except -1:
    """Read a Decimal's ``str()`` into ``out``; refuse non-finite and out-of-range values."""
    cdef str s = str(d)
    cdef Py_ssize_t n = 0, i, j, end
    cdef const char* c = PyUnicode_AsUTF8AndSize(s, &n)
    cdef Py_ssize_t ndig_total = 0, nfrac = 0, first = -1, last = -1, k
    cdef bint point = False, eneg = False
    cdef long long e = 0
    cdef char ch
    i = 0
    out.neg = False
    if i < n and c[i] == 45:  # '-'
        out.neg = True
        i += 1
    if i >= n or not (48 <= c[i] <= 57):
        raise ValueError(f"{what} must be finite, got {shown!r}")  # NaN, sNaN, Infinity
    j = i
    while j < n:
        ch = c[j]
        if 48 <= ch <= 57:
            if ch != 48:
                if first < 0:
                    first = ndig_total
                last = ndig_total
            ndig_total += 1
            if point:
                nfrac += 1
        elif ch == 46:  # '.'
            point = True
        else:
            break
        j += 1
    end = j
    if j < n and (c[j] == 69 or c[j] == 101):  # 'E' / 'e'
        j += 1
        if j < n and (c[j] == 43 or c[j] == 45):
            eneg = c[j] == 45
            j += 1
        while j < n:
            if e < 1_000_000_000_000_000 // 1000:  # saturate (no overflow): far beyond any range check
                e = e * 10 + (c[j] - 48)
            j += 1
        if eneg:
            e = -e
    if first < 0:  # zero, whatever its sign or exponent
        out.neg = False
        out.ndig = 0
        out.exp = 0
        return 0
    out.exp = e - nfrac + (ndig_total - 1 - last)
    out.ndig = <int>(last - first + 1) if last - first + 1 < 1_000_000_000 else 1_000_000_000
    if out.ndig - 1 + out.exp >= _MAX_PLACES:
        raise ValueError(f"{what} is out of range: {shown!r}")
    if out.exp < -_MAX_PLACES:
        raise ValueError(f"{what} has more than {MAX_DECIMAL_DIGITS} decimal places")
    # Copy the significant digits (skipping the point).
    k = 0
    j = 0
    for i in range(i, end):
        ch = c[i]
        if ch == 46:
            continue
        if first <= j <= last:
            out.digits[k] = ch
            k += 1
        j += 1
    return 0


cdef Py_ssize_t _write_plain(const Dec* d, char* dst) noexcept:
    """Plain decimal string (no exponent, no trailing zeros); returns its length."""
    cdef Py_ssize_t pos = 0, point
    if d.ndig == 0:
        dst[0] = 48
        return 1
    if d.neg:
        dst[0] = 45
        pos = 1
    if d.exp >= 0:
        memcpy(dst + pos, d.digits, d.ndig)
        pos += d.ndig
        memset(dst + pos, 48, d.exp)  # trailing zeros of an integer
        return pos + d.exp
    point = d.ndig + d.exp
    if point > 0:
        memcpy(dst + pos, d.digits, point)
        pos += point
        dst[pos] = 46
        pos += 1
        memcpy(dst + pos, d.digits + point, d.ndig - point)
        return pos + d.ndig - point
    dst[pos] = 48
    dst[pos + 1] = 46
    pos += 2
    memset(dst + pos, 48, -point)  # zeros between the point and the first digit
    pos -= point
    memcpy(dst + pos, d.digits, d.ndig)
    return pos + d.ndig


cdef str _plain_str(const Dec* d):
    cdef char buf[_MAX_DIGITS + 48]
    cdef Py_ssize_t n = _write_plain(d, buf)
    out = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(out), buf, n)
    return <str>out


cdef unsigned long long _coef(const Dec* d) noexcept:
    cdef unsigned long long v = 0
    cdef int i
    for i in range(d.ndig):
        v = v * 10 + <unsigned long long>(d.digits[i] - 48)
    return v


cdef unsigned long long _pow10(long long k) noexcept:
    cdef unsigned long long v = 1
    while k > 0:
        v *= 10
        k -= 1
    return v


cdef void _from_coef(unsigned long long v, long long exp, Dec* out) noexcept:
    """Set ``out`` to ``v * 10**exp`` (non-negative), normalised."""
    cdef char tmp[24]
    cdef int n = 0, i
    out.neg = False
    if v == 0:
        out.ndig = 0
        out.exp = 0
        return
    while v % 10 == 0:
        v //= 10
        exp += 1
    while v:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    for i in range(n):
        out.digits[i] = tmp[n - 1 - i]
    out.ndig = n
    out.exp = exp


cdef bint _round_fast(const Dec* v, const Dec* s, int mode, Dec* out) noexcept:
    """``v`` rounded to a multiple of ``s`` (mode 0 down, 1 up, 2 nearest) in 64-bit ints.

    Returns False (``out`` untouched) when the aligned integers would not fit.
    """
    cdef long long e
    cdef unsigned long long V, S, q, r
    if v.ndig == 0:
        _from_coef(0, 0, out)
        return True
    e = v.exp if v.exp < s.exp else s.exp
    if v.ndig + (v.exp - e) > _FAST_DIGITS or s.ndig + (s.exp - e) > _FAST_DIGITS:
        return False
    V = _coef(v) * _pow10(v.exp - e)
    S = _coef(s) * _pow10(s.exp - e)
    q = V // S
    r = V % S
    if r and (mode == 1 or (mode == 2 and 2 * r >= S)):
        q += 1
    _from_coef(q * S, e, out)
    return True


cdef int _mode(str rounding) except -1:
    if rounding == "down":
        return 0
    if rounding == "up":
        return 1
    return 2


def format_decimal(value):
    """format_decimal(value: Decimal | str | int) -> str

    Plain decimal string: no exponent, no trailing zeros after the point, ``"0"`` for zero.
    """
    cdef Dec d
    _parse(_to_decimal(value, "value"), &d, "value", value)
    return _plain_str(&d)


cdef object _positive(object value, str what):
    cdef object d = _to_decimal(value, what)
    cdef Dec tmp
    _parse(d, &tmp, what, value)
    if tmp.neg or tmp.ndig == 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return d


def quantize_down(value, step):
    """quantize_down(value: Decimal, step: Decimal) -> Decimal

    Largest multiple of ``step`` that is ``<= value`` (``value >= 0``, ``step > 0``).
    """
    cdef Dec tmp
    v = _to_decimal(value, "value")
    _parse(v, &tmp, "value", value)
    if tmp.neg:
        raise ValueError(f"value must not be negative, got {value!r}")
    s = _positive(step, "step")
    return _CTX.multiply(_CTX.divide_int(v, s), s)


def quantize_price(price, tick, rounding):
    """quantize_price(price: Decimal, tick: Decimal, rounding: str) -> Decimal

    Round ``price`` to a multiple of ``tick``; ``rounding`` is ``down``, ``up`` or
    ``nearest`` (half-way rounds up).
    """
    cdef Dec tmp
    if rounding not in _ROUNDINGS:
        raise ValueError(f"rounding must be 'down', 'up' or 'nearest', not {rounding!r}")
    p = _to_decimal(price, "price")
    _parse(p, &tmp, "price", price)
    if tmp.neg:
        raise ValueError(f"price must not be negative, got {price!r}")
    t = _positive(tick, "tick")
    q, r = _CTX.divmod(p, t)
    if r and (rounding == "up" or (rounding == "nearest" and _CTX.multiply(r, 2) >= t)):
        q = _CTX.add(q, _ONE)
    return _CTX.multiply(q, t)


def upbit_tick_size(price):
    """upbit_tick_size(price: Decimal) -> Decimal

    Upbit KRW-market tick for ``price`` (fallback table; prefer /v1/orderbook/instruments).
    """
    cdef Dec tmp
    p = _to_decimal(price, "price")
    _parse(p, &tmp, "price", price)
    for floor, tick in _UPBIT_TICKS:
        if p >= floor:
            return tick
    return _UPBIT_MIN_TICK


cdef Py_ssize_t _amount(object value, object step, str what, object rounding, char* dst) except -1:
    """Check, round and write one amount to ``dst``; returns the number of characters.

    Same checks, in the same order, as the pure twin's ``_amount``.
    """
    cdef Dec v, s, r
    cdef object d = _to_decimal(value, what)
    cdef object q
    _parse(d, &v, what, value)
    if step is not None:
        if rounding is None:  # quantize_down
            if v.neg:
                raise ValueError(f"value must not be negative, got {value!r}")
            st = _positive(step, "step")
            _parse(st, &s, "step", step)
            if not _round_fast(&v, &s, 0, &r):
                q = _CTX.multiply(_CTX.divide_int(d, st), st)
                _parse(q, &r, what, q)
        else:  # quantize_price (rounding already checked by the caller)
            if v.neg:
                raise ValueError(f"price must not be negative, got {value!r}")
            st = _positive(step, "tick")
            _parse(st, &s, "tick", step)
            if not _round_fast(&v, &s, _mode(rounding), &r):
                q = quantize_price(d, st, rounding)
                _parse(q, &r, what, q)
        v = r
    if v.neg or v.ndig == 0:
        raise ValueError(
            f"{what} must be positive after rounding, got {_plain_str(&v)} from {value!r}"
        )
    return _write_plain(&v, dst)


cdef inline Py_ssize_t _put(char* dst, Py_ssize_t pos, str s) except -1:
    cdef Py_ssize_t n = 0
    cdef const char* c = PyUnicode_AsUTF8AndSize(s, &n)
    memcpy(dst + pos, c, n)
    return pos + n


cdef inline Py_ssize_t _put_json(char* body, Py_ssize_t pos, str key, str value) except -1:
    # ',"key":"value"' : every key and value comes from a checked, JSON-safe alphabet
    pos = _put(body, pos, key)
    pos = _put(body, pos, value)
    body[pos] = 34  # '"'
    return pos + 1


cdef inline Py_ssize_t _put_query(char* query, Py_ssize_t pos, str key, str value) except -1:
    pos = _put(query, pos, key)
    return _put(query, pos, value)


def encode_upbit_order(
    market,
    side,
    ord_type,
    *,
    volume=None,
    price=None,
    time_in_force=None,
    identifier=None,
    volume_step=None,
    price_tick=None,
    price_rounding="down",
):
    """encode_upbit_order(market: str, side: str, ord_type: str, *, volume: Decimal | None = None, price: Decimal | None = None, time_in_force: str | None = None, identifier: str | None = None, volume_step: Decimal | None = None, price_tick: Decimal | None = None, price_rounding: str = "down") -> tuple[bytes, str]

    Encode ``POST /v1/orders``: returns ``(json_body, query_string_for_hash)``; see the
    pure twin for the rules.
    """
    cdef char body[_BUF]
    cdef char query[_BUF]
    cdef char amount[_MAX_DIGITS + 48]
    cdef Py_ssize_t b, q, n
    if not _upbit_market_ok(market):
        raise ValueError(f"market must look like 'KRW-BTC', got {market!r}")
    if side not in ("bid", "ask"):
        raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")
    if time_in_force is not None and time_in_force not in ("ioc", "fok", "post_only"):
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
    if identifier is not None and not _all_in(identifier, 1, 64, _IDENT):
        raise ValueError(f"identifier must match [A-Za-z0-9_-]{{1,64}}, got {identifier!r}")
    if price_rounding not in _ROUNDINGS:
        raise ValueError(f"price_rounding must be 'down', 'up' or 'nearest', not {price_rounding!r}")

    b = _put(body, 0, '{"market":"')
    b = _put(body, b, <str>market)
    q = _put(query, 0, "market=")
    q = _put(query, q, <str>market)
    b = _put_json(body, b, '","side":"', <str>side)
    q = _put_query(query, q, "&side=", <str>side)
    if volume is not None:
        n = _amount(volume, volume_step, "volume", None, amount)
        b = _put(body, b, ',"volume":"')
        memcpy(body + b, amount, n)
        b += n
        body[b] = 34
        b += 1
        q = _put(query, q, "&volume=")
        memcpy(query + q, amount, n)
        q += n
    if price is not None:
        n = _amount(price, price_tick, "price", price_rounding, amount)
        b = _put(body, b, ',"price":"')
        memcpy(body + b, amount, n)
        b += n
        body[b] = 34
        b += 1
        q = _put(query, q, "&price=")
        memcpy(query + q, amount, n)
        q += n
    b = _put_json(body, b, ',"ord_type":"', <str>ord_type)
    q = _put_query(query, q, "&ord_type=", <str>ord_type)
    if time_in_force is not None:
        b = _put_json(body, b, ',"time_in_force":"', <str>time_in_force)
        q = _put_query(query, q, "&time_in_force=", <str>time_in_force)
    if identifier is not None:
        b = _put_json(body, b, ',"identifier":"', <str>identifier)
        q = _put_query(query, q, "&identifier=", <str>identifier)
    body[b] = 125  # '}'
    b += 1
    out = PyUnicode_New(q, 127)
    memcpy(PyUnicode_DATA(out), query, q)
    return PyBytes_FromStringAndSize(body, b), out


def encode_binance_order(
    symbol,
    side,
    order_type,
    *,
    quantity,
    price=None,
    time_in_force=None,
    reduce_only=False,
    client_id=None,
    resp_type="RESULT",
    qty_step=None,
    price_tick=None,
    price_rounding="down",
):
    """encode_binance_order(symbol: str, side: str, order_type: str, *, quantity: Decimal, price: Decimal | None = None, time_in_force: str | None = None, reduce_only: bool = False, client_id: str | None = None, resp_type: str | None = "RESULT", qty_step: Decimal | None = None, price_tick: Decimal | None = None, price_rounding: str = "down") -> str

    Encode ``POST /fapi/v1/order`` parameters (without timestamp/recvWindow/signature);
    see the pure twin for the rules.
    """
    cdef char out[_BUF]
    cdef Py_ssize_t pos, n = 0, i
    cdef const char* c
    cdef unsigned char ch
    if not _all_in(symbol, 1, 32, _SYMBOL):
        raise ValueError(f"symbol must look like 'BTCUSDT', got {symbol!r}")
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', not {side!r}")
    if time_in_force is not None and time_in_force not in ("GTC", "IOC", "FOK", "GTX"):
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
    if client_id is not None and not _all_in(client_id, 1, 36, _CLIENT_ID):
        raise ValueError(f"client_id must match ^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$, got {client_id!r}")
    if resp_type is not None and resp_type not in ("ACK", "RESULT"):
        raise ValueError(f"resp_type must be 'ACK', 'RESULT' or None, not {resp_type!r}")
    if quantity is None:
        raise ValueError("quantity is required")
    if price_rounding not in _ROUNDINGS:
        raise ValueError(f"price_rounding must be 'down', 'up' or 'nearest', not {price_rounding!r}")

    pos = _put(out, 0, "symbol=")
    pos = _put(out, pos, <str>symbol)
    pos = _put(out, pos, "&side=")
    pos = _put(out, pos, <str>side)
    pos = _put(out, pos, "&type=")
    pos = _put(out, pos, <str>order_type)
    if time_in_force is not None:
        pos = _put(out, pos, "&timeInForce=")
        pos = _put(out, pos, <str>time_in_force)
    pos = _put(out, pos, "&quantity=")
    pos += _amount(quantity, qty_step, "quantity", None, out + pos)
    if price is not None:
        pos = _put(out, pos, "&price=")
        pos += _amount(price, price_tick, "price", price_rounding, out + pos)
    if reduce_only:
        pos = _put(out, pos, "&reduceOnly=true")
    if client_id is not None:
        # '.', ':' and '/' are legal here; encode them so the signed string is the sent one.
        pos = _put(out, pos, "&newClientOrderId=")
        c = PyUnicode_AsUTF8AndSize(client_id, &n)
        for i in range(n):
            ch = <unsigned char>c[i]
            if _CLASS[ch] & _SAFE:
                out[pos] = <char>ch
                pos += 1
            else:
                out[pos] = 37  # '%'
                out[pos + 1] = _HEXU[ch >> 4]
                out[pos + 2] = _HEXU[ch & 15]
                pos += 3
    if resp_type is not None:
        pos = _put(out, pos, "&newOrderRespType=")
        pos = _put(out, pos, <str>resp_type)
    result = PyUnicode_New(pos, 127)
    memcpy(PyUnicode_DATA(result), out, pos)
    return result


# ---- query strings ----------------------------------------------------------------------

cdef list _checked_pairs(object params):
    cdef list pairs = params if type(params) is list else list(params)
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"parameters must be (name, value) pairs, got {pair!r}")
        k, v = pair
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"parameter names and values must be str, got {pair!r}")
    return pairs


cdef Py_ssize_t _quoted_len(str s) except -1:
    cdef Py_ssize_t n = 0, i, total
    cdef const char* c = PyUnicode_AsUTF8AndSize(s, &n)
    total = n
    for i in range(n):
        if <unsigned char>c[i] >= 128 or not (_CLASS[<unsigned char>c[i]] & _SAFE):
            total += 2
    return total


cdef Py_ssize_t _quote_into(str s, char* dst) except -1:
    cdef Py_ssize_t n = 0, i, pos = 0
    cdef unsigned char ch
    cdef const char* c = PyUnicode_AsUTF8AndSize(s, &n)
    for i in range(n):
        ch = <unsigned char>c[i]
        if ch < 128 and (_CLASS[ch] & _SAFE):
            dst[pos] = <char>ch
            pos += 1
        else:
            dst[pos] = 37
            dst[pos + 1] = _HEXU[ch >> 4]
            dst[pos + 2] = _HEXU[ch & 15]
            pos += 3
    return pos


def encode_query(params):
    """encode_query(params: Sequence[tuple[str, str]]) -> str

    ``k=v&...`` with names and values percent-encoded (UTF-8, ``%XX``) except
    ``[A-Za-z0-9._~-]``. Put this in the URL; Upbit's ``query_hash`` covers
    :func:`raw_query` instead.
    """
    cdef list pairs = _checked_pairs(params)
    cdef Py_ssize_t total = 0, pos = 0
    cdef char* o
    for k, v in pairs:
        total += _quoted_len(<str>k) + _quoted_len(<str>v) + 2
    if total:
        total -= 1  # no '&' before the first pair
    out = PyUnicode_New(total, 127)
    o = <char*>PyUnicode_DATA(out)
    for k, v in pairs:
        if pos:
            o[pos] = 38  # '&'
            pos += 1
        pos += _quote_into(<str>k, o + pos)
        o[pos] = 61  # '='
        pos += 1
        pos += _quote_into(<str>v, o + pos)
    return out


def raw_query(params):
    """raw_query(params: Sequence[tuple[str, str]]) -> str

    ``k=v&...`` with nothing encoded: the string Upbit's ``query_hash`` covers.
    """
    cdef list pairs = _checked_pairs(params)
    return "&".join([k + "=" + v for k, v in pairs])
