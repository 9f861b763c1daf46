"""The latency probe: it runs, its JSON has the documented shape, the legs are concurrent,
and ``--live`` refuses to start without keys and only ever calls order-test endpoints.

No speed is asserted here (benchmarks live in ``bench/``); the concurrency check is loose:
with equal delays on both exchanges an ENTER must take about one delay, not two.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from kimp_fast._env import NO_EXTENSIONS
from kimp_fast.cli import main as cli_main
from kimp_fast.probe import LIVE_TEST_PATHS, LiveRefused, check_keys
from kimp_fast.probe import main as probe_main
from kimp_fast.probe._live import DEFAULT_KEY_ENV, LiveSafetyError, _checked_test_path
from kimp_fast.probe._orchestrate import _blocks
from kimp_fast.probe._stats import percentile, summary

KEY_VARS = tuple(DEFAULT_KEY_ENV.values())
# The variant of the build this test process runs (the suite runs compiled and pure).
VARIANT = "direct_pure_uvloop" if NO_EXTENSIONS else "direct_compiled_uvloop"


# ---------------------------------------------------------------------------- simulator run
@pytest.fixture(scope="module")
def probe_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("probe") / "probe.json"
    rc = probe_main([
        "-n", "2", "--blocks", "1", "--warmup", "1", "--variants", VARIANT,
        "--pairs", "30:30", "--pair-n", "2", "--json", str(out), "--quiet",
    ])
    assert rc == 0
    return json.loads(out.read_text())


def test_probe_json_has_the_documented_shape(probe_report: dict) -> None:
    r = probe_report
    assert r["mode"] == "simulator"
    for key in ("cpu", "cpus", "python", "platform", "dependencies", "commit", "openssl"):
        assert key in r["machine"]
    v = r["variants"][VARIANT]
    assert v["available"] is True, v
    assert v["n"] == 2 and v["error_count"] == 0, v.get("errors")
    assert v["build"] == ("pure" if NO_EXTENSIONS else "compiled") and v["loop"] == "uvloop"
    for metric in ("signal_to_wire_us", "overhead_us", "total_us", "network_us"):
        assert {"p50", "p90", "p99", "max"} <= set(v[metric]), metric
    for stage in ("validate", "size", "build", "build_sign", "write", "first_byte", "parse", "journal", "total"):
        s = v["stages_us"][stage]
        assert s["n"] == 2 and s["p50"] >= 0, stage
    # the legs are written before their responses come back
    assert 0 < v["signal_to_wire_us"]["max"] < v["total_us"]["max"]
    assert v["stages_us"]["first_byte"]["p50"] > 0
    # Each order is one request on each exchange (the simulator answers IOC/market
    # orders in their final state, so the Upbit adapter needs no follow-up poll)
    assert v["requests_per_order"] == {"upbit": {"POST /v1/orders": 1.0}, "binance": {"POST /fapi/v1/order": 1.0}}
    assert v["exit"]["n"] == 2
    assert {"pure_vs_compiled", "asyncio_vs_uvloop", "ccxt_vs_direct"} <= set(r["ratios"])
    assert any(t["target"].startswith("signal -> both orders written") for t in r["targets"])


def test_probe_counts_the_calls_before_both_writes(probe_report: dict) -> None:
    calls = probe_report["variants"][VARIANT]["calls_to_wire"]
    assert calls["complete"] is True  # both orders were written inside submit()
    counts = dict(calls["by_function"])
    assert sum(counts.values()) == calls["python"] + calls["c"]
    assert calls["python"] == sum(n for name, n in counts.items() if not name.startswith("C "))
    # the engine's path from submit() to both adapters is in it; the probe's marks are not
    for module, function in (("engine.py", "submit"), ("binance.py", "start_order"), ("upbit.py", "start_order")):
        assert any(name.startswith(module) and name.endswith(f"({function})") for name in counts), function
    assert not any("_recorder.py" in name for name in counts)


def test_probe_legs_are_concurrent(probe_report: dict) -> None:
    [row] = probe_report["concurrency"]
    assert (row["d1_ms"], row["d2_ms"], row["n"]) == (30, 30, 2)
    assert {"d1_ms", "d2_ms", "total_ms_p50"} <= set(row)
    # both legs waited ~30 ms each; sequential legs would need ~60 ms
    assert row["total_ms_p50"] >= 30
    assert row["total_ms_p50"] < 50, row
    assert row["legs_overlapped_share"] == 1.0  # both written before either answer, every time
    assert row["total_below_sum_of_legs"] is True
    assert row["sum_of_leg_networks_ms_p50"] > row["network_ms_p50"]


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99 and percentile(values, 1.0) == 100
    assert math.isnan(percentile([], 0.5))
    s = summary([3.0, 1.0, 2.0])
    assert (s["p50"], s["max"], s["n"]) == (2.0, 3.0, 3)
    assert _blocks(10, 4) == [3, 3, 2, 2] and _blocks(2, 4) == [1, 1]


# ---------------------------------------------------------------------------- --live safety
def test_live_refuses_without_keys_naming_every_missing_variable(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UPBIT_ACCESS_KEY", "present-but-not-enough")
    rc = probe_main(["--live", "-n", "1", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    for name in KEY_VARS[1:]:
        assert name in err
    assert "UPBIT_ACCESS_KEY" not in err.split("missing:")[1]
    assert "present-but-not-enough" not in err


def test_check_keys_never_echoes_values() -> None:
    with pytest.raises(LiveRefused) as exc:
        check_keys({"UPBIT_ACCESS_KEY": "secret-value-1", "UPBIT_SECRET_KEY": " "})
    text = str(exc.value)
    assert "secret-value-1" not in text
    assert "UPBIT_SECRET_KEY" in text and "BINANCE_API_KEY" in text and "BINANCE_SECRET_KEY" in text


def test_live_guard_refuses_the_real_order_endpoints() -> None:
    assert LIVE_TEST_PATHS == {"/v1/orders/test", "/fapi/v1/order/test"}
    for exchange, path in (("upbit", "/v1/orders"), ("binance", "/fapi/v1/order"),
                           ("upbit", "/fapi/v1/order/test"), ("binance", "/v1/orders/test")):
        with pytest.raises(LiveSafetyError):
            _checked_test_path(exchange, path)
    assert _checked_test_path("upbit", "/v1/orders/test") == "/v1/orders/test"


def test_live_source_names_no_real_order_path() -> None:
    import kimp_fast.probe._live as live

    src = Path(live.__file__).read_text()
    assert '"/v1/orders"' not in src and '"/fapi/v1/order"' not in src


async def test_live_refusal_sends_nothing(sim, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    before = len(sim.state.requests)
    rc = await asyncio.to_thread(
        probe_main, ["--live", "-n", "1", "--quiet", "--upbit-url", sim.url, "--binance-url", sim.url])
    assert rc == 2
    assert len(sim.state.requests) == before


async def test_live_hits_only_the_order_test_endpoints(sim, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    u, b = sim.upbit_keys, sim.binance_keys
    monkeypatch.setenv("UPBIT_ACCESS_KEY", u.access_key)
    monkeypatch.setenv("UPBIT_SECRET_KEY", u.secret_key)
    monkeypatch.setenv("BINANCE_API_KEY", b.api_key)
    monkeypatch.setenv("BINANCE_SECRET_KEY", b.secret_key)
    out = tmp_path / "live.json"
    rc = await asyncio.to_thread(
        probe_main, ["--live", "-n", "2", "--warmup", "0", "--quiet", "--upbit-url", sim.url,
                     "--binance-url", sim.url, "--json", str(out)])
    assert rc == 0
    posts = {(r["method"], r["path"]) for r in sim.state.requests if r["method"] != "GET"}
    assert posts == {("POST", "/v1/orders/test"), ("POST", "/fapi/v1/order/test")}
    assert sim.state.ledger()["orders"] == []
    report = json.loads(out.read_text())
    assert report["mode"] == "live" and report["concurrency"] == []
    [v] = report["variants"].values()
    assert v["n"] == 2 and v["errors"] == []
    assert v["statuses"] == {"upbit": {"201": 2}, "binance": {"200": 2}}
    assert {"p50", "p90", "p99"} <= set(v["signal_to_wire_us"]) and {"p50", "p90", "p99"} <= set(v["overhead_us"])


def test_kimp_fast_probe_is_wired(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    assert cli_main(["probe", "--live", "-n", "1", "--quiet"]) == 2
    assert "BINANCE_API_KEY" in capsys.readouterr().err
    # simulator-only runs reject live-only options
    assert cli_main(["probe", "--upbit-url", "http://127.0.0.1:9", "-n", "1", "--quiet"]) == 2
