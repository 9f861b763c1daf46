"""No control character from the journal reaches the terminal: signal ids, reasons,
client ids and exchange messages come from outside (a signal producer, an exchange)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal as D

import pytest

from kimp_fast.journal import Journal
from kimp_fast.models import ExecutionReport

HOSTILE = "sig-\x1b]0;owned\x07\x1b[2J\x1b[31mRED\r\x9b2Kx\u202etxt.exe"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def kimp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kimp_fast", *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.record_rejected_signal(HOSTILE, "ENTER", "BTC", ExecutionReport(
            signal_id=HOSTILE, action="ENTER", coin="BTC", status="rejected", reason="bad: " + HOSTILE))
        j.order_intent(client_id=HOSTILE, signal_id=HOSTILE, exchange="upbit", symbol="KRW-BTC", purpose="entry",
                       attempt=1, side="buy", type="limit", tif="ioc", qty=D("0.01"), price=D("1"))
        j.update_order(HOSTILE, "rejected", error="exchange says " + HOSTILE)
        j.notification("warning", "title " + HOSTILE, "message " + HOSTILE)
        j.set_halt("halt " + HOSTILE, "cli")
    return path


@pytest.mark.parametrize("view", [["status"], ["orders"], ["status", "--json"], ["orders", "--json"]])
def test_views_escape_control_characters(journal, view):
    proc = kimp(*view, "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr
    for ch in RAW:
        assert ch not in proc.stdout, (repr(ch), proc.stdout)
    if "--json" in view:
        text = json.dumps(json.loads(proc.stdout))  # still valid JSON, the id intact inside
        assert json.dumps(HOSTILE)[1:-1] in text
    else:
        assert "\\x1b]0;owned\\x07" in proc.stdout or "\\x1b" in proc.stdout


def test_halt_and_resume_echo_no_control_characters(journal):
    for args in (["halt", "stop " + HOSTILE], ["resume"]):
        proc = kimp(*args, "--journal", str(journal))
        assert proc.returncode == 0, proc.stderr
        for ch in RAW:
            assert ch not in proc.stdout + proc.stderr, (args, repr(ch))
