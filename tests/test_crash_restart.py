"""Crash-restart: the engine runs in a subprocess and is killed with SIGKILL; a new engine
on the same journal must finish what the dead one started (docs/RELIABILITY.md).

The simulator runs in the test's process (it outlives every engine); the engine is
``python -m kimp_fast.reliability.driver``. The long version is
``python bench/crash_torture.py --kills 50``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from decimal import Decimal as D

import pytest

from kimp_fast.reliability.invariants import InvariantChecker
from kimp_fast.reliability.journal_view import JournalView
from kimp_fast.reliability.setup import HarnessTimings, harness_environ
from kimp_fast.reliability.simctl import SimControl
from kimp_fast.reliability.torture import SCENARIOS, DriverProcess, TortureOptions, run_torture, write_driver_config
from kimp_fast.reliability.webhook import WebhookReceiver


def sig(i: str, action: str = "ENTER", qty: str | None = "0.01") -> dict:
    p = {"id": i, "action": action, "coin": "BTC", "ts_ms": int(time.time() * 1000), "ttl_ms": 60_000}
    if qty is not None:
        p["qty"] = qty
    return p


async def until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.005)
    return cond()


class World:
    """Simulator (from the ``sim`` fixture), webhook receiver, journal and engine processes."""

    def __init__(self, sim, tmp_path, hook: WebhookReceiver, control: SimControl, timings: HarnessTimings) -> None:
        self.sim = sim
        self.hook = hook
        self.control = control
        self.journal = str(tmp_path / "journal.sqlite")
        self.cfg = write_driver_config(str(tmp_path / "driver.json"), sim.url, self.journal, timings)
        self.log = str(tmp_path / "driver.log")
        self.env = {**os.environ, **harness_environ(sim.upbit_keys, sim.binance_keys, hook.url)}
        self.view: JournalView | None = None

    async def engine(self) -> DriverProcess:
        d = DriverProcess(self.cfg, self.env, self.log)
        await d.start()
        ev = await d.wait_for(("ready", "start_failed"), 60)
        assert ev is not None and ev["event"] == "ready", (ev, open(self.log).read()[-2000:])
        assert not ev["halted"], ev["halt_reason"]
        if self.view is None:
            self.view = JournalView(self.journal)
        return d

    async def run(self, d: DriverProcess, *signals: dict) -> list[dict]:
        n0 = len(d.reports())
        await d.send(op="submit", signals=list(signals))
        assert await d.wait_for(("batch_done",), 60) is not None
        return d.reports()[n0:]

    async def invariants(self) -> list[str]:
        checker = InvariantChecker(self.control, self.journal)
        try:
            return await checker.check("test", full=True)
        finally:
            checker.close()


@pytest.fixture
async def world(sim, tmp_path):
    timings = HarnessTimings(client_timeout_s=2.0, retry_delays=(3.0, 3.0, 3.0), resolve_timeout_s=6.0)
    async with WebhookReceiver() as hook, SimControl(sim.url) as control:
        await control.market(premium=0.01, volatility=0.0)
        w = World(sim, tmp_path, hook, control, timings)
        yield w
        if w.view is not None:
            w.view.close()


async def test_killed_mid_recovery_a_new_engine_on_the_same_journal_finishes_it(world):
    d = await world.engine()
    # Binance refuses the short once: the spot is bought, the repair waits 3 s to retry.
    await world.control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject",
                              code=-2019, count=1)
    await d.send(op="submit", signals=[sig("r1")])
    view = world.view
    assert await until(lambda: any(s["step"] == "retry-wait" for s in view.recovery(signal_id="r1")), 10)
    await d.kill()

    # What the dead engine left behind: one leg, a signal still 'processing'.
    assert view.signal("r1")["status"] == "processing"
    spot, perp = await exposure(world.control)
    assert (spot, perp) == (D("0.01"), D(0))
    assert view.integrity() == "ok"

    d2 = await world.engine()  # its start reconciles: the repair resumes and completes
    row = view.signal("r1")
    assert row["status"] == "recovered", row["reason"]
    steps = [s["step"] for s in view.recovery(signal_id="r1")]
    assert "retry" in steps[steps.index("resume"):], steps
    assert await exposure(world.control) == (D("0.01"), D("-0.01"))
    orders = (await world.control.ledger())["orders"]
    assert sorted(o["client_id"][-3:] for o in orders) == ["BR1", "UE1"]  # no order sent twice
    assert await world.invariants() == []
    # The same signal again after the restart: a duplicate, nothing sent.
    (rep,) = await world.run(d2, sig("r1"))
    assert rep["status"] == "duplicate"
    assert len((await world.control.ledger())["orders"]) == 2
    assert await d2.stop() == 0


async def test_an_exit_queued_behind_another_when_killed_is_rejected_not_halted(world):
    """Finding F5: the second of two concurrent EXITs (waiting for the coin's lock) was
    resumed after the restart as 'manual_required: resumed EXIT has no journaled
    position' and halted the engine."""
    d = await world.engine()
    (rep,) = await world.run(d, sig("e1"))
    assert rep["status"] == "filled"
    await world.control.market(premium=0.03)
    # x1's Upbit sale executes at once but its answer is held 4 s: x1 keeps the coin's lock
    # while x2 waits for it. The engine is killed right then.
    await world.control.fault(exchange="upbit", method="POST", path="/v1/orders", kind="delay", ms=4000,
                              phase="after", count=1)
    seq = world.sim.state.request_seq
    await d.send(op="submit", signals=[sig("x1", "EXIT", None), sig("x2", "EXIT", None)])
    assert await until(lambda: any(r["seq"] > seq and r["path"] == "/v1/orders" for r in world.sim.state.requests), 10)
    await d.kill()
    assert {world.view.signal(i)["status"] for i in ("x1", "x2")} == {"processing"}, d.events

    d2 = await world.engine()
    assert world.view.signal("x1")["status"] in ("filled", "recovered")
    x2 = world.view.signal("x2")
    assert x2["status"] == "rejected" and "before any leg executed" in x2["reason"]
    assert await exposure(world.control) == (D(0), D(0))
    assert await world.invariants() == []
    assert await d2.stop() == 0


async def test_quick_torture_each_kill_point_once():
    # after_send, between_legs, mid_recovery, mid_reconcile (two kills), random
    result = await run_torture(TortureOptions(kills=len(SCENARIOS) + 1, seed=5, cycle=True))
    assert result["violations"] == [], "\n".join(result["violations"][:10])
    assert result["kills"] >= len(SCENARIOS) + 1
    assert result["restarts"] >= result["kills"]
    points = result["kill_points"]
    assert any(p.startswith("mid_recovery") for p in points), points
    assert "mid_reconcile" in points, points
    assert result["resubmitted_after_kill"] > 0
    assert result["journal_rows"]["orders"] >= result["invariants"]["ledger_orders"] > 0


async def exposure(control: SimControl) -> tuple[D, D]:
    led = await control.ledger()
    bal = led["balances"]["upbit"].get("BTC", {})
    pos = led["positions"]["binance"].get("BTCUSDT", {})
    return D(bal.get("balance", "0")) + D(bal.get("locked", "0")), D(pos.get("qty", "0"))
