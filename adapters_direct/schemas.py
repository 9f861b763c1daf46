"""msgspec Structs for the exchanges' REST responses, and their module-level decoders.

One Struct per response shape, holding only the fields the adapters read (STYLE R12):
unknown fields are ignored, so additions on the exchange side never break decoding.
Every price, quantity and amount decodes to :class:`~decimal.Decimal` exactly, whether
the exchange sends it as a JSON string (orders, balances) or a JSON number (Upbit's
order book): msgspec parses the number's text, no float is ever made.

Names: ``Upbit*`` mirror Upbit's snake_case keys; ``Bn*`` use ``rename="camel"`` so
attributes stay snake_case while Binance's keys stay camelCase.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from kimp_fast.models import BookLevel

ZERO = Decimal(0)


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


class UpbitAccount(msgspec.Struct, gc=False):
    currency: str
    balance: Decimal
    locked: Decimal = ZERO


class UpbitChanceSide(msgspec.Struct, gc=False):
    currency: str | None = None
    min_total: Decimal | None = None


class UpbitChanceMarket(msgspec.Struct, gc=False):
    id: str
    bid: UpbitChanceSide = msgspec.field(default_factory=UpbitChanceSide)
    ask: UpbitChanceSide = msgspec.field(default_factory=UpbitChanceSide)
    max_total: Decimal | None = None
    state: str | None = None


class UpbitChance(msgspec.Struct, gc=False):
    """``GET /v1/orders/chance``: fees and order-size limits of one market."""

    bid_fee: Decimal
    ask_fee: Decimal
    market: UpbitChanceMarket
    maker_bid_fee: Decimal | None = None
    maker_ask_fee: Decimal | None = None


class UpbitInstrument(msgspec.Struct, gc=False):
    """``GET /v1/orderbook/instruments``."""

    market: str
    tick_size: Decimal


class UpbitBookUnit(msgspec.Struct, gc=False):
    ask_price: Decimal
    bid_price: Decimal
    ask_size: Decimal
    bid_size: Decimal


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


class BnBookTicker(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    bid_price: Decimal
    ask_price: Decimal
    time: int = 0


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


class BnSymbolConfig(msgspec.Struct, rename="camel", gc=False):
    """One row of ``GET /fapi/v1/symbolConfig`` (leverage and margin type per symbol)."""

    symbol: str
    leverage: int = 0
    margin_type: str = ""


class BnAccount(msgspec.Struct, rename="camel", gc=False):
    """``GET /fapi/v3/account`` totals."""

    available_balance: Decimal
    total_margin_balance: Decimal = ZERO
    total_maint_margin: Decimal = ZERO
    total_wallet_balance: Decimal = ZERO


class BnBalance(msgspec.Struct, rename="camel", gc=False):
    """One row of ``GET /fapi/v3/balance``."""

    asset: str
    balance: Decimal
    available_balance: Decimal


class BnLeverage(msgspec.Struct, rename="camel", gc=False):
    leverage: int
    symbol: str = ""


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


class BnIncome(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    income_type: str
    income: Decimal
    asset: str = "USDT"
    time: int = 0


class BnCommissionRate(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    maker_commission_rate: Decimal
    taker_commission_rate: Decimal


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
)
