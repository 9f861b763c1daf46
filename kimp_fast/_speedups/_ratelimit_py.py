# cython: annotation_typing=False
"""Client-side rate limiting, pure-Python twin (the typed reference for ``_ratelimit_c``).

Each exchange limit is "at most N per P seconds" (Upbit: per group per second; Binance:
weight per minute, orders per 10 s and per minute). Both exchanges count in *fixed*
windows whose alignment we do not know, and a classic refilling token bucket can spend
almost 2N inside one such window. So every bucket here is an exact sliding window: the
total cost inside any interval of P seconds never exceeds N, which satisfies every fixed
window whatever its alignment.

* ``acquire`` is all-or-nothing across the buckets of a group and never sleeps: it returns
  0.0 (consumed) or the seconds to wait (nothing consumed). The adapters do the sleeping.
* The last ``reserved_share`` of every bucket is kept for ``reserved=True`` callers
  (hedge repair and unwinds must never starve behind new entries).
* Server headers only ever *lower* what we think is left (``update_from_headers``).
* After a 418 (a ban) every caller, reserved included, is blocked until it ends. A 429 is
  scoped like the exchange scopes it (``on_rate_limited(..., group=)``): an Upbit 429
  blocks its group only (a quotation 429 never stops order look-ups); a Binance order-count
  limit (-1015) blocks new orders only, a weight 429 the weight-bearing calls only.

The clock is injected (``time.monotonic`` by default), so tests drive it by hand and both
twins give identical results for identical call sequences.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Mapping, Sequence

__all__ = ["BINANCE_BUCKETS", "BINANCE_GROUPS", "RateLimiter", "UPBIT_BUCKETS"]

# name -> (capacity, period in seconds)
UPBIT_BUCKETS: dict[str, tuple[int, float]] = {
    "order": (8, 1.0),  # 8/s in the seed; Upbit raised it to 12/s in 2026-08 (order_per_sec)
    "order-test": (8, 1.0),
    "default": (30, 1.0),
    "order-cancel-all": (1, 2.0),
    "market": (10, 1.0),
    "ticker": (10, 1.0),
    "orderbook": (10, 1.0),
    "candle": (10, 1.0),
    "trade": (10, 1.0),
    "websocket-connect": (5, 1.0),
}
BINANCE_BUCKETS: dict[str, tuple[int, float]] = {
    "weight_1m": (2400, 60.0),  # REQUEST_WEIGHT per IP
    "orders_10s": (300, 10.0),  # ORDERS per account
    "orders_1m": (1200, 60.0),
    "orders_1s": (10, 1.0),  # the seed's limit
}
# group -> [(bucket, cost per unit of weight)]; "weight:N" groups are parsed on the fly.
BINANCE_GROUPS: dict[str, list[tuple[str, int]]] = {
    "order": [("orders_1s", 1), ("orders_10s", 1), ("orders_1m", 1)],  # POST order: 0 IP weight
    "default": [("weight_1m", 1)],
}
# Binance header (lowercase) -> bucket it reports the server's count for.
_BINANCE_HEADERS = {
    "x-mbx-used-weight-1m": "weight_1m",
    "x-mbx-order-count-10s": "orders_10s",
    "x-mbx-order-count-1m": "orders_1m",
}
# 429 without Retry-After: 1 s, doubling while 429s keep coming, at most 60 s.
# 418 without a ban time: 120 s (Binance's shortest ban), doubling likewise, at most 3 days.
_BASE_429 = 1.0
_MAX_429 = 60.0
_BASE_418 = 120.0
_MAX_418 = 259200.0
_STREAK_RESET = 60.0  # a 429/418 this long after the last block ended starts a new streak
# Counts, costs and weights stay below this: far above any real limit, and the compiled
# twin keeps them in C integers (a header value like "99999999999999999999" is ignored).
_MAX_COUNT = 10**12
_MAX_HEADER_DIGITS = 12
_NEVER = float("-inf")


class _Bucket:
    """At most ``capacity`` cost units in any ``period``-second sliding window."""

    __slots__ = ("blocked_until", "capacity", "entries", "name", "period", "reserve", "used")

    def __init__(self, name: str, capacity: int, period: float, reserved_share: float) -> None:
        if type(capacity) is not int or not 0 < capacity <= _MAX_COUNT:
            raise ValueError(f"bucket {name!r}: capacity must be an int in 1..1e12, got {capacity!r}")
        if not period > 0:
            raise ValueError(f"bucket {name!r}: period must be positive, got {period!r}")
        self.name = name
        self.capacity = capacity
        self.period = float(period)
        self.reserve = int(capacity * reserved_share)
        self.used = 0
        self.entries = deque()  # [time, cost] lists, oldest first
        self.blocked_until = _NEVER  # a 429 scoped to this bucket's group(s)

    def expire(self, now: float) -> None:
        entries = self.entries
        period = self.period
        while entries and entries[0][0] + period <= now:
            self.used -= entries.popleft()[1]

    def wait_for(self, now: float, cost: int, reserved: bool) -> float:
        """Seconds until ``cost`` fits (0.0 now); call ``expire(now)`` first."""
        cap = self.capacity if reserved else self.capacity - self.reserve
        if cost > cap:
            lane = "reserved" if reserved else "normal"
            raise ValueError(
                f"cost {cost} can never fit bucket {self.name!r} ({lane} capacity {cap})"
            )
        excess = self.used + cost - cap
        if excess <= 0:
            return 0.0
        for t, c in self.entries:
            excess -= c
            if excess <= 0:
                return t + self.period - now
        return self.period  # unreachable: the entries sum to ``used``

    def consume(self, now: float, cost: int) -> None:
        if cost <= 0:
            return
        entries = self.entries
        if entries and entries[-1][0] == now:
            entries[-1][1] += cost
        else:
            entries.append([now, cost])
        self.used += cost

    def raise_used_to(self, now: float, server_used: int) -> None:
        # The server saw more than we did (other processes, restarts): count the
        # difference as spent now. It then stays a full period: conservative, never lax.
        if server_used > self.used:
            self.consume(now, server_used - self.used)


class RateLimiter:
    """Per-exchange request budgets, preloaded with the documented limits.

    Parameters
    ----------
    exchange : {"upbit", "binance"}
        Selects the preloaded buckets and groups (SPEC §4.1, EXCHANGE_NOTES A4/B3).
        Upbit: one bucket per group (``order`` 8/s, ``order-test`` 8/s, ``default`` 30/s,
        ``order-cancel-all`` 1 per 2 s, quotation groups ``market``/``ticker``/
        ``orderbook``/``candle``/``trade`` 10/s, ``websocket-connect`` 5/s).
        Binance: buckets ``weight_1m`` 2400/60 s, ``orders_10s`` 300/10 s, ``orders_1m``
        1200/60 s, ``orders_1s`` 10/s; groups ``order`` (one of each orders bucket),
        ``default`` and ``weight:N`` (N units of ``weight_1m``).
    limits : mapping of group -> sequence of (bucket, cost), optional
        Adds or replaces groups.
    clock : callable returning seconds, default ``time.monotonic``
    reserved_share : float in [0, 1), default 0.2
        ``int(capacity * reserved_share)`` of every bucket is only for ``reserved=True``.
    order_per_sec : int, optional
        Capacity of Upbit's ``order`` bucket (default 8) or Binance's ``orders_1s`` (10).
    buckets : mapping of bucket -> (capacity, period_s), optional
        Adds or replaces buckets (an Upbit bucket of the same name is also a group).
    """

    def __init__(
        self,
        exchange: str,
        limits: Mapping[str, Sequence[tuple[str, int]]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        reserved_share: float = 0.2,
        order_per_sec: int | None = None,
        buckets: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        if exchange == "upbit":
            spec = dict(UPBIT_BUCKETS)
            order_bucket = "order"
        elif exchange == "binance":
            spec = dict(BINANCE_BUCKETS)
            order_bucket = "orders_1s"
        else:
            raise ValueError(f"exchange must be 'upbit' or 'binance', not {exchange!r}")
        if not 0.0 <= reserved_share < 1.0:
            raise ValueError(f"reserved_share must be in [0, 1), got {reserved_share!r}")
        if order_per_sec is not None:
            spec[order_bucket] = (order_per_sec, 1.0)
        if buckets:
            for name, (capacity, period) in buckets.items():
                spec[name] = (capacity, period)
        self._exchange = exchange
        self._clock = clock
        self._reserved_share = float(reserved_share)
        self._buckets = {
            name: _Bucket(name, cap, per, self._reserved_share) for name, (cap, per) in spec.items()
        }
        groups = {}
        if exchange == "upbit":
            for name, bucket in self._buckets.items():
                groups[name] = [(bucket, 1)]
        else:
            for name, costs in BINANCE_GROUPS.items():
                groups[name] = [(self._buckets[b], c) for b, c in costs]
        if limits:
            for name, costs in limits.items():
                resolved = []
                for b, c in costs:
                    if b not in self._buckets:
                        raise ValueError(f"group {name!r} refers to unknown bucket {b!r}")
                    if type(c) is not int or not 0 <= c <= _MAX_COUNT:
                        raise ValueError(f"group {name!r}: cost must be an int in 0..1e12, got {c!r}")
                    resolved.append((self._buckets[b], c))
                groups[name] = resolved
        self._groups = groups
        self._blocked_until = _NEVER
        self._last_block_end = _NEVER  # end of the latest block of any scope (streaks)
        self._streak_429 = 0
        self._streak_418 = 0

    # -- budget ---------------------------------------------------------------------------

    def _costs(self, group: object) -> list:
        if not isinstance(group, str):
            raise TypeError(f"group must be a str, not {type(group).__name__}")
        costs = self._groups.get(group)
        if costs is not None:
            return costs
        if self._exchange == "binance" and group.startswith("weight:"):
            n = group[7:]
            if n.isdigit() and n.isascii() and len(n) <= _MAX_HEADER_DIGITS:
                costs = [(self._buckets["weight_1m"], int(n))]
                self._groups[group] = costs
                return costs
        raise ValueError(f"unknown rate-limit group {group!r} for {self._exchange}")

    def acquire(self, group: str, weight: int = 1, *, reserved: bool = False) -> float:
        """Consume the group's cost and return 0.0, or consume nothing and return the wait.

        Parameters
        ----------
        group : str
            Endpoint group (Upbit: the ``Remaining-Req`` group; Binance: ``order``,
            ``default`` or ``weight:N``).
        weight : int, default 1
            Multiplies every cost of the group (e.g. Binance request weight).
        reserved : bool, default False
            May use the reserved share (hedge repair / unwind lane).

        Raises
        ------
        ValueError
            Unknown group, or a cost that can never fit its bucket.
        """
        if type(weight) is not int or not 0 <= weight <= _MAX_COUNT:
            raise ValueError(f"weight must be an int in 0..1e12, got {weight!r}")
        costs = self._costs(group)
        now = self._clock()
        if now < self._blocked_until:
            return self._blocked_until - now
        wait = 0.0
        for bucket, cost in costs:
            bucket.expire(now)
            w = bucket.wait_for(now, cost * weight, reserved)
            if now < bucket.blocked_until and bucket.blocked_until - now > w:
                w = bucket.blocked_until - now
            if w > wait:
                wait = w
        if wait > 0.0:
            return wait
        for bucket, cost in costs:
            bucket.consume(now, cost * weight)
        return 0.0

    # -- server feedback ------------------------------------------------------------------

    def update_from_headers(self, headers: Mapping[str, str], group: str | None = None) -> None:
        """Lower the local budget to what the server reports (never raise it).

        Upbit ``Remaining-Req: group=default; min=1800; sec=29``: ``sec`` left this second
        in ``group`` (``min`` is deprecated and ignored; the header's group wins over the
        ``group`` argument). Binance ``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S`` and
        ``X-MBX-ORDER-COUNT-1M``: counts used, applied when higher than ours. Header names
        are case-insensitive; malformed values are ignored.
        """
        now = self._clock()
        if self._exchange == "upbit":
            for key, value in headers.items():
                if key.lower() == "remaining-req":
                    self._apply_remaining_req(now, value, group)
                    return
            return
        for key, value in headers.items():
            name = _BINANCE_HEADERS.get(key.lower())
            if name is None:
                continue
            value = value.strip()
            if not (value.isdigit() and value.isascii()) or len(value) > _MAX_HEADER_DIGITS:
                continue
            bucket = self._buckets[name]
            bucket.expire(now)
            bucket.raise_used_to(now, int(value))

    def _apply_remaining_req(self, now: float, value: object, group: object) -> None:
        if not isinstance(value, str):
            return
        sec = None
        for part in value.split(";"):
            k, _, v = part.partition("=")
            k = k.strip().lower()
            v = v.strip()
            if k == "group" and v:
                group = v
            elif k == "sec" and v.isdigit() and v.isascii() and len(v) <= _MAX_HEADER_DIGITS:
                sec = int(v)
        if sec is None or group is None:
            return
        bucket = self._buckets.get(group)
        if bucket is None:
            return
        bucket.expire(now)
        bucket.raise_used_to(now, bucket.capacity - sec)

    def on_rate_limited(self, status: int, retry_after: float | None = None, group: str | None = None) -> float:
        """Block callers after a 429 or 418; return the block length in seconds.

        ``retry_after`` (``Retry-After`` or the ban time in the body) is honoured when given
        (capped at 3 days, Binance's longest ban).
        Without it: 429 → 1 s, 418 → 120 s, each doubling while such responses keep
        coming (429 up to 60 s, 418 up to 3 days).

        A 418 blocks every caller. A 429 with ``group`` blocks the buckets of that group
        only (Upbit: the request's group; Binance: ``order`` for the order-count limit,
        ``default`` for the request weight); without ``group``, every caller.

        Raises
        ------
        ValueError
            ``status`` is neither 429 nor 418, ``retry_after`` is negative, or ``group``
            is unknown.
        """
        now = self._clock()
        scoped = self._costs(group) if status == 429 and group is not None else None
        recent = now < self._last_block_end + _STREAK_RESET
        if status == 429:
            self._streak_429 = min(self._streak_429 + 1, 32) if recent else 1
            default = min(_BASE_429 * 2.0 ** (self._streak_429 - 1), _MAX_429)
        elif status == 418:
            self._streak_418 = min(self._streak_418 + 1, 32) if recent else 1
            default = min(_BASE_418 * 2.0 ** (self._streak_418 - 1), _MAX_418)
        else:
            raise ValueError(f"status must be 429 or 418, got {status!r}")
        if retry_after is None:
            block = default
        else:
            block = float(retry_after)
            if not block >= 0.0:
                raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
            block = min(block, _MAX_418)  # a garbage header must not block forever
        if now + block > self._last_block_end:
            self._last_block_end = now + block
        if scoped is not None:
            for bucket, _cost in scoped:
                if now + block > bucket.blocked_until:
                    bucket.blocked_until = now + block
        elif now + block > self._blocked_until:
            self._blocked_until = now + block
        return block

    # -- observation ----------------------------------------------------------------------

    @property
    def exchange(self) -> str:
        return self._exchange

    @property
    def blocked_until(self) -> float:
        """Clock time until which every call is refused (``-inf`` when never blocked)."""
        return self._blocked_until

    def blocked(self) -> bool:
        """True while a 429/418 block is in force."""
        return self._clock() < self._blocked_until

    def snapshot(self) -> dict:
        """Observable state for status views: block state and every bucket's usage."""
        now = self._clock()
        out = {}
        for name, b in self._buckets.items():
            b.expire(now)
            out[name] = {
                "capacity": b.capacity,
                "period": b.period,
                "reserved": b.reserve,
                "used": b.used,
                "available": max(b.capacity - b.reserve - b.used, 0),
                "available_reserved": max(b.capacity - b.used, 0),
                "blocked_for": max(b.blocked_until - now, 0.0),
            }
        return {
            "exchange": self._exchange,
            "now": now,
            # None rather than -inf when never blocked: status views serialise this to JSON.
            "blocked_until": self._blocked_until if self._blocked_until > _NEVER else None,
            "blocked_for": max(self._blocked_until - now, 0.0),
            "buckets": out,
        }
