"""The exchange simulator in its own process, and a small client for its control API.

The probe never runs the simulator in the engine's event loop: the simulator's own CPU
time would then interleave with the engine's and show up as engine overhead. In its own
process (on uvloop, like ``kimp-fast sim``) it behaves like a remote exchange whose
service time is part of the network round trip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import aiohttp

__all__ = ["OPEN_LIMITS", "SimControl", "SimProcess", "wide_limiter"]

#: Upbit request budget per group and second used with :data:`OPEN_LIMITS` (client and
#: simulator must agree: ``Remaining-Req`` reports what is *left*, and the client's
#: limiter counts its own capacity minus that as already spent)
UPBIT_OPEN_PER_S = 10_000
#: simulator limits wide enough that nothing a probe or benchmark does is throttled
OPEN_LIMITS: dict[str, float | int] = {
    "upbit_order_per_s": float(UPBIT_OPEN_PER_S),
    "upbit_default_per_s": float(UPBIT_OPEN_PER_S),
    "upbit_quotation_per_s": float(UPBIT_OPEN_PER_S),
    "binance_weight_per_min": 10_000_000,
    "binance_orders_per_10s": 1_000_000,
    "binance_orders_per_min": 1_000_000,
}


def wide_limiter(exchange: str) -> Any:
    """A ``RateLimiter`` matching :data:`OPEN_LIMITS`: the limiter's code runs on every
    request, but no request ever waits for a budget."""
    from kimp_fast.ratelimit import BINANCE_BUCKETS, UPBIT_BUCKETS, RateLimiter

    if exchange == "upbit":
        return RateLimiter("upbit", buckets={name: (UPBIT_OPEN_PER_S, per) for name, (_c, per) in UPBIT_BUCKETS.items()})
    return RateLimiter("binance", buckets={name: (cap * 10_000, per) for name, (cap, per) in BINANCE_BUCKETS.items()})


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the simulator when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class SimProcess:
    """``kimp-fast sim`` as a child process (``with SimProcess(...) as sim: sim.url``).

    Parameters
    ----------
    upbit_delay_ms, binance_delay_ms
        Delay the simulator adds before every response of that exchange.
    upbit_answer_pending
        Upbit answers ``POST /v1/orders`` with the order as accepted (``state: "wait"``),
        as the real venue does, so the adapter's follow-up ``GET /v1/order`` runs.
    seed
        Seed of the price process (prices are frozen: volatility 0).
    """

    def __init__(self, *, upbit_delay_ms: float = 0.0, binance_delay_ms: float = 0.0, seed: int = 1,
                 upbit_answer_pending: bool = False, start_timeout_s: float = 30.0) -> None:
        self.args = [
            sys.executable, "-m", "kimp_fast", "sim", "--port", "0", "--seed", str(seed),
            "--volatility", "0", "--premium-volatility", "0",
            "--upbit-delay-ms", str(upbit_delay_ms), "--binance-delay-ms", str(binance_delay_ms),
        ]
        if upbit_answer_pending:
            self.args.append("--upbit-answer-pending")
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def environ(self) -> dict[str, str]:
        """The simulator's keys under the env names the probe's engine config reads."""
        u, b = self.info["upbit"], self.info["binance"]
        return {
            "PROBE_UPBIT_ACCESS": u["access_key"],
            "PROBE_UPBIT_SECRET": u["secret_key"],
            "PROBE_BINANCE_KEY": b["api_key"],
            "PROBE_BINANCE_SECRET": b["secret_key"],
        }

    def start(self) -> "SimProcess":
        env = dict(os.environ)
        env.pop("KIMP_FAST_NO_EXTENSIONS", None)  # the exchange side is the same for every variant
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=None, text=True, env=env, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        assert self.proc.stdout is not None
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(self.start_timeout_s)
        sel.close()
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError(f"the simulator did not start within {self.start_timeout_s}s")
        self.info = json.loads(line)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> "SimProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimControl:
    """The simulator's ``/_sim/`` control API (delays, stats, request log, ledger)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "SimControl":
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None, "use 'async with SimControl(url)'"
        async with self._session.request(method, f"{self.url}/_sim/{path}", json=body) as r:
            if r.status >= 300:
                raise RuntimeError(f"simulator control {method} {path}: HTTP {r.status} {await r.text()}")
            return await r.json()

    async def set_delays(self, upbit_ms: float, binance_ms: float) -> None:
        await self.configure(upbit_delay_ms=upbit_ms, binance_delay_ms=binance_ms)

    async def configure(self, **settings: Any) -> dict[str, Any]:
        """``POST /_sim/config`` (delays, limits, fees, ...); returns the new configuration."""
        return await self._call("POST", "config", settings)

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "stats")

    async def clear_stats(self) -> None:
        await self._call("DELETE", "stats")

    async def requests(self, limit: int = 10_000) -> list[dict[str, Any]]:
        return (await self._call("GET", f"requests?limit={limit}"))["requests"]

    async def ledger(self) -> dict[str, Any]:
        return await self._call("GET", "ledger")
