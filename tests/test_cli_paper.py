"""``kimp-fast paper`` end to end, in a subprocess: in-process simulator, real engine,
real SQLite journal. The JSON summary must agree with the journal file (read here with
the Journal API and through ``kimp-fast status --json``) and every invariant must hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from kimp_fast.journal import Journal


def kimp(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kimp_fast", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "120"})


def paper_json(tmp_path: Path, *extra: str) -> tuple[dict, Path, subprocess.CompletedProcess[str]]:
    journal = tmp_path / "paper.sqlite"
    proc = kimp("paper", "--json", "--journal", str(journal), "--seed", "7", *extra)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got: {proc.stdout[:2000]}"
    return json.loads(lines[0]), journal, proc


def assert_agrees_with_journal(summary: dict, journal: Path) -> None:
    with Journal(journal) as j:
        counts = j.signal_counts()
        assert summary["signals"]["by_status"] == counts
        assert summary["signals"]["total"] == sum(counts.values()) == len(summary["reports"])
        orders = j.all_orders()
        assert summary["orders"]["total"] == len(orders)
        assert summary["fills"]["count"] == len(j.fills())
        assert set(summary["positions"]) == set(j.positions())
        for coin, pos in j.positions().items():
            assert summary["positions"][coin]["qty"] == str(pos.qty)
        for r in summary["reports"]:
            stored = j.signal(r["signal_id"])
            assert stored is not None and stored["status"] == r["status"], r["signal_id"]
    status = kimp("status", "--json", "--journal", str(journal))
    assert status.returncode == 0, status.stderr
    view = json.loads(status.stdout)
    assert view["signals"]["by_status"] == summary["signals"]["by_status"]
    assert view["orders"]["total"] == summary["orders"]["total"]
    assert view["orders"]["unresolved"] == []


def test_paper_round_trips_hold_every_invariant_and_match_the_journal(tmp_path):
    summary, journal, proc = paper_json(tmp_path, "--signals", "6", "--duration", "20")
    assert proc.returncode == 0, proc.stderr + json.dumps(summary["invariants"])
    assert summary["ok"] is True
    assert all(c["ok"] for c in summary["invariants"])
    assert {c["name"] for c in summary["invariants"]} == {
        "hedged", "no duplicate order", "no loss exit", "journal = ledger", "no manual intervention"}
    by_action = summary["signals"]["by_action"]
    assert by_action["ENTER"].get("filled", 0) >= 1 and by_action["EXIT"].get("filled", 0) >= 1, by_action
    # Completed round trips realize P&L; the report splits fees and funding out and the
    # simulator's own ledger agrees with it when the run ends flat.
    pnl = {k: Decimal(v) for k, v in summary["pnl_krw"].items()}
    assert pnl["fees"] > 0
    assert pnl["realized"] + pnl["fees"] - pnl["funding"] == pnl["before_fees_and_funding"]
    if not summary["positions"]:
        assert abs(Decimal(summary["account"]["value_change_krw"]) - pnl["realized"]) < 1
    assert summary["funding_events"] >= 1  # accelerated clock: funding falls due within seconds
    for stage in ("validate", "size", "build", "send", "total"):
        assert summary["latency_us"][stage]["n"] >= 1
    assert_agrees_with_journal(summary, journal)
    # Secrets stay out of every output.
    assert "SimUpbitSecretKey" not in proc.stdout + proc.stderr
    assert "SimBinanceSecretKey" not in proc.stdout + proc.stderr


def test_paper_with_faults_recovers_and_still_holds_every_invariant(tmp_path):
    summary, journal, proc = paper_json(tmp_path, "--faults", "--signals", "7", "--duration", "25")
    assert proc.returncode == 0, proc.stderr + json.dumps(summary["invariants"])
    assert summary["ok"] is True
    hit = [i for i in summary["incidents"] if i["fault"]]
    assert len(hit) >= 3, summary["incidents"]
    statuses = summary["signals"]["by_status"]
    assert statuses.get("recovered", 0) + statuses.get("unwound", 0) >= 1, statuses
    assert "manual_required" not in statuses
    if not summary["positions"]:
        # Every KRW the simulator's accounts gained or lost (fills, fees, funding) is in the
        # engine's realized P&L — repairs and unwinds included.
        realized = Decimal(summary["pnl_krw"]["realized"])
        assert abs(Decimal(summary["account"]["value_change_krw"]) - realized) < 1, summary["account"]
    with Journal(journal) as j:
        steps = {s["step"] for s in j.recovery_steps()}
        assert steps & {"retry", "unwind"}, steps
        # Orders that never reached the exchange (429, 500 not executed) are journaled as such.
        assert any(o.state in ("absent", "rejected") for o in j.all_orders())
    assert_agrees_with_journal(summary, journal)


def test_paper_human_report_without_a_terminal(tmp_path):
    proc = kimp("paper", "--duration", "3", "--seed", "7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for part in ("realized P&L", "latency per stage", "invariants", "all invariants held", "temporary, deleted"):
        assert part in out, part
    assert "\x1b[" not in out  # no live view and no colour codes when stdout is not a terminal


def test_paper_bad_usage_exits_2():
    for args in (["--signals", "0"], ["--duration", "-1"], ["--qty", "abc"]):
        proc = kimp("paper", *args)
        assert proc.returncode == 2, args
        assert "error" in proc.stderr
