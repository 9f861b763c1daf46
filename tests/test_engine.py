"""Engine scenarios against the simulator over real sockets, with a real SQLite journal.

Every scenario checks the final state through ``/_sim/ledger`` — the exchanges' view,
independent of the engine's own — and through the journal.
"""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from kimp_fast.models import Signal

LOT = D("0.001")


def sig(i: str, action: str = "ENTER", qty: str | None = "0.01", **kw) -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=D(qty) if qty else None,
                  ts_ms=kw.pop("ts_ms", int(time.time() * 1000)), ttl_ms=kw.pop("ttl_ms", 10_000), **kw)


async def assert_hedged(control, expect_spot: D | None = None) -> tuple[D, D]:
    spot, pos = await control.exposure()
    assert abs(spot + pos) < LOT, f"unhedged: spot {spot}, perp {pos}"
    if expect_spot is not None:
        assert abs(spot - expect_spot) < LOT, (spot, expect_spot)
    return spot, pos


async def assert_ledger_matches_journal(control, engine) -> None:
    ledger = {o["client_id"]: o for o in await control.orders()}
    journal = {o.client_id: o for o in engine.journal.all_orders()}
    executed = {c for c, o in journal.items() if o.state not in ("absent", "rejected", "intent")}
    assert set(ledger) == executed, (set(ledger) ^ executed)
    for cid, o in ledger.items():
        assert D(o["filled"]) == journal[cid].filled_qty, cid


async def test_enter_then_exit_with_profit(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        rep = await engine.submit(sig("e1"))
        assert rep.status == "filled", rep.reason
        assert rep.qty == D("0.01")
        assert set(engine.positions()) == {"BTC"}
        await assert_hedged(control, D("0.01"))
        # The premium rises: the long-spot/short-perp pair gains.
        await control.market(premium=0.03)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "filled", rep.reason
        assert rep.realized_pnl_krw > 0
        assert engine.positions() == {}
        await assert_hedged(control, D(0))
        await assert_ledger_matches_journal(control, engine)
        assert len(await control.orders()) == 4


async def test_exit_at_a_loss_is_refused_with_the_numbers(engine_factory, control):
    await control.market(premium=0.02, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        await control.market(premium=0.0)  # premium fell: closing now loses money
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "refused"
        assert "not profitable" in rep.reason and "KRW" in rep.reason
        assert len(await control.orders()) == 2  # nothing sent for the EXIT
        assert set(engine.positions()) == {"BTC"}


async def test_binance_margin_reject_retries_then_unwinds_upbit(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject",
                            code=-2019, count=10)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "unwound", rep.reason
        await assert_hedged(control, D(0))
        steps = [s["step"] for s in engine.journal.recovery_steps("e1")]
        assert steps.count("retry") == 3 and "unwind" in steps
        bn = await control.orders("binance")
        assert bn == []  # every Binance attempt was rejected: nothing executed there
        assert engine.positions() == {}


async def test_upbit_reject_retries_then_closes_the_short_reduce_only(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        await control.fault(exchange="upbit", method="POST", path="/v1/orders", kind="reject",
                            name="insufficient_funds_bid", count=10)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "unwound", rep.reason
        await assert_hedged(control, D(0))
        closes = [o for o in await control.orders("binance") if o["side"].lower() == "buy"]
        assert len(closes) == 1


@pytest.mark.parametrize("exchange,path", [("upbit", "/v1/orders"), ("binance", "/fapi/v1/order")])
async def test_drop_after_is_found_by_query_without_a_duplicate(engine_factory, control, exchange, path):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        await control.fault(exchange=exchange, method="POST", path=path, kind="drop_after", count=1)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "filled", rep.reason
        await assert_hedged(control, D("0.01"))
        assert len(await control.orders(exchange)) == 1  # found, never re-sent
        await assert_ledger_matches_journal(control, engine)


@pytest.mark.parametrize("executed", [True, False])
async def test_binance_unknown_503(engine_factory, control, executed):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="unknown_503",
                            executed=executed, count=1)
        rep = await engine.submit(sig("e1"))
        assert rep.status == ("filled" if executed else "recovered"), rep.reason
        await assert_hedged(control, D("0.01"))
        await assert_ledger_matches_journal(control, engine)


@pytest.mark.parametrize("exchange,path", [("upbit", "/v1/orders"), ("binance", "/fapi/v1/order")])
async def test_partial_fill_is_hedged_within_one_lot(engine_factory, control, exchange, path):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        await control.fault(exchange=exchange, method="POST", path=path, kind="partial_fill",
                            fraction=0.5, count=1)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "recovered", rep.reason
        await assert_hedged(control, D("0.01"))
        assert engine.positions()["BTC"].qty == D("0.01")


async def test_both_legs_fail_nothing_executes(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        for ex, path in (("upbit", "/v1/orders"), ("binance", "/fapi/v1/order")):
            await control.fault(exchange=ex, method="POST", path=path, kind="reject",
                                **({"name": "insufficient_funds_bid"} if ex == "upbit" else {"code": -2019}),
                                count=20)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "rejected"
        assert "no leg executed" in rep.reason
        assert await control.orders() == []
        assert engine.positions() == {}


async def test_open_breaker_refuses_before_any_leg_is_sent(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(engine_kw={"market_max_age_s": 0.0}) as engine:
        await control.fault(exchange="binance", method="GET", path="/fapi/v1/depth", kind="http_500", count=100)
        for i in range(5):
            rep = await engine.submit(sig(f"f{i}"))
            assert rep.status == "rejected"  # failed fetching the book: nothing was sent
        assert engine.breakers["binance"].state.value == "open"
        rep = await engine.submit(sig("after"))
        assert rep.status == "refused" and "circuit breaker" in rep.reason
        assert await control.orders() == []
        events = engine.journal.breaker_events()
        assert events and events[-1]["new_state"] == "open"


async def test_duplicate_signal_is_skipped_also_after_restart(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        dup = await engine.submit(sig("e1"))
        assert dup.status == "duplicate"
    async with engine_factory() as engine:
        dup = await engine.submit(sig("e1"))
        assert dup.status == "duplicate"
        assert "filled" in dup.reason
    assert len(await control.orders()) == 2


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "m1", "action": "ENTER", "coin": "BTC", "qty": "NaN", "ts_ms": 1},
        {"id": "m2", "action": "ENTER", "coin": "BTC", "qty": "-1", "ts_ms": 1},
        {"id": "m3", "action": "BUY", "coin": "BTC", "qty": "0.01", "ts_ms": 1},
        {"id": "m4", "action": "ENTER", "coin": "BTC", "ts_ms": 1},
        {"action": "ENTER", "coin": "BTC", "qty": "0.01", "ts_ms": 1},
        b'{"id": "m6", "action": "ENTER", "coin": "BTC", "qty": 0.01, "ts_ms": ',
        {"id": "m7", "action": "ENTER", "coin": "DOGE", "qty": "0.01", "ts_ms": 10**13},
        {"id": "m8", "action": "ENTER", "coin": "BTC", "qty": "1e400", "ts_ms": 10**13},
    ],
)
async def test_malformed_signals_send_nothing(engine_factory, control, raw):
    async with engine_factory() as engine:
        rep = await engine.submit(raw)
        assert rep.status == "rejected", rep
        assert rep.reason
    assert await control.orders() == []


async def test_expired_signal_is_rejected(engine_factory, control):
    async with engine_factory() as engine:
        rep = await engine.submit(sig("old", ts_ms=int(time.time() * 1000) - 60_000, ttl_ms=5000))
        assert rep.status == "rejected" and "expired" in rep.reason
    assert await control.orders() == []


async def test_halt_refuses_and_resume_clears(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        engine.halt("maintenance")
        assert engine.halted
        rep = await engine.submit(sig("e1"))
        assert rep.status == "refused" and "halted" in rep.reason
        engine.resume()
        assert (await engine.submit(sig("e2"))).status == "filled"


async def test_enter_needs_a_flat_coin_and_exit_needs_a_position(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        rep = await engine.submit(sig("x0", "EXIT", None))
        assert rep.status == "refused" and "no open position" in rep.reason
        assert (await engine.submit(sig("e1"))).status == "filled"
        rep = await engine.submit(sig("e2"))
        assert rep.status == "refused" and "already has an open position" in rep.reason
    assert len(await control.orders()) == 2


async def test_partial_exit_keeps_the_rest_hedged(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1", qty="0.02"))).status == "filled"
        await control.market(premium=0.03)
        rep = await engine.submit(sig("x1", "EXIT", "0.005"))
        assert rep.status == "filled", rep.reason
        assert engine.positions()["BTC"].qty == D("0.015")
        await assert_hedged(control, D("0.015"))


async def test_exit_upbit_sell_failure_is_retried(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        await control.market(premium=0.03)
        await control.fault(exchange="upbit", method="POST", path="/v1/orders", kind="http_500", count=1)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status in ("filled", "recovered"), rep.reason
        assert engine.positions() == {}
        await assert_hedged(control, D(0))
        await assert_ledger_matches_journal(control, engine)


async def test_exit_binance_close_rejected_re_hedges_by_buying_spot_back(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        await control.market(premium=0.03)
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject",
                            code=-2022, count=10)
        rep = await engine.submit(sig("x1", "EXIT", None))
        # The spot sold, the short could not be closed: after the retries the spot is
        # bought back so the position is hedged again (never left naked short).
        assert rep.status == "unwound", rep.reason
        await assert_hedged(control, D("0.01"))
        assert engine.positions()["BTC"].qty == D("0.01")


async def test_market_krw_mode_shorts_exactly_what_filled(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(execution={"upbit_buy_mode": "market_krw"}) as engine:
        rep = await engine.submit(sig("e1", qty="0.0123"))
        assert rep.status == "filled", rep.reason
        spot, perp = await control.exposure()
        assert -perp == engine.positions()["BTC"].qty
        assert D(0) <= spot + perp < LOT  # the residual below one lot is recorded, not chased
        assert engine.positions()["BTC"].spot_residual == spot + perp


async def test_concurrent_signals_never_over_commit_capital(engine_factory, control, sim):
    import asyncio

    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(execution={"coins": ["BTC"]}) as engine:
        # Only BTC is tradeable, so concurrent ENTERs serialize per coin; the second
        # must see the first's position and be refused, never double-spend.
        reps = await asyncio.gather(*(engine.submit(sig(f"c{i}")) for i in range(3)))
        statuses = sorted(r.status for r in reps)
        assert statuses == ["filled", "refused", "refused"]
        await assert_hedged(control, D("0.01"))


async def test_unresolvable_order_ends_manual_required_with_halt_and_alert(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(engine_kw={"resolve_timeout_s": 0.5}) as engine:
        # The order executes but the response is lost, and the exchange then stays down:
        # nobody can say whether the short exists. The engine must stop and shout.
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="drop_after", count=1)
        await control.fault(exchange="binance", method="GET", path="/fapi/v1/order", kind="down", count=1000)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "manual_required", rep.reason
        assert engine.halted
        crit = [n for n in engine.journal.notifications() if n["severity"] == "critical"]
        assert crit, "manual_required without a critical notification"
        await control.clear_faults()
        rep = await engine.submit(sig("e2"))
        assert rep.status == "refused" and "halted" in rep.reason


async def test_restart_reconciles_a_position_mismatch_by_halting(engine_factory, control, sim_client):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
    # Someone closes the short behind the engine's back.
    resp = await sim_client.binance("POST", "/fapi/v1/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "reduceOnly": "true",
    })
    assert resp.status == 200, resp
    async with engine_factory() as engine:
        assert engine.halted
        assert "BTCUSDT short" in engine.halt_reason


async def test_risk_monitor_critical_margin_halts_new_entries(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    risk = {"margin_ratio_warning": "0.000001", "margin_ratio_critical": "0.000002"}
    async with engine_factory(risk=risk) as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        levels = await engine.check_risk()
        assert levels["BTC"]["level"] == "critical"
        rep = await engine.submit(sig("e2"))
        assert rep.status == "refused" and "risk monitor" in rep.reason
        assert any("margin critical" in n["title"] for n in engine.journal.notifications())
        # Exits are still allowed: reducing risk is exactly what is wanted.
        await control.market(premium=0.03)
        assert (await engine.submit(sig("x1", "EXIT", None))).status == "filled"
        # With the position closed nothing is at risk: the next check lifts the entry halt.
        assert await engine.check_risk() == {}
        assert (await engine.submit(sig("e3"))).status == "filled"


async def test_exit_pnl_matches_the_exchanges_fills(engine_factory, control):
    import json

    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        await control.market(premium=0.03)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "filled", rep.reason
        plan = [s for s in engine.journal.recovery_steps("x1") if s["step"] == "plan"][0]
        fx = D(json.loads(plan["detail"])["fx"])
    orders = await control.orders()
    assert len(orders) == 4

    def cash(o):  # signed quote flow of one order: + received, − paid
        q = D(o["filled"]) * D(o["avg_price"])
        return q if o["side"].lower() in ("sell", "ask") else -q

    spot = sum(cash(o) - D(o["fee"]) for o in orders if o["exchange"] == "upbit")
    perp = sum(cash(o) - D(o["fee"]) for o in orders if o["exchange"] == "binance")
    expected = spot + perp * fx  # no funding time elapsed in this test
    assert abs(rep.realized_pnl_krw - expected) < D("1"), (rep.realized_pnl_krw, expected)
    assert rep.funding_krw == 0


def test_engine_runs_embedded_on_uvloop(tmp_path):
    """No loop ownership, no global state: the engine runs inside the caller's uvloop."""
    import asyncio

    uvloop = pytest.importorskip("uvloop")
    from adapters_direct.sim import run_in_background
    from kimp_fast.engine import KimpEngine
    from kimp_fast.notify import LoggingNotifier
    from tests.fixtures.engine import make_config, sim_environ

    with run_in_background(seed=3, market={"volatility": 0.0, "premium": 0.01}) as sim:
        cfg = make_config(sim, tmp_path)

        async def main():
            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
            async with KimpEngine(cfg, environ=sim_environ(sim), notifier=LoggingNotifier()) as engine:
                return await engine.submit(sig("u1"))

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rep = runner.run(main())
        assert rep.status == "filled", rep.reason
        ledger = sim.ledger()
        assert len(ledger["orders"]) == 2


async def test_restart_repairs_a_signal_left_manual_by_an_unresolvable_order(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(engine_kw={"resolve_timeout_s": 0.5, "in_flight_grace_s": 0.2}) as engine:
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="drop_before", count=1)
        await control.fault(exchange="binance", method="GET", path="/fapi/v1/order", kind="down", count=1000)
        rep = await engine.submit(sig("e1"))
        assert rep.status == "manual_required"
        spot, perp = await control.exposure()
        assert spot == D("0.01") and perp == 0  # naked long: the short was never placed
    await control.clear_faults()
    # The restart resolves the order (absent), resumes the signal and hedges it.
    async with engine_factory(engine_kw={"in_flight_grace_s": 0.2}) as engine:
        assert engine.journal.signal("e1")["status"] in ("recovered", "unwound")
        await assert_hedged(control)
        assert engine.halted  # the operator still has to look and resume


async def test_a_float_in_a_mapping_is_refused_like_in_a_signal(engine_factory, control):
    async with engine_factory() as engine:
        rep = await engine.submit({"id": "f1", "action": "ENTER", "coin": "BTC", "qty": 0.01,
                                   "ts_ms": int(time.time() * 1000)})
        assert rep.status == "rejected" and "floats are refused" in rep.reason
    assert await control.orders() == []


def test_our_own_rate_limiter_is_not_an_exchange_failure():
    """Breakers record only ``err.infrastructure`` failures (executor, market data): a call
    our own limiter refused before sending says nothing about the exchange (finding F6)."""
    from adapters_direct.errors import RateLimited

    assert not RateLimited("local budget exhausted", code="client_throttle").infrastructure
    assert RateLimited("429 from the exchange", status=429).infrastructure
    assert RateLimited("418 banned", status=418, banned=True).infrastructure
