"""Fault injection (CONTRACT §4): what goes wrong, for which requests, how many times.

A fault matches on exchange, and optionally method and path (``path`` may end in ``*``
for a prefix), and applies to the next ``count`` matching requests (``count`` 0 or null =
until cleared; ``down`` defaults to that). The first matching fault in insertion order
wins. How each kind is carried out lives in the server's dispatch; this module only
validates and matches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Fault", "FaultRegistry", "KINDS"]

KINDS = frozenset(
    {
        "delay",  # ms (+ optional "phase": "before" | "after" the order is processed)
        "drop_before",  # connection dropped, request not processed
        "drop_after",  # request processed (order placed and filled), connection dropped
        "http_500",  # 500, not processed unless executed=true
        "unknown_503",  # Binance 503 "Unknown error…", executed true|false
        "rate_limit_429",
        "ban_418",  # seconds: the exchange then blocks that client for that long
        "reject",  # code (Binance) / name (Upbit), optional msg/message, status
        "partial_fill",  # fraction of the order that fills
        "down",  # every request to that exchange fails at the connection level
        "garbage",  # 200 with a truncated, non-JSON body, executed true|false
    }
)


@dataclass
class Fault:
    id: int
    exchange: str
    kind: str
    method: str | None = None
    path: str | None = None
    count: int | None = 1  # None = unlimited
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, exchange: str, method: str, path: str) -> bool:
        if exchange != self.exchange:
            return False
        if self.method and self.method != method:
            return False
        if self.path:
            if self.path.endswith("*"):
                return path.startswith(self.path[:-1])
            return path == self.path
        return True

    @property
    def executed(self) -> bool:
        return bool(self.params.get("executed", False))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "exchange": self.exchange,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "count": self.count,
            "hits": self.hits,
            **self.params,
        }


class FaultRegistry:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)  # faults applied, newest last

    def add(self, spec: Mapping[str, Any]) -> Fault:
        exchange = spec.get("exchange")
        if exchange not in ("upbit", "binance"):
            raise ValueError("exchange must be 'upbit' or 'binance'")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(sorted(KINDS))}")
        method = spec.get("method")
        if method is not None:
            if not isinstance(method, str):
                raise ValueError("method must be a string")
            method = method.upper()
        path = spec.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError("path must start with '/'")
        if "count" in spec:
            count = spec["count"]
        else:
            count = None if kind == "down" else 1
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError("count must be a non-negative integer or null")
            if count == 0:
                count = None
        params = {k: v for k, v in spec.items() if k not in ("exchange", "kind", "method", "path", "count")}
        self._validate(kind, params)
        fault = Fault(self._next_id, exchange, kind, method, path, count, params)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    @staticmethod
    def _validate(kind: str, p: dict[str, Any]) -> None:
        def number(name: str, lo: float, hi: float | None = None, required: bool = True) -> None:
            if name not in p:
                if required:
                    raise ValueError(f"{kind}: '{name}' is required")
                return
            v = p[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo or (hi is not None and v > hi):
                raise ValueError(f"{kind}: '{name}' must be a number in [{lo}, {hi if hi is not None else 'inf'}]")

        if kind == "delay":
            number("ms", 0)
            if p.get("phase", "before") not in ("before", "after"):
                raise ValueError("delay: phase must be 'before' or 'after'")
        elif kind == "ban_418":
            number("seconds", 0, required=False)
        elif kind == "partial_fill":
            number("fraction", 0, 1)
        elif kind == "reject":
            number("status", 400, 599, required=False)
        if "executed" in p and not isinstance(p["executed"], bool):
            raise ValueError(f"{kind}: 'executed' must be true or false")

    def take(self, exchange: str, method: str, path: str) -> Fault | None:
        """The fault for this request, consuming one of its ``count`` (None if none)."""
        if not self._faults:
            return None
        for fault in self._faults:
            if fault.matches(exchange, method, path):
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                self.history.append({"fault": fault.id, "kind": fault.kind, "method": method, "path": path})
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self._faults]
