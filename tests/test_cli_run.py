"""``kimp-fast run``, ``halt``/``resume`` and ``reconcile`` in subprocesses against a
simulator started by the test (in this process, on 127.0.0.1), with real journals.

The simulator's ledger — the exchanges' own record — is the reference for what was sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kimp_fast.journal import Journal

ENV_NAMES = ("T_UPBIT_ACCESS", "T_UPBIT_SECRET", "T_BINANCE_KEY", "T_BINANCE_SECRET")


def write_config(sim: Any, tmp_path: Path, **extra: str) -> Path:
    cfg = tmp_path / "kimp.toml"
    body = f"""
[upbit]
base_url = "{sim.url}"
access_key_env = "T_UPBIT_ACCESS"
secret_key_env = "T_UPBIT_SECRET"

[binance]
base_url = "{sim.url}"
api_key_env = "T_BINANCE_KEY"
secret_key_env = "T_BINANCE_SECRET"

[journal]
path = "journal.sqlite"

[one_leg]
retry_delays = [0.05, 0.1, 0.2]

[risk]
check_interval_s = 3600.0
"""
    cfg.write_text(body + "".join(f"\n{v}\n" for v in extra.values()))
    return cfg


def key_env(sim: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update({
        "T_UPBIT_ACCESS": sim.upbit_keys.access_key, "T_UPBIT_SECRET": sim.upbit_keys.secret_key,
        "T_BINANCE_KEY": sim.binance_keys.api_key, "T_BINANCE_SECRET": sim.binance_keys.secret_key,
    })
    return env


def signal(i: str, action: str = "ENTER", qty: str | None = "0.01") -> str:
    d: dict[str, Any] = {"id": i, "action": action, "coin": "BTC", "ts_ms": int(time.time() * 1000), "ttl_ms": 30_000}
    if qty is not None:
        d["qty"] = qty
    return json.dumps(d)


async def kimp(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
               timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kimp_fast", *args, env=env or dict(os.environ),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    return proc.returncode, out.decode(), err.decode()


async def control(sim: Any, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, f"{sim.url}/_sim/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_run_consumes_a_jsonl_file(sim, tmp_path):
    await control(sim, "POST", "market", {"premium": 0.01, "volatility": 0.0})
    cfg = write_config(sim, tmp_path)
    signals = tmp_path / "signals.jsonl"
    signals.write_text("\n".join([
        "# research output",
        signal("s1"),
        "",
        '{"id": "bad-1", "action": "HOLD", "coin": "BTC", "ts_ms": 1}',
        "not json at all",
        signal("s1"),              # duplicate id
        signal("s2", "EXIT", None),  # same premium: closing now loses the fees -> refused
    ]) + "\n")
    rc, out, err = await kimp("run", "--config", str(cfg), "--signals", str(signals), env=key_env(sim))
    assert rc == 0, err
    reports = [json.loads(line) for line in out.splitlines()]
    assert [r["status"] for r in reports] == ["filled", "rejected", "rejected", "duplicate", "refused"]
    assert reports[0]["signal_id"] == "s1" and reports[0]["qty"] == "0.01"
    assert "not profitable" in reports[4]["reason"]
    ledger = await control(sim, "GET", "ledger")
    assert sorted(o["exchange"] for o in ledger["orders"]) == ["binance", "upbit"]  # only s1's two legs
    with Journal(tmp_path / "journal.sqlite") as j:
        assert {o.client_id for o in j.all_orders()} == {o["client_id"] for o in ledger["orders"]}
        assert set(j.positions()) == {"BTC"}
    for secret in (sim.upbit_keys.secret_key, sim.binance_keys.secret_key):
        assert secret not in out + err


async def test_dry_run_validates_and_connects_but_sends_nothing(sim, tmp_path):
    cfg = write_config(sim, tmp_path)
    signals = tmp_path / "signals.jsonl"
    signals.write_text(signal("d1") + "\n" + '{"id": "d2", "action": "ENTER", "coin": "DOGE", "qty": "1", "ts_ms": 1}\n')
    await control(sim, "DELETE", "requests")
    rc, out, err = await kimp("run", "--config", str(cfg), "--signals", str(signals), "--dry-run", env=key_env(sim))
    assert rc == 1, err  # one invalid signal
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["valid"] is True and lines[1]["valid"] is False and "DOGE" in lines[1]["reason"]
    summary = lines[-1]
    assert summary["dry_run"] is True and summary["orders_sent"] == 0
    assert summary["exchanges"]["upbit"]["keys"] == "ok" and summary["exchanges"]["binance"]["keys"] == "ok"
    assert (await control(sim, "GET", "ledger"))["orders"] == []
    sent = (await control(sim, "GET", "requests?limit=1000"))["requests"]
    assert sent, "the dry run must have connected"
    assert all(r["method"] == "GET" for r in sent), [(r["method"], r["path"]) for r in sent if r["method"] != "GET"]
    assert not (tmp_path / "journal.sqlite").exists()


async def test_halt_and_resume_act_on_a_running_engine(sim, tmp_path):
    await control(sim, "POST", "market", {"premium": 0.01, "volatility": 0.0})
    cfg = write_config(sim, tmp_path)
    env = key_env(sim)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kimp_fast", "run", "--config", str(cfg), env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def submit(line: str) -> dict[str, Any]:
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert raw, (await proc.stderr.read()).decode()
        return json.loads(raw)

    try:
        assert (await submit(signal("h1")))["status"] == "filled"
        rc, out, err = await kimp("halt", "planned", "maintenance", "--config", str(cfg))
        assert rc == 0, err
        assert "halted: planned maintenance" in out
        await control(sim, "POST", "market", {"premium": 0.03})  # the exit would now be profitable
        refused = await submit(signal("h2", "EXIT", None))
        assert refused["status"] == "refused" and "halted: planned maintenance" in refused["reason"]
        rc, out, err = await kimp("status", "--json", "--config", str(cfg))
        assert rc == 0 and json.loads(out)["halted"] is True
        rc, out, err = await kimp("resume", "--config", str(cfg))
        assert rc == 0 and "resumed" in out, err
        done = await submit(signal("h3", "EXIT", None))
        assert done["status"] == "filled", done["reason"]
        assert float(done["realized_pnl_krw"]) > 0
    finally:
        proc.stdin.close()
        rc = await asyncio.wait_for(proc.wait(), 30)
    assert rc == 0, (await proc.stderr.read()).decode()
    ledger = await control(sim, "GET", "ledger")
    assert len(ledger["orders"]) == 4  # h1's and h3's legs; nothing for the halted h2
    with Journal(tmp_path / "journal.sqlite") as j:
        assert [h["action"] for h in j.halts()] == ["halt", "resume"]
        assert j.halts()[0]["source"] == "cli"


async def test_reconcile_agrees_then_reports_a_mismatch(sim, tmp_path):
    await control(sim, "POST", "market", {"premium": 0.01, "volatility": 0.0})
    cfg = write_config(sim, tmp_path)
    env = key_env(sim)
    signals = tmp_path / "s.jsonl"
    signals.write_text(signal("r1") + "\n")
    rc, out, err = await kimp("run", "--config", str(cfg), "--signals", str(signals), env=env)
    assert rc == 0, err
    rc, out, err = await kimp("reconcile", "--config", str(cfg), "--json", env=env)
    assert rc == 0, err
    res = json.loads(out)
    assert res["ok"] is True and res["positions"][0]["binance_short"] == "0.01"
    # Someone sells the coin behind the engine's back: the journal no longer matches.
    await control(sim, "POST", "balances", {"upbit": {"BTC": "0"}})
    rc, out, err = await kimp("reconcile", "--config", str(cfg), env=env)
    assert rc == 1, out + err
    assert "MISMATCH" in out and "Upbit BTC balance 0" in out
    rc, out, _ = await kimp("status", "--json", "--config", str(cfg))
    assert json.loads(out)["halted"] is True


@pytest.mark.parametrize("command", ["run", "reconcile"])
async def test_missing_key_variables_exit_2_naming_the_key(sim, tmp_path, command):
    cfg = write_config(sim, tmp_path)
    env = {k: v for k, v in key_env(sim).items() if k != "T_BINANCE_SECRET"}
    rc, out, err = await kimp(command, "--config", str(cfg), env=env, stdin=b"")
    assert rc == 2
    assert "binance.secret_key_env" in err and "T_BINANCE_SECRET" in err
    assert out == ""
    assert (await control(sim, "GET", "ledger"))["orders"] == []
