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
