"""Crash-restart torture: the engine in a subprocess, killed with SIGKILL at chosen moments,
restarted on the same journal, over and over; the invariants checked after every restart.

The simulator, the webhook receiver and the checks live in this (parent) process, so the
exchanges outlive every engine. Each round picks a scenario that aims the kill at one
kind of moment, widening the window with the simulator's ``delay`` fault or long repair
delays where needed:

================  ========================================================================
after_send        an order request is inside the exchange (delayed before or after it is
                  processed) when the engine dies: the new engine must find it by client id
between_legs      one leg has executed, the other not yet (its request delayed, or the
                  KRW market-buy mode where the short is sent after the spot fill)
mid_recovery      a leg was rejected and the one-leg repair is waiting to retry (long
                  ``retry_delays``): the new engine resumes the repair from the journal
mid_reconcile     a restarted engine is itself killed while reconciling (its look-ups
                  delayed); the next one must finish the job
random            a burst of signals, random faults, a kill at a uniformly random moment
                  (this is where kills land inside journal writes: SQLite's atomic commit
                  is what is relied on; ``PRAGMA integrity_check`` runs after every kill)
================  ========================================================================

After each kill: faults are counted and cleared, the kill point is classified from the
journal file and the simulator's request log, a new engine starts (its start reconciles),
the killed batch is submitted again (same ids: each must come back ``duplicate`` or be
processed once), and the invariants are checked. A new engine that comes up halted
(``manual_required`` or a reconcile mismatch) is a finding, recorded as a violation; the
operator then realigns and resumes so the run can go on.

Entry point: ``python bench/crash_torture.py --kills N --seed S --json FILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal as signals_mod
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .invariants import InvariantChecker
from .operator import Operator
from .scenario import FAULT_KINDS, LOOKUP_PATH, ORDER_PATH, FaultPlanner
from .setup import SIM_KWARGS, HarnessTimings, config_sections, fast_sim_limits, harness_environ
from .simctl import SimControl
from .webhook import WebhookReceiver

__all__ = ["DriverProcess", "TortureOptions", "run_torture", "SCENARIOS", "write_driver_config"]

SCENARIOS = ("after_send", "between_legs", "mid_recovery", "mid_reconcile", "random")


@dataclass
class TortureOptions:
    kills: int = 50
    seed: int = 1
    timings: HarnessTimings = field(default_factory=lambda: HarnessTimings(
        client_timeout_s=2.0, retry_delays=(0.05, 0.1, 0.2), resolve_timeout_s=6.0))
    recovery_delays: tuple[float, ...] = (0.6, 1.0, 1.5)  # mid_recovery rounds: wide windows
    scenarios: tuple[str, ...] = SCENARIOS
    cycle: bool = False  # take the scenarios in turn instead of at random
    workdir: str | None = None
    full_check_every: int = 5
    progress: Callable[[str], None] | None = None
    ready_timeout_s: float = 90.0


class DriverProcess:
    """One engine subprocess and its event stream."""

    def __init__(self, cfg_path: str, env: dict[str, str], log_path: str) -> None:
        self.cfg_path = cfg_path
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.started_at = 0.0

    async def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kimp_fast.reliability.driver", self.cfg_path,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log, env=self.env,
            )
        finally:
            log.close()
        self.started_at = time.monotonic()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self._queue.put({"event": "eof"})
                return
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            self.events.append(ev)
            await self._queue.put(ev)

    async def next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def wait_for(self, names: tuple[str, ...], timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.next_event(max(0.0, deadline - time.monotonic()))
            if ev is None or ev["event"] in names or ev["event"] == "eof":
                return ev

    async def send(self, **cmd: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signals_mod.SIGKILL)
        await self._finish()

    async def stop(self, timeout: float = 30.0) -> int | None:
        if self.alive:
            await self.send(op="exit")
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)  # type: ignore[union-attr]
            except asyncio.TimeoutError:
                os.kill(self.proc.pid, signals_mod.SIGKILL)  # type: ignore[union-attr]
        await self._finish()
        return self.proc.returncode if self.proc is not None else None

    async def _finish(self) -> None:
        if self.proc is not None:
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5.0)

    def reports(self) -> list[dict[str, Any]]:
        return [e["report"] for e in self.events if e["event"] == "report"]


def write_driver_config(path: str, url: str, journal_path: str, timings: HarnessTimings, *,
                        synchronous: str = "NORMAL", fast_limits: bool = True, **overrides: Any) -> str:
    """Write the driver's config file (engine sections + engine keyword arguments)."""
    sections = config_sections(url, journal_path, timings, synchronous=synchronous, **overrides)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"sections": sections, "engine_kwargs": timings.engine_kwargs(), "fast_limits": fast_limits}, fh)
    return path


class _Torture:
    def __init__(self, opts: TortureOptions, sim: Any, control: SimControl, hook: WebhookReceiver,
                 checker: InvariantChecker, operator: Operator, workdir: str, journal_path: str) -> None:
        self.o = opts
        self.rng = random.Random(opts.seed * 7919 + 17)
        self.faults = FaultPlanner(self.rng, client_timeout_s=opts.timings.client_timeout_s, late_delays=False)
        self.sim = sim
        self.control = control
        self.hook = hook
        self.checker = checker
        self.operator = operator
        self.workdir = workdir
        self.journal_path = journal_path
        self.log_path = os.path.join(workdir, "drivers.log")
        self.env = {**os.environ, **harness_environ(sim.upbit_keys, sim.binance_keys, hook.url)}
        self.violations: list[str] = []
        self.kills: list[dict[str, Any]] = []
        self.kill_points: Counter[str] = Counter()
        self.scenario_counts: Counter[str] = Counter()
        self.restarts = 0
        self.halts_after_restart: list[dict[str, Any]] = []
        self.statuses: Counter[str] = Counter()
        self.signals = 0
        self.resubmitted = 0
        self.n = 0
        self.driver: DriverProcess | None = None
        self.pending_resubmit: list[dict[str, Any]] = []
        self.startup_s: list[float] = []

    # -- helpers -------------------------------------------------------------------------
    def violation(self, msg: str) -> None:
        self.violations.append(f"[seed {self.o.seed} kill {len(self.kills)}] {msg}")

    def new_signal(self, action: str, qty: str | None = None) -> dict[str, Any]:
        self.n += 1
        p: dict[str, Any] = {"id": f"t{self.o.seed}-{self.n}", "action": action, "coin": "BTC",
                             "ts_ms": time.time_ns() // 1_000_000, "ttl_ms": 60_000}
        if qty is not None:
            p["qty"] = qty
        return p

    def position(self) -> dict[str, Any] | None:
        return self.checker.view.positions().get("BTC")

    async def premium_for(self, action: str) -> None:
        pos = self.position()
        if action == "EXIT" and pos is not None and pos.get("entry_kimp") is not None:
            await self.control.market(premium=float(pos["entry_kimp"]) + self.rng.uniform(0.006, 0.012))
        else:
            await self.control.market(premium=round(self.rng.uniform(0.005, 0.02), 4))

    def next_action(self) -> str:
        return "EXIT" if self.position() is not None else "ENTER"

    def write_config(self, scenario: str) -> str:
        overrides: dict[str, Any] = {}
        if scenario == "mid_recovery":
            overrides["one_leg"] = {"retry_delays": list(self.o.recovery_delays)}
        if scenario == "between_legs" and self.rng.random() < 0.5:
            overrides["execution"] = {"upbit_buy_mode": "market_krw"}
        sync = "FULL" if scenario == "random" and self.rng.random() < 0.5 else "NORMAL"
        return write_driver_config(os.path.join(self.workdir, "driver.json"), self.sim.url, self.journal_path,
                                   self.o.timings, synchronous=sync, **overrides)

    async def start_driver(self, scenario: str) -> DriverProcess | None:
        """Start an engine; returns it once ready (None if it never got there)."""
        d = DriverProcess(self.write_config(scenario), self.env, self.log_path)
        await d.start()
        self.driver = d
        ev = await d.wait_for(("ready", "start_failed"), self.o.ready_timeout_s)
        if ev is None or ev["event"] != "ready":
            self.violation(f"engine did not come up after a restart: {ev}")
            await d.kill()
            self.driver = None
            return None
        self.startup_s.append(time.monotonic() - d.started_at)
        self.restarts += 1
        if ev.get("halted"):
            await self.on_halt(d, ev.get("halt_reason", ""), where="after restart")
        return d

    async def on_halt(self, d: DriverProcess, reason: str, *, where: str) -> None:
        """A halted engine after a crash: a finding. The operator realigns and resumes."""
        crit = await self.hook.wait_for(lambda e: str(e.get("title", "")).startswith("CRITICAL"), timeout=5.0)
        self.halts_after_restart.append({"where": where, "reason": reason[:500], "critical_webhook": crit is not None})
        self.violation(f"engine halted {where}: {reason[:400]}")

        async def reconcile() -> Any:
            await d.send(op="reconcile")
            ev = await d.wait_for(("reconciled",), 60.0)
            return ev.get("summary") if ev else None

        async def resume() -> None:
            await d.send(op="resume")
            await d.wait_for(("resumed",), 30.0)

        await self.operator.intervene(reason=reason, reconcile=reconcile, resume=resume)

    async def submit(self, d: DriverProcess, signals: list[dict[str, Any]]) -> None:
        self.signals += len(signals)
        await d.send(op="submit", signals=signals)

    async def collect(self, d: DriverProcess, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait for ``batch_done``; returns the reports received."""
        n0 = len(d.reports())
        ev = await d.wait_for(("batch_done",), timeout)
        if ev is None:
            self.violation("a batch did not finish within 60 s")
        reps = d.reports()[n0:]
        for r in reps:
            self.statuses[r["status"]] += 1
        for e in d.events:
            if e["event"] == "submit_raised" and not e.get("_seen"):
                e["_seen"] = True
                self.violation(f"submit raised {e['error']}")
        return reps

    def requests_since(self, seq: int) -> list[dict[str, Any]]:
        return [r for r in list(self.sim.state.requests) if r["seq"] > seq]

    def orders_for(self, signal_id: str) -> list[Any]:
        return [o for o in self.sim.state.orders if o.client_id.startswith(signal_id + "-")]

    async def wait_until(self, cond: Callable[[], bool], timeout: float, step: float = 0.002) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            await asyncio.sleep(step)
        return cond()

    # -- one round -----------------------------------------------------------------------
    async def round(self, scenario: str) -> None:
        d = self.driver
        assert d is not None
        rng = self.rng
        action = self.next_action()
        await self.premium_for(action)
        qty = f"{rng.randint(3, 20) / 1000:.3f}" if action == "ENTER" else None
        sig = self.new_signal(action, qty)
        batch = [sig]
        seq0 = self.sim.state.request_seq
        t0 = time.monotonic()
        fired_before = Counter(self.control.fired)
        detail: dict[str, Any] = {"scenario": scenario, "action": action, "signals": [sig["id"]]}
        if scenario == "after_send":
            ex = rng.choice(("upbit", "binance"))
            ms = rng.randint(400, 900)
            phase = "after" if rng.random() < 0.7 else "before"
            await self.control.fault(exchange=ex, kind="delay", method="POST", path=ORDER_PATH[ex], ms=ms,
                                     phase=phase, count=1)
            detail.update(exchange=ex, delay_ms=ms, phase=phase)
            await self.submit(d, batch)
            hit = await self.wait_until(lambda: any(
                r["path"] == ORDER_PATH[ex] and r["method"] == "POST" and r.get("fault") == "delay"
                for r in self.requests_since(seq0)), 10.0)
            await asyncio.sleep(rng.uniform(0, min(ms, 300)) / 1000 if hit else 0)
        elif scenario == "between_legs":
            krw_mode = self._krw_mode
            slow = "binance" if (krw_mode or rng.random() < 0.5) else "upbit"
            fast = "upbit" if slow == "binance" else "binance"
            await self.control.fault(exchange=slow, kind="delay", method="POST", path=ORDER_PATH[slow],
                                     ms=rng.randint(400, 800), phase="before", count=2)
            detail.update(slow=slow, krw_mode=krw_mode)
            await self.submit(d, batch)
            await self.wait_until(lambda: any(o.exchange == fast for o in self.orders_for(sig["id"])), 10.0)
            await asyncio.sleep(rng.uniform(0, 0.05))
        elif scenario == "mid_recovery":
            ex = rng.choice(("upbit", "binance"))
            spec: dict[str, Any] = {"exchange": ex, "kind": "reject", "method": "POST", "path": ORDER_PATH[ex],
                                    "count": rng.randint(1, 3)}
            if ex == "binance":
                spec["code"] = -2019 if action == "ENTER" else -2022
            else:
                spec["name"] = "insufficient_funds_bid" if action == "ENTER" else "insufficient_funds_ask"
            await self.control.fault(**spec)
            detail.update(rejected=ex, count=spec["count"])
            await self.submit(d, batch)
            view = self.checker.view
            hit = await self.wait_until(lambda: any(
                s["step"].endswith("-wait") for s in view.recovery(signal_id=sig["id"])), 10.0, step=0.01)
            await asyncio.sleep(rng.uniform(0, 0.5) if hit else 0)
        elif scenario == "mid_reconcile":
            # First leave an order in flight (as after_send), then kill the next engine while
            # it reconciles it.
            ex = rng.choice(("upbit", "binance"))
            await self.control.fault(exchange=ex, kind="delay", method="POST", path=ORDER_PATH[ex],
                                     ms=rng.randint(300, 600), phase="after", count=1)
            await self.submit(d, batch)
            await self.wait_until(lambda: any(r["path"] == ORDER_PATH[ex] and r["method"] == "POST"
                                              for r in self.requests_since(seq0)), 10.0)
            await self.kill(d, scenario + ":first", detail, t0, batch, fired_before)
            for lex in ("upbit", "binance"):
                await self.control.fault(exchange=lex, kind="delay", method="GET", path=LOOKUP_PATH[lex],
                                         ms=rng.randint(300, 700), phase="before", count=3)
            seq1 = self.sim.state.request_seq
            d2 = DriverProcess(self.write_config("mid_reconcile"), self.env, self.log_path)
            await d2.start()
            self.driver = d2
            hit = await self.wait_until(lambda: any(r["path"] in LOOKUP_PATH.values() and r["method"] == "GET"
                                                    for r in self.requests_since(seq1)), 30.0, step=0.005)
            await asyncio.sleep(rng.uniform(0, 0.3) if hit else 0)
            if any(e["event"] == "ready" for e in d2.events):
                detail["note"] = "engine was ready before the kill"
            await self.kill(d2, scenario, {**detail, "reconciling": hit}, time.monotonic(), [], Counter(self.control.fired))
            return
        else:  # random
            batch = [sig] + [self.new_signal(rng.choice(("ENTER", "EXIT")), f"{rng.randint(3, 15) / 1000:.3f}")
                             for _ in range(rng.randint(1, 3))]
            for f in self.faults.some(0.7):
                await self.control.fault(**f)
            detail["signals"] = [s["id"] for s in batch]
            await self.submit(d, batch)
            await asyncio.sleep(rng.uniform(0, 0.12))
        await self.kill(d, scenario, detail, t0, batch, fired_before)

    async def kill(self, d: DriverProcess, scenario: str, detail: dict[str, Any], t0: float,
                   batch: list[dict[str, Any]], fired_before: Counter[str]) -> None:
        await d.kill()
        elapsed = round((time.monotonic() - t0) * 1000)
        point = self.classify(d)
        fired = await self.control.settle_faults()
        self.kill_points[point] += 1
        self.scenario_counts[scenario] += 1
        integrity = self.checker.view.integrity()
        if integrity != "ok":
            self.violation(f"journal integrity_check after a kill: {integrity}")
        self.kills.append({**detail, "scenario": scenario, "point": point, "ms_after_submit": elapsed,
                           "faults_fired": dict(fired)})
        self.pending_resubmit.extend(batch)
        self.driver = None
        # Requests the dead engine left inside the simulator (delayed) land before the next start.
        await asyncio.sleep(1.0)

    def classify(self, d: DriverProcess) -> str:
        """Where did the kill land? Read from the journal and the simulator's request log."""
        v = self.checker.view
        processing = v.processing()
        if not any(e["event"] == "ready" for e in d.events):
            unfinished = [o for o in v.orders() if o["state"] in ("intent", "sent", "unknown", "open")]
            return "mid_reconcile" if unfinished or processing else "during_start"
        if not processing:
            return "idle_or_finished"
        bodies = [r.get("body", "") + r.get("query", "") for r in list(self.sim.state.requests)[-400:]
                  if r["method"] == "POST"]
        for s in processing:
            orders = v.orders_for_signal(s["id"])
            steps = v.recovery(signal_id=s["id"])
            pending = [o for o in orders if o["state"] in ("intent", "sent", "unknown", "open")]
            sent = [o for o in pending if any(o["client_id"] in b for b in bodies)]
            done_filled = [o for o in orders if o not in pending and float(o["filled_qty"]) > 0]
            if any(o["purpose"] in ("retry", "unwind") for o in sent):
                return "mid_recovery:order_in_flight"
            if steps and steps[-1]["step"].endswith("-wait"):
                return "mid_recovery:waiting"
            if done_filled and sent:
                return "between_legs:one_leg_executed_other_in_flight"
            if done_filled and pending:
                return "between_legs:one_leg_executed_other_not_sent"
            if done_filled:
                return "between_legs:one_leg_executed_other_not_journaled"
            if sent:
                return "after_send_before_response"
            if pending:
                return "after_journal_intent_before_send"
        return "before_first_order"

    @property
    def _krw_mode(self) -> bool:
        try:
            with open(os.path.join(self.workdir, "driver.json"), encoding="utf-8") as fh:
                return json.load(fh)["sections"].get("execution", {}).get("upbit_buy_mode") == "market_krw"
        except (OSError, ValueError, KeyError):
            return False

    async def after_restart(self, d: DriverProcess) -> None:
        """Submit the killed batch again (same ids) and check the invariants."""
        if self.pending_resubmit:
            batch, self.pending_resubmit = self.pending_resubmit, []
            for s in batch:
                s["ts_ms"] = time.time_ns() // 1_000_000
            self.resubmitted += len(batch)
            await self.submit(d, batch)
            reps = await self.collect(d)
            ids = Counter(r["signal_id"] for r in reps if r["status"] != "duplicate")
            for sid, n in ids.items():
                if n > 1:
                    self.violation(f"resubmitted signal {sid} processed {n} times")
            await self.check_manual(d, reps)
        found = await self.checker.check(f"seed {self.o.seed} kill {len(self.kills)} restart",
                                         full=len(self.kills) % self.o.full_check_every == 0)
        for msg in found:
            self.violation(msg)
        if any(k in m for m in found for k in ("unhedged", "journal position", "but the exchange", "not in the journal")):
            await self.on_halt(d, "invariant violation: " + found[0][:300], where="invariant check")

    async def check_manual(self, d: DriverProcess, reps: list[dict[str, Any]]) -> None:
        manual = [r for r in reps if r["status"] == "manual_required"]
        for r in manual:
            crit = await self.hook.wait_for(lambda e, sid=r["signal_id"]: str(e.get("title", "")).startswith("CRITICAL")
                                            and sid in str(e.get("description", "")), timeout=10.0)
            if crit is None:
                self.violation(f"manual_required {r['signal_id']} without a critical webhook notification")
        if manual:
            await d.send(op="status")
            ev = await d.wait_for(("status",), 30.0)
            if not (ev and ev.get("halted")):
                self.violation("manual_required without a halt")
            await self.on_halt(d, "; ".join(r["reason"] for r in manual), where="signal manual_required")


async def run_torture(opts: TortureOptions) -> dict[str, Any]:
    """Run the torture; returns the JSON-ready result (``violations`` empty = all held)."""
    t0 = time.monotonic()
    workdir = opts.workdir or tempfile.mkdtemp(prefix="kimp-torture-")
    os.makedirs(workdir, exist_ok=True)
    journal_path = os.path.join(workdir, "journal.sqlite")
    from adapters_direct.sim import SimServer

    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(
            SimServer(port=0, **{**SIM_KWARGS, "seed": opts.seed, "limits": fast_sim_limits()}))
        hook = await stack.enter_async_context(WebhookReceiver(token=f"torture-{opts.seed}"))
        control = await stack.enter_async_context(SimControl(sim.url))
        checker = InvariantChecker(control, journal_path)
        stack.callback(checker.close)
        operator = await stack.enter_async_context(
            Operator(control, checker, url=sim.url, binance_keys=sim.binance_keys))
        t = _Torture(opts, sim, control, hook, checker, operator, workdir, journal_path)
        rng = t.rng
        last = time.monotonic()
        turn = 0
        while len(t.kills) < opts.kills:
            scenario = opts.scenarios[turn % len(opts.scenarios)] if opts.cycle else rng.choice(opts.scenarios)
            turn += 1
            d = await t.start_driver(scenario)
            if d is None:
                await asyncio.sleep(1.0)
                continue
            await t.after_restart(d)
            await t.round(scenario)
            if opts.progress is not None and (time.monotonic() - last > 10 or len(t.kills) >= opts.kills):
                last = time.monotonic()
                opts.progress(f"[torture seed {opts.seed}] {len(t.kills)}/{opts.kills} kills, {t.signals} signals, "
                              f"{t.restarts} restarts, {len(t.violations)} violations")
        # The last engine: it reconciles what the last kill left, finishes the batch, exits cleanly.
        d = await t.start_driver("final")
        if d is not None:
            await t.after_restart(d)
            code = await d.stop()
            if code != 0:
                t.violation(f"final engine exited with {code}")
        await control.settle_faults()
        for msg in await checker.check(f"seed {opts.seed} final", full=True):
            t.violation(msg)
        if checker.view.processing():
            t.violation("signals still 'processing' after the final engine")
        journal_rows = checker.view.counts()
        integrity = checker.view.integrity()
        if integrity != "ok":
            t.violation(f"final journal integrity_check: {integrity}")
        hook_stats = {"posts": len(hook.posts), "critical": len(hook.criticals())}
    fired = {k: control.fired.get(k, 0) for k in FAULT_KINDS}
    startup = sorted(t.startup_s)
    if opts.workdir is None and not t.violations:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)  # kept only when there is something to look at
        workdir = "(removed: no violations)"
    return {
        "kind": "crash_torture",
        "seed": opts.seed,
        "signals": t.signals,
        "resubmitted_after_kill": t.resubmitted,
        "kills": len(t.kills),
        "kill_points": dict(t.kill_points),
        "scenarios": dict(t.scenario_counts),
        "restarts": t.restarts,
        "engine_start_s_median": round(startup[len(startup) // 2], 2) if startup else None,
        "faults_injected": fired,
        "faults_injected_total": sum(fired.values()),
        "violations": t.violations,
        "violations_total": len(t.violations),
        "halts_after_restart": t.halts_after_restart,
        "operator_actions": operator.actions,
        "report_statuses": dict(t.statuses),
        "invariants": checker.summary(),
        "journal_rows": journal_rows,
        "webhook": hook_stats,
        "kill_log": t.kills,
        "duration_s": round(time.monotonic() - t0, 1),
        "workdir": workdir,
        "timings": opts.timings.as_dict(),
    }
