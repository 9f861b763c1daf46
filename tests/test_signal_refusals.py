"""Careless signals get a clear refusal, and a refusal stores and shows only a bounded
part of what it refused. A real engine on the simulator, a real SQLite journal."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal as D

import msgspec
import pytest

from kimp_fast.engine import _coerce_signal
from kimp_fast.models import Signal


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("form", ["json", "bytes", "mapping"])
def test_an_unknown_field_is_refused_naming_it_on_every_input_path(form):
    raw = {"id": "u1", "action": "EXIT", "coin": "BTC", "ts_ms": now_ms(), "qyt": "0.01"}
    value = {"json": json.dumps(raw), "bytes": json.dumps(raw).encode(), "mapping": raw}[form]
    with pytest.raises(msgspec.ValidationError, match="unknown field `qyt`"):
        _coerce_signal(value)
    with pytest.raises(TypeError, match="qyt"):
        Signal(**raw)


async def test_an_exit_with_a_misspelled_qty_closes_nothing(engine_factory, control):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        rep = await engine.submit(Signal(id="m-enter", action="ENTER", coin="BTC", qty=D("0.02"), ts_ms=now_ms(),
                                         ttl_ms=10_000))
        assert rep.status == "filled", rep.reason
        await control.market(premium=0.03)  # an EXIT would be profitable
        before = len(await control.orders())
        for raw in ({"id": "m-exit", "action": "EXIT", "coin": "BTC", "ts_ms": now_ms(), "ttl_ms": 10_000,
                     "qyt": "0.01"},
                    json.dumps({"id": "m-exit-j", "action": "EXIT", "coin": "BTC", "ts_ms": now_ms(),
                                "ttl_ms": 10_000, "qyt": "0.01"})):
            rep = await engine.submit(raw)
            assert rep.status == "rejected"
            assert "unknown field `qyt`" in rep.reason
        assert len(await control.orders()) == before
        assert engine.positions()["BTC"].qty == D("0.02")


async def test_a_huge_field_is_bounded_in_the_report_and_the_journal(engine_factory, control, tmp_path):
    await control.market(premium=0.01, volatility=0.0)
    big = "9" * 10_000_000
    async with engine_factory() as engine:
        path = engine.journal.path
        engine.journal.flush()
        size0 = os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)
        reports = [
            await engine.submit({"id": "h-action", "action": "X" * 10_000_000, "coin": "BTC", "ts_ms": now_ms()}),
            await engine.submit({"id": "h-coin", "action": "ENTER", "coin": "B" * 10_000_000, "ts_ms": now_ms(),
                                 "qty": "0.01"}),
            await engine.submit({"id": "h-qty", "action": "ENTER", "coin": "BTC", "ts_ms": now_ms(), "qty": big}),
            await engine.submit({"id": "h-qty2", "action": "ENTER", "coin": "BTC", "ts_ms": now_ms(),
                                 "qty": "0." + "0" * 5_000_000 + "1"}),
            await engine.submit('{"id": "h-json", "action": "' + "Y" * 10_000_000 + '", "coin": "BTC", "ts_ms": 1}'),
            await engine.submit({"id": "h-id" + "I" * 10_000_000, "action": "ENTER", "coin": "BTC",
                                 "ts_ms": now_ms()}),
        ]
        engine.journal.flush()
        size1 = os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)
    for rep in reports:
        assert rep.status == "rejected"
        assert len(rep.reason) < 1024 and len(rep.signal_id) <= 256 and len(rep.action) <= 64, rep.reason[:200]
    assert await control.orders() == []
    assert size1 - size0 < 1_000_000  # not the 20 MB a single echoed field made before


@pytest.mark.parametrize("bad", ["s-\x1b[2J", "s-\u202etxt", "s-\x00", "s-\n"])
def test_control_characters_in_a_signal_id_are_refused(bad):
    with pytest.raises(ValueError, match="id: control or formatting characters"):
        Signal(id=bad, action="ENTER", coin="BTC", qty=D("0.01"), ts_ms=now_ms())
