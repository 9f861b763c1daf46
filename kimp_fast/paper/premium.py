"""The synthetic premium stream of paper mode: a seeded, mean-reverting process.

The kimchi premium is modelled as an Ornstein–Uhlenbeck process around ``mean`` with
stationary standard deviation ``stdev`` and reversion time ``reversion_s``. It is stepped
exactly (no discretisation error) on a fixed grid of ``interval_s``, drawing from one
seeded RNG, so a seed reproduces the same path step by step. The driver pushes each value
to the simulator with ``POST /_sim/market {"premium": p}``; the simulator then builds its
Upbit KRW-BTC book from it (Upbit mid = Binance mid × KRW-USDT mid × (1 + p)) while BTC and
USDT/KRW keep following the simulator's own seeded random walks.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable

from .simctl import SimControl

__all__ = ["PremiumProcess", "PremiumDriver"]


class PremiumProcess:
    """Seeded OU process: ``p(t+dt) = mean + (p(t) − mean)·e^(−dt/τ) + stdev·√(1 − e^(−2dt/τ))·N(0,1)``."""

    def __init__(self, *, mean: float, stdev: float, reversion_s: float, seed: int,
                 start: float | None = None) -> None:
        if stdev < 0 or reversion_s <= 0:
            raise ValueError("stdev must be >= 0 and reversion_s > 0")
        self.mean = mean
        self.stdev = stdev
        self.reversion_s = reversion_s
        self._rng = random.Random(seed * 104_729 + 7)
        self.value = mean if start is None else start
        self.steps = 0

    def step(self, dt: float) -> float:
        decay = math.exp(-dt / self.reversion_s)
        noise = self.stdev * math.sqrt(1.0 - decay * decay)
        self.value = self.mean + (self.value - self.mean) * decay + noise * self._rng.gauss(0.0, 1.0)
        self.steps += 1
        return self.value


class PremiumDriver:
    """Steps a :class:`PremiumProcess` every ``interval_s`` and moves the simulator's market."""

    def __init__(self, process: PremiumProcess, control: SimControl, *, interval_s: float = 0.2,
                 history: int = 120, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.process = process
        self.control = control
        self.interval_s = interval_s
        self.history: deque[float] = deque(maxlen=history)
        self._task: asyncio.Task[None] | None = None
        self._on_error = on_error
        self.errors = 0

    async def start(self) -> None:
        await self.control.market(premium=round(self.process.value, 6))
        self.history.append(self.process.value)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            p = self.process.step(self.interval_s)
            try:
                await self.control.market(premium=round(p, 6))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the simulator is in-process; count, never die silently
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(exc)
            self.history.append(p)
