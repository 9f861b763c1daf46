"""Engine benchmarks: ``KimpEngine.submit`` ENTER then EXIT against the simulator, zero delay.

What one round is: a started engine (real SQLite journal, real adapters) submits an
ENTER and then an EXIT of 0.01 BTC to the simulator, which runs in its own process
(``kimp-fast sim``, no injected delay) so its CPU time is not charged to the engine's
event loop. Both legs go out concurrently each time; EXIT reads fresh books and the
funding income first, as it always does; every signal journals its write-ahead rows,
its fills and its report; ``capital.ready()`` waits for the previous signal's background
balance refresh. The round is the whole user-visible cost of two signals back to back.

The rate limiters are raised (client and simulator) so that no order waits for a budget:
their code still runs on every request. Per-stage timings with a network delay, the
compiled/pure comparison and the concurrency check are the latency probe's job
(``bench/latency_probe.py``, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import kimp_fast
from kimp_fast.probe._simproc import OPEN_LIMITS, SimControl, SimProcess, wide_limiter

# (adapter type, event loop)
CASES = [("direct", "uvloop"), ("direct", "asyncio"), ("ccxt", "uvloop")]
QTY = Decimal("0.01")


@pytest.fixture(scope="module")
def sim_process() -> Iterator[SimProcess]:
    with SimProcess(upbit_delay_ms=0.0, binance_delay_ms=0.0) as sim:
        yield sim


def _loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def started_engine(request: pytest.FixtureRequest, sim_process: SimProcess, tmp_path: Path) -> Iterator[tuple[Any, Any, dict]]:
    from adapters_direct.factory import ExchangeFactory
    from kimp_fast.config import EngineConfig
    from kimp_fast.engine import KimpEngine, _adapter_options
    from kimp_fast.notify import LoggingNotifier

    adapter, loop_kind = request.param
    if adapter == "ccxt":
        pytest.importorskip("ccxt", reason="the CCXT adapter is the optional extra kimp-fast[ccxt]")
    sim = sim_process
    environ = sim.environ()
    cfg = EngineConfig.from_dict({
        "upbit": {"base_url": sim.url, "access_key_env": "PROBE_UPBIT_ACCESS", "secret_key_env": "PROBE_UPBIT_SECRET",
                  "adapter": adapter},
        "binance": {"base_url": sim.url, "api_key_env": "PROBE_BINANCE_KEY", "secret_key_env": "PROBE_BINANCE_SECRET",
                    "adapter": adapter},
        "journal": {"path": str(tmp_path / "bench-journal.sqlite")},
        "exit": {"allow_loss_exit": True},  # the frozen market never pays for a round trip
        "risk": {"check_interval_s": 3600.0},
    }, source="<engine benchmark>")
    adapters = {}
    for ex in ("upbit", "binance"):
        section = cfg.upbit if ex == "upbit" else cfg.binance
        key, secret = cfg.upbit_keys(environ) if ex == "upbit" else cfg.binance_keys(environ)
        opts = {**_adapter_options(cfg, ex), "rate_limiter": wide_limiter(ex)}
        adapters[ex] = ExchangeFactory.create(ex, section.adapter, api_key=key, secret_key=secret.get(),
                                              base_url=section.base_url, **opts)
    engine = KimpEngine(cfg, upbit=adapters["upbit"], binance=adapters["binance"], environ=environ,
                        notifier=LoggingNotifier(), market_max_age_s=3600.0)
    loop = _loop(loop_kind)
    asyncio.set_event_loop(loop)

    async def start() -> None:
        async with SimControl(sim.url) as control:
            await control.configure(limits=OPEN_LIMITS, upbit_delay_ms=0, binance_delay_ms=0)
        await adapters["upbit"].__aenter__()
        await adapters["binance"].__aenter__()
        await engine.start()

    async def stop() -> None:
        await engine.capital.ready()
        await engine.close()
        for a in adapters.values():
            await a.__aexit__(None, None, None)

    loop.run_until_complete(start())
    info = {"adapter": adapter, "loop": loop_kind, "build": "compiled" if kimp_fast.USE_EXTENSIONS else "pure"}
    try:
        yield engine, loop, info
    finally:
        loop.run_until_complete(stop())
        asyncio.set_event_loop(None)
        loop.close()


async def _round_trip(engine: Any, run: str, i: int) -> tuple[str, str]:
    from kimp_fast.models import Signal

    now = time.time_ns() // 1_000_000
    enter = await engine.submit(Signal(id=f"b-{run}-{i}-E", action="ENTER", coin="BTC", ts_ms=now, qty=QTY))
    exit_ = await engine.submit(Signal(id=f"b-{run}-{i}-X", action="EXIT", coin="BTC", ts_ms=now))
    return enter.status, exit_.status


@pytest.mark.benchmark(group="engine submit: ENTER + EXIT round trip (simulator process, zero delay)")
def test_engine_enter_exit_round_trip(benchmark: Any, started_engine: tuple[Any, Any, dict]) -> None:
    """One ENTER and one EXIT through the started engine, both legs concurrent each time."""
    engine, loop, info = started_engine
    benchmark.extra_info.update(info)
    run = f"{info['adapter']}{info['loop']}{time.monotonic_ns()}"
    counter = itertools.count()
    assert loop.run_until_complete(_round_trip(engine, run, next(counter))) == ("filled", "filled")  # warm

    def round_trip() -> tuple[str, str]:
        return loop.run_until_complete(_round_trip(engine, run, next(counter)))

    assert benchmark(round_trip) == ("filled", "filled")
