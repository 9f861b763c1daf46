"""Adapter benchmarks: client-side CPU per order, DIRECT vs CCXT, in the same run.

The exchange simulator runs in **another process** (``kimp-fast sim``), so its work is not
counted; the timer is ``time.process_time`` (this process's CPU time, every thread), so the
wait for the simulator's answer costs nothing either. What remains is what a client burns
per order: building and signing the request, the HTTP client, parsing the response into an
``OrderResult``, the rate limiter and the event loop's bookkeeping. Wall-clock medians of
the same rounds are recorded in each benchmark's ``extra_info`` for context.

* ``place_order`` — one order on a warm session: Upbit limit IOC (buy and sell alternate,
  0.0001 BTC), Binance MARKET (sell and buy alternate, 0.002 BTC). Both answer final in
  one request, so this is exactly "place + parse".
* ``two legs via asyncio.gather`` — the Upbit leg and the Binance leg of one hedge placed
  concurrently, CPU for the pair.
* ``HTTP floor`` — a bare ``aiohttp`` GET on a warm connection: the share of every order
  that an aiohttp-based client pays before signing or parsing anything; and the same GET
  on the order lane (``adapters_direct._wire``), the direct adapters' default for orders.

Three kinds are compared: ``direct`` (order lane), ``direct_aiohttp`` (the same adapters
with ``order_lane="aiohttp"``) and ``ccxt``.

Both adapter types get the same generous ``RateLimiter`` (no waits) and the simulator's
limits are raised: throttling is not what is measured. Orders per benchmark:
``KIMP_BENCH_ORDERS`` (default 300; the two-leg benchmark does half as many pairs).
Results and how to reproduce: docs/PERFORMANCE.md, "Adapters: direct vs ccxt".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Iterator
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("pytest_benchmark")

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest  # noqa: E402
from kimp_fast._speedups._ratelimit_py import BINANCE_BUCKETS, UPBIT_BUCKETS  # noqa: E402
from kimp_fast.ratelimit import RateLimiter  # noqa: E402

ORDERS = int(os.environ.get("KIMP_BENCH_ORDERS", "300"))
WARMUP = max(5, ORDERS // 10)
#: what is compared: the direct adapters with their order lane (the default), the same
#: adapters sending orders through their aiohttp session, and the ccxt adapters
KINDS = ["direct", "direct_aiohttp", "ccxt"]
_KIND_TYPE = {"direct": AdapterType.DIRECT, "direct_aiohttp": AdapterType.DIRECT, "ccxt": AdapterType.CCXT}
_KIND_OPTS: dict[str, dict[str, Any]] = {"direct": {"order_lane": "wire"}, "direct_aiohttp": {"order_lane": "aiohttp"},
                                         "ccxt": {}}
UPBIT_QTY = Decimal("0.0001")
BINANCE_QTY = Decimal("0.002")
BIG = 1_000_000  # requests per window, simulator and client alike: throttling is not measured


# ------------------------------------------------------------------------------ simulator
@pytest.fixture(scope="module")
def sim_process() -> Iterator[dict[str, Any]]:
    """``kimp-fast sim`` in a child process: frozen prices, limits out of the way."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kimp_fast", "sim", "--port", "0", "--seed", "7", "--volatility", "0",
         "--upbit-order-rate", str(BIG)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"simulator did not start: {proc.stderr.read() if proc.stderr else ''}")
        info = json.loads(line)
        big = BIG
        limits = {"upbit_default_per_s": big, "upbit_quotation_per_s": big, "binance_weight_per_min": big,
                  "binance_orders_per_10s": big, "binance_orders_per_min": big}
        req = urllib.request.Request(
            info["url"] + "/_sim/config", data=json.dumps({"limits": limits}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    try:
        import uvloop

        lp = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _unthrottled(exchange: str) -> RateLimiter:
    """The real limiter (its cost is part of every order), with budgets as large as the
    simulator's: Upbit's ``Remaining-Req`` then never lowers ours into the reserved share."""
    preset = UPBIT_BUCKETS if exchange == "upbit" else BINANCE_BUCKETS
    return RateLimiter(exchange, buckets={name: (BIG, period) for name, (_, period) in preset.items()})


class Legs:
    """One adapter type's opened Upbit and Binance adapters, and the order streams."""

    def __init__(self, kind: str, upbit: Any, binance: Any, upbit_ask: Decimal, upbit_bid: Decimal) -> None:
        self.kind = kind
        self.upbit = upbit
        self.binance = binance
        tick = Decimal(1000)
        # crossing IOC prices (filled at the top of book), on the 1,000 KRW tick
        self.upbit_buy_px = (upbit_ask * Decimal("1.01") / tick).to_integral_value(ROUND_DOWN) * tick
        self.upbit_sell_px = (upbit_bid * Decimal("0.99") / tick).to_integral_value(ROUND_DOWN) * tick
        self.n_upbit = 0
        self.n_binance = 0

    def upbit_order(self) -> OrderRequest:
        self.n_upbit += 1
        buy = self.n_upbit % 2 == 1  # buy, sell, buy, ...: the balances stay put
        return OrderRequest(
            symbol="KRW-BTC", side="buy" if buy else "sell", type="limit", quantity=UPBIT_QTY,
            price=self.upbit_buy_px if buy else self.upbit_sell_px, time_in_force="ioc",
            client_id=f"bench-{self.kind.replace('_', '-')}-u-{self.n_upbit}",
        )

    def binance_order(self) -> OrderRequest:
        self.n_binance += 1
        sell = self.n_binance % 2 == 1  # short, cover, short, ...: the position stays flat
        return OrderRequest(
            symbol="BTCUSDT", side="sell" if sell else "buy", type="market", quantity=BINANCE_QTY,
            client_id=f"bench-{self.kind.replace('_', '-')}-b-{self.n_binance}",
        )


@pytest.fixture(scope="module")
def legs(sim_process: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, Legs]]:
    url = sim_process["url"]
    opened: dict[str, Legs] = {}

    async def open_all() -> None:
        for kind in KINDS:
            common = {"base_url": url, "keepwarm_s": 0, "rules_refresh_s": 0, **_KIND_OPTS[kind]}
            up = ExchangeFactory.create(
                "upbit", _KIND_TYPE[kind], api_key=sim_process["upbit"]["access_key"],
                secret_key=sim_process["upbit"]["secret_key"], symbols=("KRW-BTC",),
                rate_limiter=_unthrottled("upbit"), **common,
            )
            bn = ExchangeFactory.create(
                "binance", _KIND_TYPE[kind], api_key=sim_process["binance"]["api_key"],
                secret_key=sim_process["binance"]["secret_key"], symbols=("BTCUSDT",),
                rate_limiter=_unthrottled("binance"), **common,
            )
            await up.open()
            await bn.open()
            bid, ask = await up.best_bid_ask("KRW-BTC")
            opened[kind] = Legs(kind, up, bn, ask, bid)

    async def close_all() -> None:
        for lg in opened.values():
            await lg.upbit.close()
            await lg.binance.close()

    loop.run_until_complete(open_all())
    try:
        yield opened
    finally:
        loop.run_until_complete(close_all())


class ClientCpu:
    """The benchmarks' timer: process CPU seconds accumulated *inside the running loop*
    around each awaited client call.

    Timing ``loop.run_until_complete(...)`` from outside would add the loop's own start and
    stop to every round (about 90 µs here, the same for both adapter types, which only
    blurs the comparison); a trading program awaits orders on a loop that is already
    running. pytest-benchmark reads this clock before and after each round.
    """

    def __init__(self) -> None:
        self.total = 0.0

    def __call__(self) -> float:
        return self.total

    async def measure(self, coro: Awaitable[Any]) -> Any:
        t0 = time.process_time()
        try:
            return await coro
        finally:
            self.total += time.process_time() - t0


CLIENT_CPU = ClientCpu()


def _run(benchmark: Any, loop: asyncio.AbstractEventLoop, make_coro: Any, check: Any, rounds: int) -> None:
    wall: list[float] = []

    def one() -> None:
        coro = make_coro()  # the order is built by the caller, outside the measurement
        t0 = time.perf_counter()
        out = loop.run_until_complete(CLIENT_CPU.measure(coro))
        wall.append(time.perf_counter() - t0)
        check(out)

    benchmark.pedantic(one, rounds=rounds, warmup_rounds=WARMUP, iterations=1)
    wall = wall[WARMUP:]
    benchmark.extra_info["wall_median_us"] = round(statistics.median(wall) * 1e6, 1)
    benchmark.extra_info["timer"] = "client CPU (process_time around the awaited call; the simulator is another process)"


async def _gather(*coros: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*coros))


def _filled(res: Any) -> None:
    assert res.status == "filled", res


# ------------------------------------------------------------------------------ benchmarks
@pytest.mark.benchmark(group="adapter place_order: Upbit (client CPU)", timer=CLIENT_CPU, disable_gc=True)
@pytest.mark.parametrize("kind", KINDS)
def test_upbit_place_order(benchmark: Any, loop: asyncio.AbstractEventLoop, legs: dict, kind: str) -> None:
    lg = legs[kind]
    _run(benchmark, loop, lambda: lg.upbit.place_order(lg.upbit_order()), _filled, ORDERS)


@pytest.mark.benchmark(group="adapter place_order: Binance (client CPU)", timer=CLIENT_CPU, disable_gc=True)
@pytest.mark.parametrize("kind", KINDS)
def test_binance_place_order(benchmark: Any, loop: asyncio.AbstractEventLoop, legs: dict, kind: str) -> None:
    lg = legs[kind]
    _run(benchmark, loop, lambda: lg.binance.place_order(lg.binance_order()), _filled, ORDERS)


@pytest.mark.benchmark(group="adapter two legs via asyncio.gather (client CPU)", timer=CLIENT_CPU, disable_gc=True)
@pytest.mark.parametrize("kind", KINDS)
def test_two_legs_gather(benchmark: Any, loop: asyncio.AbstractEventLoop, legs: dict, kind: str) -> None:
    lg = legs[kind]

    def pair() -> Awaitable[list[Any]]:
        return _gather(lg.upbit.place_order(lg.upbit_order()), lg.binance.place_order(lg.binance_order()))

    def both_filled(results: list[Any]) -> None:
        for r in results:
            _filled(r)

    _run(benchmark, loop, pair, both_filled, max(ORDERS // 2, 5))


@pytest.mark.benchmark(group="adapter HTTP floor: bare aiohttp request (client CPU)", timer=CLIENT_CPU, disable_gc=True)
def test_aiohttp_floor(benchmark: Any, loop: asyncio.AbstractEventLoop, sim_process: dict[str, Any]) -> None:
    """What any aiohttp-based client pays per request before signing or parsing anything:
    a bare ``ClientSession`` GET of ``/fapi/v1/time`` on a warm connection, body read."""
    url = sim_process["url"] + "/fapi/v1/time"
    session = loop.run_until_complete(_session())

    async def get() -> bytes:
        async with session.get(url) as resp:
            return await resp.read()

    try:
        _run(benchmark, loop, get, lambda body: None, ORDERS)
    finally:
        loop.run_until_complete(session.close())


@pytest.mark.benchmark(group="adapter HTTP floor: bare order-lane request (client CPU)", timer=CLIENT_CPU,
                        disable_gc=True)
def test_wire_floor(benchmark: Any, loop: asyncio.AbstractEventLoop, sim_process: dict[str, Any]) -> None:
    """The order lane's share of every order: a bare ``WirePool`` GET of ``/fapi/v1/time``
    on a pre-opened connection, body read (compare with the aiohttp floor)."""
    from adapters_direct._wire import WirePool

    pool = WirePool(sim_process["url"], size=1)
    loop.run_until_complete(pool.open())

    async def get() -> bytes:
        return (await pool.request("GET", "/fapi/v1/time"))[2]

    try:
        _run(benchmark, loop, get, lambda body: None, ORDERS)
    finally:
        loop.run_until_complete(pool.close())


async def _session() -> Any:
    import aiohttp  # created inside the loop it will run on

    return aiohttp.ClientSession()
