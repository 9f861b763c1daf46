"""msgspec Structs for the exchanges' REST responses, and their module-level decoders.

One Struct per response shape, holding only the fields the adapters read (STYLE R12):
unknown fields are ignored, so additions on the exchange side never break decoding.
Every price, quantity and amount decodes to :class:`~decimal.Decimal` exactly, whether
the exchange sends it as a JSON string (orders, balances) or a JSON number (Upbit's
order book): msgspec parses the number's text, no float is ever made.

Names: ``Upbit*`` mirror Upbit's snake_case keys; ``Bn*`` use ``rename="camel"`` so
attributes stay snake_case while Binance's keys stay camelCase.

Validation happens here, where the answer is decoded: every Struct holding a number
checks it in ``__post_init__``, which msgspec runs for ``decode`` and ``convert`` alike
(so the direct and the ccxt adapters share the checks) and whose ``ValueError`` it
reports as a ``msgspec.ValidationError`` naming the path. The adapters turn that into
:class:`adapters_direct.errors.InvalidResponse`. The rules:

* every number is finite and ``1e-40 < |x| < 1e40`` (or zero written without a huge
  exponent): ``NaN``, ``Infinity``, ``1e999999999`` and ``0E-999999999`` are refused;
* quantities, prices, fees, Upbit balances and funds are not negative; signed are only
  Binance's position amount, unrealized PnL, funding rate and income, and its account
  balances (cross margin can run below zero);
* a fill is never larger than its order (``executedQty <= origQty``,
  ``executed_volume <= volume``), a price that is given is > 0 (Binance's ``avgPrice``
  and a MARKET order's ``price`` are 0 when absent), an order book level has a price > 0.

Each check is a few comparisons on values msgspec has already parsed, no second pass:
an order answer costs well under a microsecond more (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

from kimp_fast.models import BookLevel

from .errors import InvalidResponse

ZERO = Decimal(0)
#: decoded numbers lie within 1e-40 .. 1e40 in magnitude (as ``kimp_fast.orders`` requires
#: of what it encodes): beyond is not an amount, and formatting ``1E+999999999`` as a plain
#: string would allocate a gigabyte
MAX_EXPONENT = 40


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: Decimal, field: str) -> None:
    """Finite and within range (either sign)."""
    if not value.is_finite():
        raise ValueError(f"{field}={_show(value)}: not a finite number")
    if not -MAX_EXPONENT < value.adjusted() < MAX_EXPONENT:
        raise ValueError(f"{field}={_show(value)}: out of range")


def _nonneg(value: Decimal, field: str) -> None:
    """Finite, within range and >= 0."""
    if not value.is_finite():
        raise ValueError(f"{field}={_show(value)}: not a finite number")
    if not -MAX_EXPONENT < value.adjusted() < MAX_EXPONENT:
        raise ValueError(f"{field}={_show(value)}: out of range")
    if value < 0:
        raise ValueError(f"{field}={_show(value)}: must not be negative")


def _positive(value: Decimal, field: str) -> None:
    """Finite, within range and > 0."""
    _nonneg(value, field)
    if not value:
        raise ValueError(f"{field}=0: must be positive")


def _opt_nonneg(value: Decimal | None, field: str) -> None:
    if value is not None:
        _nonneg(value, field)


def _opt_positive(value: Decimal | None, field: str) -> None:
    if value is not None:
        _positive(value, field)


def _fee_rate(value: Decimal, field: str, *, signed: bool = False) -> None:
    """A commission rate: a fraction below 1 (a maker rebate may be negative)."""
    (_finite if signed else _nonneg)(value, field)
    if not -1 < value < 1:
        raise ValueError(f"{field}={_show(value)}: not a fee rate")


#: order states an answer may carry; anything else is not believed (it used to read as
#: "rejected", i.e. "definitely not executed")
UPBIT_ORDER_STATES = frozenset({"wait", "watch", "done", "cancel"})
BN_ORDER_STATUSES = frozenset(
    {"NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"}
)


def _level(level: BookLevel, field: str) -> None:
    _positive(level.price, field + ".price")
    _nonneg(level.qty, field + ".qty")


# --------------------------------------------------------------------------------------
# Upbit
# --------------------------------------------------------------------------------------
class UpbitErrorBody(msgspec.Struct, gc=False):
    # Quotation endpoints may send ``name`` as an integer (EXCHANGE_NOTES A5).
    name: str | int | None = None
    message: str | None = None


class UpbitError(msgspec.Struct, gc=False):
    error: UpbitErrorBody


class UpbitTrade(msgspec.Struct, gc=False):
    price: Decimal
    volume: Decimal
    funds: Decimal

    def __post_init__(self) -> None:
        _positive(self.price, "trades.price")
        _nonneg(self.volume, "trades.volume")
        _nonneg(self.funds, "trades.funds")


class UpbitOrder(msgspec.Struct):
    """``POST /v1/orders``, ``GET /v1/order``, ``DELETE /v1/order``."""

    uuid: str
    side: str  # bid | ask
    ord_type: str  # limit | price | market | best
    state: str  # wait | watch | done | cancel
    market: str
    price: Decimal | None = None
    volume: Decimal | None = None
    remaining_volume: Decimal | None = None
    executed_volume: Decimal = ZERO
    paid_fee: Decimal = ZERO
    executed_funds: Decimal | None = None  # in real responses, not in the doc (A3)
    identifier: str | None = None
    time_in_force: str | None = None
    created_at: str | None = None
    trades: list[UpbitTrade] = []

    def __post_init__(self) -> None:
        if self.state not in UPBIT_ORDER_STATES:
            raise ValueError(f"state={_show(self.state)}: unknown order state")
        if self.side != "bid" and self.side != "ask":
            raise ValueError(f"side={_show(self.side)}: not bid or ask")
        executed = self.executed_volume
        _nonneg(executed, "executed_volume")
        volume = self.volume
        if volume is not None:
            _nonneg(volume, "volume")
            if executed > volume:
                raise ValueError(f"executed_volume={_show(executed)} exceeds volume={_show(volume)}")
        _opt_positive(self.price, "price")
        _opt_nonneg(self.remaining_volume, "remaining_volume")
        _nonneg(self.paid_fee, "paid_fee")
        _opt_nonneg(self.executed_funds, "executed_funds")


class UpbitAccount(msgspec.Struct, gc=False):
    currency: str
    balance: Decimal
    locked: Decimal = ZERO

    def __post_init__(self) -> None:
        _nonneg(self.balance, "balance")
        _nonneg(self.locked, "locked")


class UpbitChanceSide(msgspec.Struct, gc=False):
    currency: str | None = None
    min_total: Decimal | None = None

    def __post_init__(self) -> None:
        _opt_nonneg(self.min_total, "min_total")


class UpbitChanceMarket(msgspec.Struct, gc=False):
    id: str
    bid: UpbitChanceSide = msgspec.field(default_factory=UpbitChanceSide)
    ask: UpbitChanceSide = msgspec.field(default_factory=UpbitChanceSide)
    max_total: Decimal | None = None
    state: str | None = None

    def __post_init__(self) -> None:
        _opt_positive(self.max_total, "max_total")


class UpbitChance(msgspec.Struct, gc=False):
    """``GET /v1/orders/chance``: fees and order-size limits of one market."""

    bid_fee: Decimal
    ask_fee: Decimal
    market: UpbitChanceMarket
    maker_bid_fee: Decimal | None = None
    maker_ask_fee: Decimal | None = None

    def __post_init__(self) -> None:
        _fee_rate(self.bid_fee, "bid_fee")
        _fee_rate(self.ask_fee, "ask_fee")
        if self.maker_bid_fee is not None:
            _fee_rate(self.maker_bid_fee, "maker_bid_fee")
        if self.maker_ask_fee is not None:
            _fee_rate(self.maker_ask_fee, "maker_ask_fee")


class UpbitInstrument(msgspec.Struct, gc=False):
    """``GET /v1/orderbook/instruments``."""

    market: str
    tick_size: Decimal

    def __post_init__(self) -> None:
        _positive(self.tick_size, "tick_size")


class UpbitBookUnit(msgspec.Struct, gc=False):
    ask_price: Decimal
    bid_price: Decimal
    ask_size: Decimal
    bid_size: Decimal

    def __post_init__(self) -> None:
        # An empty side of a level may read price 0 with size 0; a size needs a price.
        _nonneg(self.ask_size, "orderbook_units.ask_size")
        _nonneg(self.bid_size, "orderbook_units.bid_size")
        (_positive if self.ask_size else _nonneg)(self.ask_price, "orderbook_units.ask_price")
        (_positive if self.bid_size else _nonneg)(self.bid_price, "orderbook_units.bid_price")


class UpbitOrderbook(msgspec.Struct):
    """``GET /v1/orderbook`` (prices and sizes are JSON numbers, decoded exactly)."""

    market: str
    orderbook_units: list[UpbitBookUnit]
    timestamp: int = 0


class UpbitMarket(msgspec.Struct, gc=False):
    """``GET /v1/market/all``: used to pre-warm the connection and list markets."""

    market: str


# --------------------------------------------------------------------------------------
# Binance USDT-M
# --------------------------------------------------------------------------------------
class BnError(msgspec.Struct, gc=False):
    code: int
    msg: str = ""


class BnServerTime(msgspec.Struct, rename="camel", gc=False):
    server_time: int


class BnOrder(msgspec.Struct, rename="camel", gc=False):
    """``POST|GET|DELETE /fapi/v1/order`` (``newOrderRespType=RESULT``)."""

    order_id: int
    client_order_id: str
    symbol: str
    status: str
    side: str
    type: str = ""
    time_in_force: str = ""
    orig_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    avg_price: Decimal = ZERO
    price: Decimal = ZERO
    reduce_only: bool = False
    update_time: int = 0

    def __post_init__(self) -> None:
        # The order path: a few comparisons on values already parsed.
        if self.status not in BN_ORDER_STATUSES:
            raise ValueError(f"status={_show(self.status)}: unknown order status")
        if self.side != "BUY" and self.side != "SELL":
            raise ValueError(f"side={_show(self.side)}: not BUY or SELL")
        executed = self.executed_qty
        _nonneg(executed, "executedQty")
        _nonneg(self.orig_qty, "origQty")
        if executed > self.orig_qty:
            raise ValueError(f"executedQty={_show(executed)} exceeds origQty={_show(self.orig_qty)}")
        _nonneg(self.cum_quote, "cumQuote")
        _nonneg(self.avg_price, "avgPrice")  # "0" until something filled
        _nonneg(self.price, "price")  # "0" for a MARKET order


class BnFilter(msgspec.Struct, rename="camel", gc=False):
    """One entry of ``symbols[].filters``; which fields are set depends on ``filterType``."""

    filter_type: str
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    tick_size: Decimal | None = None
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    step_size: Decimal | None = None
    notional: Decimal | None = None

    def __post_init__(self) -> None:
        _opt_nonneg(self.min_price, "filters.minPrice")
        _opt_nonneg(self.max_price, "filters.maxPrice")
        _opt_positive(self.tick_size, "filters.tickSize")
        _opt_nonneg(self.min_qty, "filters.minQty")
        _opt_nonneg(self.max_qty, "filters.maxQty")
        _opt_positive(self.step_size, "filters.stepSize")
        _opt_nonneg(self.notional, "filters.notional")


class BnSymbol(msgspec.Struct, rename="camel"):
    symbol: str
    base_asset: str
    quote_asset: str
    filters: list[BnFilter]
    status: str = "TRADING"
    contract_type: str = ""


class BnExchangeInfo(msgspec.Struct):
    symbols: list[BnSymbol]


class BnDepth(msgspec.Struct):
    """``GET /fapi/v1/depth``: ``[price, qty]`` string pairs decode straight into BookLevel."""

    bids: list[BookLevel]
    asks: list[BookLevel]
    T: int = 0

    def __post_init__(self) -> None:
        for level in self.bids:
            _level(level, "bids")
        for level in self.asks:
            _level(level, "asks")


class BnBookTicker(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    bid_price: Decimal
    ask_price: Decimal
    time: int = 0

    def __post_init__(self) -> None:
        _positive(self.bid_price, "bidPrice")
        _positive(self.ask_price, "askPrice")


class BnPositionRisk(msgspec.Struct, rename="camel", gc=False):
    """One row of ``GET /fapi/v3/positionRisk``."""

    symbol: str
    position_amt: Decimal
    position_side: str = "BOTH"
    entry_price: Decimal = ZERO
    mark_price: Decimal = ZERO
    un_realized_profit: Decimal = ZERO
    liquidation_price: Decimal = ZERO
    maint_margin: Decimal = ZERO
    isolated_margin: Decimal = ZERO
    # v2 rows carry these; v3 rows do not (they are in /fapi/v1/symbolConfig)
    leverage: int | None = None
    margin_type: str | None = None

    def __post_init__(self) -> None:
        _finite(self.position_amt, "positionAmt")  # signed: negative is a short
        _nonneg(self.entry_price, "entryPrice")
        _nonneg(self.mark_price, "markPrice")
        _finite(self.un_realized_profit, "unRealizedProfit")
        _nonneg(self.liquidation_price, "liquidationPrice")
        _nonneg(self.maint_margin, "maintMargin")
        _nonneg(self.isolated_margin, "isolatedMargin")
        if self.leverage is not None and self.leverage < 0:
            raise ValueError(f"leverage={self.leverage}: must not be negative")


class BnSymbolConfig(msgspec.Struct, rename="camel", gc=False):
    """One row of ``GET /fapi/v1/symbolConfig`` (leverage and margin type per symbol)."""

    symbol: str
    leverage: int = 0
    margin_type: str = ""

    def __post_init__(self) -> None:
        if self.leverage < 0:
            raise ValueError(f"leverage={self.leverage}: must not be negative")


class BnAccount(msgspec.Struct, rename="camel", gc=False):
    """``GET /fapi/v3/account`` totals."""

    available_balance: Decimal
    total_margin_balance: Decimal = ZERO
    total_maint_margin: Decimal = ZERO
    total_wallet_balance: Decimal = ZERO

    def __post_init__(self) -> None:
        # Cross-margin balances can run below zero; the maintenance margin cannot.
        _finite(self.available_balance, "availableBalance")
        _finite(self.total_margin_balance, "totalMarginBalance")
        _nonneg(self.total_maint_margin, "totalMaintMargin")
        _finite(self.total_wallet_balance, "totalWalletBalance")


class BnBalance(msgspec.Struct, rename="camel", gc=False):
    """One row of ``GET /fapi/v3/balance``."""

    asset: str
    balance: Decimal
    available_balance: Decimal

    def __post_init__(self) -> None:
        _finite(self.balance, "balance")
        _finite(self.available_balance, "availableBalance")


class BnLeverage(msgspec.Struct, rename="camel", gc=False):
    leverage: int
    symbol: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.leverage <= 125:
            raise ValueError(f"leverage={self.leverage}: not 1..125")


class BnCodeMsg(msgspec.Struct, gc=False):
    """``{"code": 200, "msg": "success"}`` (marginType): a success that carries a code."""

    code: int = 200
    msg: str = ""


class BnPositionMode(msgspec.Struct, rename="camel", gc=False):
    dual_side_position: bool


class BnPremiumIndex(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    mark_price: Decimal
    last_funding_rate: Decimal
    index_price: Decimal = ZERO
    next_funding_time: int = 0

    def __post_init__(self) -> None:
        _positive(self.mark_price, "markPrice")
        _finite(self.last_funding_rate, "lastFundingRate")  # signed
        _nonneg(self.index_price, "indexPrice")


class BnIncome(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    income_type: str
    income: Decimal
    asset: str = "USDT"
    time: int = 0

    def __post_init__(self) -> None:
        _finite(self.income, "income")  # signed: funding is paid or received


class BnCommissionRate(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    maker_commission_rate: Decimal
    taker_commission_rate: Decimal

    def __post_init__(self) -> None:
        _fee_rate(self.maker_commission_rate, "makerCommissionRate", signed=True)  # a rebate is negative
        _fee_rate(self.taker_commission_rate, "takerCommissionRate")


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------
_FIELD = re.compile(r"([A-Za-z_][A-Za-z_.]*)=")
_PATH = re.compile(r" - at `([^`]*)`$")


def invalid_response(
    exc: Exception, *, exchange: str, status: int | None = None, client_id: str | None = None, what: str = ""
) -> InvalidResponse:
    """The :class:`InvalidResponse` for an answer msgspec refused (``DecodeError``,
    ``ValidationError`` — our checks included). The message names the field and the path
    within the answer; it holds no request data, so never a credential."""
    text = str(exc)
    m = _FIELD.match(text)
    field = m.group(1) if m else None
    if field is None:
        p = _PATH.search(text)
        field = p.group(1) if p else None
    if len(text) > 300:
        text = text[:297] + "..."
    where = f" to {what}" if what else ""
    return InvalidResponse(
        f"invalid answer{where}: {text}", exchange=exchange, status=status, client_id=client_id,
        code="invalid_response", field=field,
    )


# --------------------------------------------------------------------------------------
# Module-level decoders: built once, reused by every request (msgspec perf tips).
# --------------------------------------------------------------------------------------
decode_upbit_error = msgspec.json.Decoder(UpbitError).decode
decode_upbit_order = msgspec.json.Decoder(UpbitOrder).decode
decode_upbit_accounts = msgspec.json.Decoder(list[UpbitAccount]).decode
decode_upbit_chance = msgspec.json.Decoder(UpbitChance).decode
decode_upbit_instruments = msgspec.json.Decoder(list[UpbitInstrument]).decode
decode_upbit_orderbooks = msgspec.json.Decoder(list[UpbitOrderbook]).decode
decode_upbit_markets = msgspec.json.Decoder(list[UpbitMarket]).decode

decode_bn_error = msgspec.json.Decoder(BnError).decode
decode_bn_time = msgspec.json.Decoder(BnServerTime).decode
decode_bn_order = msgspec.json.Decoder(BnOrder).decode
decode_bn_exchange_info = msgspec.json.Decoder(BnExchangeInfo).decode
decode_bn_depth = msgspec.json.Decoder(BnDepth).decode
decode_bn_book_ticker = msgspec.json.Decoder(BnBookTicker).decode
decode_bn_position_risk = msgspec.json.Decoder(list[BnPositionRisk]).decode
decode_bn_symbol_config = msgspec.json.Decoder(list[BnSymbolConfig]).decode
decode_bn_account = msgspec.json.Decoder(BnAccount).decode
decode_bn_balances = msgspec.json.Decoder(list[BnBalance]).decode
decode_bn_leverage = msgspec.json.Decoder(BnLeverage).decode
decode_bn_code_msg = msgspec.json.Decoder(BnCodeMsg).decode
decode_bn_position_mode = msgspec.json.Decoder(BnPositionMode).decode
decode_bn_premium_index = msgspec.json.Decoder(BnPremiumIndex).decode
decode_bn_income = msgspec.json.Decoder(list[BnIncome]).decode
decode_bn_commission = msgspec.json.Decoder(BnCommissionRate).decode

__all__ = sorted(
    name for name in list(globals()) if name.startswith(("Upbit", "Bn", "decode_"))
) + ["BN_ORDER_STATUSES", "MAX_EXPONENT", "UPBIT_ORDER_STATES", "invalid_response"]
