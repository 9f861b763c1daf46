"""One probe variant, run inside its own process: the real engine against the simulator.

The parent (:mod:`kimp_fast.probe._orchestrate`) starts one process per variant with the
environment that variant needs (``KIMP_FAST_NO_EXTENSIONS=1`` for the pure build: the
flag is read once, at import), so "compiled" and "pure" are truly different builds in
one run; the event loop (uvloop or asyncio) is chosen here.

Each round trip is one ENTER followed by one EXIT, submitted to a started
:class:`~kimp_fast.engine.KimpEngine` whose adapters talk to a simulator process with an
injected per-exchange delay. The probe measures the engine, not the exchanges' request
budgets: the rate limiters (client and simulator) are widened so no request waits — their
code still runs on every request — and signals are paced (``interval_s`` between
submits), so each one arrives at an engine that has been idle for a while, as real
signals do. (With the documented budgets, an ENTER/EXIT pair costs ~42 Binance request
weight — the funding-income read alone is 30 — so more than ~45 pairs a minute would
exhaust the 2,400/min IP budget's normal lane.)
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import math
import pstats
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._recorder import LegClock, TimedAdapter, WireMarks, attach_trace, make_trace_config
from ._simproc import OPEN_LIMITS, SimControl, SimProcess, wide_limiter
from ._samples import LEGS, sample

__all__ = ["DEFAULT_VARIANTS", "HEADLINE", "VARIANTS", "RunSpec", "Variant", "run_variant"]

_now = time.perf_counter_ns


@dataclass(frozen=True)
class Variant:
    adapter: str  # "direct" | "ccxt"
    loop: str  # "uvloop" | "asyncio"
    build: str  # "compiled" | "pure"
    traced: bool = True
    spin: bool = False  # keep the loop busy between signals (diagnostic, see RunSpec.spin)
    lane: str = "wire"  # DIRECT only: the adapters' order_lane ("wire" | "aiohttp")
    warm: bool = True  # the engine's keep-warm rehearsal ([performance] keep_warm_ms, default on)


#: Variants, in the order they run. The first is the headline (it also runs the
#: concurrency pairs). ``*_untraced`` measures the cost of the probe's own instrumentation.
VARIANTS: dict[str, Variant] = {
    "direct_compiled_uvloop": Variant("direct", "uvloop", "compiled"),
    "direct_pure_uvloop": Variant("direct", "uvloop", "pure"),
    "direct_compiled_asyncio": Variant("direct", "asyncio", "compiled"),
    "ccxt_uvloop": Variant("ccxt", "uvloop", "compiled"),
    "direct_compiled_uvloop_untraced": Variant("direct", "uvloop", "compiled", traced=False),
    "direct_compiled_uvloop_cold": Variant("direct", "uvloop", "compiled", warm=False),
    "direct_aiohttp_compiled_uvloop": Variant("direct", "uvloop", "compiled", lane="aiohttp"),
    "direct_compiled_uvloop_spin": Variant("direct", "uvloop", "compiled", spin=True),
}
#: what runs unless ``--variants`` says otherwise (``*_spin`` keeps a CPU busy: opt-in)
DEFAULT_VARIANTS = [name for name, v in VARIANTS.items() if not v.spin]
HEADLINE = "direct_compiled_uvloop"


@dataclass
class RunSpec:
    """What one worker process does (JSON-serialisable: it crosses the process boundary)."""

    variant: str
    n: int = 200
    upbit_delay_ms: float = 2.0
    binance_delay_ms: float = 15.0
    warmup: int = 5
    interval_s: float = 0.2
    qty: str = "0.01"
    pairs: list[tuple[float, float]] = field(default_factory=list)
    pair_n: int = 20
    profile_n: int = 0
    market_poll_s: float = 0.0
    #: keep the event loop (and so the CPU) busy between signals: shows how much of the
    #: latency is a cold CPU waking up (a diagnostic, not a production setting)
    spin: bool = False
    #: the simulator answers Upbit orders "wait" (as the real venue does): one follow-up
    #: ``GET /v1/order`` per immediate Upbit order
    upbit_answer_pending: bool = False
    #: also count the function calls of one ENTER up to both writes (DIRECT, traced only)
    count_calls: bool = False
    progress: bool = True


# ---------------------------------------------------------------------------- engine
def _config(sim: SimProcess, variant: Variant, journal_dir: str) -> Any:
    from kimp_fast.config import EngineConfig

    return EngineConfig.from_dict({
        "upbit": {"base_url": sim.url, "access_key_env": "PROBE_UPBIT_ACCESS", "secret_key_env": "PROBE_UPBIT_SECRET",
                  "adapter": variant.adapter},
        "binance": {"base_url": sim.url, "api_key_env": "PROBE_BINANCE_KEY", "secret_key_env": "PROBE_BINANCE_SECRET",
                    "adapter": variant.adapter},
        "journal": {"path": str(Path(journal_dir) / "probe-journal.sqlite")},
        # The probe exits at whatever the frozen market gives: the exit *estimate* is still
        # computed from fresh books (the same work); only the no-loss decision is waived.
        "exit": {"allow_loss_exit": True},
        "risk": {"check_interval_s": 3600.0},
        "one_leg": {"retry_delays": [0.05, 0.1, 0.2]},
        # warm: the default; cold: no rehearsal between signals, what the CPU alone gives
        "performance": {"keep_warm_ms": 2.0 if variant.warm else 0.0},
    }, source="<latency probe>")


def _adapters(cfg: Any, environ: dict[str, str], variant: Variant, clocks: dict[str, LegClock]) -> dict[str, Any]:
    """The engine's adapters, built as the engine would build them, plus instrumentation."""
    from adapters_direct.factory import ExchangeFactory
    from kimp_fast.engine import _adapter_options  # the engine's own option mapping

    out = {}
    for ex in LEGS:
        section = cfg.upbit if ex == "upbit" else cfg.binance
        key, secret = cfg.upbit_keys(environ) if ex == "upbit" else cfg.binance_keys(environ)
        opts = {**_adapter_options(cfg, ex), "rate_limiter": wide_limiter(ex)}
        if variant.adapter == "direct":
            opts["order_lane"] = variant.lane
            if variant.traced:
                opts["trace_configs"] = (make_trace_config(clocks[ex]),)
                opts["wire_trace"] = WireMarks(clocks[ex])
        raw = ExchangeFactory.create(ex, section.adapter, api_key=key, secret_key=secret.get(),
                                     base_url=section.base_url, **opts)
        out[ex] = TimedAdapter(raw, clocks[ex]) if variant.traced else raw
    return out


def _trace_ccxt(adapters: dict[str, Any], clocks: dict[str, LegClock]) -> None:
    for ex in LEGS:
        inner = adapters[ex]._inner
        session = getattr(getattr(inner, "ex", None), "session", None)
        if session is None:
            raise RuntimeError(f"ccxt {ex}: no aiohttp session after open()")
        attach_trace(session, make_trace_config(clocks[ex]))


class _Runner:
    def __init__(self, spec: RunSpec, variant: Variant, engine: Any, clocks: dict[str, LegClock]) -> None:
        self.spec = spec
        self.variant = variant
        self.engine = engine
        self.clocks = clocks
        self.qty = Decimal(spec.qty)
        self.errors: list[str] = []
        self._next = 0.0
        self._run_id = uuid.uuid4().hex[:8]
        self._seq = 0

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self.spec.interval_s

    async def submit(self, action: str, profiler: cProfile.Profile | None = None) -> dict[str, Any] | None:
        from kimp_fast.models import Signal

        await self._pace()
        self._seq += 1
        sig = Signal(id=f"probe-{self._run_id}-{self._seq}-{action[:2]}", action=action, coin="BTC",
                     ts_ms=time.time_ns() // 1_000_000, qty=self.qty if action == "ENTER" else None, ttl_ms=10_000)
        for c in self.clocks.values():
            c.reset()
        if profiler is not None:
            profiler.enable()
        t0 = _now()
        report = await self.engine.submit(sig)
        t1 = _now()
        if profiler is not None:
            profiler.disable()
        if report.status != "filled":
            self.errors.append(f"{action} {report.status}: {report.reason[:200]}")
            return None
        marks = None
        if self.variant.traced:
            marks = {ex: c.snapshot() for ex, c in self.clocks.items()}
            if any(not (t0 <= m["adapter_in"] <= m["req_start"] <= m["wire"] <= m["resp_end"] <= m["adapter_out"] <= t1)
                   for m in marks.values()):
                self.errors.append(f"{action}: incomplete leg marks {marks}")
                return None
        return sample(t0, t1, report, marks)

    async def count_calls(self) -> dict[str, Any]:
        """The function calls one ENTER makes from ``submit()`` until both orders are
        written (``sys.setprofile``; the probe's own marks excluded): the length of the
        path in a unit that, unlike microseconds, a shared machine's noise does not move.
        Then an EXIT flattens the position."""
        from kimp_fast.models import Signal

        calls: Counter[str] = Counter()
        mine = _recorder_file()

        def prof(frame: Any, event: str, arg: Any) -> None:
            code = frame.f_code
            if code.co_filename == mine:
                return
            if event == "call":
                calls[f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_name})"] += 1
            elif event == "c_call":
                calls[f"C {getattr(arg, '__qualname__', None) or repr(arg)}"] += 1

        def stop() -> None:
            if all(c.wire for c in self.clocks.values()):
                sys.setprofile(None)

        await self._pace()
        self._seq += 1
        sig = Signal(id=f"probe-{self._run_id}-{self._seq}-calls", action="ENTER", coin="BTC",
                     ts_ms=time.time_ns() // 1_000_000, qty=self.qty, ttl_ms=10_000)
        for c in self.clocks.values():
            c.reset()
            c.on_wire = stop
        sys.setprofile(prof)
        try:
            report = await self.engine.submit(sig)
        finally:
            sys.setprofile(None)
            for c in self.clocks.values():
                c.on_wire = None
        if report.status != "filled":
            return {"error": f"ENTER {report.status}: {report.reason[:200]}"}
        complete = all(c.wire for c in self.clocks.values())
        await self.submit("EXIT")
        python = sum(n for k, n in calls.items() if not k.startswith("C "))
        return {
            "complete": complete,  # False: a leg was not written before submit() returned
            "python": python,
            "c": sum(calls.values()) - python,
            "by_function": [[k, n] for k, n in calls.most_common()],
        }

    async def round_trips(self, n: int, label: str, profiler: cProfile.Profile | None = None
                          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        enters: list[dict[str, Any]] = []
        exits: list[dict[str, Any]] = []
        step = max(1, n // 10)
        for i in range(n):
            e = await self.submit("ENTER", profiler)
            if e is not None:
                enters.append(e)
            x = await self.submit("EXIT", profiler)
            if x is not None:
                exits.append(x)
            if self.spec.progress and label and ((i + 1) % step == 0 or i + 1 == n):
                med = sorted(s["total"] for s in enters)[len(enters) // 2] / 1000 if enters else math.nan
                print(f"[probe {self.spec.variant}] {label}: {i + 1}/{n} round trips, "
                      f"ENTER total p50 {med:.2f} ms, errors {len(self.errors)}", file=sys.stderr, flush=True)
        return enters, exits


def _profile_rows(profiler: cProfile.Profile, submits: int, top: int = 30) -> dict[str, Any]:
    st = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({
            "function": f"{Path(filename).name}:{line}({func})" if line else func,
            "calls_per_submit": round(nc / submits, 2),
            "tottime_us_per_submit": round(tt * 1e6 / submits, 1),
            "cumtime_us_per_submit": round(ct * 1e6 / submits, 1),
        })
    by_tot = sorted(rows, key=lambda r: -r["tottime_us_per_submit"])[:top]
    by_cum = sorted(rows, key=lambda r: -r["cumtime_us_per_submit"])[:top]
    total = round(sum(r["tottime_us_per_submit"] for r in rows), 1)
    return {"submits": submits, "total_tottime_us_per_submit": total, "by_tottime": by_tot, "by_cumtime": by_cum}


async def _run(spec: RunSpec, variant: Variant, sim: SimProcess) -> dict[str, Any]:
    from kimp_fast.engine import KimpEngine
    from kimp_fast.notify import LoggingNotifier

    clocks = {ex: LegClock(ex) for ex in LEGS}
    environ = sim.environ()
    with tempfile.TemporaryDirectory(prefix="kimp-probe-") as tmp:
        cfg = _config(sim, variant, tmp)
        adapters = _adapters(cfg, environ, variant, clocks)
        async with SimControl(sim.url) as control:
            await control.configure(limits=OPEN_LIMITS, upbit_delay_ms=spec.upbit_delay_ms,
                                    binance_delay_ms=spec.binance_delay_ms)
            async with adapters["upbit"], adapters["binance"]:
                if variant.traced and variant.adapter == "ccxt":
                    _trace_ccxt(adapters, clocks)
                engine = KimpEngine(
                    cfg, upbit=adapters["upbit"], binance=adapters["binance"], environ=environ,
                    notifier=LoggingNotifier(), market_max_age_s=3600.0, market_poll_s=spec.market_poll_s,
                )
                async with engine:
                    spinner = asyncio.ensure_future(_spin()) if spec.spin or variant.spin else None
                    runner = _Runner(spec, variant, engine, clocks)
                    await runner.round_trips(spec.warmup, "")
                    runner.errors.clear()
                    await control.clear_stats()
                    enters, exits = await runner.round_trips(spec.n, "main")
                    sim_stats = await control.stats()
                    result: dict[str, Any] = {
                        "available": True,
                        **asdict(variant),
                        "enter": enters,
                        "exit": exits,
                        "sim_service_us": sim_stats.get("service_us", {}),
                        "errors": runner.errors[:20],
                        "error_count": len(runner.errors),
                    }
                    if spec.count_calls and variant.traced and variant.adapter == "direct":
                        result["calls_to_wire"] = await runner.count_calls()
                    if spec.pairs:
                        result["pairs"] = await _pairs(spec, runner, control)
                    if spec.profile_n > 0:
                        await control.set_delays(spec.upbit_delay_ms, spec.binance_delay_ms)
                        prof = cProfile.Profile()
                        before = runner._seq
                        await runner.round_trips(spec.profile_n, "profile", prof)
                        result["profile"] = _profile_rows(prof, runner._seq - before)
                    if spinner is not None:
                        spinner.cancel()
                        result["spin"] = True
                    try:  # let the last background balance refresh finish before closing
                        await engine.capital.ready()
                    except Exception as exc:  # noqa: BLE001 - after the measurement: report only
                        result["errors"].append(f"final balance refresh: {type(exc).__name__}: {exc}")
                    return result


def _recorder_file() -> str:
    from . import _recorder

    return _recorder.__file__


async def _spin() -> None:
    """Yield to the loop forever: the loop never blocks in epoll, the vCPU never idles."""
    while True:
        await asyncio.sleep(0)


async def _pairs(spec: RunSpec, runner: _Runner, control: SimControl) -> list[dict[str, Any]]:
    """ENTER samples for each (Upbit, Binance) delay pair."""
    rows = []
    for d1, d2 in spec.pairs:
        await control.set_delays(d1, d2)
        await runner.round_trips(1, "")  # settle on the new delays
        enters, _ = await runner.round_trips(spec.pair_n, f"pair {d1:g}/{d2:g} ms")
        rows.append({"d1_ms": d1, "d2_ms": d2, "enter": enters})
    return rows


def run_variant(spec: RunSpec) -> dict[str, Any]:
    """Run one variant in this process (the build is whatever this process imported)."""
    import kimp_fast

    variant = VARIANTS[spec.variant]
    build = "compiled" if kimp_fast.USE_EXTENSIONS else "pure"
    if build != variant.build:
        return {"available": False, **asdict(variant),
                "reason": f"this process runs the {build} build, the variant needs {variant.build}"
                          + (" (extensions not built?)" if variant.build == "compiled" else "")}
    if variant.adapter == "ccxt":
        try:
            import ccxt  # noqa: F401
        except ImportError:
            return {"available": False, **asdict(variant),
                    "reason": "ccxt is not installed (pip install 'kimp-fast[ccxt]')"}
    loop_factory: Any = asyncio.new_event_loop
    if variant.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            return {"available": False, **asdict(variant), "reason": "uvloop is not installed"}
        loop_factory = uvloop.new_event_loop
    with SimProcess(upbit_delay_ms=spec.upbit_delay_ms, binance_delay_ms=spec.binance_delay_ms,
                    upbit_answer_pending=spec.upbit_answer_pending) as sim:
        result = run_on(loop_factory, _run(spec, variant, sim))
    return result


def run_on(loop_factory: Any, coro: Any) -> Any:
    """``asyncio.run`` on a loop made by ``loop_factory`` (3.10 has no ``asyncio.Runner``)."""
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
