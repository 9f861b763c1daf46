"""The fault soak: thousands of signals through the real engine while every simulator fault
kind fires at random on both exchanges, with every invariant checked after each step.

One *step* is a single signal, a concurrent burst (sometimes with the same signal twice)
or an operator halt (signals submitted while halted must be refused and send nothing).
Before a step the premium moves and 0–3 random faults are armed; after it the leftover
faults are counted and cleared, ``manual_required`` outcomes are checked (halt + critical
webhook post) and handed to the :class:`~.operator.Operator`, and the invariants are
checked incrementally (fully every ``full_check_every`` steps and at the end).

Entry point: ``python bench/soak.py --signals N --seed S --json FILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kimp_fast.config import EngineConfig
from kimp_fast.engine import KimpEngine
from kimp_fast.models import ExecutionReport

from .invariants import InvariantChecker
from .operator import Operator
from .scenario import FAULT_KINDS, ScenarioGenerator, SignalSpec, Step
from .setup import SIM_KWARGS, HarnessTimings, config_sections, fast_sim_limits, harness_adapters, harness_environ
from .simctl import SimControl
from .webhook import WebhookReceiver

__all__ = ["SoakOptions", "run_soak"]

#: statuses a signal of each generated kind may end with
_EXPECTED = {
    "malformed": {"rejected"},
    "expired": {"rejected"},
    "future": {"rejected"},
    "unknown_coin": {"rejected"},
    "ttl": {"rejected"},
    "tiny": {"rejected", "refused"},
    # beyond the largest order an exchange accepts: bad input (issue 8), never an order.
    # ("over_capital" ENTERs are capped to the capital by design: anything goes.)
    "huge": {"rejected", "refused"},
}


@dataclass
class SoakOptions:
    signals: int = 300
    seed: int = 1
    fault_rate: float = 0.5
    late_delays: bool = True  # some delays longer than the client timeout
    timings: HarnessTimings = field(default_factory=HarnessTimings)
    full_check_every: int = 200
    journal_path: str | None = None
    fast_limits: bool = True  # rate limits x10 on both sides (429/418 still injected as faults)
    sim: Any = None  # an already running simulator (url, upbit_keys, binance_keys); else one in-process
    sim_kwargs: dict[str, Any] = field(default_factory=dict)
    webhook_token: str = "soak-webhook-token"
    trace_path: str | None = None  # JSON lines: every step, its faults and reports
    progress: Callable[[str], None] | None = None
    #: called with {"engine", "config", "webhook", "control"} before they are closed (tests)
    inspect: Callable[[dict[str, Any]], None] | None = None
    progress_every_s: float = 10.0
    max_violations_kept: int = 500
    #: after a step that left a position: chance of an EXIT sent while one leg is held up
    #: at its venue and the market moves (premium or price) — no approved EXIT may close
    #: outside its bounds — and of a liquidation of the short (noticed, entries halted,
    #: only the naked spot sold). Their own random stream: the seed's steps stay the same.
    market_moves: float = 0.04
    liquidations: float = 0.02


class _Run:
    def __init__(self, opts: SoakOptions, engine: KimpEngine, control: SimControl, checker: InvariantChecker,
                 operator: Operator, hook: WebhookReceiver) -> None:
        self.o = opts
        self.engine = engine
        self.control = control
        self.checker = checker
        self.operator = operator
        self.hook = hook
        self.violations: list[str] = []
        self.statuses: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.manual: list[dict[str, Any]] = []
        self.reasons: Counter[str] = Counter()
        self.halt_steps = 0
        self.steps_without_fill = 0
        self.max_steps_without_fill = 0  # a long drought means something is wedged
        self.submitted_ids: set[str] = set()
        self.signals = 0
        self.steps = 0
        self.scenario_n = 0
        self.scenario_signals = 0
        self.liquidations = 0
        self.scenario_outcomes: Counter[str] = Counter()
        self.trace = open(opts.trace_path, "w", encoding="utf-8") if opts.trace_path else None  # noqa: SIM115

    def violation(self, step: Step, msg: str) -> None:
        ids = ",".join(s.signal_id or s.kind for s in step.signals)
        faults = ";".join(f"{f['exchange']}:{f['kind']}@{f.get('method', '*')} {f.get('path', '*')}" for f in step.faults)
        self.violations.append(f"[seed {self.o.seed} step {step.index} signals {ids} faults {faults or '-'}] {msg}")

    async def submit(self, step: Step, spec: SignalSpec) -> ExecutionReport | None:
        payload = spec.materialize(time.time_ns() // 1_000_000)
        try:
            return await self.engine.submit(payload)
        except Exception as exc:  # noqa: BLE001 - that is the finding
            self.violation(step, f"submit raised {type(exc).__name__}: {exc} for {spec.kind} {payload!r:.200}")
            return None

    async def run_step(self, step: Step) -> None:
        t_step = time.monotonic()
        c = self.control
        await c.market(premium=step.premium)
        for f in step.faults:
            await c.fault(**f)
        before = self.checker.ledger_seen
        if step.kind == "halt":
            self.engine.halt("soak: operator pause", source="soak")
            await self.checker.check(f"step {step.index} before halt")  # ledger_seen up to date
            before = self.checker.ledger_seen
        reports = await asyncio.gather(*(self.submit(step, s) for s in step.signals))
        self.signals += len(step.signals)
        self.steps += 1
        fired = await c.settle_faults()
        if any(r is not None and r.status in ("filled", "recovered", "unwound") for r in reports):
            self.steps_without_fill = 0
        else:
            self.steps_without_fill += 1
            self.max_steps_without_fill = max(self.max_steps_without_fill, self.steps_without_fill)
        seen_in_step: Counter[str] = Counter()
        step_ids = Counter(s.signal_id for s in step.signals)
        for spec, rep in zip(step.signals, reports):
            self.kinds[spec.kind] += 1
            if rep is None:
                continue
            self.statuses[rep.status] += 1
            if rep.status in ("refused", "rejected"):
                self.reasons[_reason_key(rep.reason)] += 1
            sid = spec.signal_id
            allowed = _EXPECTED.get(spec.kind)
            if allowed is not None and (sid in self.submitted_ids or step_ids[sid] > 1):
                allowed = allowed | {"duplicate"}  # the same bad signal twice: the second is a duplicate
            if allowed is not None and rep.status not in allowed:
                self.violation(step, f"{spec.kind} signal {sid!r} ended '{rep.status}' (expected {sorted(allowed)}): "
                                     f"{rep.reason[:200]}")
            if step.kind == "halt" and rep.status != "refused":
                self.violation(step, f"signal {sid} submitted while halted ended '{rep.status}', not 'refused'")
            if sid and spec.valid:
                if sid in self.submitted_ids and rep.status != "duplicate":
                    self.violation(step, f"signal id {sid} seen before but ended '{rep.status}', not 'duplicate'")
                if rep.status != "duplicate":
                    seen_in_step[sid] += 1
        for sid, n in seen_in_step.items():
            if n > 1:
                self.violation(step, f"signal id {sid} submitted concurrently was processed {n} times")
        self.submitted_ids.update(s.signal_id for s in step.signals if s.signal_id)
        if step.kind == "halt":
            led = await c.ledger(since=before)
            if led["orders_total"] != before:
                self.violation(step, f"{led['orders_total'] - before} order(s) reached the exchange while halted")
            self.engine.resume(source="soak")
            self.halt_steps += 1
        manual = [r for r in reports if r is not None and r.status == "manual_required"]
        for rep in manual:
            await self.on_manual(step, rep)
        if manual or self.engine.halted:
            why = "; ".join(r.reason for r in manual) or self.engine.halt_reason
            await self.operator.intervene(
                reason=why, signal_id=",".join(r.signal_id for r in manual),
                reconcile=self.engine.reconcile, resume=lambda: self.engine.resume(source="soak-operator"),
                settle_s=self.o.timings.in_flight_grace_s,
            )
        if self.trace is not None:
            self.trace.write(json.dumps({
                "step": step.index, "kind": step.kind, "ms": round((time.monotonic() - t_step) * 1000),
                "premium": step.premium, "faults": step.faults,
                "fired": dict(fired),
                "reports": [{"kind": sp.kind, "id": sp.signal_id, "status": r.status if r else "EXCEPTION",
                             "reason": r.reason[:300] if r else "", "qty": str(r.qty) if r else ""}
                            for sp, r in zip(step.signals, reports)],
            }, default=str) + "\n")
        full = step.index % self.o.full_check_every == 0
        found = await self.checker.check(f"seed {self.o.seed} step {step.index}", full=full)
        for msg in found:
            self.violation(step, msg)
        if any(_BROKEN_STATE in msg for msg in found for _BROKEN_STATE in ("unhedged", "journal position", "is not in the journal", "but the exchange")):
            # The engine's view and the exchanges' disagree: recorded above. An operator
            # puts the accounts back in line so the rest of the run tests something new.
            await self.operator.intervene(
                reason="invariant violation: " + found[0][:300], reconcile=self.engine.reconcile,
                resume=lambda: self.engine.resume(source="soak-operator"),
                settle_s=self.o.timings.in_flight_grace_s,
            )
            await self.checker.check(f"seed {self.o.seed} step {step.index} after operator")

    # -- scenarios of their own -----------------------------------------------------------
    def _exit_spec(self, index: int, kind: str) -> tuple[Step, SignalSpec]:
        self.scenario_n += 1
        spec = SignalSpec("exit", {"id": f"s{self.o.seed}-{kind}-{self.scenario_n}", "action": "EXIT",
                                   "coin": "BTC", "ts_ms": None, "ttl_ms": 30_000})
        return Step(index, kind, [spec]), spec

    async def _finish_scenario(self, step: Step, rep: ExecutionReport | None) -> None:
        # counted apart: the seed's own steps (and the faults they arm) stay what they were
        self.scenario_signals += 1
        self.kinds[step.kind] += 1
        if rep is not None:
            self.statuses[rep.status] += 1
            self.scenario_outcomes[f"{step.kind}:{rep.status}"] += 1
            if rep.status == "manual_required":
                await self.on_manual(step, rep)
        self.submitted_ids.update(s.signal_id for s in step.signals)
        await self.control.settle_faults()
        self.engine.journal.flush()  # the checker and the operator read the SQLite file
        if self.engine.halted and self.engine.status()["halt_scope"] == "entries" and not self.engine.positions():
            self.engine.resume(source="soak-operator")  # the liquidation's halt, its exposure sold
        elif self.engine.halted:
            await self.operator.intervene(
                reason=self.engine.halt_reason, reconcile=self.engine.reconcile,
                resume=lambda: self.engine.resume(source="soak-operator"), settle_s=self.o.timings.in_flight_grace_s,
            )
        for msg in await self.checker.check(f"seed {self.o.seed} {step.kind} {step.index}"):
            self.violation(step, msg)

    async def move_step(self, index: int, rng: Any) -> None:
        """An EXIT while one leg sits in its venue's gateway (300–600 ms) and the market
        moves: the premium falls (Upbit held up) or BTC moves 0.5–1.5 % (Binance held up)."""
        step, spec = self._exit_spec(index, "market_move")
        c = self.control
        jpos = self.checker.view.positions().get("BTC") or {}
        if jpos.get("entry_kimp") is not None:  # an EXIT worth sending: the move then tests its bounds
            await c.market(premium=float(jpos["entry_kimp"]) + rng.uniform(0.006, 0.012))
        top = await c.market()
        mid = (Decimal(top["BTCUSDT"]["bid"]) + Decimal(top["BTCUSDT"]["ask"])) / 2
        held = rng.choice(("upbit", "binance"))
        await c.fault(exchange=held, method="POST", path={"upbit": "/v1/orders", "binance": "/fapi/v1/order"}[held],
                      kind="delay", ms=rng.randint(300, 600), phase="before", count=1)
        if held == "upbit":
            move: dict[str, Any] = {"premium": max(-0.01, float(Decimal(top["premium"])) - rng.uniform(0.003, 0.015))}
        else:
            move = {"binance_mid": float(mid * Decimal(str(1 + rng.choice((-1, 1)) * rng.uniform(0.005, 0.015))))}
        task = asyncio.ensure_future(self.submit(step, spec))
        await asyncio.sleep(0.15)
        await c.market(**move)
        rep = await task
        await c.market(binance_mid=float(mid))  # the next steps size against the usual price
        await self._finish_scenario(step, rep)

    async def liquidation_step(self, index: int, rng: Any) -> None:
        """The short is liquidated: the risk check must notice it (entries halted, the
        spot recorded as naked) and the next EXIT sell only that spot, never buy back a
        short that is gone. The margin is thinned for it and given back after."""
        step, spec = self._exit_spec(index, "liquidation")
        c = self.control
        led = await c.ledger(since=self.checker.ledger_seen)
        pos = (led["positions"].get("binance") or {}).get("BTCUSDT") or {}
        size = -Decimal(str(pos.get("qty", "0")))
        if size <= 0:
            return
        wallet = Decimal(led["balances"]["binance"]["USDT"]["balance"])
        top = await c.market()
        mid = (Decimal(top["BTCUSDT"]["bid"]) + Decimal(top["BTCUSDT"]["ask"])) / 2
        entry = Decimal(str(pos["entry_price"]))
        # a wallet that puts the liquidation price ~2 % above the mark, then a 4 % rise
        thin = (mid * Decimal("1.02") * size * Decimal("1.004") - size * entry).quantize(Decimal("0.01"))
        await c.balances(binance={"USDT": str(max(thin, Decimal("1")))})
        await c.market(binance_mid=float(mid * Decimal("1.04")))
        await c.ledger()  # the simulator liquidates on its next tick
        led = await c.ledger(since=self.checker.ledger_seen)
        liquidated = not Decimal(str(((led["positions"].get("binance") or {}).get("BTCUSDT") or {}).get("qty", "0")))
        rep = None
        if liquidated:
            self.liquidations += 1
            await self.engine.check_risk()
            jpos = self.engine.positions().get("BTC")
            if not (self.engine.halted and self.engine.status()["halt_scope"] == "entries"):
                self.violation(step, f"a liquidated short did not halt entries (halted={self.engine.halted})")
            if jpos is None or jpos.naked_spot <= 0:
                self.violation(step, f"a liquidated short was not recorded as naked spot: {jpos}")
            before = len((await c.ledger(since=self.checker.ledger_seen))["orders"])
            rep = await self.submit(step, spec)
            for _ in range(2):  # refused for a passing reason (a slow book read): the next EXIT
                if rep is None or rep.status != "refused":
                    break
                step, spec = self._exit_spec(index, "liquidation")
                rep = await self.submit(step, spec)
            after = await c.ledger(since=self.checker.ledger_seen)
            new_binance = [o for o in after["orders"][before:] if o["exchange"] == "binance"
                           and not o["client_id"].startswith("autoclose-")]
            if new_binance:
                self.violation(step, f"the EXIT after a liquidation sent {len(new_binance)} Binance order(s)")
            if rep is not None and rep.status not in ("unwound", "refused"):
                self.violation(step, f"the EXIT after a liquidation ended '{rep.status}': {rep.reason[:200]}")
        await c.balances(binance={"USDT": str(wallet)})
        await c.market(binance_mid=float(mid))
        await self._finish_scenario(step, rep)

    async def on_manual(self, step: Step, rep: ExecutionReport) -> None:
        entry = {"step": step.index, "signal_id": rep.signal_id, "action": rep.action, "reason": rep.reason[:400],
                 "halted": self.engine.halted}
        if not self.engine.halted:
            self.violation(step, f"manual_required {rep.signal_id} without a halt")
        crit = await self.hook.wait_for(
            lambda e: str(e.get("title", "")).startswith("CRITICAL") and rep.signal_id in str(e.get("description", "")),
            timeout=10.0,
        )
        entry["critical_webhook"] = crit is not None
        if crit is None:
            self.violation(step, f"manual_required {rep.signal_id} without a critical webhook notification")
        self.manual.append(entry)


async def run_soak(opts: SoakOptions) -> dict[str, Any]:
    """Run a soak; returns the JSON-ready result (``violations`` empty = every invariant held)."""
    t0 = time.monotonic()
    tmpdir = None
    journal_path = opts.journal_path
    if journal_path is None:
        tmpdir = tempfile.mkdtemp(prefix="kimp-soak-")
        journal_path = os.path.join(tmpdir, "journal.sqlite")
    async with contextlib.AsyncExitStack() as stack:
        sim = opts.sim
        if sim is None:
            from adapters_direct.sim import SimServer

            kwargs = {**SIM_KWARGS, "seed": opts.seed, **opts.sim_kwargs}
            if opts.fast_limits:
                kwargs["limits"] = fast_sim_limits()
            sim = await stack.enter_async_context(SimServer(port=0, **kwargs))
        hook = await stack.enter_async_context(WebhookReceiver(token=opts.webhook_token))
        control = await stack.enter_async_context(SimControl(sim.url))
        await control.market(premium=0.012, volatility=0.0)
        t = opts.timings
        cfg = EngineConfig.from_dict(config_sections(sim.url, journal_path, t), source="<soak>")
        environ = harness_environ(sim.upbit_keys, sim.binance_keys, hook.url)
        adapters: dict[str, Any] = {}
        if opts.fast_limits:
            up, bn = harness_adapters(cfg, environ)
            adapters = {"upbit": await stack.enter_async_context(up), "binance": await stack.enter_async_context(bn)}
        engine = await stack.enter_async_context(KimpEngine(cfg, environ=environ, **adapters, **t.engine_kwargs()))
        checker = InvariantChecker(control, journal_path, min_net_profit=cfg.exit.min_net_profit)
        stack.callback(checker.close)
        operator = await stack.enter_async_context(
            Operator(control, checker, url=sim.url, binance_keys=sim.binance_keys))
        run = _Run(opts, engine, control, checker, operator, hook)
        if run.trace is not None:
            stack.callback(run.trace.close)
        gen = ScenarioGenerator(opts.seed, fault_rate=opts.fault_rate, client_timeout_s=t.client_timeout_s,
                                late_delays=opts.late_delays)
        last_progress = time.monotonic()
        extra = random.Random(f"{opts.seed}-scenarios")
        while run.signals < opts.signals:
            pos = checker.view.positions().get("BTC")
            entry = float(pos["entry_kimp"]) if pos and pos.get("entry_kimp") is not None else None
            step = gen.step(pos is not None, entry, float(pos["qty"]) if pos else None)
            await run.run_step(step)
            roll = extra.random()
            if not engine.halted and checker.view.positions().get("BTC"):
                if roll < opts.market_moves:
                    await run.move_step(step.index, extra)
                elif roll < opts.market_moves + opts.liquidations:
                    await run.liquidation_step(step.index, extra)
            now = time.monotonic()
            if opts.progress is not None and (now - last_progress >= opts.progress_every_s or run.signals >= opts.signals):
                last_progress = now
                rate = run.signals / max(1e-9, now - t0)
                opts.progress(
                    f"[soak seed {opts.seed}] {run.signals}/{opts.signals} signals, {sum(control.fired.values())} "
                    f"faults fired, {len(run.manual)} manual_required, {len(run.violations)} violations, "
                    f"{rate:.1f} signals/s"
                )
        await control.settle_faults()
        await asyncio.sleep(t.in_flight_grace_s)  # delayed requests still inside the simulator land
        for msg in await checker.check(f"seed {opts.seed} final", full=True):
            run.violations.append(f"[seed {opts.seed} final] {msg}")
        counts = checker.view.counts()
        integrity = checker.view.integrity()
        if integrity != "ok":
            run.violations.append(f"journal integrity_check: {integrity}")
        if opts.inspect is not None:
            opts.inspect({"engine": engine, "config": cfg, "webhook": hook, "control": control})
        hook_stats = {"posts": len(hook.posts), "embeds": len(hook.embeds), "critical": len(hook.criticals()),
                      "stray": len(hook.stray)}
    duration = time.monotonic() - t0
    fired = {k: control.fired.get(k, 0) for k in FAULT_KINDS}
    result: dict[str, Any] = {
        "kind": "soak",
        "seed": opts.seed,
        "signals": run.signals,
        "steps": run.steps,
        "duration_s": round(duration, 1),
        "faults_injected": fired,
        "faults_injected_total": sum(fired.values()),
        "faults_scheduled": dict(control.scheduled),
        "kills": 0,
        "violations": run.violations[: opts.max_violations_kept],
        "violations_total": len(run.violations),
        "signal_kinds": dict(run.kinds),
        "report_statuses": dict(run.statuses),
        "refusal_reasons": dict(run.reasons.most_common(25)),
        "halt_steps": run.halt_steps,
        "scenarios": dict(run.scenario_outcomes),
        "scenario_signals": run.scenario_signals,
        "liquidations": run.liquidations,
        "max_steps_without_a_fill": run.max_steps_without_fill,
        "manual_required": run.manual,
        "operator_actions": operator.actions,
        "invariants": checker.summary(),
        "journal_rows": counts,
        "webhook": hook_stats,
        "timings": t.as_dict(),
        "fault_rate": opts.fault_rate,
        "late_delays": opts.late_delays,
        "fast_limits": opts.fast_limits,
        "python": sys.version.split()[0],
    }
    if tmpdir is not None:
        import shutil

        if not run.violations:
            shutil.rmtree(tmpdir, ignore_errors=True)
        else:
            result["journal_path"] = journal_path  # kept for the post-mortem
    return result


def _reason_key(reason: str) -> str:
    """A refusal reason without its numbers, to count reasons by kind."""
    import re

    head = reason.split(":", 1)[0] if reason.startswith(("sizing", "invalid signal", "no leg executed")) else reason
    return re.sub(r"[-+]?\d[\d.,E+-]*", "#", head)[:70]


def jsonable(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
