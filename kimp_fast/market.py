"""Cached market data and balances for sizing, with explicit freshness bounds.

Sizing an ENTER must not wait for a network round trip when a fresh enough book is
already at hand, so books are cached per symbol with their fetch time and refreshed on
demand (``max_age``) or by an optional background poller. Balances are refreshed after
every signal in the background; the next sizing waits for that refresh, so two signals
can never size against the same stale balance.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from adapters_direct.errors import AdapterError

from .models import OrderBook
from .pricing import mid

if TYPE_CHECKING:  # pragma: no cover
    from .engine import KimpEngine

__all__ = ["Capital", "MarketData", "Reservation"]

ZERO = Decimal(0)
DEEP_UPBIT = 30  # the most levels GET /v1/orderbook returns
DEEP_BINANCE = 100  # GET /fapi/v1/depth weight 5 (20 at 1000): deep enough for any size the capital allows


class MarketData:
    def __init__(self, engine: "KimpEngine", depth: int = 15) -> None:
        self.e = engine
        self.depth = depth
        self._books: dict[tuple[str, str], tuple[float, OrderBook]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[OrderBook]] = {}

    async def book(self, exchange: str, symbol: str, max_age: float = 1.0) -> OrderBook:
        key = (exchange, symbol)
        hit = self._books.get(key)
        now = time.monotonic()
        if hit is not None and max_age > 0 and now - hit[0] <= max_age:
            return hit[1]
        task = self._inflight.get(key)
        if task is None or (max_age <= 0 and task.done()):
            task = asyncio.ensure_future(self._fetch(exchange, symbol))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None) if self._inflight.get(k) is _t else None)
        return await asyncio.shield(task)

    async def _fetch(self, exchange: str, symbol: str, depth: int | None = None) -> OrderBook:
        started = time.monotonic()
        breaker = self.e.breakers[exchange]
        try:
            book = await self.e.adapter(exchange).get_order_book(symbol, depth=depth or self.depth)
        except AdapterError as err:
            # Market data failures say as much about an exchange's health as order calls.
            if err.infrastructure:
                breaker.record_failure(f"market data: {type(err).__name__}")
            raise
        breaker.record_success()
        self._books[(exchange, symbol)] = (started, book)
        return book

    def fresh(self, exchange: str, symbol: str, max_age: float) -> OrderBook | None:
        """The cached book if it is at most ``max_age`` seconds old (no await)."""
        hit = self._books.get((exchange, symbol))
        if hit is not None and max_age > 0 and time.monotonic() - hit[0] <= max_age:
            return hit[1]
        return None

    def fresh_pair(self, coin: str, max_age: float) -> tuple[OrderBook, OrderBook] | None:
        """Both books of ``coin`` if both are cached and at most ``max_age`` seconds old
        (no await: the order path's usual case), else None: use :meth:`pair`."""
        if max_age <= 0:
            return None
        books = self._books
        ub = books.get(("upbit", self.e.spot_symbol(coin)))
        bb = books.get(("binance", self.e.perp_symbol(coin)))
        if ub is None or bb is None:
            return None
        now = time.monotonic()
        if now - ub[0] > max_age or now - bb[0] > max_age:
            return None
        return ub[1], bb[1]

    async def pair(self, coin: str, max_age: float) -> tuple[OrderBook, OrderBook]:
        # Fast path: both cached and fresh — no tasks, no scheduling on the order path.
        books = self.fresh_pair(coin, max_age)
        if books is not None:
            return books
        spot, perp = self.e.spot_symbol(coin), self.e.perp_symbol(coin)
        return await asyncio.gather(self.book("upbit", spot, max_age), self.book("binance", perp, max_age))

    async def deep_pair(self, coin: str) -> tuple[OrderBook, OrderBook]:
        """Both books of ``coin`` as deep as the venues show them to everyone (Upbit 30
        levels, Binance ``DEEP_BINANCE``), fetched now: for a size the usual depth cannot
        fill (a large EXIT). The cache keeps them (a deeper book is as current)."""
        spot, perp = self.e.spot_symbol(coin), self.e.perp_symbol(coin)
        return await asyncio.gather(self._fetch("upbit", spot, DEEP_UPBIT), self._fetch("binance", perp, DEEP_BINANCE))

    async def fx(self, max_age: float = 5.0) -> Decimal:
        """KRW per USDT from the configured source (default: Upbit KRW-USDT mid)."""
        source = self.e.fx_symbol
        book = self.fresh("upbit", source, max_age) or await self.book("upbit", source, max_age)
        m = mid(book)
        if m is None or m <= 0:
            raise RuntimeError(f"no FX quote: the {source} book is empty")
        return m

    def fresh_fx(self, max_age: float) -> Decimal | None:
        """:meth:`fx` from a cached book at most ``max_age`` seconds old (no await), or
        None when that needs a fetch or the book gives no quote (:meth:`fx` says why)."""
        book = self.fresh("upbit", self.e.fx_symbol, max_age)
        m = mid(book) if book is not None else None
        return m if m is not None and m > 0 else None

    def cached(self, exchange: str, symbol: str) -> tuple[float, OrderBook] | None:
        return self._books.get((exchange, symbol))


class Reservation:
    __slots__ = ("krw", "usdt", "released")

    def __init__(self, krw: Decimal, usdt: Decimal) -> None:
        self.krw = krw
        self.usdt = usdt
        self.released = False


class Capital:
    """Free balances and the reservations of signals in flight (SPEC §4.3 step 4)."""

    def __init__(self, engine: "KimpEngine") -> None:
        self.e = engine
        self.krw_free = ZERO
        self.usdt_available = ZERO
        self.reserved_krw = ZERO
        self.reserved_usdt = ZERO
        self.updated = 0.0
        self._refresh: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        balances, margin = await asyncio.gather(
            self.e.upbit.get_balances(), self.e.binance.get_available_margin()
        )
        krw = balances.get("KRW")
        self.krw_free = krw.free if krw is not None else ZERO
        self.usdt_available = margin
        self.updated = time.monotonic()

    def refresh_soon(self) -> None:
        """Start a background refresh; the next ``ready()`` waits for it."""
        if self._refresh is not None and not self._refresh.done():
            return
        self._refresh = asyncio.ensure_future(self.refresh())
        self._refresh.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        # A clean refresh is forgotten here, off the order path, so that current() is one
        # attribute test. A failure stays for ready() to re-raise; retrieving it here too
        # means an engine closed before the next signal never logs "exception was never
        # retrieved".
        if task.cancelled() or task.exception() is not None:
            return
        if self._refresh is task:
            self._refresh = None

    def cancel(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None

    def current(self) -> bool:
        """True when :meth:`ready` has nothing to wait for or retry: no refresh in flight
        and none failed (a clean one is forgotten when it finishes)."""
        return self._refresh is None

    async def ready(self) -> None:
        task = self._refresh
        if task is not None:
            self._refresh = None
            try:
                await task
            except Exception:
                # A failed background refresh: try once more in the foreground; if that
                # fails too the error reaches the caller (no sizing on unknown balances).
                await self.refresh()

    def reserve(self, krw: Decimal, usdt: Decimal) -> Reservation:
        """Atomically (no await inside) take capital for one signal."""
        self.reserved_krw += krw
        self.reserved_usdt += usdt
        return Reservation(krw, usdt)

    def release(self, r: Reservation) -> None:
        if r.released:
            return
        r.released = True
        self.reserved_krw -= r.krw
        self.reserved_usdt -= r.usdt

    def snapshot(self) -> dict[str, str]:
        return {
            "krw_free": str(self.krw_free),
            "usdt_available": str(self.usdt_available),
            "reserved_krw": str(self.reserved_krw),
            "reserved_usdt": str(self.reserved_usdt),
        }
