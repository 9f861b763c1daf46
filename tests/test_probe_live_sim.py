"""``kimp-fast probe --live`` end to end, pointed at the simulator instead of the exchanges.

The live probe signs real test orders and sends them on the adapters' order lane; here both
"exchanges" are the simulator (in a background thread, because the probe runs its own
event loop), so the whole path runs over real sockets and nothing leaves 127.0.0.1. What
must hold: only the order-test endpoints are called, every one is accepted (signatures
verify), no order reaches the ledger, and the report has its timings.
"""

from __future__ import annotations

from adapters_direct.sim import run_in_background
from kimp_fast.probe._live import run_live


def test_live_probe_against_the_simulator_sends_only_test_orders() -> None:
    with run_in_background(seed=3) as sim:
        environ = {
            "UPBIT_ACCESS_KEY": sim.upbit_keys.access_key,
            "UPBIT_SECRET_KEY": sim.upbit_keys.secret_key,
            "BINANCE_API_KEY": sim.binance_keys.api_key,
            "BINANCE_SECRET_KEY": sim.binance_keys.secret_key,
        }
        report = run_live(n=3, warmup=1, interval_s=0.13, environ=environ, config_path=None,
                          upbit_url=sim.url, binance_url=sim.url, progress=False)
        ledger = sim.ledger()
        log = sim.call(lambda st: list(st.requests))

    (variant,) = report["variants"].values()
    assert report["mode"] == "live" and variant["n"] == 3, variant
    assert variant["errors"] == []
    assert set(variant["statuses"]["upbit"]) == {"201"} and sum(variant["statuses"]["upbit"].values()) == 4
    assert set(variant["statuses"]["binance"]) == {"200"} and sum(variant["statuses"]["binance"].values()) == 4
    for ex in ("upbit", "binance"):
        assert variant["legs"][ex]["write"]["n"] == 3  # the order lane's marks were recorded
    posts = [r["path"] for r in log if r["method"] == "POST"]
    assert sorted(set(posts)) == ["/fapi/v1/order/test", "/v1/orders/test"]
    assert ledger["orders_total"] == 0
