"""Two clocks: the wall clock (timestamps on the wire stay real, so clients' clock sync and
Binance's recvWindow behave as in production) and a scaled *simulation* clock that only
drives the funding schedule, so paper mode can see an 8-hour funding cycle in minutes."""

from __future__ import annotations

import time

__all__ = ["SimClock"]


class SimClock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self._scale = float(time_scale)
        self._mono0 = time.monotonic()
        self._sim0 = time.time()
        self._wall0 = self._sim0  # wall time at _mono0: anchors make wall_at_sim() stable

    @staticmethod
    def wall() -> float:
        """Real epoch seconds."""
        return time.time()

    @staticmethod
    def wall_ms() -> int:
        return int(time.time() * 1000)

    @staticmethod
    def mono() -> float:
        return time.monotonic()

    @property
    def time_scale(self) -> float:
        return self._scale

    def sim(self) -> float:
        """Simulation epoch seconds (starts at the real time, runs ``time_scale`` times faster)."""
        return self._sim0 + (time.monotonic() - self._mono0) * self._scale

    def set_time_scale(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("time_scale must be > 0")
        now = time.monotonic()
        self._sim0 = self._sim0 + (now - self._mono0) * self._scale
        self._wall0 = self._wall0 + (now - self._mono0)
        self._mono0 = now
        self._scale = float(scale)

    def advance(self, seconds: float) -> None:
        """Jump the simulation clock forward (funding falls due as if the time had passed)."""
        if seconds < 0:
            raise ValueError("the simulation clock only moves forward")
        self._sim0 += seconds

    def wall_at_sim(self, sim_t: float) -> float:
        """Real epoch seconds at which the simulation clock will read ``sim_t``.

        Computed from the fixed anchors only (no clock read), so two calls give the same
        instant — e.g. ``nextFundingTime`` does not jitter by a millisecond between calls."""
        return self._wall0 + (sim_t - self._sim0) / self._scale
