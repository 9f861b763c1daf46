"""The order path's no-await shortcuts give what their awaited forms give, and step aside
(None / False) whenever the awaited form would have had to fetch or wait."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D

from adapters_direct.client_ids import make_client_id
from kimp_fast.models import Signal


def sig(i: str, action: str = "ENTER", qty: str | None = "0.01") -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=D(qty) if qty else None,
                  ts_ms=int(time.time() * 1000), ttl_ms=10_000)


async def test_fresh_pair_and_fx_are_the_awaited_values(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        m = engine.market
        ub, bb = await m.pair("BTC", 60.0)  # fetched (or cached) by the awaited form
        assert m.fresh_pair("BTC", 60.0) == (ub, bb)
        assert m.fresh_pair("BTC", 60.0)[0] is ub  # the cached objects, not copies
        fx = await m.fx(max_age=60.0)
        assert m.fresh_fx(60.0) == fx


async def test_fresh_pair_and_fx_step_aside_when_a_fetch_is_needed(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        m = engine.market
        await m.pair("BTC", 60.0)
        await m.fx(max_age=60.0)
        assert m.fresh_pair("BTC", 0.0) is None  # max_age 0: always fetch
        assert m.fresh_fx(0.0) is None
        await asyncio.sleep(0.05)
        assert m.fresh_pair("BTC", 0.01) is None  # older than max_age
        assert m.fresh_fx(0.01) is None
        assert m.fresh_pair("ETH", 60.0) is None  # never fetched


async def test_capital_current_only_when_ready_would_not_wait(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        cap = engine.capital
        await cap.ready()
        assert cap.current()
        cap.refresh_soon()
        assert not cap.current()  # a refresh is in flight: ready() would wait for it
        await cap.ready()
        assert cap.current()
        krw_before = cap.krw_free

        # a failed background refresh is not current: ready() retries in the foreground
        await control.fault(exchange="upbit", method="GET", path="/v1/accounts", kind="http_500", count=50)
        cap.refresh_soon()
        task = cap._refresh
        while not task.done():
            await asyncio.sleep(0.01)
        assert task.exception() is not None
        assert not cap.current()
        await control.clear_faults()
        await cap.ready()  # the foreground retry succeeds
        assert cap.current() and cap.krw_free == krw_before


async def test_executor_client_ids_are_make_client_id(engine_factory, control):
    async with engine_factory() as engine:
        x = engine.executor
        ns = engine.client_namespace
        assert len(ns) == 12  # the journal's own id (see test_client_ids_never_repeat_across_journals)
        for sid in ("e1", "research/run 7: ENTER BTC", "x" * 128):
            for exchange in ("upbit", "binance"):
                for purpose, code in (("entry", "E"), ("exit", "X"), ("retry", "R"), ("unwind", "W")):
                    for attempt in (0, 1, 999):
                        leg = exchange[0].upper() + code
                        assert x.client_id(sid, exchange, purpose, attempt) == make_client_id(
                            sid, leg, attempt, namespace=ns)
