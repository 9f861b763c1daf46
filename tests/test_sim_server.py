"""The simulator as a component: SimServer, the background runner, the CLI, and the
control API (ledger shape, request log, reset, balances, config, clock, stats)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from decimal import Decimal

import pytest

from adapters_direct.sim import DEFAULT_BINANCE_KEYS, DEFAULT_UPBIT_KEYS, SimServer, run_in_background


async def test_sim_server_api_and_defaults() -> None:
    async with SimServer(seed=5, port=0, balances={"upbit": {"KRW": "5000000"}}) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.port > 0
        assert sim.upbit_keys == DEFAULT_UPBIT_KEYS and sim.binance_keys == DEFAULT_BINANCE_KEYS
        assert sim.upbit_keys.secret_key not in repr(sim.upbit_keys)
        assert sim.binance_keys.secret_key not in repr(sim.binance_keys)
        info = sim.startup_info()
        assert set(info) == {"url", "upbit", "binance"}
        assert set(info["upbit"]) == {"access_key", "secret_key"} and set(info["binance"]) == {"api_key", "secret_key"}
        bal = sim.state.ledger()["balances"]
        assert bal["upbit"]["KRW"] == {"balance": "5000000", "locked": "0"}
        assert bal["upbit"]["USDT"]["balance"] == "10000"
        assert bal["binance"]["USDT"] == {"balance": "100000", "available": "100000"}


def test_float_balances_are_refused() -> None:
    with pytest.raises(TypeError):
        SimServer(balances={"upbit": {"KRW": 1e8}})


def test_background_runner_for_sync_callers() -> None:
    with run_in_background(seed=2, upbit_keys=("ak", "sk")) as bg:
        with urllib.request.urlopen(bg.url + "/v1/market/all") as r:
            assert r.status == 200 and json.loads(r.read())[0]["market"] == "KRW-BTC"
        assert bg.upbit_keys.access_key == "ak"
        assert bg.call(lambda st: st.upbit.available("KRW")) == Decimal(100_000_000)
        assert bg.ledger()["orders"] == []


async def test_ledger_shape_is_the_contract(sim_client) -> None:
    c = sim_client
    await c.upbit("POST", "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000",
                                          "identifier": "L-1"})
    await c.binance("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                "quantity": "0.01", "newClientOrderId": "L-2"})
    led = await c.ledger()
    assert set(led) >= {"orders", "balances", "positions"}
    for o in led["orders"]:
        assert {"exchange", "client_id", "exchange_order_id", "side", "qty", "filled", "avg_price", "fee",
                "status"} <= set(o)
        for key in ("filled", "avg_price", "fee"):
            assert isinstance(o[key], str)
    assert [(o["exchange"], o["client_id"]) for o in led["orders"]] == [("upbit", "L-1"), ("binance", "L-2")]
    assert set(led["balances"]["upbit"]["KRW"]) == {"balance", "locked"}
    assert set(led["balances"]["binance"]["USDT"]) == {"balance", "available"}
    pos = led["positions"]["binance"]["BTCUSDT"]
    assert pos["qty"] == "-0.01" and {"entry_price", "liquidation_price"} <= set(pos)


async def test_request_log_records_the_wire(sim_client) -> None:
    c = sim_client
    await c.binance("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                "quantity": "0.01"})
    await c.upbit("GET", "/v1/accounts")
    (b,) = await c.requests(exchange="binance")
    assert b["method"] == "POST" and b["path"] == "/fapi/v1/order" and b["status"] == 200
    assert b["body"].startswith("symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&timestamp=")
    assert b["headers"]["X-MBX-APIKEY"] == c.sim.binance_keys.api_key
    assert b["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    (u,) = await c.requests(exchange="upbit")
    assert u["headers"]["Authorization"] == "Bearer" and "query_hash" not in u["jwt"]["claims"]
    assert c.sim.upbit_keys.secret_key not in json.dumps(await c.requests())
    assert len(await c.requests(limit=1)) == 1
    await c.control("DELETE", "requests")
    assert await c.requests() == []


async def test_reset_balances_config_clock_stats(sim_client) -> None:
    c = sim_client
    await c.control("POST", "balances", {"upbit": {"KRW": "123.5"}, "binance": {"USDT": "77"}})
    bal = (await c.ledger())["balances"]
    assert bal["upbit"]["KRW"]["balance"] == "123.5" and bal["binance"]["USDT"]["balance"] == "77"
    await c.fault(exchange="upbit", kind="down")
    await c.control("POST", "reset", {})
    led = await c.ledger()
    assert led["orders"] == [] and led["balances"]["upbit"]["KRW"]["balance"] == "100000000"
    assert (await c.control("GET", "faults"))["faults"] == []
    cfg = await c.config(fees={"upbit": "0.001"}, limits={"upbit_order_per_s": 12}, binance_delay_ms=3)
    assert cfg["fees"]["upbit"] == "0.001" and cfg["limits"]["upbit_order_per_s"] == 12.0
    assert cfg["binance_delay_ms"] == 3.0
    r = await c.upbit("GET", "/v1/orders/chance", {"market": "KRW-BTC"})
    assert r.data["bid_fee"] == "0.001"
    async with c.session.post(f"{c.url}/_sim/config", json={"nope": 1}) as resp:
        assert resp.status == 400
    clock = await c.control("POST", "clock", {"time_scale": 60})
    assert clock["time_scale"] == 60 and clock["next_funding_time_ms"] > clock["wall_time_ms"]
    stats = await c.control("GET", "stats")
    assert stats["requests"] >= 1 and 0 < stats["service_us"]["median"] <= stats["service_us"]["max"]
    async with c.session.get(f"{c.url}/_sim/nothing") as resp:
        assert resp.status == 404


def test_cli_prints_one_json_line_and_stops_cleanly_on_sigterm(tmp_path) -> None:
    keys = {"upbit": {"access_key": "cli-ak", "secret_key": "cli-sk"},
            "binance": {"api_key": "CliApiKey1", "secret_key": "cli-bsk"}}
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kimp_fast", "sim", "--port", "0", "--seed", "4", "--keys", str(tmp_path / "keys.json"),
         "--premium", "0.02", "--volatility", "0", "--upbit-krw", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(line)
        assert info["upbit"] == keys["upbit"] and info["binance"] == keys["binance"]
        with urllib.request.urlopen(info["url"] + "/_sim/ledger") as r:
            led = json.loads(r.read())
        assert led["balances"]["upbit"]["KRW"]["balance"] == "1000000"
        with urllib.request.urlopen(info["url"] + "/_sim/market") as r:
            assert abs(float(json.loads(r.read())["top"]["premium"]) - 0.02) < 1e-4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""  # type: ignore[union-attr]  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_sigint_and_bad_keys_file(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "kimp_fast", "sim", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = subprocess.run([sys.executable, "-m", "kimp_fast", "sim", "--keys", str(tmp_path / "missing.json")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "kimp-fast sim" in r.stderr and r.stdout == ""
