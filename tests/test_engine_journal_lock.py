"""One engine per journal: a second engine on the same file refuses to start, clearly,
and the first one is unaffected."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from kimp_fast.journal import JournalError
from kimp_fast.models import Signal


async def test_a_second_engine_on_the_same_journal_refuses_to_start(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as first:
        second = engine_factory()
        with pytest.raises(JournalError, match="in use by another engine"):
            await second.start()
        rep = await first.submit(Signal(id="lock-e1", action="ENTER", coin="BTC", qty=D("0.01"),
                                        ts_ms=int(time.time() * 1000), ttl_ms=10_000))
        assert rep.status == "filled", rep.reason
    async with engine_factory() as again:  # the lock went with the first engine
        assert "BTC" in again.positions()


@pytest.mark.parametrize("first_wb,second_wb", [(False, False), (True, False), (False, True)],
                         ids=["sync+sync", "write_behind+sync", "sync+write_behind"])
async def test_the_lock_holds_whatever_write_behind_says(engine_factory, control, first_wb, second_wb):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(journal={"write_behind": first_wb}) as first:
        second = engine_factory(journal={"write_behind": second_wb})
        with pytest.raises(JournalError, match="in use by another engine"):
            await second.start()
        rep = await first.submit(Signal(id="lock-m1", action="ENTER", coin="BTC", qty=D("0.01"),
                                        ts_ms=int(time.time() * 1000), ttl_ms=10_000))
        assert rep.status == "filled", rep.reason
    assert len(await control.orders()) == 2  # one engine traded, once
    async with engine_factory(journal={"write_behind": second_wb}) as again:
        assert "BTC" in again.positions()
