"""Seeded generators: signal sequences and fault schedules for the soak and the torture.

Everything random comes from one :class:`random.Random` seeded by the caller, so a seed
names a sequence of steps (signals, faults, market moves). The *outcome* of a step still
depends on timing (a fault may hit a look-up or an order depending on who asks first);
violations therefore name the seed, the step and the signal ids involved.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .setup import LATE_DELAY_MAX_S

__all__ = ["FAULT_KINDS", "FaultPlanner", "SignalSpec", "Step", "ScenarioGenerator"]

FAULT_KINDS = (
    "delay", "drop_before", "drop_after", "http_500", "unknown_503", "rate_limit_429",
    "ban_418", "reject", "partial_fill", "down", "garbage",
)

ORDER_PATH = {"upbit": "/v1/orders", "binance": "/fapi/v1/order"}
LOOKUP_PATH = {"upbit": "/v1/order", "binance": "/fapi/v1/order"}
# (method, path) a fault may target, per exchange: orders, look-ups/cancels and reads.
TARGETS = {
    "upbit": [("POST", "/v1/orders", 40), ("GET", "/v1/order", 16), ("DELETE", "/v1/order", 4),
              ("GET", "/v1/orderbook", 14), ("GET", "/v1/accounts", 12), (None, None, 14)],
    "binance": [("POST", "/fapi/v1/order", 40), ("GET", "/fapi/v1/order", 16), ("DELETE", "/fapi/v1/order", 4),
                ("GET", "/fapi/v1/depth", 12), ("GET", "/fapi/v3/account", 8), ("GET", "/fapi/v1/income", 4),
                (None, None, 16)],
}
KIND_WEIGHTS = {
    "delay": 12, "drop_before": 8, "drop_after": 10, "http_500": 10, "unknown_503": 10,
    "rate_limit_429": 6, "ban_418": 4, "reject": 12, "partial_fill": 10, "down": 6, "garbage": 10,
}
REJECT_CODES = {
    "binance": [-2019, -2010, -1111, -4164, -2022, -1013],
    "upbit": ["insufficient_funds_bid", "insufficient_funds_ask", "invalid_volume", "under_min_total_bid",
              "validation_error"],
}


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    items, weights = zip(*weighted)
    return rng.choices(items, weights=weights)[0]


@dataclass
class SignalSpec:
    """One signal to submit. ``payload`` is a dict (or bytes/str for raw JSON); its
    ``ts_ms`` is filled in at submission time from ``ts_offset_ms``."""

    kind: str
    payload: Any
    ts_offset_ms: int = 0

    @property
    def signal_id(self) -> str:
        return str(self.payload.get("id", "")) if isinstance(self.payload, dict) else ""

    def materialize(self, now_ms: int) -> Any:
        if isinstance(self.payload, dict):
            p = dict(self.payload)
            if p.get("ts_ms", 0) is None:
                p["ts_ms"] = now_ms + self.ts_offset_ms
            return p
        return self.payload

    @property
    def valid(self) -> bool:
        """Would pass validation (may still be refused by the gate or sizing)."""
        return self.kind in ("enter", "exit", "duplicate", "huge", "tiny", "over_capital")


@dataclass
class Step:
    index: int
    kind: str  # single | burst | halt
    signals: list[SignalSpec]
    faults: list[dict[str, Any]] = field(default_factory=list)
    premium: float = 0.01


class FaultPlanner:
    """Random faults of every simulator kind on both exchanges, orders and reads."""

    def __init__(self, rng: random.Random, *, client_timeout_s: float = 1.0, late_delays: bool = True) -> None:
        self.rng = rng
        self.client_timeout_ms = int(client_timeout_s * 1000)
        self.late_delays = late_delays

    def one(self, kind: str | None = None, exchange: str | None = None) -> dict[str, Any]:
        rng = self.rng
        exchange = exchange or rng.choice(("upbit", "binance"))
        kind = kind or _pick(rng, list(KIND_WEIGHTS.items()))
        method, path = _pick(rng, [((m, p), w) for m, p, w in TARGETS[exchange]])
        if kind == "partial_fill":
            method, path = "POST", ORDER_PATH[exchange]
        spec: dict[str, Any] = {"exchange": exchange, "kind": kind,
                                "count": _pick(rng, [(1, 70), (2, 20), (3, 10)])}
        if method:
            spec["method"] = method
        if path:
            spec["path"] = path
        if kind == "delay":
            if self.late_delays and rng.random() < 0.3:  # beyond the client's timeout
                spec["ms"] = self.client_timeout_ms + rng.randint(100, int(LATE_DELAY_MAX_S * 1000))
            else:
                spec["ms"] = rng.randint(20, max(21, int(self.client_timeout_ms * 0.6)))
            spec["phase"] = rng.choice(("before", "after"))
        elif kind in ("http_500", "unknown_503", "garbage"):
            spec["executed"] = rng.random() < 0.5
        elif kind == "rate_limit_429":
            spec["seconds"] = round(rng.uniform(0.05, 0.4), 2)
        elif kind == "ban_418":
            spec["seconds"] = round(rng.uniform(0.1, 0.6), 2)
            spec["count"] = 1
        elif kind == "partial_fill":
            spec["fraction"] = round(rng.uniform(0.05, 0.95), 3)
        elif kind == "down":
            spec["count"] = rng.randint(1, 6)
        elif kind == "reject":
            if (method, path) == ("GET", LOOKUP_PATH[exchange]) and rng.random() < 0.5:
                # "order not found" right after placement: one look-up is evidence, not proof
                if exchange == "binance":
                    spec.update(code=-2013, msg="Order does not exist.", count=1)
                else:
                    spec.update(name="order_not_found", message="주문을 찾지 못했습니다.", status=404, count=1)
            elif exchange == "binance":
                spec["code"] = rng.choice(REJECT_CODES["binance"])
            else:
                spec["name"] = rng.choice(REJECT_CODES["upbit"])
        return spec

    def some(self, rate: float) -> list[dict[str, Any]]:
        if self.rng.random() >= rate:
            return []
        return [self.one() for _ in range(_pick(self.rng, [(1, 60), (2, 30), (3, 10)]))]


class ScenarioGenerator:
    """Steps of a soak: single signals, concurrent bursts (with duplicates), halts."""

    def __init__(self, seed: int, *, coin: str = "BTC", fault_rate: float = 0.5, client_timeout_s: float = 1.0,
                 late_delays: bool = True, ttl_ms: int = 30_000) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.coin = coin
        self.fault_rate = fault_rate
        self.ttl_ms = ttl_ms
        self.faults = FaultPlanner(self.rng, client_timeout_s=client_timeout_s, late_delays=late_delays)
        self.premium = 0.012
        self._n = 0
        self._step = 0
        self._history: list[SignalSpec] = []
        self._position_qty: float | None = None

    # -- signals ------------------------------------------------------------------------
    def _id(self) -> str:
        self._n += 1
        return f"s{self.seed}-{self._n}"

    def _base(self, action: str, qty: str | None) -> dict[str, Any]:
        p: dict[str, Any] = {"id": self._id(), "action": action, "coin": self.coin, "ts_ms": None,
                             "ttl_ms": self.ttl_ms}
        if qty is not None:
            p["qty"] = qty
        return p

    def _qty(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.75:
            return f"{rng.randint(2, 30) / 1000:.3f}"
        if r < 0.95:
            return f"{rng.randint(2000, 30000) / 1_000_000:.6f}"  # not a lot multiple
        return f"{rng.randint(11, 25) / 1000:.3f}"

    def signal(self, has_position: bool | None = None) -> SignalSpec:
        """One signal; with ``has_position`` known, mostly the action that can execute."""
        rng = self.rng
        enter, exit_ = 38, 37
        if has_position is not None:
            enter, exit_ = (12, 63) if has_position else (63, 12)
        kind = _pick(rng, [("enter", enter), ("exit", exit_), ("duplicate", 6), ("expired", 4), ("future", 2),
                           ("unknown_coin", 2), ("malformed", 5), ("tiny", 2), ("huge", 1), ("over_capital", 1),
                           ("ttl", 2)])
        if kind == "duplicate" and not self._history:
            kind = "enter"
        if kind == "enter":
            spec = SignalSpec(kind, self._base("ENTER", self._qty()))
        elif kind == "exit":
            qty = None
            if rng.random() < 0.3:
                top = self._position_qty or 0.015
                qty = f"{max(0.001, round(top * rng.uniform(0.2, 1.1), 3)):.3f}"  # now and then more than held
            spec = SignalSpec(kind, self._base("EXIT", qty))
        elif kind == "duplicate":
            prev = rng.choice(self._history[-50:])
            return SignalSpec("duplicate", prev.payload, prev.ts_offset_ms)
        elif kind == "expired":
            spec = SignalSpec(kind, self._base(rng.choice(("ENTER", "EXIT")), "0.01"),
                              ts_offset_ms=-(self.ttl_ms + rng.randint(1000, 60_000)))
        elif kind == "future":
            spec = SignalSpec(kind, self._base("ENTER", "0.01"), ts_offset_ms=rng.randint(30_000, 600_000))
        elif kind == "unknown_coin":
            p = self._base("ENTER", "0.01")
            p["coin"] = rng.choice(("ETH", "DOGE", "XRP"))
            spec = SignalSpec(kind, p)
        elif kind == "tiny":
            spec = SignalSpec(kind, self._base("ENTER", "0.0004"))
        elif kind == "huge":
            # legal decimals beyond any single order an exchange accepts (BTCUSDT market
            # orders: 120 BTC at most): bad input, must never reach an exchange
            spec = SignalSpec(kind, self._base("ENTER", rng.choice(("1000", "123456.789", "1e99999", "1E+999999"))))
        elif kind == "over_capital":
            spec = SignalSpec(kind, self._base("ENTER", rng.choice(("5", "50"))))  # capped to the capital
        elif kind == "ttl":
            p = self._base("ENTER", "0.01")
            p["ttl_ms"] = 10_000_000
            spec = SignalSpec(kind, p)
        else:
            spec = self._malformed()
        if kind in ("enter", "exit"):
            self._history.append(spec)
        return spec

    def _malformed(self) -> SignalSpec:
        rng = self.rng
        p = self._base("ENTER", "0.01")
        choice = rng.randrange(10)
        if choice == 0:
            p["qty"] = rng.choice(("NaN", "Infinity", "-Infinity", "nan", "sNaN"))
        elif choice == 1:
            p["qty"] = rng.choice(("-1", "0", "-0.01", "0E-8"))
        elif choice == 2:
            p["qty"] = rng.choice((float("nan"), float("inf"), -0.01, 0.0))
        elif choice == 3:
            p["action"] = rng.choice(("BUY", "enter ", "", "CLOSE", None))
        elif choice == 4:
            del p["id"]
        elif choice == 5:
            p["id"] = rng.choice(("", "   ", "x" * 300))
        elif choice == 6:
            p["ts_ms"] = rng.choice(("yesterday", -5, 0, True, 1.5))
        elif choice == 7:
            p["qty"] = rng.choice(({"v": 1}, [1, 2], "0x10", "1,000", "1e", True))
        elif choice == 8:
            return SignalSpec("malformed", rng.choice((b'{"id": "t", "action": "ENTER", "coin": ',
                                                       b"\xff\xfe garbage", "[1, 2, 3]", "null", "{}")))
        else:
            p["coin"] = rng.choice(("", "B-T-C", "btc!", "X" * 40, 42))
        return SignalSpec("malformed", p)

    # -- steps ---------------------------------------------------------------------------
    def step(self, has_position: bool | None = None, entry_premium: float | None = None,
             position_qty: float | None = None) -> Step:
        """The next step. ``has_position`` (None: unknown) biases the actions towards what
        can execute; with the position's ``entry_premium`` the premium is set so that an
        EXIT is mostly profitable (~85 %) and sometimes not (the no-loss rule must refuse);
        partial EXITs ask for part of ``position_qty``."""
        rng = self.rng
        self._step += 1
        self._position_qty = position_qty
        if has_position and entry_premium is not None:
            shift = rng.uniform(0.004, 0.012) if rng.random() < 0.85 else rng.uniform(-0.01, 0.0015)
            # No upper clamp: a position entered at a high premium must still be able to
            # leave (a clamp here once parked a whole run behind one unprofitable position).
            self.premium = max(-0.01, entry_premium + shift)
        else:
            # The premium wanders (reflected into [0, 4 %]).
            self.premium = min(0.04, max(0.0, self.premium + rng.gauss(0, 0.006)))
        kind = _pick(rng, [("single", 70), ("burst", 26), ("halt", 4)])
        if kind == "single":
            signals = [self.signal(has_position)]
        elif kind == "burst":
            signals = [self.signal(has_position) for _ in range(rng.randint(2, 5))]
            if rng.random() < 0.3:  # the same signal twice at the same time
                first = signals[0]
                signals.append(SignalSpec("duplicate" if first.valid else first.kind, first.payload,
                                          first.ts_offset_ms))
        else:
            signals = [SignalSpec("enter", self._base("ENTER", "0.01")) for _ in range(rng.randint(1, 2))]
        return Step(self._step, kind, signals, self.faults.some(self.fault_rate), round(self.premium, 5))
