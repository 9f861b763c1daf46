"""A small client for the simulator's control API (``/_sim/...``, CONTRACT §4).

Paper mode drives the market and injects faults through the same HTTP control API a test
or an operator would use, and reads the simulator's ledger — the exchanges' own view,
independent of the engine's — to check the invariants at the end.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp

__all__ = ["SimControl", "Quote"]


class Quote:
    """Top of book of the three markets the premium is computed from.

    * ``enter_premium``: what an ENTER pays — buy Upbit at the ask, short Binance at the bid;
    * ``exit_premium``: what an EXIT gets — sell Upbit at the bid, buy Binance back at the ask;
    * ``mid_premium``: from the mids (information only).

    FX is the KRW-USDT mid, the engine's default ``fx_source``.
    """

    __slots__ = ("upbit_bid", "upbit_ask", "binance_bid", "binance_ask", "fx")

    def __init__(self, upbit_bid: Decimal, upbit_ask: Decimal, binance_bid: Decimal, binance_ask: Decimal,
                 fx: Decimal) -> None:
        self.upbit_bid = upbit_bid
        self.upbit_ask = upbit_ask
        self.binance_bid = binance_bid
        self.binance_ask = binance_ask
        self.fx = fx

    @classmethod
    def from_top(cls, top: dict[str, Any], coin: str = "BTC") -> Quote:
        u, b, fx = top[f"KRW-{coin}"], top[f"{coin}USDT"], top["KRW-USDT"]
        return cls(
            Decimal(u["bid"]), Decimal(u["ask"]), Decimal(b["bid"]), Decimal(b["ask"]),
            (Decimal(fx["bid"]) + Decimal(fx["ask"])) / 2,
        )

    @property
    def enter_premium(self) -> Decimal:
        return self.upbit_ask / (self.binance_bid * self.fx) - 1

    @property
    def exit_premium(self) -> Decimal:
        return self.upbit_bid / (self.binance_ask * self.fx) - 1

    @property
    def mid_premium(self) -> Decimal:
        return ((self.upbit_bid + self.upbit_ask) / 2) / ((self.binance_bid + self.binance_ask) / 2 * self.fx) - 1


class SimControlError(RuntimeError):
    pass


class SimControl:
    """``async with SimControl(url) as ctl``: ledger, market, faults, clock."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SimControl:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None, "SimControl used outside 'async with'"
        async with self._session.request(method, f"{self.url}/_sim/{path}", json=body) as r:
            data = await r.json(content_type=None)
            if r.status >= 300:
                raise SimControlError(f"{method} /_sim/{path}: {r.status} {data}")
            return data

    async def ledger(self) -> dict[str, Any]:
        return await self._call("GET", "ledger")

    async def market(self, **changes: Any) -> dict[str, Any]:
        return await self._call("POST", "market", changes)

    async def top(self) -> dict[str, Any]:
        return (await self._call("GET", "market"))["top"]

    async def quote(self, coin: str = "BTC") -> Quote:
        return Quote.from_top(await self.top(), coin)

    async def fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("POST", "faults", spec))["fault"]

    async def faults(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "faults"))["faults"]

    async def fault_history(self) -> list[dict[str, Any]]:
        """Faults that fired: ``{"fault": id, "kind", "method", "path"}`` per hit."""
        return (await self._call("GET", "faults")).get("history", [])

    async def clear_faults(self) -> None:
        await self._call("DELETE", "faults")

    async def clock(self) -> dict[str, Any]:
        return await self._call("GET", "clock")
