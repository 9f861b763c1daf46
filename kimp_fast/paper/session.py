"""One paper-trading run: simulator + premium stream + demo strategy + the real engine.

Everything runs in one process and one event loop, on 127.0.0.1 only:

1. an in-process exchange simulator (:class:`adapters_direct.sim.SimServer`) on a free
   port, its simulation clock accelerated (``time_scale``) so funding falls due every few
   seconds;
2. a seeded, mean-reverting premium pushed to the simulator (:mod:`.premium`);
3. the real :class:`~kimp_fast.engine.KimpEngine` with a real SQLite journal, talking to
   the simulator over HTTP with the simulator's keys — kept in a private ``environ``
   mapping handed to the engine, never in ``os.environ`` and never printed;
4. the demo strategy (:mod:`.strategy`) turning executable premiums into ENTER/EXIT
   signals, optionally with one injected exchange fault per signal (:mod:`.faults`);
5. at the end, the invariants (:mod:`.invariants`) checked against the simulator's ledger
   and the journal file, and a summary (:mod:`.report`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..config import EngineConfig
from ..journal import Journal
from ..models import ExecutionReport, Signal
from .faults import FaultCase, FaultSchedule
from .invariants import check_invariants
from .premium import PremiumDriver, PremiumProcess
from .report import latency_table, pnl_summary, summarize_journal
from .simctl import Quote, SimControl
from .strategy import DemoStrategy

__all__ = ["PaperOptions", "PaperResult", "PaperRun", "SignalRecord", "run_paper"]

log = logging.getLogger("kimp_fast.paper")

# Environment variable names of the private environ handed to the engine (never os.environ).
_ENV = {
    "upbit_access": "KIMP_PAPER_UPBIT_ACCESS_KEY",
    "upbit_secret": "KIMP_PAPER_UPBIT_SECRET_KEY",
    "binance_key": "KIMP_PAPER_BINANCE_API_KEY",
    "binance_secret": "KIMP_PAPER_BINANCE_SECRET_KEY",
}


@dataclass
class PaperOptions:
    """Knobs of a paper run (the CLI's options; defaults finish in about 30 s)."""

    seed: int = 7
    duration_s: float | None = None  # None: 30 s, or a 300 s guard when ``signals`` is set
    signals: int | None = None
    faults: bool = False
    journal: str | None = None  # None: a fresh temporary file, deleted afterwards
    coin: str = "BTC"
    qty: Decimal = Decimal("0.01")
    premium_mean: float = 0.012
    premium_stdev: float = 0.004
    premium_reversion_s: float = 1.0
    band: float = 0.5  # thresholds at mean ± band × stdev
    premium_interval_s: float = 0.2
    time_scale: float = 3600.0  # 8 h funding cycle in 8 s
    poll_s: float = 0.1
    retry_delays: tuple[float, ...] = (0.2, 0.4, 0.8)
    btc_volatility: float = 0.3

    @property
    def stop_after_s(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        return 300.0 if self.signals is not None else 30.0


@dataclass
class SignalRecord:
    signal: Signal
    report: ExecutionReport
    quote: Quote
    fault: FaultCase | None = None
    fault_hit: bool = False
    at_s: float = 0.0


@dataclass
class PaperResult:
    summary: dict[str, Any]
    records: list[SignalRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.summary["ok"])


def paper_config(url: str, journal_path: str, opts: PaperOptions) -> EngineConfig:
    """The engine configuration of paper mode: the simulator's URL, test-friendly timings."""
    return EngineConfig.from_dict(
        {
            "upbit": {"base_url": url, "access_key_env": _ENV["upbit_access"], "secret_key_env": _ENV["upbit_secret"]},
            "binance": {"base_url": url, "api_key_env": _ENV["binance_key"], "secret_key_env": _ENV["binance_secret"]},
            "journal": {"path": journal_path},
            "execution": {"coins": [opts.coin]},
            "one_leg": {"retry_delays": list(opts.retry_delays)},
            "risk": {"check_interval_s": 2.0},
        },
        source="<paper>",
    )


class PaperRun:
    """A paper run in progress; :meth:`snapshot` feeds the live view."""

    def __init__(self, opts: PaperOptions) -> None:
        self.opts = opts
        self.records: list[SignalRecord] = []
        self.quote: Quote | None = None
        self.engine: Any = None
        self.driver: PremiumDriver | None = None
        self.started = time.monotonic()
        self.phase = "starting"
        self.stop_reason = ""
        self.events: deque[str] = deque(maxlen=6)
        mean, sd = Decimal(str(opts.premium_mean)), Decimal(str(opts.premium_stdev))
        band = Decimal(str(opts.band))
        self.strategy = DemoStrategy(
            coin=opts.coin, qty=opts.qty,
            enter_below=(mean - band * sd).quantize(Decimal("0.0001")),
            exit_above=(mean + band * sd).quantize(Decimal("0.0001")),
            id_prefix=f"paper-{time.time_ns() // 1_000_000 % 100_000_000:08d}",
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self) -> dict[str, Any]:
        """Everything the live view shows (read from the running engine and journal)."""
        e = self.engine
        snap: dict[str, Any] = {
            "phase": self.phase, "elapsed": self.elapsed, "limit_s": self.opts.stop_after_s,
            "signals": len(self.records), "max_signals": self.opts.signals,
            "quote": self.quote, "strategy": self.strategy, "events": list(self.events),
            "premium_history": list(self.driver.history) if self.driver else [],
            "records": self.records[-6:], "all_records": list(self.records), "orders": [], "positions": {}, "breakers": {},
            "halted": False, "halt_reason": "",
        }
        if e is not None and e.journal is not None:
            st = e.status()
            snap.update(positions=st["positions"], breakers=st["breakers"], halted=st["halted"],
                        halt_reason=st["halt_reason"], capital=st["capital"])
            snap["orders"] = e.journal.orders(8)
        return snap

    # ----------------------------------------------------------------------------------
    async def run(self, *, on_start: Callable[[PaperRun], Any] | None = None) -> PaperResult:
        from adapters_direct.sim import SimServer

        from ..engine import KimpEngine
        from ..notify import LoggingNotifier

        opts = self.opts
        tmpdir = None
        if opts.journal:
            journal_path = os.path.abspath(opts.journal)
        else:
            tmpdir = tempfile.TemporaryDirectory(prefix="kimp-paper-")
            journal_path = os.path.join(tmpdir.name, "journal.sqlite")
        try:
            async with SimServer(
                seed=opts.seed, port=0, time_scale=opts.time_scale,
                market={"premium": opts.premium_mean, "premium_volatility": 0.0, "volatility": opts.btc_volatility},
            ) as sim:
                environ = {
                    _ENV["upbit_access"]: sim.upbit_keys.access_key,
                    _ENV["upbit_secret"]: sim.upbit_keys.secret_key,
                    _ENV["binance_key"]: sim.binance_keys.api_key,
                    _ENV["binance_secret"]: sim.binance_keys.secret_key,
                }
                cfg = paper_config(sim.url, journal_path, opts)
                async with SimControl(sim.url) as ctl:
                    ledger_before = await ctl.ledger()
                    process = PremiumProcess(mean=opts.premium_mean, stdev=opts.premium_stdev,
                                             reversion_s=opts.premium_reversion_s, seed=opts.seed,
                                             start=opts.premium_mean - opts.premium_stdev)
                    self.driver = PremiumDriver(process, ctl, interval_s=opts.premium_interval_s)
                    await self.driver.start()
                    # Notifications are journaled by the engine and shown in the report;
                    # a quiet logger keeps them from scribbling over the live view.
                    quiet = logging.getLogger("kimp_fast.paper.notifications")
                    quiet.propagate = False
                    quiet.addHandler(logging.NullHandler())
                    engine = KimpEngine(
                        cfg, environ=environ, notifier=LoggingNotifier(logger=quiet),
                        lookup_delays=(0.02, 0.05, 0.1, 0.2), resolve_timeout_s=5.0,
                        # The paper fault mix holds no request in the gateway, so a request
                        # that is not found 2 s after it left never executes (live: recvWindow + 1 s).
                        in_flight_grace_s=2.0,
                    )
                    try:
                        async with engine:
                            self.engine = engine
                            self.phase = "trading"
                            if on_start is not None:
                                on_start(self)
                            await self._trade(engine, ctl)
                            self.phase = "finishing"
                            lot = engine.binance.rules(engine.perp_symbol(opts.coin)).qty_step
                    finally:
                        self.engine = None
                        await self.driver.stop()
                    ledger_after = await ctl.ledger()
                    clock = await ctl.clock()
                    top = await ctl.top()
            summary = self._summarize(journal_path, cfg, ledger_before, ledger_after, clock, top, lot)
            summary["journal_kept"] = tmpdir is None
            return PaperResult(summary, self.records)
        finally:
            if tmpdir is not None:
                tmpdir.cleanup()

    async def _trade(self, engine: Any, ctl: SimControl) -> None:
        opts = self.opts
        schedule = FaultSchedule() if opts.faults else None
        deadline = self.started + opts.stop_after_s
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.stop_reason = f"duration {opts.stop_after_s:g} s reached"
                return
            if opts.signals is not None and len(self.records) >= opts.signals:
                self.stop_reason = f"{opts.signals} signals sent"
                return
            if engine.halted:
                self.stop_reason = f"engine halted: {engine.halt_reason}"
                return
            self.quote = quote = await ctl.quote(opts.coin)
            holding = opts.coin in engine.positions()
            sig = self.strategy.decide(quote, holding=holding, now_ms=time.time_ns() // 1_000_000, now_s=now)
            if sig is None:
                await asyncio.sleep(opts.poll_s)
                continue
            case = schedule.next_for(sig.action) if schedule is not None else None
            fault_id = None
            if case is not None:
                fault_id = (await ctl.fault(case.spec))["id"]
            report = await engine.submit(sig)
            hit = False
            if fault_id is not None:
                hit = await self._fault_hit(ctl, fault_id)
                await ctl.clear_faults()  # a leftover count must not hit the next signal
            if case is not None and not hit:
                schedule.give_back(sig.action)  # type: ignore[union-attr]
            rec = SignalRecord(sig, report, quote, case if hit else None, hit, self.elapsed)
            self.records.append(rec)
            self.events.append(f"{self.elapsed:5.1f}s {sig.action} {report.status}"
                               + (f" [{case.name}]" if hit and case else ""))
            if (opts.coin in engine.positions()) == holding:
                self.strategy.cool_down(time.monotonic())

    @staticmethod
    async def _fault_hit(ctl: SimControl, fault_id: int) -> bool:
        return any(h.get("fault") == fault_id for h in await ctl.fault_history())

    def _summarize(self, journal_path: str, cfg: EngineConfig, before: dict[str, Any], after: dict[str, Any],
                   clock: dict[str, Any], top: dict[str, Any], lot: Decimal) -> dict[str, Any]:
        opts = self.opts
        reports = [r.report for r in self.records]
        with Journal(journal_path) as j:
            jsum = summarize_journal(j)
            checks = check_invariants(
                journal=j, ledger_before=before, ledger_after=after, coins=(opts.coin,),
                lot_step=lot, min_net_profit=cfg.exit.min_net_profit,
            )
        incidents = []
        for r in self.records:
            rep = r.report
            if r.fault is None and rep.status not in ("recovered", "unwound", "manual_required") and not rep.recovery:
                continue
            incidents.append({
                "signal_id": rep.signal_id, "action": rep.action, "fault": r.fault.name if r.fault else None,
                "expected": r.fault.expect if r.fault else None, "status": rep.status,
                "reason": rep.reason, "recovery": list(rep.recovery),
            })
        hist = self.driver.history if self.driver else []
        return {
            "ok": all(c.ok for c in checks),
            "seed": opts.seed,
            "faults": opts.faults,
            "elapsed_s": round(self.elapsed, 2),
            "stop_reason": self.stop_reason,
            "time_scale": opts.time_scale,
            "funding_events": int(clock.get("funding_events", 0)),
            "journal": journal_path,
            "journal_kept": True,
            "strategy": {
                "label": self.strategy.label, "qty": str(opts.qty),
                "enter_below": str(self.strategy.enter_below), "exit_above": str(self.strategy.exit_above),
            },
            "premium": {
                "mean": opts.premium_mean, "stdev": opts.premium_stdev, "reversion_s": opts.premium_reversion_s,
                "min": round(min(hist), 6) if hist else None, "max": round(max(hist), 6) if hist else None,
            },
            **jsum,
            "reports": [
                {"signal_id": r.report.signal_id, "action": r.report.action, "status": r.report.status,
                 "qty": str(r.report.qty), "kimp_seen": None if r.signal.kimp is None else str(r.signal.kimp),
                 "realized_pnl_krw": None if r.report.realized_pnl_krw is None else str(r.report.realized_pnl_krw),
                 "fault": r.fault.name if r.fault else None, "reason": r.report.reason}
                for r in self.records
            ],
            "incidents": incidents,
            "pnl_krw": pnl_summary(reports),
            "account": account_change(before, after, top, opts.coin),
            "latency_us": latency_table(reports),
            "invariants": [c.as_dict() for c in checks],
        }


def account_change(before: dict[str, Any], after: dict[str, Any], top: dict[str, Any], coin: str) -> dict[str, str]:
    """Independent cross-check from the simulator's ledger: the change in account value,
    open positions marked at the final mids (so it includes unrealized P&L)."""

    def mid(sym: str) -> Decimal:
        return (Decimal(top[sym]["bid"]) + Decimal(top[sym]["ask"])) / 2

    def bal(ledger: dict[str, Any], ex: str, cur: str) -> Decimal:
        b = ledger["balances"][ex].get(cur)
        if not b:
            return Decimal(0)
        return Decimal(b.get("balance", "0")) + Decimal(b.get("locked", "0"))

    def upnl(ledger: dict[str, Any]) -> Decimal:
        p = ledger["positions"]["binance"].get(f"{coin}USDT")
        return Decimal(p.get("unrealized_pnl", "0")) if p else Decimal(0)

    fx = mid("KRW-USDT")
    d_krw = bal(after, "upbit", "KRW") - bal(before, "upbit", "KRW")
    d_coin = bal(after, "upbit", coin) - bal(before, "upbit", coin)
    d_usdt = (bal(after, "binance", "USDT") + upnl(after)) - (bal(before, "binance", "USDT") + upnl(before))
    value = d_krw + d_coin * mid(f"KRW-{coin}") + d_usdt * fx
    q = Decimal("0.01")
    return {"krw_change": str(d_krw.quantize(q)), f"{coin.lower()}_change": str(d_coin),
            "usdt_change": str(d_usdt.quantize(Decimal("0.000001"))), "fx": str(fx),
            "value_change_krw": str(value.quantize(q))}


async def run_paper(opts: PaperOptions, *, on_start: Callable[[PaperRun], Any] | None = None) -> PaperResult:
    """Run paper trading end to end and return the summary (see the module docstring)."""
    return await PaperRun(opts).run(on_start=on_start)
