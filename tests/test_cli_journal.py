"""``status``, ``positions``, ``orders``, ``halt`` and ``resume`` on a real SQLite journal
written through the Journal API (the same calls the engine makes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from kimp_fast.journal import Journal
from kimp_fast.models import ExecutionReport, HedgedPosition, Signal


def kimp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kimp_fast", *args], capture_output=True, text=True,
                          timeout=60, env=env or dict(os.environ))


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        sig = Signal(id="sig-1", action="ENTER", coin="BTC", qty=D("0.01"), ts_ms=1_763_900_000_000)
        j.begin_signal(sig)
        rows = [
            {"client_id": "sig-1-UE1", "signal_id": "sig-1", "exchange": "upbit", "symbol": "KRW-BTC",
             "purpose": "entry", "attempt": 1, "side": "buy", "type": "limit", "tif": "ioc",
             "qty": D("0.01"), "price": D("140000000")},
            {"client_id": "sig-1-BE1", "signal_id": "sig-1", "exchange": "binance", "symbol": "BTCUSDT",
             "purpose": "entry", "attempt": 1, "side": "sell", "type": "market", "qty": D("0.01")},
        ]
        j.order_intents(rows)
        j.update_order("sig-1-UE1", "filled", exchange_order_id="u-1", filled_qty=D("0.01"),
                       avg_price=D("1.3995E+8"), quote_filled=D("1399500"), fee=D("699.75"), fee_asset="KRW")
        j.update_order("sig-1-BE1", "filled", exchange_order_id="4000000001", filled_qty=D("0.01"),
                       avg_price=D("95990.4"), quote_filled=D("959.904"), fee=D("0.479952"), fee_asset="USDT")
        pos = HedgedPosition(coin="BTC", qty=D("0.01"), entry_spot_price=D("139950000"),
                             entry_perp_price=D("95990.4"), entry_fx=D("1449.5"), entry_kimp=D("0.0058"),
                             opened_ts_ms=1_763_900_000_100, signal_id="sig-1")
        j.finish_signal(ExecutionReport(signal_id="sig-1", action="ENTER", coin="BTC", status="filled",
                                        qty=D("0.01")), position=pos)
        j.begin_signal(Signal(id="sig-2", action="EXIT", coin="BTC", ts_ms=1_763_900_001_000))
        j.order_intent(client_id="sig-2-UX1", signal_id="sig-2", exchange="upbit", symbol="KRW-BTC",
                       purpose="exit", attempt=1, side="sell", type="market", tif=None, qty=D("0.01"), price=None)
    return path


def test_status_positions_orders_read_the_journal(journal: Path):
    proc = kimp("status", "--json", "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["halted"] is False
    assert st["signals"] == {"total": 2, "by_status": {"filled": 1, "processing": 1}}
    assert st["processing"] == ["sig-2"]
    assert st["orders"]["unresolved"] == ["sig-2-UX1"]
    assert st["positions"]["BTC"]["qty"] == "0.01"

    proc = kimp("positions", "--json", "--journal", str(journal))
    assert json.loads(proc.stdout)["positions"]["BTC"]["entry_perp_price"] == "95990.4"

    proc = kimp("orders", "--json", "--last", "2", "--journal", str(journal))
    orders = json.loads(proc.stdout)["orders"]
    assert [o["client_id"] for o in orders] == ["sig-2-UX1", "sig-1-BE1"]  # newest first
    proc = kimp("orders", "--json", "--signal", "sig-1", "--journal", str(journal))
    by_id = {o["client_id"]: o for o in json.loads(proc.stdout)["orders"]}
    assert by_id["sig-1-UE1"]["avg_price"] == "139950000"  # plain decimal, not 1.3995E+8
    assert by_id["sig-1-UE1"]["fee"] == "699.75"

    human = kimp("status", "--journal", str(journal)).stdout
    assert "not halted" in human and "sig-2" in human and "BTC 0.01" in human
    assert "sig-1-UE1" in kimp("orders", "--journal", str(journal)).stdout
    assert "139950000" in kimp("positions", "--journal", str(journal)).stdout


def test_halt_and_resume_write_the_kill_switch(journal: Path):
    proc = kimp("halt", "exchange", "maintenance", "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr
    with Journal(journal) as j:
        assert j.halt_state()[:2] == (True, "exchange maintenance")
        assert j.halts()[-1]["source"] == "cli"
    st = json.loads(kimp("status", "--json", "--journal", str(journal)).stdout)
    assert st["halted"] is True and st["halt"]["reason"] == "exchange maintenance"
    assert "HALTED" in kimp("status", "--journal", str(journal)).stdout
    proc = kimp("resume", "--json", "--journal", str(journal))
    assert json.loads(proc.stdout) == {"halted": False, "was_halted": True,
                                       "previous_reason": "exchange maintenance", "journal": str(journal)}
    with Journal(journal) as j:
        assert j.halt_state()[0] is False
    assert "not halted" in kimp("resume", "--journal", str(journal)).stdout


def test_journal_must_exist_and_be_named(tmp_path: Path):
    missing = tmp_path / "typo.sqlite"
    for cmd in (["status"], ["positions"], ["orders"], ["resume"], ["halt", "why"]):
        proc = kimp(*cmd, "--journal", str(missing))
        assert proc.returncode == 2 and "journal not found" in proc.stderr, cmd
    assert not missing.exists()  # a typo never creates a journal nobody reads
    env = {k: v for k, v in os.environ.items() if k != "KIMP_FAST_JOURNAL"}
    proc = kimp("status", env=env)
    assert proc.returncode == 2 and "--journal" in proc.stderr
    # --create halts an engine before its first start.
    proc = kimp("halt", "not yet", "--create", "--journal", str(missing))
    assert proc.returncode == 0 and missing.exists()
    with Journal(missing) as j:
        assert j.halt_state()[0] is True


def test_not_a_journal_is_a_clear_error(tmp_path: Path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    proc = kimp("status", "--journal", str(junk))
    assert proc.returncode == 2 and "cannot open journal" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_everywhere():
    for cmd in ("paper", "run", "status", "positions", "orders", "halt", "resume", "reconcile", "info"):
        proc = kimp(cmd, "--help")
        assert proc.returncode == 0 and "usage: kimp-fast" in proc.stdout, cmd
    assert kimp().returncode == 2
