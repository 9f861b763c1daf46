"""The simulator's ``upbit_answer_pending`` mode, over real sockets.

Real Upbit answers ``POST /v1/orders`` before matching (``state: "wait"``, nothing
executed); clients learn the outcome from ``GET /v1/order``. In this mode the simulator
answers the same way while matching at once, so the final state, the ledger and the
balances are those of the default mode and only the POST answer differs. Checked here on
the wire, through the direct and the ccxt Upbit adapters (one follow-up read each), through
the runtime switch and the CLI flag, and through a full engine ENTER/EXIT.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from adapters_direct import AdapterType, ExchangeFactory, OrderRequest
from adapters_direct.client_ids import make_client_id
from adapters_direct.sim import cli as sim_cli
from adapters_direct.sim.server import build_config
from kimp_fast.models import Signal
from tests.fixtures.sim import SimClient

D = Decimal
FEE = D("0.0005")
SYMBOL = "KRW-BTC"
LOT = D("0.001")

# What "accepted, not matched yet" looks like, field by field.
NOTHING_EXECUTED = {"executed_volume": D(0), "executed_funds": D(0), "paid_fee": D(0)}

OpenClient = Callable[..., Awaitable[SimClient]]


@pytest.fixture
async def open_client(sim_factory) -> AsyncIterator[OpenClient]:
    """``await open_client(**SimServer kwargs)``: a :class:`SimClient` on a fresh simulator."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(**kwargs: Any) -> SimClient:
        server = await sim_factory(**kwargs)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return SimClient(server, session)

    yield make
    for session in sessions:
        await session.close()


async def best(c: SimClient) -> tuple[Decimal, Decimal]:
    r = await c.upbit("GET", "/v1/orderbook", {"markets": SYMBOL, "count": 1}, auth=False)
    unit = r.data[0]["orderbook_units"][0]
    return D(str(unit["bid_price"])), D(str(unit["ask_price"]))


async def balances(c: SimClient) -> dict[str, tuple[str, str]]:
    return {row["currency"]: (row["balance"], row["locked"]) for row in (await c.upbit("GET", "/v1/accounts")).data}


def orders_for(ask: Decimal) -> list[tuple[dict[str, str], Decimal, str]]:
    """(body, KRW total of a buy / volume of a sell, final state): a limit IOC buy that fills,
    a KRW market buy (ends "cancel": a few KRW cannot buy 1e-8 BTC) and a market sell."""
    return [
        ({"market": SYMBOL, "side": "bid", "volume": "0.002", "price": str(ask), "ord_type": "limit",
          "time_in_force": "ioc", "identifier": "p-ioc"}, D("0.002") * ask, "done"),
        ({"market": SYMBOL, "side": "bid", "price": "1000000", "ord_type": "price", "identifier": "p-mb"},
         D(1_000_000), "cancel"),
        ({"market": SYMBOL, "side": "ask", "volume": "0.001", "ord_type": "market", "identifier": "p-ms"},
         D("0.001"), "done"),
    ]


def without_times(order: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in order.items() if k != "created_at"}
    if "trades" in out:
        out["trades"] = [{k: v for k, v in t.items() if k != "created_at"} for t in out["trades"]]
    return out


# ---------------------------------------------------------------------------- the wire
async def test_post_answers_wait_and_get_shows_the_final_order(open_client: OpenClient) -> None:
    c = await open_client(upbit_answer_pending=True)
    _, ask = await best(c)
    for body, amount, final_state in orders_for(ask):
        r = await c.upbit("POST", "/v1/orders", body)
        assert r.status == 201, r.text
        o = r.data
        assert o["state"] == "wait"
        assert {k: D(o[k]) for k in NOTHING_EXECUTED} == NOTHING_EXECUTED
        assert o["trades_count"] == 0 and "trades" not in o
        assert o["remaining_volume"] == o["volume"]  # both null for a KRW market buy
        # reserved at acceptance: a buy locks its KRW total plus the fee, a sell its volume
        fee = amount * FEE if body["side"] == "bid" else D(0)
        assert D(o["reserved_fee"]) == D(o["remaining_fee"]) == fee
        assert D(o["locked"]) == amount + fee
        assert (o["identifier"], o["market"], o["ord_type"], o["side"]) == (
            body["identifier"], body["market"], body["ord_type"], body["side"])
        assert o.get("time_in_force") == body.get("time_in_force")

        g = await c.upbit("GET", "/v1/order", {"uuid": o["uuid"]})
        assert g.status == 200, g.text
        final = g.data
        assert final["state"] == final_state
        for key in ("uuid", "identifier", "price", "volume", "ord_type", "side", "market", "created_at"):
            assert final[key] == o[key], key
        assert D(final["executed_volume"]) > 0 and D(final["locked"]) == 0
        assert final["trades_count"] == len(final["trades"]) > 0
        assert sum(D(t["volume"]) for t in final["trades"]) == D(final["executed_volume"])
        assert sum(D(t["funds"]) for t in final["trades"]) == D(final["executed_funds"])
        assert D(final["paid_fee"]) == D(final["executed_funds"]) * FEE
    # matched at once: nothing is left open or locked
    assert (await c.upbit("GET", "/v1/orders/open", {"market": SYMBOL})).data == []
    assert all(D(locked) == 0 for _, locked in (await balances(c)).values())


async def test_final_state_ledger_and_balances_equal_the_default_mode(open_client: OpenClient) -> None:
    """The same orders on two identically seeded simulators: only the POST answer differs."""
    pending = await open_client(upbit_answer_pending=True)
    default = await open_client()
    _, ask = await best(default)
    assert (await best(pending))[1] == ask
    for body, _, _ in orders_for(ask):
        immediate = (await default.upbit("POST", "/v1/orders", body)).data
        accepted = (await pending.upbit("POST", "/v1/orders", body)).data
        assert accepted["state"] == "wait" and immediate["state"] != "wait"
        assert accepted["uuid"] == immediate["uuid"]  # same seed, same sequence
        final = (await pending.upbit("GET", "/v1/order", {"uuid": accepted["uuid"]})).data
        assert without_times({k: v for k, v in final.items() if k != "trades"}) == without_times(immediate)
        again = (await default.upbit("GET", "/v1/order", {"uuid": immediate["uuid"]})).data
        assert without_times(final) == without_times(again)
    assert await balances(pending) == await balances(default)
    led_p, led_d = await pending.ledger(), await default.ledger()
    assert led_p["balances"] == led_d["balances"]
    drop = ("created_ms", "updated_ms", "ts_ms")
    assert [{k: v for k, v in o.items() if k not in drop} for o in led_p["orders"]] == [
        {k: v for k, v in o.items() if k not in drop} for o in led_d["orders"]]


async def test_order_test_endpoint_is_unaffected(open_client: OpenClient) -> None:
    c = await open_client(upbit_answer_pending=True)
    before = await balances(c)
    body = {"market": SYMBOL, "side": "bid", "price": "100000", "ord_type": "price"}
    r = await c.upbit("POST", "/v1/orders/test", body)
    assert r.status == 201 and r.data["state"] == "wait"
    assert await c.orders("upbit") == [] and await balances(c) == before


async def test_a_resting_limit_order_is_wait_in_both_answers(open_client: OpenClient) -> None:
    c = await open_client(upbit_answer_pending=True)
    bid, _ = await best(c)
    price = str((bid * D("0.9") / 1000).to_integral_value() * 1000)
    body = {"market": SYMBOL, "side": "bid", "volume": "0.001", "price": price, "ord_type": "limit", "identifier": "p-rest"}
    posted = (await c.upbit("POST", "/v1/orders", body)).data
    got = (await c.upbit("GET", "/v1/order", {"identifier": "p-rest"})).data
    assert posted["state"] == got["state"] == "wait"
    assert {k: v for k, v in got.items() if k != "trades"} == posted


# ---------------------------------------------------------------------------- switches
async def test_runtime_switch_through_sim_config(sim, sim_client: SimClient) -> None:
    c = sim_client
    assert (await c.control("GET", "config"))["upbit_answer_pending"] is False
    _, ask = await best(c)
    body = {"market": SYMBOL, "side": "bid", "volume": "0.001", "price": str(ask), "ord_type": "limit",
            "time_in_force": "ioc"}
    assert (await c.upbit("POST", "/v1/orders", body)).data["state"] == "done"

    assert (await c.config(upbit_answer_pending=True))["upbit_answer_pending"] is True
    assert sim.state.upbit_answer_pending is True
    posted = (await c.upbit("POST", "/v1/orders", body)).data
    assert posted["state"] == "wait" and D(posted["executed_volume"]) == 0
    assert (await c.upbit("GET", "/v1/order", {"uuid": posted["uuid"]})).data["state"] == "done"

    for bad in ("true", 1, None):  # JSON booleans only
        r = await c._send("POST", f"{c.url}/_sim/config", data=f'{{"upbit_answer_pending": {_json(bad)}}}',
                          headers={"Content-Type": "application/json"})
        assert r.status == 400 and "upbit_answer_pending" in r.data["error"]
    assert (await c.control("GET", "config"))["upbit_answer_pending"] is True

    await c.config(upbit_answer_pending=False)
    assert (await c.upbit("POST", "/v1/orders", body)).data["state"] == "done"


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_cli_flag_and_config_builder() -> None:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    on = sim_cli._server_kwargs(parser.parse_args(["--upbit-answer-pending"]))
    off = sim_cli._server_kwargs(parser.parse_args([]))
    assert on["upbit_answer_pending"] is True and off["upbit_answer_pending"] is False
    assert build_config(**{k: v for k, v in on.items() if k not in ("host", "port")}).upbit_answer_pending is True
    assert build_config().upbit_answer_pending is False


# ---------------------------------------------------------------------------- adapters
@pytest.fixture
async def pending_sim(sim, sim_client: SimClient) -> Any:
    await sim_client.config(upbit_answer_pending=True)
    return sim


def _cid(name: str) -> str:
    return make_client_id(f"pend-{name}", "upbit-entry", 0)


async def _open(sim: Any, kind: AdapterType, **options: Any) -> Any:
    ad = ExchangeFactory.create(
        "upbit", kind, api_key=sim.upbit_keys.access_key, secret_key=sim.upbit_keys.secret_key, base_url=sim.url,
        symbols=(SYMBOL,), keepwarm_s=0, rules_refresh_s=0, **options,
    )
    await ad.open()
    return ad


async def _order_traffic(c: SimClient) -> list[tuple[str, str, str]]:
    rows = await c.requests(exchange="upbit", limit=5000)
    return [(r["method"], r["path"], r["query"]) for r in rows if r["path"] in ("/v1/orders", "/v1/order")]


@pytest.mark.parametrize("order_lane", ["wire", "aiohttp"])
async def test_direct_adapter_fills_after_exactly_one_follow_up(pending_sim, sim_client: SimClient, order_lane: str) -> None:
    ad = await _open(pending_sim, AdapterType.DIRECT, order_lane=order_lane)
    try:
        _, ask = await ad.best_bid_ask(SYMBOL)
        cases = [
            (OrderRequest(symbol=SYMBOL, side="buy", type="limit", quantity=D("0.002"), price=ask,
                          time_in_force="ioc", client_id=_cid("ioc")), "filled"),
            (OrderRequest(symbol=SYMBOL, side="buy", type="market", quote_amount=D(200_000), client_id=_cid("mb")),
             "expired"),  # a KRW market buy ends "cancel" with a few KRW left: final, filled
            (OrderRequest(symbol=SYMBOL, side="sell", type="market", quantity=D("0.002"), client_id=_cid("ms")),
             "filled"),
        ]
        for req, status in cases:
            await sim_client.control("DELETE", "requests")
            res = await ad.place_order(req)
            assert res.status == status and res.final
            row = next(o for o in await sim_client.orders("upbit") if o["client_id"] == req.client_id)
            assert res.filled_qty == D(row["filled"]) > 0
            assert res.fee == D(row["fee"]) and res.avg_price == D(row["avg_price"])
            traffic = await _order_traffic(sim_client)
            assert traffic == [("POST", "/v1/orders", ""), ("GET", "/v1/order", f"uuid={res.exchange_order_id}")]
    finally:
        await ad.close()


async def test_ccxt_adapter_ends_with_the_filled_quantity(pending_sim, sim_client: SimClient) -> None:
    pytest.importorskip("ccxt")
    ad = await _open(pending_sim, AdapterType.CCXT)
    try:
        _, ask = await ad.best_bid_ask(SYMBOL)
        req = OrderRequest(symbol=SYMBOL, side="buy", type="limit", quantity=D("0.003"), price=ask,
                           time_in_force="ioc", client_id=_cid("ccxt"))
        await sim_client.control("DELETE", "requests")
        res = await ad.place_order(req)
        assert res.status == "filled" and res.filled_qty == D("0.003") and res.avg_price == ask
        assert res.fee == res.quote_filled * FEE
        row = next(o for o in await sim_client.orders("upbit") if o["client_id"] == req.client_id)
        assert D(row["filled"]) == res.filled_qty
        traffic = await _order_traffic(sim_client)
        assert [t[:2] for t in traffic] == [("POST", "/v1/orders"), ("GET", "/v1/order")]
    finally:
        await ad.close()


# ---------------------------------------------------------------------------- engine
def _signal(i: str, action: str = "ENTER", qty: str | None = "0.01") -> Signal:
    return Signal(id=i, action=action, coin="BTC", qty=D(qty) if qty else None, ts_ms=int(time.time() * 1000),
                  ttl_ms=10_000)


async def test_engine_enter_exit_fills_and_journal_matches_the_ledger(engine_factory, control) -> None:
    await control.config(upbit_answer_pending=True)
    await control.market(premium=0.01, volatility=0.0)
    async with engine_factory() as engine:
        rep = await engine.submit(_signal("pend-e1"))
        assert rep.status == "filled", rep.reason
        assert rep.qty == D("0.01")
        await control.market(premium=0.03)
        rep = await engine.submit(_signal("pend-x1", "EXIT", None))
        assert rep.status == "filled", rep.reason
        assert engine.positions() == {}
        journal = {o.client_id: o for o in engine.journal.all_orders()}
    ledger = {o["client_id"]: o for o in await control.orders()}
    assert len(ledger) == 4
    executed = {c for c, o in journal.items() if o.state not in ("absent", "rejected", "intent")}
    assert set(ledger) == executed
    for cid, o in ledger.items():
        assert D(o["filled"]) == journal[cid].filled_qty > 0, cid
    spot, perp = await control.exposure()
    assert abs(spot + perp) < LOT and abs(spot) < LOT
    # every Upbit order was answered "wait" and read back once
    upbit_orders = [o for o in ledger.values() if o["exchange"] == "upbit"]
    posts = await control.requests(exchange="upbit", method="POST", path="/v1/orders")
    gets = await control.requests(exchange="upbit", method="GET", path="/v1/order")
    assert len(posts) == len(upbit_orders) == 2
    assert {r["query"] for r in gets} >= {f"uuid={o['exchange_order_id']}" for o in upbit_orders}


# ---------------------------------------------------------------------------- probe
def test_probe_flag_reaches_the_simulator_and_the_report(tmp_path) -> None:
    import json

    from kimp_fast._env import NO_EXTENSIONS
    from kimp_fast.probe import main as probe_main

    variant = "direct_pure_uvloop" if NO_EXTENSIONS else "direct_compiled_uvloop"
    out = tmp_path / "probe.json"
    rc = probe_main(["-n", "2", "--blocks", "1", "--warmup", "1", "--variants", variant, "--pairs", "",
                     "--upbit-answer-pending", "--json", str(out), "--quiet"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["settings"]["upbit_answer_pending"] is True
    v = report["variants"][variant]
    assert v["available"] is True and v["error_count"] == 0, v.get("errors")
    # every Upbit order (ENTER's buy) is answered "wait" and read back exactly once
    assert v["requests_per_order"] == {"upbit": {"GET /v1/order": 1.0, "POST /v1/orders": 1.0},
                                       "binance": {"POST /fapi/v1/order": 1.0}}
    assert sum(v["requests_per_order"]["upbit"].values()) == 2.0
    assert v["exit"]["requests_per_order"]["upbit"] == {"GET /v1/order": 1.0, "POST /v1/orders": 1.0}  # market sell


def test_probe_refuses_the_flag_with_live(capsys) -> None:
    from kimp_fast.probe import main as probe_main

    assert probe_main(["--live", "--upbit-answer-pending", "-n", "1", "--quiet"]) == 2
    assert "simulator only" in capsys.readouterr().err
