"""Money at risk: each scenario drives the real engine against the simulator and judges
the outcome from the simulator's ledger (what the exchanges hold), not from the engine's
report. One test per way the engine lost money (docs/RISK_MANAGEMENT.md states the rules).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D

import pytest

from kimp_fast.models import Signal

LOT = D("0.001")


def sig(i: str, action: str = "ENTER", qty: str | None = "0.01", **kw) -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=D(qty) if qty else None,
                  ts_ms=kw.pop("ts_ms", int(time.time() * 1000)), ttl_ms=kw.pop("ttl_ms", 10_000), **kw)


async def krw(control) -> D:
    bal = (await control.ledger())["balances"]["upbit"].get("KRW", {"balance": "0", "locked": "0"})
    return D(bal["balance"]) + D(bal.get("locked", "0"))


async def test_a_venue_refusing_every_hedge_halts_entries_after_two_unwinds(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(one_leg={"retry_delays": [0.01], "max_retries": 1}) as engine:
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject",
                            code=-2010, count=1000)
        start = await krw(control)
        assert (await engine.submit(sig("e1"))).status == "unwound"
        assert not engine.halted
        after_one = await krw(control)
        assert after_one < start  # every unwind pays the spread and two fees
        assert (await engine.submit(sig("e2"))).status == "unwound"
        assert engine.halted and engine.status()["halt_scope"] == "entries"
        assert "binance did not fill" in engine.halt_reason
        spent = await krw(control)
        upbit_orders = len(await control.orders("upbit"))
        for i in range(3, 6):
            rep = await engine.submit(sig(f"e{i}"))
            assert rep.status == "refused" and "halted" in rep.reason
        assert len(await control.orders("upbit")) == upbit_orders  # nothing more bought and sold back
        assert await krw(control) == spent
        # EXITs are not halted by it: an EXIT reaches the position check
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "refused" and "no open position" in rep.reason
        notes = [n for n in engine.journal.notifications() if n["severity"] == "critical"]
        assert any("new entries halted" in n["title"] for n in notes)
        engine.resume()
        await control.clear_faults()
        assert (await engine.submit(sig("e9"))).status == "filled"


async def test_unwinds_for_different_causes_do_not_add_up(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(one_leg={"retry_delays": [0.01], "max_retries": 1}) as engine:
        await control.fault(exchange="binance", method="POST", path="/fapi/v1/order", kind="reject",
                            code=-2010, count=2)  # the entry and its one retry
        assert (await engine.submit(sig("e1"))).status == "unwound"
        await control.fault(exchange="upbit", method="POST", path="/v1/orders", kind="reject",
                            name="insufficient_funds_bid", count=2)
        assert (await engine.submit(sig("e2"))).status == "unwound"
        assert not engine.halted  # one unwind per venue: no run of two for one cause
        assert (await engine.submit(sig("e3"))).status == "filled"


async def fx_mid(control) -> D:
    top = await control.market()
    return (D(top["KRW-USDT"]["bid"]) + D(top["KRW-USDT"]["ask"])) / 2


async def account_value_krw(control, fx: D) -> D:
    """KRW + USDT at Binance × fx, the coin legs excluded (both flat at the end)."""
    led = await control.ledger()
    return await krw(control) + D(led["balances"]["binance"]["USDT"]["balance"]) * fx


async def funding_income_usdt(control) -> D:
    led = await control.ledger()
    return sum((D(r["income"]) for r in led["income"]["binance"] if r["incomeType"] == "FUNDING_FEE"), D(0))


async def charge_funding(control) -> None:
    await control._call("POST", "clock", {"advance_s": 8 * 3600})


async def test_funding_is_counted_once_across_a_partial_and_a_full_exit(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0, funding_rate=0.01)
    async with engine_factory() as engine:
        fx = await fx_mid(control)
        start = await account_value_krw(control, fx)
        assert (await engine.submit(sig("e1", qty="0.02"))).status == "filled"
        await charge_funding(control)
        received = await funding_income_usdt(control)
        assert received > D("10")  # 1 % of ~1,920 USDT short: ~19 USDT received
        await control.market(premium=0.03)
        first = await engine.submit(sig("x1", "EXIT", "0.01"))
        assert first.status == "filled", first.reason
        assert engine.positions()["BTC"].qty == D("0.01")
        second = await engine.submit(sig("x2", "EXIT", None))
        assert second.status == "filled", second.reason
        assert engine.positions() == {}
        assert first.funding_krw + second.funding_krw == received * fx
        # what the engine recorded is what the accounts gained, to the KRW
        realized = first.realized_pnl_krw + second.realized_pnl_krw
        assert abs(realized - (await account_value_krw(control, fx) - start)) < 1, realized


async def test_funding_is_recorded_when_the_exit_rule_ignores_it(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0, funding_rate=0.01)
    async with engine_factory(exit={"include_funding": False}) as engine:
        fx = await fx_mid(control)
        start = await account_value_krw(control, fx)
        assert (await engine.submit(sig("e1"))).status == "filled"
        await charge_funding(control)
        received = await funding_income_usdt(control)
        assert received > 0
        await control.market(premium=0.03)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "filled", rep.reason
        assert rep.funding_krw == received * fx
        assert abs(rep.realized_pnl_krw - (await account_value_krw(control, fx) - start)) < 1


async def test_ignored_funding_does_not_make_a_losing_exit_pass(engine_factory, control):
    """include_funding = false: funding paid (a negative rate) does not count against the
    EXIT, as documented; received funding does not rescue a losing one either."""
    await control.market(premium=0.02, volatility=0.0, funding_rate=0.05)
    async with engine_factory(exit={"include_funding": False}) as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        await charge_funding(control)  # a large payment received
        await control.market(premium=0.0)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "refused" and "not profitable" in rep.reason


def planned_net(engine, signal_id: str) -> D:
    """The estimate an EXIT was approved on (its first round: the whole EXIT)."""
    import json

    plan = next(s for s in engine.journal.recovery_steps(signal_id) if s["step"] == "plan")
    return D(json.loads(plan["detail"])["expected_net_krw"])


def tolerance_krw(engine, report, fx: D) -> D:
    """[exit] tolerance_bps of both legs' notional: the most a filled EXIT may realise
    below its estimate."""
    tol = engine.config.exit.tolerance_bps / D(10_000)
    notional = sum((o.quote_filled * (fx if o.exchange == "binance" else 1) for o in report.orders), D(0))
    return tol * notional


@pytest.mark.parametrize("premium_after,approved", [(0.025, True), (0.0157, False)])
async def test_market_krw_exit_estimate_prices_the_spot_residual_it_sells(engine_factory, control, premium_after,
                                                                         approved):
    """A KRW market buy fills more coin than the short (the spot residual); a full EXIT
    sells all of it. After BTC falls 8 % the residual loses ~4,700 KRW the estimate must
    see: at a premium of 2.5 % the EXIT still pays and realises its estimate; at 1.57 %
    the hedged part alone would look profitable, and the whole EXIT loses."""
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(execution={"upbit_buy_mode": "market_krw", "max_slippage_bps": "500"}) as engine:
        rep = await engine.submit(sig("e1"))
        assert rep.status == "filled", rep.reason
        pos = engine.positions()["BTC"]
        assert pos.spot_residual > D("0.0003")  # ~5 % more coin than the short
        top = await control.market()
        await control.market(binance_mid=float(D(top["BTCUSDT"]["bid"]) * D("0.92")), premium=premium_after)
        fx = await fx_mid(control)
        before = await account_value_krw(control, fx)
        spot_before, _ = await control.exposure()
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == ("filled" if approved else "refused"), rep.reason
        if approved:
            # frozen, deep market: the estimate the EXIT was approved on is what it realised
            assert abs(rep.realized_pnl_krw - planned_net(engine, "x1")) < 1, (rep.realized_pnl_krw,
                                                                                planned_net(engine, "x1"))
            spot_after, _ = await control.exposure()
            sold_value = (await account_value_krw(control, fx)) - before
            assert spot_after == 0 and sold_value > 0
        else:
            assert "not profitable" in rep.reason


@pytest.mark.parametrize("premium_after,approved", [(0.03, True), (0.016, False)])
async def test_exit_uses_the_commission_rate_in_force_now(engine_factory, control, premium_after, approved):
    """Binance raised its taker fee after the ENTER: the EXIT is judged, and its fills are
    recorded, at the new rate (at 1.6 % the old rate would approve a losing EXIT)."""
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        fx = await fx_mid(control)
        start = await account_value_krw(control, fx)
        assert (await engine.submit(sig("e1"))).status == "filled"
        await control.config(fees={"binance_taker": "0.005"})
        await control.market(premium=premium_after)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == ("filled" if approved else "refused"), rep.reason
        if approved:
            assert abs(rep.realized_pnl_krw - planned_net(engine, "x1")) < 1
            realized = rep.realized_pnl_krw
            assert abs(realized - (await account_value_krw(control, fx) - start)) < 1, realized


async def test_the_commission_rate_is_refreshed_in_the_background(engine_factory, control):
    """The fee recorded for an ENTER's fills follows a rate change without an EXIT first."""
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(binance={"fee_refresh_s": 0.05}) as engine:
        await control.config(fees={"binance_taker": "0.002"})
        for _ in range(100):
            if engine.binance.rules("BTCUSDT").taker_fee == D("0.002"):
                break
            await asyncio.sleep(0.02)
        assert engine.binance.rules("BTCUSDT").taker_fee == D("0.002")
        rep = await engine.submit(sig("e1"))
        b = next(o for o in rep.orders if o.exchange == "binance")
        assert b.fee == b.quote_filled * D("0.002")


async def test_a_liquidated_short_is_noticed_and_only_the_naked_spot_is_sold(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    await control.balances(binance={"USDT": "600"})  # a thin margin: the short can be liquidated
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        assert (await engine.check_risk())["BTC"]["level"] == "ok"
        led = await control.ledger()
        liq = D(led["positions"]["binance"]["BTCUSDT"]["liquidation_price"])
        # 3 % below the liquidation price: critical (not a warning), new entries halted
        await control.market(binance_mid=float(liq * D("0.97")))
        assert (await engine.check_risk())["BTC"]["level"] == "critical"
        rep = await engine.submit(sig("e2"))
        assert rep.status == "refused" and "risk monitor" in rep.reason
        # past it: the exchange liquidates the short; the spot is now naked
        await control.market(binance_mid=float(liq * D("1.02")))
        await control.ledger()
        spot, perp = await control.exposure()
        assert perp == 0 and spot == D("0.01")
        await engine.check_risk()
        assert engine.halted and engine.status()["halt_scope"] == "entries"
        assert "liquidated" in engine.halt_reason
        pos = engine.positions()["BTC"]
        assert pos.qty == 0 and pos.naked_spot == D("0.01")
        assert any(s["step"] == "short-lost" for s in engine.journal.recovery_steps("e1"))
        crit = [n for n in engine.journal.notifications() if n["severity"] == "critical"]
        assert any("liquidated" in n["message"] for n in crit)
        binance_orders = len(await control.orders("binance"))
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "unwound", rep.reason
        spot, perp = await control.exposure()
        assert spot == 0 and perp == 0  # flat: sold once, never bought back
        assert len(await control.orders("binance")) == binance_orders  # no reduce-only buy of a short that is gone
        assert [o["side"].lower() for o in await control.orders("upbit")] == ["buy", "sell"]
        assert engine.positions() == {}
        rep = await engine.submit(sig("x2", "EXIT", None))
        assert rep.status == "refused" and "no open position" in rep.reason


async def test_an_exit_finds_the_lost_short_itself(engine_factory, control):
    """No risk check ran between the liquidation and the EXIT: the EXIT reads the short
    before it sends anything and sells only the naked spot."""
    await control.market(premium=0.01, volatility=0.0)
    await control.balances(binance={"USDT": "600"})
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1"))).status == "filled"
        led = await control.ledger()
        liq = D(led["positions"]["binance"]["BTCUSDT"]["liquidation_price"])
        await control.market(binance_mid=float(liq * D("1.02")))
        for i in range(3):  # what used to lose ~9,000 KRW per signal
            await engine.submit(sig(f"x{i}", "EXIT", None))
        spot, perp = await control.exposure()
        assert spot == 0 and perp == 0
        assert [o["side"].lower() for o in await control.orders("upbit")] == ["buy", "sell"]
        assert engine.halted and "liquidated" in engine.halt_reason
        assert engine.positions() == {}


async def test_an_exposure_the_journal_does_not_know_halts_entries(engine_factory, control, sim_client):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        # a short opened outside the engine (another bot, a person) on the same account
        r = await sim_client.binance("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL",
                                                                "type": "MARKET", "quantity": "0.005"})
        assert r.status == 200, r.text
        await engine.check_risk()
        assert engine.halted and "journal" in engine.halt_reason
        assert (await engine.submit(sig("e1"))).status == "refused"


async def test_an_exit_deeper_than_fifteen_levels_looks_deeper(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        fx = await fx_mid(control)
        start = await account_value_krw(control, fx)
        assert (await engine.submit(sig("e1", qty="0.03"))).status == "filled"
        # thin books: 15 levels hold about half of 0.03 BTC, 30 levels all of it
        await control.market(premium=0.03, depth_btc=0.05)
        book = await engine.upbit.get_order_book("KRW-BTC", depth=15)
        assert sum(lv.qty for lv in book.bids) < D("0.03")
        rep = await engine.submit(sig("x1", "EXIT", None))
        # the deepest levels lie past the first round's price bound: a bounded retry or
        # a second round takes them
        assert rep.status in ("filled", "recovered"), rep.reason
        assert await control.exposure() == (0, 0)
        assert rep.realized_pnl_krw > 0
        assert rep.realized_pnl_krw >= planned_net(engine, "x1") - tolerance_krw(engine, rep, fx)
        await assert_closes_within_bounds(engine, control, "x1")
        assert abs(rep.realized_pnl_krw - (await account_value_krw(control, fx) - start)) < 1


async def test_a_full_exit_keeps_closing_after_a_partial_fill(engine_factory, control):
    """The Upbit sell fills 60 %, its retries are refused, the repair evens the legs:
    a full EXIT then sends the rest again (re-estimated, re-approved) and closes it all."""
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        fx = await fx_mid(control)
        start = await account_value_krw(control, fx)
        assert (await engine.submit(sig("e1", qty="0.03"))).status == "filled"
        await control.market(premium=0.03)
        await control.fault(exchange="upbit", method="POST", path="/v1/orders", kind="partial_fill",
                            fraction=0.6, count=1)
        await control.fault(exchange="upbit", method="POST", path="/v1/orders", kind="reject",
                            name="under_min_total_ask", count=3)
        rep = await engine.submit(sig("x1", "EXIT", None))
        assert rep.status == "recovered", rep.reason
        assert engine.positions() == {}
        assert await control.exposure() == (0, 0)
        assert rep.qty == D("0.03")
        assert any(s["step"] == "exit-round" for s in engine.journal.recovery_steps("x1"))
        assert abs(rep.realized_pnl_krw - (await account_value_krw(control, fx) - start)) < 1
        # the estimate less the tolerance, less what the unwind of 0.012 cost (spread and two fees)
        unwind_cost = D("0.012") * D("96000") * D("0.0012") * fx
        assert rep.realized_pnl_krw >= planned_net(engine, "x1") - tolerance_krw(engine, rep, fx) - unwind_cost
        await assert_closes_within_bounds(engine, control, "x1")


async def _exit_while_the_market_moves(engine, control, exchange: str, path: str, move: dict) -> object:
    await control.fault(exchange=exchange, method="POST", path=path, kind="delay", ms=600, count=1)
    task = asyncio.ensure_future(engine.submit(sig("x1", "EXIT", None)))
    await asyncio.sleep(0.25)  # both legs sent; one sits in the venue's gateway
    await control.market(**move)
    return await task


def exit_bounds(engine, signal_id: str) -> tuple[D, D]:
    """(lowest Upbit sell bound, highest Binance buy-back bound) of an EXIT's rounds."""
    import json

    plans = [json.loads(s["detail"]) for s in engine.journal.recovery_steps(signal_id) if s["step"] == "plan"]
    return min(D(p["spot_bound"]) for p in plans), max(D(p["perp_bound"]) for p in plans)


async def assert_closes_within_bounds(engine, control, signal_id: str) -> None:
    """Every fill that closed the position (exit legs and their retries) is at or inside
    its price bound; only an unwind (which restores the hedge) is a market order."""
    spot_bound, perp_bound = exit_bounds(engine, signal_id)
    purposes = {o.client_id: o.purpose for o in engine.journal.orders_for_signal(signal_id)}
    closing = [o for o in await control.orders() if purposes.get(o["client_id"]) in ("exit", "retry")
               and D(o["filled"]) > 0]
    assert closing
    for o in closing:
        if o["exchange"] == "upbit":
            assert D(o["avg_price"]) >= spot_bound, o
        else:
            assert D(o["avg_price"]) <= perp_bound, o


async def test_an_upbit_leg_held_up_while_the_premium_falls_is_not_sold_below_its_bound(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        fx = await fx_mid(control)
        assert (await engine.submit(sig("e1", qty="0.05"))).status == "filled"
        await control.market(premium=0.03)
        rep = await _exit_while_the_market_moves(engine, control, "upbit", "/v1/orders", {"premium": 0.008})
        # the Upbit sell arrived after the premium fell to below the entry's: it could not
        # fill within its bound; the Binance buy-back was sold again; closing the rest
        # no longer pays: the position is whole and hedged
        assert rep.status == "unwound", rep.reason
        sells = [o for o in await control.orders("upbit") if o["side"] == "sell"]
        assert sells and all(D(o["filled"]) == 0 for o in sells)
        assert await control.exposure() == (D("0.05"), D("-0.05"))
        assert engine.positions()["BTC"].qty == D("0.05")
        # what it cost: one Binance round trip (spread and two fees), not the fallen premium
        assert rep.realized_pnl_krw > -D("0.05") * D("96000") * D("0.0015") * fx, rep.realized_pnl_krw


async def test_a_binance_leg_held_up_while_btc_rises_never_closes_outside_its_bounds(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        assert (await engine.submit(sig("e1", qty="0.05"))).status == "filled"
        await control.market(premium=0.03)
        top = await control.market()
        rise = {"binance_mid": float(D(top["BTCUSDT"]["bid"]) * D("1.01"))}
        rep = await _exit_while_the_market_moves(engine, control, "binance", "/fapi/v1/order", rise)
        # the buy-back arrived after BTC rose 1 %: not filled within its bound (a market
        # buy would have closed ~70,000 KRW below the estimate); the spot sale was bought
        # back — the move costs the same on either leg — and the position, whole and
        # hedged, waits for the next EXIT signal instead of a blind second try
        assert rep.status == "unwound", rep.reason
        buys = [o for o in await control.orders("binance") if o["side"] == "buy"]
        assert buys and all(D(o["filled"]) == 0 for o in buys)
        assert await control.exposure() == (D("0.05"), D("-0.05"))
        assert engine.positions()["BTC"].qty == D("0.05")


async def test_a_deposit_after_a_capital_refusal_is_seen_by_the_next_enter(engine_factory, control):
    """Found by the liquidation soak: a sizing refusal never re-read the balances, so after
    the margin came back every ENTER was still sized against the old, thin wallet."""
    await control.market(premium=0.01, volatility=0.0)
    await control.balances(binance={"USDT": "10"})
    async with engine_factory() as engine:
        rep = await engine.submit(sig("e1"))
        assert rep.status == "rejected" and "capital" in rep.reason
        await control.balances(binance={"USDT": "100000"})
        rep = await engine.submit(sig("e2"))
        assert rep.status == "filled", rep.reason


async def test_client_ids_never_repeat_across_journals(engine_factory, control, sim, tmp_path):
    """A second deployment (or a reset journal) sees a signal id the first already used:
    Upbit refuses an identifier used before, ever, Binance accepts a reused id once the first
    order is final — one leg refused, one executed. Each journal namespaces its ids."""
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as first:
        assert (await first.submit(sig("e1"))).status == "filled"
        await control.market(premium=0.03)
        assert (await first.submit(sig("x1", "EXIT", None))).status == "filled"
    await control.market(premium=0.01)
    async with engine_factory(journal={"path": str(tmp_path / "reset.sqlite")}) as second:
        rep = await second.submit(sig("e1"))
        assert rep.status == "filled", rep.reason  # before: Upbit refused, Binance filled, repaired
    led = await control.orders()
    assert len(led) == 6 and len({o["client_id"] for o in led}) == 6
    refused = [r for r in await control.requests() if r["path"] in ("/v1/orders", "/fapi/v1/order")
               and r.get("status", 200) >= 400]
    assert refused == [], refused  # before: identifier_already_used at Upbit
    # the namespace is the journal's: its own in each journal, kept across restarts
    assert second.client_namespace != first.client_namespace
    async with engine_factory() as again:
        assert again.client_namespace == first.client_namespace
