"""The synthetic market: a seeded price process and the three order books built from it.

* BTC (Binance ``BTCUSDT`` mid) follows a geometric random walk with annualised
  ``volatility``; USDT/KRW (Upbit ``KRW-USDT``) one with ``fx_volatility``; the kimchi
  premium is an Ornstein-Uhlenbeck process around its target. Upbit ``KRW-BTC`` mid =
  BTC × USDT/KRW × (1 + premium). The process steps on a fixed grid of ``step_ms`` of real
  time, drawing from one seeded RNG, so a seed and the same request timing reproduce a
  path exactly, and ``volatility = 0`` freezes everything.
* Each book has levels every ``level_step_bps`` (at least one tick) with seeded per-level
  sizes around ``depth / 30``. Takers walk the book (VWAP fills); what they take is
  removed from the top of that side and comes back with time constant ``replenish_s``.
* Prices and sizes are integers internally (price in units of ``price_unit``, size in
  ``size_unit``), so building and walking books is cheap and exact; they become Decimals
  only at the boundary.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any, Iterator, Mapping, NamedTuple

from .clock import SimClock
from .config import MarketParams
from .decimals import krw_tick, plain

__all__ = ["Market", "SymbolSpec", "SPECS", "UPBIT_MARKETS", "BINANCE_SYMBOLS"]

_YEAR_S = 365.0 * 24 * 3600
#: visible levels per book side
UPBIT_LEVELS = 30


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    exchange: str
    base: str
    quote: str
    price_unit: Decimal
    size_unit: Decimal
    levels: int  # levels generated per side (more than shown, so depletion never empties it)


SPECS: dict[str, SymbolSpec] = {
    "KRW-BTC": SymbolSpec("KRW-BTC", "upbit", "BTC", "KRW", Decimal(1), Decimal("1e-8"), 60),
    "KRW-USDT": SymbolSpec("KRW-USDT", "upbit", "USDT", "KRW", Decimal(1), Decimal("1e-8"), 60),
    "BTCUSDT": SymbolSpec("BTCUSDT", "binance", "BTC", "USDT", Decimal("0.1"), Decimal("0.001"), 1000),
}
UPBIT_MARKETS = ("KRW-BTC", "KRW-USDT")
BINANCE_SYMBOLS = ("BTCUSDT",)

Level = tuple[int, int]  # (price units, size units)


class _Shape(NamedTuple):
    version: int
    bid0: int  # best bid, price units
    ask0: int
    step: int  # distance between levels, price units
    per_level: float  # mean size per level, size units


def _unit_formatter(exp: int, places: int):  # noqa: ANN202
    """``n`` units of 10**-exp → a string with ``places`` decimals (places >= exp)."""
    scale = 10**exp
    pad = "0" * (places - exp)
    if exp == 0:
        tail = "." + pad if places else ""
        return lambda n: f"{n}{tail}"
    return lambda n: f"{n // scale}.{n % scale:0{exp}d}{pad}"


class Market:
    """Order books for KRW-BTC, KRW-USDT and BTCUSDT driven by one seeded process."""

    def __init__(self, params: MarketParams, seed: int, clock: SimClock) -> None:
        self.params = params
        self.clock = clock
        self._rng = random.Random(seed)
        size_rng = random.Random(seed * 7919 + 17)
        self._jitter = {
            (sym, side): [0.5 + size_rng.random() for _ in range(spec.levels)]
            for sym, spec in SPECS.items()
            for side in ("bid", "ask")
        }
        self.btc = float(params.binance_mid)
        self.fx = float(params.usdt_krw)
        self.prem = float(params.premium)
        self._t0 = clock.mono()
        self._k = 0
        self.version = 0
        self._shapes: dict[str, _Shape] = {}
        # consumed liquidity per (symbol, side-of-book): [units, mono time of last update]
        self._depl: dict[tuple[str, str], list[float]] = {}

    # ------------------------------------------------------------------ process
    def advance(self) -> bool:
        """Step the process up to now; True if prices moved."""
        p = self.params
        dt = p.step_ms / 1000.0
        k = int((self.clock.mono() - self._t0) / dt)
        n = k - self._k
        if n <= 0:
            return False
        self._k = k
        if p.volatility <= 0:
            return False  # frozen
        if n > 600:  # a long idle gap: one exact aggregated step instead of thousands
            self._step(n * dt)
        else:
            for _ in range(n):
                self._step(dt)
        self.version += 1
        return True

    def _step(self, dt: float) -> None:
        p = self.params
        g = self._rng.gauss
        s = p.volatility * math.sqrt(dt / _YEAR_S)
        self.btc *= math.exp(s * g(0.0, 1.0) - 0.5 * s * s)
        if p.fx_volatility > 0:
            sf = p.fx_volatility * math.sqrt(dt / _YEAR_S)
            self.fx *= math.exp(sf * g(0.0, 1.0) - 0.5 * sf * sf)
        tau = max(p.premium_reversion_s, 1e-6)
        decay = math.exp(-dt / tau)
        noise = p.premium_volatility * math.sqrt(tau / 2.0 * (1.0 - decay * decay)) if p.premium_volatility > 0 else 0.0
        self.prem = p.premium + (self.prem - p.premium) * decay + (noise * g(0.0, 1.0) if noise else 0.0)

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Move the market at once (``POST /_sim/market``); returns the new top of book."""
        self.advance()
        known = {"premium", "binance_mid", "usdt_krw", "spread_bps", "depth_btc", "depth_usdt", "volatility",
                 "fx_volatility", "premium_volatility", "premium_reversion_s", "level_step_bps",
                 "replenish_s", "funding_rate"}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown market parameter(s): {', '.join(sorted(unknown))}")
        for key, value in changes.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"{key}: expected a number")
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"{key}: expected a finite number")
            if key in ("binance_mid", "usdt_krw", "depth_btc", "depth_usdt") and v <= 0:
                raise ValueError(f"{key}: must be > 0")
            if key in ("spread_bps", "volatility", "fx_volatility", "premium_volatility", "replenish_s",
                       "level_step_bps") and v < 0:
                raise ValueError(f"{key}: must be >= 0")
            if key == "usdt_krw" and v < 100:
                raise ValueError("usdt_krw: must be >= 100 (KRW tick table)")
            if key == "premium" and v <= -0.5:
                raise ValueError("premium: must be > -0.5")
        self.params.update({k: float(v) for k, v in changes.items()})
        if "binance_mid" in changes:
            self.btc = float(changes["binance_mid"])
        if "usdt_krw" in changes:
            self.fx = float(changes["usdt_krw"])
        if "premium" in changes:
            self.prem = float(changes["premium"])
        self.version += 1
        return self.top()

    # ------------------------------------------------------------------ books
    def _mid(self, symbol: str) -> float:
        if symbol == "BTCUSDT":
            return self.btc
        if symbol == "KRW-USDT":
            return self.fx
        # Priced off the KRW-USDT *book* mid (not the raw process value), so the premium a
        # client computes from the three books is the configured one to within a tick.
        usdt = self._shape("KRW-USDT")
        usdt_mid = (usdt.bid0 + usdt.ask0) / 2.0 * float(SPECS["KRW-USDT"].price_unit)
        return self.btc * usdt_mid * (1.0 + self.prem)

    def tick_units(self, symbol: str) -> int:
        spec = SPECS[symbol]
        if spec.exchange == "upbit":
            return max(1, int(krw_tick(Decimal(int(self._mid(symbol)))) / spec.price_unit))
        return 1

    def _shape(self, symbol: str) -> _Shape:
        """Where the levels are (cached per market version); levels themselves are
        generated on demand, so a deep book costs only what a request reads of it."""
        cached = self._shapes.get(symbol)
        if cached is not None and cached.version == self.version:
            return cached
        p = self.params
        spec = SPECS[symbol]
        mid_u = self._mid(symbol) / float(spec.price_unit)
        tick = self.tick_units(symbol)
        spread = max(tick, round(mid_u * p.spread_bps / 1e4 / tick) * tick)
        bid0 = math.floor((mid_u - spread / 2.0) / tick) * tick
        step = max(tick, round(mid_u * p.level_step_bps / 1e4 / tick) * tick)
        depth = p.depth_usdt if spec.base == "USDT" else p.depth_btc
        per_level = depth / UPBIT_LEVELS / float(spec.size_unit)
        shape = _Shape(self.version, bid0, bid0 + spread, step, per_level)
        self._shapes[symbol] = shape
        return shape

    def _depletion(self, symbol: str, side: str) -> int:
        d = self._depl.get((symbol, side))
        if d is None or d[0] < 1:
            return 0
        tau = self.params.replenish_s
        if tau <= 0:
            d[0] = 0.0
            return 0
        now = self.clock.mono()
        d[0] *= math.exp(-(now - d[1]) / tau)
        d[1] = now
        return int(d[0])

    def _side(self, symbol: str, book_side: str) -> Iterator[Level]:
        """Levels of one side ("bid"/"ask"), best first, net of consumed liquidity."""
        shape = self._shape(symbol)
        jitter = self._jitter[(symbol, book_side)]
        per_level = shape.per_level
        consumed = self._depletion(symbol, book_side)
        if book_side == "ask":
            price, step = shape.ask0, shape.step
        else:
            price, step = shape.bid0, -shape.step
        for j in jitter:
            if price <= 0:
                return
            size = int(per_level * j) or 1
            if consumed:
                if size <= consumed:
                    consumed -= size
                    price += step
                    continue
                size -= consumed
                consumed = 0
            yield price, size
            price += step

    def levels(self, symbol: str, depth: int = UPBIT_LEVELS) -> tuple[list[Level], list[Level]]:
        """Top ``depth`` (bids, asks) in integer units, best first, after consumed liquidity."""
        self.advance()
        return (list(islice(self._side(symbol, "bid"), depth)), list(islice(self._side(symbol, "ask"), depth)))

    def best(self, symbol: str) -> tuple[Decimal, Decimal]:
        bids, asks = self.levels(symbol, 1)
        u = SPECS[symbol].price_unit
        return Decimal(bids[0][0]) * u, Decimal(asks[0][0]) * u

    def mid(self, symbol: str) -> Decimal:
        bid, ask = self.best(symbol)
        return (bid + ask) / 2

    def mark_price(self, symbol: str = "BTCUSDT") -> Decimal:
        """Binance mark price: the process mid (independent of our own consumption)."""
        self.advance()
        shape = self._shape(symbol)
        u = SPECS[symbol].price_unit
        return (Decimal(shape.bid0 + shape.ask0) * u / 2).quantize(Decimal("0.00000001"))

    def book_decimal(self, symbol: str, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        spec = SPECS[symbol]
        bids, asks = self.levels(symbol, depth)
        pu, su = spec.price_unit, spec.size_unit
        return (
            [(Decimal(p) * pu, Decimal(s) * su) for p, s in bids],
            [(Decimal(p) * pu, Decimal(s) * su) for p, s in asks],
        )

    def book_strings(self, symbol: str, depth: int, price_places: int, size_places: int) -> tuple[list[list[str]], list[list[str]]]:
        """Top ``depth`` levels as fixed-decimal strings, formatted straight from the integer
        units (the depth endpoints are polled often; Decimal formatting is the slow part)."""
        spec = SPECS[symbol]
        pe = -spec.price_unit.as_tuple().exponent  # type: ignore[operator]
        se = -spec.size_unit.as_tuple().exponent  # type: ignore[operator]
        bids, asks = self.levels(symbol, depth)
        fp = _unit_formatter(pe, price_places)
        fs = _unit_formatter(se, size_places)
        return [[fp(p), fs(q)] for p, q in bids], [[fp(p), fs(q)] for p, q in asks]

    def premium(self) -> Decimal:
        """Premium from the book mids (what a client would compute)."""
        return self.mid("KRW-BTC") / (self.mid("BTCUSDT") * self.mid("KRW-USDT")) - 1

    def top(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sym in SPECS:
            bid, ask = self.best(sym)
            out[sym] = {"bid": plain(bid), "ask": plain(ask)}
        out["premium"] = format(self.premium().quantize(Decimal("1e-8")), "f")
        out["mark_price"] = plain(self.mark_price())
        return out

    # ------------------------------------------------------------------ taking
    def take(
        self,
        symbol: str,
        side: str,
        *,
        qty: Decimal | None = None,
        funds: Decimal | None = None,
        limit: Decimal | None = None,
        max_levels: int | None = None,
        top_only: bool = False,
        dry_run: bool = False,
    ) -> list[tuple[Decimal, Decimal]]:
        """Walk the book as a taker on ``side`` ("buy" takes asks) and return the fills.

        Exactly one of ``qty`` (base amount) or ``funds`` (quote to spend) is given.
        ``limit`` stops at worse prices; ``top_only`` takes only the best level.
        Consumed liquidity is removed unless ``dry_run``.
        """
        spec = SPECS[symbol]
        self.advance()
        book = self._side(symbol, "ask" if side == "buy" else "bid")
        pu, su = spec.price_unit, spec.size_unit
        limit_u = None if limit is None else limit / pu
        want_u = None if qty is None else int(qty / su)
        remaining_funds = funds
        fills_u: list[Level] = []
        taken = 0
        for i, (price_u, size_u) in enumerate(book):
            if (max_levels is not None and i >= max_levels) or (top_only and i > 0):
                break
            if limit_u is not None and (price_u > limit_u if side == "buy" else price_u < limit_u):
                break
            if want_u is not None:
                n = min(size_u, want_u - taken)
            else:
                assert remaining_funds is not None
                n = min(size_u, int(remaining_funds / (Decimal(price_u) * pu * su)))
                if n > 0:
                    remaining_funds -= Decimal(price_u) * pu * Decimal(n) * su
            if n <= 0:
                break
            fills_u.append((price_u, n))
            taken += n
            if want_u is not None and taken >= want_u:
                break
        if taken and not dry_run:
            key = (symbol, "ask" if side == "buy" else "bid")
            d = self._depl.get(key)
            now = self.clock.mono()
            if d is None:
                self._depl[key] = [float(taken), now]
            else:
                d[0] += taken
                d[1] = now
        return [(Decimal(p) * pu, Decimal(n) * su) for p, n in fills_u]

    def visible_totals(self, symbol: str, side: str, levels: int = UPBIT_LEVELS) -> tuple[Decimal, Decimal]:
        """(base, quote) available to a taker on ``side`` within the top ``levels`` levels."""
        spec = SPECS[symbol]
        self.advance()
        qty_u = quote_u = 0
        for price, size in islice(self._side(symbol, "ask" if side == "buy" else "bid"), levels):
            qty_u += size
            quote_u += price * size
        return Decimal(qty_u) * spec.size_unit, Decimal(quote_u) * spec.price_unit * spec.size_unit
