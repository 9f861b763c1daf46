"""A small async client of the simulator's control API (``/_sim/…``, CONTRACT §4)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp

__all__ = ["SimControl"]


class SimControl:
    """Ledger, faults and market of a running simulator, over HTTP.

    Faults added through :meth:`fault` are remembered so :meth:`fault_hits` can tell how
    many of each kind actually fired (a fault that matched no request did not).
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._added: dict[int, tuple[str, int | None]] = {}  # fault id -> (kind, count)
        self.fired: Counter[str] = Counter()
        self.scheduled: Counter[str] = Counter()

    async def __aenter__(self) -> "SimControl":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        assert self._session is not None, "use 'async with SimControl(url)'"
        async with self._session.request(method, f"{self.url}/_sim/{path}", json=json) as r:
            data = await r.json(content_type=None)
            if r.status >= 300:
                raise RuntimeError(f"simulator {method} /_sim/{path}: HTTP {r.status} {data}")
            return data

    async def ledger(self, since: int = 0) -> dict[str, Any]:
        return await self._call("GET", f"ledger?since={since}" if since else "ledger")

    async def market(self, **spec: Any) -> dict[str, Any]:
        return await self._call("POST", "market", spec)

    async def config(self, **spec: Any) -> dict[str, Any]:
        return await self._call("POST", "config", spec)

    async def balances(self, **spec: Any) -> dict[str, Any]:
        return await self._call("POST", "balances", spec)

    async def requests(self, **filters: Any) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        return (await self._call("GET", "requests" + (f"?{query}" if query else "")))["requests"]

    # -- faults -----------------------------------------------------------------------
    async def fault(self, **spec: Any) -> int:
        data = await self._call("POST", "faults", spec)
        fid = int(data["fault"]["id"])
        self._added[fid] = (spec["kind"], data["fault"]["count"])
        self.scheduled[spec["kind"]] += 1
        return fid

    async def settle_faults(self, clear: bool = True) -> Counter[str]:
        """Count the hits of every fault added so far (and clear what is left).

        A fault still active reports its ``hits``; one that is gone used up its whole
        ``count``. Returns the hits counted by this call."""
        active = {f["id"]: f for f in (await self._call("GET", "faults"))["faults"]}
        now: Counter[str] = Counter()
        for fid, (kind, count) in list(self._added.items()):
            f = active.get(fid)
            if f is not None:
                if not clear:
                    continue
                hits = int(f["hits"])
            else:
                hits = int(count or 0)
            if hits:
                now[kind] += hits
            del self._added[fid]
        if clear:
            await self._call("DELETE", "faults")
        self.fired.update(now)
        return now
