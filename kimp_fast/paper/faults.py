"""The fault mix of ``kimp-fast paper --faults``: realistic exchange failures, one per
signal, so every recovery path of the engine shows up in a short run.

Each case is posted to the simulator's ``POST /_sim/faults`` right before the signal is
submitted and matches only the order-placement endpoint, so it hits that signal's leg.
The first signal of a run is left clean (a baseline); after that the cases applicable to
the signal's action are used in turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultCase", "FaultSchedule", "FAULT_CASES"]

_UPBIT_ORDER = {"exchange": "upbit", "method": "POST", "path": "/v1/orders"}
_BINANCE_ORDER = {"exchange": "binance", "method": "POST", "path": "/fapi/v1/order"}


@dataclass(frozen=True)
class FaultCase:
    name: str
    action: str  # the signal action it is meant for: "ENTER" or "EXIT"
    spec: dict[str, Any]
    expect: str  # what the engine should do about it (shown in the report)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "spec": self.spec, "expect": self.expect}


def _case(name: str, action: str, target: dict[str, Any], expect: str, **spec: Any) -> FaultCase:
    return FaultCase(name, action, {**target, **spec}, expect)


FAULT_CASES: tuple[FaultCase, ...] = (
    _case("binance partial fill 40%", "ENTER", _BINANCE_ORDER,
          "short the missing 60% (retry) -> recovered", kind="partial_fill", fraction=0.4),
    _case("upbit connection dropped after the order was placed", "EXIT", _UPBIT_ORDER,
          "look the sell up by client id, find it filled, never resend -> filled", kind="drop_after"),
    _case("binance rejects the short 4x (-2019 margin insufficient)", "ENTER", _BINANCE_ORDER,
          "3 retries fail -> emergency hedge: sell the Upbit leg back -> unwound",
          kind="reject", code=-2019, msg="Margin is insufficient.", count=4),
    _case("upbit HTTP 500, order not executed", "EXIT", _UPBIT_ORDER,
          "prove the sell absent, retry it with a new client id -> recovered", kind="http_500"),
    _case("binance 503 unknown error, order executed", "ENTER", _BINANCE_ORDER,
          "look the short up by client id, find it filled -> filled", kind="unknown_503", executed=True),
    _case("binance partial fill 50% on the close", "EXIT", _BINANCE_ORDER,
          "buy back the rest of the short (retry) -> recovered", kind="partial_fill", fraction=0.5),
    _case("upbit 429 rate limit on the buy", "ENTER", _UPBIT_ORDER,
          "back off, retry the buy with a new client id -> recovered", kind="rate_limit_429", seconds=1),
    _case("binance connection dropped after the close was placed", "EXIT", _BINANCE_ORDER,
          "look the close up by client id, find it filled -> filled", kind="drop_after"),
    _case("upbit partial fill 50% on the buy", "ENTER", _UPBIT_ORDER,
          "buy the missing half (retry) -> recovered", kind="partial_fill", fraction=0.5),
)


@dataclass
class FaultSchedule:
    """Hands out the next applicable :data:`FAULT_CASES` entry per signal."""

    cases: tuple[FaultCase, ...] = FAULT_CASES
    skip_first: int = 1
    _seen: int = 0
    _next: dict[str, int] = field(default_factory=lambda: {"ENTER": 0, "EXIT": 0})

    def next_for(self, action: str) -> FaultCase | None:
        self._seen += 1
        if self._seen <= self.skip_first:
            return None
        mine = [c for c in self.cases if c.action == action]
        if not mine:
            return None
        i = self._next[action]
        self._next[action] = i + 1
        return mine[i % len(mine)]

    def give_back(self, action: str) -> None:
        """The case handed out last for ``action`` never fired (no order was sent): use it
        for the next signal of that action instead."""
        if self._next[action] > 0:
            self._next[action] -= 1
