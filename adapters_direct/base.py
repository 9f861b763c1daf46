"""The interface every exchange adapter implements (CONTRACT §2).

Adapters translate between normalized records (:mod:`kimp_fast.models`) and one
exchange's wire format. They never decide trading policy: no retries of order
placement, no sizing, no hedging. Each adapter owns one long-lived HTTP session,
opened in ``__aenter__`` and closed in ``__aexit__``; it owns no event loop and keeps
no global state, so several can live in one program.

``reserved=True`` on a call puts it in the rate limiter's reserved lane: only hedge
repair and unwind traffic may use it, so a burst of entries can never starve them.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from decimal import Decimal
from types import TracebackType

from kimp_fast.models import (
    Balance,
    FundingRate,
    OrderBook,
    OrderRequest,
    OrderResult,
    Position,
    SymbolRules,
)

__all__ = ["ExchangeAdapter", "SpotAdapter", "PerpAdapter"]


class ExchangeAdapter(abc.ABC):
    """Operations common to both exchanges."""

    #: "upbit" or "binance"
    name: str = ""
    #: "direct" or "ccxt"
    adapter_type: str = ""

    async def __aenter__(self) -> "ExchangeAdapter":
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Open and pre-warm the session, sync the clock, load the rules."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the session (idempotent)."""

    # -- orders ---------------------------------------------------------------------
    @abc.abstractmethod
    async def place_order(self, req: OrderRequest, *, reserved: bool = False) -> OrderResult:
        """Place one order. Never retried here: on doubt raises ``OutcomeUnknown``."""

    def start_order(self, req: OrderRequest, *, reserved: bool = False) -> Awaitable[OrderResult]:
        """:meth:`place_order`, started now: an adapter that can write the request before
        returning does so (the direct adapters, when nothing would make it wait), so that
        two legs started one after the other are both on the wire before the caller
        yields. Await the result as ``place_order``'s; every error comes from the await,
        never from this call. Here: the request leaves when the result is awaited."""
        return self.place_order(req, reserved=reserved)

    def rehearse_order(self, req: OrderRequest) -> bytes | None:
        """Build and sign ``req`` exactly as :meth:`start_order` would, and return the
        request bytes instead of sending them: no request, no rate-limit slot, no
        connection. The engine rehearses between signals so the order path's code and
        data stay in the CPU caches (docs/PERFORMANCE.md). None: this adapter cannot."""
        return None

    @abc.abstractmethod
    async def get_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """The order as the exchange knows it now; ``Rejected`` (code 'order_not_found'
        / -2013) when the exchange has no such order."""

    @abc.abstractmethod
    async def cancel_order(self, symbol: str, client_id: str, *, reserved: bool = False) -> OrderResult:
        """Cancel by client id and return the order's state after the cancel."""

    # -- account and market ----------------------------------------------------------
    @abc.abstractmethod
    async def get_balances(self) -> dict[str, Balance]:
        """Balances by asset (free and locked)."""

    @abc.abstractmethod
    async def get_order_book(self, symbol: str, depth: int = 15) -> OrderBook:
        """Top ``depth`` levels of the book, best first."""

    async def best_bid_ask(self, symbol: str) -> tuple[Decimal, Decimal]:
        book = await self.get_order_book(symbol, depth=1)
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            from .errors import Rejected

            raise Rejected(f"empty order book for {symbol}", exchange=self.name, code="empty_book")
        return bid, ask

    @abc.abstractmethod
    def rules(self, symbol: str) -> SymbolRules:
        """Cached trading rules (loaded in ``open`` and refreshed on a timer)."""

    @abc.abstractmethod
    async def refresh_rules(self) -> None:
        """Reload the trading rules from the exchange now."""

    def tick_for(self, symbol: str, price: Decimal) -> Decimal:
        """Price tick valid at ``price`` (Upbit's ticks depend on the price band)."""
        tick = self.rules(symbol).tick_size
        if tick is None:
            raise NotImplementedError
        return tick


class SpotAdapter(ExchangeAdapter):
    """Upbit KRW spot."""


class PerpAdapter(ExchangeAdapter):
    """Binance USDT-M perpetual (one-way position mode)."""

    @abc.abstractmethod
    async def get_position(self, symbol: str) -> Position:
        """The position of ``symbol`` (qty 0 when flat)."""

    @abc.abstractmethod
    async def get_available_margin(self) -> Decimal:
        """USDT available for new margin (``availableBalance``)."""

    @abc.abstractmethod
    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set the initial leverage; returns what the exchange applied."""

    @abc.abstractmethod
    async def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """ISOLATED or CROSSED; "no need to change" counts as success."""

    @abc.abstractmethod
    async def ensure_one_way_mode(self) -> None:
        """Raise ``Rejected`` if the account is in hedge (dual-side) mode."""

    @abc.abstractmethod
    async def get_funding_rate(self, symbol: str) -> FundingRate:
        """Current mark price, funding rate and next funding time."""

    @abc.abstractmethod
    async def get_funding_income(self, symbol: str, start_ms: int, end_ms: int | None = None) -> Decimal:
        """Sum of FUNDING_FEE income (USDT, positive = received) since ``start_ms``."""

    @abc.abstractmethod
    async def get_commission_rate(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) commission rates."""
