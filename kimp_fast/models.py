"""Typed records shared by the engine and the adapters (msgspec Structs, ccxt-free).

Every price, quantity and amount is a :class:`decimal.Decimal`; strings are accepted
wherever a Decimal is (and converted exactly), floats are refused because binary floats
are how ``0.30000000000000004`` reaches an exchange. Validation runs both when a record
is decoded from JSON (``decode_signal``) and when it is constructed in Python, and fails
with :class:`msgspec.ValidationError` (decode) or :class:`ValueError`/:class:`TypeError`
(construction) naming the bad field.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

import msgspec

__all__ = [
    "Action",
    "Balance",
    "BookLevel",
    "ExecutionReport",
    "Fill",
    "FundingRate",
    "HedgedPosition",
    "OrderBook",
    "OrderRequest",
    "OrderResult",
    "OrderStatus",
    "Position",
    "ReportStatus",
    "Signal",
    "SymbolRules",
    "bounded",
    "decode_signal",
    "to_decimal",
]

Action = Literal["ENTER", "EXIT"]
OrderStatus = Literal["open", "filled", "partially_filled", "canceled", "rejected", "expired"]
ReportStatus = Literal[
    "filled", "recovered", "unwound", "rejected", "refused", "duplicate", "manual_required"
]

ACTIONS = frozenset(("ENTER", "EXIT"))
ORDER_STATUSES = frozenset(("open", "filled", "partially_filled", "canceled", "rejected", "expired"))
FINAL_ORDER_STATUSES = frozenset(("filled", "canceled", "rejected", "expired"))
SIDES = frozenset(("buy", "sell"))
ORDER_TYPES = frozenset(("market", "limit"))
TIME_IN_FORCE = frozenset(("gtc", "ioc", "fok"))

ZERO = Decimal(0)

#: How much of a rejected input is kept in a report, the journal or a message.
TEXT_LIMIT = 256
#: Digits a signal's qty/kimp may have (a 10 MB number is not a size, and would be stored).
MAX_DIGITS = 40
_INT63 = (1 << 63) - 1


def bounded(value: object, limit: int = TEXT_LIMIT) -> str:
    """``str(value)``, cut to ``limit`` characters with a marker saying how much was cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


def _brepr(value: object) -> str:
    """repr() of a rejected value, bounded."""
    if isinstance(value, str) and len(value) > TEXT_LIMIT:
        return bounded(repr(value[:TEXT_LIMIT + 1]))
    return bounded(repr(value))


def to_decimal(value: object, field: str, *, allow_none: bool = False) -> Decimal | None:
    """Convert ``value`` to a finite Decimal or raise a clear error naming ``field``."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{field}: a value is required")
    if isinstance(value, bool):  # bool is an int subclass; never a quantity
        raise TypeError(f"{field}: expected a Decimal or decimal string, got bool")
    if isinstance(value, float):
        raise TypeError(
            f"{field}: floats are refused (binary rounding); pass Decimal('…') or a string"
        )
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, str)):
        try:
            d = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise ValueError(f"{field}: {_brepr(value)} is not a decimal number") from None
    else:
        raise TypeError(f"{field}: expected a Decimal or decimal string, got {type(value).__name__}")
    if not d.is_finite():
        raise ValueError(f"{field}: must be finite, got {bounded(d)}")
    return d


def _positive(value: object, field: str, *, allow_none: bool = False) -> Decimal | None:
    d = to_decimal(value, field, allow_none=allow_none)
    if d is not None and d <= 0:
        raise ValueError(f"{field}: must be > 0, got {bounded(d)}")
    return d


def _non_negative(value: object, field: str) -> Decimal:
    d = to_decimal(value, field)
    assert d is not None
    if d < 0:
        raise ValueError(f"{field}: must be >= 0, got {d}")
    return d


def _set(obj: msgspec.Struct, name: str, value: object) -> None:
    msgspec.structs.force_setattr(obj, name, value)


class Signal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A trading instruction from the research side.

    ``qty`` is the base quantity (e.g. BTC). For EXIT, ``None`` means the whole position.
    ``ts_ms`` is when the signal was produced (epoch ms); it expires at ``ts_ms + ttl_ms``.
    ``kimp`` is the premium the research side saw (informational only).

    Unknown fields are refused, naming the field: an EXIT with a misspelled ``qyt``
    would otherwise have ``qty=None`` — the whole position.
    """

    id: str
    action: Action
    coin: str
    ts_ms: int
    qty: Decimal | None = None
    ttl_ms: int = 5000
    kimp: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise ValueError("id: a non-empty string is required")
        if len(self.id) > 128:
            raise ValueError(f"id: at most 128 characters, got {len(self.id)}")
        if not self.id.isprintable():
            raise ValueError("id: control or formatting characters are refused")
        if self.action not in ACTIONS:
            raise ValueError(f"action: expected 'ENTER' or 'EXIT', got {_brepr(self.action)}")
        if not isinstance(self.coin, str) or not self.coin.isalnum() or len(self.coin) > 16:
            raise ValueError(f"coin: expected a ticker such as 'BTC', got {_brepr(self.coin)}")
        if self.coin != self.coin.upper():
            _set(self, "coin", self.coin.upper())
        for name in ("ts_ms", "ttl_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name}: expected an integer (epoch milliseconds), got {_brepr(v)}")
            if v > _INT63:
                raise ValueError(f"{name}: must fit in 63 bits (milliseconds), got a {v.bit_length()}-bit number")
        if self.ts_ms <= 0:
            raise ValueError(f"ts_ms: must be a positive epoch-ms time stamp, got {self.ts_ms}")
        if self.ttl_ms <= 0:
            raise ValueError(f"ttl_ms: must be > 0, got {self.ttl_ms}")
        qty = _positive(self.qty, "qty", allow_none=self.action == "EXIT")
        if qty is not self.qty:
            _set(self, "qty", qty)
        kimp = to_decimal(self.kimp, "kimp", allow_none=True)
        if kimp is not self.kimp:
            _set(self, "kimp", kimp)
        for name, d in (("qty", qty), ("kimp", kimp)):
            if d is not None and len(d.as_tuple().digits) > MAX_DIGITS:
                raise ValueError(f"{name}: at most {MAX_DIGITS} digits, got {len(d.as_tuple().digits)}")

    def expired(self, now_ms: int) -> bool:
        return now_ms > self.ts_ms + self.ttl_ms


_signal_decoder = msgspec.json.Decoder(Signal)


def decode_signal(data: bytes | str) -> Signal:
    """Decode one JSON signal; raises :class:`msgspec.ValidationError`/``DecodeError``."""
    return _signal_decoder.decode(data)


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the engine asks an adapter to place it (CONTRACT §2).

    ``symbol`` is the exchange's own symbol (``KRW-BTC``, ``BTCUSDT``). ``quote_amount``
    is only for an Upbit market buy (KRW to spend). ``client_id`` becomes Upbit
    ``identifier`` / Binance ``newClientOrderId``.
    """

    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"]
    client_id: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    quote_amount: Decimal | None = None
    time_in_force: Literal["gtc", "ioc", "fok"] | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError("symbol: a non-empty exchange symbol is required")
        if self.side not in SIDES:
            raise ValueError(f"side: expected 'buy' or 'sell', got {self.side!r}")
        if self.type not in ORDER_TYPES:
            raise ValueError(f"type: expected 'market' or 'limit', got {self.type!r}")
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ValueError("client_id: a non-empty client order id is required")
        if self.time_in_force is not None and self.time_in_force not in TIME_IN_FORCE:
            raise ValueError(f"time_in_force: expected gtc/ioc/fok or None, got {self.time_in_force!r}")
        for name in ("quantity", "price", "quote_amount"):
            v = getattr(self, name)
            if v is None or (type(v) is Decimal and v.is_finite() and v > 0):
                continue  # the engine's own orders: already exact (and one call cheaper)
            d = _positive(v, name, allow_none=True)
            if d is not v:
                _set(self, name, d)
        if self.type == "limit":
            if self.price is None or self.quantity is None:
                raise ValueError("limit order: price and quantity are required")
            if self.quote_amount is not None:
                raise ValueError("limit order: quote_amount is only for market buys")
        else:
            if self.price is not None:
                raise ValueError("market order: price must be None")
            if self.quantity is None and self.quote_amount is None:
                raise ValueError("market order: quantity (or quote_amount for a buy) is required")
            if self.quote_amount is not None and (self.side != "buy" or self.quantity is not None):
                raise ValueError("quote_amount: only for a market buy, without quantity")


class OrderResult(msgspec.Struct, kw_only=True):
    """An order as the exchange knows it now, normalized across exchanges."""

    exchange: str
    symbol: str
    client_id: str
    exchange_order_id: str
    status: OrderStatus
    side: Literal["buy", "sell"]
    quantity: Decimal | None = None  # ordered base quantity (None for an Upbit KRW market buy)
    filled_qty: Decimal = ZERO
    avg_price: Decimal | None = None
    quote_filled: Decimal = ZERO  # KRW / USDT traded
    fee: Decimal = ZERO
    fee_asset: str = ""
    ts_ms: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL_ORDER_STATUSES


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    exchange: str
    symbol: str
    client_id: str
    side: Literal["buy", "sell"]
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    ts_ms: int


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class BookLevel(msgspec.Struct, frozen=True, array_like=True):
    price: Decimal
    qty: Decimal


class OrderBook(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    bids: list[BookLevel]  # best first
    asks: list[BookLevel]  # best first
    ts_ms: int = 0

    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None


class SymbolRules(msgspec.Struct, frozen=True, kw_only=True):
    """Trading rules of one symbol, loaded from the exchange at start and on a timer."""

    exchange: str
    symbol: str
    base_asset: str
    quote_asset: str
    qty_step: Decimal
    min_qty: Decimal = ZERO
    max_qty: Decimal | None = None
    market_max_qty: Decimal | None = None
    tick_size: Decimal | None = None  # None: price-banded (Upbit) -> see adapter.tick_for()
    min_price: Decimal = ZERO
    min_notional: Decimal = ZERO  # quote currency (KRW min_total on Upbit)
    max_notional: Decimal | None = None
    maker_fee: Decimal = ZERO
    taker_fee: Decimal = ZERO


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A Binance USDT-M position (one-way mode). ``qty`` is signed: negative = short."""

    symbol: str
    qty: Decimal
    entry_price: Decimal = ZERO
    mark_price: Decimal = ZERO
    liquidation_price: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    leverage: int = 0
    margin_type: str = ""
    maint_margin: Decimal = ZERO
    margin_balance: Decimal = ZERO  # account margin balance, for the margin ratio


class FundingRate(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    rate: Decimal
    mark_price: Decimal
    index_price: Decimal = ZERO
    next_funding_time_ms: int = 0


class HedgedPosition(msgspec.Struct, kw_only=True):
    """One coin's hedged pair: long spot on Upbit, short perp on Binance."""

    coin: str
    qty: Decimal  # hedged quantity (same on both legs)
    entry_spot_price: Decimal  # Upbit average, KRW
    entry_perp_price: Decimal  # Binance average, USDT
    entry_fx: Decimal  # KRW per USDT at entry
    entry_fees_krw: Decimal = ZERO
    entry_fees_usdt: Decimal = ZERO
    opened_ts_ms: int = 0
    signal_id: str = ""
    entry_kimp: Decimal | None = None
    spot_residual: Decimal = ZERO  # dust below the exchanges' minimums, tracked not chased
    #: funding received since ``opened_ts_ms`` that earlier partial EXITs already counted
    #: (the rest of the income since then belongs to this position's quantity)
    funding_credited_usdt: Decimal = ZERO
    #: spot whose short the exchange no longer holds (a liquidation, a manual close):
    #: unhedged exposure the next EXIT sells on its own, never judged by the exit rule
    naked_spot: Decimal = ZERO


class ExecutionReport(msgspec.Struct, kw_only=True):
    """What ``KimpEngine.submit`` returns for one signal."""

    signal_id: str
    action: str
    coin: str
    status: ReportStatus
    reason: str = ""
    qty: Decimal = ZERO
    orders: list[OrderResult] = msgspec.field(default_factory=list)
    recovery: list[str] = msgspec.field(default_factory=list)
    realized_pnl_krw: Decimal | None = None
    fees_krw: Decimal | None = None
    funding_krw: Decimal | None = None
    kimp_entry: Decimal | None = None
    kimp_exit: Decimal | None = None
    timings_us: dict[str, float] = msgspec.field(default_factory=dict)
