"""Keeping the order path warm: ``KimpEngine.rehearse`` runs the ENTER path on a made-up
signal and must leave no trace anywhere — no request, no journal row, no rate-limit slot,
no breaker permit, no reserved capital — while building exactly what a real order sends."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D

import msgspec

from kimp_fast.models import OrderRequest, Signal



def sig(i: str, action: str = "ENTER", qty: str | None = "0.01") -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=D(qty) if qty else None,
                  ts_ms=int(time.time() * 1000), ttl_ms=10_000)


def footprint(engine, sim) -> dict:
    j = engine.journal
    return {
        "requests": sim.state.request_seq,
        "signals": j.signal_counts(),
        "orders": len(j.all_orders()),
        "recovery": len(j.recovery_steps()),
        "pending": j.pending,
        "limits": [{k: v for k, v in ad.rate_limiter.snapshot().items() if k != "now"}
                   for ad in (engine.upbit, engine.binance)],
        "breakers": {k: b.snapshot() for k, b in engine.breakers.items()},
        "capital": engine.capital.snapshot(),
        "seen": len(engine._seen),
    }


async def test_a_rehearsal_runs_the_whole_path_and_leaves_no_trace(engine_factory, control, sim):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(performance={"keep_warm_ms": 0}, exit={"allow_loss_exit": True}) as engine:
        assert (await engine.submit(sig("r-e1"))).status == "filled"
        assert (await engine.submit(sig("r-x1", "EXIT", None))).status == "filled"
        engine.journal.flush()
        before = footprint(engine, sim)
        for _ in range(50):
            assert engine.rehearse() is True
        assert footprint(engine, sim) == before
        assert engine._rehearsals == 50
        # a real signal afterwards is untouched by them
        assert (await engine.submit(sig("r-e2"))).status == "filled"


async def test_the_warm_loop_rehearses_in_the_background_and_sends_nothing(engine_factory, control, sim):
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(performance={"keep_warm_ms": 1.0}, exit={"allow_loss_exit": True}) as engine:
        assert (await engine.submit(sig("w-e1"))).status == "filled"
        assert (await engine.submit(sig("w-x1", "EXIT", None))).status == "filled"
        engine.journal.flush()
        seq, n0 = sim.state.request_seq, engine._rehearsals
        await asyncio.sleep(0.3)
        assert engine._rehearsals - n0 > 30, engine._rehearsals - n0
        assert engine._rehearsal_failures == 0
        new = [r for r in sim.state.requests if r["seq"] > seq]
        assert [r["path"] for r in new if r["method"] != "GET"] == []
        assert not [r for r in new if "order" in r["path"]]


async def test_rehearsed_bytes_are_what_a_real_order_sends(engine_factory, control, sim):
    """Same body, same path and headers; only the per-request parts (Upbit's JWT nonce,
    Binance's timestamp and signature) differ."""
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory(performance={"keep_warm_ms": 0}) as engine:
        req_b = OrderRequest(symbol="BTCUSDT", side="sell", type="market", quantity=D("0.002"), client_id="rb-1")
        req_u = OrderRequest(symbol="KRW-BTC", side="buy", type="limit", time_in_force="ioc", quantity=D("0.001"),
                             price=D("200000000"), client_id="ru-1")
        rehearsed = {"binance": engine.binance.rehearse_order(req_b), "upbit": engine.upbit.rehearse_order(req_u)}
        seq = sim.state.request_seq
        await engine.binance.place_order(req_b)
        await engine.upbit.place_order(req_u)
        sent = {r["exchange"]: r for r in sim.state.requests if r["seq"] > seq and r["method"] == "POST"}
        for ex, raw in rehearsed.items():
            head, _, body = raw.partition(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ")
            headers = dict(h.split(": ", 1) for h in header_lines)
            real = sent[ex]
            assert (method, path) == ("POST", real["path"])
            if ex == "upbit":
                assert msgspec.json.decode(body) == msgspec.json.decode(real["body"].encode())
                scheme, _, token = headers["Authorization"].partition(" ")
                assert scheme == real["headers"]["Authorization"] == "Bearer" and token.count(".") == 2
            else:
                strip = lambda b: [kv for kv in b.split("&") if not kv.startswith(("timestamp=", "signature="))]  # noqa: E731
                assert strip(body.decode()) == strip(real["body"])
                assert headers["X-MBX-APIKEY"] == real["headers"]["X-MBX-APIKEY"]
