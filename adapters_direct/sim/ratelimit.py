"""Rate limits as the two venues apply them, with their headers and escalation to bans.

Upbit: per-second token buckets per group (quotation groups per IP, exchange groups per
access key), ``Remaining-Req: group=…; min=…; sec=…`` on every response, 429 when a
bucket is empty, 418 (blocked, with its duration) when a client keeps sending after 429s,
and requests carrying an ``Origin`` header held to 1 per 10 s.

Binance: request weight per IP per calendar minute, order counts per account per 10 s and
per minute, reported in ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-10S|1M``; 429 with
``Retry-After`` when over, 418 (IP ban) when 429s are ignored.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from .config import LimitConfig

__all__ = ["BinanceLimiter", "Verdict", "UpbitLimiter"]

QUOTATION_GROUPS = frozenset(("market", "ticker", "orderbook", "trade", "candle"))


@dataclass(slots=True)
class Verdict:
    status: int  # 200 = go ahead, 429 or 418
    retry_after: float = 0.0
    reason: str = ""


class _Bucket:
    __slots__ = ("capacity", "rate", "tokens", "t")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.t = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def remaining(self) -> int:
        return max(0, int(self.tokens))


class UpbitLimiter:
    def __init__(self, cfg: LimitConfig) -> None:
        self.cfg = cfg
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._rejections: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}
        self._ban_count: dict[str, int] = {}

    def per_second(self, group: str) -> float:
        c = self.cfg
        if group in QUOTATION_GROUPS:
            return c.upbit_quotation_per_s
        return {
            "order": c.upbit_order_per_s,
            "order-test": c.upbit_order_test_per_s,
            "order-cancel-all": 0.5,
        }.get(group, c.upbit_default_per_s)

    def _bucket(self, group: str, scope: str, now: float) -> _Bucket:
        b = self._buckets.get((group, scope))
        rate = self.per_second(group)
        if b is None or b.rate != rate:
            b = self._buckets[(group, scope)] = _Bucket(max(rate, 1.0), rate, now)
        return b

    def check(self, group: str, scope: str, origin: bool) -> tuple[Verdict, str]:
        """Account one request; returns the verdict and the ``Remaining-Req`` header."""
        now = time.monotonic()
        until = self._banned_until.get(scope, 0.0)
        if now < until:
            return Verdict(418, until - now, "blocked"), self.remaining_header(group, 0)
        if origin:
            # Requests with an Origin header share a 1-per-10-s budget, reported as group=origin.
            rate = self.cfg.upbit_origin_per_10s / 10.0
            bucket = self._buckets.get(("origin", scope))
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[("origin", scope)] = _Bucket(1.0, rate, now)
            group = "origin"
        else:
            bucket = self._bucket(group, scope, now)
        if bucket.take(now):
            return Verdict(200), self.remaining_header(group, bucket.remaining())
        # rejected: count it; too many 429s in a second means the client ignores them
        rej = self._rejections.setdefault(scope, deque())
        rej.append(now)
        while rej and now - rej[0] > 1.0:
            rej.popleft()
        if len(rej) >= self.cfg.upbit_ban_after_429s:
            n = self._ban_count.get(scope, 0)
            self._ban_count[scope] = n + 1
            duration = self.cfg.upbit_ban_seconds * (2**n)  # repeat offences lengthen the block
            self._banned_until[scope] = now + duration
            rej.clear()
            return Verdict(418, duration, "blocked"), self.remaining_header(group, 0)
        retry = (1.0 - bucket.tokens) / bucket.rate if bucket.rate > 0 else 1.0
        return Verdict(429, max(retry, 0.0), "origin" if origin else "rate"), self.remaining_header(group, 0)

    @staticmethod
    def remaining_header(group: str, sec: int) -> str:
        minute = 600 if group in QUOTATION_GROUPS else 1800  # deprecated fixed value
        return f"group={group}; min={minute}; sec={sec}"

    def ban(self, scope: str, seconds: float) -> None:
        self._banned_until[scope] = time.monotonic() + seconds

    def reset(self) -> None:
        self._buckets.clear()
        self._rejections.clear()
        self._banned_until.clear()
        self._ban_count.clear()


class BinanceLimiter:
    def __init__(self, cfg: LimitConfig) -> None:
        self.cfg = cfg
        self._weight: dict[str, list[int]] = {}  # ip -> [minute, used]
        self._orders10: dict[str, list[int]] = {}  # account -> [window, count]
        self._orders60: dict[str, list[int]] = {}
        self._rejects: dict[str, list[int]] = {}  # ip -> [minute, count of 429s]
        self._banned_until: dict[str, float] = {}

    def check(self, ip: str, account: str | None, weight: int, orders: int) -> tuple[Verdict, dict[str, str]]:
        """Account one request (``orders`` = 1 for a new order); returns the verdict and headers."""
        now = time.time()
        minute = int(now // 60)
        w = self._weight.get(ip)
        if w is None or w[0] != minute:
            w = self._weight[ip] = [minute, 0]
        until = self._banned_until.get(ip, 0.0)
        if now < until:
            return Verdict(418, until - now, "banned"), {"X-MBX-USED-WEIGHT-1M": str(w[1])}
        headers: dict[str, str] = {}
        verdict = Verdict(200)
        w[1] += weight
        if w[1] > self.cfg.binance_weight_per_min:
            verdict = Verdict(429, 60 - (now % 60), "weight")
        if orders and account is not None:
            win10 = int(now // 10)
            o10 = self._orders10.get(account)
            if o10 is None or o10[0] != win10:
                o10 = self._orders10[account] = [win10, 0]
            o60 = self._orders60.get(account)
            if o60 is None or o60[0] != minute:
                o60 = self._orders60[account] = [minute, 0]
            if verdict.status == 200:
                o10[1] += orders
                o60[1] += orders
                if o10[1] > self.cfg.binance_orders_per_10s:
                    verdict = Verdict(429, 10 - (now % 10), "orders")
                elif o60[1] > self.cfg.binance_orders_per_min:
                    verdict = Verdict(429, 60 - (now % 60), "orders")
            headers["X-MBX-ORDER-COUNT-10S"] = str(o10[1])
            headers["X-MBX-ORDER-COUNT-1M"] = str(o60[1])
        headers["X-MBX-USED-WEIGHT-1M"] = str(w[1])
        if verdict.status == 429:
            r = self._rejects.get(ip)
            if r is None or r[0] != minute:
                r = self._rejects[ip] = [minute, 0]
            r[1] += 1
            if r[1] > self.cfg.binance_ban_after_429s:
                self._banned_until[ip] = now + self.cfg.binance_ban_seconds
                r[1] = 0
                return Verdict(418, self.cfg.binance_ban_seconds, "banned"), headers
        return verdict, headers

    def ban(self, ip: str, seconds: float) -> None:
        self._banned_until[ip] = time.time() + seconds

    def banned_until_ms(self, ip: str) -> int:
        return int(self._banned_until.get(ip, 0.0) * 1000)

    def reset(self) -> None:
        self._weight.clear()
        self._orders10.clear()
        self._orders60.clear()
        self._rejects.clear()
        self._banned_until.clear()


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
