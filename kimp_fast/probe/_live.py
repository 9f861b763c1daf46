"""``--live``: the latency of both order legs against the real exchanges, **test orders only**.

Safety is structural, not a flag:

* the only POST paths this module can send are the exchanges' order-*test* endpoints,
  Upbit ``POST /v1/orders/test`` and Binance ``POST /fapi/v1/order/test``, which validate
  and authenticate an order without ever reaching the matching engine;
  :func:`_checked_test_path` refuses anything else before a byte is written, and this
  module does not even name the real order paths;
* the engine is not used: its adapters place real orders;
* the test orders are shaped so that even a real order of the same shape could not
  execute: an Upbit limit IOC *buy* 10 % below the best bid and a Binance limit IOC *buy*
  3 % below the best bid (IOC below the bid expires unfilled);
* without all four keys in the environment it refuses to start (nothing is sent).

What is measured per round (both legs concurrently, as the engine sends them): encode +
sign, write to the socket, first byte, parse, and signal → both written, through the same
:class:`adapters_direct._http.Transport` and compiled hot path the adapters use. There is
no validate/size/journal stage: those belong to the engine, which never runs here.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Mapping
from decimal import ROUND_UP, Decimal
from typing import Any

from ._recorder import LegClock
from ._stats import summary

__all__ = ["LIVE_TEST_PATHS", "LiveRefused", "LiveSafetyError", "check_keys", "run_live"]

UPBIT_URL = "https://api.upbit.com"
BINANCE_URL = "https://fapi.binance.com"
#: the only POST endpoints the live probe may call: order *tests* (no order is created)
UPBIT_ORDER_TEST_PATH = "/v1/orders/test"
BINANCE_ORDER_TEST_PATH = "/fapi/v1/order/test"
LIVE_TEST_PATHS = frozenset({UPBIT_ORDER_TEST_PATH, BINANCE_ORDER_TEST_PATH})

DEFAULT_KEY_ENV = {
    "upbit_access": "UPBIT_ACCESS_KEY",
    "upbit_secret": "UPBIT_SECRET_KEY",
    "binance_key": "BINANCE_API_KEY",
    "binance_secret": "BINANCE_SECRET_KEY",
}

_now = time.perf_counter_ns


class LiveRefused(Exception):
    """The live probe will not start (missing keys, bad settings); nothing was sent."""


class LiveSafetyError(AssertionError):
    """A request to a path other than an order-test endpoint was about to be sent."""


def _checked_test_path(exchange: str, path: str) -> str:
    expected = UPBIT_ORDER_TEST_PATH if exchange == "upbit" else BINANCE_ORDER_TEST_PATH
    if path != expected or path not in LIVE_TEST_PATHS:
        raise LiveSafetyError(f"live probe: refusing POST {path!r} on {exchange}: only {expected!r} is allowed")
    return path


def check_keys(environ: Mapping[str, str], names: Mapping[str, str] = DEFAULT_KEY_ENV) -> dict[str, str]:
    """The four keys from ``environ``; :class:`LiveRefused` naming every missing variable."""
    missing = [env for env in names.values() if not environ.get(env, "").strip()]
    if missing:
        raise LiveRefused(
            "--live needs API keys in the environment; missing: " + ", ".join(missing)
            + " (only the order-test endpoints are called, but they are authenticated)"
        )
    return {k: environ[env].strip() for k, env in names.items()}


def key_env_names(config_path: str | None) -> dict[str, str]:
    """The key variables named by a config file's ``[upbit]``/``[binance]`` sections."""
    if not config_path:
        return dict(DEFAULT_KEY_ENV)
    from kimp_fast.config import EngineConfig

    cfg = EngineConfig.load(config_path)
    return {
        "upbit_access": cfg.upbit.access_key_env, "upbit_secret": cfg.upbit.secret_key_env,
        "binance_key": cfg.binance.api_key_env, "binance_secret": cfg.binance.secret_key_env,
    }


class _LiveLegs:
    """Two transports (with the probe's traces) and the signers; sends test orders only."""

    def __init__(self, keys: dict[str, str], upbit_url: str, binance_url: str, clocks: dict[str, LegClock]) -> None:
        from adapters_direct._http import AdapterOptions, Transport, default_limiter
        from kimp_fast.signing import BinanceSigner, UpbitSigner

        from ._recorder import WireMarks, make_trace_config

        self.clocks = clocks
        self.t: dict[str, Any] = {}
        for ex, url in (("upbit", upbit_url), ("binance", binance_url)):
            opts = AdapterOptions(trace_configs=(make_trace_config(clocks[ex], order_path=_test_path(ex)),),
                                  wire_trace=WireMarks(clocks[ex], order_path=_test_path(ex)))
            self.t[ex] = Transport(ex, url, opts, default_limiter(ex, opts))
        self.upbit_signer = UpbitSigner(keys["upbit_access"], keys["upbit_secret"])
        self.binance_signer = BinanceSigner(keys["binance_key"], keys["binance_secret"])
        self.binance_key = keys["binance_key"]
        self.offset_ms = 0
        self.recv_window_ms = 5000
        self.upbit_price = Decimal(0)
        self.upbit_volume = Decimal(0)
        self.upbit_tick = Decimal(1)
        self.binance_price = Decimal(0)
        self.binance_qty = Decimal("0.002")
        self.binance_tick = Decimal("0.1")
        self.statuses: dict[str, dict[str, int]] = {"upbit": {}, "binance": {}}
        self.errors: list[str] = []

    async def open(self) -> None:
        for t in self.t.values():
            await t.open()

    async def close(self) -> None:
        for t in self.t.values():
            await t.close()

    async def prepare(self, upbit_krw: Decimal) -> None:
        """Public reads only: prices for the test orders, the Binance clock offset; they
        also open two keep-alive connections per exchange."""
        from adapters_direct import schemas as S
        from kimp_fast.orders import upbit_tick_size

        async def upbit_book() -> Any:
            r = await self.t["upbit"].send("GET", "/v1/orderbook", query="markets=KRW-BTC")
            _ok(r, "upbit orderbook")
            return S.decode_upbit_orderbooks(r.body)[0]

        async def binance_time() -> tuple[int, int, int]:
            a = time.time_ns() // 1_000_000
            r = await self.t["binance"].send("GET", "/fapi/v1/time")
            b = time.time_ns() // 1_000_000
            _ok(r, "binance time")
            return a, S.decode_bn_time(r.body).server_time, b

        books = await asyncio.gather(upbit_book(), upbit_book())
        times = await asyncio.gather(binance_time(), binance_time())
        a, server, b = min(times, key=lambda x: x[2] - x[0])
        self.offset_ms = server - (a + b) // 2
        r = await self.t["binance"].send("GET", "/fapi/v1/depth", query="symbol=BTCUSDT&limit=5")
        _ok(r, "binance depth")
        depth = S.decode_bn_depth(r.body)
        bid_u = books[0].orderbook_units[0].bid_price
        self.upbit_tick = upbit_tick_size(bid_u)
        self.upbit_price = (bid_u * Decimal("0.90") / self.upbit_tick).to_integral_value() * self.upbit_tick
        self.upbit_volume = (upbit_krw / self.upbit_price).quantize(Decimal("0.00000001"), rounding=ROUND_UP)
        bid_b = depth.bids[0].price
        self.binance_price = (bid_b * Decimal("0.97") / self.binance_tick).to_integral_value() * self.binance_tick
        # Binance's minimum notional is 100 USDT: 0.002 BTC at the discounted price is above it
        while self.binance_qty * self.binance_price < 110:
            self.binance_qty += Decimal("0.001")

    async def upbit_leg(self) -> None:
        from kimp_fast.orders import encode_upbit_order

        c = self.clocks["upbit"]
        c.reset()
        c.active = True
        c.adapter_in = _now()
        t = self.t["upbit"]
        body, hash_input = encode_upbit_order(
            "KRW-BTC", "bid", "limit", volume=self.upbit_volume, price=self.upbit_price, time_in_force="ioc",
            identifier=f"probe-{uuid.uuid4().hex[:24]}", volume_step=Decimal("0.00000001"),
            price_tick=self.upbit_tick, price_rounding="down",
        )
        await t.throttle("order-test")
        headers = {"Authorization": self.upbit_signer.authorization(hash_input),
                   "Content-Type": "application/json; charset=utf-8"}
        resp = await t.send("POST", _checked_test_path("upbit", UPBIT_ORDER_TEST_PATH), body=body,
                            headers=headers, group="order-test", order=True)
        self._parse("upbit", resp)
        c.adapter_out = _now()
        c.active = False

    async def binance_leg(self) -> None:
        from kimp_fast.orders import encode_binance_order

        c = self.clocks["binance"]
        c.reset()
        c.active = True
        c.adapter_in = _now()
        t = self.t["binance"]
        params = encode_binance_order(
            "BTCUSDT", "BUY", "LIMIT", quantity=self.binance_qty, price=self.binance_price,
            time_in_force="IOC", client_id=f"probe-{uuid.uuid4().hex[:24]}", resp_type="RESULT",
            qty_step=Decimal("0.001"), price_tick=self.binance_tick,
        )
        await t.throttle("order")
        signed = self.binance_signer.signed_query(params, time.time_ns() // 1_000_000 + self.offset_ms,
                                                  self.recv_window_ms)
        headers = {"X-MBX-APIKEY": self.binance_key, "Content-Type": "application/x-www-form-urlencoded"}
        resp = await t.send("POST", _checked_test_path("binance", BINANCE_ORDER_TEST_PATH), body=signed.encode(),
                            headers=headers, group="order", order=True)
        self._parse("binance", resp)
        c.adapter_out = _now()
        c.active = False

    def _parse(self, ex: str, resp: Any) -> None:
        import msgspec

        from adapters_direct import schemas as S

        st = str(resp.status)
        self.statuses[ex][st] = self.statuses[ex].get(st, 0) + 1
        if 200 <= resp.status < 300:
            if ex == "upbit":
                S.decode_upbit_order(resp.body)
            else:
                msgspec.json.decode(resp.body)
        elif len(self.errors) < 10:
            self.errors.append(f"{ex} HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}")


def _test_path(exchange: str) -> tuple[str, str]:
    return ("POST", UPBIT_ORDER_TEST_PATH if exchange == "upbit" else BINANCE_ORDER_TEST_PATH)


def _ok(resp: Any, what: str) -> None:
    if not 200 <= resp.status < 300:
        raise RuntimeError(f"{what}: HTTP {resp.status} {resp.body[:200]!r}")


async def _live(n: int, warmup: int, interval_s: float, keys: dict[str, str], upbit_url: str, binance_url: str,
                upbit_krw: Decimal, progress: bool) -> dict[str, Any]:
    from ._samples import LEGS, leg_stages

    clocks = {ex: LegClock(ex) for ex in LEGS}
    legs = _LiveLegs(keys, upbit_url, binance_url, clocks)
    await legs.open()
    samples: list[dict[str, Any]] = []
    try:
        await legs.prepare(upbit_krw)
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        for i in range(warmup + n):
            now = loop.time()
            if nxt > now:
                await asyncio.sleep(nxt - now)
            nxt = max(now, nxt) + interval_s
            t0 = _now()
            await asyncio.gather(legs.upbit_leg(), legs.binance_leg())
            t1 = _now()
            if i < warmup:
                continue
            marks = {ex: c.snapshot() for ex, c in clocks.items()}
            if any(not m["wire"] or not m["resp_end"] for m in marks.values()):
                continue
            st = {ex: leg_stages(m) for ex, m in marks.items()}
            slow = max(LEGS, key=lambda ex: st[ex]["first_byte"])
            total = (t1 - t0) / 1000
            samples.append({
                "total": total,
                "signal_to_wire": (max(m["wire"] for m in marks.values()) - t0) / 1000,
                "network": st[slow]["first_byte"],
                "overhead": total - st[slow]["first_byte"],
                "legs": st,
            })
            if progress and (i + 1 - warmup) % max(1, n // 10) == 0:
                print(f"[probe live] {i + 1 - warmup}/{n} rounds", file=sys.stderr, flush=True)
    finally:
        await legs.close()
    out: dict[str, Any] = {
        "available": True,
        "n": len(samples),
        "signal_to_wire_us": summary(s["signal_to_wire"] for s in samples),
        "overhead_us": summary(s["overhead"] for s in samples),
        "network_us": summary(s["network"] for s in samples),
        "total_us": summary(s["total"] for s in samples),
        "legs": {ex: {k: summary(s["legs"][ex][k] for s in samples)
                      for k in ("build_sign", "write", "first_byte", "parse", "place_order")} for ex in LEGS},
        "statuses": legs.statuses,
        "errors": legs.errors,
        "endpoints": sorted(LIVE_TEST_PATHS),
        "not_measured": "validate, size, journal: engine stages; the engine never runs against real endpoints",
    }
    return out


def run_live(*, n: int, warmup: int, interval_s: float, environ: Mapping[str, str], config_path: str | None,
             upbit_url: str = UPBIT_URL, binance_url: str = BINANCE_URL, upbit_krw: str = "6000",
             progress: bool = True) -> dict[str, Any]:
    """Measure both legs against the exchanges' order-test endpoints (see module docstring).

    Raises
    ------
    LiveRefused
        Keys missing (every missing variable is named), or bad settings: nothing was sent.
    """
    keys = check_keys(environ, key_env_names(config_path))
    if n < 1:
        raise LiveRefused("-n must be at least 1")
    if interval_s < 0.13:
        raise LiveRefused("--interval-ms below 130 would exceed Upbit's 8 order-tests per second")
    import kimp_fast

    from ._engine_run import run_on
    from ._orchestrate import machine_info

    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover
        factory, loop_name = asyncio.new_event_loop, "asyncio"
    build = "compiled" if kimp_fast.USE_EXTENSIONS else "pure"
    result = run_on(factory, _live(n, warmup, interval_s, keys, upbit_url, binance_url, Decimal(upbit_krw), progress))
    result.update({"adapter": "direct", "build": build, "loop": loop_name})
    return {
        "schema": "kimp-fast/latency-probe/1",
        "mode": "live",
        "machine": machine_info(),
        "settings": {"rounds": n, "interval_s": interval_s, "upbit_url": upbit_url, "binance_url": binance_url},
        "variants": {f"live_direct_{build}_{loop_name}": result},
        "concurrency": [],
    }
